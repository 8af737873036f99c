/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file wire.h
 * \brief The vhost-user wire format: codes, flags, payload layouts.
 *
 * This is the only place that knows how messages look as bytes. Incoming
 * front-end messages are turned into a typed, validated Request by
 * parse_request(); nothing else in the library interprets socket bytes.
 * The layouts follow QEMU's docs/interop/vhost-user.rst (little-endian
 * host assumed, as vhost-user itself does).
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "vhostpp/fd.h"

namespace vhostpp::wire {

/** \brief Front-end → back-end request codes (1–43 of the spec). */
enum class Request : uint32_t {
	GetFeatures = 1,
	SetFeatures = 2,
	SetOwner = 3,
	ResetOwner = 4,
	SetMemTable = 5,
	SetLogBase = 6,
	SetLogFd = 7,
	SetVringNum = 8,
	SetVringAddr = 9,
	SetVringBase = 10,
	GetVringBase = 11,
	SetVringKick = 12,
	SetVringCall = 13,
	SetVringErr = 14,
	GetProtocolFeatures = 15,
	SetProtocolFeatures = 16,
	GetQueueNum = 17,
	SetVringEnable = 18,
	SendRarp = 19,
	NetSetMtu = 20,
	SetBackendReqFd = 21,
	IotlbMsg = 22,
	SetVringEndian = 23,
	GetConfig = 24,
	SetConfig = 25,
	CreateCryptoSession = 26,
	CloseCryptoSession = 27,
	PostcopyAdvise = 28,
	PostcopyListen = 29,
	PostcopyEnd = 30,
	GetInflightFd = 31,
	SetInflightFd = 32,
	GpuSetSocket = 33,
	ResetDevice = 34,
	VringKick = 35,
	GetMaxMemSlots = 36,
	AddMemReg = 37,
	RemMemReg = 38,
	SetStatus = 39,
	GetStatus = 40,
	GetSharedObject = 41,
	SetDeviceStateFd = 42,
	CheckDeviceState = 43,
};
constexpr uint32_t kMaxRequestCode = 43;

/** \brief Back-end → front-end request codes used by the library. */
enum class BackendRequest : uint32_t {
	IotlbMsg = 1,
	ConfigChangeMsg = 2,
	VringHostNotifierMsg = 3,
};

/** \brief The spec's name of a request code, e.g. "SET_VRING_ADDR"; "UNKNOWN" otherwise. */
std::string_view request_name(uint32_t code) noexcept;

/** \brief Header flag bits. */
constexpr uint32_t kVersion = 0x1;
constexpr uint32_t kFlagVersionMask = 0x3;
constexpr uint32_t kFlagReply = 1u << 2;
constexpr uint32_t kFlagNeedReply = 1u << 3;
constexpr uint32_t kFlagsKnown = kFlagVersionMask | kFlagReply | kFlagNeedReply;

/** \brief Most fds one message may carry (VHOST_MEMORY_BASELINE_NREGIONS). */
constexpr size_t kMaxFds = 8;
/** \brief Most regions in SET_MEM_TABLE, and memory slots we offer. */
constexpr size_t kMaxMemTableRegions = 8;
constexpr uint64_t kMaxMemSlots = 32;
/** \brief Largest config space the protocol can move. */
constexpr uint32_t kMaxConfigSize = 256;
/** \brief VIRTIO_CONFIG_S_NEEDS_RESET in the device status (virtio 2.1). */
constexpr uint8_t kStatusNeedsReset = 0x40;

/** \brief Vring fd messages: ring index bits and the "no fd" bit of their u64. */
constexpr uint64_t kVringIndexMask = 0xff;
constexpr uint64_t kVringNoFdFlag = 0x100;

/** \brief VHOST_USER_PROTOCOL_F_* bit numbers. */
enum class ProtocolFeature : unsigned {
	Mq = 0,
	LogShmfd = 1,
	Rarp = 2,
	ReplyAck = 3,
	Mtu = 4,
	BackendReq = 5,
	CrossEndian = 6,
	CryptoSession = 7,
	Pagefault = 8,
	Config = 9,
	BackendSendFd = 10,
	HostNotifier = 11,
	InflightShmfd = 12,
	ResetDevice = 13,
	InbandNotifications = 14,
	ConfigureMemSlots = 15,
	Status = 16,
	XenMmap = 17,
	SharedObject = 18,
	DeviceState = 19,
};
constexpr uint64_t bit(ProtocolFeature f) { return 1ull << static_cast<unsigned>(f); }

/** \brief Transport-level virtio feature bits the library itself handles. */
namespace virtio_feature {
constexpr unsigned NotifyOnEmpty = 24;
constexpr unsigned AnyLayout = 27;
constexpr unsigned RingIndirectDesc = 28;
constexpr unsigned RingEventIdx = 29;
constexpr unsigned ProtocolFeatures = 30; /* VHOST_USER_F_PROTOCOL_FEATURES */
constexpr unsigned Version1 = 32;
constexpr unsigned AccessPlatform = 33;
constexpr unsigned RingPacked = 34;
} // namespace virtio_feature
constexpr uint64_t feature_bit(unsigned n) { return 1ull << n; }

/** \brief VHOST_USER_GET_CONFIG/SET_CONFIG flags. */
constexpr uint32_t kConfigFlagWritable = 0x0;
constexpr uint32_t kConfigFlagLiveMigration = 0x1;

#pragma pack(push, 1)
struct Header {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};
static_assert(sizeof(Header) == 12);

struct VringState {
	uint32_t index;
	uint32_t num;
};
static_assert(sizeof(VringState) == 8);

struct VringAddr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);
constexpr uint32_t kVringAddrFlagLog = 0x1;

struct MemoryRegion {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
};
static_assert(sizeof(MemoryRegion) == 32);

struct MemoryTableHeader {
	uint32_t num_regions;
	uint32_t padding;
};
static_assert(sizeof(MemoryTableHeader) == 8);

struct SingleMemoryRegion {
	uint64_t padding;
	MemoryRegion region;
};
static_assert(sizeof(SingleMemoryRegion) == 40);

struct ConfigHeader {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
};
static_assert(sizeof(ConfigHeader) == 12);

struct LogBase {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};
static_assert(sizeof(LogBase) == 16);

struct IotlbMsg {
	uint64_t iova;
	uint64_t size;
	uint64_t user_addr;
	uint8_t perm;
	uint8_t type;
	uint8_t padding[6];
};
static_assert(sizeof(IotlbMsg) == 32);

struct InflightDesc {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
	uint8_t padding[4];
};
static_assert(sizeof(InflightDesc) == 24);

struct DeviceStateTransfer {
	uint32_t direction;
	uint32_t phase;
};
static_assert(sizeof(DeviceStateTransfer) == 8);
#pragma pack(pop)

/**
 * \brief A protocol violation by the peer: the message named cannot be honoured.
 *
 * what() names the message and the field that was wrong; it is what the
 * library logs.
 */
class ProtocolError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

/** \brief A whole message as it travels: header, payload bytes, passed fds. */
struct Message {
	Header header{};
	std::vector<uint8_t> payload;
	std::vector<UniqueFd> fds;
};

/** \brief Payload of messages carrying one u64 (features, status, queue count...). */
struct U64 {
	uint64_t value;
};
/** \brief Payload of SET_VRING_KICK/CALL/ERR: a ring index and an optional eventfd. */
struct VringFd {
	uint32_t index;
	UniqueFd fd; /**< empty when the "no fd" bit was set (polling / no notification) */
};
/** \brief Payload of SET_MEM_TABLE: one fd per region. */
struct MemTable {
	std::vector<MemoryRegion> regions;
	std::vector<UniqueFd> fds;
};
/** \brief Payload of ADD_MEM_REG and REM_MEM_REG. */
struct MemRegion {
	MemoryRegion region;
	UniqueFd fd; /**< always set for ADD_MEM_REG; optional for REM_MEM_REG */
};
/** \brief Payload of GET_CONFIG and SET_CONFIG. */
struct Config {
	uint32_t offset;
	uint32_t flags;
	std::vector<uint8_t> data; /**< size bytes (contents ignored for GET_CONFIG) */
};
/** \brief Payload of SET_BACKEND_REQ_FD (and other lone-fd messages). */
struct Fd {
	UniqueFd fd;
};

using Payload = std::variant<std::monostate, U64, VringState, VringAddr, VringFd, MemTable,
			     MemRegion, Config, Fd>;

/** \brief A validated front-end request. */
struct ParsedRequest {
	Request code;
	bool need_reply;
	Payload payload;
};

/**
 * \brief Check a header before its payload is read.
 *
 * Refuses unknown codes, a version other than 1, the REPLY bit, reserved
 * flag bits and sizes no message of that code can have, so that a hostile
 * size never makes the reader allocate or wait for bytes.
 * \throws ProtocolError naming the message and the bad field
 */
void check_header(const Header &header);

/**
 * \brief Turn a received message into a typed request.
 *
 * Validates the exact payload size and the number of fds for the code. On
 * error every fd in \a fds is closed (they are owned by the argument).
 * \throws ProtocolError naming the message and the bad field
 */
ParsedRequest parse_request(const Header &header, std::span<const uint8_t> payload,
			    std::vector<UniqueFd> fds);

/** \brief Build a request message (front-end side) carrying the bytes of \a body. */
Message make_request(Request code, std::span<const uint8_t> body, uint32_t extra_flags = 0);

template<typename T>
std::span<const uint8_t> as_bytes(const T &value)
{
	return {reinterpret_cast<const uint8_t *>(&value), sizeof(T)};
}

/** \brief Build the reply to \a request with payload \a body. */
Message make_reply(const Header &request, std::span<const uint8_t> body);

/** \brief Read a T from the start of a payload, if it is exactly sizeof(T) long. */
template<typename T>
std::optional<T> payload_as(std::span<const uint8_t> payload)
{
	if (payload.size() != sizeof(T))
		return std::nullopt;
	T value;
	__builtin_memcpy(&value, payload.data(), sizeof(T));
	return value;
}

} // namespace vhostpp::wire
