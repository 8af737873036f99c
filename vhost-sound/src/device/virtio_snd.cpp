/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "device/virtio_snd.h"

#include <cstring>

namespace vhost_sound::virtio_snd {

std::string_view status_name(Status status) noexcept
{
	switch (status) {
	case Status::Ok:
		return "OK";
	case Status::BadMsg:
		return "BAD_MSG";
	case Status::NotSupp:
		return "NOT_SUPP";
	case Status::IoErr:
		return "IO_ERR";
	}
	return "?";
}

std::string_view request_name(uint32_t code) noexcept
{
	switch (code) {
	case kJackInfo:
		return "JACK_INFO";
	case kJackRemap:
		return "JACK_REMAP";
	case kPcmInfo:
		return "PCM_INFO";
	case kPcmSetParams:
		return "PCM_SET_PARAMS";
	case kPcmPrepare:
		return "PCM_PREPARE";
	case kPcmRelease:
		return "PCM_RELEASE";
	case kPcmStart:
		return "PCM_START";
	case kPcmStop:
		return "PCM_STOP";
	case kChmapInfo:
		return "CHMAP_INFO";
	case kCtlInfo:
		return "CTL_INFO";
	case kCtlEnumItems:
		return "CTL_ENUM_ITEMS";
	case kCtlRead:
		return "CTL_READ";
	case kCtlWrite:
		return "CTL_WRITE";
	case kCtlTlvRead:
		return "CTL_TLV_READ";
	case kCtlTlvWrite:
		return "CTL_TLV_WRITE";
	case kCtlTlvCommand:
		return "CTL_TLV_COMMAND";
	default:
		return "UNKNOWN";
	}
}

namespace {

struct FormatEntry {
	std::string_view name;
	uint8_t sample_bytes; /* 0: not linear PCM */
	uint8_t significant_bits;
	bool is_unsigned;
	bool is_float;
};

/* Indexed by format code; widths from the spec's table (width / physical width). */
constexpr FormatEntry kFormats[kNumFormats] = {
	{ "IMA_ADPCM", 0, 4, false, false },
	{ "MU_LAW", 0, 8, false, false },
	{ "A_LAW", 0, 8, false, false },
	{ "S8", 1, 8, false, false },
	{ "U8", 1, 8, true, false },
	{ "S16", 2, 16, false, false },
	{ "U16", 2, 16, true, false },
	{ "S18_3", 3, 18, false, false },
	{ "U18_3", 3, 18, true, false },
	{ "S20_3", 3, 20, false, false },
	{ "U20_3", 3, 20, true, false },
	{ "S24_3", 3, 24, false, false },
	{ "U24_3", 3, 24, true, false },
	{ "S20", 4, 20, false, false },
	{ "U20", 4, 20, true, false },
	{ "S24", 4, 24, false, false },
	{ "U24", 4, 24, true, false },
	{ "S32", 4, 32, false, false },
	{ "U32", 4, 32, true, false },
	{ "FLOAT", 4, 32, false, true },
	{ "FLOAT64", 8, 64, false, true },
	{ "DSD_U8", 0, 8, false, false },
	{ "DSD_U16", 0, 16, false, false },
	{ "DSD_U32", 0, 32, false, false },
	{ "IEC958_SUBFRAME", 0, 32, false, false },
};

constexpr uint32_t kRates[kNumRates] = {
	5512, 8000, 11025, 16000, 22050, 32000, 44100, 48000,
	64000, 88200, 96000, 176400, 192000, 384000, 12000, 24000,
};

} // namespace

std::optional<FormatInfo> format_info(uint8_t format) noexcept
{
	if (format >= kNumFormats || kFormats[format].sample_bytes == 0)
		return std::nullopt;
	const FormatEntry &e = kFormats[format];
	return FormatInfo{ e.name, e.sample_bytes, e.significant_bits, e.is_unsigned, e.is_float };
}

std::string_view format_name(uint8_t format) noexcept
{
	return format < kNumFormats ? kFormats[format].name : std::string_view("?");
}

uint64_t linear_pcm_formats() noexcept
{
	uint64_t mask = 0;
	for (unsigned i = 0; i < kNumFormats; i++) {
		if (kFormats[i].sample_bytes)
			mask |= uint64_t{1} << i;
	}
	return mask;
}

uint32_t rate_hz(uint8_t rate) noexcept
{
	return rate < kNumRates ? kRates[rate] : 0;
}

void fill_silence(uint8_t format, uint8_t *out, size_t len, uint64_t stream_offset) noexcept
{
	const auto info = format_info(format);
	if (!info || !info->is_unsigned) {
		std::memset(out, 0, len);
		return;
	}

	/* Unsigned: the mid value 1 << (bits - 1), little-endian in sample_bytes. */
	uint8_t sample[8] = {};
	const unsigned bit = info->significant_bits - 1;
	sample[bit / 8] = static_cast<uint8_t>(1u << (bit % 8));
	size_t phase = stream_offset % info->sample_bytes;
	for (size_t i = 0; i < len; i++) {
		out[i] = sample[phase];
		if (++phase == info->sample_bytes)
			phase = 0;
	}
}

} // namespace vhost_sound::virtio_snd
