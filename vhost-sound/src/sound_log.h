/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file sound_log.h
 * \brief The daemon's logger.
 */
#pragma once

#include <cstdint>
#include <spdlog/spdlog.h>

namespace vhost_sound {

/** \brief The logger named "vhost-sound" (created on first use, logging to stderr). */
spdlog::logger &logger();

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
