/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The library's front-end against the library's server over a real Unix
 * socket, with the server on its own io_context thread in this process.
 */
#include <catch2/catch.hpp>

#include <cstring>

#include <vhostpp/internal/connection.h>
#include <vhostpp/frontend/device_driver.h>
#include <vhostpp/internal/wire.h>
#include <vhostpp/frontend/testing.h>

#include "driver_util.h"
#include "fd_util.h"
#include "test_server.h"

using namespace vhostpp;
using namespace vhostpp::test;
using wire::ProtocolFeature;
using wire::Request;
namespace vf = wire::virtio_feature;

TEST_CASE("negotiation offers the transport features and what the device asks", "[integration]")
{
	PatternDevice device;
	TestServer server(device);
	DeviceDriver d(server.path(), one_queue());

	uint64_t f = d.features();
	CHECK((f & wire::feature_bit(vf::Version1)) != 0);
	CHECK((f & wire::feature_bit(vf::RingEventIdx)) != 0);
	CHECK((f & wire::feature_bit(vf::RingIndirectDesc)) != 0);
	CHECK((f & wire::feature_bit(vf::NotifyOnEmpty)) != 0);
	CHECK((f & wire::feature_bit(vf::ProtocolFeatures)) != 0);
	CHECK((f & wire::feature_bit(vf::RingPacked)) == 0); /* split rings only */
	CHECK(device.negotiated == f);

	uint64_t pf = d.protocol_features();
	CHECK((pf & wire::bit(ProtocolFeature::Mq)) != 0);
	CHECK((pf & wire::bit(ProtocolFeature::ReplyAck)) != 0);
	CHECK((pf & wire::bit(ProtocolFeature::ConfigureMemSlots)) != 0);
	/* No config space, so no CONFIG. */
	CHECK((pf & wire::bit(ProtocolFeature::Config)) == 0);
	CHECK(d.frontend().reply_ack());
	CHECK(d.frontend().get_queue_num() == 1);
	CHECK(d.frontend().get_max_mem_slots() >= 8);

	/* The queue was started and enabled. */
	uint64_t offset = 0;
	CHECK(read_pattern(d.queue(0), d.memory(), offset, 100));
	CHECK(device.started == 1);
}

TEST_CASE("a device with a config space offers CONFIG", "[integration]")
{
	PatternDevice device(1, 16);
	TestServer server(device);
	DeviceDriver d(server.path(), one_queue());
	CHECK((d.protocol_features() & wire::bit(ProtocolFeature::Config)) != 0);
	auto config = d.frontend().get_config(4, 8);
	CHECK(config == std::vector<uint8_t>{0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xCB});
	std::vector<uint8_t> data{1, 2, 3};
	d.frontend().set_config(2, data);
	CHECK(device.config_writes == 1);
	CHECK(device.last_config_write_offset == 2);
	CHECK(device.last_config_write_size == 3);
	/* Past the end: refused with an error reply, and the connection goes on. */
	CHECK_THROWS_WITH(d.frontend().get_config(12, 8), Catch::Contains("GET_CONFIG"));
	CHECK_THROWS_WITH(d.frontend().set_config(15, data), Catch::Contains("SET_CONFIG"));
	CHECK(d.frontend().get_config(0, 1) == std::vector<uint8_t>{0xC0});
}

TEST_CASE("without VHOST_USER_F_PROTOCOL_FEATURES rings are enabled by SET_FEATURES",
	  "[integration]")
{
	PatternDevice device;
	TestServer server(device);
	DeviceDriver d(server.path(), without_feature(vf::ProtocolFeatures));
	CHECK(d.protocol_features() == 0);
	CHECK_FALSE(d.frontend().reply_ack());
	uint64_t offset = 0;
	CHECK(read_pattern(d.queue(0), d.memory(), offset, 64));
	/* And SET_VRING_ENABLE is not allowed: the connection closes. */
	auto &log = LogCapture::get();
	size_t mark = log.mark();
	d.frontend().set_vring_enable(0, false);
	CHECK(d.frontend().wait_closed());
	CHECK(log.wait_for(mark, {"SET_VRING_ENABLE", "bit 30"}));
}

TEST_CASE("data through the pattern device, EVENT_IDX on and off", "[integration]")
{
	PatternDevice device;
	TestServer server(device);
	auto opts = GENERATE(as<DeviceDriver::Options>{}, one_queue(), without_feature(vf::RingEventIdx));
	DeviceDriver d(server.path(), opts);
	bool event_idx = (opts.features & wire::feature_bit(vf::RingEventIdx)) != 0;
	CHECK(d.event_idx() == event_idx);
	uint64_t offset = device.produced;
	/* Many more requests than the ring has entries, of awkward sizes. */
	for (uint32_t i = 0; i < 300; i++)
		REQUIRE(read_pattern(d.queue(0), d.memory(), offset, 1 + (i * 37) % 700));
	CHECK(device.produced == offset);
}

TEST_CASE("many requests in flight at once", "[integration]")
{
	PatternDevice device;
	TestServer server(device);
	DeviceDriver d(server.path(), one_queue(16));
	auto &q = d.queue(0);
	uint64_t bufs[16];
	for (int round = 0; round < 20; round++) {
		for (auto &b : bufs) {
			b = d.memory().allocate(32);
			DriverBuffer db{b, 32, true};
			q.add({&db, 1});
		}
		q.kick();
		int got = 0;
		while (got < 16) {
			auto u = q.wait_used(3000);
			REQUIRE(u.has_value());
			CHECK(u->len == 32);
			got++;
		}
		CHECK(q.free_descriptors() == 16);
	}
	CHECK(device.produced == 20 * 16 * 32);
}

TEST_CASE("indirect descriptors", "[integration]")
{
	PatternDevice device;
	TestServer server(device);
	DeviceDriver d(server.path(), one_queue(8));
	uint64_t offset = 0;
	for (int i = 0; i < 50; i++)
		REQUIRE(read_pattern(d.queue(0), d.memory(), offset, 30 + i, true));
	CHECK(d.queue(0).free_descriptors() == 8);
}

TEST_CASE("memory table via SET_MEM_TABLE, replaced while the ring runs", "[integration]")
{
	PatternDevice device;
	TestServer server(device);
	DeviceDriver d(server.path(), one_queue());
	uint64_t offset = 0;
	REQUIRE(read_pattern(d.queue(0), d.memory(), offset, 100));

	/* A second region; the table is sent again with both. */
	DriverMemory extra(1 << 20, 0x1'0000'0000);
	DriverMemory *both[] = {&d.memory(), &extra};
	d.frontend().set_mem_table(both);
	REQUIRE(read_pattern(d.queue(0), d.memory(), offset, 100));
	REQUIRE(read_pattern(d.queue(0), extra, offset, 100));
	/* Back to one region: buffers in the dropped one are refused (length 0). */
	DriverMemory *one[] = {&d.memory()};
	d.frontend().set_mem_table(one);
	uint64_t gone = extra.allocate(16);
	DriverBuffer b{gone, 16, true};
	d.queue(0).add({&b, 1});
	d.queue(0).kick();
	auto u = d.queue(0).wait_used(3000);
	REQUIRE(u.has_value());
	CHECK(u->len == 0);
	REQUIRE(read_pattern(d.queue(0), d.memory(), offset, 100));
}

TEST_CASE("memory via ADD_MEM_REG and REM_MEM_REG", "[integration]")
{
	PatternDevice device;
	TestServer server(device);
	auto opts = one_queue();
	opts.use_add_mem_reg = true;
	DeviceDriver d(server.path(), opts);
	uint64_t offset = 0;
	REQUIRE(read_pattern(d.queue(0), d.memory(), offset, 100));

	DriverMemory extra(1 << 20, 0x2'0000'0000);
	d.frontend().add_mem_reg(extra);
	REQUIRE(read_pattern(d.queue(0), extra, offset, 200));
	d.frontend().rem_mem_reg(extra);

	/* Removing the region holding the rings stops the ring... */
	auto &log = LogCapture::get();
	size_t mark = log.mark();
	d.frontend().rem_mem_reg(d.memory());
	CHECK(log.wait_for(mark, {"queue 0", "no longer inside guest memory"}));
	uint64_t buf = d.memory().allocate(16);
	DriverBuffer b{buf, 16, true};
	d.queue(0).add({&b, 1});
	d.queue(0).kick();
	/* ...adding it back restarts it, and the buffer made available meanwhile is served. */
	d.frontend().add_mem_reg(d.memory());
	auto u = d.queue(0).wait_used(3000);
	REQUIRE(u.has_value());
	CHECK(u->len == 16);
	offset += 16;
	REQUIRE(read_pattern(d.queue(0), d.memory(), offset, 100));
}

TEST_CASE("REPLY_ACK: refusals are error replies; without it the connection closes",
	  "[integration]")
{
	PatternDevice device;
	TestServer server(device);
	SECTION("with REPLY_ACK")
	{
		DeviceDriver d(server.path(), one_queue());
		REQUIRE(d.frontend().reply_ack());
		CHECK_THROWS_WITH(d.frontend().set_vring_num(0, 3),
				  Catch::Contains("SET_VRING_NUM") && Catch::Contains("refused"));
		CHECK_THROWS_WITH(d.frontend().set_vring_enable(7, true),
				  Catch::Contains("SET_VRING_ENABLE"));
		/* The session goes on. */
		CHECK(d.frontend().get_features() == d.frontend().get_features());
		uint64_t offset = device.produced;
		CHECK(read_pattern(d.queue(0), d.memory(), offset, 10));
	}
	SECTION("without REPLY_ACK")
	{
		auto opts = one_queue();
		opts.protocol_features = ~wire::bit(ProtocolFeature::ReplyAck);
		DeviceDriver d(server.path(), opts);
		REQUIRE_FALSE(d.frontend().reply_ack());
		d.frontend().set_vring_num(0, 3);
		CHECK(d.frontend().wait_closed());
		CHECK(server.wait_disconnects(1));
	}
	SECTION("NEED_REPLY on a message with its own reply gets one reply only")
	{
		DeviceDriver d(server.path(), one_queue());
		testing::send(d.frontend(), wire::make_request(Request::GetFeatures, {}, wire::kFlagNeedReply));
		auto reply = testing::receive_reply(d.frontend(), Request::GetFeatures, 8);
		/* The next reply is to the next request: no second acknowledgement queued. */
		CHECK(d.frontend().get_queue_num() == 1);
	}
}

TEST_CASE("GET_VRING_BASE stops the ring and returns the next avail index", "[integration]")
{
	PatternDevice device;
	TestServer server(device);
	DeviceDriver d(server.path(), one_queue(8));
	auto &q = d.queue(0);
	uint64_t offset = 0;
	for (int i = 0; i < 11; i++)
		REQUIRE(read_pattern(q, d.memory(), offset, 10));
	CHECK(device.stopped == 0);

	CHECK(d.frontend().get_vring_base(0) == 11);
	CHECK(device.stopped == 1);
	/* Twice in a row: same answer, no second stop. */
	CHECK(d.frontend().get_vring_base(0) == 11);
	CHECK(device.stopped == 1);

	/* The ring is stopped: a buffer made available is not used. */
	uint64_t buf = d.memory().allocate(10);
	DriverBuffer b{buf, 10, true};
	q.add({&b, 1});
	q.kick();
	CHECK_FALSE(q.wait_used(200).has_value());

	/* Restart where it stopped (the kick fd was dropped with the ring). */
	d.frontend().set_vring_base(0, 11);
	d.frontend().set_vring_kick(0, &q.kick_fd());
	auto u = q.wait_used(3000);
	REQUIRE(u.has_value());
	CHECK(u->len == 10);
	offset += 10;
	REQUIRE(read_pattern(q, d.memory(), offset, 10));
	CHECK(device.started == 2);
}

TEST_CASE("a kick while the ring is disabled is not lost", "[integration]")
{
	PatternDevice device;
	TestServer server(device);
	DeviceDriver d(server.path(), one_queue(8));
	auto &q = d.queue(0);
	uint64_t offset = 0;
	REQUIRE(read_pattern(q, d.memory(), offset, 10));

	d.frontend().set_vring_enable(0, false);
	CHECK(device.stopped == 1);
	uint64_t buf = d.memory().allocate(10);
	DriverBuffer b{buf, 10, true};
	q.add({&b, 1});
	q.kick();
	/* The server drains the kick while disabled; nothing may be used yet. */
	CHECK(d.frontend().get_features() != 0); /* the kick was seen by now or never matters */
	CHECK_FALSE(q.wait_used(200).has_value());
	d.frontend().set_vring_enable(0, true);
	auto u = q.wait_used(3000);
	REQUIRE(u.has_value());
	CHECK(u->len == 10);
}

TEST_CASE("two queues work independently", "[integration]")
{
	PatternDevice device(2);
	TestServer server(device);
	DeviceDriver::Options opts;
	opts.queue_sizes = {8, 32};
	DeviceDriver d(server.path(), opts);
	uint64_t offset = 0;
	REQUIRE(read_pattern(d.queue(1), d.memory(), offset, 50));
	REQUIRE(read_pattern(d.queue(0), d.memory(), offset, 50));
	d.frontend().set_vring_enable(0, false);
	REQUIRE(read_pattern(d.queue(1), d.memory(), offset, 50));
}

TEST_CASE("200 connect/disconnect cycles leak no fds", "[integration]")
{
	PatternDevice device;
	TestServer server(device);
	/* One cycle first, so lazily created things (logger, ...) exist. */
	{
		DeviceDriver d(server.path(), one_queue());
	}
	REQUIRE(server.wait_disconnects(1));
	size_t fds = count_open_fds();
	size_t maps = count_mappings("memfd:");
	for (int i = 0; i < 200; i++) {
		auto opts = one_queue(8);
		opts.use_add_mem_reg = i % 2;
		opts.memory_size = 1 << 20;
		DeviceDriver d(server.path(), opts);
		if (i % 10 == 0) {
			uint64_t offset = device.produced;
			REQUIRE(read_pattern(d.queue(0), d.memory(), offset, 64));
		}
	}
	REQUIRE(server.wait_disconnects(201, 10000));
	CHECK_FALSE(server.connected());
	CHECK(count_open_fds() == fds);
	CHECK(count_mappings("memfd:") == maps);
	/* A disconnect detaches the device; it is not a device reset. */
	CHECK(device.detaches == 201);
	CHECK(device.attaches == 201);
	CHECK(server.connections() == 201);
}

namespace {

/* QEMU's start-up and shutdown, message by message, as recorded. */
void qemu_sequence(const std::string &path, PatternDevice &device, bool reply_ack)
{
	const unsigned nq = 2;
	Frontend fe = Frontend::connect(path);

	/* At start. */
	uint64_t features = fe.get_features();
	REQUIRE((features & wire::feature_bit(vf::ProtocolFeatures)) != 0);
	uint64_t pf = fe.get_protocol_features();
	uint64_t want = wire::bit(ProtocolFeature::Mq) | wire::bit(ProtocolFeature::Config) |
			wire::bit(ProtocolFeature::BackendReq) |
			wire::bit(ProtocolFeature::ConfigureMemSlots) |
			wire::bit(ProtocolFeature::ResetDevice) | wire::bit(ProtocolFeature::Status);
	if (reply_ack)
		want |= wire::bit(ProtocolFeature::ReplyAck);
	fe.set_protocol_features(pf & want);
	CHECK(fe.reply_ack() == reply_ack);
	REQUIRE(fe.get_queue_num() == nq);
	fe.set_owner();
	CHECK(fe.get_features() == features);

	std::vector<EventFd> first_calls, errs;
	for (unsigned i = 0; i < nq; i++) {
		first_calls.push_back(EventFd::create());
		errs.push_back(EventFd::create());
		fe.set_vring_call(i, &first_calls.back());
		fe.set_vring_err(i, &errs.back());
	}

	/* The guest sets DRIVER_OK. */
	uint64_t acked = features & (wire::feature_bit(vf::Version1) |
				     wire::feature_bit(vf::RingEventIdx) |
				     wire::feature_bit(vf::RingIndirectDesc) |
				     wire::feature_bit(vf::ProtocolFeatures));
	fe.set_features(acked);
	DriverMemory mem(8 << 20);
	DriverMemory *table[] = {&mem};
	fe.set_mem_table(table);
	std::vector<std::unique_ptr<DriverQueue>> queues;
	for (unsigned i = 0; i < nq; i++) {
		queues.push_back(std::make_unique<DriverQueue>(mem, uint16_t(i), 64));
		auto &q = *queues.back();
		fe.set_vring_num(i, q.size());
		fe.set_vring_base(i, 0);
		fe.set_vring_addr(q.addresses());
		fe.set_vring_kick(i, &q.kick_fd());
		fe.set_vring_call(i, &q.call_fd());
	}
	for (unsigned i = 0; i < nq; i++) {
		fe.set_vring_enable(i, true);
		if (!reply_ack)
			CHECK(fe.get_features() == features); /* QEMU's barrier */
	}
	std::vector<EventFd> old_calls;
	for (unsigned i = 0; i < nq; i++) {
		auto fresh = EventFd::create();
		fe.set_vring_call(i, &fresh);
		old_calls.push_back(EventFd(queues[i]->call_fd().unique_fd().duplicate()));
		queues[i]->set_call_fd(std::move(fresh));
	}
	auto config = fe.get_config(0, 8);
	CHECK(config[0] == 0xC0);
	CHECK(config[7] == 0xC7);

	/* Data flows, and the second round's eventfds are the ones signalled. */
	for (auto &c : first_calls)
		c.drain();
	for (auto &c : old_calls)
		c.drain();
	uint64_t offset = device.produced;
	for (unsigned i = 0; i < nq; i++)
		for (int n = 0; n < 10; n++)
			REQUIRE(read_pattern(*queues[i], mem, offset, 100 + n));
	for (auto &c : first_calls)
		CHECK(c.drain() == 0);
	for (auto &c : old_calls)
		CHECK(c.drain() == 0);
	for (auto &e : errs)
		CHECK(e.drain() == 0);

	/* The guest driver gives up. */
	for (unsigned i = 0; i < nq; i++) {
		fe.set_vring_enable(i, false);
		CHECK(fe.get_vring_base(i) == 10);
	}
	CHECK(device.stopped == nq);
}

} // namespace

TEST_CASE("QEMU's start-up and shutdown sequence, replayed", "[integration][qemu]")
{
	PatternDevice device(2, 8);
	TestServer server(device);
	SECTION("with REPLY_ACK")
	{
		qemu_sequence(server.path(), device, true);
	}
	SECTION("without REPLY_ACK")
	{
		qemu_sequence(server.path(), device, false);
	}
	CHECK(server.wait_disconnects(1));
	CHECK(device.detaches >= 1);
}
