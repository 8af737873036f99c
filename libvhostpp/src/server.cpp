/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "vhostpp/server.h"

#include <algorithm>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include "session.h"
#include "vhostpp/internal/logging.h"

namespace vhostpp {

using boost::asio::local::stream_protocol;

struct Server::Listener {
	explicit Listener(boost::asio::io_context &io) : acceptor(io), retry(io) {}
	stream_protocol::acceptor acceptor;
	/* Paces accept retries after an error. */
	boost::asio::steady_timer retry;
};

namespace {

/* Accept retries after an error: from 10 ms, doubling, at most 1 s. */
constexpr unsigned kFirstAcceptRetryMs = 10;
constexpr unsigned kMaxAcceptRetryMs = 1000;

} // namespace

void check_listening_unix_socket(int fd)
{
	int type = 0, listening = 0, domain = 0;
	socklen_t len = sizeof(int);
	if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		throw std::runtime_error(fmt::format("fd {} is not a socket: {}", fd,
						     std::strerror(errno)));
	len = sizeof(int);
	::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
	len = sizeof(int);
	::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
	if (domain != AF_UNIX || type != SOCK_STREAM)
		throw std::runtime_error(fmt::format("fd {} is not a Unix stream socket", fd));
	if (!listening)
		throw std::runtime_error(fmt::format("fd {} is not listening", fd));
}

std::vector<SystemdSocket> take_systemd_sockets()
{
	const char *pid = std::getenv("LISTEN_PID");
	const char *fds = std::getenv("LISTEN_FDS");
	const char *names = std::getenv("LISTEN_FDNAMES");
	std::vector<SystemdSocket> sockets;
	if (!pid || !fds || std::strtol(pid, nullptr, 10) != ::getpid())
		return sockets;
	const long count = std::strtol(fds, nullptr, 10);
	std::string name_list = names ? names : "";
	::unsetenv("LISTEN_PID");
	::unsetenv("LISTEN_FDS");
	::unsetenv("LISTEN_FDNAMES");
	/* sd_listen_fds(3): the fds start at 3; names are colon-separated, in order. */
	constexpr int kFirstSystemdFd = 3;
	size_t at = 0;
	for (long i = 0; i < count && i < 64; i++) {
		const int fd = kFirstSystemdFd + static_cast<int>(i);
		::fcntl(fd, F_SETFD, FD_CLOEXEC);
		std::string name;
		if (at <= name_list.size() && !name_list.empty()) {
			const size_t colon = std::min(name_list.find(':', at), name_list.size());
			name = name_list.substr(at, colon - at);
			at = colon + 1;
		}
		sockets.push_back({ UniqueFd(fd), std::move(name) });
	}
	return sockets;
}

Server::Server(boost::asio::io_context &io, Device &device, ServerOptions options)
	: io_(io), device_(device), options_(options), listener_(std::make_unique<Listener>(io))
{
}

Server::~Server()
{
	stop();
}

void Server::listen(const std::string &path)
{
	struct stat st;
	if (::lstat(path.c_str(), &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			throw std::runtime_error(fmt::format(
				"{} exists and is not a socket; refusing to replace it", path));
		/* A socket file left by a daemon that died: nobody can be listening on it
		 * if connecting fails. */
		stream_protocol::socket probe(io_);
		boost::system::error_code ec;
		probe.connect(stream_protocol::endpoint(path), ec);
		if (!ec)
			throw std::runtime_error(fmt::format("{} is in use by another server", path));
		::unlink(path.c_str());
	}
	boost::system::error_code ec;
	auto &acceptor = listener_->acceptor;
	acceptor.open(stream_protocol(), ec);
	if (!ec)
		acceptor.bind(stream_protocol::endpoint(path), ec);
	if (!ec)
		acceptor.listen(1, ec);
	if (ec) {
		acceptor.close();
		throw std::runtime_error(fmt::format("cannot listen on {}: {}", path, ec.message()));
	}
	owned_path_ = path;
	logger().info("listening on {}", path);
	start_accept();
}

void Server::listen_fd(UniqueFd fd)
{
	check_listening_unix_socket(fd.get());
	boost::system::error_code ec;
	listener_->acceptor.assign(stream_protocol(), fd.get(), ec);
	if (ec)
		throw std::runtime_error(fmt::format("cannot use fd {}: {}", fd.get(), ec.message()));
	logger().info("listening on inherited fd {}", fd.release());
	start_accept();
}

bool Server::listen_systemd()
{
	auto sockets = take_systemd_sockets();
	if (sockets.empty())
		return false;
	listen_fd(std::move(sockets.front().fd));
	return true;
}

void Server::start_accept()
{
	if (!listener_->acceptor.is_open() || session_)
		return;
	accept_one();
}

void Server::accept_one()
{
	listener_->acceptor.async_accept([this](const boost::system::error_code &ec,
						stream_protocol::socket socket) {
		if (ec == boost::asio::error::operation_aborted)
			return;
		if (ec) {
			/* EMFILE and friends: the listening socket stays readable, so
			 * retrying at once would spin the loop; back off on a timer. */
			accept_backoff_ms_ = accept_backoff_ms_
				? std::min(accept_backoff_ms_ * 2, kMaxAcceptRetryMs)
				: kFirstAcceptRetryMs;
			logger().error("accept failed: {}; retrying in {} ms", ec.message(),
				       accept_backoff_ms_);
			retry_accept(accept_backoff_ms_);
			return;
		}
		accept_backoff_ms_ = 0;
		if (session_) {
			/* Accepted just as serve_connected() took the one slot. */
			logger().warn("front-end refused: another one is being served");
			return;
		}
		logger().info("front-end connected");
		try {
			start_session(std::move(socket));
		} catch (const std::exception &e) {
			/* Out of fds for the connection's own needs: drop this front-end
			 * only, and accept the next one a little later. */
			logger().error("cannot serve the front-end: {}", e.what());
			retry_accept(kFirstAcceptRetryMs);
		}
		/* One front-end at a time: the next is accepted after this one leaves. */
	});
}

void Server::retry_accept(unsigned delay_ms)
{
	listener_->retry.expires_after(std::chrono::milliseconds(delay_ms));
	listener_->retry.async_wait([this](const boost::system::error_code &ec) {
		if (!ec)
			start_accept();
	});
}

void Server::start_session(stream_protocol::socket socket)
{
	session_ = std::make_unique<Session>(io_, device_, std::move(socket), options_, [this] {
		session_.reset();
		if (on_disconnect_)
			on_disconnect_();
		start_accept();
	});
	connections_++;
	session_->start();
}

void Server::serve_connected(UniqueFd fd)
{
	if (session_)
		throw std::runtime_error("serve_connected: a front-end is already being served");
	int type = 0, domain = 0;
	socklen_t len = sizeof(int);
	bool ok = ::getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &len) == 0;
	len = sizeof(int);
	ok = ok && ::getsockopt(fd.get(), SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0;
	if (!ok || domain != AF_UNIX || type != SOCK_STREAM)
		throw std::runtime_error(fmt::format("fd {} is not a Unix stream socket", fd.get()));
	sockaddr_un peer{};
	socklen_t peer_len = sizeof(peer);
	if (::getpeername(fd.get(), reinterpret_cast<sockaddr *>(&peer), &peer_len) < 0)
		throw std::runtime_error(fmt::format("fd {} is not connected: {}", fd.get(),
						     std::strerror(errno)));
	stream_protocol::socket socket(io_);
	boost::system::error_code ec;
	socket.assign(stream_protocol(), fd.get(), ec);
	if (ec)
		throw std::runtime_error(fmt::format("cannot use fd {}: {}", fd.get(), ec.message()));
	/* One front-end at a time: a pending accept waits until this one leaves
	 * (the session's end re-arms it). */
	boost::system::error_code ignored;
	listener_->acceptor.cancel(ignored);
	logger().info("serving the front-end on connected fd {}", fd.release());
	start_session(std::move(socket));
}

void Server::stop()
{
	boost::system::error_code ec;
	listener_->acceptor.close(ec);
	listener_->retry.cancel();
	session_.reset();
	if (!owned_path_.empty()) {
		::unlink(owned_path_.c_str());
		owned_path_.clear();
	}
}

bool Server::connected() const
{
	return session_ != nullptr;
}

} // namespace vhostpp
