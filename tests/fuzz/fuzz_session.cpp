/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Target 2, a whole session: a stream of vhost-user messages, with real
 * memfds, eventfds, pipes and sockets attached where the fuzzer says, goes
 * over a real Unix socketpair into a Server (serve_connected()) serving a
 * small device; eventfds the fuzzer sent can be signalled (kicks). Record
 * format: session_harness.h.
 */
#include <deque>

#include <vhostpp/device.h>
#include <vhostpp/virtqueue.h>

#include "session_harness.h"

using namespace vhostpp;

namespace {

/*
 * Two queues: queue 0 completes every chain at once; queue 1 completes in
 * order and holds up to four chains until the next kick, so ring stops
 * with chains in flight (and their rewind) are reachable.
 */
class FuzzDevice : public Device
{
public:
	unsigned num_queues() const override { return 2; }
	uint16_t max_queue_size(unsigned) const override { return 256; }
	bool queue_in_order(unsigned queue) const override { return queue == 1; }
	uint32_t config_size() const override { return sizeof(config_); }
	bool read_config(uint32_t offset, std::span<uint8_t> out) override
	{
		std::memcpy(out.data(), config_ + offset, out.size());
		return true;
	}
	bool write_config(uint32_t offset, std::span<const uint8_t> in) override
	{
		std::memcpy(config_ + offset, in.data(), in.size());
		return true;
	}

	void queue_kicked(Virtqueue &queue) override
	{
		auto &held = held_[queue.index() & 1];
		while (!held.empty()) {
			queue.push(held.front(), 1);
			held.pop_front();
		}
		for (int n = 0; n < 64; n++) {
			auto chain = queue.pop();
			if (!chain)
				break;
			scratch_.resize(std::min<size_t>(chain->readable_bytes(), 1 << 16));
			chain->read(0, scratch_);
			const size_t written = chain->fill(0, 0x5a, std::min<size_t>(chain->writable_bytes(), 1 << 16));
			if (queue.index() == 1 && held.size() < 4)
				held.push_back(std::move(*chain));
			else
				queue.push(*chain, static_cast<uint32_t>(written));
		}
		queue.notify();
	}

	void queue_stopped(Virtqueue &queue) override { held_[queue.index() & 1].clear(); }
	void reset() override
	{
		for (auto &held : held_)
			held.clear();
		std::memset(config_, 0, sizeof(config_));
	}
	/* As before detach() existed: the next connection starts from scratch. */
	void detach() override { reset(); }

private:
	uint8_t config_[16]{};
	std::deque<DescriptorChain> held_[2];
	std::vector<uint8_t> scratch_;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const bool routed = [] {
		fuzz::route_library_log();
		return true;
	}();
	(void)routed;
	fuzz::run_session(data, size, [](boost::asio::io_context &) {
		return std::make_shared<FuzzDevice>();
	});
	return 0;
}
