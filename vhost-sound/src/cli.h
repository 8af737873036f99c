/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file cli.h
 * \brief The daemon's command line.
 *
 *     vhost-sound [--socket PATH | --socket-fd FD] [--name NAME]
 *                 [--backend NAME [its options]]
 *                 [--initial-streams LIST] [--control-socket PATH]
 *                 [--control-socket-mode MODE] [--control-socket-group GROUP]
 *                 [--control-allow-uid USER]... [--control-allow-gid GROUP]...
 *                 [--log-level LEVEL] [-h] [-V]
 *
 * Without --socket and --socket-fd the daemon serves the sockets systemd
 * passed (LISTEN_FDS), or else, with --name, listens on the VM's default
 * paths (runtime_paths.h).
 */
#pragma once

#include <boost/program_options/variables_map.hpp>
#include <optional>
#include <spdlog/common.h>
#include <string>
#include <sys/types.h>
#include <vector>

#include "audio/backend_registry.h"

namespace vhost_sound {

/** \brief Exit status for a bad command line. */
constexpr int kExitUsage = 2;

/** \brief What the command line asks the daemon to do. */
struct CliOptions {
	/** \brief --socket (or --name's default): listen on this path. */
	std::optional<std::string> socket_path;
	/** \brief --socket-fd: serve on this inherited listening socket. */
	std::optional<int> socket_fd;
	/** \brief Serve the sockets systemd passed (LISTEN_PID is this process, no --socket/--socket-fd). */
	bool systemd_sockets = false;
	/** \brief The paths are --name's defaults: create their directory if missing. */
	std::optional<std::string> create_socket_dir;
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
	/** \brief --controls: offer VIRTIO_SND_F_CTLS (the guest's mixer controls). */
	bool controls = false;
	/** \brief --control-socket (or --name's default, unless systemd passed the sockets). */
	std::optional<std::string> control_socket;
	/** \brief --control-socket-mode (octal); 0600 unless given. */
	mode_t control_socket_mode = 0600;
	/** \brief --control-socket-group, resolved to a gid. */
	std::optional<gid_t> control_socket_group;
	/** \brief --control-allow-uid / --control-allow-gid, resolved. */
	std::vector<uid_t> control_allow_uids;
	std::vector<gid_t> control_allow_gids;
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
 * be checked without acting: option syntax, at most one of --socket and
 * --socket-fd and where the sockets come from otherwise, an fd that is
 * open, a back-end of the registry (backends()), stream and log-level
 * names, user and group names, the socket mode.
 */
CliResult parse_command_line(int argc, const char *const argv[]);

/** \brief The names --initial-streams accepts: "output", "input", comma-separated;
 *  "none" or "" for neither. Nothing if a name is unknown. */
std::optional<std::pair<bool, bool>> parse_stream_list(const std::string &list);

} // namespace vhost_sound
