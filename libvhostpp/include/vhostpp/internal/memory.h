/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file memory.h
 * \brief Guest memory as the back-end sees it: a table of mmapped regions.
 *
 * A GuestMemory is immutable once built: a new memory table, or a region
 * added or removed, makes a new GuestMemory. Rings and descriptor chains
 * hold a std::shared_ptr to the table they were translated with, so a
 * mapping is unmapped only when nothing uses it any more.
 */
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "vhostpp/fd.h"
#include "vhostpp/internal/wire.h"

namespace vhostpp {

/**
 * \brief One mmapped region of guest memory (RAII: unmapped on destruction).
 */
class MappedRegion
{
public:
	/**
	 * \brief Map \a desc from \a fd, shared and read-write.
	 *
	 * Checks the region before touching the fd: size not 0, no 64-bit
	 * overflow of gpa+size, uaddr+size or mmap_offset+size, an fd that
	 * fstat() shows to be a regular file or memfd at least
	 * mmap_offset+size long.
	 * \throws wire::ProtocolError naming the bad field
	 */
	static std::shared_ptr<const MappedRegion> map(const wire::MemoryRegion &desc,
						       const UniqueFd &fd);
	~MappedRegion();
	MappedRegion(const MappedRegion &) = delete;
	MappedRegion &operator=(const MappedRegion &) = delete;

	const wire::MemoryRegion &desc() const { return desc_; }
	uint64_t guest_addr() const { return desc_.guest_phys_addr; }
	uint64_t user_addr() const { return desc_.userspace_addr; }
	uint64_t size() const { return desc_.memory_size; }
	/** \brief Host address of the region's first byte. */
	uint8_t *host() const { return host_; }

private:
	MappedRegion(const wire::MemoryRegion &desc, void *mapping, size_t mapping_size);

	wire::MemoryRegion desc_;
	void *mapping_;
	size_t mapping_size_;
	uint8_t *host_;
};

/**
 * \brief An immutable table of guest memory regions with address translation.
 *
 * Translation returns a span only when [addr, addr+len) lies inside one
 * region; every access to guest memory goes through such a span.
 */
class GuestMemory
{
public:
	GuestMemory() = default;
	explicit GuestMemory(std::vector<std::shared_ptr<const MappedRegion>> regions);

	/**
	 * \brief A new table with \a region added.
	 * \throws wire::ProtocolError if it overlaps an existing region (in guest
	 * or user address space) or the table is full
	 */
	std::shared_ptr<const GuestMemory>
	with_region(std::shared_ptr<const MappedRegion> region, size_t max_regions) const;

	/**
	 * \brief A new table without the region matching \a desc exactly
	 * (guest address, size and user address).
	 * \throws wire::ProtocolError if no region matches
	 */
	std::shared_ptr<const GuestMemory> without_region(const wire::MemoryRegion &desc) const;

	/** \brief Host bytes for guest-physical [gpa, gpa+len); empty span if not mapped. */
	std::span<uint8_t> gpa_to_host(uint64_t gpa, uint64_t len) const;
	/**
	 * \brief Host bytes from guest-physical \a gpa up to \a len bytes or the end
	 * of the region holding \a gpa, whichever comes first; empty if \a gpa is
	 * not mapped. A buffer crossing from one region into an adjacent one
	 * (QEMU splits guest RAM around holes and hot-plugged DIMMs) is
	 * translated piece by piece with this.
	 */
	std::span<uint8_t> gpa_to_host_prefix(uint64_t gpa, uint64_t len) const;
	/** \brief Host bytes for front-end virtual [uva, uva+len); empty span if not mapped. */
	std::span<uint8_t> uva_to_host(uint64_t uva, uint64_t len) const;

	size_t region_count() const { return regions_.size(); }
	const std::vector<std::shared_ptr<const MappedRegion>> &regions() const { return regions_; }

private:
	std::vector<std::shared_ptr<const MappedRegion>> regions_;
};

} // namespace vhostpp
