/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/* The spec tables: formats, rates, silence. */
#include <catch2/catch.hpp>

#include "device/virtio_snd.h"

namespace vs = vhost_sound::virtio_snd;

TEST_CASE("linear PCM formats are exactly the spec's 8- to 64-bit integer and float ones", "[virtio_snd]")
{
	const uint64_t mask = vs::linear_pcm_formats();
	for (unsigned f = 0; f < vs::kNumFormats; f++) {
		const bool linear = f >= vs::kFmtS8 && f <= vs::kFmtFloat64;
		INFO("format " << vs::format_name(f));
		CHECK(bool((mask >> f) & 1) == linear);
		CHECK(vs::format_info(f).has_value() == linear);
	}
	CHECK(mask >> vs::kNumFormats == 0);
	CHECK_FALSE(vs::format_info(200));

	CHECK(vs::format_info(vs::kFmtS24_3)->sample_bytes == 3);
	CHECK(vs::format_info(vs::kFmtU18_3)->significant_bits == 18);
	CHECK(vs::format_info(vs::kFmtS20)->sample_bytes == 4);
	CHECK(vs::format_info(vs::kFmtFloat64)->sample_bytes == 8);
	CHECK(vs::format_info(vs::kFmtFloat)->is_float);
}

TEST_CASE("every rate code of the spec maps to its frequency, 12000 and 24000 included", "[virtio_snd]")
{
	CHECK(vs::rate_hz(vs::kRate5512) == 5512);
	CHECK(vs::rate_hz(vs::kRate48000) == 48000);
	CHECK(vs::rate_hz(vs::kRate384000) == 384000);
	CHECK(vs::rate_hz(vs::kRate12000) == 12000);
	CHECK(vs::rate_hz(vs::kRate24000) == 24000);
	CHECK(vs::rate_hz(vs::kNumRates) == 0);
	CHECK(vs::all_rates() == 0xffff);
}

TEST_CASE("silence is zero for signed and float formats and the mid value for unsigned ones", "[virtio_snd]")
{
	uint8_t buf[12];
	vs::fill_silence(vs::kFmtS16, buf, sizeof(buf));
	for (uint8_t b : buf)
		CHECK(b == 0);

	vs::fill_silence(vs::kFmtU8, buf, 3);
	CHECK((buf[0] == 0x80 && buf[1] == 0x80 && buf[2] == 0x80));

	vs::fill_silence(vs::kFmtU16, buf, 4);
	CHECK((buf[0] == 0x00 && buf[1] == 0x80 && buf[2] == 0x00 && buf[3] == 0x80));

	vs::fill_silence(vs::kFmtU24_3, buf, 6);
	CHECK((buf[0] == 0 && buf[1] == 0 && buf[2] == 0x80 && buf[5] == 0x80));

	vs::fill_silence(vs::kFmtU20, buf, 4); /* 1 << 19, little-endian in 32 bits */
	CHECK((buf[0] == 0 && buf[1] == 0 && buf[2] == 0x08 && buf[3] == 0));

	/* Written from the middle of a sample, the sample's bytes continue. */
	vs::fill_silence(vs::kFmtU16, buf, 3, 1);
	CHECK((buf[0] == 0x80 && buf[1] == 0x00 && buf[2] == 0x80));
}

TEST_CASE("request and status names", "[virtio_snd]")
{
	CHECK(vs::request_name(vs::kPcmSetParams) == "PCM_SET_PARAMS");
	CHECK(vs::request_name(0x9999) == "UNKNOWN");
	CHECK(vs::status_name(vs::Status::NotSupp) == "NOT_SUPP");
}
