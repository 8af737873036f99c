/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The device's lifecycle as device.h documents it (attach, queue start and
 * stop, reset, detach), DeviceContext's services (io(), set_needs_reset()),
 * a server on an already connected socket, and a front-end that never
 * reads its replies.
 */
#include <catch2/catch.hpp>

#include <chrono>
#include <fcntl.h>
#include <unistd.h>
#include <cstdio>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>

#include <vhostpp/frontend/device_driver.h>
#include <vhostpp/internal/connection.h>
#include <vhostpp/internal/wire.h>

#include "driver_util.h"
#include "test_server.h"

using namespace vhostpp;
using namespace vhostpp::test;

namespace {

/* A device that keeps its DeviceContext so the test can use it. */
class ContextDevice : public PatternDevice
{
public:
	ContextDevice() : PatternDevice(1, 8) {}
	void attach(DeviceContext &context) override
	{
		PatternDevice::attach(context);
		context_ = &context;
	}
	void detach() override
	{
		PatternDevice::detach();
		context_ = nullptr;
	}
	DeviceContext *context_ = nullptr;
};

/* Two connected Unix stream sockets. */
std::pair<UniqueFd, UniqueFd> socket_pair()
{
	int sv[2];
	REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

/* QEMU's start-up sequence's first step on a raw socket: GET_FEATURES. */
std::vector<uint8_t> get_features_requests(size_t count)
{
	auto one = message_bytes(wire::make_request(wire::Request::GetFeatures, {}));
	std::vector<uint8_t> bytes;
	for (size_t i = 0; i < count; i++)
		bytes.insert(bytes.end(), one.begin(), one.end());
	return bytes;
}

} // namespace

TEST_CASE("QMP stop and cont stop and start queues; SET_STATUS 0 resets; quitting detaches",
	  "[integration][lifecycle]")
{
	PatternDevice device(2, 8);
	TestServer server(device);
	DeviceDriver::Options options;
	options.queue_sizes = {16, 16};
	{
		DeviceDriver d(server.path(), options);
		auto &fe = d.frontend();
		CHECK(device.attaches == 1);
		CHECK(device.started == 2);

		/* QMP stop: SET_VRING_ENABLE 0 and GET_VRING_BASE per queue. */
		d.stop();
		CHECK(device.stopped == 2);
		CHECK(device.resets == 0);
		CHECK(device.detaches == 0);

		/* QMP cont: SET_FEATURES, GET_STATUS, then each queue again. */
		fe.set_features(d.features());
		(void)fe.get_status();
		for (size_t i = 0; i < d.queue_count(); i++)
			fe.setup_queue(d.queue(i));
		CHECK(device.started == 4);
		uint64_t offset = device.produced;
		CHECK(read_pattern(d.queue(0), d.memory(), offset, 64));

		/* The guest driver resets the device. */
		fe.set_status(0);
		CHECK(device.stopped == 4);
		CHECK(device.resets == 1);
		CHECK(device.detaches == 0);
		CHECK(server.connected());
	}
	/* QEMU quits. */
	REQUIRE(server.wait_disconnects(1));
	CHECK(device.detaches == 1);
	CHECK(device.resets == 1);
	CHECK(device.attaches == 1);
}

TEST_CASE("DeviceContext::io() is the server's loop", "[integration][lifecycle]")
{
	ContextDevice device;
	TestServer server(device);
	DeviceDriver d(server.path(), one_queue(16));
	CHECK(server.run([&] { return &device.context_->io(); }) == &server.io());
}

TEST_CASE("set_needs_reset() shows in GET_STATUS and sends CONFIG_CHANGE_MSG",
	  "[integration][lifecycle]")
{
	ContextDevice device;
	TestServer server(device);
	DeviceDriver d(server.path(), one_queue(16));
	auto &fe = d.frontend();
	REQUIRE(d.protocol_features() & wire::bit(wire::ProtocolFeature::Status));
	fe.set_status(0x0f);
	CHECK(fe.get_status() == 0x0f);

	SECTION("without a back-end channel: the status only")
	{
		server.run([&] { device.context_->set_needs_reset(); });
		CHECK(fe.get_status() == (0x0f | wire::kStatusNeedsReset));
	}
	SECTION("with a back-end channel: and a config change notification")
	{
		auto [ours, theirs] = socket_pair();
		fe.set_backend_req_fd(std::move(theirs));
		server.run([&] { device.context_->set_needs_reset(); });
		wire::Message msg = receive_message(ours.get(), 2000, MessageReader::Source::BackEnd);
		CHECK(msg.header.request ==
		      static_cast<uint32_t>(wire::BackendRequest::ConfigChangeMsg));
		CHECK(fe.get_status() == (0x0f | wire::kStatusNeedsReset));
	}
	/* The driver writing its own bits leaves the device's. */
	fe.set_status(0x0f);
	CHECK(fe.get_status() == (0x0f | wire::kStatusNeedsReset));
	/* The driver resets the device: the bit goes with it. */
	fe.set_status(0);
	CHECK(fe.get_status() == 0);
	CHECK(device.resets == 1);
}

TEST_CASE("a server serves an already connected socket", "[integration][server]")
{
	PatternDevice device;
	TestServer server(device);
	auto [ours, theirs] = socket_pair();
	server.run([&, fd = std::move(theirs)]() mutable { server.server().serve_connected(std::move(fd)); });
	{
		DeviceDriver d(std::move(ours), one_queue(16));
		uint64_t offset = 0;
		CHECK(read_pattern(d.queue(0), d.memory(), offset, 256));
		/* One front-end at a time, whichever way it came. */
		auto [a, b] = socket_pair();
		CHECK_THROWS_AS(server.run([&, fd = std::move(b)]() mutable {
					server.server().serve_connected(std::move(fd));
				}),
				std::runtime_error);
	}
	REQUIRE(server.wait_disconnects(1));
	CHECK(device.detaches == 1);
	/* The listening socket still serves the next front-end. */
	DeviceDriver d(server.path(), one_queue(16));
	uint64_t offset = device.produced;
	CHECK(read_pattern(d.queue(0), d.memory(), offset, 64));
	CHECK(server.connections() == 2);
}

TEST_CASE("serve_connected() refuses what is not a connected Unix stream socket",
	  "[integration][server]")
{
	PatternDevice device;
	TestServer server(device);
	int p[2];
	REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
	UniqueFd keep(p[1]);
	CHECK_THROWS_WITH(server.run([&] { server.server().serve_connected(UniqueFd(p[0])); }),
			  Catch::Contains("not a Unix stream socket"));
	UniqueFd unconnected(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	CHECK_THROWS_WITH(server.run([&] { server.server().serve_connected(std::move(unconnected)); }),
			  Catch::Contains("not connected"));
	CHECK_FALSE(server.connected());
}

TEST_CASE("a front-end that never reads its replies is dropped; the server goes on",
	  "[integration][server][hostile]")
{
	PatternDevice device;
	ServerOptions options;
	auto &log = LogCapture::get();

	SECTION("too many bytes unread")
	{
		options.max_unsent_bytes = 4096;
		TestServer server(device, options);
		size_t mark = log.mark();
		{
			Frontend greedy = Frontend::connect(server.path());
			auto batch = get_features_requests(256);
			/* Send until the server hangs up (EPIPE): it must, long before
			 * this bound, whatever the socket buffers hold. */
			bool dropped = false;
			for (int i = 0; i < 4000 && !dropped; i++) {
				try {
					send_bytes(greedy.socket(), batch, {}, 2000);
				} catch (const std::system_error &) {
					dropped = true;
				}
			}
			CHECK(dropped);
			REQUIRE(server.wait_disconnects(1));
			CHECK(log.wait_for(mark, {"replies unread"}, 3000, LogLevel::Error));
		}
		DeviceDriver d(server.path(), one_queue(16));
		uint64_t offset = device.produced;
		CHECK(read_pattern(d.queue(0), d.memory(), offset, 64));
	}
	SECTION("replies unread for too long")
	{
		options.max_unsent_bytes = 16 << 20;
		options.unsent_timeout_ms = 300;
		TestServer server(device, options);
		size_t mark = log.mark();
		Frontend greedy = Frontend::connect(server.path());
		/* More replies than the socket buffers hold (20 bytes each). */
		auto batch = get_features_requests(1024);
		try {
			for (int i = 0; i < 40; i++)
				send_bytes(greedy.socket(), batch, {}, 2000);
		} catch (const std::system_error &) {
			/* Dropped while still sending (a slow machine): fine too. */
		}
		auto t0 = std::chrono::steady_clock::now();
		REQUIRE(server.wait_disconnects(1, 5000));
		CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(4));
		CHECK(log.wait_for(mark, {"did not read"}, 3000, LogLevel::Error));
		/* Meanwhile and afterwards the loop serves others. */
		DeviceDriver d(server.path(), one_queue(16));
		uint64_t offset = device.produced;
		CHECK(read_pattern(d.queue(0), d.memory(), offset, 64));
	}
}

TEST_CASE("accept errors back off on a timer instead of spinning", "[integration][server]")
{
	PatternDevice device;
	TestServer server(device);
	auto &log = LogCapture::get();

	/* The client's socket first: connect() needs no new fd, accept() does. */
	UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	REQUIRE(client.valid());
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", server.path().c_str());

	rlimit old{};
	REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
	std::vector<UniqueFd> filler;
	{
		/* A low limit, then every fd under it taken: accept() gets EMFILE. */
		rlimit low = old;
		low.rlim_cur = 256;
		REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
		while (true) {
			UniqueFd fd(::fcntl(0, F_DUPFD_CLOEXEC, 0));
			if (!fd)
				break;
			filler.push_back(std::move(fd));
		}
	}
	size_t mark = log.mark();
	REQUIRE(::connect(client.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0);
	std::this_thread::sleep_for(std::chrono::milliseconds(500));
	size_t failures = 0;
	for (const auto &line : log.since(mark))
		failures += line.text.find("accept failed") != std::string::npos;
	/* 10, 20, 40, 80, 160 ms...: a handful in half a second, not thousands. */
	CHECK(failures >= 1);
	CHECK(failures <= 8);

	filler.clear();
	REQUIRE(::setrlimit(RLIMIT_NOFILE, &old) == 0);
	/* Once fds are back, the waiting front-end is served. */
	Frontend fe(std::move(client));
	CHECK(fe.get_features() != 0);
}

TEST_CASE("a back-end channel nobody reads is dropped; the connection stays",
	  "[integration][server][hostile]")
{
	ContextDevice device;
	TestServer server(device);
	DeviceDriver d(server.path(), one_queue(16));
	auto &fe = d.frontend();
	auto &log = LogCapture::get();
	size_t mark = log.mark();
	auto [ours, theirs] = socket_pair();
	fe.set_backend_req_fd(std::move(theirs));

	/* 12 bytes each, never read: far more than the socket and 64 KiB hold.
	 * Each call returns at once (queued), so one loop turn sends them all. */
	CHECK(server.run([&] {
		for (int i = 0; i < 20000; i++)
			device.context_->notify_config_change();
		return true;
	}));
	CHECK(log.wait_for(mark, {"back-end channel", "unread"}, 3000, LogLevel::Error));
	CHECK_FALSE(server.run([&] { return device.context_->notify_config_change(); }));
	/* The front-end's own connection goes on. */
	CHECK(fe.get_status() == 0);
	uint64_t offset = device.produced;
	CHECK(read_pattern(d.queue(0), d.memory(), offset, 64));
	CHECK(server.connected());
}
