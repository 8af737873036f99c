/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file pcm_stream.h
 * \brief One PCM stream: its command state machine and its data path.
 */
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <vhostpp/virtqueue.h>

#include "audio/audio_backend.h"
#include "audio/byte_ring.h"
#include "device/io_message.h"
#include "sound_log.h"
#include "device/virtio_snd.h"

namespace vhost_sound {

/** \brief Knobs of the data path that are not part of the virtio interface. */
struct StreamTuning {
	/**
	 * \brief Largest buffer_bytes accepted by SET_PARAMS (NOT_SUPP above).
	 * 16 MiB holds 160 ms — Linux's default pcm_buffer_ms — of the
	 * fastest stream the spec can express several times over.
	 */
	uint32_t max_buffer_bytes = 16u << 20;
	/**
	 * \brief Force the output look-ahead, in bytes, instead of the
	 * back-end's wish capped at (buffer_bytes - period_bytes) / 2. Only for
	 * experiments and for the test that proves reading early is detected.
	 */
	std::optional<uint32_t> forced_lookahead_bytes;
};

/**
 * \brief One virtio-sound PCM stream.
 *
 * Command lifecycle (spec "PCM Command Lifecycle"); any other transition
 * is refused with BAD_MSG and leaves the stream as it was:
 *
 *     Idle, ParamsSet, Prepared, Released --SET_PARAMS--> ParamsSet
 *     ParamsSet, Prepared, Released       --PREPARE-----> Prepared
 *     Prepared, Stopped                   --START-------> Running
 *     Running                             --STOP--------> Stopped
 *     Prepared, Stopped                   --RELEASE-----> Released
 *
 * PREPARE opens a host stream on the back-end (replacing, never leaking,
 * the previous one) and a ByteRing of at least buffer_bytes; RELEASE
 * closes both.
 *
 * Data path. I/O messages for a Prepared, Running or Stopped stream are
 * kept in arrival order; in any other state they complete at once with
 * IO_ERR. While Running:
 * - output: samples are copied from the head messages into the ring just
 *   in time, keeping at most the look-ahead in the ring, never when a
 *   message arrives (the Linux driver re-queues a period before it has
 *   written its next samples); a message completes once the back-end has
 *   consumed its last byte;
 * - input: captured bytes are copied from the ring into the head message,
 *   which completes once full.
 * STOP keeps everything for a later START. RELEASE completes every kept
 * message (status OK; an input message with the bytes it got so far, the
 * spec's "end of stream" exception) before it returns.
 *
 * Gain (set_gain(), the mixer's volume and switch): applied here too, with
 * apply_gain() as output samples enter the ring and as captured bytes leave
 * it; output moves whole samples into the ring where the message has them.
 *
 * Enable flag: checked here, below every back-end. A disabled output puts
 * silence in the ring in place of the guest's samples (timing unchanged);
 * a disabled input gives the guest silence in place of the captured bytes.
 * Microphone privacy, the second line behind that check: while an input
 * stream is disabled its host stream is not opened on the back-end at all
 * (the host's capture device stays closed); the stream runs on the
 * \a silence source instead, the daemon's own clock, so the guest keeps
 * getting zeros at the stream's pace. Enabling a prepared input opens the
 * back-end's stream in its place (started if running), disabling closes it.
 *
 * latency_bytes in a completed message's status: the bytes that lie, at
 * the moment of completion, between this message's last byte and the
 * back-end's real-time position, outside the buffers the driver still
 * counts as pending. Output: bytes the back-end has taken from the ring
 * and not yet played (BackendStream::delay_bytes()); the ring's own bytes
 * belong to messages not yet completed, which the driver already counts
 * (Linux adds latency_bytes to them as runtime->delay). Input: bytes
 * captured after this message's last byte and not yet given to the guest:
 * the ring's fill plus the back-end's delay. Messages completed by RELEASE
 * or with an error carry 0.
 */
class PcmStream : private BackendStreamListener
{
public:
	enum class State {
		Idle,
		ParamsSet,
		Prepared,
		Running,
		Stopped,
		Released,
	};

	/** \brief Counters and settings for the control socket's STATUS. */
	struct Stats {
		uint32_t id = 0;
		Direction direction = Direction::Output;
		bool enabled = false;
		State state = State::Idle;
		/** \brief Valid from SET_PARAMS on. */
		std::optional<PcmParams> params;
		/** \brief Bytes moved between guest and back-end since PREPARE. */
		uint64_t bytes = 0;
		uint64_t frames = 0;
		/** \brief Back-end xruns since PREPARE. */
		uint64_t xruns = 0;
		/** \brief latency_bytes of the last completed message. */
		uint32_t latency_bytes = 0;
		size_t ring_fill = 0;
		size_t ring_capacity = 0;
		size_t queued_messages = 0;
		/** \brief The path audio takes, e.g. "txq -> ring 32768 B -> null sink ...". */
		std::string feeder;
	};

	/**
	 * \brief Stream \a id of \a direction, opening host streams on \a backend.
	 * \a enabled is the initial state of the enable flag. \a silence (a
	 * NullBackend on the daemon's loop) stands in for \a backend while an
	 * input stream is disabled; both outlive the stream.
	 */
	PcmStream(uint32_t id, Direction direction, AudioBackend &backend, AudioBackend &silence,
		  bool enabled, const StreamTuning &tuning = {});
	~PcmStream() override;
	PcmStream(const PcmStream &) = delete;
	PcmStream &operator=(const PcmStream &) = delete;

	uint32_t id() const { return id_; }
	Direction direction() const { return direction_; }
	State state() const { return state_; }
	/** \brief What PCM_INFO advertises: the back-end's capabilities for this direction. */
	const PcmCapabilities &capabilities() const { return caps_; }
	/** \brief The parameters last accepted by SET_PARAMS. */
	const std::optional<PcmParams> &params() const { return params_; }

	/* ---- control requests: the status for the reply ---- */

	virtio_snd::Status set_params(const virtio_snd::PcmSetParams &request);
	virtio_snd::Status prepare();
	virtio_snd::Status release();
	virtio_snd::Status start();
	virtio_snd::Status stop();

	/* ---- I/O ---- */

	/**
	 * \brief The queue this stream's messages come from and complete to,
	 * or nullptr when it stopped. Messages kept from the old queue are
	 * forgotten without completing them: after queue_stopped() the device
	 * must not touch that ring.
	 */
	void attach_queue(vhostpp::Virtqueue *queue);
	/**
	 * \brief Take one I/O message addressed to this stream, from the queue
	 * of this stream's direction (the device checks both), with room for
	 * its footer.
	 */
	void submit(IoMessage message);

	/* ---- host controls ---- */

	/** \brief Switch the enable flag; for input, swaps the host stream (see the class). */
	void set_enabled(bool enabled);
	bool enabled() const { return enabled_; }
	/**
	 * \brief The gain, in percent, applied to every sample between the guest
	 * and the back-end (sample_gain.h; the mixer's volume and switch). From
	 * the next byte moved on; 0 gives silence at the stream's normal pace.
	 */
	void set_gain(uint32_t percent) { gain_ = percent; }
	uint32_t gain() const { return gain_; }

	Stats stats() const;
	/**
	 * \brief BackendStream::details() of the open host stream (none while
	 * closed), for STATUS. Not part of stats(), which ControlEvents reads
	 * every second while a stream runs: a back-end may take a lock for it.
	 */
	std::vector<std::pair<std::string, std::string>> host_details() const;

	/** \brief Device reset: forget kept messages, close the host stream, back to Idle. */
	void reset();

	/** \brief "idle", "params-set", "prepared", "running", "stopped", "released". */
	static std::string_view state_name(State state);

private:
	struct Pending {
		IoMessage message;
		size_t payload;
		/* Output: payload bytes copied to the ring; input: payload bytes written. */
		size_t done = 0;
		/* Output: ring position just after the last byte, once all are in the ring. */
		uint64_t end_position = 0;
	};

	void backend_progress() override;
	void pump();
	/* Complete consumed output messages and, with \a refill, top the ring
	 * up to the look-ahead; true if any completed. */
	bool pump_output(bool refill);
	/* Fill input messages from the ring; true if any completed. */
	bool pump_input();
	/* Complete every kept message (RELEASE). */
	void flush(virtio_snd::Status status);
	void complete(const Pending &pending, virtio_snd::Status status, uint32_t latency);
	void close_host_stream();
	/* The back-end host streams are opened on now: \a silence_ for a disabled input. */
	AudioBackend &source_backend() const;
	/* Overwrite the captured bytes already in kept input messages with silence. */
	void silence_partial_input();
	/* Open the host stream on source_backend() over the current ring, started if running. */
	void reopen_host_stream();
	uint32_t lookahead_bytes() const;
	uint32_t clamp_u32(uint64_t value) const;

	const uint32_t id_;
	const Direction direction_;
	AudioBackend &backend_;
	AudioBackend &silence_;
	const PcmCapabilities caps_;
	const StreamTuning tuning_;
	bool enabled_;
	uint32_t gain_ = 100;
	/* Bytes per sample of params_' format (1 before SET_PARAMS). */
	size_t sample_bytes_ = 1;

	State state_ = State::Idle;
	std::optional<PcmParams> params_;

	vhostpp::Virtqueue *queue_ = nullptr;
	std::deque<Pending> pending_;
	/* Output: how many messages at the front are entirely in the ring. */
	size_t fully_read_ = 0;

	/* How far each message held when the ring stopped had got. The library
	 * hands those chains to the ring's next start again, in order
	 * (queue_in_order()), e.g. after a VM pause: without this their samples
	 * already in the ring (output) or already in guest memory (input) would
	 * be moved a second time. Valid while the same ring_ lives. */
	struct Progress {
		size_t payload;
		size_t done;
		uint64_t end_position;
	};
	std::deque<Progress> resume_;

	/* The ring outlives the host stream that uses it: declared first, destroyed last. */
	std::unique_ptr<ByteRing> ring_;
	std::unique_ptr<BackendStream> host_;

	uint32_t last_latency_ = 0;
	/* Xruns of host streams closed since PREPARE (an input swapped by set_enabled()). */
	uint64_t closed_xruns_ = 0;
	LogLimiter log_limit_;
};

} // namespace vhost_sound
