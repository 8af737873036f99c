/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The vhost-user protocol state machine for one front-end connection
 * (internal to the library; Server owns it).
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "vhostpp/internal/connection.h"
#include "vhostpp/device.h"
#include "vhostpp/internal/memory.h"
#include "vhostpp/virtqueue.h"
#include "vhostpp/internal/wire.h"
#include "vhostpp/server.h"
#include "outbox.h"

namespace vhostpp {

class Session : public DeviceContext
{
public:
	using Socket = boost::asio::local::stream_protocol::socket;

	/* \a on_close runs (posted, never from inside a handler of this session) once the
	 * connection has ended; the owner then destroys the session. */
	Session(boost::asio::io_context &io, Device &device, Socket socket,
		const ServerOptions &options, std::function<void()> on_close);
	/* Stops every ring, detaches the device, closes every fd of the connection. */
	~Session() override;

	void start();

	bool notify_config_change() override;
	uint64_t negotiated_features() const override { return acked_features_; }
	boost::asio::io_context &io() override { return io_; }
	void set_needs_reset() override;

	/* Transport features the library offers on top of the device's own. */
	static uint64_t transport_features();
	uint64_t offered_features() const;
	uint64_t offered_protocol_features() const;

private:
	/* One vring with its kick watcher and the spec's two independent states. */
	struct Ring {
		Ring(uint16_t index, uint16_t max_size) : queue(index, max_size) {}
		Virtqueue queue;
		std::unique_ptr<boost::asio::posix::stream_descriptor> kick;
		bool started = false; /* SET_VRING_KICK .. GET_VRING_BASE */
		bool enabled = false; /* SET_VRING_ENABLE, or SET_FEATURES without bit 30 */
		bool active = false;  /* what the device was last told */
		bool rest_posted = false; /* kick_device() posted the rest of a pass */
	};

	void wait_readable();
	void on_readable();
	void handle(wire::Message msg);
	/* Executes one request; returns the reply payload for requests that have one. */
	std::optional<std::vector<uint8_t>> dispatch(wire::ParsedRequest &req);
	/* Ends the connection because of \a reason, logged as an error. */
	void close(const std::string &reason);
	/* Ends the connection (the front-end left, or after close()). */
	void end();

	Ring &ring(wire::Request code, uint32_t index);
	void require_protocol(wire::Request code, wire::ProtocolFeature feature) const;
	bool has_protocol(wire::ProtocolFeature feature) const;
	/* Device::queue_kicked() with pop()'s budget of a ring's worth; what it
	 * held back goes to another queue_kicked() in a handler of its own. */
	void kick_device(Ring &r);
	/* Tell the device whether the ring is active (started, enabled, ready). */
	void update_ring(Ring &r);
	/* The one way an active ring stops, for the device and for its chains. */
	void deactivate(Ring &r);
	void watch_kick(Ring &r);
	void stop_ring(Ring &r);
	void reset_device();
	/* Queue \a msg on the back-end channel; false without one. */
	bool send_backend(const wire::Message &msg);
	void drop_backend_channel(const std::string &why);
	void set_memory(std::shared_ptr<const GuestMemory> memory);
	void apply_ring_features();

	boost::asio::io_context &io_;
	Device &device_;
	Socket socket_;
	ServerOptions options_;
	std::function<void()> on_close_;
	/* Handlers hold a weak_ptr to this: after the session is gone they do nothing. */
	std::shared_ptr<int> alive_ = std::make_shared<int>(0);
	MessageReader reader_{MessageReader::Source::FrontEnd};
	bool closing_ = false;
	/* Replies: queued, sent when the socket takes them. */
	std::unique_ptr<Outbox> replies_;

	std::vector<std::unique_ptr<Ring>> rings_;
	std::shared_ptr<const GuestMemory> memory_;
	uint64_t acked_features_ = 0;
	uint64_t protocol_features_ = 0;
	bool protocol_features_set_ = false;
	uint8_t status_ = 0;
	UniqueFd backend_channel_;
	std::unique_ptr<Outbox> backend_outbox_;
};

} // namespace vhostpp
