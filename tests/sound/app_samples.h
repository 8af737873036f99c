/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file app_samples.h
 * \brief The application's samples a playback test sends, and the
 * arithmetic that turns periods into audio time.
 */
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "linux_driver.h"

namespace sound_test {

/** \brief The application's byte at stream offset \a offset: never 0, different
 *  in every round of the ring buffer. */
inline uint8_t app_byte(uint64_t offset)
{
	const uint64_t x = (offset + 1) * 0x9E3779B97F4A7C15ull;
	return static_cast<uint8_t>((x >> 56) % 255 + 1);
}

/** \brief A LinuxPcm::Source playing app_byte(). */
inline void app_source(uint64_t offset, std::span<uint8_t> out)
{
	for (size_t i = 0; i < out.size(); i++)
		out[i] = app_byte(offset + i);
}

/** \brief The first \a n bytes app_source() plays. */
inline std::vector<uint8_t> app_bytes(size_t n)
{
	std::vector<uint8_t> v(n);
	app_source(0, v);
	return v;
}

/** \brief Bytes per second of \a c. */
inline double byte_rate(const PcmConfig &c)
{
	return double(vs::rate_hz(c.rate)) * c.channels * vs::format_info(c.format)->sample_bytes;
}

/** \brief Seconds of audio in \a periods periods of \a c. */
inline double nominal_seconds(size_t periods, const PcmConfig &c)
{
	return double(periods) * c.period_bytes / byte_rate(c);
}

/**
 * \brief Check that a paced run of \a nominal seconds of audio took
 * \a seconds: never early (2 % for where the test's clock starts against
 * the device's), and at most \a late (a fraction) late.
 */
inline void check_paced(double seconds, double nominal, double late)
{
	INFO(seconds << " s for " << nominal << " s of audio");
	CHECK(seconds >= nominal * 0.98);
	CHECK(seconds <= nominal * (1 + late));
}

/** \brief Periods of \a c covering at least \a seconds. */
inline size_t periods_for(double seconds, const PcmConfig &c)
{
	return static_cast<size_t>(std::ceil(seconds * byte_rate(c) / c.period_bytes));
}

/**
 * \brief The first period (of \a period_bytes) in which \a got differs from
 * \a expected, or expected.size() / period_bytes when all match; a \a got
 * shorter than \a expected differs at its end.
 */
inline size_t first_bad_period(const std::vector<uint8_t> &expected, const std::vector<uint8_t> &got,
			       size_t period_bytes)
{
	const size_t periods = expected.size() / period_bytes;
	for (size_t p = 0; p < periods; p++) {
		const size_t end = (p + 1) * period_bytes;
		if (got.size() < end ||
		    !std::equal(expected.begin() + p * period_bytes, expected.begin() + end,
				got.begin() + p * period_bytes))
			return p;
	}
	return periods;
}

} // namespace sound_test
