/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file control_commands.h
 * \brief What the daemon does for each control request: the device side
 * of the grammar in control_protocol.h, and STATUS's JSON.
 *
 * STATUS (schema 1; the README shows an example):
 *
 *     {"schema":1, "version", "uptime_s",
 *      "guest":   {"connected", "features", "features_hex"},
 *      "backend": {"name", "details": {key: string, ...}},  (the back-end's own, then
 *                  each open host stream's as "<direction>.<key>", e.g. "output.node_id")
 *      "jacks":   [{"id", "name", "connected"}],
 *      "streams": [{"id", "direction", "enabled", "state",
 *                   "format", "rate", "channels", "buffer_bytes", "period_bytes",  (null before SET_PARAMS)
 *                   "bytes", "frames", "xruns", "latency_bytes", "latency_ms",
 *                   "ring_fill", "ring_capacity", "queued", "feeder", "feeder_chain"}],
 *      "mixer":   {"offered", "negotiated", "output_gain_percent", "input_gain_percent",
 *                  "controls": [{"id", "key", "name", "value", "max", "writable"}]}}
 */
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "control/control_protocol.h"

namespace vhost_sound {

class SoundDevice;

/**
 * \brief Executes requests on one SoundDevice and words the replies.
 */
class ControlCommands
{
public:
	ControlCommands(SoundDevice &device, std::string version);

	/** \brief The reply line (no newline) to \a request. WATCH is only
	 *  acknowledged here: the server marks the client as a watcher. */
	std::string execute(const control::Request &request);

	/** \brief parse_request() and execute(): the reply to \a line. */
	std::string handle(std::string_view line);

	/** \brief STATUS's JSON document (schema control::kSchema). */
	nlohmann::ordered_json status() const;
	/** \brief STATUS's "mixer" object, also CONTROLS' reply. */
	nlohmann::ordered_json mixer() const;

private:
	std::string query() const;
	std::string set(control::Direction direction, bool on);
	std::string volume(control::Direction direction, uint32_t percent);
	std::string mute(control::Direction direction, bool muted);

	SoundDevice &device_;
	std::string version_;
	std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

} // namespace vhost_sound
