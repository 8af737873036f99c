/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Target 5, the control socket's grammar from both ends: every line of the
 * input as a request (what a local user sends the daemon) and as a reply
 * or event (what vhostctl reads from whatever answers on the socket), and
 * a JSON line through the text vhostctl prints for STATUS and WATCH.
 * A parsed request or reply must survive its own formatter unchanged; a
 * refused request must say why; a JSON document of the wrong shape may
 * only throw the formatters' documented std::runtime_error, which vhostctl
 * reports, with a message.
 */
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>

#include "control/control_protocol.h"
#include "control/status_text.h"

namespace control = vhost_sound::control;

namespace {

[[noreturn]] void fail(const char *what, std::string_view line)
{
	std::fprintf(stderr, "fuzz: %s: \"%.*s\"\n", what, int(line.size()), line.data());
	std::abort();
}

void request(std::string_view line)
{
	const auto parsed = control::parse_request(line);
	if (const auto *req = std::get_if<control::Request>(&parsed)) {
		const auto again = control::parse_request(control::format_request(*req));
		const auto *req2 = std::get_if<control::Request>(&again);
		if (!req2 || !(*req2 == *req))
			fail("a request changed through format_request()", line);
	} else {
		const auto &err = std::get<control::Error>(parsed);
		if (err.code < 400 || err.code > 599 || err.reason.empty())
			fail("a refused request without a 4xx/5xx code and a reason", line);
	}
}

void reply(std::string_view line)
{
	const auto parsed = control::parse_reply(line);
	if (!parsed)
		return;
	if (parsed->ok.has_value() == parsed->error.has_value())
		fail("a reply that is neither OK nor ERR, or both", line);
	if (parsed->ok) {
		const auto again = control::parse_reply(control::format_ok(*parsed->ok));
		if (!again || again->ok != parsed->ok)
			fail("an OK reply changed through format_ok()", line);
	} else {
		const auto again = control::parse_reply(control::format_error(*parsed->error));
		if (!again || !again->error || !(*again->error == *parsed->error))
			fail("an ERR reply changed through format_error()", line);
	}
}

void printed(std::string_view line)
{
	if (line.rfind("OK ", 0) == 0)
		line.remove_prefix(3);
	const auto doc = nlohmann::json::parse(line, nullptr, false);
	if (doc.is_discarded())
		return;
	for (auto format : { control::format_status_table, control::format_event,
			     control::format_controls_table }) {
		try {
			(void)format(doc);
		} catch (const std::runtime_error &e) {
			if (!*e.what())
				fail("a refused JSON document without a message", line);
		}
	}
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view input(reinterpret_cast<const char *>(data), size);
	while (!input.empty()) {
		const size_t nl = input.find('\n');
		const std::string_view line = input.substr(0, nl);
		input.remove_prefix(nl == std::string_view::npos ? input.size() : nl + 1);
		/* The daemon refuses longer lines before parsing them. */
		if (line.size() <= control::kMaxLine)
			request(line);
		reply(line);
		printed(line);
	}
	return 0;
}
