/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file alsa_backend.h
 * \brief The ALSA back-end: plays and captures through alsa-lib PCMs.
 */
#pragma once

#include <alsa/asoundlib.h>
#include <array>
#include <boost/asio/io_context.hpp>
#include <optional>
#include <string>

#include "audio/audio_backend.h"
#include "audio/backend_registry.h"

namespace vhost_sound {

/** \brief The PCM names the ALSA back-end opens. */
struct AlsaOptions {
	/** \brief --alsa-device: the playback PCM. */
	std::string playback_device = "default";
	/** \brief --alsa-capture-device: the capture PCM ("" = the playback one). */
	std::string capture_device;
};

/**
 * \brief The alsa-lib format of virtio format \a format, or nothing for a
 * code alsa-lib cannot carry exactly (non-linear and undefined codes).
 * Virtio samples are little-endian; S24/U24/S20/U20 sit in the low bits of
 * 4 bytes (ALSA's S24_LE ...), the _3 formats are packed in 3 bytes.
 */
std::optional<snd_pcm_format_t> alsa_format(uint8_t format) noexcept;

/**
 * \brief A back-end on alsa-lib.
 *
 * Construction probes each direction's PCM (opened non-blocking, never
 * started, closed again) with snd_pcm_hw_params_test_*(): PCM_INFO then
 * advertises exactly the virtio formats and rates the PCM accepts and its
 * channel range (capped at 1..8). A PCM that cannot be opened then is
 * logged and advertised with a safe default set (S16, S32, FLOAT; 44100 and
 * 48000 Hz; 1-2 channels) that PREPARE validates for real.
 *
 * Each prepared stream holds its PCM open (non-blocking) from open() to its
 * destructor; while started, one thread per stream moves frames between the
 * ByteRing and the PCM and sleeps in ppoll() (on the PCM's poll descriptors,
 * or on a tick of the stream's FrameClock) otherwise. It tells the loop
 * through a LoopNotifier. A PCM that takes or gives frames faster than real
 * time (alsa-lib's null, a file plugin over null: no clock) is paced to the
 * nominal rate with the stream's FrameClock; a PCM with a clock keeps it.
 *
 * An open stream's details (STATUS): pcm, pcm_type, pcm_info_name (and
 * card, device for hardware), the period_frames and buffer_frames the PCM
 * really took, and clock (device, paced or lost).
 */
class AlsaBackend : public AudioBackend
{
public:
	/** \brief Probe \a options' PCMs; never throws for a PCM that is absent or busy. */
	AlsaBackend(boost::asio::io_context &io, AlsaOptions options);

	std::string_view name() const override { return "alsa"; }
	PcmCapabilities capabilities(Direction direction) const override;
	/** \brief playback_device, capture_device: the PCM names opened. */
	std::vector<std::pair<std::string, std::string>> details() const override;
	std::unique_ptr<BackendStream> open(const PcmParams &params, ByteRing &ring,
					    BackendStreamListener &listener) override;

	/** \brief The PCM name used for \a direction. */
	const std::string &device(Direction direction) const;

	/** \brief What is advertised for a PCM that could not be probed. */
	static PcmCapabilities default_capabilities();

private:
	boost::asio::io_context &io_;
	AlsaOptions options_;
	std::array<PcmCapabilities, 2> caps_;
};

/** \brief The registry entry: --alsa-device, --alsa-capture-device. */
BackendInfo alsa_backend_info();

} // namespace vhost_sound
