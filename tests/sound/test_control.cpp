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

#include "control/control_server.h"
#include "audio/null/null_backend.h"
#include "socket_client.h"
#include "device/sound_device.h"

using namespace vhost_sound;
using sound_test::LineClient;

namespace {

bool starts_with(const std::string &s, const std::string &prefix)
{
	return s.rfind(prefix, 0) == 0;
}

/* A device, its commands and a control server on a loop thread. */
struct ControlFixture {
	boost::asio::io_context io;
	boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
		boost::asio::make_work_guard(io)
	};
	NullBackend backend{ io };
	SoundDevice device{ backend, backend, {} };
	ControlCommands commands{ device, "test" };
	ControlServer server{ io, commands };
	std::string dir;
	std::string path;
	std::thread thread;

	ControlFixture()
	{
		char tmpl[] = "/tmp/vhost-sound-ctl-XXXXXX";
		dir = ::mkdtemp(tmpl);
		path = dir + "/ctl.sock";
	}
	void start()
	{
		server.listen(path);
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

TEST_CASE("QUERY, SET and STATUS", "[control]")
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

	const std::string status = commands.handle("STATUS");
	INFO(status);
	CHECK(starts_with(status, "OK {stream=0 direction=output enabled=off state=idle format=- "));
	CHECK(status.find("{stream=1 direction=input enabled=on state=idle") != std::string::npos);
	for (const char *key : { "bytes=", "frames=", "xruns=", "latency_bytes=", "ring_fill=",
				 "buffer_bytes=", "period_bytes=", "feeder=\"" })
		CHECK(status.find(key) != std::string::npos);
}

TEST_CASE("bad requests get ERR 400 and change nothing", "[control]")
{
	boost::asio::io_context io;
	NullBackend backend(io);
	SoundDevice device(backend, backend, {});
	ControlCommands commands(device, "1");

	for (const char *line : { "", "   ", "FROB", "SET", "SET output", "SET output maybe",
				  "SET speaker on", "SET output on extra", "QUERY now", "STATUS x",
				  "\x01\x02\xff garbage" }) {
		INFO("request '" << line << "'");
		CHECK(starts_with(commands.handle(line), "ERR 400 "));
	}
	CHECK(device.enabled(Direction::Output));
	CHECK_FALSE(device.enabled(Direction::Input));
	/* Echoed words are sanitised. */
	CHECK(commands.handle("\x1b[31mX") == "ERR 400 unknown verb '?[31mX' (QUERY, SET, STATUS)");
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
		CHECK(starts_with(client.ask(std::string(ControlCommands::kMaxLine, 'x')), "ERR 400 "));
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
		CHECK(starts_with(client.ask("STATUS"), "OK {stream=0"));
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
		for (int i = 0; i < 50 && !served; i++) {
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
			dropped = greedy.closed_by_peer(5000);
		CHECK(dropped);
		LineClient polite(f.path);
		CHECK(starts_with(polite.ask("QUERY"), "OK "));
		CHECK(f.on_loop([&] { return f.server.clients(); }) <= 2);
	}
}
