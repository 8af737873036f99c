/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file loop_notifier.h
 * \brief How a threaded back-end tells the loop that audio moved, safely.
 *
 * An ALSA or PipeWire back-end moves ring bytes on its own thread, but
 * BackendStreamListener::backend_progress() must run on the loop's thread
 * (audio_backend.h). LoopNotifier is the one bridge for every back-end:
 *
 * - notify() may be called from any thread, also a real-time one: it is one
 *   non-blocking write(2) to an eventfd, so it never blocks, allocates, locks
 *   or logs. Calls made before the loop gets round to it collapse into one
 *   callback (the eventfd counter), so a fast back-end cannot flood the loop.
 * - The callback runs on the loop's thread, never inside notify().
 * - Once the destructor (called on the loop's thread) returns, the callback
 *   never runs again, even if a notification is already queued on the loop:
 *   the queued read handler holds only a weak reference and finds it expired.
 *
 * What the owner must do: make sure no thread is inside notify(), and none
 * will call it, before the notifier is destroyed (join the audio thread or
 * destroy the PipeWire stream first). Declare the notifier before the thread
 * or stream object so that it is destroyed after it.
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <functional>
#include <memory>

#include <vhostpp/fd.h>

namespace vhost_sound {

/**
 * \brief Wakes the loop from any thread and runs one callback there, never
 * after its own destruction.
 */
class LoopNotifier
{
public:
	/**
	 * \brief Run \a callback on \a io's thread after each batch of notify()
	 * calls. Constructed on (or before running) the loop; throws if no
	 * eventfd can be created.
	 */
	LoopNotifier(boost::asio::io_context &io, std::function<void()> callback);
	/** \brief On the loop's thread; afterwards the callback never runs. */
	~LoopNotifier();
	LoopNotifier(const LoopNotifier &) = delete;
	LoopNotifier &operator=(const LoopNotifier &) = delete;

	/** \brief From any thread: schedule one callback on the loop. Real-time safe. */
	void notify() const noexcept { event_.signal(); }

private:
	struct State {
		boost::asio::posix::stream_descriptor descriptor;
		std::function<void()> callback;
		uint64_t counter = 0;
	};
	static void arm(const std::shared_ptr<State> &state);

	/* The eventfd the audio thread writes to; the descriptor reads a duplicate. */
	vhostpp::EventFd event_;
	std::shared_ptr<State> state_;
};

} // namespace vhost_sound
