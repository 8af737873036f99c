/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file sample_gain.h
 * \brief The one piece of sample arithmetic: a volume applied to PCM bytes.
 *
 * The gain is a percentage \a p (0 .. kMaxGainPercent): a sample s becomes
 * s * p / 100. Per format:
 * - signed integer: the product is divided by 100 with C++ integer division
 *   (truncated toward zero) and saturated to the format's significant bits;
 * - unsigned integer (U8 .. U32): the same, around the midpoint
 *   1 << (bits - 1): mid + (s - mid) * p / 100, saturated to 0 .. 2^bits - 1;
 * - FLOAT / FLOAT64: multiplied by p / 100.0 in the sample's own precision,
 *   not clamped (a float stream has headroom by design);
 * - p == 100 leaves every byte as it is, p == 0 writes exact silence
 *   (fill_silence()), whatever the bytes were.
 * Padding bits of a sample wider than its significant bits (S20, S24, the
 * _3 formats' unused top bits) keep their value. Samples are little-endian
 * and LSB-justified, as the spec's formats are.
 */
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace vhost_sound {

/** \brief The largest gain, in percent (+6 dB): capture may amplify. */
constexpr uint32_t kMaxGainPercent = 200;
/** \brief The gain that changes nothing. */
constexpr uint32_t kUnityGainPercent = 100;

/**
 * \brief Scale the samples of \a format in \a regions (one logical run of
 * bytes, e.g. a ring's two spans) by \a percent.
 *
 * \a stream_offset is the position of regions[0][0] in the byte stream, so
 * the first sample boundary is known. A sample that straddles the two
 * regions is scaled; a partial sample at the very start or end of the run
 * (a guest whose messages are not whole samples) is left as it is — unless
 * \a percent is 0, which silences every byte. Formats that are not linear
 * PCM are left unchanged (the device never accepts them).
 */
void apply_gain(uint8_t format, uint32_t percent, std::array<std::span<uint8_t>, 2> regions,
		uint64_t stream_offset) noexcept;

/** \brief apply_gain() on one contiguous run. */
inline void apply_gain(uint8_t format, uint32_t percent, std::span<uint8_t> bytes,
		       uint64_t stream_offset) noexcept
{
	apply_gain(format, percent, { bytes, std::span<uint8_t>() }, stream_offset);
}

} // namespace vhost_sound
