/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file log.h
 * \brief Where the library's messages go: a level and a sink callback.
 *
 * The library formats its messages itself and hands each finished line to
 * one sink. By default the sink writes "[time] [vhostpp] [level] text" to
 * stderr; an application replaces it to route the library into its own
 * logger (spdlog, journald, syslog, a test's capture). No logging library
 * is imposed on users of this header.
 *
 * Messages a guest can trigger once per descriptor chain (a refused chain,
 * a bad push) are rate-limited per call site, so that a hostile or broken
 * driver cannot flood the host's log: at most log_rate_limit() such lines a
 * second from each place, then one "suppressed N similar messages" line.
 */
#pragma once

#include <functional>
#include <string_view>

namespace vhostpp {

/** \brief Severity of a message, in increasing order. */
enum class LogLevel {
	Trace,
	Debug,
	Info,
	Warn,
	Error,
	Off, /**< \brief as a level filter only: nothing is logged */
};

/** \brief Lower-case name of \a level ("trace", ..., "error", "off"). */
const char *log_level_name(LogLevel level);

/**
 * \brief Receives every message at or above the current level.
 *
 * Called on the thread that logged (the server's event loop thread for
 * nearly everything); calls are serialized by the library, so the sink
 * needs no locking of its own. It must not call back into the library's
 * logging functions.
 */
using LogSink = std::function<void(LogLevel level, std::string_view message)>;

/** \brief Replace the sink; an empty function restores the default (stderr). */
void set_log_sink(LogSink sink);

/** \brief Drop messages below \a level (the default is LogLevel::Info). */
void set_log_level(LogLevel level);

/** \brief The current level filter. */
LogLevel log_level();

/**
 * \brief Allow at most \a per_second rate-limited messages a second from
 * each call site (the default is 10); 0 turns rate limiting off.
 */
void set_log_rate_limit(unsigned per_second);

/** \brief The current rate limit (0: none). */
unsigned log_rate_limit();

} // namespace vhostpp
