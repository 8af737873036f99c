/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "vhostpp/internal/memory.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vhostpp {

namespace {

bool overflows(uint64_t a, uint64_t b)
{
	uint64_t sum;
	return __builtin_add_overflow(a, b, &sum);
}

/* [start, start+len) inside [base, base+size), with no overflow anywhere. */
bool contains(uint64_t base, uint64_t size, uint64_t start, uint64_t len)
{
	if (start < base)
		return false;
	uint64_t off = start - base;
	return off <= size && len <= size - off;
}

bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

std::string describe(const wire::MemoryRegion &r)
{
	return fmt::format("region gpa 0x{:x} size 0x{:x} uaddr 0x{:x} offset 0x{:x}",
			   r.guest_phys_addr, r.memory_size, r.userspace_addr, r.mmap_offset);
}

} // namespace

MappedRegion::MappedRegion(const wire::MemoryRegion &desc, void *mapping, size_t mapping_size)
	: desc_(desc), mapping_(mapping), mapping_size_(mapping_size),
	  host_(static_cast<uint8_t *>(mapping) +
		(desc.mmap_offset % static_cast<uint64_t>(::sysconf(_SC_PAGESIZE))))
{
}

MappedRegion::~MappedRegion()
{
	::munmap(mapping_, mapping_size_);
}

std::shared_ptr<const MappedRegion> MappedRegion::map(const wire::MemoryRegion &desc,
						      const UniqueFd &fd)
{
	if (desc.memory_size == 0)
		throw wire::ProtocolError(describe(desc) + ": size 0");
	if (overflows(desc.guest_phys_addr, desc.memory_size))
		throw wire::ProtocolError(describe(desc) + ": gpa + size overflows");
	if (overflows(desc.userspace_addr, desc.memory_size))
		throw wire::ProtocolError(describe(desc) + ": uaddr + size overflows");
	if (overflows(desc.mmap_offset, desc.memory_size))
		throw wire::ProtocolError(describe(desc) + ": mmap_offset + size overflows");
	if (!fd.valid())
		throw wire::ProtocolError(describe(desc) + ": no fd");

	struct stat st;
	if (::fstat(fd.get(), &st) < 0)
		throw wire::ProtocolError(describe(desc) + ": fstat failed: " + std::strerror(errno));
	if (!S_ISREG(st.st_mode))
		throw wire::ProtocolError(describe(desc) + ": fd is not a regular file or memfd");
	/* Touching a mapping past the file's end is SIGBUS: refuse it up front. */
	if (static_cast<uint64_t>(st.st_size) < desc.mmap_offset + desc.memory_size)
		throw wire::ProtocolError(
			fmt::format("{}: fd is only 0x{:x} bytes long", describe(desc), st.st_size));

	uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
	uint64_t aligned_offset = desc.mmap_offset & ~(page - 1);
	uint64_t length = desc.memory_size + (desc.mmap_offset - aligned_offset);
	if (length > SIZE_MAX)
		throw wire::ProtocolError(describe(desc) + ": too large to map");

	void *p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			 fd.get(), static_cast<off_t>(aligned_offset));
	if (p == MAP_FAILED)
		throw wire::ProtocolError(describe(desc) + ": mmap failed: " + std::strerror(errno));
	return std::shared_ptr<const MappedRegion>(new MappedRegion(desc, p, length));
}

GuestMemory::GuestMemory(std::vector<std::shared_ptr<const MappedRegion>> regions)
{
	for (auto &r : regions) {
		for (const auto &existing : regions_) {
			if (ranges_overlap(r->guest_addr(), r->size(), existing->guest_addr(),
					   existing->size()))
				throw wire::ProtocolError(describe(r->desc()) +
							  ": guest range overlaps " +
							  describe(existing->desc()));
			if (ranges_overlap(r->user_addr(), r->size(), existing->user_addr(),
					   existing->size()))
				throw wire::ProtocolError(describe(r->desc()) +
							  ": user range overlaps " +
							  describe(existing->desc()));
		}
		regions_.push_back(std::move(r));
	}
}

std::shared_ptr<const GuestMemory>
GuestMemory::with_region(std::shared_ptr<const MappedRegion> region, size_t max_regions) const
{
	if (regions_.size() >= max_regions)
		throw wire::ProtocolError(fmt::format("{}: all {} memory slots in use",
						      describe(region->desc()), max_regions));
	auto regions = regions_;
	regions.push_back(std::move(region));
	return std::make_shared<const GuestMemory>(std::move(regions));
}

std::shared_ptr<const GuestMemory> GuestMemory::without_region(const wire::MemoryRegion &desc) const
{
	auto regions = regions_;
	for (auto it = regions.begin(); it != regions.end(); ++it) {
		const auto &d = (*it)->desc();
		if (d.guest_phys_addr == desc.guest_phys_addr && d.memory_size == desc.memory_size &&
		    d.userspace_addr == desc.userspace_addr) {
			regions.erase(it);
			return std::make_shared<const GuestMemory>(std::move(regions));
		}
	}
	throw wire::ProtocolError(describe(desc) + ": no such region");
}

std::span<uint8_t> GuestMemory::gpa_to_host(uint64_t gpa, uint64_t len) const
{
	for (const auto &r : regions_) {
		if (contains(r->guest_addr(), r->size(), gpa, len))
			return {r->host() + (gpa - r->guest_addr()), static_cast<size_t>(len)};
	}
	return {};
}

std::span<uint8_t> GuestMemory::gpa_to_host_prefix(uint64_t gpa, uint64_t len) const
{
	if (len == 0)
		return {};
	for (const auto &r : regions_) {
		if (contains(r->guest_addr(), r->size(), gpa, 1)) {
			uint64_t room = r->guest_addr() + r->size() - gpa;
			return {r->host() + (gpa - r->guest_addr()),
				static_cast<size_t>(std::min(len, room))};
		}
	}
	return {};
}

std::span<uint8_t> GuestMemory::uva_to_host(uint64_t uva, uint64_t len) const
{
	for (const auto &r : regions_) {
		if (contains(r->user_addr(), r->size(), uva, len))
			return {r->host() + (uva - r->user_addr()), static_cast<size_t>(len)};
	}
	return {};
}

} // namespace vhostpp
