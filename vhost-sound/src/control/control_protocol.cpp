/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "control/control_protocol.h"

#include <boost/algorithm/string/classification.hpp>
#include <boost/algorithm/string/predicate.hpp>
#include <boost/algorithm/string/split.hpp>
#include <charconv>
#include <fmt/format.h>
#include <vector>

namespace vhost_sound::control {

namespace {

/* Words separated by spaces and tabs; empty words dropped. */
std::vector<std::string_view> words(std::string_view line)
{
	std::vector<std::string_view> out;
	boost::algorithm::split(out, line, boost::algorithm::is_any_of(" \t"),
				boost::algorithm::token_compress_on);
	std::erase_if(out, [](std::string_view w) { return w.empty(); });
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

Error bad(std::string reason)
{
	return { 400, std::move(reason) };
}

Error too_long()
{
	return { 413, fmt::format("line longer than {} bytes", kMaxLine) };
}

} // namespace

std::optional<Direction> parse_direction(std::string_view word)
{
	if (boost::algorithm::iequals(word, "output"))
		return Direction::Output;
	if (boost::algorithm::iequals(word, "input"))
		return Direction::Input;
	return std::nullopt;
}

std::optional<uint32_t> parse_percent(std::string_view word)
{
	if (!word.empty() && word.back() == '%')
		word.remove_suffix(1);
	uint32_t value = 0;
	const char *end = word.data() + word.size();
	const auto [ptr, ec] = std::from_chars(word.data(), end, value);
	if (word.empty() || ec != std::errc() || ptr != end || value > kMaxVolumeWord)
		return std::nullopt;
	return value;
}

std::optional<bool> parse_on_off(std::string_view word)
{
	if (boost::algorithm::iequals(word, "on"))
		return true;
	if (boost::algorithm::iequals(word, "off"))
		return false;
	return std::nullopt;
}

std::variant<Request, Error> parse_request(std::string_view line)
{
	if (line.size() > kMaxLine)
		return too_long();
	if (!line.empty() && line.back() == '\r')
		line.remove_suffix(1);

	const auto w = words(line);
	if (w.empty())
		return bad("empty request");

	struct VerbInfo {
		std::string_view name;
		Verb verb;
		size_t args;
		std::string_view usage;
	};
	static constexpr VerbInfo kVerbs[] = {
		{ "QUERY", Verb::Query, 0, "usage: QUERY" },
		{ "SET", Verb::Set, 2, "usage: SET <output|input> <on|off>" },
		{ "TOGGLE", Verb::Toggle, 1, "usage: TOGGLE <output|input>" },
		{ "STATUS", Verb::Status, 0, "usage: STATUS" },
		{ "WATCH", Verb::Watch, 0, "usage: WATCH" },
		{ "VOLUME", Verb::Volume, 2, "usage: VOLUME <output|input> <N>%" },
		{ "MUTE", Verb::Mute, 1, "usage: MUTE <output|input>" },
		{ "UNMUTE", Verb::Unmute, 1, "usage: UNMUTE <output|input>" },
		{ "CONTROLS", Verb::Controls, 0, "usage: CONTROLS" },
	};
	const VerbInfo *info = nullptr;
	for (const VerbInfo &v : kVerbs) {
		if (boost::algorithm::iequals(w[0], v.name))
			info = &v;
	}
	if (!info)
		return bad(fmt::format("unknown verb '{}' (QUERY, SET, TOGGLE, STATUS, WATCH, VOLUME, "
				       "MUTE, UNMUTE, CONTROLS)",
				       printable(w[0])));
	if (w.size() != info->args + 1)
		return bad(std::string(info->usage));

	Request request;
	request.verb = info->verb;
	if (info->args >= 1) {
		const auto direction = parse_direction(w[1]);
		if (!direction)
			return bad(fmt::format("unknown stream '{}' (output, input)", printable(w[1])));
		request.direction = *direction;
	}
	if (info->verb == Verb::Volume) {
		const auto percent = parse_percent(w[2]);
		if (!percent)
			return bad(fmt::format("volume '{}' is not a percentage such as 40%",
					       printable(w[2])));
		request.percent = *percent;
	} else if (info->args >= 2) {
		const auto on = parse_on_off(w[2]);
		if (!on)
			return bad(fmt::format("unknown value '{}' (on, off)", printable(w[2])));
		request.on = *on;
	}
	return request;
}

std::string format_request(const Request &request)
{
	const auto direction = virtio_snd::direction_name(request.direction);
	switch (request.verb) {
	case Verb::Query:
		return "QUERY";
	case Verb::Set:
		return fmt::format("SET {} {}", direction, on_off(request.on));
	case Verb::Toggle:
		return fmt::format("TOGGLE {}", direction);
	case Verb::Status:
		return "STATUS";
	case Verb::Watch:
		return "WATCH";
	case Verb::Volume:
		return fmt::format("VOLUME {} {}%", direction, request.percent);
	case Verb::Mute:
		return fmt::format("MUTE {}", direction);
	case Verb::Unmute:
		return fmt::format("UNMUTE {}", direction);
	case Verb::Controls:
		return "CONTROLS";
	}
	return "QUERY";
}

std::optional<Reply> parse_reply(std::string_view line)
{
	/* Every trailing CR goes, not one: a reply text ending in CR could not
	 * survive format_ok() and a second parse otherwise (found by the
	 * control fuzzer). */
	while (!line.empty() && line.back() == '\r')
		line.remove_suffix(1);
	Reply reply;
	if (line == "OK" || line.starts_with("OK ")) {
		reply.ok = std::string(line.substr(std::min<size_t>(3, line.size())));
		return reply;
	}
	if (!line.starts_with("ERR "))
		return std::nullopt;
	line.remove_prefix(4);
	int code = 0;
	const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), code);
	if (ec != std::errc() || end == line.data() || code < 100 || code > 999)
		return std::nullopt;
	std::string_view reason(end, line.data() + line.size() - end);
	if (!reason.empty() && reason.front() == ' ')
		reason.remove_prefix(1);
	reply.error = Error{ code, std::string(reason) };
	return reply;
}

std::string format_ok(std::string_view text)
{
	return text.empty() ? std::string("OK") : fmt::format("OK {}", text);
}

std::string format_error(const Error &error)
{
	return fmt::format("ERR {} {}", error.code, error.reason);
}

std::string line_too_long()
{
	return format_error(too_long());
}

std::string too_many_clients()
{
	return format_error({ 503, "too many clients" });
}

} // namespace vhost_sound::control
