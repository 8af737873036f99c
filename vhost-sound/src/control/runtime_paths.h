/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file runtime_paths.h
 * \brief Where a VM's sockets are when only its name is given: the one
 * convention shared by the daemon (--name), vhostctl (--vm) and the
 * systemd units.
 *
 *     $RUNTIME/vhost-sound/NAME.sock   the vhost-user socket
 *     $RUNTIME/vhost-sound/NAME.ctl    the control socket
 *
 * $RUNTIME is /run for root and $XDG_RUNTIME_DIR for everyone else.
 */
#pragma once

#include <string>
#include <string_view>
#include <sys/types.h>

namespace vhost_sound {

/** \brief Which of a VM's two sockets. */
enum class VmSocket {
	VhostUser,
	Control,
};

/**
 * \brief $RUNTIME/vhost-sound for a process with effective uid \a uid.
 * \throws std::runtime_error when \a uid is not root and XDG_RUNTIME_DIR
 * is unset or not absolute
 */
std::string runtime_socket_dir(uid_t uid);

/**
 * \brief The path of VM \a name's \a socket for \a uid.
 * \throws std::runtime_error when \a name is empty, ".", "..", contains a
 * '/' or a control character, or the path does not fit a Unix socket
 * address; or as runtime_socket_dir()
 */
std::string vm_socket_path(std::string_view name, VmSocket socket, uid_t uid);

} // namespace vhost_sound
