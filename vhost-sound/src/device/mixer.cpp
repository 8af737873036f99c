/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "device/mixer.h"

#include <algorithm>
#include <cstring>

#include "device/sample_gain.h"

namespace vhost_sound {

using namespace virtio_snd;

namespace {

struct ControlSpec {
	std::string_view name;
	std::string_view key;
	uint32_t role;
	uint32_t type;
	uint32_t access;
	uint32_t max;
	uint32_t initial;
	/* Max of the DB_LINEAR TLV in 0.01 dB; nothing for a switch. */
	std::optional<int32_t> tlv_max_db;
};

constexpr uint32_t bit(unsigned b) { return 1u << b; }
constexpr uint32_t kReadWrite = bit(kCtlAccessRead) | bit(kCtlAccessWrite);

/* Indexed by Mixer::Control. The capture maximum, gain 2.0, is
 * 20 * log10(2) = +6.02 dB. */
const ControlSpec kSpecs[Mixer::kCount] = {
	{ "Master Playback Volume", "playback-volume", kCtlRoleVolume, kCtlTypeInteger,
	  kReadWrite | bit(kCtlAccessTlvRead), Mixer::kPlaybackMax, kUnityGainPercent, 0 },
	{ "Master Playback Switch", "playback-switch", kCtlRoleMute, kCtlTypeBoolean, kReadWrite, 1,
	  1, std::nullopt },
	{ "Capture Volume", "capture-volume", kCtlRoleGain, kCtlTypeInteger,
	  kReadWrite | bit(kCtlAccessTlvRead), Mixer::kCaptureMax, kUnityGainPercent, 602 },
	{ "Capture Switch", "capture-switch", kCtlRoleMute, kCtlTypeBoolean, kReadWrite, 1, 1,
	  std::nullopt },
	{ "Host Microphone Capture Switch", "host-microphone", kCtlRoleUndefined, kCtlTypeBoolean,
	  bit(kCtlAccessRead), 1, 0, std::nullopt },
};

} // namespace

Mixer::Mixer(bool host_input_enabled)
{
	for (uint32_t id = 0; id < kCount; id++)
		values_[id] = kSpecs[id].initial;
	values_[kHostMicrophone] = host_input_enabled ? 1 : 0;
}

std::string_view Mixer::name(uint32_t id)
{
	return id < kCount ? kSpecs[id].name : std::string_view("?");
}

std::string_view Mixer::key(uint32_t id)
{
	return id < kCount ? kSpecs[id].key : std::string_view("?");
}

uint32_t Mixer::max(uint32_t id)
{
	return id < kCount ? kSpecs[id].max : 0;
}

CtlInfo Mixer::info(uint32_t id) const
{
	const ControlSpec &spec = kSpecs[id];
	CtlInfo info{};
	info.role = spec.role;
	info.type = spec.type;
	info.access = spec.access;
	info.count = 1;
	info.index = 0;
	std::memcpy(info.name, spec.name.data(), std::min(spec.name.size(), kCtlNameSize - 1));
	if (spec.type == kCtlTypeInteger) {
		info.value.integer.min = 0;
		info.value.integer.max = spec.max;
		info.value.integer.step = 1;
	}
	return info;
}

bool Mixer::set(uint32_t id, uint32_t value)
{
	value = std::min(value, kSpecs[id].max);
	if (values_.at(id) == value)
		return false;
	values_[id] = value;
	return true;
}

uint32_t Mixer::gain(Direction direction) const
{
	if (direction == Direction::Output)
		return values_[kPlaybackSwitch] ? values_[kPlaybackVolume] : 0;
	return values_[kCaptureSwitch] ? values_[kCaptureVolume] : 0;
}

std::vector<uint32_t> Mixer::reset()
{
	std::vector<uint32_t> changed;
	for (uint32_t id = 0; id < kCount; id++) {
		if (id == kHostMicrophone)
			continue; /* the host's state, not the guest's */
		if (set(id, kSpecs[id].initial))
			changed.push_back(id);
	}
	return changed;
}

Status Mixer::handle(const vhostpp::DescriptorChain &chain, uint32_t code, size_t &written,
		     std::vector<uint32_t> &changed)
{
	const auto req = chain.read_object<CtlHdr>(0);
	auto refuse = [&](Status status, std::string_view why) {
		if (log_limit_.allow())
			logger().warn("{} (control {}): {} ({})", request_name(code),
				      req ? std::to_string(req->control_id) : std::string("?"), why,
				      status_name(status));
		return status;
	};
	if (!req)
		return refuse(Status::BadMsg, "request shorter than virtio_snd_ctl_hdr");
	if (req->control_id >= kCount)
		return refuse(Status::BadMsg, "control_id out of range");
	const uint32_t id = req->control_id;
	const ControlSpec &spec = kSpecs[id];

	switch (code) {
	case kCtlEnumItems:
		return refuse(Status::BadMsg, "the control is not ENUMERATED");
	case kCtlRead: {
		if (chain.writable_bytes() < sizeof(Hdr) + sizeof(CtlValue))
			return refuse(Status::BadMsg, "response buffer smaller than virtio_snd_ctl_value");
		CtlValue value{};
		value.integer[0] = values_[id];
		chain.write_object(sizeof(Hdr), value);
		written = sizeof(Hdr) + sizeof(CtlValue);
		return Status::Ok;
	}
	case kCtlWrite: {
		const auto value = chain.read_object<CtlValue>(sizeof(CtlHdr));
		if (!value)
			return refuse(Status::BadMsg, "request shorter than header + virtio_snd_ctl_value");
		if (!(spec.access & bit(kCtlAccessWrite)))
			return refuse(Status::NotSupp, "the control is read-only");
		if (value->integer[0] > spec.max)
			return refuse(Status::BadMsg, "value outside the control's range");
		if (values_[id] != value->integer[0]) {
			values_[id] = value->integer[0];
			changed.push_back(id);
		}
		logger().info("mixer: the guest set {} to {}", spec.name, values_[id]);
		return Status::Ok;
	}
	case kCtlTlvRead: {
		if (!spec.tlv_max_db)
			return refuse(Status::NotSupp, "the control has no TLV");
		const int32_t tlv[4] = { static_cast<int32_t>(kTlvDbLinear), 8, kTlvDbGainMute,
					 *spec.tlv_max_db };
		if (chain.writable_bytes() < sizeof(Hdr) + sizeof(tlv))
			return refuse(Status::BadMsg, "response buffer smaller than the TLV");
		chain.write_object(sizeof(Hdr), tlv);
		written = sizeof(Hdr) + sizeof(tlv);
		return Status::Ok;
	}
	case kCtlTlvWrite:
	case kCtlTlvCommand:
		return refuse(Status::NotSupp, "no control accepts TLV writes or commands");
	default:
		return refuse(Status::NotSupp, "not a control element request");
	}
}

} // namespace vhost_sound
