/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file session_harness.h
 * \brief Drives a vhost-user Server from fuzzer bytes: the record format of
 * the session targets (fuzz_session, fuzz_snd), shared by both.
 *
 * Records, until the input ends:
 *   kind:u8            kind % 8 == 3: signal one of the eventfds sent so far
 *                        idx:u8
 *                      kind % 8 == 7: the guest writes its memory (one of
 *                        the memfds sent so far) while the device runs:
 *                        idx:u8 offset:u32 len:u16 bytes
 *                      otherwise a message:
 *   code:u8            0xff means 0xffffffff; others are taken as they are
 *   flags:u8           the header's flags byte, as is
 *   size:u16           0xffff: the payload's own length; else this size
 *   len:u16 payload    (len capped at 1024)
 *   nfds:u8            low 4 bits: fd count; then per fd:
 *     fd_kind:u8       % 4: 0 memfd, 1 eventfd, 2 pipe read end, 3 socket
 *     for a memfd: pages:u8 (x 4 KiB), clen:u16, contents (written at 0)
 *
 * Everything runs on one io_context that is only ever poll()ed, so the
 * harness cannot hang; after the stream the front-end leaves and the
 * process must hold exactly the fds and guest mappings it held before.
 */
#pragma once

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include <vhostpp/internal/connection.h>
#include <vhostpp/device.h>
#include <vhostpp/server.h>

#include "fuzz_input.h"

namespace fuzz {

using namespace vhostpp;

namespace detail {

size_t count_entries(const char *dir)
{
	size_t n = 0;
	for ([[maybe_unused]] const auto &entry : std::filesystem::directory_iterator(dir))
		n++;
	return n;
}

/* Guest memory mappings: of the regions this harness sent (the allocator's
 * own mappings come and go under the sanitizers). */
size_t count_mappings()
{
	std::ifstream maps("/proc/self/maps");
	size_t n = 0;
	for (std::string line; std::getline(maps, line);)
		n += line.find("memfd:fuzz-region") != std::string::npos;
	return n;
}

/*
 * Run what is ready on the loop until it is idle. One message or kick
 * causes a handful of handlers; a loop that is still busy after thousands
 * is spinning (e.g. on a kick fd that never stops being readable): a hang
 * in a real daemon, so a finding here.
 */
void pump(boost::asio::io_context &io)
{
	io.restart();
	for (int i = 0; io.poll_one() > 0; i++) {
		if (i == 10000) {
			std::fprintf(stderr, "fuzz: the event loop never went idle (spinning)\n");
			std::abort();
		}
	}
}

/* Read and drop whatever the back-end sent, so its replies never block. */
void drain(int socket)
{
	uint8_t buf[4096];
	char control[CMSG_SPACE(sizeof(int) * 8)];
	for (;;) {
		iovec iov{ buf, sizeof(buf) };
		msghdr msg{};
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = control;
		msg.msg_controllen = sizeof(control);
		const ssize_t n = ::recvmsg(socket, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n <= 0)
			return;
		/* The back-end passes no fds to us today; close any it would. */
		for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				for (size_t i = 0; i < count; i++) {
					int fd;
					std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
					::close(fd);
				}
			}
		}
	}
}

UniqueFd make_fd(Input &in, std::vector<UniqueFd> &eventfds, std::vector<UniqueFd> &memfds)
{
	switch (in.take<uint8_t>() % 4) {
	case 0: {
		UniqueFd fd(::memfd_create("fuzz-region", MFD_CLOEXEC));
		const size_t bytes = size_t{in.take<uint8_t>()} * 4096;
		if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0)
			std::abort();
		const auto contents = in.bytes(std::min<size_t>(in.take<uint16_t>(), bytes));
		if (!contents.empty() && ::pwrite(fd.get(), contents.data(), contents.size(), 0) < 0)
			std::abort();
		memfds.push_back(fd.duplicate());
		return fd;
	}
	case 1: {
		UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
		eventfds.push_back(fd.duplicate());
		return fd;
	}
	case 2: {
		int p[2];
		if (::pipe2(p, O_CLOEXEC) != 0)
			std::abort();
		::close(p[1]);
		return UniqueFd(p[0]);
	}
	default: {
		int s[2];
		if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) != 0)
			std::abort();
		::close(s[1]);
		return UniqueFd(s[0]);
	}
	}
}

} // namespace detail

/**
 * \brief Serve the device \a make_device(io) builds to the records in
 * \a data; aborts on a leak or a spinning loop.
 */
template<typename MakeDevice>
void run_session(const uint8_t *data, size_t size, MakeDevice make_device)
{
	using namespace detail;
	static const bool sigpipe_ignored = [] {
		/* A back-end that hangs up must not kill the harness on our next send. */
		std::signal(SIGPIPE, SIG_IGN);
		return true;
	}();
	(void)sigpipe_ignored;

	const size_t fds_before = count_entries("/proc/self/fd");
	const size_t maps_before = count_mappings();
	{
		boost::asio::io_context io;
		std::shared_ptr<Device> holder = make_device(io);
		Device &device = *holder;
		Server server(io, device);
		/* A socketpair served directly: no socket path, no accept. */
		int pair[2];
		if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
			std::abort();
		UniqueFd client(pair[0]);
		server.serve_connected(UniqueFd(pair[1]));
		pump(io);

		Input in(data, size);
		std::vector<UniqueFd> eventfds;
		std::vector<UniqueFd> memfds;
		while (!in.empty()) {
			const uint8_t kind = in.take<uint8_t>();
			if (kind % 8 == 3) {
				const uint8_t idx = in.take<uint8_t>();
				if (!eventfds.empty())
					EventFd(eventfds[idx % eventfds.size()].duplicate()).signal();
			} else if (kind % 8 == 7) {
				const uint8_t idx = in.take<uint8_t>();
				const uint32_t offset = in.take<uint32_t>();
				const auto bytes = in.bytes(in.take<uint16_t>());
				if (!memfds.empty()) {
					const int fd = memfds[idx % memfds.size()].get();
					struct stat st {};
					if (::fstat(fd, &st) == 0 && st.st_size > 0) {
						const size_t at = offset % static_cast<size_t>(st.st_size);
						const size_t n = std::min<size_t>(bytes.size(), st.st_size - at);
						if (::pwrite(fd, bytes.data(), n, static_cast<off_t>(at)) < 0)
							std::abort();
					}
				}
			} else {
				const uint8_t code = in.take<uint8_t>();
				wire::Header header{};
				header.request = code == 0xff ? 0xffffffffu : code;
				header.flags = in.take<uint8_t>();
				const uint16_t size_field = in.take<uint16_t>();
				const auto payload = in.bytes(std::min<size_t>(in.take<uint16_t>(), 1024));
				header.size = size_field == 0xffff ? static_cast<uint32_t>(payload.size()) : size_field;
				std::vector<UniqueFd> fds;
				const unsigned nfds = in.take<uint8_t>() & 0x0f;
				for (unsigned i = 0; i < nfds; i++)
					fds.push_back(make_fd(in, eventfds, memfds));

				std::vector<uint8_t> bytes(sizeof(header) + payload.size());
				std::memcpy(bytes.data(), &header, sizeof(header));
				std::memcpy(bytes.data() + sizeof(header), payload.data(), payload.size());
				std::vector<int> raw;
				for (const auto &fd : fds)
					raw.push_back(fd.get());
				try {
					send_bytes(client.get(), bytes, raw, 0);
				} catch (const std::system_error &) {
					/* The back-end closed the connection (a refused request). */
					break;
				}
			}
			pump(io);
			drain(client.get());
		}
		client = UniqueFd();
		pump(io);
		server.stop();
		pump(io);
	}
	const size_t fds_after = count_entries("/proc/self/fd");
	const size_t maps_after = count_mappings();
	if (fds_after != fds_before || maps_after != maps_before) {
		std::fprintf(stderr, "fuzz: session leaked: fds %zu -> %zu, mappings %zu -> %zu\n",
			     fds_before, fds_after, maps_before, maps_after);
		std::abort();
	}
}

} // namespace fuzz
