/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The file back-end driven as the Linux driver drives it: what the guest
 * plays lands in WAV files sample for sample (one file per format run),
 * capture reads an input file sample for sample, the input file is open
 * only while an input host stream exists, and the real binary refuses
 * unusable files with status 2 and finishes its header on SIGTERM.
 */
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/file/file_backend.h"
#include "daemon_process.h"
#include "linux_driver.h"
#include "socket_client.h"
#include "sound_fixture.h"
#include "wav_check.h"

using namespace sound_test;
namespace vs = vhost_sound::virtio_snd;
namespace wav = vhost_sound::wav;
namespace fs = std::filesystem;

namespace {

/* The application's samples: never a 0 byte, so silence cannot pass for them. */
uint8_t app_byte(uint64_t offset, unsigned seed)
{
	const uint64_t x = (offset + 1 + seed * 1000003ull) * 0x9E3779B97F4A7C15ull;
	return static_cast<uint8_t>((x >> 56) % 255 + 1);
}

LinuxPcm::Source app_source(unsigned seed)
{
	return [seed](uint64_t offset, std::span<uint8_t> out) {
		for (size_t i = 0; i < out.size(); i++)
			out[i] = app_byte(offset + i, seed);
	};
}

std::vector<uint8_t> app_bytes(size_t n, unsigned seed)
{
	std::vector<uint8_t> v(n);
	app_source(seed)(0, v);
	return v;
}

/* A 10 ms period of \a format at \a rate, in a 16-period buffer: the test
 * reads (or writes) a period after re-queueing it, as Linux does, and the
 * deep buffer gives it 150 ms to do so on a loaded machine. */
PcmConfig ten_ms(uint8_t format, uint8_t channels, uint8_t rate = vs::kRate48000)
{
	PcmConfig c;
	c.format = format;
	c.rate = rate;
	c.channels = channels;
	c.period_bytes = vs::rate_hz(rate) / 100 * channels * vs::format_info(format)->sample_bytes;
	c.buffer_bytes = 16 * c.period_bytes;
	return c;
}

FileBackendOptions output_to(const std::string &path)
{
	FileBackendOptions o;
	o.output_path = path;
	return o;
}

FileBackendOptions input_from(const std::string &path, bool loop = false)
{
	FileBackendOptions o;
	o.input_path = path;
	o.input_loop = loop;
	return o;
}

/* A FileBackend; a relative output path is in the daemon's directory. */
SoundDaemon::BackendFactory file_backend(FileBackendOptions options)
{
	return [options](boost::asio::io_context &io, const std::string &dir) {
		FileBackendOptions o = options;
		if (o.output_path && !o.output_path->starts_with("/"))
			o.output_path = dir + "/" + *o.output_path;
		return std::unique_ptr<NullBackend>(std::make_unique<FileBackend>(io, o));
	};
}

/* The data chunk of a WAV file, after checking its header with our parser. */
struct WavContents {
	wav::WavInfo info;
	std::vector<uint8_t> data;
};

WavContents contents(const std::string &path)
{
	const auto bytes = read_file(path);
	const auto parsed = wav::parse_wav_header(bytes);
	INFO(path << ": " << parsed.error);
	REQUIRE(parsed.info);
	/* The header describes the file exactly: nothing streamed, nothing missing. */
	const uint64_t end = parsed.info->data_offset + parsed.info->data_bytes;
	CHECK((bytes.size() == end || bytes.size() == end + 1));
	uint32_t declared;
	std::memcpy(&declared, &bytes[parsed.info->data_offset - 4], 4);
	CHECK(declared == parsed.info->data_bytes);
	uint32_t riff;
	std::memcpy(&riff, &bytes[4], 4);
	CHECK(riff == bytes.size() - 8);
	return { *parsed.info, std::vector<uint8_t>(bytes.begin() + static_cast<ptrdiff_t>(parsed.info->data_offset),
						    bytes.begin() + static_cast<ptrdiff_t>(end)) };
}

/* \a data starts with \a played, and the rest is silence (the periods the
 * driver re-queues until STOP): returns the length of that silence. */
size_t check_played(const std::vector<uint8_t> &data, const std::vector<uint8_t> &played, size_t at = 0)
{
	REQUIRE(data.size() >= at + played.size());
	CHECK(std::equal(played.begin(), played.end(), data.begin() + static_cast<ptrdiff_t>(at)));
	size_t silence = 0;
	for (size_t i = at + played.size(); i < data.size() && data[i] == 0; i++)
		silence++;
	return silence;
}

/* A WAV file of \a frames frames of \a format written by sox (an independent writer). */
void sox_write(const std::string &path, const std::string &args, double seconds)
{
	int status = 0;
	run_command(fmt::format("sox -D -V1 -n {} '{}' synth {} sine 300-3000 gain -2", args, path, seconds),
		    status);
	REQUIRE(status == 0);
}

/* The samples of \a path as sox decodes them, in the file's own encoding. */
std::vector<uint8_t> sox_samples(const std::string &path)
{
	int status = 0;
	run_command("sox -D -V1 '" + path + "' -t raw '" + path + ".raw'", status);
	REQUIRE(status == 0);
	auto raw = read_file(path + ".raw");
	fs::remove(path + ".raw");
	return raw;
}

bool have_sox()
{
	if (have_tool("sox"))
		return true;
	if (in_ci())
		FAIL("sox is missing (tools/setup.sh --tests installs it)");
	WARN("sox is missing: skipped");
	return false;
}

/* After setup(): queue the whole buffer, START, and wait for \a periods
 * completions, fewer than the buffer holds (so none needs re-queueing). */
PcmRun start_and_wait(SoundDriver &snd, LinuxPcm &pcm, uint32_t stream, size_t periods)
{
	REQUIRE(periods < pcm.periods_per_buffer());
	pcm.queue_all();
	REQUIRE(snd.pcm(vs::kPcmStart, stream) == vs::kStatusOk);
	PcmRun run;
	for (size_t i = 0; i < periods; i++)
		pcm.wait_completion(run);
	return run;
}

/* Every format the file back-end offers (what WAV holds): the per-format
 * tests cover exactly these, and check that this is what PCM_INFO says. */
const std::vector<uint8_t> kWavFormats = { vs::kFmtU8,    vs::kFmtS16,   vs::kFmtS18_3, vs::kFmtS20_3,
					   vs::kFmtS24_3, vs::kFmtS20,   vs::kFmtS24,   vs::kFmtS32,
					   vs::kFmtFloat, vs::kFmtFloat64 };

/* One sample of the guest's test pattern. */
struct PatternSample {
	/* Virtio's layout (little-endian, padded formats sign-extended in the
	 * low bits of their container, as ALSA writes them); sample_bytes used. */
	std::array<uint8_t, 8> bytes{};
	/* Integer formats: the value scaled to 32 bits, as libsndfile's
	 * sf_readf_int() and sox's 32-bit decoding give it. */
	int64_t s32 = 0;
	/* Float formats: the value. */
	double real = 0;
};

/* Sample \a index of the pattern in \a format: the extremes (min, max, -1, 0)
 * and spread values for integers, a sine for floats. */
PatternSample pattern_sample(uint8_t format, uint64_t index)
{
	const auto info = *vs::format_info(format);
	PatternSample s;
	if (info.is_float) {
		s.real = std::sin(double(index) * 0.37) * 0.9;
		if (info.sample_bytes == 4) {
			const float f = static_cast<float>(s.real);
			s.real = f;
			std::memcpy(s.bytes.data(), &f, 4);
		} else {
			std::memcpy(s.bytes.data(), &s.real, 8);
		}
		return s;
	}
	const unsigned bits = info.significant_bits;
	const int64_t min = -(int64_t{1} << (bits - 1));
	const int64_t max = (int64_t{1} << (bits - 1)) - 1;
	int64_t v;
	switch (index % 7) {
	case 0: v = min; break;
	case 1: v = max; break;
	case 2: v = -1; break;
	case 3: v = 0; break;
	default: v = static_cast<int64_t>(((index + 1) * 0x9E3779B97F4A7C15ull) >> (64 - bits)) + min;
	}
	/* Unsigned (U8): offset binary. */
	const uint64_t raw = info.is_unsigned ? static_cast<uint64_t>(v - min) : static_cast<uint64_t>(v);
	for (unsigned b = 0; b < info.sample_bytes; b++)
		s.bytes[b] = static_cast<uint8_t>(raw >> (8 * b));
	s.s32 = v * (int64_t{1} << (32 - bits));
	return s;
}

/* A LinuxPcm::Source playing the pattern of \a format. */
LinuxPcm::Source pattern_source(uint8_t format)
{
	const unsigned width = vs::format_info(format)->sample_bytes;
	return [format, width](uint64_t offset, std::span<uint8_t> out) {
		for (size_t i = 0; i < out.size(); i++) {
			const uint64_t at = offset + i;
			out[i] = pattern_sample(format, at / width).bytes[at % width];
		}
	};
}

/* The first \a n bytes of the pattern of \a format. */
std::vector<uint8_t> pattern_bytes(uint8_t format, size_t n)
{
	std::vector<uint8_t> v(n);
	pattern_source(format)(0, v);
	return v;
}

/* File descriptors of this process open on \a path. */
int fds_open_on(const std::string &path)
{
	int n = 0;
	const fs::path target = fs::canonical(path);
	for (const auto &entry : fs::directory_iterator("/proc/self/fd")) {
		std::error_code ec;
		const fs::path link = fs::read_symlink(entry.path(), ec);
		if (!ec && link == target)
			n++;
	}
	return n;
}

} // namespace

TEST_CASE("what the guest plays is in the output file, sample for sample", "[file_backend]")
{
	SoundDaemon daemon({}, file_backend(output_to("out.wav")));
	const std::string path = daemon.directory() + "/out.wav";
	/* Nothing is written before the guest plays. */
	CHECK_FALSE(fs::exists(path));
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);

	/* PCM_INFO offers what WAV holds, not the formats it cannot. */
	const auto info = snd.query<vs::PcmInfo>(vs::kPcmInfo, 0, 1)[0];
	CHECK(info.formats == wav::wav_formats());
	CHECK(info.channels_max == 8);
	CHECK(snd.set_params(0, 4096, 1024, vs::kFmtU16, vs::kRate48000, 2) == vs::kStatusNotSupp);
	CHECK(snd.set_params(0, 4096, 1024, vs::kFmtS8, vs::kRate48000, 2) == vs::kStatusNotSupp);

	const PcmConfig config = ten_ms(vs::kFmtS16, 2);
	LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
	const size_t periods = 30;
	const PcmRun run = pcm.play(periods, app_source(1));
	REQUIRE(run.release_status == vs::kStatusOk);

	/* After RELEASE the header is complete and Python's wave agrees. */
	const WavContents file = contents(path);
	CHECK(file.info.format == wav::WavFormat{ vs::kFmtS16, 48000, 2 });
	CHECK_FALSE(file.info.extensible);
	const auto played = app_bytes(periods * config.period_bytes, 1);
	const size_t tail = check_played(file.data, played);
	/* What follows the data is the silence played until STOP: less than a buffer. */
	CHECK(tail == file.data.size() - played.size());
	CHECK(tail <= config.buffer_bytes);
	const auto py = python_wave(path);
	REQUIRE(py);
	CHECK(py->channels == 2);
	CHECK(py->sample_bytes == 2);
	CHECK(py->rate == 48000);
	CHECK(py->frames == file.data.size() / 4);
}

TEST_CASE("streams of one format continue one file; another format starts out-2.wav", "[file_backend]")
{
	SoundDaemon daemon({}, file_backend(output_to("out.wav")));
	const std::string dir = daemon.directory();
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);

	const PcmConfig s16 = ten_ms(vs::kFmtS16, 2);
	{
		LinuxPcm pcm(snd, 0, vs::Direction::Output, s16);
		pcm.play(10, app_source(1));
	}
	const size_t first_len = contents(dir + "/out.wav").data.size();
	{
		LinuxPcm pcm(snd, 0, vs::Direction::Output, s16);
		pcm.play(12, app_source(2));
	}
	/* One file: the first clip, its silent tail, then the second clip. */
	const WavContents one = contents(dir + "/out.wav");
	const auto clip1 = app_bytes(10 * s16.period_bytes, 1);
	const auto clip2 = app_bytes(12 * s16.period_bytes, 2);
	check_played(one.data, clip1);
	REQUIRE(one.data.size() > first_len);
	const size_t tail2 = check_played(one.data, clip2, first_len);
	CHECK(first_len + clip2.size() + tail2 == one.data.size());
	CHECK_FALSE(fs::exists(dir + "/out-2.wav"));

	/* S24 in 4 bytes, mono, 44.1 kHz: a new file, extensible, samples MSB-justified. */
	const PcmConfig s24 = ten_ms(vs::kFmtS24, 1, vs::kRate44100);
	{
		LinuxPcm pcm(snd, 0, vs::Direction::Output, s24);
		pcm.play(8, app_source(3));
	}
	const WavContents two = contents(dir + "/out-2.wav");
	CHECK(two.info.format == wav::WavFormat{ vs::kFmtS24, 44100, 1 });
	CHECK(two.info.extensible);
	auto clip3 = app_bytes(8 * s24.period_bytes, 3);
	wav::to_wav_samples(vs::kFmtS24, clip3);
	REQUIRE(two.data.size() >= clip3.size());
	CHECK(std::equal(clip3.begin(), clip3.end(), two.data.begin()));
	/* The first file is untouched by the second format. */
	CHECK(contents(dir + "/out.wav").data == one.data);

	/* Back to S16: a third file (an earlier one is not reopened). */
	{
		LinuxPcm pcm(snd, 0, vs::Direction::Output, s16);
		pcm.play(4, app_source(4));
	}
	check_played(contents(dir + "/out-3.wav").data, app_bytes(4 * s16.period_bytes, 4));
	/* libsndfile reads the padded samples (sox refuses them): the values the guest played. */
	const auto sf = sndfile_read(dir + "/out-2.wav");
	REQUIRE(sf);
	CHECK(sf->frames == two.data.size() / 4);
	const auto played = app_bytes(8 * s24.period_bytes, 3);
	for (size_t i = 0; i < played.size() / 4; i++) {
		int32_t v;
		std::memcpy(&v, &played[4 * i], 4);
		/* S24: the low three bytes, sign-extended; libsndfile scales to 32 bits. */
		const int64_t expected = int64_t{static_cast<int32_t>(static_cast<uint32_t>(v) << 8)};
		REQUIRE(sf->ints.at(i) == expected);
	}
}

TEST_CASE("a full output file continues in the next numbered file without losing a frame", "[file_backend]")
{
	FileBackendOptions options = output_to("out.wav");
	options.max_output_bytes = 10000; /* 2500 frames of S16 stereo */
	SoundDaemon daemon({}, file_backend(options));
	const std::string dir = daemon.directory();
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	const PcmConfig s16 = ten_ms(vs::kFmtS16, 2);
	LinuxPcm pcm(snd, 0, vs::Direction::Output, s16);
	pcm.play(12, app_source(5)); /* 23040 bytes */

	std::vector<uint8_t> joined;
	for (const char *name : { "out.wav", "out-2.wav", "out-3.wav" }) {
		const WavContents c = contents(dir + "/" + name);
		joined.insert(joined.end(), c.data.begin(), c.data.end());
		if (std::string(name) != "out-3.wav")
			CHECK(c.data.size() == 10000);
	}
	check_played(joined, app_bytes(12 * s16.period_bytes, 5));
}

TEST_CASE("capture reads the input file sample for sample, then silence or the file again", "[file_backend]")
{
	if (!have_sox())
		return;
	TempDir tmp;
	const std::string input = tmp.path + "/in.wav";
	sox_write(input, "-e signed-integer -b 24 -c 2 -r 44100", 0.25); /* S24_3 stereo */
	const auto samples = sox_samples(input);
	REQUIRE(samples.size() == 11025 * 6);

	for (bool loop : { false, true }) {
		INFO("loop " << loop);
		SoundDevice::Options options;
		options.input_enabled = true;
		SoundDaemon daemon(options, file_backend(input_from(input, loop)));
		vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
		SoundDriver snd(driver);

		/* PCM_INFO offers exactly the file's format, rate and channels. */
		const auto info = snd.query<vs::PcmInfo>(vs::kPcmInfo, 1, 1)[0];
		CHECK(info.formats == uint64_t{1} << vs::kFmtS24_3);
		CHECK(info.rates == uint64_t{1} << vs::kRate44100);
		CHECK(info.channels_min == 2);
		CHECK(info.channels_max == 2);
		CHECK(snd.set_params(1, 26460, 2646, vs::kFmtS16, vs::kRate44100, 2) == vs::kStatusNotSupp);
		CHECK(snd.set_params(1, 26460, 2646, vs::kFmtS24_3, vs::kRate48000, 2) == vs::kStatusNotSupp);
		CHECK(snd.set_params(1, 26460, 2646, vs::kFmtS24_3, vs::kRate44100, 1) == vs::kStatusNotSupp);

		const PcmConfig config = ten_ms(vs::kFmtS24_3, 2, vs::kRate44100);
		LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
		const size_t periods = 40; /* 0.4 s: past the end of the 0.25 s file */
		const PcmRun run = pcm.capture(periods);
		REQUIRE(run.captured.size() == periods * config.period_bytes);
		for (size_t at = 0; at < run.captured.size(); at += samples.size()) {
			const size_t n = std::min(samples.size(), run.captured.size() - at);
			const auto begin = run.captured.begin() + static_cast<ptrdiff_t>(at);
			if (at == 0 || loop)
				CHECK(std::equal(begin, begin + static_cast<ptrdiff_t>(n), samples.begin()));
			else
				CHECK(std::all_of(begin, begin + static_cast<ptrdiff_t>(n), [](uint8_t b) { return b == 0; }));
		}
	}
}

TEST_CASE("padded and float input files reach the guest in virtio's layout", "[file_backend]")
{
	if (!have_sox())
		return;
	TempDir tmp;
	/* 24 valid bits in 32 (WAVE_FORMAT_EXTENSIBLE, written by our writer, checked by sox
	 * in test_wav) and 32-bit float written by sox. */
	const std::string s24 = tmp.path + "/s24.wav";
	std::vector<uint8_t> virtio(4800 * 4);
	for (size_t i = 0; i < virtio.size() / 4; i++) {
		const int32_t v = static_cast<int32_t>((i * 2654435761u) & 0xffffff) - 0x800000;
		std::memcpy(&virtio[i * 4], &v, 4);
	}
	{
		auto file = wav::make_wav_header({ vs::kFmtS24, 48000, 1 }, virtio.size());
		auto samples = virtio;
		wav::to_wav_samples(vs::kFmtS24, samples);
		file.insert(file.end(), samples.begin(), samples.end());
		write_file(s24, file);
	}
	const std::string flt = tmp.path + "/float.wav";
	sox_write(flt, "-e floating-point -b 32 -c 1 -r 48000", 0.1);
	const auto flt_samples = sox_samples(flt);

	for (const auto &[path, format, expected] : { std::tuple{ s24, vs::kFmtS24, virtio },
						      std::tuple{ flt, vs::kFmtFloat, flt_samples } }) {
		INFO(path);
		SoundDevice::Options options;
		options.input_enabled = true;
		SoundDaemon daemon(options, file_backend(input_from(path)));
		vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
		SoundDriver snd(driver);
		const PcmConfig config = ten_ms(format, 1);
		LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
		const PcmRun run = pcm.capture(expected.size() / config.period_bytes);
		REQUIRE(run.captured.size() == expected.size());
		CHECK(run.captured == expected);
	}
}

TEST_CASE("the input file is open only while input is enabled and a stream exists", "[file_backend]")
{
	if (!have_sox())
		return;
	TempDir tmp;
	const std::string input = tmp.path + "/mic.wav";
	sox_write(input, "-e signed-integer -b 16 -c 2 -r 48000", 1.0);
	const auto samples = sox_samples(input);

	/* Input disabled from the start. */
	SoundDaemon daemon({}, file_backend(input_from(input)));
	/* The header was read at start-up and the file closed again. */
	CHECK(fds_open_on(input) == 0);
	vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
	SoundDriver snd(driver);
	const PcmConfig config = ten_ms(vs::kFmtS16, 2);

	{
		LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
		pcm.setup();
		PcmRun run = start_and_wait(snd, pcm, 1, 3);
		/* A running capture stream, yet no descriptor on the file: the guest gets zeros. */
		CHECK(fds_open_on(input) == 0);
		CHECK(run.statuses == std::vector<uint32_t>(3, vs::kStatusOk));
		pcm.finish(run);
	}
	{
		/* Captured while disabled: every byte zero. */
		LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
		const PcmRun run = pcm.capture(5);
		CHECK(std::all_of(run.captured.begin(), run.captured.end(), [](uint8_t b) { return b == 0; }));
	}

	/* Enabled: a new stream opens the file and reads it from its first sample. */
	daemon.on_loop([&] { daemon.device().set_enabled(Direction::Input, true); });
	{
		LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
		pcm.setup();
		CHECK(fds_open_on(input) == 1);
		PcmRun run = start_and_wait(snd, pcm, 1, 3);
		CHECK(fds_open_on(input) == 1);
		pcm.finish(run);
		/* RELEASE closed it. */
		CHECK(fds_open_on(input) == 0);
	}
	{
		LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
		const PcmRun run = pcm.capture(10);
		CHECK(std::equal(run.captured.begin(), run.captured.end(), samples.begin()));
		CHECK(fds_open_on(input) == 0);
	}

	/* Disabled while a stream runs: the file is closed at once, the guest gets zeros. */
	{
		LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
		pcm.setup();
		PcmRun run = start_and_wait(snd, pcm, 1, 1);
		CHECK(fds_open_on(input) == 1);
		daemon.on_loop([&] { daemon.device().set_enabled(Direction::Input, false); });
		CHECK(fds_open_on(input) == 0);
		pcm.finish(run);
	}
}

TEST_CASE("every output format the file back-end advertises lands sample-exact; libsndfile, sox and Python read it back", "[file_backend][tools]")
{
	if (!wav_readers_or_fail())
		return;
	struct Case {
		uint8_t format;
		uint8_t channels;
		uint8_t rate;
	};
	/* Every advertised format once, with channel counts and rates that give
	 * plain and extensible headers. */
	const std::vector<Case> cases = {
		{ vs::kFmtU8, 1, vs::kRate8000 },      { vs::kFmtS16, 2, vs::kRate48000 },
		{ vs::kFmtS18_3, 2, vs::kRate44100 },  { vs::kFmtS20_3, 1, vs::kRate48000 },
		{ vs::kFmtS24_3, 2, vs::kRate96000 },  { vs::kFmtS20, 2, vs::kRate48000 },
		{ vs::kFmtS24, 6, vs::kRate48000 },    { vs::kFmtS32, 2, vs::kRate44100 },
		{ vs::kFmtFloat, 2, vs::kRate48000 },  { vs::kFmtFloat64, 1, vs::kRate48000 },
	};
	uint64_t covered = 0;
	for (const Case &c : cases)
		covered |= uint64_t{1} << c.format;
	REQUIRE(covered == wav::wav_formats());

	for (const Case &c : cases) {
		const auto info = *vs::format_info(c.format);
		const wav::WavFormat expected_format{ c.format, vs::rate_hz(c.rate), c.channels };
		INFO(wav::describe(expected_format));
		SoundDaemon daemon({}, file_backend(output_to("out.wav")));
		const std::string path = daemon.directory() + "/out.wav";
		vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
		SoundDriver snd(driver);
		/* What this test covers is what PCM_INFO offers, no more, no less. */
		CHECK(snd.query<vs::PcmInfo>(vs::kPcmInfo, 0, 1)[0].formats == covered);

		const PcmConfig config = ten_ms(c.format, c.channels, c.rate);
		const size_t periods = 20; /* past the 16-period buffer: re-queued periods too */
		LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
		const PcmRun run = pcm.play(periods, pattern_source(c.format));
		REQUIRE(run.release_status == vs::kStatusOk);
		CHECK(run.statuses == std::vector<uint32_t>(periods, vs::kStatusOk));

		/* Our parser: the header, and the bytes in WAV's layout. */
		const WavContents file = contents(path);
		CHECK(file.info.format == expected_format);
		CHECK(file.info.extensible == wav::needs_extensible(expected_format));
		const auto played = pattern_bytes(c.format, periods * config.period_bytes);
		auto as_wav = played;
		wav::to_wav_samples(c.format, as_wav);
		const size_t tail = check_played(file.data, as_wav);
		CHECK(tail == file.data.size() - as_wav.size());
		CHECK(tail <= config.buffer_bytes);

		const size_t frame_bytes = size_t{info.sample_bytes} * c.channels;
		const size_t samples = played.size() / info.sample_bytes;
		/* libsndfile (an independent reader): the header and every sample's value. */
		const auto sf = sndfile_read(path);
		REQUIRE(sf);
		CHECK(sf->frames == file.data.size() / frame_bytes);
		CHECK(sf->rate == vs::rate_hz(c.rate));
		CHECK(sf->channels == c.channels);
		CHECK(sf->major == (wav::needs_extensible(expected_format) ? 0x130000u : 0x10000u));
		CHECK(sf->subtype == (info.is_float ? (info.sample_bytes == 4 ? 6u : 7u)
				      : info.sample_bytes == 1 ? 5u : unsigned{info.sample_bytes}));
		size_t wrong = 0;
		if (info.is_float) {
			REQUIRE(sf->doubles.size() >= samples);
			for (size_t i = 0; i < samples; i++)
				wrong += sf->doubles[i] != pattern_sample(c.format, i).real;
		} else {
			REQUIRE(sf->ints.size() >= samples);
			for (size_t i = 0; i < samples; i++)
				wrong += sf->ints[i] != pattern_sample(c.format, i).s32;
		}
		CHECK(wrong == 0);

		/* sox reads every unpadded format (it refuses padded samples). */
		if (!wav::wav_layout(c.format)->shift) {
			CHECK(soxi_frames(path) == std::optional<uint64_t>(file.data.size() / frame_bytes));
			const auto sx = soxi(path);
			REQUIRE_FALSE(sx.empty());
			CHECK(sx.at("Channels") == std::to_string(c.channels));
			CHECK(sx.at("Sample Rate") == std::to_string(vs::rate_hz(c.rate)));
			CHECK(sx.at("Sample Encoding").find(info.is_float ? "Floating Point PCM"
							   : info.is_unsigned ? "Unsigned Integer PCM"
									      : "Signed Integer PCM") != std::string::npos);
			/* (sox converts floats through its 32-bit integers: only integer values compare.) */
			if (!info.is_float) {
				const auto raw = sox_raw(path, "signed-integer", 32);
				REQUIRE(raw);
				REQUIRE(raw->size() >= 4 * samples);
				wrong = 0;
				for (size_t i = 0; i < samples; i++) {
					int32_t v;
					std::memcpy(&v, raw->data() + 4 * i, 4);
					wrong += v != pattern_sample(c.format, i).s32;
				}
				CHECK(wrong == 0);
			}
		}
		/* Python's wave reads the plain (non-extensible) headers: the guest's bytes as they are. */
		if (!wav::needs_extensible(expected_format)) {
			const auto py = python_wave(path);
			REQUIRE(py);
			CHECK(py->channels == c.channels);
			CHECK(py->sample_bytes == info.sample_bytes);
			CHECK(py->rate == vs::rate_hz(c.rate));
			CHECK(py->frames == file.data.size() / frame_bytes);
			CHECK(py->data_hex.compare(0, 2 * played.size(), to_hex(played.data(), played.size())) == 0);
		}
	}
}

TEST_CASE("capture from an input file of every width is sample-exact, then format-correct silence", "[file_backend][tools]")
{
	if (!wav_readers_or_fail())
		return;
	TempDir tmp;
	constexpr size_t kFrames = 4800; /* 0.1 s at 48 kHz: ten 10 ms periods */
	for (uint8_t format : kWavFormats) {
		const auto info = *vs::format_info(format);
		INFO("format " << vs::format_name(format));
		const std::string path = fmt::format("{}/{}.wav", tmp.path, info.name);
		/* sox (an independent writer) writes every unpadded width; the guest
		 * must receive the samples as sox decodes them. */
		const char *sox_args = format == vs::kFmtU8      ? "-e unsigned-integer -b 8"
				       : format == vs::kFmtS16     ? "-e signed-integer -b 16"
				       : format == vs::kFmtS24_3   ? "-e signed-integer -b 24"
				       : format == vs::kFmtS32     ? "-e signed-integer -b 32"
				       : format == vs::kFmtFloat   ? "-e floating-point -b 32"
				       : format == vs::kFmtFloat64 ? "-e floating-point -b 64"
								   : nullptr;
		std::vector<uint8_t> expected;
		if (sox_args) {
			sox_write(path, fmt::format("{} -c 2 -r 48000", sox_args), 0.1);
			expected = sox_samples(path);
		} else {
			/* sox cannot write padded samples: our writer does, and libsndfile
			 * confirms the file holds the pattern's values before the guest reads it. */
			expected = pattern_bytes(format, kFrames * 2 * info.sample_bytes);
			auto file = wav::make_wav_header({ format, 48000, 2 }, expected.size());
			auto samples = expected;
			wav::to_wav_samples(format, samples);
			file.insert(file.end(), samples.begin(), samples.end());
			write_file(path, file);
			const auto sf = sndfile_read(path);
			REQUIRE(sf);
			REQUIRE(sf->ints.size() == kFrames * 2);
			size_t wrong = 0;
			for (size_t i = 0; i < sf->ints.size(); i++)
				wrong += sf->ints[i] != pattern_sample(format, i).s32;
			REQUIRE(wrong == 0);
		}
		REQUIRE(expected.size() == kFrames * 2 * info.sample_bytes);

		SoundDevice::Options options;
		options.input_enabled = true;
		SoundDaemon daemon(options, file_backend(input_from(path)));
		vhostpp::DeviceDriver driver(daemon.socket_path(), sound_driver_options());
		SoundDriver snd(driver);
		const auto pcm_info = snd.query<vs::PcmInfo>(vs::kPcmInfo, 1, 1)[0];
		CHECK(pcm_info.formats == uint64_t{1} << format);
		CHECK(pcm_info.rates == uint64_t{1} << vs::kRate48000);
		CHECK(pcm_info.channels_min == 2);
		CHECK(pcm_info.channels_max == 2);

		const PcmConfig config = ten_ms(format, 2);
		REQUIRE(expected.size() == 10 * config.period_bytes);
		LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
		const PcmRun run = pcm.capture(12); /* two periods past the end of the file */
		REQUIRE(run.captured.size() == 12 * config.period_bytes);
		CHECK(run.statuses == std::vector<uint32_t>(12, vs::kStatusOk));
		/* The first wrong period, 10 when all are right: a failure says where. */
		size_t good = 0;
		while (good < 10 && std::equal(expected.begin() + good * config.period_bytes,
					       expected.begin() + (good + 1) * config.period_bytes,
					       run.captured.begin() + good * config.period_bytes))
			good++;
		CHECK(good == 10);
		/* After the last sample: silence of the format (U8's is 0x80, not 0). */
		const uint8_t silence = format == vs::kFmtU8 ? 0x80 : 0x00;
		CHECK(std::all_of(run.captured.begin() + static_cast<ptrdiff_t>(expected.size()), run.captured.end(),
				  [&](uint8_t b) { return b == silence; }));
	}
}

namespace {

/* The real binary with the file back-end; waits until its control socket answers. */
struct FileDaemon {
	TempDir dir;
	std::string sock = dir.path + "/snd.sock";
	std::string ctl = dir.path + "/ctl.sock";
	std::optional<DaemonProcess> process;

	void start(std::vector<std::string> args)
	{
		std::vector<std::string> all = { "--socket", sock, "--control-socket", ctl, "--backend", "file" };
		all.insert(all.end(), args.begin(), args.end());
		process.emplace(all);
		REQUIRE(query_when_up(ctl));
	}
};

} // namespace

TEST_CASE("the binary refuses unusable input and output files with status 2 and one line", "[file_backend][process]")
{
	TempDir tmp;
	const std::string good = tmp.path + "/good.wav";
	{
		auto file = wav::make_wav_header({ vs::kFmtS16, 48000, 2 }, 400);
		file.resize(file.size() + 400, 0);
		write_file(good, file);
	}
	auto write = [&](const std::string &name, std::vector<uint8_t> bytes) {
		write_file(tmp.path + "/" + name, bytes);
		return tmp.path + "/" + name;
	};
	auto header = [](const wav::WavFormat &f) { return wav::make_wav_header(f, 0); };
	const std::string text = write("text.wav", { 'h', 'e', 'l', 'l', 'o', '\n' });
	auto riff_only = header({ vs::kFmtS16, 48000, 2 });
	riff_only.resize(12);
	const std::string truncated = write("truncated.wav", riff_only);
	auto odd_rate = header({ vs::kFmtS16, 48000, 2 });
	odd_rate[24] = 0x39; /* 12345 Hz */
	odd_rate[25] = 0x30;
	odd_rate[26] = odd_rate[27] = 0;
	const std::string rate = write("rate.wav", odd_rate);
	const std::string channels = write("channels.wav", header({ vs::kFmtS16, 48000, 10 }));
	auto mulaw = header({ vs::kFmtU8, 8000, 1 });
	mulaw[20] = 7; /* WAVE_FORMAT_MULAW */
	const std::string law = write("mulaw.wav", mulaw);
	const std::string fifo = tmp.path + "/fifo.wav";
	REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
	fs::create_directory(tmp.path + "/dir.wav");

	const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> cases = {
		{ {}, { "--output-file", "--input-file" } },
		{ { "--input-file", tmp.path + "/missing.wav" }, { "missing.wav", "No such file" } },
		{ { "--input-file", text }, { "text.wav", "too short" } },
		{ { "--input-file", truncated }, { "truncated.wav", "no fmt chunk" } },
		{ { "--input-file", rate }, { "rate.wav", "12345 Hz is not a virtio-sound rate" } },
		{ { "--input-file", channels }, { "channels.wav", "10 channels" } },
		{ { "--input-file", law }, { "mulaw.wav", "format tag 0x0007" } },
		{ { "--input-file", fifo }, { "fifo.wav", "not a regular file" } },
		{ { "--input-file", tmp.path + "/dir.wav" }, { "dir.wav", "not a regular file" } },
		{ { "--input-loop", "--output-file", tmp.path + "/o.wav" }, { "--input-loop needs --input-file" } },
		{ { "--output-file", tmp.path + "/no/such/dir/o.wav" }, { "o.wav", "is not a directory" } },
		{ { "--output-file", tmp.path + "/dir.wav" }, { "dir.wav", "not a regular file" } },
		{ { "--output-file", good, "--input-file", good }, { "good.wav", "is the --input-file" } },
	};
	for (const auto &[args, words] : cases) {
		std::vector<std::string> all = { "--socket", tmp.path + "/snd.sock", "--backend", "file" };
		all.insert(all.end(), args.begin(), args.end());
		INFO("arguments: " << joined_args(all));
		const Exited p = run_to_exit(all);
		CHECK(p.status == std::optional<int>(2));
		INFO("stderr: " << p.err);
		CHECK(p.err.rfind("vhost-sound: --backend file: ", 0) == 0);
		for (const auto &word : words)
			CHECK(p.err.find(word) != std::string::npos);
		CHECK(std::count(p.err.begin(), p.err.end(), '\n') == 1);
		CHECK(p.out.empty());
		CHECK_FALSE(fs::exists(tmp.path + "/o.wav"));
	}
	/* The input file of the last case was not replaced. */
	CHECK(read_file(good).size() == 44 + 400);

	if (::geteuid() != 0) {
		const std::string locked = write("locked.wav", read_file(good));
		::chmod(locked.c_str(), 0);
		DaemonProcess p({ "--socket", tmp.path + "/snd.sock", "--backend", "file", "--input-file", locked });
		CHECK(p.wait() == std::optional<int>(2));
		CHECK(p.err().find("Permission denied") != std::string::npos);
	}
}

TEST_CASE("the input file is checked again at PREPARE: replaced, removed or malformed gives IO_ERR and a log line; the daemon serves on", "[file_backend][process]")
{
	if (!have_sox())
		return;
	FileDaemon daemon;
	const std::string input = daemon.dir.path + "/mic.wav";
	const std::string saved = daemon.dir.path + "/mic-saved.wav";
	sox_write(input, "-e signed-integer -b 16 -c 2 -r 48000", 0.2);
	fs::copy_file(input, saved);
	const auto samples = sox_samples(input);
	daemon.start({ "--input-file", input, "--initial-streams", "output,input", "--log-level", "info" });

	vhostpp::DeviceDriver driver(daemon.sock, sound_driver_options());
	SoundDriver snd(driver);
	const PcmConfig config = ten_ms(vs::kFmtS16, 2);
	/* A capture with the file as it was at start-up: the file's first periods, exactly. */
	auto capture_is_exact = [&] {
		LinuxPcm pcm(snd, 1, vs::Direction::Input, config);
		const PcmRun run = pcm.capture(10);
		REQUIRE(run.captured.size() == 10 * config.period_bytes);
		CHECK(std::equal(run.captured.begin(), run.captured.end(), samples.begin()));
		CHECK(run.release_status == vs::kStatusOk);
	};
	capture_is_exact();

	struct Change {
		const char *what;
		std::function<void()> apply;
		/* What the daemon's log line says after "--input-file PATH: ". */
		std::string says;
	};
	const std::vector<Change> changes = {
		{ "another sample format", [&] { sox_write(input, "-e signed-integer -b 24 -c 2 -r 48000", 0.2); },
		  "now holds S24_3 48000 Hz 2 ch, not S16 48000 Hz 2 ch as at start-up" },
		{ "another rate", [&] { sox_write(input, "-e signed-integer -b 16 -c 2 -r 44100", 0.2); },
		  "now holds S16 44100 Hz 2 ch, not S16 48000 Hz 2 ch as at start-up" },
		{ "another channel count", [&] { sox_write(input, "-e signed-integer -b 16 -c 1 -r 48000", 0.2); },
		  "now holds S16 48000 Hz 1 ch, not S16 48000 Hz 2 ch as at start-up" },
		{ "removed", [&] { fs::remove(input); }, "cannot open: No such file or directory" },
		{ "not a WAV file any more", [&] { write_file(input, { 'h', 'e', 'l', 'l', 'o', '\n' }); },
		  "not a usable WAV file" },
		{ "a directory now", [&] { fs::remove(input); fs::create_directory(input); }, "not a regular file" },
	};
	for (const Change &change : changes) {
		INFO("the input file: " << change.what);
		change.apply();
		/* SET_PARAMS checks against what PCM_INFO offered (the start-up file); PREPARE opens the file. */
		REQUIRE(snd.set_params(1, config.buffer_bytes, config.period_bytes, config.format, config.rate,
				       config.channels) == vs::kStatusOk);
		CHECK(snd.pcm(vs::kPcmPrepare, 1) == vs::kStatusIoErr);
		/* Not prepared: START is refused, nothing was opened for it. */
		CHECK(snd.pcm(vs::kPcmStart, 1) == vs::kStatusBadMsg);
		/* The daemon serves on: the output stream plays. */
		{
			LinuxPcm out(snd, 0, vs::Direction::Output, config);
			const PcmRun run = out.play(3, app_source(7));
			CHECK(run.statuses == std::vector<uint32_t>(3, vs::kStatusOk));
		}
		/* The file put back: the next PREPARE opens it, capture is exact again. */
		fs::remove_all(input);
		fs::copy_file(saved, input);
		capture_is_exact();
	}

	daemon.process->signal(SIGTERM);
	CHECK(daemon.process->wait() == std::optional<int>(0));
	const std::string err = daemon.process->err();
	INFO("stderr: " << err);
	for (const Change &change : changes)
		CHECK(err.find("file back-end: --input-file " + input + ": " + change.says) != std::string::npos);
	/* One error line per refused PREPARE, none for the good ones. */
	size_t lines = 0;
	for (size_t at = 0; (at = err.find("file back-end: --input-file ", at)) != std::string::npos; at++)
		lines++;
	CHECK(lines == changes.size());
}

TEST_CASE("SIGTERM or SIGINT in the middle of playback leaves a valid, complete WAV file", "[file_backend][process]")
{
	for (const int sig : { SIGTERM, SIGINT }) {
		INFO("signal " << sig);
		FileDaemon daemon;
		const std::string out = daemon.dir.path + "/session.wav";
		daemon.start({ "--output-file", out, "--log-level", "info" });
		const PcmConfig s16 = ten_ms(vs::kFmtS16, 2);
		const PcmConfig flt = ten_ms(vs::kFmtFloat, 2);
		size_t periods_before_signal = 0;
		{
			vhostpp::DeviceDriver driver(daemon.sock, sound_driver_options());
			SoundDriver snd(driver);
			{
				LinuxPcm pcm(snd, 0, vs::Direction::Output, s16);
				pcm.play(5, app_source(6));
			}
			/* Another format, and the signal while it plays: its buffer holds
			 * the application's samples, written before START. */
			LinuxPcm pcm(snd, 0, vs::Direction::Output, flt);
			pcm.setup();
			app_source(8)(0, snd.memory().at(pcm.dma_gpa(), flt.buffer_bytes));
			const PcmRun run = start_and_wait(snd, pcm, 0, 3);
			periods_before_signal = run.statuses.size();
			daemon.process->signal(sig);
			CHECK(daemon.process->wait() == std::optional<int>(0));
		}
		const std::string err = daemon.process->err();
		INFO("stderr: " << err);
		CHECK(err.find("continuing in " + daemon.dir.path + "/session-2.wav") != std::string::npos);

		const WavContents first = contents(out);
		check_played(first.data, app_bytes(5 * s16.period_bytes, 6));
		/* The second file: a float header describing exactly what was written
		 * before the signal, and those samples are the application's. */
		const WavContents second = contents(daemon.dir.path + "/session-2.wav");
		CHECK(second.info.format == wav::WavFormat{ vs::kFmtFloat, 48000, 2 });
		CHECK(second.data.size() >= periods_before_signal * flt.period_bytes);
		CHECK(second.data.size() <= flt.buffer_bytes);
		CHECK(second.data.size() % 8 == 0);
		const auto buffer = app_bytes(flt.buffer_bytes, 8);
		CHECK(std::equal(second.data.begin(), second.data.end(), buffer.begin()));
		if (have_tool("soxi")) {
			CHECK(soxi_frames(daemon.dir.path + "/session-2.wav") ==
			      std::optional<uint64_t>(second.data.size() / 8));
			CHECK(soxi(daemon.dir.path + "/session-2.wav").at("Sample Encoding").find("Floating Point") !=
			      std::string::npos);
		}
		const auto py = python_wave(out);
		REQUIRE(py);
		CHECK(py->frames == first.data.size() / 4);
		const auto sf = sndfile_read(daemon.dir.path + "/session-2.wav");
		REQUIRE(sf);
		CHECK(sf->frames == second.data.size() / 8);
	}
}
