/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file device.h
 * \brief What a device author implements.
 *
 * The library handles the vhost-user protocol, guest memory and the rings;
 * a device says which features, queues and config space it has and
 * reacts when queues start, are kicked and stop.
 *
 * Threads: every callback runs on the thread that runs the io_context the
 * Server was given (the loop thread), one at a time; the library starts no
 * thread. A device that needs one (a blocking audio API, a disk) posts work
 * to its own threads and back to the loop with boost::asio::post(
 * context.io(), ...); Virtqueue and DeviceContext are used on the loop
 * thread only. Per-queue worker threads are left out on purpose: one loop
 * thread keeps the ring state, the memory table and the protocol state
 * machine free of locks, and a device that wants parallelism knows better
 * than the library where it pays.
 *
 * Which front-end message leads to which callback (QEMU 10):
 *
 * | front-end does                                | device sees               |
 * |-----------------------------------------------|---------------------------|
 * | connects                                      | attach()                  |
 * | SET_FEATURES                                  | features_negotiated()     |
 * | SET_VRING_NUM/BASE/ADDR/KICK/CALL, ENABLE 1   | queue_started(), then one queue_kicked() |
 * | a kick (the guest made buffers available)     | queue_kicked()            |
 * | QMP `stop`: SET_VRING_ENABLE 0 + GET_VRING_BASE per queue | queue_stopped() (not a reset) |
 * | QMP `cont`: SET_FEATURES, GET_STATUS, per queue NUM/BASE/ADDR/KICK/CALL/ENABLE 1 | queue_started() |
 * | SET_VRING_ADDR on a live ring                 | queue_stopped(), queue_started() |
 * | guest driver reset: SET_STATUS 0; RESET_OWNER, RESET_DEVICE | queue_stopped() per active queue, reset() |
 * | QEMU quits or the connection breaks           | queue_stopped() per active queue, detach() |
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <span>

#include "vhostpp/virtqueue.h"

namespace vhostpp {

/**
 * \brief Services the library offers a device while a front-end is connected.
 */
class DeviceContext
{
public:
	virtual ~DeviceContext() = default;
	/** \brief Tell the front-end the config space changed (CONFIG_CHANGE_MSG on the
	 *  back-end channel, queued: the loop never waits for the front-end); false
	 *  when no back-end channel was set up. */
	virtual bool notify_config_change() = 0;
	/** \brief Virtio features negotiated by the driver (0 before SET_FEATURES). */
	virtual uint64_t negotiated_features() const = 0;
	/** \brief The event loop every callback runs on: post work back to it from
	 *  the device's own threads, start timers on it. */
	virtual boost::asio::io_context &io() = 0;
	/**
	 * \brief The device hit an error it cannot recover from without a reset:
	 * set VIRTIO_CONFIG_S_NEEDS_RESET (0x40) in the status GET_STATUS returns
	 * and, when the back-end channel exists, send CONFIG_CHANGE_MSG so the
	 * driver looks. The bit clears with the reset (reset()).
	 */
	virtual void set_needs_reset() = 0;
};

/**
 * \brief A virtio device served over vhost-user.
 *
 * Queue lifecycle: queue_started() when a ring becomes active (started and
 * enabled, per the spec's "Ring states"), queue_kicked() when the driver
 * made buffers available (also once right after queue_started(), so no
 * kick is ever lost, and again in a handler of its own when it popped a
 * ring's worth: Virtqueue::pop()), queue_stopped() when it leaves that state. Between
 * queue_stopped() and the next queue_started() the device must not use
 * the queue nor any chain it popped from it.
 */
class Device
{
public:
	virtual ~Device() = default;

	/** \brief Device-specific virtio feature bits offered to the driver. The library
	 *  adds VERSION_1, RING_EVENT_IDX, RING_INDIRECT_DESC, NOTIFY_ON_EMPTY and
	 *  VHOST_USER_F_PROTOCOL_FEATURES itself. */
	virtual uint64_t features() const { return 0; }
	/** \brief Number of virtqueues (GET_QUEUE_NUM); fixed for the device's life. */
	virtual unsigned num_queues() const = 0;
	/** \brief Largest ring size the device accepts for \a queue. */
	virtual uint16_t max_queue_size(unsigned queue) const
	{
		(void)queue;
		return 1024;
	}

	/**
	 * \brief True if the device completes the chains of \a queue in the order it
	 * popped them.
	 *
	 * Then chains still in flight when the ring stops (GET_VRING_BASE, e.g. a
	 * VM pause) are not lost: the base reported is rewound past them, so the
	 * ring's next start hands them to the device again.
	 */
	virtual bool queue_in_order(unsigned queue) const
	{
		(void)queue;
		return false;
	}

	/** \brief Size of the config space; 0 means none (PROTOCOL_F_CONFIG not offered). */
	virtual uint32_t config_size() const { return 0; }
	/** \brief Fill \a out with config bytes at \a offset; false refuses the read.
	 *  The library checks offset + size against config_size() first. */
	virtual bool read_config(uint32_t offset, std::span<uint8_t> out)
	{
		(void)offset;
		(void)out;
		return false;
	}
	/** \brief The driver writes config bytes; false refuses the write. */
	virtual bool write_config(uint32_t offset, std::span<const uint8_t> in)
	{
		(void)offset;
		(void)in;
		return false;
	}

	/** \brief A front-end connected; \a context stays valid until detach(). */
	virtual void attach(DeviceContext &context) { (void)context; }
	/**
	 * \brief The front-end's connection ended (it quit, crashed, or broke the
	 * protocol); every active queue got queue_stopped() first. Release what
	 * belongs to that connection: the DeviceContext, chains, and whatever the
	 * device keeps per guest. Not a reset: a reconnecting front-end (QEMU's
	 * `reconnect=`) may resume the rings where they were.
	 */
	virtual void detach() {}
	/** \brief The driver accepted \a features (all bits, transport ones included). */
	virtual void features_negotiated(uint64_t features) { (void)features; }

	virtual void queue_started(Virtqueue &queue) { (void)queue; }
	virtual void queue_kicked(Virtqueue &queue) = 0;
	virtual void queue_stopped(Virtqueue &queue) { (void)queue; }

	/** \brief A device reset, back to the initial state: RESET_OWNER, RESET_DEVICE
	 *  or SET_STATUS 0 (not a disconnect: that is detach()). Every queue has
	 *  been stopped before this is called; the front-end stays attached. */
	virtual void reset() {}
};

} // namespace vhostpp
