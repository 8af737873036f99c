/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file sound_fixture.h
 * \brief The vhost-sound device served in-process, on its own loop thread,
 * over a real Unix socket; and a test back-end that records what it plays.
 */
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <vhostpp/server.h>

#include "audio/null/null_backend.h"
#include "device/sound_device.h"

namespace sound_test {

using namespace vhost_sound;

/**
 * \brief The null back-end's real-time clock with a recording sink and a
 * pattern source. Runs on the loop, like the null back-end: touch its
 * members through SoundDaemon::on_loop().
 */
class RecordingBackend : public NullBackend
{
public:
	using NullBackend::NullBackend;

	/** \brief The captured byte at \a offset of an input stream: never 0. */
	static uint8_t pattern_byte(uint64_t offset) { return static_cast<uint8_t>(offset % 251 + 1); }

	void render(const PcmParams &, std::span<const uint8_t> bytes) override
	{
		rendered.insert(rendered.end(), bytes.begin(), bytes.end());
	}

	void capture(const PcmParams &params, std::span<uint8_t> out, uint64_t offset) override
	{
		if (!produce_pattern) {
			NullBackend::capture(params, out, offset);
			return;
		}
		for (size_t i = 0; i < out.size(); i++)
			out[i] = pattern_byte(offset + i);
	}

	uint32_t delay_bytes(const PcmParams &) const override { return delay; }

	/** \brief Counts the host streams alive, to catch leaks. */
	std::unique_ptr<BackendStream> open(const PcmParams &params, ByteRing &ring,
					    BackendStreamListener &listener) override
	{
		opened++;
		return std::make_unique<Counted>(NullBackend::open(params, ring, listener), open_streams);
	}

	/** \brief Every byte the clock took from output rings, in order. */
	std::vector<uint8_t> rendered;
	/** \brief Capture the pattern (true) or silence. */
	bool produce_pattern = true;
	/** \brief What the back-end reports as its own delay. */
	uint32_t delay = 0;
	/** \brief Host streams open now, and ever opened. */
	int open_streams = 0;
	int opened = 0;

private:
	class Counted : public BackendStream
	{
	public:
		Counted(std::unique_ptr<BackendStream> inner, int &count)
			: inner_(std::move(inner)), count_(count)
		{
			count_++;
		}
		~Counted() override { count_--; }
		bool start() override { return inner_->start(); }
		void stop() override { inner_->stop(); }
		uint32_t delay_bytes() const override { return inner_->delay_bytes(); }
		uint32_t lookahead_bytes() const override { return inner_->lookahead_bytes(); }
		uint64_t xruns() const override { return inner_->xruns(); }
		std::string describe() const override { return inner_->describe(); }

	private:
		std::unique_ptr<BackendStream> inner_;
		int &count_;
	};
};

/**
 * \brief A SoundDevice on a vhostpp::Server listening on a fresh socket path,
 * with its io_context running on a thread of its own.
 */
class SoundDaemon
{
public:
	/** \brief Which back-end the daemon runs on. */
	enum class Backend {
		Recording, /* RecordingBackend */
		Null,      /* the daemon's own NullBackend, untouched */
	};

	explicit SoundDaemon(SoundDevice::Options options = {}, Backend which = Backend::Recording)
		: SoundDaemon(options, [which](boost::asio::io_context &io,
					       const std::string &) -> std::unique_ptr<AudioBackend> {
			  if (which == Backend::Recording)
				  return std::make_unique<RecordingBackend>(io);
			  return std::make_unique<NullBackend>(io);
		  })
	{
	}

	/**
	 * \brief Builds the back-end on the daemon's loop, given the daemon's
	 * fresh directory (e.g. a FileBackend writing there, ALSA on a test config).
	 */
	using BackendFactory = std::function<std::unique_ptr<AudioBackend>(boost::asio::io_context &,
									   const std::string &dir)>;

	/** \brief A daemon on the back-end \a make builds. */
	SoundDaemon(SoundDevice::Options options, const BackendFactory &make)
		: work_(boost::asio::make_work_guard(io_))
	{
		char dir[] = "/tmp/vhost-sound-test-XXXXXX";
		if (!::mkdtemp(dir))
			throw std::runtime_error("mkdtemp failed");
		dir_ = dir;
		path_ = dir_ + "/snd.sock";
		backend_ = make(io_, dir_);
		device_ = std::make_unique<SoundDevice>(*backend_, silence_, options);
		/* As main() does; the server detaches the device when the front-end leaves. */
		server_ = std::make_unique<vhostpp::Server>(io_, *device_);
		server_->listen(path_);
		thread_ = std::thread([this] { io_.run(); });
	}

	~SoundDaemon()
	{
		on_loop([this] {
			server_->stop();
			/* The device's host streams own timers on this loop. */
			device_->reset();
		});
		work_.reset();
		io_.stop();
		thread_.join();
		std::error_code ec;
		std::filesystem::remove_all(dir_, ec);
	}

	SoundDaemon(const SoundDaemon &) = delete;
	SoundDaemon &operator=(const SoundDaemon &) = delete;

	const std::string &socket_path() const { return path_; }
	const std::string &directory() const { return dir_; }

	/** \brief Run \a f on the loop's thread and return its result. */
	template<typename F>
	std::invoke_result_t<F> on_loop(F &&f)
	{
		std::packaged_task<std::invoke_result_t<F>()> task(std::forward<F>(f));
		auto result = task.get_future();
		boost::asio::post(io_, [&task] { task(); });
		return result.get();
	}

	/** \brief Only on the loop (on_loop()). */
	SoundDevice &device() { return *device_; }
	/** \brief Only on the loop (on_loop()). */
	/** \brief Only on the loop (on_loop()); only with Backend::Recording. */
	RecordingBackend &backend() { return dynamic_cast<RecordingBackend &>(*backend_); }
	boost::asio::io_context &io() { return io_; }

	/** \brief A copy of the bytes the back-end rendered so far. */
	std::vector<uint8_t> rendered()
	{
		return on_loop([this] { return backend().rendered; });
	}

	/** \brief True while the server still serves a front-end. */
	bool connected()
	{
		return on_loop([this] { return server_->connected(); });
	}

private:
	boost::asio::io_context io_;
	boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
	std::string dir_;
	std::string path_;
	std::unique_ptr<AudioBackend> backend_;
	/* The daemon's own clock for a disabled input, as in main(). */
	NullBackend silence_{ io_ };
	std::unique_ptr<SoundDevice> device_;
	std::unique_ptr<vhostpp::Server> server_;
	std::thread thread_;
};

} // namespace sound_test
