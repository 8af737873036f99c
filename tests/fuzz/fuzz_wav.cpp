/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Target 6, the file back-end's WAV reader: any bytes as a whole file
 * through parse_wav_header(). Whatever it decides, a parsed header must
 * describe samples that lie inside the file, in whole frames.
 */
#include <cstdio>
#include <cstdlib>

#include "audio/file/wav.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const auto parsed = vhost_sound::wav::parse_wav_header({ data, size });
	if (parsed.info) {
		const auto &info = *parsed.info;
		(void)vhost_sound::wav::describe(info.format);
		if (info.data_offset > size || info.data_bytes > size - info.data_offset) {
			std::fprintf(stderr, "fuzz: WAV data [%llu, +%llu) outside a %zu-byte file\n",
				     (unsigned long long)info.data_offset,
				     (unsigned long long)info.data_bytes, size);
			std::abort();
		}
		const uint32_t frame = info.format.frame_bytes();
		if (frame == 0 || info.data_bytes % frame) {
			std::fprintf(stderr, "fuzz: WAV data of %llu bytes is not whole %u-byte frames\n",
				     (unsigned long long)info.data_bytes, frame);
			std::abort();
		}
	} else if (parsed.error.empty()) {
		std::fprintf(stderr, "fuzz: a refused WAV header without a reason\n");
		std::abort();
	}
	return 0;
}
