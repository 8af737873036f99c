/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * vhost-sound: the daemon. Parses the command line, builds the back-end,
 * the device, the vhost-user server and the control socket on one
 * io_context, and runs it on the main thread until SIGINT or SIGTERM.
 */
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <sys/stat.h>

#include <vhostpp/log.h>
#include <vhostpp/server.h>

#include "cli.h"
#include "control/control_events.h"
#include "control/control_server.h"
#include "audio/backend_registry.h"
#include "audio/null/null_backend.h"
#include "device/sound_device.h"
#include "sound_log.h"
#include "version.h"

using namespace vhost_sound;

namespace {

/* The sockets systemd passed: the vhost-user one and, if given, the control one. */
struct SystemdSockets {
	vhostpp::UniqueFd vhost_user;
	vhostpp::UniqueFd control;
};

/*
 * FileDescriptorName= tells them apart ("vhost-user", "control"); sockets
 * without names are taken in order. Anything else is a unit file mistake.
 */
SystemdSockets systemd_sockets()
{
	auto sockets = vhostpp::take_systemd_sockets();
	SystemdSockets out;
	size_t unnamed = 0;
	for (auto &s : sockets) {
		std::string name = s.name;
		if (name.empty() || name == "unknown")
			name = unnamed++ == 0 ? "vhost-user" : "control";
		vhostpp::UniqueFd &slot = name == "vhost-user" ? out.vhost_user : out.control;
		if (name != "vhost-user" && name != "control")
			throw std::runtime_error("systemd passed a socket named '" + s.name +
						 "' (expected FileDescriptorName=vhost-user or control)");
		if (slot)
			throw std::runtime_error("systemd passed two sockets named '" + name + "'");
		slot = std::move(s.fd);
	}
	if (!out.vhost_user)
		throw std::runtime_error("systemd passed no vhost-user socket "
					 "(FileDescriptorName=vhost-user)");
	return out;
}

} // namespace

int main(int argc, char *argv[])
{
	const CliResult cli = parse_command_line(argc, argv);
	if (!cli.options) {
		if (cli.exit_code == 0)
			std::cout << cli.message;
		else
			std::cerr << cli.message << std::endl;
		return cli.exit_code;
	}
	const CliOptions &options = *cli.options;

	route_library_log(options.log_level);

	/* A client that hangs up must not kill the daemon on our next write. */
	std::signal(SIGPIPE, SIG_IGN);

	boost::asio::io_context io;
	std::unique_ptr<AudioBackend> backend;
	try {
		backend = options.backend_info->create({ io, options.name }, options.backend_options);
	} catch (const BackendConfigError &e) {
		std::cerr << "vhost-sound: --backend " << options.backend << ": " << e.what()
			  << std::endl;
		return kExitUsage;
	}

	SoundDevice::Options device_options;
	device_options.output_enabled = options.output_enabled;
	device_options.input_enabled = options.input_enabled;
	device_options.controls = options.controls;
	/* The disabled input's clock: the host capture device stays closed meanwhile. */
	NullBackend silence(io);
	SoundDevice device(*backend, silence, device_options);

	if (options.create_socket_dir && ::mkdir(options.create_socket_dir->c_str(), 0755) != 0 &&
	    errno != EEXIST) {
		std::cerr << "vhost-sound: cannot create " << *options.create_socket_dir << ": "
			  << std::strerror(errno) << std::endl;
		return 1;
	}

	SystemdSockets inherited;
	if (options.systemd_sockets) {
		try {
			inherited = systemd_sockets();
		} catch (const std::exception &e) {
			std::cerr << "vhost-sound: LISTEN_FDS: " << e.what() << std::endl;
			return kExitUsage;
		}
	}

	/* Before the sockets exist: once they do, the daemon holds every fd it
	 * will hold while idle (asio's signal pipe included), which the guest
	 * tests compare across restarts. */
	boost::asio::signal_set signals(io, SIGINT, SIGTERM);

	/* The server calls device.detach() when a front-end leaves. */
	vhostpp::Server server(io, device);
	try {
		if (inherited.vhost_user) {
			server.listen_fd(std::move(inherited.vhost_user));
		} else if (options.socket_path) {
			server.listen(*options.socket_path);
		} else {
			try {
				server.listen_fd(vhostpp::UniqueFd(*options.socket_fd));
			} catch (const std::exception &e) {
				/* The fd came from the command line: a usage error. */
				std::cerr << "vhost-sound: --socket-fd " << *options.socket_fd << ": "
					  << e.what() << std::endl;
				return kExitUsage;
			}
		}
	} catch (const std::exception &e) {
		std::cerr << "vhost-sound: " << e.what() << std::endl;
		return 1;
	}

	ControlCommands commands(device, kVersion);
	ControlServer control(io, commands);
	control.set_access({ options.control_allow_uids, options.control_allow_gids });
	ControlEvents events(io, device, control);
	if (inherited.control || options.control_socket) {
		try {
			if (inherited.control)
				control.listen_fd(std::move(inherited.control));
			else
				control.listen(*options.control_socket, options.control_socket_mode,
					       options.control_socket_group);
		} catch (const std::exception &e) {
			std::cerr << "vhost-sound: " << e.what() << std::endl;
			server.stop();
			return 1;
		}
	}

	signals.async_wait([&](const boost::system::error_code &ec, int signal) {
		if (ec)
			return;
		logger().info("signal {}: shutting down", signal);
		server.stop();
		control.stop();
		/* Close every host stream now, on the loop: a back-end finishes its
		 * output there (the file back-end completes its WAV headers) rather
		 * than in destructors after the loop has stopped. */
		device.reset();
		io.stop();
	});

	logger().info("vhost-sound {} serving ({} back-end; output {}, input {})", kVersion,
		      backend->name(), options.output_enabled ? "on" : "off",
		      options.input_enabled ? "on" : "off");
	io.run();
	return 0;
}
