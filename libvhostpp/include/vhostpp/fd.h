/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file fd.h
 * \brief Owning file descriptors and eventfds.
 *
 * Every file descriptor the library receives or creates is held in a
 * UniqueFd from the moment it exists, so that every error path closes it.
 */
#pragma once

#include <cstdint>
#include <utility>

namespace vhostpp {

/**
 * \brief Sole owner of a file descriptor; closes it on destruction.
 */
class UniqueFd
{
public:
	UniqueFd() noexcept = default;
	/** \brief Take ownership of \a fd (which may be -1). */
	explicit UniqueFd(int fd) noexcept : fd_(fd) {}
	UniqueFd(UniqueFd &&other) noexcept : fd_(other.release()) {}
	UniqueFd &operator=(UniqueFd &&other) noexcept
	{
		reset(other.release());
		return *this;
	}
	UniqueFd(const UniqueFd &) = delete;
	UniqueFd &operator=(const UniqueFd &) = delete;
	~UniqueFd() { reset(); }

	/** \brief The descriptor, still owned; -1 when empty. */
	int get() const noexcept { return fd_; }
	bool valid() const noexcept { return fd_ >= 0; }
	explicit operator bool() const noexcept { return valid(); }

	/** \brief Give up ownership without closing. */
	int release() noexcept { return std::exchange(fd_, -1); }
	/** \brief Close the current descriptor (if any) and own \a fd. */
	void reset(int fd = -1) noexcept;

	/** \brief A new descriptor for the same file (F_DUPFD_CLOEXEC); throws on failure. */
	UniqueFd duplicate() const;

private:
	int fd_ = -1;
};

/**
 * \brief An eventfd(2) counter, used for virtqueue kicks and calls.
 */
class EventFd
{
public:
	/** \brief Create a non-blocking, close-on-exec eventfd; throws on failure. */
	static EventFd create();

	EventFd() = default;
	explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}

	int fd() const noexcept { return fd_.get(); }
	bool valid() const noexcept { return fd_.valid(); }
	const UniqueFd &unique_fd() const noexcept { return fd_; }

	/** \brief Add 1 to the counter (wake the other side). */
	void signal() const noexcept;
	/** \brief Read and reset the counter; 0 when nothing was signalled. */
	uint64_t drain() const noexcept;
	/** \brief Wait up to \a timeout_ms for a signal and drain it; true when one came. */
	bool wait(int timeout_ms) const noexcept;

private:
	UniqueFd fd_;
};

} // namespace vhostpp
