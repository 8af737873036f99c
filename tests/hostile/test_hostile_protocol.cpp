/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Hostile front-ends: classes 1-17, 26 and 27 of shared/hostile-inputs.md
 * (wire and framing, ring set-up, memory table, config, status, reset).
 *
 * Each TEST_CASE checks the refusal (error reply with REPLY_ACK, or the
 * connection closed), the log line naming the message and field, that every
 * fd passed was closed by the server, and that the server then serves a
 * fresh front-end with no fd or mapping left behind (Hostile::finish()).
 */
#include "hostile.h"

#include <fcntl.h>
#include <future>
#include <set>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>

using namespace vhostpp;
using namespace vhostpp::test;

namespace {

std::vector<uint8_t> single_region(const wire::MemoryRegion &r)
{
	return bytes_of(wire::SingleMemoryRegion{0, r});
}

std::vector<uint8_t> vring_state(uint32_t index, uint32_t num)
{
	return bytes_of(wire::VringState{index, num});
}

std::vector<uint8_t> config(uint32_t offset, uint32_t size, uint32_t flags, size_t data)
{
	std::vector<uint8_t> p(12 + data, 0);
	wire::ConfigHeader h{offset, size, flags};
	std::memcpy(p.data(), &h, 12);
	return p;
}

UniqueFd memfd(size_t size)
{
	UniqueFd fd(::memfd_create("hostile", MFD_CLOEXEC));
	REQUIRE(fd.valid());
	REQUIRE(::ftruncate(fd.get(), off_t(size)) == 0);
	return fd;
}

/* A buffer made available and kicked is not used within a short while. */
bool stays_unused(DriverQueue &q, DriverMemory &mem)
{
	uint64_t buf = mem.allocate(16);
	DriverBuffer b{buf, 16, true};
	q.add({&b, 1});
	q.kick();
	return !q.wait_used(200).has_value();
}

} // namespace

TEST_CASE("1: short header, EOF inside a payload, a message in several reads", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	SECTION("header shorter than 12 bytes, then EOF")
	{
		Watches w(1);
		{
			auto fe = Frontend::connect(h.server.path());
			wire::Header hdr{1, wire::kVersion, 0};
			testing::send_raw(fe, std::span(reinterpret_cast<const uint8_t *>(&hdr), 5), w.fds());
		}
		h.expect_log({"EOF after 5 of 12 header bytes"});
		w.expect_closed();
	}
	SECTION("EOF inside a payload")
	{
		Watches w(1);
		{
			auto d = h.driver();
			wire::Header hdr{uint32_t(Request::SetVringCall), wire::kVersion, 8};
			std::vector<uint8_t> part(3, 0);
			testing::send_raw(d->frontend(), encode(hdr, part), w.fds());
		}
		h.expect_log({"SET_VRING_CALL", "EOF after 3 of 8 payload bytes"});
		w.expect_closed();
	}
	SECTION("a message arriving in three reads")
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		wire::MemoryRegion r = d->memory().region();
		auto body = mem_table({&r, 1});
		auto bytes = encode({uint32_t(Request::SetMemTable), wire::kVersion | wire::kFlagNeedReply,
				     uint32_t(body.size())},
				    body);
		int fd = d->memory().fd().get();
		/* Each piece is read by the server before the next is sent. */
		testing::send_raw(fe, std::span(bytes).first(7), {&fd, 1});
		REQUIRE(wait_consumed(fe.socket()));
		testing::send_raw(fe, std::span(bytes).subspan(7, 20));
		REQUIRE(wait_consumed(fe.socket()));
		testing::send_raw(fe, std::span(bytes).subspan(27));
		auto reply = testing::receive_reply(fe, Request::SetMemTable, 8);
		CHECK(reply == bytes_of(uint64_t{0}));
		uint64_t offset = device.produced;
		CHECK(read_pattern(d->queue(0), d->memory(), offset, 100));
	}
	h.finish();
}

TEST_CASE("2: payload sizes no message of that code can have", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	struct Case {
		Request code;
		uint32_t size;
	};
	const Case cases[] = {
		{Request::SetMemTable, 0xffffffff}, /* 4 GiB */
		{Request::SetFeatures, 4097},
		{Request::SetVringAddr, 39},	    /* smaller than the struct */
		{Request::SetVringNum, 9},	    /* not the exact size */
		{Request::GetFeatures, 8},
		{Request::SetConfig, 11},
		{Request::GetConfig, 0x10000},
		{Request::AddMemReg, 0x80000000},
	};
	for (const auto &c : cases) {
		std::string name(wire::request_name(uint32_t(c.code)));
		INFO(name << " size " << c.size);
		Watches w(1);
		{
			auto d = h.driver();
			wire::Header hdr{uint32_t(c.code), wire::kVersion | wire::kFlagNeedReply, c.size};
			std::vector<uint8_t> payload(std::min<uint32_t>(c.size, 64), 0);
			testing::send_raw(d->frontend(), encode(hdr, payload), w.fds());
			h.expect_closed(d->frontend());
		}
		h.expect_log({name, "payload size " + std::to_string(c.size)});
		w.expect_closed();
	}
	h.finish();
}

TEST_CASE("3: version bits, REPLY on a request, reserved flags", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	struct Case {
		uint32_t flags;
		const char *text;
	};
	const Case cases[] = {
		{0x0, "version 0"},
		{0x2, "version 2"},
		{0x3, "version 3"},
		{wire::kVersion | wire::kFlagReply, "REPLY flag"},
		{wire::kVersion | (1u << 4), "reserved flag bits"},
		{wire::kVersion | (1u << 31), "reserved flag bits"},
	};
	for (const auto &c : cases) {
		INFO("flags " << c.flags);
		Watches w(1);
		{
			auto d = h.driver();
			wire::Header hdr{uint32_t(Request::SetOwner), c.flags, 0};
			testing::send_raw(d->frontend(), encode(hdr, {}), w.fds());
			h.expect_closed(d->frontend());
		}
		h.expect_log({"SET_OWNER", c.text});
		w.expect_closed();
	}
	h.finish();
}

TEST_CASE("4: unknown request codes", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	for (uint32_t code : {0u, 44u, 45u, 0xffffffffu}) {
		INFO(code);
		Watches w(1);
		{
			auto d = h.driver();
			wire::Header hdr{code, wire::kVersion | wire::kFlagNeedReply, 8};
			std::vector<uint8_t> payload(8, 0);
			testing::send_raw(d->frontend(), encode(hdr, payload), w.fds());
			h.expect_closed(d->frontend());
		}
		h.expect_log({"unknown request code " + std::to_string(code)});
		w.expect_closed();
	}
	h.finish();
}

TEST_CASE("5: too many fds, fds where none belong, wrong fd counts, MSG_CTRUNC", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	SECTION("9, 32 and 253 fds: ancillary data truncated")
	{
		for (size_t n : {9u, 32u, 253u}) {
			INFO(n << " fds");
			Watches w(n);
			{
				auto d = h.driver();
				auto body = bytes_of(uint64_t{0});
				wire::Header hdr{uint32_t(Request::SetVringCall),
						 wire::kVersion | wire::kFlagNeedReply, 8};
				/* More than send_bytes() allows: straight sendmsg(). */
				auto bytes = encode(hdr, body);
				auto fds = w.fds();
				std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
				iovec iov{bytes.data(), bytes.size()};
				msghdr mh{};
				mh.msg_iov = &iov;
				mh.msg_iovlen = 1;
				mh.msg_control = control.data();
				mh.msg_controllen = control.size();
				cmsghdr *cm = CMSG_FIRSTHDR(&mh);
				cm->cmsg_level = SOL_SOCKET;
				cm->cmsg_type = SCM_RIGHTS;
				cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
				std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
				REQUIRE(::sendmsg(d->frontend().socket(), &mh, MSG_NOSIGNAL) ==
					ssize_t(bytes.size()));
				h.expect_closed(d->frontend());
			}
			h.expect_log({"SET_VRING_CALL", "truncated"});
			w.expect_closed();
		}
	}
	SECTION("fds on messages that take none")
	{
		Watches w(2);
		auto d = h.driver();
		auto fds = w.fds();
		Hostile::expect_nack(d->frontend(), Request::SetVringNum, vring_state(0, 64), {&fds[0], 1});
		h.expect_log({"SET_VRING_NUM", "carries 1 fds, expected 0"});
		Hostile::expect_nack(d->frontend(), Request::SetOwner, {}, {&fds[1], 1});
		h.expect_log({"SET_OWNER", "carries 1 fds, expected 0"});
		w.expect_closed();
		/* A message with a reply of its own cannot be refused with an ack: closed. */
		Watches more(1);
		testing::send(d->frontend(), wire::make_request(Request::GetFeatures, {}), more.fds());
		h.expect_closed(d->frontend());
		h.expect_log({"GET_FEATURES", "carries 1 fds"});
		more.expect_closed();
	}
	SECTION("wrong fd counts on memory and kick messages")
	{
		Watches w(5);
		auto fds = w.fds();
		{
			auto d = h.driver();
			auto &fe = d->frontend();
			DriverMemory extra(1 << 16, 0x8000'0000);
			wire::MemoryRegion r = d->memory().region();
			int two[] = {d->memory().fd().get(), fds[0]};
			Hostile::expect_nack(fe, Request::SetMemTable, mem_table({&r, 1}), two);
			h.expect_log({"SET_MEM_TABLE", "carries 2 fds, expected 1"});
			Hostile::expect_nack(fe, Request::SetMemTable, mem_table({&r, 1}));
			h.expect_log({"SET_MEM_TABLE", "carries 0 fds, expected 1"});

			auto add = single_region(extra.region());
			Hostile::expect_nack(fe, Request::AddMemReg, add);
			h.expect_log({"ADD_MEM_REG", "carries 0 fds, expected 1"});
			int add_two[] = {extra.fd().get(), fds[1]};
			Hostile::expect_nack(fe, Request::AddMemReg, add, add_two);
			h.expect_log({"ADD_MEM_REG", "carries 2 fds, expected 1"});
			int rem_two[] = {fds[2], fds[3]};
			Hostile::expect_nack(fe, Request::RemMemReg, single_region(r), rem_two);
			h.expect_log({"REM_MEM_REG", "carries 2 fds, expected 0 or 1"});

			EventFd e = EventFd::create();
			int kick_two[] = {e.fd(), fds[4]};
			Hostile::expect_nack(fe, Request::SetVringKick, bytes_of(uint64_t{0}), kick_two);
			h.expect_log({"SET_VRING_KICK", "carries 2 fds, expected 1"});
			w.expect_closed();

			/* The connection survived every refusal. */
			uint64_t offset = device.produced;
			CHECK(read_pattern(d->queue(0), d->memory(), offset, 32));
		}
	}
	h.finish();
}

TEST_CASE("6: resource-allocating messages in a loop do not grow fds or mappings", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		DriverMemory *table[] = {&d->memory()};
		DriverMemory extra(1 << 16, 0x8000'0000);

		auto counts = [] { return std::make_pair(count_open_fds(), count_mappings("memfd:")); };
		/* One round first: what a round legitimately keeps. */
		auto round = [&] {
			fe.set_mem_table(table);
			auto kick = EventFd::create(), call = EventFd::create(), err = EventFd::create();
			fe.set_vring_kick(0, &kick);
			fe.set_vring_call(0, &call);
			fe.set_vring_err(0, &err);
			fe.add_mem_reg(extra);
			fe.rem_mem_reg(extra);
		};
		round();
		auto before = counts();
		CHECK(counts().first == before.first);
		CHECK(counts().second == before.second);

		/* SET_VRING_NUM, on a stopped ring (which dropped its kick fd). */
		fe.get_vring_base(0);
		before = counts();
		for (int i = 0; i < 200; i++)
			fe.set_vring_num(0, 1u << (i % 10));
		CHECK(counts().first == before.first);
		CHECK(counts().second == before.second);

		/* ADD_MEM_REG of distinct regions: accepted up to the slots, then refused. */
		uint64_t slots = fe.get_max_mem_slots();
		std::vector<std::unique_ptr<DriverMemory>> regions;
		size_t accepted = 0;
		for (uint64_t i = 0; i < slots + 8; i++) {
			regions.push_back(std::make_unique<DriverMemory>(1 << 16, 0x1'0000'0000 + i * 0x10000));
			try {
				fe.add_mem_reg(*regions.back());
				accepted++;
			} catch (const FrontendError &e) {
				CHECK_THAT(e.what(), Catch::Contains("ADD_MEM_REG"));
			}
		}
		CHECK(accepted == slots - 1); /* one slot holds the first table's region */
		h.expect_log({"ADD_MEM_REG", "memory slots in use"});
		/* The server maps each accepted region once, the refused ones not at all. */
		CHECK(count_mappings("memfd:") == before.second + regions.size() + accepted);
	}
	h.finish();
}

TEST_CASE("7: NEED_REPLY on every message type, with and without REPLY_ACK", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	/* Messages that have a reply of their own (vhost-user.rst). */
	const std::set<uint32_t> own_reply = {1, 11, 15, 17, 24, 26, 28, 31, 36, 40, 41, 42, 43};

	SECTION("with REPLY_ACK: exactly one reply to each, or the connection closed")
	{
		for (uint32_t code = 1; code <= wire::kMaxRequestCode; code++) {
			std::string name(wire::request_name(code));
			INFO(name);
			Watches w(1);
			{
				auto d = h.driver();
				auto &fe = d->frontend();
				DriverMemory extra(1 << 16, 0x8000'0000);
				EventFd e = EventFd::create();
				std::vector<uint8_t> body;
				std::vector<int> fds;
				switch (static_cast<Request>(code)) {
				case Request::SetFeatures:
					body = bytes_of(d->features());
					break;
				case Request::SetProtocolFeatures:
					body = bytes_of(d->protocol_features());
					break;
				case Request::SetMemTable: {
					auto r = d->memory().region();
					body = mem_table({&r, 1});
					fds = {d->memory().fd().get()};
					break;
				}
				case Request::SetVringAddr:
					body = bytes_of(d->queue(0).addresses());
					break;
				case Request::SetVringNum:
				case Request::SetVringBase:
				case Request::GetVringBase:
				case Request::SetVringEnable:
				case Request::SetVringEndian:
				case Request::VringKick:
					body = vring_state(0, 1);
					break;
				case Request::SetVringKick:
				case Request::SetVringCall:
				case Request::SetVringErr:
					body = bytes_of(uint64_t{0});
					fds = {e.fd()};
					break;
				case Request::GetConfig:
				case Request::SetConfig:
					body = config(0, 4, 0, 4);
					break;
				case Request::AddMemReg:
					body = single_region(extra.region());
					fds = {extra.fd().get()};
					break;
				case Request::RemMemReg:
					body = single_region(extra.region());
					break;
				case Request::SetStatus:
					body = bytes_of(uint64_t{0x0f});
					break;
				case Request::SetLogBase:
					body.resize(16);
					fds = w.fds();
					break;
				case Request::SetLogFd:
				case Request::SetBackendReqFd:
				case Request::GpuSetSocket:
					fds = w.fds();
					break;
				case Request::SetInflightFd:
					body.resize(24);
					fds = w.fds();
					break;
				case Request::SetDeviceStateFd:
					body.resize(8);
					fds = w.fds();
					break;
				case Request::IotlbMsg:
					body.resize(32);
					break;
				case Request::GetInflightFd:
					body.resize(24);
					break;
				case Request::GetSharedObject:
					body.resize(16);
					break;
				case Request::CreateCryptoSession:
					body.resize(64);
					break;
				case Request::SendRarp:
				case Request::NetSetMtu:
				case Request::CloseCryptoSession:
					body.resize(8);
					break;
				default:
					break; /* no payload */
				}
				testing::send(fe, wire::make_request(static_cast<Request>(code), body,
							   wire::kFlagNeedReply),
					fds);
				try {
					auto reply = testing::receive(fe, 3000);
					CHECK(reply.header.request == code);
					CHECK((reply.header.flags & wire::kFlagReply) != 0);
					/* No second reply is queued behind it. */
					CHECK(fe.get_queue_num() == 1);
				} catch (const FrontendError &) {
					/* Closing is allowed only where no ack could carry the refusal. */
					CHECK(own_reply.count(code) == 1);
					h.expect_log({name});
				}
			}
			/* Whatever the server kept (backend channel...) it closed with the connection. */
			w.expect_closed();
		}
	}
	SECTION("without REPLY_ACK: no acknowledgement, refusals close the connection")
	{
		auto d = h.driver_without_ack();
		auto &fe = d->frontend();
		uint64_t features = fe.get_features();
		EventFd e = EventFd::create();
		int efd = e.fd();
		auto need = [&](Request code, std::span<const uint8_t> body, std::span<const int> fds = {}) {
			INFO(wire::request_name(uint32_t(code)));
			testing::send(fe, wire::make_request(code, body, wire::kFlagNeedReply), fds);
			/* The next message is the reply to the next request. */
			CHECK(fe.get_features() == features);
		};
		need(Request::SetOwner, {});
		need(Request::SetFeatures, bytes_of(d->features()));
		need(Request::SetVringAddr, bytes_of(d->queue(0).addresses()));
		need(Request::SetVringCall, bytes_of(uint64_t{0}), {&efd, 1});
		need(Request::SetVringErr, bytes_of(uint64_t{0}), {&efd, 1});
		need(Request::SetVringEnable, vring_state(0, 1));
		need(Request::SetStatus, bytes_of(uint64_t{0x0f}));
		/* And a message that has its own reply gets just that. */
		testing::send(fe, wire::make_request(Request::GetQueueNum, {}, wire::kFlagNeedReply));
		CHECK(testing::receive_reply(fe, Request::GetQueueNum, 8) == bytes_of(uint64_t{1}));
		CHECK(fe.get_features() == features);

		testing::send(fe, wire::make_request(Request::SetVringNum, vring_state(0, 3), wire::kFlagNeedReply));
		h.expect_closed(fe);
		h.expect_log({"SET_VRING_NUM", "closing the connection"});
	}
	h.finish();
}

TEST_CASE("8: messages gated by a protocol feature that was not negotiated", "[hostile]")
{
	PatternDevice device(1, 8);
	Hostile h(device);
	SECTION("GET_QUEUE_NUM without MQ")
	{
		auto o = one_queue();
		o.protocol_features = wire::bit(ProtocolFeature::ReplyAck);
		auto d = h.driver(o);
		CHECK_THROWS_AS(d->frontend().get_queue_num(), FrontendError);
		h.expect_closed(d->frontend());
		h.expect_log({"GET_QUEUE_NUM", "protocol feature 0 not negotiated"});
	}
	SECTION("GET_CONFIG without CONFIG")
	{
		auto o = one_queue();
		o.protocol_features = ~wire::bit(ProtocolFeature::Config);
		auto d = h.driver(o);
		CHECK_THROWS_AS(d->frontend().get_config(0, 4), FrontendError);
		h.expect_closed(d->frontend());
		h.expect_log({"GET_CONFIG", "protocol feature 9 not negotiated"});
	}
	SECTION("SET_CONFIG, ADD_MEM_REG, SET_BACKEND_REQ_FD without their features")
	{
		auto o = one_queue();
		o.protocol_features = wire::bit(ProtocolFeature::ReplyAck) | wire::bit(ProtocolFeature::Mq);
		auto d = h.driver(o);
		auto &fe = d->frontend();
		std::vector<uint8_t> data{1};
		CHECK_THROWS_WITH(fe.set_config(0, data), Catch::Contains("SET_CONFIG"));
		h.expect_log({"SET_CONFIG", "protocol feature 9"});
		DriverMemory extra(1 << 16, 0x8000'0000);
		CHECK_THROWS_WITH(fe.add_mem_reg(extra), Catch::Contains("ADD_MEM_REG"));
		h.expect_log({"ADD_MEM_REG", "protocol feature 15"});
		Watches w(1);
		Hostile::expect_nack(fe, Request::SetBackendReqFd, {}, w.fds());
		h.expect_log({"SET_BACKEND_REQ_FD", "protocol feature 5"});
		w.expect_closed();
	}
	SECTION("SET_VRING_ENABLE without VHOST_USER_F_PROTOCOL_FEATURES")
	{
		auto fe = Frontend::connect(h.server.path());
		uint64_t features = fe.get_features();
		fe.get_protocol_features();
		fe.set_protocol_features(wire::bit(ProtocolFeature::ReplyAck));
		fe.set_owner();
		fe.set_features(features & ~wire::feature_bit(vf::ProtocolFeatures));
		CHECK_THROWS_WITH(fe.set_vring_enable(0, true), Catch::Contains("SET_VRING_ENABLE"));
		h.expect_log({"SET_VRING_ENABLE", "bit 30"});
	}
	h.finish();
}

TEST_CASE("9: vring index out of range in every per-ring message", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		for (uint32_t index : {1u, 2u, 0x10000u, 0xffffffffu}) {
			INFO("index " << index);
			std::string idx = "vring index " + std::to_string(index) + " out of range";
			Hostile::expect_nack(fe, Request::SetVringNum, vring_state(index, 64));
			h.expect_log({"SET_VRING_NUM", idx});
			Hostile::expect_nack(fe, Request::SetVringBase, vring_state(index, 0));
			h.expect_log({"SET_VRING_BASE", idx});
			Hostile::expect_nack(fe, Request::SetVringEnable, vring_state(index, 1));
			h.expect_log({"SET_VRING_ENABLE", idx});
			auto a = d->queue(0).addresses();
			a.index = index;
			Hostile::expect_nack(fe, Request::SetVringAddr, bytes_of(a));
			h.expect_log({"SET_VRING_ADDR", idx});
		}
		/* The fd messages: an 8-bit index, bit 8 "no fd", nothing above. */
		for (Request code : {Request::SetVringKick, Request::SetVringCall, Request::SetVringErr}) {
			std::string name(wire::request_name(uint32_t(code)));
			INFO(name);
			Watches w(3);
			auto fds = w.fds();
			Hostile::expect_nack(fe, code, bytes_of(uint64_t{1}), {&fds[0], 1});
			h.expect_log({name, "vring index 1 out of range"});
			Hostile::expect_nack(fe, code, bytes_of(uint64_t{0xff}), {&fds[1], 1});
			h.expect_log({name, "vring index 255 out of range"});
			Hostile::expect_nack(fe, code, bytes_of(uint64_t{0x10000}), {&fds[2], 1});
			h.expect_log({name, "reserved bits set in 0x10000"});
			w.expect_closed();
		}
		uint64_t offset = device.produced;
		CHECK(read_pattern(d->queue(0), d->memory(), offset, 16));
	}
	SECTION("GET_VRING_BASE has a reply of its own: the connection closes")
	{
		auto d = h.driver();
		CHECK_THROWS_AS(d->frontend().get_vring_base(0x10000), FrontendError);
		h.expect_closed(d->frontend());
		h.expect_log({"GET_VRING_BASE", "vring index 65536 out of range"});
	}
	h.finish();
}

TEST_CASE("10: SET_VRING_NUM of 0, non powers of two, too large", "[hostile]")
{
	PatternDevice device(1, 0, 1024);
	Hostile h(device);
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		fe.get_vring_base(0); /* sizes can change only on a stopped ring */
		for (uint32_t num : {0u, 3u, 1000u, 2048u, 32768u, 65536u, 0xffffffffu}) {
			INFO(num);
			CHECK_THROWS_WITH(fe.set_vring_num(0, num), Catch::Contains("SET_VRING_NUM"));
			h.expect_log({"SET_VRING_NUM", "queue 0 size " + std::to_string(num)});
		}
		CHECK_NOTHROW(fe.set_vring_num(0, 1));
		CHECK_NOTHROW(fe.set_vring_num(0, 1024));
		/* A started ring cannot be resized. */
		DriverQueue q(d->memory(), 0, 64);
		fe.setup_queue(q);
		CHECK_THROWS_WITH(fe.set_vring_num(0, 64), Catch::Contains("SET_VRING_NUM"));
		h.expect_log({"SET_VRING_NUM", "is started"});
		uint64_t offset = device.produced;
		CHECK(read_pattern(q, d->memory(), offset, 16));
	}
	h.finish();
}

TEST_CASE("11: SET_VRING_ADDR outside, straddling, past the end, misaligned, zero, overlapping", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		auto &mem = d->memory();
		fe.get_vring_base(0);
		const auto good = d->queue(0).addresses();
		const uint64_t ubase = mem.region().userspace_addr, uend = ubase + mem.size();

		auto refuse = [&](wire::VringAddr a, std::initializer_list<std::string_view> why) {
			CHECK_THROWS_WITH(fe.set_vring_addr(a), Catch::Contains("SET_VRING_ADDR"));
			h.expect_log(why);
		};
		auto a = good;
		a.desc_user_addr = 0x1000;
		refuse(a, {"SET_VRING_ADDR", "not each inside one memory region"});
		a = good;
		a.used_user_addr = uend - 64; /* 64 entries of 8 bytes */
		refuse(a, {"SET_VRING_ADDR", "used 0x"});
		a = good;
		a.avail_user_addr = uend;
		refuse(a, {"SET_VRING_ADDR", "not each inside"});
		a = good;
		a.desc_user_addr = 0;
		a.avail_user_addr = 0;
		a.used_user_addr = 0;
		refuse(a, {"SET_VRING_ADDR", "not each inside"});
		a = good;
		a.desc_user_addr += 8;
		refuse(a, {"SET_VRING_ADDR", "misaligned"});
		a = good;
		a.avail_user_addr += 1;
		refuse(a, {"SET_VRING_ADDR", "misaligned"});
		a = good;
		a.used_user_addr += 2;
		refuse(a, {"SET_VRING_ADDR", "misaligned"});
		a = good;
		a.desc_user_addr = UINT64_MAX & ~uint64_t(15);
		refuse(a, {"SET_VRING_ADDR", "not each inside"});

		/* Rings laid over each other: the device's used-ring writes would look
		 * like new chains (a fuzzer's input spun the loop on exactly this). */
		a = good;
		a.used_user_addr = a.avail_user_addr;
		refuse(a, {"SET_VRING_ADDR", "used ring", "overlaps the avail ring"});
		a = good;
		a.used_user_addr = a.desc_user_addr + 16 * 3;
		refuse(a, {"SET_VRING_ADDR", "used ring", "overlaps the descriptor table"});
		a = good;
		a.avail_user_addr = a.used_user_addr + 8;
		refuse(a, {"SET_VRING_ADDR", "overlaps the avail ring"});
		a = good;
		a.avail_user_addr = a.desc_user_addr + 16 * 63 + 14; /* the last 2 bytes of 64 descriptors */
		refuse(a, {"SET_VRING_ADDR", "avail ring", "overlaps the descriptor table"});

		/* Straddling: a second region declared right after the first in user space. */
		DriverMemory extra(1 << 16, 0x8000'0000);
		wire::MemoryRegion regions[] = {mem.region(), extra.region()};
		regions[1].userspace_addr = uend;
		int fds[] = {mem.fd().get(), extra.fd().get()};
		CHECK(Hostile::ack_of(fe, Request::SetMemTable, mem_table(regions), fds) == 0);
		a = good;
		a.desc_user_addr = uend - 512; /* 1024 bytes of descriptors */
		refuse(a, {"SET_VRING_ADDR", "not each inside"});

		/* The good addresses still work after all that. */
		fe.set_vring_addr(good);
		fe.set_vring_kick(0, &d->queue(0).kick_fd());
		uint64_t offset = device.produced;
		CHECK(read_pattern(d->queue(0), mem, offset, 16));
	}
	h.finish();
}

TEST_CASE("12: SET_VRING_ENABLE values, kicks while disabled, GET_VRING_BASE on idle rings",
	  "[hostile]")
{
	PatternDevice device(2);
	Hostile h(device);
	{
		auto d = h.driver(); /* sets up queue 0 only */
		auto &fe = d->frontend();
		for (uint32_t num : {2u, 0x100u, 0xffffffffu}) {
			Hostile::expect_nack(fe, Request::SetVringEnable, vring_state(0, num));
			h.expect_log({"SET_VRING_ENABLE", "num " + std::to_string(num) + " is not 0 or 1"});
		}
		/* A kick while disabled is not lost. */
		auto &q = d->queue(0);
		fe.set_vring_enable(0, false);
		CHECK(stays_unused(q, d->memory()));
		fe.set_vring_enable(0, true);
		auto used = q.wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->len == 16);

		/* Queue 1 never started: its base is 0, twice, and queue 0 is unaffected. */
		CHECK(fe.get_vring_base(1) == 0);
		CHECK(fe.get_vring_base(1) == 0);
		uint64_t offset = device.produced;
		CHECK(read_pattern(q, d->memory(), offset, 16));
		CHECK(device.stopped == 1); /* only the disable of queue 0 */
	}
	h.finish();
}

TEST_CASE("13: the no-fd bit with an fd, and an fd missing without it", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		for (Request code : {Request::SetVringKick, Request::SetVringCall, Request::SetVringErr}) {
			std::string name(wire::request_name(uint32_t(code)));
			INFO(name);
			Watches w(1);
			Hostile::expect_nack(fe, code, bytes_of(uint64_t{wire::kVringNoFdFlag}), w.fds());
			h.expect_log({name, "no-fd bit set but 1 fds attached"});
			w.expect_closed();
			Hostile::expect_nack(fe, code, bytes_of(uint64_t{0}));
			h.expect_log({name, "carries 0 fds, expected 1"});
		}
		/* The no-fd error fd is legal; a no-fd kick (polling) is refused: the ring would
		 * start and never be served. */
		CHECK(Hostile::ack_of(fe, Request::SetVringErr, bytes_of(uint64_t{wire::kVringNoFdFlag})) == 0);
		Hostile::expect_nack(fe, Request::SetVringKick, bytes_of(uint64_t{wire::kVringNoFdFlag}));
		h.expect_log({"SET_VRING_KICK", "queue 0", "no-fd bit", "polling is not supported"});
		fe.set_vring_kick(0, &d->queue(0).kick_fd());
		uint64_t offset = device.produced;
		CHECK(read_pattern(d->queue(0), d->memory(), offset, 16));
	}
	h.finish();
}

TEST_CASE("14: region counts: 0, 9, 2^32-1, past the slots, removing what is not there",
	  "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		auto r = d->memory().region();

		Hostile::expect_nack(fe, Request::SetMemTable, mem_table({}, 0));
		h.expect_log({"SET_MEM_TABLE", "num_regions 0"});
		Watches w(1);
		Hostile::expect_nack(fe, Request::SetMemTable, mem_table({&r, 1}, 0xffffffff), w.fds());
		h.expect_log({"SET_MEM_TABLE", "num_regions 4294967295"});
		w.expect_closed();

		/* REM_MEM_REG of a region that does not exist, or only partly matches. */
		DriverMemory extra(1 << 16, 0x8000'0000);
		CHECK_THROWS_WITH(fe.rem_mem_reg(extra), Catch::Contains("REM_MEM_REG"));
		h.expect_log({"REM_MEM_REG", "no such region"});
		auto partial = r;
		partial.memory_size /= 2;
		Hostile::expect_nack(fe, Request::RemMemReg, single_region(partial));
		auto moved = r;
		moved.userspace_addr += 4096;
		Hostile::expect_nack(fe, Request::RemMemReg, single_region(moved));

		/* ADD_MEM_REG past GET_MAX_MEM_SLOTS. */
		uint64_t slots = fe.get_max_mem_slots();
		std::vector<std::unique_ptr<DriverMemory>> more;
		for (uint64_t i = 1; i < slots; i++) {
			more.push_back(std::make_unique<DriverMemory>(4096, 0x1'0000'0000 + i * 0x10000));
			fe.add_mem_reg(*more.back());
		}
		CHECK_THROWS_WITH(fe.add_mem_reg(extra), Catch::Contains("ADD_MEM_REG"));
		h.expect_log({"ADD_MEM_REG", "all " + std::to_string(slots) + " memory slots in use"});
		uint64_t offset = device.produced;
		CHECK(read_pattern(d->queue(0), d->memory(), offset, 16));
	}
	SECTION("9 regions: more than the message can carry")
	{
		auto d = h.driver();
		std::vector<wire::MemoryRegion> nine(9, d->memory().region());
		auto body = mem_table(nine);
		testing::send(d->frontend(), wire::make_request(Request::SetMemTable, body, wire::kFlagNeedReply));
		h.expect_closed(d->frontend());
		h.expect_log({"SET_MEM_TABLE", "payload size 296"});
	}
	h.finish();
}

TEST_CASE("15: region size 0, 64-bit overflows, overlapping regions", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		auto fd = memfd(1 << 16);
		const wire::MemoryRegion ok{0x8000'0000, 1 << 16, 0x7000'0000'0000, 0};
		struct Case {
			wire::MemoryRegion r;
			const char *why;
		};
		std::vector<Case> cases = {
			{{0x8000'0000, 0, 0x7000'0000'0000, 0}, "size 0"},
			{{UINT64_MAX - 0x1000, 1 << 16, 0x7000'0000'0000, 0}, "gpa + size overflows"},
			{{0x8000'0000, 1 << 16, UINT64_MAX - 0x1000, 0}, "uaddr + size overflows"},
			{{0x8000'0000, 1 << 16, 0x7000'0000'0000, UINT64_MAX - 0x1000}, "mmap_offset + size overflows"},
			{{0x8000'0000, UINT64_MAX, 0x7000'0000'0000, 0}, "overflows"},
		};
		int f = fd.get();
		for (const auto &c : cases) {
			INFO(c.why);
			wire::MemoryRegion table[] = {d->memory().region(), c.r};
			int fds[] = {d->memory().fd().get(), f};
			Hostile::expect_nack(fe, Request::SetMemTable, mem_table(table), fds);
			h.expect_log({"SET_MEM_TABLE", c.why});
			Hostile::expect_nack(fe, Request::AddMemReg, single_region(c.r), {&f, 1});
			h.expect_log({"ADD_MEM_REG", c.why});
		}
		/* Overlapping regions, in one table and against the current one. */
		auto overlap = d->memory().region();
		overlap.guest_phys_addr += 4096;
		overlap.userspace_addr = 0x7000'0000'0000;
		wire::MemoryRegion table[] = {d->memory().region(), overlap};
		int fds[] = {d->memory().fd().get(), d->memory().fd().get()};
		Hostile::expect_nack(fe, Request::SetMemTable, mem_table(table), fds);
		h.expect_log({"SET_MEM_TABLE", "guest range overlaps"});
		int mfd = d->memory().fd().get();
		Hostile::expect_nack(fe, Request::AddMemReg, single_region(overlap), {&mfd, 1});
		h.expect_log({"ADD_MEM_REG", "overlaps"});
		auto same_uaddr = ok;
		same_uaddr.userspace_addr = d->memory().region().userspace_addr;
		Hostile::expect_nack(fe, Request::AddMemReg, single_region(same_uaddr), {&f, 1});
		h.expect_log({"ADD_MEM_REG", "user range overlaps"});
		/* The table in use is unchanged by the refusals. */
		uint64_t offset = device.produced;
		CHECK(read_pattern(d->queue(0), d->memory(), offset, 16));
		CHECK(Hostile::ack_of(fe, Request::AddMemReg, single_region(ok), {&f, 1}) == 0);
	}
	h.finish();
}

TEST_CASE("16: fds too small, unmappable or read-only", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		const wire::MemoryRegion r{0x8000'0000, 1 << 16, 0x7000'0000'0000, 0};
		auto check = [&](int fd, const wire::MemoryRegion &region, const char *why) {
			INFO(why);
			wire::MemoryRegion table[] = {d->memory().region(), region};
			int fds[] = {d->memory().fd().get(), fd};
			Hostile::expect_nack(fe, Request::SetMemTable, mem_table(table), fds);
			h.expect_log({"SET_MEM_TABLE", why});
			Hostile::expect_nack(fe, Request::AddMemReg, single_region(region), {&fd, 1});
			h.expect_log({"ADD_MEM_REG", why});
		};
		auto small = memfd(4096);
		check(small.get(), r, "fd is only 0x1000 bytes long");
		auto exact = memfd(1 << 16);
		auto offset_past = r;
		offset_past.mmap_offset = 4096;
		check(exact.get(), offset_past, "fd is only 0x10000 bytes long");

		Watches pipe(1);
		check(pipe.fds()[0], r, "not a regular file");
		pipe.expect_closed();
		auto [s1, s2] = socket_pair();
		check(s1.get(), r, "not a regular file");
		EventFd e = EventFd::create();
		check(e.fd(), r, "not a regular file");
		UniqueFd ro(::open(("/proc/self/fd/" + std::to_string(exact.get())).c_str(),
				   O_RDONLY | O_CLOEXEC));
		REQUIRE(ro.valid());
		check(ro.get(), r, "mmap failed");
		/* The server kept none of them: each is closed on its side. */
		uint64_t offset = device.produced;
		CHECK(read_pattern(d->queue(0), d->memory(), offset, 16));
	}
	h.finish();
}

TEST_CASE("17: memory table replaced or region removed while rings are in use", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	SECTION("a new table without the rings stops them; the old one restarts them")
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		DriverMemory elsewhere(1 << 20, 0x8000'0000);
		DriverMemory *other[] = {&elsewhere};
		fe.set_mem_table(other);
		h.expect_log({"queue 0", "no longer inside guest memory"});
		CHECK(device.stopped == 1);
		CHECK(stays_unused(d->queue(0), d->memory()));
		DriverMemory *original[] = {&d->memory()};
		fe.set_mem_table(original);
		auto used = d->queue(0).wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->len == 16);
	}
	SECTION("a region removed under a chain in flight: the chain still completes safely")
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		DriverMemory extra(1 << 16, 0x8000'0000);
		fe.add_mem_reg(extra);
		h.server.run([&] { device.hold(true); });
		uint64_t buf = extra.allocate(100);
		DriverBuffer b{buf, 100, true};
		uint16_t head = d->queue(0).add({&b, 1});
		d->queue(0).kick();
		REQUIRE(wait_until([&] { return device.popped == 1; }));
		fe.rem_mem_reg(extra);
		uint64_t start = device.produced;
		h.server.run([&] {
			device.hold(false);
			device.release();
		});
		auto used = d->queue(0).wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->head == head);
		CHECK(used->len == 100);
		CHECK(extra.at(buf, 100)[99] == uint8_t((start + 99) % 251));
		/* New buffers there are refused now: length 0. */
		uint64_t buf2 = extra.allocate(16);
		DriverBuffer b2{buf2, 16, true};
		d->queue(0).add({&b2, 1});
		d->queue(0).kick();
		used = d->queue(0).wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->len == 0);
		h.expect_log({"queue 0", "not inside one guest memory region"});
	}
	h.finish();
}

TEST_CASE("26: GET_CONFIG and SET_CONFIG sizes, offsets and flags", "[hostile]")
{
	PatternDevice device(1, 16);
	Hostile h(device);
	SECTION("refused by the device's bounds: empty reply or error ack")
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		CHECK_THROWS_WITH(fe.get_config(0, 32), Catch::Contains("GET_CONFIG"));
		h.expect_log({"GET_CONFIG", "offset 0 size 32 refused"});
		CHECK_THROWS_WITH(fe.get_config(12, 8), Catch::Contains("GET_CONFIG"));
		h.expect_log({"GET_CONFIG", "offset 12 size 8 refused"});
		std::vector<uint8_t> data(32, 1);
		CHECK_THROWS_WITH(fe.set_config(0, data), Catch::Contains("SET_CONFIG"));
		h.expect_log({"SET_CONFIG", "offset 0 size 32 refused"});
		/* Malformed SET_CONFIG is refused with an ack too. */
		Hostile::expect_nack(fe, Request::SetConfig, config(0, 8, 0, 4));
		h.expect_log({"SET_CONFIG", "config size 8 but payload carries 4"});
		Hostile::expect_nack(fe, Request::SetConfig, config(0xfffffffc, 8, 0, 8));
		h.expect_log({"SET_CONFIG", "offset 4294967292"});
		Hostile::expect_nack(fe, Request::SetConfig, config(0, 4, 0x4, 4));
		h.expect_log({"SET_CONFIG", "unknown flags 0x4"});
		CHECK(device.config_writes == 0);
		CHECK(fe.get_config(0, 16).size() == 16);
	}
	SECTION("malformed GET_CONFIG: no ack possible, the connection closes")
	{
		struct Case {
			std::vector<uint8_t> body;
			const char *why;
		};
		std::vector<Case> cases = {
			{config(0, 8, 0, 4), "config size 8 but payload carries 4"},
			{config(0xfffffffc, 8, 0, 8), "offset 4294967292"},
			{config(0, 4, 0x4, 4), "unknown flags 0x4"},
		};
		for (const auto &c : cases) {
			INFO(c.why);
			auto d = h.driver();
			testing::send(d->frontend(), wire::make_request(Request::GetConfig, c.body));
			h.expect_closed(d->frontend());
			h.expect_log({"GET_CONFIG", c.why});
		}
	}
	h.finish();
}

TEST_CASE("27: SET_STATUS out of order, reset at any time", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	SECTION("DRIVER_OK before any ring exists")
	{
		auto fe = Frontend::connect(h.server.path());
		fe.get_features();
		fe.set_protocol_features(fe.get_protocol_features());
		fe.set_owner();
		fe.set_status(0x0f);
		CHECK(fe.get_status() == 0x0f);
		CHECK(device.started == 0);
	}
	auto mid_stream = [&](const char *what, auto reset) {
		INFO(what);
		auto d = h.driver();
		auto &fe = d->frontend();
		uint64_t offset = device.produced;
		REQUIRE(read_pattern(d->queue(0), d->memory(), offset, 16));
		/* A chain in flight when the reset comes. */
		h.server.run([&] { device.hold(true); });
		uint64_t buf = d->memory().allocate(16);
		DriverBuffer b{buf, 16, true};
		d->queue(0).add({&b, 1});
		d->queue(0).kick();
		REQUIRE(wait_until([&] { return device.popped >= 2; }));
		uint64_t resets = device.resets;
		reset(fe);
		CHECK(device.resets == resets + 1);
		CHECK(device.stopped >= 1);
		h.server.run([&] {
			CHECK(device.held() == 0);
			device.hold(false);
		});
		/* The old ring is gone; setting everything up again works. */
		CHECK(stays_unused(d->queue(0), d->memory()));
		fe.set_features(d->features());
		DriverQueue fresh(d->memory(), 0, 32);
		fe.setup_queue(fresh);
		offset = device.produced;
		CHECK(read_pattern(fresh, d->memory(), offset, 64));
	};
	SECTION("SET_STATUS 0")
	{
		mid_stream("SET_STATUS 0", [](Frontend &fe) { fe.set_status(0); });
	}
	SECTION("RESET_DEVICE")
	{
		mid_stream("RESET_DEVICE", [](Frontend &fe) { fe.reset_device(); });
	}
	SECTION("RESET_OWNER")
	{
		mid_stream("RESET_OWNER", [](Frontend &fe) {
			fe.reset_owner();
			fe.set_owner();
		});
	}
	SECTION("SET_STATUS above 0xff")
	{
		auto d = h.driver();
		Hostile::expect_nack(d->frontend(), Request::SetStatus, bytes_of(uint64_t{0x100}));
		h.expect_log({"SET_STATUS", "status 0x100"});
	}
	h.finish();
}

TEST_CASE("notification fds that would block are never waited on", "[hostile][blocking]")
{
	PatternDevice device(2);
	Hostile h(device);
	SECTION("one blocking kick eventfd shared by two rings")
	{
		/* Both watchers wake for one kick; the second read must not block the loop. */
		UniqueFd shared(::eventfd(0, EFD_CLOEXEC)); /* blocking */
		REQUIRE(shared.valid());
		EventFd kick{std::move(shared)};
		DeviceDriver::Options o;
		o.queue_sizes = {8, 8};
		auto d = h.driver(o);
		auto &fe = d->frontend();
		fe.set_vring_kick(0, &kick);
		fe.set_vring_kick(1, &kick);
		kick.signal();
		/* Two starts, then one kick seen on each ring. */
		CHECK(wait_until([&] { return device.kicks >= 4; }, 1000));
		/* The loop must still answer. */
		bool answered = true;
		try {
			uint64_t features = 0;
			auto ok = std::async(std::launch::async, [&] { features = fe.get_features(); });
			answered = ok.wait_for(std::chrono::seconds(2)) == std::future_status::ready;
			if (!answered)
				kick.signal(); /* unblock the stuck loop so the test can end */
			ok.get();
		} catch (const FrontendError &) {
		}
		CHECK(answered);
	}
	SECTION("a blocking call eventfd at its maximum count")
	{
		UniqueFd full(::eventfd(0, EFD_CLOEXEC)); /* blocking */
		REQUIRE(full.valid());
		uint64_t max = 0xfffffffffffffffe;
		REQUIRE(::write(full.get(), &max, 8) == 8);
		EventFd call{std::move(full)};
		auto d = h.driver();
		auto &fe = d->frontend();
		fe.set_vring_call(0, &call);
		uint64_t buf = d->memory().allocate(16);
		DriverBuffer b{buf, 16, true};
		d->queue(0).add({&b, 1});
		d->queue(0).kick();
		bool answered = true;
		try {
			auto ok = std::async(std::launch::async, [&] { fe.get_features(); });
			answered = ok.wait_for(std::chrono::seconds(2)) == std::future_status::ready;
			if (!answered) {
				uint64_t v;
				[[maybe_unused]] ssize_t n = ::read(call.fd(), &v, 8); /* unblock */
			}
			ok.get();
		} catch (const FrontendError &) {
		}
		CHECK(answered);
	}
	h.finish();
}

namespace {

/* CPU time (user + system) of this whole process, server thread included. */
std::chrono::microseconds process_cpu()
{
	rusage ru{};
	REQUIRE(::getrusage(RUSAGE_SELF, &ru) == 0);
	auto us = [](const timeval &tv) { return int64_t(tv.tv_sec) * 1000000 + tv.tv_usec; };
	return std::chrono::microseconds(us(ru.ru_utime) + us(ru.ru_stime));
}

} // namespace

TEST_CASE("kick fds that would stay readable are refused; the loop stays idle", "[hostile][kick]")
{
	PatternDevice device;
	Hostile h(device);
	{
		auto d = h.driver();
		auto &fe = d->frontend();
		/* Each of these is readable forever: before the fix the kick watcher read,
		 * called queue_kicked() and re-armed in a loop (100 % CPU). */
		int p[2];
		REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
		UniqueFd pipe_read(p[0]);
		::close(p[1]); /* EOF from now on */
		int sv[2];
		REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
		UniqueFd sock(sv[0]);
		::close(sv[1]); /* the peer is gone */
		UniqueFd sem(::eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE | EFD_NONBLOCK));
		REQUIRE(sem.valid());
		uint64_t huge = 0xfffffffffffffffe;
		REQUIRE(::write(sem.get(), &huge, 8) == 8);

		struct Case {
			const char *what;
			int fd;
			const char *log;
		};
		for (const Case &c : {Case{"pipe", pipe_read.get(), "not an eventfd"},
				      Case{"socket", sock.get(), "not an eventfd"},
				      Case{"semaphore", sem.get(), "EFD_SEMAPHORE"}}) {
			INFO(c.what);
			int fd = c.fd;
			Hostile::expect_nack(fe, Request::SetVringKick, bytes_of(uint64_t{0}), {&fd, 1});
			h.expect_log({"SET_VRING_KICK", "queue 0", c.log});
		}
		/* A pipe is no call or error fd either (a write to it could raise SIGPIPE). */
		for (Request code : {Request::SetVringCall, Request::SetVringErr}) {
			INFO(wire::request_name(uint32_t(code)));
			int fd = pipe_read.get();
			Hostile::expect_nack(fe, code, bytes_of(uint64_t{0}), {&fd, 1});
			h.expect_log({wire::request_name(uint32_t(code)), "not an eventfd"});
		}

		/* Idle: over a second the whole process (the server's loop included) uses
		 * little CPU. A spinning loop uses most of that second; 250 ms leaves room
		 * for a loaded machine. */
		auto cpu_before = process_cpu();
		std::this_thread::sleep_for(std::chrono::seconds(1));
		auto used = process_cpu() - cpu_before;
		INFO("CPU time over 1 s: " << used.count() << " us");
		CHECK(used < std::chrono::milliseconds(250));

		/* The connection keeps being served with its own kick eventfd. */
		uint64_t offset = device.produced;
		CHECK(read_pattern(d->queue(0), d->memory(), offset, 16));
	}
	h.finish();
}
