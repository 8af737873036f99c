/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file bench_notify.cpp
 * \brief Notifications: what a kick or a call costs through an eventfd,
 * and how many of each VIRTIO_F_RING_EVENT_IDX saves.
 *
 * 1. Eventfd round trips per second between two threads (a kick answered
 *    by a call), the raw price of one notification each way.
 * 2. A steady stream of 48 kHz audio periods: a device thread that holds
 *    the chains it pops and completes one per period on its own clock (as
 *    a sound device does), and a driver that re-queues each period the
 *    moment it completes (as Linux does). Kicks and calls per period,
 *    EVENT_IDX off and on.
 * 3. Saturation: the driver keeps the ring full as fast as it can, the
 *    device completes as fast as it can. Kicks and calls per chain.
 *
 * The library's DriverQueue and Virtqueue on both sides (bench_ring.h).
 * Waits are bounded (2 s) so nothing hangs.
 *
 * Usage: bench_notify [--seconds S] [--period-ms MS] [--chains N] [--quick]
 */
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "bench_ring.h"
#include "bench_util.h"

using namespace vhostpp;
using namespace vhostpp::bench;

namespace {

constexpr int kWaitMs = 2000;

/* Round trips through two eventfds; returns round trips per second. */
double eventfd_round_trips(unsigned long n)
{
	EventFd a = EventFd::create(), b = EventFd::create();
	int fa = a.unique_fd().get(), fb = b.unique_fd().get();
	std::thread peer([&] {
		for (unsigned long i = 0; i < n; i++) {
			if (!wait_eventfd(fa, kWaitMs))
				return;
			b.signal();
		}
	});
	double t0 = now_s();
	unsigned long done = 0;
	for (; done < n; done++) {
		a.signal();
		if (!wait_eventfd(fb, kWaitMs))
			break;
	}
	double t = now_s() - t0;
	peer.join();
	return static_cast<double>(done) / t;
}

struct Counts {
	unsigned long chains = 0;
	unsigned long kicks = 0;
	unsigned long calls = 0; /* signals summed by the call eventfd */
	bool ok = true;
};

/* Steady audio: \a periods periods of \a period_ms, 4 in flight. */
Counts steady(bool event_idx, unsigned periods, double period_ms)
{
	BenchRing ring(64, event_idx, false);
	const unsigned in_ring = 4;
	std::vector<uint64_t> bufs;
	for (unsigned i = 0; i < in_ring; i++)
		bufs.push_back(ring.mem.allocate(1920, 64)); /* 480 frames S16 stereo */
	std::atomic<bool> stop{false};
	Counts c;
	std::thread device([&] {
		std::deque<DescriptorChain> held;
		auto period = std::chrono::duration<double, std::milli>(period_ms);
		auto next = std::chrono::steady_clock::now();
		while (!stop) {
			/* The device's clock: one completion per period; it takes what was
			 * kicked meanwhile at the tick (its wake-ups are not what is counted). */
			next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
			std::this_thread::sleep_until(next);
			wait_eventfd(ring.kick_fd(), 0);
			while (auto chain = ring.vq.pop())
				held.push_back(std::move(*chain));
			if (!held.empty()) {
				ring.vq.push(held.front(), 0);
				held.pop_front();
				ring.vq.notify();
			}
		}
	});
	unsigned long slot = 0;
	for (unsigned i = 0; i < in_ring; i++)
		ring.dq.add({{{bufs[slot++ % in_ring], 1920, false}}});
	ring.dq.kick();
	c.kicks++;
	while (c.chains < periods) {
		if (!ring.dq.get_used()) {
			uint64_t n = wait_eventfd(ring.call_fd(), kWaitMs);
			if (!n) {
				c.ok = false;
				break;
			}
			c.calls += n;
			continue;
		}
		c.chains++;
		ring.dq.add({{{bufs[slot++ % in_ring], 1920, false}}});
		if (ring.dq.kick_if_needed(event_idx))
			c.kicks++;
	}
	stop = true;
	device.join();
	return c;
}

/* Saturation: \a chains chains, the ring kept full, both sides flat out. */
Counts saturated(bool event_idx, unsigned long chains)
{
	BenchRing ring(256, event_idx, false);
	uint64_t buf = ring.mem.allocate(64, 64);
	std::atomic<bool> stop{false};
	std::thread device([&] {
		while (!stop) {
			if (!wait_eventfd(ring.kick_fd(), kWaitMs))
				break;
			for (;;) {
				unsigned n = 0;
				while (auto chain = ring.vq.pop()) {
					ring.vq.push(*chain, 0);
					ring.vq.notify(); /* per chain: what EVENT_IDX may suppress */
					n++;
				}
				if (!n)
					break;
			}
		}
	});
	Counts c;
	unsigned long added = 0;
	while (c.chains < chains) {
		while (ring.dq.free_descriptors() > 0 && added < chains) {
			ring.dq.add({{{buf, 64, false}}});
			added++;
			if (ring.dq.kick_if_needed(event_idx))
				c.kicks++;
		}
		bool got = false;
		while (ring.dq.get_used()) {
			c.chains++;
			got = true;
		}
		if (!got) {
			uint64_t n = wait_eventfd(ring.call_fd(), kWaitMs);
			if (!n) {
				c.ok = false;
				break;
			}
			c.calls += n;
		} else {
			/* Calls that arrived while we were busy: count them without waiting. */
			uint64_t n = 0;
			if (read(ring.call_fd(), &n, sizeof n) == sizeof n)
				c.calls += n;
		}
	}
	stop = true;
	ring.dq.kick();
	device.join();
	return c;
}

} // namespace

int main(int argc, char **argv)
{
	if (has_flag(argc, argv, "--help")) {
		std::printf("usage: bench_notify [--seconds S] [--period-ms MS] [--chains N] "
			    "[--reps R] [--quick]\n");
		return 0;
	}
	bool quick = has_flag(argc, argv, "--quick");
	double seconds = num_arg(argc, argv, "--seconds", quick ? 0.3 : 5);
	double period_ms = num_arg(argc, argv, "--period-ms", 10);
	auto chains = static_cast<unsigned long>(num_arg(argc, argv, "--chains", quick ? 5000 : 200000));
	auto reps = static_cast<unsigned>(num_arg(argc, argv, "--reps", quick ? 1 : 5));
	if (reps < 1)
		reps = 1;
	print_machine();

	std::vector<double> rt;
	for (unsigned i = 0; i < reps; i++)
		rt.push_back(eventfd_round_trips(quick ? 2000 : 50000));
	Summary r = summarise(rt);
	std::printf("eventfd round trips (kick + call) between two threads: median %.0f/s, best "
		    "%.0f/s (%.2f us per round trip)\n",
		    r.median, r.max, 1e6 / r.max);

	bool ok = true;
	auto periods = static_cast<unsigned>(std::max(4.0, seconds * 1000.0 / period_ms));
	std::printf("steady audio: %u periods of %.1f ms (48 kHz, 480 frames), 4 in flight\n",
		    periods, period_ms);
	std::printf("  %-9s %8s %13s %13s %9s %9s\n", "EVENT_IDX", "periods", "kicks/period",
		    "calls/period", "kicks/s", "calls/s");
	Counts steady_counts[2];
	for (bool e : {false, true}) {
		double t0 = now_s();
		Counts c = steady(e, periods, period_ms);
		double t = now_s() - t0;
		ok = ok && c.ok;
		steady_counts[e] = c;
		/* Per second of wall time: the notifications the stream costs. */
		std::printf("  %-9s %8lu %13.3f %13.3f %9.1f %9.1f%s\n", e ? "on" : "off", c.chains,
			    double(c.kicks) / double(c.chains), double(c.calls) / double(c.chains),
			    double(c.kicks) / t, double(c.calls) / t,
			    c.ok ? "" : "  (FAILED: no completion for 2 s)");
	}
	std::printf("  EVENT_IDX saves %.1f %% of kicks and %.1f %% of calls\n",
		    100.0 * (1.0 - double(steady_counts[1].kicks) / double(steady_counts[1].chains) /
					    (double(steady_counts[0].kicks) / double(steady_counts[0].chains))),
		    100.0 * (1.0 - double(steady_counts[1].calls) / double(steady_counts[1].chains) /
					    (double(steady_counts[0].calls) / double(steady_counts[0].chains))));

	std::printf("saturation: %lu chains, ring 256 kept full, %u repetitions (median)\n", chains,
		    reps);
	std::printf("  %-9s %12s %12s %12s %12s %12s\n", "EVENT_IDX", "kicks/chain", "calls/chain",
		    "Mchains/s", "kicks/s", "calls/s");
	double per[2][2] = {};
	for (bool e : {false, true}) {
		std::vector<double> k, cl, rate, ks, cs;
		for (unsigned i = 0; i < reps; i++) {
			double t0 = now_s();
			Counts c = saturated(e, chains);
			double t = now_s() - t0;
			ok = ok && c.ok;
			k.push_back(double(c.kicks) / double(c.chains));
			cl.push_back(double(c.calls) / double(c.chains));
			rate.push_back(double(c.chains) / t / 1e6);
			ks.push_back(double(c.kicks) / t);
			cs.push_back(double(c.calls) / t);
		}
		per[e][0] = summarise(k).median;
		per[e][1] = summarise(cl).median;
		std::printf("  %-9s %12.4f %12.4f %12.3f %12.0f %12.0f\n", e ? "on" : "off", per[e][0],
			    per[e][1], summarise(rate).median, summarise(ks).median, summarise(cs).median);
	}
	std::printf("  EVENT_IDX saves %.1f %% of kicks and %.1f %% of calls\n",
		    100.0 * (1.0 - per[1][0] / per[0][0]), 100.0 * (1.0 - per[1][1] / per[0][1]));
	return ok ? 0 : 1;
}
