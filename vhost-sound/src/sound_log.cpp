/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "sound_log.h"

#include <mutex>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace vhost_sound {

namespace {

vhostpp::LogLevel to_vhostpp(spdlog::level::level_enum level)
{
	switch (level) {
	case spdlog::level::trace: return vhostpp::LogLevel::Trace;
	case spdlog::level::debug: return vhostpp::LogLevel::Debug;
	case spdlog::level::info: return vhostpp::LogLevel::Info;
	case spdlog::level::warn: return vhostpp::LogLevel::Warn;
	case spdlog::level::err:
	case spdlog::level::critical: return vhostpp::LogLevel::Error;
	default: return vhostpp::LogLevel::Off;
	}
}

spdlog::level::level_enum to_spdlog(vhostpp::LogLevel level)
{
	switch (level) {
	case vhostpp::LogLevel::Trace: return spdlog::level::trace;
	case vhostpp::LogLevel::Debug: return spdlog::level::debug;
	case vhostpp::LogLevel::Info: return spdlog::level::info;
	case vhostpp::LogLevel::Warn: return spdlog::level::warn;
	case vhostpp::LogLevel::Error: return spdlog::level::err;
	case vhostpp::LogLevel::Off: break;
	}
	return spdlog::level::off;
}

/* The logger's only sink: the callback when one is set, stderr otherwise.
 * Swapping the callback under the sink's own mutex keeps it safe while
 * other threads log. */
class SwitchSink : public spdlog::sinks::base_sink<std::mutex>
{
public:
	void set(vhostpp::LogSink sink)
	{
		std::lock_guard lock(mutex_);
		callback_ = std::move(sink);
	}

protected:
	void sink_it_(const spdlog::details::log_msg &msg) override
	{
		if (callback_)
			callback_(to_vhostpp(msg.level), std::string_view(msg.payload.data(), msg.payload.size()));
		else
			console_.log(msg);
	}
	void flush_() override { console_.flush(); }
	void set_pattern_(const std::string &pattern) override { console_.set_pattern(pattern); }
	void set_formatter_(std::unique_ptr<spdlog::formatter> f) override
	{
		console_.set_formatter(std::move(f));
	}

private:
	vhostpp::LogSink callback_;
	spdlog::sinks::stderr_color_sink_st console_;
};

SwitchSink &switch_sink()
{
	static auto *instance = new SwitchSink; /* never destroyed: threads may log at exit */
	return *instance;
}

} // namespace

spdlog::logger &logger()
{
	/* Function-local static: created once, thread-safe, before any use. */
	static std::shared_ptr<spdlog::logger> instance = [] {
		auto sink = std::shared_ptr<SwitchSink>(&switch_sink(), [](SwitchSink *) {});
		auto l = std::make_shared<spdlog::logger>("vhost-sound", sink);
		l->set_pattern("[%H:%M:%S.%e] [%n] [%l] %v");
		return l;
	}();
	return *instance;
}

void set_log_sink(vhostpp::LogSink sink)
{
	logger(); /* the sink exists once the logger does */
	switch_sink().set(std::move(sink));
}

void route_library_log(spdlog::level::level_enum level)
{
	logger().set_level(level);
	vhostpp::set_log_level(to_vhostpp(level));
	vhostpp::set_log_sink([](vhostpp::LogLevel l, std::string_view text) {
		logger().log(to_spdlog(l), "libvhostpp: {}", text);
	});
}

} // namespace vhost_sound
