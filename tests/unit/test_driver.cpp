/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * frontend.h on its own: DriverMemory, DriverQueue's bookkeeping and the
 * bytes Frontend puts on the wire, checked against a scripted back-end on
 * a socketpair.
 */
#include <catch2/catch.hpp>

#include <cstring>
#include <future>
#include <sys/stat.h>
#include <thread>

#include <vhostpp/internal/connection.h>
#include <vhostpp/frontend/device_driver.h>
#include <vhostpp/internal/wire.h>
#include <vhostpp/frontend/testing.h>

#include "fd_util.h"

using namespace vhostpp;
using namespace vhostpp::test;
using wire::Request;

TEST_CASE("DriverMemory allocates, bounds-checks and describes itself", "[driver]")
{
	DriverMemory m(10000, 0x4000'0000);
	CHECK(m.size() == 12288); /* whole pages */
	CHECK(m.guest_base() == 0x4000'0000);

	uint64_t a = m.allocate(10, 1);
	uint64_t b = m.allocate(16, 64);
	CHECK(a == 0x4000'0000);
	CHECK(b % 64 == 0);
	CHECK(b >= a + 10);
	CHECK_THROWS_AS(m.allocate(8, 3), std::invalid_argument);
	CHECK_THROWS_AS(m.allocate(m.size()), std::length_error);
	uint64_t rest = m.allocate(m.size() - m.used(), 1);
	CHECK(rest + (m.size() - (rest - m.guest_base())) == m.guest_base() + m.size());
	CHECK_THROWS_AS(m.allocate(1, 1), std::length_error);

	CHECK(m.at(a, 12288).size() == 12288);
	CHECK_THROWS_AS(m.at(a, 12289), std::out_of_range);
	CHECK_THROWS_AS(m.at(a - 1, 1), std::out_of_range);
	CHECK_THROWS_AS(m.at(UINT64_MAX, 2), std::out_of_range);
	CHECK(m.at(a + 12288, 0).size() == 0);

	auto r = m.region();
	CHECK(r.guest_phys_addr == 0x4000'0000);
	CHECK(r.memory_size == 12288);
	CHECK(r.userspace_addr == reinterpret_cast<uintptr_t>(m.at(a, 1).data()));
	CHECK(r.mmap_offset == 0);
	CHECK(m.user_address(a + 5) == r.userspace_addr + 5);

	struct stat st;
	REQUIRE(::fstat(m.fd().get(), &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK(st.st_size == 12288);
	CHECK_THROWS_AS(DriverMemory(0), std::invalid_argument);
}

TEST_CASE("DriverQueue lays out the rings at their alignments", "[driver]")
{
	DriverMemory m(1 << 16, 0x1001); /* an odd base: alignment is of guest addresses */
	DriverQueue q(m, 2, 16);
	CHECK(q.index() == 2);
	CHECK(q.size() == 16);
	CHECK(q.desc_gpa() % 16 == 0);
	CHECK(q.avail_gpa() % 2 == 0);
	CHECK(q.used_gpa() % 4 == 0);
	CHECK(q.avail_gpa() >= q.desc_gpa() + 16 * 16);
	CHECK(q.used_gpa() >= q.avail_gpa() + 4 + 2 * 16 + 2);
	auto a = q.addresses();
	CHECK(a.index == 2);
	CHECK(a.flags == 0);
	CHECK(a.desc_user_addr == m.user_address(q.desc_gpa()));
	CHECK(a.avail_user_addr == m.user_address(q.avail_gpa()));
	CHECK(a.used_user_addr == m.user_address(q.used_gpa()));
	CHECK(a.log_guest_addr == 0);
	CHECK(q.kick_fd().valid());
	CHECK(q.call_fd().valid());
	CHECK(q.kick_fd().fd() != q.call_fd().fd());

	for (uint16_t bad : {0, 3, 100})
		CHECK_THROWS_AS(DriverQueue(m, 0, bad), std::invalid_argument);
}

TEST_CASE("DriverQueue builds chains from its free list", "[driver]")
{
	DriverMemory m(1 << 16);
	DriverQueue q(m, 0, 4);
	uint64_t buf = m.allocate(64);
	DriverBuffer three[] = {{buf, 8, false}, {buf + 8, 8, false}, {buf + 16, 16, true}};
	uint16_t head = q.add(three);
	CHECK(q.free_descriptors() == 1);
	CHECK(q.in_flight() == 1);
	CHECK(q.avail_idx() == 1);

	/* Walk the chain as a device would. */
	auto *t = testing::descriptor_table(q);
	uint16_t i = head;
	CHECK(t[i].addr == buf);
	CHECK(t[i].flags == DriverQueue::kDescNext);
	i = t[i].next;
	CHECK(t[i].addr == buf + 8);
	CHECK(t[i].flags == DriverQueue::kDescNext);
	i = t[i].next;
	CHECK(t[i].addr == buf + 16);
	CHECK(t[i].len == 16);
	CHECK(t[i].flags == DriverQueue::kDescWrite);

	/* The avail ring holds the head. */
	uint16_t ring0;
	std::memcpy(&ring0, m.at(q.avail_gpa() + 4, 2).data(), 2);
	CHECK(ring0 == head);

	CHECK_THROWS_AS(q.add(three), std::length_error);
	CHECK_THROWS_AS(q.add({}), std::invalid_argument);
	CHECK(q.free_descriptors() == 1);

	/* Complete it by hand, as a device: used->ring[0] = {head, 5}; used->idx = 1. */
	uint32_t id = head, len = 5;
	std::memcpy(m.at(q.used_gpa() + 4, 4).data(), &id, 4);
	std::memcpy(m.at(q.used_gpa() + 8, 4).data(), &len, 4);
	uint16_t idx = 1;
	std::memcpy(m.at(q.used_gpa() + 2, 2).data(), &idx, 2);

	auto used = q.get_used();
	REQUIRE(used.has_value());
	CHECK(used->head == head);
	CHECK(used->len == 5);
	CHECK(q.free_descriptors() == 4);
	CHECK(q.in_flight() == 0);
	CHECK(q.last_used() == 1);
	/* used_event follows what the driver consumed. */
	uint16_t used_event;
	std::memcpy(&used_event, m.at(q.avail_gpa() + 4 + 2 * 4, 2).data(), 2);
	CHECK(used_event == 1);
	CHECK_FALSE(q.get_used().has_value());

	/* All four descriptors can now form one chain. */
	DriverBuffer four[] = {{buf, 1, false}, {buf, 1, false}, {buf, 1, false}, {buf, 1, true}};
	CHECK_NOTHROW(q.add(four));
	CHECK(q.free_descriptors() == 0);
}

TEST_CASE("DriverQueue: unknown heads in the used ring free nothing", "[driver]")
{
	DriverMemory m(1 << 16);
	DriverQueue q(m, 0, 4);
	uint64_t buf = m.allocate(64);
	DriverBuffer one{buf, 8, true};
	q.add({&one, 1});
	uint32_t id = 3, len = 0; /* never added */
	std::memcpy(m.at(q.used_gpa() + 4, 4).data(), &id, 4);
	std::memcpy(m.at(q.used_gpa() + 8, 4).data(), &len, 4);
	uint16_t idx = 1;
	std::memcpy(m.at(q.used_gpa() + 2, 2).data(), &idx, 2);
	auto used = q.get_used();
	REQUIRE(used.has_value());
	CHECK(used->head == 3);
	CHECK(q.free_descriptors() == 3);
	CHECK(q.in_flight() == 1);
}

TEST_CASE("DriverQueue: indirect chains and raw access", "[driver]")
{
	DriverMemory m(1 << 16);
	DriverQueue q(m, 0, 4);
	uint64_t buf = m.allocate(64);
	DriverBuffer bufs[] = {{buf, 8, false}, {buf + 8, 8, true}};
	uint16_t head = q.add_indirect(bufs);
	auto d = testing::descriptor_table(q)[head];
	CHECK(d.flags == DriverQueue::kDescIndirect);
	CHECK(d.len == 32);
	auto *table = reinterpret_cast<testing::RawDesc *>(m.at(d.addr, 32).data());
	CHECK(table[0].flags == DriverQueue::kDescNext);
	CHECK(table[0].next == 1);
	CHECK(table[1].flags == DriverQueue::kDescWrite);
	CHECK(q.free_descriptors() == 3);

	testing::publish_raw(q, 3);
	CHECK(q.avail_idx() == 2);
	testing::set_avail_idx(q, 7);
	CHECK(q.avail_idx() == 7);
	uint16_t idx;
	std::memcpy(&idx, m.at(q.avail_gpa() + 2, 2).data(), 2);
	CHECK(idx == 7);
}

TEST_CASE("DriverQueue: flags and event fields", "[driver]")
{
	DriverMemory m(1 << 16);
	DriverQueue q(m, 0, 8);
	auto read16 = [&](uint64_t gpa) {
		uint16_t v;
		std::memcpy(&v, m.at(gpa, 2).data(), 2);
		return v;
	};
	q.set_no_interrupt(true);
	CHECK(read16(q.avail_gpa()) == DriverQueue::kAvailNoInterrupt);
	q.set_no_interrupt(false);
	CHECK(read16(q.avail_gpa()) == 0);
	q.set_used_event(0xabcd);
	CHECK(read16(q.avail_gpa() + 4 + 16) == 0xabcd);
	uint16_t ae = 0x1234;
	std::memcpy(m.at(q.used_gpa() + 4 + 64, 2).data(), &ae, 2);
	CHECK(q.avail_event() == 0x1234);

	q.set_start_index(65530);
	CHECK(q.start_index() == 65530);
	CHECK(q.avail_idx() == 65530);
	CHECK(q.used_idx() == 65530);
	CHECK(q.last_used() == 65530);
	CHECK(read16(q.avail_gpa() + 2) == 65530);
}

TEST_CASE("DriverQueue::wait_used waits on the call eventfd until the deadline", "[driver]")
{
	DriverMemory m(1 << 16);
	DriverQueue q(m, 0, 4);
	uint64_t buf = m.allocate(64);
	DriverBuffer one{buf, 8, true};
	uint16_t head = q.add({&one, 1});

	auto start = std::chrono::steady_clock::now();
	CHECK_FALSE(q.wait_used(50).has_value());
	CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(50));

	/* A "device" thread completes the chain, then signals. */
	std::thread device([&] {
		uint32_t id = head, len = 8;
		std::memcpy(m.at(q.used_gpa() + 4, 4).data(), &id, 4);
		std::memcpy(m.at(q.used_gpa() + 8, 4).data(), &len, 4);
		std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t *>(m.at(q.used_gpa() + 2, 2).data()))
			.store(1, std::memory_order_release);
		q.call_fd().signal();
	});
	auto used = q.wait_used(5000);
	device.join();
	REQUIRE(used.has_value());
	CHECK(used->head == head);
	CHECK(used->len == 8);

	/* A new call eventfd replaces the old one. */
	int old = q.call_fd().fd();
	q.set_call_fd(EventFd::create());
	CHECK(q.call_fd().fd() != old);
}

/* ---------------------------------------------------------------- Frontend */

namespace {

/* The test plays the back-end on one end of a socketpair. */
struct Wire {
	Wire()
	{
		auto [a, b] = socket_pair();
		fe = std::make_unique<Frontend>(std::move(a));
		be = std::move(b);
	}
	wire::Message next()
	{
		return receive_message(be.get(), 2000, MessageReader::Source::FrontEnd);
	}
	void reply(const wire::Message &req, std::span<const uint8_t> body)
	{
		send_message(be.get(), wire::make_reply(req.header, body));
	}
	void ack(const wire::Message &req, uint64_t status = 0)
	{
		reply(req, wire::as_bytes(status));
	}
	std::unique_ptr<Frontend> fe;
	UniqueFd be;
};

template<typename F>
auto async(F f)
{
	return std::async(std::launch::async, std::move(f));
}

} // namespace

TEST_CASE("Frontend: requests and replies", "[frontend]")
{
	Wire w;
	auto f = async([&] { return w.fe->get_features(); });
	auto req = w.next();
	CHECK(req.header.request == uint32_t(Request::GetFeatures));
	CHECK(req.header.flags == wire::kVersion);
	CHECK(req.header.size == 0);
	w.reply(req, wire::as_bytes(uint64_t{0x1'4000'0000}));
	CHECK(f.get() == 0x1'4000'0000);

	auto s = async([&] { w.fe->set_features(0x1'0000'0000); });
	req = w.next();
	CHECK(req.header.request == uint32_t(Request::SetFeatures));
	CHECK(req.header.flags == wire::kVersion); /* no REPLY_ACK yet */
	CHECK(wire::payload_as<uint64_t>(req.payload) == std::optional<uint64_t>(0x1'0000'0000));
	s.get();
	CHECK(w.fe->acked_features() == 0x1'0000'0000);

	auto b = async([&] { return w.fe->get_vring_base(1); });
	req = w.next();
	auto state = wire::payload_as<wire::VringState>(req.payload);
	REQUIRE(state.has_value());
	CHECK(state->index == 1);
	wire::VringState answer{1, 77};
	w.reply(req, wire::as_bytes(answer));
	CHECK(b.get() == 77);
}

TEST_CASE("Frontend: bad replies are errors naming the request", "[frontend]")
{
	Wire w;
	SECTION("wrong request code")
	{
		auto f = async([&] { return w.fe->get_features(); });
		auto req = w.next();
		req.header.request = uint32_t(Request::GetProtocolFeatures);
		w.reply(req, wire::as_bytes(uint64_t{1}));
		CHECK_THROWS_WITH(f.get(), Catch::Contains("GET_FEATURES") &&
						   Catch::Contains("GET_PROTOCOL_FEATURES"));
	}
	SECTION("wrong size")
	{
		auto f = async([&] { return w.fe->get_features(); });
		auto req = w.next();
		w.reply(req, wire::as_bytes(uint32_t{1}));
		CHECK_THROWS_WITH(f.get(), Catch::Contains("GET_FEATURES") &&
						   Catch::Contains("4 bytes"));
	}
	SECTION("no REPLY flag")
	{
		auto f = async([&] { return w.fe->get_features(); });
		auto req = w.next();
		send_message(w.be.get(), wire::make_request(Request::GetFeatures,
							    wire::as_bytes(uint64_t{1})));
		CHECK_THROWS_WITH(f.get(), Catch::Contains("REPLY flag"));
	}
	SECTION("the back-end hangs up")
	{
		auto f = async([&] { return w.fe->get_features(); });
		w.next();
		w.be.reset();
		CHECK_THROWS_AS(f.get(), FrontendError);
	}
	SECTION("a GET_CONFIG refusal (empty config)")
	{
		auto f = async([&] { return w.fe->get_config(0, 8); });
		auto req = w.next();
		wire::ConfigHeader h{0, 0, 0};
		w.reply(req, wire::as_bytes(h));
		CHECK_THROWS_WITH(f.get(), Catch::Contains("GET_CONFIG"));
	}
}

TEST_CASE("Frontend: REPLY_ACK", "[frontend]")
{
	Wire w;
	uint64_t pf = wire::bit(wire::ProtocolFeature::ReplyAck) | wire::bit(wire::ProtocolFeature::Mq);
	auto s = async([&] { w.fe->set_protocol_features(pf); });
	auto req = w.next();
	/* SET_PROTOCOL_FEATURES itself carries no NEED_REPLY (as QEMU sends it). */
	CHECK(req.header.flags == wire::kVersion);
	s.get();
	CHECK(w.fe->reply_ack());

	auto o = async([&] { w.fe->set_owner(); });
	req = w.next();
	CHECK(req.header.request == uint32_t(Request::SetOwner));
	CHECK(req.header.flags == (wire::kVersion | wire::kFlagNeedReply));
	w.ack(req);
	CHECK_NOTHROW(o.get());

	auto n = async([&] { w.fe->set_vring_num(0, 3); });
	req = w.next();
	CHECK((req.header.flags & wire::kFlagNeedReply) != 0);
	w.ack(req, 1);
	CHECK_THROWS_WITH(n.get(), Catch::Contains("SET_VRING_NUM") && Catch::Contains("refused"));

	/* Requests with a reply of their own carry no NEED_REPLY. */
	auto g = async([&] { return w.fe->get_queue_num(); });
	req = w.next();
	CHECK(req.header.flags == wire::kVersion);
	w.reply(req, wire::as_bytes(uint64_t{4}));
	CHECK(g.get() == 4);
}

TEST_CASE("Frontend: vring fd messages and memory messages carry their fds", "[frontend]")
{
	Wire w;
	EventFd e = EventFd::create();
	auto k = async([&] { w.fe->set_vring_kick(2, &e); });
	auto req = w.next();
	CHECK(wire::payload_as<uint64_t>(req.payload) == std::optional<uint64_t>(2));
	REQUIRE(req.fds.size() == 1);
	k.get();

	auto c = async([&] { w.fe->set_vring_call(3, nullptr); });
	req = w.next();
	CHECK(wire::payload_as<uint64_t>(req.payload) ==
	      std::optional<uint64_t>(3 | wire::kVringNoFdFlag));
	CHECK(req.fds.empty());
	c.get();

	DriverMemory m1(1 << 16, 0), m2(1 << 16, 1 << 20);
	DriverMemory *both[] = {&m1, &m2};
	auto t = async([&] { w.fe->set_mem_table(both); });
	req = w.next();
	auto parsed = wire::parse_request(req.header, req.payload, std::move(req.fds));
	auto &table = std::get<wire::MemTable>(parsed.payload);
	REQUIRE(table.regions.size() == 2);
	CHECK(table.regions[1].guest_phys_addr == 1 << 20);
	CHECK(table.regions[1].userspace_addr == m2.region().userspace_addr);
	CHECK(table.fds.size() == 2);
	t.get();

	auto a = async([&] { w.fe->add_mem_reg(m1); });
	req = w.next();
	CHECK(req.header.request == uint32_t(Request::AddMemReg));
	CHECK(req.fds.size() == 1);
	a.get();
	auto r = async([&] { w.fe->rem_mem_reg(m1); });
	req = w.next();
	CHECK(req.header.request == uint32_t(Request::RemMemReg));
	CHECK(req.fds.size() == 1); /* QEMU sends the fd along */
	r.get();

	CHECK_THROWS_AS(w.fe->set_mem_table({}), FrontendError);
}

TEST_CASE("Frontend: setup_queue sends QEMU's sequence", "[frontend]")
{
	Wire w;
	DriverMemory m(1 << 16);
	DriverQueue q(m, 1, 8);
	SECTION("with protocol features: enabled at the end")
	{
		auto s = async([&] {
			w.fe->set_features(wire::feature_bit(wire::virtio_feature::ProtocolFeatures));
			w.fe->setup_queue(q);
		});
		std::vector<uint32_t> codes;
		for (int i = 0; i < 7; i++)
			codes.push_back(w.next().header.request);
		s.get();
		CHECK(codes == std::vector<uint32_t>{2, 8, 10, 9, 12, 13, 18});
	}
	SECTION("without: no SET_VRING_ENABLE")
	{
		auto s = async([&] {
			w.fe->set_features(0);
			w.fe->setup_queue(q);
		});
		std::vector<uint32_t> codes;
		for (int i = 0; i < 6; i++)
			codes.push_back(w.next().header.request);
		s.get();
		CHECK(codes == std::vector<uint32_t>{2, 8, 10, 9, 12, 13});
	}
}

TEST_CASE("Frontend::wait_closed", "[frontend]")
{
	Wire w;
	CHECK_FALSE(w.fe->wait_closed(20));
	FdWatch watch;
	int fd = watch.fd();
	send_bytes(w.be.get(), std::vector<uint8_t>(3, 0), {&fd, 1});
	watch.drop_own();
	w.be.reset();
	CHECK(w.fe->wait_closed(1000));
	CHECK(watch.closed_everywhere(0)); /* the stray fd was closed */
}

TEST_CASE("Frontend::connect fails cleanly", "[frontend]")
{
	size_t fds = count_open_fds();
	CHECK_THROWS_AS(Frontend::connect("/nonexistent/dir/sock", 30), FrontendError);
	CHECK_THROWS_AS(Frontend::connect(std::string(200, 'x'), 30), FrontendError);
	CHECK(count_open_fds() == fds);
}
