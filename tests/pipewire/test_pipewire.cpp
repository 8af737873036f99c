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
std::string write_pattern_wav(const std::string &path, uint32_t frames)
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
					       "--backend", "pipewire" };
		args.insert(args.end(), extra.begin(), extra.end());
		if (std::find(extra.begin(), extra.end(), "--log-level") == extra.end())
			args.insert(args.end(), { "--log-level", "info" });
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

int count_lines(const std::string &log, const std::string &what)
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

TEST_CASE("node properties are what a desktop user expects; --pipewire-target pins the sink", "[pipewire]")
{
	PipeWireSession pw;
	const bool pinned = GENERATE(false, true);
	std::vector<std::string> args{ "--name", "testvm", "--streams", "output,input" };
	if (pinned)
		args.insert(args.end(), { "--pipewire-target", "test-sink-2" });
	VhostSound daemon(pw, args);
	vhostpp::DeviceDriver driver(daemon.socket, sound_driver_options());
	SoundDriver snd(driver);
	const PcmConfig c = stereo48k(vs::kFmtS16);
	LinuxPcm out(snd, 0, vs::Direction::Output, c);
	LinuxPcm in(snd, 1, vs::Direction::Input, c);
	out.setup();
	in.setup();

	const std::string sink = pinned ? "test-sink-2" : "test-sink";
	try {
		PipeWireSession::wait_until("both nodes linked", 20s, [&] {
			const auto graph = pw.dump();
			/* Linked, inactive until START. */
			return PipeWireSession::linked(graph, "vhost-sound.output.testvm", sink, false) &&
			       PipeWireSession::linked(graph, "vhost-sound.input.testvm", "test-source", false);
		});
	} catch (const std::exception &e) {
		FAIL(e.what() << "\n" << pw.logs());
	}
	const auto graph = pw.dump();
	INFO(graph.dump(1));
	const auto output = PipeWireSession::nodes(graph, "vhost-sound.output.testvm");
	const auto input = PipeWireSession::nodes(graph, "vhost-sound.input.testvm");
	REQUIRE(output.size() == 1);
	REQUIRE(input.size() == 1);
	const auto &po = output[0]["info"]["props"];
	const auto &pi = input[0]["info"]["props"];
	CHECK(po.value("node.description", "") == "VM testvm playback");
	CHECK(pi.value("node.description", "") == "VM testvm capture");
	CHECK(po.value("media.class", "") == "Stream/Output/Audio");
	CHECK(pi.value("media.class", "") == "Stream/Input/Audio");
	for (const auto *props : { &po, &pi }) {
		CHECK(props->value("media.role", "") == "Music");
		CHECK(props->value("application.name", "") == "vhost-sound");
		/* Period 2048 frames, look-ahead cap (8192 - 2048) / 2 = 3072: half of 2048. */
		CHECK(props->value("node.latency", "") == "1024/48000");
		CHECK(props->value("node.rate", "") == "1/48000");
		CHECK(props->value("target.object", "") == (pinned ? "test-sink-2" : ""));
	}
	/* PREPARE connects the stream inactive: nothing runs before START. */
	CHECK(output[0]["info"].value("state", "") != "running");

	/* STATUS names the same nodes, by the ids pw-dump shows. */
	const std::string status = daemon.ask("STATUS");
	REQUIRE(status.rfind("OK {", 0) == 0);
	const auto details = nlohmann::json::parse(status.substr(3))["backend"]["details"];
	INFO(details.dump());
	CHECK(details["remote"] == "pipewire-0");
	CHECK(details["connection"] == "connected");
	CHECK(details.value("target", "") == (pinned ? "test-sink-2" : ""));
	CHECK(details["output.node_name"] == "vhost-sound.output.testvm");
	CHECK(details["input.node_name"] == "vhost-sound.input.testvm");
	CHECK(details["output.node_id"] == std::to_string(output[0]["id"].get<int>()));
	CHECK(details["input.node_id"] == std::to_string(input[0]["id"].get<int>()));
	CHECK(details["output.stream_state"] == "paused");
	INFO(daemon.stop());
}

TEST_CASE("capture: a client plays into the null source and the guest receives it", "[pipewire]")
{
	PipeWireSession pw;
	const std::string wav = write_pattern_wav(pw.dir() + "/pattern.wav", 48000 * 20);
	Player player(pw, wav, "test-player", "test-source");
	VhostSound daemon(pw, { "--streams", "output,input" });
	vhostpp::DeviceDriver driver(daemon.socket, sound_driver_options());
	SoundDriver snd(driver);
	const PcmConfig c = stereo48k(vs::kFmtS16);
	LinuxPcm pcm(snd, 1, vs::Direction::Input, c);
	const size_t periods = 24;
	const PcmRun run = pcm.capture(periods);
	INFO(pw.logs());
	CHECK(run.statuses == std::vector<uint32_t>(periods, vs::kStatusOk));
	const Decoded d = decode(run.captured, false);
	INFO("captured " << d.frames << " frames: " << runs(d));
	REQUIRE_FALSE(d.numbers.empty());
	CHECK(d.garbage == 0);
	/* The player was running before the stream was linked: the pattern
	 * starts at once (within the first cycles) and runs to the end, no
	 * frame lost or repeated. */
	CHECK(d.positions[0] < 4096);
	CHECK(contiguous(d, d.numbers[0], d.frames - d.positions[0]));
	INFO(daemon.stop());
}

TEST_CASE("input disabled: no input node and zeros; enabled: node and data; during one capture", "[pipewire]")
{
	PipeWireSession pw;
	const std::string wav = write_pattern_wav(pw.dir() + "/pattern.wav", 48000 * 30);
	Player player(pw, wav, "test-player", "test-source");
	VhostSound daemon(pw, { "--streams", "output" });
	vhostpp::DeviceDriver driver(daemon.socket, sound_driver_options());
	SoundDriver snd(driver);
	const PcmConfig c = stereo48k(vs::kFmtS16);
	LinuxPcm pcm(snd, 1, vs::Direction::Input, c);
	const size_t periods = 5 * 48000 / 2048; /* 5 s */

	auto input_nodes = [&] { return PipeWireSession::nodes(pw.dump(), "vhost-sound.input").size(); };
	const auto t0 = Clock::now();
	auto capture = std::async(std::launch::async, [&] { return pcm.capture(periods); });
	auto since = [&](Clock::time_point t) { return std::chrono::duration<double>(t - t0).count(); };

	/* Off: capturing, and still no node. */
	PipeWireSession::wait_until("the capture to run a second", 5s, [&] { return Clock::now() > t0 + 1s; });
	const size_t nodes_while_off = input_nodes();
	const auto t_on = Clock::now();
	const std::string on = daemon.ask("SET input on");
	PipeWireSession::wait_until("the input node linked to the source", 20s, [&] {
		return PipeWireSession::linked(pw.dump(), "vhost-sound.input", "test-source");
	});
	PipeWireSession::wait_until("1.5 s of enabled input", 5s, [&] { return Clock::now() > t_on + 1500ms; });
	const auto t_off = Clock::now();
	const std::string off = daemon.ask("SET input off");
	const size_t nodes_after_off = input_nodes();
	const PcmRun run = capture.get();
	INFO(pw.logs());

	CHECK(nodes_while_off == 0);
	CHECK(on == "OK input on");
	CHECK(off == "OK input off");
	/* Closed as SET returns: the desktop shows no microphone in use at once. */
	CHECK(nodes_after_off == 0);
	CHECK(run.statuses == std::vector<uint32_t>(periods, vs::kStatusOk));

	/* Zeros, then the pattern back to back, then zeros: nothing else. */
	const Decoded d = decode(run.captured, false);
	INFO("captured " << d.frames << " frames: " << runs(d) << "; on at " << since(t_on) << " s, off at "
			 << since(t_off) << " s");
	REQUIRE_FALSE(d.numbers.empty());
	CHECK(d.garbage == 0);
	CHECK(contiguous(d, d.numbers[0], d.numbers.size()));
	/* Never early: no captured frame from before SET input on. Stream time
	 * runs behind wall time by as much as the capture was late (it started
	 * after t0; a loaded machine delays periods), so that lateness is
	 * allowed on top of 50 ms. */
	const double late = std::max(0.0, run.seconds - static_cast<double>(d.frames) / 48000.0);
	INFO("the capture ended " << late << " s late");
	CHECK(d.positions[0] / 48000.0 >= since(t_on) - 0.05 - late);
	/* And none after SET input off: frames that arrived late are silence. */
	CHECK((d.positions.back() + 1) / 48000.0 <= since(t_off) + 0.05);
	/* It flowed for most of the enabled 1.5 s. */
	CHECK(d.numbers.size() >= 48000);
	INFO(daemon.stop());
}

TEST_CASE("PipeWire killed mid-stream: the guest keeps its pace, audio comes back by itself", "[pipewire]")
{
	PipeWireSession pw;
	VhostSound daemon(pw, { "--name", "vm" });
	const std::string node = "vhost-sound.output.vm";
	const PcmConfig c = stereo48k(vs::kFmtS16);
	const size_t periods = 8 * 48000 / 2048; /* 8 s */
	const double nominal = frames_of(c, periods) / 48000.0;

	std::unique_ptr<MonitorRecorder> before = std::make_unique<MonitorRecorder>(pw, "s16", "rec-before");
	vhostpp::DeviceDriver driver(daemon.socket, sound_driver_options());
	SoundDriver snd(driver);
	LinuxPcm pcm(snd, 0, vs::Direction::Output, c);
	const auto t0 = Clock::now();
	auto play = std::async(std::launch::async, [&] { return pcm.play(periods, pattern_source(c.format)); });

	/* Samples are arriving; then the daemon dies (and WirePlumber with it). */
	before->wait_for([](const Wav &w) { return !decode(w.data, false).numbers.empty(); });
	const Decoded first = decode(before->snapshot().data, false);
	PipeWireSession::wait_until("1.5 s of playback", 5s, [&] { return Clock::now() > t0 + 1500ms; });
	pw.kill_daemon();
	before.reset();
	const auto t_kill = Clock::now();

	/* Three seconds without PipeWire, then it is back; nobody touches the
	 * guest. Longer than the lateness allowed below, so a guest that stalled
	 * with PipeWire fails that bound on any machine. */
	auto details = [&] {
		const std::string status = daemon.ask("STATUS");
		REQUIRE(status.rfind("OK {", 0) == 0);
		return nlohmann::json::parse(status.substr(3))["backend"]["details"];
	};
	/* STATUS says so while PipeWire is away: no node to name. */
	PipeWireSession::wait_until("STATUS to report the connection lost", 10s,
				    [&] { return details()["connection"] != "connected"; });
	const auto away = details();
	PipeWireSession::wait_until("3 s without PipeWire", 10s, [&] { return Clock::now() > t_kill + 3s; });
	const bool alive_meanwhile = daemon.process->pid() > 0 && !daemon.process->wait(0);
	pw.start();
	PipeWireSession::wait_until("the output node back and linked", 20s,
				    [&] { return PipeWireSession::linked(pw.dump(), node, "test-sink"); });
	const double back_after = std::chrono::duration<double>(Clock::now() - t_kill).count();
	/* Back: the new node's id, as the new daemon numbers it. */
	const auto back = details();
	const auto nodes_back = PipeWireSession::nodes(pw.dump(), node);
	MonitorRecorder after(pw, "s16", "rec-after");
	after.wait_for([](const Wav &w) { return decode(w.data, false).numbers.size() >= 48000 / 2; });
	const PcmRun run = play.get();
	const Wav recorded = after.finish();
	INFO(pw.logs());

	CHECK(alive_meanwhile);
	CHECK_FALSE(first.numbers.empty());
	INFO("STATUS while away: " << away.dump() << "; back: " << back.dump());
	CHECK(away["connection"].get<std::string>().rfind("disconnected", 0) == 0);
	CHECK_FALSE(away.contains("output.node_id"));
	CHECK(away["output.node_name"] == node);
	CHECK(back["connection"] == "connected");
	REQUIRE(nodes_back.size() == 1);
	CHECK(back["output.node_id"] == std::to_string(nodes_back[0]["id"].get<int>()));
	/* The guest never saw an error and kept real time: never early, and
	 * late by at most a generous two seconds on a loaded machine. */
	CHECK(run.statuses == std::vector<uint32_t>(periods, vs::kStatusOk));
	INFO("played " << run.seconds << " s for " << nominal << " s of audio; PipeWire back after "
		       << back_after << " s");
	CHECK(run.seconds >= nominal - 0.05);
	CHECK(run.seconds <= nominal + 2.0);

	/* After the restart the pattern arrives again, back to back, from
	 * where the guest is now. */
	const Decoded d = decode(recorded.data, false);
	INFO("after the restart: " << runs(d));
	REQUIRE(d.numbers.size() >= 48000 / 2);
	CHECK(d.garbage == 0);
	CHECK(d.numbers[0] > static_cast<uint64_t>(48000 * 2.5));
	CHECK(contiguous(d, d.numbers[0], d.numbers.size()));

	const std::string log = daemon.stop();
	INFO(log);
	CHECK(count_lines(log, "connection lost") == 1);
	CHECK(count_lines(log, "again; 1 stream(s) back on PipeWire") == 1);
}

TEST_CASE("output disabled: the node goes inactive and the guest keeps its pace; enabled: active again",
	  "[pipewire]")
{
	PipeWireSession pw;
	VhostSound daemon(pw, { "--name", "vm" });
	const std::string node = "vhost-sound.output.vm";
	const PcmConfig c = stereo48k(vs::kFmtS16);
	/* 8 s: long enough that the node is seen running again before the end
	 * even when every transition below takes seconds on a loaded machine. */
	const size_t periods = 8 * 48000 / 2048;
	const double nominal = frames_of(c, periods) / 48000.0;
	vhostpp::DeviceDriver driver(daemon.socket, sound_driver_options());
	SoundDriver snd(driver);
	LinuxPcm pcm(snd, 0, vs::Direction::Output, c);

	auto state = [&] {
		const auto found = PipeWireSession::nodes(pw.dump(), node);
		return found.size() == 1 ? found[0]["info"].value("state", "") : std::string("(no node)");
	};
	const auto t0 = Clock::now();
	auto play = std::async(std::launch::async, [&] { return pcm.play(periods, pattern_source(c.format)); });
	PipeWireSession::wait_until("the output node running", 20s, [&] { return state() == "running"; });
	PipeWireSession::wait_until("1 s of playback", 20s, [&] { return Clock::now() > t0 + 1s; });

	const std::string off = daemon.ask("SET output off");
	std::string while_off;
	PipeWireSession::wait_until("the output node not running", 20s, [&] {
		while_off = state();
		return while_off != "running";
	});
	/* It stays so: PipeWire does not drive it, the daemon's clock does. */
	const auto t_off = Clock::now();
	std::vector<std::string> states_off;
	while (Clock::now() < t_off + 1500ms) {
		states_off.push_back(state());
		std::this_thread::sleep_for(100ms);
	}
	const std::string on = daemon.ask("SET output on");
	PipeWireSession::wait_until("the output node running again", 20s, [&] { return state() == "running"; });
	/* Running again because of SET output on, not left over from a stop. */
	const bool still_playing = play.wait_for(0s) != std::future_status::ready;
	const PcmRun run = play.get();
	INFO(pw.logs());

	CHECK(off == "OK output off");
	CHECK(on == "OK output on");
	CHECK(still_playing);
	INFO("node state while output was off: " << while_off);
	CHECK(std::count(states_off.begin(), states_off.end(), "running") == 0);
	CHECK(std::count(states_off.begin(), states_off.end(), "(no node)") == 0);
	/* The guest's TX completions kept real time through it: never early,
	 * late by at most a generous two seconds on a loaded machine. */
	CHECK(run.statuses == std::vector<uint32_t>(periods, vs::kStatusOk));
	INFO("played " << run.seconds << " s for " << nominal << " s of audio");
	CHECK(run.seconds >= nominal - 0.05);
	CHECK(run.seconds <= nominal + 2.0);
	INFO(daemon.stop());
}

TEST_CASE("500 PREPAREs leave one node per direction; RELEASE removes it", "[pipewire]")
{
	PipeWireSession pw;
	VhostSound daemon(pw, { "--streams", "output,input", "--log-level", "warn" });
	vhostpp::DeviceDriver driver(daemon.socket, sound_driver_options());
	SoundDriver snd(driver);
	const PcmConfig c = stereo48k(vs::kFmtS16);
	for (uint32_t stream : { 0u, 1u })
		REQUIRE(snd.set_params(stream, c.buffer_bytes, c.period_bytes, c.format, c.rate, c.channels) ==
			vs::kStatusOk);
	size_t refused = 0;
	for (int i = 0; i < 500; i++) {
		for (uint32_t stream : { 0u, 1u })
			refused += snd.pcm(vs::kPcmPrepare, stream) != vs::kStatusOk;
	}
	CHECK(refused == 0);

	auto count = [&](const std::string &name) { return PipeWireSession::nodes(pw.dump(), name).size(); };
	/* Destroying a stream is asynchronous in the daemon: wait for the count to settle. */
	PipeWireSession::wait_until("one node per direction", 20s, [&] {
		return count("vhost-sound.output") == 1 && count("vhost-sound.input") == 1;
	});
	CHECK(count("vhost-sound.output") == 1);
	CHECK(count("vhost-sound.input") == 1);

	for (uint32_t stream : { 0u, 1u })
		CHECK(snd.pcm(vs::kPcmRelease, stream) == vs::kStatusOk);
	PipeWireSession::wait_until("no node left", 10s, [&] {
		return count("vhost-sound.output") == 0 && count("vhost-sound.input") == 0;
	});
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
