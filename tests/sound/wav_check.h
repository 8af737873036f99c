/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file wav_check.h
 * \brief Independent readers of WAV files for the tests: Python's wave
 * module and sox, run as child processes, plus file helpers.
 */
#pragma once

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <vector>

#include "ci_require.h"

namespace sound_test {

/** \brief Run \a command with /bin/sh; its stdout, and its exit status in \a status. */
inline std::string run_command(const std::string &command, int &status)
{
	FILE *pipe = ::popen((command + " 2>/dev/null").c_str(), "r");
	if (!pipe)
		throw std::runtime_error("popen failed: " + command);
	std::string out;
	std::array<char, 4096> buf;
	size_t n;
	while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0)
		out.append(buf.data(), n);
	const int rc = ::pclose(pipe);
	status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
	return out;
}

/** \brief True when \a tool is on PATH. A test that needs it fails without it
 *  under CI=true (tools/setup.sh --tests installs it) and is skipped elsewhere. */
inline bool have_tool(const std::string &tool)
{
	int status = 0;
	run_command("command -v " + tool, status);
	return status == 0;
}

/** \brief True when the independent WAV readers (python3, sox, soxi) are
 *  there; otherwise FAIL under CI=true, else WARN (the test is skipped). */
inline bool wav_readers_or_fail()
{
	for (const char *tool : { "python3", "sox", "soxi" }) {
		if (!program_or_fail(tool))
			return false;
	}
	return true;
}

inline std::vector<uint8_t> read_file(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	if (!in)
		throw std::runtime_error("cannot read " + path);
	return { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
}

inline void write_file(const std::string &path, const std::vector<uint8_t> &bytes)
{
	std::ofstream out(path, std::ios::binary | std::ios::trunc);
	out.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
	if (!out)
		throw std::runtime_error("cannot write " + path);
}

/** \brief What Python's wave module reads from a (WAVE_FORMAT_PCM) file. */
struct PythonWave {
	unsigned channels = 0;
	unsigned sample_bytes = 0;
	unsigned rate = 0;
	uint64_t frames = 0;
	/** \brief readframes(all), as hex. */
	std::string data_hex;
};

/** \brief Open \a path with Python's wave module; nothing if it refuses the file. */
inline std::optional<PythonWave> python_wave(const std::string &path)
{
	int status = 0;
	const std::string out = run_command(
		"python3 -c 'import sys, wave\n"
		"w = wave.open(sys.argv[1], \"rb\")\n"
		"print(w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes(), "
		"w.readframes(w.getnframes()).hex() or \"-\")' '" + path + "'",
		status);
	if (status != 0)
		return std::nullopt;
	std::istringstream in(out);
	PythonWave w;
	in >> w.channels >> w.sample_bytes >> w.rate >> w.frames >> w.data_hex;
	if (!in)
		return std::nullopt;
	if (w.data_hex == "-")
		w.data_hex.clear();
	return w;
}

/** \brief What `soxi` says of \a path ("Channels" -> "2", ...); empty if it refuses it. */
inline std::map<std::string, std::string> soxi(const std::string &path)
{
	int status = 0;
	const std::string out = run_command("soxi '" + path + "'", status);
	std::map<std::string, std::string> fields;
	if (status != 0)
		return fields;
	std::istringstream in(out);
	std::string line;
	while (std::getline(in, line)) {
		const auto colon = line.find(':');
		if (colon == std::string::npos)
			continue;
		auto trim = [](std::string s) {
			s.erase(0, s.find_first_not_of(" \t'"));
			s.erase(s.find_last_not_of(" \t'") + 1);
			return s;
		};
		fields[trim(line.substr(0, colon))] = trim(line.substr(colon + 1));
	}
	return fields;
}

/** \brief The frames sox counts in \a path ("Duration : ... = N samples"), nothing if none. */
inline std::optional<uint64_t> soxi_frames(const std::string &path)
{
	int status = 0;
	const std::string out = run_command("soxi -s '" + path + "'", status);
	if (status != 0 || out.empty())
		return std::nullopt;
	return std::stoull(out);
}

/**
 * \brief The samples of \a path as sox decodes them, converted by sox to
 * \a encoding ("signed-integer" or "floating-point") of \a bits bits, raw
 * little-endian. Nothing if sox refuses the file.
 */
inline std::optional<std::vector<uint8_t>> sox_raw(const std::string &path, const std::string &encoding,
						   unsigned bits)
{
	const std::string raw = path + ".raw";
	int status = 0;
	run_command("sox -D -V1 '" + path + "' -t raw -e " + encoding + " -b " + std::to_string(bits) +
			    " -L '" + raw + "'",
		    status);
	if (status != 0)
		return std::nullopt;
	auto bytes = read_file(raw);
	std::remove(raw.c_str());
	return bytes;
}

/** \brief What libsndfile reads from a file (tests/sound/sndfile_read.py). */
struct SndfileRead {
	uint64_t frames = 0;
	unsigned rate = 0;
	unsigned channels = 0;
	/** \brief SF_FORMAT_WAV (0x10000) or SF_FORMAT_WAVEX (0x130000). */
	unsigned major = 0;
	/** \brief SF_FORMAT_PCM_U8 (5), PCM_16 (2), PCM_24 (3), PCM_32 (4), FLOAT (6), DOUBLE (7). */
	unsigned subtype = 0;
	/** \brief Integer files: sf_readf_int(), every sample scaled to 32 bits. */
	std::vector<int64_t> ints;
	/** \brief Float files: sf_readf_double(). */
	std::vector<double> doubles;
};

/** \brief Read \a path with libsndfile; nothing if it refuses the file. */
inline std::optional<SndfileRead> sndfile_read(const std::string &path)
{
	const char *script = std::getenv("SNDFILE_READ");
	if (!script)
		throw std::runtime_error("SNDFILE_READ is not set (run through meson test)");
	int status = 0;
	const std::string out = run_command(std::string("python3 '") + script + "' '" + path + "'", status);
	if (status != 0)
		return std::nullopt;
	std::istringstream in(out);
	SndfileRead r;
	std::string major, subtype, kind;
	in >> r.frames >> r.rate >> r.channels >> major >> subtype >> kind;
	if (!in)
		return std::nullopt;
	r.major = static_cast<unsigned>(std::stoul(major, nullptr, 16));
	r.subtype = static_cast<unsigned>(std::stoul(subtype, nullptr, 16));
	if (kind == "double") {
		double d;
		while (in >> d)
			r.doubles.push_back(d);
	} else {
		int64_t v;
		while (in >> v)
			r.ints.push_back(v);
	}
	return r;
}

/** \brief Lower-case hex of \a bytes (as Python's bytes.hex()). */
inline std::string to_hex(const uint8_t *bytes, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	std::string s;
	s.reserve(2 * n);
	for (size_t i = 0; i < n; i++) {
		s += digits[bytes[i] >> 4];
		s += digits[bytes[i] & 15];
	}
	return s;
}

} // namespace sound_test
