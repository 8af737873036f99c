/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "control/status_text.h"

#include <cmath>
#include <ctime>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <stdexcept>
#include <utility>

#include "control/control_protocol.h"

namespace vhost_sound::control {

using nlohmann::json;

namespace {

/* A field that may be null (before SET_PARAMS): "-". */
std::string cell(const json &value)
{
	if (value.is_null())
		return "-";
	if (value.is_string())
		return value.get<std::string>();
	if (value.is_number_float())
		return fmt::format("{:.2f}", value.get<double>());
	return value.dump();
}

/*
 * A time in seconds from the daemon's JSON, checked before any integer
 * conversion: a NaN, negative or absurd value (a hostile or broken peer)
 * would make the cast undefined behaviour.
 */
double seconds_field(const json &object, const char *name)
{
	const double value = object.at(name).get<double>();
	constexpr double kMaxSeconds = 1e11; /* beyond year 5000 */
	if (!std::isfinite(value) || value < 0 || value > kMaxSeconds)
		throw std::runtime_error(fmt::format("\"{}\" is out of range: {}", name, value));
	return value;
}

/*
 * An integer field of type T, checked before conversion: nlohmann's get<T>()
 * casts a float (3e97, from a hostile or broken peer) without a range check,
 * which is undefined behaviour.
 */
template<typename T>
T integer_field(const json &object, const char *name)
{
	const json &value = object.at(name);
	bool fits = false;
	if (value.is_number_unsigned())
		fits = std::in_range<T>(value.get<uint64_t>());
	else if (value.is_number_integer())
		fits = std::in_range<T>(value.get<int64_t>());
	if (!fits)
		throw std::runtime_error(fmt::format("\"{}\" is not an integer in range: {}", name,
						     value.dump()));
	return value.is_number_unsigned() ? static_cast<T>(value.get<uint64_t>())
					  : static_cast<T>(value.get<int64_t>());
}

std::string duration(double seconds)
{
	const auto s = static_cast<long long>(seconds);
	return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

} // namespace

std::string format_status_table(const json &status)
{
	try {
		if (integer_field<int>(status, "schema") != kSchema)
			throw std::runtime_error(fmt::format("STATUS schema {} (this vhostctl reads {})",
							     status.at("schema").dump(), kSchema));
		const json &guest = status.at("guest");
		std::string out = fmt::format(
			"vhost-sound {}, back-end {}, guest {}, up {}\n",
			status.at("version").get<std::string>(),
			status.at("backend").at("name").get<std::string>(),
			guest.at("connected").get<bool>()
				? fmt::format("connected (features {})",
					      guest.at("features_hex").get<std::string>())
				: std::string("not connected"),
			duration(seconds_field(status, "uptime_s")));
		for (const auto &[key, value] : status.at("backend").at("details").items())
			out += fmt::format("  back-end {}: {}\n", key, cell(value));

		constexpr auto kRow = "{:<3} {:<6} {:<7} {:<10} {:<7} {:>6} {:>2} {:>8} {:>7} {:>12} "
				      "{:>10} {:>5} {:>8} {:>13} {:>6}\n";
		out += fmt::format(kRow, "ID", "DIR", "ENABLED", "STATE", "FORMAT", "RATE", "CH",
				   "BUFFER", "PERIOD", "BYTES", "FRAMES", "XRUNS", "LAT(ms)", "RING",
				   "QUEUED");
		for (const json &s : status.at("streams")) {
			out += fmt::format(kRow, cell(s.at("id")), cell(s.at("direction")),
					   s.at("enabled").get<bool>() ? "on" : "off", cell(s.at("state")),
					   cell(s.at("format")), cell(s.at("rate")), cell(s.at("channels")),
					   cell(s.at("buffer_bytes")), cell(s.at("period_bytes")),
					   cell(s.at("bytes")), cell(s.at("frames")), cell(s.at("xruns")),
					   cell(s.at("latency_ms")),
					   fmt::format("{}/{}", cell(s.at("ring_fill")),
						       cell(s.at("ring_capacity"))),
					   cell(s.at("queued")));
		}
		for (const json &s : status.at("streams"))
			out += fmt::format("stream {} feeder: {}\n", cell(s.at("id")),
					   s.at("feeder").get<std::string>());
		for (const json &j : status.at("jacks"))
			out += fmt::format("jack {} ({}): {}\n", cell(j.at("id")), cell(j.at("name")),
					   j.at("connected").get<bool>() ? "connected" : "disconnected");
		/* A daemon from before the mixer has no "mixer". */
		if (status.contains("mixer"))
			out += format_controls_table(status.at("mixer"));
		return out;
	} catch (const json::exception &e) {
		throw std::runtime_error(fmt::format("STATUS reply is not what schema {} says: {}",
						     kSchema, e.what()));
	}
}

std::string format_controls_table(const json &mixer)
{
	try {
		std::string out = fmt::format(
			"controls {}, guest {}; gain output {}%, input {}%\n",
			mixer.at("offered").get<bool>() ? "offered" : "not offered (no --controls)",
			mixer.at("negotiated").get<bool>() ? "uses them" : "does not use them",
			cell(mixer.at("output_gain_percent")), cell(mixer.at("input_gain_percent")));
		for (const json &c : mixer.at("controls")) {
			const uint32_t max = integer_field<uint32_t>(c, "max");
			const uint32_t value = integer_field<uint32_t>(c, "value");
			out += fmt::format("  {:<2} {:<16} {:<31} {}{}\n", cell(c.at("id")), cell(c.at("key")),
					   cell(c.at("name")),
					   max == 1 ? std::string(value ? "on" : "off")
						    : fmt::format("{}% (0-{})", value, max),
					   c.at("writable").get<bool>() ? "" : " (read-only)");
		}
		return out;
	} catch (const json::exception &e) {
		throw std::runtime_error(fmt::format("not STATUS's mixer object: {}", e.what()));
	}
}

std::string format_event(const json &event)
{
	try {
		const double time = seconds_field(event, "time");
		const std::time_t seconds = static_cast<std::time_t>(time);
		const int millis = static_cast<int>(std::lround((time - seconds) * 1000)) % 1000;
		const std::string stamp =
			fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", fmt::gmtime(seconds), millis);
		const std::string kind = event.at("event").get<std::string>();
		auto stream = [&] {
			return fmt::format("stream {} ({})", cell(event.at("stream")),
					   cell(event.at("direction")));
		};
		std::string what;
		if (kind == "enabled")
			what = fmt::format("{} {}", cell(event.at("direction")),
					   event.at("enabled").get<bool>() ? "enabled" : "disabled");
		else if (kind == "state")
			what = fmt::format("{}: {} -> {}", stream(), cell(event.at("from")),
					   cell(event.at("to")));
		else if (kind == "guest")
			what = event.at("connected").get<bool>() ? "guest connected"
								 : "guest disconnected";
		else if (kind == "xrun")
			what = fmt::format("{}: {} xruns (+{})", stream(), cell(event.at("xruns")),
					   cell(event.at("new")));
		else if (kind == "mixer")
			what = fmt::format("mixer: {} = {} (by the {})", cell(event.at("control")),
					   cell(event.at("value")), cell(event.at("by")));
		else if (kind == "backend-error")
			what = fmt::format("{}: back-end error: {}", stream(), cell(event.at("message")));
		else
			what = fmt::format("{}: {}", kind, event.dump());
		return stamp + " " + what;
	} catch (const json::exception &e) {
		throw std::runtime_error(fmt::format("not a WATCH event: {}", e.what()));
	}
}

} // namespace vhost_sound::control
