/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "vhostpp/log.h"

#include <mutex>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace vhostpp {

namespace {
std::mutex logger_mutex;
std::shared_ptr<spdlog::logger> current_logger;
} // namespace

spdlog::logger &logger()
{
	std::lock_guard lock(logger_mutex);
	if (!current_logger) {
		current_logger = spdlog::stderr_color_mt("vhostpp");
		current_logger->set_pattern("[%H:%M:%S.%e] [%n] [%l] %v");
	}
	return *current_logger;
}

void set_logger(std::shared_ptr<spdlog::logger> logger)
{
	std::lock_guard lock(logger_mutex);
	current_logger = std::move(logger);
}

} // namespace vhostpp
