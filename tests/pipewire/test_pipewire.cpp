/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The PipeWire back-end against a real PipeWire daemon (suite 'pipewire'):
 * the real vhost-sound binary with --backend pipewire, driven by the
 * library's front-end acting as the Linux virtio-snd driver; real PipeWire
 * clients (pw-record, pw-cat) at the other end; pw-dump for the graph.
 *
 * Samples carry their frame number, so "sample-exact" means: every frame
 * the guest played arrives, once, in order, bit for bit, with silence (all
 * zero) around them and nothing else.
 */
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <future>

#include "daemon_process.h"
#include "linux_driver.h"
#include "pipewire_session.h"
#include "socket_client.h"

using namespace pipewire_test;
using namespace sound_test;
namespace vs = vhost_sound::virtio_snd;

namespace {

/* ---- the frame-number pattern ---- */

/* S16 stereo frame n: left the low 16 bits of n, right the high bits with
 * bit 14 set, so that no pattern frame is silence. */
void s16_frame(uint64_t n, int16_t out[2])
{
	out[0] = static_cast<int16_t>(static_cast<uint16_t>(n & 0xffff));
	out[1] = static_cast<int16_t>(static_cast<uint16_t>(((n >> 16) & 0x3fff) | 0x4000));
}

std::optional<uint64_t> s16_decode(const int16_t in[2])
{
	const auto right = static_cast<uint16_t>(in[1]);
	if ((right & 0xc000) != 0x4000)
		return std::nullopt;
	return (uint64_t{right & 0x3fffu} << 16) | static_cast<uint16_t>(in[0]);
}

/* FLOAT stereo frame n (n < 2^23): values with 24 significant bits, which
 * an S16 step anywhere on the way would destroy. */
void f32_frame(uint64_t n, float out[2])
{
	out[0] = static_cast<float>(n) / 8388608.0f;
	out[1] = -0.25f - static_cast<float>(n) / 16777216.0f;
}

std::optional<uint64_t> f32_decode(const float in[2])
{
	if (!(in[0] >= 0.0f && in[0] < 1.0f))
		return std::nullopt;
	const auto n = static_cast<uint64_t>(in[0] * 8388608.0f);
	float expect[2];
	f32_frame(n, expect);
	if (std::memcmp(expect, in, sizeof(expect)))
		return std::nullopt;
	return n;
}

/* The guest's application: frames of the pattern at stream offset \a offset. */
LinuxPcm::Source pattern_source(uint8_t format)
{
	return [format](uint64_t offset, std::span<uint8_t> out) {
		const size_t frame = 2 * vs::format_info(format)->sample_bytes;
		for (size_t at = 0; at + frame <= out.size(); at += frame) {
			const uint64_t n = (offset + at) / frame;
			if (format == vs::kFmtS16) {
				int16_t v[2];
				s16_frame(n, v);
				std::memcpy(out.data() + at, v, sizeof(v));
			} else {
				float v[2];
				f32_frame(n, v);
				std::memcpy(out.data() + at, v, sizeof(v));
			}
		}
	};
}

/* What a stretch of interleaved stereo frames holds. */
struct Decoded {
	/* Pattern frame numbers in order, and where each was. */
	std::vector<uint64_t> numbers;
	std::vector<size_t> positions;
	/* Frames neither silence nor pattern. */
	size_t garbage = 0;
	size_t frames = 0;
};

Decoded decode(const std::vector<uint8_t> &bytes, bool is_float)
{
	Decoded d;
	const size_t frame = is_float ? 8 : 4;
	d.frames = bytes.size() / frame;
	for (size_t i = 0; i < d.frames; i++) {
		const uint8_t *p = bytes.data() + i * frame;
		std::optional<uint64_t> n;
		bool silent = true;
		for (size_t b = 0; b < frame; b++)
			silent = silent && p[b] == 0;
		if (is_float) {
			float v[2];
			std::memcpy(v, p, sizeof(v));
			n = f32_decode(v);
		} else {
			int16_t v[2];
			std::memcpy(v, p, sizeof(v));
			n = s16_decode(v);
		}
		if (n) {
			d.numbers.push_back(*n);
			d.positions.push_back(i);
		} else if (!silent) {
			d.garbage++;
		}
	}
	return d;
}

/* True when pattern frame \a n is in \a wav (S16 or float). */
bool has_frame(const Wav &wav, uint64_t n)
{
	const Decoded d = decode(wav.data, wav.format == 3);
	return std::find(d.numbers.begin(), d.numbers.end(), n) != d.numbers.end();
}

/* For failure messages: the runs of consecutive pattern frames. */
std::string runs(const Decoded &d)
{
	std::string out;
	size_t start = 0;
	for (size_t i = 1; i <= d.numbers.size(); i++) {
		if (i < d.numbers.size() && d.numbers[i] == d.numbers[i - 1] + 1 &&
		    d.positions[i] == d.positions[i - 1] + 1)
			continue;
		out += fmt::format("[{}..{} at {}] ", d.numbers[start], d.numbers[i - 1], d.positions[start]);
		start = i;
		if (out.size() > 600) {
			out += "...";
			break;
		}
	}
	return out;
}

/* True when \a d's pattern frames are first .. first+count-1, back to back. */
bool contiguous(const Decoded &d, uint64_t first, size_t count)
{
	if (d.numbers.size() != count)
		return false;
	for (size_t i = 0; i < count; i++) {
		if (d.numbers[i] != first + i || d.positions[i] != d.positions[0] + i)
			return false;
	}
	return true;
}

/* A 48000 Hz stereo S16 WAV file holding pattern frames 0 .. frames-1. */
[[maybe_unused]] std::string write_pattern_wav(const std::string &path, uint32_t frames)
{
	std::vector<uint8_t> data(size_t{frames} * 4);
	for (uint32_t n = 0; n < frames; n++) {
		int16_t v[2];
		s16_frame(n, v);
		std::memcpy(data.data() + size_t{n} * 4, v, 4);
	}
	auto le32 = [](uint32_t v) { return std::string(reinterpret_cast<const char *>(&v), 4); };
	auto le16 = [](uint16_t v) { return std::string(reinterpret_cast<const char *>(&v), 2); };
	std::ofstream out(path, std::ios::binary);
	out << "RIFF" << le32(36 + static_cast<uint32_t>(data.size())) << "WAVE";
	out << "fmt " << le32(16) << le16(1) << le16(2) << le32(48000) << le32(48000 * 4) << le16(4)
	    << le16(16);
	out << "data" << le32(static_cast<uint32_t>(data.size()));
	out.write(reinterpret_cast<const char *>(data.data()), static_cast<std::streamsize>(data.size()));
	return path;
}

/* ---- vhost-sound ---- */

/** The daemon with --backend pipewire, its sockets in the session's directory. */
struct VhostSound {
	std::string socket;
	std::string control;
	std::unique_ptr<DaemonProcess> process;

	VhostSound(PipeWireSession &pw, const std::vector<std::string> &extra)
		: socket(pw.dir() + "/snd.sock"), control(pw.dir() + "/ctl.sock")
	{
		std::vector<std::string> args{ "--socket", socket, "--control-socket", control,
					       "--backend", "pipewire", "--log-level", "info" };
		args.insert(args.end(), extra.begin(), extra.end());
		process = std::make_unique<DaemonProcess>(args);
		if (!query_when_up(control))
			throw std::runtime_error("vhost-sound did not come up: " + stop());
	}

	/** SIGTERM; its stderr (the log). */
	std::string stop()
	{
		process->signal(SIGTERM);
		const auto code = process->wait(5000);
		std::string err = process->err();
		if (code != std::optional<int>(0))
			err += fmt::format("\n(vhost-sound did not exit with 0)");
		return err;
	}

	std::string ask(const std::string &request)
	{
		LineClient client(control);
		return client.ask(request);
	}
};

/* The recorded Linux default at 48 kHz stereo: 4 periods of 2048 frames. */
PcmConfig stereo48k(uint8_t format)
{
	PcmConfig c;
	c.format = format;
	c.rate = vs::kRate48000;
	c.channels = 2;
	const uint32_t frame = 2 * vs::format_info(format)->sample_bytes;
	c.period_bytes = 2048 * frame;
	c.buffer_bytes = 4 * c.period_bytes;
	return c;
}

size_t frames_of(const PcmConfig &c, size_t periods)
{
	return periods * c.period_bytes / (c.channels * vs::format_info(c.format)->sample_bytes);
}

[[maybe_unused]] int count_lines(const std::string &log, const std::string &what)
{
	int n = 0;
	for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1))
		n++;
	return n;
}

} // namespace

TEST_CASE("playback arrives at the sink's monitor sample-exact, S16 and FLOAT", "[pipewire]")
{
	PipeWireSession pw;
	VhostSound daemon(pw, { "--name", "testvm" });
	vhostpp::DeviceDriver driver(daemon.socket, sound_driver_options());
	SoundDriver snd(driver);

	SECTION("S16: bit-exact, and the sink carries exactly s / 32768 as float")
	{
		/* The same monitor read as S16 and as the graph's float. */
		MonitorRecorder as_s16(pw, "s16", "rec-s16");
		MonitorRecorder as_f32(pw, "f32", "rec-f32");
		const PcmConfig c = stereo48k(vs::kFmtS16);
		LinuxPcm pcm(snd, 0, vs::Direction::Output, c);
		const size_t periods = 24; /* 1.02 s */
		const PcmRun run = pcm.play(periods, pattern_source(c.format));
		CHECK(run.statuses == std::vector<uint32_t>(periods, vs::kStatusOk));
		const uint64_t last = frames_of(c, periods) - 1;
		as_s16.wait_for([&](const Wav &w) { return has_frame(w, last); });
		as_f32.wait_for([&](const Wav &w) {
			int16_t s[2];
			s16_frame(last, s);
			const float v[2] = { s[0] / 32768.0f, s[1] / 32768.0f };
			for (size_t at = 0; at + 8 <= w.data.size(); at += 8) {
				if (!std::memcmp(w.data.data() + at, v, 8))
					return true;
			}
			return false;
		});
		const Wav s16 = as_s16.finish();
		const Wav f32 = as_f32.finish();
		INFO(pw.logs());

		REQUIRE(s16.format == 1);
		REQUIRE(s16.bits == 16);
		const Decoded d = decode(s16.data, false);
		INFO("recorded " << d.frames << " frames, " << d.numbers.size() << " pattern frames: " << runs(d));
		CHECK(d.garbage == 0);
		CHECK(contiguous(d, 0, frames_of(c, periods)));

		/* PipeWire's S16 -> float is s / 32768 exactly (and float -> S16
		 * its exact inverse, hence the bit-exact S16 above). */
		REQUIRE(f32.format == 3);
		REQUIRE(f32.bits == 32);
		const size_t n = f32.data.size() / 8;
		size_t pattern = 0, mismatched = 0, first = SIZE_MAX;
		for (size_t i = 0; i < n; i++) {
			float v[2];
			std::memcpy(v, f32.data.data() + i * 8, 8);
			if (v[0] == 0.0f && v[1] == 0.0f)
				continue;
			if (first == SIZE_MAX)
				first = i;
			const uint64_t expect_n = i - first;
			int16_t s[2];
			s16_frame(expect_n, s);
			pattern++;
			if (v[0] != static_cast<float>(s[0]) / 32768.0f || v[1] != static_cast<float>(s[1]) / 32768.0f)
				mismatched++;
		}
		CHECK(pattern == frames_of(c, periods));
		CHECK(mismatched == 0);
	}

	SECTION("FLOAT: bit-exact")
	{
		MonitorRecorder as_f32(pw, "f32", "rec-f32");
		const PcmConfig c = stereo48k(vs::kFmtFloat);
		LinuxPcm pcm(snd, 0, vs::Direction::Output, c);
		const size_t periods = 24;
		const PcmRun run = pcm.play(periods, pattern_source(c.format));
		CHECK(run.statuses == std::vector<uint32_t>(periods, vs::kStatusOk));
		as_f32.wait_for([&](const Wav &w) { return has_frame(w, frames_of(c, periods) - 1); });
		const Wav f32 = as_f32.finish();
		INFO(pw.logs());
		REQUIRE(f32.format == 3);
		const Decoded d = decode(f32.data, true);
		INFO("recorded " << d.frames << " frames, " << d.numbers.size() << " pattern frames: " << runs(d));
		CHECK(d.garbage == 0);
		CHECK(contiguous(d, 0, frames_of(c, periods)));
	}
	INFO(daemon.stop());
}

int main(int argc, char *argv[])
{
	/* Without PipeWire's programs this cannot run: a skip (77) on a
	 * developer's machine, a failure in CI. */
	bool missing = false;
	for (const char *tool : { "pipewire", "wireplumber", "pw-dump", "pw-record", "pw-cat" }) {
		if (std::system(fmt::format("command -v {} >/dev/null 2>&1", tool).c_str()) != 0) {
			std::fprintf(stderr, "%s is not installed\n", tool);
			missing = true;
		}
	}
	if (missing)
		return std::getenv("CI") ? 1 : 77;
	return Catch::Session().run(argc, argv);
}
