/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file device_driver.h
 * \brief DeviceDriver: QEMU's start-up sequence over a Frontend, owning the
 * memory and the queues, so a device can be exercised without a VM.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vhostpp/fd.h"
#include "vhostpp/frontend/driver_memory.h"
#include "vhostpp/frontend/driver_queue.h"
#include "vhostpp/frontend/frontend.h"

namespace vhostpp {

/**
 * \brief Everything needed to drive a device as a guest would.
 *
 * The constructor runs QEMU's start-up sequence: GET_FEATURES; if the
 * back-end offers VHOST_USER_F_PROTOCOL_FEATURES, GET_PROTOCOL_FEATURES and
 * SET_PROTOCOL_FEATURES (offered ∩ wanted); GET_QUEUE_NUM with MQ (the
 * device must have at least as many queues as asked for); GET_MAX_MEM_SLOTS
 * when memory goes in with ADD_MEM_REG; SET_OWNER; SET_FEATURES (offered ∩
 * wanted); the memory (SET_MEM_TABLE, or ADD_MEM_REG when asked and
 * CONFIGURE_MEM_SLOTS was negotiated); then setup_queue() for each queue.
 *
 * \throws FrontendError if the back-end refuses any of it or offers too few queues
 */
class DeviceDriver
{
public:
	struct Options {
		/** \brief One queue per entry, of that size. */
		std::vector<uint16_t> queue_sizes;
		/** \brief Virtio features wanted; ANDed with those offered. */
		uint64_t features = ~0ull;
		/** \brief Protocol features wanted; ANDed with those offered. */
		uint64_t protocol_features = ~0ull;
		size_t memory_size = 16 << 20;
		/** \brief Add the memory with ADD_MEM_REG (needs CONFIGURE_MEM_SLOTS). */
		bool use_add_mem_reg = false;
	};

	/** \brief Connect to the back-end listening on \a socket_path and start it. */
	DeviceDriver(const std::string &socket_path, Options options);
	/** \brief Start the back-end on an already connected socket (a socketpair
	 *  whose other end went to Server::serve_connected(), or an fd passed in). */
	DeviceDriver(UniqueFd socket, Options options);

	Frontend &frontend() { return frontend_; }
	DriverMemory &memory() { return *memory_; }
	/** \throws std::out_of_range */
	DriverQueue &queue(size_t i) { return *queues_.at(i); }
	size_t queue_count() const { return queues_.size(); }

	/** \brief Virtio features sent with SET_FEATURES. */
	uint64_t features() const { return features_; }
	/** \brief Protocol features sent with SET_PROTOCOL_FEATURES (0 without them). */
	uint64_t protocol_features() const { return protocol_features_; }
	/** \brief True when VIRTIO_F_RING_EVENT_IDX was negotiated. */
	bool event_idx() const;

	/** \brief QEMU's shutdown: SET_VRING_ENABLE 0 (with protocol features) and
	 *  GET_VRING_BASE per queue; returns the bases. */
	std::vector<uint32_t> stop();

private:
	/* QEMU's start-up sequence, shared by both constructors. */
	void start();

	Frontend frontend_;
	Options options_;
	std::unique_ptr<DriverMemory> memory_;
	std::vector<std::unique_ptr<DriverQueue>> queues_;
	uint64_t features_ = 0;
	uint64_t protocol_features_ = 0;
};

} // namespace vhostpp
