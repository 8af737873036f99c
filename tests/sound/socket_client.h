/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file socket_client.h
 * \brief A blocking line client for the control socket, with timeouts.
 */
#pragma once

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace sound_test {

class LineClient
{
public:
	explicit LineClient(const std::string &path)
	{
		fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd_ < 0)
			throw std::runtime_error("socket");
		sockaddr_un addr{};
		addr.sun_family = AF_UNIX;
		std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
		if (::connect(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
			const int err = errno;
			::close(fd_);
			throw std::runtime_error(std::string("connect: ") + std::strerror(err));
		}
	}
	~LineClient()
	{
		if (fd_ >= 0)
			::close(fd_);
	}
	LineClient(const LineClient &) = delete;
	LineClient &operator=(const LineClient &) = delete;

	int fd() const { return fd_; }

	/** \brief Send raw bytes; false if the peer is gone. */
	bool send(const std::string &bytes)
	{
		size_t done = 0;
		while (done < bytes.size()) {
			const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return false;
			done += n;
		}
		return true;
	}

	/**
	 * \brief The next line (without '\n'); nothing on EOF or after \a timeout_ms.
	 *
	 * The default is only a bound on a failing test: a sanitizer build on a
	 * loaded CI machine can take seconds to answer.
	 */
	std::optional<std::string> line(int timeout_ms = kPatience)
	{
		const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
		while (true) {
			const size_t nl = buffer_.find('\n');
			if (nl != std::string::npos) {
				std::string out = buffer_.substr(0, nl);
				buffer_.erase(0, nl + 1);
				return out;
			}
			pollfd p{ fd_, POLLIN, 0 };
			if (::poll(&p, 1, remaining_ms(deadline)) <= 0)
				return std::nullopt;
			char buf[4096];
			const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
			if (n <= 0)
				return std::nullopt;
			buffer_.append(buf, n);
		}
	}

	/** \brief Send \a request and a newline, return the reply line. */
	std::string ask(const std::string &request)
	{
		if (!send(request + "\n"))
			throw std::runtime_error("send failed");
		auto reply = line();
		if (!reply)
			throw std::runtime_error("no reply to '" + request + "'");
		return *reply;
	}

	/** \brief True once the server closed the connection (within \a timeout_ms). */
	bool closed_by_peer(int timeout_ms = kPatience)
	{
		char buf[65536];
		/* A clock, not a count of polls: a peer still sending makes every poll return at once. */
		const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
		while (true) {
			pollfd p{ fd_, POLLIN, 0 };
			const int ready = ::poll(&p, 1, remaining_ms(deadline));
			if (ready < 0 && errno == EINTR)
				continue;
			if (ready <= 0)
				return false;
			const ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno == ECONNRESET))
				return true;
		}
	}

	/** \brief How long line() and closed_by_peer() wait by default, in ms. */
	static constexpr int kPatience = 20000;

private:
	static int remaining_ms(std::chrono::steady_clock::time_point deadline)
	{
		const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
			deadline - std::chrono::steady_clock::now());
		return left.count() > 0 ? static_cast<int>(left.count()) : 0;
	}

	int fd_ = -1;
	std::string buffer_;
};

/**
 * \brief QUERY on the daemon's control socket once it exists: a path cannot be
 * waited on, so retry (for up to LineClient::kPatience) while the daemon starts.
 */
inline std::optional<std::string> query_when_up(const std::string &ctl)
{
	const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(LineClient::kPatience);
	do {
		try {
			LineClient client(ctl);
			return client.ask("QUERY");
		} catch (const std::exception &) {
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
		}
	} while (std::chrono::steady_clock::now() < deadline);
	return std::nullopt;
}

/** \brief True if the Unix stream socket at \a path accepts a connection now:
 *  a daemon is listening, not only its socket file left there. */
inline bool accepts_connections(const std::string &path)
{
	try {
		LineClient probe(path);
		return true;
	} catch (const std::exception &) {
		return false;
	}
}

} // namespace sound_test
