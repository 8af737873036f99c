/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file test_server.h
 * \brief A vhostpp::Server on its own io_context thread, and a pattern device.
 *
 * TestServer listens on a fresh path in a private temporary directory and
 * runs the loop on one thread until it is destroyed. Everything that
 * touches the Server goes through run(), which executes on the loop's
 * thread and waits for the result, so tests never race with the loop.
 */
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <dirent.h>
#include <future>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <vector>

#include <vhostpp/device.h>
#include <vhostpp/server.h>

#include "log_capture.h"

namespace vhostpp::test {

/**
 * \brief A virtio-rng-like device: every writable byte it is given becomes
 * the next byte of the stream k % 251 (k counted across all requests).
 *
 * Optionally it has a config space (bytes i → 0xC0 + i) and extra queues;
 * with hold(true) it pops chains but keeps them in flight until release().
 * Counters are atomics: they are bumped on the loop thread and read by tests.
 */
class PatternDevice : public Device
{
public:
	explicit PatternDevice(unsigned queues = 1, uint32_t config_size = 0, uint16_t max_size = 1024)
		: queues_(queues), config_size_(config_size), max_size_(max_size)
	{
	}

	unsigned num_queues() const override { return queues_; }
	uint16_t max_queue_size(unsigned) const override { return max_size_; }
	uint32_t config_size() const override { return config_size_; }
	bool read_config(uint32_t offset, std::span<uint8_t> out) override
	{
		for (size_t i = 0; i < out.size(); i++)
			out[i] = uint8_t(0xC0 + offset + i);
		return true;
	}
	bool write_config(uint32_t offset, std::span<const uint8_t> in) override
	{
		config_writes++;
		last_config_write_offset = offset;
		last_config_write_size = uint32_t(in.size());
		return true;
	}

	void features_negotiated(uint64_t f) override { negotiated = f; }
	void queue_started(Virtqueue &) override { started++; }
	void queue_stopped(Virtqueue &q) override
	{
		stopped++;
		/* Chains of a stopped ring must not be used any more. */
		held_.erase(std::remove_if(held_.begin(), held_.end(),
					   [&](const Held &h) { return h.queue == q.index(); }),
			    held_.end());
		held_count_ = held_.size();
	}
	void queue_kicked(Virtqueue &queue) override
	{
		kicks++;
		while (auto chain = queue.pop()) {
			popped++;
			if (hold_) {
				held_.push_back({queue.index(), &queue, std::move(*chain)});
				held_count_ = held_.size();
				continue;
			}
			complete(queue, *chain);
		}
		queue.notify();
	}
	void reset() override
	{
		resets++;
		held_.clear();
		held_count_ = 0;
	}
	void attach(DeviceContext &) override { attaches++; }
	void detach() override
	{
		detaches++;
		held_.clear();
		held_count_ = 0;
	}

	/** \brief Keep popped chains instead of completing them (loop thread only). */
	void hold(bool on) { hold_ = on; }
	/** \brief Complete every held chain (loop thread only). */
	void release()
	{
		auto held = std::move(held_);
		held_.clear();
		held_count_ = 0;
		for (auto &h : held) {
			complete(*h.vq, h.chain);
			h.vq->notify();
		}
	}
	size_t held() const { return held_.size(); }
	/** \brief Chains held right now; readable from any thread. */
	size_t held_count() const { return held_count_; }

	/** \brief Bytes of the pattern produced so far. */
	std::atomic<uint64_t> produced{0};
	std::atomic<uint64_t> kicks{0};
	std::atomic<uint64_t> popped{0};
	std::atomic<uint64_t> started{0};
	std::atomic<uint64_t> stopped{0};
	std::atomic<uint64_t> resets{0};
	std::atomic<uint64_t> attaches{0};
	std::atomic<uint64_t> detaches{0};
	std::atomic<uint64_t> negotiated{0};
	std::atomic<uint64_t> config_writes{0};
	std::atomic<uint32_t> last_config_write_offset{0};
	std::atomic<uint32_t> last_config_write_size{0};

private:
	struct Held {
		uint16_t queue;
		Virtqueue *vq;
		DescriptorChain chain;
	};

	void complete(Virtqueue &queue, const DescriptorChain &chain)
	{
		std::vector<uint8_t> bytes(chain.writable_bytes());
		uint64_t k = produced.load();
		for (auto &b : bytes)
			b = uint8_t(k++ % 251);
		size_t written = chain.write(0, bytes);
		produced = produced.load() + written;
		queue.push(chain, uint32_t(written));
	}

	unsigned queues_;
	uint32_t config_size_;
	uint16_t max_size_;
	bool hold_ = false;
	std::vector<Held> held_;
	std::atomic<size_t> held_count_{0};
};

/** \brief A private temporary directory, removed (with its files) on destruction. */
class TempDir
{
public:
	TempDir()
	{
		std::string tmpl = (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp");
		tmpl += "/vhostpp-test-XXXXXX";
		if (!::mkdtemp(tmpl.data()))
			throw std::system_error(errno, std::generic_category(), "mkdtemp");
		path_ = tmpl;
	}
	~TempDir()
	{
		if (DIR *d = ::opendir(path_.c_str())) {
			while (dirent *e = ::readdir(d))
				if (e->d_name[0] != '.')
					::unlink((path_ + "/" + e->d_name).c_str());
			::closedir(d);
		}
		::rmdir(path_.c_str());
	}
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
	const std::string &path() const { return path_; }

private:
	std::string path_;
};

/**
 * \brief A Server serving \a device on a fresh socket path, on its own thread.
 */
class TestServer
{
public:
	explicit TestServer(Device &device, ServerOptions options = {})
		: work_(boost::asio::make_work_guard(io_)), server_(io_, device, options),
		  path_(dir_.path() + "/vhost.sock")
	{
		LogCapture::get(); /* before the loop thread can log */
		server_.on_disconnect([this] {
			std::lock_guard lock(mutex_);
			disconnects_++;
			cv_.notify_all();
		});
		server_.listen(path_);
		thread_ = std::thread([this] { io_.run(); });
	}
	~TestServer()
	{
		run([this] { server_.stop(); });
		work_.reset();
		io_.stop();
		thread_.join();
	}
	TestServer(const TestServer &) = delete;
	TestServer &operator=(const TestServer &) = delete;

	const std::string &path() const { return path_; }
	boost::asio::io_context &io() { return io_; }
	/** \brief The server itself: touch it only inside run(). */
	Server &server() { return server_; }

	/** \brief Run \a f on the loop's thread and return its result (exceptions too). */
	template<typename F>
	auto run(F f) -> decltype(f())
	{
		std::packaged_task<decltype(f())()> task(std::move(f));
		auto result = task.get_future();
		boost::asio::post(io_, [&task] { task(); });
		return result.get();
	}

	/** \brief Front-end connections that ended (device detached, resources released). */
	uint64_t disconnects()
	{
		std::lock_guard lock(mutex_);
		return disconnects_;
	}
	/** \brief Wait until at least \a n connections have ended. */
	bool wait_disconnects(uint64_t n, int timeout_ms = 3000)
	{
		std::unique_lock lock(mutex_);
		return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
				    [&] { return disconnects_ >= n; });
	}
	bool connected()
	{
		return run([this] { return server_.connected(); });
	}
	uint64_t connections()
	{
		return run([this] { return server_.connections(); });
	}

private:
	TempDir dir_;
	boost::asio::io_context io_;
	boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
	Server server_;
	std::string path_;
	std::thread thread_;
	std::mutex mutex_;
	std::condition_variable cv_;
	uint64_t disconnects_ = 0;
};

} // namespace vhostpp::test
