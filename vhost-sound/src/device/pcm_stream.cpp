/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "device/pcm_stream.h"

#include <algorithm>
#include <fmt/format.h>

#include "device/sample_gain.h"
#include "sound_log.h"

namespace vhost_sound {

using virtio_snd::Status;

namespace {

/* Feature bits the spec defines (VIRTIO_SND_PCM_F_SHMEM_HOST .. EVT_XRUNS). */
constexpr uint32_t kDefinedPcmFeatures = (1u << 5) - 1;
/* Feature bits this device offers in PCM_INFO and accepts in SET_PARAMS: none yet. */
constexpr uint32_t kOfferedPcmFeatures = 0;

} // namespace

PcmStream::PcmStream(uint32_t id, Direction direction, AudioBackend &backend,
		     AudioBackend &silence, bool enabled, const StreamTuning &tuning)
	: id_(id), direction_(direction), backend_(backend), silence_(silence),
	  caps_(backend.capabilities(direction)), tuning_(tuning), enabled_(enabled)
{
}

PcmStream::~PcmStream()
{
	close_host_stream();
}

std::string_view PcmStream::state_name(State state)
{
	switch (state) {
	case State::Idle:
		return "idle";
	case State::ParamsSet:
		return "params-set";
	case State::Prepared:
		return "prepared";
	case State::Running:
		return "running";
	case State::Stopped:
		return "stopped";
	case State::Released:
		return "released";
	}
	return "?";
}

Status PcmStream::set_params(const virtio_snd::PcmSetParams &req)
{
	auto refuse = [&](Status status, std::string_view why) {
		if (log_limit_.allow())
			logger().warn("stream {}: PCM_SET_PARAMS refused ({}): {}", id_,
				      virtio_snd::status_name(status), why);
		return status;
	};

	if (state_ == State::Running || state_ == State::Stopped)
		return refuse(Status::BadMsg, fmt::format("not allowed in state {}", state_name(state_)));

	/* Undefined codes are malformed (BAD_MSG); defined but not offered is NOT_SUPP. */
	if (req.format >= virtio_snd::kNumFormats)
		return refuse(Status::BadMsg, fmt::format("format {} is undefined", req.format));
	if (!caps_.has_format(req.format) || !virtio_snd::format_info(req.format))
		return refuse(Status::NotSupp, fmt::format("format {} is not supported",
							   virtio_snd::format_name(req.format)));
	if (req.rate >= virtio_snd::kNumRates)
		return refuse(Status::BadMsg, fmt::format("rate code {} is undefined", req.rate));
	if (!caps_.has_rate(req.rate))
		return refuse(Status::NotSupp, fmt::format("rate {} Hz is not supported",
							   virtio_snd::rate_hz(req.rate)));
	if (req.channels == 0)
		return refuse(Status::BadMsg, "channels is 0");
	if (!caps_.has_channels(req.channels))
		return refuse(Status::NotSupp, fmt::format("{} channels not supported", req.channels));
	if (req.features & ~kDefinedPcmFeatures)
		return refuse(Status::BadMsg, fmt::format("undefined feature bits {:#x}", req.features));
	if (req.features & ~kOfferedPcmFeatures)
		return refuse(Status::NotSupp, fmt::format("feature bits {:#x} not offered", req.features));

	PcmParams params;
	params.direction = direction_;
	params.format = req.format;
	params.rate = req.rate;
	params.channels = req.channels;
	params.buffer_bytes = req.buffer_bytes;
	params.period_bytes = req.period_bytes;
	const uint32_t frame = params.frame_bytes();

	if (req.period_bytes == 0 || req.buffer_bytes == 0)
		return refuse(Status::BadMsg, fmt::format("buffer_bytes {} / period_bytes {}",
							  req.buffer_bytes, req.period_bytes));
	if (req.buffer_bytes % req.period_bytes)
		return refuse(Status::BadMsg, fmt::format("period_bytes {} does not divide buffer_bytes {}",
							  req.period_bytes, req.buffer_bytes));
	if (req.period_bytes % frame)
		return refuse(Status::BadMsg, fmt::format("period_bytes {} is not a multiple of the {}-byte frame",
							  req.period_bytes, frame));
	if (req.buffer_bytes > tuning_.max_buffer_bytes)
		return refuse(Status::NotSupp, fmt::format("buffer_bytes {} exceeds the limit {}",
							   req.buffer_bytes, tuning_.max_buffer_bytes));

	if (state_ == State::Prepared) {
		/* New parameters invalidate samples queued for the old ones. */
		flush(Status::IoErr);
		close_host_stream();
	}
	params_ = params;
	sample_bytes_ = virtio_snd::format_info(params.format)->sample_bytes;
	state_ = State::ParamsSet;
	logger().info("stream {} ({}): {} {} Hz {} ch, buffer {} B, period {} B", id_,
		      virtio_snd::direction_name(direction_), virtio_snd::format_name(params.format),
		      params.rate_hz(), params.channels, params.buffer_bytes, params.period_bytes);
	return Status::Ok;
}

Status PcmStream::prepare()
{
	if (state_ != State::ParamsSet && state_ != State::Prepared && state_ != State::Released) {
		if (log_limit_.allow())
			logger().warn("stream {}: PCM_PREPARE refused (BAD_MSG): not allowed in state {}", id_,
				      state_name(state_));
		return Status::BadMsg;
	}

	/* Open the new host stream before closing the old one: on failure the
	 * stream stays as it was. */
	auto ring = std::make_unique<ByteRing>(params_->buffer_bytes);
	AudioBackend &source = source_backend();
	auto host = source.open(*params_, *ring, *this);
	if (!host) {
		if (log_limit_.allow())
			logger().warn("stream {}: PCM_PREPARE failed (IO_ERR): back-end '{}' refused the stream",
				      id_, source.name());
		return Status::IoErr;
	}
	close_host_stream();
	ring_ = std::move(ring);
	host_ = std::move(host);
	if (direction_ == Direction::Output)
		host_->set_output_enabled(enabled_);

	/* Messages kept across a repeated PREPARE were never read (not started). */
	for (Pending &p : pending_) {
		p.done = 0;
		p.end_position = 0;
	}
	fully_read_ = 0;
	last_latency_ = 0;
	closed_xruns_ = 0;
	state_ = State::Prepared;
	return Status::Ok;
}

void PcmStream::set_enabled(bool enabled)
{
	if (enabled == enabled_)
		return;
	enabled_ = enabled;
	if (direction_ != Direction::Input) {
		/* The device silences a disabled output; the back-end may idle. */
		if (host_)
			host_->set_output_enabled(enabled_);
		return;
	}
	if (!enabled_)
		silence_partial_input();
	if (host_)
		reopen_host_stream();
}

void PcmStream::silence_partial_input()
{
	/* Captured bytes already written into a message the guest has not got
	 * back yet: from the next completion on the guest sees only silence. */
	if (!params_)
		return;
	uint8_t silence[1024];
	for (Pending &p : pending_) {
		for (size_t off = 0; off < p.done; off += sizeof(silence)) {
			const size_t n = std::min(sizeof(silence), p.done - off);
			virtio_snd::fill_silence(params_->format, silence, n, off);
			p.message.write_payload(off, { silence, n });
		}
	}
}

AudioBackend &PcmStream::source_backend() const
{
	return direction_ == Direction::Input && !enabled_ ? silence_ : backend_;
}

void PcmStream::reopen_host_stream()
{
	/* The old stream goes first: after its destructor it no longer touches
	 * the ring, and the host device is closed before another is opened. */
	closed_xruns_ += host_->xruns();
	host_.reset();

	AudioBackend &source = source_backend();
	host_ = source.open(*params_, *ring_, *this);
	if (!host_ && &source != &silence_) {
		/* The host refused: the guest gets zeros at the stream's pace meanwhile;
		 * the next PREPARE or enable tries the back-end again. */
		logger().warn("stream {}: back-end '{}' refused to open the enabled input; "
			      "capturing silence until the next PREPARE", id_, source.name());
		host_ = silence_.open(*params_, *ring_, *this);
	}
	if (!host_) {
		/* Not even the silence source: nothing can pace the stream. */
		logger().error("stream {}: no host stream could be opened; releasing the stream", id_);
		flush(Status::IoErr);
		ring_.reset();
		state_ = State::Released;
		return;
	}
	if (state_ == State::Running && !host_->start())
		logger().warn("stream {}: the new host stream did not start", id_);
	logger().info("stream {}: input {}; host stream now: {}", id_,
		      enabled_ ? "enabled" : "disabled", host_->describe());
}

Status PcmStream::start()
{
	if (state_ != State::Prepared && state_ != State::Stopped) {
		if (log_limit_.allow())
			logger().warn("stream {}: PCM_START refused (BAD_MSG): not allowed in state {}", id_,
				      state_name(state_));
		return Status::BadMsg;
	}

	/* Output: put the first look-ahead in the ring before the clock runs. */
	if (direction_ == Direction::Output && pump_output(true) && queue_)
		queue_->notify();

	if (!host_->start()) {
		if (log_limit_.allow())
			logger().warn("stream {}: PCM_START failed (IO_ERR): back-end could not start", id_);
		return Status::IoErr;
	}
	state_ = State::Running;
	return Status::Ok;
}

Status PcmStream::stop()
{
	if (state_ != State::Running) {
		if (log_limit_.allow())
			logger().warn("stream {}: PCM_STOP refused (BAD_MSG): not allowed in state {}", id_,
				      state_name(state_));
		return Status::BadMsg;
	}
	host_->stop();
	state_ = State::Stopped;
	/* Complete what the back-end consumed before it stopped; read nothing more. */
	pump();
	return Status::Ok;
}

Status PcmStream::release()
{
	if (state_ != State::Prepared && state_ != State::Stopped) {
		if (log_limit_.allow())
			logger().warn("stream {}: PCM_RELEASE refused (BAD_MSG): not allowed in state {}", id_,
				      state_name(state_));
		return Status::BadMsg;
	}
	/* Every kept message goes back before RELEASE's own reply. */
	flush(Status::Ok);
	close_host_stream();
	state_ = State::Released;
	return Status::Ok;
}

void PcmStream::attach_queue(vhostpp::Virtqueue *queue)
{
	if (queue == queue_)
		return;
	/* Chains of the old ring must not be touched any more; remember how far
	 * they got, for when they come again. */
	if (!queue) {
		resume_.clear();
		for (const Pending &p : pending_)
			resume_.push_back(Progress{ p.payload, p.done, p.end_position });
	}
	pending_.clear();
	fully_read_ = 0;
	queue_ = queue;
}

void PcmStream::submit(IoMessage message)
{
	if (!queue_)
		return;

	const size_t payload = message.payload_bytes();
	const bool accepting = state_ == State::Prepared || state_ == State::Running ||
			       state_ == State::Stopped;
	if (!accepting || payload == 0) {
		if (log_limit_.allow())
			logger().warn("stream {}: I/O message (head {}) completed with IO_ERR: {}", id_,
				      message.chain().head(),
				      payload == 0 ? std::string("no sample bytes")
						   : fmt::format("stream is {}", state_name(state_)));
		message.complete(*queue_, Status::IoErr, 0);
		queue_->notify();
		return;
	}

	Pending pending{ std::move(message), payload };
	if (!resume_.empty()) {
		const Progress r = resume_.front();
		resume_.pop_front();
		if (r.payload == payload) {
			pending.done = r.done;
			pending.end_position = r.end_position;
		} else {
			/* Not the chain that stopped in this place: start from scratch. */
			logger().warn("stream {}: a resumed I/O message holds {} bytes, {} before the stop; "
				      "not resuming the rest", id_, payload, r.payload);
			resume_.clear();
		}
	}
	const bool in_ring = direction_ == Direction::Output && pending.done == pending.payload;
	pending_.push_back(std::move(pending));
	/* Messages come back in order, so the entirely-read ones are at the front. */
	if (in_ring && fully_read_ + 1 == pending_.size())
		fully_read_++;
	if (state_ == State::Running)
		pump();
}

void PcmStream::backend_progress()
{
	if (state_ == State::Running)
		pump();
}

void PcmStream::pump()
{
	if (!queue_ || !ring_)
		return;
	const bool completed = direction_ == Direction::Output ? pump_output(state_ == State::Running)
							       : pump_input();
	if (completed)
		queue_->notify();
}

bool PcmStream::pump_output(bool refill)
{
	if (!queue_ || !ring_)
		return false;

	bool completed = false;
	const uint64_t consumed = ring_->total_read();
	while (fully_read_ > 0 && pending_.front().end_position <= consumed) {
		complete(pending_.front(), Status::Ok, host_->delay_bytes());
		pending_.pop_front();
		fully_read_--;
		completed = true;
	}

	/* Just in time: read guest samples only as far ahead as the back-end
	 * needs. A descriptor the driver re-queued may not hold its next
	 * samples yet. */
	const size_t target = refill ? lookahead_bytes() : 0;
	while (fully_read_ < pending_.size()) {
		const size_t fill = ring_->readable();
		if (fill >= target)
			break;
		Pending &p = pending_[fully_read_];
		size_t want = std::min({ target - fill, p.payload - p.done, ring_->writable() });
		/* Whole samples where the message has them, so that the gain below
		 * sees every sample in one piece. */
		if (p.payload - p.done >= sample_bytes_)
			want -= want % sample_bytes_;
		const uint64_t position = ring_->total_written();
		size_t moved = 0;
		const auto regions = ring_->write_regions(want);
		for (const auto &region : regions) {
			if (region.empty())
				continue;
			size_t got = 0;
			if (enabled_)
				got = p.message.read_payload(p.done + moved, region);
			/* Disabled output: silence in place of the guest's samples. */
			virtio_snd::fill_silence(params_->format, region.data() + got, region.size() - got,
						 position + moved + got);
			moved += region.size();
		}
		if (moved == 0)
			break;
		/* The guest's volume, below every back-end. */
		if (enabled_)
			apply_gain(params_->format, gain_, regions, position);
		ring_->commit_write(moved);
		p.done += moved;
		if (p.done == p.payload) {
			p.end_position = ring_->total_written();
			fully_read_++;
		}
	}
	return completed;
}

bool PcmStream::pump_input()
{
	if (!queue_ || !ring_)
		return false;

	bool completed = false;
	while (!pending_.empty()) {
		Pending &p = pending_.front();
		uint64_t position = ring_->total_read();
		size_t moved = 0;
		const auto regions = ring_->edit_regions(p.payload - p.done);
		/* The guest's capture volume, below every back-end. */
		if (enabled_)
			apply_gain(params_->format, gain_, regions, position);
		for (const auto &region : regions) {
			if (region.empty())
				continue;
			if (enabled_) {
				p.message.write_payload(p.done + moved, region);
			} else {
				/* Disabled input: the guest gets silence, never the captured bytes. */
				uint8_t silence[1024];
				for (size_t off = 0; off < region.size(); off += sizeof(silence)) {
					const size_t n = std::min(sizeof(silence), region.size() - off);
					virtio_snd::fill_silence(params_->format, silence, n, position + off);
					p.message.write_payload(p.done + moved + off, { silence, n });
				}
			}
			moved += region.size();
			position += region.size();
		}
		ring_->commit_read(moved);
		p.done += moved;
		if (p.done < p.payload)
			break;
		complete(p, Status::Ok, clamp_u32(uint64_t{ring_->readable()} + host_->delay_bytes()));
		pending_.pop_front();
		completed = true;
	}
	return completed;
}

void PcmStream::flush(Status status)
{
	resume_.clear();
	if (!queue_) {
		pending_.clear();
		fully_read_ = 0;
		return;
	}
	for (const Pending &p : pending_)
		complete(p, status, 0);
	const bool any = !pending_.empty();
	pending_.clear();
	fully_read_ = 0;
	if (any)
		queue_->notify();
}

void PcmStream::complete(const Pending &p, Status status, uint32_t latency)
{
	last_latency_ = latency;
	/* Output messages have no payload written; input ones report what they got. */
	p.message.complete(*queue_, status, latency, direction_ == Direction::Input ? p.done : 0);
}

void PcmStream::close_host_stream()
{
	/* The host stream uses the ring: it goes first. */
	host_.reset();
	ring_.reset();
	resume_.clear();
}

uint32_t PcmStream::lookahead_bytes() const
{
	if (tuning_.forced_lookahead_bytes)
		return *tuning_.forced_lookahead_bytes;

	const uint32_t frame = params_->frame_bytes();
	uint32_t lookahead = host_ ? host_->lookahead_bytes() : frame;
	/* Well under buffer_bytes - period_bytes of audio: the period the
	 * driver re-queues last must not be read before it is rewritten. */
	const uint32_t cap = (params_->buffer_bytes - params_->period_bytes) / 2 / frame * frame;
	if (cap >= frame)
		lookahead = std::min(lookahead, cap);
	return std::max(lookahead, frame);
}

uint32_t PcmStream::clamp_u32(uint64_t value) const
{
	return static_cast<uint32_t>(std::min<uint64_t>(value, UINT32_MAX));
}

PcmStream::Stats PcmStream::stats() const
{
	Stats s;
	s.id = id_;
	s.direction = direction_;
	s.enabled = enabled_;
	s.state = state_;
	s.params = params_;
	s.latency_bytes = last_latency_;
	s.queued_messages = pending_.size();
	if (ring_) {
		s.bytes = ring_->total_read();
		s.frames = s.bytes / params_->frame_bytes();
		s.ring_fill = ring_->readable();
		s.ring_capacity = ring_->capacity();
	}
	s.xruns = closed_xruns_ + (host_ ? host_->xruns() : 0);

	const std::string ring = ring_ ? fmt::format("ring {} B", ring_->capacity()) : "no ring";
	const std::string host =
		host_ ? host_->describe() : fmt::format("{} (closed)", source_backend().name());
	/* The mixer's gain, where it is applied; unity changes nothing and is not shown. */
	const std::string gate = !enabled_ ? "silenced"
				 : gain_ == kUnityGainPercent ? "enabled"
							      : fmt::format("enabled -> gain {}%", gain_);
	if (direction_ == Direction::Output)
		s.feeder = fmt::format("txq -> {} -> {} -> {}", gate, ring, host);
	else
		s.feeder = fmt::format("{} -> {} -> {} -> rxq", host, ring, gate);
	return s;
}

std::vector<std::pair<std::string, std::string>> PcmStream::host_details() const
{
	if (!host_)
		return {};
	return host_->details();
}

void PcmStream::reset()
{
	pending_.clear();
	fully_read_ = 0;
	close_host_stream();
	params_.reset();
	last_latency_ = 0;
	state_ = State::Idle;
}

} // namespace vhost_sound
