/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file control_events.h
 * \brief WATCH's events: the device's changes as JSON lines for every watcher.
 *
 * One line per event, each with "schema", "event" and "time" (Unix time in
 * seconds, millisecond resolution):
 *
 *     {"event":"enabled","direction":"input","enabled":false,...}
 *     {"event":"state","stream":0,"direction":"output","from":"prepared","to":"running",...}
 *     {"event":"guest","connected":true,...}
 *     {"event":"xrun","stream":0,"direction":"output","xruns":3,"new":1,...}
 *     {"event":"backend-error","stream":1,"direction":"input","message":"...",...}
 *     {"event":"mixer","id":0,"control":"playback-volume","value":40,"by":"host",...}   (by: host or guest)
 */
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>

#include "device/sound_device.h"

namespace vhost_sound {

class ControlServer;

/**
 * \brief Turns a SoundDevice's observer calls into event lines published
 * on a ControlServer.
 *
 * Xruns are counted by the back-ends, not reported one by one: while a
 * stream runs, the counters are compared every kXrunInterval, so a watcher
 * gets at most one xrun event per stream and interval (and nothing runs
 * while no stream is started).
 */
class ControlEvents : public DeviceObserver
{
public:
	static constexpr std::chrono::milliseconds kXrunInterval{ 1000 };

	/** \brief Observe \a device (set_observer()) and publish on \a server; undone by the destructor. */
	ControlEvents(boost::asio::io_context &io, SoundDevice &device, ControlServer &server);
	~ControlEvents() override;
	ControlEvents(const ControlEvents &) = delete;
	ControlEvents &operator=(const ControlEvents &) = delete;

	void enabled_changed(Direction direction, bool enabled) override;
	void stream_state_changed(uint32_t id, PcmStream::State from, PcmStream::State to) override;
	void guest_connected(bool connected) override;
	void backend_error(uint32_t id, const std::string &what) override;
	void mixer_changed(uint32_t id, uint32_t value, bool by_guest) override;

private:
	void publish(const char *event, nlohmann::ordered_json fields);
	void schedule_xrun_check();
	void check_xruns();

	SoundDevice &device_;
	ControlServer &server_;
	boost::asio::steady_timer xrun_timer_;
	bool timer_armed_ = false;
	std::array<uint64_t, SoundDevice::kNumStreams> xruns_seen_{};
	/* Exists as long as this object; the timer's handler holds a weak reference. */
	std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

} // namespace vhost_sound
