/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file log_capture.h
 * \brief Read what the library logged, from a test.
 *
 * LogCapture::get() replaces the library's logger (once per test program,
 * before any server thread logs) with one that keeps every message in
 * memory; the stderr sink stays, silent unless VHOSTPP_TEST_VERBOSE is set.
 * Tests mark() a position and wait_for() a line after it that contains
 * every given string, since the server logs on its own thread.
 */
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <string>
#include <string_view>
#include <vector>

#include <vhostpp/log.h>

namespace vhostpp::test {

/** \brief An spdlog sink that stores messages (text and level) and wakes waiters. */
class LogCapture : public spdlog::sinks::base_sink<std::mutex>
{
public:
	struct Line {
		spdlog::level::level_enum level;
		std::string text;
	};

	/** \brief The capture installed as the library's logger (created on first call). */
	static LogCapture &get()
	{
		static std::shared_ptr<LogCapture> instance = [] {
			auto capture = std::make_shared<LogCapture>();
			auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
			console->set_level(std::getenv("VHOSTPP_TEST_VERBOSE") ? spdlog::level::trace
									     : spdlog::level::off);
			auto logger = std::make_shared<spdlog::logger>(
				"vhostpp", spdlog::sinks_init_list{capture, console});
			logger->set_level(spdlog::level::debug);
			logger->set_pattern("[%H:%M:%S.%e] [%n] [%l] %v");
			vhostpp::set_logger(logger);
			return capture;
		}();
		return *instance;
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
					    int timeout_ms = 3000,
					    spdlog::level::level_enum min_level = spdlog::level::warn)
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
	std::string dump(size_t from, spdlog::level::level_enum min_level = spdlog::level::debug)
	{
		std::string out;
		for (const auto &l : since(from))
			if (l.level >= min_level)
				out += std::string(spdlog::level::to_string_view(l.level).data()) + ": " +
				       l.text + "\n";
		return out;
	}

protected:
	void sink_it_(const spdlog::details::log_msg &msg) override
	{
		/* base_sink holds mutex_ here. */
		lines_.push_back({msg.level, std::string(msg.payload.data(), msg.payload.size())});
		cv_.notify_all();
	}
	void flush_() override {}

private:
	std::vector<Line> lines_;
	std::condition_variable_any cv_;
};

} // namespace vhostpp::test
