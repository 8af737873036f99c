/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "vhostpp/fd.h"

#include <cerrno>
#include <poll.h>
#include <sys/eventfd.h>
#include <system_error>
#include <fcntl.h>
#include <unistd.h>

namespace vhostpp {

void UniqueFd::reset(int fd) noexcept
{
	int old = std::exchange(fd_, fd);
	if (old >= 0)
		::close(old);
}

UniqueFd UniqueFd::duplicate() const
{
	int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		throw std::system_error(errno, std::generic_category(), "dup");
	return UniqueFd(fd);
}

EventFd EventFd::create()
{
	int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		throw std::system_error(errno, std::generic_category(), "eventfd");
	return EventFd(UniqueFd(fd));
}

void EventFd::signal() const noexcept
{
	uint64_t one = 1;
	/* Only fails when the counter would overflow: the peer is awake then anyway. */
	[[maybe_unused]] ssize_t r = ::write(fd_.get(), &one, sizeof(one));
}

uint64_t EventFd::drain() const noexcept
{
	uint64_t value = 0;
	if (::read(fd_.get(), &value, sizeof(value)) != sizeof(value))
		return 0;
	return value;
}

bool EventFd::wait(int timeout_ms) const noexcept
{
	pollfd pfd{fd_.get(), POLLIN, 0};
	int r;
	do {
		r = ::poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r <= 0)
		return false;
	return drain() != 0;
}

} // namespace vhostpp
