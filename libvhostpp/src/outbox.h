/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Messages from the back-end to the front-end (replies on the connection,
 * requests on the back-end channel), sent without ever blocking the loop
 * thread (internal to the library).
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vhostpp/fd.h"
#include "vhostpp/internal/wire.h"

namespace vhostpp {

/*
 * What a socket does not take at once waits here, in order, and goes out
 * when the socket is writable again. A peer that does not read cannot
 * stall the loop; one that leaves more than max_bytes unread, or reads
 * nothing of what waits for timeout_ms, is reported once through on_error
 * (posted, never called from inside send()).
 */
class Outbox
{
public:
	/* \a socket is not owned; it must outlive the outbox. */
	Outbox(boost::asio::io_context &io, int socket, size_t max_bytes, unsigned timeout_ms,
	       std::function<void(const std::string &)> on_error);
	~Outbox();
	Outbox(const Outbox &) = delete;
	Outbox &operator=(const Outbox &) = delete;

	/* Queue \a msg (its fds go with its first byte) and send what the socket takes. */
	void send(const wire::Message &msg);
	/* Bytes queued and not yet taken by the socket. */
	size_t unsent() const { return unsent_; }
	/* True once on_error was posted: nothing more will be sent. */
	bool failed() const { return failed_; }

private:
	struct Item {
		std::vector<uint8_t> bytes;
		std::vector<UniqueFd> fds; /* copies, closed once sent */
		size_t sent = 0;
	};

	void flush();
	void wait_writable();
	void fail(const std::string &why);

	boost::asio::io_context &io_;
	int socket_;
	/* A duplicate of the socket, only to learn when it is writable. */
	boost::asio::posix::stream_descriptor writable_;
	boost::asio::steady_timer deadline_;
	size_t max_bytes_;
	unsigned timeout_ms_;
	std::function<void(const std::string &)> on_error_;
	std::deque<Item> queue_;
	size_t unsent_ = 0;
	bool waiting_ = false;
	bool failed_ = false;
	/* Handlers hold a weak_ptr to this: after the outbox is gone they do nothing. */
	std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

} // namespace vhostpp
