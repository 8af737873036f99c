/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The WAV unit of the file back-end: headers it writes are read back by
 * Python's wave module and by sox (independent readers), the sample layout
 * of the padded formats is checked through sox's decoding, and the header
 * parser is fed sox-written files, every malformation we know of, and
 * random mutations.
 */
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <cstring>
#include <random>
#include <unistd.h>

#include "audio/file/wav.h"
#include "device/virtio_snd.h"
#include "daemon_process.h"
#include "wav_check.h"

using namespace sound_test;
namespace vs = vhost_sound::virtio_snd;
namespace wav = vhost_sound::wav;

namespace {

/* Samples of a float format as doubles. */
std::vector<double> float_values(const std::vector<uint8_t> &raw, unsigned bytes)
{
	std::vector<double> v;
	for (size_t i = 0; i + bytes <= raw.size(); i += bytes) {
		if (bytes == 4) {
			float f;
			std::memcpy(&f, &raw[i], 4);
			v.push_back(f);
		} else {
			double d;
			std::memcpy(&d, &raw[i], 8);
			v.push_back(d);
		}
	}
	return v;
}

/* Virtio samples of \a format: \a frames frames of \a channels, covering the
 * extremes (min, max, -1, 0) and spread values; padded formats are
 * sign-extended into their container, as ALSA writes them. Also returns the
 * value of each sample as sox's 32-bit signed decoding must give it. */
std::vector<uint8_t> virtio_samples(uint8_t format, unsigned channels, unsigned frames,
				    std::vector<int64_t> *as_s32 = nullptr)
{
	const auto info = *vs::format_info(format);
	const unsigned n = frames * channels;
	std::vector<uint8_t> out(size_t{n} * info.sample_bytes);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *p = &out[size_t{i} * info.sample_bytes];
		if (info.is_float) {
			const double v = std::sin(i * 0.37) * 0.9;
			if (info.sample_bytes == 4) {
				const float f = static_cast<float>(v);
				std::memcpy(p, &f, 4);
			} else {
				std::memcpy(p, &v, 8);
			}
			continue;
		}
		const unsigned bits = info.significant_bits;
		const int64_t min = -(int64_t{1} << (bits - 1));
		const int64_t max = (int64_t{1} << (bits - 1)) - 1;
		int64_t v;
		switch (i % 7) {
		case 0: v = min; break;
		case 1: v = max; break;
		case 2: v = -1; break;
		case 3: v = 0; break;
		default: v = static_cast<int64_t>((uint64_t{i} * 0x9E3779B97F4A7C15ull) >> (64 - bits)) + min;
		}
		/* Unsigned (U8): offset binary. */
		const uint64_t raw = info.is_unsigned ? static_cast<uint64_t>(v - min) : static_cast<uint64_t>(v);
		for (unsigned b = 0; b < info.sample_bytes; b++)
			p[b] = static_cast<uint8_t>(raw >> (8 * b));
		if (as_s32)
			as_s32->push_back(v * (int64_t{1} << (32 - bits)));
	}
	return out;
}

std::vector<uint8_t> wav_file(const wav::WavFormat &f, std::vector<uint8_t> samples)
{
	auto file = wav::make_wav_header(f, samples.size());
	wav::to_wav_samples(f.format, samples);
	file.insert(file.end(), samples.begin(), samples.end());
	if (samples.size() & 1)
		file.push_back(0);
	return file;
}

std::vector<int64_t> s32_values(const std::vector<uint8_t> &raw)
{
	std::vector<int64_t> v;
	for (size_t i = 0; i + 4 <= raw.size(); i += 4) {
		int32_t x;
		std::memcpy(&x, &raw[i], 4);
		v.push_back(x);
	}
	return v;
}

const std::vector<uint8_t> kExpectedFormats = { vs::kFmtU8,    vs::kFmtS16,   vs::kFmtS18_3, vs::kFmtS20_3,
						vs::kFmtS24_3, vs::kFmtS20,   vs::kFmtS24,   vs::kFmtS32,
						vs::kFmtFloat, vs::kFmtFloat64 };

} // namespace

TEST_CASE("WAV holds U8, the signed formats above 8 bits and both floats; nothing else", "[wav]")
{
	uint64_t expected = 0;
	for (uint8_t f : kExpectedFormats)
		expected |= uint64_t{1} << f;
	CHECK(wav::wav_formats() == expected);
	for (uint8_t f : { vs::kFmtS8, vs::kFmtU16, vs::kFmtU24, vs::kFmtU32, vs::kFmtU20_3, vs::kFmtMuLaw,
			   vs::kFmtALaw, vs::kFmtImaAdpcm, vs::kFmtDsdU8, vs::kFmtIec958Subframe })
		CHECK_FALSE(wav::wav_layout(f));
	CHECK(wav::wav_layout(vs::kFmtS24)->container_bits == 32);
	CHECK(wav::wav_layout(vs::kFmtS24)->valid_bits == 24);
	CHECK(wav::wav_layout(vs::kFmtS24)->shift == 8);
	CHECK(wav::wav_layout(vs::kFmtS20_3)->shift == 4);
	CHECK(wav::wav_layout(vs::kFmtS24_3)->shift == 0);
}

TEST_CASE("padded samples move between virtio's low bits and WAV's high bits", "[wav]")
{
	/* S24 (24 in 32, LSB-justified as ALSA's S24_LE): 0x123456 with a junk top byte. */
	std::vector<uint8_t> s24 = { 0x56, 0x34, 0x12, 0xab, 0xff, 0xff, 0x80, 0xff };
	wav::to_wav_samples(vs::kFmtS24, s24);
	CHECK(s24 == std::vector<uint8_t>{ 0x00, 0x56, 0x34, 0x12, 0x00, 0xff, 0xff, 0x80 });
	wav::from_wav_samples(vs::kFmtS24, s24);
	CHECK(s24 == std::vector<uint8_t>{ 0x56, 0x34, 0x12, 0x00, 0xff, 0xff, 0x80, 0xff });

	/* S20_3: -1 in 20 bits, in 3 bytes. */
	std::vector<uint8_t> s20_3 = { 0xff, 0xff, 0x0f };
	wav::to_wav_samples(vs::kFmtS20_3, s20_3);
	CHECK(s20_3 == std::vector<uint8_t>{ 0xf0, 0xff, 0xff });
	wav::from_wav_samples(vs::kFmtS20_3, s20_3);
	CHECK(s20_3 == std::vector<uint8_t>{ 0xff, 0xff, 0xff });

	/* Unpadded formats are stored as they are. */
	std::vector<uint8_t> s32 = { 1, 2, 3, 4 };
	wav::to_wav_samples(vs::kFmtS32, s32);
	CHECK(s32 == std::vector<uint8_t>{ 1, 2, 3, 4 });
}

TEST_CASE("every WAV format's header and samples read back through libsndfile, sox and Python's wave", "[wav][tools]")
{
	if (!wav_readers_or_fail())
		return;
	TempDir dir;
	constexpr unsigned kFrames = 101; /* odd: U8 mono needs a pad byte */
	for (uint8_t format : kExpectedFormats) {
		for (unsigned channels : { 1u, 2u, 6u }) {
			const auto info = *vs::format_info(format);
			const wav::WavFormat f{ format, 44100, static_cast<uint16_t>(channels) };
			INFO(wav::describe(f));
			std::vector<int64_t> expected_s32;
			const auto samples = virtio_samples(format, channels, kFrames, &expected_s32);
			const auto file = wav_file(f, samples);
			const std::string path = fmt::format("{}/{}-{}.wav", dir.path, info.name, channels);
			write_file(path, file);

			/* Our own parser agrees with our writer. */
			const auto parsed = wav::parse_wav_header(file);
			REQUIRE(parsed.info);
			CHECK(parsed.info->format == f);
			CHECK(parsed.info->data_offset == wav::wav_header_bytes(f));
			CHECK(parsed.info->data_bytes == samples.size());
			CHECK(parsed.info->extensible == wav::needs_extensible(f));

			/* libsndfile: the header, and every sample's value. */
			const auto sf = sndfile_read(path);
			REQUIRE(sf);
			CHECK(sf->frames == kFrames);
			CHECK(sf->rate == 44100);
			CHECK(sf->channels == channels);
			CHECK(sf->major == (wav::needs_extensible(f) ? 0x130000u : 0x10000u));
			const unsigned subtype = info.is_float ? (info.sample_bytes == 4 ? 6 : 7)
					       : info.sample_bytes == 1 ? 5 : info.sample_bytes;
			CHECK(sf->subtype == subtype);
			if (info.is_float) {
				const auto want = float_values(samples, info.sample_bytes);
				REQUIRE(sf->doubles.size() == want.size());
				for (size_t i = 0; i < want.size(); i++)
					REQUIRE(sf->doubles[i] == want[i]);
			} else {
				CHECK(sf->ints == expected_s32);
			}

			/* sox refuses padded samples ("not supported yet"); it reads the rest. */
			if (!wav::wav_layout(format)->shift) {
				const auto sx = soxi(path);
				REQUIRE_FALSE(sx.empty());
				CHECK(sx.at("Channels") == std::to_string(channels));
				CHECK(sx.at("Sample Rate") == "44100");
				/* (For floats sox gives the mantissa's precision.) */
				if (!info.is_float)
					CHECK(sx.at("Precision") == std::to_string(info.significant_bits) + "-bit");
				const std::string encoding = sx.at("Sample Encoding");
				if (info.is_float)
					CHECK(encoding.find("Floating Point PCM") != std::string::npos);
				else if (info.is_unsigned)
					CHECK(encoding.find("Unsigned Integer PCM") != std::string::npos);
				else
					CHECK(encoding.find("Signed Integer PCM") != std::string::npos);
				CHECK(soxi_frames(path) == std::optional<uint64_t>(kFrames));
				if (!info.is_float) {
					const auto raw = sox_raw(path, "signed-integer", 32);
					REQUIRE(raw);
					CHECK(s32_values(*raw) == expected_s32);
				}
			}

			/* Python's wave reads plain PCM (it refuses the extensible header). */
			if (!wav::needs_extensible(f)) {
				const auto py = python_wave(path);
				REQUIRE(py);
				CHECK(py->channels == channels);
				CHECK(py->sample_bytes == info.sample_bytes);
				CHECK(py->rate == 44100);
				CHECK(py->frames == kFrames);
				CHECK(py->data_hex == to_hex(samples.data(), samples.size()));
			}

			/* Back to virtio samples: what the input stream gives the guest. */
			std::vector<uint8_t> back(file.begin() + static_cast<ptrdiff_t>(parsed.info->data_offset),
						  file.begin() + static_cast<ptrdiff_t>(parsed.info->data_offset +
											parsed.info->data_bytes));
			wav::from_wav_samples(format, back);
			CHECK(back == samples);
		}
	}
}

TEST_CASE("the parser reads what sox writes", "[wav][tools]")
{
	if (!wav_readers_or_fail())
		return;
	TempDir dir;
	struct Case {
		std::string sox_args;
		wav::WavFormat format;
		bool extensible;
	};
	const std::vector<Case> cases = {
		{ "-e unsigned-integer -b 8 -c 1 -r 8000", { vs::kFmtU8, 8000, 1 }, false },
		{ "-e signed-integer -b 16 -c 2 -r 48000", { vs::kFmtS16, 48000, 2 }, false },
		{ "-e signed-integer -b 24 -c 2 -r 44100", { vs::kFmtS24_3, 44100, 2 }, true },
		{ "-e signed-integer -b 32 -c 1 -r 96000", { vs::kFmtS32, 96000, 1 }, true },
		/* sox writes float as WAVE_FORMAT_IEEE_FLOAT, not extensible. */
		{ "-e floating-point -b 32 -c 2 -r 48000", { vs::kFmtFloat, 48000, 2 }, false },
		{ "-e floating-point -b 64 -c 1 -r 22050", { vs::kFmtFloat64, 22050, 1 }, false },
		{ "-e signed-integer -b 16 -c 6 -r 48000", { vs::kFmtS16, 48000, 6 }, true },
	};
	for (const Case &c : cases) {
		INFO("sox " << c.sox_args);
		const std::string path = dir.path + "/sox.wav";
		int status = 0;
		run_command("sox -D -V1 -n " + c.sox_args + " '" + path + "' synth 0.05 sine 440 gain -3", status);
		REQUIRE(status == 0);
		const auto file = read_file(path);
		const auto parsed = wav::parse_wav_header(file);
		INFO("error: " << parsed.error);
		REQUIRE(parsed.info);
		CHECK(parsed.info->format == c.format);
		CHECK(parsed.info->extensible == c.extensible);
		const auto frames = soxi_frames(path);
		REQUIRE(frames);
		CHECK(parsed.info->data_bytes == *frames * c.format.frame_bytes());
		REQUIRE(parsed.info->data_offset + parsed.info->data_bytes <= file.size());
		/* The data is sox's own raw encoding of the file, byte for byte. */
		run_command("sox -D -V1 '" + path + "' -t raw '" + path + ".raw'", status);
		REQUIRE(status == 0);
		const auto raw = read_file(path + ".raw");
		CHECK(std::equal(raw.begin(), raw.end(),
				 file.begin() + static_cast<ptrdiff_t>(parsed.info->data_offset)));
		CHECK(raw.size() == parsed.info->data_bytes);
	}
}

namespace {

/* A valid S16 stereo file of \a frames frames with extra chunks spliced in. */
std::vector<uint8_t> chunk(const char (&id)[5], std::vector<uint8_t> body, bool pad = true)
{
	std::vector<uint8_t> out(id, id + 4);
	const uint32_t size = static_cast<uint32_t>(body.size());
	for (int i = 0; i < 4; i++)
		out.push_back(static_cast<uint8_t>(size >> (8 * i)));
	out.insert(out.end(), body.begin(), body.end());
	if (pad && (size & 1))
		out.push_back(0);
	return out;
}

std::vector<uint8_t> fmt_body(uint16_t tag, uint16_t channels, uint32_t rate, uint16_t block_align,
			      uint16_t bits)
{
	std::vector<uint8_t> b;
	auto u16 = [&](uint16_t v) {
		b.push_back(static_cast<uint8_t>(v));
		b.push_back(static_cast<uint8_t>(v >> 8));
	};
	auto u32 = [&](uint32_t v) {
		u16(static_cast<uint16_t>(v));
		u16(static_cast<uint16_t>(v >> 16));
	};
	u16(tag);
	u16(channels);
	u32(rate);
	u32(rate * block_align);
	u16(block_align);
	u16(bits);
	return b;
}

std::vector<uint8_t> extensible_body(uint16_t channels, uint16_t bits, uint16_t valid, uint16_t subformat,
				     bool good_tail = true)
{
	auto b = fmt_body(0xFFFE, channels, 48000, static_cast<uint16_t>(channels * bits / 8), bits);
	const uint8_t ext[] = { 22, 0, static_cast<uint8_t>(valid), static_cast<uint8_t>(valid >> 8), 3, 0, 0, 0,
				static_cast<uint8_t>(subformat), static_cast<uint8_t>(subformat >> 8),
				0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b,
				static_cast<uint8_t>(good_tail ? 0x71 : 0x72) };
	b.insert(b.end(), std::begin(ext), std::end(ext));
	return b;
}

std::vector<uint8_t> riff(const std::vector<std::vector<uint8_t>> &chunks, const char (&type)[5] = "WAVE",
			  const char (&magic)[5] = "RIFF")
{
	std::vector<uint8_t> body(type, type + 4);
	for (const auto &c : chunks)
		body.insert(body.end(), c.begin(), c.end());
	std::vector<uint8_t> out(magic, magic + 4);
	const uint32_t size = static_cast<uint32_t>(body.size());
	for (int i = 0; i < 4; i++)
		out.push_back(static_cast<uint8_t>(size >> (8 * i)));
	out.insert(out.end(), body.begin(), body.end());
	return out;
}

std::vector<uint8_t> data_of(size_t n)
{
	std::vector<uint8_t> d(n);
	for (size_t i = 0; i < n; i++)
		d[i] = static_cast<uint8_t>(i * 7 + 1);
	return d;
}

void set32(std::vector<uint8_t> &v, size_t at, uint32_t x)
{
	for (int i = 0; i < 4; i++)
		v.at(at + i) = static_cast<uint8_t>(x >> (8 * i));
}

} // namespace

TEST_CASE("the parser walks chunks: unknown ones skipped, odd ones padded, the data located", "[wav]")
{
	const auto fmt = chunk("fmt ", fmt_body(1, 2, 48000, 4, 16));
	const auto file = riff({ chunk("JUNK", data_of(3)), fmt, chunk("LIST", data_of(17)),
				 chunk("data", data_of(400)), chunk("id3 ", data_of(5)) });
	const auto parsed = wav::parse_wav_header(file);
	INFO(parsed.error);
	REQUIRE(parsed.info);
	CHECK(parsed.info->format == wav::WavFormat{ vs::kFmtS16, 48000, 2 });
	/* RIFF header 12, JUNK 8+3+pad, fmt 8+16, LIST 8+17+pad, data header 8. */
	CHECK(parsed.info->data_offset == 12 + 12 + 24 + 26 + 8);
	CHECK(parsed.info->data_bytes == 400);

	/* A larger fmt chunk (cbSize 0) is fine; the format is what counts. */
	auto fmt18 = fmt_body(1, 1, 8000, 1, 8);
	fmt18.push_back(0);
	fmt18.push_back(0);
	const auto u8 = wav::parse_wav_header(riff({ chunk("fmt ", fmt18), chunk("data", data_of(9)) }));
	REQUIRE(u8.info);
	CHECK(u8.info->format == wav::WavFormat{ vs::kFmtU8, 8000, 1 });
	CHECK(u8.info->data_bytes == 9);

	/* 12 significant bits in 2 bytes (old-style PCM) are S16 samples. */
	const auto s12 = wav::parse_wav_header(riff({ chunk("fmt ", fmt_body(1, 1, 8000, 2, 12)),
						      chunk("data", data_of(8)) }));
	REQUIRE(s12.info);
	CHECK(s12.info->format.format == vs::kFmtS16);

	/* Extensible: valid bits choose the padded formats. */
	const std::vector<std::tuple<uint16_t, uint16_t, uint16_t, uint8_t>> ext = {
		{ 24, 24, 1, vs::kFmtS24_3 }, { 24, 20, 1, vs::kFmtS20_3 }, { 24, 18, 1, vs::kFmtS18_3 },
		{ 32, 24, 1, vs::kFmtS24 },   { 32, 20, 1, vs::kFmtS20 },   { 32, 32, 1, vs::kFmtS32 },
		{ 32, 0, 1, vs::kFmtS32 },    { 16, 16, 1, vs::kFmtS16 },   { 32, 32, 3, vs::kFmtFloat },
		{ 64, 64, 3, vs::kFmtFloat64 },
	};
	for (const auto &[bits, valid, sub, format] : ext) {
		INFO(bits << " bits, " << valid << " valid, sub-format " << sub);
		const auto p = wav::parse_wav_header(riff({ chunk("fmt ", extensible_body(2, bits, valid, sub)),
							    chunk("data", data_of(bits / 4 * 3)) }));
		REQUIRE(p.info);
		CHECK(p.info->format.format == format);
		CHECK(p.info->extensible);
	}
}

TEST_CASE("streamed and truncated data chunks end at the end of the file, in whole frames", "[wav]")
{
	const auto fmt = chunk("fmt ", fmt_body(1, 2, 48000, 4, 16));
	for (uint32_t declared : { 0u, 0xFFFFFFFFu, 0x7FFFFFFFu, 1000u }) {
		INFO("declared data size " << declared);
		auto file = riff({ fmt, chunk("data", data_of(402)) });
		set32(file, 12 + 24 + 4, declared);
		const auto p = wav::parse_wav_header(file);
		REQUIRE(p.info);
		CHECK(p.info->data_bytes == 400); /* 402 bytes: 100 whole frames */
	}
	/* A data size that is not whole frames is rounded down. */
	auto file = riff({ fmt, chunk("data", data_of(402)) });
	set32(file, 12 + 24 + 4, 7);
	CHECK(wav::parse_wav_header(file).info->data_bytes == 4);
	/* An empty data chunk at the end of the file: no samples. */
	const auto empty = wav::parse_wav_header(riff({ fmt, chunk("data", {}) }));
	REQUIRE(empty.info);
	CHECK(empty.info->data_bytes == 0);
}

TEST_CASE("malformed headers are refused with a message that names the fault", "[wav]")
{
	const auto fmt = chunk("fmt ", fmt_body(1, 2, 48000, 4, 16));
	const auto data = chunk("data", data_of(16));
	std::vector<uint8_t> odd_unpadded = chunk("JUNK", data_of(3), false);
	std::vector<uint8_t> many;
	for (int i = 0; i < 5000; i++) {
		const auto c = chunk("JUNK", {});
		many.insert(many.end(), c.begin(), c.end());
	}
	const std::vector<std::pair<std::vector<uint8_t>, std::string>> cases = {
		{ {}, "too short" },
		{ { 'R', 'I', 'F', 'F' }, "too short" },
		{ riff({ fmt, data }, "WAVE", "RIFX"), "RIFX" },
		{ riff({ fmt, data }, "WAVE", "RF64"), "RF64" },
		{ riff({ fmt, data }, "WAVE", "OggS"), "not a RIFF file" },
		{ riff({ fmt, data }, "AVI "), "not WAVE" },
		{ riff({}), "no fmt chunk" },
		{ riff({ fmt }), "no data chunk" },
		{ riff({ data, fmt }), "before any fmt" },
		{ riff({ fmt, fmt, data }), "second fmt" },
		{ riff({ chunk("fmt ", data_of(14)), data }), "shorter than 16" },
		{ riff({ chunk("fmt ", fmt_body(2, 2, 48000, 4, 4)), data }), "format tag 0x0002" },
		{ riff({ chunk("fmt ", fmt_body(7, 1, 8000, 1, 8)), data }), "format tag 0x0007" },
		{ riff({ chunk("fmt ", fmt_body(1, 0, 48000, 4, 16)), data }), "0 channels" },
		{ riff({ chunk("fmt ", fmt_body(1, 2, 0, 4, 16)), data }), "0 frames per second" },
		{ riff({ chunk("fmt ", fmt_body(1, 2, 48000, 4, 0)), data }), "0 bits" },
		{ riff({ chunk("fmt ", fmt_body(1, 2, 48000, 6, 16)), data }), "block align 6" },
		{ riff({ chunk("fmt ", fmt_body(1, 1, 48000, 8, 64)), data }), "64-bit integer" },
		{ riff({ chunk("fmt ", fmt_body(3, 1, 48000, 2, 16)), data }), "16-bit IEEE float" },
		{ riff({ chunk("fmt ", fmt_body(0xFFFE, 2, 48000, 4, 16)), data }), "EXTENSIBLE" },
		{ riff({ chunk("fmt ", extensible_body(2, 16, 16, 6)), data }), "neither PCM nor IEEE float" },
		{ riff({ chunk("fmt ", extensible_body(2, 16, 16, 1, false)), data }), "GUID" },
		{ riff({ chunk("fmt ", extensible_body(2, 16, 24, 1)), data }), "24 valid bits in a 16-bit" },
		{ riff({ many, fmt, data }), "more than 4096 chunks" },
	};
	for (const auto &[bytes, word] : cases) {
		INFO("expected: " << word);
		const auto p = wav::parse_wav_header(bytes);
		INFO("error: " << p.error);
		CHECK_FALSE(p.info);
		CHECK(p.error.find(word) != std::string::npos);
	}

	/* A fmt chunk that claims more bytes than the file has. */
	auto past = riff({ fmt });
	set32(past, 16, 1000);
	CHECK(wav::parse_wav_header(past).error.find("runs past the end") != std::string::npos);

	/* An odd chunk without its pad byte shifts the walk: no crash, an error. */
	CHECK_FALSE(wav::parse_wav_header(riff({ odd_unpadded, fmt, data })).info);
}

TEST_CASE("every truncation and random mutation of valid headers parses safely", "[wav]")
{
	std::vector<std::vector<uint8_t>> seeds;
	for (uint8_t format : kExpectedFormats) {
		for (uint16_t channels : { 1, 2, 6 }) {
			const wav::WavFormat f{ format, 48000, channels };
			seeds.push_back(wav_file(f, virtio_samples(format, channels, 5)));
		}
	}
	seeds.push_back(riff({ chunk("JUNK", data_of(3)), chunk("fmt ", fmt_body(1, 2, 48000, 4, 16)),
			       chunk("LIST", data_of(17)), chunk("data", data_of(40)) }));

	auto check_sane = [](const std::vector<uint8_t> &bytes) {
		const auto p = wav::parse_wav_header(bytes);
		if (!p.info) {
			CHECK_FALSE(p.error.empty());
			return;
		}
		const wav::WavInfo &i = *p.info;
		REQUIRE(i.format.channels > 0);
		REQUIRE(((wav::wav_formats() >> i.format.format) & 1));
		REQUIRE(i.data_offset <= bytes.size());
		REQUIRE(i.data_bytes <= bytes.size() - i.data_offset);
		REQUIRE(i.data_bytes % i.format.frame_bytes() == 0);
	};

	for (const auto &seed : seeds) {
		for (size_t len = 0; len <= seed.size(); len++)
			check_sane(std::vector<uint8_t>(seed.begin(), seed.begin() + static_cast<ptrdiff_t>(len)));
	}

	std::mt19937_64 rng(20261202);
	for (int iter = 0; iter < 20000; iter++) {
		auto bytes = seeds[rng() % seeds.size()];
		const int edits = 1 + static_cast<int>(rng() % 4);
		for (int e = 0; e < edits; e++) {
			const size_t at = rng() % std::min<size_t>(bytes.size(), 96);
			switch (rng() % 3) {
			case 0: bytes[at] = static_cast<uint8_t>(rng()); break;
			case 1: bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
			default: bytes[at] = (rng() & 1) ? 0xff : 0x00; break;
			}
		}
		if (rng() % 4 == 0)
			bytes.resize(rng() % (bytes.size() + 1));
		check_sane(bytes);
	}
}
