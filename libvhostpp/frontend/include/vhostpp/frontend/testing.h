/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file testing.h
 * \brief Raw hooks into the front-end, for hostile tests only.
 *
 * A hostile test must be able to write anything a malicious guest or
 * front-end could: descriptors, avail entries and indices behind the
 * driver's bookkeeping, and arbitrary messages and bytes on the socket.
 * These hooks are kept out of the classes' public interface so that a
 * benchmark or tool cannot come to depend on them by accident. This header
 * uses the library's internal wire format and is not installed.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vhostpp/frontend/driver_queue.h"
#include "vhostpp/frontend/frontend.h"
#include "vhostpp/internal/wire.h"

namespace vhostpp::testing {

/** \brief The only way to the private raw members (friend of DriverQueue and Frontend). */
struct Access {
	using RawDesc = DriverQueue::RawDesc;
	static RawDesc *descriptor_table(DriverQueue &q) { return q.descriptor_table(); }
	static void publish_raw(DriverQueue &q, uint16_t head) { q.publish_raw(head); }
	static void set_avail_idx(DriverQueue &q, uint16_t idx) { q.set_avail_idx(idx); }
	static void write_avail_slot(DriverQueue &q, uint16_t slot, uint16_t head)
	{
		q.write_avail_slot(slot, head);
	}
	static void send(Frontend &fe, const wire::Message &msg) { fe.send(msg); }
	static void send(Frontend &fe, const wire::Message &msg, std::span<const int> fds)
	{
		fe.send(msg, fds);
	}
	static wire::Message receive(Frontend &fe, int timeout_ms) { return fe.receive(timeout_ms); }
	static void send_raw(Frontend &fe, std::span<const uint8_t> bytes, std::span<const int> fds)
	{
		fe.send_raw(bytes, fds);
	}
	static std::vector<uint8_t> receive_reply(Frontend &fe, wire::Request code,
						  size_t expected_size, int timeout_ms)
	{
		return fe.receive_reply(code, expected_size, timeout_ms);
	}
};

/** \brief A descriptor exactly as it lies in guest memory. */
using RawDesc = Access::RawDesc;

/** \brief The descriptor table in guest memory (q.size() entries). */
inline RawDesc *descriptor_table(DriverQueue &q)
{
	return Access::descriptor_table(q);
}
/** \brief Put \a head in the avail ring and bump avail->idx (release); no bookkeeping. */
inline void publish_raw(DriverQueue &q, uint16_t head)
{
	Access::publish_raw(q, head);
}
/** \brief Store \a idx in avail->idx (release); the driver's own count follows it. */
inline void set_avail_idx(DriverQueue &q, uint16_t idx)
{
	Access::set_avail_idx(q, idx);
}
/** \brief Write avail->ring[slot % size] without publishing it. */
inline void write_avail_slot(DriverQueue &q, uint16_t slot, uint16_t head)
{
	Access::write_avail_slot(q, slot, head);
}

/** \brief Send \a msg (header, payload, its fds) as it is. */
inline void send(Frontend &fe, const wire::Message &msg)
{
	Access::send(fe, msg);
}
/** \brief Send \a msg with \a fds (not owned) attached instead of the message's own. */
inline void send(Frontend &fe, const wire::Message &msg, std::span<const int> fds)
{
	Access::send(fe, msg, fds);
}
/** \brief Receive one message from the back-end (no checks beyond framing). */
inline wire::Message receive(Frontend &fe, int timeout_ms = 5000)
{
	return Access::receive(fe, timeout_ms);
}
/** \brief Send arbitrary bytes, \a fds attached to the first one. */
inline void send_raw(Frontend &fe, std::span<const uint8_t> bytes, std::span<const int> fds = {})
{
	Access::send_raw(fe, bytes, fds);
}
/** \brief Wait for a reply to \a code and return its payload, checked to be
 *  \a expected_size bytes unless that is SIZE_MAX. */
inline std::vector<uint8_t> receive_reply(Frontend &fe, wire::Request code, size_t expected_size,
					  int timeout_ms = 5000)
{
	return Access::receive_reply(fe, code, expected_size, timeout_ms);
}

} // namespace vhostpp::testing
