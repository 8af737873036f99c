/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "device/topology.h"

#include <algorithm>

namespace vhost_sound {

using namespace virtio_snd;

namespace {

/*
 * HDA pin default configuration (HDA spec 7.3.3.31): connectivity [31:30]
 * = jack, location [29:24] = external rear (0x01), default device [23:20],
 * connection type [19:16] = 1/8" jack (1), colour [15:12], misc [11:8],
 * association [7:4], sequence [3:0].
 */
constexpr uint32_t defconf(uint32_t device, uint32_t colour, uint32_t association)
{
	return (0x01u << 24) | (device << 20) | (0x1u << 16) | (colour << 12) | (association << 4);
}
constexpr uint32_t kDeviceLineOut = 0x0, kDeviceMicIn = 0xa;
constexpr uint32_t kColourGreen = 0x4, kColourPink = 0x9;

/* HDA pin capabilities (7.3.4.9): presence detect (bit 2), output (4), input (5). */
constexpr uint32_t kCapsPresence = 1u << 2, kCapsOutput = 1u << 4, kCapsInput = 1u << 5;

constexpr std::array<uint32_t, Jacks::kCount> kInitialDefconf = {
	defconf(kDeviceLineOut, kColourGreen, 1),
	defconf(kDeviceMicIn, kColourPink, 2),
};

} // namespace

Jacks::Jacks()
	: defconf_(kInitialDefconf)
{
}

JackInfo Jacks::info(uint32_t id) const
{
	JackInfo info{};
	info.hdr.hda_fn_nid = 0;
	info.features = 1u << kJackFeatureRemap;
	info.hda_reg_defconf = defconf_[id];
	info.hda_reg_caps = kCapsPresence | (id == kLineOut ? kCapsOutput : kCapsInput);
	info.connected = connected_[id] ? 1 : 0;
	return info;
}

Status Jacks::remap(uint32_t id, uint32_t association, uint32_t sequence)
{
	if (association > 0xf || sequence > 0xf)
		return Status::BadMsg;
	defconf_[id] = (defconf_[id] & ~0xffu) | (association << 4) | sequence;
	return Status::Ok;
}

void Jacks::reset()
{
	defconf_ = kInitialDefconf;
}

std::vector<ChmapInfo> channel_maps(const PcmCapabilities &output, const PcmCapabilities &input)
{
	/* ALSA's usual layouts, indexed by channel count - 1. */
	static const std::vector<std::vector<uint8_t>> kLayouts = {
		{ kChmapMono },
		{ kChmapFl, kChmapFr },
		{ kChmapFl, kChmapFr, kChmapFc },
		{ kChmapFl, kChmapFr, kChmapRl, kChmapRr },
		{ kChmapFl, kChmapFr, kChmapRl, kChmapRr, kChmapFc },
		{ kChmapFl, kChmapFr, kChmapRl, kChmapRr, kChmapFc, kChmapLfe },
		{ kChmapFl, kChmapFr, kChmapRl, kChmapRr, kChmapFc, kChmapLfe, kChmapRc },
		{ kChmapFl, kChmapFr, kChmapRl, kChmapRr, kChmapFc, kChmapLfe, kChmapSl, kChmapSr },
	};

	std::vector<ChmapInfo> maps;
	auto add = [&](Direction direction, const PcmCapabilities &caps) {
		for (const auto &layout : kLayouts) {
			if (!caps.has_channels(static_cast<uint8_t>(layout.size())))
				continue;
			ChmapInfo info{};
			info.hdr.hda_fn_nid = 0;
			info.direction = static_cast<uint8_t>(direction);
			info.channels = static_cast<uint8_t>(layout.size());
			std::copy(layout.begin(), layout.end(), info.positions);
			maps.push_back(info);
		}
	};
	add(Direction::Output, output);
	add(Direction::Input, input);
	return maps;
}

} // namespace vhost_sound
