/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "vhostpp/virtqueue.h"

#include <algorithm>
#include <atomic>
#include <fmt/format.h>

#include "vhostpp/internal/memory.h"
#include "vhostpp/internal/wire.h"
#include "vhostpp/internal/logging.h"

namespace vhostpp {

namespace {
/* A guest can repeat each of these once per chain: one budget per kind of
 * message, so that a flood of one kind does not hide the others. */
RateLimit refused_chain_log;
RateLimit refused_pass_log;
RateLimit bad_head_log;
RateLimit bad_push_log;
} // namespace

namespace {

constexpr uint16_t kDescFlagNext = 1;
constexpr uint16_t kDescFlagWrite = 2;
constexpr uint16_t kDescFlagIndirect = 4;
constexpr uint16_t kAvailFlagNoInterrupt = 1;
constexpr uint32_t kMaxQueueSize = 32768;

uint16_t load_u16(const uint8_t *p, std::memory_order order)
{
	return std::atomic_ref<uint16_t>(*const_cast<uint16_t *>(
					       reinterpret_cast<const uint16_t *>(p)))
		.load(order);
}

void store_u16(uint8_t *p, uint16_t value, std::memory_order order)
{
	std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t *>(p)).store(value, order);
}

/* The virtio spec's vring_need_event(): did new_idx pass event_idx since old_idx? */
bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
	return static_cast<uint16_t>(new_idx - event_idx - 1) <
	       static_cast<uint16_t>(new_idx - old_idx);
}

size_t desc_bytes(uint32_t n) { return 16ul * n; }
size_t avail_bytes(uint32_t n) { return 6 + 2ul * n; }
size_t used_bytes(uint32_t n) { return 6 + 8ul * n; }

/* True if [a, a + a_len) and [b, b + b_len) share a byte (lengths > 0; no overflow). */
bool ranges_overlap(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len)
{
	return a <= b ? b - a < a_len : a - b < b_len;
}

} // namespace

/* ---------------------------------------------------------------------------
 * DescriptorChain
 */

namespace {

/*
 * Walk \a len bytes of \a segments starting \a offset bytes in, across
 * segment boundaries; \a step(segment bytes, bytes done so far) handles each
 * piece. Returns the bytes walked (less than \a len if the segments end).
 */
template<typename Step>
size_t walk_segments(const std::vector<std::span<uint8_t>> &segments, size_t offset, size_t len,
		     Step step)
{
	size_t done = 0;
	for (const auto &seg : segments) {
		if (done == len)
			break;
		if (offset >= seg.size()) {
			offset -= seg.size();
			continue;
		}
		size_t n = std::min(seg.size() - offset, len - done);
		step(seg.subspan(offset, n), done);
		done += n;
		offset = 0;
	}
	return done;
}

} // namespace

size_t DescriptorChain::read(size_t offset, std::span<uint8_t> out) const
{
	return walk_segments(readable_, offset, out.size(), [&](std::span<uint8_t> piece, size_t done) {
		std::memcpy(out.data() + done, piece.data(), piece.size());
	});
}

size_t DescriptorChain::write(size_t offset, std::span<const uint8_t> in) const
{
	return walk_segments(writable_, offset, in.size(), [&](std::span<uint8_t> piece, size_t done) {
		std::memcpy(piece.data(), in.data() + done, piece.size());
	});
}

size_t DescriptorChain::fill(size_t offset, uint8_t value, size_t len) const
{
	return walk_segments(writable_, offset, len, [&](std::span<uint8_t> piece, size_t) {
		std::memset(piece.data(), value, piece.size());
	});
}

/* ---------------------------------------------------------------------------
 * Virtqueue: set-up
 */

Virtqueue::Virtqueue(uint16_t index, uint16_t max_size) : index_(index), max_size_(max_size) {}

void Virtqueue::set_size(uint32_t num)
{
	if (num == 0 || num > kMaxQueueSize || (num & (num - 1)))
		throw wire::ProtocolError(fmt::format(
			"SET_VRING_NUM: queue {} size {} is not a power of two in 1..32768", index_,
			num));
	if (num > max_size_)
		throw wire::ProtocolError(fmt::format(
			"SET_VRING_NUM: queue {} size {} above the device's maximum {}", index_, num,
			max_size_));
	size_ = static_cast<uint16_t>(num);
	popped_.assign(size_, 0);
	popped_at_.assign(size_, 0);
	in_flight_ = 0;
	/* Addresses translated for another size no longer describe whole rings:
	 * the session remaps them. */
	desc_ = nullptr;
	avail_ = used_ = nullptr;
}

void Virtqueue::set_addresses(const wire::VringAddr &addr, std::shared_ptr<const GuestMemory> memory)
{
	if (size_ == 0)
		throw wire::ProtocolError(
			fmt::format("SET_VRING_ADDR: queue {} has no size yet (SET_VRING_NUM first)",
				    index_));
	if (addr.flags & ~wire::kVringAddrFlagLog)
		throw wire::ProtocolError(fmt::format(
			"SET_VRING_ADDR: queue {} unknown flags 0x{:x}", index_, addr.flags));
	if (addr.flags & wire::kVringAddrFlagLog)
		throw wire::ProtocolError(fmt::format(
			"SET_VRING_ADDR: queue {} asks for dirty logging, which is not supported",
			index_));
	if (addr.desc_user_addr % 16 || addr.avail_user_addr % 2 || addr.used_user_addr % 4)
		throw wire::ProtocolError(fmt::format(
			"SET_VRING_ADDR: queue {} misaligned rings (desc 0x{:x} needs 16, avail 0x{:x} "
			"needs 2, used 0x{:x} needs 4)",
			index_, addr.desc_user_addr, addr.avail_user_addr, addr.used_user_addr));
	if (!memory)
		throw wire::ProtocolError(fmt::format(
			"SET_VRING_ADDR: queue {} before any memory table", index_));
	/* Three separate areas (virtio 2.7): a used ring laid over the avail ring
	 * or the descriptors would turn the device's own used-ring writes into
	 * new chains, popped and completed for ever on the loop thread. */
	const struct {
		const char *name;
		uint64_t addr, len;
	} rings[] = { { "descriptor table", addr.desc_user_addr, desc_bytes(size_) },
		      { "avail ring", addr.avail_user_addr, avail_bytes(size_) },
		      { "used ring", addr.used_user_addr, used_bytes(size_) } };
	for (size_t i = 0; i < 3; i++) {
		for (size_t j = i + 1; j < 3; j++) {
			if (ranges_overlap(rings[i].addr, rings[i].len, rings[j].addr, rings[j].len))
				throw wire::ProtocolError(fmt::format(
					"SET_VRING_ADDR: queue {} {} 0x{:x} ({} bytes) overlaps the {} "
					"0x{:x} ({} bytes)",
					index_, rings[j].name, rings[j].addr, rings[j].len, rings[i].name,
					rings[i].addr, rings[i].len));
		}
	}
	addr_ = {addr.desc_user_addr, addr.used_user_addr, addr.avail_user_addr};
	addr_known_ = true;
	if (!translate(std::move(memory))) {
		addr_ = {};
		addr_known_ = false;
		throw wire::ProtocolError(fmt::format(
			"SET_VRING_ADDR: queue {} rings (desc 0x{:x}, avail 0x{:x}, used 0x{:x}, size "
			"{}) not each inside one memory region",
			index_, addr.desc_user_addr, addr.avail_user_addr, addr.used_user_addr, size_));
	}
	/* The used ring in guest memory is the truth after a reconnect. */
	used_idx_ = load_u16(used_ + 2, std::memory_order_acquire);
	signalled_used_valid_ = false;
	broken_ = false;
}

bool Virtqueue::translate(std::shared_ptr<const GuestMemory> memory)
{
	auto d = memory->uva_to_host(addr_.desc_user_addr, desc_bytes(size_));
	auto a = memory->uva_to_host(addr_.avail_user_addr, avail_bytes(size_));
	auto u = memory->uva_to_host(addr_.used_user_addr, used_bytes(size_));
	bool aligned = (reinterpret_cast<uintptr_t>(d.data()) % 16 == 0) &&
		       (reinterpret_cast<uintptr_t>(a.data()) % 2 == 0) &&
		       (reinterpret_cast<uintptr_t>(u.data()) % 4 == 0);
	if (d.empty() || a.empty() || u.empty() || !aligned) {
		desc_ = nullptr;
		avail_ = used_ = nullptr;
		memory_.reset();
		return false;
	}
	desc_ = reinterpret_cast<Desc *>(d.data());
	avail_ = a.data();
	used_ = u.data();
	memory_ = std::move(memory);
	return true;
}

void Virtqueue::remap(std::shared_ptr<const GuestMemory> memory)
{
	if (!addr_known_ || size_ == 0)
		return;
	if (!translate(std::move(memory)))
		logger().warn("queue {}: rings no longer inside guest memory after a memory table "
			      "change; the queue waits for new addresses",
			      index_);
}

void Virtqueue::set_base(uint32_t base)
{
	if (base > 0xffff)
		throw wire::ProtocolError(fmt::format(
			"SET_VRING_BASE: queue {} base {} above 65535 (split rings only)", index_,
			base));
	last_avail_ = static_cast<uint16_t>(base);
}

void Virtqueue::rewind_in_flight()
{
	/* Back to the oldest in-flight chain's avail position: counting the chains
	 * instead would land on a refused entry popped (and completed) between
	 * them, and lose the oldest chain. Distances are taken back from
	 * last_avail_ so that the 16-bit wrap does not matter. */
	uint16_t back = 0;
	for (size_t head = 0; head < popped_.size(); head++) {
		if (popped_[head])
			back = std::max<uint16_t>(back,
						  static_cast<uint16_t>(last_avail_ - popped_at_[head]));
	}
	last_avail_ = static_cast<uint16_t>(last_avail_ - back);
	new_generation();
}

void Virtqueue::new_generation()
{
	generation_++;
	std::fill(popped_.begin(), popped_.end(), 0);
	in_flight_ = 0;
	signalled_used_valid_ = false;
}

void Virtqueue::reset()
{
	size_ = 0;
	features_ = {};
	addr_ = {};
	addr_known_ = false;
	memory_.reset();
	desc_ = nullptr;
	avail_ = used_ = nullptr;
	last_avail_ = used_idx_ = 0;
	broken_ = false;
	popped_.clear();
	popped_at_.clear();
	call_ = {};
	err_ = {};
	new_generation();
}

/* ---------------------------------------------------------------------------
 * Virtqueue: data path
 */

uint16_t Virtqueue::avail_idx() const
{
	return load_u16(avail_ + 2, std::memory_order_acquire);
}

uint16_t Virtqueue::used_event() const
{
	return load_u16(avail_ + 4 + 2ul * size_, std::memory_order_relaxed);
}

void Virtqueue::set_avail_event(uint16_t value)
{
	store_u16(used_ + 4 + 8ul * size_, value, std::memory_order_relaxed);
}

void Virtqueue::mark_broken(const std::string &why)
{
	logger().error("queue {}: {}; the queue stops until it is set up again", index_, why);
	broken_ = true;
	if (err_.valid())
		err_.signal();
}

bool Virtqueue::add_buffer(DescriptorChain &chain, const Desc &d, std::string &why)
{
	bool writable = d.flags & kDescFlagWrite;
	if (!writable && !chain.writable_.empty()) {
		why = fmt::format("readable descriptor (addr 0x{:x}) after a writable one", d.addr);
		return false;
	}
	if (d.len == 0)
		return true; /* nothing to access, so its address does not matter */
	size_t &total = writable ? chain.writable_bytes_ : chain.readable_bytes_;
	if (total + d.len > UINT32_MAX) {
		why = "chain totals more than 4 GiB";
		return false;
	}
	/* One descriptor may run from one region into the next adjacent one:
	 * one span per region, so read()/write() see them as one buffer. */
	auto &spans = writable ? chain.writable_ : chain.readable_;
	const size_t before = spans.size();
	uint64_t addr = d.addr;
	uint64_t left = d.len;
	while (left > 0) {
		auto span = memory_->gpa_to_host_prefix(addr, left);
		if (span.empty() || addr + left < addr) {
			spans.resize(before);
			why = fmt::format("buffer addr 0x{:x} len {} is not inside one guest memory "
					  "region or adjacent ones (0x{:x} unmapped)",
					  d.addr, d.len, addr);
			return false;
		}
		spans.push_back(span);
		addr += span.size();
		left -= span.size();
	}
	total += d.len;
	return true;
}

bool Virtqueue::walk_chain(uint16_t head, DescriptorChain &chain)
{
	std::string why;
	uint16_t idx = head;
	Desc d;
	std::memcpy(&d, &desc_[idx], sizeof(d)); /* copied once: the guest may rewrite it */

	for (unsigned count = 1;; count++) {
		if (count > size_) {
			why = fmt::format("chain longer than the queue size {} (a loop?)", size_);
			break;
		}
		if (d.flags & kDescFlagIndirect) {
			if (!features_.indirect) {
				why = "INDIRECT descriptor but RING_INDIRECT_DESC was not negotiated";
				break;
			}
			if (d.flags & kDescFlagNext) {
				why = "INDIRECT together with NEXT";
				break;
			}
			if (d.len == 0 || d.len % sizeof(Desc) || d.len / sizeof(Desc) > size_) {
				why = fmt::format("indirect table length {} is 0, not a multiple of 16 "
						  "or longer than {} entries",
						  d.len, size_);
				break;
			}
			auto table_bytes = memory_->gpa_to_host(d.addr, d.len);
			if (table_bytes.empty()) {
				why = fmt::format("indirect table addr 0x{:x} len {} is not inside one "
						  "guest memory region",
						  d.addr, d.len);
				break;
			}
			std::vector<Desc> table(d.len / sizeof(Desc));
			std::memcpy(table.data(), table_bytes.data(), d.len);
			uint16_t i = 0;
			for (size_t n = 1;; n++) {
				if (n > table.size()) {
					why = "indirect chain loops";
					break;
				}
				const Desc &td = table[i];
				if (td.flags & kDescFlagIndirect) {
					why = "indirect descriptor inside an indirect table";
					break;
				}
				if (!add_buffer(chain, td, why))
					break;
				if (!(td.flags & kDescFlagNext))
					break;
				if (td.next >= table.size()) {
					why = fmt::format("indirect next {} outside the table of {}",
							  td.next, table.size());
					break;
				}
				i = td.next;
			}
			break;
		}
		if (!add_buffer(chain, d, why))
			break;
		if (!(d.flags & kDescFlagNext))
			break;
		if (d.next >= size_) {
			why = fmt::format("next {} beyond the queue size {}", d.next, size_);
			break;
		}
		idx = d.next;
		std::memcpy(&d, &desc_[idx], sizeof(d));
	}

	if (!why.empty()) {
		logger().error(refused_chain_log, "queue {}: chain at head {} refused: {}", index_, head, why);
		return false;
	}
	return true;
}

std::optional<DescriptorChain> Virtqueue::pop()
{
	if (!ready() || broken_)
		return std::nullopt;
	if (in_pass_ && pass_popped_ >= size_) {
		pass_cut_ = true;
		return std::nullopt;
	}

	/* Refused entries are skipped, but one call skips at most a ring's worth:
	 * a guest that keeps publishing bad chains (or rings laid over each
	 * other, so that our own used-ring writes look like new entries) must
	 * not hold the loop thread here forever. The rest waits for the next
	 * kick. */
	for (unsigned skipped = 0;; skipped++) {
		if (skipped > size_) {
			logger().error(refused_pass_log, "queue {}: more than {} refused entries in one pass; the rest "
				       "waits for the next kick",
				       index_, size_);
			return std::nullopt;
		}
		uint16_t avail = avail_idx();
		uint16_t pending = static_cast<uint16_t>(avail - last_avail_);
		if (pending > size_) {
			mark_broken(fmt::format("avail idx {} is {} entries past the last seen {}, "
						"more than the queue size {}",
						avail, pending, last_avail_, size_));
			return std::nullopt;
		}
		if (pending == 0) {
			if (!features_.event_idx)
				return std::nullopt;
			/* Ask for a kick at the next entry, then look again: a buffer made
			 * available in between would otherwise wait for a kick never sent. */
			set_avail_event(last_avail_);
			std::atomic_thread_fence(std::memory_order_seq_cst);
			if (avail_idx() == last_avail_)
				return std::nullopt;
			continue;
		}

		uint16_t slot = last_avail_ % size_;
		uint16_t head = load_u16(avail_ + 4 + 2ul * slot, std::memory_order_relaxed);
		const uint16_t position = last_avail_;
		last_avail_++;
		if (features_.event_idx)
			set_avail_event(last_avail_);

		if (head >= size_) {
			logger().error(bad_head_log, "queue {}: avail entry {} holds head {}, beyond the queue size {}; "
				       "skipped",
				       index_, slot, head, size_);
			continue;
		}
		if (popped_[head]) {
			logger().error(bad_head_log, "queue {}: head {} made available again while in flight; skipped",
				       index_, head);
			continue;
		}

		DescriptorChain chain;
		chain.memory_ = memory_;
		chain.head_ = head;
		chain.queue_index_ = index_;
		chain.generation_ = generation_;
		popped_[head] = 1;
		popped_at_[head] = position;
		in_flight_++;
		if (!walk_chain(head, chain)) {
			/* Give the head back so the driver does not lose the descriptors. */
			push(chain, 0);
			notify();
			continue;
		}
		pass_popped_++;
		return chain;
	}
}

void Virtqueue::push(const DescriptorChain &chain, uint32_t written)
{
	if (chain.queue_index_ != index_ || chain.generation_ != generation_ || !used_ ||
	    chain.head_ >= popped_.size() || !popped_[chain.head_]) {
		logger().error(bad_push_log, "queue {}: push of head {} refused: not in flight on this ring",
			       index_, chain.head_);
		return;
	}
	if (written > chain.writable_bytes_) {
		logger().error(bad_push_log, "queue {}: head {} used length {} clamped to its {} writable bytes",
			       index_, chain.head_, written, chain.writable_bytes_);
		written = static_cast<uint32_t>(chain.writable_bytes_);
	}
	popped_[chain.head_] = 0;
	in_flight_--;

	uint8_t *elem = used_ + 4 + 8ul * (used_idx_ % size_);
	uint32_t id = chain.head_;
	std::memcpy(elem, &id, 4);
	std::memcpy(elem + 4, &written, 4);
	used_idx_++;
	/* Entry before index: the driver reads the index first, then the entry. */
	store_u16(used_ + 2, used_idx_, std::memory_order_release);
	pushed_since_notify_ = true;
}

void Virtqueue::notify()
{
	if (!pushed_since_notify_ || !used_)
		return;
	pushed_since_notify_ = false;
	/* Our used idx must be visible before we read the driver's suppression fields. */
	std::atomic_thread_fence(std::memory_order_seq_cst);

	bool needed;
	if (features_.notify_on_empty && in_flight_ == 0 && avail_idx() == last_avail_) {
		needed = true;
	} else if (!features_.event_idx) {
		needed = !(load_u16(avail_, std::memory_order_relaxed) & kAvailFlagNoInterrupt);
	} else {
		uint16_t old = signalled_used_;
		bool valid = signalled_used_valid_;
		signalled_used_ = used_idx_;
		signalled_used_valid_ = true;
		needed = !valid || need_event(used_event(), used_idx_, old);
	}
	if (needed && call_.valid())
		call_.signal();
}

} // namespace vhostpp
