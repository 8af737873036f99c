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
	/* A whole number of ticks per period (at least four, each at most
	 * 10 ms), so that every period ends on a tick: a period the guest
	 * re-queued completes exactly one period after the last, not up to a
	 * tick later (Linux's default 42.7 ms period on a 10 ms grid completed
	 * 40 or 50 ms apart). Rounded up to the nanosecond: the frames due at
	 * the n-th tick then reach the period's end, never one frame short. */
	const uint64_t period_ns = uint64_t{params.period_bytes} * 1000000000u;
	const uint64_t ticks = std::max<uint64_t>(4, (period_ns + rate * 10000000u - 1) / (rate * 10000000u));
	const std::chrono::nanoseconds tick{ (period_ns + rate * ticks - 1) / (rate * ticks) };
	return std::clamp<std::chrono::nanoseconds>(tick, 1ms, 10ms);
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
