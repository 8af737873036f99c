/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The vhost-user protocol client: Frontend, one request at a time, as
 * QEMU sends them.
 */
#include "vhostpp/frontend/frontend.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <system_error>
#include <thread>
#include <unistd.h>

#include "vhostpp/internal/connection.h"

namespace vhostpp {

namespace {

std::string_view name(wire::Request code)
{
	return wire::request_name(static_cast<uint32_t>(code));
}

template<typename T>
T from_bytes(const std::vector<uint8_t> &payload)
{
	T value;
	std::memcpy(&value, payload.data(), sizeof(T));
	return value;
}

} // namespace

/* -------------------------------------------------------------------- Frontend */

Frontend Frontend::connect(const std::string &path, int timeout_ms)
{
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	if (path.size() >= sizeof(addr.sun_path))
		throw FrontendError(fmt::format("connect {}: path too long", path));
	std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	while (true) {
		UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
		if (!fd)
			throw FrontendError(fmt::format("socket: {}", std::strerror(errno)));
		if (::connect(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0)
			return Frontend(std::move(fd));
		int err = errno;
		bool transient = err == ENOENT || err == ECONNREFUSED || err == EAGAIN;
		if (!transient || std::chrono::steady_clock::now() >= deadline)
			throw FrontendError(fmt::format("connect {}: {}", path, std::strerror(err)));
		/*
		 * The back-end is still starting and a path cannot be waited on:
		 * retry on a short period until the deadline.
		 */
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
}

Frontend::Frontend(UniqueFd socket)
	: socket_(std::move(socket))
{
}

void Frontend::send(const wire::Message &msg)
{
	try {
		send_message(socket_.get(), msg);
	} catch (const std::system_error &e) {
		throw FrontendError(fmt::format("{}: send: {}", wire::request_name(msg.header.request),
						e.what()));
	}
}

void Frontend::send(const wire::Message &msg, std::span<const int> fds)
{
	std::vector<uint8_t> bytes(sizeof(wire::Header) + msg.payload.size());
	std::memcpy(bytes.data(), &msg.header, sizeof(wire::Header));
	if (!msg.payload.empty())
		std::memcpy(bytes.data() + sizeof(wire::Header), msg.payload.data(),
			    msg.payload.size());
	try {
		send_bytes(socket_.get(), bytes, fds);
	} catch (const std::system_error &e) {
		throw FrontendError(fmt::format("{}: send: {}", wire::request_name(msg.header.request),
						e.what()));
	}
}

void Frontend::send_raw(std::span<const uint8_t> bytes, std::span<const int> fds)
{
	try {
		send_bytes(socket_.get(), bytes, fds);
	} catch (const std::system_error &e) {
		throw FrontendError(fmt::format("send: {}", e.what()));
	}
}

wire::Message Frontend::receive(int timeout_ms)
{
	try {
		return receive_message(socket_.get(), timeout_ms, MessageReader::Source::BackEnd);
	} catch (const wire::ProtocolError &e) {
		throw FrontendError(fmt::format("receive: {}", e.what()));
	} catch (const std::system_error &e) {
		throw FrontendError(fmt::format("receive: {}", e.what()));
	}
}

bool Frontend::wait_closed(int timeout_ms)
{
	using clock = std::chrono::steady_clock;
	auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
	while (true) {
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
										  clock::now());
		pollfd pfd{socket_.get(), POLLIN, 0};
		int r = ::poll(&pfd, 1, std::max<int>(0, int(left.count())));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;

		uint8_t buf[4096];
		alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)];
		iovec iov{buf, sizeof(buf)};
		msghdr mh{};
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = control;
		mh.msg_controllen = sizeof(control);
		ssize_t n = ::recvmsg(socket_.get(), &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n >= 0) {
			/* Whatever fds came along are closed: nobody asked for them. */
			for (cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
				if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
					continue;
				size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				for (size_t i = 0; i < count; i++) {
					int fd;
					std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
					::close(fd);
				}
			}
		}
		if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
			return true;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			throw FrontendError(fmt::format("wait_closed: {}", std::strerror(errno)));
	}
}

std::vector<uint8_t> Frontend::receive_reply(wire::Request code, size_t expected_size,
					     int timeout_ms)
{
	wire::Message msg;
	try {
		msg = receive_message(socket_.get(), timeout_ms, MessageReader::Source::BackEnd);
	} catch (const wire::ProtocolError &e) {
		throw FrontendError(fmt::format("{}: no reply: {}", name(code), e.what()));
	} catch (const std::system_error &e) {
		throw FrontendError(fmt::format("{}: no reply: {}", name(code), e.what()));
	}
	const wire::Header &h = msg.header;
	if (h.request != static_cast<uint32_t>(code))
		throw FrontendError(fmt::format("{}: reply carries request code {} ({})", name(code),
						h.request, wire::request_name(h.request)));
	if (!(h.flags & wire::kFlagReply))
		throw FrontendError(fmt::format("{}: reply without the REPLY flag (flags 0x{:x})",
						name(code), h.flags));
	if (!msg.fds.empty())
		throw FrontendError(fmt::format("{}: reply carries {} fds", name(code), msg.fds.size()));
	if (expected_size != SIZE_MAX && msg.payload.size() != expected_size)
		throw FrontendError(fmt::format("{}: reply of {} bytes, expected {}", name(code),
						msg.payload.size(), expected_size));
	return std::move(msg.payload);
}

void Frontend::request(wire::Request code, std::span<const uint8_t> body, std::span<const int> fds)
{
	bool ack = reply_ack_;
	wire::Message msg = wire::make_request(code, body, ack ? wire::kFlagNeedReply : 0);
	send(msg, fds);
	if (!ack)
		return;
	uint64_t status = from_bytes<uint64_t>(receive_reply(code, sizeof(uint64_t)));
	if (status != 0)
		throw FrontendError(fmt::format("{}: back-end refused it (REPLY_ACK status {})",
						name(code), status));
}

uint64_t Frontend::get_u64(wire::Request code)
{
	send(wire::make_request(code, {}));
	return from_bytes<uint64_t>(receive_reply(code, sizeof(uint64_t)));
}

void Frontend::set_u64(wire::Request code, uint64_t value)
{
	request(code, wire::as_bytes(value));
}

uint64_t Frontend::get_features()
{
	return get_u64(wire::Request::GetFeatures);
}

void Frontend::set_features(uint64_t features)
{
	set_u64(wire::Request::SetFeatures, features);
	acked_features_ = features;
	features_set_ = true;
}

uint64_t Frontend::get_protocol_features()
{
	return get_u64(wire::Request::GetProtocolFeatures);
}

void Frontend::set_protocol_features(uint64_t features)
{
	/* REPLY_ACK applies from the next message on, as in QEMU. */
	set_u64(wire::Request::SetProtocolFeatures, features);
	acked_protocol_features_ = features;
	protocol_features_set_ = true;
	reply_ack_ = features & wire::bit(wire::ProtocolFeature::ReplyAck);
}

void Frontend::set_owner()
{
	request(wire::Request::SetOwner, {});
}

void Frontend::reset_owner()
{
	request(wire::Request::ResetOwner, {});
}

void Frontend::reset_device()
{
	request(wire::Request::ResetDevice, {});
}

uint64_t Frontend::get_queue_num()
{
	return get_u64(wire::Request::GetQueueNum);
}

uint64_t Frontend::get_max_mem_slots()
{
	return get_u64(wire::Request::GetMaxMemSlots);
}

void Frontend::set_mem_table(std::span<DriverMemory *const> memories)
{
	if (memories.empty() || memories.size() > wire::kMaxMemTableRegions)
		throw FrontendError(fmt::format("SET_MEM_TABLE: {} regions, 1..{} allowed",
						memories.size(), wire::kMaxMemTableRegions));
	wire::MemoryTableHeader header{static_cast<uint32_t>(memories.size()), 0};
	std::vector<uint8_t> body(sizeof(header) + memories.size() * sizeof(wire::MemoryRegion));
	std::memcpy(body.data(), &header, sizeof(header));
	std::vector<int> fds;
	for (size_t i = 0; i < memories.size(); i++) {
		wire::MemoryRegion r = memories[i]->region();
		std::memcpy(body.data() + sizeof(header) + i * sizeof(r), &r, sizeof(r));
		fds.push_back(memories[i]->fd().get());
	}
	request(wire::Request::SetMemTable, body, fds);
}

void Frontend::add_mem_reg(const DriverMemory &memory)
{
	wire::SingleMemoryRegion body{0, memory.region()};
	int fd = memory.fd().get();
	request(wire::Request::AddMemReg, wire::as_bytes(body), {&fd, 1});
}

void Frontend::rem_mem_reg(const DriverMemory &memory)
{
	wire::SingleMemoryRegion body{0, memory.region()};
	int fd = memory.fd().get();
	request(wire::Request::RemMemReg, wire::as_bytes(body), {&fd, 1});
}

void Frontend::set_vring_num(uint32_t index, uint32_t num)
{
	wire::VringState s{index, num};
	request(wire::Request::SetVringNum, wire::as_bytes(s));
}

void Frontend::set_vring_addr(const wire::VringAddr &addr)
{
	request(wire::Request::SetVringAddr, wire::as_bytes(addr));
}

void Frontend::set_vring_base(uint32_t index, uint32_t base)
{
	wire::VringState s{index, base};
	request(wire::Request::SetVringBase, wire::as_bytes(s));
}

uint32_t Frontend::get_vring_base(uint32_t index)
{
	wire::VringState s{index, 0};
	send(wire::make_request(wire::Request::GetVringBase, wire::as_bytes(s)));
	auto reply = from_bytes<wire::VringState>(
		receive_reply(wire::Request::GetVringBase, sizeof(wire::VringState)));
	if (reply.index != index)
		throw FrontendError(fmt::format("GET_VRING_BASE: asked for ring {}, reply names ring {}",
						index, reply.index));
	return reply.num;
}

void Frontend::vring_fd(wire::Request code, uint32_t index, const EventFd *fd)
{
	uint64_t value = index;
	if (!fd) {
		value |= wire::kVringNoFdFlag;
		request(code, wire::as_bytes(value));
		return;
	}
	int raw = fd->fd();
	request(code, wire::as_bytes(value), {&raw, 1});
}

void Frontend::set_vring_kick(uint32_t index, const EventFd *fd)
{
	vring_fd(wire::Request::SetVringKick, index, fd);
}

void Frontend::set_vring_call(uint32_t index, const EventFd *fd)
{
	vring_fd(wire::Request::SetVringCall, index, fd);
}

void Frontend::set_vring_err(uint32_t index, const EventFd *fd)
{
	vring_fd(wire::Request::SetVringErr, index, fd);
}

void Frontend::set_vring_enable(uint32_t index, bool enable)
{
	wire::VringState s{index, enable ? 1u : 0u};
	request(wire::Request::SetVringEnable, wire::as_bytes(s));
}

std::vector<uint8_t> Frontend::get_config(uint32_t offset, uint32_t size)
{
	wire::ConfigHeader header{offset, size, 0};
	std::vector<uint8_t> body(sizeof(header) + size);
	std::memcpy(body.data(), &header, sizeof(header));
	send(wire::make_request(wire::Request::GetConfig, body));
	/* A back-end that cannot answer replies with a short (typically empty) payload. */
	auto reply = receive_reply(wire::Request::GetConfig, SIZE_MAX);
	if (reply.size() != sizeof(header) + size)
		throw FrontendError(fmt::format("GET_CONFIG: reply of {} bytes, expected {} "
						"(back-end refused offset {} size {})",
						reply.size(), sizeof(header) + size, offset, size));
	return {reply.begin() + sizeof(header), reply.end()};
}

void Frontend::set_config(uint32_t offset, std::span<const uint8_t> data)
{
	wire::ConfigHeader header{offset, static_cast<uint32_t>(data.size()),
				  wire::kConfigFlagWritable};
	std::vector<uint8_t> body(sizeof(header) + data.size());
	std::memcpy(body.data(), &header, sizeof(header));
	if (!data.empty())
		std::memcpy(body.data() + sizeof(header), data.data(), data.size());
	request(wire::Request::SetConfig, body);
}

void Frontend::set_status(uint8_t status)
{
	set_u64(wire::Request::SetStatus, status);
}

uint8_t Frontend::get_status()
{
	return static_cast<uint8_t>(get_u64(wire::Request::GetStatus));
}

void Frontend::set_backend_req_fd(UniqueFd fd)
{
	int raw = fd.get();
	request(wire::Request::SetBackendReqFd, {}, {&raw, 1});
}

bool Frontend::protocol_features_negotiated() const
{
	/* The spec ties "rings start disabled" to VHOST_USER_F_PROTOCOL_FEATURES being acked. */
	if (features_set_)
		return acked_features_ & wire::feature_bit(wire::virtio_feature::ProtocolFeatures);
	return protocol_features_set_;
}

void Frontend::setup_queue(DriverQueue &q)
{
	set_vring_num(q.index(), q.size());
	set_vring_base(q.index(), q.start_index());
	set_vring_addr(q.addresses());
	set_vring_kick(q.index(), &q.kick_fd());
	set_vring_call(q.index(), &q.call_fd());
	if (protocol_features_negotiated())
		set_vring_enable(q.index(), true);
}

} // namespace vhostpp
