/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file audio_backend.h
 * \brief The interface between the virtio-sound device and a host audio system.
 *
 * A back-end says what it can play and capture, and opens one host stream
 * per prepared PCM stream. Audio moves through one ByteRing per stream:
 * for output the device is the producer and the back-end the consumer, for
 * input the reverse. The back-end decides the pace (it is the clock); it
 * never touches guest memory and never blocks on the device.
 *
 * Threads: open(), start(), stop() and the destructor of a BackendStream
 * are called on the event loop's thread. A back-end may move ring bytes on
 * its own thread (an ALSA or PipeWire real-time thread) or on the loop (the
 * null back-end's timer). Whichever it is, it calls
 * BackendStreamListener::backend_progress() on the loop's thread: a
 * threaded back-end posts to the loop and must make sure such a posted call
 * never runs after its BackendStream was destroyed.
 */
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audio/byte_ring.h"
#include "device/virtio_snd.h"

namespace vhost_sound {

using virtio_snd::Direction;

/** \brief What a back-end supports for one direction, as PCM_INFO advertises it. */
struct PcmCapabilities {
	/** \brief 1 << VIRTIO_SND_PCM_FMT_*; only linear PCM formats. */
	uint64_t formats = 0;
	/** \brief 1 << VIRTIO_SND_PCM_RATE_*. */
	uint64_t rates = 0;
	uint8_t channels_min = 0;
	uint8_t channels_max = 0;

	bool has_format(uint8_t format) const { return format < 64 && (formats >> format) & 1; }
	bool has_rate(uint8_t rate) const { return rate < 64 && (rates >> rate) & 1; }
	bool has_channels(uint8_t channels) const
	{
		return channels >= channels_min && channels <= channels_max;
	}
};

/** \brief The parameters of one stream, as validated from PCM_SET_PARAMS. */
struct PcmParams {
	Direction direction = Direction::Output;
	/** \brief VIRTIO_SND_PCM_FMT_* (a linear PCM format). */
	uint8_t format = virtio_snd::kFmtS16;
	/** \brief VIRTIO_SND_PCM_RATE_*. */
	uint8_t rate = virtio_snd::kRate48000;
	uint8_t channels = 2;
	uint32_t buffer_bytes = 0;
	uint32_t period_bytes = 0;

	/** \brief Bytes per sample. */
	uint32_t sample_bytes() const { return virtio_snd::format_info(format)->sample_bytes; }
	/** \brief Bytes per frame (one sample per channel). */
	uint32_t frame_bytes() const { return sample_bytes() * channels; }
	/** \brief Frames per second. */
	uint32_t rate_hz() const { return virtio_snd::rate_hz(rate); }
	/** \brief Bytes per second. */
	uint64_t byte_rate() const { return uint64_t{frame_bytes()} * rate_hz(); }
};

/**
 * \brief Told by a back-end stream that audio moved through its ring.
 */
class BackendStreamListener
{
public:
	virtual ~BackendStreamListener() = default;
	/**
	 * \brief The back-end consumed output bytes from the ring or produced
	 * input bytes into it. Always called on the loop's thread; the device
	 * then completes buffers and refills (or drains) the ring.
	 */
	virtual void backend_progress() = 0;
};

/**
 * \brief One open host stream. Destroying it stops it and releases every
 * host resource it holds; after the destructor returns it no longer
 * touches the ring nor calls the listener.
 */
class BackendStream
{
public:
	virtual ~BackendStream() = default;

	/** \brief Start moving audio at the stream's rate. False (and a log line) on failure. */
	virtual bool start() = 0;
	/** \brief Stop moving audio; the ring's contents stay for a later start(). */
	virtual void stop() = 0;
	/**
	 * \brief The output's enable flag (called after open() and at every
	 * change). While disabled the device writes silence into the ring; a
	 * back-end may idle its host stream meanwhile, but the ring must still
	 * be consumed at the stream's pace. Default: nothing changes.
	 */
	virtual void set_output_enabled(bool enabled) { (void)enabled; }

	/**
	 * \brief Bytes inside the back-end, outside the ring: for output,
	 * consumed from the ring but not yet played; for input, captured but not
	 * yet written to the ring. Part of latency_bytes.
	 */
	virtual uint32_t delay_bytes() const = 0;
	/**
	 * \brief For output: how many bytes the device should keep in the ring
	 * ahead of the back-end so that it never starves between two
	 * backend_progress() calls. The device reads guest samples only that far
	 * ahead (and never more than half of buffer_bytes - period_bytes).
	 */
	virtual uint32_t lookahead_bytes() const = 0;
	/** \brief Underruns (output) or overruns (input) since the stream was opened. */
	virtual uint64_t xruns() const = 0;
	/** \brief One line for STATUS: what the back-end does with the ring, e.g. "null clock 10ms". */
	virtual std::string describe() const = 0;
	/**
	 * \brief This host stream's own details for STATUS, as key and value
	 * (the ALSA PCM's name and the period and buffer it really got, the
	 * PipeWire node id, ...); none by default. Called on the loop's thread,
	 * so it may only read what the loop owns, constants and atomics, or
	 * what it takes a lock for that the real-time path never holds long.
	 */
	virtual std::vector<std::pair<std::string, std::string>> details() const { return {}; }
};

/**
 * \brief A host audio system (null, ALSA, PipeWire).
 */
class AudioBackend
{
public:
	virtual ~AudioBackend() = default;

	/** \brief The name used by --backend and STATUS. */
	virtual std::string_view name() const = 0;
	/** \brief What this back-end really supports in \a direction. */
	virtual PcmCapabilities capabilities(Direction direction) const = 0;
	/**
	 * \brief The back-end's own details for STATUS, as key and value (the
	 * ALSA devices, the PipeWire remote, the files, ...); none by default.
	 * What belongs to one open stream is BackendStream::details(). Loop
	 * thread.
	 */
	virtual std::vector<std::pair<std::string, std::string>> details() const { return {}; }
	/**
	 * \brief Open a host stream for \a params (already checked against
	 * capabilities()), moving audio through \a ring and reporting to
	 * \a listener; both outlive the returned stream. The stream starts
	 * stopped. Nothing (and a log line) when the host refuses.
	 */
	virtual std::unique_ptr<BackendStream> open(const PcmParams &params, ByteRing &ring,
						    BackendStreamListener &listener) = 0;
};

} // namespace vhost_sound
