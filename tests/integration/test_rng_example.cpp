/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The example vhost-user-rng daemon, run as a real process.
 * Its path comes from the VHOSTPP_RNG_EXAMPLE environment variable (set by meson).
 */
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdlib>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <vhostpp/frontend/device_driver.h>
#include <vhostpp/internal/wire.h>

#include "driver_util.h"
#include "test_server.h"

extern char **environ;

using namespace vhostpp;
using namespace vhostpp::test;

namespace {

/* A child process, killed and reaped on destruction if still running. */
class Process
{
public:
	explicit Process(std::vector<std::string> argv)
	{
		std::vector<char *> args;
		for (auto &a : argv)
			args.push_back(a.data());
		args.push_back(nullptr);
		int r = ::posix_spawn(&pid_, args[0], nullptr, nullptr, args.data(), environ);
		if (r != 0)
			throw std::system_error(r, std::generic_category(), "posix_spawn " + argv[0]);
	}
	~Process()
	{
		if (pid_ > 0) {
			::kill(pid_, SIGKILL);
			::waitpid(pid_, nullptr, 0);
		}
	}
	/* Send \a sig and wait for the exit status. */
	int stop(int sig = SIGTERM)
	{
		::kill(pid_, sig);
		int status = 0;
		::waitpid(pid_, &status, 0);
		pid_ = -1;
		return status;
	}

private:
	pid_t pid_ = -1;
};

std::string example_path()
{
	const char *p = std::getenv("VHOSTPP_RNG_EXAMPLE");
	REQUIRE(p != nullptr);
	return p;
}

} // namespace

TEST_CASE("the vhost-user-rng example serves the pattern across connections", "[integration][example]")
{
	TempDir dir;
	std::string sock = dir.path() + "/rng.sock";
	Process daemon({example_path(), "--socket", sock, "--pattern"});

	uint64_t offset = 0;
	for (int connection = 0; connection < 3; connection++) {
		auto opts = one_queue(16);
		if (connection == 1)
			opts.features = ~wire::feature_bit(wire::virtio_feature::RingEventIdx);
		DeviceDriver d(sock, opts);
		for (int i = 0; i < 20; i++)
			REQUIRE(read_pattern(d.queue(0), d.memory(), offset, 1 + 97 * i % 1000,
					     i % 3 == 0));
	}

	int status = daemon.stop(SIGTERM);
	CHECK(WIFEXITED(status));
	CHECK(WEXITSTATUS(status) == 0);
	struct stat st;
	CHECK(::stat(sock.c_str(), &st) != 0); /* the socket file is removed */
}

TEST_CASE("the example refuses to start without a socket", "[integration][example]")
{
	Process daemon({example_path()});
	/* It exits by itself with status 2; stop() then only reaps it. */
	int status = 0;
	status = daemon.stop(0);
	CHECK(WIFEXITED(status));
	CHECK(WEXITSTATUS(status) == 2);
}
