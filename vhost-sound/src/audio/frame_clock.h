/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file frame_clock.h
 * \brief A stream's nominal-rate clock: how many frames are due, and when
 * the next tick is.
 *
 * The one piece of clock arithmetic every back-end that paces itself uses:
 * the null back-end (ticks on an asio timer) and the ALSA back-end when a
 * PCM has no clock of its own (ticks in ppoll on its thread). Frames are
 * counted from start() on the steady clock, so a stream played for N
 * seconds moves N × rate frames whatever the tick jitter; ticks sit on an
 * absolute grid, so a late tick does not make the clock drift. Not thread
 * safe: one owner thread.
 */
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "audio/audio_backend.h"

namespace vhost_sound {

/** \brief Frames due at a nominal rate since start(), and a tick grid. */
class FrameClock
{
public:
	using Clock = std::chrono::steady_clock;

	/** \brief A clock of \a params' rate, ticking every tick_interval(params). */
	explicit FrameClock(const PcmParams &params);

	/**
	 * \brief The tick for \a params: the period divided into the fewest
	 * whole ticks (at least four) of at most 10 ms; at least 1 ms.
	 */
	static std::chrono::nanoseconds tick_interval(const PcmParams &params);

	Clock::duration tick() const { return tick_; }

	/** \brief Frames that play in \a elapsed at the nominal rate (rounded down). */
	uint64_t frames_in(Clock::duration elapsed) const;

	/** \brief Restart at \a now: nothing is due yet; time before it is not owed. */
	void start(Clock::time_point now);

	/**
	 * \brief Frames that became due since the last call (or start()). Frames
	 * the caller could not move then are not owed again later: the clock
	 * moves on, as a real device plays silence meanwhile.
	 */
	uint64_t take_due(Clock::time_point now);

	/**
	 * \brief Count \a frames as already moved ahead of the clock: take_due()
	 * returns nothing until the clock has caught up with them.
	 */
	void advance(uint64_t frames) { frames_counted_ += frames; }

	/**
	 * \brief Give back \a frames that take_due() returned but the caller
	 * could not move: the next take_due() returns them again, so a consumer
	 * woken late catches up instead of falling behind the clock. The caller
	 * bounds what it gives back; it can never move frames before they are due.
	 */
	void owe(uint64_t frames) { frames_counted_ -= std::min(frames, frames_counted_); }

	/**
	 * \brief The first tick strictly after \a now on the grid start() set:
	 * a late caller skips the points it missed rather than firing them back
	 * to back, and an early or repeated call never moves past the next one.
	 */
	Clock::time_point next_tick(Clock::time_point now);

private:
	const uint64_t rate_;
	const Clock::duration tick_;
	Clock::time_point start_;
	uint64_t frames_counted_ = 0;
};

} // namespace vhost_sound
