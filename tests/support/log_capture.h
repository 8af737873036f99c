/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file log_capture.h
 * \brief Read what the library logged, from a test.
 *
 * LogCapture::get() installs (once per test program, before any server
 * thread logs) a library log sink that keeps every message in memory,
 * echoed to stderr only when VHOSTPP_TEST_VERBOSE is set. A daemon's own
 * logger can feed a LogCapture through add() too.
 * Tests mark() a position and wait_for() a line after it that contains
 * every given string, since the server logs on its own thread.
 */
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <vhostpp/log.h>

namespace vhostpp::test {

/** \brief Stores logged messages (text and level) and wakes waiters. */
class LogCapture
{
public:
	struct Line {
		LogLevel level;
		std::string text;
	};

	/**
	 * \brief The capture installed as the library's log sink (created on
	 * first call), at debug level and without rate limiting: tests read
	 * every line the code under test logged.
	 */
	static LogCapture &get()
	{
		static LogCapture *instance = [] {
			/* Never destroyed: a server thread may still log at exit. */
			auto *capture = new LogCapture;
			vhostpp::set_log_level(LogLevel::Debug);
			vhostpp::set_log_rate_limit(0);
			vhostpp::set_log_sink([capture](LogLevel level, std::string_view text) {
				capture->add(level, text);
			});
			return capture;
		}();
		return *instance;
	}

	/** \brief Store one line (also echoed to stderr when VHOSTPP_TEST_VERBOSE is set). */
	void add(LogLevel level, std::string_view text)
	{
		if (verbose_)
			std::fprintf(stderr, "[%s] %.*s\n", log_level_name(level), int(text.size()),
				     text.data());
		std::lock_guard lock(mutex_);
		lines_.push_back({level, std::string(text)});
		cv_.notify_all();
	}

	/** \brief Index of the next line to be logged. */
	size_t mark()
	{
		std::lock_guard lock(mutex_);
		return lines_.size();
	}

	/** \brief Copy of the lines logged since \a from. */
	std::vector<Line> since(size_t from)
	{
		std::lock_guard lock(mutex_);
		if (from >= lines_.size())
			return {};
		return {lines_.begin() + std::ptrdiff_t(from), lines_.end()};
	}

	/**
	 * \brief Wait up to \a timeout_ms for a line logged at or after \a from,
	 * at \a min_level or above, containing every string in \a needles.
	 * \return the line, or nothing on timeout
	 */
	std::optional<std::string> wait_for(size_t from, std::initializer_list<std::string_view> needles,
					    int timeout_ms = 3000, LogLevel min_level = LogLevel::Warn)
	{
		std::vector<std::string> want(needles.begin(), needles.end());
		std::unique_lock lock(mutex_);
		std::optional<std::string> found;
		cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
			for (size_t i = from; i < lines_.size(); i++) {
				if (lines_[i].level < min_level)
					continue;
				bool all = true;
				for (const auto &n : want)
					all = all && lines_[i].text.find(n) != std::string::npos;
				if (all) {
					found = lines_[i].text;
					return true;
				}
			}
			return false;
		});
		return found;
	}

	/** \brief Every line since \a from at \a min_level or above, joined, for failure messages. */
	std::string dump(size_t from, LogLevel min_level = LogLevel::Debug)
	{
		std::string out;
		for (const auto &l : since(from))
			if (l.level >= min_level)
				out += std::string(log_level_name(l.level)) + ": " + l.text + "\n";
		return out;
	}

private:
	bool verbose_ = std::getenv("VHOSTPP_TEST_VERBOSE") != nullptr;
	std::mutex mutex_;
	std::vector<Line> lines_;
	std::condition_variable cv_;
};

} // namespace vhostpp::test
