/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "device/sample_gain.h"

#include <algorithm>
#include <cstring>

#include "device/virtio_snd.h"

namespace vhost_sound {

namespace {

using virtio_snd::FormatInfo;

/* Scale one sample of \a info at \a p in place. */
void scale_sample(const FormatInfo &info, uint32_t percent, uint8_t *p) noexcept
{
	if (info.is_float) {
		if (info.sample_bytes == 4) {
			float f;
			std::memcpy(&f, p, 4);
			f = f * (static_cast<float>(percent) / 100.0f);
			std::memcpy(p, &f, 4);
		} else {
			double d;
			std::memcpy(&d, p, 8);
			d = d * (static_cast<double>(percent) / 100.0);
			std::memcpy(p, &d, 8);
		}
		return;
	}

	uint64_t raw = 0;
	std::memcpy(&raw, p, info.sample_bytes); /* little-endian host (virtio_snd.h) */
	const unsigned bits = info.significant_bits;
	const uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
	const uint64_t signal = raw & mask;

	/* The sample as a signed distance from silence. */
	int64_t value;
	const int64_t half = int64_t{1} << (bits - 1);
	if (info.is_unsigned)
		value = static_cast<int64_t>(signal) - half;
	else
		value = (signal & (uint64_t{1} << (bits - 1))) ? static_cast<int64_t>(signal) - 2 * half
							       : static_cast<int64_t>(signal);
	/* |value| < 2^31 and percent <= 200 (clamped by the caller): no overflow. */
	int64_t scaled = value * static_cast<int64_t>(percent) / 100;
	scaled = std::clamp(scaled, -half, half - 1);

	const uint64_t out = info.is_unsigned ? static_cast<uint64_t>(scaled + half)
					      : static_cast<uint64_t>(scaled) & mask;
	raw = (raw & ~mask) | (out & mask);
	std::memcpy(p, &raw, info.sample_bytes);
}

} // namespace

void apply_gain(uint8_t format, uint32_t percent, std::array<std::span<uint8_t>, 2> regions,
		uint64_t stream_offset) noexcept
{
	if (percent == kUnityGainPercent)
		return;
	const auto info = virtio_snd::format_info(format);
	if (!info)
		return;
	if (percent == 0) {
		virtio_snd::fill_silence(format, regions[0].data(), regions[0].size(), stream_offset);
		virtio_snd::fill_silence(format, regions[1].data(), regions[1].size(),
					 stream_offset + regions[0].size());
		return;
	}
	percent = std::min(percent, kMaxGainPercent);

	const size_t width = info->sample_bytes;
	/* Bytes before the first sample boundary in the run. */
	size_t skip = (width - stream_offset % width) % width;
	for (size_t r = 0; r < regions.size(); r++) {
		std::span<uint8_t> region = regions[r];
		if (skip >= region.size()) {
			skip -= region.size();
			continue;
		}
		size_t at = skip;
		for (; at + width <= region.size(); at += width)
			scale_sample(*info, percent, region.data() + at);
		const size_t tail = region.size() - at;
		if (tail > 0 && r == 0 && regions[1].size() >= width - tail) {
			/* A sample split between the two regions: scale a copy. */
			uint8_t sample[8];
			std::memcpy(sample, region.data() + at, tail);
			std::memcpy(sample + tail, regions[1].data(), width - tail);
			scale_sample(*info, percent, sample);
			std::memcpy(region.data() + at, sample, tail);
			std::memcpy(regions[1].data(), sample + tail, width - tail);
			skip = width - tail;
		} else {
			skip = 0;
		}
	}
}

} // namespace vhost_sound
