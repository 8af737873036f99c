/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * DeviceHarness (vhostpp/frontend/device_harness.h): a device taken through
 * attach, start, kick, stop with rewind, a new generation, reset and
 * detach, with the library's own server underneath.
 */
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <vhostpp/frontend/device_harness.h>

#include "driver_util.h"
#include "test_server.h"

using namespace vhostpp;
using namespace vhostpp::test;

namespace {

/* Completes in order, so chains in flight at a stop come back after it. */
class InOrderDevice : public PatternDevice
{
public:
	bool queue_in_order(unsigned) const override { return true; }
};

/* One writable buffer of \a len bytes made available on \a q; its head. */
uint16_t offer(DriverQueue &q, DriverMemory &mem, uint32_t len)
{
	DriverBuffer b{mem.allocate(len, 8), len, true};
	return q.add({&b, 1});
}

} // namespace

TEST_CASE("a device through the harness: the whole queue lifecycle", "[integration][harness]")
{
	LogCapture::get();
	boost::asio::io_context io;
	InOrderDevice device;
	/* Queues left to the harness: the device's one, of 64. */
	DeviceHarness h(io, device, {});
	CHECK_FALSE(h.attached());

	h.start();
	CHECK(h.attached());
	REQUIRE(h.driver().queue_count() == 1);
	CHECK(h.queue(0).size() == 64);
	CHECK(device.attaches == 1);
	CHECK(device.started == 1);

	/* Kicked: the device holds the chain instead of completing it. */
	h.run([&] { device.hold(true); });
	uint16_t head = offer(h.queue(0), h.memory(), 32);
	h.kick(0);
	for (int i = 0; i < 2000 && device.held_count() == 0; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	REQUIRE(device.held_count() == 1);

	/* QMP stop: the chain in flight is rewound, the base points at it. */
	auto bases = h.stop();
	REQUIRE(bases.size() == 1);
	CHECK(bases[0] == 0);
	CHECK(device.stopped == 1);
	CHECK(device.held_count() == 0);

	/* QMP cont: a new generation pops the same chain again. */
	h.run([&] { device.hold(false); });
	h.resume();
	CHECK(device.started == 2);
	auto used = h.queue(0).wait_used(3000);
	REQUIRE(used.has_value());
	CHECK(used->head == head);
	CHECK(used->len == 32);

	/* The guest driver resets the device; the front-end stays. */
	h.reset();
	CHECK(device.resets == 1);
	CHECK(device.stopped == 2);
	CHECK(device.detaches == 0);

	/* QEMU quits. */
	h.detach();
	CHECK_FALSE(h.attached());
	CHECK(device.detaches == 1);
	CHECK(device.resets == 1);

	/* And comes back. */
	h.start();
	CHECK(device.attaches == 2);
	uint64_t offset = device.produced;
	CHECK(read_pattern(h.queue(0), h.memory(), offset, 64));
}
