/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file topology.h
 * \brief The sound card's fixed parts: jacks and channel maps.
 */
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "audio/audio_backend.h"
#include "device/virtio_snd.h"

namespace vhost_sound {

/**
 * \brief The two jacks of the card, as JACK_INFO reports them: 0 is the
 * line out (green, rear), 1 the microphone (pink, rear). Both support
 * JACK_REMAP, which changes the association and sequence fields of the
 * pin's default configuration. A jack is connected while the host has its
 * direction enabled (JACK_INFO's `connected`): a guest then shows the
 * microphone unplugged while the host keeps it off.
 */
class Jacks
{
public:
	static constexpr uint32_t kLineOut = 0;
	static constexpr uint32_t kMicrophone = 1;
	static constexpr uint32_t kCount = 2;

	Jacks();

	/** \brief Information on jack \a id (< kCount), padding zeroed. */
	virtio_snd::JackInfo info(uint32_t id) const;
	/**
	 * \brief JACK_REMAP of jack \a id (< kCount): BAD_MSG when the
	 * association or sequence does not fit its 4-bit HDA field.
	 */
	virtio_snd::Status remap(uint32_t id, uint32_t association, uint32_t sequence);

	/** \brief Back to the initial associations (device reset); the
	 *  connection state is the host's and stays. */
	void reset();

	/** \brief Plug (true) or unplug jack \a id (< kCount). */
	void set_connected(uint32_t id, bool connected) { connected_.at(id) = connected; }
	/** \brief Whether jack \a id (< kCount) is plugged. */
	bool connected(uint32_t id) const { return connected_.at(id); }
	/** \brief The jack of \a direction's stream: the line out or the microphone. */
	static uint32_t of(Direction direction)
	{
		return direction == Direction::Output ? kLineOut : kMicrophone;
	}

private:
	std::array<uint32_t, kCount> defconf_;
	std::array<bool, kCount> connected_{ true, true };
};

/**
 * \brief CHMAP_INFO's answers: for each direction, one standard map per
 * channel count the back-end supports (mono; FL FR; FL FR FC; quad; 5.0;
 * 5.1; 6.1; 7.1), output maps first.
 */
std::vector<virtio_snd::ChmapInfo> channel_maps(const PcmCapabilities &output,
						const PcmCapabilities &input);

} // namespace vhost_sound
