/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file pipewire_session.h
 * \brief A private PipeWire daemon and session manager for one test, and
 * real PipeWire clients (pw-record, pw-cat) to listen and talk to it.
 *
 * PipeWireSession makes a fresh directory, points XDG_RUNTIME_DIR (and the
 * XDG state and config homes) of this process, and so of every child, at
 * it, and runs Debian's `pipewire` with tests/pipewire/pipewire.conf (a
 * null sink "test-sink" and a null source "test-source", no sound card, no
 * D-Bus) and `wireplumber` with a linking-only policy. Every child is
 * stopped by the destructors, and gets SIGKILL from the kernel if the test
 * process dies (PR_SET_PDEATHSIG), so nothing outlives a test on any path.
 */
#pragma once

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <poll.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "socket_client.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace pipewire_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/** \brief An environment variable set by meson; throws when missing. */
inline std::string env_path(const char *name)
{
	const char *value = std::getenv(name);
	if (!value)
		throw std::runtime_error(fmt::format("{} is not set (run through meson test)", name));
	return value;
}

/**
 * \brief A child process (argv[0] looked up in PATH) with stdout and stderr
 * appended to \a log (or captured, see run()). SIGTERM, then SIGKILL, when
 * destroyed.
 */
class Child
{
public:
	Child(const std::vector<std::string> &args, const std::string &log, int stdout_fd = -1)
	{
		std::vector<char *> argv;
		std::vector<std::string> copy = args;
		for (auto &a : copy)
			argv.push_back(a.data());
		argv.push_back(nullptr);
		const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (log_fd < 0)
			throw std::runtime_error("cannot open " + log);
		const pid_t parent = ::getpid();
		pid_ = ::fork();
		if (pid_ == 0) {
			/* Only async-signal-safe calls between fork and exec. */
			::prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (::getppid() != parent)
				::_exit(127);
			::dup2(stdout_fd >= 0 ? stdout_fd : log_fd, 1);
			::dup2(log_fd, 2);
			::execvp(argv[0], argv.data());
			::_exit(127);
		}
		::close(log_fd);
		if (pid_ < 0)
			throw std::runtime_error("fork failed");
	}

	~Child() { terminate(); }
	Child(const Child &) = delete;
	Child &operator=(const Child &) = delete;

	pid_t pid() const { return pid_; }
	bool running() { return !poll_exit(); }

	void signal(int sig)
	{
		if (running())
			::kill(pid_, sig);
	}

	/** \brief Wait up to \a timeout for the exit; its raw wait status. */
	std::optional<int> wait(std::chrono::milliseconds timeout)
	{
		const auto deadline = Clock::now() + timeout;
		while (!poll_exit()) {
			if (Clock::now() > deadline)
				return std::nullopt;
			std::this_thread::sleep_for(5ms);
		}
		return status_;
	}

	/** \brief SIGTERM, and SIGKILL if it is still there after 3 s. */
	void terminate()
	{
		if (pid_ <= 0 || poll_exit())
			return;
		::kill(pid_, SIGTERM);
		if (!wait(3000ms)) {
			::kill(pid_, SIGKILL);
			wait(3000ms);
		}
	}

	/** \brief SIGKILL and reap. */
	void kill()
	{
		if (pid_ <= 0 || poll_exit())
			return;
		::kill(pid_, SIGKILL);
		wait(3000ms);
	}

private:
	bool poll_exit()
	{
		if (status_)
			return true;
		int status;
		if (::waitpid(pid_, &status, WNOHANG) == pid_)
			status_ = status;
		return status_.has_value();
	}

	pid_t pid_ = -1;
	std::optional<int> status_;
};

/** \brief Run \a args to completion (at most \a timeout) and return its stdout. */
inline std::string run(const std::vector<std::string> &args, const std::string &log,
		       std::chrono::milliseconds timeout = 5000ms)
{
	int out[2];
	if (::pipe2(out, O_CLOEXEC))
		throw std::runtime_error("pipe");
	std::string text;
	{
		Child child(args, log, out[1]);
		::close(out[1]);
		const auto deadline = Clock::now() + timeout;
		char buf[65536];
		while (Clock::now() < deadline) {
			pollfd p{ out[0], POLLIN, 0 };
			if (::poll(&p, 1, 50) <= 0)
				continue;
			const ssize_t n = ::read(out[0], buf, sizeof(buf));
			if (n <= 0)
				break;
			text.append(buf, n);
		}
		::close(out[0]);
		const auto status = child.wait(1000ms);
		if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0)
			throw std::runtime_error(fmt::format("{} failed or timed out", args.front()));
	}
	return text;
}

/**
 * \brief Debian's pipewire + wireplumber on a private XDG_RUNTIME_DIR.
 */
class PipeWireSession
{
public:
	PipeWireSession()
	{
		char tmpl[] = "/tmp/vhost-sound-pw-XXXXXX";
		if (!::mkdtemp(tmpl))
			throw std::runtime_error("mkdtemp failed");
		dir_ = tmpl;
		for (const char *sub : { "run", "state", "config" })
			std::filesystem::create_directories(dir_ + "/" + sub);
		std::filesystem::permissions(dir_ + "/run", std::filesystem::perms::owner_all);
		/* Every client of this test, vhost-sound included, finds only this daemon. */
		::setenv("XDG_RUNTIME_DIR", (dir_ + "/run").c_str(), 1);
		::setenv("XDG_STATE_HOME", (dir_ + "/state").c_str(), 1);
		::setenv("XDG_CONFIG_HOME", (dir_ + "/config").c_str(), 1);
		::unsetenv("PIPEWIRE_RUNTIME_DIR");
		::unsetenv("PIPEWIRE_REMOTE");
		::unsetenv("DBUS_SESSION_BUS_ADDRESS");
		::setenv("WIREPLUMBER_CONFIG_DIR", (config_dir() + "/wireplumber").c_str(), 1);
		start();
	}

	~PipeWireSession()
	{
		stop();
		std::error_code ec;
		if (std::getenv("VHOST_SOUND_KEEP_PW_LOGS") == nullptr)
			std::filesystem::remove_all(dir_, ec);
	}

	PipeWireSession(const PipeWireSession &) = delete;
	PipeWireSession &operator=(const PipeWireSession &) = delete;

	/** \brief tests/pipewire in the source tree (configuration files). */
	static std::string config_dir() { return env_path("PIPEWIRE_TEST_CONFIG"); }

	const std::string &dir() const { return dir_; }
	std::string log_path() const { return dir_ + "/pipewire.log"; }

	/** \brief Start the daemon and the session manager; wait until streams can be linked. */
	void start()
	{
		daemon_ = std::make_unique<Child>(
			std::vector<std::string>{ "pipewire", "-c", config_dir() + "/pipewire.conf" }, log_path());
		/* Listening, not only there: a daemon killed by SIGKILL leaves its
		 * socket file behind, and a WirePlumber started against that one
		 * fails to connect and exits. */
		wait_until("the PipeWire socket to accept connections", 20s,
			   [&] { return sound_test::accepts_connections(dir_ + "/run/pipewire-0"); });
		manager_ = std::make_unique<Child>(
			std::vector<std::string>{ "wireplumber", "-c", "wireplumber.conf" }, dir_ + "/wireplumber.log");
		/* WirePlumber is ready when it has chosen the default sink and source
		 * (a generous 60 s: a restart beside a ThreadSanitizer build once
		 * took more than 20 s; the logs say what it was doing if not). */
		try {
			wait_until("WirePlumber's default sink and source", 60s, [&] {
				const auto d = dump();
				return default_node(d, "default.audio.sink") == "test-sink" &&
				       default_node(d, "default.audio.source") == "test-source";
			});
		} catch (const std::runtime_error &e) {
			throw std::runtime_error(std::string(e.what()) + "\n" + logs());
		}
	}

	/** \brief Stop both (SIGTERM, then SIGKILL). */
	void stop()
	{
		manager_.reset();
		daemon_.reset();
	}

	/** \brief The daemon dies at once (SIGKILL), like a crash; WirePlumber follows. */
	void kill_daemon()
	{
		daemon_->kill();
		manager_.reset();
		daemon_.reset();
	}

	/** \brief pw-dump's view of the graph. */
	nlohmann::json dump() const
	{
		return nlohmann::json::parse(run({ "pw-dump", "--no-colors" }, dir_ + "/clients.log"));
	}

	/** \brief The node objects of \a graph called \a name. */
	static std::vector<nlohmann::json> nodes(const nlohmann::json &graph, const std::string &name)
	{
		std::vector<nlohmann::json> found;
		for (const auto &o : graph) {
			if (o.value("type", "") != "PipeWire:Interface:Node")
				continue;
			const auto &props = o["info"]["props"];
			if (props.value("node.name", "") == name)
				found.push_back(o);
		}
		return found;
	}

	/**
	 * \brief Node ids linked to node \a id in \a graph: by links whose data
	 * flows ("active") or, unless \a active_only, by any link that is not
	 * in error (an inactive node's links stay "init").
	 */
	static std::vector<int> peers(const nlohmann::json &graph, int id, bool active_only = true)
	{
		std::vector<int> found;
		for (const auto &o : graph) {
			if (o.value("type", "") != "PipeWire:Interface:Link")
				continue;
			const auto &info = o["info"];
			const std::string state = info.value("state", "");
			if (active_only ? state != "active" : state == "error")
				continue;
			const int out = info.value("output-node-id", -1);
			const int in = info.value("input-node-id", -1);
			if (out == id)
				found.push_back(in);
			else if (in == id)
				found.push_back(out);
		}
		return found;
	}

	/** \brief True when exactly one node is called \a a, one \a b, and a link joins them
	 *  (see peers() for \a active_only). */
	static bool linked(const nlohmann::json &graph, const std::string &a, const std::string &b,
			   bool active_only = true)
	{
		const auto na = nodes(graph, a);
		const auto nb = nodes(graph, b);
		if (na.size() != 1 || nb.size() != 1)
			return false;
		const auto ids = peers(graph, na[0]["id"].get<int>(), active_only);
		return std::find(ids.begin(), ids.end(), nb[0]["id"].get<int>()) != ids.end();
	}

	/** \brief The node.name that \a key ("default.audio.sink") of the default metadata names. */
	static std::string default_node(const nlohmann::json &graph, const std::string &key)
	{
		for (const auto &o : graph) {
			if (o.value("type", "") != "PipeWire:Interface:Metadata" ||
			    o["props"].value("metadata.name", "") != "default" || !o.contains("metadata"))
				continue;
			for (const auto &entry : o["metadata"]) {
				if (entry.value("key", "") == key && entry["value"].is_object())
					return entry["value"].value("name", "");
			}
		}
		return {};
	}

	/** \brief Wait for \a ok (polled) for at most \a timeout; throws naming \a what. */
	static void wait_until(const std::string &what, std::chrono::milliseconds timeout,
			       const std::function<bool()> &ok)
	{
		const auto deadline = Clock::now() + timeout;
		while (true) {
			try {
				if (ok())
					return;
			} catch (const std::exception &) {
				/* pw-dump fails while the daemon starts: try again. */
			}
			if (Clock::now() > deadline)
				throw std::runtime_error("timed out waiting for " + what);
			std::this_thread::sleep_for(20ms);
		}
	}

	/** \brief The links (pw-link -l) and the last lines of the logs, for failure messages. */
	std::string logs() const
	{
		std::string text;
		try {
			text += "--- pw-link -l\n" + run({ "pw-link", "-l" }, dir_ + "/clients.log");
			for (const auto &o : dump()) {
				if (o.value("type", "") == "PipeWire:Interface:Link")
					text += fmt::format("link {} -> {}: {}\n", o["info"].value("output-node-id", -1),
							    o["info"].value("input-node-id", -1),
							    o["info"].value("state", "?"));
			}
		} catch (const std::exception &e) {
			text += fmt::format("--- pw-link -l: {}\n", e.what());
		}
		for (const char *name : { "pipewire.log", "wireplumber.log", "clients.log" }) {
			std::ifstream in(dir_ + "/" + name);
			std::stringstream ss;
			ss << in.rdbuf();
			std::string s = ss.str();
			if (s.size() > 2000)
				s = s.substr(s.size() - 2000);
			text += fmt::format("--- {}\n{}\n", name, s);
		}
		return text;
	}

private:
	std::string dir_;
	std::unique_ptr<Child> daemon_;
	std::unique_ptr<Child> manager_;
};

/** \brief Interleaved samples read from a WAV file pw-record wrote. */
struct Wav {
	uint16_t format = 0; /* 1 PCM, 3 IEEE float */
	uint16_t channels = 0;
	uint32_t rate = 0;
	uint16_t bits = 0;
	std::vector<uint8_t> data;
};

/**
 * \brief Read \a path. A data chunk whose size was never written (the
 * recorder was killed) runs to the end of the file.
 */
inline Wav read_wav(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
	auto u32 = [&](size_t at) {
		uint32_t v;
		std::memcpy(&v, bytes.data() + at, 4);
		return v;
	};
	auto u16 = [&](size_t at) {
		uint16_t v;
		std::memcpy(&v, bytes.data() + at, 2);
		return v;
	};
	if (bytes.size() < 12 || std::memcmp(bytes.data(), "RIFF", 4) || std::memcmp(bytes.data() + 8, "WAVE", 4))
		throw std::runtime_error(path + ": not a WAV file");
	Wav wav;
	size_t at = 12;
	while (at + 8 <= bytes.size()) {
		const uint32_t size = u32(at + 4);
		if (!std::memcmp(bytes.data() + at, "fmt ", 4) && at + 24 <= bytes.size()) {
			wav.format = u16(at + 8);
			wav.channels = u16(at + 10);
			wav.rate = u32(at + 12);
			wav.bits = u16(at + 22);
			if (wav.format == 0xfffe && size >= 40) /* WAVE_FORMAT_EXTENSIBLE: the sub-format */
				wav.format = u16(at + 32);
		} else if (!std::memcmp(bytes.data() + at, "data", 4)) {
			const size_t end = size == 0 || at + 8 + size > bytes.size() ? bytes.size() : at + 8 + size;
			wav.data.assign(bytes.begin() + at + 8, bytes.begin() + end);
			return wav;
		}
		at += 8 + size + (size & 1);
	}
	throw std::runtime_error(path + ": no data chunk");
}

/**
 * \brief pw-record, node \a name, on the monitor of \a sink (what the sink
 * plays), 48000 Hz stereo in \a format ("s16" or "f32"), into a WAV file.
 */
class MonitorRecorder
{
public:
	MonitorRecorder(PipeWireSession &session, const std::string &format, const std::string &name,
			const std::string &sink = "test-sink")
		: session_(session), path_(session.dir() + "/" + name + ".wav"), name_(name)
	{
		child_ = std::make_unique<Child>(
			std::vector<std::string>{ "pw-record", "--target", sink, "--rate", "48000",
						  "--channels", "2", "--format", format, "-P",
						  "{ stream.capture.sink = true node.name = " + name + " }", path_ },
			session.dir() + "/clients.log");
		/* Listening once linked to the sink's monitor. */
		PipeWireSession::wait_until(name + " linked to " + sink, 20s, [&] {
			return PipeWireSession::linked(session_.dump(), name_, sink);
		});
	}

	/** \brief What the file holds so far (pw-record writes as it goes). */
	Wav snapshot() const { return read_wav(path_); }

	/**
	 * \brief Wait (at most a generous 20 s) until what was recorded satisfies \a done:
	 * the graph hands the sink's last cycle to the recorder a cycle after
	 * the guest saw it consumed, and pw-record writes it later still.
	 */
	void wait_for(const std::function<bool(const Wav &)> &done) const
	{
		try {
			PipeWireSession::wait_until(name_ + " recording the expected samples", 20s,
						    [&] { return done(snapshot()); });
		} catch (const std::exception &) {
			/* The caller's checks on finish() say what is missing. */
		}
	}

	/** \brief Stop recording (SIGINT: pw-record closes the file) and read it. */
	Wav finish()
	{
		child_->signal(SIGINT);
		if (!child_->wait(5000ms))
			child_->kill();
		return read_wav(path_);
	}

private:
	PipeWireSession &session_;
	std::string path_;
	std::string name_;
	std::unique_ptr<Child> child_;
};

/**
 * \brief pw-cat playing the WAV file \a path, as node \a name, into the
 * input ports of the virtual source \a source until destroyed. The session
 * manager only links playback streams to sinks, so the player is started
 * unlinked (--target 0) and linked with pw-link.
 */
class Player
{
public:
	Player(PipeWireSession &session, const std::string &path, const std::string &name,
	       const std::string &source)
	{
		const std::string log = session.dir() + "/clients.log";
		child_ = std::make_unique<Child>(
			std::vector<std::string>{ "pw-cat", "--playback", "--target", "0", "-P",
						  "{ node.name = " + name + " }", path },
			log);
		for (const char *channel : { "FL", "FR" }) {
			const std::string from = name + ":output_" + channel;
			const std::string to = source + ":input_" + channel;
			PipeWireSession::wait_until(from + " linked to " + to, 20s, [&] {
				run({ "pw-link", from, to }, log);
				return true;
			});
		}
		PipeWireSession::wait_until(name + " linked to " + source, 20s, [&] {
			return PipeWireSession::linked(session.dump(), name, source);
		});
	}

private:
	std::unique_ptr<Child> child_;
};

} // namespace pipewire_test
