/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * connection.h: framing, fd passing and their failure modes over a socketpair.
 */
#include <catch2/catch.hpp>

#include <cstring>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <system_error>
#include <vector>

#include <vhostpp/internal/connection.h>

#include "fd_util.h"

using namespace vhostpp;
using namespace vhostpp::test;
using Status = MessageReader::Status;

namespace {

std::vector<uint8_t> encode(const wire::Message &m)
{
	std::vector<uint8_t> out(sizeof(wire::Header) + m.payload.size());
	std::memcpy(out.data(), &m.header, sizeof(wire::Header));
	if (!m.payload.empty())
		std::memcpy(out.data() + sizeof(wire::Header), m.payload.data(), m.payload.size());
	return out;
}

void raw_send(int sock, std::span<const uint8_t> bytes, std::span<const int> fds = {})
{
	std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
	iovec iov{const_cast<uint8_t *>(bytes.data()), bytes.size()};
	msghdr mh{};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (!fds.empty()) {
		mh.msg_control = control.data();
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
		cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
		std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
	}
	REQUIRE(::sendmsg(sock, &mh, MSG_NOSIGNAL) == ssize_t(bytes.size()));
}

ino_t inode(int fd)
{
	struct stat st;
	REQUIRE(::fstat(fd, &st) == 0);
	return st.st_ino;
}

wire::Message features_request(uint64_t v = 0x1234)
{
	return wire::make_request(wire::Request::SetFeatures, wire::as_bytes(v));
}

} // namespace

TEST_CASE("a message with fds round-trips", "[connection]")
{
	auto [a, b] = socket_pair();
	EventFd e1 = EventFd::create(), e2 = EventFd::create();

	auto msg = wire::make_request(wire::Request::SetVringKick, wire::as_bytes(uint64_t{3}));
	msg.fds.push_back(e1.unique_fd().duplicate());
	msg.fds.push_back(e2.unique_fd().duplicate());
	send_message(a.get(), msg);

	auto got = receive_message(b.get(), 1000, MessageReader::Source::FrontEnd);
	CHECK(got.header.request == msg.header.request);
	CHECK(got.header.flags == msg.header.flags);
	CHECK(got.payload == msg.payload);
	REQUIRE(got.fds.size() == 2);
	CHECK(inode(got.fds[0].get()) == inode(e1.fd()));
	CHECK(inode(got.fds[1].get()) == inode(e2.fd()));
	/* Received fds are close-on-exec. */
	CHECK((::fcntl(got.fds[0].get(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("a message arriving one byte at a time", "[connection]")
{
	auto [a, b] = socket_pair();
	REQUIRE(::fcntl(b.get(), F_SETFL, O_NONBLOCK) == 0);
	auto bytes = encode(features_request(0xfeedface));
	FdWatch w;

	MessageReader reader(MessageReader::Source::FrontEnd);
	CHECK(reader.read_some(b.get()) == Status::NeedMore);
	CHECK_FALSE(reader.in_progress());
	for (size_t i = 0; i < bytes.size(); i++) {
		int fd = w.fd();
		/* The fd rides on the last byte, as a front-end may legally do. */
		raw_send(a.get(), {&bytes[i], 1}, i + 1 == bytes.size() ? std::span<const int>(&fd, 1)
									: std::span<const int>());
		auto s = reader.read_some(b.get());
		if (i + 1 < bytes.size()) {
			CHECK(s == Status::NeedMore);
			CHECK(reader.in_progress());
		} else {
			CHECK(s == Status::Complete);
		}
	}
	auto m = reader.take();
	CHECK(m.header.request == 2);
	CHECK(wire::payload_as<uint64_t>(m.payload) == std::optional<uint64_t>(0xfeedface));
	CHECK(m.fds.size() == 1);
	CHECK_FALSE(reader.in_progress());
	w.drop_own();
	m = {};
	CHECK(w.closed_everywhere(0));
}

TEST_CASE("several messages in one write", "[connection]")
{
	auto [a, b] = socket_pair();
	auto one = encode(features_request(1)), two = encode(features_request(2));
	auto three = encode(wire::make_request(wire::Request::GetFeatures, {}));
	std::vector<uint8_t> all;
	all.insert(all.end(), one.begin(), one.end());
	all.insert(all.end(), two.begin(), two.end());
	all.insert(all.end(), three.begin(), three.end());
	raw_send(a.get(), all);

	MessageReader reader(MessageReader::Source::FrontEnd);
	std::vector<uint32_t> codes;
	while (reader.read_some(b.get()) == Status::Complete)
		codes.push_back(reader.take().header.request);
	CHECK(codes == std::vector<uint32_t>{2, 2, 1});
}

TEST_CASE("orderly EOF between messages", "[connection]")
{
	auto [a, b] = socket_pair();
	send_message(a.get(), features_request());
	a.reset();
	MessageReader reader(MessageReader::Source::FrontEnd);
	CHECK(reader.read_some(b.get()) == Status::Complete);
	reader.take();
	CHECK(reader.read_some(b.get()) == Status::Closed);
	CHECK_THROWS_WITH(receive_message(b.get(), 100), Catch::Contains("closed"));
}

TEST_CASE("EOF inside a header", "[connection]")
{
	auto [a, b] = socket_pair();
	auto bytes = encode(features_request());
	raw_send(a.get(), std::span(bytes).first(5));
	a.reset();
	MessageReader reader(MessageReader::Source::FrontEnd);
	CHECK_THROWS_WITH(reader.read_some(b.get()), Catch::Contains("EOF after 5 of 12"));
	CHECK_FALSE(reader.in_progress());
}

TEST_CASE("EOF inside a payload closes the fds received so far", "[connection]")
{
	auto [a, b] = socket_pair();
	auto bytes = encode(features_request());
	FdWatch w;
	int fd = w.fd();
	raw_send(a.get(), std::span(bytes).first(15), {&fd, 1});
	w.drop_own();
	a.reset();
	MessageReader reader(MessageReader::Source::FrontEnd);
	CHECK_THROWS_WITH(reader.read_some(b.get()), Catch::Contains("SET_FEATURES") &&
							     Catch::Contains("EOF after 3 of 8"));
	CHECK(w.closed_everywhere(0));
}

TEST_CASE("a bad header is refused before any payload is awaited", "[connection]")
{
	auto [a, b] = socket_pair();
	REQUIRE(::fcntl(b.get(), F_SETFL, O_NONBLOCK) == 0);
	FdWatch w;
	int fd = w.fd();
	/* 4 GiB announced, nothing follows: the reader must not wait or allocate. */
	wire::Header h{static_cast<uint32_t>(wire::Request::SetMemTable), wire::kVersion, 0xffffffff};
	raw_send(a.get(), wire::as_bytes(h), {&fd, 1});
	w.drop_own();
	MessageReader reader(MessageReader::Source::FrontEnd);
	CHECK_THROWS_WITH(reader.read_some(b.get()), Catch::Contains("SET_MEM_TABLE"));
	CHECK(w.closed_everywhere(0));
}

TEST_CASE("too many fds: MSG_CTRUNC is an error and every fd is closed", "[connection]")
{
	for (size_t count : {9u, 32u, 253u}) {
		INFO(count);
		auto [a, b] = socket_pair();
		std::vector<FdWatch> watches(count);
		std::vector<int> fds;
		for (auto &w : watches)
			fds.push_back(w.fd());
		auto bytes = encode(features_request());
		raw_send(a.get(), bytes, fds);
		for (auto &w : watches)
			w.drop_own();

		MessageReader reader(MessageReader::Source::FrontEnd);
		CHECK_THROWS_WITH(reader.read_some(b.get()), Catch::Contains("truncated"));
		for (auto &w : watches)
			CHECK(w.closed_everywhere(0));
	}
}

TEST_CASE("fds spread over two chunks of one message are all kept", "[connection]")
{
	auto [a, b] = socket_pair();
	REQUIRE(::fcntl(b.get(), F_SETFL, O_NONBLOCK) == 0);
	auto bytes = encode(features_request());
	FdWatch w1, w2;
	int f1 = w1.fd(), f2 = w2.fd();
	raw_send(a.get(), std::span(bytes).first(12), {&f1, 1});
	MessageReader reader(MessageReader::Source::FrontEnd);
	CHECK(reader.read_some(b.get()) == Status::NeedMore);
	raw_send(a.get(), std::span(bytes).subspan(12), {&f2, 1});
	CHECK(reader.read_some(b.get()) == Status::Complete);
	CHECK(reader.take().fds.size() == 2);
}

TEST_CASE("send_bytes refuses more than 8 fds", "[connection]")
{
	auto [a, b] = socket_pair();
	std::vector<int> fds(9, a.get());
	uint8_t byte = 0;
	CHECK_THROWS_AS(send_bytes(a.get(), {&byte, 1}, fds), std::system_error);
}

TEST_CASE("receive_message times out", "[connection]")
{
	auto [a, b] = socket_pair();
	try {
		receive_message(b.get(), 50);
		FAIL("no timeout");
	} catch (const std::system_error &e) {
		CHECK(e.code().value() == ETIMEDOUT);
	}
}

TEST_CASE("send_message to a closed peer fails without SIGPIPE", "[connection]")
{
	auto [a, b] = socket_pair();
	b.reset();
	CHECK_THROWS_AS(send_message(a.get(), features_request()), std::system_error);
}

TEST_CASE("send_bytes waits while the socket is full", "[connection]")
{
	auto [a, b] = socket_pair();
	int small = 4096;
	::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	std::vector<uint8_t> big(1 << 20, 0x5a);
	/* Nobody reads: it must give up at the deadline rather than block forever. */
	try {
		send_bytes(a.get(), big, {}, 100);
		FAIL("no timeout");
	} catch (const std::system_error &e) {
		CHECK(e.code().value() == ETIMEDOUT);
	}
}

TEST_CASE("back-end source: version checked, size bounded", "[connection]")
{
	auto [a, b] = socket_pair();
	SECTION("a reply passes")
	{
		wire::Header h{1, wire::kVersion | wire::kFlagReply, 8};
		auto m = wire::make_reply(h, wire::as_bytes(uint64_t{7}));
		send_message(a.get(), m);
		auto got = receive_message(b.get(), 1000, MessageReader::Source::BackEnd);
		CHECK(got.header.flags == (wire::kVersion | wire::kFlagReply));
	}
	SECTION("bad version")
	{
		wire::Header h{1, 0x2 | wire::kFlagReply, 0};
		raw_send(a.get(), wire::as_bytes(h));
		CHECK_THROWS_WITH(receive_message(b.get(), 1000, MessageReader::Source::BackEnd),
				  Catch::Contains("version"));
	}
	SECTION("huge size")
	{
		wire::Header h{1, wire::kVersion | wire::kFlagReply, 1u << 30};
		raw_send(a.get(), wire::as_bytes(h));
		CHECK_THROWS_WITH(receive_message(b.get(), 1000, MessageReader::Source::BackEnd),
				  Catch::Contains("size"));
	}
}
