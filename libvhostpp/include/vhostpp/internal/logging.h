/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file logging.h
 * \brief How the library logs (internal, not installed).
 *
 * logger().error("queue {}: ...", index) formats with fmt only when the
 * level passes the filter, and hands the line to the sink of vhostpp/log.h.
 * A message a guest can repeat per chain goes through a RateLimit owned by
 * its call site: logger().error(limit, "...", ...).
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <fmt/format.h>
#include <mutex>
#include <string_view>
#include <utility>

#include "vhostpp/log.h"

namespace vhostpp {

namespace internal {

/** \brief True when a message at \a level would reach the sink. */
bool log_enabled(LogLevel level);

/** \brief Hand one finished line to the sink (no level check). */
void log_line(LogLevel level, std::string_view message);

} // namespace internal

/**
 * \brief Per-call-site budget of log lines: log_rate_limit() a second, then
 * a count of what was dropped, reported before the next line that passes.
 */
class RateLimit
{
public:
	using Clock = std::chrono::steady_clock;

	/**
	 * \brief Count one message at \a now.
	 * \return true if it may be logged; \a suppressed is then set to the
	 * number dropped since the last one logged (to report first)
	 */
	bool admit(uint64_t &suppressed, Clock::time_point now = Clock::now());

private:
	std::mutex mutex_;
	Clock::time_point window_start_{};
	unsigned in_window_ = 0;
	uint64_t suppressed_ = 0;
	bool started_ = false;
};

/** \brief The library's logging front: fmt-style calls, filtered by level. */
class Logger
{
public:
	/** \brief Format and log at \a level when the level passes. */
	template <typename... Args>
	void log(LogLevel level, fmt::format_string<Args...> format, Args &&...args)
	{
		if (internal::log_enabled(level))
			internal::log_line(level, fmt::format(format, std::forward<Args>(args)...));
	}

	/** \brief As log(), within the budget of \a limit. */
	template <typename... Args>
	void log(RateLimit &limit, LogLevel level, fmt::format_string<Args...> format, Args &&...args)
	{
		if (!internal::log_enabled(level))
			return;
		uint64_t suppressed = 0;
		if (!limit.admit(suppressed))
			return;
		if (suppressed)
			internal::log_line(level, fmt::format("(suppressed {} similar messages)", suppressed));
		internal::log_line(level, fmt::format(format, std::forward<Args>(args)...));
	}

	/** \brief log() at LogLevel::Trace. */
	template <typename... Args>
	void trace(fmt::format_string<Args...> f, Args &&...a) { log(LogLevel::Trace, f, std::forward<Args>(a)...); }
	/** \brief log() at LogLevel::Debug. */
	template <typename... Args>
	void debug(fmt::format_string<Args...> f, Args &&...a) { log(LogLevel::Debug, f, std::forward<Args>(a)...); }
	/** \brief log() at LogLevel::Info. */
	template <typename... Args>
	void info(fmt::format_string<Args...> f, Args &&...a) { log(LogLevel::Info, f, std::forward<Args>(a)...); }
	/** \brief log() at LogLevel::Warn. */
	template <typename... Args>
	void warn(fmt::format_string<Args...> f, Args &&...a) { log(LogLevel::Warn, f, std::forward<Args>(a)...); }
	/** \brief log() at LogLevel::Error. */
	template <typename... Args>
	void error(fmt::format_string<Args...> f, Args &&...a) { log(LogLevel::Error, f, std::forward<Args>(a)...); }
	/** \brief Rate-limited log() at LogLevel::Warn. */
	template <typename... Args>
	void warn(RateLimit &l, fmt::format_string<Args...> f, Args &&...a) { log(l, LogLevel::Warn, f, std::forward<Args>(a)...); }
	/** \brief Rate-limited log() at LogLevel::Error. */
	template <typename... Args>
	void error(RateLimit &l, fmt::format_string<Args...> f, Args &&...a) { log(l, LogLevel::Error, f, std::forward<Args>(a)...); }
};

/** \brief The library's logger (stateless; the state lives in log.cpp). */
inline Logger &logger()
{
	static Logger instance;
	return instance;
}

} // namespace vhostpp
