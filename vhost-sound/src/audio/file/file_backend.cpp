/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "audio/file/file_backend.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <vhostpp/fd.h>

#include "sound_log.h"

namespace vhost_sound {

namespace vs = virtio_snd;
namespace po = boost::program_options;
using vhostpp::UniqueFd;

namespace {

/* Output is written in blocks of about this size: a few writes a second at
 * common rates, each a copy into the page cache. */
constexpr size_t kWriteBlock = 64 * 1024;
/* Input is read in blocks of about this size. */
constexpr size_t kReadBlock = 64 * 1024;
/* The output channel counts offered, as the null back-end. */
constexpr uint8_t kMaxChannels = 8;

bool write_all(int fd, const uint8_t *data, size_t len, uint64_t offset)
{
	while (len) {
		const ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(offset));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		data += n;
		len -= static_cast<size_t>(n);
		offset += static_cast<uint64_t>(n);
	}
	return true;
}

size_t read_at(int fd, uint64_t offset, std::span<uint8_t> out)
{
	size_t done = 0;
	while (done < out.size()) {
		const ssize_t n = ::pread(fd, out.data() + done, out.size() - done,
					  static_cast<off_t>(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += static_cast<size_t>(n);
	}
	return done;
}

std::optional<uint8_t> rate_code(uint32_t hz)
{
	for (uint8_t code = 0; code < vs::kNumRates; code++) {
		if (vs::rate_hz(code) == hz)
			return code;
	}
	return std::nullopt;
}

/* out.wav, out-2.wav, out-3.wav ... (the number before the extension). */
std::string numbered_path(const std::string &path, unsigned number)
{
	if (number <= 1)
		return path;
	const std::filesystem::path p(path);
	std::filesystem::path name = p.stem();
	name += fmt::format("-{}", number);
	name += p.extension();
	return (p.parent_path() / name).string();
}

wav::ReadAt fd_reader(int fd)
{
	return [fd](uint64_t offset, std::span<uint8_t> out) { return read_at(fd, offset, out); };
}

/* The input file opened and checked: what start-up and every input stream do. */
struct OpenedInput {
	UniqueFd fd;
	wav::WavInfo info;
};

/* Throws BackendConfigError naming what is wrong (the caller adds the path). */
OpenedInput open_input(const std::string &path)
{
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
	if (!fd)
		throw BackendConfigError(fmt::format("cannot open: {}", std::strerror(errno)));
	struct stat st{};
	if (::fstat(fd.get(), &st) != 0)
		throw BackendConfigError(fmt::format("cannot stat: {}", std::strerror(errno)));
	/* A FIFO or device could block the loop and cannot be re-read from the start. */
	if (!S_ISREG(st.st_mode))
		throw BackendConfigError("not a regular file");
	const wav::WavParse parse = wav::parse_wav_header(fd_reader(fd.get()),
							  static_cast<uint64_t>(st.st_size));
	if (!parse.info)
		throw BackendConfigError("not a usable WAV file: " + parse.error);
	return { std::move(fd), *parse.info };
}

} // namespace

/**
 * One output WAV file: samples buffered in memory, written at the end of
 * the data chunk, the header rewritten by finish(). Lives as long as the
 * back-end or a stream holds it; the destructor finishes it.
 */
class OutputFile
{
public:
	static std::shared_ptr<OutputFile> create(std::string path, const wav::WavFormat &format,
						  uint64_t max_bytes)
	{
		UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666));
		if (!fd) {
			logger().error("file back-end: cannot create {}: {}", path, std::strerror(errno));
			return nullptr;
		}
		auto file = std::shared_ptr<OutputFile>(new OutputFile(std::move(path), std::move(fd), format,
								       max_bytes));
		if (!file->write_header())
			return nullptr;
		return file;
	}

	~OutputFile() { finish(); }

	OutputFile(const OutputFile &) = delete;
	OutputFile &operator=(const OutputFile &) = delete;

	const std::string &path() const { return path_; }
	const wav::WavFormat &format() const { return format_; }
	/** The data chunk cannot take another byte. */
	bool full() const { return appended_ >= max_bytes_; }

	/** Take as much of \a bytes as the file has room for; returns how much. */
	size_t append(std::span<const uint8_t> bytes)
	{
		const size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), max_bytes_ - appended_));
		pending_.insert(pending_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(take));
		appended_ += take;
		if (pending_.size() >= kWriteBlock)
			write_pending();
		return take;
	}

	/** Write what is buffered and a header that describes it. */
	void finish()
	{
		write_pending();
		if (header_bytes_ == written_)
			return;
		/* An odd data chunk is followed by a pad byte; the next samples
		 * overwrite it, the header counts it. */
		if (written_ & 1) {
			const uint8_t pad = 0;
			if (!write_all(fd_.get(), &pad, 1, header_size_ + written_))
				report_error("pad byte");
		}
		if (write_header())
			header_bytes_ = written_;
	}

private:
	OutputFile(std::string path, UniqueFd fd, const wav::WavFormat &format, uint64_t max_bytes)
		: path_(std::move(path)), fd_(std::move(fd)), format_(format),
		  header_size_(wav::wav_header_bytes(format)),
		  max_bytes_(limit(format, max_bytes))
	{
		pending_.reserve(2 * kWriteBlock);
	}

	/* Whole frames, at least one (a file must make progress), at most what a header describes. */
	static uint64_t limit(const wav::WavFormat &format, uint64_t max_bytes)
	{
		const uint64_t most = wav::max_data_bytes(format);
		if (!max_bytes)
			return most;
		const uint64_t frame = format.frame_bytes();
		return std::clamp<uint64_t>(max_bytes / frame * frame, frame, most);
	}

	bool write_header()
	{
		const auto header = wav::make_wav_header(format_, written_);
		if (write_all(fd_.get(), header.data(), header.size(), 0))
			return true;
		report_error("header");
		return false;
	}

	void write_pending()
	{
		/* Whole samples only: the padded formats are converted per sample.
		 * The clock hands over whole frames, so nothing normally stays. */
		const uint32_t sample = vs::format_info(format_.format)->sample_bytes;
		const size_t n = pending_.size() / sample * sample;
		if (!n)
			return;
		wav::to_wav_samples(format_.format, std::span(pending_).first(n));
		if (write_all(fd_.get(), pending_.data(), n, header_size_ + written_))
			written_ += n;
		else
			report_error("samples");
		pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(n));
	}

	void report_error(const char *what)
	{
		if (log_limit_.allow())
			logger().error("file back-end: writing the {} of {} failed: {}", what, path_,
				       std::strerror(errno));
	}

	const std::string path_;
	const UniqueFd fd_;
	const wav::WavFormat format_;
	const uint32_t header_size_;
	const uint64_t max_bytes_;
	std::vector<uint8_t> pending_;
	/* Bytes taken by append(), written to the file, and described by its header. */
	uint64_t appended_ = 0;
	uint64_t written_ = 0;
	uint64_t header_bytes_ = 0;
	LogLimiter log_limit_;
};

namespace {

/* An output stream's sink: its file, and the next one when it fills up. */
class OutputEndpoint : public ClockEndpoint
{
public:
	OutputEndpoint(FileBackend &backend, std::shared_ptr<OutputFile> file)
		: backend_(backend), file_(std::move(file)), format_(file_->format())
	{
	}

	~OutputEndpoint() override
	{
		if (file_)
			file_->finish();
	}

	void render(std::span<const uint8_t> bytes) override
	{
		while (!bytes.empty() && file_) {
			bytes = bytes.subspan(file_->append(bytes));
			if (!bytes.empty())
				file_ = backend_.output_for(format_);
		}
	}

	void capture(std::span<uint8_t>, uint64_t) override {}
	uint32_t delay_bytes() const override { return 0; }

	void stopped() override
	{
		if (file_)
			file_->finish();
	}

	std::string describe() const override
	{
		return file_ ? "file " + file_->path() : "file (none: could not be created)";
	}

private:
	FileBackend &backend_;
	std::shared_ptr<OutputFile> file_;
	const wav::WavFormat format_;
};

/* An input stream's source: the input file, open for the stream's life. */
class InputEndpoint : public ClockEndpoint
{
public:
	InputEndpoint(std::string path, OpenedInput input, bool loop)
		: path_(std::move(path)), fd_(std::move(input.fd)), info_(input.info), loop_(loop),
		  buffer_(std::max<size_t>(kReadBlock / info_.format.frame_bytes(), 1) *
			  info_.format.frame_bytes())
	{
	}

	void render(std::span<const uint8_t>) override {}

	void capture(std::span<uint8_t> out, uint64_t stream_offset) override
	{
		while (!out.empty()) {
			if (next_ == filled_ && !refill()) {
				vs::fill_silence(info_.format.format, out.data(), out.size(), stream_offset);
				return;
			}
			const size_t n = std::min(out.size(), filled_ - next_);
			std::memcpy(out.data(), buffer_.data() + next_, n);
			next_ += n;
			out = out.subspan(n);
			stream_offset += n;
		}
	}

	uint32_t delay_bytes() const override { return 0; }

	std::string describe() const override
	{
		return fmt::format("file {}{}", path_, loop_ ? " (loop)" : "");
	}

private:
	/* Read the next block of samples; false at the end (without loop). */
	bool refill()
	{
		next_ = filled_ = 0;
		if (position_ >= info_.data_bytes) {
			if (!loop_ || info_.data_bytes == 0)
				return false;
			position_ = 0;
		}
		const size_t want = static_cast<size_t>(std::min<uint64_t>(buffer_.size(),
									   info_.data_bytes - position_));
		const size_t frame = info_.format.frame_bytes();
		const size_t got = read_at(fd_.get(), info_.data_offset + position_,
					   std::span(buffer_).first(want)) / frame * frame;
		if (got < want) {
			/* The file shrank since it was checked: it ends here now. */
			logger().warn("file back-end: {} ends after {} data bytes, not {}", path_,
				      position_ + got, info_.data_bytes);
			info_.data_bytes = position_ + got;
			if (!got)
				return refill();
		}
		wav::from_wav_samples(info_.format.format, std::span(buffer_).first(got));
		filled_ = got;
		position_ += got;
		return true;
	}

	const std::string path_;
	const UniqueFd fd_;
	wav::WavInfo info_;
	const bool loop_;
	std::vector<uint8_t> buffer_;
	size_t next_ = 0;
	size_t filled_ = 0;
	/* Data bytes read so far (the start of the next block). */
	uint64_t position_ = 0;
};

} // namespace

FileBackend::FileBackend(boost::asio::io_context &io, FileBackendOptions options)
	: NullBackend(io), options_(std::move(options))
{
	if (!options_.output_path && !options_.input_path)
		throw BackendConfigError("needs --output-file PATH.wav, --input-file PATH.wav or both");
	if (options_.input_loop && !options_.input_path)
		throw BackendConfigError("--input-loop needs --input-file");

	if (options_.input_path) {
		const std::string &path = *options_.input_path;
		try {
			/* Only the header: the file is closed again until a stream needs it. */
			const OpenedInput input = open_input(path);
			input_info_ = input.info;
		} catch (const BackendConfigError &e) {
			throw BackendConfigError(fmt::format("--input-file {}: {}", path, e.what()));
		}
		const wav::WavFormat &f = input_info_->format;
		const auto rate = rate_code(f.rate_hz);
		if (!rate)
			throw BackendConfigError(fmt::format("--input-file {}: {} Hz is not a virtio-sound rate",
							     path, f.rate_hz));
		if (f.channels > kMaxChannels)
			throw BackendConfigError(fmt::format("--input-file {}: {} channels (at most {})", path,
							     f.channels, kMaxChannels));
		input_rate_ = *rate;
	}

	if (options_.output_path) {
		const std::string &path = *options_.output_path;
		if (path.empty())
			throw BackendConfigError("--output-file needs a non-empty path");
		namespace fs = std::filesystem;
		std::error_code ec;
		const fs::path parent = fs::path(path).parent_path().empty() ? fs::path(".")
									 : fs::path(path).parent_path();
		if (!fs::is_directory(parent, ec))
			throw BackendConfigError(fmt::format("--output-file {}: {} is not a directory", path,
							     parent.string()));
		if (::access(parent.c_str(), W_OK | X_OK) != 0)
			throw BackendConfigError(fmt::format("--output-file {}: cannot write in {}: {}", path,
							     parent.string(), std::strerror(errno)));
		const fs::file_status st = fs::status(path, ec);
		if (fs::exists(st) && !fs::is_regular_file(st))
			throw BackendConfigError(fmt::format("--output-file {}: exists and is not a regular file",
							     path));
		if (options_.input_path && fs::exists(st) && fs::equivalent(path, *options_.input_path, ec))
			throw BackendConfigError(fmt::format("--output-file {} is the --input-file", path));
	}

	/* Logged once everything is checked: an error is the only line then. */
	if (options_.output_path)
		logger().info("file back-end: playback goes to {}", *options_.output_path);
	if (input_info_) {
		const wav::WavFormat &f = input_info_->format;
		logger().info("file back-end: capture reads {} ({}, {} frames){}", *options_.input_path,
			      wav::describe(f), input_info_->data_bytes / f.frame_bytes(),
			      options_.input_loop ? ", looped" : "");
		if (!input_info_->data_bytes)
			logger().warn("file back-end: {} holds no samples: capture is silence",
				      *options_.input_path);
	}
}

FileBackend::~FileBackend()
{
	if (current_output_)
		current_output_->finish();
}

PcmCapabilities FileBackend::capabilities(Direction direction) const
{
	if (direction == Direction::Output && options_.output_path)
		return { wav::wav_formats(), vs::all_rates(), 1, kMaxChannels };
	if (direction == Direction::Input && input_info_) {
		const wav::WavFormat &f = input_info_->format;
		const auto channels = static_cast<uint8_t>(f.channels);
		return { uint64_t{1} << f.format, uint64_t{1} << input_rate_, channels, channels };
	}
	return NullBackend::capabilities(direction);
}

std::shared_ptr<OutputFile> FileBackend::output_for(const wav::WavFormat &format)
{
	if (current_output_ && current_output_->format() == format && !current_output_->full())
		return current_output_;

	const std::string path = numbered_path(*options_.output_path, files_started_ + 1);
	auto file = OutputFile::create(path, format, options_.max_output_bytes);
	if (!file)
		return nullptr;
	if (current_output_) {
		current_output_->finish();
		if (current_output_->format() == format)
			logger().info("file back-end: {} is full; playback continues in {}",
				      current_output_->path(), path);
		else
			logger().info("file back-end: playback format {} differs from {} of {}: "
				      "continuing in {}", wav::describe(format),
				      wav::describe(current_output_->format()), current_output_->path(), path);
	} else {
		logger().info("file back-end: writing {} ({})", path, wav::describe(format));
	}
	files_started_++;
	current_output_ = std::move(file);
	return current_output_;
}

std::vector<std::pair<std::string, std::string>> FileBackend::details() const
{
	std::vector<std::pair<std::string, std::string>> d;
	if (options_.output_path)
		d.emplace_back("output_file", *options_.output_path);
	if (current_output_)
		d.emplace_back("current_output_file", current_output_->path());
	if (options_.input_path) {
		d.emplace_back("input_file", *options_.input_path);
		if (options_.input_loop)
			d.emplace_back("input_loop", "on");
	}
	return d;
}

std::unique_ptr<BackendStream> FileBackend::open(const PcmParams &params, ByteRing &ring,
						 BackendStreamListener &listener)
{
	if (params.direction == Direction::Output) {
		if (!options_.output_path)
			return NullBackend::open(params, ring, listener);
		auto file = output_for({ params.format, params.rate_hz(), params.channels });
		if (!file)
			return nullptr;
		return open_clocked(params, ring, listener,
				    std::make_unique<OutputEndpoint>(*this, std::move(file)));
	}

	if (!input_info_)
		return NullBackend::open(params, ring, listener);
	const std::string &path = *options_.input_path;
	try {
		OpenedInput input = open_input(path);
		/* Checked again: the file may have been replaced since start-up. */
		if (input.info.format != input_info_->format)
			throw BackendConfigError(fmt::format("now holds {}, not {} as at start-up",
							     wav::describe(input.info.format),
							     wav::describe(input_info_->format)));
		return open_clocked(params, ring, listener,
				    std::make_unique<InputEndpoint>(path, std::move(input), options_.input_loop));
	} catch (const BackendConfigError &e) {
		logger().error("file back-end: --input-file {}: {}", path, e.what());
		return nullptr;
	}
}

BackendInfo file_backend_info()
{
	return {
		"file",
		"plays into WAV files and captures from one, paced by the loop's clock",
		[](po::options_description &options) {
			// clang-format off
			options.add_options()
				("output-file", po::value<std::string>()->value_name("PATH"),
				 "write playback to the WAV file PATH (replaced); a stream of another "
				 "format continues in PATH-2, PATH-3, ... (before the extension)")
				("input-file", po::value<std::string>()->value_name("PATH"),
				 "capture from the WAV file PATH; the input offers exactly its format, "
				 "rate and channels")
				("input-loop", po::bool_switch(),
				 "start --input-file over at its end (default: silence)");
			// clang-format on
		},
		[](const BackendContext &context, const po::variables_map &vm) {
			FileBackendOptions options;
			if (vm.count("output-file"))
				options.output_path = vm["output-file"].as<std::string>();
			if (vm.count("input-file"))
				options.input_path = vm["input-file"].as<std::string>();
			options.input_loop = vm.count("input-loop") && vm["input-loop"].as<bool>();
			return std::unique_ptr<AudioBackend>(
				std::make_unique<FileBackend>(context.io, std::move(options)));
		},
	};
}

} // namespace vhost_sound
