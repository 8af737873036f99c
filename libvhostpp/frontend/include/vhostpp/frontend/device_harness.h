/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file device_harness.h
 * \brief DeviceHarness: run a Device through the library's queue lifecycle
 * in a test, without a VM and without a socket path.
 *
 * Nothing of the protocol is imitated: the harness serves the device with a
 * real Server (Server::serve_connected() on one end of a socketpair) and
 * drives it with a DeviceDriver on the other end, so the device sees
 * exactly the callbacks, in exactly the order, that QEMU's messages cause
 * (see device.h for the table).
 *
 * Threads: the harness runs the io_context on a thread of its own; the
 * device's callbacks run there. The test thread calls the harness (each
 * call returns once the server has handled the messages it sent) and
 * touches the device only through run(), which executes on the loop thread.
 */
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "vhostpp/device.h"
#include "vhostpp/frontend/device_driver.h"
#include "vhostpp/server.h"

namespace vhostpp {

/**
 * \brief A Device served by a real Server and driven as QEMU drives it.
 *
 * Lifecycle calls and what the device sees:
 * - start(): attach(), features_negotiated(), queue_started() and one
 *   queue_kicked() per queue;
 * - kick(): queue_kicked();
 * - stop() (QMP stop): queue_stopped() per queue; chains in flight on a
 *   queue_in_order() queue are rewound, so resume() hands them over again;
 * - resume() (QMP cont): a new generation of every queue from the bases
 *   stop() returned: queue_started() and queue_kicked();
 * - reset() (the guest driver resets: SET_STATUS 0): queue_stopped() per
 *   active queue, then reset();
 * - detach() (QEMU quits) or the destructor: queue_stopped() per active
 *   queue, then detach().
 *
 * \throws FrontendError from every lifecycle call when the server refuses
 */
class DeviceHarness
{
public:
	struct Options {
		/** \brief The front-end's side: queue sizes (one entry per queue to set
		 *  up; left empty: every queue of the device, each of 64 or the device's
		 *  max_queue_size() if smaller), features wanted, memory. */
		DeviceDriver::Options driver;
		/** \brief The server's side. */
		ServerOptions server;
	};

	/** \brief Serve \a device on \a io, which the harness runs on its own thread
	 *  until it is destroyed. Nothing is connected before start(). */
	DeviceHarness(boost::asio::io_context &io, Device &device, Options options);
	/** \brief detach() if still attached, then stop the loop thread. */
	~DeviceHarness();
	DeviceHarness(const DeviceHarness &) = delete;
	DeviceHarness &operator=(const DeviceHarness &) = delete;

	/** \brief Connect and run QEMU's start-up sequence. \throws std::logic_error if attached */
	void start();
	/** \brief Signal queue \a i's kick eventfd, as the guest does; the loop runs
	 *  queue_kicked() soon after (wait for its effect, e.g. queue(i).wait_used()). */
	void kick(size_t i);
	/** \brief QMP stop: SET_VRING_ENABLE 0 and GET_VRING_BASE per queue; the bases. */
	std::vector<uint32_t> stop();
	/** \brief QMP cont: SET_FEATURES, GET_STATUS, then per queue NUM, BASE (from
	 *  stop()), ADDR, KICK, CALL, ENABLE 1. */
	void resume();
	/** \brief The guest driver resets the device: SET_STATUS 0. */
	void reset();
	/** \brief QEMU quits: close the connection; returns once detach() has run. */
	void detach();

	/** \brief True between start() and detach(). */
	bool attached() const { return driver_ != nullptr; }
	/** \brief The front-end. \throws std::logic_error unless attached */
	DeviceDriver &driver();
	/** \brief The guest driver's half of queue \a i. */
	DriverQueue &queue(size_t i) { return driver().queue(i); }
	/** \brief The guest memory. */
	DriverMemory &memory() { return driver().memory(); }

	/** \brief Run \a f on the loop thread and return its result (or rethrow). */
	template<typename F>
	auto run(F f) -> decltype(f())
	{
		std::packaged_task<decltype(f())()> task(std::move(f));
		auto result = task.get_future();
		boost::asio::post(io_, [&task] { task(); });
		return result.get();
	}

	/** \brief Wait until every handler the loop has queued so far has run. */
	void sync()
	{
		run([] {});
	}

private:
	boost::asio::io_context &io_;
	Device &device_;
	Options options_;
	boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
	std::unique_ptr<Server> server_;
	std::unique_ptr<DeviceDriver> driver_;
	std::vector<uint32_t> bases_;
	std::thread thread_;
	/* Connections the server has ended (on_disconnect), read on the loop thread. */
	uint64_t disconnects_ = 0;
};

} // namespace vhostpp
