/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file fd_util.h
 * \brief Watching file descriptors from tests: counts and "was it closed?".
 */
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <set>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

#include <vhostpp/fd.h>

namespace vhostpp::test {

/** \brief Open fds of this process (entries of /proc/self/fd, less the one reading it). */
inline size_t count_open_fds()
{
	DIR *d = ::opendir("/proc/self/fd");
	if (!d)
		throw std::system_error(errno, std::generic_category(), "opendir /proc/self/fd");
	size_t n = 0;
	while (dirent *e = ::readdir(d))
		if (e->d_name[0] != '.')
			n++;
	::closedir(d);
	return n - 1;
}

/** \brief The set of open fd numbers (without the one reading it). */
inline std::set<int> open_fds()
{
	DIR *d = ::opendir("/proc/self/fd");
	if (!d)
		throw std::system_error(errno, std::generic_category(), "opendir /proc/self/fd");
	std::set<int> fds;
	while (dirent *e = ::readdir(d))
		if (e->d_name[0] != '.')
			fds.insert(std::stoi(e->d_name));
	fds.erase(::dirfd(d));
	::closedir(d);
	return fds;
}

/** \brief Mappings of this process (lines of /proc/self/maps) whose line contains
 *  \a filter, e.g. "memfd:" for guest memory; all of them when it is empty. */
inline size_t count_mappings(const std::string &filter = "")
{
	FILE *f = std::fopen("/proc/self/maps", "r");
	if (!f)
		throw std::system_error(errno, std::generic_category(), "/proc/self/maps");
	size_t n = 0;
	char line[4096];
	while (std::fgets(line, sizeof(line), f))
		n += filter.empty() || std::string(line).find(filter) != std::string::npos;
	std::fclose(f);
	return n;
}

/**
 * \brief A pipe whose write end is handed to the code under test; once
 * every copy of the write end is closed, the read end sees POLLHUP.
 *
 * Pass give() (or its number) along, call drop_own() once it was sent,
 * then closed_everywhere() tells whether the receiver closed its copy.
 */
class FdWatch
{
public:
	FdWatch()
	{
		int p[2];
		if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
			throw std::system_error(errno, std::generic_category(), "pipe2");
		read_.reset(p[0]);
		write_.reset(p[1]);
	}
	/** \brief The write end, still owned here. */
	int fd() const { return write_.get(); }
	/** \brief Close our own copy of the write end. */
	void drop_own() { write_.reset(); }
	/** \brief Wait up to \a timeout_ms until no copy of the write end is open anywhere. */
	bool closed_everywhere(int timeout_ms = 3000) const
	{
		pollfd pfd{read_.get(), POLLIN, 0};
		auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
		while (true) {
			auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
				deadline - std::chrono::steady_clock::now());
			int r = ::poll(&pfd, 1, std::max<int>(0, int(left.count())));
			if (r < 0 && errno == EINTR)
				continue;
			return r > 0 && (pfd.revents & POLLHUP);
		}
	}

private:
	UniqueFd read_;
	UniqueFd write_;
};

/** \brief A connected pair of Unix stream sockets, both close-on-exec. */
inline std::pair<UniqueFd, UniqueFd> socket_pair()
{
	int sv[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		throw std::system_error(errno, std::generic_category(), "socketpair");
	return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

/** \brief True while \a fd is an open descriptor of this process. */
inline bool fd_is_open(int fd)
{
	return ::fcntl(fd, F_GETFD) >= 0;
}

} // namespace vhostpp::test
