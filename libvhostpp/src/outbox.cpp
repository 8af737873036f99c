/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "outbox.h"

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <system_error>

#include "vhostpp/internal/connection.h"

namespace vhostpp {

Outbox::Outbox(boost::asio::io_context &io, int socket, size_t max_bytes, unsigned timeout_ms,
	       std::function<void(const std::string &)> on_error)
	: io_(io), socket_(socket), writable_(io), deadline_(io), max_bytes_(max_bytes),
	  timeout_ms_(timeout_ms), on_error_(std::move(on_error))
{
	UniqueFd dup(::fcntl(socket, F_DUPFD_CLOEXEC, 0));
	if (!dup)
		throw std::system_error(errno, std::generic_category(), "dup of the socket");
	writable_.assign(dup.release());
}

Outbox::~Outbox()
{
	alive_.reset();
}

void Outbox::send(const wire::Message &msg)
{
	if (failed_)
		return;
	Item item;
	item.bytes = message_bytes(msg);
	for (const auto &fd : msg.fds) {
		UniqueFd copy(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
		if (!copy) {
			fail(fmt::format("cannot keep an fd to send: {}", std::strerror(errno)));
			return;
		}
		item.fds.push_back(std::move(copy));
	}
	unsent_ += item.bytes.size();
	queue_.push_back(std::move(item));
	flush();
}

void Outbox::flush()
{
	try {
		while (!queue_.empty()) {
			Item &item = queue_.front();
			std::vector<int> fds;
			if (item.sent == 0)
				for (const auto &fd : item.fds)
					fds.push_back(fd.get());
			std::span<const uint8_t> rest(item.bytes.data() + item.sent,
						      item.bytes.size() - item.sent);
			size_t n = send_some(socket_, rest, fds);
			if (n == 0)
				break;
			item.sent += n;
			unsent_ -= n;
			if (item.sent == item.bytes.size())
				queue_.pop_front();
		}
	} catch (const std::system_error &e) {
		fail(e.what());
		return;
	}
	if (queue_.empty()) {
		deadline_.cancel();
		return;
	}
	if (unsent_ > max_bytes_) {
		fail(fmt::format("the front-end left {} bytes of replies unread (at most {})", unsent_,
				 max_bytes_));
		return;
	}
	wait_writable();
}

void Outbox::wait_writable()
{
	if (waiting_)
		return;
	waiting_ = true;
	std::weak_ptr<int> alive = alive_;
	/* The clock runs from the first byte the socket refused until all is out. */
	deadline_.expires_after(std::chrono::milliseconds(timeout_ms_));
	deadline_.async_wait([this, alive](const boost::system::error_code &ec) {
		if (alive.expired() || ec || queue_.empty())
			return;
		fail(fmt::format("the front-end did not read its replies for {} ms ({} bytes "
				 "waiting)",
				 timeout_ms_, unsent_));
	});
	writable_.async_wait(boost::asio::posix::stream_descriptor::wait_write,
			     [this, alive](const boost::system::error_code &ec) {
				     if (alive.expired())
					     return;
				     waiting_ = false;
				     if (ec == boost::asio::error::operation_aborted || failed_)
					     return;
				     if (ec) {
					     fail(ec.message());
					     return;
				     }
				     deadline_.cancel();
				     flush();
			     });
}

void Outbox::fail(const std::string &why)
{
	if (failed_)
		return;
	failed_ = true;
	queue_.clear();
	unsent_ = 0;
	boost::system::error_code ignored;
	deadline_.cancel();
	writable_.cancel(ignored);
	std::weak_ptr<int> alive = alive_;
	auto cb = on_error_;
	boost::asio::post(io_, [alive, cb, why] {
		if (!alive.expired())
			cb(why);
	});
}

} // namespace vhostpp
