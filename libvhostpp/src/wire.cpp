/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "vhostpp/internal/wire.h"

#include <array>
#include <cstring>
#include <fmt/format.h>

namespace vhostpp::wire {

namespace {

constexpr std::array<std::string_view, kMaxRequestCode + 1> kNames = {
	"UNKNOWN",
	"GET_FEATURES",
	"SET_FEATURES",
	"SET_OWNER",
	"RESET_OWNER",
	"SET_MEM_TABLE",
	"SET_LOG_BASE",
	"SET_LOG_FD",
	"SET_VRING_NUM",
	"SET_VRING_ADDR",
	"SET_VRING_BASE",
	"GET_VRING_BASE",
	"SET_VRING_KICK",
	"SET_VRING_CALL",
	"SET_VRING_ERR",
	"GET_PROTOCOL_FEATURES",
	"SET_PROTOCOL_FEATURES",
	"GET_QUEUE_NUM",
	"SET_VRING_ENABLE",
	"SEND_RARP",
	"NET_SET_MTU",
	"SET_BACKEND_REQ_FD",
	"IOTLB_MSG",
	"SET_VRING_ENDIAN",
	"GET_CONFIG",
	"SET_CONFIG",
	"CREATE_CRYPTO_SESSION",
	"CLOSE_CRYPTO_SESSION",
	"POSTCOPY_ADVISE",
	"POSTCOPY_LISTEN",
	"POSTCOPY_END",
	"GET_INFLIGHT_FD",
	"SET_INFLIGHT_FD",
	"GPU_SET_SOCKET",
	"RESET_DEVICE",
	"VRING_KICK",
	"GET_MAX_MEM_SLOTS",
	"ADD_MEM_REG",
	"REM_MEM_REG",
	"SET_STATUS",
	"GET_STATUS",
	"GET_SHARED_OBJECT",
	"SET_DEVICE_STATE_FD",
	"CHECK_DEVICE_STATE",
};

/*
 * CREATE_CRYPTO_SESSION's layout depends on QEMU's crypto structs and is
 * never negotiated here; it is bounded, not modelled.
 */
constexpr uint32_t kMaxCryptoSessionSize = 4096;

/* How the payload of each code may be sized. */
struct SizeRule {
	uint32_t min;
	uint32_t max;
	uint32_t step; /* sizes are min + k*step; 0 = exactly min..max with any step */
};

SizeRule size_rule(Request code)
{
	switch (code) {
	case Request::GetFeatures:
	case Request::SetOwner:
	case Request::ResetOwner:
	case Request::SetLogFd:
	case Request::GetProtocolFeatures:
	case Request::GetQueueNum:
	case Request::SetBackendReqFd:
	case Request::PostcopyAdvise:
	case Request::PostcopyListen:
	case Request::PostcopyEnd:
	case Request::GpuSetSocket:
	case Request::ResetDevice:
	case Request::GetMaxMemSlots:
	case Request::GetStatus:
	case Request::CheckDeviceState:
		return {0, 0, 0};
	case Request::SetFeatures:
	case Request::SetProtocolFeatures:
	case Request::SetVringKick:
	case Request::SetVringCall:
	case Request::SetVringErr:
	case Request::SendRarp:
	case Request::NetSetMtu:
	case Request::CloseCryptoSession:
	case Request::SetStatus:
		return {8, 8, 0};
	case Request::SetVringNum:
	case Request::SetVringBase:
	case Request::GetVringBase:
	case Request::SetVringEnable:
	case Request::SetVringEndian:
	case Request::VringKick:
		return {sizeof(VringState), sizeof(VringState), 0};
	case Request::SetVringAddr:
		return {sizeof(VringAddr), sizeof(VringAddr), 0};
	case Request::SetMemTable:
		return {sizeof(MemoryTableHeader),
			sizeof(MemoryTableHeader) + kMaxMemTableRegions * sizeof(MemoryRegion),
			sizeof(MemoryRegion)};
	case Request::SetLogBase:
		return {sizeof(LogBase), sizeof(LogBase), 0};
	case Request::IotlbMsg:
		return {sizeof(IotlbMsg), sizeof(IotlbMsg), 0};
	case Request::GetConfig:
	case Request::SetConfig:
		return {sizeof(ConfigHeader), sizeof(ConfigHeader) + kMaxConfigSize, 0};
	case Request::CreateCryptoSession:
		return {1, kMaxCryptoSessionSize, 0};
	case Request::GetInflightFd:
	case Request::SetInflightFd:
		return {sizeof(InflightDesc), sizeof(InflightDesc), 0};
	case Request::AddMemReg:
	case Request::RemMemReg:
		return {sizeof(SingleMemoryRegion), sizeof(SingleMemoryRegion), 0};
	case Request::GetSharedObject:
		return {16, 16, 0};
	case Request::SetDeviceStateFd:
		return {sizeof(DeviceStateTransfer), sizeof(DeviceStateTransfer), 0};
	}
	return {0, 0, 0};
}

template<typename T>
T read_as(std::span<const uint8_t> payload, size_t offset = 0)
{
	T value;
	std::memcpy(&value, payload.data() + offset, sizeof(T));
	return value;
}

[[noreturn]] void fail(Request code, const std::string &what)
{
	throw ProtocolError(fmt::format("{}: {}", request_name(static_cast<uint32_t>(code)), what));
}

void expect_fds(Request code, const std::vector<UniqueFd> &fds, size_t expected)
{
	if (fds.size() != expected)
		fail(code, fmt::format("carries {} fds, expected {}", fds.size(), expected));
}

} // namespace

std::string_view request_name(uint32_t code) noexcept
{
	return code <= kMaxRequestCode ? kNames[code] : kNames[0];
}

void check_header(const Header &header)
{
	if (header.request == 0 || header.request > kMaxRequestCode)
		throw ProtocolError(fmt::format("unknown request code {}", header.request));
	auto code = static_cast<Request>(header.request);
	if ((header.flags & kFlagVersionMask) != kVersion)
		fail(code, fmt::format("version {} in flags 0x{:x}, expected 1",
				       header.flags & kFlagVersionMask, header.flags));
	if (header.flags & kFlagReply)
		fail(code, fmt::format("REPLY flag set on a request (flags 0x{:x})", header.flags));
	if (header.flags & ~kFlagsKnown)
		fail(code, fmt::format("reserved flag bits set (flags 0x{:x})", header.flags));

	SizeRule rule = size_rule(code);
	bool ok = header.size >= rule.min && header.size <= rule.max;
	if (ok && rule.step)
		ok = (header.size - rule.min) % rule.step == 0;
	if (!ok) {
		if (rule.min == rule.max)
			fail(code, fmt::format("payload size {}, expected {}", header.size, rule.min));
		fail(code, fmt::format("payload size {} outside {}..{}", header.size, rule.min,
				       rule.max));
	}
}

ParsedRequest parse_request(const Header &header, std::span<const uint8_t> payload,
			    std::vector<UniqueFd> fds)
{
	check_header(header);
	auto code = static_cast<Request>(header.request);
	if (payload.size() != header.size)
		fail(code, fmt::format("payload has {} bytes, header says {}", payload.size(),
				       header.size));
	if (fds.size() > kMaxFds)
		fail(code, fmt::format("carries {} fds, at most {} allowed", fds.size(), kMaxFds));

	ParsedRequest req{code, (header.flags & kFlagNeedReply) != 0, std::monostate{}};

	switch (code) {
	case Request::SetFeatures:
	case Request::SetProtocolFeatures:
	case Request::SendRarp:
	case Request::NetSetMtu:
	case Request::CloseCryptoSession:
	case Request::SetStatus:
		expect_fds(code, fds, 0);
		req.payload = U64{read_as<uint64_t>(payload)};
		break;

	case Request::SetVringKick:
	case Request::SetVringCall:
	case Request::SetVringErr: {
		uint64_t value = read_as<uint64_t>(payload);
		if (value & ~(kVringIndexMask | kVringNoFdFlag))
			fail(code, fmt::format("reserved bits set in 0x{:x}", value));
		bool no_fd = value & kVringNoFdFlag;
		if (no_fd && !fds.empty())
			fail(code, fmt::format("no-fd bit set but {} fds attached", fds.size()));
		expect_fds(code, fds, no_fd ? 0 : 1);
		VringFd vfd{static_cast<uint32_t>(value & kVringIndexMask), {}};
		if (!no_fd)
			vfd.fd = std::move(fds[0]);
		req.payload = std::move(vfd);
		break;
	}

	case Request::SetVringNum:
	case Request::SetVringBase:
	case Request::GetVringBase:
	case Request::SetVringEnable:
	case Request::SetVringEndian:
	case Request::VringKick:
		expect_fds(code, fds, 0);
		req.payload = read_as<VringState>(payload);
		break;

	case Request::SetVringAddr:
		expect_fds(code, fds, 0);
		req.payload = read_as<VringAddr>(payload);
		break;

	case Request::SetMemTable: {
		auto table = read_as<MemoryTableHeader>(payload);
		size_t count = (payload.size() - sizeof(MemoryTableHeader)) / sizeof(MemoryRegion);
		if (table.num_regions == 0 || table.num_regions > kMaxMemTableRegions)
			fail(code, fmt::format("num_regions {} outside 1..{}", table.num_regions,
					       kMaxMemTableRegions));
		if (table.num_regions != count)
			fail(code, fmt::format("num_regions {} but payload holds {} regions",
					       table.num_regions, count));
		expect_fds(code, fds, count);
		MemTable mt;
		for (size_t i = 0; i < count; i++)
			mt.regions.push_back(read_as<MemoryRegion>(
				payload, sizeof(MemoryTableHeader) + i * sizeof(MemoryRegion)));
		mt.fds = std::move(fds);
		req.payload = std::move(mt);
		break;
	}

	case Request::AddMemReg:
	case Request::RemMemReg: {
		/* QEMU passes the region's fd with REM_MEM_REG too; other front-ends do not. */
		if (code == Request::AddMemReg)
			expect_fds(code, fds, 1);
		else if (fds.size() > 1)
			fail(code, fmt::format("carries {} fds, expected 0 or 1", fds.size()));
		MemRegion mr{read_as<SingleMemoryRegion>(payload).region, {}};
		if (!fds.empty())
			mr.fd = std::move(fds[0]);
		req.payload = std::move(mr);
		break;
	}

	case Request::GetConfig:
	case Request::SetConfig: {
		expect_fds(code, fds, 0);
		auto ch = read_as<ConfigHeader>(payload);
		size_t data_size = payload.size() - sizeof(ConfigHeader);
		if (ch.size != data_size)
			fail(code, fmt::format("config size {} but payload carries {} bytes", ch.size,
					       data_size));
		if (ch.size == 0)
			fail(code, "config size 0");
		if (uint64_t(ch.offset) + ch.size > kMaxConfigSize)
			fail(code, fmt::format("offset {} + size {} beyond {}", ch.offset, ch.size,
					       kMaxConfigSize));
		if (ch.flags & ~kConfigFlagLiveMigration)
			fail(code, fmt::format("unknown flags 0x{:x}", ch.flags));
		req.payload = Config{ch.offset, ch.flags,
				     std::vector<uint8_t>(payload.begin() + sizeof(ConfigHeader),
							  payload.end())};
		break;
	}

	case Request::SetBackendReqFd:
	case Request::SetLogFd:
	case Request::GpuSetSocket:
		expect_fds(code, fds, 1);
		req.payload = Fd{std::move(fds[0])};
		break;

	case Request::SetLogBase:
	case Request::SetInflightFd:
	case Request::SetDeviceStateFd:
		/* Never negotiated: the size was checked, the fd is all that matters. */
		expect_fds(code, fds, 1);
		req.payload = Fd{std::move(fds[0])};
		break;

	default:
		/* Codes with no payload worth keeping (or one that is never negotiated). */
		expect_fds(code, fds, 0);
		break;
	}
	return req;
}

Message make_request(Request code, std::span<const uint8_t> body, uint32_t extra_flags)
{
	Message msg;
	msg.header = {static_cast<uint32_t>(code), kVersion | extra_flags,
		      static_cast<uint32_t>(body.size())};
	msg.payload.assign(body.begin(), body.end());
	return msg;
}

Message make_reply(const Header &request, std::span<const uint8_t> body)
{
	Message msg;
	msg.header = {request.request, kVersion | kFlagReply, static_cast<uint32_t>(body.size())};
	msg.payload.assign(body.begin(), body.end());
	return msg;
}

} // namespace vhostpp::wire
