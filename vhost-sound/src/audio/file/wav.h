/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file wav.h
 * \brief RIFF/WAVE headers: which virtio-sound formats a WAV file holds,
 * the header the file back-end writes, and a bounds-checked header parser.
 *
 * Only little-endian RIFF files are read and written (no RIFX, no RF64).
 * Integer formats wider than 8 bits are signed in WAV and 8-bit ones are
 * unsigned, so S8 and the unsigned formats wider than 8 bits have no WAV
 * form. A padded format (S18_3, S20_3 in 3 bytes; S20, S24 in 4 bytes) keeps
 * its significant bits in the low bits of the container in virtio (as
 * ALSA's S24_LE does) and in the high bits in WAV: to_wav_samples() and
 * from_wav_samples() move them; every other format is stored byte for byte.
 *
 * The parser reads nothing but what it is given and checks every length
 * against it: a fuzzer can feed parse_wav_header() arbitrary bytes.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vhost_sound::wav {

/** \brief How one virtio format is laid out in a WAV file. */
struct WavLayout {
	/** \brief wBitsPerSample: the container, 8 × the virtio sample bytes. */
	uint16_t container_bits;
	/** \brief wValidBitsPerSample: the virtio format's significant bits. */
	uint16_t valid_bits;
	bool is_float;
	/** \brief Bits the samples move left from virtio to WAV (container - valid). */
	unsigned shift;
};

/** \brief The WAV layout of VIRTIO_SND_PCM_FMT_* \a format, nothing if WAV cannot hold it. */
std::optional<WavLayout> wav_layout(uint8_t format) noexcept;

/** \brief Bit mask (1 << VIRTIO_SND_PCM_FMT_*) of every format wav_layout() accepts. */
uint64_t wav_formats() noexcept;

/** \brief The stream format of a WAV file, in virtio terms. */
struct WavFormat {
	/** \brief VIRTIO_SND_PCM_FMT_*, one of wav_formats(). */
	uint8_t format = 0;
	/** \brief Frames per second. */
	uint32_t rate_hz = 0;
	uint16_t channels = 0;

	bool operator==(const WavFormat &) const = default;
	/** \brief Bytes per frame. */
	uint32_t frame_bytes() const noexcept;
};

/** \brief "S16 48000 Hz 2 ch", for log lines and errors. */
std::string describe(const WavFormat &format);

/**
 * \brief True when \a format needs WAVE_FORMAT_EXTENSIBLE: anything but
 * U8 or S16 in one or two channels (Microsoft's rule: more than 16 bits,
 * more than two channels, padded samples, and here float too).
 */
bool needs_extensible(const WavFormat &format) noexcept;

/** \brief Size of the header make_wav_header() writes for \a format (44, 68 or 80 bytes). */
uint32_t wav_header_bytes(const WavFormat &format) noexcept;

/** \brief The largest data chunk a header for \a format can describe (whole frames). */
uint64_t max_data_bytes(const WavFormat &format) noexcept;

/**
 * \brief The header (RIFF, fmt, for float a fact chunk, data) of a file
 * holding \a data_bytes of \a format (at most max_data_bytes()). The data
 * starts right after it; an odd data chunk is followed by one pad byte that
 * the RIFF size counts.
 */
std::vector<uint8_t> make_wav_header(const WavFormat &format, uint64_t data_bytes);

/** \brief Where the samples of a parsed file are. */
struct WavInfo {
	WavFormat format;
	/** \brief Offset of the first sample in the file. */
	uint64_t data_offset = 0;
	/** \brief Bytes of whole frames from data_offset, within the file. */
	uint64_t data_bytes = 0;
	/** \brief The fmt chunk was WAVE_FORMAT_EXTENSIBLE. */
	bool extensible = false;
};

/** \brief A parsed header, or what is wrong with it. */
struct WavParse {
	std::optional<WavInfo> info;
	/** \brief Set when info is not: e.g. "no fmt chunk before the data chunk". */
	std::string error;
};

/**
 * \brief Reads up to out.size() bytes at \a offset of the file into \a out;
 * returns how many it read (short only at the end of the file or on error).
 */
using ReadAt = std::function<size_t(uint64_t offset, std::span<uint8_t> out)>;

/**
 * \brief Parse a WAV header from a file of \a file_size bytes read through
 * \a read_at. Walks the chunks after "RIFF....WAVE" (odd chunks padded,
 * unknown ones skipped, none trusted to lie inside the file) up to the
 * data chunk; needs a fmt chunk before it. A data chunk whose size is 0,
 * 0xFFFFFFFF (a stream that never went back to fill it in) or larger than
 * the rest of the file extends to the end of the file. Rejects formats with
 * no virtio-sound equivalent.
 */
WavParse parse_wav_header(const ReadAt &read_at, uint64_t file_size);

/** \brief parse_wav_header() of a file held in memory (the fuzzer's entry point). */
WavParse parse_wav_header(std::span<const uint8_t> file);

/**
 * \brief Virtio samples of \a format to WAV samples: \a bytes holds whole
 * samples and is changed in place (a no-op unless the format is padded).
 */
void to_wav_samples(uint8_t format, std::span<uint8_t> bytes) noexcept;

/** \brief WAV samples of \a format to virtio samples, in place (whole samples). */
void from_wav_samples(uint8_t format, std::span<uint8_t> bytes) noexcept;

} // namespace vhost_sound::wav
