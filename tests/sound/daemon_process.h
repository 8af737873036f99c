/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file daemon_process.h
 * \brief Runs the real vhost-sound binary as a child process.
 */
#pragma once

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <optional>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char **environ;

namespace sound_test {

/** \brief The binary under test, from the VHOST_SOUND environment variable (set by meson). */
inline std::string vhost_sound_binary()
{
	const char *path = std::getenv("VHOST_SOUND");
	if (!path)
		throw std::runtime_error("VHOST_SOUND is not set (run through meson test)");
	return path;
}

/** \brief A fresh directory under /tmp, removed with everything in it. */
struct TempDir {
	std::string path;
	TempDir()
	{
		char tmpl[] = "/tmp/vhost-sound-test-XXXXXX";
		if (!::mkdtemp(tmpl))
			throw std::runtime_error("mkdtemp failed");
		path = tmpl;
	}
	~TempDir()
	{
		std::error_code ec;
		std::filesystem::remove_all(path, ec);
	}
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
};

/** \brief A child process with stdout and stderr captured in pipes. */
class DaemonProcess
{
public:
	/**
	 * \brief Start the binary with \a args; \a inherit_fd, if set, becomes
	 * fd 3 in the child.
	 */
	explicit DaemonProcess(const std::vector<std::string> &args, std::optional<int> inherit_fd = {})
		: DaemonProcess(vhost_sound_binary(), args, inherit_fd)
	{
	}

	/** \brief Start \a binary (a path, or a name looked up in PATH) with \a args. */
	DaemonProcess(const std::string &binary, const std::vector<std::string> &args,
		      std::optional<int> inherit_fd = {})
	{
		int out[2], err[2];
		if (::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC))
			throw std::runtime_error("pipe");
		posix_spawn_file_actions_t actions;
		posix_spawn_file_actions_init(&actions);
		posix_spawn_file_actions_adddup2(&actions, out[1], 1);
		posix_spawn_file_actions_adddup2(&actions, err[1], 2);
		if (inherit_fd)
			posix_spawn_file_actions_adddup2(&actions, *inherit_fd, 3);

		std::vector<std::string> argv_strings{ binary };
		argv_strings.insert(argv_strings.end(), args.begin(), args.end());
		std::vector<char *> argv;
		for (auto &s : argv_strings)
			argv.push_back(s.data());
		argv.push_back(nullptr);

		const int rc = ::posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
		posix_spawn_file_actions_destroy(&actions);
		::close(out[1]);
		::close(err[1]);
		out_ = out[0];
		err_ = err[0];
		if (rc != 0)
			throw std::runtime_error("posix_spawn failed");
	}

	~DaemonProcess()
	{
		if (pid_ > 0 && !status_) {
			::kill(pid_, SIGKILL);
			::waitpid(pid_, nullptr, 0);
		}
		::close(out_);
		::close(err_);
	}

	DaemonProcess(const DaemonProcess &) = delete;
	DaemonProcess &operator=(const DaemonProcess &) = delete;

	pid_t pid() const { return pid_; }

	void signal(int sig) { ::kill(pid_, sig); }

	/** \brief Wait for the exit status (nothing if still running after \a timeout_ms or killed by a signal). */
	std::optional<int> wait(int timeout_ms = 5000)
	{
		const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
		while (!status_) {
			int status;
			const pid_t r = ::waitpid(pid_, &status, WNOHANG);
			if (r == pid_) {
				status_ = status;
				break;
			}
			if (std::chrono::steady_clock::now() > deadline)
				return std::nullopt;
			std::this_thread::sleep_for(std::chrono::milliseconds(5));
		}
		if (!WIFEXITED(*status_))
			return std::nullopt;
		return WEXITSTATUS(*status_);
	}

	/** \brief Everything the child wrote to stdout / stderr (after it exited). */
	std::string out() { return drain(out_); }
	std::string err() { return drain(err_); }

private:
	static std::string drain(int fd)
	{
		std::string s;
		char buf[4096];
		ssize_t n;
		const int flags = ::fcntl(fd, F_GETFL);
		::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
		while ((n = ::read(fd, buf, sizeof(buf))) > 0)
			s.append(buf, n);
		return s;
	}

	pid_t pid_ = -1;
	int out_ = -1;
	int err_ = -1;
	std::optional<int> status_;
};

/** \brief How a run of the binary ended. */
struct Exited {
	/** \brief The exit status; nothing if it was killed or did not exit within the timeout. */
	std::optional<int> status;
	std::string out;
	std::string err;
};

/** \brief Run the binary with \a args until it exits (at most \a timeout_ms). */
inline Exited run_to_exit(const std::vector<std::string> &args, int timeout_ms = 5000)
{
	DaemonProcess p(args);
	Exited e;
	e.status = p.wait(timeout_ms);
	e.out = p.out();
	e.err = p.err();
	return e;
}

/** \brief \a args joined by spaces, for test messages. */
inline std::string joined_args(const std::vector<std::string> &args)
{
	std::string joined;
	for (const auto &a : args)
		joined += a + " ";
	return joined;
}

} // namespace sound_test
