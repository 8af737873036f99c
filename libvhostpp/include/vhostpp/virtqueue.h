/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file virtqueue.h
 * \brief The device side of a split virtqueue.
 *
 * The guest is untrusted: every descriptor is copied out of guest memory
 * once and only the copy is used; chains that loop, run longer than the
 * queue, point outside guest memory or misuse indirect tables are refused
 * with a log line and completed with length 0, and the queue goes on with
 * the chains that follow.
 */
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "vhostpp/fd.h"

namespace vhostpp {

/* Internal types (vhostpp/internal/), named here only by pointer or reference
 * so that this installed header stands alone. */
class GuestMemory;
namespace wire {
struct VringAddr;
}

class Virtqueue;
class Session;
struct VirtqueueSetup;

/**
 * \brief One available descriptor chain, split into the buffers the device
 * may read (driver → device) and those it may write (device → driver).
 *
 * The chain keeps the guest memory table it was translated with alive.
 * Offsets in read()/write() run across segment boundaries, so a header
 * split over several descriptors reads like a contiguous one.
 *
 * Move-only: a chain stands for one head the driver handed over, which
 * must be pushed back exactly once; a copy would make a second push (or a
 * use after the first) easy to write by accident.
 */
class DescriptorChain
{
public:
	DescriptorChain(DescriptorChain &&) noexcept = default;
	DescriptorChain &operator=(DescriptorChain &&) noexcept = default;
	DescriptorChain(const DescriptorChain &) = delete;
	DescriptorChain &operator=(const DescriptorChain &) = delete;

	/** \brief The head descriptor index, which identifies the chain in the used ring. */
	uint16_t head() const { return head_; }
	/** \brief The queue the chain was popped from. */
	uint16_t queue_index() const { return queue_index_; }

	const std::vector<std::span<uint8_t>> &readable() const { return readable_; }
	const std::vector<std::span<uint8_t>> &writable() const { return writable_; }
	size_t readable_bytes() const { return readable_bytes_; }
	size_t writable_bytes() const { return writable_bytes_; }

	/** \brief Copy readable bytes from \a offset into \a out; returns the count copied. */
	size_t read(size_t offset, std::span<uint8_t> out) const;
	/** \brief Copy \a in into the writable bytes at \a offset; returns the count copied. */
	size_t write(size_t offset, std::span<const uint8_t> in) const;
	/** \brief Set \a len writable bytes at \a offset to \a value; returns the count set. */
	size_t fill(size_t offset, uint8_t value, size_t len) const;

	/** \brief A copy of a T read at \a offset, or nothing if the readable part is too short.
	 *  Only for trivially copyable types: the bytes come from the guest as they are. */
	template<typename T>
		requires std::is_trivially_copyable_v<T>
	std::optional<T> read_object(size_t offset = 0) const
	{
		T value;
		if (read(offset, {reinterpret_cast<uint8_t *>(&value), sizeof(T)}) != sizeof(T))
			return std::nullopt;
		return value;
	}
	/** \brief Write \a value at \a offset of the writable part; false if it does not fit.
	 *  Only for trivially copyable types: the guest gets the object's bytes. */
	template<typename T>
		requires std::is_trivially_copyable_v<T>
	bool write_object(size_t offset, const T &value) const
	{
		return write(offset, {reinterpret_cast<const uint8_t *>(&value), sizeof(T)}) ==
		       sizeof(T);
	}

private:
	friend class Virtqueue;
	DescriptorChain() = default;

	std::shared_ptr<const GuestMemory> memory_;
	std::vector<std::span<uint8_t>> readable_;
	std::vector<std::span<uint8_t>> writable_;
	size_t readable_bytes_ = 0;
	size_t writable_bytes_ = 0;
	uint16_t head_ = 0;
	uint16_t queue_index_ = 0;
	uint64_t generation_ = 0;
};

/**
 * \brief A split virtqueue as a device uses it: pop chains, push used entries, notify.
 *
 * Owned by the session. A device may use it from queue_started() until
 * queue_stopped(), on the event loop's thread only.
 */
class Virtqueue
{
public:
	Virtqueue(uint16_t index, uint16_t max_size);
	Virtqueue(const Virtqueue &) = delete;
	Virtqueue &operator=(const Virtqueue &) = delete;

	uint16_t index() const { return index_; }
	/** \brief The size set by SET_VRING_NUM (0 before). */
	uint16_t size() const { return size_; }
	uint16_t max_size() const { return max_size_; }

	/**
	 * \brief The next available chain, or nothing when the ring is empty,
	 * not ready, or broken.
	 *
	 * Malformed chains are logged, completed with length 0 and skipped.
	 * Within one Device::queue_kicked() call at most size() chains come
	 * out; then nothing, and the library calls queue_kicked() again in a
	 * handler of its own for the rest. So a device may loop until pop()
	 * gives nothing even when a front-end refills the ring as fast as the
	 * device completes (e.g. its used ring mapped a second time over its
	 * avail ring), and the loop still runs everything else.
	 */
	std::optional<DescriptorChain> pop();

	/**
	 * \brief Put \a chain in the used ring with \a written bytes written.
	 *
	 * Refused with a log line (and nothing written to the ring) for a chain
	 * not popped from this ring since it last started, or pushed twice;
	 * \a written is clamped to the chain's writable bytes. Call notify()
	 * after a batch.
	 */
	void push(const DescriptorChain &chain, uint32_t written);

	/** \brief Signal the driver if the EVENT_IDX / NO_INTERRUPT rules ask for it. */
	void notify();

	/** \brief push() then notify(). */
	void complete(const DescriptorChain &chain, uint32_t written)
	{
		push(chain, written);
		notify();
	}

	/** \brief Chains popped and not yet pushed. */
	uint16_t in_flight() const { return in_flight_; }
	/** \brief True once the driver broke the ring beyond recovery (until it is set up again). */
	bool broken() const { return broken_; }

	/** \brief The next avail index the device would read (GET_VRING_BASE's answer). */
	uint16_t base() const { return last_avail_; }
	/** \brief True while the rings are translated into the current memory table. */
	bool addresses_set() const { return desc_ != nullptr; }
	/** \brief Ready to be started: size and addresses known. */
	bool ready() const { return size_ != 0 && addresses_set(); }

private:
	/*
	 * Ring set-up, driven by the vhost-user session only: a device that
	 * resized, moved or rewound a ring behind the session's back would
	 * desynchronise it from the front-end. Unit tests and fuzzers reach
	 * these through vhostpp/internal/virtqueue_setup.h (not installed).
	 */
	friend class Session;
	friend struct VirtqueueSetup;

	/* Negotiated ring features, as they matter to one queue. */
	struct Features {
		bool event_idx = false;
		bool indirect = false;
		bool notify_on_empty = false;
	};

	/* SET_VRING_NUM; throws a protocol error for a bad size. */
	void set_size(uint32_t num);
	/* SET_VRING_ADDR; translates and checks alignment and bounds. */
	void set_addresses(const wire::VringAddr &addr, std::shared_ptr<const GuestMemory> memory);
	/* Translate the stored addresses again against a new memory table. */
	void remap(std::shared_ptr<const GuestMemory> memory);
	/* SET_VRING_BASE. */
	void set_base(uint32_t base);
	/*
	 * Give back the chains still in flight, for a device that completes in
	 * order: the next start pops them again. The base goes back to the avail
	 * position the oldest of them was popped from, not by their count, so
	 * refused entries popped in between do not shift it.
	 */
	void rewind_in_flight();
	void set_features(Features features) { features_ = features; }
	void set_call(EventFd call) { call_ = std::move(call); }
	void set_err(EventFd err) { err_ = std::move(err); }
	/* New chains popped before this belong to an old start of the ring. */
	void new_generation();
	/* Around each Device::queue_kicked(): pop() gives at most size() chains
	 * in between; end_pass() is true if it held some back. */
	void begin_pass()
	{
		in_pass_ = true;
		pass_popped_ = 0;
		pass_cut_ = false;
	}
	bool end_pass()
	{
		in_pass_ = false;
		return pass_cut_;
	}
	/* Forget everything (reset / disconnect). */
	void reset();

	struct Desc {
		uint64_t addr;
		uint32_t len;
		uint16_t flags;
		uint16_t next;
	};
	static_assert(sizeof(Desc) == 16);

	uint16_t avail_idx() const;
	uint16_t used_event() const;
	void set_avail_event(uint16_t value);
	void mark_broken(const std::string &why);
	bool translate(std::shared_ptr<const GuestMemory> memory);
	/* Build \a chain from the chain at \a head; false (and logs) if malformed. */
	bool walk_chain(uint16_t head, DescriptorChain &chain);
	bool add_buffer(DescriptorChain &chain, const Desc &d, std::string &why);

	uint16_t index_;
	uint16_t max_size_;
	uint16_t size_ = 0;
	Features features_;

	/* The user addresses of SET_VRING_ADDR, kept to translate them again on remap(). */
	struct UserAddrs {
		uint64_t desc_user_addr;
		uint64_t used_user_addr;
		uint64_t avail_user_addr;
	};
	UserAddrs addr_{};
	bool addr_known_ = false;
	std::shared_ptr<const GuestMemory> memory_;
	Desc *desc_ = nullptr;
	uint8_t *avail_ = nullptr; /* flags, idx, ring[size], used_event */
	uint8_t *used_ = nullptr;  /* flags, idx, ring[size] of {id, len}, avail_event */

	uint16_t last_avail_ = 0;
	uint16_t used_idx_ = 0;
	uint16_t in_flight_ = 0;
	uint16_t signalled_used_ = 0;
	bool signalled_used_valid_ = false;
	bool broken_ = false;
	bool in_pass_ = false;
	bool pass_cut_ = false;
	uint32_t pass_popped_ = 0;
	bool pushed_since_notify_ = false;
	uint64_t generation_ = 1;
	std::vector<uint8_t> popped_; /* per head: 1 while in flight */
	std::vector<uint16_t> popped_at_; /* per head: the avail position it was popped from */

	EventFd call_;
	EventFd err_;
};

} // namespace vhostpp
