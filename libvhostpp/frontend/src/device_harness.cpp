/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * DeviceHarness: a real Server on one end of a socketpair, a DeviceDriver
 * on the other.
 */
#include "vhostpp/frontend/device_harness.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <sys/socket.h>
#include <system_error>
#include <thread>

#include "vhostpp/internal/wire.h"

namespace vhostpp {

DeviceHarness::DeviceHarness(boost::asio::io_context &io, Device &device, Options options)
	: io_(io), device_(device), options_(std::move(options)),
	  work_(boost::asio::make_work_guard(io))
{
	if (options_.driver.queue_sizes.empty()) {
		for (unsigned i = 0; i < device_.num_queues(); i++)
			options_.driver.queue_sizes.push_back(
				std::min<uint16_t>(64, device_.max_queue_size(i)));
	}
	/* Built before the thread runs the loop: nothing races with it. */
	server_ = std::make_unique<Server>(io_, device_, options_.server);
	server_->on_disconnect([this] { disconnects_++; });
	thread_ = std::thread([this] { io_.run(); });
}

DeviceHarness::~DeviceHarness()
{
	try {
		if (attached())
			detach();
	} catch (...) {
		/* The server's side is dropped below either way. */
	}
	run([this] { server_.reset(); });
	work_.reset();
	io_.stop();
	thread_.join();
}

void DeviceHarness::start()
{
	if (attached())
		throw std::logic_error("DeviceHarness::start: already attached");
	int sv[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		throw std::system_error(errno, std::generic_category(), "socketpair");
	UniqueFd ours(sv[0]);
	UniqueFd theirs(sv[1]);
	run([this, &theirs] { server_->serve_connected(std::move(theirs)); });
	/* Every request of the start-up sequence waits for its reply (REPLY_ACK
	 * when offered), so when this returns the device has seen all of it. */
	driver_ = std::make_unique<DeviceDriver>(std::move(ours), options_.driver);
	bases_.clear();
}

DeviceDriver &DeviceHarness::driver()
{
	if (!driver_)
		throw std::logic_error("DeviceHarness: not attached (start() first)");
	return *driver_;
}

void DeviceHarness::kick(size_t i)
{
	queue(i).kick();
}

std::vector<uint32_t> DeviceHarness::stop()
{
	bases_ = driver().stop();
	return bases_;
}

void DeviceHarness::resume()
{
	DeviceDriver &d = driver();
	Frontend &fe = d.frontend();
	fe.set_features(d.features());
	if (d.protocol_features() & wire::bit(wire::ProtocolFeature::Status))
		(void)fe.get_status();
	const bool enable = d.features() & wire::feature_bit(wire::virtio_feature::ProtocolFeatures);
	for (size_t i = 0; i < d.queue_count(); i++) {
		DriverQueue &q = d.queue(i);
		fe.set_vring_num(q.index(), q.size());
		fe.set_vring_base(q.index(), i < bases_.size() ? bases_[i] : q.start_index());
		fe.set_vring_addr(q.addresses());
		fe.set_vring_kick(q.index(), &q.kick_fd());
		fe.set_vring_call(q.index(), &q.call_fd());
		if (enable)
			fe.set_vring_enable(q.index(), true);
	}
	/* Without REPLY_ACK the last request has no answer to wait for. */
	if (!fe.reply_ack())
		(void)fe.get_features();
	bases_.clear();
}

void DeviceHarness::reset()
{
	/* QEMU 10 stops a device whose driver reset with SET_STATUS 0; without
	 * the status feature, RESET_DEVICE or RESET_OWNER are what is left. */
	DeviceDriver &d = driver();
	if (d.protocol_features() & wire::bit(wire::ProtocolFeature::Status))
		d.frontend().set_status(0);
	else if (d.protocol_features() & wire::bit(wire::ProtocolFeature::ResetDevice))
		d.frontend().reset_device();
	else
		d.frontend().reset_owner();
	if (!d.frontend().reply_ack())
		(void)d.frontend().get_features();
}

void DeviceHarness::detach()
{
	driver();
	const uint64_t before = run([this] { return disconnects_; });
	driver_.reset();
	/* The server notices the closed socket on its loop; wait for it. */
	const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
	while (run([this] { return disconnects_; }) == before) {
		if (std::chrono::steady_clock::now() > deadline)
			throw FrontendError("DeviceHarness::detach: the server did not see the "
					    "front-end leave within 5 s");
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}
}

} // namespace vhostpp
