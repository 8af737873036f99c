/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/* The null back-end's clock: real-time rate, xruns, and no timer when idle. */
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <vector>

#include "audio/frame_clock.h"
#include "audio/null/null_backend.h"

using namespace vhost_sound;
using Clock = std::chrono::steady_clock;
namespace vs = vhost_sound::virtio_snd;

namespace {

struct Listener : BackendStreamListener {
	std::function<void()> on_progress;
	unsigned calls = 0;
	void backend_progress() override
	{
		calls++;
		if (on_progress)
			on_progress();
	}
};

PcmParams stereo48k(Direction direction)
{
	PcmParams p;
	p.direction = direction;
	p.format = vs::kFmtS16;
	p.rate = vs::kRate48000;
	p.channels = 2;
	p.buffer_bytes = 32768;
	p.period_bytes = 8192;
	return p;
}

double elapsed_since(Clock::time_point t0)
{
	return std::chrono::duration<double>(Clock::now() - t0).count();
}

} // namespace

TEST_CASE("the null back-end advertises every linear format, every rate, 1-8 channels", "[null_backend]")
{
	boost::asio::io_context io;
	NullBackend backend(io);
	for (Direction d : { Direction::Output, Direction::Input }) {
		const auto caps = backend.capabilities(d);
		CHECK(caps.formats == vs::linear_pcm_formats());
		CHECK(caps.rates == vs::all_rates());
		CHECK(caps.channels_min == 1);
		CHECK(caps.channels_max == 8);
	}
}

TEST_CASE("the tick divides the period: at least four ticks, each 1 to 10 ms", "[null_backend]")
{
	using namespace std::chrono_literals;
	auto p = stereo48k(Direction::Output);
	/* 42.7 ms period: five ticks of 8.53 ms (rounded up to the ns), not a 10 ms grid. */
	CHECK(FrameClock::tick_interval(p) == 8533334ns);
	p.period_bytes = 7680; /* 40 ms period */
	CHECK(FrameClock::tick_interval(p) == 10ms);
	p.period_bytes = 1920; /* 10 ms period */
	CHECK(FrameClock::tick_interval(p) == 2500us);
	p.period_bytes = 64;
	CHECK(FrameClock::tick_interval(p) == 1ms);
	p.period_bytes = 192000; /* 1 s period: a hundred 10 ms ticks */
	CHECK(FrameClock::tick_interval(p) == 10ms);
}

TEST_CASE("FrameClock: every period of Linux's default ends exactly on a tick", "[frame_clock]")
{
	/* 2048-frame periods at 48 kHz: period k is due at tick 5k, not one
	 * frame short of it (which would complete it a tick late), and not yet
	 * at tick 5k - 1; over an hour of periods. */
	const auto params = stereo48k(Direction::Output);
	FrameClock clock(params);
	const auto tick = clock.tick();
	for (uint64_t k = 1; k <= 85000; k++) {
		const auto due = clock.frames_in(tick * int64_t(5 * k));
		const auto before = clock.frames_in(tick * int64_t(5 * k - 1));
		if (due < 2048 * k || before >= 2048 * k) {
			FAIL("period " << k << ": " << before << " then " << due << " frames");
		}
	}
}

TEST_CASE("the null sink consumes at the stream's rate from the clock", "[null_backend][timing]")
{
	boost::asio::io_context io;
	NullBackend backend(io);
	const auto params = stereo48k(Direction::Output);
	ByteRing ring(params.buffer_bytes);
	Listener listener;
	/* Keep the ring topped up, as the device does. */
	std::vector<uint8_t> zeros(ring.capacity());
	auto top_up = [&] { ring.write(std::span(zeros).first(ring.writable())); };
	listener.on_progress = top_up;
	top_up();

	auto stream = backend.open(params, ring, listener);
	REQUIRE(stream);
	CHECK(stream->lookahead_bytes() == 1228 * 4); /* three 8.53 ms ticks */

	const auto t0 = Clock::now();
	REQUIRE(stream->start());
	io.run_for(std::chrono::milliseconds(1000));
	const double seconds = elapsed_since(t0);
	stream->stop();

	const double expected = seconds * params.byte_rate();
	INFO("consumed " << ring.total_read() << " bytes in " << seconds << " s");
	CHECK(std::abs(ring.total_read() - expected) / expected < 0.02);
	CHECK(stream->xruns() == 0);
	CHECK(listener.calls >= 90);
}

TEST_CASE("the null source produces silence at the stream's rate", "[null_backend][timing]")
{
	boost::asio::io_context io;
	NullBackend backend(io);
	auto params = stereo48k(Direction::Input);
	params.format = vs::kFmtU8; /* silence is 0x80: proves capture() ran */
	params.channels = 1;
	params.period_bytes = 480;
	params.buffer_bytes = 48000;
	ByteRing ring(params.buffer_bytes);
	Listener listener;
	uint64_t bad = 0;
	listener.on_progress = [&] {
		std::vector<uint8_t> buf(ring.readable());
		ring.read(buf);
		for (uint8_t b : buf)
			bad += b != 0x80;
	};
	auto stream = backend.open(params, ring, listener);
	const auto t0 = Clock::now();
	REQUIRE(stream->start());
	io.run_for(std::chrono::milliseconds(500));
	const double seconds = elapsed_since(t0);
	stream->stop();

	const double expected = seconds * params.byte_rate();
	CHECK(std::abs(ring.total_written() - expected) / expected < 0.02);
	CHECK(bad == 0);
	CHECK(stream->xruns() == 0);
}

TEST_CASE("an empty ring is one underrun, a full one one overrun; the clock moves on", "[null_backend]")
{
	boost::asio::io_context io;
	NullBackend backend(io);
	Listener listener;

	const auto out = stereo48k(Direction::Output);
	ByteRing out_ring(out.buffer_bytes);
	auto sink = backend.open(out, out_ring, listener);
	sink->start();

	const auto in = stereo48k(Direction::Input);
	ByteRing in_ring(in.buffer_bytes);
	auto source = backend.open(in, in_ring, listener);
	source->start();

	io.run_for(std::chrono::milliseconds(300)); /* 300 ms > the 170 ms input ring */
	CHECK(sink->xruns() == 1);
	CHECK(source->xruns() == 1);
	CHECK(in_ring.readable() == in_ring.capacity());
}

TEST_CASE("no timer runs while no stream is started", "[null_backend]")
{
	boost::asio::io_context io;
	NullBackend backend(io);
	const auto params = stereo48k(Direction::Output);
	ByteRing ring(params.buffer_bytes);
	Listener listener;
	auto stream = backend.open(params, ring, listener);

	/* Opened, not started: the loop has nothing to do and returns at once. */
	auto t0 = Clock::now();
	io.run_for(std::chrono::seconds(2));
	CHECK(elapsed_since(t0) < 0.5);

	/* Started then stopped: same. */
	stream->start();
	io.restart();
	io.run_for(std::chrono::milliseconds(50));
	const unsigned calls = listener.calls;
	CHECK(calls > 0);
	stream->stop();
	io.restart();
	t0 = Clock::now();
	io.run_for(std::chrono::seconds(2));
	CHECK(elapsed_since(t0) < 0.5);
	CHECK(listener.calls == calls);

	/* Destroyed while started: nothing left behind either. */
	stream->start();
	stream.reset();
	io.restart();
	t0 = Clock::now();
	io.run_for(std::chrono::seconds(2));
	CHECK(elapsed_since(t0) < 0.5);
	CHECK(listener.calls == calls);
}

TEST_CASE("FrameClock: frames due at the nominal rate, never owed twice, ahead frames wait", "[frame_clock]")
{
	using namespace std::chrono_literals;
	auto params = stereo48k(Direction::Output);
	params.period_bytes = 1920; /* 10 ms: a 2.5 ms tick */
	FrameClock clock(params);
	CHECK(clock.tick() == 2500us);
	CHECK(clock.frames_in(1s) == 48000);
	CHECK(clock.frames_in(24h) == 48000ull * 86400); /* no overflow */

	const auto t0 = FrameClock::Clock::time_point{} + 1000s;
	clock.start(t0);
	CHECK(clock.take_due(t0) == 0);
	CHECK(clock.take_due(t0 + 10ms) == 480);
	CHECK(clock.take_due(t0 + 10ms) == 0);
	/* Frames not moved when due are not owed again: only the new ones. */
	CHECK(clock.take_due(t0 + 30ms) == 960);
	/* Frames moved ahead of the clock: nothing is due until it catches up. */
	clock.advance(480);
	CHECK(clock.take_due(t0 + 35ms) == 0);
	CHECK(clock.take_due(t0 + 45ms) == 240);
	/* Frames given back are due again, on top of the new ones. */
	CHECK(clock.take_due(t0 + 50ms) == 240);
	clock.owe(100);
	CHECK(clock.take_due(t0 + 50ms) == 100);
	CHECK(clock.take_due(t0 + 55ms) == 240);
	/* A restart owes nothing for the time before it. */
	clock.start(t0 + 10s);
	CHECK(clock.take_due(t0 + 10s + 1ms) == 48);
}

TEST_CASE("FrameClock: ticks on an absolute grid, late callers skip missed points", "[frame_clock]")
{
	using namespace std::chrono_literals;
	auto params = stereo48k(Direction::Output);
	params.period_bytes = 7680; /* 40 ms period: a 10 ms tick */
	FrameClock clock(params);
	const auto t0 = FrameClock::Clock::time_point{} + 1000s;
	clock.start(t0);
	CHECK(clock.next_tick(t0) == t0 + 10ms);
	/* A little late: the next point of the grid, no drift. */
	CHECK(clock.next_tick(t0 + 13ms) == t0 + 20ms);
	/* Very late: missed points are skipped, not fired back to back. */
	const auto next = clock.next_tick(t0 + 95ms);
	CHECK(next > t0 + 95ms);
	CHECK(next <= t0 + 105ms);
	CHECK((next - t0) % 10ms == 0ms);
}

TEST_CASE("FrameClock: an early or repeated call does not overshoot the next tick", "[frame_clock]")
{
	using namespace std::chrono_literals;
	auto params = stereo48k(Direction::Output);
	params.period_bytes = 7680; /* 40 ms period: a 10 ms tick */
	FrameClock clock(params);
	const auto t0 = FrameClock::Clock::time_point{} + 1000s;
	clock.start(t0);
	CHECK(clock.next_tick(t0 + 5ms) == t0 + 10ms);
	/* Woken early (an eventfd ended the wait at 7 ms): still the 10 ms point. */
	CHECK(clock.next_tick(t0 + 7ms) == t0 + 10ms);
	CHECK(clock.next_tick(t0 + 7ms) == t0 + 10ms);
	/* Exactly on a point: the one after it, never the same point again. */
	CHECK(clock.next_tick(t0 + 10ms) == t0 + 20ms);
	/* Over a long run of on-time ticks the grid stays exact: no drift. */
	auto at = t0 + 20ms;
	for (int i = 0; i < 100000; i++)
		at = clock.next_tick(at + 1us);
	CHECK(at == t0 + 20ms + 100000 * 10ms);
}
