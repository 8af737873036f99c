/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * vhost-sound: the daemon. Parses the command line, builds the back-end,
 * the device, the vhost-user server and the control socket on one
 * io_context, and runs it on the main thread until SIGINT or SIGTERM.
 */
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>

#include <vhostpp/log.h>
#include <vhostpp/server.h>

#include "cli.h"
#include "control/control_server.h"
#include "audio/backend_registry.h"
#include "audio/null/null_backend.h"
#include "device/sound_device.h"
#include "sound_log.h"
#include "version.h"

using namespace vhost_sound;

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

	logger().set_level(options.log_level);
	vhostpp::logger().set_level(options.log_level);

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
	/* The disabled input's clock: the host capture device stays closed meanwhile. */
	NullBackend silence(io);
	SoundDevice device(*backend, silence, device_options);

	vhostpp::Server server(io, device);
	try {
		if (options.socket_path) {
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
	if (options.control_socket) {
		try {
			control.listen(*options.control_socket);
		} catch (const std::exception &e) {
			std::cerr << "vhost-sound: " << e.what() << std::endl;
			server.stop();
			return 1;
		}
	}

	boost::asio::signal_set signals(io, SIGINT, SIGTERM);
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
