/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * virtqueue.h: the device side of a split ring, driven by the library's own
 * DriverQueue over a DriverMemory that is mapped a second time as the
 * device's GuestMemory (as a back-end process would map it).
 */
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <vhostpp/frontend/device_driver.h>
#include <vhostpp/internal/wire.h>
#include <vhostpp/frontend/testing.h>
#include <vhostpp/internal/memory.h>
#include <vhostpp/virtqueue.h>
#include <vhostpp/internal/virtqueue_setup.h>

#include "fd_util.h"
#include "log_capture.h"

using namespace vhostpp;
using namespace vhostpp::test;
using Features = VirtqueueSetup::Features;
using RawDesc = testing::RawDesc;

namespace {

constexpr uint16_t F_NEXT = DriverQueue::kDescNext;
constexpr uint16_t F_WRITE = DriverQueue::kDescWrite;
constexpr uint16_t F_INDIRECT = DriverQueue::kDescIndirect;

/* A ring as a back-end sees it, with the driver's half next to it. */
struct Ring {
	explicit Ring(uint16_t size = 8, Features features = {}, uint16_t start = 0,
		      uint16_t max_size = 256, size_t memory_size = 1 << 20)
		: mem(memory_size, 0x10000), dq(mem, 0, size), vq(0, max_size)
	{
		LogCapture::get();
		gm = std::make_shared<const GuestMemory>(std::vector<std::shared_ptr<const MappedRegion>>{
			MappedRegion::map(mem.region(), mem.fd())});
		if (start)
			dq.set_start_index(start);
		VirtqueueSetup::set_size(vq, size);
		VirtqueueSetup::set_base(vq, start);
		VirtqueueSetup::set_addresses(vq, dq.addresses(), gm);
		VirtqueueSetup::set_features(vq, features);
		VirtqueueSetup::set_call(vq, EventFd(dq.call_fd().unique_fd().duplicate()));
		VirtqueueSetup::set_err(vq, EventFd(err.unique_fd().duplicate()));
		VirtqueueSetup::new_generation(vq);
	}

	/* A buffer of \a len bytes in guest memory, optionally filled. */
	uint64_t buffer(size_t len, uint8_t fill = 0)
	{
		uint64_t gpa = mem.allocate(len, 8);
		std::memset(mem.at(gpa, len).data(), fill, len);
		return gpa;
	}

	/* Make a raw chain of descriptors 0..n-1 available (hostile tests). */
	void raw(std::initializer_list<RawDesc> descs, uint16_t head = 0)
	{
		RawDesc *table = testing::descriptor_table(dq);
		uint16_t i = head;
		for (const auto &d : descs)
			table[i++] = d;
		testing::publish_raw(dq, head);
	}

	/* The driver got \a head back with length 0 and the log says why. */
	void expect_refused(uint16_t head, std::initializer_list<std::string_view> why)
	{
		auto &log = LogCapture::get();
		CHECK_FALSE(vq.pop().has_value());
		auto used = dq.get_used();
		REQUIRE(used.has_value());
		CHECK(used->head == head);
		CHECK(used->len == 0);
		auto line = log.wait_for(mark, why, 0, vhostpp::LogLevel::Error);
		CHECK(line.has_value());
		if (!line)
			FAIL_CHECK(log.dump(mark));
		CHECK(vq.in_flight() == 0);
	}

	/* After a refusal, the ring still carries good chains. */
	void expect_still_works()
	{
		uint64_t buf = buffer(8);
		DriverBuffer b{buf, 8, true};
		uint16_t head = dq.add({&b, 1});
		auto chain = vq.pop();
		REQUIRE(chain.has_value());
		CHECK(chain->head() == head);
		CHECK(chain->writable_bytes() == 8);
		vq.push(*chain, 8);
		auto used = dq.get_used();
		REQUIRE(used.has_value());
		CHECK(used->head == head);
		CHECK(used->len == 8);
	}

	size_t mark = LogCapture::get().mark();
	DriverMemory mem;
	DriverQueue dq;
	std::shared_ptr<const GuestMemory> gm;
	Virtqueue vq;
	EventFd err = EventFd::create();
};

Features event_idx()
{
	Features f;
	f.event_idx = true;
	return f;
}

Features indirect()
{
	Features f;
	f.indirect = true;
	return f;
}

/* Was the call eventfd signalled (drains it)? */
bool called(Ring &r)
{
	return r.dq.call_fd().wait(0);
}

} // namespace

TEST_CASE("an empty ring pops nothing", "[virtqueue]")
{
	Ring r;
	CHECK_FALSE(r.vq.pop().has_value());
	CHECK(r.vq.in_flight() == 0);
	CHECK(r.vq.ready());
}

TEST_CASE("a chain of readable and writable buffers", "[virtqueue]")
{
	Ring r;
	uint64_t in1 = r.buffer(16, 'a'), in2 = r.buffer(8, 'b'), out = r.buffer(32);
	DriverBuffer bufs[] = {{in1, 16, false}, {in2, 8, false}, {out, 32, true}};
	uint16_t head = r.dq.add(bufs);
	CHECK(r.dq.free_descriptors() == 5);

	auto chain = r.vq.pop();
	REQUIRE(chain.has_value());
	CHECK(chain->head() == head);
	CHECK(chain->queue_index() == 0);
	CHECK(chain->readable().size() == 2);
	CHECK(chain->writable().size() == 1);
	CHECK(chain->readable_bytes() == 24);
	CHECK(chain->writable_bytes() == 32);
	CHECK(r.vq.in_flight() == 1);

	std::vector<uint8_t> got(24);
	CHECK(chain->read(0, got) == 24);
	CHECK(std::string(got.begin(), got.end()) == std::string(16, 'a') + std::string(8, 'b'));
	/* Reads past the end stop at the end. */
	CHECK(chain->read(20, got) == 4);

	std::vector<uint8_t> data(40, 'z');
	CHECK(chain->write(0, data) == 32);
	CHECK(r.mem.at(out, 32)[31] == 'z');
	CHECK(chain->fill(30, 'y', 10) == 2);
	CHECK(r.mem.at(out, 32)[31] == 'y');

	r.vq.push(*chain, 32);
	CHECK(r.vq.in_flight() == 0);
	auto used = r.dq.get_used();
	REQUIRE(used.has_value());
	CHECK(used->head == head);
	CHECK(used->len == 32);
	CHECK(r.dq.free_descriptors() == 8);
	CHECK_FALSE(r.dq.get_used().has_value());
}

TEST_CASE("a device header split across descriptors reads as one", "[virtqueue]")
{
	struct Hdr {
		uint32_t a;
		uint32_t b;
		uint32_t c;
	};
	Hdr h{0x11111111, 0x22222222, 0x33333333};
	Ring r;
	auto bytes = reinterpret_cast<const uint8_t *>(&h);
	uint64_t p1 = r.buffer(3), p2 = r.buffer(4), p3 = r.buffer(5);
	std::memcpy(r.mem.at(p1, 3).data(), bytes, 3);
	std::memcpy(r.mem.at(p2, 4).data(), bytes + 3, 4);
	std::memcpy(r.mem.at(p3, 5).data(), bytes + 7, 5);
	DriverBuffer bufs[] = {{p1, 3, false}, {p2, 4, false}, {p3, 5, false}};
	r.dq.add(bufs);
	auto chain = r.vq.pop();
	REQUIRE(chain.has_value());
	auto got = chain->read_object<Hdr>();
	REQUIRE(got.has_value());
	CHECK(got->a == h.a);
	CHECK(got->b == h.b);
	CHECK(got->c == h.c);
	CHECK(chain->read_object<uint32_t>(8) == std::optional<uint32_t>(h.c));

	SECTION("a chain shorter than the header")
	{
		CHECK_FALSE(chain->read_object<Hdr>(1).has_value());
		CHECK_FALSE(chain->write_object(0, h)); /* nothing writable */
	}
}

TEST_CASE("a chain as long as the queue is accepted", "[virtqueue]")
{
	Ring r(8);
	std::vector<DriverBuffer> bufs;
	for (int i = 0; i < 8; i++)
		bufs.push_back({r.buffer(4), 4, true});
	r.dq.add(bufs);
	CHECK(r.dq.free_descriptors() == 0);
	auto chain = r.vq.pop();
	REQUIRE(chain.has_value());
	CHECK(chain->writable().size() == 8);
	CHECK(chain->writable_bytes() == 32);
	DriverBuffer one{r.buffer(4), 4, true};
	CHECK_THROWS_AS(r.dq.add({&one, 1}), std::length_error);
}

TEST_CASE("notifications without EVENT_IDX follow NO_INTERRUPT", "[virtqueue]")
{
	Ring r;
	DriverBuffer b{r.buffer(8), 8, true};

	r.dq.add({&b, 1});
	r.vq.complete(*r.vq.pop(), 8);
	CHECK(called(r));

	r.dq.set_no_interrupt(true);
	r.dq.add({&b, 1});
	r.vq.complete(*r.vq.pop(), 8);
	CHECK_FALSE(called(r));

	r.dq.set_no_interrupt(false);
	r.dq.add({&b, 1});
	r.vq.complete(*r.vq.pop(), 8);
	CHECK(called(r));

	/* notify() without a push signals nothing. */
	r.vq.notify();
	CHECK_FALSE(called(r));
}

TEST_CASE("one notification per batch", "[virtqueue]")
{
	Ring r;
	DriverBuffer b{r.buffer(8), 8, true};
	r.dq.add({&b, 1});
	r.dq.add({&b, 1});
	auto c1 = r.vq.pop(), c2 = r.vq.pop();
	r.vq.push(*c1, 1);
	r.vq.push(*c2, 2);
	r.vq.notify();
	CHECK(r.dq.call_fd().drain() == 1);
}

TEST_CASE("NOTIFY_ON_EMPTY overrides NO_INTERRUPT when the ring runs empty", "[virtqueue]")
{
	Features f;
	f.notify_on_empty = true;
	Ring r(8, f);
	r.dq.set_no_interrupt(true);
	DriverBuffer b{r.buffer(8), 8, true};
	r.dq.add({&b, 1});
	r.dq.add({&b, 1});
	auto c1 = r.vq.pop(), c2 = r.vq.pop();
	r.vq.complete(*c1, 8);
	CHECK_FALSE(called(r)); /* one still in flight */
	r.vq.complete(*c2, 8);
	CHECK(called(r)); /* empty now */

	SECTION("not while the driver has more available")
	{
		r.dq.add({&b, 1});
		r.dq.add({&b, 1});
		auto c = r.vq.pop();
		r.vq.complete(*c, 8);
		CHECK_FALSE(called(r));
	}
}

TEST_CASE("EVENT_IDX: the device signals when used_event is passed", "[virtqueue]")
{
	Ring r(8, event_idx());
	DriverBuffer b{r.buffer(8), 8, true};
	r.dq.set_used_event(2);

	auto round = [&] {
		r.dq.add({&b, 1});
		auto c = r.vq.pop();
		REQUIRE(c.has_value());
		r.vq.complete(*c, 8);
		REQUIRE(r.dq.get_used().has_value());
		return called(r);
	};
	CHECK(round());       /* 0 -> 1: the first notification after a start is never suppressed */
	CHECK_FALSE(round()); /* 1 -> 2 */
	CHECK(round());       /* 2 -> 3 passes used_event 2 */
	CHECK_FALSE(round()); /* 3 -> 4 */
	/* NO_INTERRUPT is ignored under EVENT_IDX. */
	r.dq.set_no_interrupt(true);
	r.dq.set_used_event(4);
	CHECK(round());
}

TEST_CASE("EVENT_IDX: a driver that keeps used_event current gets every completion", "[virtqueue]")
{
	Ring r(8, event_idx());
	DriverBuffer b{r.buffer(8), 8, true};
	for (int i = 0; i < 20; i++) {
		r.dq.add({&b, 1});
		r.vq.complete(*r.vq.pop(), 8);
		CHECK(called(r));
		CHECK(r.dq.get_used().has_value());
	}
}

TEST_CASE("EVENT_IDX: pop publishes avail_event", "[virtqueue]")
{
	SECTION("on")
	{
		Ring r(8, event_idx());
		DriverBuffer b{r.buffer(8), 8, true};
		for (int i = 0; i < 3; i++)
			r.dq.add({&b, 1});
		while (auto c = r.vq.pop())
			r.vq.push(*c, 0);
		CHECK(r.dq.avail_event() == 3);
		/* The driver's kick rule follows it. */
		r.dq.add({&b, 1});
		CHECK(r.dq.kick_if_needed(true));
		CHECK(r.dq.kick_fd().wait(0));
		r.dq.add({&b, 1});
		CHECK_FALSE(r.dq.kick_if_needed(true)); /* device has not caught up */
	}
	SECTION("off: the field is left alone")
	{
		Ring r(8);
		DriverBuffer b{r.buffer(8), 8, true};
		for (int i = 0; i < 3; i++)
			r.dq.add({&b, 1});
		while (auto c = r.vq.pop())
			r.vq.push(*c, 0);
		CHECK(r.dq.avail_event() == 0);
	}
}

TEST_CASE("16-bit indices wrap, used_event included", "[virtqueue]")
{
	SECTION("every completion signalled across the wrap")
	{
		Ring r(8, event_idx(), 65533);
		DriverBuffer b{r.buffer(8), 8, true};
		for (int i = 0; i < 10; i++) {
			uint16_t head = r.dq.add({&b, 1});
			auto c = r.vq.pop();
			REQUIRE(c.has_value());
			CHECK(c->head() == head);
			r.vq.complete(*c, uint32_t(i % 8));
			CHECK(called(r));
			auto used = r.dq.get_used();
			REQUIRE(used.has_value());
			CHECK(used->len == uint32_t(i % 8));
		}
		CHECK(r.dq.used_idx() == uint16_t(65533 + 10));
		CHECK(r.vq.base() == uint16_t(65533 + 10));
	}
	SECTION("used_event just past the wrap")
	{
		Ring r(8, event_idx(), 65534);
		DriverBuffer b{r.buffer(8), 8, true};
		r.dq.set_used_event(1);
		std::vector<bool> calls;
		for (int i = 0; i < 4; i++) {
			r.dq.add({&b, 1});
			r.vq.complete(*r.vq.pop(), 8);
			r.dq.get_used();
			calls.push_back(called(r));
		}
		/* 65534->65535 (first), 65535->0, 0->1, 1->2 passes used_event 1. */
		CHECK(calls == std::vector<bool>{true, false, false, true});
	}
	SECTION("used_event 65535")
	{
		Ring r(8, event_idx(), 65532);
		DriverBuffer b{r.buffer(8), 8, true};
		r.dq.set_used_event(65535);
		std::vector<bool> calls;
		for (int i = 0; i < 5; i++) {
			r.dq.add({&b, 1});
			r.vq.complete(*r.vq.pop(), 8);
			r.dq.get_used();
			calls.push_back(called(r));
		}
		/* ..65533 (first), 65534, 65535, 0 passes 65535, 1 */
		CHECK(calls == std::vector<bool>{true, false, false, true, false});
	}
}

TEST_CASE("indirect descriptors", "[virtqueue]")
{
	SECTION("negotiated")
	{
		Ring r(8, indirect());
		uint64_t in = r.buffer(10, 'q'), out1 = r.buffer(6), out2 = r.buffer(6);
		DriverBuffer bufs[] = {{in, 10, false}, {out1, 6, true}, {out2, 6, true}};
		uint16_t head = r.dq.add_indirect(bufs);
		CHECK(r.dq.free_descriptors() == 7);
		auto c = r.vq.pop();
		REQUIRE(c.has_value());
		CHECK(c->head() == head);
		CHECK(c->readable_bytes() == 10);
		CHECK(c->writable_bytes() == 12);
		std::vector<uint8_t> data(12, 'w');
		CHECK(c->write(0, data) == 12);
		CHECK(r.mem.at(out2, 6)[5] == 'w');
		r.vq.complete(*c, 12);
		auto used = r.dq.get_used();
		REQUIRE(used.has_value());
		CHECK(used->head == head);
		CHECK(used->len == 12);
		CHECK(r.dq.free_descriptors() == 8);
		/* The table is reused for the same head. */
		size_t before = r.mem.used();
		r.dq.add_indirect(bufs);
		CHECK(r.mem.used() == before);
	}
	SECTION("not negotiated: refused, completed with 0")
	{
		Ring r(8);
		DriverBuffer b{r.buffer(8), 8, true};
		uint16_t head = r.dq.add_indirect({&b, 1});
		r.expect_refused(head, {"INDIRECT", "not negotiated"});
		r.expect_still_works();
	}
}

TEST_CASE("hostile chains are refused, completed with length 0, and the ring goes on",
	  "[virtqueue][hostile]")
{
	Ring r(8, indirect());
	uint64_t buf = r.buffer(64);
	const uint64_t end = r.mem.guest_base() + r.mem.size();

	SECTION("self loop")
	{
		r.raw({{buf, 8, F_NEXT, 0}});
		r.expect_refused(0, {"head 0", "longer than the queue size"});
	}
	SECTION("two-cycle")
	{
		r.raw({{buf, 8, F_NEXT, 1}, {buf, 8, F_NEXT, 0}});
		r.expect_refused(0, {"longer than the queue size"});
	}
	SECTION("a cycle through every descriptor")
	{
		RawDesc *t = testing::descriptor_table(r.dq);
		for (uint16_t i = 0; i < 8; i++)
			t[i] = {buf, 8, F_NEXT, uint16_t((i + 1) % 8)};
		testing::publish_raw(r.dq, 3);
		r.expect_refused(3, {"head 3", "longer than the queue size"});
	}
	SECTION("next beyond the queue")
	{
		r.raw({{buf, 8, F_NEXT, 8}});
		r.expect_refused(0, {"next 8"});
	}
	SECTION("next 0xffff")
	{
		r.raw({{buf, 8, F_NEXT, 0xffff}});
		r.expect_refused(0, {"next 65535"});
	}
	SECTION("readable after writable")
	{
		r.raw({{buf, 8, F_WRITE | F_NEXT, 1}, {buf, 8, 0, 0}});
		r.expect_refused(0, {"readable descriptor", "after a writable"});
	}
	SECTION("unmapped buffer")
	{
		r.raw({{0x1'0000'0000, 8, 0, 0}});
		r.expect_refused(0, {"0x100000000", "not inside"});
	}
	SECTION("buffer running past the end of memory")
	{
		r.raw({{end - 4, 8, F_WRITE, 0}});
		r.expect_refused(0, {"not inside"});
	}
	SECTION("addr + len overflowing 64 bits")
	{
		r.raw({{UINT64_MAX - 4, 0x100, F_WRITE, 0}});
		r.expect_refused(0, {"not inside"});
	}
	SECTION("indirect table of length 0")
	{
		r.raw({{buf, 0, F_INDIRECT, 0}});
		r.expect_refused(0, {"indirect table length 0"});
	}
	SECTION("indirect table not a multiple of 16")
	{
		r.raw({{buf, 17, F_INDIRECT, 0}});
		r.expect_refused(0, {"indirect table length 17"});
	}
	SECTION("indirect table longer than 16 x queue size")
	{
		uint64_t big = r.buffer(16 * 9);
		r.raw({{big, 16 * 9, F_INDIRECT, 0}});
		r.expect_refused(0, {"indirect table length 144"});
	}
	SECTION("indirect table unmapped")
	{
		r.raw({{0x1'0000'0000, 32, F_INDIRECT, 0}});
		r.expect_refused(0, {"indirect table", "not inside"});
	}
	SECTION("indirect table past the end of memory")
	{
		r.raw({{end - 16, 32, F_INDIRECT, 0}});
		r.expect_refused(0, {"indirect table", "not inside"});
	}
	SECTION("INDIRECT together with NEXT")
	{
		r.raw({{buf, 16, F_INDIRECT | F_NEXT, 1}, {buf, 8, 0, 0}});
		r.expect_refused(0, {"INDIRECT together with NEXT"});
	}
	SECTION("an indirect descriptor inside an indirect table")
	{
		uint64_t table = r.buffer(32);
		auto *t = reinterpret_cast<RawDesc *>(r.mem.at(table, 32).data());
		t[0] = {buf, 8, F_NEXT, 1};
		t[1] = {buf, 16, F_INDIRECT, 0};
		r.raw({{table, 32, F_INDIRECT, 0}});
		r.expect_refused(0, {"indirect descriptor inside an indirect table"});
	}
	SECTION("a next outside the indirect table")
	{
		uint64_t table = r.buffer(32);
		auto *t = reinterpret_cast<RawDesc *>(r.mem.at(table, 32).data());
		t[0] = {buf, 8, F_NEXT, 2};
		t[1] = {buf, 8, 0, 0};
		r.raw({{table, 32, F_INDIRECT, 0}});
		r.expect_refused(0, {"indirect next 2 outside the table"});
	}
	SECTION("a loop inside an indirect table")
	{
		uint64_t table = r.buffer(32);
		auto *t = reinterpret_cast<RawDesc *>(r.mem.at(table, 32).data());
		t[0] = {buf, 8, F_NEXT, 1};
		t[1] = {buf, 8, F_NEXT, 0};
		r.raw({{table, 32, F_INDIRECT, 0}});
		r.expect_refused(0, {"indirect chain loops"});
	}
	SECTION("a readable descriptor after a writable one in an indirect table")
	{
		uint64_t table = r.buffer(32);
		auto *t = reinterpret_cast<RawDesc *>(r.mem.at(table, 32).data());
		t[0] = {buf, 8, F_WRITE | F_NEXT, 1};
		t[1] = {buf, 8, 0, 0};
		r.raw({{table, 32, F_INDIRECT, 0}});
		r.expect_refused(0, {"readable descriptor"});
	}
	r.expect_still_works();
}

TEST_CASE("zero-length descriptors with bad addresses are harmless", "[virtqueue][hostile]")
{
	Ring r;
	uint64_t buf = r.buffer(8);
	r.raw({{0xdead'0000'0000, 0, F_NEXT, 1}, {buf, 8, F_WRITE | F_NEXT, 2},
	       {UINT64_MAX, 0, F_WRITE, 0}});
	auto c = r.vq.pop();
	REQUIRE(c.has_value());
	CHECK(c->readable_bytes() == 0);
	CHECK(c->writable_bytes() == 8);
	CHECK(c->writable().size() == 1);
}

TEST_CASE("a buffer across two adjacent regions is one buffer", "[virtqueue]")
{
	/* QEMU splits guest RAM into regions adjacent in guest-physical space
	 * (below and above a PCI hole, hot-plugged DIMMs); a driver's buffer may
	 * run from one into the next. */
	Ring r;
	DriverMemory next(0x10000, r.mem.guest_base() + r.mem.size());
	r.gm = r.gm->with_region(MappedRegion::map(next.region(), next.fd()), 8);
	VirtqueueSetup::remap(r.vq, r.gm);
	uint64_t boundary = next.guest_base();
	std::memset(r.mem.at(boundary - 8, 8).data(), 0x11, 8);
	std::memset(next.at(boundary, 8).data(), 0x22, 8);
	r.raw({{boundary - 8, 16, 0, 0}});
	auto c = r.vq.pop();
	REQUIRE(c.has_value());
	CHECK(c->readable().size() == 2);
	CHECK(c->readable_bytes() == 16);
	uint8_t bytes[16];
	CHECK(c->read(0, bytes) == 16);
	CHECK(std::count(bytes, bytes + 8, 0x11) == 8);
	CHECK(std::count(bytes + 8, bytes + 16, 0x22) == 8);
	r.vq.push(*c, 0);
	REQUIRE(r.dq.get_used().has_value());

	/* Writable, one byte across the boundary at any offset. */
	r.raw({{boundary - 3, 6, F_WRITE, 0}});
	c = r.vq.pop();
	REQUIRE(c.has_value());
	CHECK(c->writable_bytes() == 6);
	const uint8_t out[6] = {1, 2, 3, 4, 5, 6};
	CHECK(c->write(0, out) == 6);
	CHECK(r.mem.at(boundary - 3, 3)[2] == 3);
	CHECK(next.at(boundary, 3)[0] == 4);
	CHECK(next.at(boundary, 3)[2] == 6);
	r.vq.push(*c, 6);
	REQUIRE(r.dq.get_used().has_value());

	/* Running past the last region is still refused. */
	r.raw({{boundary + 0x10000 - 8, 16, F_WRITE, 0}});
	r.expect_refused(0, {"not inside one guest memory region"});
	r.expect_still_works();
}

TEST_CASE("a buffer across a hole between two regions is refused", "[virtqueue][hostile]")
{
	Ring r;
	/* A second region one page after the first: a hole in between. */
	DriverMemory next(0x10000, r.mem.guest_base() + r.mem.size() + 0x1000);
	r.gm = r.gm->with_region(MappedRegion::map(next.region(), next.fd()), 8);
	VirtqueueSetup::remap(r.vq, r.gm);
	uint64_t end = r.mem.guest_base() + r.mem.size();
	r.raw({{end - 8, 0x1010, F_WRITE, 0}});
	r.expect_refused(0, {"not inside one guest memory region"});
	r.expect_still_works();
}

TEST_CASE("a chain totalling more than 4 GiB is refused", "[virtqueue][hostile]")
{
	/* Sparse: the pages are never touched. */
	Ring r(8, {}, 0, 256, (size_t(4) << 30) + (1 << 20));
	uint64_t base = r.mem.guest_base() + (1 << 20);
	r.raw({{base, 0xffffffff, F_WRITE | F_NEXT, 1}, {base, 2, F_WRITE, 0}});
	r.expect_refused(0, {"4 GiB"});
}

TEST_CASE("avail ring indices from a hostile driver", "[virtqueue][hostile]")
{
	Ring r;
	auto &log = LogCapture::get();
	SECTION("head >= queue size is skipped")
	{
		testing::publish_raw(r.dq, 8);
		testing::publish_raw(r.dq, 0xffff);
		CHECK_FALSE(r.vq.pop().has_value());
		CHECK(log.wait_for(r.mark, {"head 8", "beyond the queue size"}, 0));
		CHECK(log.wait_for(r.mark, {"head 65535"}, 0));
		CHECK_FALSE(r.vq.broken());
		r.expect_still_works();
	}
	SECTION("avail idx more than the queue size ahead breaks the ring")
	{
		testing::set_avail_idx(r.dq, 9);
		CHECK_FALSE(r.vq.pop().has_value());
		CHECK(r.vq.broken());
		CHECK(log.wait_for(r.mark, {"avail idx 9"}, 0));
		CHECK(r.err.wait(0));
		/* It stays broken: nothing more is read from the ring. */
		testing::set_avail_idx(r.dq, 1);
		CHECK_FALSE(r.vq.pop().has_value());
	}
	SECTION("avail idx going backwards breaks the ring")
	{
		DriverBuffer b{r.buffer(8), 8, true};
		r.dq.add({&b, 1});
		r.dq.add({&b, 1});
		auto c1 = r.vq.pop(), c2 = r.vq.pop();
		REQUIRE(c2.has_value());
		testing::set_avail_idx(r.dq, 1);
		CHECK_FALSE(r.vq.pop().has_value());
		CHECK(r.vq.broken());
		CHECK(log.wait_for(r.mark, {"avail idx 1"}, 0));
	}
	SECTION("a head made available twice while in flight")
	{
		DriverBuffer b{r.buffer(8), 8, true};
		uint16_t head = r.dq.add({&b, 1});
		auto c = r.vq.pop();
		REQUIRE(c.has_value());
		testing::publish_raw(r.dq, head);
		CHECK_FALSE(r.vq.pop().has_value());
		CHECK(log.wait_for(r.mark, {"head 0", "in flight"}, 0));
		r.vq.complete(*c, 8);
		CHECK(r.dq.get_used()->head == head);
	}
	SECTION("exactly a full ring is fine")
	{
		DriverBuffer b{r.buffer(8), 8, true};
		for (int i = 0; i < 8; i++)
			r.dq.add({&b, 1});
		int n = 0;
		while (r.vq.pop())
			n++;
		CHECK(n == 8);
		CHECK_FALSE(r.vq.broken());
	}
}

TEST_CASE("the used ring refuses what the device did not pop", "[virtqueue][hostile]")
{
	Ring r;
	auto &log = LogCapture::get();
	DriverBuffer b{r.buffer(8), 8, true};
	r.dq.add({&b, 1});
	auto c = r.vq.pop();
	REQUIRE(c.has_value());

	SECTION("twice")
	{
		r.vq.push(*c, 8);
		r.vq.push(*c, 8);
		CHECK(log.wait_for(r.mark, {"push of head 0 refused"}, 0));
		CHECK(r.dq.used_idx() == 1);
	}
	SECTION("a length larger than the writable bytes is clamped")
	{
		r.vq.push(*c, 1000);
		CHECK(log.wait_for(r.mark, {"used length 1000 clamped"}, 0));
		CHECK(r.dq.get_used()->len == 8);
	}
	SECTION("a chain from before the ring restarted")
	{
		VirtqueueSetup::new_generation(r.vq);
		r.vq.push(*c, 8);
		CHECK(log.wait_for(r.mark, {"refused", "not in flight"}, 0));
		CHECK(r.dq.used_idx() == 0);
	}
	SECTION("a chain of another queue")
	{
		Ring other;
		other.dq.add({&b, 1});
		auto foreign = other.vq.pop();
		REQUIRE(foreign.has_value());
		/* Same index 0, but never popped from r's ring generation: */
		r.vq.push(*c, 0);
		r.vq.push(*foreign, 8);
		CHECK(r.dq.used_idx() == 1);
	}
}

TEST_CASE("descriptors are copied once: rewriting them after pop changes nothing",
	  "[virtqueue][hostile]")
{
	Ring r(8, indirect());
	uint64_t good = r.buffer(16), evil = r.buffer(16);
	SECTION("direct")
	{
		DriverBuffer bufs[] = {{good, 8, false}, {good + 8, 8, true}};
		r.dq.add(bufs);
		auto c = r.vq.pop();
		REQUIRE(c.has_value());
		RawDesc *t = testing::descriptor_table(r.dq);
		t[0] = {evil, 4096, F_WRITE, 0};
		t[1] = {evil, 4096, F_WRITE, 0};
		CHECK(c->readable_bytes() == 8);
		CHECK(c->writable_bytes() == 8);
		std::vector<uint8_t> data(8, 'k');
		c->write(0, data);
		CHECK(r.mem.at(good + 8, 1)[0] == 'k');
		CHECK(r.mem.at(evil, 1)[0] == 0);
	}
	SECTION("indirect table")
	{
		DriverBuffer bufs[] = {{good, 8, true}};
		uint16_t head = r.dq.add_indirect(bufs);
		auto c = r.vq.pop();
		REQUIRE(c.has_value());
		RawDesc d = testing::descriptor_table(r.dq)[head];
		auto *table = reinterpret_cast<RawDesc *>(r.mem.at(d.addr, 16).data());
		table[0] = {evil, 16, F_WRITE, 0};
		CHECK(c->writable_bytes() == 8);
		std::vector<uint8_t> data(16, 'k');
		CHECK(c->write(0, data) == 8);
		CHECK(r.mem.at(evil, 1)[0] == 0);
	}
}

TEST_CASE("ring sizes", "[virtqueue]")
{
	auto &log = LogCapture::get();
	Virtqueue vq(3, 256);
	for (uint32_t bad : {0u, 3u, 6u, 100u, 65536u, 0x10000u + 8, 0xffffffffu}) {
		INFO(bad);
		size_t mark = log.mark();
		CHECK_THROWS_WITH(VirtqueueSetup::set_size(vq, bad), Catch::Contains("SET_VRING_NUM") &&
							    Catch::Contains("queue 3") &&
							    Catch::Contains(std::to_string(bad)));
		(void)mark;
	}
	CHECK_THROWS_WITH(VirtqueueSetup::set_size(vq, 512), Catch::Contains("maximum 256"));
	CHECK_THROWS_WITH(VirtqueueSetup::set_size(vq, 32768), Catch::Contains("maximum 256"));
	CHECK_NOTHROW(VirtqueueSetup::set_size(vq, 1));
	CHECK_NOTHROW(VirtqueueSetup::set_size(vq, 256));
	CHECK(vq.size() == 256);

	Virtqueue big(0, 32768);
	CHECK_NOTHROW(VirtqueueSetup::set_size(big, 32768));
	CHECK_THROWS_AS(VirtqueueSetup::set_size(big, 65536), wire::ProtocolError);
}

TEST_CASE("ring addresses", "[virtqueue][hostile]")
{
	DriverMemory mem(0x10000, 0x10000);
	DriverQueue dq(mem, 0, 8);
	auto gm = std::make_shared<const GuestMemory>(std::vector<std::shared_ptr<const MappedRegion>>{
		MappedRegion::map(mem.region(), mem.fd())});
	Virtqueue vq(0, 256);
	auto good = dq.addresses();
	const uint64_t uend = mem.region().userspace_addr + mem.size();

	CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, good, gm), Catch::Contains("SET_VRING_NUM first"));
	VirtqueueSetup::set_size(vq, 8);
	CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, good, nullptr), Catch::Contains("memory table"));

	auto bad = good;
	bad.desc_user_addr += 8;
	CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, bad, gm), Catch::Contains("misaligned"));
	bad = good;
	bad.avail_user_addr += 1;
	CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, bad, gm), Catch::Contains("misaligned"));
	bad = good;
	bad.used_user_addr += 2;
	CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, bad, gm), Catch::Contains("misaligned"));
	bad = good;
	bad.desc_user_addr = 0;
	CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, bad, gm), Catch::Contains("not each inside"));
	bad = good;
	bad.used_user_addr = uend - 16; /* the used ring of 8 runs past the end */
	CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, bad, gm), Catch::Contains("not each inside"));
	bad = good;
	bad.avail_user_addr = uend;
	CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, bad, gm), Catch::Contains("not each inside"));
	bad = good;
	bad.desc_user_addr = UINT64_MAX - 15;
	CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, bad, gm), Catch::Contains("not each inside"));
	bad = good;
	/* Guest-physical, not user, addresses: not where QEMU says rings are. */
	bad.desc_user_addr = dq.desc_gpa();
	bad.avail_user_addr = dq.avail_gpa();
	bad.used_user_addr = dq.used_gpa();
	CHECK_THROWS_AS(VirtqueueSetup::set_addresses(vq, bad, gm), wire::ProtocolError);
	bad = good;
	bad.flags = wire::kVringAddrFlagLog;
	CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, bad, gm), Catch::Contains("logging"));
	bad.flags = 0x80;
	CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, bad, gm), Catch::Contains("flags"));
	CHECK_FALSE(vq.ready());

	CHECK_NOTHROW(VirtqueueSetup::set_addresses(vq, good, gm));
	CHECK(vq.ready());

	SECTION("straddling two regions")
	{
		/* A second region directly after the first in user space too. */
		DriverMemory other(0x10000, 0x100000);
		wire::MemoryRegion desc{0x100000, 0x10000, uend, 0};
		auto two = gm->with_region(MappedRegion::map(desc, other.fd()), 8);
		auto straddle = good;
		straddle.desc_user_addr = uend - 64; /* 128 bytes of descriptors */
		CHECK_THROWS_WITH(VirtqueueSetup::set_addresses(vq, straddle, two), Catch::Contains("not each inside"));
	}
}

TEST_CASE("a memory table without the rings stops the queue", "[virtqueue]")
{
	Ring r;
	DriverBuffer b{r.buffer(8), 8, true};
	r.dq.add({&b, 1});
	auto c = r.vq.pop();
	REQUIRE(c.has_value());

	DriverMemory elsewhere(0x10000, 0x4000'0000);
	auto other = std::make_shared<const GuestMemory>(std::vector<std::shared_ptr<const MappedRegion>>{
		MappedRegion::map(elsewhere.region(), elsewhere.fd())});
	VirtqueueSetup::remap(r.vq, other);
	CHECK_FALSE(r.vq.ready());
	r.dq.add({&b, 1});
	CHECK_FALSE(r.vq.pop().has_value());
	/* The chain popped before still holds its (old) mapping. */
	std::vector<uint8_t> data(8, 'm');
	CHECK(c->write(0, data) == 8);
	CHECK(r.mem.at(b.gpa, 1)[0] == 'm');

	/* Back to the original table: the ring works again. */
	VirtqueueSetup::remap(r.vq, r.gm);
	CHECK(r.vq.ready());
}

TEST_CASE("GET_VRING_BASE's answer is the next avail index to read", "[virtqueue]")
{
	Ring r(8, {}, 100);
	DriverBuffer b{r.buffer(8), 8, true};
	CHECK(r.vq.base() == 100);
	r.dq.add({&b, 1});
	r.dq.add({&b, 1});
	r.dq.add({&b, 1});
	r.vq.pop();
	r.vq.pop();
	CHECK(r.vq.base() == 102);
}

TEST_CASE("a rewind goes back to the oldest chain in flight, by avail position", "[virtqueue]")
{
	/* An in-order device stops (VM paused) with chains in flight; a refused
	 * entry was popped (and completed) between them. Counting the chains in
	 * flight would rewind onto the refused entry and lose the oldest chain. */
	Ring r(8, {}, 10);
	DriverBuffer b{r.buffer(8), 8, true};
	uint16_t first = r.dq.add({&b, 1});
	/* A head beyond the queue size: skipped and completed as refused. */
	testing::publish_raw(r.dq, 200);
	uint16_t second = r.dq.add({&b, 1});
	auto c1 = r.vq.pop();
	REQUIRE(c1.has_value());
	CHECK(c1->head() == first);
	auto c2 = r.vq.pop();
	REQUIRE(c2.has_value());
	CHECK(c2->head() == second);
	CHECK(r.vq.base() == 13);
	CHECK(r.vq.in_flight() == 2);

	VirtqueueSetup::rewind_in_flight(r.vq);
	CHECK(r.vq.base() == 10);
	CHECK(r.vq.in_flight() == 0);
	/* The next start hands the oldest chain to the device again. */
	auto again = r.vq.pop();
	REQUIRE(again.has_value());
	CHECK(again->head() == first);
}

TEST_CASE("a rewind after in-order completions keeps the completed ones", "[virtqueue]")
{
	Ring r(8);
	DriverBuffer b{r.buffer(8), 8, true};
	for (int i = 0; i < 4; i++)
		r.dq.add({&b, 1});
	std::vector<DescriptorChain> popped;
	for (int i = 0; i < 4; i++)
		popped.push_back(std::move(*r.vq.pop()));
	r.vq.push(popped[0], 8);
	r.vq.push(popped[1], 8);
	VirtqueueSetup::rewind_in_flight(r.vq);
	CHECK(r.vq.base() == 2);
	auto again = r.vq.pop();
	REQUIRE(again.has_value());
	CHECK(again->head() == popped[2].head());
}

TEST_CASE("a rewind across the 16-bit wrap", "[virtqueue]")
{
	Ring r(8, {}, 65534);
	DriverBuffer b{r.buffer(8), 8, true};
	for (int i = 0; i < 3; i++)
		r.dq.add({&b, 1});
	auto c0 = r.vq.pop();
	auto c1 = r.vq.pop();
	auto c2 = r.vq.pop();
	REQUIRE(c2.has_value());
	CHECK(r.vq.base() == 1);
	r.vq.push(*c0, 8);
	VirtqueueSetup::rewind_in_flight(r.vq);
	CHECK(r.vq.base() == 65535);
}

namespace {

template<typename T>
concept chain_reads = requires(const DescriptorChain &c) { c.read_object<T>(0); };
template<typename T>
concept chain_writes = requires(const DescriptorChain &c, const T &v) { c.write_object(0, v); };

} // namespace

/* One chain is one head to push back once: copies would make a second push easy. */
static_assert(!std::is_copy_constructible_v<DescriptorChain>);
static_assert(!std::is_copy_assignable_v<DescriptorChain>);
static_assert(std::is_nothrow_move_constructible_v<DescriptorChain>);
static_assert(std::is_nothrow_move_assignable_v<DescriptorChain>);
/* Objects read from or written to the guest are bytes: trivially copyable only. */
static_assert(chain_reads<uint32_t>);
static_assert(chain_writes<uint64_t>);
static_assert(!chain_reads<std::string>);
static_assert(!chain_writes<std::vector<int>>);

/* What a device can do with a queue: no ring set-up (that is the session's). */
template<typename Q>
concept device_can_set_up = requires(Q &q) { q.set_size(8u); } || requires(Q &q) { q.set_base(0u); } ||
			    requires(Q &q) { q.new_generation(); } || requires(Q &q) { q.reset(); } ||
			    requires(Q &q) { q.rewind_in_flight(); };
static_assert(!device_can_set_up<Virtqueue>);

TEST_CASE("reset forgets everything", "[virtqueue]")
{
	Ring r;
	DriverBuffer b{r.buffer(8), 8, true};
	r.dq.add({&b, 1});
	auto c = r.vq.pop();
	VirtqueueSetup::reset(r.vq);
	CHECK(r.vq.size() == 0);
	CHECK_FALSE(r.vq.ready());
	CHECK(r.vq.in_flight() == 0);
	CHECK_FALSE(r.vq.pop().has_value());
	r.vq.push(*c, 8); /* refused, no crash */
	CHECK(r.dq.used_idx() == 0);
}
