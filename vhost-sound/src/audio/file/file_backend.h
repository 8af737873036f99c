/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file file_backend.h
 * \brief The file back-end: the guest plays into WAV files and captures
 * from one, in real time on the null back-end's clock.
 */
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "audio/file/wav.h"
#include "audio/null/null_backend.h"

namespace vhost_sound {

/** \brief The file back-end's command line. */
struct FileBackendOptions {
	/** \brief --output-file: where playback goes; nothing: output is dropped (null sink). */
	std::optional<std::string> output_path;
	/** \brief --input-file: what capture reads; nothing: capture is silence (null source). */
	std::optional<std::string> input_path;
	/** \brief --input-loop: start the input file over at its end instead of going silent. */
	bool input_loop = false;
	/** \brief Data bytes one output file may hold before the next numbered file starts;
	 *  0: as much as a WAV header can describe (about 4 GiB). Tests make it small. */
	uint64_t max_output_bytes = 0;
};

class OutputFile;

/**
 * \brief Plays into WAV files and captures from one, paced by the null
 * back-end's clock (one ClockEndpoint per stream).
 *
 * Output: the first output stream creates (replaces) output_path; later
 * streams of the same format (format, rate, channels) append to it; a
 * stream of another format finishes it and starts the next numbered file
 * (out.wav, out-2.wav, out-3.wav, ...; an earlier format is not returned
 * to), as does a file that reached its size limit. Samples are buffered and
 * written on the loop thread: appending to a regular file only copies into
 * the page cache (the start-up check refuses anything else), so the loop
 * does not block on it. The header is rewritten when a stream stops or is
 * released and when the back-end is destroyed, so a file is valid after
 * every RELEASE and after the daemon stops.
 *
 * Input: the file's header is read and checked once when the back-end is
 * built (BackendConfigError when it is unusable); PCM_INFO then offers
 * exactly its format, rate and channels. The file is open only while an
 * input host stream exists (from PREPARE until RELEASE, and never while
 * input is disabled, since the device opens no host stream then); every
 * host stream reads from the first sample. After the last sample: silence,
 * or with input_loop the file again.
 */
class FileBackend : public NullBackend
{
public:
	/** \brief Checks the options and reads the input header; throws BackendConfigError. */
	FileBackend(boost::asio::io_context &io, FileBackendOptions options);
	~FileBackend() override;

	std::string_view name() const override { return "file"; }
	/**
	 * \brief output_file and input_file (the paths given, each only when
	 * set; input_loop with --input-loop), current_output_file: the file
	 * playback goes to now (out-2.wav ... after a format change or a full
	 * file), once a stream has started one.
	 */
	std::vector<std::pair<std::string, std::string>> details() const override;
	/**
	 * \brief Output (with an output file): every format wav_formats() holds,
	 * every rate, 1 to 8 channels. Input (with an input file): the file's
	 * format, rate and channels only. A direction without a file: the null
	 * back-end's.
	 */
	PcmCapabilities capabilities(Direction direction) const override;
	std::unique_ptr<BackendStream> open(const PcmParams &params, ByteRing &ring,
					    BackendStreamListener &listener) override;

	/**
	 * \brief The output file for \a format: the current one while it has
	 * that format and room, else the next numbered one (the current one is
	 * finished first). Nothing (and a log line) when it cannot be created.
	 */
	std::shared_ptr<OutputFile> output_for(const wav::WavFormat &format);

	/** \brief The header of the input file as read at start-up (nothing without one). */
	const std::optional<wav::WavInfo> &input_info() const { return input_info_; }

private:
	FileBackendOptions options_;
	std::optional<wav::WavInfo> input_info_;
	/* The rate code of the input file. */
	uint8_t input_rate_ = 0;
	/* The file new output goes to; older ones live on while a stream holds them. */
	std::shared_ptr<OutputFile> current_output_;
	/* Files started so far: the next one is numbered files_started_ + 1. */
	unsigned files_started_ = 0;
};

/** \brief The registry entry of the file back-end (--output-file, --input-file, --input-loop). */
BackendInfo file_backend_info();

} // namespace vhost_sound
