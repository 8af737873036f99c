/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file control_protocol.h
 * \brief The control socket's grammar: requests and replies as types and
 * lines, shared by the daemon's control server and vhostctl.
 *
 * One request per line, one reply line per request:
 *
 *     QUERY                         -> OK vhost-sound <version> backend=<name> streams=2 output=<on|off> input=<on|off>
 *     SET <output|input> <on|off>   -> OK <output|input> <on|off>
 *     TOGGLE <output|input>         -> OK <output|input> <on|off>   (the new state)
 *     STATUS                        -> OK {"schema":1,...}           (one line of JSON)
 *     WATCH                         -> OK watching, then one JSON event line per change
 *     VOLUME <output|input> <N>%    -> OK <output|input> volume <N>%  (output 0-100, input 0-200; '%' optional)
 *     MUTE <output|input>           -> OK <output|input> muted
 *     UNMUTE <output|input>         -> OK <output|input> unmuted
 *     CONTROLS                      -> OK {"offered":...,"controls":[...]}  (STATUS's "mixer", one line)
 *
 * Errors: `ERR <code> <reason>`: 400 for a request that is empty, unknown
 * or malformed, 403 for a peer the daemon does not let in, 413 for a line
 * over kMaxLine, 503 when the server has too many clients. Verbs and
 * arguments are case-insensitive. Replies start with "OK" or "ERR", events
 * with "{", so a watcher may still send requests on the same connection.
 */
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "device/virtio_snd.h"

namespace vhost_sound::control {

using virtio_snd::Direction;

/** \brief Longest request line accepted, without its newline. */
constexpr size_t kMaxLine = 1024;
/** \brief The version of STATUS's JSON and of WATCH's events ("schema"). */
constexpr int kSchema = 1;

/** \brief The verbs of the protocol. */
enum class Verb {
	Query,
	Set,
	Toggle,
	Status,
	Watch,
	Volume,
	Mute,
	Unmute,
	Controls,
};

/** \brief Largest number VOLUME parses (each direction's own limit is the device's). */
constexpr uint32_t kMaxVolumeWord = 1000;

/** \brief One parsed request. */
struct Request {
	Verb verb = Verb::Query;
	/** \brief SET and TOGGLE: the direction. */
	Direction direction = Direction::Output;
	/** \brief SET: the new state. */
	bool on = false;
	/** \brief VOLUME: the volume in percent. */
	uint32_t percent = 0;

	bool operator==(const Request &) const = default;
};

/** \brief An `ERR` reply: its code and reason. */
struct Error {
	int code = 400;
	std::string reason;

	bool operator==(const Error &) const = default;
};

/** \brief Parse one request line (no newline; a trailing '\r' is ignored). */
std::variant<Request, Error> parse_request(std::string_view line);

/** \brief The line (without newline) that parse_request() turns into \a request. */
std::string format_request(const Request &request);

/** \brief One reply line, parsed: either OK and its text, or an Error. */
struct Reply {
	/** \brief Set for `OK <text>`: the text after "OK " (may be empty). */
	std::optional<std::string> ok;
	/** \brief Set for `ERR <code> <reason>`. */
	std::optional<Error> error;
};

/**
 * \brief Parse a reply line. Nothing when the line is neither `OK …` nor a
 * well-formed `ERR <code> <reason>` (an event line, or garbage).
 */
std::optional<Reply> parse_reply(std::string_view line);

/** \brief `OK <text>` (just `OK` for an empty text). */
std::string format_ok(std::string_view text);
/** \brief `ERR <code> <reason>`. */
std::string format_error(const Error &error);

/** \brief The reply to a line longer than kMaxLine. */
std::string line_too_long();
/** \brief The reply to a client over the limit, sent before closing it. */
std::string too_many_clients();

/** \brief "output" / "input" (case-insensitive) as a Direction. */
std::optional<Direction> parse_direction(std::string_view word);
/** \brief "40%" or "40" (0 .. kMaxVolumeWord) as a percentage. */
std::optional<uint32_t> parse_percent(std::string_view word);
/** \brief "on" / "off" (case-insensitive). */
std::optional<bool> parse_on_off(std::string_view word);
/** \brief "on" or "off". */
constexpr std::string_view on_off(bool on)
{
	return on ? "on" : "off";
}

} // namespace vhost_sound::control
