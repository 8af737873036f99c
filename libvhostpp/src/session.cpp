/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "session.h"

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <unistd.h>
#include <fmt/format.h>
#include <system_error>

#include "vhostpp/internal/logging.h"

namespace vhostpp {

using wire::ProtocolError;
using wire::ProtocolFeature;
using wire::Request;

namespace {

/* Requests that answer with a payload of their own: no REPLY_ACK for these. */
bool has_own_reply(Request code)
{
	switch (code) {
	case Request::GetFeatures:
	case Request::GetProtocolFeatures:
	case Request::GetVringBase:
	case Request::GetQueueNum:
	case Request::GetConfig:
	case Request::GetMaxMemSlots:
	case Request::GetStatus:
	case Request::GetInflightFd:
	case Request::GetSharedObject:
	case Request::CheckDeviceState:
	case Request::CreateCryptoSession:
	case Request::PostcopyAdvise:
	case Request::SetDeviceStateFd:
		return true;
	default:
		return false;
	}
}

std::vector<uint8_t> u64_reply(uint64_t value)
{
	auto bytes = wire::as_bytes(value);
	return {bytes.begin(), bytes.end()};
}

std::string_view name(Request code)
{
	return wire::request_name(static_cast<uint32_t>(code));
}

/* Which protocol feature a request that the library never offers belongs to. */
std::optional<ProtocolFeature> unsupported_feature(Request code)
{
	switch (code) {
	case Request::SetLogBase:
	case Request::SetLogFd:
		return ProtocolFeature::LogShmfd;
	case Request::SendRarp:
		return ProtocolFeature::Rarp;
	case Request::NetSetMtu:
		return ProtocolFeature::Mtu;
	case Request::IotlbMsg:
		return ProtocolFeature::BackendReq; /* needs VIRTIO_F_IOMMU_PLATFORM, not offered */
	case Request::SetVringEndian:
		return ProtocolFeature::CrossEndian;
	case Request::CreateCryptoSession:
	case Request::CloseCryptoSession:
		return ProtocolFeature::CryptoSession;
	case Request::PostcopyAdvise:
	case Request::PostcopyListen:
	case Request::PostcopyEnd:
		return ProtocolFeature::Pagefault;
	case Request::GetInflightFd:
	case Request::SetInflightFd:
		return ProtocolFeature::InflightShmfd;
	case Request::VringKick:
		return ProtocolFeature::InbandNotifications;
	case Request::GetSharedObject:
		return ProtocolFeature::SharedObject;
	case Request::SetDeviceStateFd:
	case Request::CheckDeviceState:
		return ProtocolFeature::DeviceState;
	default:
		return std::nullopt;
	}
}

/*
 * Kick, call and error fds must be eventfds: the loop drains a kick with one
 * 8-byte read and takes the fd as quiet afterwards. A pipe or socket whose
 * other end is closed, or an EFD_SEMAPHORE eventfd (one read takes 1 off a
 * count that may be 2^64-2), stays readable forever and would spin the loop.
 * A written call fd that is a pipe without a reader would raise SIGPIPE.
 */
void check_eventfd(Request code, const wire::VringFd &v, bool kick)
{
	int fd = v.fd.get();
	char link[64] = {};
	std::string path = fmt::format("/proc/self/fd/{}", fd);
	ssize_t n = ::readlink(path.c_str(), link, sizeof(link) - 1);
	if (n < 0 || std::string_view(link, size_t(n)) != "anon_inode:[eventfd]")
		throw ProtocolError(fmt::format("{}: queue {} fd is not an eventfd ({})", name(code),
						v.index, n < 0 ? std::strerror(errno) : link));
	if (!kick)
		return;
	/* fdinfo names the semaphore mode (Linux 6.4 and later; older kernels omit it). */
	std::ifstream info(fmt::format("/proc/self/fdinfo/{}", fd));
	std::string line;
	while (std::getline(info, line)) {
		if (line.rfind("eventfd-semaphore:", 0) == 0 &&
		    line.find('1', sizeof("eventfd-semaphore:") - 1) != std::string::npos)
			throw ProtocolError(fmt::format("{}: queue {} fd is an EFD_SEMAPHORE eventfd "
							"(a kick must reset the counter)",
							name(code), v.index));
	}
}

/*
 * The loop signals and drains these fds: one that could block (a full
 * blocking eventfd from a hostile front-end) would stall every queue.
 */
void make_non_blocking(Request code, const wire::VringFd &v)
{
	if (!v.fd.valid())
		return;
	int flags = ::fcntl(v.fd.get(), F_GETFL);
	if (flags < 0 || ::fcntl(v.fd.get(), F_SETFL, flags | O_NONBLOCK) < 0)
		throw ProtocolError(fmt::format("{}: queue {} fd cannot be made non-blocking: {}",
						name(code), v.index, std::strerror(errno)));
}

/* The checks every notification fd passes before the session keeps it. */
void check_notification_fd(Request code, const wire::VringFd &v)
{
	if (!v.fd.valid())
		return;
	check_eventfd(code, v, code == Request::SetVringKick);
	make_non_blocking(code, v);
}

} // namespace

Session::Session(boost::asio::io_context &io, Device &device, Socket socket,
		 const ServerOptions &options, std::function<void()> on_close)
	: io_(io), device_(device), socket_(std::move(socket)), options_(options),
	  on_close_(std::move(on_close))
{
	replies_ = std::make_unique<Outbox>(io_, socket_.native_handle(), options_.max_unsent_bytes,
					    options_.unsent_timeout_ms,
					    [this](const std::string &why) { close(why); });
	for (unsigned i = 0; i < device_.num_queues(); i++)
		rings_.push_back(std::make_unique<Ring>(static_cast<uint16_t>(i),
							 device_.max_queue_size(i)));
	device_.attach(*this);
}

Session::~Session()
{
	alive_.reset();
	for (auto &r : rings_)
		stop_ring(*r);
	/* The front-end left: not a device reset (the device may keep state for
	 * the next one), but nothing of this connection may be used any more. */
	device_.detach();
}

uint64_t Session::transport_features()
{
	using namespace wire::virtio_feature;
	return wire::feature_bit(Version1) | wire::feature_bit(RingEventIdx) |
	       wire::feature_bit(RingIndirectDesc) | wire::feature_bit(NotifyOnEmpty) |
	       wire::feature_bit(ProtocolFeatures);
}

uint64_t Session::offered_features() const
{
	return device_.features() | transport_features();
}

uint64_t Session::offered_protocol_features() const
{
	uint64_t f = wire::bit(ProtocolFeature::Mq) | wire::bit(ProtocolFeature::ReplyAck);
	if (options_.offer_backend_channel)
		f |= wire::bit(ProtocolFeature::BackendReq);
	if (options_.offer_mem_slots)
		f |= wire::bit(ProtocolFeature::ConfigureMemSlots);
	if (options_.offer_reset_device)
		f |= wire::bit(ProtocolFeature::ResetDevice);
	if (options_.offer_status)
		f |= wire::bit(ProtocolFeature::Status);
	if (options_.offer_config && device_.config_size() > 0)
		f |= wire::bit(ProtocolFeature::Config);
	return f;
}

void Session::start()
{
	socket_.non_blocking(true);
	wait_readable();
}

void Session::wait_readable()
{
	std::weak_ptr<int> alive = alive_;
	socket_.async_wait(Socket::wait_read, [this, alive](const boost::system::error_code &ec) {
		if (alive.expired() || closing_)
			return;
		if (ec) {
			close(fmt::format("socket error: {}", ec.message()));
			return;
		}
		on_readable();
	});
}

void Session::on_readable()
{
	/*
	 * Handle the whole messages that are already here, then wait again. At
	 * most kMessagesPerWakeup: a front-end that keeps the socket full must
	 * not hold the loop (kicks, timers, the device's own work), nor keep
	 * being served after its replies overflowed (the outbox's error is
	 * posted, so it runs only once this returns).
	 */
	constexpr unsigned kMessagesPerWakeup = 64;
	for (unsigned handled = 0; !closing_ && !replies_->failed(); handled++) {
		if (handled == kMessagesPerWakeup)
			break;
		MessageReader::Status status;
		try {
			status = reader_.read_some(socket_.native_handle());
		} catch (const ProtocolError &e) {
			close(e.what());
			return;
		} catch (const std::system_error &e) {
			close(e.what());
			return;
		}
		if (status == MessageReader::Status::Closed) {
			end();
			return;
		}
		if (status == MessageReader::Status::NeedMore)
			break;
		handle(reader_.take());
	}
	if (!closing_ && !replies_->failed())
		wait_readable();
}

void Session::handle(wire::Message msg)
{
	wire::Header header = msg.header;
	std::optional<std::vector<uint8_t>> reply;
	bool need_reply = header.flags & wire::kFlagNeedReply;
	auto code = static_cast<Request>(header.request);
	std::string error;

	try {
		auto req = wire::parse_request(header, msg.payload, std::move(msg.fds));
		logger().debug("{} (size {}, flags 0x{:x})", name(code), header.size, header.flags);
		reply = dispatch(req);
	} catch (const ProtocolError &e) {
		/* Lower layers (memory, rings) name the field; the log line must also
		 * name the message. */
		error = e.what();
		std::string_view n = name(code);
		if (error.compare(0, n.size(), n) != 0)
			error = fmt::format("{}: {}", n, error);
	}

	/* REPLY_ACK is judged after the request: SET_PROTOCOL_FEATURES may just have enabled it. */
	bool ack = need_reply && has_protocol(ProtocolFeature::ReplyAck) && !has_own_reply(code);

	if (!error.empty()) {
		if (ack) {
			logger().error("{}; refused (error reply)", error);
			replies_->send(wire::make_reply(header, wire::as_bytes(uint64_t{1})));
			return;
		}
		/* Without an error reply the front-end would believe the request succeeded
		 * (or wait forever for its reply): end the connection instead. */
		close(error);
		return;
	}

	/* Never a blocking write on the loop thread: what the socket does not take
	 * now waits in the outbox (and a front-end that never reads is dropped). */
	if (reply)
		replies_->send(wire::make_reply(header, *reply));
	else if (ack)
		replies_->send(wire::make_reply(header, wire::as_bytes(uint64_t{0})));
}

void Session::close(const std::string &reason)
{
	if (closing_)
		return;
	logger().error("{}; closing the connection", reason);
	end();
}

void Session::end()
{
	if (closing_)
		return;
	closing_ = true;
	logger().info("front-end disconnected");
	boost::system::error_code ignored;
	socket_.cancel(ignored);
	/* Posted, so the owner may destroy us; skipped if it already did. */
	std::weak_ptr<int> alive = alive_;
	auto cb = on_close_;
	boost::asio::post(io_, [alive, cb] {
		if (!alive.expired())
			cb();
	});
}

bool Session::has_protocol(ProtocolFeature feature) const
{
	return protocol_features_ & wire::bit(feature);
}

void Session::require_protocol(Request code, ProtocolFeature feature) const
{
	if (!has_protocol(feature))
		throw ProtocolError(fmt::format("{}: protocol feature {} not negotiated", name(code),
						static_cast<unsigned>(feature)));
}

Session::Ring &Session::ring(Request code, uint32_t index)
{
	if (index >= rings_.size())
		throw ProtocolError(fmt::format("{}: vring index {} out of range (device has {} queues)",
						name(code), index, rings_.size()));
	return *rings_[index];
}

void Session::update_ring(Ring &r)
{
	bool should = r.started && r.enabled && r.queue.ready() && !closing_;
	if (should && !r.active) {
		r.active = true;
		r.queue.new_generation();
		logger().debug("queue {} started", r.queue.index());
		device_.queue_started(r.queue);
		/* Buffers may already be waiting (a kick while disabled, or a reconnect). */
		if (r.active)
			kick_device(r);
	} else if (!should && r.active) {
		deactivate(r);
	}
}

void Session::kick_device(Ring &r)
{
	r.queue.begin_pass();
	device_.queue_kicked(r.queue);
	if (!r.queue.end_pass() || r.rest_posted)
		return;
	/* A ring refilled as fast as the device completes: the rest after
	 * whatever else waits on the loop, never all in this handler. */
	r.rest_posted = true;
	std::weak_ptr<int> alive = alive_;
	boost::asio::post(io_, [this, alive, rp = &r] {
		if (alive.expired())
			return;
		rp->rest_posted = false;
		if (rp->active && !closing_)
			kick_device(*rp);
	});
}

void Session::deactivate(Ring &r)
{
	r.active = false;
	logger().debug("queue {} stopped", r.queue.index());
	device_.queue_stopped(r.queue);
	/* Chains the device still held are lost unless it completes in order. */
	if (r.queue.in_flight() && device_.queue_in_order(r.queue.index()))
		r.queue.rewind_in_flight();
	else
		r.queue.new_generation();
}

void Session::watch_kick(Ring &r)
{
	if (!r.kick)
		return;
	std::weak_ptr<int> alive = alive_;
	Ring *rp = &r;
	auto *kick = r.kick.get();
	kick->async_wait(boost::asio::posix::stream_descriptor::wait_read,
			 [this, alive, rp, kick](const boost::system::error_code &ec) {
				 if (alive.expired() || ec || closing_ || rp->kick.get() != kick)
					 return;
				 uint64_t count;
				 /* One read and one queue_kicked() per wake-up: an eventfd read
				  * resets the counter, so the fd is quiet until the next kick. */
				 ssize_t n = ::read(kick->native_handle(), &count, sizeof(count));
				 /* EAGAIN: another ring sharing this eventfd drained it first;
				  * it is quiet now, and this ring may have buffers too. */
				 bool drained = n < 0 && (errno == EAGAIN || errno == EINTR);
				 if (n != sizeof(count) && !drained) {
					 /* Never re-arm an fd that stays readable: no kick can
					  * come any more, so the ring (and connection) ends. */
					 close(fmt::format("SET_VRING_KICK: queue {} kick fd {}",
							   rp->queue.index(),
							   n < 0 ? std::strerror(errno)
								 : fmt::format("read returned {}", n)));
					 return;
				 }
				 if (rp->active)
					 kick_device(*rp);
				 if (rp->kick.get() == kick)
					 watch_kick(*rp);
			 });
}

void Session::stop_ring(Ring &r)
{
	r.started = false;
	update_ring(r);
	r.kick.reset();
}

void Session::reset_device()
{
	for (auto &r : rings_) {
		stop_ring(*r);
		r->enabled = false;
		r->queue.reset();
	}
	device_.reset();
	acked_features_ = 0;
	status_ = 0;
}

void Session::set_memory(std::shared_ptr<const GuestMemory> memory)
{
	memory_ = std::move(memory);
	for (auto &r : rings_) {
		r->queue.remap(memory_);
		update_ring(*r);
	}
}

void Session::apply_ring_features()
{
	using namespace wire::virtio_feature;
	Virtqueue::Features f;
	f.event_idx = acked_features_ & wire::feature_bit(RingEventIdx);
	f.indirect = acked_features_ & wire::feature_bit(RingIndirectDesc);
	f.notify_on_empty = acked_features_ & wire::feature_bit(NotifyOnEmpty);
	for (auto &r : rings_)
		r->queue.set_features(f);
}

bool Session::send_backend(const wire::Message &msg)
{
	if (!backend_outbox_)
		return false;
	backend_outbox_->send(msg);
	return true;
}

void Session::drop_backend_channel(const std::string &why)
{
	logger().error("back-end channel: {}; no more messages go to the front-end on it", why);
	backend_outbox_.reset();
	backend_channel_.reset();
}

bool Session::notify_config_change()
{
	if (closing_)
		return false;
	/* No NEED_REPLY: the loop never waits for the front-end. */
	return send_backend(wire::make_request(
		static_cast<Request>(wire::BackendRequest::ConfigChangeMsg), {}));
}

void Session::set_needs_reset()
{
	/* virtio 2.1.2: the driver sees DEVICE_NEEDS_RESET in the status and, told
	 * by a configuration change notification, resets the device. */
	status_ |= wire::kStatusNeedsReset;
	logger().warn("the device needs a reset (status 0x{:x})", status_);
	notify_config_change();
}

std::optional<std::vector<uint8_t>> Session::dispatch(wire::ParsedRequest &req)
{
	const Request code = req.code;
	auto &p = req.payload;

	if (auto feature = unsupported_feature(code))
		throw ProtocolError(fmt::format("{}: not supported (protocol feature {} not offered)",
						name(code), static_cast<unsigned>(*feature)));

	switch (code) {
	case Request::GetFeatures:
		return u64_reply(offered_features());

	case Request::SetFeatures: {
		uint64_t value = std::get<wire::U64>(p).value;
		if (value & ~offered_features())
			throw ProtocolError(fmt::format("SET_FEATURES: bits 0x{:x} were not offered",
							value & ~offered_features()));
		acked_features_ = value;
		apply_ring_features();
		if ((value & wire::feature_bit(wire::virtio_feature::ProtocolFeatures)) &&
		    !protocol_features_set_) {
			/* QEMU 7.2 reconnects without GET/SET_PROTOCOL_FEATURES, taking the set
			 * agreed with the previous back-end process as still in force. */
			protocol_features_ = offered_protocol_features();
			protocol_features_set_ = true;
			logger().warn("SET_FEATURES with VHOST_USER_F_PROTOCOL_FEATURES but no "
				      "SET_PROTOCOL_FEATURES on this connection (a reconnect): assuming "
				      "the offered protocol features 0x{:x}",
				      protocol_features_);
		}
		/* Without protocol features there is no SET_VRING_ENABLE: rings are enabled. */
		if (!(value & wire::feature_bit(wire::virtio_feature::ProtocolFeatures))) {
			for (auto &r : rings_) {
				r->enabled = true;
				update_ring(*r);
			}
		}
		device_.features_negotiated(value);
		return std::nullopt;
	}

	case Request::SetOwner:
		/* The connection is the session: there is no other owner to exclude. */
		return std::nullopt;

	case Request::ResetOwner:
		reset_device();
		return std::nullopt;

	case Request::GetProtocolFeatures:
		return u64_reply(offered_protocol_features());

	case Request::SetProtocolFeatures: {
		uint64_t value = std::get<wire::U64>(p).value;
		if (value & ~offered_protocol_features())
			throw ProtocolError(fmt::format(
				"SET_PROTOCOL_FEATURES: bits 0x{:x} were not offered",
				value & ~offered_protocol_features()));
		protocol_features_ = value;
		protocol_features_set_ = true;
		return std::nullopt;
	}

	case Request::GetQueueNum:
		require_protocol(code, ProtocolFeature::Mq);
		return u64_reply(rings_.size());

	case Request::GetMaxMemSlots:
		require_protocol(code, ProtocolFeature::ConfigureMemSlots);
		return u64_reply(wire::kMaxMemSlots);

	case Request::SetMemTable: {
		auto &table = std::get<wire::MemTable>(p);
		std::vector<std::shared_ptr<const MappedRegion>> regions;
		for (size_t i = 0; i < table.regions.size(); i++)
			regions.push_back(MappedRegion::map(table.regions[i], table.fds[i]));
		/* The fds are not needed once mapped; they close with the request. */
		set_memory(std::make_shared<const GuestMemory>(std::move(regions)));
		return std::nullopt;
	}

	case Request::AddMemReg: {
		require_protocol(code, ProtocolFeature::ConfigureMemSlots);
		auto &mr = std::get<wire::MemRegion>(p);
		auto region = MappedRegion::map(mr.region, mr.fd);
		auto base = memory_ ? memory_ : std::make_shared<const GuestMemory>();
		set_memory(base->with_region(std::move(region), wire::kMaxMemSlots));
		return std::nullopt;
	}

	case Request::RemMemReg: {
		require_protocol(code, ProtocolFeature::ConfigureMemSlots);
		auto &mr = std::get<wire::MemRegion>(p);
		if (!memory_)
			throw ProtocolError("REM_MEM_REG: no memory regions");
		/* Chains still in flight keep the old mapping alive until they are pushed. */
		set_memory(memory_->without_region(mr.region));
		return std::nullopt;
	}

	case Request::SetVringNum: {
		auto s = std::get<wire::VringState>(p);
		Ring &r = ring(code, s.index);
		if (r.started)
			throw ProtocolError(fmt::format("SET_VRING_NUM: queue {} is started", s.index));
		r.queue.set_size(s.num);
		if (memory_)
			r.queue.remap(memory_);
		return std::nullopt;
	}

	case Request::SetVringAddr: {
		auto a = std::get<wire::VringAddr>(p);
		Ring &r = ring(code, a.index);
		/* New addresses on a live ring (QEMU does this when logging changes):
		 * the device sees a stop and a start around the change. */
		if (r.active)
			deactivate(r);
		try {
			r.queue.set_addresses(a, memory_);
		} catch (...) {
			update_ring(r);
			throw;
		}
		update_ring(r);
		return std::nullopt;
	}

	case Request::SetVringBase: {
		auto s = std::get<wire::VringState>(p);
		Ring &r = ring(code, s.index);
		if (r.started)
			throw ProtocolError(fmt::format("SET_VRING_BASE: queue {} is started", s.index));
		r.queue.set_base(s.num);
		return std::nullopt;
	}

	case Request::GetVringBase: {
		auto s = std::get<wire::VringState>(p);
		Ring &r = ring(code, s.index);
		stop_ring(r);
		wire::VringState reply{s.index, r.queue.base()};
		auto bytes = wire::as_bytes(reply);
		return std::vector<uint8_t>(bytes.begin(), bytes.end());
	}

	case Request::SetVringKick: {
		auto &v = std::get<wire::VringFd>(p);
		Ring &r = ring(code, v.index);
		/* Polling mode is not offered: a ring started without a kick fd would
		 * never be served. */
		if (!v.fd.valid())
			throw ProtocolError(fmt::format("SET_VRING_KICK: queue {} has the no-fd bit "
							"(0x{:x}) set; polling is not supported, a kick "
							"eventfd is required",
							v.index, wire::kVringNoFdFlag));
		check_notification_fd(code, v);
		r.kick.reset();
		{
			auto kick = std::make_unique<boost::asio::posix::stream_descriptor>(io_);
			boost::system::error_code ec;
			kick->assign(v.fd.get(), ec);
			if (ec)
				throw ProtocolError(fmt::format("SET_VRING_KICK: queue {} fd cannot be "
								"polled: {}",
								v.index, ec.message()));
			v.fd.release(); /* now owned by the descriptor */
			r.kick = std::move(kick);
			watch_kick(r);
		}
		/* The ring starts now (implementations and the clarified spec agree). */
		r.started = true;
		update_ring(r);
		return std::nullopt;
	}

	case Request::SetVringCall: {
		auto &v = std::get<wire::VringFd>(p);
		Ring &r = ring(code, v.index);
		check_notification_fd(code, v);
		r.queue.set_call(EventFd(std::move(v.fd)));
		return std::nullopt;
	}

	case Request::SetVringErr: {
		auto &v = std::get<wire::VringFd>(p);
		Ring &r = ring(code, v.index);
		check_notification_fd(code, v);
		r.queue.set_err(EventFd(std::move(v.fd)));
		return std::nullopt;
	}

	case Request::SetVringEnable: {
		auto s = std::get<wire::VringState>(p);
		if (!(acked_features_ & wire::feature_bit(wire::virtio_feature::ProtocolFeatures)))
			throw ProtocolError("SET_VRING_ENABLE: VHOST_USER_F_PROTOCOL_FEATURES (bit 30) "
					    "not negotiated");
		Ring &r = ring(code, s.index);
		if (s.num > 1)
			throw ProtocolError(fmt::format("SET_VRING_ENABLE: queue {} num {} is not 0 or 1",
							s.index, s.num));
		r.enabled = s.num == 1;
		update_ring(r);
		return std::nullopt;
	}

	case Request::SetBackendReqFd: {
		require_protocol(code, ProtocolFeature::BackendReq);
		backend_outbox_.reset();
		backend_channel_ = std::move(std::get<wire::Fd>(p).fd);
		try {
			backend_outbox_ = std::make_unique<Outbox>(
				io_, backend_channel_.get(), options_.max_unsent_bytes,
				options_.unsent_timeout_ms,
				[this](const std::string &why) { drop_backend_channel(why); });
		} catch (const std::exception &e) {
			/* Out of fds (dup) or epoll refused it: refuse the request. */
			backend_channel_.reset();
			throw ProtocolError(fmt::format("SET_BACKEND_REQ_FD: {}", e.what()));
		}
		return std::nullopt;
	}

	case Request::GetConfig:
	case Request::SetConfig: {
		require_protocol(code, ProtocolFeature::Config);
		auto &c = std::get<wire::Config>(p);
		uint32_t size = static_cast<uint32_t>(c.data.size());
		bool fits = uint64_t(c.offset) + size <= device_.config_size();
		if (code == Request::SetConfig) {
			if (!fits || !device_.write_config(c.offset, c.data))
				throw ProtocolError(fmt::format(
					"SET_CONFIG: offset {} size {} refused (config space is {} bytes)",
					c.offset, size, device_.config_size()));
			return std::nullopt;
		}
		wire::ConfigHeader ch{c.offset, size, c.flags};
		std::vector<uint8_t> reply(sizeof(ch) + size, 0);
		if (!fits || !device_.read_config(c.offset, {reply.data() + sizeof(ch), size})) {
			/* QEMU takes a reply without config bytes as the error it is. */
			logger().error("GET_CONFIG: offset {} size {} refused (config space is {} bytes)",
				       c.offset, size, device_.config_size());
			ch.size = 0;
			reply.resize(sizeof(ch));
		}
		std::memcpy(reply.data(), &ch, sizeof(ch));
		return reply;
	}

	case Request::ResetDevice:
		require_protocol(code, ProtocolFeature::ResetDevice);
		reset_device();
		return std::nullopt;

	case Request::SetStatus: {
		require_protocol(code, ProtocolFeature::Status);
		uint64_t value = std::get<wire::U64>(p).value;
		if (value > 0xff)
			throw ProtocolError(fmt::format("SET_STATUS: status 0x{:x} above 0xff", value));
		if (value == 0) {
			/* QEMU stops a device with SET_STATUS 0 and only then asks each ring's
			 * base (GET_VRING_BASE) to resume it later: stop the rings and reset
			 * the device, but keep the ring indices. */
			for (auto &r : rings_)
				stop_ring(*r);
			device_.reset();
		}
		/* NEEDS_RESET is the device's bit: a driver writing its own bits does not
		 * clear it; only the reset (status 0) does. */
		const uint8_t keep = value ? (status_ & wire::kStatusNeedsReset) : 0;
		status_ = static_cast<uint8_t>(value) | keep;
		return std::nullopt;
	}

	case Request::GetStatus:
		require_protocol(code, ProtocolFeature::Status);
		return u64_reply(status_);

	default:
		break;
	}
	throw ProtocolError(fmt::format("{}: not supported", name(code)));
}

} // namespace vhostpp
