/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file byte_ring.h
 * \brief A lock-free single-producer single-consumer byte ring.
 *
 * The one thing the event loop and an audio back-end share per stream.
 * The real-time side must never block, so there is no lock: the producer
 * owns the write position, the consumer the read position, and each
 * publishes its own with a release store that the other side reads with
 * an acquire load. Positions are 64-bit byte counts since the last reset,
 * so they double as "bytes moved so far" counters and never wrap in
 * practice (2^64 bytes at 24.6 MB/s, the fastest stream the spec allows,
 * is 23 000 years).
 */
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace vhost_sound {

/**
 * \brief SPSC byte FIFO of power-of-two capacity.
 *
 * Exactly one thread may call the producer methods (write, write_regions,
 * commit_write) and one the consumer methods (read, read_regions,
 * commit_read) at a time; readable(), writable() and the totals are safe
 * from either. reset() needs both sides quiet.
 */
class ByteRing
{
public:
	/** \brief A ring of at least \a min_capacity bytes (rounded up to a power of two, at least 64). */
	explicit ByteRing(size_t min_capacity);
	ByteRing(const ByteRing &) = delete;
	ByteRing &operator=(const ByteRing &) = delete;

	size_t capacity() const { return capacity_; }

	/** \brief Bytes written and not yet read. */
	size_t readable() const
	{
		return static_cast<size_t>(write_pos_.load(std::memory_order_acquire) -
					   read_pos_.load(std::memory_order_acquire));
	}
	/** \brief Free bytes. */
	size_t writable() const { return capacity_ - readable(); }

	/** \brief Bytes ever written since the last reset(). */
	uint64_t total_written() const { return write_pos_.load(std::memory_order_acquire); }
	/** \brief Bytes ever read since the last reset(). */
	uint64_t total_read() const { return read_pos_.load(std::memory_order_acquire); }

	/* ---- producer ---- */

	/** \brief Copy as much of \a in as fits; returns the count copied. */
	size_t write(std::span<const uint8_t> in);
	/**
	 * \brief Up to \a max free bytes as one or two spans (the second when
	 * the free space wraps), to be filled in place and then committed with
	 * commit_write().
	 */
	std::array<std::span<uint8_t>, 2> write_regions(size_t max);
	/** \brief Publish \a n bytes filled through write_regions(). */
	void commit_write(size_t n);

	/* ---- consumer ---- */

	/** \brief Copy up to out.size() bytes out; returns the count copied. */
	size_t read(std::span<uint8_t> out);
	/** \brief Up to \a max readable bytes as one or two spans, released with commit_read(). */
	std::array<std::span<const uint8_t>, 2> read_regions(size_t max);
	/**
	 * \brief read_regions() for a consumer that changes the bytes in place
	 * before it reads them (the device's capture gain): until commit_read()
	 * they are the consumer's alone.
	 */
	std::array<std::span<uint8_t>, 2> edit_regions(size_t max);
	/** \brief Release \a n bytes seen through read_regions() (or drop them unseen). */
	void commit_read(size_t n);

	/** \brief Empty the ring and zero the totals; neither side may be active. */
	void reset();

private:
	size_t capacity_;
	size_t mask_;
	std::unique_ptr<uint8_t[]> data_;

	/* Each position on its own cache line: the two sides write them from two cores. */
	alignas(64) std::atomic<uint64_t> write_pos_{0};
	alignas(64) std::atomic<uint64_t> read_pos_{0};
};

} // namespace vhost_sound
