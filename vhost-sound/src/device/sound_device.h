/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file sound_device.h
 * \brief The virtio-sound device served over vhost-user.
 */
#pragma once

#include <array>
#include <deque>
#include <memory>
#include <vector>

#include <vhostpp/device.h>

#include "audio/audio_backend.h"
#include "device/mixer.h"
#include "device/pcm_stream.h"
#include "sound_log.h"
#include "device/topology.h"
#include "device/virtio_snd.h"

namespace vhost_sound {

/**
 * \brief Told of what the host may want to follow (the control socket's
 * WATCH). Called on the loop's thread, after the change took effect.
 */
class DeviceObserver
{
public:
	virtual ~DeviceObserver() = default;
	/** \brief The host enabled or disabled \a direction. */
	virtual void enabled_changed(Direction direction, bool enabled) = 0;
	/** \brief Stream \a id went from \a from to \a to. */
	virtual void stream_state_changed(uint32_t id, PcmStream::State from, PcmStream::State to) = 0;
	/** \brief A front-end connected (true) or left (false). */
	virtual void guest_connected(bool connected) = 0;
	/** \brief The back-end failed for stream \a id; \a what says how. */
	virtual void backend_error(uint32_t id, const std::string &what) = 0;
	/** \brief Mixer control \a id (Mixer::Control) now has \a value; \a by_guest: a CTL_WRITE. */
	virtual void mixer_changed(uint32_t id, uint32_t value, bool by_guest)
	{
		(void)id;
		(void)value;
		(void)by_guest;
	}
};

/**
 * \brief A virtio-sound card with one output stream (0), one input stream
 * (1), two jacks and the back-end's channel maps.
 *
 * Queues: 0 control, 1 event, 2 tx, 3 rx. Control requests are answered
 * synchronously in the order they arrive. Status codes:
 *
 * | condition                                                        | status   |
 * |------------------------------------------------------------------|----------|
 * | request shorter than its structure (header, query, PCM, remap)    | BAD_MSG  |
 * | jack / stream id out of range; start_id + count past the end      | BAD_MSG  |
 * | query `size` smaller than the item; response buffer too small     | BAD_MSG  |
 * | SET_PARAMS: undefined format / rate / feature code, channels 0,   | BAD_MSG  |
 * |   period_bytes 0, period not dividing buffer, not whole frames    |          |
 * | transition the command lifecycle does not allow                   | BAD_MSG  |
 * | JACK_REMAP association or sequence over 15                        | BAD_MSG  |
 * | unknown request code; CTL_* while VIRTIO_SND_F_CTLS not negotiated | NOT_SUPP |
 * | CTL_* requests: see Mixer                                         |          |
 * | SET_PARAMS: format, rate, channels or feature not advertised;     | NOT_SUPP |
 * |   buffer_bytes over the limit                                     |          |
 * | back-end refused to open (PREPARE) or start (START) the stream    | IO_ERR   |
 *
 * A response buffer too small for even the 4-byte status is returned with
 * length 0. I/O messages: bad stream id, a short header, the wrong queue
 * for the stream's direction, no sample bytes, or a stream that is not
 * prepared complete with IO_ERR (the only error status the spec allows for
 * I/O); a message without room for its 8-byte status is returned with
 * length 0. No guest input stops a queue or the daemon.
 *
 * Event queue buffers are kept for later events. The host's enable flags
 * are the jacks' presence: disabling a direction sends JACK_DISCONNECTED
 * for its jack (line out, microphone), enabling JACK_CONNECTED, and
 * JACK_INFO reports the current state. With no event buffer at hand the
 * latest state of each jack waits for the next one the driver queues.
 *
 * Controls (Options::controls, the daemon's `--controls`): the device then
 * offers VIRTIO_SND_F_CTLS and its config space reports Mixer::kCount
 * controls (bytes 12..15, which only a 16-byte read — QEMU's
 * `controls=on` — reaches). A change of a control's value, by the host or
 * by a guest's CTL_WRITE, sends CTL_NOTIFY (mask VALUE) once the driver
 * negotiated the feature; like jack events, a change waits for an event
 * buffer, one per control. The mixer's gains are applied by the streams.
 */
class SoundDevice : public vhostpp::Device
{
public:
	static constexpr uint32_t kOutputStream = 0;
	static constexpr uint32_t kInputStream = 1;
	static constexpr uint32_t kNumStreams = 2;

	struct Options {
		/** \brief Initial enable flags (the control socket changes them at run time). */
		bool output_enabled = true;
		bool input_enabled = false;
		/** \brief Offer VIRTIO_SND_F_CTLS and the mixer's controls. */
		bool controls = false;
		StreamTuning tuning;
	};

	/**
	 * \brief A card on \a backend. \a silence, a NullBackend on the same
	 * loop, paces the input stream while input is disabled, so that the
	 * host's capture device is then not open. Both outlive the device.
	 */
	SoundDevice(AudioBackend &backend, AudioBackend &silence, const Options &options);
	~SoundDevice() override;

	/* ---- vhostpp::Device ---- */

	unsigned num_queues() const override { return virtio_snd::kNumQueues; }
	/** \brief VIRTIO_SND_F_CTLS with Options::controls, nothing otherwise. */
	uint64_t features() const override;
	/*
	 * A driver's I/O buffers complete in the order they came (one stream per
	 * direction, FIFO), and event buffers are used in order: so buffers held
	 * when a ring stops (a VM pause) are handed back on its next start rather
	 * than lost. Only a guest that mixes I/O for bad stream ids into a held
	 * queue breaks the order, and then only its own queue.
	 */
	bool queue_in_order(unsigned) const override { return true; }
	/** \brief 16 bytes: jacks, streams, chmaps, controls (0 without Options::controls). */
	uint32_t config_size() const override { return sizeof(virtio_snd::Config); }
	bool read_config(uint32_t offset, std::span<uint8_t> out) override;
	void queue_started(vhostpp::Virtqueue &queue) override;
	void queue_kicked(vhostpp::Virtqueue &queue) override;
	void queue_stopped(vhostpp::Virtqueue &queue) override;
	/** \brief A device reset (SET_STATUS 0, RESET_DEVICE, RESET_OWNER): streams
	 *  released, jacks and controls back to their defaults. */
	void reset() override;
	/** \brief A front-end connected: the guest counts as connected until detach(). */
	void attach(vhostpp::DeviceContext &context) override;
	void features_negotiated(uint64_t features) override;
	/** \brief The front-end left: everything reset() releases (host streams
	 *  close at once, a new guest starts from the defaults), and the guest no
	 *  longer counts as connected. */
	void detach() override;

	/* ---- host side (control socket), on the loop's thread ---- */

	/** \brief Enable or disable every stream of \a direction (takes effect at once). */
	void set_enabled(Direction direction, bool enabled);
	bool enabled(Direction direction) const;
	std::vector<PcmStream::Stats> stream_stats() const;
	const AudioBackend &backend() const { return backend_; }
	/** \brief Event buffers the driver gave and the device keeps. */
	size_t kept_event_buffers() const { return events_.size(); }
	/** \brief The config space as the driver reads it. */
	const virtio_snd::Config &config() const { return config_; }

	/** \brief True between attach() and detach(). */
	bool guest_connected() const { return guest_connected_; }
	/** \brief Virtio features the driver accepted (0 before SET_FEATURES and after a reset). */
	uint64_t negotiated_features() const { return features_; }
	/** \brief JACK_INFO's view of the jacks. */
	const Jacks &jacks() const { return jacks_; }
	/** \brief Jack events waiting for an event buffer. */
	size_t pending_jack_events() const { return jack_events_.size(); }
	/** \brief The card's controls (their values also with controls not offered). */
	const Mixer &mixer() const { return mixer_; }
	/** \brief True if the driver accepted VIRTIO_SND_F_CTLS. */
	bool controls_negotiated() const { return (features_ >> virtio_snd::kFeatureCtls) & 1; }
	/**
	 * \brief The host sets control \a id (Mixer::Control) to \a value (clamped
	 * to its range): applied at once, the guest notified, the observer told.
	 * False if the value was already that.
	 */
	bool set_control(uint32_t id, uint32_t value);
	/** \brief Control events waiting for an event buffer. */
	size_t pending_control_events() const { return ctl_events_.size(); }
	/** \brief Tell \a observer (nullptr: nobody) of changes; it outlives the device or is unset first. */
	void set_observer(DeviceObserver *observer) { observer_ = observer; }

	/** \brief The stream \a id (< kNumStreams), e.g. for tests. */
	PcmStream &stream(uint32_t id) { return *streams_.at(id); }

private:
	void process_control(vhostpp::Virtqueue &queue);
	void process_events(vhostpp::Virtqueue &queue);
	void process_io(vhostpp::Virtqueue &queue, Direction direction);

	/* Handle one control request; on OK \a written counts the response bytes. */
	virtio_snd::Status handle_control(const vhostpp::DescriptorChain &chain, size_t &written);
	/* The three *_INFO requests. */
	template<typename Item, typename Fill>
	virtio_snd::Status handle_query(const vhostpp::DescriptorChain &chain, uint32_t total,
					Fill fill, size_t &written);
	virtio_snd::Status handle_pcm(const vhostpp::DescriptorChain &chain, uint32_t code);
	virtio_snd::PcmInfo pcm_info(uint32_t id) const;
	static void log_pcm_info(uint32_t id, const virtio_snd::PcmInfo &info);
	/* Tell the observer of stream states that changed since the last call. */
	void report_state_changes();
	/* Queue the jack event for \a direction's new state and send what can be sent. */
	void jack_changed(Direction direction, bool connected);
	/* Use kept event buffers for waiting jack and control events. */
	void send_events();
	/* Control \a id changed: gains to the streams, CTL_NOTIFY queued, observer told. */
	void control_changed(uint32_t id, bool by_guest);

	AudioBackend &backend_;
	std::array<std::unique_ptr<PcmStream>, kNumStreams> streams_;
	Jacks jacks_;
	const std::vector<virtio_snd::ChmapInfo> chmaps_;
	virtio_snd::Config config_{};

	std::array<vhostpp::Virtqueue *, virtio_snd::kNumQueues> queues_{};
	std::deque<vhostpp::DescriptorChain> events_;
	/* Jack events waiting for a buffer, oldest first, one per jack (its latest state). */
	std::deque<std::pair<uint32_t, bool>> jack_events_;
	/* Control ids whose CTL_NOTIFY waits for a buffer, each once. */
	std::deque<uint32_t> ctl_events_;
	Mixer mixer_;
	const bool controls_offered_;

	DeviceObserver *observer_ = nullptr;
	std::array<PcmStream::State, kNumStreams> reported_states_{};
	bool guest_connected_ = false;
	uint64_t features_ = 0;

	LogLimiter control_log_;
	LogLimiter io_log_;
	LogLimiter pcm_info_log_;
};

} // namespace vhost_sound
