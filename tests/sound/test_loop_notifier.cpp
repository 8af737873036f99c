/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/* LoopNotifier: wakes the loop from another thread, never calls back after destruction. */
#include <catch2/catch.hpp>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <memory>
#include <thread>

#include "audio/loop_notifier.h"

using vhost_sound::LoopNotifier;

TEST_CASE("notify() from another thread runs the callback on the loop's thread", "[loop_notifier]")
{
	boost::asio::io_context io;
	const auto loop_thread = std::this_thread::get_id();
	int calls = 0;
	bool on_loop = true;
	LoopNotifier notifier(io, [&] {
		calls++;
		on_loop = on_loop && std::this_thread::get_id() == loop_thread;
		io.stop();
	});
	std::thread producer([&] { notifier.notify(); });
	io.run_for(std::chrono::seconds(5));
	producer.join();
	CHECK(calls == 1);
	CHECK(on_loop);
}

TEST_CASE("notifications made before the loop runs collapse into one callback", "[loop_notifier]")
{
	boost::asio::io_context io;
	int calls = 0;
	LoopNotifier notifier(io, [&] { calls++; });
	std::thread producer([&] {
		for (int i = 0; i < 1000; i++)
			notifier.notify();
	});
	producer.join();
	io.run_for(std::chrono::milliseconds(100));
	CHECK(calls == 1);

	/* And it keeps working after the first batch. */
	notifier.notify();
	io.restart();
	io.run_for(std::chrono::milliseconds(100));
	CHECK(calls == 2);
}

TEST_CASE("a notification still queued when the notifier is destroyed never calls back", "[loop_notifier]")
{
	boost::asio::io_context io;
	std::atomic<int> calls = 0;
	auto notifier = std::make_unique<LoopNotifier>(io, [&] { calls++; });
	notifier->notify();
	/* Let the reactor see the eventfd readable and queue the completion, then
	 * destroy the notifier before that completion runs: a handler posted
	 * first runs first and destroys it. */
	boost::asio::post(io, [&] { notifier.reset(); });
	io.run_for(std::chrono::milliseconds(200));
	CHECK(!notifier);
	CHECK(calls == 0);
}

TEST_CASE("destroyed after the reactor queued its completion: no callback", "[loop_notifier]")
{
	boost::asio::io_context io;
	int calls = 0;
	/* Two notifiers signalled together become readable in the same reactor
	 * pass, so both completions are queued before either runs. Whichever
	 * runs first destroys the other, whose queued completion must then do
	 * nothing: exactly one callback in all. */
	std::unique_ptr<LoopNotifier> a, b;
	a = std::make_unique<LoopNotifier>(io, [&] {
		calls++;
		b.reset();
	});
	b = std::make_unique<LoopNotifier>(io, [&] {
		calls++;
		a.reset();
	});
	a->notify();
	b->notify();
	io.run_for(std::chrono::milliseconds(200));
	CHECK(calls == 1);
	CHECK((!a) != (!b));
}

TEST_CASE("a callback may destroy its own notifier", "[loop_notifier]")
{
	boost::asio::io_context io;
	int calls = 0;
	std::unique_ptr<LoopNotifier> notifier;
	notifier = std::make_unique<LoopNotifier>(io, [&] {
		calls++;
		notifier.reset();
	});
	notifier->notify();
	io.run_for(std::chrono::milliseconds(200));
	CHECK(calls == 1);
	CHECK(!notifier);
}
