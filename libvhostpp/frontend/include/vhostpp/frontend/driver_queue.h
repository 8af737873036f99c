/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file driver_queue.h
 * \brief DriverQueue: a guest driver's half of one split virtqueue.
 *
 * Laid out in a DriverMemory (virtio 1.x, 2.7 "Split Virtqueues"). Ring
 * indices are accessed with acquire/release atomics as the virtio memory
 * model requires; the object itself is used from one thread at a time.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vhostpp/fd.h"
#include "vhostpp/frontend/driver_memory.h"

namespace vhostpp {

namespace testing {
struct Access;
} // namespace testing

/** \brief One buffer of a chain: guest-physical address, length, device-writable or not. */
struct DriverBuffer {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

/** \brief One entry of the used ring: the chain's head and the bytes the device wrote. */
struct UsedElement {
	uint16_t head;
	uint32_t len;
};

/**
 * \brief The driver side of one split virtqueue, laid out in a DriverMemory.
 *
 * The descriptor table (16-byte aligned), the available ring (2-byte
 * aligned) and the used ring (4-byte aligned) are allocated in the memory;
 * both rings include their event-index fields (avail->used_event and
 * used->avail_event). The queue owns a kick and a call eventfd.
 *
 * Free descriptors are tracked in this object, never in guest memory, so
 * a device (or a hostile test) that scribbles on the descriptor table
 * cannot corrupt the driver's bookkeeping. Available entries are published
 * with a release store of avail->idx; used entries are read after an
 * acquire load of used->idx.
 *
 * Interrupt suppression: by default the queue behaves like Linux's
 * virtio_ring with callbacks enabled: after every used entry it consumes
 * it sets avail->used_event to the next used index it expects, so a device
 * following EVENT_IDX signals each completion the driver has not seen yet.
 * set_used_event() switches that off and leaves the field to the caller.
 */
class DriverQueue
{
public:
	/** \brief Virtqueue descriptor flags (virtio 2.7.5). */
	static constexpr uint16_t kDescNext = 1;
	static constexpr uint16_t kDescWrite = 2;
	static constexpr uint16_t kDescIndirect = 4;
	/** \brief avail->flags bit VIRTQ_AVAIL_F_NO_INTERRUPT. */
	static constexpr uint16_t kAvailNoInterrupt = 1;
	/** \brief used->flags bit VIRTQ_USED_F_NO_NOTIFY. */
	static constexpr uint16_t kUsedNoNotify = 1;

	/**
	 * \brief Lay out a ring of \a size descriptors in \a memory.
	 * \throws std::invalid_argument unless \a size is a power of two in 1..32768;
	 * std::length_error if \a memory is full
	 */
	DriverQueue(DriverMemory &memory, uint16_t index, uint16_t size);
	DriverQueue(const DriverQueue &) = delete;
	DriverQueue &operator=(const DriverQueue &) = delete;

	uint16_t index() const { return index_; }
	uint16_t size() const { return size_; }
	DriverMemory &memory() const { return memory_; }

	/** \brief The ring addresses as QEMU sends them in SET_VRING_ADDR: user
	 *  (front-end virtual) addresses, flags 0, no log address. */
	wire::VringAddr addresses() const;
	/** \brief Guest-physical addresses of the three parts. */
	uint64_t desc_gpa() const { return desc_gpa_; }
	uint64_t avail_gpa() const { return avail_gpa_; }
	uint64_t used_gpa() const { return used_gpa_; }

	/**
	 * \brief Make one direct chain of \a buffers available.
	 *
	 * Descriptors come from the free list and are linked with NEXT; WRITE
	 * is set on writable buffers. The avail index is published with release
	 * ordering. Does not kick.
	 * \return the chain's head descriptor index
	 * \throws std::invalid_argument for an empty chain; std::length_error if
	 * fewer than buffers.size() descriptors are free
	 */
	uint16_t add(std::span<const DriverBuffer> buffers);

	/**
	 * \brief Make one chain available as a single INDIRECT descriptor
	 * pointing at a table of \a buffers allocated in the memory.
	 *
	 * The table allocated for a head is reused the next time that head
	 * carries an indirect chain that fits, so a long test does not run the
	 * bump allocator dry.
	 * \throws std::invalid_argument for an empty chain; std::length_error if
	 * no descriptor is free or the memory is full
	 */
	uint16_t add_indirect(std::span<const DriverBuffer> buffers);

	/** \brief Signal the kick eventfd (unconditionally). */
	void kick();
	/**
	 * \brief Kick only if the device asked for it: with \a event_idx the
	 * avail_event rule, otherwise used->flags NO_NOTIFY; kicks when in doubt.
	 * \return true when it kicked
	 */
	bool kick_if_needed(bool event_idx);

	/**
	 * \brief The next used entry, if the device published one (acquire
	 * ordering on used->idx). Frees the chain's descriptors if \a head is a
	 * chain made with add() or add_indirect(); heads the bookkeeping does
	 * not know (e.g. published with publish_raw()) are returned as they are,
	 * with \a head holding the low 16 bits of the device's 32-bit id.
	 */
	std::optional<UsedElement> get_used();

	/**
	 * \brief get_used(), else wait on the call eventfd and retry, until
	 * \a timeout_ms have passed.
	 * \return nothing on timeout
	 */
	std::optional<UsedElement> wait_used(int timeout_ms);

	const EventFd &kick_fd() const { return kick_; }
	const EventFd &call_fd() const { return call_; }
	/** \brief Replace the call eventfd (as QEMU's second round of SET_VRING_CALL does);
	 *  wait_used() waits on the new one. */
	void set_call_fd(EventFd fd) { call_ = std::move(fd); }
	/** \brief Replace the kick eventfd. */
	void set_kick_fd(EventFd fd) { kick_ = std::move(fd); }

	/** \brief Write avail->used_event (EVENT_IDX) and stop updating it automatically. */
	void set_used_event(uint16_t idx);
	/** \brief Turn the automatic used_event update of get_used() on or off. */
	void set_auto_used_event(bool on) { auto_used_event_ = on; }
	/** \brief Set or clear avail->flags VRING_AVAIL_F_NO_INTERRUPT. */
	void set_no_interrupt(bool on);
	/** \brief used->avail_event as the device wrote it. */
	uint16_t avail_event() const;
	/** \brief used->flags as the device wrote it. */
	uint16_t used_flags() const;

	/** \brief Descriptors not part of any chain added with add()/add_indirect(). */
	uint16_t free_descriptors() const { return num_free_; }
	/** \brief Chains added and not yet returned by get_used(). */
	uint16_t in_flight() const { return in_flight_; }

	/** \brief avail->idx as last published. */
	uint16_t avail_idx() const;
	/** \brief used->idx as the device last wrote it (acquire). */
	uint16_t used_idx() const;
	/** \brief The next used index get_used() will consume. */
	uint16_t last_used() const { return last_used_; }

	/**
	 * \brief Start the ring at index \a idx instead of 0, as after a
	 * migration or reconnect: avail->idx, used->idx (as a previous device
	 * left it) and used_event all become \a idx. Frontend::setup_queue()
	 * sends it as SET_VRING_BASE. Only before the ring is handed over and
	 * while nothing is in flight.
	 * \throws std::logic_error while chains are in flight
	 */
	void set_start_index(uint16_t idx);
	/** \brief The index set_start_index() chose (0 by default). */
	uint16_t start_index() const { return start_index_; }

private:
	/* Raw access, so hostile tests can write anything a malicious guest
	 * could: reached only through vhostpp/frontend/testing.h. */
	friend struct testing::Access;
	struct RawDesc {
		uint64_t addr;
		uint32_t len;
		uint16_t flags;
		uint16_t next;
	};
	static_assert(sizeof(RawDesc) == 16);
	RawDesc *descriptor_table();
	void publish_raw(uint16_t head);
	void set_avail_idx(uint16_t idx);
	void write_avail_slot(uint16_t slot, uint16_t head);

	uint16_t *avail_field(size_t offset) const;
	uint16_t *used_field(size_t offset) const;
	uint16_t take_descriptors(size_t count);
	void publish(uint16_t head);

	DriverMemory &memory_;
	uint16_t index_;
	uint16_t size_;
	uint64_t desc_gpa_;
	uint64_t avail_gpa_;
	uint64_t used_gpa_;
	RawDesc *desc_;
	uint8_t *avail_;
	uint8_t *used_;

	/* Host-side copy of the chains: next_[i] links chain members and the free list. */
	std::vector<uint16_t> next_;
	std::vector<uint16_t> chain_len_; /* per head; 0 when not in flight */
	struct IndirectTable {
		uint64_t gpa = 0;
		size_t capacity = 0;
	};
	std::vector<IndirectTable> indirect_; /* per head */
	uint16_t free_head_ = 0;
	uint16_t num_free_;
	uint16_t in_flight_ = 0;
	uint16_t avail_idx_ = 0;
	uint16_t last_used_ = 0;
	uint16_t kicked_at_ = 0; /* avail idx at the last kick_if_needed() */
	uint16_t start_index_ = 0;
	bool auto_used_event_ = true;
	bool no_interrupt_ = false;

	EventFd kick_;
	EventFd call_;
};

} // namespace vhostpp
