/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Target 3, the split virtqueue: the fuzzer writes guest memory (descriptor
 * table, avail ring, indirect tables, buffers) and places the rings; the
 * device side pops every chain, reads and writes it and pushes it with a
 * fuzzer-chosen length, keeps some in flight, pushes some twice, rewinds,
 * and then the "guest" rewrites part of its memory and the device pops
 * again. Every access must stay inside the two mapped regions.
 *
 * Input: [queue size code] [features] [base u16] [desc, avail, used offsets
 * u16 each] [a second-round patch offset u16, length u8] [64 KiB of guest
 * memory, zero past the input's end] — then the per-chain decisions come
 * from the same bytes as the memory, so interesting memories also steer.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <vhostpp/log.h>
#include <vhostpp/internal/memory.h>
#include <vhostpp/virtqueue.h>
#include <vhostpp/internal/virtqueue_setup.h>

#include "fuzz_input.h"

using namespace vhostpp;

namespace {

/* Two regions, adjacent in guest-physical space, far apart in the
 * front-end's address space: chains straddling them must be refused or
 * split, never read across the gap. */
constexpr uint64_t kRegionBytes = 32 * 1024;
constexpr uint64_t kUserBase = 0x7f0000000000;
constexpr uint64_t kUserGap = 0x100000;

struct Memory {
	UniqueFd fd;
	std::shared_ptr<const GuestMemory> table;
	uint8_t *host = nullptr; /* our own view of the memfd, to play the guest */

	Memory()
	{
		fd = UniqueFd(::memfd_create("fuzz-guest", MFD_CLOEXEC));
		if (!fd.valid() || ::ftruncate(fd.get(), 2 * kRegionBytes) != 0)
			std::abort();
		void *p = ::mmap(nullptr, 2 * kRegionBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
		if (p == MAP_FAILED)
			std::abort();
		host = static_cast<uint8_t *>(p);
		std::vector<std::shared_ptr<const MappedRegion>> regions;
		for (uint64_t i = 0; i < 2; i++)
			regions.push_back(MappedRegion::map(
				{ i * kRegionBytes, kRegionBytes, kUserBase + i * kUserGap, i * kRegionBytes },
				fd));
		table = std::make_shared<const GuestMemory>(std::move(regions));
	}
	~Memory() { ::munmap(host, 2 * kRegionBytes); }
};

uint64_t user_addr(uint16_t offset)
{
	/* Offsets past the first region land in the second one's space. */
	const uint64_t off = offset % (2 * kRegionBytes);
	return off < kRegionBytes ? kUserBase + off : kUserBase + kUserGap + (off - kRegionBytes);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const bool quiet = [] {
		fuzz::route_library_log();
		return true;
	}();
	(void)quiet;
	static Memory memory;

	fuzz::Input in(data, size);
	const uint16_t queue_size = uint16_t{1} << (in.take<uint8_t>() % 9);
	const uint8_t feature_bits = in.take<uint8_t>();
	const uint16_t base = in.take<uint16_t>();
	wire::VringAddr addr{};
	addr.desc_user_addr = user_addr(in.take<uint16_t>()) & ~uint64_t{15};
	addr.avail_user_addr = user_addr(in.take<uint16_t>()) & ~uint64_t{1};
	addr.used_user_addr = user_addr(in.take<uint16_t>()) & ~uint64_t{3};
	const uint16_t patch_at = in.take<uint16_t>();
	const uint8_t patch_len = in.take<uint8_t>();

	const auto guest = in.bytes(2 * kRegionBytes);
	std::memcpy(memory.host, guest.data(), guest.size());
	std::memset(memory.host + guest.size(), 0, 2 * kRegionBytes - guest.size());
	fuzz::Input decisions(guest.data(), guest.size());

	Virtqueue vq(0, 256);
	try {
		VirtqueueSetup::set_size(vq, queue_size);
		VirtqueueSetup::set_base(vq, base);
		VirtqueueSetup::set_addresses(vq, addr, memory.table);
	} catch (const wire::ProtocolError &) {
		return 0;
	}
	VirtqueueSetup::set_features(vq, { bool(feature_bits & 1), bool(feature_bits & 2), bool(feature_bits & 4) });
	VirtqueueSetup::set_call(vq, EventFd::create());
	VirtqueueSetup::new_generation(vq);

	std::vector<uint8_t> scratch;
	std::vector<DescriptorChain> held;
	auto serve = [&](unsigned round) {
		/* However the guest lays out its ring, one round pops a bounded number of chains. */
		for (unsigned n = 0; n < 4u * queue_size + 8; n++) {
			auto chain = vq.pop();
			if (!chain)
				break;
			scratch.resize(std::min<size_t>(chain->readable_bytes(), 1 << 20));
			chain->read(0, scratch);
			const uint8_t how = decisions.take<uint8_t>();
			chain->fill(decisions.take<uint16_t>() % 64, how, decisions.take<uint16_t>());
			const uint32_t written = decisions.take<uint32_t>();
			switch ((how >> 4) % 4) {
			case 0: /* keep it in flight across the rewind */
				held.push_back(std::move(*chain));
				break;
			case 1: /* completed twice: the second is refused */
				vq.push(*chain, written);
				vq.push(*chain, written);
				break;
			default:
				vq.push(*chain, written);
				break;
			}
			if (how & 8)
				vq.notify();
		}
		(void)round;
	};

	serve(0);
	/* A ring stop: chains in flight go back and the next start sees them again. */
	VirtqueueSetup::rewind_in_flight(vq);
	VirtqueueSetup::new_generation(vq);
	/* The guest rewrites part of its memory meanwhile (descriptors included). */
	const size_t at = patch_at % (2 * kRegionBytes);
	const auto patch = in.bytes(std::min<size_t>(patch_len, 2 * kRegionBytes - at));
	std::memcpy(memory.host + at, patch.data(), patch.size());
	serve(1);
	/* Chains from before the rewind belong to an old generation: refused. */
	for (const auto &chain : held)
		vq.push(chain, 0);
	vq.notify();
	return 0;
}
