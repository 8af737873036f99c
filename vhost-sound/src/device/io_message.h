/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file io_message.h
 * \brief One PCM I/O message from the tx or rx queue.
 */
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>

#include <vhostpp/virtqueue.h>

#include "device/virtio_snd.h"

namespace vhost_sound {

/**
 * \brief A PCM I/O message: a header, the sample buffer, a status footer.
 *
 * Layouts (spec "PCM I/O Messages"):
 * - tx: readable { virtio_snd_pcm_xfer, samples }, writable { virtio_snd_pcm_status };
 * - rx: readable { virtio_snd_pcm_xfer }, writable { samples, virtio_snd_pcm_status }.
 *
 * So the tx footer is the first 8 writable bytes and the rx footer the last
 * 8. The chain is untrusted: sizes come from the copied descriptors, every
 * access goes through DescriptorChain's bounds-checked read/write.
 */
class IoMessage
{
public:
	static constexpr size_t kHeaderBytes = sizeof(virtio_snd::PcmXfer);
	static constexpr size_t kFooterBytes = sizeof(virtio_snd::PcmStatus);

	IoMessage(vhostpp::DescriptorChain chain, Direction direction)
		: chain_(std::move(chain)), direction_(direction)
	{
	}

	const vhostpp::DescriptorChain &chain() const { return chain_; }
	/** \brief The direction of the queue the message came from. */
	Direction direction() const { return direction_; }

	/** \brief The stream id from the header; nothing if the header is short. */
	std::optional<uint32_t> stream_id() const
	{
		auto xfer = chain_.read_object<virtio_snd::PcmXfer>(0);
		if (!xfer)
			return std::nullopt;
		return xfer->stream_id;
	}

	/** \brief True when there is room for the status footer. */
	bool has_footer() const { return chain_.writable_bytes() >= kFooterBytes; }

	/** \brief Sample bytes the message carries (tx) or has room for (rx). */
	size_t payload_bytes() const
	{
		if (direction_ == Direction::Output)
			return chain_.readable_bytes() > kHeaderBytes ? chain_.readable_bytes() - kHeaderBytes : 0;
		return has_footer() ? chain_.writable_bytes() - kFooterBytes : 0;
	}

	/** \brief tx: copy samples from \a offset of the payload into \a out. */
	size_t read_payload(size_t offset, std::span<uint8_t> out) const
	{
		return chain_.read(kHeaderBytes + offset, out);
	}

	/** \brief rx: copy \a in to \a offset of the payload (never into the footer). */
	size_t write_payload(size_t offset, std::span<const uint8_t> in) const
	{
		const size_t room = payload_bytes();
		if (offset >= room)
			return 0;
		return chain_.write(offset, in.first(std::min(in.size(), room - offset)));
	}

	/**
	 * \brief Write the footer and put the chain in the used ring (no notify).
	 *
	 * \a written is the number of payload bytes the device wrote (rx); the
	 * used length is that plus the footer. Without room for a footer the
	 * chain is returned with length 0.
	 */
	void complete(vhostpp::Virtqueue &queue, virtio_snd::Status status, uint32_t latency_bytes,
		      size_t written = 0) const
	{
		if (!has_footer()) {
			queue.push(chain_, 0);
			return;
		}
		const virtio_snd::PcmStatus footer{ static_cast<uint32_t>(status), latency_bytes };
		const size_t at = direction_ == Direction::Output ? 0 : payload_bytes();
		chain_.write_object(at, footer);
		const size_t used = (direction_ == Direction::Output ? 0 : written) + kFooterBytes;
		queue.push(chain_, static_cast<uint32_t>(used));
	}

private:
	vhostpp::DescriptorChain chain_;
	Direction direction_;
};

} // namespace vhost_sound
