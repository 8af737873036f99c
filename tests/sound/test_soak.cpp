/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The soak test: the real daemon (file back-end, a looping non-silent
 * input) under everything a host and a guest do to it at once, for
 * VHOSTPP_SOAK_SECONDS (60 by default; CI runs that):
 *
 *   - the guest plays and records continuously (10 ms periods);
 *   - a host user toggles output and input every 200 ms on the control socket;
 *   - a WATCH client reads every event;
 *   - the guest pauses the VM (both rings stopped with GET_VRING_BASE, then
 *     restarted from the bases) every 700 ms;
 *   - the guest disconnects and reconnects every 3 s, every other time
 *     without STOP/RELEASE (as a killed QEMU).
 *
 * It asserts that every buffer the guest queued came back exactly once (a
 * second completion of a head is a failure, and after an orderly RELEASE
 * none is missing), that every RX period filled entirely while input was
 * off is silence, and that the daemon's fds, mappings and threads are back
 * to their starting values (after a first guest connection: the output
 * file stays open) and its RSS within 4 MiB of it at the end.
 */
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include <vhostpp/frontend/device_driver.h>

#include "audio/file/wav.h"
#include "daemon_process.h"
#include "linux_driver.h"
#include "socket_client.h"

using namespace sound_test;
namespace vs = vhost_sound::virtio_snd;
using Clock = std::chrono::steady_clock;

namespace {

/* What /proc says about a process. */
struct Resources {
	std::vector<std::string> fd_targets;
	size_t fds = 0;
	size_t maps = 0;
	size_t threads = 0;
	size_t rss_kib = 0;
	double cpu_s = 0;
};

Resources resources(pid_t pid)
{
	namespace fs = std::filesystem;
	const std::string proc = "/proc/" + std::to_string(pid);
	Resources r;
	std::error_code ec;
	for (const auto &e : fs::directory_iterator(proc + "/fd")) {
		r.fd_targets.push_back(fs::read_symlink(e.path(), ec).string());
		r.fds++;
	}
	std::sort(r.fd_targets.begin(), r.fd_targets.end());
	for ([[maybe_unused]] const auto &e : fs::directory_iterator(proc + "/task"))
		r.threads++;
	std::ifstream maps(proc + "/maps");
	for (std::string line; std::getline(maps, line);)
		r.maps++;
	std::ifstream status(proc + "/status");
	for (std::string line; std::getline(status, line);)
		if (line.rfind("VmRSS:", 0) == 0)
			r.rss_kib = std::stoul(line.substr(6));
	std::ifstream stat(proc + "/stat");
	std::string all((std::istreambuf_iterator<char>(stat)), {});
	/* utime and stime: fields 14 and 15, counted after the ")" of comm. */
	std::istringstream rest(all.substr(all.rfind(')') + 2));
	std::string field;
	unsigned long long ticks = 0;
	for (int i = 3; i <= 15 && rest >> field; i++)
		if (i >= 14)
			ticks += std::stoull(field);
	r.cpu_s = double(ticks) / double(::sysconf(_SC_CLK_TCK));
	return r;
}

std::string describe(const Resources &r)
{
	return fmt::format("{} fds, {} mappings, {} threads, RSS {} KiB, CPU {:.2f} s", r.fds, r.maps, r.threads,
			   r.rss_kib, r.cpu_s);
}

/* Times when input was off, as the host user saw it: from the OK of
 * "SET input off" to just before "SET input on" was sent. */
class OffWindows
{
public:
	void off(Clock::time_point t)
	{
		std::lock_guard lock(mutex_);
		open_ = t;
	}
	void on(Clock::time_point t)
	{
		std::lock_guard lock(mutex_);
		if (open_)
			windows_.emplace_back(*open_, t);
		open_.reset();
	}
	/* True when [from, to] lies inside one window (or in the open one). */
	bool covers(Clock::time_point from, Clock::time_point to)
	{
		std::lock_guard lock(mutex_);
		if (open_ && *open_ <= from)
			return true;
		for (const auto &[a, b] : windows_)
			if (a <= from && to < b)
				return true;
		return false;
	}

private:
	std::mutex mutex_;
	std::optional<Clock::time_point> open_;
	std::vector<std::pair<Clock::time_point, Clock::time_point>> windows_;
};

struct Totals {
	size_t connections = 0;
	size_t abrupt = 0;
	size_t pauses = 0;
	size_t tx_queued = 0, tx_returned = 0;
	size_t rx_queued = 0, rx_returned = 0;
	size_t rx_checked_silent = 0, rx_with_sound = 0;
};

/* A VM pause and resume of ring \a index, as QEMU's stop/cont. */
void pause_and_resume(vhostpp::DeviceDriver &driver, uint32_t index)
{
	auto &fe = driver.frontend();
	auto &q = driver.queue(index);
	fe.set_vring_enable(index, false);
	const uint32_t base = fe.get_vring_base(index);
	fe.set_vring_num(index, q.size());
	fe.set_vring_base(index, base);
	fe.set_vring_addr(q.addresses());
	fe.set_vring_kick(index, &q.kick_fd());
	fe.set_vring_enable(index, true);
}

/* One guest connection of \a seconds: play and record, pausing the VM
 * every 700 ms; \a orderly ends it with STOP and RELEASE. */
void one_connection(const std::string &sock, double seconds, bool orderly, OffWindows &off, Totals &t)
{
	vhostpp::DeviceDriver driver(sock, sound_driver_options());
	SoundDriver snd(driver);
	PcmConfig config;
	config.period_bytes = 1920; /* 10 ms */
	config.buffer_bytes = 4 * 1920;
	LinuxPcm out(snd, 0, vs::Direction::Output, config);
	LinuxPcm in(snd, 1, vs::Direction::Input, config);
	std::vector<Clock::time_point> rx_queued_at(in.periods_per_buffer());
	out.setup();
	in.setup();
	for (size_t i = 0; i < out.periods_per_buffer(); i++)
		std::memset(snd.memory().at(out.period_gpa(i), config.period_bytes).data(), 0x11, config.period_bytes);
	out.queue_all();
	for (size_t i = 0; i < in.periods_per_buffer(); i++)
		rx_queued_at[i] = Clock::now();
	in.queue_all();
	t.tx_queued += out.periods_per_buffer();
	t.rx_queued += in.periods_per_buffer();
	REQUIRE(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
	REQUIRE(snd.pcm(vs::kPcmStart, 1) == vs::kStatusOk);

	PcmRun out_run, in_run;
	const auto end = Clock::now() + std::chrono::duration<double>(seconds);
	auto next_pause = Clock::now() + std::chrono::milliseconds(700);
	while (Clock::now() < end) {
		bool progress = false;
		/* poll_completion() throws on a head that is not in flight: a
		 * buffer completed twice fails the test here. */
		if (const auto slot = out.poll_completion(out_run)) {
			t.tx_returned++;
			out.queue_slot(*slot);
			out.kick();
			t.tx_queued++;
			progress = true;
		}
		if (const auto slot = in.poll_completion(in_run)) {
			const auto now = Clock::now();
			t.rx_returned++;
			const auto area = snd.memory().at(in.period_gpa(*slot), config.period_bytes);
			const bool silent = std::all_of(area.begin(), area.end(), [](uint8_t b) { return b == 0; });
			if (off.covers(rx_queued_at[*slot], now)) {
				INFO("RX period queued and completed while input was off");
				REQUIRE(silent);
				t.rx_checked_silent++;
			}
			t.rx_with_sound += !silent;
			rx_queued_at[*slot] = Clock::now();
			in.queue_slot(*slot);
			in.kick();
			t.rx_queued++;
			progress = true;
		}
		if (Clock::now() >= next_pause) {
			pause_and_resume(driver, vs::kTxQueue);
			pause_and_resume(driver, vs::kRxQueue);
			t.pauses++;
			next_pause = Clock::now() + std::chrono::milliseconds(700);
		}
		if (!progress)
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}
	for (const auto &status : out_run.statuses)
		REQUIRE(status == vs::kStatusOk);
	for (const auto &status : in_run.statuses)
		REQUIRE(status == vs::kStatusOk);
	t.connections++;
	if (!orderly) {
		t.abrupt++;
		/* The guest is gone: what it had queued is not owed to anyone. */
		t.tx_queued -= out.in_flight();
		t.rx_queued -= in.in_flight();
		return;
	}
	const size_t out_held = out.in_flight(), in_held = in.in_flight();
	out.finish(out_run);
	in.finish(in_run);
	CHECK(out_run.stop_status == vs::kStatusOk);
	CHECK(in_run.release_status == vs::kStatusOk);
	/* RELEASE returned every held buffer, each once. */
	REQUIRE(out.in_flight() == 0);
	REQUIRE(in.in_flight() == 0);
	t.tx_returned += out_held;
	t.rx_returned += in_held;
}

/* Wait (up to 5 s) until STATUS on \a probe says no guest is connected:
 * the daemon has dropped the last connection and what it held. */
void guest_gone(LineClient &probe)
{
	for (int i = 0; i < 500; i++) {
		const std::string reply = probe.ask("STATUS");
		REQUIRE(reply.rfind("OK ", 0) == 0);
		if (!nlohmann::json::parse(reply.substr(3))["guest"]["connected"].get<bool>())
			return;
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
	FAIL("the daemon still reports a guest 5 s after it disconnected");
}

std::vector<uint8_t> loud_wav()
{
	namespace wav = vhost_sound::wav;
	const wav::WavFormat format{ vs::kFmtS16, 48000, 2 };
	std::vector<uint8_t> file = wav::make_wav_header(format, 48000 * 4);
	for (int i = 0; i < 48000 * 2; i++) {
		const int16_t sample = int16_t(1000 + (i % 200));
		file.push_back(uint8_t(sample & 0xff));
		file.push_back(uint8_t(sample >> 8));
	}
	return file;
}

} // namespace

TEST_CASE("soak: play, record, toggles, WATCH, VM pauses and reconnects; nothing lost, nothing leaked", "[soak][process]")
{
	const char *env = std::getenv("VHOSTPP_SOAK_SECONDS");
	const double seconds = env ? std::stod(env) : 60;
	TempDir dir;
	const std::string sock = dir.path + "/snd.sock", ctl = dir.path + "/snd.ctl";
	const std::string input = dir.path + "/in.wav";
	{
		const auto bytes = loud_wav();
		std::ofstream(input, std::ios::binary).write(reinterpret_cast<const char *>(bytes.data()),
							      std::streamsize(bytes.size()));
	}
	DaemonProcess daemon({ "--socket", sock, "--control-socket", ctl, "--backend", "file", "--input-file", input,
			       "--input-loop", "--output-file", dir.path + "/out.wav", "--initial-streams",
			       "output,input", "--log-level", "warn" });
	REQUIRE(query_when_up(ctl));
	/* The starting values: after one guest has played and recorded, since
	 * the file back-end keeps its output file open from the first playback
	 * on (one recording across connections), and after the daemon has
	 * closed query_when_up()'s connection. */
	OffWindows off;
	{
		Totals warm_up;
		one_connection(sock, 1.0, true, off, warm_up);
	}
	/* Open for the whole test, so it counts in both readings. */
	LineClient probe(ctl);
	guest_gone(probe);
	const Resources before = resources(daemon.pid());

	std::atomic<bool> stop{ false };
	size_t toggles = 0, events = 0;
	std::string host_error;
	std::thread host([&] {
		try {
			LineClient user(ctl);
			bool input_on = true;
			while (!stop) {
				if (input_on) {
					if (user.ask("SET input off") != "OK input off")
						throw std::runtime_error("SET input off refused");
					off.off(Clock::now());
				} else {
					off.on(Clock::now());
					if (user.ask("SET input on") != "OK input on")
						throw std::runtime_error("SET input on refused");
				}
				input_on = !input_on;
				if (user.ask("TOGGLE output").rfind("OK output ", 0) != 0)
					throw std::runtime_error("TOGGLE output refused");
				toggles++;
				std::this_thread::sleep_for(std::chrono::milliseconds(200));
			}
			off.on(Clock::now()); /* closes the window if input was left off */
		} catch (const std::exception &e) {
			host_error = e.what();
		}
	});
	std::thread watcher([&] {
		try {
			LineClient watch(ctl);
			if (watch.ask("WATCH") != "OK watching")
				throw std::runtime_error("WATCH refused");
			while (!stop) {
				const auto line = watch.line(100);
				if (!line)
					continue;
				if (nlohmann::json::parse(*line).at("schema") != 1)
					throw std::runtime_error("event without schema 1: " + *line);
				events++;
			}
		} catch (const std::exception &e) {
			host_error = e.what();
		}
	});

	Totals t;
	const auto end = Clock::now() + std::chrono::duration<double>(seconds);
	try {
		for (bool orderly = true; Clock::now() < end; orderly = !orderly) {
			const double left = std::chrono::duration<double>(end - Clock::now()).count();
			one_connection(sock, std::min(3.0, std::max(left, 0.5)), orderly, off, t);
		}
	} catch (...) {
		stop = true;
		host.join();
		watcher.join();
		throw;
	}
	stop = true;
	host.join();
	watcher.join();
	CHECK(host_error.empty());
	INFO(host_error);

	/* The daemon has dropped the last guest; the host clients' sockets may
	 * take it a moment longer: a generous 5 s for the fd count. */
	guest_gone(probe);
	Resources after = resources(daemon.pid());
	for (int i = 0; i < 500 && after.fds != before.fds; i++) {
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
		after = resources(daemon.pid());
	}
	std::cout << "soak: fds before: " << fmt::format("{}", fmt::join(before.fd_targets, " ")) << "\n";
	std::cout << "soak: fds after: " << fmt::format("{}", fmt::join(after.fd_targets, " ")) << "\n";
	std::cout << fmt::format("soak: {:.0f} s, {} connections ({} without RELEASE), {} VM pauses, {} host toggles, "
				 "{} WATCH events\n",
				 seconds, t.connections, t.abrupt, t.pauses, toggles, events)
		  << fmt::format("soak: TX {} queued {} returned, RX {} queued {} returned; {} RX periods checked "
				 "silent while input was off, {} with sound\n",
				 t.tx_queued, t.tx_returned, t.rx_queued, t.rx_returned, t.rx_checked_silent,
				 t.rx_with_sound)
		  << "soak: daemon before: " << describe(before) << "\n"
		  << "soak: daemon after:  " << describe(after) << "\n";

	CHECK(t.tx_returned == t.tx_queued);
	CHECK(t.rx_returned == t.rx_queued);
	/* The checks had something to check. */
	CHECK(t.connections >= 2);
	CHECK(t.pauses >= 1);
	CHECK(t.rx_checked_silent > 0);
	CHECK(t.rx_with_sound > 0);
	CHECK(events > 0);
	INFO("fds before: " << fmt::format("{}", fmt::join(before.fd_targets, ", ")));
	INFO("fds after: " << fmt::format("{}", fmt::join(after.fd_targets, ", ")));
	CHECK(after.fds == before.fds);
	CHECK(after.maps == before.maps);
	CHECK(after.threads == before.threads);
	CHECK(after.rss_kib <= before.rss_kib + 4096);

	daemon.signal(SIGTERM);
	CHECK(daemon.wait() == 0);
}
