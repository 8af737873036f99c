/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "audio/null/null_backend.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include "sound_log.h"

namespace vhost_sound {

namespace {

using Clock = std::chrono::steady_clock;

/* How many ticks of audio the device should keep in the ring: the next tick
 * takes one, and one more covers a tick that fires late. */
constexpr unsigned kLookaheadTicks = 3;

/**
 * One stream of the null back-end: a timer on the loop moving frames
 * through the ring at the stream's rate.
 */
class NullStream : public BackendStream
{
public:
	NullStream(boost::asio::io_context &io, std::unique_ptr<ClockEndpoint> endpoint,
		   const PcmParams &params, ByteRing &ring, BackendStreamListener &listener)
		: endpoint_(std::move(endpoint)), params_(params), ring_(ring), listener_(listener), timer_(io),
		  tick_(NullBackend::tick_interval(params)), frame_bytes_(params.frame_bytes())
	{
	}

	~NullStream() override { stop(); }

	bool start() override
	{
		if (running_)
			return true;
		running_ = true;
		/* The clock restarts at every start: time spent stopped is not owed. */
		start_time_ = Clock::now();
		frames_since_start_ = 0;
		ticks_ = 0;
		schedule();
		return true;
	}

	void stop() override
	{
		if (!running_)
			return;
		running_ = false;
		/* A tick already queued for execution cannot be cancelled: the
		 * generation check in its handler makes it a no-op. */
		generation_++;
		timer_.cancel();
		endpoint_->stopped();
	}

	uint32_t delay_bytes() const override { return endpoint_->delay_bytes(); }

	uint32_t lookahead_bytes() const override
	{
		const uint64_t frames = frames_at(tick_ * kLookaheadTicks);
		return static_cast<uint32_t>(std::max<uint64_t>(frames, 1) * frame_bytes_);
	}

	uint64_t xruns() const override { return xruns_; }

	std::string describe() const override
	{
		return fmt::format("{} clock {}us tick", endpoint_->describe(),
				   std::chrono::duration_cast<std::chrono::microseconds>(tick_).count());
	}

private:
	uint64_t frames_at(Clock::duration elapsed) const
	{
		const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count();
		if (ns <= 0)
			return 0;
		/* Split into seconds so that ns * rate cannot overflow, however long the stream runs. */
		const uint64_t rate = params_.rate_hz();
		const uint64_t s = static_cast<uint64_t>(ns) / 1000000000u;
		const uint64_t rest = static_cast<uint64_t>(ns) % 1000000000u;
		return s * rate + rest * rate / 1000000000u;
	}

	void schedule()
	{
		ticks_++;
		timer_.expires_at(start_time_ + ticks_ * tick_);
		timer_.async_wait([this, generation = generation_,
				   alive = std::weak_ptr<int>(alive_)](const boost::system::error_code &ec) {
			/* Check the token before touching this: the stream may be gone. */
			if (ec || alive.expired() || generation != generation_)
				return;
			tick();
		});
	}

	void tick()
	{
		const Clock::time_point now = Clock::now();
		/* A tick that fires very late (the loop was blocked) skips the
		 * grid points it missed rather than firing them back to back. */
		while (start_time_ + ticks_ * tick_ < now - tick_)
			ticks_++;

		const uint64_t due = frames_at(now - start_time_);
		const uint64_t frames = due - std::min(due, frames_since_start_);
		frames_since_start_ = std::max(due, frames_since_start_);

		if (frames) {
			if (params_.direction == Direction::Output)
				consume(frames);
			else
				produce(frames);
		}

		schedule();
		listener_.backend_progress();
	}

	void consume(uint64_t frames)
	{
		const uint64_t available = ring_.readable() / frame_bytes_;
		const uint64_t take = std::min(frames, available);
		auto regions = ring_.read_regions(take * frame_bytes_);
		for (const auto &region : regions) {
			if (!region.empty())
				endpoint_->render(region);
		}
		ring_.commit_read(take * frame_bytes_);
		count_xrun(take < frames);
	}

	void produce(uint64_t frames)
	{
		const uint64_t room = ring_.writable() / frame_bytes_;
		const uint64_t put = std::min(frames, room);
		uint64_t offset = ring_.total_written();
		auto regions = ring_.write_regions(put * frame_bytes_);
		for (const auto &region : regions) {
			if (region.empty())
				continue;
			endpoint_->capture(region, offset);
			offset += region.size();
		}
		ring_.commit_write(put * frame_bytes_);
		count_xrun(put < frames);
	}

	/* An xrun is counted once per episode, not once per tick it lasts. */
	void count_xrun(bool short_now)
	{
		if (short_now && !in_xrun_)
			xruns_++;
		in_xrun_ = short_now;
	}

	/* Declared first: it outlives the timer whose ticks call it. */
	const std::unique_ptr<ClockEndpoint> endpoint_;
	const PcmParams params_;
	ByteRing &ring_;
	BackendStreamListener &listener_;
	boost::asio::steady_timer timer_;
	const Clock::duration tick_;
	const uint32_t frame_bytes_;

	bool running_ = false;
	Clock::time_point start_time_;
	uint64_t frames_since_start_ = 0;
	uint64_t ticks_ = 0;
	uint64_t generation_ = 0;
	uint64_t xruns_ = 0;
	bool in_xrun_ = false;
	/* Expires with the stream; timer handlers hold a weak reference. */
	std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

/* The null back-end's own endpoint: its virtual render() / capture(). */
class BackendEndpoint : public ClockEndpoint
{
public:
	BackendEndpoint(NullBackend &backend, const PcmParams &params)
		: backend_(backend), params_(params)
	{
	}

	void render(std::span<const uint8_t> bytes) override { backend_.render(params_, bytes); }
	void capture(std::span<uint8_t> out, uint64_t stream_offset) override
	{
		backend_.capture(params_, out, stream_offset);
	}
	uint32_t delay_bytes() const override { return backend_.delay_bytes(params_); }
	std::string describe() const override
	{
		return params_.direction == Direction::Output ? "null sink" : "null source";
	}

private:
	NullBackend &backend_;
	const PcmParams params_;
};

} // namespace

NullBackend::NullBackend(boost::asio::io_context &io)
	: io_(io)
{
}

PcmCapabilities NullBackend::capabilities(Direction) const
{
	return { virtio_snd::linear_pcm_formats(), virtio_snd::all_rates(), 1, 8 };
}

std::unique_ptr<BackendStream> NullBackend::open(const PcmParams &params, ByteRing &ring,
						 BackendStreamListener &listener)
{
	return open_clocked(params, ring, listener, std::make_unique<BackendEndpoint>(*this, params));
}

std::unique_ptr<BackendStream> NullBackend::open_clocked(const PcmParams &params, ByteRing &ring,
							 BackendStreamListener &listener,
							 std::unique_ptr<ClockEndpoint> endpoint)
{
	return std::make_unique<NullStream>(io_, std::move(endpoint), params, ring, listener);
}

std::chrono::nanoseconds NullBackend::tick_interval(const PcmParams &params)
{
	using namespace std::chrono_literals;
	const uint64_t rate = params.byte_rate();
	if (!rate || !params.period_bytes)
		return 10ms;
	const std::chrono::nanoseconds period{ uint64_t{params.period_bytes} * 1000000000u / rate };
	return std::clamp<std::chrono::nanoseconds>(period / 4, 1ms, 10ms);
}

void NullBackend::render(const PcmParams &, std::span<const uint8_t>)
{
}

void NullBackend::capture(const PcmParams &params, std::span<uint8_t> out, uint64_t stream_offset)
{
	virtio_snd::fill_silence(params.format, out.data(), out.size(), stream_offset);
}

uint32_t NullBackend::delay_bytes(const PcmParams &) const
{
	return 0;
}

BackendInfo null_backend_info()
{
	return {
		"null",
		"plays into nothing and captures silence, paced by the loop's clock",
		nullptr,
		[](const BackendContext &context, const boost::program_options::variables_map &) {
			return std::unique_ptr<AudioBackend>(std::make_unique<NullBackend>(context.io));
		},
	};
}

} // namespace vhost_sound
