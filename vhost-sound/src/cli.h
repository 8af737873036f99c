/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file cli.h
 * \brief The daemon's command line.
 *
 *     vhost-sound --socket PATH | --socket-fd FD
 *                 [--backend NAME [its options]] [--name NAME]
 *                 [--initial-streams LIST] [--control-socket PATH]
 *                 [--log-level LEVEL] [-h] [-V]
 */
#pragma once

#include <boost/program_options/variables_map.hpp>
#include <optional>
#include <spdlog/common.h>
#include <string>

#include "audio/backend_registry.h"

namespace vhost_sound {

/** \brief Exit status for a bad command line. */
constexpr int kExitUsage = 2;

/** \brief What the command line asks the daemon to do. */
struct CliOptions {
	/** \brief --socket: listen on this path (exactly one of path and fd). */
	std::optional<std::string> socket_path;
	/** \brief --socket-fd: serve on this inherited listening socket. */
	std::optional<int> socket_fd;
	/** \brief --backend; "null" unless given. */
	std::string backend = "null";
	/** \brief The registry entry of --backend (never null in a parsed result). */
	const BackendInfo *backend_info = nullptr;
	/** \brief The whole parsed command line, for the back-end's own options. */
	boost::program_options::variables_map backend_options;
	/** \brief --name: the VM's name ("" when not given). */
	std::string name;
	/** \brief --initial-streams (alias --streams); default "output". */
	bool output_enabled = true;
	bool input_enabled = false;
	/** \brief --control-socket. */
	std::optional<std::string> control_socket;
	/** \brief --log-level; info unless given. */
	spdlog::level::level_enum log_level = spdlog::level::info;
};

/** \brief The outcome of parsing: run with options, or exit now. */
struct CliResult {
	/** \brief Set when the daemon should run. */
	std::optional<CliOptions> options;
	/** \brief Otherwise: the exit status (0 for --help/--version, kExitUsage for errors). */
	int exit_code = 0;
	/** \brief Otherwise: what to print — to stdout for exit 0, else one line for stderr. */
	std::string message;
};

/**
 * \brief Parse \a argv (Boost.Program_options). Checks everything that can
 * be checked without acting: option syntax, exactly one of --socket and
 * --socket-fd, an fd that is open, a back-end of the registry (backends()),
 * stream and log-level names.
 */
CliResult parse_command_line(int argc, const char *const argv[]);

/** \brief The names --initial-streams accepts: "output", "input", comma-separated;
 *  "none" or "" for neither. Nothing if a name is unknown. */
std::optional<std::pair<bool, bool>> parse_stream_list(const std::string &list);

} // namespace vhost_sound
