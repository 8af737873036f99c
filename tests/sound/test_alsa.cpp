/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The ALSA back-end through real alsa-lib, no sound card: ALSA_CONFIG_PATH
 * points at a configuration this test writes, whose PCMs are the `file`
 * plugin over `null` (playback lands in a file, capture reads an `infile`),
 * PCMs that refuse a format or a rate, and names that do not exist. The
 * front-end plays the Linux driver (linux_driver.h).
 */
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <sys/inotify.h>
#include <thread>
#include <unistd.h>

#include "app_samples.h"
#include "audio/alsa/alsa_backend.h"
#include "control/control_commands.h"
#include "daemon_process.h"
#include "linux_driver.h"
#include "socket_client.h"
#include "sound_fixture.h"
#include "sound_log.h"

using namespace sound_test;
namespace vs = vhost_sound::virtio_snd;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

/* The byte at offset \a i of the capture test's infile: never 0. */
uint8_t infile_byte(uint64_t i)
{
	return static_cast<uint8_t>((i * 7 + i / 251) % 253 + 1);
}

/**
 * The test's ALSA world: a directory with the configuration, the playback
 * file and the capture infile; ALSA_CONFIG_PATH points at it for the whole
 * process (alsa-lib reads it once), and for the daemons it spawns.
 */
class AlsaWorld
{
public:
	static AlsaWorld &get()
	{
		static AlsaWorld world;
		return world;
	}

	const std::string &dir() const { return dir_; }
	std::string playback_file() const { return dir_ + "/play.raw"; }
	std::string infile() const { return dir_ + "/in.raw"; }
	/* What PipeWire's plugin is given, through a file plugin over it. */
	std::string pipewire_file() const { return dir_ + "/pw.raw"; }

	static constexpr size_t kInfileBytes = 4u << 20;

	~AlsaWorld()
	{
		std::error_code ec;
		fs::remove_all(dir_, ec);
	}

private:
	AlsaWorld()
	{
		char dir[] = "/tmp/vhost-sound-alsa-XXXXXX";
		if (!::mkdtemp(dir))
			throw std::runtime_error("mkdtemp failed");
		dir_ = dir;
		{
			std::ofstream in(infile(), std::ios::binary);
			std::vector<char> bytes(kInfileBytes);
			for (size_t i = 0; i < bytes.size(); i++)
				bytes[i] = static_cast<char>(infile_byte(i));
			in.write(bytes.data(), bytes.size());
		}
		/* ALSA_CONFIG_PATH replaces alsa.conf: nothing but these PCMs exist. */
		const std::string conf = dir_ + "/asound.conf";
		std::ofstream c(conf);
		c << "pcm.n48 { type null }\n"
		  /* Playback into a file, no clock (null). */
		  << "pcm.play { type file slave.pcm { type null } file \"" << playback_file()
		  << "\" format raw }\n"
		  /* Capture from the infile (what it captured is teed to a file). */
		  << "pcm.rec { type file slave.pcm { type null } file \"" << dir_
		  << "/rec-tee.raw\" infile \"" << infile() << "\" format raw }\n"
		  /* Refuses FLOAT and FLOAT64: linear integer formats only. */
		  << "pcm.nofloat { type linear slave { pcm { type null } format S16_LE } }\n"
		  /* Refuses every rate but 48000 (S32_LE, 2 channels): an AC-3 encoder,
		   * made interleaved by the copy plugin. */
		  << "pcm.ac3 { type a52 slavepcm \"n48\" rate 48000 channels 2 }\n"
		  << "pcm.only48k { type copy slave.pcm \"ac3\" }\n"
		  /* PipeWire's ALSA plugin, into whatever daemon PIPEWIRE_RUNTIME_DIR names. */
		  << "pcm.pw { type pipewire }\n"
		  /* The same, with every frame written to it recorded in a file: a PCM
		   * with its own clock whose input can be read back. */
		  << "pcm.pwfile { type file slave.pcm \"pw\" file \"" << pipewire_file() << "\" format raw }\n";
		::setenv("ALSA_CONFIG_PATH", conf.c_str(), 1);
	}

	std::string dir_;
};

std::vector<uint8_t> read_file(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	return { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
}

/* A daemon (in this process) on the ALSA back-end with these PCMs. */
SoundDaemon::BackendFactory alsa(std::string playback, std::string capture = "")
{
	return [playback, capture](boost::asio::io_context &io, const std::string &) {
		AlsaWorld::get();
		return std::unique_ptr<AudioBackend>(
			std::make_unique<AlsaBackend>(io, AlsaOptions{ playback, capture }));
	};
}

/* True when \a pid has \a path open (a look at /proc/PID/fd). */
bool has_open(pid_t pid, const std::string &path)
{
	std::error_code ec;
	for (const auto &entry : fs::directory_iterator(fmt::format("/proc/{}/fd", pid), ec)) {
		std::error_code link_ec;
		if (fs::read_symlink(entry.path(), link_ec) == path)
			return true;
	}
	return false;
}

/* Counts opens and closes of one file, from inotify: nothing between two looks is missed. */
class OpenWatch
{
public:
	explicit OpenWatch(const std::string &path)
		: fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
	{
		if (fd_ < 0 || ::inotify_add_watch(fd_, path.c_str(), IN_OPEN | IN_CLOSE) < 0)
			throw std::runtime_error("inotify on " + path);
	}
	~OpenWatch() { ::close(fd_); }

	/* Read what happened so far. */
	void poll()
	{
		alignas(inotify_event) char buf[4096];
		ssize_t n;
		while ((n = ::read(fd_, buf, sizeof(buf))) > 0) {
			for (char *p = buf; p < buf + n;) {
				const auto *ev = reinterpret_cast<const inotify_event *>(p);
				opens += (ev->mask & IN_OPEN) != 0;
				closes += (ev->mask & IN_CLOSE) != 0;
				p += sizeof(inotify_event) + ev->len;
			}
		}
	}

	int opens = 0;
	int closes = 0;

private:
	int fd_;
};

/* Four periods of \a ms milliseconds. */
PcmConfig periods_of(unsigned ms, uint8_t format, uint8_t rate, uint8_t channels)
{
	PcmConfig c;
	c.format = format;
	c.rate = rate;
	c.channels = channels;
	c.period_bytes = vs::rate_hz(rate) * ms / 1000 * channels * vs::format_info(format)->sample_bytes;
	c.buffer_bytes = 4 * c.period_bytes;
	return c;
}

PcmConfig ten_ms(uint8_t format, uint8_t rate, uint8_t channels)
{
	return periods_of(10, format, rate, channels);
}

/* True when CI=true: a missing component then fails the test instead of skipping it. */
bool in_ci()
{
	const char *ci = std::getenv("CI");
	return ci && std::string(ci) == "true";
}

std::optional<std::string> find_program(const std::string &name)
{
	const char *path = std::getenv("PATH");
	std::string dirs = path ? path : "/usr/bin:/bin";
	for (size_t at = 0; at <= dirs.size();) {
		const size_t end = std::min(dirs.find(':', at), dirs.size());
		const fs::path candidate = fs::path(dirs.substr(at, end - at)) / name;
		if (::access(candidate.c_str(), X_OK) == 0)
			return candidate.string();
		at = end + 1;
	}
	return std::nullopt;
}

/**
 * A private PipeWire: its own runtime directory, a daemon with one null
 * sink (driven by its own timer: a clock that is not ours), and WirePlumber
 * in a private D-Bus session to link streams to it. Every process is killed,
 * with its process group, when this goes.
 */
class PipeWireWorld
{
public:
	/*
	 * \a restart_in: the directory of a PipeWire this one replaces. The
	 * environment already names it, and it is not set again: setenv() while
	 * the daemon's threads read the environment (libpipewire does at
	 * PREPARE) is a data race.
	 */
	explicit PipeWireWorld(const std::string &restart_in = {})
	{
		for (const char *program : { "pipewire", "wireplumber", "dbus-run-session", "pw-link" }) {
			if (!find_program(program)) {
				missing_ = program;
				return;
			}
		}
		if (restart_in.empty()) {
			char dir[] = "/tmp/vhost-sound-pw-XXXXXX";
			if (!::mkdtemp(dir))
				throw std::runtime_error("mkdtemp failed");
			dir_ = dir;
		} else {
			dir_ = restart_in;
			fs::create_directories(dir_);
		}
		const std::string conf = dir_ + "/pipewire.conf";
		std::ofstream(conf)
			<< "context.properties = { core.daemon = true core.name = pipewire-0 "
			   "default.clock.rate = 48000 }\n"
			   "context.spa-libs = { audio.convert.* = audioconvert/libspa-audioconvert "
			   "support.* = support/libspa-support }\n"
			   "context.modules = [\n"
			   /* real-time data thread, as on a desktop: tests/pipewire/pipewire.conf says why */
			   "  { name = libpipewire-module-rt args = { nice.level = -11 rt.prio = 88 } "
			   "flags = [ ifexists nofail ] }\n"
			   "  { name = libpipewire-module-protocol-native }\n"
			   "  { name = libpipewire-module-spa-node-factory }\n"
			   "  { name = libpipewire-module-client-node }\n"
			   "  { name = libpipewire-module-access }\n"
			   "  { name = libpipewire-module-adapter }\n"
			   "  { name = libpipewire-module-link-factory }\n"
			   "  { name = libpipewire-module-metadata }\n"
			   "]\n"
			   "context.objects = [\n"
			   "  { factory = spa-node-factory args = { factory.name = support.node.driver "
			   "node.name = Dummy-Driver priority.driver = 8000 } }\n"
			   "  { factory = adapter args = { factory.name = support.null-audio-sink "
			   "node.name = vs-test-sink media.class = Audio/Sink audio.position = [ FL FR ] "
			   "priority.session = 2000 } }\n"
			   "]\n";
		if (restart_in.empty()) {
			::setenv("XDG_RUNTIME_DIR", dir_.c_str(), 1);
			::setenv("PIPEWIRE_RUNTIME_DIR", dir_.c_str(), 1);
		}
		daemon_ = std::make_unique<DaemonProcess>("pipewire", std::vector<std::string>{ "-c", conf },
							  std::nullopt, true);
		/* Listening, not only there: a daemon killed by SIGKILL leaves its
		 * socket file behind, and a WirePlumber started against that one
		 * fails to connect and exits. */
		wait_for([&] { return accepts_connections(dir_ + "/pipewire-0"); },
			 "the PipeWire socket to accept connections");
		session_ = std::make_unique<DaemonProcess>(
			"dbus-run-session", std::vector<std::string>{ "--", "wireplumber" }, std::nullopt, true);
		/* WirePlumber gives the sink its ports once it manages it: then it links streams. */
		wait_for([&] {
			DaemonProcess links("pw-link", { "-i" }, std::nullopt, false);
			links.wait(3000);
			return links.out().find("vs-test-sink:playback_FL") != std::string::npos;
		}, "WirePlumber to configure the null sink");
	}

	~PipeWireWorld()
	{
		session_.reset();
		daemon_.reset();
		if (!dir_.empty()) {
			std::error_code ec;
			fs::remove_all(dir_, ec);
		}
	}

	/** \brief Its runtime directory (XDG_RUNTIME_DIR). */
	const std::string &dir() const { return dir_; }

	/* The program that is not installed, "" when all are. */
	const std::string &missing() const { return missing_; }

private:
	template<typename F>
	void wait_for(F ready, const char *what)
	{
		const auto deadline = Clock::now() + std::chrono::seconds(20);
		while (!ready()) {
			if (Clock::now() > deadline)
				throw std::runtime_error(std::string("timed out waiting for ") + what);
			std::this_thread::sleep_for(std::chrono::milliseconds(50));
		}
	}

	std::string missing_;
	std::string dir_;
	std::unique_ptr<DaemonProcess> daemon_;
	std::unique_ptr<DaemonProcess> session_;
};

/* True when \a world runs; else FAIL under CI=true, or WARN (the test is skipped). */
bool installed(const PipeWireWorld &world)
{
	if (world.missing().empty())
		return true;
	if (in_ci())
		FAIL("CI=true but " << world.missing() << " is not installed");
	WARN("not run: " << world.missing() << " is not installed");
	return false;
}

PcmStream::Stats stats_of(SoundDaemon &daemon, uint32_t stream)
{
	return daemon.on_loop([&] { return daemon.device().stream_stats().at(stream); });
}

/* The guest's byte at stream offset \a offset: never \a silence, so that
 * silence in what the PCM received can be told from the guest's samples. */
uint8_t guest_byte(uint64_t offset, uint8_t silence)
{
	const auto b = static_cast<uint8_t>(offset % 251 + 1);
	return b == silence ? static_cast<uint8_t>(b + 1) : b;
}

/* What a playback with a stalled guest saw. */
struct StallRun {
	/* Every byte the guest put in the messages it queued, in stream order. */
	std::vector<uint8_t> sent;
	/* Bytes of the periods that completed while running (the PCM took them). */
	size_t completed_bytes = 0;
	uint64_t xruns_before = 0;
	PcmStream::Stats during;
	/* The feeder (STATUS) while it ran, before the stall. */
	std::string feeder;
	/* From the resumed queueing to the completion of the last period. */
	double resumed_seconds = 0;
	PcmRun run;
};

/*
 * Playback of guest_byte() samples that writes each period before queueing
 * it: \a before periods, then the guest stops re-queueing (what it queued
 * drains, then nothing for \a stall: a guest that is stopped, not a race
 * being waited out), then \a after periods more; STOP, RELEASE.
 */
StallRun play_with_stall(SoundDaemon &daemon, SoundDriver &snd, const PcmConfig &config, uint8_t silence,
			 size_t before, std::chrono::milliseconds stall, size_t after)
{
	StallRun r;
	LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
	pcm.setup();
	auto write_slot = [&](size_t slot) {
		auto area = snd.memory().at(pcm.period_gpa(slot), config.period_bytes);
		for (size_t i = 0; i < area.size(); i++)
			area[i] = guest_byte(r.sent.size() + i, silence);
		r.sent.insert(r.sent.end(), area.begin(), area.end());
	};
	for (size_t slot = 0; slot < pcm.periods_per_buffer(); slot++)
		write_slot(slot);
	pcm.queue_all();
	REQUIRE(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
	auto play = [&](size_t n) {
		for (size_t i = 0; i < n; i++) {
			const size_t slot = pcm.wait_completion(r.run);
			write_slot(slot);
			pcm.queue_slot(slot);
			pcm.kick();
		}
	};
	play(before);
	const auto before_stall = stats_of(daemon, 0);
	r.xruns_before = before_stall.xruns;
	r.feeder = before_stall.feeder;

	std::vector<size_t> held;
	while (pcm.in_flight() > 0)
		held.push_back(pcm.wait_completion(r.run));
	std::this_thread::sleep_for(stall);
	r.during = stats_of(daemon, 0);

	const auto t0 = Clock::now();
	for (size_t slot : held) {
		write_slot(slot);
		pcm.queue_slot(slot);
	}
	pcm.kick();
	play(after);
	r.resumed_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
	r.completed_bytes = r.run.statuses.size() * config.period_bytes;
	pcm.finish(r.run);
	return r;
}

/* What \a received (the bytes a PCM got) holds around the guest's \a sent ones. */
struct SilenceGaps {
	/* The guest's bytes in it, in order, silence taken out. */
	std::vector<uint8_t> data;
	/* The longest run of silence between two of the guest's bytes. */
	size_t longest_inner = 0;
};

SilenceGaps split_silence(const std::vector<uint8_t> &received, uint8_t silence)
{
	SilenceGaps g;
	size_t run = 0;
	for (uint8_t b : received) {
		if (b == silence) {
			run++;
			continue;
		}
		if (!g.data.empty())
			g.longest_inner = std::max(g.longest_inner, run);
		run = 0;
		g.data.push_back(b);
	}
	return g;
}

} // namespace

TEST_CASE("the virtio formats map exactly to alsa-lib's", "[alsa]")
{
	CHECK(alsa_format(vs::kFmtS16) == SND_PCM_FORMAT_S16_LE);
	CHECK(alsa_format(vs::kFmtS24_3) == SND_PCM_FORMAT_S24_3LE);
	CHECK(alsa_format(vs::kFmtS24) == SND_PCM_FORMAT_S24_LE);
	CHECK(alsa_format(vs::kFmtU20) == SND_PCM_FORMAT_U20_LE);
	CHECK(alsa_format(vs::kFmtS20_3) == SND_PCM_FORMAT_S20_3LE);
	CHECK(alsa_format(vs::kFmtFloat64) == SND_PCM_FORMAT_FLOAT64_LE);
	CHECK_FALSE(alsa_format(vs::kFmtMuLaw));
	CHECK_FALSE(alsa_format(vs::kFmtDsdU8));
	/* Every linear format the device moves has a mapping with the same
	 * physical width: nothing is padded or truncated on the way. */
	for (uint8_t f = 0; f < vs::kNumFormats; f++) {
		const auto info = vs::format_info(f);
		INFO("format " << vs::format_name(f));
		REQUIRE(info.has_value() == alsa_format(f).has_value());
		if (info) {
			CHECK(snd_pcm_format_physical_width(*alsa_format(f)) == 8 * info->sample_bytes);
			CHECK(snd_pcm_format_width(*alsa_format(f)) == info->significant_bits);
			CHECK((snd_pcm_format_unsigned(*alsa_format(f)) == 1) == info->is_unsigned);
		}
	}
}

TEST_CASE("the probe advertises what the PCM accepts", "[alsa]")
{
	AlsaWorld::get();
	boost::asio::io_context io;
	const auto full = AlsaBackend(io, { "play", "rec" }).capabilities(vs::Direction::Output);
	CHECK(full.formats == vs::linear_pcm_formats());
	CHECK(full.rates == vs::all_rates());
	CHECK(full.channels_min == 1);
	CHECK(full.channels_max == 8);

	const auto nofloat = AlsaBackend(io, { "nofloat", "rec" }).capabilities(vs::Direction::Output);
	CHECK_FALSE(nofloat.has_format(vs::kFmtFloat));
	CHECK_FALSE(nofloat.has_format(vs::kFmtFloat64));
	CHECK(nofloat.has_format(vs::kFmtS16));
	CHECK(nofloat.has_format(vs::kFmtS24_3));

	const auto only48k = AlsaBackend(io, { "only48k", "rec" }).capabilities(vs::Direction::Output);
	CHECK(only48k.rates == uint64_t{1} << vs::kRate48000);

	/* A PCM that cannot be opened: the safe default set. */
	const auto missing = AlsaBackend(io, { "nosuch", "nosuch" }).capabilities(vs::Direction::Input);
	CHECK(missing.formats == AlsaBackend::default_capabilities().formats);
	CHECK(missing.rates == AlsaBackend::default_capabilities().rates);
}

TEST_CASE("playback through the file plugin is sample-exact: S16, S24_3, S32, FLOAT; 44.1/48 kHz; 1, 2, 6 channels", "[alsa]")
{
	SoundDaemon daemon({}, alsa("play", "rec"));
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	const std::string file = AlsaWorld::get().playback_file();
	for (uint8_t format : { vs::kFmtS16, vs::kFmtS24_3, vs::kFmtS32, vs::kFmtFloat }) {
		for (uint8_t rate : { vs::kRate44100, vs::kRate48000 }) {
			for (uint8_t channels : { 1, 2, 6 }) {
				INFO(fmt::format("{} {} Hz {} ch", vs::format_name(format), vs::rate_hz(rate),
						 channels));
				/* Linux's default period is about 40 ms: the margin its
				 * application has to rewrite a re-queued period. */
				const PcmConfig config = periods_of(40, format, rate, channels);
				const size_t periods = 8; /* two rounds of the ring buffer */
				LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
				const PcmRun run = pcm.play(periods, app_source);
				REQUIRE(run.release_status == vs::kStatusOk);
				CHECK(run.statuses == std::vector<uint32_t>(periods, vs::kStatusOk));

				/* RELEASE closed the PCM: the file is complete. */
				const auto written = read_file(file);
				const size_t bytes = periods * config.period_bytes;
				CHECK(first_bad_period(app_bytes(bytes), written, config.period_bytes) == periods);
				/* After the data only the silence Linux re-queues until STOP. */
				CHECK(std::all_of(written.begin() + std::min(bytes, written.size()), written.end(),
						  [](uint8_t b) { return b == 0; }));
			}
		}
	}
}

TEST_CASE("3 s through a PCM without a clock take 3 s: never early, at most 3 % late", "[alsa][timing]")
{
	for (const PcmConfig &config : { PcmConfig{}, /* aplay's 48 kHz S16 stereo, 32768 / 8192 */
					 periods_of(20, vs::kFmtFloat, vs::kRate44100, 6) }) {
		SoundDaemon daemon({}, alsa("play", "rec"));
		vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
		SoundDriver snd(driver);
		const size_t periods = periods_for(3.0, config);
		const double nominal = nominal_seconds(periods, config);
		LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
		const PcmRun run = pcm.play(periods, app_source);
		std::cout << fmt::format("timing: alsa file/null playback of {} periods ({:.4f} s, {} {} Hz "
					 "{} ch) took {:.4f} s ({:+.2f} %)\n",
					 periods, nominal, vs::format_name(config.format),
					 vs::rate_hz(config.rate), config.channels, run.seconds,
					 100 * (run.seconds - nominal) / nominal);
		CHECK(run.seconds >= nominal);
		CHECK(run.seconds <= nominal * 1.03);
		CHECK(run.statuses == std::vector<uint32_t>(periods, vs::kStatusOk));
		CHECK(first_bad_period(app_bytes(periods * config.period_bytes),
				       read_file(AlsaWorld::get().playback_file()), config.period_bytes) == periods);
	}
}

TEST_CASE("capture from the file plugin's infile is sample-exact", "[alsa]")
{
	SoundDevice::Options options;
	options.input_enabled = true;
	SoundDaemon daemon(options, alsa("play", "rec"));
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	for (const PcmConfig &config : { ten_ms(vs::kFmtS16, vs::kRate48000, 2),
					 ten_ms(vs::kFmtS24_3, vs::kRate44100, 6) }) {
		INFO(fmt::format("{} {} ch", vs::format_name(config.format), config.channels));
		const size_t periods = 20;
		LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
		const PcmRun run = pcm.capture(periods);
		REQUIRE(run.captured.size() == periods * config.period_bytes);
		size_t wrong = 0;
		for (size_t i = 0; i < run.captured.size(); i++)
			wrong += run.captured[i] != infile_byte(i);
		CHECK(wrong == 0);
		CHECK(run.statuses == std::vector<uint32_t>(periods, vs::kStatusOk));
	}
}

TEST_CASE("privacy: the infile is never opened while input is disabled, closed at once on disable", "[alsa]")
{
	const std::string infile = AlsaWorld::get().infile();
	SoundDaemon daemon({}, alsa("play", "rec")); /* input off */
	/* The start-up probe opened and closed the capture PCM; from here on inotify sees every open. */
	OpenWatch watch(infile);
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	const PcmConfig config = periods_of(40, vs::kFmtS16, vs::kRate48000, 2);
	const double period_s = nominal_seconds(1, config);

	LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
	pcm.setup();
	pcm.queue_all();
	REQUIRE(snd.pcm(vs::kPcmStart, 1) == vs::kStatusOk);
	PcmRun run;
	std::vector<uint8_t> got;
	/* Receive \a n periods, re-queueing each; with \a disabled, check at every
	 * completion that the infile is not open. */
	auto capture_periods = [&](size_t n, bool disabled) {
		std::vector<uint8_t> bytes;
		for (size_t i = 0; i < n; i++) {
			const size_t slot = pcm.wait_completion(run);
			const auto area = snd.memory().at(
				pcm.dma_gpa() + slot * config.period_bytes, config.period_bytes);
			bytes.insert(bytes.end(), area.begin(), area.end());
			pcm.queue_slot(slot);
			pcm.kick();
			if (disabled)
				CHECK_FALSE(has_open(::getpid(), infile));
		}
		return bytes;
	};
	/* Re-queue what completed before a switch, unread: a loaded machine may
	 * leave several in the used ring, and they hold what came before it. */
	auto drain_completed = [&] {
		while (const auto slot = pcm.poll_completion(run)) {
			pcm.queue_slot(*slot);
			pcm.kick();
		}
	};

	/* Disabled, running: zeros at the stream's pace, the infile untouched. */
	auto t0 = Clock::now();
	got = capture_periods(10, true);
	CHECK(std::chrono::duration<double>(Clock::now() - t0).count() >= 9 * period_s);
	CHECK(std::all_of(got.begin(), got.end(), [](uint8_t b) { return b == 0; }));
	watch.poll();
	CHECK(watch.opens == 0);

	/* Enabled: the PCM (and its infile) opens, data flows from the infile's start. */
	daemon.on_loop([&] { daemon.device().set_enabled(vs::Direction::Input, true); });
	CHECK(has_open(::getpid(), infile));
	watch.poll();
	CHECK(watch.opens == 1);
	const std::vector<uint8_t> enabled_bytes = capture_periods(15, false);
	/* Periods completed right after the switch may hold zeros captured before
	 * it; from the first infile byte on, the infile in order. */
	const auto first = std::find_if(enabled_bytes.begin(), enabled_bytes.end(),
					[](uint8_t b) { return b != 0; });
	REQUIRE(first != enabled_bytes.end());
	const size_t start = first - enabled_bytes.begin();
	/* At least five periods of infile data (the zeros before it were
	 * captured, or completed, before the switch). */
	CHECK(start + 5 * config.period_bytes <= enabled_bytes.size());
	size_t wrong = 0;
	for (size_t i = start; i < enabled_bytes.size(); i++)
		wrong += enabled_bytes[i] != infile_byte(i - start);
	CHECK(wrong == 0);

	/* Disabled again: closed before SET returns (well within one period), zeros from then on. */
	/* Timed on the loop: from the switch to its return, the PCM closed. */
	const double close_s = daemon.on_loop([&] {
		const auto start = Clock::now();
		daemon.device().set_enabled(vs::Direction::Input, false);
		return std::chrono::duration<double>(Clock::now() - start).count();
	});
	std::cout << fmt::format("privacy: capture PCM closed {:.2f} ms after the switch to off (period {:.1f} ms)\n",
				 close_s * 1000, period_s * 1000);
	CHECK_FALSE(has_open(::getpid(), infile));
	CHECK(close_s < period_s);
	watch.poll();
	CHECK(watch.closes >= watch.opens);
	drain_completed();
	got = capture_periods(10, true);
	CHECK(std::all_of(got.begin(), got.end(), [](uint8_t b) { return b == 0; }));

	/* Enabled once more: opened again, data resumes. */
	daemon.on_loop([&] { daemon.device().set_enabled(vs::Direction::Input, true); });
	CHECK(has_open(::getpid(), infile));
	watch.poll();
	CHECK(watch.opens == 2);
	const std::vector<uint8_t> again = capture_periods(5, false);
	CHECK(std::any_of(again.begin(), again.end(), [](uint8_t b) { return b != 0; }));
	pcm.finish(run);
	CHECK(run.release_status == vs::kStatusOk);
	CHECK_FALSE(has_open(::getpid(), infile));
}

TEST_CASE("a PCM that refuses a format or a rate: NOT_SUPP at SET_PARAMS, the stream unchanged", "[alsa]")
{
	struct Case {
		const char *device;
		uint8_t refused_format, refused_rate, good_format;
	};
	for (const Case &c : { Case{ "nofloat", vs::kFmtFloat, vs::kRate48000, vs::kFmtS16 },
			       Case{ "only48k", vs::kFmtS32, vs::kRate44100, vs::kFmtS32 } }) {
		INFO("device " << c.device);
		SoundDaemon daemon({}, alsa(c.device, "rec"));
		vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
		SoundDriver snd(driver);
		PcmConfig good = ten_ms(c.good_format, vs::kRate48000, 2);
		REQUIRE(snd.set_params(0, good.buffer_bytes, good.period_bytes, good.format, good.rate, 2) ==
			vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusOk);

		CHECK(snd.set_params(0, good.buffer_bytes, good.period_bytes, c.refused_format,
				     c.refused_rate, 2) == vs::kStatusNotSupp);
		const auto st = stats_of(daemon, 0);
		CHECK(st.state == PcmStream::State::Prepared);
		REQUIRE(st.params);
		CHECK(st.params->format == c.good_format);
		CHECK(st.params->rate == vs::kRate48000);

		/* And it serves on: the prepared stream starts, stops, releases. */
		CHECK(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmStop, 0) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmRelease, 0) == vs::kStatusOk);
		CHECK(daemon.connected());
	}
}

TEST_CASE("a PCM name that does not exist: a clear log line and a backend-error WATCH event per refused PREPARE (IO_ERR), the daemon serves on", "[alsa][control]")
{
	AlsaWorld::get();
	char dir[] = "/tmp/vhost-sound-alsa-bad-XXXXXX";
	REQUIRE(::mkdtemp(dir));
	const std::string socket = std::string(dir) + "/snd.sock", ctl = std::string(dir) + "/snd.ctl";
	DaemonProcess daemon({ "--socket", socket, "--control-socket", ctl, "--backend", "alsa",
			       "--alsa-device", "nosuchpcm", "--log-level", "warn" });
	REQUIRE(query_when_up(ctl));
	LineClient watcher(ctl);
	REQUIRE(watcher.ask("WATCH") == "OK watching");
	{
		vhostpp::DeviceDriver driver(socket, sound_driver_options());
		SoundDriver snd(driver);
		const PcmConfig config = ten_ms(vs::kFmtS16, vs::kRate48000, 2);
		/* The default set is advertised, so SET_PARAMS passes; PREPARE finds out. */
		CHECK(snd.set_params(0, config.buffer_bytes, config.period_bytes, config.format, config.rate,
				     config.channels) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusIoErr);
		CHECK(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusIoErr);
		/* Still serving: another request is answered. Refused for another
		 * reason, it is no back-end error. */
		CHECK(snd.pcm(vs::kPcmStart, 0) == vs::kStatusBadMsg);
	}
	/* The guest's leaving is the last event: every one before it is in. */
	std::vector<nlohmann::json> errors;
	bool left = false;
	while (const auto line = watcher.line(5000)) {
		const auto e = nlohmann::json::parse(*line);
		if (e["event"] == "backend-error")
			errors.push_back(e);
		if (e["event"] == "guest" && e["connected"] == false) {
			left = true;
			break;
		}
	}
	CHECK(left);
	CHECK(errors.size() == 2);
	for (const auto &e : errors) {
		INFO(e.dump());
		CHECK(e["stream"] == 0);
		CHECK(e["direction"] == "output");
		CHECK(e["message"] == "the back-end refused to open the stream");
	}
	daemon.signal(SIGTERM);
	CHECK(daemon.wait() == 0);
	const std::string err = daemon.err();
	INFO(err);
	CHECK(err.find("cannot open PCM 'nosuchpcm' for playback to probe it") != std::string::npos);
	CHECK(err.find("cannot open PCM 'nosuchpcm' for playback: No such file or directory") !=
	      std::string::npos);
	std::error_code ec;
	fs::remove_all(dir, ec);
}

TEST_CASE("STATUS backend.details: the PCM names, and per open stream the PCM and the period and buffer it took", "[alsa][control]")
{
	SoundDevice::Options options;
	options.input_enabled = true;
	SoundDaemon daemon(options, alsa("play", "rec"));
	auto details = [&] {
		return daemon.on_loop([&] {
			ControlCommands commands(daemon.device(), "test");
			const std::string reply = commands.handle("STATUS");
			REQUIRE(reply.rfind("OK {", 0) == 0);
			return nlohmann::json::parse(reply.substr(3))["backend"]["details"];
		});
	};
	/* No stream open: the devices only. */
	CHECK(details() == nlohmann::json{ { "playback_device", "play" }, { "capture_device", "rec" } });

	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	/* 10 ms periods, four to the buffer: the file plugin over null takes the guest's own sizes. */
	const PcmConfig config = ten_ms(vs::kFmtS16, vs::kRate48000, 2);
	LinuxPcm out(snd, 0, vs::Direction::Output, config);
	LinuxPcm in(snd, 1, vs::Direction::Input, config);
	out.setup();
	in.setup();
	const auto d = details();
	INFO(d.dump());
	CHECK(d["playback_device"] == "play");
	CHECK(d["output.pcm"] == "play");
	CHECK(d["input.pcm"] == "rec");
	for (const char *dir : { "output", "input" }) {
		const std::string prefix = std::string(dir) + ".";
		CHECK(d[prefix + "pcm_type"] == "FILE");
		CHECK(d[prefix + "period_frames"] == "480");
		CHECK(d[prefix + "buffer_frames"] == "1920");
		CHECK(d.contains(prefix + "clock"));
		/* No sound card below the file plugin. */
		CHECK_FALSE(d.contains(prefix + "card"));
	}
	/* The same geometry the stream logs and STATUS's feeder shows. */
	CHECK(stats_of(daemon, 0).feeder.find("period 480 buffer 1920 frames") != std::string::npos);

	/* Played (no clock of its own: the stream paces it), then released: the stream's details go. */
	out.queue_all();
	REQUIRE(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
	PcmRun run;
	for (int i = 0; i < 10; i++) {
		out.queue_slot(out.wait_completion(run));
		out.kick();
	}
	CHECK(details()["output.clock"] == "paced");
	out.finish(run);
	REQUIRE(snd.pcm(vs::kPcmRelease, 1) == vs::kStatusOk);
	CHECK(details() == nlohmann::json{ { "playback_device", "play" }, { "capture_device", "rec" } });
}

TEST_CASE("a guest that stalls 200 ms on a PCM without a clock: an underrun counted, playback goes on, every sample once", "[alsa][timing]")
{
	SoundDaemon daemon({}, alsa("play", "rec"));
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	const PcmConfig config = ten_ms(vs::kFmtU8, vs::kRate48000, 2);
	const uint8_t silence = 0x80; /* U8's */
	const StallRun r = play_with_stall(daemon, snd, config, silence, 20, std::chrono::milliseconds(200), 30);

	CHECK(r.feeder.find("paced") != std::string::npos);
	/* The stall is counted (a loaded machine may add a hiccup of its own). */
	CHECK(r.during.xruns >= r.xruns_before + 1);
	CHECK(r.during.state == PcmStream::State::Running);
	/* Going on at the nominal rate, not racing to catch up the stall
	 * (the 4 periods queued at once complete as soon as they are consumed). */
	CHECK(r.resumed_seconds >= nominal_seconds(30 - 4, config));
	CHECK(r.run.release_status == vs::kStatusOk);
	CHECK(std::all_of(r.run.statuses.begin(), r.run.statuses.end(),
			  [](uint32_t s) { return s == vs::kStatusOk; }));

	/* What the file got: every guest byte once, in order, and nothing else:
	 * a PCM without a clock plays nothing in real time, the time given up is
	 * the silence (README, "Xruns"). */
	const auto written = read_file(AlsaWorld::get().playback_file());
	CHECK(written.size() >= r.completed_bytes);
	REQUIRE(written.size() <= r.sent.size());
	CHECK(std::equal(written.begin(), written.end(), r.sent.begin()));
}

TEST_CASE("the host buffer follows the guest's buffer_bytes: at least two host periods, at most 200 ms", "[alsa]")
{
	SoundDaemon daemon({}, alsa("play", "rec"));
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	struct Case {
		uint32_t period_frames, buffer_frames;
		/* What the file plugin over null (which takes any size) is given. */
		unsigned host_period, host_buffer;
	};
	for (const Case &c : { Case{ 480, 1920, 480, 1920 },     /* 10 ms x 4: the guest's own */
			       Case{ 480, 960, 480, 960 },       /* 10 ms x 2 */
			       Case{ 480, 7200, 480, 7200 },     /* 150 ms */
			       Case{ 1920, 48000, 1920, 9600 },  /* a 1 s buffer: 200 ms */
			       Case{ 240, 240, 240, 480 } }) {   /* one period: two host periods */
		INFO("guest period " << c.period_frames << " buffer " << c.buffer_frames << " frames");
		REQUIRE(snd.set_params(0, c.buffer_frames * 4, c.period_frames * 4, vs::kFmtS16, vs::kRate48000,
				       2) == vs::kStatusOk);
		REQUIRE(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusOk);
		const std::string feeder = stats_of(daemon, 0).feeder;
		INFO(feeder);
		CHECK(feeder.find(fmt::format("period {} buffer {} frames", c.host_period, c.host_buffer)) !=
		      std::string::npos);
		REQUIRE(snd.pcm(vs::kPcmRelease, 0) == vs::kStatusOk);
	}
}

TEST_CASE("a PCM with its own clock keeps it: PipeWire's ALSA plugin into a private null sink", "[alsa][pipewire][timing]")
{
	AlsaWorld::get();
	PipeWireWorld pipewire;
	if (!installed(pipewire))
		return;
	SoundDaemon daemon({}, alsa("pw", "rec"));
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	const PcmConfig config; /* aplay's 48 kHz S16 stereo, 32768 / 8192 */
	const size_t periods = periods_for(3.0, config);
	const double nominal = nominal_seconds(periods, config);
	LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
	pcm.setup();
	pcm.queue_all();
	PcmRun run;
	const auto t0 = Clock::now();
	REQUIRE(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
	/* PipeWire takes a moment to link and start the stream; the rate is
	 * measured once it runs, from the completion of period kSteady on. */
	constexpr size_t kSteady = 12;
	Clock::time_point steady_start;
	std::string feeder;
	for (size_t i = 0; i < periods; i++) {
		const size_t slot = pcm.wait_completion(run);
		if (i + 1 == kSteady)
			steady_start = Clock::now();
		if (i == periods / 2)
			feeder = stats_of(daemon, 0).feeder;
		if (i + 1 < periods) {
			pcm.queue_slot(slot);
			pcm.kick();
		}
	}
	const auto end = Clock::now();
	const double seconds = std::chrono::duration<double>(end - t0).count();
	const double steady = std::chrono::duration<double>(end - steady_start).count();
	const double steady_nominal = nominal_seconds(periods - kSteady, config);
	const uint32_t last_latency = run.latencies.back();
	pcm.finish(run);
	std::cout << fmt::format("timing: alsa pipewire playback of {:.4f} s took {:.4f} s from START; "
				 "periods {}..{} ({:.4f} s of audio) took {:.4f} s ({:+.2f} %); last "
				 "latency_bytes {} ({:.1f} ms); {}\n",
				 nominal, seconds, kSteady, periods, steady_nominal, steady,
				 100 * (steady - steady_nominal) / steady_nominal, last_latency,
				 1000.0 * last_latency / byte_rate(config), feeder);
	/* The sink's clock, not the back-end's: never paced by the back-end, and
	 * completions at the sink's (real-time) rate. */
	CHECK(feeder.find("device clock") != std::string::npos);
	CHECK(steady >= steady_nominal * 0.97);
	CHECK(steady <= steady_nominal * 1.03);
	/* What the host still holds is in latency_bytes, so the guest's position is
	 * right (within 50 ms: latency is sampled once per completion). */
	CHECK(seconds + double(last_latency) / byte_rate(config) >= nominal - 0.05);
	CHECK(last_latency > 0);
	CHECK(run.release_status == vs::kStatusOk);
}

TEST_CASE("a PCM with its own clock whose ring runs empty plays the format's silence, counts an underrun and goes on", "[alsa][pipewire][timing]")
{
	AlsaWorld &world = AlsaWorld::get();
	PipeWireWorld pipewire;
	if (!installed(pipewire))
		return;
	SoundDaemon daemon({}, alsa("pwfile", "rec"));
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	/* U8, whose silence is 0x80, not 0: silence of the wrong format shows. */
	REQUIRE(snd.query<vs::PcmInfo>(vs::kPcmInfo, 0, 1)[0].formats & (uint64_t{1} << vs::kFmtU8));
	const PcmConfig config = periods_of(20, vs::kFmtU8, vs::kRate48000, 2);
	const uint8_t silence = 0x80;
	/* 25 periods (0.5 s) first: PipeWire links and runs the stream by then. */
	const StallRun r = play_with_stall(daemon, snd, config, silence, 25, std::chrono::milliseconds(500), 25);

	INFO(r.feeder);
	CHECK(r.feeder.find("device clock") != std::string::npos);
	CHECK(r.during.xruns >= r.xruns_before + 1);
	CHECK(r.during.state == PcmStream::State::Running);
	CHECK(r.run.release_status == vs::kStatusOk);
	CHECK(std::all_of(r.run.statuses.begin(), r.run.statuses.end(),
			  [](uint32_t s) { return s == vs::kStatusOk; }));
	CHECK(r.run.statuses.size() >= 25 + 4 + 25);

	/* What the PCM was given: every guest byte once and in order, and the
	 * stall as U8 silence: 500 ms less what the guest (80 ms), the ring and
	 * the host buffer (at most 80 ms each) still held; 250 ms at least.
	 * Without the silence the PCM runs dry and the gap is not in the data. */
	const SilenceGaps g = split_silence(read_file(world.pipewire_file()), silence);
	CHECK(g.data.size() >= r.completed_bytes);
	REQUIRE(g.data.size() <= r.sent.size());
	CHECK(std::equal(g.data.begin(), g.data.end(), r.sent.begin()));
	CHECK(g.longest_inner >= static_cast<size_t>(0.25 * byte_rate(config)));
}

TEST_CASE("a playback PCM whose server dies while running: one log line, the guest's I/O completes OK at the nominal rate, the next PREPARE opens it again", "[alsa][pipewire]")
{
	AlsaWorld::get();
	std::optional<PipeWireWorld> pipewire(std::in_place);
	if (!installed(*pipewire))
		return;
	/* The daemon's log, as the loop writes it. */
	auto log = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(512);
	vhost_sound::logger().sinks().push_back(log);
	auto lines_with = [&](const std::string &text) {
		size_t n = 0;
		for (const auto &line : log->last_formatted())
			n += line.find(text) != std::string::npos;
		return n;
	};
	{
		SoundDaemon daemon({}, alsa("pw", "rec"));
		vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
		SoundDriver snd(driver);
		const PcmConfig config = periods_of(20, vs::kFmtS16, vs::kRate48000, 2);
		LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
		pcm.setup();
		pcm.queue_all();
		REQUIRE(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
		PcmRun run;
		auto play = [&](size_t n) {
			for (size_t i = 0; i < n; i++) {
				pcm.queue_slot(pcm.wait_completion(run));
				pcm.kick();
			}
		};
		play(25);
		CHECK(stats_of(daemon, 0).feeder.find("device clock") != std::string::npos);

		/* PipeWire (and WirePlumber) killed: the device is gone. */
		const std::string runtime_dir = pipewire->dir();
		pipewire.reset();
		/* The guest's periods go on completing, OK, never faster than real time. */
		const auto t0 = Clock::now();
		play(25);
		const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
		const auto lost = stats_of(daemon, 0);
		INFO(lost.feeder);
		CHECK(lost.feeder.find("device lost") != std::string::npos);
		CHECK(lost.state == PcmStream::State::Running);
		/* (Up to the 4 queued periods and the host buffer may complete at once.) */
		CHECK(seconds >= nominal_seconds(25 - 4 - 4, config));
		pcm.finish(run);
		CHECK(run.release_status == vs::kStatusOk);
		CHECK(std::all_of(run.statuses.begin(), run.statuses.end(),
				  [](uint32_t s) { return s == vs::kStatusOk; }));
		CHECK(lines_with("alsa: PCM 'pw' (playback) failed: ") == 1);
		CHECK(lines_with("the stream goes on with its samples dropped at the nominal rate; the next "
				 "PREPARE opens the device again") == 1);

		/* No server: PREPARE fails (IO_ERR), the daemon serves on. */
		REQUIRE(snd.set_params(0, config.buffer_bytes, config.period_bytes, config.format, config.rate,
				       config.channels) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmPrepare, 0) == vs::kStatusIoErr);

		/* A new PipeWire: the next PREPARE opens the device again, on its clock. */
		pipewire.emplace(runtime_dir);
		LinuxPcm again(snd, 0, vs::Direction::Output, config);
		again.setup();
		again.queue_all();
		REQUIRE(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
		PcmRun run2;
		for (size_t i = 0; i < 25; i++) {
			again.queue_slot(again.wait_completion(run2));
			again.kick();
		}
		CHECK(stats_of(daemon, 0).feeder.find("device clock") != std::string::npos);
		again.finish(run2);
		CHECK(std::all_of(run2.statuses.begin(), run2.statuses.end(),
				  [](uint32_t s) { return s == vs::kStatusOk; }));
	}
	auto &sinks = vhost_sound::logger().sinks();
	sinks.erase(std::remove(sinks.begin(), sinks.end(), log), sinks.end());
}
