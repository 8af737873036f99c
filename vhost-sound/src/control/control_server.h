/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file control_server.h
 * \brief The control socket: a Unix stream socket serving ControlCommands.
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include "control/control_protocol.h"

namespace vhost_sound {

/**
 * \brief Serves the line protocol of ControlCommands on a Unix socket, on
 * the loop (no threads).
 *
 * Many clients at once (up to kMaxClients; one more gets `ERR 503` and is
 * closed). Each line is answered in order. A line over
 * ControlCommands::kMaxLine gets `ERR 413` and the rest of it is skipped.
 * A client that does not read its replies is dropped once kMaxPendingOutput
 * bytes are waiting for it, so no client can make the daemon grow.
 */
class ControlServer
{
public:
	static constexpr size_t kMaxClients = 32;
	static constexpr size_t kMaxPendingOutput = 64 * 1024;

	ControlServer(boost::asio::io_context &io, ControlCommands &commands);
	~ControlServer();
	ControlServer(const ControlServer &) = delete;
	ControlServer &operator=(const ControlServer &) = delete;

	/**
	 * \brief Listen on \a path with permissions \a mode (set before the
	 * socket accepts anything). A stale socket file there (nobody listening)
	 * is replaced; a live socket or any other file is refused.
	 * \throws std::runtime_error with the reason
	 */
	void listen(const std::string &path, mode_t mode = 0600);

	/** \brief Close the socket and every client, remove the socket file. */
	void stop();

	/** \brief Clients connected now. */
	size_t clients() const;

private:
	class Client;

	void accept();

	boost::asio::io_context &io_;
	ControlCommands &commands_;
	std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
	std::string path_;
	/* Exists while listening; accept handlers hold a weak reference. */
	std::shared_ptr<int> listening_;
	/* Clients own themselves through their pending operations. */
	std::vector<std::weak_ptr<Client>> clients_;
};

} // namespace vhost_sound
