/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "vhostpp/internal/connection.h"

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <system_error>

namespace vhostpp {

namespace {

/* Larger than any reply or back-end request the protocol defines. */
constexpr uint32_t kMaxBackEndPayload = 4096;

bool wait_for(int socket, short events, int timeout_ms)
{
	pollfd pfd{socket, events, 0};
	int r;
	do {
		r = ::poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		throw std::system_error(errno, std::generic_category(), "poll");
	return r > 0;
}

std::system_error timeout_error(const char *what)
{
	return std::system_error(ETIMEDOUT, std::generic_category(), what);
}

/*
 * One recvmsg(). Received fds are appended to \a fds (owned at once, so
 * they are closed on every later error path).
 */
ssize_t recv_chunk(int socket, uint8_t *buf, size_t len, std::vector<UniqueFd> &fds,
		   bool &truncated)
{
	alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * wire::kMaxFds)];
	iovec iov{buf, len};
	msghdr mh{};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = control;
	mh.msg_controllen = sizeof(control);

	ssize_t n;
	do {
		n = ::recvmsg(socket, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return n;

	for (cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *data = CMSG_DATA(c);
		for (size_t i = 0; i < count; i++) {
			int fd;
			std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
			fds.emplace_back(fd);
		}
	}
	truncated = (mh.msg_flags & MSG_CTRUNC) != 0;
	return n;
}

} // namespace

void send_bytes(int socket, std::span<const uint8_t> bytes, std::span<const int> fds,
		int timeout_ms)
{
	/* The fds go with the first bytes that leave; a message is never empty. */
	size_t sent = 0;
	bool fds_sent = fds.empty();
	while (sent < bytes.size()) {
		const size_t n = send_some(socket, bytes.subspan(sent),
					   fds_sent ? std::span<const int>{} : fds);
		if (n == 0) {
			if (!wait_for(socket, POLLOUT, timeout_ms))
				throw timeout_error("send");
			continue;
		}
		fds_sent = true;
		sent += n;
	}
}

size_t send_some(int socket, std::span<const uint8_t> bytes, std::span<const int> fds)
{
	if (fds.size() > wire::kMaxFds)
		throw std::system_error(EINVAL, std::generic_category(), "too many fds to send");
	alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * wire::kMaxFds)] = {};
	iovec iov{const_cast<uint8_t *>(bytes.data()), bytes.size()};
	msghdr mh{};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (!fds.empty()) {
		mh.msg_control = control;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
		cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
		std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
	}
	while (true) {
		ssize_t n = ::sendmsg(socket, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0)
			return static_cast<size_t>(n);
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		throw std::system_error(errno, std::generic_category(), "sendmsg");
	}
}

std::vector<uint8_t> message_bytes(const wire::Message &msg)
{
	std::vector<uint8_t> bytes(sizeof(wire::Header) + msg.payload.size());
	std::memcpy(bytes.data(), &msg.header, sizeof(wire::Header));
	if (!msg.payload.empty())
		std::memcpy(bytes.data() + sizeof(wire::Header), msg.payload.data(),
			    msg.payload.size());
	return bytes;
}

void send_message(int socket, const wire::Message &msg, int timeout_ms)
{
	std::vector<uint8_t> bytes = message_bytes(msg);
	std::vector<int> fds;
	for (const auto &fd : msg.fds)
		fds.push_back(fd.get());
	send_bytes(socket, bytes, fds, timeout_ms);
}

MessageReader::Status MessageReader::read_some(int socket)
{
	if (complete_)
		return Status::Complete;

	auto name = [this] { return wire::request_name(msg_.header.request); };

	while (true) {
		bool truncated = false;
		ssize_t n;
		if (header_got_ < sizeof(wire::Header)) {
			auto *hdr = reinterpret_cast<uint8_t *>(&msg_.header);
			n = recv_chunk(socket, hdr + header_got_, sizeof(wire::Header) - header_got_,
				       msg_.fds, truncated);
		} else {
			n = recv_chunk(socket, msg_.payload.data() + payload_got_,
				       msg_.payload.size() - payload_got_, msg_.fds, truncated);
		}

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return Status::NeedMore;
			int err = errno;
			*this = MessageReader(source_);
			throw std::system_error(err, std::generic_category(), "recvmsg");
		}
		if (truncated) {
			std::string what = fmt::format(
				"{}: ancillary data truncated (more than {} fds, or not only fds)",
				header_got_ + n >= 4 ? name() : "message", wire::kMaxFds);
			*this = MessageReader(source_);
			throw wire::ProtocolError(what);
		}
		if (n == 0) {
			if (header_got_ == 0 && msg_.fds.empty())
				return Status::Closed;
			std::string what = header_got_ < sizeof(wire::Header)
				? fmt::format("EOF after {} of 12 header bytes", header_got_)
				: fmt::format("{}: EOF after {} of {} payload bytes", name(),
					      payload_got_, msg_.payload.size());
			*this = MessageReader(source_);
			throw wire::ProtocolError(what);
		}

		if (header_got_ < sizeof(wire::Header)) {
			header_got_ += static_cast<size_t>(n);
			if (header_got_ < sizeof(wire::Header))
				continue;
			try {
				check_header();
			} catch (...) {
				*this = MessageReader(source_);
				throw;
			}
			msg_.payload.resize(msg_.header.size);
		} else {
			payload_got_ += static_cast<size_t>(n);
		}

		if (msg_.fds.size() > wire::kMaxFds) {
			std::string what = fmt::format("{}: {} fds, at most {}", name(),
						       msg_.fds.size(), wire::kMaxFds);
			*this = MessageReader(source_);
			throw wire::ProtocolError(what);
		}
		if (header_got_ == sizeof(wire::Header) && payload_got_ == msg_.payload.size()) {
			complete_ = true;
			return Status::Complete;
		}
	}
}

void MessageReader::check_header() const
{
	if (source_ == Source::FrontEnd) {
		wire::check_header(msg_.header);
		return;
	}
	if ((msg_.header.flags & wire::kFlagVersionMask) != wire::kVersion)
		throw wire::ProtocolError(fmt::format("back-end message {}: bad version in flags 0x{:x}",
						      msg_.header.request, msg_.header.flags));
	if (msg_.header.size > kMaxBackEndPayload)
		throw wire::ProtocolError(fmt::format("back-end message {}: payload size {} over {}",
						      msg_.header.request, msg_.header.size,
						      kMaxBackEndPayload));
}

wire::Message MessageReader::take()
{
	wire::Message out = std::move(msg_);
	*this = MessageReader(source_);
	return out;
}

wire::Message receive_message(int socket, int timeout_ms, MessageReader::Source source)
{
	MessageReader reader(source);
	while (true) {
		switch (reader.read_some(socket)) {
		case MessageReader::Status::Complete:
			return reader.take();
		case MessageReader::Status::Closed:
			throw wire::ProtocolError("connection closed by peer");
		case MessageReader::Status::NeedMore:
			if (!wait_for(socket, POLLIN, timeout_ms))
				throw timeout_error("receive");
			break;
		}
	}
}

} // namespace vhostpp
