/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * wire.h: header checks and request parsing for every code of the spec.
 *
 * The expected sizes and fd counts below are written out from QEMU's
 * docs/interop/vhost-user.rst, independently of wire.cpp's own table.
 */
#include <catch2/catch.hpp>

#include <cstring>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <vector>

#include <vhostpp/internal/wire.h>

#include "fd_util.h"

using namespace vhostpp;
using namespace vhostpp::wire;
using vhostpp::test::FdWatch;

namespace {

enum class Kind { Fixed, MemTable, Config, Variable };

struct Rule {
	uint32_t code;
	const char *name;
	Kind kind;
	uint32_t size; /* for Fixed */
	int fds;       /* fds a valid message carries; -1: vring fd rule; -2: 0 or 1 */
};

/* Every request code 1..43 with its payload rule and fds. */
const std::vector<Rule> kRules = {
	{1, "GET_FEATURES", Kind::Fixed, 0, 0},
	{2, "SET_FEATURES", Kind::Fixed, 8, 0},
	{3, "SET_OWNER", Kind::Fixed, 0, 0},
	{4, "RESET_OWNER", Kind::Fixed, 0, 0},
	{5, "SET_MEM_TABLE", Kind::MemTable, 0, 1},
	{6, "SET_LOG_BASE", Kind::Fixed, 16, 1},
	{7, "SET_LOG_FD", Kind::Fixed, 0, 1},
	{8, "SET_VRING_NUM", Kind::Fixed, 8, 0},
	{9, "SET_VRING_ADDR", Kind::Fixed, 40, 0},
	{10, "SET_VRING_BASE", Kind::Fixed, 8, 0},
	{11, "GET_VRING_BASE", Kind::Fixed, 8, 0},
	{12, "SET_VRING_KICK", Kind::Fixed, 8, -1},
	{13, "SET_VRING_CALL", Kind::Fixed, 8, -1},
	{14, "SET_VRING_ERR", Kind::Fixed, 8, -1},
	{15, "GET_PROTOCOL_FEATURES", Kind::Fixed, 0, 0},
	{16, "SET_PROTOCOL_FEATURES", Kind::Fixed, 8, 0},
	{17, "GET_QUEUE_NUM", Kind::Fixed, 0, 0},
	{18, "SET_VRING_ENABLE", Kind::Fixed, 8, 0},
	{19, "SEND_RARP", Kind::Fixed, 8, 0},
	{20, "NET_SET_MTU", Kind::Fixed, 8, 0},
	{21, "SET_BACKEND_REQ_FD", Kind::Fixed, 0, 1},
	{22, "IOTLB_MSG", Kind::Fixed, 32, 0},
	{23, "SET_VRING_ENDIAN", Kind::Fixed, 8, 0},
	{24, "GET_CONFIG", Kind::Config, 0, 0},
	{25, "SET_CONFIG", Kind::Config, 0, 0},
	{26, "CREATE_CRYPTO_SESSION", Kind::Variable, 0, 0},
	{27, "CLOSE_CRYPTO_SESSION", Kind::Fixed, 8, 0},
	{28, "POSTCOPY_ADVISE", Kind::Fixed, 0, 0},
	{29, "POSTCOPY_LISTEN", Kind::Fixed, 0, 0},
	{30, "POSTCOPY_END", Kind::Fixed, 0, 0},
	{31, "GET_INFLIGHT_FD", Kind::Fixed, 24, 0},
	{32, "SET_INFLIGHT_FD", Kind::Fixed, 24, 1},
	{33, "GPU_SET_SOCKET", Kind::Fixed, 0, 1},
	{34, "RESET_DEVICE", Kind::Fixed, 0, 0},
	{35, "VRING_KICK", Kind::Fixed, 8, 0},
	{36, "GET_MAX_MEM_SLOTS", Kind::Fixed, 0, 0},
	{37, "ADD_MEM_REG", Kind::Fixed, 40, 1},
	{38, "REM_MEM_REG", Kind::Fixed, 40, -2},
	{39, "SET_STATUS", Kind::Fixed, 8, 0},
	{40, "GET_STATUS", Kind::Fixed, 0, 0},
	{41, "GET_SHARED_OBJECT", Kind::Fixed, 16, 0},
	{42, "SET_DEVICE_STATE_FD", Kind::Fixed, 8, 1},
	{43, "CHECK_DEVICE_STATE", Kind::Fixed, 0, 0},
};

Header header(uint32_t code, uint32_t size, uint32_t flags = kVersion)
{
	return Header{code, flags, size};
}

bool header_ok(uint32_t code, uint32_t size, uint32_t flags = kVersion)
{
	try {
		check_header(header(code, size, flags));
		return true;
	} catch (const ProtocolError &) {
		return false;
	}
}

std::string header_error(uint32_t code, uint32_t size, uint32_t flags = kVersion)
{
	try {
		check_header(header(code, size, flags));
	} catch (const ProtocolError &e) {
		return e.what();
	}
	return "";
}

/* A payload that is valid for \a r (zeros, with the counts filled in). */
std::vector<uint8_t> valid_payload(const Rule &r)
{
	switch (r.kind) {
	case Kind::Fixed:
		return std::vector<uint8_t>(r.size, 0);
	case Kind::MemTable: {
		std::vector<uint8_t> p(sizeof(MemoryTableHeader) + sizeof(MemoryRegion), 0);
		MemoryTableHeader h{1, 0};
		std::memcpy(p.data(), &h, sizeof(h));
		return p;
	}
	case Kind::Config: {
		std::vector<uint8_t> p(sizeof(ConfigHeader) + 4, 0);
		ConfigHeader h{0, 4, 0};
		std::memcpy(p.data(), &h, sizeof(h));
		return p;
	}
	case Kind::Variable:
		return std::vector<uint8_t>(64, 0);
	}
	return {};
}

int valid_fd_count(const Rule &r)
{
	if (r.fds == -1)
		return 1;
	if (r.fds == -2)
		return 1;
	return r.fds;
}

/* fds whose closing can be observed. */
struct Fds {
	explicit Fds(size_t n) : watches(n) {}
	std::vector<UniqueFd> take()
	{
		std::vector<UniqueFd> out;
		for (auto &w : watches)
			out.emplace_back(::fcntl(w.fd(), F_DUPFD_CLOEXEC, 0));
		for (auto &w : watches)
			w.drop_own();
		return out;
	}
	bool all_closed()
	{
		for (auto &w : watches)
			if (!w.closed_everywhere(0))
				return false;
		return true;
	}
	std::vector<FdWatch> watches;
};

template<typename T>
std::vector<uint8_t> bytes_of(const T &v)
{
	auto s = as_bytes(v);
	return {s.begin(), s.end()};
}

} // namespace

TEST_CASE("request names cover codes 1..43", "[wire]")
{
	for (const auto &r : kRules)
		CHECK(request_name(r.code) == r.name);
	CHECK(request_name(0) == "UNKNOWN");
	CHECK(request_name(44) == "UNKNOWN");
	CHECK(request_name(0xffffffff) == "UNKNOWN");
	CHECK(kRules.size() == kMaxRequestCode);
}

TEST_CASE("check_header: payload size rules of every code", "[wire]")
{
	for (const auto &r : kRules) {
		INFO(r.name);
		switch (r.kind) {
		case Kind::Fixed:
			CHECK(header_ok(r.code, r.size));
			CHECK_FALSE(header_ok(r.code, r.size + 1));
			if (r.size > 0)
				CHECK_FALSE(header_ok(r.code, r.size - 1));
			CHECK_FALSE(header_ok(r.code, 4097));
			CHECK_FALSE(header_ok(r.code, 0xffffffff));
			CHECK_FALSE(header_ok(r.code, 0x80000000));
			break;
		case Kind::MemTable:
			for (uint32_t n = 1; n <= 8; n++)
				CHECK(header_ok(r.code, 8 + 32 * n));
			CHECK_FALSE(header_ok(r.code, 8 + 32 * 9));
			CHECK_FALSE(header_ok(r.code, 8 + 32 + 1));
			CHECK_FALSE(header_ok(r.code, 8 + 31));
			CHECK_FALSE(header_ok(r.code, 7));
			CHECK_FALSE(header_ok(r.code, 0xffffffff));
			break;
		case Kind::Config:
			CHECK(header_ok(r.code, 12 + 1));
			CHECK(header_ok(r.code, 12 + 256));
			CHECK_FALSE(header_ok(r.code, 11));
			CHECK_FALSE(header_ok(r.code, 12 + 257));
			CHECK_FALSE(header_ok(r.code, 4097));
			CHECK_FALSE(header_ok(r.code, 0xffffffff));
			break;
		case Kind::Variable:
			CHECK(header_ok(r.code, 64));
			CHECK_FALSE(header_ok(r.code, 0xffffffff));
			CHECK_FALSE(header_ok(r.code, 1u << 20));
			break;
		}
	}
}

TEST_CASE("check_header: the error names the request and the size", "[wire]")
{
	auto e = header_error(8, 4097);
	CHECK_THAT(e, Catch::Contains("SET_VRING_NUM") && Catch::Contains("4097"));
	e = header_error(5, 0xffffffff);
	CHECK_THAT(e, Catch::Contains("SET_MEM_TABLE") && Catch::Contains("4294967295"));
}

TEST_CASE("check_header: unknown codes", "[wire]")
{
	for (uint32_t code : {0u, 44u, 45u, 0x100u, 0xffffffffu}) {
		INFO(code);
		auto e = header_error(code, 0);
		CHECK_THAT(e, Catch::Contains("unknown request code") &&
				      Catch::Contains(std::to_string(code)));
	}
}

TEST_CASE("check_header: flags", "[wire]")
{
	CHECK(header_ok(1, 0, kVersion));
	CHECK(header_ok(1, 0, kVersion | kFlagNeedReply));
	for (uint32_t version : {0u, 2u, 3u}) {
		INFO(version);
		CHECK_THAT(header_error(1, 0, version), Catch::Contains("GET_FEATURES") &&
								Catch::Contains("version"));
	}
	CHECK_THAT(header_error(1, 0, kVersion | kFlagReply),
		   Catch::Contains("GET_FEATURES") && Catch::Contains("REPLY"));
	for (uint32_t reserved : {1u << 4, 1u << 5, 1u << 16, 1u << 31}) {
		INFO(reserved);
		CHECK_THAT(header_error(2, 8, kVersion | reserved),
			   Catch::Contains("SET_FEATURES") && Catch::Contains("reserved"));
	}
}

TEST_CASE("parse_request: fd counts of every code, fds closed on refusal", "[wire]")
{
	for (const auto &r : kRules) {
		INFO(r.name);
		auto payload = valid_payload(r);
		Header h = header(r.code, uint32_t(payload.size()));
		int good = valid_fd_count(r);

		{
			Fds fds(good);
			auto req = parse_request(h, payload, fds.take());
			CHECK(static_cast<uint32_t>(req.code) == r.code);
			CHECK_FALSE(req.need_reply);
			/* The parsed request owns the fds it kept; once gone, all are closed. */
			req = {};
			CHECK(fds.all_closed());
		}
		{
			Fds fds(good + 1);
			CHECK_THROWS_AS(parse_request(h, payload, fds.take()), ProtocolError);
			CHECK(fds.all_closed());
		}
		if (good > 0 && r.fds != -2) {
			Fds fds(0);
			CHECK_THROWS_WITH(parse_request(h, payload, fds.take()),
					  Catch::Contains(r.name) && Catch::Contains("fds"));
		}
	}
}

TEST_CASE("parse_request: more than 8 fds", "[wire]")
{
	Fds fds(9);
	auto payload = valid_payload(kRules[4]); /* SET_MEM_TABLE, 1 region */
	CHECK_THROWS_WITH(parse_request(header(5, uint32_t(payload.size())), payload, fds.take()),
			  Catch::Contains("SET_MEM_TABLE") && Catch::Contains("9 fds"));
	CHECK(fds.all_closed());
}

TEST_CASE("parse_request: payload length must match the header", "[wire]")
{
	std::vector<uint8_t> payload(8, 0);
	CHECK_THROWS_WITH(parse_request(header(2, 8), std::span(payload).first(4), {}),
			  Catch::Contains("SET_FEATURES") && Catch::Contains("4 bytes"));
	CHECK_THROWS_AS(parse_request(header(2, 7), std::span(payload).first(7), {}),
			ProtocolError);
}

TEST_CASE("parse_request: NEED_REPLY and typed payloads", "[wire]")
{
	SECTION("u64")
	{
		uint64_t v = 0x1234'5678'9abc'def0;
		auto req = parse_request(header(2, 8, kVersion | kFlagNeedReply), bytes_of(v), {});
		CHECK(req.need_reply);
		CHECK(req.code == Request::SetFeatures);
		CHECK(std::get<U64>(req.payload).value == v);
	}
	SECTION("vring state")
	{
		VringState s{3, 256};
		auto req = parse_request(header(8, 8), bytes_of(s), {});
		CHECK(std::get<VringState>(req.payload).index == 3);
		CHECK(std::get<VringState>(req.payload).num == 256);
	}
	SECTION("vring addr")
	{
		VringAddr a{1, 0, 0x1000, 0x3000, 0x2000, 0};
		auto req = parse_request(header(9, 40), bytes_of(a), {});
		auto got = std::get<VringAddr>(req.payload);
		CHECK(got.index == 1);
		CHECK(got.desc_user_addr == 0x1000);
		CHECK(got.used_user_addr == 0x3000);
		CHECK(got.avail_user_addr == 0x2000);
	}
	SECTION("mem table")
	{
		std::vector<uint8_t> p(8 + 2 * 32);
		MemoryTableHeader h{2, 0};
		MemoryRegion r0{0, 0x1000, 0x7000'0000, 0}, r1{0x10000, 0x2000, 0x8000'0000, 0x1000};
		std::memcpy(p.data(), &h, 8);
		std::memcpy(p.data() + 8, &r0, 32);
		std::memcpy(p.data() + 40, &r1, 32);
		Fds fds(2);
		auto req = parse_request(header(5, uint32_t(p.size())), p, fds.take());
		auto &mt = std::get<MemTable>(req.payload);
		REQUIRE(mt.regions.size() == 2);
		CHECK(mt.regions[1].guest_phys_addr == 0x10000);
		CHECK(mt.regions[1].mmap_offset == 0x1000);
		CHECK(mt.fds.size() == 2);
		CHECK(mt.fds[0].valid());
	}
	SECTION("config")
	{
		std::vector<uint8_t> p(12 + 3);
		ConfigHeader h{5, 3, kConfigFlagLiveMigration};
		std::memcpy(p.data(), &h, 12);
		p[12] = 0xaa;
		p[14] = 0xcc;
		auto req = parse_request(header(25, 15), p, {});
		auto &c = std::get<Config>(req.payload);
		CHECK(c.offset == 5);
		CHECK(c.flags == kConfigFlagLiveMigration);
		CHECK(c.data == std::vector<uint8_t>{0xaa, 0, 0xcc});
	}
	SECTION("add and rem mem reg")
	{
		SingleMemoryRegion s{0, {0x4000'0000, 0x10000, 0x7f00'0000'0000, 0}};
		Fds one(1);
		auto req = parse_request(header(37, 40), bytes_of(s), one.take());
		CHECK(std::get<MemRegion>(req.payload).region.memory_size == 0x10000);
		CHECK(std::get<MemRegion>(req.payload).fd.valid());
		auto rem = parse_request(header(38, 40), bytes_of(s), {});
		CHECK_FALSE(std::get<MemRegion>(rem.payload).fd.valid());
	}
}

TEST_CASE("parse_request: vring fd messages", "[wire]")
{
	for (uint32_t code : {12u, 13u, 14u}) {
		INFO(request_name(code));
		{
			uint64_t with_fd = 5;
			Fds one(1);
			auto req = parse_request(header(code, 8), bytes_of(with_fd), one.take());
			CHECK(std::get<VringFd>(req.payload).index == 5);
			CHECK(std::get<VringFd>(req.payload).fd.valid());

			uint64_t no_fd = 5 | kVringNoFdFlag;
			auto req2 = parse_request(header(code, 8), bytes_of(no_fd), {});
			CHECK(std::get<VringFd>(req2.payload).index == 5);
			CHECK_FALSE(std::get<VringFd>(req2.payload).fd.valid());

			/* "no fd" with an fd attached, and no fd without the bit. */
			Fds stray(1);
			CHECK_THROWS_WITH(parse_request(header(code, 8), bytes_of(no_fd), stray.take()),
					  Catch::Contains(std::string(request_name(code))) &&
						  Catch::Contains("no-fd"));
			CHECK(stray.all_closed());
			CHECK_THROWS_AS(parse_request(header(code, 8), bytes_of(with_fd), {}),
					ProtocolError);

			/* Reserved bits above the index and the no-fd bit. */
			for (uint64_t bad : {0x10000ull + 1, 0x200ull, 1ull << 63}) {
				Fds fd(1);
				CHECK_THROWS_WITH(parse_request(header(code, 8), bytes_of(bad), fd.take()),
						  Catch::Contains("reserved"));
				CHECK(fd.all_closed());
			}
		}
	}
}

TEST_CASE("parse_request: SET_MEM_TABLE region counts", "[wire]")
{
	auto table = [](uint32_t declared, size_t present) {
		std::vector<uint8_t> p(8 + 32 * present, 0);
		MemoryTableHeader h{declared, 0};
		std::memcpy(p.data(), &h, 8);
		return p;
	};
	SECTION("zero regions")
	{
		auto p = table(0, 0);
		CHECK_THROWS_WITH(parse_request(header(5, 8), p, {}),
				  Catch::Contains("SET_MEM_TABLE") && Catch::Contains("num_regions"));
	}
	SECTION("count disagrees with the payload")
	{
		auto p = table(2, 1);
		Fds fds(1);
		CHECK_THROWS_WITH(parse_request(header(5, uint32_t(p.size())), p, fds.take()),
				  Catch::Contains("num_regions 2"));
		CHECK(fds.all_closed());
	}
	SECTION("2^32-1 regions")
	{
		auto p = table(0xffffffff, 1);
		Fds fds(1);
		CHECK_THROWS_WITH(parse_request(header(5, uint32_t(p.size())), p, fds.take()),
				  Catch::Contains("num_regions 4294967295"));
		CHECK(fds.all_closed());
	}
	SECTION("fewer fds than regions")
	{
		auto p = table(3, 3);
		Fds fds(2);
		CHECK_THROWS_WITH(parse_request(header(5, uint32_t(p.size())), p, fds.take()),
				  Catch::Contains("2 fds, expected 3"));
		CHECK(fds.all_closed());
	}
}

TEST_CASE("parse_request: GET_CONFIG/SET_CONFIG fields", "[wire]")
{
	auto config = [](uint32_t offset, uint32_t size, uint32_t flags, size_t data) {
		std::vector<uint8_t> p(12 + data, 0);
		ConfigHeader h{offset, size, flags};
		std::memcpy(p.data(), &h, 12);
		return p;
	};
	for (uint32_t code : {24u, 25u}) {
		INFO(request_name(code));
		auto p = config(0, 8, 0, 4);
		CHECK_THROWS_WITH(parse_request(header(code, 16), p, {}),
				  Catch::Contains("size 8") && Catch::Contains("4 bytes"));
		p = config(0, 0, 0, 0);
		/* size 12 is refused already by check_header or by the parser: either way. */
		CHECK_THROWS_AS(parse_request(header(code, 12), p, {}), ProtocolError);
		p = config(0xffffffff, 4, 0, 4);
		CHECK_THROWS_WITH(parse_request(header(code, 16), p, {}),
				  Catch::Contains("offset 4294967295"));
		p = config(253, 4, 0, 4);
		CHECK_THROWS_AS(parse_request(header(code, 16), p, {}), ProtocolError);
		p = config(252, 4, 0, 4);
		CHECK_NOTHROW(parse_request(header(code, 16), p, {}));
		p = config(0, 4, 0x2, 4);
		CHECK_THROWS_WITH(parse_request(header(code, 16), p, {}), Catch::Contains("flags"));
	}
}

TEST_CASE("make_request and make_reply", "[wire]")
{
	uint64_t v = 42;
	auto m = make_request(Request::SetFeatures, as_bytes(v), kFlagNeedReply);
	CHECK(m.header.request == 2);
	CHECK(m.header.flags == (kVersion | kFlagNeedReply));
	CHECK(m.header.size == 8);
	CHECK(m.payload == bytes_of(v));

	auto r = make_reply(m.header, as_bytes(v));
	CHECK(r.header.request == 2);
	CHECK(r.header.flags == (kVersion | kFlagReply));
	CHECK(r.header.size == 8);

	CHECK(payload_as<uint64_t>(m.payload) == std::optional<uint64_t>(42));
	CHECK_FALSE(payload_as<uint32_t>(m.payload).has_value());
}
