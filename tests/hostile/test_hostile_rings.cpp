/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Hostile guests and sloppy devices: classes 18-25 of
 * shared/hostile-inputs.md (rings, indices, descriptors, used ring,
 * notifications), through a real server over a real socket.
 *
 * A refused chain comes back to the driver with length 0 and a log line
 * naming the queue, the head and the bad field; the ring goes on.
 */
#include "hostile.h"

#include <vhostpp/internal/logging.h>

using namespace vhostpp;
using namespace vhostpp::test;
using RawDesc = testing::RawDesc;

namespace {

constexpr uint16_t F_NEXT = DriverQueue::kDescNext;
constexpr uint16_t F_WRITE = DriverQueue::kDescWrite;
constexpr uint16_t F_INDIRECT = DriverQueue::kDescIndirect;

/* Write \a descs at table[first...] and make \a head available, then kick. */
void publish(DriverQueue &q, std::initializer_list<RawDesc> descs, uint16_t first = 0,
	     std::optional<uint16_t> head = std::nullopt)
{
	RawDesc *t = testing::descriptor_table(q);
	uint16_t i = first;
	for (const auto &d : descs)
		t[i++] = d;
	testing::publish_raw(q, head.value_or(first));
	q.kick();
}

/* The chain at \a head came back with length 0, and the log says why. */
void expect_refused(Hostile &h, DriverQueue &q, uint16_t head,
		    std::initializer_list<std::string_view> why)
{
	auto used = q.wait_used(3000);
	REQUIRE(used.has_value());
	CHECK(used->head == head);
	CHECK(used->len == 0);
	h.expect_log(why);
}

/* The ring still moves data. */
void expect_ring_works(PatternDevice &device, DeviceDriver &d, size_t queue = 0)
{
	uint64_t offset = device.produced;
	CHECK(read_pattern(d.queue(queue), d.memory(), offset, 32));
}

uint64_t gpa_of_table(DeviceDriver &d, size_t entries)
{
	return d.memory().allocate(16 * entries, 16);
}

RawDesc *table_at(DeviceDriver &d, uint64_t gpa, size_t entries)
{
	return reinterpret_cast<RawDesc *>(d.memory().at(gpa, 16 * entries).data());
}

} // namespace

TEST_CASE("18: head >= queue size, avail idx jumping ahead or going backwards", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	SECTION("heads beyond the queue are skipped")
	{
		auto d = h.driver(one_queue(64));
		auto &q = d->queue(0);
		testing::publish_raw(q, 64);
		testing::publish_raw(q, 0xffff);
		q.kick();
		h.expect_log({"queue 0", "head 64", "beyond the queue size 64"});
		h.expect_log({"queue 0", "head 65535"});
		expect_ring_works(device, *d);
	}
	SECTION("avail idx more than a queue ahead breaks the ring and signals the error fd")
	{
		auto d = h.driver(one_queue(64));
		auto &q = d->queue(0);
		EventFd err = EventFd::create();
		d->frontend().set_vring_err(0, &err);
		testing::set_avail_idx(q, 65);
		q.kick();
		CHECK(err.wait(3000));
		h.expect_log({"queue 0", "avail idx 65", "more than the queue size 64"});
		/* Nothing more is read from that ring... */
		uint64_t buf = d->memory().allocate(16);
		DriverBuffer b{buf, 16, true};
		q.add({&b, 1});
		q.kick();
		CHECK_FALSE(q.wait_used(200).has_value());
	}
	SECTION("avail idx going backwards")
	{
		auto d = h.driver(one_queue(64));
		auto &q = d->queue(0);
		EventFd err = EventFd::create();
		d->frontend().set_vring_err(0, &err);
		expect_ring_works(device, *d);
		expect_ring_works(device, *d);
		testing::set_avail_idx(q, 1);
		q.kick();
		CHECK(err.wait(3000));
		h.expect_log({"queue 0", "avail idx 1"});
	}
	h.finish();
}

TEST_CASE("19: next beyond the queue, loops, chains longer than the queue", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	{
		auto d = h.driver(one_queue(8));
		auto &q = d->queue(0);
		uint64_t buf = d->memory().allocate(64);

		publish(q, {{buf, 8, F_WRITE | F_NEXT, 8}});
		expect_refused(h, q, 0, {"head 0", "next 8 beyond the queue size 8"});
		publish(q, {{buf, 8, F_WRITE | F_NEXT, 0xffff}}, 2);
		expect_refused(h, q, 2, {"head 2", "next 65535"});

		publish(q, {{buf, 8, F_WRITE | F_NEXT, 3}}, 3); /* self loop */
		expect_refused(h, q, 3, {"head 3", "longer than the queue size"});
		publish(q, {{buf, 8, F_WRITE | F_NEXT, 5}, {buf, 8, F_WRITE | F_NEXT, 4}}, 4);
		expect_refused(h, q, 4, {"head 4", "longer than the queue size"});

		/* A cycle through every descriptor: longer than the queue. */
		RawDesc *t = testing::descriptor_table(q);
		for (uint16_t i = 0; i < 8; i++)
			t[i] = {buf, 1, F_WRITE | F_NEXT, uint16_t((i + 1) % 8)};
		testing::publish_raw(q, 6);
		q.kick();
		expect_refused(h, q, 6, {"head 6", "longer than the queue size 8"});

		/* Exactly the queue size, without a loop, is fine. */
		for (uint16_t i = 0; i < 8; i++)
			t[i] = {buf + i, 1, uint16_t(F_WRITE | (i < 7 ? F_NEXT : 0)), uint16_t(i + 1)};
		testing::publish_raw(q, 0);
		q.kick();
		auto used = q.wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->len == 8);
		expect_ring_works(device, *d);
	}
	h.finish();
}

TEST_CASE("20: hostile indirect tables", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	{
		auto d = h.driver(one_queue(8));
		auto &q = d->queue(0);
		uint64_t buf = d->memory().allocate(64);
		const uint64_t end = d->memory().guest_base() + d->memory().size();

		publish(q, {{buf, 0, F_INDIRECT, 0}});
		expect_refused(h, q, 0, {"head 0", "indirect table length 0"});
		publish(q, {{buf, 24, F_INDIRECT, 0}});
		expect_refused(h, q, 0, {"indirect table length 24"});
		uint64_t huge = gpa_of_table(*d, 9);
		publish(q, {{huge, 16 * 9, F_INDIRECT, 0}});
		expect_refused(h, q, 0, {"indirect table length 144"});
		publish(q, {{0x1000, 32, F_INDIRECT, 0}});
		expect_refused(h, q, 0, {"indirect table addr 0x1000", "not inside"});
		publish(q, {{end - 16, 32, F_INDIRECT, 0}});
		expect_refused(h, q, 0, {"indirect table addr", "not inside"});
		publish(q, {{buf, 16, F_INDIRECT | F_NEXT, 1}, {buf, 8, F_WRITE, 0}});
		expect_refused(h, q, 0, {"INDIRECT together with NEXT"});

		uint64_t tg = gpa_of_table(*d, 2);
		RawDesc *table = table_at(*d, tg, 2);
		table[0] = {buf, 8, F_WRITE | F_NEXT, 1};
		table[1] = {tg, 32, F_INDIRECT, 0};
		publish(q, {{tg, 32, F_INDIRECT, 0}});
		expect_refused(h, q, 0, {"indirect descriptor inside an indirect table"});

		table[1] = {buf, 8, F_WRITE, 0};
		table[0].next = 2;
		publish(q, {{tg, 32, F_INDIRECT, 0}});
		expect_refused(h, q, 0, {"indirect next 2 outside the table of 2"});

		table[0].next = 1;
		table[1] = {buf, 8, F_WRITE | F_NEXT, 0};
		publish(q, {{tg, 32, F_INDIRECT, 0}});
		expect_refused(h, q, 0, {"indirect chain loops"});

		/* A well-formed table still works after all that. */
		table[0] = {buf, 8, F_WRITE | F_NEXT, 1};
		table[1] = {buf + 8, 8, F_WRITE, 0};
		publish(q, {{tg, 32, F_INDIRECT, 0}});
		auto used = q.wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->len == 16);
		expect_ring_works(device, *d);
	}
	h.finish();
}

TEST_CASE("21: hostile buffers", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	SECTION("unmapped, overflowing, straddling, readable after writable")
	{
		auto d = h.driver(one_queue(8));
		auto &q = d->queue(0);
		auto &mem = d->memory();
		uint64_t buf = mem.allocate(64);
		const uint64_t end = mem.guest_base() + mem.size();

		publish(q, {{0x1000, 8, F_WRITE, 0}});
		expect_refused(h, q, 0, {"head 0", "buffer addr 0x1000 len 8", "not inside"});
		publish(q, {{UINT64_MAX - 7, 16, F_WRITE, 0}});
		expect_refused(h, q, 0, {"buffer addr 0xfffffffffffffff8"});
		publish(q, {{end - 8, 16, F_WRITE, 0}});
		expect_refused(h, q, 0, {"not inside one guest memory region"});
		publish(q, {{buf, 8, F_WRITE | F_NEXT, 1}, {buf, 8, 0, 0}});
		expect_refused(h, q, 0, {"readable descriptor", "after a writable one"});

		/* Across two regions that are adjacent in guest-physical space: one
		 * buffer, split per region (QEMU's RAM regions are laid out so). */
		DriverMemory next(1 << 16, end);
		DriverMemory *both[] = {&mem, &next};
		d->frontend().set_mem_table(both);
		publish(q, {{end - 8, 16, F_WRITE, 0}});
		auto across = q.wait_used(3000);
		REQUIRE(across.has_value());
		CHECK(across->len == 16);
		publish(q, {{end - 8, 8, F_WRITE | F_NEXT, 1}, {end, 8, F_WRITE, 0}});
		auto used = q.wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->len == 16);
		/* Past the last one: refused. */
		publish(q, {{end + (1 << 16) - 8, 16, F_WRITE, 0}});
		expect_refused(h, q, 0, {"not inside one guest memory region"});

		/* Zero-length buffers with bad addresses touch nothing and are fine. */
		publish(q, {{0xdead'0000, 0, F_NEXT, 1}, {buf, 8, F_WRITE | F_NEXT, 2}, {UINT64_MAX, 0, F_WRITE, 0}});
		used = q.wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->len == 8);
		expect_ring_works(device, *d);
	}
	SECTION("a chain totalling more than 4 GiB")
	{
		auto o = one_queue(8);
		o.memory_size = (size_t(4) << 30) + (1 << 20); /* sparse: never touched */
		auto d = h.driver(o);
		auto &q = d->queue(0);
		uint64_t base = d->memory().guest_base() + (1 << 20);
		publish(q, {{base, 0xffffffff, F_WRITE | F_NEXT, 1}, {base, 2, F_WRITE, 0}});
		expect_refused(h, q, 0, {"head 0", "more than 4 GiB"});
		expect_ring_works(device, *d);
	}
	h.finish();
}

TEST_CASE("22: descriptors rewritten between validation and use", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	{
		auto d = h.driver(one_queue(8));
		auto &q = d->queue(0);
		auto &mem = d->memory();
		uint64_t good = mem.allocate(64), evil = mem.allocate(64);
		std::memset(mem.at(evil, 64).data(), 0xee, 64);
		const bool indirect = GENERATE(false, true);
		INFO((indirect ? "indirect" : "direct"));

		h.server.run([&] { device.hold(true); });
		DriverBuffer b[] = {{good, 32, true}, {good + 32, 32, true}};
		uint16_t head = indirect ? q.add_indirect(b) : q.add(b);
		q.kick();
		REQUIRE(wait_until([&] { return device.held_count() == 1; }));

		/* The guest rewrites the chain after the device took it. */
		RawDesc *t = testing::descriptor_table(q);
		if (indirect) {
			RawDesc *table = table_at(*d, t[head].addr, 2);
			table[0] = {evil, 64, F_WRITE, 0};
			table[1] = {evil, 64, F_WRITE, 0};
			t[head] = {evil, 16, F_INDIRECT, 0};
		} else {
			uint16_t second = t[head].next;
			t[head] = {evil, 64, F_WRITE, 0};
			t[second] = {evil, 64, F_WRITE, 0};
		}
		uint64_t start = device.produced;
		h.server.run([&] {
			device.hold(false);
			device.release();
		});
		auto used = q.wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->head == head);
		CHECK(used->len == 64);
		/* The data went where the descriptors pointed when they were validated. */
		auto g = mem.at(good, 64);
		size_t wrong = 0;
		for (size_t i = 0; i < 64; i++)
			wrong += g[i] != uint8_t((start + i) % 251);
		CHECK(wrong == 0);
		auto e = mem.at(evil, 64);
		CHECK(std::all_of(e.begin(), e.end(), [](uint8_t x) { return x == 0xee; }));
		expect_ring_works(device, *d);
	}
	h.finish();
}

namespace {

/*
 * A device with a 12-byte request header {a, b, c} that answers a + b + c.
 * Requests without readable bytes are plain reads (zeros), so a fresh
 * front-end can be served by Hostile::finish().
 */
class SumDevice : public Device
{
public:
	struct Request {
		uint32_t a, b, c;
	};
	unsigned num_queues() const override { return 1; }
	void queue_kicked(Virtqueue &q) override
	{
		while (auto chain = q.pop()) {
			if (chain->readable_bytes() == 0) {
				q.push(*chain, uint32_t(chain->fill(0, 0, chain->writable_bytes())));
				continue;
			}
			auto req = chain->read_object<Request>();
			if (!req) {
				logger().error("sum device: queue {} head {}: request of {} bytes is shorter "
					       "than its {}-byte header",
					       q.index(), chain->head(), chain->readable_bytes(),
					       sizeof(Request));
				q.push(*chain, 0);
				continue;
			}
			uint32_t sum = req->a + req->b + req->c;
			q.push(*chain, chain->write_object(0, sum) ? 4 : 0);
		}
		q.notify();
	}
};

} // namespace

TEST_CASE("23: a device header split across descriptors, or shorter than expected", "[hostile]")
{
	SumDevice device;
	Hostile h(device);
	{
		auto d = h.driver(one_queue(8));
		auto &q = d->queue(0);
		auto &mem = d->memory();
		SumDevice::Request req{1000, 200, 34};
		auto raw = reinterpret_cast<const uint8_t *>(&req);
		uint64_t hdr = mem.allocate(12), out = mem.allocate(4);
		std::memcpy(mem.at(hdr, 12).data(), raw, 12);

		auto ask = [&](std::vector<DriverBuffer> bufs, bool indirect) {
			std::memset(mem.at(out, 4).data(), 0, 4);
			uint16_t head = indirect ? q.add_indirect(bufs) : q.add(bufs);
			q.kick();
			auto used = q.wait_used(3000);
			REQUIRE(used.has_value());
			CHECK(used->head == head);
			return used->len;
		};
		for (bool indirect : {false, true}) {
			INFO((indirect ? "indirect" : "direct"));
			/* 5 + 7 bytes, then 1 + 1 + 10: the device reads one header. */
			CHECK(ask({{hdr, 5, false}, {hdr + 5, 7, false}, {out, 4, true}}, indirect) == 4);
			uint32_t sum;
			std::memcpy(&sum, mem.at(out, 4).data(), 4);
			CHECK(sum == 1234);
			CHECK(ask({{hdr, 1, false}, {hdr + 1, 1, false}, {hdr + 2, 10, false}, {out, 4, true}},
				  indirect) == 4);
			std::memcpy(&sum, mem.at(out, 4).data(), 4);
			CHECK(sum == 1234);
			/* Only 8 of the 12 header bytes. */
			CHECK(ask({{hdr, 3, false}, {hdr + 3, 5, false}, {out, 4, true}}, indirect) == 0);
			h.expect_log({"sum device", "request of 8 bytes is shorter than its 12-byte header"});
			/* A header but no room for the answer. */
			CHECK(ask({{hdr, 12, false}}, indirect) == 0);
		}
	}
	h.finish();
}

namespace {

/*
 * A device that gets the used ring wrong on purpose: it completes its first
 * chain with too large a length and then a second time, pushes a chain of
 * queue 1 into queue 0, and after a restart pushes a chain from before it.
 */
class SloppyDevice : public Device
{
public:
	unsigned num_queues() const override { return 2; }
	void queue_started(Virtqueue &q) override
	{
		queues_[q.index()] = &q;
		if (q.index() == 0 && ++starts0_ > 1 && stale_) {
			q.push(*stale_, 1);
			q.notify();
			stale_.reset();
		}
	}
	void queue_stopped(Virtqueue &q) override { queues_[q.index()] = nullptr; }
	void queue_kicked(Virtqueue &q) override
	{
		while (auto chain = q.pop()) {
			if (q.index() == 0 && !stale_ && starts0_ == 1 && !first_done_) {
				first_done_ = true;
				/* Kept (chains are move-only) to push again after a restart. */
				stale_ = std::move(*chain);
				q.push(*stale_, uint32_t(stale_->writable_bytes() + 100));
				q.push(*stale_, 1);
				continue;
			}
			if (q.index() == 1 && queues_[0])
				queues_[0]->push(*chain, 4);
			q.push(*chain, uint32_t(chain->fill(0, 0x5a, chain->writable_bytes())));
		}
		q.notify();
	}

private:
	Virtqueue *queues_[2] = {};
	std::optional<DescriptorChain> stale_;
	unsigned starts0_ = 0;
	bool first_done_ = false;
};

} // namespace

TEST_CASE("24: used ring misuse by the device: twice, never popped, too long", "[hostile]")
{
	SloppyDevice device;
	Hostile h(device);
	{
		DeviceDriver::Options o;
		o.queue_sizes = {8, 8};
		auto d = h.driver(o);
		auto &q0 = d->queue(0), &q1 = d->queue(1);
		auto &fe = d->frontend();
		uint64_t buf = d->memory().allocate(64);
		DriverBuffer b{buf, 16, true};

		uint16_t head = q0.add({&b, 1});
		q0.kick();
		auto used = q0.wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->head == head);
		CHECK(used->len == 16); /* clamped to the writable bytes */
		h.expect_log({"queue 0", "used length 116 clamped to its 16 writable bytes"});
		h.expect_log({"queue 0", "push of head " + std::to_string(head) + " refused"});

		/* A chain of queue 1 pushed into queue 0 is refused there. */
		size_t mark = h.log.mark();
		q1.add({&b, 1});
		q1.kick();
		used = q1.wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->len == 16);
		CHECK(h.log.wait_for(mark, {"queue 0", "refused", "not in flight on this ring"}));

		/* Restart queue 0: the chain from its first start is refused. */
		mark = h.log.mark();
		CHECK(fe.get_vring_base(0) == 1);
		fe.set_vring_base(0, 1);
		fe.set_vring_kick(0, &q0.kick_fd());
		CHECK(h.log.wait_for(mark, {"queue 0", "push of head", "not in flight"}));
		CHECK(q0.used_idx() == 1); /* nothing bogus reached the used ring */
		CHECK_FALSE(q0.get_used().has_value());

		q0.add({&b, 1});
		q0.kick();
		used = q0.wait_used(3000);
		REQUIRE(used.has_value());
		CHECK(used->len == 16);
	}
	h.finish();
}

TEST_CASE("25: EVENT_IDX across reconnects, used_event wrapping, NO_INTERRUPT", "[hostile]")
{
	PatternDevice device;
	Hostile h(device);
	SECTION("switched on and off across reconnects")
	{
		for (int i = 0; i < 6; i++) {
			bool event_idx = i % 2 == 0;
			INFO("connection " << i << (event_idx ? " with" : " without") << " EVENT_IDX");
			/* Without NOTIFY_ON_EMPTY, which would wake the driver on every emptied ring. */
			auto o = one_queue(8);
			o.features = ~wire::feature_bit(vf::NotifyOnEmpty);
			if (!event_idx)
				o.features &= ~wire::feature_bit(vf::RingEventIdx);
			auto d = h.driver(o);
			REQUIRE(d->event_idx() == event_idx);
			/* Every completion must wake the driver, or wait_used times out. */
			uint64_t offset = device.produced;
			for (int n = 0; n < 20; n++)
				REQUIRE(read_pattern(d->queue(0), d->memory(), offset, 16, false, 2000));
		}
	}
	SECTION("used_event wrapping at 65535")
	{
		auto d = h.driver(without_feature(vf::NotifyOnEmpty, 8));
		auto &fe = d->frontend();
		fe.get_vring_base(0);
		DriverQueue q(d->memory(), 0, 8);
		q.set_start_index(65530);
		fe.setup_queue(q);
		uint64_t offset = device.produced;
		for (int n = 0; n < 20; n++)
			REQUIRE(read_pattern(q, d->memory(), offset, 16, false, 2000));
		CHECK(q.used_idx() == uint16_t(65530 + 20));

		/* Ask to be woken only once used idx passes 2 (after wrapping again). */
		DriverQueue w(d->memory(), 0, 8);
		fe.get_vring_base(0);
		w.set_start_index(65534);
		fe.setup_queue(w);
		w.set_used_event(2);
		std::vector<bool> calls;
		uint64_t buf = d->memory().allocate(16);
		DriverBuffer b{buf, 16, true};
		for (int n = 0; n < 5; n++) {
			w.add({&b, 1});
			w.kick();
			REQUIRE(wait_until([&] { return w.used_idx() == uint16_t(65534 + n + 1); }));
			/* The loop thread handles the kick wholly before this request. */
			fe.get_features();
			calls.push_back(w.call_fd().wait(0));
			REQUIRE(w.get_used().has_value());
		}
		/* 65535 (first after start), 0, 1, 2, 3 passes used_event 2 */
		CHECK(calls == std::vector<bool>{true, false, false, false, true});
	}
	SECTION("NO_INTERRUPT without EVENT_IDX")
	{
		auto o = one_queue(8);
		o.features = ~(wire::feature_bit(vf::RingEventIdx) | wire::feature_bit(vf::NotifyOnEmpty));
		auto d = h.driver(o);
		auto &q = d->queue(0);
		q.set_no_interrupt(true);
		uint64_t buf = d->memory().allocate(16);
		DriverBuffer b{buf, 16, true};
		for (int n = 0; n < 3; n++) {
			q.add({&b, 1});
			q.kick();
			REQUIRE(wait_until([&] { return q.used_idx() == n + 1; }));
			d->frontend().get_features(); /* the kick handler is done */
			CHECK_FALSE(q.call_fd().wait(0));
			REQUIRE(q.get_used().has_value());
		}
		q.set_no_interrupt(false);
		q.add({&b, 1});
		q.kick();
		CHECK(q.wait_used(3000).has_value());
	}
	SECTION("NO_INTERRUPT with NOTIFY_ON_EMPTY: woken when the ring runs empty")
	{
		auto d = h.driver(without_feature(vf::RingEventIdx, 8));
		auto &q = d->queue(0);
		q.set_no_interrupt(true);
		uint64_t buf = d->memory().allocate(16);
		DriverBuffer b{buf, 16, true};
		q.add({&b, 1});
		q.kick();
		CHECK(q.wait_used(3000).has_value());
	}
	h.finish();
}
