/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file server.h
 * \brief Serving a Device to one vhost-user front-end at a time.
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vhostpp/device.h"
#include "vhostpp/fd.h"

namespace vhostpp {

class Session;

/** \brief One listening socket passed by systemd socket activation. */
struct SystemdSocket {
	UniqueFd fd;
	/** \brief Its FileDescriptorName= (LISTEN_FDNAMES), "" when systemd gave none. */
	std::string name;
};

/**
 * \brief Take the sockets systemd passed to this process (LISTEN_PID,
 * LISTEN_FDS, LISTEN_FDNAMES; fds 3, 4, ...), marked close-on-exec, and
 * unset the variables so that no child inherits them. Empty when the
 * environment names no socket for this process.
 */
std::vector<SystemdSocket> take_systemd_sockets();

/**
 * \brief Check that \a fd is a listening Unix stream socket.
 * \throws std::runtime_error naming what it is not
 */
void check_listening_unix_socket(int fd);

/**
 * \brief Listens on a Unix socket and serves a Device to the front-end that connects.
 *
 * One front-end at a time: when it disconnects the device is reset, every
 * resource of the connection released, and the next one accepted (so QEMU's
 * `reconnect=` works). A protocol error ends only the connection, never the
 * server. Everything runs on the given io_context; the server starts no
 * threads.
 */
class Server
{
public:
	Server(boost::asio::io_context &io, Device &device);
	~Server();
	Server(const Server &) = delete;
	Server &operator=(const Server &) = delete;

	/**
	 * \brief Listen on \a path. A stale socket file there is removed; any other
	 * kind of file is left alone and refused.
	 * \throws std::runtime_error with the reason
	 */
	void listen(const std::string &path);
	/** \brief Serve on an inherited, already listening socket (e.g. `--socket-fd`).
	 *  \throws std::runtime_error if \a fd is not a listening Unix stream socket */
	void listen_fd(UniqueFd fd);
	/**
	 * \brief Serve on the first socket systemd passed (take_systemd_sockets()).
	 * \return false when the environment names no socket for this process
	 */
	bool listen_systemd();

	/** \brief Stop accepting, drop the current front-end (device reset), remove the
	 *  socket file if listen() created it. */
	void stop();

	/**
	 * \brief Do not offer these VHOST_USER_PROTOCOL_F_* bits (wire::bit()) to
	 * front-ends connecting from now on.
	 *
	 * For front-ends known to mishandle a feature: QEMU 7.2 does not send the
	 * memory regions again after a reconnect when CONFIGURE_MEM_SLOTS was
	 * negotiated, so a restarted back-end can never resume its rings.
	 */
	void withhold_protocol_features(uint64_t bits) { withheld_protocol_features_ |= bits; }

	/** \brief True while a front-end is connected. */
	bool connected() const;
	/** \brief Number of front-end connections accepted so far. */
	uint64_t connections() const { return connections_; }

	/** \brief Called after a front-end's connection ended and the device was reset. */
	void on_disconnect(std::function<void()> callback) { on_disconnect_ = std::move(callback); }

private:
	void start_accept();
	void accept_one();

	boost::asio::io_context &io_;
	Device &device_;
	struct Listener;
	std::unique_ptr<Listener> listener_;
	std::unique_ptr<Session> session_;
	std::string owned_path_;
	uint64_t connections_ = 0;
	uint64_t withheld_protocol_features_ = 0;
	std::function<void()> on_disconnect_;
};

} // namespace vhostpp
