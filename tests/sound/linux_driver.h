/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file linux_driver.h
 * \brief A guest's virtio-snd driver, played by the library's front-end.
 *
 * SoundDriver is the driver's control path (config, *_INFO queries, PCM
 * commands) on a vhostpp::DeviceDriver with the four queues. LinuxPcm
 * drives one substream exactly as Linux 6.1's virtio-snd driver does under
 * aplay / arecord (recorded with QEMU 10.2):
 *
 * - PCM_SET_PARAMS, PCM_PREPARE;
 * - the TX/RX descriptors point straight into the "ALSA ring buffer", one
 *   message per period, split at 4 KiB page boundaries, as an indirect
 *   chain [xfer header][data pages...][status];
 * - playback: the application fills the whole ring buffer, every period is
 *   queued, then PCM_START;
 * - when a message completes its descriptor is re-queued at once, before
 *   the application has written that period's next samples; the
 *   application writes them later (here: when the next period completes,
 *   like an application woken once per period);
 * - PCM_STOP, PCM_RELEASE, then it waits (1 s) for every pending message.
 *
 * Everything fails loudly (std::runtime_error) so that a test cannot pass
 * by accident.
 */
#pragma once

#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <vhostpp/frontend/device_driver.h>
#include <vhostpp/internal/wire.h>

#include "device/virtio_snd.h"

namespace sound_test {

namespace vs = vhost_sound::virtio_snd;

/** \brief The four queues of 64 entries, as QEMU's vhost-user-snd-pci sets them up. */
inline vhostpp::DeviceDriver::Options sound_driver_options()
{
	vhostpp::DeviceDriver::Options options;
	options.queue_sizes = { 64, 64, 64, 64 };
	options.memory_size = 16 << 20;
	return options;
}

/** \brief The answer to one control request. */
struct ControlReply {
	/** \brief The status code (0 if the device wrote less than 4 bytes). */
	uint32_t status = 0;
	/** \brief The used length the device reported. */
	uint32_t used_len = 0;
	/** \brief The response bytes after the status header. */
	std::vector<uint8_t> payload;
};

/**
 * \brief The driver's control path: one control request at a time, each
 * in a fixed request and response area of guest memory.
 */
class SoundDriver
{
public:
	static constexpr size_t kScratch = 64 * 1024;

	explicit SoundDriver(vhostpp::DeviceDriver &driver)
		: driver_(driver),
		  request_gpa_(driver.memory().allocate(kScratch, 4096)),
		  response_gpa_(driver.memory().allocate(kScratch, 4096))
	{
	}

	vhostpp::DeviceDriver &driver() { return driver_; }
	vhostpp::DriverMemory &memory() { return driver_.memory(); }
	vhostpp::DriverQueue &queue(unsigned i) { return driver_.queue(i); }

	vs::Config read_config()
	{
		const auto bytes = driver_.frontend().get_config(0, sizeof(vs::Config));
		vs::Config config;
		std::memcpy(&config, bytes.data(), sizeof(config));
		return config;
	}

	/**
	 * \brief Send \a request with a response buffer of \a response_bytes
	 * (0 for none) and wait for the answer.
	 */
	ControlReply control(std::span<const uint8_t> request, size_t response_bytes)
	{
		if (request.size() > kScratch || response_bytes > kScratch)
			throw std::invalid_argument("control request too large for the scratch area");
		auto &mem = memory();
		if (!request.empty())
			std::memcpy(mem.at(request_gpa_, request.size()).data(), request.data(), request.size());
		if (response_bytes)
			std::memset(mem.at(response_gpa_, response_bytes).data(), 0xee, response_bytes);

		std::vector<vhostpp::DriverBuffer> chain;
		if (!request.empty())
			chain.push_back({ request_gpa_, static_cast<uint32_t>(request.size()), false });
		if (response_bytes)
			chain.push_back({ response_gpa_, static_cast<uint32_t>(response_bytes), true });
		auto &q = queue(vs::kControlQueue);
		const uint16_t head = q.add(chain);
		q.kick();
		const auto used = q.wait_used(5000);
		if (!used)
			throw std::runtime_error("control request: no answer within 5 s");
		if (used->head != head)
			throw std::runtime_error("control request: answer for another head");

		ControlReply reply;
		reply.used_len = used->len;
		if (used->len >= sizeof(vs::Hdr) && response_bytes >= sizeof(vs::Hdr)) {
			std::memcpy(&reply.status, mem.at(response_gpa_, 4).data(), 4);
			const size_t n = std::min<size_t>(used->len, response_bytes) - sizeof(vs::Hdr);
			const auto bytes = mem.at(response_gpa_ + sizeof(vs::Hdr), n);
			reply.payload.assign(bytes.begin(), bytes.end());
		}
		return reply;
	}

	template<typename T>
	ControlReply control(const T &request, size_t response_bytes = sizeof(vs::Hdr))
	{
		return control({ reinterpret_cast<const uint8_t *>(&request), sizeof(T) }, response_bytes);
	}

	/** \brief PREPARE / RELEASE / START / STOP of \a stream; the status. */
	uint32_t pcm(uint32_t code, uint32_t stream)
	{
		const vs::PcmHdr request{ { code }, stream };
		return control(request).status;
	}

	uint32_t set_params(uint32_t stream, uint32_t buffer_bytes, uint32_t period_bytes,
			    uint8_t format, uint8_t rate, uint8_t channels, uint32_t features = 0)
	{
		vs::PcmSetParams request{};
		request.hdr = { { vs::kPcmSetParams }, stream };
		request.buffer_bytes = buffer_bytes;
		request.period_bytes = period_bytes;
		request.features = features;
		request.format = format;
		request.rate = rate;
		request.channels = channels;
		return control(request).status;
	}

	/** \brief A *_INFO query of \a count items from \a start; throws unless OK. */
	template<typename Item>
	std::vector<Item> query(uint32_t code, uint32_t start, uint32_t count)
	{
		const vs::QueryInfo request{ { code }, start, count, sizeof(Item) };
		const auto reply = control(request, sizeof(vs::Hdr) + count * sizeof(Item));
		if (reply.status != vs::kStatusOk)
			throw std::runtime_error(fmt::format("query {:#x}: status {:#x}", code, reply.status));
		if (reply.payload.size() != count * sizeof(Item))
			throw std::runtime_error("query: short answer");
		std::vector<Item> items(count);
		std::memcpy(items.data(), reply.payload.data(), reply.payload.size());
		return items;
	}

private:
	vhostpp::DeviceDriver &driver_;
	uint64_t request_gpa_;
	uint64_t response_gpa_;
};

/**
 * \brief The guest's event queue: buffers it keeps queued, and the events it
 * got (jack and control events are both 8 bytes).
 */
class EventQueue
{
public:
	explicit EventQueue(SoundDriver &snd) : snd_(snd) {}

	/** \brief Queue \a n more 8-byte buffers and kick. */
	void queue(size_t n)
	{
		auto &q = snd_.queue(vs::kEventQueue);
		for (size_t i = 0; i < n; i++) {
			const uint64_t gpa = snd_.memory().allocate(sizeof(vs::Event), 8);
			std::memset(snd_.memory().at(gpa, sizeof(vs::Event)).data(), 0xee, sizeof(vs::Event));
			heads_[q.add({ { { gpa, sizeof(vs::Event), true } } })] = gpa;
		}
		q.kick();
	}

	/** \brief The next event, within \a timeout_ms; throws if its length is wrong. */
	std::optional<vs::Event> next(int timeout_ms = 2000)
	{
		const auto used = snd_.queue(vs::kEventQueue).wait_used(timeout_ms);
		if (!used)
			return std::nullopt;
		if (used->len != sizeof(vs::Event))
			throw std::runtime_error(fmt::format("event of {} bytes", used->len));
		vs::Event e;
		std::memcpy(&e, snd_.memory().at(heads_.at(used->head), sizeof(e)).data(), sizeof(e));
		heads_.erase(used->head);
		return e;
	}

private:
	SoundDriver &snd_;
	std::map<uint16_t, uint64_t> heads_;
};

/** \brief A stream configuration, in virtio codes. */
struct PcmConfig {
	uint8_t format = vs::kFmtS16;
	uint8_t rate = vs::kRate48000;
	uint8_t channels = 2;
	/** \brief The recorded Linux defaults for aplay at 48 kHz S16 stereo. */
	uint32_t buffer_bytes = 32768;
	uint32_t period_bytes = 8192;
};

/** \brief What one playback or capture run saw. */
struct PcmRun {
	/** \brief From just before PCM_START to the completion of the last counted period. */
	double seconds = 0;
	/** \brief Periods counted (the playback's data periods / captured periods). */
	size_t periods = 0;
	/** \brief Status and latency of every completion while running, in order. */
	std::vector<uint32_t> statuses;
	std::vector<uint32_t> latencies;
	/** \brief Capture: every byte received, in order. */
	std::vector<uint8_t> captured;
	/** \brief Messages that came back after PCM_RELEASE (all of the rest). */
	size_t returned_after_release = 0;
	/** \brief Messages already in the used ring when RELEASE's reply arrived. */
	size_t returned_before_release_reply = 0;
	uint32_t stop_status = 0;
	uint32_t release_status = 0;
};

/**
 * \brief One substream driven like Linux's virtio-snd driver under aplay / arecord.
 */
class LinuxPcm
{
public:
	/** \brief Fills \a out with the application's bytes at stream offset \a offset. */
	using Source = std::function<void(uint64_t offset, std::span<uint8_t> out)>;

	LinuxPcm(SoundDriver &snd, uint32_t stream, vs::Direction direction, PcmConfig config)
		: snd_(snd), stream_(stream), direction_(direction), config_(config),
		  periods_(config.buffer_bytes / config.period_bytes)
	{
		auto &mem = snd_.memory();
		dma_gpa_ = mem.allocate(config.buffer_bytes, 4096);
		for (size_t i = 0; i < periods_; i++) {
			Slot slot;
			slot.hdr_gpa = mem.allocate(sizeof(vs::PcmXfer), 8);
			slot.status_gpa = mem.allocate(sizeof(vs::PcmStatus), 8);
			const vs::PcmXfer xfer{ stream };
			std::memcpy(mem.at(slot.hdr_gpa, sizeof(xfer)).data(), &xfer, sizeof(xfer));
			slots_.push_back(slot);
		}
	}

	size_t periods_per_buffer() const { return periods_; }
	/** \brief Guest address of the ALSA ring buffer: period \a i is at dma_gpa() + i * period_bytes. */
	uint64_t dma_gpa() const { return dma_gpa_; }
	/** \brief Where period \a slot's samples lie in guest memory. */
	uint64_t period_gpa(size_t slot) const { return dma_gpa_ + slot * config_.period_bytes; }

	/** \brief SET_PARAMS and PREPARE; throws unless both are OK. */
	void setup()
	{
		expect_ok(snd_.set_params(stream_, config_.buffer_bytes, config_.period_bytes,
					  config_.format, config_.rate, config_.channels),
			  "PCM_SET_PARAMS");
		expect_ok(snd_.pcm(vs::kPcmPrepare, stream_), "PCM_PREPARE");
	}

	/**
	 * \brief aplay: play \a data_periods periods whose bytes come from
	 * \a source (stream offsets 0 ..), then STOP and RELEASE. Periods after
	 * the data (re-queued until STOP, as Linux does) are silence.
	 */
	PcmRun play(size_t data_periods, const Source &source)
	{
		setup();
		const uint64_t data_bytes = uint64_t{data_periods} * config_.period_bytes;
		auto write_period = [&](size_t slot, uint64_t period) {
			auto area = snd_.memory().at(dma_gpa_ + slot * config_.period_bytes, config_.period_bytes);
			const uint64_t offset = period * config_.period_bytes;
			if (offset < data_bytes)
				source(offset, area);
			else
				std::memset(area.data(), 0, area.size());
		};

		/* The application fills the whole buffer before the stream starts. */
		for (size_t i = 0; i < periods_; i++)
			write_period(i, i);
		queue_all();

		PcmRun run;
		const auto t0 = Clock::now();
		expect_ok(snd_.pcm(vs::kPcmStart, stream_), "PCM_START");

		/* The period whose descriptor was re-queued at the last completion;
		 * the application writes its next samples at the next one. */
		std::optional<std::pair<size_t, uint64_t>> late_write;
		size_t completed = 0;
		while (completed < data_periods) {
			const size_t slot = wait_completion(run);
			if (slot != completed % periods_)
				throw std::runtime_error("playback: periods completed out of order");
			completed++;
			if (completed == data_periods) {
				run.seconds = seconds_since(t0);
				break;
			}
			/* The driver re-queues the period the moment it completes... */
			queue_slot(slot);
			kick();
			/* ...and only later does the application write its next samples. */
			if (late_write)
				write_period(late_write->first, late_write->second);
			late_write = { slot, completed - 1 + periods_ };
		}
		run.periods = completed;
		finish(run);
		return run;
	}

	/** \brief arecord: capture \a periods periods, then STOP and RELEASE. */
	PcmRun capture(size_t periods)
	{
		setup();
		queue_all();

		PcmRun run;
		const auto t0 = Clock::now();
		expect_ok(snd_.pcm(vs::kPcmStart, stream_), "PCM_START");
		size_t received = 0;
		while (received < periods) {
			const size_t slot = wait_completion(run);
			if (slot != received % periods_)
				throw std::runtime_error("capture: periods completed out of order");
			received++;
			if (received == periods) {
				run.seconds = seconds_since(t0);
			} else {
				queue_slot(slot);
				kick();
			}
			/* The application reads the period after the driver re-queued it:
			 * the device fills the oldest queued message first. */
			const auto area = snd_.memory().at(dma_gpa_ + slot * config_.period_bytes,
							   config_.period_bytes);
			run.captured.insert(run.captured.end(), area.begin(), area.end());
		}
		run.periods = received;
		finish(run);
		return run;
	}

	/** \brief What the driver does before PCM_START: queue every period of the
	 *  ring buffer, then kick. */
	void queue_all()
	{
		for (size_t i = 0; i < periods_; i++)
			queue_slot(i);
		kick();
	}

	/** \brief Queue period \a slot's message (not kicked). */
	void queue_slot(size_t slot)
	{
		const Slot &s = slots_[slot];
		std::memset(snd_.memory().at(s.status_gpa, sizeof(vs::PcmStatus)).data(), 0xee,
			    sizeof(vs::PcmStatus));
		std::vector<vhostpp::DriverBuffer> chain;
		chain.push_back({ s.hdr_gpa, sizeof(vs::PcmXfer), false });
		const bool writable = direction_ == vs::Direction::Input;
		/* One buffer per 4 KiB page, as Linux builds its scatterlist. */
		const uint64_t start = dma_gpa_ + slot * config_.period_bytes;
		const uint64_t end = start + config_.period_bytes;
		for (uint64_t at = start; at < end;) {
			const uint64_t next = std::min<uint64_t>((at / 4096 + 1) * 4096, end);
			chain.push_back({ at, static_cast<uint32_t>(next - at), writable });
			at = next;
		}
		chain.push_back({ s.status_gpa, sizeof(vs::PcmStatus), true });
		const uint16_t head = io_queue().add_indirect(chain);
		head_to_slot_[head] = slot;
		in_flight_++;
	}

	void kick() { io_queue().kick_if_needed(snd_.driver().event_idx()); }

	/** \brief Messages queued and not yet completed. */
	size_t in_flight() const { return in_flight_; }

	vhostpp::DriverQueue &io_queue()
	{
		return snd_.queue(direction_ == vs::Direction::Output ? vs::kTxQueue : vs::kRxQueue);
	}

	/** \brief The status footer of \a slot as the device wrote it. */
	vs::PcmStatus status_of(size_t slot)
	{
		vs::PcmStatus st;
		std::memcpy(&st, snd_.memory().at(slots_[slot].status_gpa, sizeof(st)).data(), sizeof(st));
		return st;
	}

	/**
	 * \brief Wait for one completion; checks its used length and status
	 * footer and records them. Returns the period slot.
	 */
	size_t wait_completion(PcmRun &run, int timeout_ms = 2000)
	{
		const auto used = io_queue().wait_used(timeout_ms);
		if (!used)
			throw std::runtime_error(fmt::format("no completion within {} ms", timeout_ms));
		return account(*used, run, true);
	}

	/** \brief The slot of a completion already in the used ring (checked as
	 *  wait_completion() does), or nothing. */
	std::optional<size_t> poll_completion(PcmRun &run)
	{
		if (const auto used = io_queue().get_used())
			return account(*used, run, true);
		return std::nullopt;
	}

	/** \brief STOP, RELEASE, and wait (1 s, as Linux) for every pending message. */
	void finish(PcmRun &run)
	{
		run.stop_status = snd_.pcm(vs::kPcmStop, stream_);
		run.release_status = snd_.pcm(vs::kPcmRelease, stream_);
		/* The device must have completed them all before RELEASE's reply. */
		while (auto used = io_queue().get_used()) {
			account(*used, run, false);
			run.returned_before_release_reply++;
			run.returned_after_release++;
		}
		const auto deadline = Clock::now() + std::chrono::seconds(1);
		while (in_flight_ && Clock::now() < deadline) {
			if (auto used = io_queue().wait_used(50)) {
				account(*used, run, false);
				run.returned_after_release++;
			}
		}
	}

private:
	using Clock = std::chrono::steady_clock;

	struct Slot {
		uint64_t hdr_gpa = 0;
		uint64_t status_gpa = 0;
	};

	static void expect_ok(uint32_t status, const char *what)
	{
		if (status != vs::kStatusOk)
			throw std::runtime_error(fmt::format("{}: status {:#x}", what, status));
	}

	static double seconds_since(Clock::time_point t0)
	{
		return std::chrono::duration<double>(Clock::now() - t0).count();
	}

	size_t account(const vhostpp::UsedElement &used, PcmRun &run, bool running)
	{
		const auto it = head_to_slot_.find(used.head);
		if (it == head_to_slot_.end())
			throw std::runtime_error(fmt::format("completion of unknown head {}", used.head));
		const size_t slot = it->second;
		head_to_slot_.erase(it);
		in_flight_--;
		const vs::PcmStatus st = status_of(slot);
		if (running) {
			const uint32_t expected_len = sizeof(vs::PcmStatus) +
				(direction_ == vs::Direction::Input ? config_.period_bytes : 0);
			if (used.len != expected_len)
				throw std::runtime_error(fmt::format("used length {} (expected {})", used.len,
								     expected_len));
			run.statuses.push_back(st.status);
			run.latencies.push_back(st.latency_bytes);
		} else if (st.status != vs::kStatusOk && st.status != vs::kStatusIoErr) {
			throw std::runtime_error(fmt::format("status footer {:#x} not written", st.status));
		}
		return slot;
	}

	SoundDriver &snd_;
	uint32_t stream_;
	vs::Direction direction_;
	PcmConfig config_;
	size_t periods_;
	uint64_t dma_gpa_ = 0;
	std::vector<Slot> slots_;
	std::map<uint16_t, size_t> head_to_slot_;
	size_t in_flight_ = 0;
};

} // namespace sound_test
