/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file virtqueue_setup.h
 * \brief Ring set-up of a Virtqueue outside the session: unit tests,
 * fuzzers and benchmarks only.
 *
 * A device never sets a ring up (the front-end does, through the session),
 * so these operations are private to Virtqueue. Code that drives a
 * Virtqueue without a session reaches them here; this header is internal
 * and not installed.
 */
#pragma once

#include <cstdint>
#include <memory>

#include "vhostpp/fd.h"
#include "vhostpp/internal/memory.h"
#include "vhostpp/internal/wire.h"
#include "vhostpp/virtqueue.h"

namespace vhostpp {

/** \brief Friend of Virtqueue: forwards to its private set-up operations. */
struct VirtqueueSetup {
	/** \brief Negotiated ring features, as they matter to one queue. */
	using Features = Virtqueue::Features;

	/** \brief SET_VRING_NUM. \throws wire::ProtocolError for a bad size */
	static void set_size(Virtqueue &q, uint32_t num) { q.set_size(num); }
	/** \brief SET_VRING_ADDR. \throws wire::ProtocolError for bad addresses */
	static void set_addresses(Virtqueue &q, const wire::VringAddr &addr,
				  std::shared_ptr<const GuestMemory> memory)
	{
		q.set_addresses(addr, std::move(memory));
	}
	/** \brief Translate the ring addresses again against \a memory. */
	static void remap(Virtqueue &q, std::shared_ptr<const GuestMemory> memory)
	{
		q.remap(std::move(memory));
	}
	/** \brief SET_VRING_BASE. */
	static void set_base(Virtqueue &q, uint32_t base) { q.set_base(base); }
	/** \brief Give back the chains in flight (in-order device stopping). */
	static void rewind_in_flight(Virtqueue &q) { q.rewind_in_flight(); }
	/** \brief The negotiated ring features. */
	static void set_features(Virtqueue &q, Features f) { q.set_features(f); }
	/** \brief SET_VRING_CALL. */
	static void set_call(Virtqueue &q, EventFd call) { q.set_call(std::move(call)); }
	/** \brief SET_VRING_ERR. */
	static void set_err(Virtqueue &q, EventFd err) { q.set_err(std::move(err)); }
	/** \brief A new start of the ring: chains popped before are stale. */
	static void new_generation(Virtqueue &q) { q.new_generation(); }
	/** \brief Forget everything. */
	static void reset(Virtqueue &q) { q.reset(); }
};

} // namespace vhostpp
