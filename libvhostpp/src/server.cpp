/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "vhostpp/server.h"

#include <algorithm>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "session.h"
#include "vhostpp/internal/logging.h"

namespace vhostpp {

using boost::asio::local::stream_protocol;

struct Server::Listener {
	explicit Listener(boost::asio::io_context &io) : acceptor(io) {}
	stream_protocol::acceptor acceptor;
};

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

Server::Server(boost::asio::io_context &io, Device &device)
	: io_(io), device_(device), listener_(std::make_unique<Listener>(io))
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
			logger().error("accept failed: {}", ec.message());
			/* EMFILE and friends: try again once the loop has moved on. */
			boost::asio::post(io_, [this] { start_accept(); });
			return;
		}
		connections_++;
		logger().info("front-end connected");
		session_ = std::make_unique<Session>(io_, device_, std::move(socket),
						     withheld_protocol_features_, [this] {
			session_.reset();
			if (on_disconnect_)
				on_disconnect_();
			start_accept();
		});
		session_->start();
		/* One front-end at a time: the next is accepted after this one leaves. */
	});
}

void Server::stop()
{
	boost::system::error_code ec;
	listener_->acceptor.close(ec);
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
