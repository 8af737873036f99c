/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "audio/file/wav.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <fmt/format.h>

#include "device/virtio_snd.h"

namespace vhost_sound::wav {

namespace vs = virtio_snd;

namespace {

constexpr uint16_t kTagPcm = 0x0001;
constexpr uint16_t kTagFloat = 0x0003;
constexpr uint16_t kTagExtensible = 0xFFFE;

/* KSDATAFORMAT_SUBTYPE_*: the format tag in the first two bytes, then this. */
constexpr std::array<uint8_t, 14> kGuidTail = { 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
						0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71 };

constexpr uint32_t kFmtPcmBytes = 16;
constexpr uint32_t kFmtExtensibleBytes = 40;
constexpr uint32_t kFactBytes = 4;

/* Chunks walked before the data chunk: real files have a handful; the
 * limit bounds the work a hostile file full of tiny chunks can cause. */
constexpr unsigned kMaxChunks = 4096;

uint16_t get16(const uint8_t *p)
{
	return static_cast<uint16_t>(p[0] | p[1] << 8);
}

uint32_t get32(const uint8_t *p)
{
	return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

/* Writes little-endian fields into a header of known size. */
class HeaderWriter
{
public:
	explicit HeaderWriter(size_t size) : out_(size) {}

	void u16(uint16_t v)
	{
		out_.at(pos_++) = static_cast<uint8_t>(v);
		out_.at(pos_++) = static_cast<uint8_t>(v >> 8);
	}
	void u32(uint32_t v)
	{
		u16(static_cast<uint16_t>(v));
		u16(static_cast<uint16_t>(v >> 16));
	}
	void bytes(std::span<const uint8_t> b)
	{
		for (uint8_t v : b)
			out_.at(pos_++) = v;
	}
	void id(const char (&id)[5]) { bytes({ reinterpret_cast<const uint8_t *>(id), 4 }); }

	std::vector<uint8_t> take() { return std::move(out_); }

private:
	std::vector<uint8_t> out_;
	size_t pos_ = 0;
};

/* The speaker mask for channel counts whose WAV order (the order of the
 * mask's bits) is the device's channel map order (topology.cpp): mono is
 * front centre, then FL FR, FL FR FC, FL FR BL BR. From five channels on
 * ALSA's order (FL FR RL RR FC ...) differs from WAV's (FL FR FC LFE BL ...)
 * and samples are never reordered, so the mask says "unspecified". */
uint32_t channel_mask(uint16_t channels)
{
	switch (channels) {
	case 1:
		return 0x4;
	case 2:
		return 0x3;
	case 3:
		return 0x7;
	case 4:
		return 0x33;
	default:
		return 0;
	}
}

std::string chunk_name(const uint8_t *id)
{
	std::string name;
	for (int i = 0; i < 4; i++) {
		const char c = static_cast<char>(id[i]);
		name += (c >= 0x20 && c < 0x7f) ? c : '?';
	}
	return name;
}

WavParse fail(std::string error)
{
	return { std::nullopt, std::move(error) };
}

/* The virtio format of integer samples of \a bytes bytes with \a valid
 * significant bits (MSB-justified): the exact padded format where there is
 * one, otherwise the full-width format, which holds such samples unchanged. */
std::optional<uint8_t> integer_format(unsigned bytes, unsigned valid)
{
	switch (bytes) {
	case 1:
		return vs::kFmtU8;
	case 2:
		return vs::kFmtS16;
	case 3:
		return valid == 18 ? vs::kFmtS18_3 : valid == 20 ? vs::kFmtS20_3 : vs::kFmtS24_3;
	case 4:
		return valid == 20 ? vs::kFmtS20 : valid == 24 ? vs::kFmtS24 : vs::kFmtS32;
	default:
		return std::nullopt;
	}
}

/* The fmt chunk body \a fmt (at least 16 bytes, at most 40 read). */
std::optional<WavFormat> parse_fmt(std::span<const uint8_t> fmt, uint32_t chunk_size, bool &extensible,
				   std::string &error)
{
	uint16_t tag = get16(&fmt[0]);
	const uint16_t channels = get16(&fmt[2]);
	const uint32_t rate = get32(&fmt[4]);
	const uint16_t block_align = get16(&fmt[12]);
	const uint16_t bits = get16(&fmt[14]);
	unsigned valid = bits;

	extensible = tag == kTagExtensible;
	if (extensible) {
		if (chunk_size < kFmtExtensibleBytes || get16(&fmt[16]) < 22) {
			error = fmt::format("WAVE_FORMAT_EXTENSIBLE fmt chunk of {} bytes (cbSize {}) is "
					    "shorter than 40 (22)", chunk_size,
					    fmt.size() >= 18 ? get16(&fmt[16]) : 0);
			return std::nullopt;
		}
		if (get16(&fmt[18]) != 0)
			valid = get16(&fmt[18]);
		const uint8_t *guid = &fmt[24];
		tag = get16(guid);
		if (!std::equal(kGuidTail.begin(), kGuidTail.end(), guid + 2) ||
		    (tag != kTagPcm && tag != kTagFloat)) {
			error = fmt::format("sub-format GUID {:02x} is neither PCM nor IEEE float",
					    fmt::join(guid, guid + 16, ""));
			return std::nullopt;
		}
	}
	if (tag != kTagPcm && tag != kTagFloat) {
		error = fmt::format("format tag {:#06x} is not PCM (1), IEEE float (3) or extensible "
				    "(0xfffe)", tag);
		return std::nullopt;
	}
	if (channels == 0) {
		error = "fmt chunk says 0 channels";
		return std::nullopt;
	}
	if (rate == 0) {
		error = "fmt chunk says 0 frames per second";
		return std::nullopt;
	}
	if (bits == 0 || bits > 64) {
		error = fmt::format("{} bits per sample", bits);
		return std::nullopt;
	}
	if (valid > bits) {
		error = fmt::format("{} valid bits in a {}-bit sample", valid, bits);
		return std::nullopt;
	}
	/* Plain PCM may give the significant bits (12 in 2 bytes); extensible
	 * and float give the container. */
	const unsigned sample_bytes = (bits + 7u) / 8u;
	if (uint32_t{block_align} != uint32_t{channels} * sample_bytes) {
		error = fmt::format("block align {} is not {} channels of {} bytes", block_align,
				    channels, sample_bytes);
		return std::nullopt;
	}

	std::optional<uint8_t> format;
	if (tag == kTagFloat) {
		if (sample_bytes == 4)
			format = vs::kFmtFloat;
		else if (sample_bytes == 8)
			format = vs::kFmtFloat64;
		if (!format || bits % 8) {
			error = fmt::format("{}-bit IEEE float samples have no virtio-sound format", bits);
			return std::nullopt;
		}
	} else {
		format = integer_format(sample_bytes, valid);
		if (!format) {
			error = fmt::format("{}-bit integer samples have no virtio-sound format", bits);
			return std::nullopt;
		}
	}
	return WavFormat{ *format, rate, channels };
}

} // namespace

std::optional<WavLayout> wav_layout(uint8_t format) noexcept
{
	const auto info = vs::format_info(format);
	if (!info)
		return std::nullopt;
	/* WAV's integers are unsigned at 8 bits and signed above. */
	if (!info->is_float && info->is_unsigned != (info->sample_bytes == 1))
		return std::nullopt;
	const uint16_t container = static_cast<uint16_t>(info->sample_bytes * 8u);
	return WavLayout{ container, info->significant_bits, info->is_float,
			  static_cast<unsigned>(container - info->significant_bits) };
}

uint64_t wav_formats() noexcept
{
	uint64_t mask = 0;
	for (uint8_t f = 0; f < vs::kNumFormats; f++) {
		if (wav_layout(f))
			mask |= uint64_t{1} << f;
	}
	return mask;
}

uint32_t WavFormat::frame_bytes() const noexcept
{
	const auto info = vs::format_info(format);
	return info ? uint32_t{info->sample_bytes} * channels : 0;
}

std::string describe(const WavFormat &format)
{
	return fmt::format("{} {} Hz {} ch", vs::format_name(format.format), format.rate_hz,
			   format.channels);
}

bool needs_extensible(const WavFormat &format) noexcept
{
	return !((format.format == vs::kFmtU8 || format.format == vs::kFmtS16) && format.channels <= 2);
}

uint32_t wav_header_bytes(const WavFormat &format) noexcept
{
	if (!needs_extensible(format))
		return 12 + 8 + kFmtPcmBytes + 8;
	const auto layout = wav_layout(format.format);
	const bool fact = layout && layout->is_float;
	return 12 + 8 + kFmtExtensibleBytes + (fact ? 8 + kFactBytes : 0) + 8;
}

uint64_t max_data_bytes(const WavFormat &format) noexcept
{
	/* The RIFF size (32 bits) counts everything after its own field: the
	 * rest of the header, the data and its pad byte. */
	const uint64_t room = 0xFFFFFFFFull - (wav_header_bytes(format) - 8) - 1;
	const uint32_t frame = std::max<uint32_t>(format.frame_bytes(), 1);
	return room / frame * frame;
}

std::vector<uint8_t> make_wav_header(const WavFormat &format, uint64_t data_bytes)
{
	const auto layout = wav_layout(format.format);
	if (!layout)
		throw std::invalid_argument(fmt::format("format {} has no WAV form",
							vs::format_name(format.format)));
	data_bytes = std::min(data_bytes, max_data_bytes(format));
	const bool extensible = needs_extensible(format);
	const uint32_t header = wav_header_bytes(format);
	const uint16_t block_align = static_cast<uint16_t>(format.frame_bytes());
	const uint32_t data = static_cast<uint32_t>(data_bytes);

	HeaderWriter out(header);
	out.id("RIFF");
	out.u32(header - 8 + data + (data & 1));
	out.id("WAVE");

	out.id("fmt ");
	out.u32(extensible ? kFmtExtensibleBytes : kFmtPcmBytes);
	out.u16(extensible ? kTagExtensible : layout->is_float ? kTagFloat : kTagPcm);
	out.u16(format.channels);
	out.u32(format.rate_hz);
	out.u32(format.rate_hz * block_align);
	out.u16(block_align);
	out.u16(layout->container_bits);
	if (extensible) {
		out.u16(22);
		out.u16(layout->valid_bits);
		out.u32(channel_mask(format.channels));
		out.u16(layout->is_float ? kTagFloat : kTagPcm);
		out.bytes(kGuidTail);
		if (layout->is_float) {
			/* Every non-PCM WAV carries the frame count in a fact chunk. */
			out.id("fact");
			out.u32(kFactBytes);
			out.u32(block_align ? data / block_align : 0);
		}
	}

	out.id("data");
	out.u32(data);
	return out.take();
}

WavParse parse_wav_header(const ReadAt &read_at, uint64_t file_size)
{
	uint8_t riff[12];
	if (file_size < sizeof(riff) || read_at(0, riff) != sizeof(riff))
		return fail(fmt::format("{} bytes are too short for a RIFF/WAVE header", file_size));
	if (std::memcmp(riff, "RIFX", 4) == 0)
		return fail("big-endian RIFX files are not supported");
	if (std::memcmp(riff, "RF64", 4) == 0)
		return fail("RF64 files are not supported");
	if (std::memcmp(riff, "RIFF", 4) != 0)
		return fail(fmt::format("not a RIFF file (it starts with '{}')", chunk_name(riff)));
	if (std::memcmp(riff + 8, "WAVE", 4) != 0)
		return fail(fmt::format("a RIFF file of type '{}', not WAVE", chunk_name(riff + 8)));

	std::optional<WavFormat> format;
	bool extensible = false;
	uint64_t pos = sizeof(riff);
	for (unsigned chunks = 0;; chunks++) {
		if (chunks == kMaxChunks)
			return fail(fmt::format("more than {} chunks before the data chunk", kMaxChunks));
		uint8_t head[8];
		if (pos + sizeof(head) > file_size || read_at(pos, head) != sizeof(head))
			return fail(format ? "no data chunk (the file ends first)"
					   : "no fmt chunk (the file ends first)");
		const uint32_t size = get32(head + 4);
		const uint64_t body = pos + sizeof(head);

		if (std::memcmp(head, "fmt ", 4) == 0) {
			if (format)
				return fail(fmt::format("a second fmt chunk at offset {}", pos));
			if (size < kFmtPcmBytes)
				return fail(fmt::format("fmt chunk of {} bytes is shorter than 16", size));
			if (body + size > file_size)
				return fail(fmt::format("fmt chunk of {} bytes at offset {} runs past the end "
							"of the file", size, pos));
			std::array<uint8_t, kFmtExtensibleBytes> fmt_bytes{};
			const size_t want = std::min<size_t>(size, fmt_bytes.size());
			if (read_at(body, std::span(fmt_bytes).first(want)) != want)
				return fail("could not read the fmt chunk");
			std::string error;
			format = parse_fmt(std::span(fmt_bytes).first(want), size, extensible, error);
			if (!format)
				return fail(error);
		} else if (std::memcmp(head, "data", 4) == 0) {
			if (!format)
				return fail("the data chunk comes before any fmt chunk");
			const uint64_t available = file_size - body;
			/* 0 and 0xFFFFFFFF are what streaming writers leave; a larger
			 * size than the file holds is a truncated file: either way the
			 * samples are what is there. */
			uint64_t bytes = size;
			if (size == 0 || size == 0xFFFFFFFFu || size > available)
				bytes = available;
			const uint32_t frame = format->frame_bytes();
			WavInfo info;
			info.format = *format;
			info.data_offset = body;
			info.data_bytes = bytes / frame * frame;
			info.extensible = extensible;
			return { info, {} };
		}
		/* Unknown chunks are skipped; odd sizes are followed by a pad byte. */
		pos = body + size + (size & 1u);
	}
}

WavParse parse_wav_header(std::span<const uint8_t> file)
{
	return parse_wav_header(
		[file](uint64_t offset, std::span<uint8_t> out) -> size_t {
			if (offset >= file.size())
				return 0;
			const size_t n = std::min<uint64_t>(out.size(), file.size() - offset);
			std::memcpy(out.data(), file.data() + offset, n);
			return n;
		},
		file.size());
}

namespace {

/* Rewrite every whole sample of a padded \a format in \a bytes: \a move gets
 * the sample in the top bits of a 32-bit word (the bits below it zero) and
 * the container's width, and returns the word whose top bits are stored. */
template<typename Move>
void rewrite_samples(uint8_t format, std::span<uint8_t> bytes, Move move) noexcept
{
	const auto layout = wav_layout(format);
	if (!layout || layout->shift == 0)
		return;
	const size_t width = layout->container_bits / 8u;
	const unsigned low = static_cast<unsigned>(8 * (4 - width));
	for (size_t i = 0; i + width <= bytes.size(); i += width) {
		uint32_t word = 0;
		for (size_t b = 0; b < width; b++)
			word |= uint32_t{bytes[i + b]} << (low + 8 * b);
		word = move(word, layout->shift);
		for (size_t b = 0; b < width; b++)
			bytes[i + b] = static_cast<uint8_t>(word >> (low + 8 * b));
	}
}

} // namespace

void to_wav_samples(uint8_t format, std::span<uint8_t> bytes) noexcept
{
	/* The bits above the significant ones are padding and drop out. */
	rewrite_samples(format, bytes, [](uint32_t word, unsigned shift) { return word << shift; });
}

void from_wav_samples(uint8_t format, std::span<uint8_t> bytes) noexcept
{
	/* Sign-extended from the container, as ALSA's padded formats are. */
	rewrite_samples(format, bytes, [](uint32_t word, unsigned shift) {
		return static_cast<uint32_t>(static_cast<int32_t>(word) >> shift);
	});
}

} // namespace vhost_sound::wav
