/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * DeviceDriver: QEMU's start-up and shutdown sequences over a Frontend.
 */
#include "vhostpp/frontend/device_driver.h"

#include <fmt/format.h>

#include "vhostpp/internal/wire.h"

namespace vhostpp {

DeviceDriver::DeviceDriver(const std::string &socket_path, Options options)
	: frontend_(Frontend::connect(socket_path)), options_(std::move(options))
{
	start();
}

DeviceDriver::DeviceDriver(UniqueFd socket, Options options)
	: frontend_(std::move(socket)), options_(std::move(options))
{
	start();
}

void DeviceDriver::start()
{
	constexpr uint64_t kProtocolFeatures =
		wire::feature_bit(wire::virtio_feature::ProtocolFeatures);

	uint64_t offered = frontend_.get_features();
	features_ = offered & options_.features;

	if (features_ & kProtocolFeatures) {
		uint64_t offered_pf = frontend_.get_protocol_features();
		protocol_features_ = offered_pf & options_.protocol_features;
		frontend_.set_protocol_features(protocol_features_);
	}
	if (protocol_features_ & wire::bit(wire::ProtocolFeature::Mq)) {
		uint64_t n = frontend_.get_queue_num();
		if (n < options_.queue_sizes.size())
			throw FrontendError(fmt::format("GET_QUEUE_NUM: back-end has {} queues, {} asked for",
							n, options_.queue_sizes.size()));
	}
	if (options_.use_add_mem_reg) {
		if (!(protocol_features_ & wire::bit(wire::ProtocolFeature::ConfigureMemSlots)))
			throw FrontendError("ADD_MEM_REG: CONFIGURE_MEM_SLOTS not negotiated");
		if (frontend_.get_max_mem_slots() < 1)
			throw FrontendError("GET_MAX_MEM_SLOTS: back-end offers no memory slot");
	}
	frontend_.set_owner();
	frontend_.set_features(features_);

	memory_ = std::make_unique<DriverMemory>(options_.memory_size);
	if (options_.use_add_mem_reg) {
		frontend_.add_mem_reg(*memory_);
	} else {
		DriverMemory *table[] = {memory_.get()};
		frontend_.set_mem_table(table);
	}

	for (size_t i = 0; i < options_.queue_sizes.size(); i++) {
		queues_.push_back(std::make_unique<DriverQueue>(*memory_, static_cast<uint16_t>(i),
								options_.queue_sizes[i]));
		frontend_.setup_queue(*queues_.back());
	}
}

bool DeviceDriver::event_idx() const
{
	return features_ & wire::feature_bit(wire::virtio_feature::RingEventIdx);
}

std::vector<uint32_t> DeviceDriver::stop()
{
	std::vector<uint32_t> bases;
	bool pf = features_ & wire::feature_bit(wire::virtio_feature::ProtocolFeatures);
	for (auto &q : queues_) {
		if (pf)
			frontend_.set_vring_enable(q->index(), false);
		bases.push_back(frontend_.get_vring_base(q->index()));
	}
	return bases;
}

} // namespace vhostpp
