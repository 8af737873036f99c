/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "control/control_server.h"

#include <algorithm>
#include <array>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <vhostpp/server.h>

#include "sound_log.h"

namespace vhost_sound {

namespace asio = boost::asio;
using Protocol = asio::local::stream_protocol;

/**
 * One connected client: reads lines, queues replies, writes them in order.
 * Kept alive by the handlers of its pending read and write.
 */
class ControlServer::Client : public std::enable_shared_from_this<Client>
{
public:
	Client(Protocol::socket socket, ControlCommands &commands)
		: socket_(std::move(socket)), commands_(commands)
	{
	}

	void start() { read(); }

	/* Send one reply and close once it is out. */
	void refuse(std::string reply)
	{
		closing_ = true;
		send(std::move(reply));
	}

	bool watching() const { return watching_ && socket_.is_open(); }

	/* Send one line unless the client is over its limit (then it is dropped). */
	void send(std::string reply)
	{
		if (!socket_.is_open())
			return;
		reply += '\n';
		pending_bytes_ += reply.size();
		if (pending_bytes_ > ControlServer::kMaxPendingOutput) {
			logger().warn("control client does not read {}; dropping it",
				      watching_ ? "its events" : "its replies");
			close();
			return;
		}
		output_.push_back(std::move(reply));
		if (output_.size() == 1)
			write();
	}

	void close()
	{
		boost::system::error_code ignored;
		socket_.shutdown(Protocol::socket::shutdown_both, ignored);
		socket_.close(ignored);
	}

private:
	void read()
	{
		socket_.async_read_some(asio::buffer(buffer_),
					[self = shared_from_this()](const boost::system::error_code &ec,
								    size_t n) { self->on_read(ec, n); });
	}

	void on_read(const boost::system::error_code &ec, size_t n)
	{
		/* EOF, a reset, or stop(): the client is done; a half line is dropped. */
		if (ec)
			return;
		for (size_t i = 0; i < n && socket_.is_open(); i++) {
			const char c = buffer_[i];
			if (c == '\n') {
				if (!skipping_)
					answer(line_);
				line_.clear();
				skipping_ = false;
				continue;
			}
			if (skipping_)
				continue;
			if (line_.size() >= control::kMaxLine) {
				/* Answer now, then skip to the end of this line. */
				send(control::line_too_long());
				line_.clear();
				skipping_ = true;
				continue;
			}
			line_ += c;
		}
		if (socket_.is_open())
			read();
	}

	void answer(std::string_view line)
	{
		const auto parsed = control::parse_request(line);
		if (const auto *error = std::get_if<control::Error>(&parsed)) {
			send(control::format_error(*error));
			return;
		}
		const auto &request = std::get<control::Request>(parsed);
		/* Events follow the OK: a watcher misses nothing published after it. */
		if (request.verb == control::Verb::Watch)
			watching_ = true;
		send(commands_.execute(request));
	}

	void write()
	{
		asio::async_write(socket_, asio::buffer(output_.front()),
				  [self = shared_from_this()](const boost::system::error_code &ec, size_t) {
					  self->on_written(ec);
				  });
	}

	void on_written(const boost::system::error_code &ec)
	{
		if (ec) {
			close();
			return;
		}
		pending_bytes_ -= output_.front().size();
		output_.pop_front();
		if (!output_.empty())
			write();
		else if (closing_)
			close();
	}

	Protocol::socket socket_;
	ControlCommands &commands_;
	std::array<char, 512> buffer_;
	std::string line_;
	bool skipping_ = false;
	bool closing_ = false;
	bool watching_ = false;
	std::deque<std::string> output_;
	size_t pending_bytes_ = 0;
};

ControlServer::ControlServer(asio::io_context &io, ControlCommands &commands)
	: io_(io), commands_(commands)
{
}

ControlServer::~ControlServer()
{
	stop();
}

namespace {

/* True when something accepts connections on the socket at \a path. */
bool socket_is_live(const std::string &path)
{
	const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
	const bool live = ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0;
	::close(fd);
	return live;
}

} // namespace

void ControlServer::listen(const std::string &path, mode_t mode, std::optional<gid_t> group)
{
	stop();
	if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path))
		throw std::runtime_error("control socket path '" + path + "' is empty or too long");

	struct stat st;
	if (::lstat(path.c_str(), &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			throw std::runtime_error("control socket path '" + path +
						 "' exists and is not a socket");
		if (socket_is_live(path))
			throw std::runtime_error("control socket '" + path +
						 "' is in use by another process");
		::unlink(path.c_str());
	}

	auto acceptor = std::make_unique<Protocol::acceptor>(io_);
	boost::system::error_code ec;
	acceptor->open(Protocol(), ec);
	if (!ec)
		acceptor->bind(Protocol::endpoint(path), ec);
	if (ec)
		throw std::runtime_error("control socket '" + path + "': " + ec.message());
	path_ = path;
	/* Before listen(): until then a connect() is refused, so nobody gets in
	 * through the umask's wider permissions. */
	if (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
		const int err = errno;
		stop();
		throw std::runtime_error("control socket '" + path + "': chown to group " +
					 std::to_string(*group) + ": " + std::strerror(err));
	}
	if (::chmod(path.c_str(), mode) != 0) {
		const int err = errno;
		stop();
		throw std::runtime_error("control socket '" + path + "': chmod: " + std::strerror(err));
	}
	acceptor->listen(asio::socket_base::max_listen_connections, ec);
	if (ec) {
		stop();
		throw std::runtime_error("control socket '" + path + "': " + ec.message());
	}
	start_listening(std::move(acceptor));
}

void ControlServer::listen_fd(vhostpp::UniqueFd fd)
{
	stop();
	vhostpp::check_listening_unix_socket(fd.get());
	auto acceptor = std::make_unique<Protocol::acceptor>(io_);
	boost::system::error_code ec;
	acceptor->assign(Protocol(), fd.get(), ec);
	if (ec)
		throw std::runtime_error("control socket fd " + std::to_string(fd.get()) + ": " +
					 ec.message());
	logger().info("control socket on inherited fd {}", fd.release());
	start_listening(std::move(acceptor));
}

void ControlServer::start_listening(std::unique_ptr<Protocol::acceptor> acceptor)
{
	acceptor_ = std::move(acceptor);
	listening_ = std::make_shared<int>(0);
	accept();
}

bool ControlServer::admit(Protocol::socket &socket)
{
	const int fd = socket.native_handle();
	ucred cred{};
	socklen_t len = sizeof(cred);
	if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		logger().warn("control socket: SO_PEERCRED failed ({}); refusing the peer",
			      std::strerror(errno));
		return false;
	}
	const auto allowed_gid = [&](gid_t gid) {
		return std::find(access_.gids.begin(), access_.gids.end(), gid) != access_.gids.end();
	};
	bool allowed = cred.uid == 0 || cred.uid == ::geteuid() ||
		       std::find(access_.uids.begin(), access_.uids.end(), cred.uid) !=
			       access_.uids.end() ||
		       allowed_gid(cred.gid);
	if (!allowed && !access_.gids.empty()) {
		/* The peer's supplementary groups (Linux 4.13+). */
		std::array<gid_t, 256> groups;
		socklen_t glen = sizeof(groups);
		if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0)
			allowed = std::any_of(groups.begin(), groups.begin() + glen / sizeof(gid_t),
					      allowed_gid);
	}
	if (allowed)
		return true;
	if (refused_logged_.size() < 1024 && refused_logged_.emplace(cred.pid, cred.uid).second)
		logger().warn("control socket: refused peer pid {} uid {} gid {} (not the daemon's "
			      "uid, root, nor an allowed uid or group)",
			      cred.pid, cred.uid, cred.gid);
	return false;
}

void ControlServer::accept()
{
	acceptor_->async_accept([this, listening = std::weak_ptr<int>(listening_)](
					const boost::system::error_code &ec, Protocol::socket socket) {
		/* After stop() (or the server's destruction) the token is gone:
		 * touch nothing, even if this accept completed just before. */
		if (listening.expired())
			return;
		if (!ec) {
			std::erase_if(clients_, [](const auto &c) { return c.expired(); });
			const bool admitted = admit(socket);
			auto client = std::make_shared<Client>(std::move(socket), commands_);
			if (!admitted) {
				client->refuse(control::format_error(
					{ 403, "this user may not use the control socket" }));
			} else if (clients_.size() >= kMaxClients) {
				logger().warn("control socket: more than {} clients; refusing one",
					      kMaxClients);
				client->refuse(control::too_many_clients());
			} else {
				clients_.push_back(client);
				client->start();
			}
		} else {
			logger().warn("control socket: accept failed: {}", ec.message());
		}
		accept();
	});
}

void ControlServer::stop()
{
	listening_.reset();
	if (acceptor_) {
		boost::system::error_code ignored;
		acceptor_->close(ignored);
		acceptor_.reset();
	}
	for (auto &weak : clients_) {
		if (auto client = weak.lock())
			client->close();
	}
	clients_.clear();
	if (!path_.empty()) {
		::unlink(path_.c_str());
		path_.clear();
	}
}

void ControlServer::publish(const std::string &line)
{
	for (auto &weak : clients_) {
		if (auto client = weak.lock(); client && client->watching())
			client->send(line);
	}
}

size_t ControlServer::watchers() const
{
	size_t n = 0;
	for (const auto &weak : clients_) {
		if (auto client = weak.lock())
			n += client->watching();
	}
	return n;
}

size_t ControlServer::clients() const
{
	size_t n = 0;
	for (const auto &c : clients_)
		n += !c.expired();
	return n;
}

} // namespace vhost_sound
