/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "audio/loop_notifier.h"

#include <boost/asio/buffer.hpp>

namespace vhost_sound {

LoopNotifier::LoopNotifier(boost::asio::io_context &io, std::function<void()> callback)
	: event_(vhostpp::EventFd::create()),
	  state_(std::make_shared<State>(State{
		  boost::asio::posix::stream_descriptor(io, event_.unique_fd().duplicate().release()),
		  std::move(callback) }))
{
	arm(state_);
}

LoopNotifier::~LoopNotifier()
{
	/* Closing cancels the pending read; a completion already queued on the
	 * loop finds its weak reference expired once state_ is gone. */
	boost::system::error_code ignored;
	state_->descriptor.close(ignored);
	state_.reset();
}

void LoopNotifier::arm(const std::shared_ptr<State> &state)
{
	state->descriptor.async_read_some(
		boost::asio::buffer(&state->counter, sizeof(state->counter)),
		[weak = std::weak_ptr<State>(state)](const boost::system::error_code &ec, size_t) {
			const std::shared_ptr<State> s = weak.lock();
			if (ec || !s)
				return;
			/* s keeps the state alive if the callback destroys the notifier;
			 * the closed descriptor then says not to wait again. */
			s->callback();
			if (s->descriptor.is_open())
				arm(s);
		});
}

} // namespace vhost_sound
