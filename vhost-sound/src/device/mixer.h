/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file mixer.h
 * \brief The card's control elements (VIRTIO_SND_F_CTLS): what the guest's
 * mixer shows, and the gains the data path applies.
 */
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include <vhostpp/virtqueue.h>

#include "device/virtio_snd.h"
#include "sound_log.h"

namespace vhost_sound {

/**
 * \brief Five control elements, each with one value shared by every channel
 * of its stream.
 *
 * | id | name                             | type    | range   | role  | access        |
 * |----|----------------------------------|---------|---------|-------|---------------|
 * | 0  | Master Playback Volume           | INTEGER | 0..100  | VOLUME| R W TLV_READ  |
 * | 1  | Master Playback Switch           | BOOLEAN | 0..1    | MUTE  | R W           |
 * | 2  | Capture Volume                   | INTEGER | 0..200  | GAIN  | R W TLV_READ  |
 * | 3  | Capture Switch                   | BOOLEAN | 0..1    | MUTE  | R W           |
 * | 4  | Host Microphone Capture Switch   | BOOLEAN | 0..1    | -     | R             |
 *
 * One value per control rather than one per channel: the volume of a VM's
 * sound card is a master volume, a balance adds nothing the guest's own
 * mixing cannot do, and Linux's virtio_snd and alsamixer show a mono
 * control per stream simply (one slider, whatever the stream's channels).
 *
 * Gain rule (sample_gain.h): a volume value v is the gain v / 100, linear in
 * amplitude — playback 0..100 (mute .. 0 dB), capture 0..200 (mute ..
 * +6.02 dB). CTL_TLV_READ gives the matching ALSA DB_LINEAR TLV, so the
 * guest's alsamixer shows dB. A switch follows ALSA's convention: 1 lets
 * sound through, 0 mutes. The host-microphone control is 1 exactly while
 * the host has input enabled; the guest cannot write it.
 *
 * Requests and their refusals (the value never changes on a refusal):
 * | condition                                                   | status   |
 * |-------------------------------------------------------------|----------|
 * | request shorter than its structure; control_id out of range | BAD_MSG  |
 * | CTL_INFO: the query's usual checks (see SoundDevice)        | BAD_MSG  |
 * | response buffer too small for the reply                     | BAD_MSG  |
 * | CTL_WRITE: a value outside the control's range              | BAD_MSG  |
 * | CTL_ENUM_ITEMS on a control that is not ENUMERATED (all)    | BAD_MSG  |
 * | CTL_WRITE to the read-only control                          | NOT_SUPP |
 * | CTL_TLV_READ on a control without a TLV (switches)          | NOT_SUPP |
 * | CTL_TLV_WRITE, CTL_TLV_COMMAND (no control has that access) | NOT_SUPP |
 *
 * Values survive STOP/START/PREPARE (they belong to the card, not to a
 * stream); reset() brings the guest-writable ones back to their defaults
 * (volumes 100, switches on).
 */
class Mixer
{
public:
	enum Control : uint32_t {
		kPlaybackVolume = 0,
		kPlaybackSwitch,
		kCaptureVolume,
		kCaptureSwitch,
		kHostMicrophone,
		kCount,
	};

	static constexpr uint32_t kPlaybackMax = 100;
	static constexpr uint32_t kCaptureMax = 200;

	explicit Mixer(bool host_input_enabled);

	/** \brief CTL_INFO item \a id (< kCount). */
	virtio_snd::CtlInfo info(uint32_t id) const;
	/** \brief The control's name as the guest sees it. */
	static std::string_view name(uint32_t id);

	/**
	 * \brief Answer CTL_ENUM_ITEMS, CTL_READ, CTL_WRITE, CTL_TLV_* (\a code)
	 * from \a chain; on OK \a written counts the response bytes. A guest
	 * write that changed a value adds its id to \a changed.
	 */
	virtio_snd::Status handle(const vhostpp::DescriptorChain &chain, uint32_t code,
				  size_t &written, std::vector<uint32_t> &changed);

	/** \brief The value of control \a id. */
	uint32_t value(uint32_t id) const { return values_.at(id); }
	/**
	 * \brief The host sets control \a id (the read-only one too) to \a value,
	 * clamped to its range; true if the value changed.
	 */
	bool set(uint32_t id, uint32_t value);
	/** \brief Largest value of control \a id. */
	static uint32_t max(uint32_t id);

	/** \brief Gain in percent for \a direction's samples: 0 while switched off. */
	uint32_t gain(virtio_snd::Direction direction) const;

	/** \brief Device reset: guest-writable controls back to their defaults; ids that changed. */
	std::vector<uint32_t> reset();

	/** \brief Short key for STATUS and WATCH: "playback-volume", "capture-switch", ... */
	static std::string_view key(uint32_t id);

private:
	std::array<uint32_t, kCount> values_{};
	LogLimiter log_limit_;
};

} // namespace vhost_sound
