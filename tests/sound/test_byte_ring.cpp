/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/* The SPSC byte ring: wrap-around, bounds, and a two-thread stream. */
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "audio/byte_ring.h"

using vhost_sound::ByteRing;

TEST_CASE("capacity is a power of two of at least the request", "[byte_ring]")
{
	CHECK(ByteRing(1).capacity() == 64);
	CHECK(ByteRing(32768).capacity() == 32768);
	CHECK(ByteRing(32769).capacity() == 65536);
}

namespace {

/* Resident memory of this process, from /proc/self/statm. */
size_t resident_bytes()
{
	std::ifstream statm("/proc/self/statm");
	size_t size = 0, resident = 0;
	statm >> size >> resident;
	return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

} // namespace

TEST_CASE("a new ring does not touch its memory: PREPARE of a guest-sized buffer costs no page faults", "[byte_ring]")
{
	/* Four 16 MiB rings (the default buffer_bytes limit): were they zero-filled,
	 * resident memory would grow by 64 MiB. */
	const size_t before = resident_bytes();
	std::vector<std::unique_ptr<ByteRing>> rings;
	for (int i = 0; i < 4; i++)
		rings.push_back(std::make_unique<ByteRing>(16u << 20));
	const size_t grown = resident_bytes() - std::min(before, resident_bytes());
	INFO("resident memory grew by " << grown << " bytes");
	CHECK(grown < (8u << 20));

	/* What is written reads back: the ring never hands out bytes it was not given. */
	std::vector<uint8_t> in(4096, 0x5a), out(8192, 0);
	CHECK(rings[0]->write(in) == in.size());
	CHECK(rings[0]->read(out) == in.size());
	CHECK(std::all_of(out.begin(), out.begin() + 4096, [](uint8_t b) { return b == 0x5a; }));
}

TEST_CASE("writes and reads wrap around and never exceed the capacity", "[byte_ring]")
{
	ByteRing ring(64);
	std::vector<uint8_t> in(100);
	std::iota(in.begin(), in.end(), 0);

	CHECK(ring.write(in) == 64);
	CHECK(ring.readable() == 64);
	CHECK(ring.writable() == 0);
	CHECK(ring.write(in) == 0);

	std::vector<uint8_t> out(40);
	CHECK(ring.read(out) == 40);
	CHECK(out[0] == 0);
	CHECK(out[39] == 39);

	/* 24 left at 40..63; 40 more wrap to the start. */
	CHECK(ring.write(std::span(in).subspan(64, 36)) == 36);
	auto regions = ring.read_regions(1000);
	CHECK(regions[0].size() == 24);
	CHECK(regions[1].size() == 36);
	CHECK(regions[0][0] == 40);
	CHECK(regions[1][0] == 64);
	ring.commit_read(60);
	CHECK(ring.readable() == 0);
	CHECK(ring.total_written() == 100);
	CHECK(ring.total_read() == 100);

	auto w = ring.write_regions(1000);
	CHECK(w[0].size() + w[1].size() == 64);
	ring.reset();
	CHECK(ring.total_written() == 0);
	CHECK(ring.readable() == 0);
}

TEST_CASE("a producer and a consumer thread move a byte stream intact", "[byte_ring]")
{
	ByteRing ring(256);
	constexpr uint64_t kTotal = 4 << 20;
	uint64_t errors = 0;

	std::thread consumer([&] {
		uint64_t got = 0;
		std::vector<uint8_t> buf(97);
		while (got < kTotal) {
			const size_t n = ring.read(buf);
			for (size_t i = 0; i < n; i++)
				errors += buf[i] != static_cast<uint8_t>((got + i) * 13);
			got += n;
		}
	});

	uint64_t sent = 0;
	std::vector<uint8_t> buf(61);
	while (sent < kTotal) {
		const size_t n = std::min<uint64_t>(buf.size(), kTotal - sent);
		for (size_t i = 0; i < n; i++)
			buf[i] = static_cast<uint8_t>((sent + i) * 13);
		size_t done = 0;
		while (done < n)
			done += ring.write(std::span(buf).subspan(done, n - done));
		sent += n;
	}
	consumer.join();
	CHECK(errors == 0);
	CHECK(ring.total_read() == kTotal);
}
