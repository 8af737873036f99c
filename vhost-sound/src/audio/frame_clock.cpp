/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "audio/frame_clock.h"

#include <algorithm>

namespace vhost_sound {

FrameClock::FrameClock(const PcmParams &params)
	: rate_(params.rate_hz()), tick_(tick_interval(params))
{
}

std::chrono::nanoseconds FrameClock::tick_interval(const PcmParams &params)
{
	using namespace std::chrono_literals;
	const uint64_t rate = params.byte_rate();
	if (!rate || !params.period_bytes)
		return 10ms;
	const std::chrono::nanoseconds period{ uint64_t{params.period_bytes} * 1000000000u / rate };
	return std::clamp<std::chrono::nanoseconds>(period / 4, 1ms, 10ms);
}

uint64_t FrameClock::frames_in(Clock::duration elapsed) const
{
	const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count();
	if (ns <= 0)
		return 0;
	/* Split into seconds so that ns * rate cannot overflow, however long the stream runs. */
	const uint64_t s = static_cast<uint64_t>(ns) / 1000000000u;
	const uint64_t rest = static_cast<uint64_t>(ns) % 1000000000u;
	return s * rate_ + rest * rate_ / 1000000000u;
}

void FrameClock::start(Clock::time_point now)
{
	start_ = now;
	frames_counted_ = 0;
}

uint64_t FrameClock::take_due(Clock::time_point now)
{
	const uint64_t due = frames_in(now - start_);
	const uint64_t frames = due - std::min(due, frames_counted_);
	frames_counted_ = std::max(due, frames_counted_);
	return frames;
}

FrameClock::Clock::time_point FrameClock::next_tick(Clock::time_point now)
{
	/* Computed from now alone, not by stepping a counter: a caller woken
	 * early (an eventfd ended its wait before the tick) or asking twice gets
	 * the same point again instead of one a whole tick further on, and a
	 * caller woken very late skips the points it missed. */
	if (now < start_)
		return start_ + tick_;
	const auto ticks = (now - start_) / tick_ + 1;
	return start_ + ticks * tick_;
}

} // namespace vhost_sound
