/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file frontend.h
 * \brief Frontend: the vhost-user protocol client, spoken as QEMU speaks it.
 *
 * Errors: every request throws FrontendError for whatever goes wrong on the
 * connection (socket errors, timeouts, a malformed or unexpected reply, a
 * non-zero REPLY_ACK, the peer closing). Fds sent to the back-end are sent
 * as copies (the kernel duplicates them); the sender keeps its own.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "vhostpp/fd.h"
#include "vhostpp/frontend/driver_memory.h"
#include "vhostpp/frontend/driver_queue.h"

namespace vhostpp {

/* Wire types: declarations only (see driver_memory.h). */
namespace wire {
enum class Request : uint32_t;
struct Message;
} // namespace wire

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

	/**
	 * \brief Wait until the back-end closes the connection; bytes and fds it
	 * sends meanwhile are discarded (fds closed).
	 * \return false if it is still open after \a timeout_ms
	 */
	bool wait_closed(int timeout_ms = 5000);

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
	/* Raw messages, so hostile tests can send anything a malicious front-end
	 * could: reached only through vhostpp/frontend/testing.h. */
	friend struct testing::Access;
	void send(const wire::Message &msg);
	void send(const wire::Message &msg, std::span<const int> fds);
	wire::Message receive(int timeout_ms);
	void send_raw(std::span<const uint8_t> bytes, std::span<const int> fds);
	std::vector<uint8_t> receive_reply(wire::Request code, size_t expected_size,
					   int timeout_ms = 5000);

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

} // namespace vhostpp
