/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The real binaries: vhostctl against a running vhost-sound, the --name
 * socket convention, systemd socket activation (LISTEN_FDS through
 * systemd-socket-activate, with one and two sockets), the systemd units
 * (systemd-analyze), and the daemon under the units' sandbox as far as it
 * can be applied without systemd as PID 1.
 */
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include <vhostpp/frontend.h>

#include "ci_require.h"
#include "daemon_process.h"
#include "linux_driver.h"
#include "socket_client.h"

using namespace sound_test;
using nlohmann::json;
namespace vs = vhost_sound::virtio_snd;

namespace {

std::string env_or_fail(const char *name)
{
	const char *value = std::getenv(name);
	if (!value)
		FAIL(std::string(name) + " is not set (run through meson test)");
	return value;
}

/* What one run of a program printed, and how it ended. */
struct Result {
	std::optional<int> status;
	std::string out;
	std::string err;
};

Result run(const std::string &binary, const std::vector<std::string> &args)
{
	DaemonProcess p(binary, args);
	Result r;
	r.status = p.wait(10000);
	r.out = p.out();
	r.err = p.err();
	return r;
}

Result vhostctl(const std::vector<std::string> &args)
{
	return run(env_or_fail("VHOSTCTL"), args);
}

/* A fresh directory under /tmp, removed at the end; \a mode 0755 lets other uids in. */
struct OpenDir {
	std::string path;
	explicit OpenDir(mode_t mode = 0700)
	{
		char tmpl[] = "/tmp/vhostctl-test-XXXXXX";
		path = ::mkdtemp(tmpl);
		::chmod(path.c_str(), mode);
	}
	~OpenDir()
	{
		std::error_code ec;
		std::filesystem::remove_all(path, ec);
	}
};

/* The daemon on a socket pair of \a dir, up and answering. */
struct Daemon {
	std::string sock, ctl;
	std::unique_ptr<DaemonProcess> process;
	Daemon(const OpenDir &dir, std::vector<std::string> extra = {})
		: sock(dir.path + "/snd.sock"), ctl(dir.path + "/snd.ctl")
	{
		std::vector<std::string> args{ "--socket", sock, "--control-socket", ctl, "--log-level", "warn" };
		args.insert(args.end(), extra.begin(), extra.end());
		process = std::make_unique<DaemonProcess>(args);
		REQUIRE(query_when_up(ctl));
	}
	~Daemon()
	{
		process->signal(SIGTERM);
		process->wait();
	}
};

} // namespace

TEST_CASE("vhostctl: every subcommand against a running daemon, its output and exit codes", "[vhostctl][process]")
{
	OpenDir dir;
	Daemon daemon(dir);
	const std::vector<std::string> s{ "-s", daemon.ctl };
	auto ctl = [&](std::vector<std::string> args) {
		args.insert(args.begin(), s.begin(), s.end());
		return vhostctl(args);
	};

	Result r = ctl({ "query" });
	CHECK(r.status == 0);
	CHECK(r.out == "vhost-sound 0.1.0 backend=null streams=2 output=on input=off\n");

	r = ctl({ "enable", "input" });
	CHECK(r.status == 0);
	CHECK(r.out == "input on\n");
	r = ctl({ "disable", "output" });
	CHECK(r.out == "output off\n");
	r = ctl({ "toggle", "output" });
	CHECK(r.out == "output on\n");
	r = ctl({ "set", "input", "off" });
	CHECK(r.out == "input off\n");
	r = ctl({ "toggle", "input" });
	CHECK(r.out == "input on\n");
	CHECK(ctl({ "query" }).out == "vhost-sound 0.1.0 backend=null streams=2 output=on input=on\n");

	r = ctl({ "status" });
	CHECK(r.status == 0);
	INFO(r.out);
	std::istringstream table(r.out);
	std::vector<std::string> lines;
	for (std::string line; std::getline(table, line);)
		lines.push_back(line);
	REQUIRE(lines.size() == 14); /* + the mixer: a summary and 5 controls */
	CHECK(std::regex_match(lines[0], std::regex("vhost-sound 0\\.1\\.0, back-end null, guest not connected, up 0:00:0\\d")));
	CHECK(std::regex_match(lines[1], std::regex("ID +DIR +ENABLED +STATE +FORMAT +RATE +CH +BUFFER +PERIOD +BYTES +FRAMES +XRUNS +LAT\\(ms\\) +RING +QUEUED")));
	CHECK(std::regex_match(lines[2], std::regex("0 +output +on +idle +- +- +- +- +- +0 +0 +0 +- +0/0 +0")));
	CHECK(std::regex_match(lines[3], std::regex("1 +input +on +idle +- +- +- +- +- +0 +0 +0 +- +0/0 +0")));
	CHECK(lines[4] == "stream 0 feeder: txq -> enabled -> no ring -> null (closed)");
	CHECK(lines[5] == "stream 1 feeder: null (closed) -> no ring -> enabled -> rxq");
	CHECK(lines[6] == "jack 0 (line-out): connected");
	CHECK(lines[7] == "jack 1 (microphone): connected");
	CHECK(lines[8] == "controls not offered (no --controls), guest does not use them; gain output 100%, input 100%");
	CHECK(std::regex_match(lines[9], std::regex("  0 +playback-volume +Master Playback Volume +100% \\(0-100\\)")));
	CHECK(std::regex_match(lines[13], std::regex("  4 +host-microphone +Host Microphone Capture Switch +on \\(read-only\\)")));

	/* The mixer: volume, mute, unmute, controls. */
	CHECK(ctl({ "volume", "output", "40%" }).out == "output volume 40%\n");
	CHECK(ctl({ "mute", "input" }).out == "input muted\n");
	CHECK(ctl({ "unmute", "input" }).out == "input unmuted\n");
	r = ctl({ "controls" });
	CHECK(r.status == 0);
	CHECK(r.out.find("  0  playback-volume") != std::string::npos);
	CHECK(r.out.find("40% (0-100)") != std::string::npos);
	r = ctl({ "controls", "--json" });
	CHECK(json::parse(r.out)["controls"][0]["value"] == 40);
	r = ctl({ "volume", "output", "101%" });
	CHECK(r.status == 1);
	CHECK(r.err.find("ERR 400 volume 101% out of range for output (0-100%)") != std::string::npos);
	CHECK(ctl({ "volume", "output", "100%" }).status == 0);

	r = ctl({ "status", "--json" });
	CHECK(r.status == 0);
	const json status = json::parse(r.out);
	CHECK(status["schema"] == 1);
	CHECK(status["streams"][1]["enabled"] == true);

	/* watch: one line per event with a timestamp, until stopped. */
	for (const bool raw : { false, true }) {
		std::vector<std::string> args{ "-s", daemon.ctl, "watch" };
		if (raw)
			args.push_back("--json");
		DaemonProcess watch(env_or_fail("VHOSTCTL"), args);
		LineClient user(daemon.ctl);
		std::string out;
		/* Events before the watcher is in are not its to see: toggle until one shows. */
		for (int i = 0; i < 200 && out.find("output") == std::string::npos; i++) {
			REQUIRE(user.ask("TOGGLE output").rfind("OK output ", 0) == 0);
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
			out += watch.out();
		}
		const size_t seen = out.size();
		REQUIRE(user.ask("SET input off") == "OK input off");
		REQUIRE(user.ask("SET input on") == "OK input on");
		for (int i = 0; i < 200 && out.find("input", seen) == std::string::npos; i++) {
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
			out += watch.out();
		}
		for (int i = 0; i < 50 && std::count(out.begin() + seen, out.end(), '\n') < 2; i++) {
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
			out += watch.out();
		}
		watch.signal(SIGTERM);
		watch.wait();
		const std::string tail = out.substr(seen);
		INFO(out);
		if (raw) {
			std::istringstream events(tail);
			std::string first, second;
			std::getline(events, first);
			std::getline(events, second);
			CHECK(json::parse(first)["enabled"] == false);
			CHECK(json::parse(second)["enabled"] == true);
			CHECK(json::parse(second)["direction"] == "input");
		} else {
			CHECK(std::regex_match(tail, std::regex("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z input disabled\n"
								"\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z input enabled\n")));
		}
	}

	/* Usage errors: 2, one line naming the problem. */
	for (const auto &[args, word] : std::vector<std::pair<std::vector<std::string>, std::string>>{
		     { { "query" }, "-s PATH or --vm NAME" },
		     { { "-s", daemon.ctl }, "no command" },
		     { { "-s", daemon.ctl, "frob" }, "unknown command 'frob'" },
		     { { "-s", daemon.ctl, "enable", "speaker" }, "'speaker' is not output or input" },
		     { { "-s", daemon.ctl, "volume", "output", "loud" }, "'loud' is not a percentage" },
		     { { "-s", daemon.ctl, "mute" }, "usage: vhostctl mute output|input" },
		     { { "-s", daemon.ctl, "set", "input", "maybe" }, "'maybe' is not on or off" },
		     { { "-s", daemon.ctl, "set", "input" }, "usage: vhostctl set" },
		     { { "-s", daemon.ctl, "query", "--json" }, "--json goes with status, watch and controls" },
		     { { "-s", daemon.ctl, "--vm", "x", "query" }, "mutually exclusive" },
		     { { "--vm", "a/b", "query" }, "cannot name a socket" },
		     { { "--bogus" }, "unrecognised option" },
	     }) {
		const Result e = vhostctl(args);
		INFO(e.err);
		CHECK(e.status == 2);
		CHECK(e.out.empty());
		CHECK(e.err.find(word) != std::string::npos);
		CHECK(std::count(e.err.begin(), e.err.end(), '\n') == 1);
	}
	/* Not reachable: 2, naming the path it tried. */
	r = vhostctl({ "-s", dir.path + "/nothing.ctl", "query" });
	CHECK(r.status == 2);
	CHECK(r.err.find(dir.path + "/nothing.ctl") != std::string::npos);
	r = vhostctl({ "--vm", "no-such-vm-here", "status" });
	CHECK(r.status == 2);
	CHECK(r.err.find("vhost-sound/no-such-vm-here.ctl") != std::string::npos);

	r = vhostctl({ "--help" });
	CHECK(r.status == 0);
	CHECK(r.out.rfind("Usage: vhostctl", 0) == 0);
	for (const char *word : { "query", "status", "enable", "disable", "toggle", "set", "watch", "--vm", "-s" })
		CHECK(r.out.find(word) != std::string::npos);
}

TEST_CASE("vhostctl status: the back-end's details, one line each under the summary", "[vhostctl][process]")
{
	OpenDir dir;
	const std::string out = dir.path + "/out.wav";
	Daemon daemon(dir, { "--backend", "file", "--output-file", out });
	const Result r = vhostctl({ "-s", daemon.ctl, "status" });
	CHECK(r.status == 0);
	INFO(r.out);
	std::istringstream table(r.out);
	std::vector<std::string> lines;
	for (std::string line; std::getline(table, line);)
		lines.push_back(line);
	REQUIRE(lines.size() >= 3);
	CHECK(lines[0].rfind("vhost-sound 0.1.0, back-end file, guest not connected", 0) == 0);
	/* No stream has started an output file yet: the path given only. */
	CHECK(lines[1] == "  back-end output_file: " + out);
	CHECK(std::regex_match(lines[2], std::regex("ID +DIR +ENABLED .*")));
}

TEST_CASE("vhostctl: an ERR reply exits 1: a foreign uid refused, then let in with --control-allow-uid", "[vhostctl][process]")
{
	if (!root_or_fail("this test switches uids") || !program_or_fail("setpriv"))
		return;
	OpenDir dir(0755);
	const std::string vhostctl_path = env_or_fail("VHOSTCTL");
	auto as_nobody = [&](const std::string &ctl) {
		return run("setpriv", { "--reuid=65534", "--regid=65534", "--clear-groups", vhostctl_path, "-s",
					ctl, "disable", "output" });
	};
	{
		/* The socket open to all (mode 0666): only the peer check stands in the way. */
		Daemon daemon(dir, { "--control-socket-mode", "0666" });
		const Result r = as_nobody(daemon.ctl);
		CHECK(r.status == 1);
		CHECK(r.err == "vhostctl: " + daemon.ctl + ": ERR 403 this user may not use the control socket\n");
		CHECK(vhostctl({ "-s", daemon.ctl, "query" }).out.find("output=on") != std::string::npos);
	}
	{
		Daemon daemon(dir, { "--control-socket-mode", "0666", "--control-allow-uid", "nobody" });
		const Result r = as_nobody(daemon.ctl);
		CHECK(r.status == 0);
		CHECK(r.out == "output off\n");
	}
	{
		/* Mode 0600 (the default): the kernel refuses before the daemon sees anyone. */
		Daemon daemon(dir, { "--control-allow-uid", "65534" });
		const Result r = as_nobody(daemon.ctl);
		CHECK(r.status == 2);
		CHECK(r.err.find("Permission denied") != std::string::npos);
	}
}

TEST_CASE("--name: the sockets at $RUNTIME/vhost-sound/NAME.{sock,ctl}, found by vhostctl --vm", "[vhostctl][process]")
{
	const std::string name = "vhostctl-test-" + std::to_string(::getpid());
	const char *xdg = std::getenv("XDG_RUNTIME_DIR");
	const std::string dir = ::geteuid() == 0 ? "/run/vhost-sound" : std::string(xdg ? xdg : "") + "/vhost-sound";
	if (::geteuid() != 0 && !xdg) {
		WARN("not root and no XDG_RUNTIME_DIR: no default socket directory; skipped");
		return;
	}
	DaemonProcess daemon({ "--name", name, "--log-level", "warn" });
	REQUIRE(query_when_up(dir + "/" + name + ".ctl"));
	struct stat st;
	REQUIRE(::stat((dir + "/" + name + ".sock").c_str(), &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	REQUIRE(::stat((dir + "/" + name + ".ctl").c_str(), &st) == 0);
	CHECK((st.st_mode & 0777) == 0600);

	const Result r = vhostctl({ "--vm", name, "enable", "input" });
	CHECK(r.status == 0);
	CHECK(r.out == "input on\n");
	{
		vhostpp::DeviceDriver driver(dir + "/" + name + ".sock", sound_driver_options());
		SoundDriver snd(driver);
		CHECK(snd.read_config().streams == 2);
	}
	daemon.signal(SIGTERM);
	CHECK(daemon.wait() == 0);
	CHECK_FALSE(std::filesystem::exists(dir + "/" + name + ".sock"));
	CHECK_FALSE(std::filesystem::exists(dir + "/" + name + ".ctl"));
}

namespace {

/*
 * The daemon started by systemd-socket-activate, which listens on \a
 * listen (in order, named \a names) and execs the daemon with LISTEN_FDS
 * at the first connection; \a wrapper goes before the daemon's binary.
 */
std::unique_ptr<DaemonProcess> socket_activated(const std::vector<std::string> &listen, const std::string &names,
					       const std::vector<std::string> &wrapper = {},
					       const std::vector<std::string> &extra = {},
					       const std::string &binary = vhost_sound_binary())
{
	std::vector<std::string> args;
	for (const auto &path : listen) {
		args.push_back("-l");
		args.push_back(path);
	}
	if (!names.empty())
		args.push_back("--fdname=" + names);
	args.insert(args.end(), wrapper.begin(), wrapper.end());
	args.push_back(binary);
	args.push_back("--log-level");
	args.push_back("warn");
	args.insert(args.end(), extra.begin(), extra.end());
	auto p = std::make_unique<DaemonProcess>("systemd-socket-activate", args);
	/* It listens before it execs: wait for the socket files. */
	for (int i = 0; i < 200 && !std::filesystem::exists(listen.back()); i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	return p;
}

/* The vhost-user socket serves the device: config and a JACK_INFO. */
void check_device(const std::string &sock, uint8_t mic_connected)
{
	vhostpp::DeviceDriver driver(sock, sound_driver_options());
	SoundDriver snd(driver);
	CHECK(snd.read_config().jacks == 2);
	CHECK(snd.query<vs::JackInfo>(vs::kJackInfo, 1, 1)[0].connected == mic_connected);
}

/*
 * Copies of \a binary and of the project's own shared libraries it links
 * (those outside /lib and /usr/lib, found with ldd) in \a dir: a uid
 * other than root may not be able to reach the build tree (CI checks it
 * out under a root-only directory). Returns the copy's path.
 */
std::string copy_with_libraries(const std::string &binary, const std::string &dir)
{
	const std::string copy = dir + "/" + std::filesystem::path(binary).filename().string();
	std::filesystem::copy_file(binary, copy);
	const Result ldd = run("ldd", { binary });
	REQUIRE(ldd.status == 0);
	static const std::regex linked(R"(\S+ => (/\S+) \(0x)");
	for (std::sregex_iterator it(ldd.out.begin(), ldd.out.end(), linked), end; it != end; ++it) {
		const std::string lib = (*it)[1];
		if (lib.rfind("/lib/", 0) != 0 && lib.rfind("/usr/lib/", 0) != 0)
			std::filesystem::copy_file(lib, dir + "/" + std::filesystem::path(lib).filename().string());
	}
	return copy;
}

} // namespace

TEST_CASE("LISTEN_FDS: one socket is the vhost-user one; two are told apart by FileDescriptorName=", "[systemd][process]")
{
	if (!program_or_fail("systemd-socket-activate"))
		return;
	OpenDir dir;
	const std::string sock = dir.path + "/snd.sock", ctl = dir.path + "/snd.ctl";

	SECTION("one socket, no name")
	{
		auto daemon = socket_activated({ sock }, "");
		check_device(sock, 0);
		daemon->signal(SIGTERM);
		CHECK(daemon->wait() == 0);
		INFO(daemon->err());
	}
	SECTION("two sockets, named, in either order")
	{
		for (const bool control_first : { false, true }) {
			auto daemon = control_first ? socket_activated({ ctl, sock }, "control:vhost-user")
						    : socket_activated({ sock, ctl }, "vhost-user:control");
			const auto reply = query_when_up(ctl);
			REQUIRE(reply);
			CHECK(*reply == "OK vhost-sound 0.1.0 backend=null streams=2 output=on input=off");
			LineClient user(ctl);
			CHECK(user.ask("SET input on") == "OK input on");
			check_device(sock, 1);
			daemon->signal(SIGTERM);
			CHECK(daemon->wait() == 0);
			/* The sockets are systemd's: the daemon leaves their files alone. */
			CHECK(std::filesystem::exists(sock));
			CHECK(std::filesystem::exists(ctl));
			std::filesystem::remove(sock);
			std::filesystem::remove(ctl);
		}
	}
	SECTION("a name that is neither: exit 2 naming it")
	{
		auto daemon = socket_activated({ sock, ctl }, "vhost-user:bogus");
		/* Connecting makes systemd-socket-activate exec the daemon. */
		try {
			LineClient poke(ctl);
		} catch (const std::exception &) {
		}
		CHECK(daemon->wait() == 2);
		CHECK(daemon->err().find("socket named 'bogus'") != std::string::npos);
	}
}

TEST_CASE("the systemd units pass systemd-analyze verify; security exposure is low", "[systemd][process]")
{
	if (!program_or_fail("systemd-analyze"))
		return;
	const std::string units = env_or_fail("VHOST_SOUND_TEST_UNITS");
	OpenDir dir;
	/* The test copies name the build tree's binary, which must exist for verify. */
	for (const char *unit : { "vhost-sound@.service", "vhost-sound@.socket", "vhost-sound-control@.socket" })
		std::filesystem::copy_file(units + "/test-" + unit, dir.path + "/" + unit);
	const Result verify = run("systemd-analyze", { "verify", "--man=no", dir.path + "/vhost-sound@vm1.service",
						      dir.path + "/vhost-sound@vm1.socket",
						      dir.path + "/vhost-sound-control@vm1.socket" });
	INFO(verify.out << verify.err);
	CHECK(verify.status == 0);
	/* Warnings (unknown keys, bad values) do not change the status: none may appear. */
	CHECK(verify.err.empty());

	const Result security = run("systemd-analyze", { "security", "--offline=yes", "--no-pager",
							dir.path + "/vhost-sound@vm1.service" });
	INFO(security.out << security.err);
	std::smatch m;
	REQUIRE(std::regex_search(security.out, m, std::regex("Overall exposure level for vhost-sound@vm1.service: ([0-9.]+)")));
	std::cout << "systemd-analyze security: exposure " << m[1] << "\n";
	CHECK(std::stod(m[1]) <= 1.5);
}

TEST_CASE("the daemon under the units' sandbox, as far as it applies without systemd", "[systemd][process]")
{
	if (!root_or_fail("this test switches uids") || !program_or_fail("systemd-socket-activate") || !program_or_fail("unshare") ||
	    !program_or_fail("setpriv"))
		return;
	OpenDir dir(0755);
	const std::string sock = dir.path + "/snd.sock", ctl = dir.path + "/snd.ctl";
	/*
	 * As the units: sockets passed by name, a user that is not root, no new
	 * privileges or capabilities, no network (PrivateNetwork=), own IPC
	 * (PrivateIPC=), a read-only file system (ProtectSystem=strict), and
	 * write+exec mappings refused (MemoryDenyWriteExecute=, the kernel's
	 * PR_SET_MDWE).
	 */
	const std::string mdwe = copy_with_libraries(env_or_fail("MDWE_EXEC"), dir.path);
	const std::string daemon_binary = copy_with_libraries(vhost_sound_binary(), dir.path);
	auto daemon = socket_activated(
		{ sock, ctl }, "vhost-user:control",
		{ "unshare", "--net", "--ipc", "--mount", "--propagation", "private", "sh", "-c",
		  "mount --bind -o ro / / && mount -o remount,bind,ro / && exec \"$@\"", "sandbox",
		  "env", "LD_LIBRARY_PATH=" + dir.path,
		  "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs",
		  "--inh-caps=-all", "--bounding-set=-all", mdwe },
		{}, daemon_binary);
	REQUIRE(query_when_up(ctl));
	LineClient user(ctl);
	REQUIRE(user.ask("SET input on") == "OK input on");
	{
		/* Guest memory (memfd) mapped, audio played, the device answers. */
		vhostpp::DeviceDriver driver(sock, sound_driver_options());
		SoundDriver snd(driver);
		CHECK(snd.query<vs::JackInfo>(vs::kJackInfo, 1, 1)[0].connected == 1);
		PcmConfig config;
		config.period_bytes = 1920;
		config.buffer_bytes = 4 * 1920;
		LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
		const auto played = pcm.play(20, [](uint64_t, std::span<uint8_t> out) { std::fill(out.begin(), out.end(), 1); });
		CHECK(played.statuses == std::vector<uint32_t>(20, vs::kStatusOk));
		/* Asked while the guest is still connected: once it goes, the
		 * daemon resets its streams to idle. */
		const json status = json::parse(user.ask("STATUS").substr(3));
		CHECK(status["streams"][0]["state"] == "released");
	}
	/* It really runs as nobody: the daemon's own uid is 65534, so root got in as root. */
	const std::string pid = std::to_string(daemon->pid());
	std::ifstream proc("/proc/" + pid + "/status");
	std::string line, uid_line;
	while (std::getline(proc, line))
		if (line.rfind("Uid:", 0) == 0)
			uid_line = line;
	CHECK(uid_line.find("65534") != std::string::npos);
	daemon->signal(SIGTERM);
	CHECK(daemon->wait() == 0);
	INFO(daemon->err());
}
