/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "device/sound_device.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace vhost_sound {

using namespace virtio_snd;
using vhostpp::DescriptorChain;
using vhostpp::Virtqueue;

namespace {

/* The largest item an *_INFO request may ask for. Larger than any item of
 * the spec (virtio_snd_ctl_info, the largest, is 96 bytes) so that a newer
 * driver's longer items are still answered, zero-padded; bounded because
 * the padding is written for every item: with a 4 GiB size over a chain of
 * overlapping descriptors, one request would hold the loop for seconds. */
constexpr uint32_t kMaxQueryItemBytes = 4096;

} // namespace

SoundDevice::SoundDevice(AudioBackend &backend, AudioBackend &silence, const Options &options)
	: backend_(backend),
	  chmaps_(channel_maps(backend.capabilities(Direction::Output),
			       backend.capabilities(Direction::Input))),
	  mixer_(options.input_enabled), controls_offered_(options.controls)
{
	streams_[kOutputStream] = std::make_unique<PcmStream>(kOutputStream, Direction::Output, backend,
							      silence, options.output_enabled,
							      options.tuning);
	streams_[kInputStream] = std::make_unique<PcmStream>(kInputStream, Direction::Input, backend,
							     silence, options.input_enabled,
							     options.tuning);
	config_.jacks = Jacks::kCount;
	config_.streams = kNumStreams;
	config_.chmaps = static_cast<uint32_t>(chmaps_.size());
	config_.controls = options.controls ? uint32_t{Mixer::kCount} : 0;
	jacks_.set_connected(Jacks::kLineOut, options.output_enabled);
	jacks_.set_connected(Jacks::kMicrophone, options.input_enabled);
	for (auto &stream : streams_)
		reported_states_[stream->id()] = stream->state();
}

SoundDevice::~SoundDevice() = default;

uint64_t SoundDevice::features() const
{
	/* Only when asked for: QEMU hands the guest every feature the back-end
	 * offers, also without controls=on, and then answers the driver's read
	 * of `controls` (beyond its 12-byte config space) with all ones. */
	return controls_offered_ ? uint64_t{1} << kFeatureCtls : 0;
}

bool SoundDevice::read_config(uint32_t offset, std::span<uint8_t> out)
{
	/* The library checked offset + size against config_size(); check again,
	 * it costs nothing. */
	if (offset > sizeof(config_) || out.size() > sizeof(config_) - offset)
		return false;
	std::memcpy(out.data(), reinterpret_cast<const uint8_t *>(&config_) + offset, out.size());
	return true;
}

void SoundDevice::queue_started(Virtqueue &queue)
{
	if (queue.index() >= kNumQueues)
		return;
	queues_[queue.index()] = &queue;
	for (auto &stream : streams_) {
		if ((queue.index() == kTxQueue && stream->direction() == Direction::Output) ||
		    (queue.index() == kRxQueue && stream->direction() == Direction::Input))
			stream->attach_queue(&queue);
	}
}

void SoundDevice::queue_stopped(Virtqueue &queue)
{
	if (queue.index() >= kNumQueues)
		return;
	queues_[queue.index()] = nullptr;
	/* Chains popped from a stopped ring must not be touched again. */
	if (queue.index() == kEventQueue)
		events_.clear();
	for (auto &stream : streams_) {
		if ((queue.index() == kTxQueue && stream->direction() == Direction::Output) ||
		    (queue.index() == kRxQueue && stream->direction() == Direction::Input))
			stream->attach_queue(nullptr);
	}
}

void SoundDevice::queue_kicked(Virtqueue &queue)
{
	switch (queue.index()) {
	case kControlQueue:
		process_control(queue);
		break;
	case kEventQueue:
		process_events(queue);
		break;
	case kTxQueue:
		process_io(queue, Direction::Output);
		break;
	case kRxQueue:
		process_io(queue, Direction::Input);
		break;
	default:
		break;
	}
}

void SoundDevice::reset()
{
	for (auto &stream : streams_) {
		stream->attach_queue(nullptr);
		stream->reset();
	}
	jacks_.reset();
	events_.clear();
	/* A new driver reads the jacks' state with JACK_INFO, the controls' with CTL_READ. */
	jack_events_.clear();
	ctl_events_.clear();
	queues_ = {};
	features_ = 0;
	for (const uint32_t id : mixer_.reset())
		control_changed(id, false);
	ctl_events_.clear();
	report_state_changes();
}

void SoundDevice::attach(vhostpp::DeviceContext &)
{
	guest_connected_ = true;
	if (observer_)
		observer_->guest_connected(true);
}

void SoundDevice::features_negotiated(uint64_t features)
{
	features_ = features;
}

void SoundDevice::detach()
{
	/* The library no longer resets a device on disconnect; the daemon still
	 * must: a guest that left holds no host stream open. */
	reset();
	if (!guest_connected_)
		return;
	guest_connected_ = false;
	features_ = 0;
	if (observer_)
		observer_->guest_connected(false);
}

void SoundDevice::report_state_changes()
{
	for (auto &stream : streams_) {
		PcmStream::State &reported = reported_states_[stream->id()];
		if (stream->state() == reported)
			continue;
		const PcmStream::State from = reported;
		reported = stream->state();
		if (observer_)
			observer_->stream_state_changed(stream->id(), from, reported);
	}
}

void SoundDevice::set_enabled(Direction direction, bool enabled)
{
	bool changed = false;
	for (auto &stream : streams_) {
		if (stream->direction() == direction && stream->enabled() != enabled) {
			stream->set_enabled(enabled);
			logger().info("{} {}", direction_name(direction), enabled ? "enabled" : "disabled");
			changed = true;
		}
	}
	if (!changed)
		return;
	jack_changed(direction, enabled);
	if (observer_)
		observer_->enabled_changed(direction, enabled);
	if (direction == Direction::Input && mixer_.set(Mixer::kHostMicrophone, enabled ? 1 : 0))
		control_changed(Mixer::kHostMicrophone, false);
	/* An input whose host stream could not be swapped is released. */
	report_state_changes();
}

void SoundDevice::jack_changed(Direction direction, bool connected)
{
	const uint32_t jack = Jacks::of(direction);
	jacks_.set_connected(jack, connected);
	auto waiting = std::find_if(jack_events_.begin(), jack_events_.end(),
				    [jack](const auto &e) { return e.first == jack; });
	if (waiting != jack_events_.end())
		waiting->second = connected;
	else
		jack_events_.emplace_back(jack, connected);
	send_events();
}

bool SoundDevice::set_control(uint32_t id, uint32_t value)
{
	if (id >= Mixer::kCount || !mixer_.set(id, value))
		return false;
	logger().info("mixer: the host set {} to {}", Mixer::name(id), mixer_.value(id));
	control_changed(id, false);
	return true;
}

void SoundDevice::control_changed(uint32_t id, bool by_guest)
{
	for (auto &stream : streams_)
		stream->set_gain(mixer_.gain(stream->direction()));
	if (controls_negotiated() &&
	    std::find(ctl_events_.begin(), ctl_events_.end(), id) == ctl_events_.end())
		ctl_events_.push_back(id);
	/* The host microphone mirrors the input's enable flag, which the
	 * observer already hears of (enabled_changed). */
	if (observer_ && id != Mixer::kHostMicrophone)
		observer_->mixer_changed(id, mixer_.value(id), by_guest);
	send_events();
}

void SoundDevice::send_events()
{
	Virtqueue *queue = queues_[kEventQueue];
	if (!queue || (jack_events_.empty() && ctl_events_.empty()) || events_.empty())
		return;
	while (!jack_events_.empty() && !events_.empty()) {
		const auto [jack, connected] = jack_events_.front();
		jack_events_.pop_front();
		const Event event{ { connected ? kEvtJackConnected : kEvtJackDisconnected }, jack };
		events_.front().write_object(0, event);
		queue->push(events_.front(), sizeof(event));
		events_.pop_front();
	}
	while (!ctl_events_.empty() && !events_.empty()) {
		const CtlEvent event{ { kEvtCtlNotify }, static_cast<uint16_t>(ctl_events_.front()),
				      static_cast<uint16_t>(1u << kCtlEvtMaskValue) };
		ctl_events_.pop_front();
		events_.front().write_object(0, event);
		queue->push(events_.front(), sizeof(event));
		events_.pop_front();
	}
	queue->notify();
}

bool SoundDevice::enabled(Direction direction) const
{
	for (const auto &stream : streams_) {
		if (stream->direction() == direction)
			return stream->enabled();
	}
	return false;
}

std::vector<PcmStream::Stats> SoundDevice::stream_stats() const
{
	std::vector<PcmStream::Stats> stats;
	for (const auto &stream : streams_)
		stats.push_back(stream->stats());
	return stats;
}

/* ---- control queue ---- */

void SoundDevice::process_control(Virtqueue &queue)
{
	while (auto chain = queue.pop()) {
		if (chain->writable_bytes() < sizeof(Hdr)) {
			if (control_log_.allow())
				logger().warn("control request (head {}): response buffer of {} bytes cannot "
					      "hold a status; returned unanswered",
					      chain->head(), chain->writable_bytes());
			queue.push(*chain, 0);
			continue;
		}
		size_t written = sizeof(Hdr);
		const Status status = handle_control(*chain, written);
		if (status != Status::Ok)
			written = sizeof(Hdr);
		chain->write_object(0, Hdr{ static_cast<uint32_t>(status) });
		queue.push(*chain, static_cast<uint32_t>(written));
		/* After each request: a batch of them is as many changes. */
		report_state_changes();
	}
	queue.notify();
}

Status SoundDevice::handle_control(const DescriptorChain &chain, size_t &written)
{
	const auto hdr = chain.read_object<Hdr>(0);
	if (!hdr) {
		if (control_log_.allow())
			logger().warn("control request (head {}): {} readable bytes, shorter than a header",
				      chain.head(), chain.readable_bytes());
		return Status::BadMsg;
	}

	switch (hdr->code) {
	case kJackInfo:
		return handle_query<JackInfo>(
			chain, Jacks::kCount, [this](uint32_t id) { return jacks_.info(id); }, written);
	case kPcmInfo:
		return handle_query<PcmInfo>(
			chain, kNumStreams,
			[this](uint32_t id) {
				const PcmInfo info = pcm_info(id);
				/* What the guest was told, in the log: the guest test compares
				 * it with what the guest's ALSA then accepts. */
				if (pcm_info_log_.allow())
					log_pcm_info(id, info);
				return info;
			},
			written);
	case kChmapInfo:
		return handle_query<ChmapInfo>(
			chain, static_cast<uint32_t>(chmaps_.size()),
			[this](uint32_t id) { return chmaps_[id]; }, written);
	case kJackRemap: {
		const auto req = chain.read_object<JackRemap>(0);
		if (!req || req->hdr.jack_id >= Jacks::kCount) {
			if (control_log_.allow())
				logger().warn("JACK_REMAP: {}", req ? "jack_id out of range" : "request too short");
			return Status::BadMsg;
		}
		return jacks_.remap(req->hdr.jack_id, req->association, req->sequence);
	}
	case kPcmSetParams:
	case kPcmPrepare:
	case kPcmRelease:
	case kPcmStart:
	case kPcmStop:
		return handle_pcm(chain, hdr->code);
	case kCtlInfo:
	case kCtlEnumItems:
	case kCtlRead:
	case kCtlWrite:
	case kCtlTlvRead:
	case kCtlTlvWrite:
	case kCtlTlvCommand: {
		if (!controls_negotiated()) {
			if (control_log_.allow())
				logger().warn("{}: VIRTIO_SND_F_CTLS was not negotiated", request_name(hdr->code));
			return Status::NotSupp;
		}
		if (hdr->code == kCtlInfo)
			return handle_query<CtlInfo>(
				chain, Mixer::kCount, [this](uint32_t id) { return mixer_.info(id); }, written);
		std::vector<uint32_t> changed;
		const Status status = mixer_.handle(chain, hdr->code, written, changed);
		for (const uint32_t id : changed)
			control_changed(id, true);
		return status;
	}
	default:
		if (control_log_.allow())
			logger().warn("control request code {:#x} is not supported", hdr->code);
		return Status::NotSupp;
	}
}

template<typename Item, typename Fill>
Status SoundDevice::handle_query(const DescriptorChain &chain, uint32_t total, Fill fill,
				 size_t &written)
{
	const auto req = chain.read_object<QueryInfo>(0);
	auto refuse = [&](const char *why) {
		if (control_log_.allow())
			logger().warn("{}: {}", request_name(req ? req->hdr.code : 0), why);
		return Status::BadMsg;
	};
	if (!req)
		return refuse("request shorter than virtio_snd_query_info");
	if (req->size < sizeof(Item))
		return refuse("item size smaller than the structure");
	if (req->size > kMaxQueryItemBytes)
		return refuse("item size larger than 4096 bytes");
	if (uint64_t{req->start_id} + req->count > total)
		return refuse("start_id + count past the last item");
	const uint64_t needed = sizeof(Hdr) + uint64_t{req->count} * req->size;
	if (chain.writable_bytes() < needed)
		return refuse("response buffer smaller than count * size");

	/* A driver newer than this device may ask for larger items: the extra
	 * bytes of each are zero. */
	size_t at = sizeof(Hdr);
	for (uint32_t i = 0; i < req->count; i++) {
		const Item item = fill(req->start_id + i);
		chain.write_object(at, item);
		if (req->size > sizeof(Item))
			chain.fill(at + sizeof(Item), 0, req->size - sizeof(Item));
		at += req->size;
	}
	written = at;
	return Status::Ok;
}

Status SoundDevice::handle_pcm(const DescriptorChain &chain, uint32_t code)
{
	const auto hdr = chain.read_object<PcmHdr>(0);
	if (!hdr || hdr->stream_id >= kNumStreams) {
		if (control_log_.allow())
			logger().warn("{}: {}", request_name(code),
				      hdr ? "stream_id out of range" : "request too short");
		return Status::BadMsg;
	}
	PcmStream &stream = *streams_[hdr->stream_id];

	switch (code) {
	case kPcmSetParams: {
		const auto req = chain.read_object<PcmSetParams>(0);
		if (!req) {
			if (control_log_.allow())
				logger().warn("PCM_SET_PARAMS: request too short");
			return Status::BadMsg;
		}
		return stream.set_params(*req);
	}
	case kPcmPrepare:
	case kPcmStart: {
		const Status status = code == kPcmPrepare ? stream.prepare() : stream.start();
		/* IO_ERR from these two is the back-end's refusal. */
		if (status == Status::IoErr && observer_)
			observer_->backend_error(stream.id(),
						 fmt::format("the back-end refused to {} the stream",
							     code == kPcmPrepare ? "open" : "start"));
		return status;
	}
	case kPcmRelease:
		return stream.release();
	case kPcmStop:
		return stream.stop();
	default:
		return Status::NotSupp;
	}
}

PcmInfo SoundDevice::pcm_info(uint32_t id) const
{
	const PcmStream &stream = *streams_[id];
	const PcmCapabilities &caps = stream.capabilities();
	PcmInfo info{};
	info.hdr.hda_fn_nid = 0;
	info.features = 0;
	info.formats = caps.formats;
	info.rates = caps.rates;
	info.direction = static_cast<uint8_t>(stream.direction());
	info.channels_min = caps.channels_min;
	info.channels_max = caps.channels_max;
	return info;
}

void SoundDevice::log_pcm_info(uint32_t id, const PcmInfo &info)
{
	std::string formats, rates;
	for (unsigned f = 0; f < kNumFormats; ++f)
		if (info.formats & (uint64_t{1} << f))
			formats += fmt::format("{}{}", formats.empty() ? "" : ",", format_name(static_cast<uint8_t>(f)));
	for (unsigned r = 0; r < kNumRates; ++r)
		if (info.rates & (uint64_t{1} << r))
			rates += fmt::format("{}{}", rates.empty() ? "" : ",", rate_hz(static_cast<uint8_t>(r)));
	logger().info("PCM_INFO stream {} ({}): formats {} rates {} channels {}-{}", id,
		      direction_name(static_cast<Direction>(info.direction)), formats, rates,
		      info.channels_min, info.channels_max);
}

/* ---- event queue ---- */

void SoundDevice::process_events(Virtqueue &queue)
{
	bool returned = false;
	while (auto chain = queue.pop()) {
		if (chain->readable_bytes() != 0 || chain->writable_bytes() < sizeof(Event)) {
			if (io_log_.allow())
				logger().warn("event buffer (head {}): {} readable / {} writable bytes, "
					      "needs 0 / {}; returned unused",
					      chain->head(), chain->readable_bytes(), chain->writable_bytes(),
					      sizeof(Event));
			queue.push(*chain, 0);
			returned = true;
			continue;
		}
		/* Kept for jack and control events. */
		events_.push_back(std::move(*chain));
	}
	if (returned)
		queue.notify();
	send_events();
}

/* ---- tx and rx queues ---- */

void SoundDevice::process_io(Virtqueue &queue, Direction direction)
{
	bool returned = false;
	while (auto chain = queue.pop()) {
		IoMessage message(std::move(*chain), direction);
		const char *why = nullptr;
		const auto id = message.stream_id();
		if (!message.has_footer())
			why = "no room for the 8-byte status";
		else if (!id)
			why = "header shorter than virtio_snd_pcm_xfer";
		else if (*id >= kNumStreams)
			why = "stream_id out of range";
		else if (streams_[*id]->direction() != direction)
			why = direction == Direction::Output ? "input stream on the tx queue"
							     : "output stream on the rx queue";
		if (!why) {
			streams_[*id]->submit(std::move(message));
			continue;
		}

		if (io_log_.allow())
			logger().warn("{} message (head {}, stream {}): {}; {}",
				      direction == Direction::Output ? "tx" : "rx", message.chain().head(),
				      id ? std::to_string(*id) : std::string("?"), why,
				      message.has_footer() ? "completed with IO_ERR" : "returned with length 0");
		message.complete(queue, Status::IoErr, 0);
		returned = true;
	}
	if (returned)
		queue.notify();
}

} // namespace vhost_sound
