/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file null_backend.h
 * \brief A real-time sink and source that needs no sound hardware.
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <span>
#include <string>

#include "audio/audio_backend.h"
#include "audio/backend_registry.h"

namespace vhost_sound {

/**
 * \brief The null back-end: plays into nothing and captures silence, at
 * the stream's rate, from the loop's steady clock.
 *
 * Each started stream runs one asio::steady_timer on the loop; a tick
 * consumes (output) or produces (input) the frames that became due since
 * the stream started, so a guest playing N seconds of audio takes N
 * seconds. Ticks are scheduled on an absolute grid, so a late tick does
 * not make the clock drift. No timer runs while no stream is started.
 *
 * When the ring is short of output bytes, the missing frames are counted
 * as an underrun and the clock moves on (a real sink plays silence
 * meanwhile); input frames that do not fit the ring are dropped as an
 * overrun. render() and capture() are the sink and the source; a test
 * back-end overrides them to record what it receives or to produce a
 * pattern.
 */
/**
 * \brief Where a stream paced by the null clock hands its frames: the sink
 * of an output stream, the source of an input stream. One per stream, owned
 * by it, called on the loop's thread only; it may keep per-stream state
 * (an open file) that its destructor releases.
 */
class ClockEndpoint
{
public:
	virtual ~ClockEndpoint() = default;
	/** \brief Output: bytes the clock took from the ring, whole frames in total per tick
	 *  (a tick may split them in two at the ring's wrap). */
	virtual void render(std::span<const uint8_t> bytes) = 0;
	/** \brief Input: fill \a out; \a stream_offset is the position of out[0] in the stream. */
	virtual void capture(std::span<uint8_t> out, uint64_t stream_offset) = 0;
	/** \brief What BackendStream::delay_bytes() reports. */
	virtual uint32_t delay_bytes() const = 0;
	/** \brief The stream was stopped (PCM_STOP): a moment to make output durable. */
	virtual void stopped() {}
	/** \brief What the endpoint is, for STATUS (e.g. "null sink", "file out.wav"). */
	virtual std::string describe() const = 0;
};

class NullBackend : public AudioBackend
{
public:
	explicit NullBackend(boost::asio::io_context &io);

	std::string_view name() const override { return "null"; }
	/** \brief Every linear PCM format, every rate of the spec, 1 to 8 channels. */
	PcmCapabilities capabilities(Direction direction) const override;
	std::unique_ptr<BackendStream> open(const PcmParams &params, ByteRing &ring,
					    BackendStreamListener &listener) override;

	/** \brief The tick interval for \a params: a quarter period, between 1 and 10 ms. */
	static std::chrono::nanoseconds tick_interval(const PcmParams &params);

	/** \brief The sink: bytes the clock took from an output stream's ring (whole frames).
	 *  The null back-end drops them. */
	virtual void render(const PcmParams &params, std::span<const uint8_t> bytes);
	/** \brief The source: fill \a out with captured bytes; \a stream_offset is the
	 *  position of out[0] in the stream. The null back-end gives silence. */
	virtual void capture(const PcmParams &params, std::span<uint8_t> out, uint64_t stream_offset);
	/** \brief What BackendStream::delay_bytes() reports; 0 for the null back-end. */
	virtual uint32_t delay_bytes(const PcmParams &params) const;

protected:
	/**
	 * \brief A stream paced by this back-end's clock that hands its frames
	 * to \a endpoint instead of render() / capture(): how a back-end that
	 * needs per-stream state (the file back-end) reuses the clock.
	 */
	std::unique_ptr<BackendStream> open_clocked(const PcmParams &params, ByteRing &ring,
						    BackendStreamListener &listener,
						    std::unique_ptr<ClockEndpoint> endpoint);

private:
	boost::asio::io_context &io_;
};

/** \brief The registry entry of the null back-end (no options). */
BackendInfo null_backend_info();

} // namespace vhost_sound
