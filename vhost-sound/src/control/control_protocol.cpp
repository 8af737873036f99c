/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "control/control_protocol.h"

#include <algorithm>
#include <cctype>
#include <fmt/format.h>
#include <vector>

#include "device/sound_device.h"

namespace vhost_sound {

namespace {

std::string lower(std::string_view s)
{
	std::string out(s);
	std::transform(out.begin(), out.end(), out.begin(),
		       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
	return out;
}

/* Split on spaces and tabs. */
std::vector<std::string_view> words(std::string_view line)
{
	std::vector<std::string_view> out;
	size_t i = 0;
	while (i < line.size()) {
		while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
			i++;
		const size_t start = i;
		while (i < line.size() && line[i] != ' ' && line[i] != '\t')
			i++;
		if (i > start)
			out.push_back(line.substr(start, i - start));
	}
	return out;
}

/* A client's word, safe to echo: printable ASCII only, at most 32 characters. */
std::string printable(std::string_view s)
{
	std::string out;
	for (unsigned char c : s.substr(0, 32))
		out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
	if (s.size() > 32)
		out += "...";
	return out;
}

std::string error(int code, std::string_view reason)
{
	return fmt::format("ERR {} {}", code, reason);
}

const char *on_off(bool on)
{
	return on ? "on" : "off";
}

} // namespace

ControlCommands::ControlCommands(SoundDevice &device, std::string version)
	: device_(device), version_(std::move(version))
{
}

std::string ControlCommands::line_too_long()
{
	return error(413, fmt::format("line longer than {} bytes", kMaxLine));
}

std::string ControlCommands::too_many_clients()
{
	return error(503, "too many clients");
}

std::string ControlCommands::handle(std::string_view line)
{
	if (line.size() > kMaxLine)
		return line_too_long();
	if (!line.empty() && line.back() == '\r')
		line.remove_suffix(1);

	const auto w = words(line);
	if (w.empty())
		return error(400, "empty request");

	const std::string verb = lower(w[0]);
	if (verb == "query") {
		if (w.size() != 1)
			return error(400, "usage: QUERY");
		return query();
	}
	if (verb == "status") {
		if (w.size() != 1)
			return error(400, "usage: STATUS");
		return status();
	}
	if (verb == "set") {
		if (w.size() != 3)
			return error(400, "usage: SET <output|input> <on|off>");
		return set(w[1], w[2]);
	}
	return error(400, fmt::format("unknown verb '{}' (QUERY, SET, STATUS)", printable(w[0])));
}

std::string ControlCommands::query() const
{
	return fmt::format("OK vhost-sound {} backend={} streams={} output={} input={}", version_,
			   device_.backend().name(), SoundDevice::kNumStreams,
			   on_off(device_.enabled(Direction::Output)),
			   on_off(device_.enabled(Direction::Input)));
}

std::string ControlCommands::set(std::string_view what, std::string_view value)
{
	const std::string target = lower(what);
	const std::string state = lower(value);
	Direction direction;
	if (target == "output")
		direction = Direction::Output;
	else if (target == "input")
		direction = Direction::Input;
	else
		return error(400, fmt::format("unknown stream '{}' (output, input)", printable(what)));

	bool on;
	if (state == "on")
		on = true;
	else if (state == "off")
		on = false;
	else
		return error(400, fmt::format("unknown value '{}' (on, off)", printable(value)));

	device_.set_enabled(direction, on);
	return fmt::format("OK {} {}", target, on_off(on));
}

std::string ControlCommands::status() const
{
	std::string out = "OK";
	for (const auto &s : device_.stream_stats()) {
		std::string params = "format=- rate=- channels=- buffer_bytes=- period_bytes=-";
		if (s.params)
			params = fmt::format("format={} rate={} channels={} buffer_bytes={} period_bytes={}",
					     virtio_snd::format_name(s.params->format), s.params->rate_hz(),
					     s.params->channels, s.params->buffer_bytes,
					     s.params->period_bytes);
		out += fmt::format(" {{stream={} direction={} enabled={} state={} {} bytes={} frames={} "
				   "xruns={} latency_bytes={} ring_fill={} ring_capacity={} queued={} "
				   "feeder=\"{}\"}}",
				   s.id, virtio_snd::direction_name(s.direction), on_off(s.enabled),
				   PcmStream::state_name(s.state), params, s.bytes, s.frames, s.xruns,
				   s.latency_bytes, s.ring_fill, s.ring_capacity, s.queued_messages,
				   s.feeder);
	}
	return out;
}

} // namespace vhost_sound
