/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * memory.h: mapping regions from front-end fds and translating addresses.
 */
#include <catch2/catch.hpp>

#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vhostpp/frontend/device_driver.h>
#include <vhostpp/internal/wire.h>
#include <vhostpp/internal/memory.h>

#include "fd_util.h"

using namespace vhostpp;
using namespace vhostpp::test;
using wire::MemoryRegion;
using wire::ProtocolError;

namespace {

UniqueFd memfd(size_t size)
{
	UniqueFd fd(::memfd_create("test-memory", MFD_CLOEXEC));
	REQUIRE(fd.valid());
	REQUIRE(::ftruncate(fd.get(), off_t(size)) == 0);
	return fd;
}

std::string map_error(const MemoryRegion &r, const UniqueFd &fd)
{
	try {
		MappedRegion::map(r, fd);
	} catch (const ProtocolError &e) {
		return e.what();
	}
	return "";
}

std::shared_ptr<const MappedRegion> map(const DriverMemory &m)
{
	return MappedRegion::map(m.region(), m.fd());
}

} // namespace

TEST_CASE("a memfd region is mapped and shared", "[memory]")
{
	DriverMemory guest(1 << 20, 0x1000'0000);
	auto region = map(guest);
	CHECK(region->guest_addr() == 0x1000'0000);
	CHECK(region->size() == 1 << 20);
	CHECK(region->user_addr() == guest.region().userspace_addr);
	/* A second mapping of the same pages: not the front-end's address. */
	CHECK(region->host() != guest.at(0x1000'0000, 1).data());

	GuestMemory mem({region});
	auto bytes = guest.at(0x1000'0000 + 100, 4);
	std::memcpy(bytes.data(), "abcd", 4);
	auto seen = mem.gpa_to_host(0x1000'0000 + 100, 4);
	REQUIRE(seen.size() == 4);
	CHECK(std::memcmp(seen.data(), "abcd", 4) == 0);
	seen[0] = 'X';
	CHECK(bytes[0] == 'X');
	auto by_uva = mem.uva_to_host(guest.user_address(0x1000'0000 + 100), 4);
	CHECK(by_uva.data() == seen.data());
}

TEST_CASE("translation bounds", "[memory]")
{
	DriverMemory guest(0x10000, 0x10000);
	GuestMemory mem({map(guest)});
	const uint64_t base = 0x10000, size = 0x10000;
	uint64_t ubase = guest.region().userspace_addr;

	CHECK(mem.gpa_to_host(base, size).size() == size);
	CHECK(mem.gpa_to_host(base + size - 1, 1).size() == 1);
	CHECK(mem.gpa_to_host(base + size - 1, 2).empty());
	CHECK(mem.gpa_to_host(base + size, 1).empty());
	CHECK(mem.gpa_to_host(base - 1, 1).empty());
	CHECK(mem.gpa_to_host(base - 1, 2).empty());
	CHECK(mem.gpa_to_host(0, 1).empty());
	CHECK(mem.gpa_to_host(base, size + 1).empty());
	/* addr + len wrapping around 2^64 must not look like a small range. */
	CHECK(mem.gpa_to_host(base + 16, UINT64_MAX - 8).empty());
	CHECK(mem.gpa_to_host(UINT64_MAX, 2).empty());
	CHECK(mem.gpa_to_host(UINT64_MAX - 1, UINT64_MAX).empty());

	CHECK(mem.uva_to_host(ubase, size).size() == size);
	CHECK(mem.uva_to_host(ubase + size - 4, 8).empty());
	CHECK(mem.uva_to_host(ubase - 8, 8).empty());
	CHECK(mem.uva_to_host(ubase + 8, UINT64_MAX - 4).empty());
	/* Guest-physical and user addresses are different spaces. */
	CHECK(mem.uva_to_host(base, 8).empty());
	CHECK(mem.gpa_to_host(ubase, 8).empty());
}

TEST_CASE("a range straddling two adjacent regions is refused", "[memory]")
{
	DriverMemory low(0x10000, 0x10000), high(0x10000, 0x20000);
	GuestMemory mem({map(low), map(high)});
	CHECK(mem.gpa_to_host(0x1fff0, 0x10).size() == 0x10);
	CHECK(mem.gpa_to_host(0x20000, 0x10).size() == 0x10);
	CHECK(mem.gpa_to_host(0x1fff8, 0x10).empty());
	CHECK(mem.region_count() == 2);
}

TEST_CASE("region sizes and overflows are refused before mapping", "[memory]")
{
	auto fd = memfd(0x10000);
	MemoryRegion ok{0x1000'0000, 0x10000, 0x7000'0000'0000, 0};
	CHECK_NOTHROW(MappedRegion::map(ok, fd));

	auto r = ok;
	r.memory_size = 0;
	CHECK_THAT(map_error(r, fd), Catch::Contains("size 0"));

	r = ok;
	r.guest_phys_addr = UINT64_MAX - 0x100;
	CHECK_THAT(map_error(r, fd), Catch::Contains("gpa + size overflows"));

	r = ok;
	r.userspace_addr = UINT64_MAX - 0x100;
	CHECK_THAT(map_error(r, fd), Catch::Contains("uaddr + size overflows"));

	r = ok;
	r.mmap_offset = UINT64_MAX - 0x100;
	CHECK_THAT(map_error(r, fd), Catch::Contains("mmap_offset + size overflows"));

	r = ok;
	r.memory_size = UINT64_MAX;
	CHECK_THAT(map_error(r, fd), Catch::Contains("overflows"));
}

TEST_CASE("an fd smaller than the region is refused, not mapped (no SIGBUS)", "[memory]")
{
	auto fd = memfd(0x10000);
	MemoryRegion r{0, 0x20000, 0x7000'0000'0000, 0};
	CHECK_THAT(map_error(r, fd), Catch::Contains("only 0x10000 bytes"));
	r = {0, 0x10000, 0x7000'0000'0000, 0x1000};
	CHECK_THAT(map_error(r, fd), Catch::Contains("only"));
	r = {0, 0x8000, 0x7000'0000'0000, 0x8000};
	CHECK_NOTHROW(MappedRegion::map(r, fd));
	/* A 0-byte file. */
	auto empty = memfd(0);
	r = {0, 0x1000, 0x7000'0000'0000, 0};
	CHECK_THAT(map_error(r, empty), Catch::Contains("only 0x0 bytes"));
}

TEST_CASE("an unaligned mmap_offset maps the right bytes", "[memory]")
{
	DriverMemory guest(0x10000, 0);
	auto bytes = guest.at(0x1234, 4);
	std::memcpy(bytes.data(), "wxyz", 4);
	MemoryRegion r{0x100000, 0x1000, 0x7000'0000'0000, 0x1234};
	auto region = MappedRegion::map(r, guest.fd());
	GuestMemory mem({region});
	auto seen = mem.gpa_to_host(0x100000, 4);
	REQUIRE(seen.size() == 4);
	CHECK(std::memcmp(seen.data(), "wxyz", 4) == 0);
}

TEST_CASE("fds that cannot be mapped", "[memory]")
{
	MemoryRegion r{0, 0x1000, 0x7000'0000'0000, 0};
	SECTION("pipe")
	{
		int p[2];
		REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
		UniqueFd rd(p[0]), wr(p[1]);
		CHECK_THAT(map_error(r, rd), Catch::Contains("not a regular file"));
	}
	SECTION("socket")
	{
		auto [a, b] = socket_pair();
		CHECK_THAT(map_error(r, a), Catch::Contains("not a regular file"));
	}
	SECTION("eventfd")
	{
		EventFd e = EventFd::create();
		CHECK_THAT(map_error(r, e.unique_fd()), Catch::Contains("not a regular file"));
	}
	SECTION("read-only fd")
	{
		auto fd = memfd(0x1000);
		UniqueFd ro(::open(("/proc/self/fd/" + std::to_string(fd.get())).c_str(),
				   O_RDONLY | O_CLOEXEC));
		REQUIRE(ro.valid());
		CHECK_THAT(map_error(r, ro), Catch::Contains("mmap failed"));
	}
	SECTION("no fd")
	{
		CHECK_THAT(map_error(r, UniqueFd()), Catch::Contains("no fd"));
	}
	SECTION("closed fd number")
	{
		UniqueFd bogus(1 << 20);
		CHECK_THAT(map_error(r, bogus), Catch::Contains("fstat"));
		bogus.release();
	}
}

TEST_CASE("overlapping regions are refused", "[memory]")
{
	DriverMemory a(0x10000, 0x10000);
	auto fd = memfd(0x10000);
	auto ra = map(a);

	/* Guest ranges overlap by one page. */
	MemoryRegion overlap_gpa{0x1f000, 0x10000, 0x7000'0000'0000, 0};
	auto rb = MappedRegion::map(overlap_gpa, fd);
	CHECK_THROWS_WITH(GuestMemory({ra, rb}), Catch::Contains("guest range overlaps"));
	CHECK_THROWS_WITH(GuestMemory({ra}).with_region(rb, 8), Catch::Contains("overlaps"));

	/* Distinct guest ranges, but the same front-end addresses. */
	MemoryRegion overlap_uva{0x100000, 0x10000, a.region().userspace_addr + 0x8000, 0};
	auto rc = MappedRegion::map(overlap_uva, fd);
	CHECK_THROWS_WITH(GuestMemory({ra, rc}), Catch::Contains("user range overlaps"));

	/* Adjacent is fine. */
	MemoryRegion adjacent{0x20000, 0x10000, a.region().userspace_addr + 0x10000, 0};
	auto rd = MappedRegion::map(adjacent, fd);
	CHECK_NOTHROW(GuestMemory({ra, rd}));
}

TEST_CASE("with_region and without_region", "[memory]")
{
	DriverMemory a(0x10000, 0x10000), b(0x10000, 0x20000), c(0x10000, 0x30000);
	auto empty = std::make_shared<const GuestMemory>();
	auto one = empty->with_region(map(a), 2);
	auto two = one->with_region(map(b), 2);
	CHECK(two->region_count() == 2);
	CHECK(one->region_count() == 1); /* immutable: the old table is unchanged */
	CHECK_THROWS_WITH(two->with_region(map(c), 2), Catch::Contains("memory slots"));

	auto removed = two->without_region(a.region());
	CHECK(removed->region_count() == 1);
	CHECK(removed->gpa_to_host(0x10000, 1).empty());
	CHECK(removed->gpa_to_host(0x20000, 1).size() == 1);

	/* Only an exact match is removed. */
	auto partial = b.region();
	partial.memory_size /= 2;
	CHECK_THROWS_WITH(two->without_region(partial), Catch::Contains("no such region"));
	partial = b.region();
	partial.userspace_addr += 0x1000;
	CHECK_THROWS_WITH(two->without_region(partial), Catch::Contains("no such region"));
	CHECK_THROWS_WITH(two->without_region(c.region()), Catch::Contains("no such region"));
}

TEST_CASE("a mapping lives while something uses it, and not longer", "[memory]")
{
	size_t before = count_mappings("memfd:");
	std::span<uint8_t> bytes;
	std::shared_ptr<const MappedRegion> keep;
	{
		DriverMemory guest(0x10000, 0);
		auto mem = std::make_shared<const GuestMemory>(
			std::vector<std::shared_ptr<const MappedRegion>>{map(guest)});
		bytes = mem->gpa_to_host(0, 16);
		keep = mem->regions()[0];
	}
	/* The front-end's memory and the table are gone; the region is still mapped. */
	bytes[0] = 1;
	CHECK(bytes[0] == 1);
	keep.reset();
	CHECK(count_mappings("memfd:") == before);
}

TEST_CASE("mapping and unmapping in a loop leaks neither fds nor mappings", "[memory]")
{
	DriverMemory guest(0x10000, 0);
	size_t fds = count_open_fds(), maps = count_mappings("memfd:");
	for (int i = 0; i < 500; i++) {
		auto mem = std::make_shared<const GuestMemory>(
			std::vector<std::shared_ptr<const MappedRegion>>{map(guest)});
		auto bigger = mem->with_region(
			MappedRegion::map({0x100000, 0x1000, 0x1000'0000, 0}, guest.fd()), 8);
		CHECK(bigger->region_count() == 2);
	}
	CHECK(count_open_fds() == fds);
	CHECK(count_mappings("memfd:") == maps);
}
