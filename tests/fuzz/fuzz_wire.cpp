/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Target 1, the wire layer: a header, a payload and a fuzzer-chosen number
 * of real fds go through check_header() and parse_request(), the only code
 * that interprets front-end bytes. Whatever it decides, it must not crash,
 * read past the payload, or keep any fd it was given.
 *
 * Input: [fd count (low 4 bits)] [12-byte header] [payload ...]
 */
#include <sys/eventfd.h>
#include <unistd.h>

#include <vhostpp/log.h>
#include <vhostpp/internal/wire.h>

#include "fuzz_input.h"

using namespace vhostpp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const bool quiet = [] {
		fuzz::route_library_log();
		return true;
	}();
	(void)quiet;

	fuzz::Input in(data, size);
	const unsigned nfds = in.take<uint8_t>() & 0x0f;
	const auto header = in.take<wire::Header>();
	const auto payload = in.rest();

	std::vector<UniqueFd> fds;
	std::vector<int> numbers;
	for (unsigned i = 0; i < nfds; i++) {
		const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			std::abort();
		numbers.push_back(fd);
		fds.emplace_back(fd);
	}

	try {
		wire::check_header(header);
		/* As the connection does: the header promised size bytes of payload. */
		if (payload.size() >= header.size) {
			auto request = wire::parse_request(header, payload.first(header.size), std::move(fds));
			(void)request;
		}
	} catch (const wire::ProtocolError &) {
		/* A refusal naming the message is the expected outcome for most inputs. */
	}
	fds.clear();
	fuzz::expect_closed(numbers, "parse_request");
	return 0;
}
