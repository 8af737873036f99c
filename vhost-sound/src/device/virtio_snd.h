/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file virtio_snd.h
 * \brief The virtio-sound wire format (virtio spec, "Sound Device").
 *
 * Layouts of the control, event and I/O messages with static_assert'ed
 * sizes, the request, event and status codes, and the tables that turn a
 * format or rate code into numbers. Fields are little-endian on the wire;
 * like vhost-user itself, this daemon assumes a little-endian host.
 */
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace vhost_sound::virtio_snd {

static_assert(std::endian::native == std::endian::little,
	      "virtio-sound structures are little-endian; only little-endian hosts are supported");

/** \brief Virtio device id of a sound card. */
constexpr uint32_t kDeviceId = 25;

/** \brief Virtqueue indices. */
enum Queue : unsigned {
	kControlQueue = 0,
	kEventQueue = 1,
	kTxQueue = 2,
	kRxQueue = 3,
	kNumQueues = 4,
};

/** \brief VIRTIO_SND_F_CTLS: control elements (offered with `--controls`, see mixer.h). */
constexpr unsigned kFeatureCtls = 0;

/** \brief Request, event and status codes. */
enum Code : uint32_t {
	kJackInfo = 1,
	kJackRemap = 2,

	kPcmInfo = 0x0100,
	kPcmSetParams = 0x0101,
	kPcmPrepare = 0x0102,
	kPcmRelease = 0x0103,
	kPcmStart = 0x0104,
	kPcmStop = 0x0105,

	kChmapInfo = 0x0200,

	/* Control elements: need VIRTIO_SND_F_CTLS. */
	kCtlInfo = 0x0300,
	kCtlEnumItems = 0x0301,
	kCtlRead = 0x0302,
	kCtlWrite = 0x0303,
	kCtlTlvRead = 0x0304,
	kCtlTlvWrite = 0x0305,
	kCtlTlvCommand = 0x0306,

	kEvtJackConnected = 0x1000,
	kEvtJackDisconnected = 0x1001,
	kEvtPcmPeriodElapsed = 0x1100,
	kEvtPcmXrun = 0x1101,
	kEvtCtlNotify = 0x1200,

	kStatusOk = 0x8000,
	kStatusBadMsg = 0x8001,
	kStatusNotSupp = 0x8002,
	kStatusIoErr = 0x8003,
};

/** \brief A status code (VIRTIO_SND_S_*). */
enum class Status : uint32_t {
	Ok = kStatusOk,
	BadMsg = kStatusBadMsg,
	NotSupp = kStatusNotSupp,
	IoErr = kStatusIoErr,
};

/** \brief "OK", "BAD_MSG", "NOT_SUPP", "IO_ERR". */
std::string_view status_name(Status status) noexcept;
/** \brief The spec's name of a control request code, "UNKNOWN" otherwise. */
std::string_view request_name(uint32_t code) noexcept;

/** \brief Data flow direction (VIRTIO_SND_D_*). */
enum class Direction : uint8_t {
	Output = 0,
	Input = 1,
};

/** \brief "output" or "input". */
constexpr std::string_view direction_name(Direction d)
{
	return d == Direction::Output ? "output" : "input";
}

/* ---- common layouts ---- */

struct Hdr {
	uint32_t code;
};
static_assert(sizeof(Hdr) == 4);

struct Event {
	Hdr hdr;
	uint32_t data;
};
static_assert(sizeof(Event) == 8);

struct QueryInfo {
	Hdr hdr;
	uint32_t start_id;
	uint32_t count;
	uint32_t size;
};
static_assert(sizeof(QueryInfo) == 16);

struct Info {
	uint32_t hda_fn_nid;
};
static_assert(sizeof(Info) == 4);

/* ---- jacks ---- */

constexpr unsigned kJackFeatureRemap = 0;

struct JackHdr {
	Hdr hdr;
	uint32_t jack_id;
};
static_assert(sizeof(JackHdr) == 8);

struct JackInfo {
	Info hdr;
	uint32_t features;
	uint32_t hda_reg_defconf;
	uint32_t hda_reg_caps;
	uint8_t connected;
	uint8_t padding[7];
};
static_assert(sizeof(JackInfo) == 24);

struct JackRemap {
	JackHdr hdr;
	uint32_t association;
	uint32_t sequence;
};
static_assert(sizeof(JackRemap) == 16);

/* ---- PCM ---- */

struct PcmHdr {
	Hdr hdr;
	uint32_t stream_id;
};
static_assert(sizeof(PcmHdr) == 8);

/** \brief PCM stream feature bits (VIRTIO_SND_PCM_F_*). */
enum PcmFeature : unsigned {
	kPcmFeatureShmemHost = 0,
	kPcmFeatureShmemGuest = 1,
	kPcmFeatureMsgPolling = 2,
	kPcmFeatureEvtShmemPeriods = 3,
	kPcmFeatureEvtXruns = 4,
};

/** \brief Sample formats (VIRTIO_SND_PCM_FMT_*). */
enum Format : uint8_t {
	kFmtImaAdpcm = 0,
	kFmtMuLaw,
	kFmtALaw,
	kFmtS8,
	kFmtU8,
	kFmtS16,
	kFmtU16,
	kFmtS18_3,
	kFmtU18_3,
	kFmtS20_3,
	kFmtU20_3,
	kFmtS24_3,
	kFmtU24_3,
	kFmtS20,
	kFmtU20,
	kFmtS24,
	kFmtU24,
	kFmtS32,
	kFmtU32,
	kFmtFloat,
	kFmtFloat64,
	kFmtDsdU8,
	kFmtDsdU16,
	kFmtDsdU32,
	kFmtIec958Subframe,
	kNumFormats,
};

/** \brief Frame rates (VIRTIO_SND_PCM_RATE_*). */
enum Rate : uint8_t {
	kRate5512 = 0,
	kRate8000,
	kRate11025,
	kRate16000,
	kRate22050,
	kRate32000,
	kRate44100,
	kRate48000,
	kRate64000,
	kRate88200,
	kRate96000,
	kRate176400,
	kRate192000,
	kRate384000,
	kRate12000,
	kRate24000,
	kNumRates,
};

struct PcmInfo {
	Info hdr;
	uint32_t features;
	uint64_t formats;
	uint64_t rates;
	uint8_t direction;
	uint8_t channels_min;
	uint8_t channels_max;
	uint8_t padding[5];
};
static_assert(sizeof(PcmInfo) == 32);

struct PcmSetParams {
	PcmHdr hdr;
	uint32_t buffer_bytes;
	uint32_t period_bytes;
	uint32_t features;
	uint8_t channels;
	uint8_t format;
	uint8_t rate;
	uint8_t padding;
};
static_assert(sizeof(PcmSetParams) == 24);

/** \brief Header of an I/O message (device-readable). */
struct PcmXfer {
	uint32_t stream_id;
};
static_assert(sizeof(PcmXfer) == 4);

/** \brief Footer of an I/O message (device-writable). */
struct PcmStatus {
	uint32_t status;
	uint32_t latency_bytes;
};
static_assert(sizeof(PcmStatus) == 8);

/* ---- channel maps ---- */

/** \brief Channel positions (VIRTIO_SND_CHMAP_*). */
enum ChannelPosition : uint8_t {
	kChmapNone = 0,
	kChmapNa,
	kChmapMono,
	kChmapFl,
	kChmapFr,
	kChmapRl,
	kChmapRr,
	kChmapFc,
	kChmapLfe,
	kChmapSl,
	kChmapSr,
	kChmapRc,
};

constexpr unsigned kChmapMaxSize = 18;

struct ChmapInfo {
	Info hdr;
	uint8_t direction;
	uint8_t channels;
	uint8_t positions[kChmapMaxSize];
};
static_assert(sizeof(ChmapInfo) == 24);

/* ---- control elements ---- */

struct CtlHdr {
	Hdr hdr;
	uint32_t control_id;
};
static_assert(sizeof(CtlHdr) == 8);

/** \brief Control roles (VIRTIO_SND_CTL_ROLE_*). */
enum CtlRole : uint32_t {
	kCtlRoleUndefined = 0,
	kCtlRoleVolume,
	kCtlRoleMute,
	kCtlRoleGain,
};

/** \brief Control value types (VIRTIO_SND_CTL_TYPE_*). */
enum CtlType : uint32_t {
	kCtlTypeBoolean = 0,
	kCtlTypeInteger,
	kCtlTypeInteger64,
	kCtlTypeEnumerated,
	kCtlTypeBytes,
	kCtlTypeIec958,
};

/** \brief Bit numbers of virtio_snd_ctl_info.access (VIRTIO_SND_CTL_ACCESS_*). */
enum CtlAccess : unsigned {
	kCtlAccessRead = 0,
	kCtlAccessWrite,
	kCtlAccessVolatile,
	kCtlAccessInactive,
	kCtlAccessTlvRead,
	kCtlAccessTlvWrite,
	kCtlAccessTlvCommand,
};

constexpr size_t kCtlNameSize = 44;

struct CtlInfo {
	Info hdr;
	uint32_t role;
	uint32_t type;
	uint32_t access;
	uint32_t count;
	uint32_t index;
	char name[kCtlNameSize];
	/* The union's 64-bit member aligns it to 8: 4 bytes of padding before. */
	uint32_t padding;
	union {
		struct {
			uint32_t min;
			uint32_t max;
			uint32_t step;
		} integer;
		struct {
			uint64_t min;
			uint64_t max;
			uint64_t step;
		} integer64;
		struct {
			uint32_t items;
		} enumerated;
	} value;
};
static_assert(sizeof(CtlInfo) == 96);

struct CtlEnumItem {
	char item[64];
};
static_assert(sizeof(CtlEnumItem) == 64);

/** \brief virtio_snd_ctl_value: 512 bytes whatever the type (integer[128] etc.). */
struct CtlValue {
	uint32_t integer[128];
};
static_assert(sizeof(CtlValue) == 512);

/** \brief Bits of virtio_snd_ctl_event.mask (VIRTIO_SND_CTL_EVT_MASK_*). */
enum CtlEventMask : unsigned {
	kCtlEvtMaskValue = 0,
	kCtlEvtMaskInfo,
	kCtlEvtMaskTlv,
};

struct CtlEvent {
	Hdr hdr;
	uint16_t control_id;
	uint16_t mask;
};
static_assert(sizeof(CtlEvent) == sizeof(Event));

/** \brief ALSA TLV types (SNDRV_CTL_TLVT_*) that CTL_TLV_READ returns. */
constexpr uint32_t kTlvDbScale = 1;
constexpr uint32_t kTlvDbLinear = 2;
/** \brief SNDRV_CTL_TLVD_DB_GAIN_MUTE: "minus infinity" in 0.01 dB. */
constexpr int32_t kTlvDbGainMute = -9999999;

/* ---- configuration space ---- */

struct Config {
	uint32_t jacks;
	uint32_t streams;
	uint32_t chmaps;
	uint32_t controls; /* only meaningful with VIRTIO_SND_F_CTLS */
};
static_assert(sizeof(Config) == 16);

/* ---- format and rate tables ---- */

/** \brief What the device needs to know about one linear PCM sample format. */
struct FormatInfo {
	std::string_view name;
	/** \brief Bytes one sample occupies in a frame (the physical width). */
	uint8_t sample_bytes;
	/** \brief Bits of the sample that carry signal. */
	uint8_t significant_bits;
	/** \brief Unsigned integer: silence is the mid value, not 0. */
	bool is_unsigned;
	bool is_float;
};

/**
 * \brief Facts about \a format, or nothing for codes that are not linear
 * PCM (IMA ADPCM, mu-law, A-law, DSD, IEC958) or not defined at all.
 */
std::optional<FormatInfo> format_info(uint8_t format) noexcept;

/** \brief The spec's name of any defined format code ("S16", "MU_LAW", ...); "?" if undefined. */
std::string_view format_name(uint8_t format) noexcept;

/** \brief Bit mask of every linear PCM format this daemon can move (8 to 64 bit,
 *  integer and float, the 3-byte ones included). */
uint64_t linear_pcm_formats() noexcept;

/** \brief Frames per second of rate code \a rate, or 0 for an undefined code. */
uint32_t rate_hz(uint8_t rate) noexcept;

/** \brief Bit mask of every rate the spec defines. */
constexpr uint64_t all_rates() { return (uint64_t{1} << kNumRates) - 1; }

/**
 * \brief Write \a len bytes of silence for \a format to \a out.
 *
 * \a stream_offset is the position of out[0] in the byte stream, so that
 * silence written in the middle of a sample continues that sample's bytes.
 * Silence is all-zero bytes for signed and float formats and the mid value
 * (only the sample's top significant bit set) for unsigned ones.
 */
void fill_silence(uint8_t format, uint8_t *out, size_t len, uint64_t stream_offset = 0) noexcept;

} // namespace vhost_sound::virtio_snd
