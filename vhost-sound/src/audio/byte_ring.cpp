/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "audio/byte_ring.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace vhost_sound {

ByteRing::ByteRing(size_t min_capacity)
	: capacity_(std::bit_ceil(std::max<size_t>(min_capacity, 64))),
	  mask_(capacity_ - 1),
	  /* Not zero-filled: a byte is only ever read after it was written, and
	   * touching every page of a guest-sized buffer (up to 16 MiB) at each
	   * PCM_PREPARE would let a guest hold the loop with repeated PREPAREs. */
	  data_(std::make_unique_for_overwrite<uint8_t[]>(capacity_))
{
}

std::array<std::span<uint8_t>, 2> ByteRing::write_regions(size_t max)
{
	/* Only this side moves write_pos_: a relaxed load of our own position is enough. */
	const uint64_t w = write_pos_.load(std::memory_order_relaxed);
	const uint64_t r = read_pos_.load(std::memory_order_acquire);
	const size_t n = std::min<size_t>(max, capacity_ - static_cast<size_t>(w - r));
	const size_t start = static_cast<size_t>(w) & mask_;
	const size_t first = std::min(n, capacity_ - start);
	return { std::span<uint8_t>(data_.get() + start, first),
		 std::span<uint8_t>(data_.get(), n - first) };
}

void ByteRing::commit_write(size_t n)
{
	write_pos_.store(write_pos_.load(std::memory_order_relaxed) + n, std::memory_order_release);
}

size_t ByteRing::write(std::span<const uint8_t> in)
{
	const auto regions = write_regions(in.size());
	size_t done = 0;
	for (const auto &region : regions) {
		if (region.empty())
			continue;
		std::memcpy(region.data(), in.data() + done, region.size());
		done += region.size();
	}
	commit_write(done);
	return done;
}

std::array<std::span<const uint8_t>, 2> ByteRing::read_regions(size_t max)
{
	const auto regions = edit_regions(max);
	return { regions[0], regions[1] };
}

std::array<std::span<uint8_t>, 2> ByteRing::edit_regions(size_t max)
{
	const uint64_t r = read_pos_.load(std::memory_order_relaxed);
	const uint64_t w = write_pos_.load(std::memory_order_acquire);
	const size_t n = std::min<size_t>(max, static_cast<size_t>(w - r));
	const size_t start = static_cast<size_t>(r) & mask_;
	const size_t first = std::min(n, capacity_ - start);
	return { std::span<uint8_t>(data_.get() + start, first),
		 std::span<uint8_t>(data_.get(), n - first) };
}

void ByteRing::commit_read(size_t n)
{
	read_pos_.store(read_pos_.load(std::memory_order_relaxed) + n, std::memory_order_release);
}

size_t ByteRing::read(std::span<uint8_t> out)
{
	const auto regions = read_regions(out.size());
	size_t done = 0;
	for (const auto &region : regions) {
		if (region.empty())
			continue;
		std::memcpy(out.data() + done, region.data(), region.size());
		done += region.size();
	}
	commit_read(done);
	return done;
}

void ByteRing::reset()
{
	write_pos_.store(0, std::memory_order_relaxed);
	read_pos_.store(0, std::memory_order_relaxed);
}

} // namespace vhost_sound
