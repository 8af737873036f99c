/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file control_protocol.h
 * \brief The control socket's line protocol, without the socket.
 *
 * One request per line, one reply line per request:
 *
 *     QUERY                     -> OK vhost-sound <version> backend=<name> streams=2 output=<on|off> input=<on|off>
 *     SET <output|input> <on|off> -> OK <output|input> <on|off>
 *     STATUS                    -> OK {stream=0 direction=output enabled=on state=running ...} {stream=1 ...}
 *
 * Errors: `ERR <code> <reason>`, code 400 for a request that is empty,
 * unknown or malformed, 413 for a line over the length limit, 503 when the
 * server has too many clients. Verbs and arguments are case-insensitive.
 * STATUS fields are key=value, values with spaces in double quotes; per
 * stream: stream, direction, enabled, state, format, rate, channels,
 * buffer_bytes, period_bytes (the last five "-" before SET_PARAMS), bytes,
 * frames, xruns, latency_bytes, ring_fill, ring_capacity, queued, feeder.
 */
#pragma once

#include <string>
#include <string_view>

namespace vhost_sound {

class SoundDevice;

/**
 * \brief Turns request lines into reply lines for one SoundDevice.
 */
class ControlCommands
{
public:
	/** \brief Longest request line accepted, without its newline. */
	static constexpr size_t kMaxLine = 1024;

	ControlCommands(SoundDevice &device, std::string version);

	/** \brief The reply to \a line (no newline in either). */
	std::string handle(std::string_view line);

	/** \brief The reply to a line longer than kMaxLine. */
	static std::string line_too_long();
	/** \brief The reply to a client over the limit, sent before closing it. */
	static std::string too_many_clients();

private:
	std::string query() const;
	std::string set(std::string_view what, std::string_view value);
	std::string status() const;

	SoundDevice &device_;
	std::string version_;
};

} // namespace vhost_sound
