/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * QEMU 10's real pause/resume of a VM playing sound, replayed against
 * vhost-sound from a recorded trace (fixtures/qemu10-snd-stop-cont.trace,
 * recorded with tests/qemu/vhost_user_trace.py; see tests/README.md).
 *
 * Every Q->D request of the trace is sent in the same order with the same
 * flags (NEED_REPLY where QEMU set it), the same features, protocol
 * features, status values and per-queue NUM / BASE / ENABLE values. What is
 * QEMU's own is substituted: the memory region, ring addresses, eventfds
 * and, on resume, the SET_VRING_BASE QEMU sends back is the base our
 * GET_VRING_BASE returned (the trace checks that QEMU does exactly that).
 * The guest's sound traffic lives in the rings, not in the trace: the test
 * plays the Linux driver's part around the replayed stop/cont.
 */
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <vhostpp/frontend/frontend.h>
#include <vhostpp/frontend/testing.h>
#include <vhostpp/internal/wire.h>

#include "linux_driver.h"
#include "sound_fixture.h"

using namespace sound_test;
using vhostpp::DriverBuffer;
using vhostpp::DriverMemory;
using vhostpp::DriverQueue;
using vhostpp::EventFd;
using vhostpp::Frontend;
using vhostpp::UniqueFd;
namespace wire = vhostpp::wire;

namespace {

/* ---- the trace ---------------------------------------------------------- */

/** \brief One logged message: "Q->D NAME flags=.. size=.. fds=.. fields...". */
struct TraceMsg {
	std::string name;
	uint32_t flags = 0;
	uint32_t size = 0;
	uint32_t fds = 0;
	std::map<std::string, std::string> fields; /* payload fields (brackets dropped) */
	std::optional<std::map<std::string, std::string>> reply;

	uint64_t num(const std::string &key) const
	{
		const auto it = fields.find(key);
		if (it == fields.end())
			throw std::runtime_error("trace: " + name + " has no " + key);
		return std::stoull(it->second, nullptr, 0);
	}
	uint64_t reply_num(const std::string &key) const
	{
		if (!reply || !reply->count(key))
			throw std::runtime_error("trace: " + name + " has no reply " + key);
		return std::stoull(reply->at(key), nullptr, 0);
	}
};

/** \brief The Q->D requests between the recorder's "---" markers. */
struct Trace {
	std::vector<TraceMsg> startup; /* connection .. "guest ready" */
	std::vector<TraceMsg> idle;    /* "guest ready" .. "QMP stop" */
	std::vector<TraceMsg> stop;    /* "QMP stop" .. "QMP cont" */
	std::vector<TraceMsg> cont;    /* "QMP cont" .. "aplay finished" */
};

std::string fixture_path()
{
	const char *dir = std::getenv("VHOST_SOUND_FIXTURES");
	if (!dir)
		throw std::runtime_error("VHOST_SOUND_FIXTURES is not set (run through meson test)");
	return std::string(dir) + "/qemu10-snd-stop-cont.trace";
}

Trace parse_trace(const std::string &path)
{
	std::ifstream in(path);
	if (!in)
		throw std::runtime_error("cannot open " + path);
	Trace t;
	std::vector<TraceMsg> *phase = &t.startup;
	std::string line;
	while (std::getline(in, line)) {
		if (line.empty() || line[0] == '#')
			continue;
		std::istringstream ls(line);
		std::string time, tag;
		ls >> time >> tag;
		if (tag == "---") {
			std::string rest;
			std::getline(ls, rest);
			if (rest.find("guest ready") != std::string::npos)
				phase = &t.idle;
			else if (rest.find("QMP stop") != std::string::npos)
				phase = &t.stop;
			else if (rest.find("QMP cont") != std::string::npos)
				phase = &t.cont;
			else if (rest.find("aplay finished") != std::string::npos)
				phase = nullptr;
			continue;
		}
		std::string dir;
		ls >> dir;
		if (dir != "Q->D" && dir != "D->Q")
			continue; /* "connected", "closed" */
		if (!phase)
			throw std::runtime_error("trace: a message after the last marker: " + line);
		TraceMsg m;
		ls >> m.name;
		std::string tok;
		std::map<std::string, std::string> fields;
		int header = 0;
		while (ls >> tok) {
			if (tok.front() == '[')
				tok.erase(0, 1);
			if (!tok.empty() && tok.back() == ']')
				tok.pop_back();
			const auto eq = tok.find('=');
			if (eq == std::string::npos) {
				fields[tok] = "1"; /* NOFD */
				continue;
			}
			const std::string key = tok.substr(0, eq), value = tok.substr(eq + 1);
			if (header < 3 && (key == "flags" || key == "size" || key == "fds")) {
				const uint32_t v = std::stoul(value, nullptr, 0);
				(key == "flags" ? m.flags : key == "size" ? m.size : m.fds) = v;
				header++;
				continue;
			}
			fields.emplace(key, value);
		}
		if (dir == "Q->D") {
			m.fields = std::move(fields);
			phase->push_back(std::move(m));
		} else {
			const std::string name = m.name.substr(0, m.name.find("(reply)"));
			if (phase->empty() || phase->back().name != name || phase->back().reply)
				throw std::runtime_error("trace: a reply to nothing: " + line);
			phase->back().reply = std::move(fields);
		}
	}
	return t;
}

/* ---- the replay --------------------------------------------------------- */

wire::Request request_code(const std::string &name)
{
	static const std::map<std::string, wire::Request> codes = {
		{ "GET_FEATURES", wire::Request::GetFeatures },
		{ "SET_FEATURES", wire::Request::SetFeatures },
		{ "SET_OWNER", wire::Request::SetOwner },
		{ "SET_VRING_NUM", wire::Request::SetVringNum },
		{ "SET_VRING_ADDR", wire::Request::SetVringAddr },
		{ "SET_VRING_BASE", wire::Request::SetVringBase },
		{ "GET_VRING_BASE", wire::Request::GetVringBase },
		{ "SET_VRING_KICK", wire::Request::SetVringKick },
		{ "SET_VRING_CALL", wire::Request::SetVringCall },
		{ "SET_VRING_ERR", wire::Request::SetVringErr },
		{ "GET_PROTOCOL_FEATURES", wire::Request::GetProtocolFeatures },
		{ "SET_PROTOCOL_FEATURES", wire::Request::SetProtocolFeatures },
		{ "GET_QUEUE_NUM", wire::Request::GetQueueNum },
		{ "SET_VRING_ENABLE", wire::Request::SetVringEnable },
		{ "SET_BACKEND_REQ_FD", wire::Request::SetBackendReqFd },
		{ "GET_CONFIG", wire::Request::GetConfig },
		{ "GET_MAX_MEM_SLOTS", wire::Request::GetMaxMemSlots },
		{ "ADD_MEM_REG", wire::Request::AddMemReg },
		{ "SET_STATUS", wire::Request::SetStatus },
		{ "GET_STATUS", wire::Request::GetStatus },
	};
	const auto it = codes.find(name);
	if (it == codes.end())
		throw std::runtime_error("replay: no replay for " + name);
	return it->second;
}

template<typename T>
std::vector<uint8_t> bytes_of(const T &v)
{
	std::vector<uint8_t> b(sizeof(T));
	std::memcpy(b.data(), &v, sizeof(T));
	return b;
}

template<typename T>
T value_of(const std::vector<uint8_t> &b)
{
	REQUIRE(b.size() >= sizeof(T));
	T v;
	std::memcpy(&v, b.data(), sizeof(T));
	return v;
}

/** \brief The front-end side: QEMU's requests with our own memory, rings and eventfds. */
class Replayer
{
public:
	explicit Replayer(const std::string &path) : fe(Frontend::connect(path)), mem(16 << 20) {}

	/** \brief Send \a m as recorded (substituting what is QEMU's), wait for
	 *  its reply or acknowledgement; returns the reply's payload. */
	std::vector<uint8_t> send(const TraceMsg &m)
	{
		const wire::Request code = request_code(m.name);
		wire::Message msg;
		std::vector<int> fds;
		auto index = [&] { return static_cast<uint32_t>(m.num("index")); };
		size_t reply_size = 0;
		switch (code) {
		case wire::Request::GetFeatures:
		case wire::Request::GetProtocolFeatures:
		case wire::Request::GetQueueNum:
		case wire::Request::GetMaxMemSlots:
		case wire::Request::GetStatus:
			reply_size = 8;
			break;
		case wire::Request::SetOwner:
			break;
		case wire::Request::SetFeatures:
		case wire::Request::SetProtocolFeatures:
		case wire::Request::SetStatus:
			msg.payload = bytes_of(wire::U64{ m.num("u64") });
			break;
		case wire::Request::SetBackendReqFd: {
			int sv[2];
			REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
			backend_req = UniqueFd(sv[0]);
			UniqueFd theirs(sv[1]);
			fds.push_back(theirs.get());
			keep_fds.push_back(std::move(theirs)); /* the kernel copies it */
			break;
		}
		case wire::Request::AddMemReg: {
			std::vector<uint8_t> p(8, 0);
			const auto r = bytes_of(mem.region());
			p.insert(p.end(), r.begin(), r.end());
			msg.payload = std::move(p);
			fds.push_back(mem.fd().get());
			added_mem = true;
			break;
		}
		case wire::Request::SetVringNum: {
			const uint32_t i = index(), num = static_cast<uint32_t>(m.num("num"));
			if (!queues.count(i))
				queues[i] = std::make_unique<DriverQueue>(mem, static_cast<uint16_t>(i),
									   static_cast<uint16_t>(num));
			REQUIRE(queues[i]->size() == num);
			msg.payload = bytes_of(wire::VringState{ i, num });
			break;
		}
		case wire::Request::SetVringBase: {
			const uint32_t i = index();
			uint32_t base = static_cast<uint32_t>(m.num("num"));
			if (const auto it = bases.find(i); it != bases.end()) {
				/* QEMU sends back what GET_VRING_BASE gave it; so do we. */
				REQUIRE(recorded_bases.at(i) == base);
				base = it->second;
			}
			msg.payload = bytes_of(wire::VringState{ i, base });
			break;
		}
		case wire::Request::SetVringAddr: {
			auto addr = queues.at(index())->addresses();
			addr.flags = static_cast<uint32_t>(m.num("flags"));
			msg.payload = bytes_of(addr);
			break;
		}
		case wire::Request::SetVringKick:
		case wire::Request::SetVringCall:
		case wire::Request::SetVringErr: {
			const uint32_t i = index();
			const bool nofd = m.fields.count("NOFD") != 0;
			REQUIRE(m.fds == (nofd ? 0u : 1u));
			msg.payload = bytes_of(wire::U64{ i | (nofd ? 0x100u : 0u) });
			if (nofd)
				break;
			const auto q = queues.find(i);
			if (code == wire::Request::SetVringKick) {
				fds.push_back(q->second->kick_fd().fd());
			} else if (code == wire::Request::SetVringCall && q != queues.end()) {
				/* A fresh eventfd each time, as QEMU's second round hands over
				 * a new one: the queue waits on the newest. */
				q->second->set_call_fd(EventFd::create());
				fds.push_back(q->second->call_fd().fd());
			} else {
				/* The first round, before the rings exist; and the err fds. */
				spare.push_back(EventFd::create());
				fds.push_back(spare.back().fd());
			}
			break;
		}
		case wire::Request::SetVringEnable:
			msg.payload = bytes_of(wire::VringState{ index(), static_cast<uint32_t>(m.num("num")) });
			break;
		case wire::Request::GetVringBase:
			msg.payload = bytes_of(wire::VringState{ index(), static_cast<uint32_t>(m.num("num")) });
			reply_size = 8;
			break;
		case wire::Request::GetConfig: {
			const uint32_t size = static_cast<uint32_t>(m.num("size"));
			std::vector<uint8_t> p(12 + size, 0);
			const uint32_t head[3] = { static_cast<uint32_t>(m.num("offset")), size,
						   static_cast<uint32_t>(m.num("flags")) };
			std::memcpy(p.data(), head, sizeof(head));
			msg.payload = std::move(p);
			reply_size = 12 + size;
			break;
		}
		default:
			FAIL("replay: " << m.name);
		}
		/* The recorded header: QEMU's flags (NEED_REPLY or not) and size. */
		msg.header = { static_cast<uint32_t>(code), m.flags, static_cast<uint32_t>(msg.payload.size()) };
		REQUIRE(msg.payload.size() == m.size);
		REQUIRE(fds.size() == m.fds);
		vhostpp::testing::send(fe, msg, fds);
		sent.push_back(m.name);

		if (reply_size) {
			REQUIRE(m.reply);
			return vhostpp::testing::receive_reply(fe, code, reply_size);
		}
		if (m.flags & wire::kFlagNeedReply) {
			REQUIRE(m.reply);
			const auto ack = vhostpp::testing::receive_reply(fe, code, 8);
			CHECK(value_of<uint64_t>(ack) == 0);
			return ack;
		}
		REQUIRE_FALSE(m.reply);
		return {};
	}

	Frontend fe;
	DriverMemory mem;
	std::map<uint32_t, std::unique_ptr<DriverQueue>> queues;
	/* GET_VRING_BASE: what we got, and what QEMU got in the recording. */
	std::map<uint32_t, uint32_t> bases, recorded_bases;
	std::vector<EventFd> spare;
	std::vector<UniqueFd> keep_fds;
	UniqueFd backend_req;
	bool added_mem = false;
	std::vector<std::string> sent;
};

/* ---- the guest driver's part (what Linux puts in the rings) -------------- */

/** \brief The control path and one playback substream, as linux_driver.h's
 *  SoundDriver / LinuxPcm do it, on the replayer's rings. */
class Guest
{
public:
	explicit Guest(Replayer &r)
		: r_(r), req_gpa_(r.mem.allocate(4096, 4096)), resp_gpa_(r.mem.allocate(4096, 4096))
	{
	}

	uint32_t control(std::span<const uint8_t> request, size_t response_bytes)
	{
		std::memcpy(r_.mem.at(req_gpa_, request.size()).data(), request.data(), request.size());
		std::memset(r_.mem.at(resp_gpa_, response_bytes).data(), 0xee, response_bytes);
		const DriverBuffer chain[] = { { req_gpa_, static_cast<uint32_t>(request.size()), false },
					       { resp_gpa_, static_cast<uint32_t>(response_bytes), true } };
		auto &q = *r_.queues.at(vs::kControlQueue);
		const uint16_t head = q.add(chain);
		q.kick();
		const auto used = q.wait_used(5000);
		REQUIRE(used);
		REQUIRE(used->head == head);
		controls++;
		uint32_t status;
		std::memcpy(&status, r_.mem.at(resp_gpa_, 4).data(), 4);
		return status;
	}

	template<typename T>
	uint32_t control(const T &request, size_t response_bytes = sizeof(vs::Hdr))
	{
		return control({ reinterpret_cast<const uint8_t *>(&request), sizeof(T) }, response_bytes);
	}

	void query(uint32_t code, uint32_t count, uint32_t item_size)
	{
		const vs::QueryInfo request{ { code }, 0, count, item_size };
		REQUIRE(control(request, sizeof(vs::Hdr) + count * item_size) == vs::kStatusOk);
	}

	/** \brief Period \a period's bytes: all (period + 1) mod 251 + 1, never 0. */
	static uint8_t fill_of(uint64_t period) { return static_cast<uint8_t>(period % 251 + 1); }

	/** \brief Write the next period's samples into \a slot and queue its message. */
	void queue_period(size_t slot)
	{
		auto &mem = r_.mem;
		std::memset(mem.at(dma_gpa + slot * config.period_bytes, config.period_bytes).data(),
			    fill_of(written), config.period_bytes);
		written++;
		std::memset(mem.at(status_gpa[slot], sizeof(vs::PcmStatus)).data(), 0xee,
			    sizeof(vs::PcmStatus));
		std::vector<DriverBuffer> chain{ { hdr_gpa[slot], sizeof(vs::PcmXfer), false } };
		const uint64_t start = dma_gpa + slot * config.period_bytes, end = start + config.period_bytes;
		for (uint64_t at = start; at < end;) {
			const uint64_t next = std::min<uint64_t>((at / 4096 + 1) * 4096, end);
			chain.push_back({ at, static_cast<uint32_t>(next - at), false });
			at = next;
		}
		chain.push_back({ status_gpa[slot], sizeof(vs::PcmStatus), true });
		const uint16_t head = tx().add_indirect(chain);
		REQUIRE(head_to_slot.count(head) == 0);
		head_to_slot[head] = slot;
	}

	/** \brief SET_PARAMS, PREPARE, the whole ring buffer queued, START. */
	void start()
	{
		periods = config.buffer_bytes / config.period_bytes;
		dma_gpa = r_.mem.allocate(config.buffer_bytes, 4096);
		for (size_t i = 0; i < periods; i++) {
			hdr_gpa.push_back(r_.mem.allocate(sizeof(vs::PcmXfer), 8));
			status_gpa.push_back(r_.mem.allocate(sizeof(vs::PcmStatus), 8));
			const vs::PcmXfer xfer{ 0 };
			std::memcpy(r_.mem.at(hdr_gpa.back(), sizeof(xfer)).data(), &xfer, sizeof(xfer));
		}
		vs::PcmSetParams p{};
		p.hdr = { { vs::kPcmSetParams }, 0 };
		p.buffer_bytes = config.buffer_bytes;
		p.period_bytes = config.period_bytes;
		p.format = config.format;
		p.rate = config.rate;
		p.channels = config.channels;
		REQUIRE(control(p) == vs::kStatusOk);
		REQUIRE(control(vs::PcmHdr{ { vs::kPcmPrepare }, 0 }) == vs::kStatusOk);
		for (size_t i = 0; i < periods; i++)
			queue_period(i);
		tx().kick();
		REQUIRE(control(vs::PcmHdr{ { vs::kPcmStart }, 0 }) == vs::kStatusOk);
	}

	/** \brief Wait for one TX completion (OK, the status footer written);
	 *  each head completes once per queueing. Returns the slot. */
	size_t complete(int timeout_ms = 3000)
	{
		const auto used = tx().wait_used(timeout_ms);
		REQUIRE(used);
		const auto it = head_to_slot.find(used->head);
		REQUIRE(it != head_to_slot.end()); /* a head completing twice is not in the map */
		const size_t slot = it->second;
		head_to_slot.erase(it);
		CHECK(used->len == sizeof(vs::PcmStatus));
		vs::PcmStatus st;
		std::memcpy(&st, r_.mem.at(status_gpa[slot], sizeof(st)).data(), sizeof(st));
		CHECK(st.status == vs::kStatusOk);
		completed++;
		return slot;
	}

	DriverQueue &tx() { return *r_.queues.at(vs::kTxQueue); }
	size_t in_flight() const { return head_to_slot.size(); }

	PcmConfig config;
	size_t periods = 0;
	uint64_t dma_gpa = 0;
	std::vector<uint64_t> hdr_gpa, status_gpa;
	std::map<uint16_t, size_t> head_to_slot;
	uint64_t written = 0;   /* periods written and queued */
	uint64_t completed = 0; /* completions seen */
	unsigned controls = 0;  /* control requests answered */

private:
	Replayer &r_;
	uint64_t req_gpa_, resp_gpa_;
};

PcmStream::State state_of(SoundDaemon &daemon)
{
	return daemon.on_loop([&] { return daemon.device().stream(0).state(); });
}

std::vector<std::string> names(const std::vector<TraceMsg> &msgs)
{
	std::vector<std::string> v;
	for (const auto &m : msgs)
		v.push_back(m.name);
	return v;
}

} // namespace

TEST_CASE("the fixture is QEMU 10's stop/cont: the parts the replay relies on", "[qemu-trace]")
{
	const Trace t = parse_trace(fixture_path());
	REQUIRE(t.startup.size() > 20);
	CHECK(t.idle.empty());
	/* stop: SET_VRING_ENABLE 0 then GET_VRING_BASE per queue, nothing else */
	REQUIRE(t.stop.size() == 8);
	for (unsigned i = 0; i < 4; i++) {
		CHECK(t.stop[i].name == "SET_VRING_ENABLE");
		CHECK(t.stop[i].num("index") == i);
		CHECK(t.stop[i].num("num") == 0);
		CHECK(t.stop[i].flags == (wire::kVersion | wire::kFlagNeedReply));
		CHECK(t.stop[4 + i].name == "GET_VRING_BASE");
		CHECK(t.stop[4 + i].num("index") == i);
	}
	/* cont: SET_FEATURES, GET_STATUS, the rings again from the bases QEMU
	 * got, ENABLE 1, a second round of CALL; no SET_STATUS, no memory */
	const std::vector<std::string> per_queue = { "SET_VRING_NUM", "SET_VRING_BASE", "SET_VRING_ADDR",
						     "SET_VRING_KICK", "SET_VRING_CALL" };
	std::vector<std::string> want = { "SET_FEATURES", "GET_STATUS" };
	for (unsigned i = 0; i < 4; i++)
		want.insert(want.end(), per_queue.begin(), per_queue.end());
	for (unsigned i = 0; i < 4; i++)
		want.push_back("SET_VRING_ENABLE");
	for (unsigned i = 0; i < 4; i++)
		want.push_back("SET_VRING_CALL");
	CHECK(names(t.cont) == want);
	for (unsigned i = 0; i < 4; i++)
		CHECK(t.cont[2 + 5 * i + 1].num("num") == t.stop[4 + i].reply_num("num"));
	CHECK(t.cont[1].reply_num("u64") == 0x8); /* FEATURES_OK: DRIVER_OK is not resent */
}

TEST_CASE("QEMU 10's VM stop/cont, replayed from the trace: the stream plays on", "[qemu-trace]")
{
	const Trace t = parse_trace(fixture_path());
	SoundDaemon daemon;
	Replayer r(daemon.socket_path());

	/* Start-up, as recorded; the device answers as vhost-sound did to QEMU. */
	std::vector<uint8_t> config_bytes;
	for (const auto &m : t.startup) {
		const auto reply = r.send(m);
		INFO(m.name);
		if (m.name == "GET_CONFIG") {
			config_bytes.assign(reply.begin() + 12, reply.end());
			continue;
		}
		if (reply.size() == 8 && m.reply && m.reply->count("u64"))
			CHECK(value_of<uint64_t>(reply) == m.reply_num("u64"));
	}
	REQUIRE(r.added_mem);
	REQUIRE(r.queues.size() == 4);
	REQUIRE(config_bytes.size() == 12);
	vs::Config config{};
	std::memcpy(&config, config_bytes.data(), 12);

	/* The Linux driver's probe (JACK_INFO, PCM_INFO, CHMAP_INFO), then aplay:
	 * SET_PARAMS, PREPARE, every period queued, START. */
	Guest g(r);
	g.query(vs::kJackInfo, config.jacks, sizeof(vs::JackInfo));
	g.query(vs::kPcmInfo, config.streams, sizeof(vs::PcmInfo));
	g.query(vs::kChmapInfo, config.chmaps, sizeof(vs::ChmapInfo));
	g.start();
	CHECK(state_of(daemon) == PcmStream::State::Running);
	/* Some periods complete and are re-queued at once with new samples. */
	for (int i = 0; i < 3; i++) {
		const size_t slot = g.complete();
		g.queue_period(slot);
		g.tx().kick();
	}
	REQUIRE(g.in_flight() == g.periods);

	/* QMP stop, as recorded. */
	for (const auto &m : t.stop) {
		const auto reply = r.send(m);
		if (m.name == "GET_VRING_BASE") {
			const auto st = value_of<wire::VringState>(reply);
			CHECK(st.index == m.num("index"));
			r.bases[st.index] = st.num;
			r.recorded_bases[st.index] = static_cast<uint32_t>(m.reply_num("num"));
		}
	}
	/* The control queue's base is the driver's request count, as in the
	 * recording (3 queries + SET_PARAMS, PREPARE, START); nothing was taken
	 * from the event and RX queues. */
	CHECK(r.bases.at(vs::kControlQueue) == g.controls);
	CHECK(r.bases.at(vs::kControlQueue) == r.recorded_bases.at(vs::kControlQueue));
	CHECK(r.bases.at(vs::kEventQueue) == r.recorded_bases.at(vs::kEventQueue));
	CHECK(r.bases.at(vs::kRxQueue) == r.recorded_bases.at(vs::kRxQueue));
	/* TX: the base rewinds past the messages the device held (they are
	 * fetched again after the resume); nothing completes while stopped. */
	auto &tx = g.tx();
	const size_t completed_before = g.completed;
	CHECK(r.bases.at(vs::kTxQueue) == tx.used_idx());
	const size_t held = g.in_flight() - static_cast<uint16_t>(tx.used_idx() - tx.last_used());
	CHECK(held > 0);
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	CHECK(tx.used_idx() == r.bases.at(vs::kTxQueue));
	/* The VM's stop is not a reset of the stream. */
	const auto paused = state_of(daemon);
	CHECK((paused == PcmStream::State::Running || paused == PcmStream::State::Prepared));

	/* QMP cont, as recorded: the bases QEMU sends back are the ones it got. */
	for (const auto &m : t.cont) {
		const auto reply = r.send(m);
		if (m.name == "GET_STATUS")
			CHECK(value_of<uint64_t>(reply) == m.reply_num("u64"));
	}
	CHECK(daemon.connected());
	CHECK(state_of(daemon) == PcmStream::State::Running);

	/* Every message held across the stop comes back exactly once (a head
	 * completing twice, or a completion of a head not in flight, fails in
	 * complete()); then the stream keeps going with re-queued periods. */
	const size_t in_flight = g.in_flight();
	for (size_t i = 0; i < in_flight; i++)
		g.complete();
	CHECK(g.in_flight() == 0);
	CHECK(g.completed == completed_before + in_flight);
	CHECK(g.completed == g.written);
	CHECK(state_of(daemon) == PcmStream::State::Running);
	CHECK_FALSE(tx.get_used());

	/* aplay ends: STOP, RELEASE. Every sample was played once, in order. */
	CHECK(g.control(vs::PcmHdr{ { vs::kPcmStop }, 0 }) == vs::kStatusOk);
	CHECK(g.control(vs::PcmHdr{ { vs::kPcmRelease }, 0 }) == vs::kStatusOk);
	const auto rendered = daemon.rendered();
	REQUIRE(rendered.size() == g.written * g.config.period_bytes);
	for (uint64_t p = 0; p < g.written; p++) {
		INFO("period " << p);
		const uint8_t *b = rendered.data() + p * g.config.period_bytes;
		CHECK(std::all_of(b, b + g.config.period_bytes,
				  [&](uint8_t x) { return x == Guest::fill_of(p); }));
	}
	CHECK(daemon.connected());
}
