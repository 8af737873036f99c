/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "vhostpp/internal/logging.h"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <sys/time.h>

namespace vhostpp {

namespace {

std::atomic<LogLevel> current_level{LogLevel::Info};
std::atomic<unsigned> current_rate{10};
/* One mutex serializes the sink calls and guards the sink itself. */
std::mutex sink_mutex;
LogSink current_sink;

void stderr_sink(LogLevel level, std::string_view message)
{
	timeval tv{};
	::gettimeofday(&tv, nullptr);
	tm local{};
	::localtime_r(&tv.tv_sec, &local);
	fmt::print(stderr, "[{:02}:{:02}:{:02}.{:03}] [vhostpp] [{}] {}\n", local.tm_hour, local.tm_min,
		   local.tm_sec, tv.tv_usec / 1000, log_level_name(level), message);
}

} // namespace

const char *log_level_name(LogLevel level)
{
	switch (level) {
	case LogLevel::Trace: return "trace";
	case LogLevel::Debug: return "debug";
	case LogLevel::Info: return "info";
	case LogLevel::Warn: return "warn";
	case LogLevel::Error: return "error";
	case LogLevel::Off: return "off";
	}
	return "?";
}

void set_log_sink(LogSink sink)
{
	std::lock_guard lock(sink_mutex);
	current_sink = std::move(sink);
}

void set_log_level(LogLevel level)
{
	current_level.store(level, std::memory_order_relaxed);
}

LogLevel log_level()
{
	return current_level.load(std::memory_order_relaxed);
}

void set_log_rate_limit(unsigned per_second)
{
	current_rate.store(per_second, std::memory_order_relaxed);
}

unsigned log_rate_limit()
{
	return current_rate.load(std::memory_order_relaxed);
}

namespace internal {

bool log_enabled(LogLevel level)
{
	const LogLevel min = current_level.load(std::memory_order_relaxed);
	return level != LogLevel::Off && min != LogLevel::Off && level >= min;
}

void log_line(LogLevel level, std::string_view message)
{
	std::lock_guard lock(sink_mutex);
	if (current_sink)
		current_sink(level, message);
	else
		stderr_sink(level, message);
}

} // namespace internal

bool RateLimit::admit(uint64_t &suppressed, Clock::time_point now)
{
	suppressed = 0;
	const unsigned budget = log_rate_limit();
	std::lock_guard lock(mutex_);
	if (!started_ || now - window_start_ >= std::chrono::seconds(1)) {
		started_ = true;
		window_start_ = now;
		in_window_ = 0;
	}
	if (budget != 0 && in_window_ >= budget) {
		suppressed_++;
		return false;
	}
	in_window_++;
	suppressed = std::exchange(suppressed_, 0);
	return true;
}

} // namespace vhostpp
