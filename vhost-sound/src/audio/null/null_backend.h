/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file null_backend.h
 * \brief A real-time sink and source that needs no sound hardware.
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <span>

#include "audio/audio_backend.h"
#include "audio/backend_registry.h"

namespace vhost_sound {

/**
 * \brief The null back-end: plays into nothing and captures silence, at
 * the stream's rate, from the loop's steady clock.
 *
 * Each started stream runs one asio::steady_timer on the loop, ticking on
 * a FrameClock (audio/frame_clock.h); a tick
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
class NullBackend : public AudioBackend
{
public:
	explicit NullBackend(boost::asio::io_context &io);

	std::string_view name() const override { return "null"; }
	/** \brief Every linear PCM format, every rate of the spec, 1 to 8 channels. */
	PcmCapabilities capabilities(Direction direction) const override;
	std::unique_ptr<BackendStream> open(const PcmParams &params, ByteRing &ring,
					    BackendStreamListener &listener) override;

	/** \brief The sink: bytes the clock took from an output stream's ring (whole frames).
	 *  The null back-end drops them. */
	virtual void render(const PcmParams &params, std::span<const uint8_t> bytes);
	/** \brief The source: fill \a out with captured bytes; \a stream_offset is the
	 *  position of out[0] in the stream. The null back-end gives silence. */
	virtual void capture(const PcmParams &params, std::span<uint8_t> out, uint64_t stream_offset);
	/** \brief What BackendStream::delay_bytes() reports; 0 for the null back-end. */
	virtual uint32_t delay_bytes(const PcmParams &params) const;

private:
	boost::asio::io_context &io_;
};

/** \brief The registry entry of the null back-end (no options). */
BackendInfo null_backend_info();

} // namespace vhost_sound
