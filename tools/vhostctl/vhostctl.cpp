/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * vhostctl: the host user's and the VM manager's client for vhost-sound's
 * control socket. The grammar (requests, replies, STATUS, events) is the
 * daemon's own, from vhost-sound/src/control/.
 *
 * Exit status: 0 success, 1 the daemon answered ERR, 2 a usage error or a
 * daemon that cannot be reached (the message names the path tried).
 */
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include "control/control_protocol.h"
#include "control/runtime_paths.h"
#include "control/status_text.h"
#include "version.h"

namespace asio = boost::asio;
namespace po = boost::program_options;
namespace control = vhost_sound::control;
using Protocol = asio::local::stream_protocol;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitErrReply = 1;
constexpr int kExitUsage = 2;

/* A usage error: exit 2 with this message. */
struct UsageError : std::runtime_error {
	using std::runtime_error::runtime_error;
};

/* The daemon cannot be reached or broke the protocol: exit 2. */
struct Unreachable : std::runtime_error {
	using std::runtime_error::runtime_error;
};

/* One connection to the control socket; every wait is bounded by a timeout. */
class Connection
{
public:
	Connection(std::string path, std::chrono::milliseconds timeout)
		: path_(std::move(path)), timeout_(timeout), socket_(io_)
	{
		boost::system::error_code result = asio::error::timed_out;
		socket_.async_connect(Protocol::endpoint(path_),
				      [&](const boost::system::error_code &ec) { result = ec; });
		run(timeout_);
		if (result)
			fail(result.message());
	}

	void send(const std::string &line)
	{
		boost::system::error_code result = asio::error::timed_out;
		const std::string bytes = line + "\n";
		asio::async_write(socket_, asio::buffer(bytes),
				  [&](const boost::system::error_code &ec, size_t) { result = ec; });
		run(timeout_);
		if (result)
			fail(result.message());
	}

	/* The next line; with no timeout it waits as long as it takes (watch). */
	std::string line(std::optional<std::chrono::milliseconds> timeout)
	{
		boost::system::error_code result = asio::error::timed_out;
		size_t n = 0;
		asio::async_read_until(socket_, buffer_, '\n',
				       [&](const boost::system::error_code &ec, size_t got) {
					       result = ec;
					       n = got;
				       });
		run(timeout);
		if (result == asio::error::eof)
			fail("the daemon closed the connection");
		if (result)
			fail(result.message());
		std::string out(asio::buffers_begin(buffer_.data()),
				asio::buffers_begin(buffer_.data()) + n - 1);
		buffer_.consume(n);
		return out;
	}

	/* Send \a request and return its reply, exiting 1 on ERR. */
	std::string ask(const control::Request &request)
	{
		std::optional<Unreachable> send_failed;
		try {
			send(control::format_request(request));
		} catch (const Unreachable &e) {
			/* A refused peer is answered (ERR 403) and closed, maybe before
			 * our request is out: the answer may still be there to read. */
			send_failed = e;
		}
		std::string reply_line;
		try {
			reply_line = line(timeout_);
		} catch (const Unreachable &) {
			if (send_failed)
				throw *send_failed;
			throw;
		}
		const auto reply = control::parse_reply(reply_line);
		if (!reply)
			fail("not a reply: '" + reply_line.substr(0, 200) + "'");
		if (reply->error) {
			std::cerr << "vhostctl: " << path_ << ": " << control::format_error(*reply->error)
				  << std::endl;
			std::exit(kExitErrReply);
		}
		return *reply->ok;
	}

	const std::string &path() const { return path_; }

private:
	void run(std::optional<std::chrono::milliseconds> timeout)
	{
		io_.restart();
		if (timeout) {
			io_.run_for(*timeout);
			if (!io_.stopped()) {
				/* Timed out: cancel and let the handler see it. */
				boost::system::error_code ignored;
				socket_.cancel(ignored);
				io_.restart();
				io_.run();
			}
		} else {
			io_.run();
		}
	}

	[[noreturn]] void fail(const std::string &what)
	{
		throw Unreachable("cannot talk to the daemon at " + path_ + ": " + what);
	}

	std::string path_;
	std::chrono::milliseconds timeout_;
	asio::io_context io_;
	Protocol::socket socket_;
	asio::streambuf buffer_{ 1 << 20 };
};

const char *kUsage =
	"Usage: vhostctl [-s PATH | --vm NAME] COMMAND\n"
	"\n"
	"Commands:\n"
	"  query                      one line: version, back-end, enabled directions\n"
	"  status [--json]            a table per stream (--json: STATUS's JSON)\n"
	"  enable output|input        enable a direction\n"
	"  disable output|input       disable a direction (input: the host device is closed)\n"
	"  toggle output|input        switch a direction; prints its new state\n"
	"  set output|input on|off    set a direction\n"
	"  watch [--json]             print one line per event until interrupted\n"
	"  volume output|input N%     set a direction's volume (output 0-100%, input 0-200%)\n"
	"  mute output|input          mute a direction (silence, same pace)\n"
	"  unmute output|input        unmute a direction\n"
	"  controls [--json]          the mixer's controls and their values\n"
	"\n"
	"The control socket is PATH, or for --vm NAME $RUNTIME/vhost-sound/NAME.ctl\n"
	"($RUNTIME: /run for root, $XDG_RUNTIME_DIR otherwise).\n"
	"Exit status: 0 success, 1 the daemon answered ERR, 2 usage error or daemon\n"
	"not reachable.\n"
	"\n"
	"Options";

/* The request \a words (after the command) ask for. */
control::Request request_for(const std::vector<std::string> &words, bool json)
{
	if (words.empty())
		throw UsageError("no command given");
	const std::string &command = words[0];
	const size_t args = words.size() - 1;
	auto direction = [&](size_t i) {
		const auto d = control::parse_direction(words[i]);
		if (!d)
			throw UsageError("'" + words[i] + "' is not output or input");
		return *d;
	};
	auto expect_args = [&](size_t n, const char *usage) {
		if (args != n)
			throw UsageError(std::string("usage: vhostctl ") + usage);
	};
	if (json && command != "status" && command != "watch" && command != "controls")
		throw UsageError("--json goes with status, watch and controls only");

	control::Request r;
	if (command == "query") {
		expect_args(0, "query");
		r.verb = control::Verb::Query;
	} else if (command == "status") {
		expect_args(0, "status [--json]");
		r.verb = control::Verb::Status;
	} else if (command == "watch") {
		expect_args(0, "watch [--json]");
		r.verb = control::Verb::Watch;
	} else if (command == "enable" || command == "disable") {
		expect_args(1, (command + " output|input").c_str());
		r.verb = control::Verb::Set;
		r.direction = direction(1);
		r.on = command == "enable";
	} else if (command == "toggle") {
		expect_args(1, "toggle output|input");
		r.verb = control::Verb::Toggle;
		r.direction = direction(1);
	} else if (command == "set") {
		expect_args(2, "set output|input on|off");
		r.verb = control::Verb::Set;
		r.direction = direction(1);
		const auto on = control::parse_on_off(words[2]);
		if (!on)
			throw UsageError("'" + words[2] + "' is not on or off");
		r.on = *on;
	} else if (command == "volume") {
		expect_args(2, "volume output|input N%");
		r.verb = control::Verb::Volume;
		r.direction = direction(1);
		const auto percent = control::parse_percent(words[2]);
		if (!percent)
			throw UsageError("'" + words[2] + "' is not a percentage such as 40%");
		r.percent = *percent;
	} else if (command == "mute" || command == "unmute") {
		expect_args(1, (command + " output|input").c_str());
		r.verb = command == "mute" ? control::Verb::Mute : control::Verb::Unmute;
		r.direction = direction(1);
	} else if (command == "controls") {
		expect_args(0, "controls [--json]");
		r.verb = control::Verb::Controls;
	} else {
		throw UsageError("unknown command '" + command + "'");
	}
	return r;
}

int run(int argc, char *argv[])
{
	po::options_description desc(kUsage);
	// clang-format off
	desc.add_options()
		("socket,s", po::value<std::string>()->value_name("PATH"), "the control socket")
		("vm", po::value<std::string>()->value_name("NAME"),
		 "the control socket of VM NAME (the daemon's --name)")
		("json", "status, watch, controls: print the daemon's JSON as it is")
		("timeout", po::value<unsigned>()->value_name("MS")->default_value(5000),
		 "give up waiting for the daemon after MS milliseconds")
		("help,h", "print this help and exit")
		("version,V", "print the version and exit");
	po::options_description hidden;
	hidden.add_options()
		("words", po::value<std::vector<std::string>>());
	// clang-format on
	po::options_description all;
	all.add(desc).add(hidden);
	po::positional_options_description positional;
	positional.add("words", -1);

	po::variables_map vm;
	try {
		po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(),
			  vm);
		po::notify(vm);
	} catch (const po::error &e) {
		throw UsageError(e.what());
	}
	if (vm.count("help")) {
		std::cout << desc;
		return kExitOk;
	}
	if (vm.count("version")) {
		std::cout << "vhostctl " << vhost_sound::kVersion << "\n";
		return kExitOk;
	}

	const bool json = vm.count("json");
	const auto words = vm.count("words") ? vm["words"].as<std::vector<std::string>>()
					     : std::vector<std::string>{};
	const control::Request request = request_for(words, json);

	std::string path;
	if (vm.count("socket") && vm.count("vm"))
		throw UsageError("-s and --vm are mutually exclusive");
	if (vm.count("socket")) {
		path = vm["socket"].as<std::string>();
	} else if (vm.count("vm")) {
		try {
			path = vhost_sound::vm_socket_path(vm["vm"].as<std::string>(),
							   vhost_sound::VmSocket::Control, ::geteuid());
		} catch (const std::runtime_error &e) {
			throw UsageError(std::string("--vm: ") + e.what());
		}
	} else {
		throw UsageError("say which daemon: -s PATH or --vm NAME");
	}

	Connection connection(path, std::chrono::milliseconds(vm["timeout"].as<unsigned>()));
	const std::string reply = connection.ask(request);
	/* STATUS and CONTROLS reply with one JSON document: raw with --json,
	 * else as a table; a reply that is not one is the daemon's fault. */
	auto print_document = [&](std::string (*table)(const nlohmann::json &)) {
		if (json) {
			std::cout << reply << std::endl;
			return;
		}
		try {
			std::cout << table(nlohmann::json::parse(reply));
		} catch (const std::exception &e) {
			throw Unreachable(connection.path() + ": " + e.what());
		}
	};
	switch (request.verb) {
	case control::Verb::Status:
		print_document(control::format_status_table);
		break;
	case control::Verb::Controls:
		print_document(control::format_controls_table);
		break;
	case control::Verb::Watch:
		/* Until the daemon goes away or we are interrupted. */
		while (true) {
			const std::string event = connection.line(std::nullopt);
			if (event.empty() || event.front() != '{')
				continue;
			if (json) {
				std::cout << event << std::endl;
				continue;
			}
			try {
				std::cout << control::format_event(nlohmann::json::parse(event)) << std::endl;
			} catch (const std::exception &e) {
				std::cout << event << std::endl;
			}
		}
	default:
		std::cout << reply << std::endl;
		break;
	}
	return kExitOk;
}

} // namespace

int main(int argc, char *argv[])
{
	try {
		return run(argc, argv);
	} catch (const UsageError &e) {
		std::cerr << "vhostctl: " << e.what() << " (see --help)" << std::endl;
		return kExitUsage;
	} catch (const Unreachable &e) {
		std::cerr << "vhostctl: " << e.what() << std::endl;
		return kExitUsage;
	}
}
