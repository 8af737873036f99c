/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file fuzz_input.h
 * \brief What every fuzz harness needs: taking typed values off the input,
 * and checking that the code under test closed every fd it was given.
 */
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <span>
#include <string_view>
#include <vector>

#include <vhostpp/log.h>

namespace fuzz {

/**
 * \brief The fuzzer's bytes, consumed front to back. Past the end every
 * value is 0 and every span empty, so a harness never reads out of bounds
 * and a short input is simply a short scenario.
 */
class Input
{
public:
	Input(const uint8_t *data, size_t size) : data_(data), size_(size) {}

	size_t remaining() const { return size_ - pos_; }
	bool empty() const { return pos_ >= size_; }

	template<typename T>
	T take()
	{
		T value{};
		const size_t n = std::min(sizeof(T), remaining());
		std::memcpy(&value, data_ + pos_, n);
		pos_ += n;
		return value;
	}

	/** \brief Up to \a n bytes (fewer at the end). */
	std::span<const uint8_t> bytes(size_t n)
	{
		n = std::min(n, remaining());
		std::span<const uint8_t> out(data_ + pos_, n);
		pos_ += n;
		return out;
	}

	/** \brief Everything left. */
	std::span<const uint8_t> rest() { return bytes(remaining()); }

private:
	const uint8_t *data_;
	size_t size_;
	size_t pos_ = 0;
};

/**
 * \brief Fail the run if any of \a fds is still open: each was handed to
 * the code under test, which must close it on every path.
 */
inline void expect_closed(const std::vector<int> &fds, const char *where)
{
	for (int fd : fds) {
		if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) {
			std::fprintf(stderr, "fuzz: fd %d still open after %s\n", fd, where);
			std::abort();
		}
	}
}

/**
 * \brief Route the library's log at every level into nothing (each message
 * is still formatted, so a bad format argument is a finding too), or to
 * stderr when FUZZ_LOG is set, to see what the code under test decided.
 */
inline void route_library_log()
{
	vhostpp::set_log_level(vhostpp::LogLevel::Trace);
	vhostpp::set_log_rate_limit(0);
	if (std::getenv("FUZZ_LOG"))
		vhostpp::set_log_sink([](vhostpp::LogLevel level, std::string_view text) {
			std::fprintf(stderr, "[vhostpp] [%s] %.*s\n", vhostpp::log_level_name(level),
				     int(text.size()), text.data());
		});
	else
		vhostpp::set_log_sink([](vhostpp::LogLevel, std::string_view) {});
}

} // namespace fuzz
