/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file backend_registry.h
 * \brief The audio back-ends built into this binary, found by name.
 *
 * Each back-end lives in its own folder (audio/null/, audio/file/, ...) and
 * describes itself with one BackendInfo: its --backend name, the command-line
 * options only it reads, and how to build it. The command line, --help and
 * the daemon's start-up all go through this list, so adding a back-end is one
 * entry in backend_registry.cpp and nothing else.
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "audio/audio_backend.h"

namespace vhost_sound {

/** \brief What every back-end may use when it is built. */
struct BackendContext {
	/** \brief The loop the device runs on; back-ends post their progress to it. */
	boost::asio::io_context &io;
	/** \brief --name: the VM's name, "" when not given (e.g. for host-visible node names). */
	std::string name;
};

/**
 * \brief A back-end's options are wrong in a way only it can tell (an input
 * file that does not exist, a malformed WAV header). The daemon prints
 * what() as one line and exits with kExitUsage.
 */
class BackendConfigError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

/** \brief One back-end of the registry. */
struct BackendInfo {
	/** \brief The --backend name. */
	std::string_view name;
	/** \brief One line for --help. */
	std::string_view summary;
	/**
	 * \brief Add the options only this back-end reads (e.g. --alsa-device)
	 * to \a options; nullptr when it has none.
	 */
	void (*add_options)(boost::program_options::options_description &options);
	/**
	 * \brief Build the back-end from the parsed command line. Throws
	 * BackendConfigError when the options cannot work; a host audio system
	 * that is merely unavailable now is not an error (the back-end logs it
	 * and retries when a stream is prepared).
	 */
	std::unique_ptr<AudioBackend> (*create)(const BackendContext &context,
						const boost::program_options::variables_map &options);
};

/** \brief Every back-end built into this binary, "null" first. */
std::span<const BackendInfo> backends();

/** \brief The back-end called \a name, or nullptr. */
const BackendInfo *find_backend(std::string_view name);

/** \brief "null, file, alsa": the names for messages and --help. */
std::string backend_names();

} // namespace vhost_sound
