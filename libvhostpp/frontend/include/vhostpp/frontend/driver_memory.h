/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file driver_memory.h
 * \brief DriverMemory: the front-end's memfd-backed "guest RAM".
 *
 * Part of libvhostpp-frontend (pkg-config vhostpp-frontend): the driver
 * side used by tests, benchmarks and tools, never by a device. No thread,
 * no lock: one thread at a time per object.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "vhostpp/fd.h"

namespace vhostpp {

/* Wire types (vhostpp/internal/wire.h, not installed) are named here only
 * in declarations, so that this header stands alone once installed; code
 * that calls these members includes the wire header itself (in-tree). */
namespace wire {
struct MemoryRegion;
struct VringAddr;
} // namespace wire

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

} // namespace vhostpp
