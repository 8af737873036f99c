/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The library's logging interface: a sink receives the formatted lines, the
 * level filters them, and the per-call-site rate limit bounds what a guest
 * repeating one bad chain can write into the host's log.
 */
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "vhostpp/internal/logging.h"
#include "vhostpp/log.h"

using namespace vhostpp;
using namespace std::chrono_literals;

namespace {

struct Captured {
	LogLevel level;
	std::string text;
};

/* Installs a capturing sink for one test case and restores the defaults after. */
struct SinkGuard {
	std::vector<Captured> lines;
	SinkGuard()
	{
		set_log_sink([this](LogLevel level, std::string_view text) {
			lines.push_back({level, std::string(text)});
		});
	}
	~SinkGuard()
	{
		set_log_sink({});
		set_log_level(LogLevel::Info);
		set_log_rate_limit(10);
	}
};

} // namespace

TEST_CASE("the sink receives each formatted message with its level", "[log]")
{
	SinkGuard g;
	set_log_level(LogLevel::Debug);
	logger().error("queue {}: head {} refused", 2, 7);
	logger().debug("debug {}", "line");
	REQUIRE(g.lines.size() == 2);
	CHECK(g.lines[0].level == LogLevel::Error);
	CHECK(g.lines[0].text == "queue 2: head 7 refused");
	CHECK(g.lines[1].level == LogLevel::Debug);
	CHECK(g.lines[1].text == "debug line");
	CHECK(std::string(log_level_name(LogLevel::Warn)) == "warn");
}

TEST_CASE("the level drops what is below it; Off drops everything", "[log]")
{
	SinkGuard g;
	CHECK(log_level() == LogLevel::Info);
	logger().debug("dropped");
	logger().info("kept");
	set_log_level(LogLevel::Error);
	logger().warn("dropped");
	logger().error("kept too");
	set_log_level(LogLevel::Off);
	logger().error("dropped");
	REQUIRE(g.lines.size() == 2);
	CHECK(g.lines[0].text == "kept");
	CHECK(g.lines[1].text == "kept too");
}

TEST_CASE("an empty sink restores the default: nothing reaches the old sink", "[log]")
{
	std::vector<std::string> old;
	set_log_sink([&](LogLevel, std::string_view t) { old.emplace_back(t); });
	set_log_level(LogLevel::Off); /* keep the default stderr sink quiet */
	set_log_sink({});
	set_log_level(LogLevel::Info);
	logger().info("to stderr");
	set_log_level(LogLevel::Info);
	CHECK(old.empty());
}

TEST_CASE("rate limit: at most N a second per call site, then one 'suppressed' count", "[log]")
{
	SinkGuard g;
	set_log_rate_limit(10);
	RateLimit limit;
	const auto t0 = RateLimit::Clock::now();
	uint64_t suppressed = 0;
	unsigned admitted = 0;
	for (int i = 0; i < 100; i++)
		if (limit.admit(suppressed, t0 + std::chrono::milliseconds(i))) {
			admitted++;
			CHECK(suppressed == 0);
		}
	CHECK(admitted == 10);
	/* Still inside the first second: dropped. */
	CHECK_FALSE(limit.admit(suppressed, t0 + 999ms));
	/* The next window admits again and reports the 91 dropped before it. */
	REQUIRE(limit.admit(suppressed, t0 + 1000ms));
	CHECK(suppressed == 91);
	REQUIRE(limit.admit(suppressed, t0 + 1001ms));
	CHECK(suppressed == 0);
}

TEST_CASE("rate limit through the logger: a flood from one site is cut, other sites are not", "[log]")
{
	SinkGuard g;
	set_log_rate_limit(10);
	RateLimit site_a, site_b;
	for (int i = 0; i < 1000; i++)
		logger().error(site_a, "bad chain {}", i);
	logger().error(site_b, "other site");
	logger().error("unlimited");
	/* However slow the machine, 1000 calls yield at most 10 a second from site a. */
	size_t from_a = 0;
	for (const auto &l : g.lines)
		from_a += l.text.rfind("bad chain ", 0) == 0;
	CHECK(from_a >= 10);
	CHECK(g.lines.front().text == "bad chain 0");
	CHECK(g.lines[9].text == "bad chain 9");
	REQUIRE(g.lines.size() >= 12);
	CHECK(g.lines[g.lines.size() - 2].text == "other site");
	CHECK(g.lines.back().text == "unlimited");
	/* Wall-clock bound on how many windows can have passed, never early. */
	CHECK(from_a <= 10 * 60);
}

TEST_CASE("rate limit through the logger: the suppressed count comes before the next line", "[log]")
{
	SinkGuard g;
	set_log_rate_limit(2);
	RateLimit site;
	for (int i = 0; i < 5; i++)
		logger().error(site, "x{}", i);
	/* Let the one-second window close, then log once more. */
	std::this_thread::sleep_for(1100ms);
	logger().error(site, "after");
	REQUIRE(g.lines.size() >= 4);
	CHECK(g.lines[0].text == "x0");
	CHECK(g.lines[1].text == "x1");
	CHECK(g.lines[g.lines.size() - 2].text.find("suppressed") != std::string::npos);
	CHECK(g.lines.back().text == "after");
}

TEST_CASE("rate limit 0 turns limiting off", "[log]")
{
	SinkGuard g;
	set_log_rate_limit(0);
	RateLimit site;
	for (int i = 0; i < 50; i++)
		logger().error(site, "x{}", i);
	CHECK(g.lines.size() == 50);
}
