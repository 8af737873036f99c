/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file control_server.h
 * \brief The control socket: a Unix stream socket serving ControlCommands.
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

#include <vhostpp/fd.h>

#include "control/control_commands.h"

namespace vhost_sound {

/** \brief Who may use the control socket besides the daemon's own uid and root. */
struct ControlAccess {
	/** \brief --control-allow-uid. */
	std::vector<uid_t> uids;
	/** \brief --control-allow-gid: a peer whose primary or supplementary group is one of these. */
	std::vector<gid_t> gids;
};

/**
 * \brief Serves the line protocol of ControlCommands on a Unix socket, on
 * the loop (no threads).
 *
 * Every peer is checked with SO_PEERCRED when it connects: the daemon's
 * own uid, root, and the uids and groups of ControlAccess get in; anyone
 * else gets `ERR 403` and is disconnected (logged once per pid and uid).
 * Many clients at once (up to kMaxClients; one more gets `ERR 503` and is
 * closed). Each line is answered in order. A line over control::kMaxLine
 * gets `ERR 413` and the rest of it is skipped. After WATCH a client also
 * receives every published event line. A client that does not read is
 * dropped once kMaxPendingOutput bytes are waiting for it, so no client,
 * watcher or not, can make the daemon grow or wait.
 */
class ControlServer
{
public:
	static constexpr size_t kMaxClients = 64;
	static constexpr size_t kMaxPendingOutput = 64 * 1024;

	ControlServer(boost::asio::io_context &io, ControlCommands &commands);
	~ControlServer();
	ControlServer(const ControlServer &) = delete;
	ControlServer &operator=(const ControlServer &) = delete;

	/** \brief Let these peers in too (checked at each connection from now on). */
	void set_access(ControlAccess access) { access_ = std::move(access); }

	/**
	 * \brief Listen on \a path with permissions \a mode and, if given,
	 * group \a group (both set before the socket accepts anything). A stale
	 * socket file there (nobody listening) is replaced; a live socket or any
	 * other file is refused.
	 * \throws std::runtime_error with the reason
	 */
	void listen(const std::string &path, mode_t mode = 0600,
		    std::optional<gid_t> group = std::nullopt);

	/**
	 * \brief Serve on an inherited, already listening Unix socket (systemd
	 * socket activation); its file, if any, is not removed by stop().
	 * \throws std::runtime_error if \a fd is not a listening Unix stream socket
	 */
	void listen_fd(vhostpp::UniqueFd fd);

	/** \brief Close the socket and every client, remove the socket file listen() made. */
	void stop();

	/** \brief Send \a line (no newline) to every client that sent WATCH. */
	void publish(const std::string &line);

	/** \brief Clients connected now. */
	size_t clients() const;
	/** \brief Clients that sent WATCH and are still connected. */
	size_t watchers() const;

private:
	class Client;

	void start_listening(std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor);
	void accept();
	/* True if the peer of \a socket may talk to the daemon; logs a refusal once. */
	bool admit(boost::asio::local::stream_protocol::socket &socket);

	boost::asio::io_context &io_;
	ControlCommands &commands_;
	ControlAccess access_;
	std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
	std::string path_;
	/* Exists while listening; accept handlers hold a weak reference. */
	std::shared_ptr<int> listening_;
	/* Clients own themselves through their pending operations. */
	std::vector<std::weak_ptr<Client>> clients_;
	/* Refused peers already logged, (pid, uid); bounded. */
	std::set<std::pair<pid_t, uid_t>> refused_logged_;
};

} // namespace vhost_sound
