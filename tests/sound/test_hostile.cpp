/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Hostile guest input specific to virtio-sound: classes 28-31 of
 * shared/hostile-inputs.md. Each ends by checking that the daemon still
 * serves: a normal playback right after.
 */
#include <catch2/catch.hpp>

#include <cstring>

#include <vhostpp/frontend/testing.h>

#include "driver_util.h"

#include "linux_driver.h"
#include "sound_fixture.h"

using namespace sound_test;
namespace vs = vhost_sound::virtio_snd;
using State = PcmStream::State;

namespace {

struct Connected {
	explicit Connected(SoundDevice::Options options = {}) : daemon(options) {}

	SoundDaemon daemon;
	vhostpp::DeviceDriver driver{ daemon.socket_path(), sound_driver_options() };
	SoundDriver snd{ driver };

	State state(uint32_t stream)
	{
		return daemon.on_loop([&] { return daemon.device().stream(stream).state(); });
	}
	std::optional<PcmParams> params(uint32_t stream)
	{
		return daemon.on_loop([&] { return daemon.device().stream(stream).params(); });
	}

	/* The daemon still works: two periods play and come back OK. */
	void still_serves()
	{
		CHECK(daemon.connected());
		PcmConfig config;
		config.period_bytes = 1920; /* 10 ms */
		config.buffer_bytes = 4 * 1920;
		LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
		const auto run = pcm.play(2, [](uint64_t, std::span<uint8_t> out) {
			std::fill(out.begin(), out.end(), 7);
		});
		CHECK(run.statuses == std::vector<uint32_t>{ vs::kStatusOk, vs::kStatusOk });
		CHECK(pcm.in_flight() == 0);
	}

	/* Send one raw I/O chain on \a queue; returns its used element. */
	vhostpp::UsedElement io(unsigned queue, std::vector<vhostpp::DriverBuffer> chain)
	{
		auto &q = driver.queue(queue);
		const uint16_t head = q.add(chain);
		q.kick();
		const auto used = q.wait_used(2000);
		if (!used || used->head != head)
			throw std::runtime_error("I/O message not completed");
		return *used;
	}

	uint64_t put(const void *data, size_t n)
	{
		const uint64_t gpa = driver.memory().allocate(std::max<size_t>(n, 1), 8);
		std::memcpy(driver.memory().at(gpa, n).data(), data, n);
		return gpa;
	}
	uint64_t area(size_t n, uint8_t fill = 0xee)
	{
		const uint64_t gpa = driver.memory().allocate(n, 8);
		std::memset(driver.memory().at(gpa, n).data(), fill, n);
		return gpa;
	}
	vs::PcmStatus status_at(uint64_t gpa)
	{
		vs::PcmStatus st;
		std::memcpy(&st, driver.memory().at(gpa, sizeof(st)).data(), sizeof(st));
		return st;
	}

	/* A well-formed TX message for \a stream with \a bytes of samples. */
	vhostpp::UsedElement tx(uint32_t stream, size_t bytes, uint64_t &status_gpa, unsigned queue = vs::kTxQueue)
	{
		const vs::PcmXfer xfer{ stream };
		status_gpa = area(sizeof(vs::PcmStatus));
		return io(queue, { { put(&xfer, sizeof(xfer)), sizeof(xfer), false },
				   { area(bytes, 1), static_cast<uint32_t>(bytes), false },
				   { status_gpa, sizeof(vs::PcmStatus), true } });
	}
	/* A well-formed RX message for \a stream with room for \a bytes. */
	vhostpp::UsedElement rx(uint32_t stream, size_t bytes, uint64_t &status_gpa, unsigned queue = vs::kRxQueue)
	{
		const vs::PcmXfer xfer{ stream };
		status_gpa = area(sizeof(vs::PcmStatus));
		return io(queue, { { put(&xfer, sizeof(xfer)), sizeof(xfer), false },
				   { area(bytes), static_cast<uint32_t>(bytes), true },
				   { status_gpa, sizeof(vs::PcmStatus), true } });
	}
};

} // namespace

TEST_CASE("class 28: short, unknown and out-of-range control requests", "[hostile]")
{
	Connected c;
	auto &snd = c.snd;

	SECTION("requests shorter than their structure: BAD_MSG")
	{
		const vs::PcmSetParams full{ { { vs::kPcmSetParams }, 0 }, 32768, 8192, 0, 2, vs::kFmtS16,
					     vs::kRate48000, 0 };
		const auto *bytes = reinterpret_cast<const uint8_t *>(&full);
		for (size_t len = 1; len < sizeof(full); len++) {
			INFO("SET_PARAMS of " << len << " bytes");
			CHECK(snd.control({ bytes, len }, 4).status == vs::kStatusBadMsg);
		}
		CHECK(c.state(0) == State::Idle);

		for (uint32_t code : { vs::kPcmPrepare, vs::kPcmStart, vs::kPcmStop, vs::kPcmRelease }) {
			const vs::Hdr hdr{ code };
			CHECK(snd.control(hdr).status == vs::kStatusBadMsg);
		}
		for (uint32_t code : { vs::kJackInfo, vs::kPcmInfo, vs::kChmapInfo }) {
			const vs::QueryInfo q{ { code }, 0, 1, 32 };
			CHECK(snd.control({ reinterpret_cast<const uint8_t *>(&q), 12 }, 4 + 32).status ==
			      vs::kStatusBadMsg);
		}
		const vs::JackRemap remap{ { { vs::kJackRemap }, 0 }, 1, 0 };
		CHECK(snd.control({ reinterpret_cast<const uint8_t *>(&remap), 12 }, 4).status == vs::kStatusBadMsg);
		/* No readable part at all. */
		CHECK(snd.control({}, 4).status == vs::kStatusBadMsg);
	}

	SECTION("a request split over several descriptors reads like one")
	{
		const vs::QueryInfo q{ { vs::kPcmInfo }, 0, 2, sizeof(vs::PcmInfo) };
		const auto *b = reinterpret_cast<const uint8_t *>(&q);
		const uint64_t resp = c.area(4 + 64);
		auto used = c.io(vs::kControlQueue, { { c.put(b, 3), 3, false },
						     { c.put(b + 3, 6), 6, false },
						     { c.put(b + 9, 7), 7, false },
						     { resp, 4, true },
						     { resp + 4, 64, true } });
		CHECK(used.len == 4 + 64);
		CHECK(c.status_at(resp).status == vs::kStatusOk);
	}

	SECTION("unknown request codes: NOT_SUPP")
	{
		for (uint32_t code : { 0u, 3u, 0x00ffu, 0x0106u, 0x0201u, 0x0300u, 0x0306u, 0x1000u,
				       0x8000u, 0xffffffffu }) {
			INFO("code " << code);
			const vs::PcmHdr req{ { code }, 0 };
			CHECK(snd.control(req).status == vs::kStatusNotSupp);
		}
	}

	SECTION("start_id + count past the end, size too small, response too small: BAD_MSG")
	{
		struct Case {
			uint32_t code, start, count, size;
			size_t response;
		};
		const std::vector<Case> cases = {
			{ vs::kJackInfo, 0, 3, 24, 4 + 3 * 24 },
			{ vs::kJackInfo, 2, 1, 24, 4 + 24 },
			{ vs::kPcmInfo, 1, 2, 32, 4 + 64 },
			{ vs::kPcmInfo, 0xffffffffu, 2, 32, 4 + 64 }, /* start + count overflows 32 bits */
			{ vs::kChmapInfo, 0, 17, 24, 4 + 17 * 24 },
			{ vs::kChmapInfo, 16, 0xffffffffu, 24, 4 + 24 },
			{ vs::kPcmInfo, 0, 2, 31, 4 + 64 },            /* item smaller than the structure */
			{ vs::kPcmInfo, 0, 2, 0, 4 + 64 },
			{ vs::kPcmInfo, 0, 2, 32, 4 + 63 },            /* response smaller than count * size */
			{ vs::kJackInfo, 0, 2, 0x80000000u, 4 + 48 },  /* count * size overflows 32 bits */
			{ vs::kPcmInfo, 0, 1, 4097, 4 + 4097 },        /* item larger than 4096 bytes */
		};
		for (const auto &t : cases) {
			INFO("code " << t.code << " start " << t.start << " count " << t.count << " size " << t.size);
			const vs::QueryInfo q{ { t.code }, t.start, t.count, t.size };
			const auto reply = snd.control(q, t.response);
			CHECK(reply.status == vs::kStatusBadMsg);
			CHECK(reply.used_len == 4);
		}
		/* count 0 is a valid, empty answer. */
		const vs::QueryInfo empty{ { vs::kPcmInfo }, 2, 0, 32 };
		CHECK(snd.control(empty, 4).status == vs::kStatusOk);
	}

	SECTION("an item size of up to 4096 bytes is answered, zero after the structure")
	{
		const vs::QueryInfo q{ { vs::kPcmInfo }, 0, 2, 4096 };
		const auto reply = snd.control(q, 4 + 2 * 4096);
		REQUIRE(reply.status == vs::kStatusOk);
		REQUIRE(reply.payload.size() == 2 * 4096);
		for (size_t item = 0; item < 2; item++) {
			INFO("item " << item);
			vs::PcmInfo info;
			std::memcpy(&info, reply.payload.data() + item * 4096, sizeof(info));
			CHECK(info.direction == static_cast<uint8_t>(item == 0 ? vs::Direction::Output : vs::Direction::Input));
			const auto tail = std::span(reply.payload).subspan(item * 4096 + sizeof(info), 4096 - sizeof(info));
			CHECK(std::all_of(tail.begin(), tail.end(), [](uint8_t b) { return b == 0; }));
		}
	}

	SECTION("stream and jack ids out of range: BAD_MSG")
	{
		for (uint32_t id : { 2u, 3u, 0x10000u, 0x80000000u, 0xffffffffu }) {
			INFO("id " << id);
			for (uint32_t code : { vs::kPcmPrepare, vs::kPcmStart, vs::kPcmStop, vs::kPcmRelease })
				CHECK(snd.pcm(code, id) == vs::kStatusBadMsg);
			CHECK(snd.set_params(id, 32768, 8192, vs::kFmtS16, vs::kRate48000, 2) == vs::kStatusBadMsg);
			const vs::JackRemap remap{ { { vs::kJackRemap }, id }, 1, 0 };
			CHECK(snd.control(remap).status == vs::kStatusBadMsg);
		}
	}

	SECTION("response buffers that cannot hold a status are returned with length 0")
	{
		const vs::PcmHdr req{ { vs::kPcmPrepare }, 0 };
		CHECK(snd.control(req, 0).used_len == 0);
		CHECK(snd.control(req, 3).used_len == 0);
		const vs::QueryInfo q{ { vs::kPcmInfo }, 0, 2, 32 };
		CHECK(snd.control(q, 2).used_len == 0);
	}

	c.still_serves();
}

TEST_CASE("class 28, controls: truncated, out-of-range and random CTL_* requests change no value", "[hostile][mixer]")
{
	SoundDevice::Options options;
	options.controls = true;
	Connected c(options);
	auto &snd = c.snd;
	using vhost_sound::Mixer;
	auto values = [&] {
		return c.daemon.on_loop([&] {
			std::vector<uint32_t> v;
			for (uint32_t id = 0; id < Mixer::kCount; id++)
				v.push_back(c.daemon.device().mixer().value(id));
			return v;
		});
	};
	const auto before = values();

	/* A CTL_WRITE of volume 7, cut at every length short of its 520 bytes. */
	struct {
		vs::CtlHdr hdr;
		vs::CtlValue value;
	} write{};
	write.hdr = { { vs::kCtlWrite }, Mixer::kPlaybackVolume };
	write.value.integer[0] = 7;
	const auto *bytes = reinterpret_cast<const uint8_t *>(&write);
	for (size_t len = 0; len < sizeof(write); len++) {
		INFO("CTL_WRITE of " << len << " bytes");
		CHECK(snd.control({ bytes, len }, 4).status == vs::kStatusBadMsg);
	}
	for (uint32_t code : { vs::kCtlEnumItems, vs::kCtlRead, vs::kCtlTlvRead, vs::kCtlTlvWrite,
			       vs::kCtlTlvCommand }) {
		const vs::Hdr hdr{ code };
		CHECK(snd.control(hdr, 4 + 512).status == vs::kStatusBadMsg);
		for (uint32_t id : { uint32_t{Mixer::kCount}, 0x8000u, 0xffffffffu }) {
			const vs::CtlHdr req{ { code }, id };
			CHECK(snd.control(req, 4 + 512).status == vs::kStatusBadMsg);
		}
	}
	/* CTL_INFO: the query rules. */
	for (const vs::QueryInfo &q : { vs::QueryInfo{ { vs::kCtlInfo }, 0, 6, sizeof(vs::CtlInfo) },
					vs::QueryInfo{ { vs::kCtlInfo }, 0xffffffff, 2, sizeof(vs::CtlInfo) },
					vs::QueryInfo{ { vs::kCtlInfo }, 0, 1, sizeof(vs::CtlInfo) - 1 } })
		CHECK(snd.control(q, 4 + 6 * sizeof(vs::CtlInfo)).status == vs::kStatusBadMsg);
	const vs::QueryInfo one{ { vs::kCtlInfo }, 0, 1, sizeof(vs::CtlInfo) };
	CHECK(snd.control(one, 4 + sizeof(vs::CtlInfo) - 1).status == vs::kStatusBadMsg);
	/* Every value out of every range. */
	for (uint32_t id = 0; id < Mixer::kCount; id++) {
		write.hdr.control_id = id;
		for (uint32_t v : { Mixer::max(id) + 1, 0x80000000u, 0xffffffffu }) {
			write.value.integer[0] = v;
			CHECK(snd.control(write).status != vs::kStatusOk);
		}
	}
	/* Random requests with a CTL_* code: whatever they get, nothing changes
	 * but by a well-formed in-range CTL_WRITE, which is then undone. */
	uint32_t seed = 12345;
	auto rnd = [&] { return seed = seed * 1664525u + 1013904223u; };
	std::vector<uint8_t> garbage(520);
	for (int i = 0; i < 500; i++) {
		for (auto &b : garbage)
			b = static_cast<uint8_t>(rnd() >> 24);
		const uint32_t code = vs::kCtlInfo + rnd() % 7;
		std::memcpy(garbage.data(), &code, 4);
		const bool writes = code == vs::kCtlWrite;
		if (writes) /* keep the value out of range */
			garbage[8 + 3] |= 0x80;
		const size_t len = rnd() % garbage.size();
		const auto reply = snd.control({ garbage.data(), len }, rnd() % 1024);
		CHECK(reply.status != vs::kStatusIoErr);
	}
	CHECK(values() == before);
	c.still_serves();
}

TEST_CASE("class 29: SET_PARAMS with parameters not advertised or inconsistent", "[hostile]")
{
	Connected c;
	auto &snd = c.snd;
	struct Case {
		const char *what;
		uint32_t buffer, period, features;
		uint8_t format, rate, channels;
		uint32_t status;
	};
	const std::vector<Case> cases = {
		{ "undefined format", 32768, 8192, 0, 25, vs::kRate48000, 2, vs::kStatusBadMsg },
		{ "undefined format 255", 32768, 8192, 0, 255, vs::kRate48000, 2, vs::kStatusBadMsg },
		{ "mu-law (not advertised)", 32768, 8192, 0, vs::kFmtMuLaw, vs::kRate48000, 2, vs::kStatusNotSupp },
		{ "IMA ADPCM", 32768, 8192, 0, vs::kFmtImaAdpcm, vs::kRate48000, 2, vs::kStatusNotSupp },
		{ "DSD", 32768, 8192, 0, vs::kFmtDsdU32, vs::kRate48000, 2, vs::kStatusNotSupp },
		{ "undefined rate", 32768, 8192, 0, vs::kFmtS16, 16, 2, vs::kStatusBadMsg },
		{ "undefined rate 200", 32768, 8192, 0, vs::kFmtS16, 200, 2, vs::kStatusBadMsg },
		{ "0 channels", 32768, 8192, 0, vs::kFmtS16, vs::kRate48000, 0, vs::kStatusBadMsg },
		{ "9 channels", 32768, 8192, 0, vs::kFmtS16, vs::kRate48000, 9, vs::kStatusNotSupp },
		{ "255 channels", 32768, 8192, 0, vs::kFmtS16, vs::kRate48000, 255, vs::kStatusNotSupp },
		{ "period 0", 32768, 0, 0, vs::kFmtS16, vs::kRate48000, 2, vs::kStatusBadMsg },
		{ "buffer 0", 0, 8192, 0, vs::kFmtS16, vs::kRate48000, 2, vs::kStatusBadMsg },
		{ "period not dividing buffer", 32768, 12288, 0, vs::kFmtS16, vs::kRate48000, 2, vs::kStatusBadMsg },
		{ "period larger than buffer", 8192, 16384, 0, vs::kFmtS16, vs::kRate48000, 2, vs::kStatusBadMsg },
		{ "period not whole frames", 30000, 6000, 0, vs::kFmtS24_3, vs::kRate48000, 7, vs::kStatusBadMsg },
		{ "huge buffer", 0x80000000u, 0x40000000u, 0, vs::kFmtS16, vs::kRate48000, 2, vs::kStatusNotSupp },
		{ "largest buffer", 0xfffffffcu, 4, 0, vs::kFmtS16, vs::kRate48000, 1, vs::kStatusNotSupp },
		{ "SHMEM_HOST", 32768, 8192, 1u << vs::kPcmFeatureShmemHost, vs::kFmtS16, vs::kRate48000, 2, vs::kStatusNotSupp },
		{ "both SHMEM", 32768, 8192, 3, vs::kFmtS16, vs::kRate48000, 2, vs::kStatusNotSupp },
		{ "EVT_XRUNS (not offered)", 32768, 8192, 1u << vs::kPcmFeatureEvtXruns, vs::kFmtS16, vs::kRate48000, 2, vs::kStatusNotSupp },
		{ "undefined feature bit", 32768, 8192, 1u << 31, vs::kFmtS16, vs::kRate48000, 2, vs::kStatusBadMsg },
	};

	auto try_all = [&](uint32_t stream) {
		for (const auto &t : cases) {
			INFO(t.what << " on stream " << stream);
			CHECK(snd.set_params(stream, t.buffer, t.period, t.format, t.rate, t.channels, t.features) ==
			      t.status);
		}
	};

	/* From the initial state: refused, still idle. */
	try_all(1);
	CHECK(c.state(1) == State::Idle);
	CHECK_FALSE(c.params(1));

	/* Prepared with good parameters: every refusal leaves them, the state and
	 * the host stream (input enabled, so that the host stream is the back-end's). */
	c.daemon.on_loop([&] { c.daemon.device().set_enabled(vs::Direction::Input, true); });
	REQUIRE(snd.set_params(1, 19200, 1920, vs::kFmtS16, vs::kRate24000, 2) == vs::kStatusOk);
	REQUIRE(snd.pcm(vs::kPcmPrepare, 1) == vs::kStatusOk);
	try_all(1);
	CHECK(c.state(1) == State::Prepared);
	const auto params = c.params(1);
	REQUIRE(params);
	CHECK(params->rate_hz() == 24000);
	CHECK(params->buffer_bytes == 19200);
	CHECK(c.daemon.on_loop([&] { return c.daemon.backend().open_streams; }) == 1);

	/* The extremes that are advertised are accepted. */
	CHECK(snd.set_params(0, 3 * 8 * 64, 3 * 8 * 16, vs::kFmtS24_3, vs::kRate384000, 8) == vs::kStatusOk);
	CHECK(snd.set_params(0, 8 * 1 * 4, 8, vs::kFmtFloat64, vs::kRate5512, 1) == vs::kStatusOk);
	CHECK(snd.set_params(0, 16u << 20, 1u << 20, vs::kFmtS16, vs::kRate12000, 2) == vs::kStatusOk);
	CHECK(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusOk);
	CHECK(snd.pcm(vs::kPcmRelease, 0) == vs::kStatusOk);

	c.still_serves();
}

TEST_CASE("class 30: I/O in the wrong state, on the wrong queue, without room", "[hostile]")
{
	Connected c;
	auto &snd = c.snd;
	uint64_t st = 0;

	SECTION("I/O for a stream that is not prepared: IO_ERR")
	{
		auto used = c.tx(0, 1920, st);
		CHECK(used.len == sizeof(vs::PcmStatus));
		CHECK(c.status_at(st).status == vs::kStatusIoErr);
		REQUIRE(snd.set_params(0, 7680, 1920, vs::kFmtS16, vs::kRate48000, 2) == vs::kStatusOk);
		c.tx(0, 1920, st);
		CHECK(c.status_at(st).status == vs::kStatusIoErr); /* parameters set, not prepared */
		c.rx(1, 1920, st);
		CHECK(c.status_at(st).status == vs::kStatusIoErr);
	}

	SECTION("the wrong queue for the stream's direction, and bad stream ids: IO_ERR")
	{
		REQUIRE(snd.set_params(0, 7680, 1920, vs::kFmtS16, vs::kRate48000, 2) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusOk);
		REQUIRE(snd.set_params(1, 7680, 1920, vs::kFmtS16, vs::kRate48000, 2) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmPrepare, 1) == vs::kStatusOk);

		c.tx(1, 1920, st); /* input stream on the tx queue */
		CHECK(c.status_at(st).status == vs::kStatusIoErr);
		const vs::PcmXfer out{ 0 };
		st = c.area(8);
		auto used = c.io(vs::kRxQueue, { { c.put(&out, 4), 4, false },
						 { c.area(1920), 1920, true },
						 { st, 8, true } }); /* output stream on the rx queue */
		CHECK(c.status_at(st).status == vs::kStatusIoErr);
		CHECK(used.len == 8);
		for (uint32_t id : { 2u, 0xffffffffu }) {
			c.tx(id, 1920, st);
			CHECK(c.status_at(st).status == vs::kStatusIoErr);
			c.rx(id, 1920, st);
			CHECK(c.status_at(st).status == vs::kStatusIoErr);
		}
		/* Nothing was kept. */
		CHECK(c.daemon.on_loop([&] { return c.daemon.device().stream(0).stats().queued_messages; }) == 0);
	}

	SECTION("without room for the status footer: returned with length 0; only a header: IO_ERR")
	{
		REQUIRE(snd.set_params(0, 7680, 1920, vs::kFmtS16, vs::kRate48000, 2) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusOk);
		REQUIRE(snd.set_params(1, 7680, 1920, vs::kFmtS16, vs::kRate48000, 2) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmPrepare, 1) == vs::kStatusOk);
		const vs::PcmXfer out{ 0 }, in{ 1 };

		/* TX with no writable part, and with 7 bytes of it. */
		auto used = c.io(vs::kTxQueue, { { c.put(&out, 4), 4, false }, { c.area(64, 1), 64, false } });
		CHECK(used.len == 0);
		used = c.io(vs::kTxQueue, { { c.put(&out, 4), 4, false }, { c.area(64, 1), 64, false },
					    { c.area(7), 7, true } });
		CHECK(used.len == 0);
		/* RX of 7 writable bytes. */
		used = c.io(vs::kRxQueue, { { c.put(&in, 4), 4, false }, { c.area(7), 7, true } });
		CHECK(used.len == 0);

		/* Only a header and the status. */
		st = c.area(8);
		used = c.io(vs::kTxQueue, { { c.put(&out, 4), 4, false }, { st, 8, true } });
		CHECK(used.len == 8);
		CHECK(c.status_at(st).status == vs::kStatusIoErr);
		st = c.area(8);
		used = c.io(vs::kRxQueue, { { c.put(&in, 4), 4, false }, { st, 8, true } });
		CHECK(c.status_at(st).status == vs::kStatusIoErr);
		/* A header shorter than 4 bytes. */
		st = c.area(8);
		used = c.io(vs::kTxQueue, { { c.put(&out, 2), 2, false }, { st, 8, true } });
		CHECK(c.status_at(st).status == vs::kStatusIoErr);
		/* No readable part at all on rx. */
		st = c.area(8);
		used = c.io(vs::kRxQueue, { { c.area(64), 64, true }, { st, 8, true } });
		CHECK(c.status_at(st + 0).status == vs::kStatusIoErr);
		CHECK(c.daemon.on_loop([&] { return c.daemon.device().stream(0).stats().queued_messages; }) == 0);
	}

	SECTION("TX after STOP is a normal race: kept, completed OK on RELEASE")
	{
		REQUIRE(snd.set_params(0, 7680, 1920, vs::kFmtS16, vs::kRate48000, 2) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmStop, 0) == vs::kStatusOk);
		auto &q = c.driver.queue(vs::kTxQueue);
		const vs::PcmXfer out{ 0 };
		const uint64_t status = c.area(8);
		const uint16_t head = q.add(std::vector<vhostpp::DriverBuffer>{
			{ c.put(&out, 4), 4, false }, { c.area(1920, 3), 1920, false }, { status, 8, true } });
		q.kick();
		CHECK_FALSE(q.wait_used(100)); /* kept while stopped */
		REQUIRE(snd.pcm(vs::kPcmRelease, 0) == vs::kStatusOk);
		const auto used = q.get_used(); /* before RELEASE's reply */
		REQUIRE(used);
		CHECK(used->head == head);
		CHECK(c.status_at(status).status == vs::kStatusOk);
	}

	c.still_serves();
}

TEST_CASE("class 30, rings: a used ring mapped a second time over the avail ring, so that every completion reads as a new entry: the loop serves on", "[hostile]")
{
	Connected c;
	auto &fe = c.driver.frontend();
	auto &mem = c.driver.memory();
	auto &rx = c.driver.queue(vs::kRxQueue);

	/* The guest's memfd a second time, after the first region in guest and
	 * user space: the library's overlap checks see two separate regions. */
	const vhostpp::wire::MemoryRegion first = mem.region();
	vhostpp::wire::MemoryRegion second = first;
	second.guest_phys_addr = first.guest_phys_addr + first.memory_size;
	second.userspace_addr = first.userspace_addr + first.memory_size;
	const vhostpp::wire::MemoryRegion regions[] = { first, second };
	const auto table = vhostpp::test::mem_table(regions);
	const int fds[] = { mem.fd().get(), mem.fd().get() };

	fe.get_vring_base(vs::kRxQueue);
	vhostpp::testing::send(fe,
			       vhostpp::wire::make_request(vhostpp::wire::Request::SetMemTable, table,
							   vhostpp::wire::kFlagNeedReply),
			       fds);
	const auto ack = vhostpp::testing::receive_reply(fe, vhostpp::wire::Request::SetMemTable, 8);
	CHECK(std::all_of(ack.begin(), ack.end(), [](uint8_t b) { return b == 0; }));
	/* An RX message without room for its status, returned at once with
	 * length 0, published while the ring is stopped. */
	const vs::PcmXfer xfer{ 1 };
	const std::vector<vhostpp::DriverBuffer> message{ { c.put(&xfer, sizeof(xfer)), sizeof(xfer), false } };
	rx.add(message);
	/* The used ring in the second mapping, on the avail ring's own pages:
	 * used->idx is avail->idx, one ahead of the device's position, and every
	 * completion moves both on by one, for ever. */
	auto addr = rx.addresses();
	addr.used_user_addr = second.userspace_addr + (addr.avail_user_addr - first.userspace_addr);
	fe.set_vring_addr(addr);
	fe.set_vring_kick(vs::kRxQueue, &rx.kick_fd());
	rx.kick();

	/* The loop still runs everything else: control requests are answered,
	 * and work posted to it is done. */
	for (int i = 0; i < 20; i++) {
		const vs::QueryInfo q{ { vs::kPcmInfo }, 0, 2, sizeof(vs::PcmInfo) };
		CHECK(c.snd.control(q, 4 + 2 * sizeof(vs::PcmInfo)).status == vs::kStatusOk);
		CHECK(c.state(1) == State::Idle);
	}
}

TEST_CASE("class 31: transitions out of order, PREPARE repeated", "[hostile]")
{
	Connected c;
	auto &snd = c.snd;

	CHECK(snd.pcm(vs::kPcmStart, 0) == vs::kStatusBadMsg); /* START before PREPARE */
	CHECK(snd.pcm(vs::kPcmRelease, 1) == vs::kStatusBadMsg);
	CHECK(c.state(0) == State::Idle);

	REQUIRE(snd.set_params(0, 7680, 1920, vs::kFmtS16, vs::kRate48000, 2) == vs::kStatusOk);
	CHECK(snd.pcm(vs::kPcmStart, 0) == vs::kStatusBadMsg); /* START before PREPARE, with params */

	/* PREPARE many times: one host stream, never more. */
	for (int i = 0; i < 500; i++)
		REQUIRE(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusOk);
	CHECK(c.daemon.on_loop([&] { return c.daemon.backend().open_streams; }) == 1);
	CHECK(c.daemon.on_loop([&] { return c.daemon.backend().opened; }) == 500);

	/* RELEASE while running is refused and the stream keeps running. */
	PcmConfig config;
	config.period_bytes = 1920;
	config.buffer_bytes = 7680;
	LinuxPcm pcm(c.snd, 0, vs::Direction::Output, config);
	pcm.queue_all();
	REQUIRE(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
	CHECK(snd.pcm(vs::kPcmRelease, 0) == vs::kStatusBadMsg);
	CHECK(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusBadMsg);
	CHECK(snd.pcm(vs::kPcmStart, 0) == vs::kStatusBadMsg);
	CHECK(c.state(0) == State::Running);
	PcmRun run;
	for (int i = 0; i < 4; i++)
		pcm.wait_completion(run);
	CHECK(run.statuses == std::vector<uint32_t>(4, vs::kStatusOk));
	pcm.finish(run);
	CHECK(run.release_status == vs::kStatusOk);
	CHECK(c.daemon.on_loop([&] { return c.daemon.backend().open_streams; }) == 0);

	/* Many cycles: no host stream or timer is left behind. */
	for (int i = 0; i < 100; i++) {
		REQUIRE(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmStop, 0) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmRelease, 0) == vs::kStatusOk);
	}
	CHECK(c.daemon.on_loop([&] { return c.daemon.backend().open_streams; }) == 0);

	c.still_serves();
}
