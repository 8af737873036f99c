/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The virtio-sound device end to end, through a real vhost-user socket:
 * config space, every information request, the command lifecycle, the
 * STOP/RELEASE race, event buffers, reconnects.
 */
#include <catch2/catch.hpp>

#include <cstring>

#include "linux_driver.h"
#include "sound_fixture.h"

using namespace sound_test;
namespace vs = vhost_sound::virtio_snd;

namespace {

bool all_zero(const uint8_t *p, size_t n)
{
	return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

PcmStream::State state_of(SoundDaemon &daemon, uint32_t stream)
{
	return daemon.on_loop([&] { return daemon.device().stream(stream).state(); });
}

/* What the Linux driver does before audio flows: SET_PARAMS, PREPARE, every
 * period of the ring buffer queued, then START. */
void queue_all_and_start(SoundDriver &snd, LinuxPcm &pcm, uint32_t stream)
{
	pcm.setup();
	pcm.queue_all();
	REQUIRE(snd.pcm(vs::kPcmStart, stream) == vs::kStatusOk);
}

} // namespace

TEST_CASE("config space: 12 and 16 bytes, as QEMU reads them", "[device]")
{
	SoundDaemon daemon;
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	auto &fe = driver.frontend();

	CHECK(fe.get_queue_num() == 4);
	CHECK((driver.protocol_features() >> unsigned(vhostpp::wire::ProtocolFeature::Config)) & 1);
	CHECK_FALSE((driver.features() >> vs::kFeatureCtls) & 1);

	const auto twelve = fe.get_config(0, 12);
	const auto sixteen = fe.get_config(0, 16);
	REQUIRE(twelve.size() == 12);
	REQUIRE(sixteen.size() == 16);
	CHECK(std::equal(twelve.begin(), twelve.end(), sixteen.begin()));
	vs::Config config;
	std::memcpy(&config, sixteen.data(), sizeof(config));
	CHECK(config.jacks == 2);
	CHECK(config.streams == 2);
	CHECK(config.chmaps == 16); /* 1-8 channels, both directions */
	CHECK(config.controls == 0);

	const auto streams = fe.get_config(4, 4);
	CHECK(std::memcmp(streams.data(), &config.streams, 4) == 0);
}

TEST_CASE("JACK_INFO: line out and microphone, remappable, padding zero", "[device]")
{
	SoundDaemon daemon;
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);

	const auto jacks = snd.query<vs::JackInfo>(vs::kJackInfo, 0, 2);
	CHECK(jacks[0].features == 1u << vs::kJackFeatureRemap);
	CHECK(jacks[0].hda_reg_defconf == 0x01014010); /* line out, green, rear, assoc 1 */
	CHECK(jacks[1].hda_reg_defconf == 0x01a19020); /* mic in, pink, rear, assoc 2 */
	CHECK(jacks[0].hda_reg_caps == 0x14);          /* presence detect, output */
	CHECK(jacks[1].hda_reg_caps == 0x24);          /* presence detect, input */
	/* Connected while the host has the direction enabled: output on, input off by default. */
	CHECK(jacks[0].connected == 1);
	CHECK(jacks[1].connected == 0);
	for (const auto &jack : jacks) {
		CHECK(all_zero(jack.padding, sizeof(jack.padding)));
	}

	/* One item from the middle. */
	const auto mic = snd.query<vs::JackInfo>(vs::kJackInfo, 1, 1);
	CHECK(mic[0].hda_reg_defconf == jacks[1].hda_reg_defconf);

	/* JACK_REMAP changes association and sequence. */
	vs::JackRemap remap{ { { vs::kJackRemap }, 0 }, 5, 3 };
	CHECK(snd.control(remap).status == vs::kStatusOk);
	CHECK(snd.query<vs::JackInfo>(vs::kJackInfo, 0, 1)[0].hda_reg_defconf == 0x01014053);
	remap.association = 16;
	CHECK(snd.control(remap).status == vs::kStatusBadMsg);
	CHECK(snd.query<vs::JackInfo>(vs::kJackInfo, 0, 1)[0].hda_reg_defconf == 0x01014053);
}

TEST_CASE("PCM_INFO advertises what the null back-end supports", "[device]")
{
	SoundDaemon daemon;
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);

	const auto streams = snd.query<vs::PcmInfo>(vs::kPcmInfo, 0, 2);
	CHECK(streams[0].direction == uint8_t(vs::Direction::Output));
	CHECK(streams[1].direction == uint8_t(vs::Direction::Input));
	for (const auto &info : streams) {
		CHECK(info.features == 0);
		/* S8 .. FLOAT64: every linear PCM format, the 3-byte ones included. */
		CHECK(info.formats == 0x1ffff8);
		/* All 16 rates, 12000 and 24000 included. */
		CHECK(info.rates == 0xffff);
		CHECK(info.channels_min == 1);
		CHECK(info.channels_max == 8);
		CHECK(all_zero(info.padding, sizeof(info.padding)));
	}
}

TEST_CASE("CHMAP_INFO: a standard map per channel count and direction", "[device]")
{
	SoundDaemon daemon;
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);

	const auto maps = snd.query<vs::ChmapInfo>(vs::kChmapInfo, 0, 16);
	for (unsigned i = 0; i < 16; i++) {
		INFO("map " << i);
		CHECK(maps[i].direction == (i < 8 ? 0 : 1));
		CHECK(maps[i].channels == i % 8 + 1);
		/* Positions past the channel count are zero (padding zeroed). */
		CHECK(all_zero(maps[i].positions + maps[i].channels, vs::kChmapMaxSize - maps[i].channels));
	}
	CHECK(maps[0].positions[0] == vs::kChmapMono);
	CHECK((maps[1].positions[0] == vs::kChmapFl && maps[1].positions[1] == vs::kChmapFr));
	CHECK(maps[15].positions[7] == vs::kChmapSr);
}

TEST_CASE("an information request with a larger item size gets zero-padded items", "[device]")
{
	SoundDaemon daemon;
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);

	const uint32_t size = sizeof(vs::PcmInfo) + 16;
	const vs::QueryInfo request{ { vs::kPcmInfo }, 0, 2, size };
	const auto reply = snd.control(request, 4 + 2 * size);
	REQUIRE(reply.status == vs::kStatusOk);
	CHECK(reply.used_len == 4 + 2 * size);
	REQUIRE(reply.payload.size() == 2 * size);
	vs::PcmInfo second;
	std::memcpy(&second, reply.payload.data() + size, sizeof(second));
	CHECK(second.direction == 1);
	CHECK(all_zero(reply.payload.data() + sizeof(vs::PcmInfo), 16));
	CHECK(all_zero(reply.payload.data() + size + sizeof(vs::PcmInfo), 16));
}

TEST_CASE("the command lifecycle: valid transitions OK, others BAD_MSG and no change", "[device]")
{
	SoundDaemon daemon;
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	using State = PcmStream::State;
	auto set_params = [&] { return snd.set_params(0, 32768, 8192, vs::kFmtS16, vs::kRate48000, 2); };
	auto cmd = [&](uint32_t code) { return snd.pcm(code, 0); };

	/* Idle: only SET_PARAMS. */
	CHECK(cmd(vs::kPcmPrepare) == vs::kStatusBadMsg);
	CHECK(cmd(vs::kPcmStart) == vs::kStatusBadMsg);
	CHECK(cmd(vs::kPcmStop) == vs::kStatusBadMsg);
	CHECK(cmd(vs::kPcmRelease) == vs::kStatusBadMsg);
	CHECK(state_of(daemon, 0) == State::Idle);

	CHECK(set_params() == vs::kStatusOk);
	CHECK(set_params() == vs::kStatusOk);
	CHECK(cmd(vs::kPcmStart) == vs::kStatusBadMsg);
	CHECK(cmd(vs::kPcmStop) == vs::kStatusBadMsg);
	CHECK(cmd(vs::kPcmRelease) == vs::kStatusBadMsg);
	CHECK(state_of(daemon, 0) == State::ParamsSet);

	CHECK(cmd(vs::kPcmPrepare) == vs::kStatusOk);
	CHECK(cmd(vs::kPcmPrepare) == vs::kStatusOk);
	CHECK(cmd(vs::kPcmStop) == vs::kStatusBadMsg);
	CHECK(state_of(daemon, 0) == State::Prepared);
	CHECK(set_params() == vs::kStatusOk); /* prepared -> set parameters is allowed */
	CHECK(cmd(vs::kPcmPrepare) == vs::kStatusOk);

	CHECK(cmd(vs::kPcmStart) == vs::kStatusOk);
	CHECK(state_of(daemon, 0) == State::Running);
	CHECK(cmd(vs::kPcmStart) == vs::kStatusBadMsg);
	CHECK(cmd(vs::kPcmPrepare) == vs::kStatusBadMsg);
	CHECK(cmd(vs::kPcmRelease) == vs::kStatusBadMsg);
	CHECK(set_params() == vs::kStatusBadMsg);
	CHECK(state_of(daemon, 0) == State::Running);

	CHECK(cmd(vs::kPcmStop) == vs::kStatusOk);
	CHECK(cmd(vs::kPcmStop) == vs::kStatusBadMsg);
	CHECK(cmd(vs::kPcmPrepare) == vs::kStatusBadMsg);
	CHECK(set_params() == vs::kStatusBadMsg);
	CHECK(state_of(daemon, 0) == State::Stopped);
	CHECK(cmd(vs::kPcmStart) == vs::kStatusOk);
	CHECK(cmd(vs::kPcmStop) == vs::kStatusOk);

	CHECK(cmd(vs::kPcmRelease) == vs::kStatusOk);
	CHECK(state_of(daemon, 0) == State::Released);
	CHECK(cmd(vs::kPcmRelease) == vs::kStatusBadMsg);
	CHECK(cmd(vs::kPcmStart) == vs::kStatusBadMsg);
	CHECK(cmd(vs::kPcmPrepare) == vs::kStatusOk); /* released -> prepare, old parameters */
	CHECK(cmd(vs::kPcmRelease) == vs::kStatusOk);
	CHECK(set_params() == vs::kStatusOk); /* released -> set parameters */
	CHECK(daemon.on_loop([&] { return daemon.backend().open_streams; }) == 0);
}

TEST_CASE("the STOP race: TX queued around PCM_STOP completes, all before RELEASE's reply", "[device]")
{
	SoundDaemon daemon;
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	/* 250 ms periods: the next completion is far off while the test sends STOP. */
	PcmConfig config;
	config.period_bytes = 48000;
	config.buffer_bytes = 4 * 48000;

	SECTION("queued, started, stopped at once, released")
	{
		LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
		queue_all_and_start(snd, pcm, 0);
		PcmRun run;
		pcm.finish(run);
		CHECK(run.stop_status == vs::kStatusOk);
		CHECK(run.release_status == vs::kStatusOk);
		CHECK(pcm.in_flight() == 0);
		CHECK(run.returned_before_release_reply == run.returned_after_release);
	}

	SECTION("a period completes, STOP, the driver's re-queue arrives after STOP, RELEASE")
	{
		LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
		queue_all_and_start(snd, pcm, 0);
		PcmRun run;
		const size_t slot = pcm.wait_completion(run);
		CHECK(run.statuses.at(0) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmStop, 0) == vs::kStatusOk);
		/* TX for a stopped stream: kept, not an error. */
		pcm.queue_slot(slot);
		pcm.kick();
		CHECK(state_of(daemon, 0) == PcmStream::State::Stopped);
		const size_t kept = daemon.on_loop([&] { return daemon.device().stream(0).stats().queued_messages; });
		CHECK(kept == 4);

		const uint32_t release = snd.pcm(vs::kPcmRelease, 0);
		CHECK(release == vs::kStatusOk);
		size_t before_reply = 0;
		while (auto used = pcm.io_queue().get_used()) {
			before_reply++;
			(void)used;
		}
		CHECK(before_reply == 4);
		/* Nothing more comes back later. */
		CHECK_FALSE(pcm.io_queue().wait_used(100));
	}

	SECTION("STOP keeps pending buffers and START resumes them")
	{
		LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
		queue_all_and_start(snd, pcm, 0);
		PcmRun run;
		pcm.wait_completion(run);
		REQUIRE(snd.pcm(vs::kPcmStop, 0) == vs::kStatusOk);
		/* Stopped: the clock is off, nothing completes. */
		CHECK_FALSE(pcm.io_queue().wait_used(150));
		REQUIRE(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
		for (int i = 0; i < 3; i++)
			pcm.wait_completion(run);
		CHECK(run.statuses == std::vector<uint32_t>(4, vs::kStatusOk));
		pcm.finish(run);
		CHECK(pcm.in_flight() == 0);
	}

	CHECK(daemon.connected());
}

TEST_CASE("capture RELEASE returns partly filled buffers with what they got", "[device]")
{
	SoundDaemon daemon;
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	PcmConfig config;
	config.period_bytes = 48000;
	config.buffer_bytes = 4 * 48000;
	LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
	queue_all_and_start(snd, pcm, 1);
	PcmRun run;
	pcm.wait_completion(run);
	REQUIRE(snd.pcm(vs::kPcmStop, 1) == vs::kStatusOk);
	REQUIRE(snd.pcm(vs::kPcmRelease, 1) == vs::kStatusOk);
	size_t partial = 0, full = 0;
	while (auto used = pcm.io_queue().get_used()) {
		/* Status footer plus the bytes captured so far (the spec's end-of-stream exception). */
		CHECK(used->len >= sizeof(vs::PcmStatus));
		CHECK(used->len <= sizeof(vs::PcmStatus) + config.period_bytes);
		(used->len == sizeof(vs::PcmStatus) + config.period_bytes ? full : partial)++;
	}
	/* All three came back before RELEASE's reply; the head one was partly filled
	 * (a full one completes at once). */
	CHECK(partial + full == 3);
	CHECK(partial >= 1);
}

TEST_CASE("event buffers are kept; malformed ones are returned", "[device]")
{
	SoundDaemon daemon;
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	auto &q = driver.queue(vs::kEventQueue);
	auto &mem = driver.memory();
	for (int i = 0; i < 4; i++) {
		const vhostpp::DriverBuffer b{ mem.allocate(8), 8, true };
		q.add({ &b, 1 });
	}
	const vhostpp::DriverBuffer readable{ mem.allocate(8), 8, false };
	const uint16_t bad = q.add({ &readable, 1 });
	const vhostpp::DriverBuffer small{ mem.allocate(8), 4, true };
	const uint16_t too_small = q.add({ &small, 1 });
	q.kick();

	std::vector<uint16_t> returned;
	while (auto used = q.wait_used(300)) {
		CHECK(used->len == 0);
		returned.push_back(used->head);
	}
	CHECK(returned == std::vector<uint16_t>{ bad, too_small });
	CHECK(daemon.on_loop([&] { return daemon.device().kept_event_buffers(); }) == 4);
}

TEST_CASE("a front-end that leaves mid-stream resets the device; the next one plays", "[device]")
{
	SoundDaemon daemon;
	PcmConfig config;
	{
		vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
		SoundDriver snd(driver);
		LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
		queue_all_and_start(snd, pcm, 0);
		PcmRun run;
		pcm.wait_completion(run);
	} /* disconnects while running */

	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	CHECK(state_of(daemon, 0) == PcmStream::State::Idle);
	CHECK(daemon.on_loop([&] { return daemon.backend().open_streams; }) == 0);
	LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
	const auto run = pcm.play(2, [](uint64_t, std::span<uint8_t> out) { std::fill(out.begin(), out.end(), 1); });
	CHECK(run.statuses == std::vector<uint32_t>{ vs::kStatusOk, vs::kStatusOk });
	CHECK(pcm.in_flight() == 0);
}

TEST_CASE("a VM pause hands held TX buffers back: GET_VRING_BASE rewinds past them", "[device]")
{
	/* QEMU pauses a VM with SET_VRING_ENABLE 0 and GET_VRING_BASE; on resume it
	 * starts the ring at the base it got. Buffers the device held then must be
	 * fetched again, or the guest driver waits for them forever. */
	SoundDaemon daemon;
	PcmConfig config;
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
	queue_all_and_start(snd, pcm, 0);
	PcmRun run;
	pcm.wait_completion(run);
	REQUIRE(pcm.in_flight() > 0);

	auto &fe = driver.frontend();
	fe.set_vring_enable(vs::kTxQueue, false);
	const uint32_t base = fe.get_vring_base(vs::kTxQueue);
	auto &q = pcm.io_queue();
	/* Nothing completes once the ring is stopped, so this is final. */
	const uint16_t used = q.used_idx();
	CHECK(uint16_t(q.avail_idx() - used) == pcm.in_flight());
	CHECK(base == used);
	CHECK(daemon.connected());
}

TEST_CASE("a VM pause and resume: every held TX sample is played exactly once", "[device]")
{
	/* The held buffers come back after the resume (see above). Their samples
	 * already copied into the ring before the pause must not be copied again:
	 * QEMU stop/cont in the middle of an aplay repeated ~135 ms of audio. */
	SoundDaemon daemon;
	PcmConfig config;
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
	queue_all_and_start(snd, pcm, 0);
	PcmRun run;
	pcm.wait_completion(run);
	const size_t held = pcm.in_flight();
	REQUIRE(held > 0);

	auto &fe = driver.frontend();
	auto &q = pcm.io_queue();
	fe.set_vring_enable(vs::kTxQueue, false);
	const uint32_t base = fe.get_vring_base(vs::kTxQueue);
	/* Samples of the held buffers are in the ring already: without them this
	 * test could not tell a repeat. */
	const size_t in_ring = daemon.on_loop([&] { return daemon.device().stream(0).stats().ring_fill; });
	REQUIRE(in_ring > 0);

	/* Resume as QEMU does: the ring again from the base it got. */
	fe.set_vring_num(vs::kTxQueue, q.size());
	fe.set_vring_base(vs::kTxQueue, base);
	fe.set_vring_addr(q.addresses());
	fe.set_vring_kick(vs::kTxQueue, &q.kick_fd());
	fe.set_vring_enable(vs::kTxQueue, true);
	for (size_t i = 0; i < held; i++)
		pcm.wait_completion(run);
	CHECK(run.statuses == std::vector<uint32_t>(held + 1, vs::kStatusOk));
	pcm.finish(run);
	CHECK(daemon.rendered().size() == (held + 1) * config.period_bytes);
	CHECK(daemon.connected());
}
