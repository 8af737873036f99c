/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file log.h
 * \brief The library's logger.
 *
 * All library messages go to one spdlog logger named "vhostpp". An
 * application sets its level and sinks (or replaces it with
 * set_logger()); tests attach a sink to read what was logged.
 */
#pragma once

#include <memory>
#include <spdlog/spdlog.h>

namespace vhostpp {

/** \brief The library's logger (created on first use, logging to stderr). */
spdlog::logger &logger();

/** \brief Replace the library's logger, e.g. to share an application's sinks. */
void set_logger(std::shared_ptr<spdlog::logger> logger);

} // namespace vhostpp
