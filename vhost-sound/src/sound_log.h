/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file sound_log.h
 * \brief The daemon's logger, and where its lines (and libvhostpp's) go.
 *
 * The daemon logs through one spdlog logger named "vhost-sound". Its lines
 * go to stderr unless set_log_sink() installs a callback (journald, a test's
 * capture); route_library_log() sends libvhostpp's lines through the same
 * logger, so one level and one sink serve both.
 */
#pragma once

#include <cstdint>
#include <spdlog/spdlog.h>
#include <vhostpp/log.h>

namespace vhost_sound {

/** \brief The logger named "vhost-sound" (created on first use, logging to stderr). */
spdlog::logger &logger();

/**
 * \brief Send every line the daemon's logger passes to \a sink (formatted
 * message only, no time or level prefix) instead of stderr; an empty
 * function restores stderr. Called on the logging thread, serialized.
 */
void set_log_sink(vhostpp::LogSink sink);

/**
 * \brief Route libvhostpp's messages into the daemon's logger (prefixed
 * "libvhostpp: ") and give the library the daemon's level \a level.
 */
void route_library_log(spdlog::level::level_enum level);

/**
 * \brief Keeps a guest that repeats a bad request from flooding the log:
 * the first 16 occurrences are logged, then every 1024th.
 */
class LogLimiter
{
public:
	/** \brief Count one occurrence; true when it should be logged. */
	bool allow()
	{
		const uint64_t n = count_++;
		return n < 16 || n % 1024 == 0;
	}
	/** \brief Occurrences counted so far. */
	uint64_t count() const { return count_; }

private:
	uint64_t count_ = 0;
};

} // namespace vhost_sound
