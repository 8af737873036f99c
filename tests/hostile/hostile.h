/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The frame every hostile-input test runs in: a server with a pattern
 * device on its own thread, the library's log, the process's fds and guest
 * memory mappings counted before, and at the end a fresh front-end that
 * must still be served and counts that must be back where they started.
 */
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <thread>

#include <vhostpp/internal/connection.h>
#include <vhostpp/frontend/device_driver.h>
#include <vhostpp/internal/wire.h>
#include <vhostpp/frontend/testing.h>

#include "driver_util.h"
#include "fd_util.h"
#include "test_server.h"

namespace vhostpp::test {

using wire::ProtocolFeature;
using wire::Request;
namespace vf = wire::virtio_feature;

/** \brief Poll \a pred until it holds or \a timeout_ms pass (for state with no fd to wait on). */
template<typename Pred>
bool wait_until(Pred pred, int timeout_ms = 3000)
{
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	while (!pred()) {
		if (std::chrono::steady_clock::now() >= deadline)
			return false;
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}
	return true;
}

/**
 * \brief Wait until the peer has read everything sent on \a sock (SIOCOUTQ
 * is 0), so the next bytes sent arrive in a separate read.
 */
inline bool wait_consumed(int sock, int timeout_ms = 3000)
{
	return wait_until(
		[&] {
			int pending = 0;
			return ::ioctl(sock, SIOCOUTQ, &pending) == 0 && pending == 0;
		},
		timeout_ms);
}

/** \brief Header and payload of a message as bytes. */
inline std::vector<uint8_t> encode(const wire::Header &h, std::span<const uint8_t> payload)
{
	std::vector<uint8_t> out(sizeof(h) + payload.size());
	std::memcpy(out.data(), &h, sizeof(h));
	if (!payload.empty())
		std::memcpy(out.data() + sizeof(h), payload.data(), payload.size());
	return out;
}

template<typename T>
std::vector<uint8_t> bytes_of(const T &v)
{
	auto s = wire::as_bytes(v);
	return {s.begin(), s.end()};
}

class Hostile
{
public:
	explicit Hostile(Device &device)
		: server(device), log(LogCapture::get()), mark(log.mark()),
		  fds_before(count_open_fds()), maps_before(count_mappings("memfd:"))
	{
	}

	/** \brief A front-end through QEMU's start-up (REPLY_ACK unless masked out). */
	std::unique_ptr<DeviceDriver> driver(DeviceDriver::Options o = one_queue())
	{
		return std::make_unique<DeviceDriver>(server.path(), std::move(o));
	}
	std::unique_ptr<DeviceDriver> driver_without_ack()
	{
		auto o = one_queue();
		o.protocol_features = ~wire::bit(ProtocolFeature::ReplyAck);
		return driver(std::move(o));
	}

	/** \brief A line naming all of \a needles was logged (as a warning or error). */
	void expect_log(std::initializer_list<std::string_view> needles, int timeout_ms = 3000)
	{
		auto line = log.wait_for(mark, needles, timeout_ms);
		std::string wanted;
		for (auto n : needles)
			wanted += "[" + std::string(n) + "] ";
		INFO("expected a log line with " << wanted);
		CHECK(line.has_value());
		if (!line)
			FAIL_CHECK("log (info and above) was:\n" << log.dump(mark, vhostpp::LogLevel::Info));
	}

	/**
	 * \brief Send \a code with NEED_REPLY and \a body, \a fds attached;
	 * return the REPLY_ACK status.
	 */
	static uint64_t ack_of(Frontend &fe, Request code, std::span<const uint8_t> body,
			       std::span<const int> fds = {})
	{
		testing::send(fe, wire::make_request(code, body, wire::kFlagNeedReply), fds);
		auto reply = testing::receive_reply(fe, code, 8);
		uint64_t status;
		std::memcpy(&status, reply.data(), 8);
		return status;
	}

	/** \brief The request was refused with an error reply. */
	static void expect_nack(Frontend &fe, Request code, std::span<const uint8_t> body,
				std::span<const int> fds = {})
	{
		INFO(wire::request_name(uint32_t(code)));
		CHECK(ack_of(fe, code, body, fds) != 0);
	}

	/** \brief The server closed the connection. */
	void expect_closed(Frontend &fe)
	{
		CHECK(fe.wait_closed(3000));
	}

	/** \brief The server serves a fresh front-end: full start-up and data. */
	void expect_serves()
	{
		auto d = driver();
		auto &q = d->queue(0);
		uint64_t buf = d->memory().allocate(64);
		DriverBuffer b{buf, 64, true};
		q.add({&b, 1});
		q.kick();
		auto used = q.wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->len == 64);
	}

	/** \brief End of test: still serving, every connection gone, nothing leaked. */
	void finish()
	{
		expect_serves();
		bool idle = wait_until([&] { return server.connections() == server.disconnects(); });
		CHECK(idle);
		CHECK(count_open_fds() == fds_before);
		CHECK(count_mappings("memfd:") == maps_before);
	}

	TestServer server;
	LogCapture &log;
	size_t mark;
	size_t fds_before;
	size_t maps_before;
};

/** \brief \a n watched fds to pass along, as a vector of raw numbers. */
struct Watches {
	explicit Watches(size_t n) : w(n) {}
	std::vector<int> fds() const
	{
		std::vector<int> out;
		for (const auto &x : w)
			out.push_back(x.fd());
		return out;
	}
	/** \brief Drop our copies and check the server closed its copies. */
	void expect_closed()
	{
		for (auto &x : w)
			x.drop_own();
		for (auto &x : w)
			CHECK(x.closed_everywhere());
	}
	std::vector<FdWatch> w;
};

} // namespace vhostpp::test
