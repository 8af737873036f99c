/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file bench_daemon.cpp
 * \brief Idle cost and density of a vhost-user sound daemon.
 *
 * For each daemon command (--daemon 'CMD ... {socket}', repeatable; the
 * build's vhost-sound with the null back-end by default):
 * - start-up time from spawn to a socket that accepts a connection
 *   (repetitions, min/median);
 * - idle cost in three states — no guest; a guest connected (the four queues
 *   set up) with no stream; a stream prepared (SET_PARAMS, PREPARE) and not
 *   started — as RSS anonymous and file-backed, threads, and wake-ups per
 *   second (context switches of all its threads over --seconds, from /proc);
 * - density: --count daemons started at once, their total RSS and the total
 *   CPU they use idle over --density-seconds.
 *
 * Usage: bench_daemon [--daemon CMD]... [--seconds S] [--reps R]
 *        [--count N] [--density-seconds S] [--quick]
 */
#include <cstdio>
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

/* Wait until \a d listens; the seconds it took, or nothing after 5 s or if it exited. */
std::optional<double> wait_listening(Spawned &d, double t0)
{
	while (now_s() - t0 < 5) {
		if (d.listening())
			return now_s() - t0;
		if (d.exited())
			return std::nullopt;
		std::this_thread::sleep_for(std::chrono::microseconds(200));
	}
	return std::nullopt;
}

struct Idle {
	ProcStats at;
	double wakeups_per_s = 0;
	double cpu_ms_per_s = 0;
};

Idle idle_over(pid_t pid, double seconds)
{
	ProcStats a = read_proc(pid);
	std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
	ProcStats b = read_proc(pid);
	Idle i;
	i.at = b;
	i.wakeups_per_s = static_cast<double>((b.voluntary + b.involuntary) -
					      (a.voluntary + a.involuntary)) /
			  seconds;
	i.cpu_ms_per_s = (b.cpu_s - a.cpu_s) * 1e3 / seconds;
	return i;
}

void print_idle(const char *state, const Idle &i)
{
	std::printf("  %-30s RSS anon %6ld KiB, file %6ld KiB, %2ld threads, %7.2f wake-ups/s, "
		    "%7.3f ms CPU/s\n",
		    state, i.at.rss_anon_kib, i.at.rss_file_kib, i.at.threads, i.wakeups_per_s,
		    i.cpu_ms_per_s);
}

bool bench_one(const std::string &command, double seconds, unsigned reps, unsigned count,
	       double density_seconds)
{
	std::printf("== %s\n", command.c_str());
	std::vector<double> starts;
	for (unsigned r = 0; r < reps; r++) {
		double t0 = now_s();
		Spawned d(command);
		auto t = wait_listening(d, t0);
		if (!t) {
			std::printf("  FAILED: the daemon did not listen within 5 s (%s)\n",
				    d.command().c_str());
			return false;
		}
		starts.push_back(*t * 1e3);
	}
	Summary s = summarise(starts);
	std::printf("  start-up to listening socket: min %.2f ms, median %.2f ms (%u starts)\n",
		    s.min, s.median, reps);

	Spawned d(command);
	if (!wait_listening(d, now_s())) {
		std::printf("  FAILED: not listening\n");
		return false;
	}
	/* Let start-up work settle before counting. */
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	print_idle("idle, no guest:", idle_over(d.pid(), seconds));
	try {
		vhostpp::DeviceDriver driver(d.socket(), sound_test::sound_driver_options());
		sound_test::SoundDriver snd(driver);
		std::this_thread::sleep_for(std::chrono::milliseconds(200));
		print_idle("guest connected, no stream:", idle_over(d.pid(), seconds));
		auto config = snd.read_config();
		auto infos = snd.query<vs::PcmInfo>(vs::kPcmInfo, 0, config.streams);
		uint32_t out = 0;
		for (uint32_t i = 0; i < infos.size(); i++)
			if (infos[i].direction == static_cast<uint8_t>(vs::Direction::Output)) {
				out = i;
				break;
			}
		sound_test::PcmConfig cfg;
		sound_test::LinuxPcm pcm(snd, out, vs::Direction::Output, cfg);
		pcm.setup();
		std::this_thread::sleep_for(std::chrono::milliseconds(200));
		print_idle("stream prepared, not started:", idle_over(d.pid(), seconds));
		snd.pcm(vs::kPcmRelease, out);
	} catch (const std::exception &e) {
		std::printf("  guest states FAILED: %s\n", e.what());
	}

	if (count == 0)
		return true;
	std::vector<std::unique_ptr<Spawned>> many;
	double t0 = now_s();
	for (unsigned i = 0; i < count; i++)
		many.push_back(std::make_unique<Spawned>(command));
	unsigned up = 0;
	for (auto &m : many)
		up += wait_listening(*m, t0).has_value();
	double all_up = (now_s() - t0) * 1e3;
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	std::vector<ProcStats> a, b;
	for (auto &m : many)
		a.push_back(read_proc(m->pid()));
	std::this_thread::sleep_for(std::chrono::duration<double>(density_seconds));
	long anon = 0, file = 0;
	double cpu = 0, wake = 0;
	for (size_t i = 0; i < many.size(); i++) {
		b.push_back(read_proc(many[i]->pid()));
		anon += b[i].rss_anon_kib;
		file += b[i].rss_file_kib;
		cpu += b[i].cpu_s - a[i].cpu_s;
		wake += static_cast<double>((b[i].voluntary + b[i].involuntary) -
					    (a[i].voluntary + a[i].involuntary));
	}
	std::printf("  density: %u of %u daemons listening %.0f ms after starting them at once; "
		    "total RSS anon %ld KiB (%.0f each), file %ld KiB (shared pages counted in "
		    "each); idle over %.1f s: total CPU %.3f s, %.2f wake-ups/s in all\n",
		    up, count, all_up, anon, double(anon) / count, file, density_seconds, cpu,
		    wake / density_seconds);
	return up == count;
}

} // namespace

int main(int argc, char **argv)
{
	if (has_flag(argc, argv, "--help")) {
		std::printf("usage: bench_daemon [--daemon 'CMD ... {socket}']... [--seconds S] "
			    "[--reps R] [--count N] [--density-seconds S] [--quick]\n");
		return 0;
	}
	bool quick = has_flag(argc, argv, "--quick");
	double seconds = num_arg(argc, argv, "--seconds", quick ? 0.3 : 5);
	auto reps = static_cast<unsigned>(num_arg(argc, argv, "--reps", quick ? 2 : 10));
	auto count = static_cast<unsigned>(num_arg(argc, argv, "--count", quick ? 3 : 50));
	double density_seconds = num_arg(argc, argv, "--density-seconds", quick ? 0.3 : 60);
	if (reps < 1)
		reps = 1;
	std::vector<std::string> commands;
	for (int i = 1; i + 1 < argc; i++)
		if (std::string(argv[i]) == "--daemon")
			commands.push_back(argv[++i]);
	if (commands.empty())
		commands.push_back(std::string(BENCH_VHOST_SOUND) + " --socket {socket} --backend null");

	print_machine();
	bool ok = true;
	for (const auto &c : commands)
		ok = bench_one(c, seconds, reps, count, density_seconds) && ok;
	return ok ? 0 : 1;
}
