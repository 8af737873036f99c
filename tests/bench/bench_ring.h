/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file bench_ring.h
 * \brief One split virtqueue with both halves in this process, for the
 * benchmarks: the driver's DriverQueue in a DriverMemory, and the
 * library's device-side Virtqueue on the same memfd mapped a second time,
 * as a back-end process maps it. Plus the small helpers both halves' threads
 * need (bounded eventfd waits, thread CPU time).
 */
#pragma once

#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <vector>

#include <vhostpp/frontend/device_driver.h>
#include <vhostpp/internal/memory.h>
#include <vhostpp/virtqueue.h>
#include <vhostpp/internal/virtqueue_setup.h>

namespace vhostpp::bench {

/** \brief Both halves of one ring of \a size entries. */
struct BenchRing {
	BenchRing(uint16_t size, bool event_idx, bool indirect, size_t memory = 4 << 20)
		: mem(memory, 0x40000000), dq(mem, 0, size), vq(0, size)
	{
		region = MappedRegion::map(mem.region(), mem.fd());
		gm = std::make_shared<const GuestMemory>(
			std::vector<std::shared_ptr<const MappedRegion>>{region});
		VirtqueueSetup::set_size(vq, size);
		VirtqueueSetup::set_base(vq, 0);
		VirtqueueSetup::set_addresses(vq, dq.addresses(), gm);
		VirtqueueSetup::set_features(vq, {event_idx, indirect, false});
		VirtqueueSetup::set_call(vq, EventFd(dq.call_fd().unique_fd().duplicate()));
		VirtqueueSetup::new_generation(vq);
	}
	int kick_fd() const { return dq.kick_fd().unique_fd().get(); }
	int call_fd() const { return dq.call_fd().unique_fd().get(); }

	DriverMemory mem;
	DriverQueue dq;
	std::shared_ptr<const MappedRegion> region; /* the device's mapping */
	std::shared_ptr<const GuestMemory> gm;
	Virtqueue vq;
};

/** \brief CPU seconds of the calling thread. */
inline double thread_cpu_s()
{
	timespec ts{};
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

/**
 * \brief Wait up to \a timeout_ms for eventfd \a fd and read it.
 * \return the counter read (the number of signals it sums), 0 on timeout
 */
inline uint64_t wait_eventfd(int fd, int timeout_ms)
{
	pollfd p{fd, POLLIN, 0};
	if (poll(&p, 1, timeout_ms) != 1)
		return 0;
	uint64_t v = 0;
	if (read(fd, &v, sizeof v) != sizeof v)
		return 0;
	return v;
}

} // namespace vhostpp::bench
