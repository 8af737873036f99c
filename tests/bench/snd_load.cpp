/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file snd_load.cpp
 * \brief snd-load: a guest's load on any vhost-user sound daemon, measured
 * as the guest feels it.
 *
 * It connects to a daemon's socket as QEMU does and drives one PCM stream
 * as Linux's virtio-snd driver does under aplay / arecord (the front-end
 * library, through tests/sound/linux_driver.h): SET_PARAMS, PREPARE, the
 * whole ring buffer queued as one indirect chain per period, START, each
 * period re-queued the moment it completes. It prints the pacing error
 * (wall time against audio time), the interval between completions (p50,
 * p99, max, in ms and relative to the period), the latency_bytes the device
 * reports, and from /proc/PID the daemon's CPU seconds per minute of audio,
 * its context switches per second and its RSS.
 *
 * Targets are daemons it spawns (--daemon 'CMD ... {socket}', repeatable,
 * {socket} replaced by a fresh path) or one already running (--socket PATH
 * [--pid PID]). Several targets run one after another in the same run and
 * a last table puts them side by side.
 *
 * Usage: snd-load (--daemon CMD)... | --socket PATH [--pid PID]
 *        [--seconds N] [--rate HZ] [--format s16|s24|s32|float|u8]
 *        [--channels N] [--period-ms MS] [--periods N] [--mode play|capture]
 *        [--loopback]
 */
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_process.h"
#include "bench_util.h"
#include "linux_driver.h"
#include "proc_stats.h"

using namespace vhostpp::bench;
namespace vs = vhost_sound::virtio_snd;

namespace {

struct Options {
	double seconds = 10;
	unsigned rate = 48000;
	std::string format = "s16";
	unsigned channels = 2;
	double period_ms = 10;
	unsigned periods = 4;
	std::string mode = "play";
	bool loopback = false;
};

struct Target {
	std::string label;
	std::string command; /* empty: an already running daemon */
	std::string socket;
	int pid = 0;
};

struct Figures {
	bool ok = false;
	std::string error;
	double startup_ms = -1;
	double audio_s = 0;
	double wall_s = 0;
	double pacing_pct = 0;	/* (wall - audio) / audio, from first to last completion */
	double p50_ms = 0, p99_ms = 0, max_ms = 0;
	double period_ms = 0;
	uint32_t latency_min = 0, latency_max = 0;
	double cpu_per_audio_min = -1;
	double vol_per_s = -1, invol_per_s = -1;
	long rss_anon = -1, rss_file = -1, threads = -1;
};

std::optional<uint8_t> rate_code(unsigned hz)
{
	const std::pair<unsigned, uint8_t> table[] = {
		{5512, vs::kRate5512},	   {8000, vs::kRate8000},     {11025, vs::kRate11025},
		{16000, vs::kRate16000},   {22050, vs::kRate22050},   {32000, vs::kRate32000},
		{44100, vs::kRate44100},   {48000, vs::kRate48000},   {64000, vs::kRate64000},
		{88200, vs::kRate88200},   {96000, vs::kRate96000},   {176400, vs::kRate176400},
		{192000, vs::kRate192000}, {384000, vs::kRate384000},
	};
	for (auto [h, c] : table)
		if (h == hz)
			return c;
	return std::nullopt;
}

/* virtio format code and bytes per sample */
std::optional<std::pair<uint8_t, unsigned>> format_code(const std::string &f)
{
	if (f == "u8")
		return std::pair<uint8_t, unsigned>{vs::kFmtU8, 1};
	if (f == "s16")
		return std::pair<uint8_t, unsigned>{vs::kFmtS16, 2};
	if (f == "s24")
		return std::pair<uint8_t, unsigned>{vs::kFmtS24, 4};
	if (f == "s32")
		return std::pair<uint8_t, unsigned>{vs::kFmtS32, 4};
	if (f == "float")
		return std::pair<uint8_t, unsigned>{vs::kFmtFloat, 4};
	return std::nullopt;
}

Figures measure(Target &t, const Options &o)
{
	Figures fig;
	auto rate = rate_code(o.rate);
	auto format = format_code(o.format);
	if (!rate || !format) {
		fig.error = "unsupported --rate or --format";
		return fig;
	}
	const unsigned frame = format->second * o.channels;
	const unsigned period_frames =
		std::max(1u, static_cast<unsigned>(std::lround(o.period_ms * o.rate / 1000.0)));
	sound_test::PcmConfig cfg;
	cfg.format = format->first;
	cfg.rate = *rate;
	cfg.channels = static_cast<uint8_t>(o.channels);
	cfg.period_bytes = period_frames * frame;
	cfg.buffer_bytes = cfg.period_bytes * o.periods;
	fig.period_ms = period_frames * 1000.0 / o.rate;

	std::unique_ptr<Spawned> child;
	try {
		double t0 = now_s();
		if (!t.command.empty()) {
			child = std::make_unique<Spawned>(t.command);
			t.socket = child->socket();
			t.pid = child->pid();
		}
		auto options = sound_test::sound_driver_options();
		options.memory_size = std::max<size_t>(16 << 20, cfg.buffer_bytes * 2 + (1 << 20));
		vhostpp::DeviceDriver driver(t.socket, options);
		fig.startup_ms = child ? (now_s() - t0) * 1e3 : -1;
		sound_test::SoundDriver snd(driver);
		auto config = snd.read_config();
		auto infos = snd.query<vs::PcmInfo>(vs::kPcmInfo, 0, config.streams);
		const auto want = o.mode == "capture" ? vs::Direction::Input : vs::Direction::Output;
		std::optional<uint32_t> stream;
		for (uint32_t i = 0; i < infos.size(); i++)
			if (infos[i].direction == static_cast<uint8_t>(want)) {
				stream = i;
				break;
			}
		if (!stream)
			throw std::runtime_error(std::string("no ") + std::string(vs::direction_name(want)) +
						 " stream");

		sound_test::LinuxPcm pcm(snd, *stream, want, cfg);
		const size_t total = std::max<size_t>(
			2, static_cast<size_t>(o.seconds * 1000.0 / fig.period_ms + 0.5));
		pcm.setup();
		if (want == vs::Direction::Output)
			std::memset(snd.memory().at(pcm.dma_gpa(), cfg.buffer_bytes).data(), 0,
				    cfg.buffer_bytes);
		pcm.queue_all();
		ProcStats before = t.pid ? read_proc(t.pid) : ProcStats{};
		sound_test::PcmRun run;
		std::vector<double> stamps;
		stamps.reserve(total);
		double start = now_s();
		if (snd.pcm(vs::kPcmStart, *stream) != vs::kStatusOk)
			throw std::runtime_error("PCM_START refused");
		for (size_t done = 0; done < total; done++) {
			size_t slot = pcm.wait_completion(run, 2000);
			stamps.push_back(now_s());
			if (done + 1 < total) {
				pcm.queue_slot(slot);
				pcm.kick();
			}
		}
		double end = now_s();
		ProcStats after = t.pid ? read_proc(t.pid) : ProcStats{};
		pcm.finish(run);

		fig.audio_s = static_cast<double>(total) * fig.period_ms / 1e3;
		fig.wall_s = end - start;
		/* The slope from the first to the last completion: the start-up
		 * offset (a buffer's worth queued at once) does not count. */
		double span = stamps.back() - stamps.front();
		double audio_span = static_cast<double>(stamps.size() - 1) * fig.period_ms / 1e3;
		fig.pacing_pct = (span - audio_span) / audio_span * 100.0;
		std::vector<double> gaps;
		for (size_t i = 1; i < stamps.size(); i++)
			gaps.push_back((stamps[i] - stamps[i - 1]) * 1e3);
		fig.p50_ms = percentile(gaps, 50);
		fig.p99_ms = percentile(gaps, 99);
		fig.max_ms = percentile(gaps, 100);
		if (!run.latencies.empty()) {
			fig.latency_min = *std::min_element(run.latencies.begin(), run.latencies.end());
			fig.latency_max = *std::max_element(run.latencies.begin(), run.latencies.end());
		}
		if (before.valid && after.valid) {
			fig.cpu_per_audio_min = (after.cpu_s - before.cpu_s) / fig.audio_s * 60.0;
			fig.vol_per_s = (after.voluntary - before.voluntary) / fig.wall_s;
			fig.invol_per_s = (after.involuntary - before.involuntary) / fig.wall_s;
			fig.rss_anon = after.rss_anon_kib;
			fig.rss_file = after.rss_file_kib;
			fig.threads = after.threads;
		}
		fig.ok = true;
	} catch (const std::exception &e) {
		fig.error = e.what();
	}
	child.reset();
	return fig;
}

void print(const Target &t, const Figures &f)
{
	std::printf("== %s\n", t.label.c_str());
	if (!f.ok) {
		std::printf("  FAILED: %s\n", f.error.c_str());
		return;
	}
	if (f.startup_ms >= 0)
		std::printf("  start-up to first reply: %.1f ms\n", f.startup_ms);
	std::printf("  audio %.3f s, wall %.3f s, pacing error %+.3f %%\n", f.audio_s, f.wall_s,
		    f.pacing_pct);
	std::printf("  completion interval: p50 %.3f ms (%.2fx period), p99 %.3f ms (%.2fx, %+.3f "
		    "ms), max %.3f ms (%.2fx); period %.3f ms\n",
		    f.p50_ms, f.p50_ms / f.period_ms, f.p99_ms, f.p99_ms / f.period_ms,
		    f.p99_ms - f.period_ms, f.max_ms, f.max_ms / f.period_ms, f.period_ms);
	std::printf("  latency_bytes reported: min %u max %u\n", f.latency_min, f.latency_max);
	if (f.cpu_per_audio_min >= 0)
		std::printf("  daemon: %.3f CPU s per audio minute, %.1f voluntary + %.1f involuntary "
			    "ctx switches/s, RSS anon %ld KiB file %ld KiB, %ld threads\n",
			    f.cpu_per_audio_min, f.vol_per_s, f.invol_per_s, f.rss_anon, f.rss_file,
			    f.threads);
	else
		std::printf("  daemon: no /proc figures (give --pid)\n");
}

} // namespace

int main(int argc, char **argv)
{
	if (has_flag(argc, argv, "--help") || argc < 2) {
		std::printf("usage: snd-load (--daemon 'CMD ... {socket}')... | --socket PATH [--pid "
			    "PID]\n"
			    "       [--seconds N] [--rate HZ] [--format s16|s24|s32|float|u8] "
			    "[--channels N]\n"
			    "       [--period-ms MS] [--periods N] [--mode play|capture] [--loopback]\n");
		return argc < 2 ? 2 : 0;
	}
	Options o;
	o.seconds = num_arg(argc, argv, "--seconds", o.seconds);
	o.rate = static_cast<unsigned>(num_arg(argc, argv, "--rate", o.rate));
	o.format = arg(argc, argv, "--format", o.format);
	o.channels = static_cast<unsigned>(num_arg(argc, argv, "--channels", o.channels));
	o.period_ms = num_arg(argc, argv, "--period-ms", o.period_ms);
	o.periods = static_cast<unsigned>(num_arg(argc, argv, "--periods", o.periods));
	o.mode = arg(argc, argv, "--mode", o.mode);
	o.loopback = has_flag(argc, argv, "--loopback");
	if (o.mode != "play" && o.mode != "capture") {
		std::fprintf(stderr, "--mode: play or capture, not %s\n", o.mode.c_str());
		return 2;
	}
	if (o.periods < 2 || o.channels < 1 || o.period_ms <= 0 || o.seconds <= 0) {
		std::fprintf(stderr, "--periods >= 2, --channels >= 1, --period-ms and --seconds > 0\n");
		return 2;
	}

	std::vector<Target> targets;
	for (int i = 1; i + 1 < argc; i++) {
		if (std::strcmp(argv[i], "--daemon") == 0) {
			Target t;
			t.command = argv[++i];
			std::string first = t.command.substr(0, t.command.find(' '));
			t.label = std::filesystem::path(first).filename().string() + ": " + t.command;
			targets.push_back(t);
		}
	}
	std::string socket = arg(argc, argv, "--socket");
	if (!socket.empty()) {
		Target t;
		t.socket = socket;
		t.pid = static_cast<int>(num_arg(argc, argv, "--pid", 0));
		t.label = "socket " + socket;
		targets.push_back(t);
	}
	if (targets.empty()) {
		std::fprintf(stderr, "snd-load: give --daemon CMD or --socket PATH\n");
		return 2;
	}

	print_machine();
	std::printf("snd-load: %s %.1f s, %u Hz %s x%u, period %.3f ms x %u\n", o.mode.c_str(),
		    o.seconds, o.rate, o.format.c_str(), o.channels, o.period_ms, o.periods);
	if (o.loopback)
		std::printf("loopback: not measured (no host loopback path is set up by snd-load; "
			    "see BENCHMARKS.md)\n");
	std::vector<Figures> all;
	bool ok = true;
	for (auto &t : targets) {
		all.push_back(measure(t, o));
		print(t, all.back());
		ok = ok && all.back().ok;
		std::fflush(stdout);
	}
	if (targets.size() > 1) {
		std::printf("side by side (ratio to the first target):\n");
		std::printf("  %-40s %9s %9s %9s %11s %9s\n", "target", "pacing %", "p99 ms", "max ms",
			    "CPU s/min", "RSS anon");
		for (size_t i = 0; i < targets.size(); i++) {
			const auto &f = all[i];
			std::string label = targets[i].label.substr(0, 40);
			if (!f.ok) {
				std::printf("  %-40s FAILED\n", label.c_str());
				continue;
			}
			std::printf("  %-40s %+9.3f %9.3f %9.3f %11.3f %9ld", label.c_str(),
				    f.pacing_pct, f.p99_ms, f.max_ms, f.cpu_per_audio_min, f.rss_anon);
			if (i > 0 && all[0].ok && all[0].cpu_per_audio_min > 0)
				std::printf("  (CPU %.2fx)", f.cpu_per_audio_min / all[0].cpu_per_audio_min);
			std::printf("\n");
		}
	}
	return ok ? 0 : 1;
}
