/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file server.h
 * \brief Serving a Device to one vhost-user front-end at a time.
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cstddef>
#include <cstdint>
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
 * \brief What a Server offers front-ends beyond what the Device itself decides.
 *
 * Every protocol feature the library implements is offered by default; a
 * switch here turns one off, for front-ends known to mishandle it.
 */
struct ServerOptions {
	/**
	 * \brief Offer memory slots (VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS:
	 * ADD_MEM_REG, REM_MEM_REG), so memory can be hot-plugged region by
	 * region. Off: memory only comes with SET_MEM_TABLE.
	 *
	 * QEMU 7.2 does not send the memory regions again after a reconnect when
	 * this was negotiated, so a restarted back-end can never resume its rings.
	 */
	bool offer_mem_slots = true;
	/** \brief Offer the back-end channel (PROTOCOL_F_BACKEND_REQ); without it
	 *  DeviceContext::notify_config_change() cannot reach the front-end. */
	bool offer_backend_channel = true;
	/** \brief Offer SET_STATUS / GET_STATUS (PROTOCOL_F_STATUS). */
	bool offer_status = true;
	/** \brief Offer RESET_DEVICE (PROTOCOL_F_RESET_DEVICE). */
	bool offer_reset_device = true;
	/** \brief Offer the config space (PROTOCOL_F_CONFIG) when the device has
	 *  one (Device::config_size() > 0). */
	bool offer_config = true;

	/**
	 * \brief Replies the front-end has not read yet, in bytes, above which it
	 * is disconnected (for the back-end channel's messages: above which the
	 * channel is dropped). Nothing is ever written
	 * with a blocking call on the loop thread: what the socket does not take
	 * at once waits in a queue.
	 */
	size_t max_unsent_bytes = 64 * 1024;
	/** \brief Milliseconds the front-end may leave waiting replies unread
	 *  without reading any of them before it is disconnected (the back-end
	 *  channel, instead, is dropped). */
	unsigned unsent_timeout_ms = 5000;
};

/**
 * \brief Listens on a Unix socket and serves a Device to the front-end that connects.
 *
 * One front-end at a time: when it disconnects the device is detached
 * (Device::detach()), every resource of the connection released, and the
 * next one accepted (so QEMU's `reconnect=` works). A protocol error ends
 * only the connection, never the server. Everything runs on the given
 * io_context; the server starts no threads.
 */
class Server
{
public:
	/** \brief Serve \a device on \a io's thread with \a options; nothing starts
	 *  until listen(), listen_fd(), listen_systemd() or serve_connected(). */
	Server(boost::asio::io_context &io, Device &device, ServerOptions options = {});
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

	/**
	 * \brief Serve the front-end on the other end of an already connected Unix
	 * stream socket (systemd Accept=yes, a socketpair in tests and fuzzers).
	 *
	 * No listening socket is involved: when that front-end leaves nothing is
	 * accepted after it (unless the server also listens).
	 * \throws std::runtime_error if \a fd is not a connected Unix stream socket,
	 * or while another front-end is being served
	 */
	void serve_connected(UniqueFd fd);

	/** \brief Stop accepting, drop the current front-end (device detached), remove the
	 *  socket file if listen() created it. */
	void stop();

	/** \brief True while a front-end is connected. */
	bool connected() const;
	/** \brief Number of front-end connections accepted so far. */
	uint64_t connections() const { return connections_; }

	/** \brief Called after a front-end's connection ended and the device was detached. */
	void on_disconnect(std::function<void()> callback) { on_disconnect_ = std::move(callback); }

private:
	void start_accept();
	void accept_one();
	/* Retry accepting after \a delay_ms (EMFILE and friends). */
	void retry_accept(unsigned delay_ms);
	/* Hand a connected socket to a new Session. */
	void start_session(boost::asio::local::stream_protocol::socket socket);

	boost::asio::io_context &io_;
	Device &device_;
	ServerOptions options_;
	struct Listener;
	std::unique_ptr<Listener> listener_;
	std::unique_ptr<Session> session_;
	std::string owned_path_;
	uint64_t connections_ = 0;
	/* Back-off while accept keeps failing; reset by a successful accept. */
	unsigned accept_backoff_ms_ = 0;
	std::function<void()> on_disconnect_;
};

} // namespace vhostpp
