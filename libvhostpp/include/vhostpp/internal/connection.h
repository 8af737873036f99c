/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file connection.h
 * \brief Moving vhost-user messages and their fds over a Unix stream socket.
 *
 * This layer knows framing only (a 12-byte header, then `size` payload
 * bytes, fds in SCM_RIGHTS ancillary data); what the bytes mean is wire.h's
 * business. It never blocks by itself: MessageReader consumes whatever a
 * non-blocking socket has, so a peer that sends half a message cannot stall
 * an event loop.
 */
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vhostpp/fd.h"
#include "vhostpp/internal/wire.h"

namespace vhostpp {

/**
 * \brief Send \a bytes with \a fds attached to the first byte.
 *
 * Loops over partial writes; waits (poll) when the socket is full, up to
 * \a timeout_ms in all. Uses MSG_NOSIGNAL.
 * \throws std::system_error on a socket error or timeout
 */
void send_bytes(int socket, std::span<const uint8_t> bytes, std::span<const int> fds = {},
		int timeout_ms = 5000);

/**
 * \brief One non-blocking sendmsg() of \a bytes, \a fds attached (pass none
 * after the first byte went out).
 * \return the bytes the socket took, 0 when it is full
 * \throws std::system_error on a socket error
 */
size_t send_some(int socket, std::span<const uint8_t> bytes, std::span<const int> fds = {});

/** \brief A message's header and payload as one byte string. */
std::vector<uint8_t> message_bytes(const wire::Message &msg);

/** \brief Send a whole message (header, payload, fds). \throws std::system_error */
void send_message(int socket, const wire::Message &msg, int timeout_ms = 5000);

/**
 * \brief Incremental reader of one message at a time from a non-blocking socket.
 *
 * The header is validated with wire::check_header() before any payload is
 * read, so a hostile size never causes an allocation or a wait.
 */
class MessageReader
{
public:
	/** \brief Who sends the messages being read, which decides how headers are checked. */
	enum class Source {
		FrontEnd, /**< requests, checked by wire::check_header() */
		BackEnd,  /**< replies and back-end requests: version and a size bound checked */
	};

	explicit MessageReader(Source source = Source::FrontEnd) : source_(source) {}

	enum class Status {
		NeedMore, /**< the socket has no more bytes now; call again when readable */
		Complete, /**< take() returns the message */
		Closed,	  /**< orderly EOF between messages */
	};

	/**
	 * \brief Read what the socket has towards the current message.
	 * \throws wire::ProtocolError on a bad header, truncated ancillary data,
	 * too many fds, or EOF inside a message; std::system_error on socket errors.
	 * All fds received for the message are closed when it throws.
	 */
	Status read_some(int socket);

	/** \brief The completed message; the reader starts on the next one. */
	wire::Message take();

	/** \brief True while a message has been partly received. */
	bool in_progress() const { return header_got_ > 0; }

private:
	void check_header() const;

	Source source_;
	wire::Message msg_;
	size_t header_got_ = 0;
	size_t payload_got_ = 0;
	bool complete_ = false;
};

/**
 * \brief Blocking receive of one whole message (front-end side, tests).
 * \throws wire::ProtocolError for a malformed message or EOF; std::system_error on
 * timeout or socket error
 */
wire::Message receive_message(int socket, int timeout_ms = 5000,
			      MessageReader::Source source = MessageReader::Source::BackEnd);

} // namespace vhostpp
