/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/* The daemon's command line, parsed in-process and run as the real binary. */
#include <catch2/catch.hpp>

#include <filesystem>
#include <sys/socket.h>
#include <sys/un.h>

#include <vhostpp/frontend/device_driver.h>

#include "cli.h"
#include "control/runtime_paths.h"
#include "daemon_process.h"
#include "socket_client.h"
#include "device/virtio_snd.h"

using namespace vhost_sound;
using sound_test::DaemonProcess;
using sound_test::query_when_up;
using sound_test::TempDir;

namespace {

CliResult parse(std::vector<std::string> args)
{
	args.insert(args.begin(), "vhost-sound");
	std::vector<const char *> argv;
	for (auto &a : args)
		argv.push_back(a.c_str());
	return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

/* A listening Unix socket at \a path, as a service manager would pass it. */
int listening_socket(const std::string &path)
{
	const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
	if (::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) || ::listen(fd, 4))
		throw std::runtime_error("bind/listen failed");
	return fd;
}

} // namespace

TEST_CASE("command line: defaults and every option", "[cli]")
{
	auto r = parse({ "--socket", "/tmp/s" });
	REQUIRE(r.options);
	CHECK(*r.options->socket_path == "/tmp/s");
	CHECK(r.options->backend == "null");
	CHECK(r.options->output_enabled);
	CHECK_FALSE(r.options->input_enabled);
	CHECK_FALSE(r.options->control_socket);
	CHECK(r.options->log_level == spdlog::level::info);
	CHECK_FALSE(r.options->controls);

	r = parse({ "--socket", "/tmp/s", "--backend", "null", "--initial-streams", "output,input",
		    "--control-socket", "/tmp/c", "--log-level", "debug", "--controls" });
	REQUIRE(r.options);
	CHECK(r.options->controls);
	CHECK(r.options->input_enabled);
	CHECK(r.options->output_enabled);
	CHECK(*r.options->control_socket == "/tmp/c");
	CHECK(r.options->log_level == spdlog::level::debug);

	r = parse({ "--socket", "/tmp/s", "--control-socket", "/tmp/c", "--control-socket-mode", "0660",
		    "--control-socket-group", "0", "--control-allow-uid", "root", "--control-allow-uid",
		    "65534", "--control-allow-gid", "root" });
	REQUIRE(r.options);
	CHECK(r.options->control_socket_mode == 0660);
	CHECK(r.options->control_socket_group == std::optional<gid_t>(0));
	CHECK(r.options->control_allow_uids == std::vector<uid_t>{ 0, 65534 });
	CHECK(r.options->control_allow_gids == std::vector<gid_t>{ 0 });
	CHECK(r.options->control_socket_mode == 0660);

	/* --name alone: the sockets at the runtime directory's default paths. */
	r = parse({ "--name", "vm1" });
	REQUIRE(r.options);
	const std::string runtime = vm_socket_path("vm1", VmSocket::Control, ::geteuid());
	CHECK(*r.options->socket_path == vm_socket_path("vm1", VmSocket::VhostUser, ::geteuid()));
	CHECK(*r.options->control_socket == runtime);
	CHECK(r.options->name == "vm1");
	if (::geteuid() == 0)
		CHECK(runtime == "/run/vhost-sound/vm1.ctl");
	/* An explicit path wins. */
	r = parse({ "--name", "vm1", "--socket", "/tmp/s" });
	REQUIRE(r.options);
	CHECK(*r.options->socket_path == "/tmp/s");
	CHECK_FALSE(r.options->control_socket);

	r = parse({ "--socket", "/tmp/s", "--streams", "input" });
	REQUIRE(r.options);
	CHECK_FALSE(r.options->output_enabled);
	CHECK(r.options->input_enabled);

	r = parse({ "--socket", "/tmp/s", "--initial-streams", "none" });
	REQUIRE(r.options);
	CHECK_FALSE(r.options->output_enabled);
	CHECK_FALSE(r.options->input_enabled);

	r = parse({ "--socket-fd", "0" });
	REQUIRE(r.options);
	CHECK(*r.options->socket_fd == 0);

	r = parse({ "-h" });
	CHECK_FALSE(r.options);
	CHECK(r.exit_code == 0);
	CHECK(r.message.find("--socket-fd") != std::string::npos);
	r = parse({ "-V" });
	CHECK(r.exit_code == 0);
	CHECK(r.message.rfind("vhost-sound ", 0) == 0);
}

namespace {

/* Each: the arguments and a word the one-line message must contain. */
const std::vector<std::pair<std::vector<std::string>, std::string>> kBadCommandLines = {
	{ {}, "required" },
	{ { "--socket", "/tmp/a", "--socket-fd", "0" }, "mutually exclusive" },
	{ { "--socket" }, "missing" },
	{ { "--socket", "" }, "non-empty" },
	{ { "--socket", "/tmp/a", "--socket", "/tmp/b" }, "more than once" },
	{ { "--socket-fd", "abc" }, "not a file descriptor" },
	{ { "--socket-fd", "-1" }, "not a file descriptor" },
	{ { "--socket-fd", "3x" }, "not a file descriptor" },
	{ { "--socket-fd", "987" }, "not an open file descriptor" },
	{ { "--socket", "/tmp/a", "--backend", "oss" }, "unknown back-end" },
	{ { "--socket", "/tmp/a", "--initial-streams", "speaker" }, "--initial-streams" },
	{ { "--socket", "/tmp/a", "--initial-streams", "output," }, "--initial-streams" },
	{ { "--socket", "/tmp/a", "--streams", "output,,input" }, "--streams" },
	{ { "--socket", "/tmp/a", "--streams", "input", "--initial-streams", "output" }, "alias" },
	{ { "--socket", "/tmp/a", "--control-socket", "/tmp/a" }, "same path" },
	{ { "--socket", "/tmp/a", "--control-socket", "" }, "non-empty" },
	{ { "--socket", "/tmp/a", "--log-level", "loud" }, "--log-level" },
	{ { "--socket", "/tmp/a", "--frobnicate" }, "unrecognised" },
	{ { "--socket", "/tmp/a", "extra" }, "positional" },
	{ { "--name", "a/b" }, "cannot name a socket" },
	{ { "--name", ".." }, "cannot name a socket" },
	{ { "--name", std::string(120, 'n') }, "longer than a Unix socket address" },
	{ { "--socket", "/tmp/a", "--control-socket-mode", "0999" }, "--control-socket-mode" },
	{ { "--socket", "/tmp/a", "--control-socket-mode", "1777" }, "--control-socket-mode" },
	{ { "--socket", "/tmp/a", "--control-socket-mode", "rw" }, "--control-socket-mode" },
	{ { "--socket", "/tmp/a", "--control-socket-group", "no-such-group-x" }, "no such group" },
	{ { "--socket", "/tmp/a", "--control-allow-uid", "no-such-user-x" }, "no such user" },
	{ { "--socket", "/tmp/a", "--control-allow-gid", "no-such-group-x" }, "no such group" },
};

} // namespace

TEST_CASE("command line: every bad combination is refused with status 2 and one line", "[cli]")
{
	for (const auto &[args, word] : kBadCommandLines) {
		std::string joined;
		for (const auto &a : args)
			joined += a + " ";
		INFO("arguments: " << joined);
		const auto r = parse(args);
		CHECK_FALSE(r.options);
		CHECK(r.exit_code == kExitUsage);
		CHECK(r.message.find(word) != std::string::npos);
		CHECK(r.message.find('\n') == std::string::npos);
	}
}

TEST_CASE("the binary exits 2 with one line on stderr for every bad command line", "[cli][process]")
{
	for (const auto &[args, word] : kBadCommandLines) {
		INFO("arguments: " << sound_test::joined_args(args));
		const auto p = sound_test::run_to_exit(args);
		CHECK(p.status == std::optional<int>(2));
		INFO("stderr: " << p.err);
		CHECK(p.err.rfind("vhost-sound: ", 0) == 0);
		CHECK(p.err.find(word) != std::string::npos);
		CHECK(std::count(p.err.begin(), p.err.end(), '\n') == 1);
		CHECK(p.out.empty());
	}

	/* An fd that is open but not a listening socket. */
	DaemonProcess p({ "--socket-fd", "0" });
	CHECK(p.wait() == std::optional<int>(2));
	CHECK(p.err().rfind("vhost-sound: --socket-fd 0: ", 0) == 0);

	DaemonProcess help({ "--help" });
	CHECK(help.wait() == std::optional<int>(0));
	CHECK(help.out().find("--initial-streams") != std::string::npos);
}

TEST_CASE("--socket-fd serves an inherited listening socket", "[cli][process]")
{
	TempDir dir;
	const std::string path = dir.path + "/inherited.sock";
	const int fd = listening_socket(path);
	DaemonProcess daemon({ "--socket-fd", "3", "--log-level", "warn" }, fd);
	::close(fd);

	vhostpp::DeviceDriver driver(path, { { 64, 64, 64, 64 } });
	const auto config = driver.frontend().get_config(0, 12);
	REQUIRE(config.size() == 12);
	uint32_t words[3];
	std::memcpy(words, config.data(), sizeof(words));
	CHECK(words[0] == 2); /* jacks */
	CHECK(words[1] == 2); /* streams */
	CHECK(words[2] > 0);  /* chmaps */
	CHECK(driver.frontend().get_queue_num() == 4);

	daemon.signal(SIGTERM);
	CHECK(daemon.wait() == std::optional<int>(0));
}

TEST_CASE("SIGINT and SIGTERM shut down cleanly and remove the socket files", "[cli][process]")
{
	for (int sig : { SIGINT, SIGTERM }) {
		INFO("signal " << sig);
		TempDir dir;
		const std::string sock = dir.path + "/snd.sock";
		const std::string ctl = dir.path + "/ctl.sock";
		DaemonProcess daemon({ "--socket", sock, "--control-socket", ctl, "--streams",
				       "output,input", "--log-level", "warn" });

		/* The control socket answers once the daemon is up. */
		const auto reply = query_when_up(ctl);
		REQUIRE(reply);
		CHECK(reply->find("output=on input=on") != std::string::npos);
		CHECK(std::filesystem::exists(sock));

		/* And a front-end may be connected while the signal comes. */
		vhostpp::DeviceDriver driver(sock, { { 64, 64, 64, 64 } });
		daemon.signal(sig);
		CHECK(daemon.wait() == std::optional<int>(0));
		CHECK_FALSE(std::filesystem::exists(sock));
		CHECK_FALSE(std::filesystem::exists(ctl));
	}
}

TEST_CASE("the default enables output only", "[cli][process]")
{
	TempDir dir;
	const std::string sock = dir.path + "/snd.sock";
	const std::string ctl = dir.path + "/ctl.sock";
	DaemonProcess daemon({ "--socket", sock, "--control-socket", ctl, "--log-level", "warn" });
	const auto reply = query_when_up(ctl);
	REQUIRE(reply);
	CHECK(reply->find("output=on input=off") != std::string::npos);
	daemon.signal(SIGTERM);
	CHECK(daemon.wait() == std::optional<int>(0));
}
