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

	/** \brief The next line (without '\n'); nothing on EOF or after \a timeout_ms. */
	std::optional<std::string> line(int timeout_ms = 3000)
	{
		while (true) {
			const size_t nl = buffer_.find('\n');
			if (nl != std::string::npos) {
				std::string out = buffer_.substr(0, nl);
				buffer_.erase(0, nl + 1);
				return out;
			}
			pollfd p{ fd_, POLLIN, 0 };
			if (::poll(&p, 1, timeout_ms) <= 0)
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
	bool closed_by_peer(int timeout_ms = 3000)
	{
		char buf[65536];
		const auto deadline = timeout_ms;
		for (int waited = 0; waited < deadline; waited += 10) {
			pollfd p{ fd_, POLLIN, 0 };
			if (::poll(&p, 1, 10) > 0) {
				const ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
				if (n == 0 || (n < 0 && errno == ECONNRESET))
					return true;
			}
		}
		return false;
	}

private:
	int fd_ = -1;
	std::string buffer_;
};

/**
 * \brief QUERY on the daemon's control socket once it exists: a path cannot be
 * waited on, so retry for up to 2 s while the daemon starts.
 */
inline std::optional<std::string> query_when_up(const std::string &ctl)
{
	for (int i = 0; i < 200; i++) {
		try {
			LineClient client(ctl);
			return client.ask("QUERY");
		} catch (const std::exception &) {
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
		}
	}
	return std::nullopt;
}

} // namespace sound_test
