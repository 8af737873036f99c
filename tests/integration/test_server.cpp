/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * How the Server listens (path, stale socket, inherited fd, systemd's
 * LISTEN_FDS) and the back-end channel (CONFIG_CHANGE_MSG).
 */
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <vhostpp/internal/connection.h>
#include <vhostpp/frontend/device_driver.h>
#include <vhostpp/internal/wire.h>

#include "driver_util.h"
#include "test_server.h"

extern char **environ;

using namespace vhostpp;
using namespace vhostpp::test;

namespace {

/* A bound Unix stream socket at \a path; listening if \a listen. */
UniqueFd bound_socket(const std::string &path, bool listen)
{
	UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	REQUIRE(fd.valid());
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
	REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0);
	if (listen)
		REQUIRE(::listen(fd.get(), 4) == 0);
	return fd;
}

/* A Server on its own loop thread, listening however the test says. */
class LoopServer
{
public:
	explicit LoopServer(Device &device) : work_(boost::asio::make_work_guard(io_)), server_(io_, device)
	{
		LogCapture::get();
	}
	~LoopServer()
	{
		if (thread_.joinable()) {
			boost::asio::post(io_, [this] { server_.stop(); });
			work_.reset();
			thread_.join();
		}
	}
	Server &server() { return server_; }
	void start() { thread_ = std::thread([this] { io_.run(); }); }

private:
	boost::asio::io_context io_;
	boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
	Server server_;
	std::thread thread_;
};

/* A device that keeps its DeviceContext so the test can use it. */
class ContextDevice : public PatternDevice
{
public:
	ContextDevice() : PatternDevice(1, 8) {}
	void attach(DeviceContext &context) override { context_ = &context; }
	void detach() override { context_ = nullptr; }
	DeviceContext *context_ = nullptr;
};

std::string example_path()
{
	const char *p = std::getenv("VHOSTPP_RNG_EXAMPLE");
	REQUIRE(p != nullptr);
	return p;
}

/* Run \a argv with \a fd as the child's fd 3, and \a env added; returns the pid. */
pid_t spawn_with_fd3(const std::vector<std::string> &argv, int fd)
{
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, fd, 3);
	std::vector<char *> args;
	for (auto &a : argv)
		args.push_back(const_cast<char *>(a.c_str()));
	args.push_back(nullptr);
	pid_t pid = -1;
	int r = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
	posix_spawn_file_actions_destroy(&actions);
	REQUIRE(r == 0);
	return pid;
}

void stop_child(pid_t pid)
{
	::kill(pid, SIGTERM);
	int status = 0;
	::waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status));
	CHECK(WEXITSTATUS(status) == 0);
}

/* One buffer of the k % 251 pattern through the device at \a path, continuing
 * its stream at \a offset. */
void reads_pattern(const std::string &path, uint64_t offset = 0)
{
	DeviceDriver d(path, one_queue(16));
	CHECK(read_pattern(d.queue(0), d.memory(), offset, 512));
}

} // namespace

TEST_CASE("listen: a stale socket is replaced, a live one or another file refused", "[integration][server]")
{
	TempDir dir;
	PatternDevice device;

	SECTION("a stale socket file (nobody listening) is replaced")
	{
		std::string path = dir.path() + "/stale.sock";
		bound_socket(path, false); /* closed at once: the file stays, nobody listens */
		struct stat st;
		REQUIRE(::lstat(path.c_str(), &st) == 0);
		LoopServer s(device);
		REQUIRE_NOTHROW(s.server().listen(path));
		s.start();
		reads_pattern(path);
	}
	SECTION("a socket another server listens on is refused")
	{
		std::string path = dir.path() + "/live.sock";
		UniqueFd live = bound_socket(path, true);
		LoopServer s(device);
		REQUIRE_THROWS_WITH(s.server().listen(path), Catch::Contains("in use"));
	}
	SECTION("a regular file is refused and left alone")
	{
		std::string path = dir.path() + "/precious";
		std::ofstream(path) << "data";
		LoopServer s(device);
		REQUIRE_THROWS_WITH(s.server().listen(path), Catch::Contains("not a socket"));
		std::ifstream in(path);
		std::string content;
		in >> content;
		CHECK(content == "data");
	}
	SECTION("stop() removes the socket file it created")
	{
		std::string path = dir.path() + "/mine.sock";
		{
			LoopServer s(device);
			s.server().listen(path);
			s.start();
			reads_pattern(path);
		}
		struct stat st;
		CHECK(::lstat(path.c_str(), &st) != 0);
	}
}

TEST_CASE("listen_fd: serve on an inherited listening socket; refuse other fds", "[integration][server]")
{
	TempDir dir;
	PatternDevice device;
	std::string path = dir.path() + "/inherited.sock";

	SECTION("a listening Unix socket is served")
	{
		LoopServer s(device);
		s.server().listen_fd(bound_socket(path, true));
		s.start();
		reads_pattern(path);
		reads_pattern(path, 512); /* and the next front-end after it */
	}
	SECTION("a socket that is not listening")
	{
		LoopServer s(device);
		REQUIRE_THROWS_WITH(s.server().listen_fd(bound_socket(path, false)),
				    Catch::Contains("not listening"));
	}
	SECTION("a pipe")
	{
		int p[2];
		REQUIRE(::pipe(p) == 0);
		UniqueFd keep(p[1]);
		LoopServer s(device);
		REQUIRE_THROWS_WITH(s.server().listen_fd(UniqueFd(p[0])), Catch::Contains("not a socket"));
	}
}

TEST_CASE("vhost-user-rng serves --socket-fd and systemd's LISTEN_FDS", "[integration][server][example]")
{
	TempDir dir;
	std::string path = dir.path() + "/rng.sock";
	UniqueFd listener = bound_socket(path, true);

	SECTION("--socket-fd")
	{
		pid_t pid = spawn_with_fd3({example_path(), "--socket-fd", "3", "--pattern"},
					   listener.get());
		listener.reset();
		reads_pattern(path);
		stop_child(pid);
	}
	SECTION("LISTEN_PID and LISTEN_FDS")
	{
		/* LISTEN_PID must be the daemon's own pid: let the shell set it to $$
		 * and exec the daemon in its place. */
		std::string cmd = "LISTEN_PID=$$ LISTEN_FDS=1 exec '" + example_path() + "' --pattern";
		pid_t pid = spawn_with_fd3({"/bin/sh", "-c", cmd}, listener.get());
		listener.reset();
		reads_pattern(path);
		stop_child(pid);
	}
}

TEST_CASE("the back-end channel carries CONFIG_CHANGE_MSG", "[integration][server]")
{
	ContextDevice device;
	TestServer server(device);
	DeviceDriver d(server.path(), one_queue(16));
	auto &fe = d.frontend();
	REQUIRE(fe.reply_ack());
	REQUIRE(d.protocol_features() & wire::bit(wire::ProtocolFeature::BackendReq));

	/* Without a channel there is nobody to tell. */
	CHECK_FALSE(server.run([&] { return device.context_->notify_config_change(); }));

	int sv[2];
	REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	UniqueFd ours(sv[0]);
	fe.set_backend_req_fd(UniqueFd(sv[1]));

	CHECK(server.run([&] { return device.context_->notify_config_change(); }));
	wire::Message msg = receive_message(ours.get(), 2000, MessageReader::Source::BackEnd);
	CHECK(msg.header.request == static_cast<uint32_t>(wire::BackendRequest::ConfigChangeMsg));
	CHECK((msg.header.flags & wire::kFlagVersionMask) == wire::kVersion);
	CHECK(msg.header.size == 0);
	CHECK(msg.fds.empty());
}
