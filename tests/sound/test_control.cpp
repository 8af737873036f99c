/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/* The control socket: the line protocol, and the server under hostile clients (class 32). */
#include <catch2/catch.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <sys/stat.h>
#include <thread>

#include <algorithm>
#include <atomic>
#include <grp.h>
#include <poll.h>
#include <csignal>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audio/null/null_backend.h"
#include "ci_require.h"
#include "control/control_events.h"
#include "control/control_server.h"
#include "control/runtime_paths.h"
#include "device/sound_device.h"
#include "log_capture.h"
#include "socket_client.h"

using namespace vhost_sound;
using nlohmann::json;
using sound_test::LineClient;

namespace {

bool starts_with(const std::string &s, const std::string &prefix)
{
	return s.rfind(prefix, 0) == 0;
}

/* The JSON of an `OK {...}` reply. */
json ok_json(const std::string &reply)
{
	REQUIRE(starts_with(reply, "OK {"));
	return json::parse(reply.substr(3));
}

/* A device, its commands, a control server and its events on a loop thread. */
struct ControlFixture {
	boost::asio::io_context io;
	boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
		boost::asio::make_work_guard(io)
	};
	NullBackend backend{ io };
	SoundDevice device{ backend, backend, {} };
	ControlCommands commands{ device, "test" };
	ControlServer server{ io, commands };
	ControlEvents events{ io, device, server };
	std::string dir;
	std::string path;
	std::thread thread;

	ControlFixture()
	{
		char tmpl[] = "/tmp/vhost-sound-ctl-XXXXXX";
		dir = ::mkdtemp(tmpl);
		path = dir + "/ctl.sock";
	}
	void start(mode_t mode = 0600)
	{
		server.listen(path, mode);
		thread = std::thread([this] { io.run(); });
	}
	template<typename F>
	auto on_loop(F f)
	{
		std::packaged_task<decltype(f())()> task(f);
		auto result = task.get_future();
		boost::asio::post(io, [&task] { task(); });
		return result.get();
	}
	~ControlFixture()
	{
		if (thread.joinable()) {
			on_loop([this] {
				server.stop();
				return 0;
			});
			work.reset();
			io.stop();
			thread.join();
		}
		std::filesystem::remove_all(dir);
	}
};

} // namespace

TEST_CASE("the grammar: requests and replies parse and format back", "[control]")
{
	using namespace control;
	const std::pair<const char *, Request> cases[] = {
		{ "QUERY", { Verb::Query } },
		{ "STATUS", { Verb::Status } },
		{ "WATCH", { Verb::Watch } },
		{ "SET output on", { Verb::Set, Direction::Output, true } },
		{ "SET input off", { Verb::Set, Direction::Input, false } },
		{ "TOGGLE input", { Verb::Toggle, Direction::Input } },
		{ "TOGGLE output", { Verb::Toggle, Direction::Output } },
		{ "VOLUME output 40%", { Verb::Volume, Direction::Output, false, 40 } },
		{ "VOLUME input 0%", { Verb::Volume, Direction::Input, false, 0 } },
		{ "MUTE input", { Verb::Mute, Direction::Input } },
		{ "UNMUTE output", { Verb::Unmute, Direction::Output } },
		{ "CONTROLS", { Verb::Controls } },
	};
	for (const auto &[line, request] : cases) {
		INFO(line);
		const auto parsed = parse_request(line);
		REQUIRE(std::holds_alternative<Request>(parsed));
		CHECK(std::get<Request>(parsed) == request);
		CHECK(format_request(request) == line);
	}
	/* Case, spacing and a CR do not matter. */
	CHECK(std::get<Request>(parse_request("  toggle\tINPUT \r")) ==
	      Request{ Verb::Toggle, Direction::Input });

	CHECK(parse_reply("OK")->ok == std::optional<std::string>(""));
	CHECK(parse_reply("OK input on")->ok == std::optional<std::string>("input on"));
	CHECK(parse_reply("ERR 403 go away")->error == std::optional<Error>(Error{ 403, "go away" }));
	CHECK(format_error(*parse_reply("ERR 400 x y")->error) == "ERR 400 x y");
	for (const char *line : { "", "{\"event\":\"guest\"}", "OKAY", "ERR", "ERR x y", "ERR 99 low" })
		CHECK_FALSE(parse_reply(line));
}

TEST_CASE("every verb: QUERY, SET, TOGGLE, STATUS, WATCH", "[control]")
{
	boost::asio::io_context io;
	NullBackend backend(io);
	SoundDevice device(backend, backend, {});
	ControlCommands commands(device, "9.9");

	CHECK(commands.handle("QUERY") ==
	      "OK vhost-sound 9.9 backend=null streams=2 output=on input=off");
	CHECK(commands.handle("SET input on") == "OK input on");
	CHECK(device.enabled(Direction::Input));
	CHECK(commands.handle("set OUTPUT Off\r") == "OK output off");
	CHECK_FALSE(device.enabled(Direction::Output));
	CHECK(commands.handle("  query  ") ==
	      "OK vhost-sound 9.9 backend=null streams=2 output=off input=on");
	/* TOGGLE answers with the new state. */
	CHECK(commands.handle("TOGGLE output") == "OK output on");
	CHECK(device.enabled(Direction::Output));
	CHECK(commands.handle("TOGGLE input") == "OK input off");
	CHECK_FALSE(device.enabled(Direction::Input));
	CHECK(commands.handle("WATCH") == "OK watching");

	const json status = ok_json(commands.handle("STATUS"));
	INFO(status.dump());
	CHECK(status["schema"] == 1);
	CHECK(status["version"] == "9.9");
	CHECK(status["uptime_s"].get<double>() >= 0);
	CHECK(status["guest"]["connected"] == false);
	CHECK(status["guest"]["features"] == 0);
	CHECK(status["backend"]["name"] == "null");
	CHECK(status["backend"]["details"].is_object());
	REQUIRE(status["jacks"].size() == 2);
	CHECK(status["jacks"][0]["connected"] == true);
	CHECK(status["jacks"][1]["connected"] == false);
	REQUIRE(status["streams"].size() == 2);
	const json &out = status["streams"][0];
	const json &in = status["streams"][1];
	CHECK(out["id"] == 0);
	CHECK(out["direction"] == "output");
	CHECK(out["enabled"] == true);
	CHECK(in["direction"] == "input");
	CHECK(in["enabled"] == false);
	for (const json &s : status["streams"]) {
		CHECK(s["state"] == "idle");
		for (const char *key : { "format", "rate", "channels", "buffer_bytes", "period_bytes",
					 "latency_ms" })
			CHECK(s[key].is_null()); /* before SET_PARAMS */
		for (const char *key : { "bytes", "frames", "xruns", "latency_bytes", "ring_fill",
					 "ring_capacity", "queued" })
			CHECK(s[key] == 0);
		CHECK(s["feeder"].is_string());
		REQUIRE(s["feeder_chain"].is_array());
		/* The list is the string's stages. */
		std::string joined;
		for (const auto &stage : s["feeder_chain"])
			joined += (joined.empty() ? "" : " -> ") + stage.get<std::string>();
		CHECK(joined == s["feeder"]);
	}
	CHECK(in["feeder_chain"].back() == "rxq");
	CHECK(out["feeder_chain"].front() == "txq");
	/* No --controls: the mixer is there for the host, not offered to the guest. */
	CHECK(status["mixer"]["offered"] == false);
	CHECK(status["mixer"]["negotiated"] == false);
	REQUIRE(status["mixer"]["controls"].size() == Mixer::kCount);
	CHECK(status["mixer"]["controls"][0]["key"] == "playback-volume");
	CHECK(status["mixer"]["controls"][0]["value"] == 100);
}

TEST_CASE("the mixer verbs: VOLUME, MUTE, UNMUTE, CONTROLS; out of range refused", "[control][mixer]")
{
	boost::asio::io_context io;
	NullBackend backend(io);
	SoundDevice::Options options;
	options.controls = true;
	SoundDevice device(backend, backend, options);
	ControlCommands commands(device, "9.9");

	CHECK(commands.handle("VOLUME output 40%") == "OK output volume 40%");
	CHECK(device.mixer().value(Mixer::kPlaybackVolume) == 40);
	CHECK(device.stream(0).gain() == 40);
	CHECK(commands.handle("volume INPUT 150") == "OK input volume 150%");
	CHECK(device.stream(1).gain() == 150);
	CHECK(commands.handle("MUTE input") == "OK input muted");
	CHECK(device.stream(1).gain() == 0);
	CHECK(device.mixer().value(Mixer::kCaptureVolume) == 150);
	CHECK(commands.handle("UNMUTE input") == "OK input unmuted");
	CHECK(device.stream(1).gain() == 150);
	CHECK(commands.handle("MUTE output") == "OK output muted");

	for (const char *line : { "VOLUME output 101%", "VOLUME input 201%", "VOLUME output -1%",
				  "VOLUME output 40%%", "VOLUME output", "VOLUME speaker 4%", "MUTE",
				  "UNMUTE output on", "CONTROLS x", "VOLUME output 99999999999%" }) {
		INFO(line);
		CHECK(starts_with(commands.handle(line), "ERR 400 "));
	}
	CHECK(commands.handle("VOLUME output 101%") ==
	      "ERR 400 volume 101% out of range for output (0-100%)");
	CHECK(device.mixer().value(Mixer::kPlaybackVolume) == 40);
	CHECK(device.mixer().value(Mixer::kPlaybackSwitch) == 0);

	const json mixer = ok_json(commands.handle("CONTROLS"));
	INFO(mixer.dump());
	CHECK(mixer["offered"] == true);
	CHECK(mixer["negotiated"] == false);
	CHECK(mixer["output_gain_percent"] == 0);
	CHECK(mixer["input_gain_percent"] == 150);
	REQUIRE(mixer["controls"].size() == 5);
	const char *keys[] = { "playback-volume", "playback-switch", "capture-volume", "capture-switch",
			       "host-microphone" };
	const uint32_t values[] = { 40, 0, 150, 1, 0 };
	for (uint32_t i = 0; i < 5; i++) {
		CHECK(mixer["controls"][i]["id"] == i);
		CHECK(mixer["controls"][i]["key"] == keys[i]);
		CHECK(mixer["controls"][i]["value"] == values[i]);
		CHECK(mixer["controls"][i]["writable"] == (i != Mixer::kHostMicrophone));
	}
	CHECK(mixer["controls"][4]["name"] == "Host Microphone Capture Switch");
	/* Toggling input moves the read-only control. */
	CHECK(commands.handle("SET input on") == "OK input on");
	CHECK(device.mixer().value(Mixer::kHostMicrophone) == 1);
	CHECK(ok_json(commands.handle("STATUS"))["mixer"] == ok_json(commands.handle("CONTROLS")));
}

TEST_CASE("bad requests get ERR 400 and change nothing", "[control]")
{
	boost::asio::io_context io;
	NullBackend backend(io);
	SoundDevice device(backend, backend, {});
	ControlCommands commands(device, "1");

	for (const char *line : { "", "   ", "\r", "FROB", "SET", "SET output", "SET output maybe",
				  "SET speaker on", "SET output on extra", "QUERY now", "STATUS x",
				  "TOGGLE", "TOGGLE speaker", "TOGGLE input now", "WATCH me",
				  "\x01\x02\xff garbage" }) {
		INFO("request '" << line << "'");
		CHECK(starts_with(commands.handle(line), "ERR 400 "));
	}
	CHECK(device.enabled(Direction::Output));
	CHECK_FALSE(device.enabled(Direction::Input));
	/* Echoed words are sanitised. */
	CHECK(commands.handle("\x1b[31mX") ==
	      "ERR 400 unknown verb '?[31mX' (QUERY, SET, TOGGLE, STATUS, WATCH, VOLUME, MUTE, UNMUTE, "
	      "CONTROLS)");
	CHECK(commands.handle("TOGGLE sp\x7f") == "ERR 400 unknown stream 'sp?' (output, input)");
	CHECK(commands.handle("SET input " + std::string(40, 'y')) ==
	      "ERR 400 unknown value '" + std::string(32, 'y') + "...' (on, off)");
	CHECK(starts_with(commands.handle(std::string(2000, 'A')), "ERR 413 "));
}

TEST_CASE("the control socket is created with mode 0600 and removed on stop", "[control]")
{
	ControlFixture f;
	f.start();
	struct stat st;
	REQUIRE(::stat(f.path.c_str(), &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK((st.st_mode & 0777) == 0600);

	LineClient client(f.path);
	CHECK(client.ask("QUERY") == "OK vhost-sound test backend=null streams=2 output=on input=off");
	CHECK(client.ask("SET input on") == "OK input on");
	CHECK(f.on_loop([&] { return f.device.enabled(Direction::Input); }));

	f.on_loop([&] {
		f.server.stop();
		return 0;
	});
	CHECK_FALSE(std::filesystem::exists(f.path));
	CHECK(client.closed_by_peer());
}

TEST_CASE("a stale socket file is replaced, a live socket or another file is refused", "[control]")
{
	ControlFixture f;
	{
		/* A socket file nobody listens on. */
		boost::asio::local::stream_protocol::acceptor stale(f.io);
		stale.open();
		stale.bind(f.path);
	}
	REQUIRE(std::filesystem::exists(f.path));
	f.start();
	LineClient client(f.path);
	CHECK(starts_with(client.ask("QUERY"), "OK "));

	/* A second server on the live socket is refused. */
	ControlServer second(f.io, f.commands);
	CHECK_THROWS_WITH(second.listen(f.path), Catch::Contains("in use"));
	CHECK(starts_with(client.ask("QUERY"), "OK "));

	const std::string file = f.dir + "/plain";
	std::ofstream(file) << "x";
	CHECK_THROWS_WITH(second.listen(file), Catch::Contains("not a socket"));
	CHECK(std::filesystem::exists(file));
}

TEST_CASE("hostile clients: long lines, garbage, half lines, many clients (class 32)", "[control][hostile]")
{
	ControlFixture f;
	f.start();

	SECTION("a line over the limit gets ERR 413, the rest of it is skipped, the next works")
	{
		LineClient client(f.path);
		REQUIRE(client.send(std::string(5000, 'S') + "\n"));
		CHECK(starts_with(*client.line(), "ERR 413 "));
		CHECK(starts_with(client.ask("QUERY"), "OK "));
		/* Exactly at the limit is still a line. */
		CHECK(starts_with(client.ask(std::string(control::kMaxLine, 'x')), "ERR 400 "));
	}

	SECTION("empty lines and binary garbage get one ERR each")
	{
		LineClient client(f.path);
		std::string garbage = "\n\n";
		for (int i = 0; i < 256; i++)
			garbage += static_cast<char>(i == '\n' ? 0 : i);
		garbage += "\n";
		REQUIRE(client.send(garbage));
		for (int i = 0; i < 3; i++)
			CHECK(starts_with(client.line().value_or(""), "ERR 400 "));
		CHECK(starts_with(client.ask("STATUS"), "OK {\"schema\":1,"));
	}

	SECTION("several requests in one write are answered in order")
	{
		LineClient client(f.path);
		REQUIRE(client.send("SET output off\nQUERY\nSET output on\n"));
		CHECK(*client.line() == "OK output off");
		CHECK(client.line()->find("output=off") != std::string::npos);
		CHECK(*client.line() == "OK output on");
	}

	SECTION("a half line then close does not disturb anyone")
	{
		{
			LineClient half(f.path);
			REQUIRE(half.send("SET output o"));
		}
		LineClient client(f.path);
		CHECK(client.ask("QUERY").find("output=on") != std::string::npos);
	}

	SECTION("many clients at once; past the limit one gets ERR 503")
	{
		std::vector<std::unique_ptr<LineClient>> clients;
		for (size_t i = 0; i < ControlServer::kMaxClients; i++) {
			clients.push_back(std::make_unique<LineClient>(f.path));
			/* Each is accepted (and counted) before the next connects. */
			CHECK(starts_with(clients.back()->ask("QUERY"), "OK "));
		}
		LineClient extra(f.path);
		CHECK(extra.line() == std::optional<std::string>("ERR 503 too many clients"));
		CHECK(extra.closed_by_peer());
		for (auto &c : clients)
			CHECK(starts_with(c->ask("STATUS"), "OK "));
		clients.pop_back();
		/* Once one left, a new one is served (the server notices the close first). */
		bool served = false;
		const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(LineClient::kPatience);
		while (!served && std::chrono::steady_clock::now() < deadline) {
			LineClient again(f.path);
			const auto reply = again.ask("QUERY");
			served = starts_with(reply, "OK ");
			if (!served)
				std::this_thread::sleep_for(std::chrono::milliseconds(20));
		}
		CHECK(served);
	}

	SECTION("a client that never reads its replies is dropped, others are served")
	{
		LineClient greedy(f.path);
		std::string burst;
		for (int i = 0; i < 1000; i++)
			burst += "STATUS\n";
		/* ~700 bytes per reply: a few hundred kilobytes of replies never read. */
		bool dropped = false;
		for (int i = 0; i < 200 && !dropped; i++)
			dropped = !greedy.send(burst);
		if (!dropped)
			dropped = greedy.closed_by_peer();
		CHECK(dropped);
		LineClient polite(f.path);
		CHECK(starts_with(polite.ask("QUERY"), "OK "));
		CHECK(f.on_loop([&] { return f.server.clients(); }) <= 2);
	}
}

TEST_CASE("--control-socket-mode and --control-socket-group are set before anyone can connect", "[control]")
{
	ControlFixture f;
	/* Root may pick any group; anyone else one of their own. */
	const gid_t group = ::geteuid() == 0 ? 65533 : ::getegid();
	f.server.listen(f.path, 0660, group);
	struct stat st;
	REQUIRE(::stat(f.path.c_str(), &st) == 0);
	CHECK((st.st_mode & 0777) == 0660);
	CHECK(st.st_gid == group);
}

TEST_CASE("50 clients at once, each toggling, querying and reading STATUS", "[control][hostile]")
{
	ControlFixture f;
	f.start();
	constexpr int kClients = 50, kRounds = 20;
	std::atomic<int> failures{ 0 };
	std::vector<std::unique_ptr<LineClient>> clients;
	/* All connected before any starts: 50 at once. */
	for (int i = 0; i < kClients; i++)
		clients.push_back(std::make_unique<LineClient>(f.path));
	std::vector<std::thread> threads;
	for (auto &c : clients) {
		threads.emplace_back([&failures, client = c.get()] {
			for (int r = 0; r < kRounds; r++) {
				const std::string toggled = client->ask("TOGGLE output");
				const std::string query = client->ask("QUERY");
				const std::string status = client->ask("STATUS");
				bool ok = (toggled == "OK output on" || toggled == "OK output off") &&
					  starts_with(query, "OK vhost-sound ") && starts_with(status, "OK {");
				if (ok)
					ok = json::parse(status.substr(3))["schema"] == 1;
				failures += !ok;
			}
		});
	}
	for (auto &t : threads)
		t.join();
	CHECK(failures == 0);
	CHECK(f.on_loop([&] { return f.server.clients(); }) == kClients);
	/* 1000 toggles: back where it started. */
	CHECK(f.on_loop([&] { return f.device.enabled(Direction::Output); }));
}

TEST_CASE("10 watchers, one never reads: it is dropped, the others get every event in order", "[control][hostile]")
{
	ControlFixture f;
	f.start();
	constexpr int kWatchers = 10, kEvents = 6000;
	std::vector<std::unique_ptr<LineClient>> watchers;
	for (int i = 0; i < kWatchers; i++) {
		watchers.push_back(std::make_unique<LineClient>(f.path));
		REQUIRE(watchers.back()->ask("WATCH") == "OK watching");
	}
	REQUIRE(f.on_loop([&] { return f.server.watchers(); }) == kWatchers);
	/* Watcher 0 never reads again. */

	std::vector<std::thread> readers;
	std::vector<std::atomic<int>> in_order(kWatchers);
	for (int i = 1; i < kWatchers; i++) {
		readers.emplace_back([&, i] {
			bool expect = true; /* input starts off: the first toggle enables it */
			for (int n = 0; n < kEvents; n++) {
				const auto line = watchers[i]->line();
				if (!line)
					return;
				const json e = json::parse(*line);
				if (e["schema"] != 1 || e["event"] != "enabled" || e["direction"] != "input" ||
				    e["enabled"] != expect || !e["time"].is_number())
					return;
				expect = !expect;
				in_order[i]++;
			}
		});
	}

	/*
	 * The readers are paced, not the test: the toggler stays at most
	 * kAhead events (some 10 KB, well under kMaxPendingOutput) ahead of the
	 * slowest reader, so a reader thread the scheduler starves for a while
	 * on a loaded machine is still a client that reads, never one that is
	 * dropped. Watcher 0 still falls 600 KB behind. A reader that stopped
	 * (a bad event) ends the wait after a generous 20 s; the checks below
	 * say which.
	 */
	constexpr int kAhead = 100;
	auto slowest = [&] {
		int least = kEvents;
		for (int i = 1; i < kWatchers; i++)
			least = std::min(least, in_order[i].load());
		return least;
	};
	LineClient toggler(f.path);
	for (int n = 0; n < kEvents; n++) {
		const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(LineClient::kPatience);
		while (n - slowest() > kAhead && std::chrono::steady_clock::now() < deadline)
			std::this_thread::sleep_for(std::chrono::milliseconds(1)); /* CPU for the readers */
		REQUIRE(toggler.ask("TOGGLE input") == (n % 2 ? "OK input off" : "OK input on"));
	}
	for (auto &t : readers)
		t.join();
	for (int i = 1; i < kWatchers; i++) {
		INFO("watcher " << i);
		CHECK(in_order[i].load() == kEvents);
	}
	/* Some 600 KB of events never read: the daemon let it go rather than hold them. */
	CHECK(watchers[0]->closed_by_peer());
	CHECK(f.on_loop([&] { return f.server.watchers(); }) == kWatchers - 1);
	CHECK(starts_with(toggler.ask("QUERY"), "OK "));
}

namespace {

/*
 * Connect to \a path as uid/gid \a id (with \a extra_group as its only
 * supplementary group, if set), send QUERY and return what came back
 * before EOF. A forked child that only makes system calls: the parent has
 * threads, so no allocation after fork().
 */
std::string query_as(const std::string &path, uid_t id, gid_t primary, std::optional<gid_t> extra_group)
{
	int pipefd[2];
	REQUIRE(::pipe(pipefd) == 0);
	const pid_t pid = ::fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		::close(pipefd[0]);
		const gid_t groups[1] = { extra_group.value_or(primary) };
		if (::setgroups(extra_group ? 1 : 0, groups) != 0 || ::setresgid(primary, primary, primary) != 0 ||
		    ::setresuid(id, id, id) != 0)
			::_exit(10);
		const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
		sockaddr_un addr{};
		addr.sun_family = AF_UNIX;
		std::memcpy(addr.sun_path, path.c_str(), std::min(path.size(), sizeof(addr.sun_path) - 1));
		if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
			::_exit(11);
		if (::send(fd, "QUERY\n", 6, MSG_NOSIGNAL) != 6) {
			/* A refused peer may be closed before it writes: read what came. */
		}
		/* No more requests: the server closes once it has answered. */
		::shutdown(fd, SHUT_WR);
		char buf[512];
		ssize_t n;
		while ((n = ::read(fd, buf, sizeof(buf))) > 0)
			if (::write(pipefd[1], buf, n) != n)
				::_exit(12);
		::_exit(0);
	}
	::close(pipefd[1]);
	/* Nothing may hang: the child gets 10 s. */
	pollfd p{ pipefd[0], POLLIN, 0 };
	std::string out;
	char buf[512];
	ssize_t n;
	while (::poll(&p, 1, 10000) > 0 && (n = ::read(pipefd[0], buf, sizeof(buf))) > 0)
		out.append(buf, n);
	::close(pipefd[0]);
	::kill(pid, SIGKILL); /* no-op if it exited */
	int status = 0;
	::waitpid(pid, &status, 0);
	REQUIRE(WIFEXITED(status));
	REQUIRE(WEXITSTATUS(status) == 0);
	return out;
}

} // namespace

TEST_CASE("SO_PEERCRED: a foreign uid gets ERR 403 and is disconnected; allowed uids and groups get in", "[control][hostile]")
{
	if (!sound_test::root_or_fail("the foreign-uid test switches uids"))
		return;
	/* The daemon's replaceable sink: the capture reads what it logged. */
	auto capture = std::make_shared<vhostpp::test::LogCapture>();
	set_log_sink([capture](vhostpp::LogLevel level, std::string_view text) { capture->add(level, text); });
	{
		ControlFixture f;
		/* The directory and the socket open to all: the peer check is what keeps them out. */
		REQUIRE(::chmod(f.dir.c_str(), 0755) == 0);
		f.start(0666);
		const size_t mark = capture->mark();

		constexpr uid_t kNobody = 65534;
		constexpr gid_t kGroup = 65533;
		CHECK(query_as(f.path, kNobody, kNobody, {}) == "ERR 403 this user may not use the control socket\n");
		CHECK(query_as(f.path, kNobody, kNobody, {}) == "ERR 403 this user may not use the control socket\n");
		/* Root and the daemon's own uid (here both 0) get in. */
		CHECK(starts_with(query_as(f.path, 0, 0, {}), "OK vhost-sound "));
		CHECK(f.on_loop([&] { return f.device.enabled(Direction::Output); }));

		size_t refusals = 0;
		for (const auto &line : capture->since(mark))
			refusals += line.text.find("refused peer") != std::string::npos &&
				    line.text.find("uid 65534") != std::string::npos;
		/* Two connections from two pids: each logged once. */
		CHECK(refusals == 2);

		f.on_loop([&] {
			f.server.set_access({ { kNobody }, {} });
			return 0;
		});
		CHECK(starts_with(query_as(f.path, kNobody, kNobody, {}), "OK vhost-sound "));

		f.on_loop([&] {
			f.server.set_access({ {}, { kGroup } });
			return 0;
		});
		/* The allowed group as a supplementary group, and as the primary one. */
		CHECK(starts_with(query_as(f.path, kNobody, kNobody, kGroup), "OK vhost-sound "));
		CHECK(starts_with(query_as(f.path, kNobody, kGroup, {}), "OK vhost-sound "));
		CHECK(query_as(f.path, kNobody, kNobody, {}) == "ERR 403 this user may not use the control socket\n");
	}

	set_log_sink({});
}

TEST_CASE("the socket-path convention: /run for root, $XDG_RUNTIME_DIR for others", "[control]")
{
	const char *saved = std::getenv("XDG_RUNTIME_DIR");
	const std::string keep = saved ? saved : "";
	::setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	CHECK(runtime_socket_dir(0) == "/run/vhost-sound");
	CHECK(runtime_socket_dir(1000) == "/run/user/1000/vhost-sound");
	CHECK(vm_socket_path("win11", VmSocket::VhostUser, 0) == "/run/vhost-sound/win11.sock");
	CHECK(vm_socket_path("win11", VmSocket::Control, 1000) == "/run/user/1000/vhost-sound/win11.ctl");
	for (const char *bad : { "", ".", "..", "a/b", "x\ny", "tab\there" })
		CHECK_THROWS_WITH(vm_socket_path(bad, VmSocket::Control, 0), Catch::Contains("cannot name a socket"));
	CHECK_THROWS_WITH(vm_socket_path(std::string(200, 'v'), VmSocket::Control, 0),
			  Catch::Contains("longer than a Unix socket address"));
	::setenv("XDG_RUNTIME_DIR", "relative", 1);
	CHECK_THROWS_WITH(runtime_socket_dir(1000), Catch::Contains("XDG_RUNTIME_DIR"));
	::unsetenv("XDG_RUNTIME_DIR");
	CHECK_THROWS_WITH(vm_socket_path("vm", VmSocket::Control, 1000), Catch::Contains("XDG_RUNTIME_DIR"));
	CHECK(runtime_socket_dir(0) == "/run/vhost-sound");
	if (saved)
		::setenv("XDG_RUNTIME_DIR", keep.c_str(), 1);
}
