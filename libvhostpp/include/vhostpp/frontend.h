/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file frontend.h
 * \brief The front-end (driver) side of vhost-user: what QEMU and a guest driver do.
 *
 * Tests, benchmarks and tools use these classes to drive any vhost-user
 * back-end without a VM:
 *
 * - DriverMemory is a memfd-backed "guest RAM" shared with the back-end;
 * - DriverQueue is a guest driver's half of one split virtqueue laid out
 *   in that memory (virtio 1.x, 2.7 "Split Virtqueues");
 * - Frontend speaks the vhost-user protocol as QEMU does, one blocking
 *   request at a time;
 * - DeviceDriver runs QEMU's start-up sequence and owns all of the above.
 *
 * Threading: none of these classes starts a thread or locks anything.
 * Each object must be used from one thread at a time; the back-end (in
 * another thread or process) sees DriverMemory only through the shared
 * mapping, and DriverQueue orders its accesses to the ring indices with
 * acquire/release atomics as the virtio memory model requires.
 *
 * Errors: Frontend throws FrontendError for everything that goes wrong on
 * the connection (socket errors, timeouts, a malformed or unexpected reply,
 * a non-zero REPLY_ACK, the peer closing). DriverMemory and DriverQueue
 * throw standard exceptions for misuse (std::out_of_range,
 * std::length_error, std::invalid_argument) and std::system_error when the
 * kernel refuses a memfd, mapping or eventfd.
 *
 * Ownership: every fd is held by a UniqueFd or EventFd and closed when its
 * owner is destroyed. Fds sent to the back-end are sent as copies (the
 * kernel duplicates them); the sender keeps its own. A DriverQueue refers
 * to the DriverMemory it was laid out in, which must outlive it.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "vhostpp/fd.h"
#include "vhostpp/internal/wire.h"

namespace vhostpp {

/**
 * \brief memfd-backed "guest RAM" the front-end shares with a back-end.
 *
 * The memory is one memfd mapped shared and read-write in this process.
 * Guest-physical addresses (GPAs) [guest_base(), guest_base() + size())
 * name its bytes; region() describes it as SET_MEM_TABLE and ADD_MEM_REG
 * carry it, with this process's mapping address as the front-end virtual
 * address, exactly as QEMU reports its own mappings. A bump allocator hands
 * out GPAs for rings, indirect tables and buffers; nothing is ever freed
 * before the whole memory is destroyed.
 */
class DriverMemory
{
public:
	/**
	 * \brief Create and map \a size bytes (rounded up to whole pages) of zeroed memory.
	 * \throws std::invalid_argument for size 0; std::system_error if memfd or mmap fails
	 */
	explicit DriverMemory(size_t size, uint64_t guest_base = 0x40000000);
	~DriverMemory();
	DriverMemory(const DriverMemory &) = delete;
	DriverMemory &operator=(const DriverMemory &) = delete;

	/**
	 * \brief Reserve \a size bytes aligned to \a align (a power of two) and
	 * return their guest-physical address. The bytes are zero unless
	 * something wrote to them through at().
	 * \throws std::length_error when the memory is full; std::invalid_argument
	 * for an alignment that is not a power of two
	 */
	uint64_t allocate(size_t size, size_t align = 64);

	/**
	 * \brief The host bytes of guest-physical [gpa, gpa + len).
	 * \throws std::out_of_range unless the whole range lies in this memory
	 */
	std::span<uint8_t> at(uint64_t gpa, size_t len);
	/** \copydoc at() */
	std::span<const uint8_t> at(uint64_t gpa, size_t len) const;

	/** \brief True when [gpa, gpa + len) lies inside this memory. */
	bool contains(uint64_t gpa, uint64_t len) const;

	/** \brief This process's address of guest-physical \a gpa (the "user address").
	 *  \throws std::out_of_range outside the memory */
	uint64_t user_address(uint64_t gpa) const;

	/** \brief {guest_base, size, userspace_addr = this process's mapping address, mmap_offset 0}. */
	wire::MemoryRegion region() const;
	/** \brief The memfd, still owned by this object. */
	const UniqueFd &fd() const { return fd_; }
	uint64_t guest_base() const { return guest_base_; }
	size_t size() const { return size_; }
	/** \brief Bytes handed out by allocate() so far (including alignment padding). */
	size_t used() const { return next_; }

private:
	UniqueFd fd_;
	uint8_t *host_ = nullptr;
	size_t size_;
	uint64_t guest_base_;
	size_t next_ = 0;
};

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

	/* ---- raw access, so hostile tests can write anything a malicious guest could ---- */

	/** \brief A descriptor exactly as it lies in guest memory. */
	struct RawDesc {
		uint64_t addr;
		uint32_t len;
		uint16_t flags;
		uint16_t next;
	};
	static_assert(sizeof(RawDesc) == 16);

	/** \brief The descriptor table in guest memory (size() entries). */
	RawDesc *descriptor_table();
	/** \brief Put \a head in the avail ring and bump avail->idx (release); no bookkeeping. */
	void publish_raw(uint16_t head);
	/** \brief Store \a idx in avail->idx (release); the driver's own count follows it. */
	void set_avail_idx(uint16_t idx);
	/** \brief avail->idx as last published. */
	uint16_t avail_idx() const;
	/** \brief used->idx as the device last wrote it (acquire). */
	uint16_t used_idx() const;
	/** \brief The next used index get_used() will consume. */
	uint16_t last_used() const { return last_used_; }
	/** \brief Write avail->ring[slot % size()] without publishing it. */
	void write_avail_slot(uint16_t slot, uint16_t head);

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

/** \brief Any failure on the front-end's connection; what() names the request. */
class FrontendError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

/**
 * \brief The vhost-user protocol, spoken as QEMU speaks it.
 *
 * Blocking: each typed request sends one message and, when it has one,
 * waits for the reply (5 s). When REPLY_ACK was negotiated
 * (set_protocol_features() with the bit), requests that have no reply of
 * their own carry NEED_REPLY and wait for the acknowledgement; a non-zero
 * acknowledgement throws FrontendError naming the request. Replies are
 * checked: the request code must match, the REPLY flag and version 1 must
 * be set and the size must be the expected one.
 *
 * \throws FrontendError from every request on failure
 */
class Frontend
{
public:
	/**
	 * \brief Connect to the back-end listening on \a path, retrying while the
	 * socket does not exist or refuses (a starting daemon) until \a timeout_ms.
	 */
	static Frontend connect(const std::string &path, int timeout_ms = 5000);
	/** \brief Speak on an already connected Unix stream socket. */
	explicit Frontend(UniqueFd socket);

	Frontend(Frontend &&) noexcept = default;
	Frontend &operator=(Frontend &&) noexcept = default;

	int socket() const { return socket_.get(); }
	/** \brief Close the connection now (the destructor does it too). */
	void close() { socket_.reset(); }

	/* ---- raw ---- */

	/** \brief Send \a msg (header, payload, its fds) as it is. */
	void send(const wire::Message &msg);
	/** \brief Send \a msg with \a fds (not owned) attached instead of the message's own. */
	void send(const wire::Message &msg, std::span<const int> fds);
	/** \brief Receive one message from the back-end (no checks beyond framing). */
	wire::Message receive(int timeout_ms = 5000);
	/** \brief Send arbitrary bytes, \a fds attached to the first one. */
	void send_raw(std::span<const uint8_t> bytes, std::span<const int> fds = {});
	/**
	 * \brief Wait until the back-end closes the connection; bytes and fds it
	 * sends meanwhile are discarded (fds closed).
	 * \return false if it is still open after \a timeout_ms
	 */
	bool wait_closed(int timeout_ms = 5000);
	/** \brief Wait for a reply to \a code and return its payload, checked to be
	 *  \a expected_size bytes unless that is SIZE_MAX. */
	std::vector<uint8_t> receive_reply(wire::Request code, size_t expected_size,
					   int timeout_ms = 5000);

	/* ---- typed requests ---- */

	uint64_t get_features();
	void set_features(uint64_t features);
	uint64_t get_protocol_features();
	/** \brief Also turns REPLY_ACK handling on when \a features has the bit. */
	void set_protocol_features(uint64_t features);
	void set_owner();
	void reset_owner();
	void reset_device();
	uint64_t get_queue_num();
	uint64_t get_max_mem_slots();
	/** \brief One region per memory (at most 8), each with its memfd. */
	void set_mem_table(std::span<DriverMemory *const> memories);
	void add_mem_reg(const DriverMemory &memory);
	/** \brief Sends the region's fd along, as QEMU does. */
	void rem_mem_reg(const DriverMemory &memory);
	void set_vring_num(uint32_t index, uint32_t num);
	void set_vring_addr(const wire::VringAddr &addr);
	void set_vring_base(uint32_t index, uint32_t base);
	/** \brief Stops the ring; returns the next avail index the back-end would have read. */
	uint32_t get_vring_base(uint32_t index);
	/** \brief nullptr sends the "no fd" bit instead of an fd. */
	void set_vring_kick(uint32_t index, const EventFd *fd);
	void set_vring_call(uint32_t index, const EventFd *fd);
	void set_vring_err(uint32_t index, const EventFd *fd);
	void set_vring_enable(uint32_t index, bool enable);
	std::vector<uint8_t> get_config(uint32_t offset, uint32_t size);
	void set_config(uint32_t offset, std::span<const uint8_t> data);
	void set_status(uint8_t status);
	uint8_t get_status();
	/** \brief Give the back-end its channel to us; \a fd is sent and then closed here. */
	void set_backend_req_fd(UniqueFd fd);

	/** \brief True once REPLY_ACK was negotiated. */
	bool reply_ack() const { return reply_ack_; }
	/** \brief Features last sent with SET_FEATURES (0 before). */
	uint64_t acked_features() const { return acked_features_; }
	/** \brief Protocol features last sent with SET_PROTOCOL_FEATURES (0 before). */
	uint64_t acked_protocol_features() const { return acked_protocol_features_; }

	/* ---- high level ---- */

	/**
	 * \brief Hand \a q to the back-end: SET_VRING_NUM, SET_VRING_BASE
	 * (q.start_index(), normally 0),
	 * SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL, then SET_VRING_ENABLE 1
	 * if protocol features were negotiated (rings then start disabled).
	 */
	void setup_queue(DriverQueue &q);

private:
	/* Send a request that has no reply; with REPLY_ACK wait for the ack. */
	void request(wire::Request code, std::span<const uint8_t> body, std::span<const int> fds = {});
	void vring_fd(wire::Request code, uint32_t index, const EventFd *fd);
	uint64_t get_u64(wire::Request code);
	void set_u64(wire::Request code, uint64_t value);
	bool protocol_features_negotiated() const;

	UniqueFd socket_;
	bool reply_ack_ = false;
	bool protocol_features_set_ = false;
	bool features_set_ = false;
	uint64_t acked_features_ = 0;
	uint64_t acked_protocol_features_ = 0;
};

/**
 * \brief Everything needed to drive a device as a guest would.
 *
 * The constructor runs QEMU's start-up sequence: GET_FEATURES; if the
 * back-end offers VHOST_USER_F_PROTOCOL_FEATURES, GET_PROTOCOL_FEATURES and
 * SET_PROTOCOL_FEATURES (offered ∩ wanted); GET_QUEUE_NUM with MQ (the
 * device must have at least as many queues as asked for); GET_MAX_MEM_SLOTS
 * when memory goes in with ADD_MEM_REG; SET_OWNER; SET_FEATURES (offered ∩
 * wanted); the memory (SET_MEM_TABLE, or ADD_MEM_REG when asked and
 * CONFIGURE_MEM_SLOTS was negotiated); then setup_queue() for each queue.
 *
 * \throws FrontendError if the back-end refuses any of it or offers too few queues
 */
class DeviceDriver
{
public:
	struct Options {
		/** \brief One queue per entry, of that size. */
		std::vector<uint16_t> queue_sizes;
		/** \brief Virtio features wanted; ANDed with those offered. */
		uint64_t features = ~0ull;
		/** \brief Protocol features wanted; ANDed with those offered. */
		uint64_t protocol_features = ~0ull;
		size_t memory_size = 16 << 20;
		/** \brief Add the memory with ADD_MEM_REG (needs CONFIGURE_MEM_SLOTS). */
		bool use_add_mem_reg = false;
	};

	DeviceDriver(const std::string &socket_path, Options options);

	Frontend &frontend() { return frontend_; }
	DriverMemory &memory() { return *memory_; }
	/** \throws std::out_of_range */
	DriverQueue &queue(size_t i) { return *queues_.at(i); }
	size_t queue_count() const { return queues_.size(); }

	/** \brief Virtio features sent with SET_FEATURES. */
	uint64_t features() const { return features_; }
	/** \brief Protocol features sent with SET_PROTOCOL_FEATURES (0 without them). */
	uint64_t protocol_features() const { return protocol_features_; }
	/** \brief True when VIRTIO_F_RING_EVENT_IDX was negotiated. */
	bool event_idx() const;

	/** \brief QEMU's shutdown: SET_VRING_ENABLE 0 (with protocol features) and
	 *  GET_VRING_BASE per queue; returns the bases. */
	std::vector<uint32_t> stop();

private:
	Frontend frontend_;
	Options options_;
	std::unique_ptr<DriverMemory> memory_;
	std::vector<std::unique_ptr<DriverQueue>> queues_;
	uint64_t features_ = 0;
	uint64_t protocol_features_ = 0;
};

} // namespace vhostpp
