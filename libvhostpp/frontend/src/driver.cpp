/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The guest's half of the split ring: DriverMemory and DriverQueue.
 *
 * Written against the virtio 1.x split virtqueue rules (2.7): descriptors
 * and the avail ring entry are written before avail->idx is published
 * with release ordering; used entries are read only after an acquire load
 * of used->idx shows them.
 */
#include "vhostpp/frontend/driver_memory.h"
#include "vhostpp/frontend/driver_queue.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <sys/mman.h>
#include <system_error>
#include <unistd.h>

#include "vhostpp/internal/wire.h"

namespace vhostpp {

namespace {

size_t page_size()
{
	return static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

/* Offsets inside the rings (virtio 2.7.6 and 2.7.8). */
constexpr size_t kAvailFlags = 0;
constexpr size_t kAvailIdx = 2;
constexpr size_t kAvailRing = 4;
constexpr size_t kUsedFlags = 0;
constexpr size_t kUsedIdx = 2;
constexpr size_t kUsedRing = 4;
constexpr size_t kUsedElemSize = 8;

size_t avail_bytes(uint16_t size)
{
	return kAvailRing + 2 * size_t(size) + 2; /* + used_event */
}

size_t used_bytes(uint16_t size)
{
	return kUsedRing + kUsedElemSize * size_t(size) + 2; /* + avail_event */
}

/* The spec's vring_need_event(): did [old, new) pass event? */
bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return uint16_t(new_idx - event - 1) < uint16_t(new_idx - old_idx);
}

} // namespace

/* ---------------------------------------------------------------- DriverMemory */

DriverMemory::DriverMemory(size_t size, uint64_t guest_base)
	: guest_base_(guest_base)
{
	if (size == 0)
		throw std::invalid_argument("DriverMemory: size 0");
	size_t page = page_size();
	if (size > SIZE_MAX - page)
		throw std::invalid_argument("DriverMemory: size too large");
	size_ = (size + page - 1) & ~(page - 1);
	if (guest_base + size_ < guest_base)
		throw std::invalid_argument("DriverMemory: guest_base + size overflows");

	fd_.reset(::memfd_create("vhostpp-guest-ram", MFD_CLOEXEC));
	if (!fd_)
		throw std::system_error(errno, std::generic_category(), "memfd_create");
	if (::ftruncate(fd_.get(), static_cast<off_t>(size_)) < 0)
		throw std::system_error(errno, std::generic_category(), "ftruncate");
	void *p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
	if (p == MAP_FAILED)
		throw std::system_error(errno, std::generic_category(), "mmap");
	host_ = static_cast<uint8_t *>(p);
}

DriverMemory::~DriverMemory()
{
	::munmap(host_, size_);
}

uint64_t DriverMemory::allocate(size_t size, size_t align)
{
	if (align == 0 || (align & (align - 1)))
		throw std::invalid_argument(fmt::format("DriverMemory: alignment {} is not a power of two",
							align));
	/* guest_base may itself be unaligned: align the guest-physical address. */
	uint64_t gpa = guest_base_ + next_;
	uint64_t aligned = (gpa + align - 1) & ~uint64_t(align - 1);
	uint64_t offset = aligned - guest_base_;
	if (aligned < gpa || offset > size_ || size > size_ - offset)
		throw std::length_error(fmt::format(
			"DriverMemory: {} bytes (align {}) do not fit, {} of {} bytes used", size,
			align, next_, size_));
	next_ = offset + size;
	return aligned;
}

bool DriverMemory::contains(uint64_t gpa, uint64_t len) const
{
	if (gpa < guest_base_)
		return false;
	uint64_t off = gpa - guest_base_;
	return off <= size_ && len <= size_ - off;
}

std::span<uint8_t> DriverMemory::at(uint64_t gpa, size_t len)
{
	if (!contains(gpa, len))
		throw std::out_of_range(fmt::format("DriverMemory: [0x{:x}, +0x{:x}) outside [0x{:x}, +0x{:x})",
						    gpa, len, guest_base_, size_));
	return {host_ + (gpa - guest_base_), len};
}

std::span<const uint8_t> DriverMemory::at(uint64_t gpa, size_t len) const
{
	return const_cast<DriverMemory *>(this)->at(gpa, len);
}

uint64_t DriverMemory::user_address(uint64_t gpa) const
{
	if (!contains(gpa, 0))
		throw std::out_of_range(fmt::format("DriverMemory: 0x{:x} outside memory", gpa));
	return reinterpret_cast<uintptr_t>(host_) + (gpa - guest_base_);
}

wire::MemoryRegion DriverMemory::region() const
{
	return {guest_base_, size_, reinterpret_cast<uintptr_t>(host_), 0};
}

/* ----------------------------------------------------------------- DriverQueue */

DriverQueue::DriverQueue(DriverMemory &memory, uint16_t index, uint16_t size)
	: memory_(memory), index_(index), size_(size), num_free_(size)
{
	if (size == 0 || size > 32768 || (size & (size - 1)))
		throw std::invalid_argument(
			fmt::format("DriverQueue: size {} is not a power of two in 1..32768", size));

	/* The spec's minimum alignments, not more, so devices see tight layouts. */
	desc_gpa_ = memory.allocate(sizeof(RawDesc) * size_t(size), 16);
	avail_gpa_ = memory.allocate(avail_bytes(size), 2);
	used_gpa_ = memory.allocate(used_bytes(size), 4);
	desc_ = reinterpret_cast<RawDesc *>(memory.at(desc_gpa_, sizeof(RawDesc) * size).data());
	avail_ = memory.at(avail_gpa_, avail_bytes(size)).data();
	used_ = memory.at(used_gpa_, used_bytes(size)).data();

	next_.resize(size);
	for (uint16_t i = 0; i < size; i++)
		next_[i] = uint16_t(i + 1); /* the last link is never followed: num_free_ bounds it */
	chain_len_.assign(size, 0);
	indirect_.resize(size);

	kick_ = EventFd::create();
	call_ = EventFd::create();
}

wire::VringAddr DriverQueue::addresses() const
{
	wire::VringAddr a{};
	a.index = index_;
	a.flags = 0;
	a.desc_user_addr = memory_.user_address(desc_gpa_);
	a.used_user_addr = memory_.user_address(used_gpa_);
	a.avail_user_addr = memory_.user_address(avail_gpa_);
	a.log_guest_addr = 0;
	return a;
}

uint16_t *DriverQueue::avail_field(size_t offset) const
{
	return reinterpret_cast<uint16_t *>(avail_ + offset);
}

uint16_t *DriverQueue::used_field(size_t offset) const
{
	return reinterpret_cast<uint16_t *>(used_ + offset);
}

uint16_t DriverQueue::take_descriptors(size_t count)
{
	uint16_t head = free_head_;
	uint16_t last = head;
	for (size_t i = 1; i < count; i++)
		last = next_[last];
	free_head_ = next_[last];
	num_free_ = uint16_t(num_free_ - count);
	return head;
}

void DriverQueue::publish(uint16_t head)
{
	write_avail_slot(avail_idx_, head);
	avail_idx_++;
	/* Descriptors and the ring entry must be visible before the new index. */
	std::atomic_ref<uint16_t>(*avail_field(kAvailIdx)).store(avail_idx_, std::memory_order_release);
}

uint16_t DriverQueue::add(std::span<const DriverBuffer> buffers)
{
	if (buffers.empty())
		throw std::invalid_argument("DriverQueue::add: empty chain");
	if (buffers.size() > num_free_)
		throw std::length_error(fmt::format("DriverQueue {}: chain of {} descriptors, {} free",
						    index_, buffers.size(), num_free_));

	uint16_t head = free_head_;
	uint16_t i = head;
	for (size_t k = 0; k < buffers.size(); k++) {
		bool last = k + 1 == buffers.size();
		const DriverBuffer &b = buffers[k];
		uint16_t flags = uint16_t((b.writable ? kDescWrite : 0) | (last ? 0 : kDescNext));
		desc_[i] = RawDesc{b.gpa, b.len, flags, last ? uint16_t(0) : next_[i]};
		if (!last)
			i = next_[i];
	}
	take_descriptors(buffers.size());
	chain_len_[head] = uint16_t(buffers.size());
	in_flight_++;
	publish(head);
	return head;
}

uint16_t DriverQueue::add_indirect(std::span<const DriverBuffer> buffers)
{
	if (buffers.empty())
		throw std::invalid_argument("DriverQueue::add_indirect: empty chain");
	if (num_free_ == 0)
		throw std::length_error(fmt::format("DriverQueue {}: no free descriptor", index_));

	uint16_t head = free_head_;
	IndirectTable &table = indirect_[head];
	size_t bytes = sizeof(RawDesc) * buffers.size();
	if (table.capacity < buffers.size()) {
		table.gpa = memory_.allocate(bytes, 16);
		table.capacity = buffers.size();
	}
	auto *entries = reinterpret_cast<RawDesc *>(memory_.at(table.gpa, bytes).data());
	for (size_t k = 0; k < buffers.size(); k++) {
		bool last = k + 1 == buffers.size();
		const DriverBuffer &b = buffers[k];
		uint16_t flags = uint16_t((b.writable ? kDescWrite : 0) | (last ? 0 : kDescNext));
		entries[k] = RawDesc{b.gpa, b.len, flags, last ? uint16_t(0) : uint16_t(k + 1)};
	}
	desc_[head] = RawDesc{table.gpa, uint32_t(bytes), kDescIndirect, 0};
	take_descriptors(1);
	chain_len_[head] = 1;
	in_flight_++;
	publish(head);
	return head;
}

void DriverQueue::kick()
{
	kick_.signal();
}

bool DriverQueue::kick_if_needed(bool event_idx)
{
	/* The published index must be visible before we read the device's wishes. */
	std::atomic_thread_fence(std::memory_order_seq_cst);
	bool need;
	if (event_idx)
		need = need_event(avail_event(), avail_idx_, kicked_at_);
	else
		need = !(used_flags() & kUsedNoNotify);
	kicked_at_ = avail_idx_;
	if (need)
		kick();
	return need;
}

std::optional<UsedElement> DriverQueue::get_used()
{
	uint16_t idx = used_idx();
	if (idx == last_used_)
		return std::nullopt;

	size_t slot = last_used_ % size_;
	uint32_t id, len;
	std::memcpy(&id, used_ + kUsedRing + kUsedElemSize * slot, 4);
	std::memcpy(&len, used_ + kUsedRing + kUsedElemSize * slot + 4, 4);
	last_used_++;

	/* Free only chains we made: the device's id is not trusted to be one. */
	if (id < size_ && chain_len_[id]) {
		uint16_t count = chain_len_[id];
		uint16_t last = uint16_t(id);
		for (uint16_t k = 1; k < count; k++)
			last = next_[last];
		next_[last] = free_head_;
		free_head_ = uint16_t(id);
		num_free_ = uint16_t(num_free_ + count);
		chain_len_[id] = 0;
		in_flight_--;
	}

	if (auto_used_event_ && !no_interrupt_) {
		std::atomic_ref<uint16_t>(*avail_field(kAvailRing + 2 * size_t(size_)))
			.store(last_used_, std::memory_order_relaxed);
		/*
		 * Pairs with the device's fence between writing used->idx and
		 * reading used_event: either it sees our new used_event, or our
		 * next used_idx() load sees its entry.
		 */
		std::atomic_thread_fence(std::memory_order_seq_cst);
	}
	return UsedElement{uint16_t(id), len};
}

std::optional<UsedElement> DriverQueue::wait_used(int timeout_ms)
{
	using clock = std::chrono::steady_clock;
	auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
	while (true) {
		if (auto e = get_used())
			return e;
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
										  clock::now());
		if (left.count() <= 0)
			return get_used();
		/* A signal that raced with get_used() stays in the counter: no lost wake-up. */
		call_.wait(int(left.count()) + 1);
	}
}

void DriverQueue::set_used_event(uint16_t idx)
{
	auto_used_event_ = false;
	std::atomic_ref<uint16_t>(*avail_field(kAvailRing + 2 * size_t(size_)))
		.store(idx, std::memory_order_relaxed);
	std::atomic_thread_fence(std::memory_order_seq_cst);
}

void DriverQueue::set_no_interrupt(bool on)
{
	no_interrupt_ = on;
	std::atomic_ref<uint16_t>(*avail_field(kAvailFlags))
		.store(on ? kAvailNoInterrupt : 0, std::memory_order_relaxed);
	std::atomic_thread_fence(std::memory_order_seq_cst);
}

uint16_t DriverQueue::avail_event() const
{
	return std::atomic_ref<uint16_t>(*used_field(kUsedRing + kUsedElemSize * size_t(size_)))
		.load(std::memory_order_acquire);
}

uint16_t DriverQueue::used_flags() const
{
	return std::atomic_ref<uint16_t>(*used_field(kUsedFlags)).load(std::memory_order_acquire);
}

DriverQueue::RawDesc *DriverQueue::descriptor_table()
{
	return desc_;
}

void DriverQueue::write_avail_slot(uint16_t slot, uint16_t head)
{
	std::memcpy(avail_ + kAvailRing + 2 * size_t(slot % size_), &head, 2);
}

void DriverQueue::publish_raw(uint16_t head)
{
	publish(head);
}

void DriverQueue::set_avail_idx(uint16_t idx)
{
	avail_idx_ = idx;
	std::atomic_ref<uint16_t>(*avail_field(kAvailIdx)).store(idx, std::memory_order_release);
}

void DriverQueue::set_start_index(uint16_t idx)
{
	if (in_flight_)
		throw std::logic_error("DriverQueue::set_start_index: chains in flight");
	start_index_ = idx;
	last_used_ = idx;
	kicked_at_ = idx;
	std::atomic_ref<uint16_t>(*used_field(kUsedIdx)).store(idx, std::memory_order_relaxed);
	std::atomic_ref<uint16_t>(*avail_field(kAvailRing + 2 * size_t(size_)))
		.store(idx, std::memory_order_relaxed);
	set_avail_idx(idx);
}

uint16_t DriverQueue::avail_idx() const
{
	return avail_idx_;
}

uint16_t DriverQueue::used_idx() const
{
	return std::atomic_ref<uint16_t>(*used_field(kUsedIdx)).load(std::memory_order_acquire);
}

} // namespace vhostpp
