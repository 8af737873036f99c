/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file bench_process.h
 * \brief Daemons the benchmarks start: any command line, with {socket}
 * replaced by a fresh socket path in a private directory and {dir} by that
 * directory (for a daemon's other files, e.g. its control socket).
 */
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <vhostpp/fd.h>

extern char **environ;

namespace vhostpp::bench {

/** \brief \a s with every \a from replaced by \a to. */
inline std::string replace_all(std::string s, const std::string &from, const std::string &to)
{
	for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
		s.replace(at, from.size(), to);
	return s;
}

/**
 * \brief A daemon started from a shell command line (exec'd, so its pid is
 * the daemon's), stdout and stderr to /dev/null so its log does not mix with
 * the figures, in a private directory that holds {socket}. The destructor
 * sends SIGTERM, then SIGKILL after 1 s, and removes the directory.
 */
class Spawned
{
public:
	explicit Spawned(const std::string &command_template)
	{
		char tmpl[] = "/tmp/vhostpp-bench-XXXXXX";
		if (!mkdtemp(tmpl))
			throw std::runtime_error("mkdtemp failed");
		dir_ = tmpl;
		socket_ = dir_ + "/vhost.sock";
		command_ = replace_all(replace_all(command_template, "{socket}", socket_), "{dir}", dir_);
		std::vector<std::string> args{"/bin/sh", "-c", "exec " + command_};
		std::vector<char *> argv;
		for (auto &a : args)
			argv.push_back(a.data());
		argv.push_back(nullptr);
		posix_spawn_file_actions_t actions;
		posix_spawn_file_actions_init(&actions);
		posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
		int rc = posix_spawn(&pid_, "/bin/sh", &actions, nullptr, argv.data(), environ);
		posix_spawn_file_actions_destroy(&actions);
		if (rc != 0)
			throw std::runtime_error("cannot spawn: " + command_);
	}
	~Spawned()
	{
		::kill(pid_, SIGTERM);
		bool gone = false;
		for (int i = 0; i < 100 && !gone; i++) {
			gone = ::waitpid(pid_, nullptr, WNOHANG) == pid_;
			if (!gone)
				std::this_thread::sleep_for(std::chrono::milliseconds(10));
		}
		if (!gone) {
			::kill(pid_, SIGKILL);
			::waitpid(pid_, nullptr, 0);
		}
		std::error_code ec;
		std::filesystem::remove_all(dir_, ec);
	}
	Spawned(const Spawned &) = delete;
	Spawned &operator=(const Spawned &) = delete;

	pid_t pid() const { return pid_; }
	/** \brief The private directory ({dir}), removed with the daemon. */
	const std::string &dir() const { return dir_; }
	const std::string &socket() const { return socket_; }
	const std::string &command() const { return command_; }

	/** \brief True once connect() to the socket succeeds (the daemon listens). */
	bool listening() const
	{
		UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
		sockaddr_un addr{};
		addr.sun_family = AF_UNIX;
		std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
		return ::connect(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
	}

	/** \brief True if the daemon has exited (it is reaped then). */
	bool exited()
	{
		return ::waitpid(pid_, nullptr, WNOHANG) == pid_;
	}

private:
	std::string dir_;
	std::string socket_;
	std::string command_;
	pid_t pid_ = -1;
};

} // namespace vhostpp::bench
