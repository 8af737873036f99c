/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "control/control_events.h"

#include <cmath>

#include "control/control_protocol.h"
#include "control/control_server.h"

namespace vhost_sound {

using json = nlohmann::ordered_json;

ControlEvents::ControlEvents(boost::asio::io_context &io, SoundDevice &device,
			     ControlServer &server)
	: device_(device), server_(server), xrun_timer_(io)
{
	for (const auto &s : device_.stream_stats())
		xruns_seen_[s.id] = s.xruns;
	device_.set_observer(this);
}

ControlEvents::~ControlEvents()
{
	device_.set_observer(nullptr);
}

void ControlEvents::publish(const char *event, json fields)
{
	const double now = std::chrono::duration<double>(
				   std::chrono::system_clock::now().time_since_epoch())
				   .count();
	json line = { { "schema", control::kSchema },
		      { "event", event },
		      { "time", std::round(now * 1000) / 1000 } };
	line.update(fields);
	server_.publish(line.dump());
}

void ControlEvents::enabled_changed(Direction direction, bool enabled)
{
	publish("enabled", { { "direction", virtio_snd::direction_name(direction) },
			     { "enabled", enabled } });
}

void ControlEvents::stream_state_changed(uint32_t id, PcmStream::State from, PcmStream::State to)
{
	const PcmStream &stream = device_.stream(id);
	publish("state", { { "stream", id },
			   { "direction", virtio_snd::direction_name(stream.direction()) },
			   { "from", PcmStream::state_name(from) },
			   { "to", PcmStream::state_name(to) } });
	if (to == PcmStream::State::Prepared)
		xruns_seen_[id] = 0;
	if (to == PcmStream::State::Running)
		schedule_xrun_check();
}

void ControlEvents::guest_connected(bool connected)
{
	publish("guest", { { "connected", connected } });
}

void ControlEvents::backend_error(uint32_t id, const std::string &what)
{
	publish("backend-error", { { "stream", id },
				   { "direction", virtio_snd::direction_name(device_.stream(id).direction()) },
				   { "message", what } });
}

void ControlEvents::mixer_changed(uint32_t id, uint32_t value, bool by_guest)
{
	publish("mixer", { { "id", id },
			   { "control", Mixer::key(id) },
			   { "value", value },
			   { "by", by_guest ? "guest" : "host" } });
}

void ControlEvents::schedule_xrun_check()
{
	if (timer_armed_)
		return;
	timer_armed_ = true;
	xrun_timer_.expires_after(kXrunInterval);
	xrun_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](
				       const boost::system::error_code &ec) {
		/* A handler aborted by the destructor runs after it: touch nothing. */
		if (alive.expired())
			return;
		timer_armed_ = false;
		if (!ec)
			check_xruns();
	});
}

void ControlEvents::check_xruns()
{
	bool running = false;
	for (const auto &s : device_.stream_stats()) {
		running |= s.state == PcmStream::State::Running;
		/* The counter restarts at PREPARE. */
		if (s.xruns < xruns_seen_[s.id])
			xruns_seen_[s.id] = 0;
		if (s.xruns == xruns_seen_[s.id])
			continue;
		publish("xrun", { { "stream", s.id },
				  { "direction", virtio_snd::direction_name(s.direction) },
				  { "xruns", s.xruns },
				  { "new", s.xruns - xruns_seen_[s.id] } });
		xruns_seen_[s.id] = s.xruns;
	}
	if (running)
		schedule_xrun_check();
}

} // namespace vhost_sound
