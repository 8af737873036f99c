/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file driver_util.h
 * \brief Moving data through a pattern device (rng-like) as a guest would.
 */
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <vhostpp/frontend/device_driver.h>
#include <vhostpp/internal/wire.h>

namespace vhostpp::test {

/** \brief A SET_MEM_TABLE body of \a regions, its header declaring \a declared of them. */
inline std::vector<uint8_t> mem_table(std::span<const wire::MemoryRegion> regions, uint32_t declared)
{
	std::vector<uint8_t> p(sizeof(wire::MemoryTableHeader) + regions.size() * sizeof(wire::MemoryRegion));
	const wire::MemoryTableHeader h{declared, 0};
	std::memcpy(p.data(), &h, sizeof(h));
	if (!regions.empty())
		std::memcpy(p.data() + sizeof(h), regions.data(), regions.size() * sizeof(wire::MemoryRegion));
	return p;
}

/** \brief A SET_MEM_TABLE body of \a regions. */
inline std::vector<uint8_t> mem_table(std::span<const wire::MemoryRegion> regions)
{
	return mem_table(regions, uint32_t(regions.size()));
}

/** \brief DeviceDriver options with one queue of \a size and everything else default. */
inline DeviceDriver::Options one_queue(uint16_t size = 64)
{
	DeviceDriver::Options o;
	o.queue_sizes = {size};
	return o;
}

/** \brief Options with the virtio feature bit \a bit left out of the wanted set. */
inline DeviceDriver::Options without_feature(unsigned bit, uint16_t size = 64)
{
	auto o = one_queue(size);
	o.features = ~wire::feature_bit(bit);
	return o;
}

/**
 * \brief Read \a len bytes from a pattern device through queue \a q of \a d
 * in one writable buffer and check they continue the stream k % 251 at
 * \a offset (advanced by the bytes read).
 * \return false (after failing a CHECK) if no completion came within the deadline
 */
inline bool read_pattern(DriverQueue &q, DriverMemory &mem, uint64_t &offset, uint32_t len,
			 bool indirect = false, int timeout_ms = 3000)
{
	uint64_t buf = mem.allocate(len, 8);
	std::memset(mem.at(buf, len).data(), 0xff, len);
	uint16_t head;
	std::vector<DriverBuffer> bufs;
	/* Split into up to three writable parts so chains are real chains. */
	uint32_t part = len >= 3 ? len / 3 : len;
	for (uint32_t done = 0; done < len;) {
		uint32_t n = std::min(part, len - done);
		if (bufs.size() == 2)
			n = len - done;
		bufs.push_back({buf + done, n, true});
		done += n;
	}
	head = indirect ? q.add_indirect(bufs) : q.add(bufs);
	q.kick();
	auto used = q.wait_used(timeout_ms);
	CHECK(used.has_value());
	if (!used)
		return false;
	CHECK(used->head == head);
	CHECK(used->len == len);
	auto bytes = mem.at(buf, len);
	size_t wrong = 0;
	for (uint32_t i = 0; i < len; i++)
		wrong += bytes[i] != uint8_t((offset + i) % 251);
	CHECK(wrong == 0);
	offset += len;
	return used.has_value() && wrong == 0;
}

} // namespace vhostpp::test
