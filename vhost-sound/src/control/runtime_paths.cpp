/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "control/runtime_paths.h"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#include <stdexcept>
#include <sys/un.h>

#include "version.h"

namespace vhost_sound {

std::string runtime_socket_dir(uid_t uid)
{
	if (uid == 0)
		return fmt::format("/run/{}", kRuntimeSubdir);
	const char *xdg = std::getenv("XDG_RUNTIME_DIR");
	if (!xdg || xdg[0] != '/')
		throw std::runtime_error("XDG_RUNTIME_DIR is not set (or not an absolute path): "
					 "no default socket directory for a non-root user");
	return fmt::format("{}/{}", xdg, kRuntimeSubdir);
}

std::string vm_socket_path(std::string_view name, VmSocket socket, uid_t uid)
{
	const bool bad_char = name.find_first_of("/\n") != std::string_view::npos ||
			      std::any_of(name.begin(), name.end(),
					  [](char c) { return static_cast<unsigned char>(c) < 0x20; });
	if (name.empty() || name == "." || name == ".." || bad_char)
		throw std::runtime_error(fmt::format(
			"VM name '{}' cannot name a socket (empty, '.', '..', a '/' or a control character)",
			name));
	const std::string path = fmt::format("{}/{}{}", runtime_socket_dir(uid), name,
					     socket == VmSocket::VhostUser ? ".sock" : ".ctl");
	if (path.size() >= sizeof(sockaddr_un::sun_path))
		throw std::runtime_error(fmt::format("socket path '{}' is longer than a Unix socket "
						     "address allows ({} bytes)",
						     path, sizeof(sockaddr_un::sun_path) - 1));
	return path;
}

} // namespace vhost_sound
