/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The mixer controls (VIRTIO_SND_F_CTLS) through a real vhost-user socket:
 * every CTL request and its refusals, CTL_NOTIFY on host changes, and the
 * gain arithmetic per format, alone and in the data path.
 */
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <iostream>

#include "device/mixer.h"
#include "device/sample_gain.h"
#include "linux_driver.h"
#include "sound_fixture.h"

using namespace sound_test;
using vhost_sound::Mixer;
namespace vs = vhost_sound::virtio_snd;

namespace {

SoundDevice::Options with_controls(bool input_enabled = false)
{
	SoundDevice::Options options;
	options.controls = true;
	options.input_enabled = input_enabled;
	return options;
}

vs::CtlHdr ctl(uint32_t code, uint32_t id)
{
	return vs::CtlHdr{ { code }, id };
}

/* CTL_READ of control \a id: its value, or nothing unless OK. */
std::optional<uint32_t> read_value(SoundDriver &snd, uint32_t id)
{
	const auto reply = snd.control(ctl(vs::kCtlRead, id), sizeof(vs::Hdr) + sizeof(vs::CtlValue));
	if (reply.status != vs::kStatusOk || reply.payload.size() != sizeof(vs::CtlValue))
		return std::nullopt;
	uint32_t v;
	std::memcpy(&v, reply.payload.data(), 4);
	return v;
}

/* CTL_WRITE of \a value to control \a id: the status. */
uint32_t write_value(SoundDriver &snd, uint32_t id, uint32_t value)
{
	struct {
		vs::CtlHdr hdr;
		vs::CtlValue value;
	} req{};
	req.hdr = ctl(vs::kCtlWrite, id);
	req.value.integer[0] = value;
	return snd.control(req).status;
}

template<typename T>
std::vector<uint8_t> bytes_of(std::initializer_list<T> samples, size_t width = sizeof(T))
{
	std::vector<uint8_t> out;
	for (T s : samples) {
		uint8_t b[sizeof(T)];
		std::memcpy(b, &s, sizeof(T));
		out.insert(out.end(), b, b + width);
	}
	return out;
}

template<typename T>
std::vector<T> samples_of(const std::vector<uint8_t> &bytes, size_t width = sizeof(T))
{
	std::vector<T> out;
	for (size_t at = 0; at + width <= bytes.size(); at += width) {
		T s{};
		std::memcpy(&s, bytes.data() + at, width);
		out.push_back(s);
	}
	return out;
}

std::vector<uint8_t> gained(uint8_t format, uint32_t percent, std::vector<uint8_t> bytes)
{
	vhost_sound::apply_gain(format, percent, std::span(bytes), 0);
	return bytes;
}

} // namespace

TEST_CASE("controls: F_CTLS and 5 controls only with --controls; 12 bytes unchanged", "[mixer]")
{
	SoundDaemon daemon(with_controls());
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	CHECK((driver.features() >> vs::kFeatureCtls) & 1);
	const auto twelve = driver.frontend().get_config(0, 12);
	const auto sixteen = driver.frontend().get_config(0, 16);
	REQUIRE(sixteen.size() == 16);
	CHECK(std::equal(twelve.begin(), twelve.end(), sixteen.begin()));
	uint32_t controls;
	std::memcpy(&controls, sixteen.data() + 12, 4);
	CHECK(controls == Mixer::kCount);
}

TEST_CASE("CTL_INFO: names, types, ranges, access and roles", "[mixer]")
{
	SoundDaemon daemon(with_controls());
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	const auto infos = snd.query<vs::CtlInfo>(vs::kCtlInfo, 0, Mixer::kCount);
	struct Want {
		const char *name;
		uint32_t type, role, access, max;
	};
	const uint32_t rw = 1u << vs::kCtlAccessRead | 1u << vs::kCtlAccessWrite;
	const uint32_t tlv = 1u << vs::kCtlAccessTlvRead;
	const Want want[] = {
		{ "Master Playback Volume", vs::kCtlTypeInteger, vs::kCtlRoleVolume, rw | tlv, 100 },
		{ "Master Playback Switch", vs::kCtlTypeBoolean, vs::kCtlRoleMute, rw, 0 },
		{ "Capture Volume", vs::kCtlTypeInteger, vs::kCtlRoleGain, rw | tlv, 200 },
		{ "Capture Switch", vs::kCtlTypeBoolean, vs::kCtlRoleMute, rw, 0 },
		{ "Host Microphone Capture Switch", vs::kCtlTypeBoolean, vs::kCtlRoleUndefined,
		  1u << vs::kCtlAccessRead, 0 },
	};
	for (uint32_t i = 0; i < Mixer::kCount; i++) {
		INFO("control " << i);
		CHECK(std::string(infos[i].name) == want[i].name);
		CHECK(infos[i].type == want[i].type);
		CHECK(infos[i].role == want[i].role);
		CHECK(infos[i].access == want[i].access);
		CHECK(infos[i].count == 1);
		CHECK(infos[i].index == 0);
		CHECK(infos[i].value.integer.min == 0);
		CHECK(infos[i].value.integer.max == want[i].max);
		CHECK(infos[i].value.integer.step == (want[i].max ? 1u : 0u));
	}
	/* The query's own checks apply: past the end is refused. */
	vs::QueryInfo past{ { vs::kCtlInfo }, 4, 2, sizeof(vs::CtlInfo) };
	CHECK(snd.control(past, 4 + 2 * sizeof(vs::CtlInfo)).status == vs::kStatusBadMsg);
}

TEST_CASE("CTL_READ / CTL_WRITE / CTL_TLV_READ, and every refusal changes nothing", "[mixer][hostile]")
{
	SoundDaemon daemon(with_controls());
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);

	CHECK(read_value(snd, Mixer::kPlaybackVolume) == 100u);
	CHECK(read_value(snd, Mixer::kPlaybackSwitch) == 1u);
	CHECK(read_value(snd, Mixer::kCaptureVolume) == 100u);
	CHECK(read_value(snd, Mixer::kCaptureSwitch) == 1u);
	CHECK(read_value(snd, Mixer::kHostMicrophone) == 0u);

	CHECK(write_value(snd, Mixer::kPlaybackVolume, 50) == vs::kStatusOk);
	CHECK(read_value(snd, Mixer::kPlaybackVolume) == 50u);
	CHECK(write_value(snd, Mixer::kCaptureVolume, 200) == vs::kStatusOk);
	CHECK(write_value(snd, Mixer::kPlaybackSwitch, 0) == vs::kStatusOk);
	CHECK(daemon.on_loop([&] { return daemon.device().stream(0).gain(); }) == 0);
	CHECK(daemon.on_loop([&] { return daemon.device().stream(1).gain(); }) == 200);
	/* STATUS's feeder shows where the gain is applied. */
	CHECK(daemon.on_loop([&] { return daemon.device().stream(0).stats().feeder; })
		      .starts_with("txq -> enabled -> gain 0% -> "));
	CHECK(daemon.on_loop([&] { return daemon.device().stream(1).stats().feeder; }) ==
	      "null (closed) -> no ring -> silenced -> rxq");

	/* Refusals. */
	CHECK(write_value(snd, Mixer::kPlaybackVolume, 101) == vs::kStatusBadMsg);
	CHECK(write_value(snd, Mixer::kCaptureVolume, 201) == vs::kStatusBadMsg);
	CHECK(write_value(snd, Mixer::kCaptureSwitch, 2) == vs::kStatusBadMsg);
	CHECK(write_value(snd, Mixer::kPlaybackVolume, 0xffffffff) == vs::kStatusBadMsg);
	CHECK(write_value(snd, Mixer::kHostMicrophone, 1) == vs::kStatusNotSupp);
	CHECK(write_value(snd, Mixer::kCount, 0) == vs::kStatusBadMsg);
	CHECK(write_value(snd, 0x10000, 0) == vs::kStatusBadMsg);
	CHECK(snd.control(ctl(vs::kCtlWrite, 0)).status == vs::kStatusBadMsg); /* no value */
	CHECK(snd.control(vs::Hdr{ vs::kCtlRead }, 4 + 512).status == vs::kStatusBadMsg);
	CHECK(snd.control(ctl(vs::kCtlRead, 0), 4 + 511).status == vs::kStatusBadMsg);
	CHECK(snd.control(ctl(vs::kCtlRead, Mixer::kCount), 4 + 512).status == vs::kStatusBadMsg);
	CHECK(snd.control(ctl(vs::kCtlEnumItems, 0), 4 + 64).status == vs::kStatusBadMsg);
	CHECK(snd.control(ctl(vs::kCtlTlvRead, Mixer::kPlaybackSwitch), 4 + 64).status ==
	      vs::kStatusNotSupp);
	CHECK(snd.control(ctl(vs::kCtlTlvRead, 0), 4 + 15).status == vs::kStatusBadMsg);
	CHECK(snd.control(ctl(vs::kCtlTlvWrite, 0)).status == vs::kStatusNotSupp);
	CHECK(snd.control(ctl(vs::kCtlTlvCommand, 0)).status == vs::kStatusNotSupp);
	CHECK(snd.control(ctl(vs::kCtlTlvWrite, 99)).status == vs::kStatusBadMsg);
	CHECK(snd.control(ctl(0x0307, 0)).status == vs::kStatusNotSupp);
	CHECK(read_value(snd, Mixer::kPlaybackVolume) == 50u);
	CHECK(read_value(snd, Mixer::kPlaybackSwitch) == 0u);
	CHECK(read_value(snd, Mixer::kCaptureVolume) == 200u);
	CHECK(read_value(snd, Mixer::kCaptureSwitch) == 1u);
	CHECK(read_value(snd, Mixer::kHostMicrophone) == 0u);

	/* The dB scale: DB_LINEAR from mute to 0 dB, and to +6.02 dB for capture. */
	auto tlv = [&](uint32_t id) {
		const auto reply = snd.control(ctl(vs::kCtlTlvRead, id), 4 + 64);
		REQUIRE(reply.status == vs::kStatusOk);
		return samples_of<int32_t>(reply.payload);
	};
	CHECK(tlv(Mixer::kPlaybackVolume) == std::vector<int32_t>{ 2, 8, -9999999, 0 });
	CHECK(tlv(Mixer::kCaptureVolume) == std::vector<int32_t>{ 2, 8, -9999999, 602 });
}

TEST_CASE("CTL_* without the feature negotiated: NOT_SUPP", "[mixer][hostile]")
{
	SoundDaemon daemon(with_controls());
	auto options = sound_driver_options();
	options.features = ~(uint64_t{1} << vs::kFeatureCtls);
	vhostpp::DeviceDriver driver(daemon.socket_path(), options);
	SoundDriver snd(driver);
	vs::QueryInfo query{ { vs::kCtlInfo }, 0, 1, sizeof(vs::CtlInfo) };
	CHECK(snd.control(query, 4 + sizeof(vs::CtlInfo)).status == vs::kStatusNotSupp);
	CHECK(write_value(snd, 0, 10) == vs::kStatusNotSupp);
	CHECK(daemon.on_loop([&] { return daemon.device().mixer().value(0); }) == 100);
}

TEST_CASE("host changes and the host microphone send CTL_NOTIFY; values survive STOP/START, reset on reset",
	  "[mixer]")
{
	SoundDaemon daemon(with_controls());
	{
		vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
		SoundDriver snd(driver);
		EventQueue events(snd);
		events.queue(4);

		REQUIRE(daemon.on_loop([&] { return daemon.device().set_control(Mixer::kPlaybackVolume, 40); }));
		auto e = events.next();
		REQUIRE(e);
		vs::CtlEvent ce;
		std::memcpy(&ce, &*e, sizeof(ce));
		CHECK(ce.hdr.code == vs::kEvtCtlNotify);
		CHECK(ce.control_id == Mixer::kPlaybackVolume);
		CHECK(ce.mask == 1u << vs::kCtlEvtMaskValue);
		CHECK(read_value(snd, Mixer::kPlaybackVolume) == 40u);
		/* The same value again: nothing to tell. */
		CHECK_FALSE(daemon.on_loop([&] { return daemon.device().set_control(Mixer::kPlaybackVolume, 40); }));

		/* Input enabled on the host: the jack, then the read-only control. */
		daemon.on_loop([&] { daemon.device().set_enabled(vs::Direction::Input, true); });
		e = events.next();
		REQUIRE(e);
		CHECK(e->hdr.code == vs::kEvtJackConnected);
		e = events.next();
		REQUIRE(e);
		std::memcpy(&ce, &*e, sizeof(ce));
		CHECK(ce.hdr.code == vs::kEvtCtlNotify);
		CHECK(ce.control_id == Mixer::kHostMicrophone);
		CHECK(read_value(snd, Mixer::kHostMicrophone) == 1u);
		CHECK(write_value(snd, Mixer::kHostMicrophone, 0) == vs::kStatusNotSupp);
		CHECK(read_value(snd, Mixer::kHostMicrophone) == 1u);

		/* A guest write notifies too (another mixer in the guest follows). */
		CHECK(write_value(snd, Mixer::kCaptureSwitch, 0) == vs::kStatusOk);
		e = events.next();
		REQUIRE(e);
		std::memcpy(&ce, &*e, sizeof(ce));
		CHECK(ce.control_id == Mixer::kCaptureSwitch);

		/* The stream's lifecycle leaves the values alone. */
		CHECK(snd.set_params(0, 32768, 8192, vs::kFmtS16, vs::kRate48000, 2) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmStop, 0) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmStop, 0) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmRelease, 0) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusOk);
		CHECK(read_value(snd, Mixer::kPlaybackVolume) == 40u);
		CHECK(read_value(snd, Mixer::kCaptureSwitch) == 0u);
		CHECK(daemon.on_loop([&] { return daemon.device().stream(0).gain(); }) == 40);
	}
	/* The front-end left: a device reset. Defaults again, except the host's microphone. */
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	CHECK(read_value(snd, Mixer::kPlaybackVolume) == 100u);
	CHECK(read_value(snd, Mixer::kCaptureSwitch) == 1u);
	CHECK(read_value(snd, Mixer::kHostMicrophone) == 1u);
	CHECK(daemon.on_loop([&] { return daemon.device().stream(0).gain(); }) == 100);
}

TEST_CASE("gain arithmetic: signed integers truncate toward zero and saturate", "[mixer][gain]")
{
	const auto s16 = bytes_of<int16_t>({ 0, 1, -1, 3, -3, 1000, -1000, 32767, -32768 });
	CHECK(gained(vs::kFmtS16, 100, s16) == s16);
	CHECK(samples_of<int16_t>(gained(vs::kFmtS16, 50, s16)) ==
	      std::vector<int16_t>{ 0, 0, 0, 1, -1, 500, -500, 16383, -16384 });
	CHECK(samples_of<int16_t>(gained(vs::kFmtS16, 0, s16)) == std::vector<int16_t>(9, 0));
	CHECK(samples_of<int16_t>(gained(vs::kFmtS16, 200, s16)) ==
	      std::vector<int16_t>{ 0, 2, -2, 6, -6, 2000, -2000, 32767, -32768 });

	const auto s8 = bytes_of<int8_t>({ 127, -128, 10 });
	CHECK(samples_of<int8_t>(gained(vs::kFmtS8, 50, s8)) == std::vector<int8_t>{ 63, -64, 5 });

	const auto s32 = bytes_of<int32_t>({ INT32_MAX, INT32_MIN, 7 });
	CHECK(samples_of<int32_t>(gained(vs::kFmtS32, 50, s32)) ==
	      std::vector<int32_t>{ 1073741823, -1073741824, 3 });
	CHECK(samples_of<int32_t>(gained(vs::kFmtS32, 200, s32)) ==
	      std::vector<int32_t>{ INT32_MAX, INT32_MIN, 14 });

	/* S24 in 4 bytes: 24 significant bits, the top byte (padding) kept. */
	const auto s24 = bytes_of<uint32_t>({ 0xAB7FFFFFu, 0x00800000u, 0x00FFFFFEu });
	CHECK(samples_of<uint32_t>(gained(vs::kFmtS24, 50, s24)) ==
	      std::vector<uint32_t>{ 0xAB3FFFFFu, 0x00C00000u, 0x00FFFFFFu });
	/* S24_3: three bytes per sample. */
	const auto s24_3 = bytes_of<int32_t>({ 0x7FFFFF, -0x800000 & 0xFFFFFF, 2 }, 3);
	CHECK(samples_of<uint32_t>(gained(vs::kFmtS24_3, 50, s24_3), 3) ==
	      std::vector<uint32_t>{ 0x3FFFFF, 0xC00000, 1 });
}

TEST_CASE("gain arithmetic: unsigned formats around their midpoint", "[mixer][gain]")
{
	const auto u8 = bytes_of<uint8_t>({ 0x80, 0xFF, 0x00, 0x81, 0x7F });
	CHECK(samples_of<uint8_t>(gained(vs::kFmtU8, 50, u8)) ==
	      std::vector<uint8_t>{ 0x80, 0x80 + 63, 0x80 - 64, 0x80, 0x80 });
	CHECK(samples_of<uint8_t>(gained(vs::kFmtU8, 0, u8)) == std::vector<uint8_t>(5, 0x80));
	CHECK(samples_of<uint8_t>(gained(vs::kFmtU8, 200, u8)) ==
	      std::vector<uint8_t>{ 0x80, 0xFF, 0x00, 0x82, 0x7E });
	CHECK(gained(vs::kFmtU8, 100, u8) == u8);

	const auto u16 = bytes_of<uint16_t>({ 0xFFFF, 0x0000, 0x8000 });
	CHECK(samples_of<uint16_t>(gained(vs::kFmtU16, 50, u16)) ==
	      std::vector<uint16_t>{ 0x8000 + 16383, 0x8000 - 16384, 0x8000 });
	const auto u32 = bytes_of<uint32_t>({ 0xFFFFFFFFu, 0u });
	CHECK(samples_of<uint32_t>(gained(vs::kFmtU32, 50, u32)) ==
	      std::vector<uint32_t>{ 0x80000000u + 1073741823u, 0x80000000u - 1073741824u });
	const auto u24 = bytes_of<uint32_t>({ 0x00FFFFFFu });
	CHECK(samples_of<uint32_t>(gained(vs::kFmtU24, 0, u24)) == std::vector<uint32_t>{ 0x00800000u });
}

TEST_CASE("gain arithmetic: floats scale exactly, without clamping", "[mixer][gain]")
{
	const auto f = bytes_of<float>({ 1.0f, -1.0f, 0.25f, 1.5f });
	CHECK(samples_of<float>(gained(vs::kFmtFloat, 50, f)) == std::vector<float>{ 0.5f, -0.5f, 0.125f, 0.75f });
	CHECK(samples_of<float>(gained(vs::kFmtFloat, 200, f)) == std::vector<float>{ 2.0f, -2.0f, 0.5f, 3.0f });
	CHECK(samples_of<float>(gained(vs::kFmtFloat, 0, f)) == std::vector<float>(4, 0.0f));
	const auto d = bytes_of<double>({ 1.0, -0.5 });
	CHECK(samples_of<double>(gained(vs::kFmtFloat64, 50, d)) == std::vector<double>{ 0.5, -0.25 });
}

TEST_CASE("gain arithmetic: a sample split between two regions; the stream offset's phase", "[mixer][gain]")
{
	auto bytes = bytes_of<int16_t>({ 1000, 2000, 3000 });
	/* Regions of 3 and 3 bytes: the second sample straddles them. */
	vhost_sound::apply_gain(vs::kFmtS16, 50,
				{ std::span(bytes).first(3), std::span(bytes).subspan(3) }, 0);
	CHECK(samples_of<int16_t>(bytes) == std::vector<int16_t>{ 500, 1000, 1500 });

	/* A run starting mid-sample: the partial sample at each end is left alone. */
	auto odd = bytes_of<int16_t>({ 1000, 2000, 3000 });
	vhost_sound::apply_gain(vs::kFmtS16, 50, std::span(odd).subspan(1, 4), 1);
	CHECK(samples_of<int16_t>(odd) == std::vector<int16_t>{ 1000, 1000, 3000 });
}

TEST_CASE("playback at 50 %: the back-end gets every sample halved", "[mixer]")
{
	SoundDaemon daemon(with_controls());
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	const PcmConfig config; /* S16 stereo 48 kHz */
	auto sample_at = [](uint64_t index) {
		return static_cast<int16_t>(static_cast<int64_t>(index * 7919 % 65536) - 32768);
	};
	const LinuxPcm::Source source = [&](uint64_t offset, std::span<uint8_t> out) {
		for (size_t i = 0; i < out.size(); i++) {
			const int16_t s = sample_at((offset + i) / 2);
			out[i] = static_cast<uint8_t>(static_cast<uint16_t>(s) >> (8 * ((offset + i) % 2)));
		}
	};
	const size_t periods = 8;
	const size_t data = periods * config.period_bytes;

	REQUIRE(write_value(snd, Mixer::kPlaybackVolume, 50) == vs::kStatusOk);
	LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
	const auto run = pcm.play(periods, source);
	CHECK(run.statuses == std::vector<uint32_t>(run.statuses.size(), vs::kStatusOk));
	const auto rendered = daemon.rendered();
	REQUIRE(rendered.size() >= data);
	size_t wrong = 0;
	for (size_t i = 0; i < data / 2; i++) {
		int16_t got;
		std::memcpy(&got, rendered.data() + 2 * i, 2);
		wrong += got != static_cast<int16_t>(sample_at(i) * 50 / 100);
	}
	CHECK(wrong == 0);
}

TEST_CASE("muted or at volume 0 the output paces as always (never early) and the back-end gets exact silence",
	  "[mixer][timing]")
{
	/* The guest's bytes: never 0 and never 0x80, so neither format's silence can pass for them. */
	const LinuxPcm::Source source = [](uint64_t offset, std::span<uint8_t> out) {
		for (size_t i = 0; i < out.size(); i++) {
			const auto b = static_cast<uint8_t>((offset + i) % 251 + 1);
			out[i] = b == 0x80 ? 0x81 : b;
		}
	};
	struct Silencer {
		const char *name;
		uint32_t control;
		uint32_t value;
	};
	for (const Silencer &how : { Silencer{ "muted", Mixer::kPlaybackSwitch, 0 },
				     Silencer{ "volume 0", Mixer::kPlaybackVolume, 0 } }) {
		/* S16's silence is 0, U8's the midpoint 0x80. */
		for (const uint8_t format : { vs::kFmtS16, vs::kFmtU8 }) {
			INFO(how.name << ", " << vs::format_name(format));
			SoundDaemon daemon(with_controls());
			vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
			SoundDriver snd(driver);
			REQUIRE(write_value(snd, how.control, how.value) == vs::kStatusOk);

			/* Linux's usual geometry: 4 periods of about 42.7 ms, stereo 48 kHz. */
			PcmConfig config;
			config.format = format;
			config.period_bytes = 2048 * 2 * vs::format_info(format)->sample_bytes;
			config.buffer_bytes = 4 * config.period_bytes;
			const double byte_rate = 48000.0 * 2 * vs::format_info(format)->sample_bytes;
			const size_t periods = 24; /* about 1 s */
			const size_t data = periods * config.period_bytes;
			const double nominal = double(data) / byte_rate;

			LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
			const auto run = pcm.play(periods, source);
			std::cout << fmt::format("timing: {} {}: {} periods ({:.4f} s of audio) took {:.4f} s ({:+.2f} %)\n",
						 how.name, vs::format_name(format), periods, nominal, run.seconds,
						 100 * (run.seconds - nominal) / nominal);
			CHECK(run.statuses == std::vector<uint32_t>(periods, vs::kStatusOk));
			CHECK(run.release_status == vs::kStatusOk);
			/* Never early, with no allowance: run.seconds starts before START
			 * reaches the device, whose clock starts at START; a period
			 * completes only once the back-end consumed its last byte, and the
			 * null clock never hands out a frame before it is due. A silenced
			 * stream that completed periods as they arrive (or took silence
			 * from the ring faster) would be early here. */
			CHECK(run.seconds >= nominal);
			/* Late only by scheduling on a loaded machine. */
			CHECK(run.seconds <= nominal * 1.2 + 0.3);

			/* Everything the back-end got is the format's silence: the data
			 * periods and the periods Linux re-queued until STOP alike. */
			const auto rendered = daemon.rendered();
			CHECK(rendered.size() >= data);
			const uint8_t silence = format == vs::kFmtU8 ? 0x80 : 0x00;
			const size_t wrong = static_cast<size_t>(std::count_if(
				rendered.begin(), rendered.end(), [&](uint8_t b) { return b != silence; }));
			CHECK(wrong == 0);
		}
	}
}

TEST_CASE("capture at 50 %: every captured sample halved", "[mixer]")
{
	SoundDaemon daemon(with_controls(true));
	daemon.on_loop([&] { daemon.backend().produce_pattern = true; });
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	REQUIRE(write_value(snd, Mixer::kCaptureVolume, 50) == vs::kStatusOk);
	const PcmConfig config;
	LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
	const auto run = pcm.capture(4);
	REQUIRE(run.captured.size() >= 4 * config.period_bytes);
	size_t wrong = 0;
	for (size_t i = 0; i + 1 < run.captured.size(); i += 2) {
		const int16_t raw = static_cast<int16_t>(RecordingBackend::pattern_byte(i) |
							 RecordingBackend::pattern_byte(i + 1) << 8);
		int16_t got;
		std::memcpy(&got, run.captured.data() + i, 2);
		wrong += got != static_cast<int16_t>(raw * 50 / 100);
	}
	CHECK(wrong == 0);
}
