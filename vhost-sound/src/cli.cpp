/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "cli.h"

#include <boost/program_options.hpp>
#include <charconv>
#include <cstdlib>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sstream>
#include <unistd.h>

#include "control/runtime_paths.h"
#include "version.h"

namespace vhost_sound {

namespace po = boost::program_options;

namespace {

CliResult usage_error(const std::string &what)
{
	return { std::nullopt, kExitUsage, "vhost-sound: " + what + " (see --help)" };
}

std::optional<int> parse_fd(const std::string &text)
{
	int fd = -1;
	const char *end = text.data() + text.size();
	const auto [ptr, ec] = std::from_chars(text.data(), end, fd);
	if (ec != std::errc() || ptr != end || fd < 0)
		return std::nullopt;
	return fd;
}

/* A number, or a name \a lookup resolves. */
template<typename Id, typename Lookup>
std::optional<Id> parse_id(const std::string &text, Lookup lookup)
{
	unsigned long value = 0;
	const char *end = text.data() + text.size();
	const auto [ptr, ec] = std::from_chars(text.data(), end, value);
	if (!text.empty() && ec == std::errc() && ptr == end && value < UINT32_MAX)
		return static_cast<Id>(value);
	return lookup(text);
}

std::optional<uid_t> user_id(const std::string &text)
{
	return parse_id<uid_t>(text, [](const std::string &name) -> std::optional<uid_t> {
		const passwd *pw = ::getpwnam(name.c_str());
		if (!pw)
			return std::nullopt;
		return pw->pw_uid;
	});
}

std::optional<gid_t> group_id(const std::string &text)
{
	return parse_id<gid_t>(text, [](const std::string &name) -> std::optional<gid_t> {
		const group *gr = ::getgrnam(name.c_str());
		if (!gr)
			return std::nullopt;
		return gr->gr_gid;
	});
}

/* True when systemd passed sockets to this very process. */
bool systemd_passed_sockets()
{
	const char *pid = std::getenv("LISTEN_PID");
	const char *fds = std::getenv("LISTEN_FDS");
	return pid && fds && std::strtol(pid, nullptr, 10) == ::getpid() &&
	       std::strtol(fds, nullptr, 10) > 0;
}

} // namespace

std::optional<std::pair<bool, bool>> parse_stream_list(const std::string &list)
{
	bool output = false;
	bool input = false;
	if (list.empty() || list == "none")
		return std::pair{ output, input };
	std::stringstream ss(list);
	std::string item;
	while (std::getline(ss, item, ',')) {
		if (item == "output")
			output = true;
		else if (item == "input")
			input = true;
		else
			return std::nullopt;
	}
	/* A trailing comma leaves an empty last item that getline does not report. */
	if (list.back() == ',')
		return std::nullopt;
	return std::pair{ output, input };
}

CliResult parse_command_line(int argc, const char *const argv[])
{
	po::options_description desc(
		"Usage: vhost-sound [--socket PATH | --socket-fd FD] [--name NAME] [options]\n\n"
		"A virtio-sound device for QEMU's vhost-user-snd-pci. Without --socket and\n"
		"--socket-fd it serves the sockets systemd passed (LISTEN_FDS), or else\n"
		"those --name names: $RUNTIME/vhost-sound/NAME.sock and NAME.ctl, $RUNTIME\n"
		"being /run for root and $XDG_RUNTIME_DIR otherwise.\n\nOptions");
	// clang-format off
	desc.add_options()
		("socket", po::value<std::string>()->value_name("PATH"),
		 "listen for the vhost-user front-end on the Unix socket PATH")
		("socket-fd", po::value<std::string>()->value_name("FD"),
		 "serve on the already listening Unix socket FD (inherited)")
		("backend", po::value<std::string>()->value_name("NAME")->default_value("null"),
		 ("audio back-end: " + backend_names()).c_str())
		("name", po::value<std::string>()->value_name("NAME"),
		 "the VM's name: the default socket paths, and shown to the host (e.g. in its "
		 "audio system's stream names)")
		("initial-streams", po::value<std::string>()->value_name("LIST"),
		 "directions enabled at start: output, input, output,input or none "
		 "(default: output)")
		("streams", po::value<std::string>()->value_name("LIST"),
		 "alias of --initial-streams")
		("controls", "offer the guest mixer controls (VIRTIO_SND_F_CTLS): volume and "
		 "switch per direction, the host microphone's state; needs QEMU's controls=on")
		("control-socket", po::value<std::string>()->value_name("PATH"),
		 "serve the control protocol (QUERY, SET, TOGGLE, STATUS, WATCH, VOLUME, MUTE, ...) on the Unix "
		 "socket PATH")
		("control-socket-mode", po::value<std::string>()->value_name("MODE"),
		 "the control socket's permissions, octal (default 0600)")
		("control-socket-group", po::value<std::string>()->value_name("GROUP"),
		 "the control socket's group (name or number)")
		("control-allow-uid", po::value<std::vector<std::string>>()->value_name("USER"),
		 "let this user (name or uid) use the control socket too; repeatable")
		("control-allow-gid", po::value<std::vector<std::string>>()->value_name("GROUP"),
		 "let members of this group (name or gid) use the control socket too; repeatable")
		("log-level", po::value<std::string>()->value_name("LEVEL")->default_value("info"),
		 "trace, debug, info, warn, error, critical or off")
		("help,h", "print this help and exit")
		("version,V", "print the version and exit");
	// clang-format on
	for (const BackendInfo &info : backends()) {
		if (!info.add_options)
			continue;
		po::options_description group("Options of the " + std::string(info.name) +
					      " back-end");
		info.add_options(group);
		desc.add(group);
	}

	po::variables_map vm;
	try {
		po::store(po::command_line_parser(argc, argv).options(desc).positional({}).run(), vm);
		po::notify(vm);
	} catch (const po::error &e) {
		return usage_error(e.what());
	}

	if (vm.count("help")) {
		std::ostringstream out;
		out << desc;
		return { std::nullopt, 0, out.str() };
	}
	if (vm.count("version"))
		return { std::nullopt, 0, std::string("vhost-sound ") + kVersion + "\n" };

	CliOptions options;

	if (vm.count("name"))
		options.name = vm["name"].as<std::string>();

	const bool has_path = vm.count("socket");
	const bool has_fd = vm.count("socket-fd");
	if (has_path && has_fd)
		return usage_error("--socket and --socket-fd are mutually exclusive");
	if (!has_path && !has_fd) {
		if (systemd_passed_sockets()) {
			options.systemd_sockets = true;
		} else if (!options.name.empty()) {
			try {
				options.socket_path =
					vm_socket_path(options.name, VmSocket::VhostUser, ::geteuid());
				if (!vm.count("control-socket"))
					options.control_socket =
						vm_socket_path(options.name, VmSocket::Control, ::geteuid());
				options.create_socket_dir = runtime_socket_dir(::geteuid());
			} catch (const std::runtime_error &e) {
				return usage_error(std::string("--name: ") + e.what());
			}
		} else {
			return usage_error("one of --socket PATH, --socket-fd FD or --name NAME is "
					   "required (or sockets passed by systemd)");
		}
	} else if (has_path) {
		options.socket_path = vm["socket"].as<std::string>();
		if (options.socket_path->empty())
			return usage_error("--socket needs a non-empty path");
	} else {
		const std::string text = vm["socket-fd"].as<std::string>();
		options.socket_fd = parse_fd(text);
		if (!options.socket_fd)
			return usage_error("--socket-fd '" + text + "' is not a file descriptor number");
		if (::fcntl(*options.socket_fd, F_GETFD) < 0)
			return usage_error("--socket-fd " + text + " is not an open file descriptor");
	}

	options.backend = vm["backend"].as<std::string>();
	options.backend_info = find_backend(options.backend);
	if (!options.backend_info)
		return usage_error("unknown back-end '" + options.backend + "' (this build has " +
				   backend_names() + ")");
	if (vm.count("initial-streams") && vm.count("streams"))
		return usage_error("--initial-streams and its alias --streams given together");
	const char *streams_option = vm.count("streams") ? "streams" : "initial-streams";
	if (vm.count(streams_option)) {
		const std::string list = vm[streams_option].as<std::string>();
		const auto flags = parse_stream_list(list);
		if (!flags)
			return usage_error("--" + std::string(streams_option) + " '" + list +
					   "': expected a comma-separated list of output, input (or none)");
		options.output_enabled = flags->first;
		options.input_enabled = flags->second;
	}

	options.controls = vm.count("controls") > 0;

	if (vm.count("control-socket")) {
		options.control_socket = vm["control-socket"].as<std::string>();
		if (options.control_socket->empty())
			return usage_error("--control-socket needs a non-empty path");
		if (options.socket_path && *options.socket_path == *options.control_socket)
			return usage_error("--control-socket and --socket name the same path");
	}

	if (vm.count("control-socket-mode")) {
		const std::string text = vm["control-socket-mode"].as<std::string>();
		unsigned mode = 0;
		const char *end = text.data() + text.size();
		const auto [ptr, ec] = std::from_chars(text.data(), end, mode, 8);
		if (text.empty() || ec != std::errc() || ptr != end || mode > 0777)
			return usage_error("--control-socket-mode '" + text +
					   "': expected octal permissions such as 0660");
		options.control_socket_mode = static_cast<mode_t>(mode);
	}
	if (vm.count("control-socket-group")) {
		const std::string text = vm["control-socket-group"].as<std::string>();
		options.control_socket_group = group_id(text);
		if (!options.control_socket_group)
			return usage_error("--control-socket-group '" + text + "': no such group");
	}
	if (vm.count("control-allow-uid")) {
		for (const auto &text : vm["control-allow-uid"].as<std::vector<std::string>>()) {
			const auto uid = user_id(text);
			if (!uid)
				return usage_error("--control-allow-uid '" + text + "': no such user");
			options.control_allow_uids.push_back(*uid);
		}
	}
	if (vm.count("control-allow-gid")) {
		for (const auto &text : vm["control-allow-gid"].as<std::vector<std::string>>()) {
			const auto gid = group_id(text);
			if (!gid)
				return usage_error("--control-allow-gid '" + text + "': no such group");
			options.control_allow_gids.push_back(*gid);
		}
	}

	const std::string level = vm["log-level"].as<std::string>();
	options.log_level = spdlog::level::from_str(level);
	/* from_str() maps unknown names to "off"; only "off" itself may mean off. */
	if (options.log_level == spdlog::level::off && level != "off")
		return usage_error("--log-level '" + level +
				   "': expected trace, debug, info, warn, error, critical or off");

	options.backend_options = vm;
	return { options, 0, {} };
}

} // namespace vhost_sound
