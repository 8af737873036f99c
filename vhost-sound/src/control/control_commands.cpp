/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "control/control_commands.h"

#include <fmt/format.h>
#include <variant>

#include "device/sound_device.h"

namespace vhost_sound {

using control::on_off;
using json = nlohmann::ordered_json;

namespace {

/* The feeder string's stages, "a -> b -> c", as a list. */
json feeder_chain(std::string_view feeder)
{
	json chain = json::array();
	constexpr std::string_view kArrow = " -> ";
	while (true) {
		const size_t at = feeder.find(kArrow);
		chain.push_back(std::string(feeder.substr(0, at)));
		if (at == std::string_view::npos)
			break;
		feeder.remove_prefix(at + kArrow.size());
	}
	return chain;
}

json stream_json(const PcmStream::Stats &s)
{
	json j = {
		{ "id", s.id },
		{ "direction", virtio_snd::direction_name(s.direction) },
		{ "enabled", s.enabled },
		{ "state", PcmStream::state_name(s.state) },
		{ "format", nullptr },
		{ "rate", nullptr },
		{ "channels", nullptr },
		{ "buffer_bytes", nullptr },
		{ "period_bytes", nullptr },
		{ "bytes", s.bytes },
		{ "frames", s.frames },
		{ "xruns", s.xruns },
		{ "latency_bytes", s.latency_bytes },
		{ "latency_ms", nullptr },
		{ "ring_fill", s.ring_fill },
		{ "ring_capacity", s.ring_capacity },
		{ "queued", s.queued_messages },
		{ "feeder", s.feeder },
		{ "feeder_chain", feeder_chain(s.feeder) },
	};
	if (s.params) {
		j["format"] = virtio_snd::format_name(s.params->format);
		j["rate"] = s.params->rate_hz();
		j["channels"] = s.params->channels;
		j["buffer_bytes"] = s.params->buffer_bytes;
		j["period_bytes"] = s.params->period_bytes;
		j["latency_ms"] = 1000.0 * s.latency_bytes / static_cast<double>(s.params->byte_rate());
	}
	return j;
}

} // namespace

ControlCommands::ControlCommands(SoundDevice &device, std::string version)
	: device_(device), version_(std::move(version))
{
}

std::string ControlCommands::handle(std::string_view line)
{
	const auto parsed = control::parse_request(line);
	if (const auto *error = std::get_if<control::Error>(&parsed))
		return control::format_error(*error);
	return execute(std::get<control::Request>(parsed));
}

std::string ControlCommands::execute(const control::Request &request)
{
	switch (request.verb) {
	case control::Verb::Query:
		return query();
	case control::Verb::Set:
		return set(request.direction, request.on);
	case control::Verb::Toggle:
		return set(request.direction, !device_.enabled(request.direction));
	case control::Verb::Status:
		return control::format_ok(status().dump());
	case control::Verb::Watch:
		return control::format_ok("watching");
	case control::Verb::Volume:
		return volume(request.direction, request.percent);
	case control::Verb::Mute:
	case control::Verb::Unmute:
		return mute(request.direction, request.verb == control::Verb::Mute);
	case control::Verb::Controls:
		return control::format_ok(mixer().dump());
	}
	return control::format_error({ 400, "unknown verb" });
}

std::string ControlCommands::query() const
{
	return control::format_ok(fmt::format("vhost-sound {} backend={} streams={} output={} input={}",
					      version_, device_.backend().name(),
					      SoundDevice::kNumStreams,
					      on_off(device_.enabled(Direction::Output)),
					      on_off(device_.enabled(Direction::Input))));
}

std::string ControlCommands::set(control::Direction direction, bool on)
{
	device_.set_enabled(direction, on);
	return control::format_ok(
		fmt::format("{} {}", virtio_snd::direction_name(direction), on_off(on)));
}

std::string ControlCommands::volume(control::Direction direction, uint32_t percent)
{
	const uint32_t id =
		direction == Direction::Output ? Mixer::kPlaybackVolume : Mixer::kCaptureVolume;
	if (percent > Mixer::max(id))
		return control::format_error(
			{ 400, fmt::format("volume {}% out of range for {} (0-{}%)", percent,
					   virtio_snd::direction_name(direction), Mixer::max(id)) });
	device_.set_control(id, percent);
	return control::format_ok(
		fmt::format("{} volume {}%", virtio_snd::direction_name(direction), percent));
}

std::string ControlCommands::mute(control::Direction direction, bool muted)
{
	device_.set_control(direction == Direction::Output ? Mixer::kPlaybackSwitch
							   : Mixer::kCaptureSwitch,
			    muted ? 0 : 1);
	return control::format_ok(fmt::format("{} {}", virtio_snd::direction_name(direction),
					      muted ? "muted" : "unmuted"));
}

json ControlCommands::mixer() const
{
	json controls = json::array();
	for (uint32_t id = 0; id < Mixer::kCount; id++)
		controls.push_back({ { "id", id },
				     { "key", Mixer::key(id) },
				     { "name", Mixer::name(id) },
				     { "value", device_.mixer().value(id) },
				     { "max", Mixer::max(id) },
				     { "writable", id != Mixer::kHostMicrophone } });
	return {
		{ "offered", device_.config().controls > 0 },
		{ "negotiated", device_.controls_negotiated() },
		{ "output_gain_percent", device_.mixer().gain(Direction::Output) },
		{ "input_gain_percent", device_.mixer().gain(Direction::Input) },
		{ "controls", controls },
	};
}

json ControlCommands::status() const
{
	const double uptime =
		std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
	json details = json::object();
	for (const auto &[key, value] : device_.backend().details())
		details[key] = value;
	json jacks = json::array();
	for (uint32_t id = 0; id < Jacks::kCount; id++)
		jacks.push_back({ { "id", id },
				  { "name", id == Jacks::kLineOut ? "line-out" : "microphone" },
				  { "connected", device_.jacks().connected(id) } });
	json streams = json::array();
	for (const auto &s : device_.stream_stats()) {
		streams.push_back(stream_json(s));
		/* Keyed by direction (one stream each), the word SET and TOGGLE
		 * use: a VM manager looks up "output.node_id" without first
		 * finding the stream's id. Flat strings, so that schema 1's
		 * backend.details keeps its shape. */
		for (const auto &[key, value] : device_.stream(s.id).host_details())
			details[fmt::format("{}.{}", virtio_snd::direction_name(s.direction), key)] = value;
	}
	const uint64_t features = device_.negotiated_features();
	return {
		{ "schema", control::kSchema },
		{ "version", version_ },
		{ "uptime_s", uptime },
		{ "guest",
		  { { "connected", device_.guest_connected() },
		    { "features", features },
		    { "features_hex", fmt::format("{:#018x}", features) } } },
		{ "backend", { { "name", device_.backend().name() }, { "details", details } } },
		{ "jacks", jacks },
		{ "streams", streams },
		{ "mixer", mixer() },
	};
}

} // namespace vhost_sound
