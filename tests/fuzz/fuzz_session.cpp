/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Target 2, a whole session: a stream of vhost-user messages, with real
 * memfds, eventfds, pipes and sockets attached where the fuzzer says, goes
 * over a real Unix socket into a Server serving a small device; eventfds
 * the fuzzer sent can be signalled (kicks). Everything runs on one
 * io_context that is only ever poll()ed, so the harness cannot hang; after
 * the stream the front-end leaves and the process must hold exactly the
 * fds and mappings it held before.
 *
 * Records, until the input ends:
 *   kind:u8            kind % 4 == 3: signal one of the eventfds sent so far
 *                        idx:u8
 *                      otherwise a message:
 *   code:u8            0xff means 0xffffffff; others are taken as they are
 *   flags:u8           the header's flags byte, as is
 *   size:u16           0xffff: the payload's own length; else this size
 *   len:u16 payload    (len capped at 1024)
 *   nfds:u8            low 4 bits: fd count; then per fd:
 *     fd_kind:u8       % 4: 0 memfd, 1 eventfd, 2 pipe read end, 3 socket
 *     for a memfd: pages:u8 (x 4 KiB), clen:u16, contents (written at 0)
 */
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <csignal>
#include <deque>
#include <filesystem>
#include <fstream>
#include <string>

#include <vhostpp/connection.h>
#include <vhostpp/device.h>
#include <vhostpp/log.h>
#include <vhostpp/server.h>
#include <vhostpp/virtqueue.h>

#include "fuzz_input.h"

using namespace vhostpp;

namespace {

/*
 * Two queues: queue 0 completes every chain at once; queue 1 completes in
 * order and holds up to four chains until the next kick, so ring stops
 * with chains in flight (and their rewind) are reachable.
 */
class FuzzDevice : public Device
{
public:
	unsigned num_queues() const override { return 2; }
	uint16_t max_queue_size(unsigned) const override { return 256; }
	bool queue_in_order(unsigned queue) const override { return queue == 1; }
	uint32_t config_size() const override { return sizeof(config_); }
	bool read_config(uint32_t offset, std::span<uint8_t> out) override
	{
		std::memcpy(out.data(), config_ + offset, out.size());
		return true;
	}
	bool write_config(uint32_t offset, std::span<const uint8_t> in) override
	{
		std::memcpy(config_ + offset, in.data(), in.size());
		return true;
	}

	void queue_kicked(Virtqueue &queue) override
	{
		auto &held = held_[queue.index() & 1];
		while (!held.empty()) {
			queue.push(held.front(), 1);
			held.pop_front();
		}
		for (int n = 0; n < 64; n++) {
			auto chain = queue.pop();
			if (!chain)
				break;
			scratch_.resize(std::min<size_t>(chain->readable_bytes(), 1 << 16));
			chain->read(0, scratch_);
			const size_t written = chain->fill(0, 0x5a, std::min<size_t>(chain->writable_bytes(), 1 << 16));
			if (queue.index() == 1 && held.size() < 4)
				held.push_back(std::move(*chain));
			else
				queue.push(*chain, static_cast<uint32_t>(written));
		}
		queue.notify();
	}

	void queue_stopped(Virtqueue &queue) override { held_[queue.index() & 1].clear(); }
	void reset() override
	{
		for (auto &held : held_)
			held.clear();
		std::memset(config_, 0, sizeof(config_));
	}

private:
	uint8_t config_[16]{};
	std::deque<DescriptorChain> held_[2];
	std::vector<uint8_t> scratch_;
};

size_t count_entries(const char *dir)
{
	size_t n = 0;
	for ([[maybe_unused]] const auto &entry : std::filesystem::directory_iterator(dir))
		n++;
	return n;
}

size_t count_mappings()
{
	std::ifstream maps("/proc/self/maps");
	size_t n = 0;
	for (std::string line; std::getline(maps, line);)
		n++;
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

UniqueFd make_fd(fuzz::Input &in, std::vector<UniqueFd> &eventfds)
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

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const std::string path = [] {
		/* A back-end that hangs up must not kill the harness on our next send. */
		std::signal(SIGPIPE, SIG_IGN);
		fuzz::route_library_log();
		return "/tmp/vhostpp-fuzz-session-" + std::to_string(::getpid()) + ".sock";
	}();

	const size_t fds_before = count_entries("/proc/self/fd");
	const size_t maps_before = count_mappings();
	{
		boost::asio::io_context io;
		FuzzDevice device;
		Server server(io, device);
		server.listen(path);

		UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
		sockaddr_un addr{};
		addr.sun_family = AF_UNIX;
		std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
		if (::connect(client.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
			std::abort();
		pump(io);

		fuzz::Input in(data, size);
		std::vector<UniqueFd> eventfds;
		while (!in.empty()) {
			const uint8_t kind = in.take<uint8_t>();
			if (kind % 4 == 3) {
				const uint8_t idx = in.take<uint8_t>();
				if (!eventfds.empty())
					EventFd(eventfds[idx % eventfds.size()].duplicate()).signal();
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
					fds.push_back(make_fd(in, eventfds));

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
	return 0;
}
