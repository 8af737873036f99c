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
 * --loopback: the round trip of an impulse from the guest's TX to its RX
 * through whatever loopback the host has between the daemon's playback and
 * capture (tests/bench/loopback.sh sets one up). The output stream plays
 * silence with a one-frame impulse (half full scale) every 0.5 s while the
 * input stream, started right after it, captures. Each impulse is reported
 * twice: in stream position, the frame where it appears in RX minus the
 * frame where it was in TX, both counted from START (what an application
 * that plays and records at once sees if both streams started together);
 * and in time, the guest's round trip: from the moment its TX pointer
 * passed the impulse (the completion of the period that held it, less the
 * frames after it) to the completion of the RX period that holds it. The
 * target (2 periods + 5 ms) is for the latter: the position figure is 0
 * for a host that starts both streams in one cycle of a graph whose monitor
 * hands a cycle's output back in that same cycle, and is off by any delay
 * between the two streams' starts.
 *
 * Targets are daemons it spawns (--daemon 'CMD ... {socket}', repeatable,
 * {socket} replaced by a fresh path) or one already running (--socket PATH
 * [--pid PID]). Several targets run one after another in the same run and
 * a last table puts them side by side.
 *
 * --label NAME and --setup CMD apply to the next --daemon: its name in the
 * tables, and a shell command run once the daemon answers, before the
 * stream is set up ({socket}, {dir}, {pid} replaced; it must exit 0), e.g.
 * `vhostctl --socket {dir}/ctl set output off` for a daemon started with
 * `--control-socket {dir}/ctl`.
 *
 * Usage: snd-load ([--label NAME] [--setup CMD] --daemon CMD)...
 *        | --socket PATH [--pid PID]
 *        [--seconds N] [--rate HZ] [--format s16|s24|s32|float|u8]
 *        [--channels N] [--period-ms MS] [--periods N] [--mode play|capture]
 *        [--loopback] [--also-pid PID]...
 */
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <atomic>
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
	/* --also-pid: host processes the daemon's work costs too (a PipeWire
	 * daemon, its session manager), their CPU reported beside its own. */
	std::vector<int> also_pids;
};

struct Target {
	std::string label;
	std::string command; /* empty: an already running daemon */
	std::string setup;   /* shell command once it answers, or empty */
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
	double also_cpu_per_audio_min = -1;	/* the --also-pid processes together */
	double vol_per_s = -1, invol_per_s = -1;
	long rss_anon = -1, rss_file = -1, threads = -1;
	/* --loopback */
	std::string loopback_error;		/* why there is no figure, or empty */
	size_t impulses_sent = 0;
	std::vector<long> round_trip_frames;	/* RX frame - TX frame, per impulse found */
	std::vector<double> round_trip_ms;	/* guest's round trip in time, per impulse found */
	double start_skew_ms = 0;		/* input's START reply after output's */
};

/* Impulses: one frame every kImpulseSpacing s from kImpulseFirst s on; one
 * is looked for in RX from kImpulseEarly s before its TX position to the
 * next one's window, so round trips from -0.1 s to 0.4 s are told apart. */
constexpr double kImpulseFirst = 0.2;
constexpr double kImpulseSpacing = 0.5;
constexpr double kImpulseEarly = 0.1;

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

/** \brief Write a sample of \a value (-1..1) in format \a f at \a p. */
void put_sample(const std::string &f, uint8_t *p, double value)
{
	if (f == "s16") {
		const int16_t v = static_cast<int16_t>(std::lround(value * 32767));
		std::memcpy(p, &v, 2);
	} else if (f == "s24" || f == "s32") {
		const int32_t v = static_cast<int32_t>(std::lround(value * (f == "s24" ? 8388607.0 : 2147483647.0)));
		std::memcpy(p, &v, 4);
	} else if (f == "float") {
		const float v = static_cast<float>(value);
		std::memcpy(p, &v, 4);
	}
}

/** \brief The sample in format \a f at \a p, as -1..1. */
double get_sample(const std::string &f, const uint8_t *p)
{
	if (f == "s16") {
		int16_t v;
		std::memcpy(&v, p, 2);
		return v / 32768.0;
	}
	if (f == "s24") {
		int32_t v;
		std::memcpy(&v, p, 4);
		v = static_cast<int32_t>(static_cast<uint32_t>(v) << 8) >> 8; /* 24 bits, sign-extended */
		return v / 8388608.0;
	}
	if (f == "s32") {
		int32_t v;
		std::memcpy(&v, p, 4);
		return v / 2147483648.0;
	}
	float v;
	std::memcpy(&v, p, 4);
	return v;
}

/** \brief Run \a command in a shell; throws with its output unless it exits 0. */
void run_setup(const std::string &command)
{
	FILE *p = ::popen((command + " 2>&1").c_str(), "r");
	if (!p)
		throw std::runtime_error("cannot run --setup: " + command);
	std::string out;
	char buf[256];
	while (std::fgets(buf, sizeof buf, p))
		out += buf;
	const int status = ::pclose(p);
	if (status != 0)
		throw std::runtime_error("--setup failed (" + command + "): " + out);
}

/**
 * \brief The guest's capture side of --loopback: a thread that keeps every
 * period of the input stream queued and keeps what it captured, until
 * stop() (it ends at the next completion) or a completion is 2 s late.
 */
class Recorder
{
public:
	Recorder(sound_test::LinuxPcm &pcm, vhostpp::DriverMemory &memory, uint32_t period_bytes)
		: pcm_(pcm), memory_(memory), period_bytes_(period_bytes)
	{
	}
	~Recorder() { stop(); }

	void start()
	{
		thread_ = std::thread([this] {
			try {
				while (!stop_) {
					const size_t slot = pcm_.wait_completion(run_, 2000);
					const auto area = memory_.at(pcm_.period_gpa(slot), period_bytes_);
					stamps_.push_back(now_s());
					captured_.insert(captured_.end(), area.begin(), area.end());
					if (!stop_) {
						pcm_.queue_slot(slot);
						pcm_.kick();
					}
				}
			} catch (const std::exception &e) {
				error_ = std::string("capture: ") + e.what();
			}
		});
	}
	void stop()
	{
		stop_ = true;
		if (thread_.joinable())
			thread_.join();
	}
	sound_test::PcmRun &run() { return run_; }
	const std::vector<uint8_t> &captured() const { return captured_; }
	/** \brief When each captured period came back to the guest. */
	const std::vector<double> &stamps() const { return stamps_; }
	const std::string &error() const { return error_; }

private:
	sound_test::LinuxPcm &pcm_;
	vhostpp::DriverMemory &memory_;
	uint32_t period_bytes_;
	std::thread thread_;
	std::atomic<bool> stop_{false};
	sound_test::PcmRun run_;
	std::vector<uint8_t> captured_;
	std::vector<double> stamps_;
	std::string error_;
};

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
		if (!t.setup.empty())
			run_setup(replace_all(replace_all(replace_all(t.setup, "{socket}", t.socket), "{dir}",
							      child ? child->dir() : std::string()),
					      "{pid}", std::to_string(t.pid)));
		sound_test::SoundDriver snd(driver);
		auto config = snd.read_config();
		auto infos = snd.query<vs::PcmInfo>(vs::kPcmInfo, 0, config.streams);
		const auto want = o.mode == "capture" ? vs::Direction::Input : vs::Direction::Output;
		auto find_stream = [&](vs::Direction d) -> std::optional<uint32_t> {
			for (uint32_t i = 0; i < infos.size(); i++)
				if (infos[i].direction == static_cast<uint8_t>(d))
					return i;
			return std::nullopt;
		};
		const auto stream = find_stream(want);
		if (!stream)
			throw std::runtime_error(std::string("no ") + std::string(vs::direction_name(want)) +
						 " stream");

		sound_test::LinuxPcm pcm(snd, *stream, want, cfg);
		const size_t total = std::max<size_t>(
			2, static_cast<size_t>(o.seconds * 1000.0 / fig.period_ms + 0.5));

		/* --loopback: the TX frames of the impulses, and the input stream. */
		std::vector<uint64_t> impulses;
		std::unique_ptr<sound_test::LinuxPcm> in_pcm;
		std::unique_ptr<Recorder> recorder;
		if (o.loopback) {
			const double audio = static_cast<double>(total) * fig.period_ms / 1e3;
			/* An odd frame offset per impulse, so that none sits on a period
			 * or quantum boundary by construction. */
			for (double at = kImpulseFirst; at + kImpulseSpacing - kImpulseEarly <= audio; at += kImpulseSpacing)
				impulses.push_back(static_cast<uint64_t>(std::lround(at * o.rate)) + 13 * impulses.size());
			fig.impulses_sent = impulses.size();
			const auto in_stream = find_stream(vs::Direction::Input);
			if (!in_stream)
				throw std::runtime_error("--loopback: the device has no input stream");
			in_pcm = std::make_unique<sound_test::LinuxPcm>(snd, *in_stream, vs::Direction::Input, cfg);
			recorder = std::make_unique<Recorder>(*in_pcm, snd.memory(), cfg.period_bytes);
		}
		/* Period \a period of the output (from START) into ring slot \a slot:
		 * silence, and the impulses that fall in it. */
		auto write_period = [&](size_t slot, uint64_t period) {
			uint8_t *p = snd.memory().at(pcm.period_gpa(slot), cfg.period_bytes).data();
			std::memset(p, 0, cfg.period_bytes);
			const uint64_t first = period * period_frames, end = first + period_frames;
			for (uint64_t at : impulses)
				if (at >= first && at < end)
					for (unsigned c = 0; c < o.channels; c++)
						put_sample(o.format, p + (at - first) * frame + c * format->second, 0.5);
		};

		pcm.setup();
		if (want == vs::Direction::Output)
			for (size_t i = 0; i < o.periods; i++)
				write_period(i, i);
		pcm.queue_all();
		if (in_pcm) {
			in_pcm->setup();
			in_pcm->queue_all();
		}
		ProcStats before = t.pid ? read_proc(t.pid) : ProcStats{};
		double also_before = 0;
		for (int pid : o.also_pids)
			also_before += read_proc(pid).cpu_s;
		sound_test::PcmRun run;
		std::vector<double> stamps;
		stamps.reserve(total);
		double start = now_s();
		if (snd.pcm(vs::kPcmStart, *stream) != vs::kStatusOk)
			throw std::runtime_error("PCM_START refused");
		if (in_pcm) {
			const double out_started = now_s();
			if (snd.pcm(vs::kPcmStart, find_stream(vs::Direction::Input).value()) != vs::kStatusOk)
				throw std::runtime_error("--loopback: PCM_START of the input refused");
			fig.start_skew_ms = (now_s() - out_started) * 1e3;
			recorder->start();
		}
		for (size_t done = 0; done < total; done++) {
			size_t slot = pcm.wait_completion(run, 2000);
			stamps.push_back(now_s());
			if (done + 1 < total) {
				if (want == vs::Direction::Output)
					write_period(slot, done + o.periods);
				pcm.queue_slot(slot);
				pcm.kick();
			}
		}
		double end = now_s();
		ProcStats after = t.pid ? read_proc(t.pid) : ProcStats{};
		double also_after = 0;
		for (int pid : o.also_pids)
			also_after += read_proc(pid).cpu_s;
		if (recorder) {
			recorder->stop();
			fig.loopback_error = recorder->error();
		}
		pcm.finish(run);
		if (in_pcm) {
			in_pcm->finish(recorder->run());
			/* Each impulse: the first rising edge over a quarter of full scale
			 * (channel 0) in its window of RX. */
			const auto &rx = recorder->captured();
			const size_t rx_frames = rx.size() / frame;
			std::vector<uint64_t> edges;
			bool high = false;
			for (size_t i = 0; i < rx_frames; i++) {
				const bool h = std::fabs(get_sample(o.format, rx.data() + i * frame)) > 0.25;
				if (h && !high)
					edges.push_back(i);
				high = h;
			}
			const auto early = static_cast<uint64_t>(kImpulseEarly * o.rate);
			const auto spacing = static_cast<uint64_t>(kImpulseSpacing * o.rate);
			const auto &rx_stamps = recorder->stamps();
			for (uint64_t at : impulses) {
				const uint64_t from = at - early, to = from + spacing;
				for (uint64_t e : edges)
					if (e >= from && e < to) {
						fig.round_trip_frames.push_back(static_cast<long>(e) - static_cast<long>(at));
						/* In time: from the moment the guest's TX pointer passed
						 * the impulse (its period's completion, less the frames
						 * after it in that period) to the completion of the RX
						 * period that holds it, when the guest has it. */
						const size_t tx_period = at / period_frames, rx_period = e / period_frames;
						if (tx_period < stamps.size() && rx_period < rx_stamps.size()) {
							const double tx_at = stamps[tx_period] -
								double((tx_period + 1) * period_frames - at) / o.rate;
							fig.round_trip_ms.push_back((rx_stamps[rx_period] - tx_at) * 1e3);
						}
						break;
					}
			}
			if (fig.loopback_error.empty() && fig.round_trip_frames.empty())
				fig.loopback_error = "no impulse came back in RX (" + std::to_string(edges.size()) +
						     " edges in " + std::to_string(rx_frames) +
						     " frames captured): is there a host loopback?";
		}

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
		if (!o.also_pids.empty())
			fig.also_cpu_per_audio_min = (also_after - also_before) / fig.audio_s * 60.0;
		fig.ok = true;
	} catch (const std::exception &e) {
		fig.error = e.what();
	}
	child.reset();
	return fig;
}

double median_of(const std::vector<double> &v)
{
	return percentile(v, 50);
}

void print_loopback(const Figures &f, const Options &o)
{
	const double target_ms = 2 * f.period_ms + 5;
	auto ms = [&](double frames) { return frames * 1000.0 / o.rate; };
	if (f.round_trip_frames.empty()) {
		std::printf("  loopback: not measured: %s\n", f.loopback_error.c_str());
		return;
	}
	std::vector<double> frames(f.round_trip_frames.begin(), f.round_trip_frames.end());
	const Summary pos = summarise(frames);
	std::printf("  loopback: %zu of %zu impulses back; input START %.3f ms after output START%s%s\n",
		    f.round_trip_frames.size(), f.impulses_sent, f.start_skew_ms,
		    f.loopback_error.empty() ? "" : "; ", f.loopback_error.c_str());
	std::printf("  loopback in stream position (RX frame - TX frame, both from START): min %.0f "
		    "(%.3f ms), median %.0f (%.3f ms), max %.0f (%.3f ms)\n",
		    pos.min, ms(pos.min), pos.median, ms(pos.median), pos.max, ms(pos.max));
	if (f.round_trip_ms.empty())
		return;
	const Summary t = summarise(f.round_trip_ms);
	std::printf("  loopback round trip in time (guest TX pointer passes the impulse -> the RX "
		    "period holding it completes): min %.3f ms, median %.3f ms, max %.3f ms; target 2 "
		    "periods + 5 ms = %.3f ms: median %.2fx, %s\n",
		    t.min, t.median, t.max, target_ms, t.median / target_ms,
		    t.max < target_ms ? "met" : t.median < target_ms ? "median met, max missed" : "missed");
	std::printf("  loopback each impulse (ms in time / frames):");
	for (size_t i = 0; i < f.round_trip_ms.size() && i < 10; i++)
		std::printf(" %.1f/%ld", f.round_trip_ms[i], f.round_trip_frames[i]);
	if (f.round_trip_ms.size() > 10)
		std::printf(" ... (%zu more)", f.round_trip_ms.size() - 10);
	std::printf("\n");
}

void print(const Target &t, const Figures &f, const Options &o)
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
	if (f.also_cpu_per_audio_min >= 0)
		std::printf("  --also-pid processes: %.3f CPU s per audio minute\n", f.also_cpu_per_audio_min);
	if (o.loopback)
		print_loopback(f, o);
}

} // namespace

int main(int argc, char **argv)
{
	if (has_flag(argc, argv, "--help") || argc < 2) {
		std::printf("usage: snd-load (--daemon 'CMD ... {socket}')... | --socket PATH [--pid "
			    "PID]\n"
			    "       [--seconds N] [--rate HZ] [--format s16|s24|s32|float|u8] "
			    "[--channels N]\n"
			    "       [--period-ms MS] [--periods N] [--mode play|capture] [--loopback]\n"
			    "       [--also-pid PID]...\n"
			    "--label NAME and --setup CMD ({socket} {dir} {pid} replaced) apply to the "
			    "next --daemon\n");
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
	for (int i = 1; i + 1 < argc; i++)
		if (std::strcmp(argv[i], "--also-pid") == 0)
			o.also_pids.push_back(std::atoi(argv[++i]));
	if (o.loopback && (o.mode != "play" || o.format == "u8")) {
		std::fprintf(stderr, "--loopback: plays (--mode play) a signed or float format, not u8\n");
		return 2;
	}
	if (o.mode != "play" && o.mode != "capture") {
		std::fprintf(stderr, "--mode: play or capture, not %s\n", o.mode.c_str());
		return 2;
	}
	if (o.periods < 2 || o.channels < 1 || o.period_ms <= 0 || o.seconds <= 0) {
		std::fprintf(stderr, "--periods >= 2, --channels >= 1, --period-ms and --seconds > 0\n");
		return 2;
	}

	std::vector<Target> targets;
	/* --label and --setup belong to the --daemon after them. */
	std::string label, setup;
	for (int i = 1; i + 1 < argc; i++) {
		if (std::strcmp(argv[i], "--label") == 0) {
			label = argv[++i];
		} else if (std::strcmp(argv[i], "--setup") == 0) {
			setup = argv[++i];
		} else if (std::strcmp(argv[i], "--daemon") == 0) {
			Target t;
			t.command = argv[++i];
			std::string first = t.command.substr(0, t.command.find(' '));
			t.label = label.empty() ? std::filesystem::path(first).filename().string() + ": " + t.command
						: label;
			t.setup = setup;
			label.clear();
			setup.clear();
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
		std::printf("loopback: an impulse every %.1f s from %.1f s, output and input streams "
			    "started together\n",
			    kImpulseSpacing, kImpulseFirst);
	std::vector<Figures> all;
	bool ok = true;
	for (auto &t : targets) {
		all.push_back(measure(t, o));
		print(t, all.back(), o);
		ok = ok && all.back().ok;
		std::fflush(stdout);
	}
	if (targets.size() > 1) {
		const bool also = !o.also_pids.empty();
		std::printf("side by side (CPU as a ratio to the first target):\n");
		std::printf("  %-40s %9s %9s %8s %9s %10s %7s %8s %9s%s%s\n", "target", "pacing %", "p99 ms",
			    "p99-per", "max ms", "CPU s/min", "ratio", "vcsw/s", "RSS anon",
			    also ? " +pids s/min" : "", o.loopback ? "  RT med ms" : "");
		for (size_t i = 0; i < targets.size(); i++) {
			const auto &f = all[i];
			std::string label = targets[i].label.substr(0, 40);
			if (!f.ok) {
				std::printf("  %-40s FAILED\n", label.c_str());
				continue;
			}
			const double ratio = all[0].ok && all[0].cpu_per_audio_min > 0
						     ? f.cpu_per_audio_min / all[0].cpu_per_audio_min
						     : 0;
			std::printf("  %-40s %+9.3f %9.3f %+8.3f %9.3f %10.3f %6.2fx %8.1f %9ld", label.c_str(),
				    f.pacing_pct, f.p99_ms, f.p99_ms - f.period_ms, f.max_ms,
				    f.cpu_per_audio_min, ratio, f.vol_per_s, f.rss_anon);
			if (also)
				std::printf(" %12.3f", f.also_cpu_per_audio_min);
			if (o.loopback) {
				if (f.round_trip_ms.empty())
					std::printf("  %10s", "-");
				else
					std::printf("  %10.3f", median_of(f.round_trip_ms));
			}
			std::printf("\n");
		}
	}
	return ok ? 0 : 1;
}
