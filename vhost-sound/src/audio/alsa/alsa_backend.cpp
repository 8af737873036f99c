/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "audio/alsa/alsa_backend.h"

#include <algorithm>
#include <atomic>
#include <boost/program_options/value_semantic.hpp>
#include <cerrno>
#include <fmt/format.h>
#include <poll.h>
#include <thread>
#include <vector>

#include <vhostpp/fd.h>

#include "audio/frame_clock.h"
#include "audio/loop_notifier.h"
#include "sound_log.h"

namespace vhost_sound {

namespace vs = virtio_snd;

namespace {

using Clock = FrameClock::Clock;

/* Virtio format -> alsa-lib format: every linear PCM format of the spec, exactly. */
struct FormatMapping {
	uint8_t virtio;
	snd_pcm_format_t alsa;
};
constexpr FormatMapping kFormatMap[] = {
	{ vs::kFmtS8, SND_PCM_FORMAT_S8 },
	{ vs::kFmtU8, SND_PCM_FORMAT_U8 },
	{ vs::kFmtS16, SND_PCM_FORMAT_S16_LE },
	{ vs::kFmtU16, SND_PCM_FORMAT_U16_LE },
	{ vs::kFmtS18_3, SND_PCM_FORMAT_S18_3LE },
	{ vs::kFmtU18_3, SND_PCM_FORMAT_U18_3LE },
	{ vs::kFmtS20_3, SND_PCM_FORMAT_S20_3LE },
	{ vs::kFmtU20_3, SND_PCM_FORMAT_U20_3LE },
	{ vs::kFmtS24_3, SND_PCM_FORMAT_S24_3LE },
	{ vs::kFmtU24_3, SND_PCM_FORMAT_U24_3LE },
	{ vs::kFmtS20, SND_PCM_FORMAT_S20_LE },
	{ vs::kFmtU20, SND_PCM_FORMAT_U20_LE },
	{ vs::kFmtS24, SND_PCM_FORMAT_S24_LE },
	{ vs::kFmtU24, SND_PCM_FORMAT_U24_LE },
	{ vs::kFmtS32, SND_PCM_FORMAT_S32_LE },
	{ vs::kFmtU32, SND_PCM_FORMAT_U32_LE },
	{ vs::kFmtFloat, SND_PCM_FORMAT_FLOAT_LE },
	{ vs::kFmtFloat64, SND_PCM_FORMAT_FLOAT64_LE },
};

/* How many ticks of audio the device keeps in the ring while the stream is
 * paced by its FrameClock: as the null back-end. */
constexpr unsigned kPacedLookaheadTicks = 3;

/* How much of a paced stream's shortfall is caught up rather than dropped. */
constexpr unsigned kOwedTicks = 2;

/* More xruns than this within one second: the device is gone in all but name. */
constexpr unsigned kXrunStormPerSecond = 100;

/* The most audio the host buffer holds, whatever the guest's buffer: what
 * the host adds to the guest's own latency stays below this. */
constexpr unsigned kMaxHostBufferMs = 200;

/* A clocked playback PCM holding less than this many ticks of audio while
 * the ring is empty is topped up with silence to that: the thread looks
 * again a tick later, so it may wake two ticks late before the PCM runs
 * dry. Small, because the silence written delays the guest's next samples,
 * and the PCM still holding more is left alone (the loop refills the ring
 * well within that). */
constexpr unsigned kSilenceGuardTicks = 3;
/* Periods a clocked playback PCM is filled to: the device's share of the guest's latency. */
constexpr unsigned kQueuedPeriods = 2;

struct PcmCloser {
	void operator()(snd_pcm_t *pcm) const { snd_pcm_close(pcm); }
};
using PcmHandle = std::unique_ptr<snd_pcm_t, PcmCloser>;

struct HwParamsFree {
	void operator()(snd_pcm_hw_params_t *p) const { snd_pcm_hw_params_free(p); }
};
struct SwParamsFree {
	void operator()(snd_pcm_sw_params_t *p) const { snd_pcm_sw_params_free(p); }
};

snd_pcm_stream_t alsa_stream(Direction direction)
{
	return direction == Direction::Output ? SND_PCM_STREAM_PLAYBACK : SND_PCM_STREAM_CAPTURE;
}

std::string_view stream_word(Direction direction)
{
	return direction == Direction::Output ? "playback" : "capture";
}

/* Open \a name non-blocking: a busy device answers -EBUSY at once instead of
 * making the loop wait. */
int open_pcm(const std::string &name, Direction direction, PcmHandle &out)
{
	snd_pcm_t *pcm = nullptr;
	const int err = snd_pcm_open(&pcm, name.c_str(), alsa_stream(direction), SND_PCM_NONBLOCK);
	if (err < 0)
		return err;
	out.reset(pcm);
	return 0;
}

std::optional<PcmCapabilities> probe(const std::string &name, Direction direction)
{
	PcmHandle pcm;
	int err = open_pcm(name, direction, pcm);
	if (err < 0) {
		logger().warn("alsa: cannot open PCM '{}' for {} to probe it: {}; advertising the safe "
			      "default set until PREPARE opens it for real",
			      name, stream_word(direction), snd_strerror(err));
		return std::nullopt;
	}
	snd_pcm_hw_params_t *raw = nullptr;
	if (snd_pcm_hw_params_malloc(&raw) < 0)
		return std::nullopt;
	std::unique_ptr<snd_pcm_hw_params_t, HwParamsFree> hw(raw);
	err = snd_pcm_hw_params_any(pcm.get(), hw.get());
	if (err >= 0)
		err = snd_pcm_hw_params_set_access(pcm.get(), hw.get(), SND_PCM_ACCESS_RW_INTERLEAVED);
	if (err < 0) {
		logger().warn("alsa: PCM '{}' ({}): no interleaved read/write access: {}; advertising the "
			      "safe default set", name, stream_word(direction), snd_strerror(err));
		return std::nullopt;
	}

	PcmCapabilities caps;
	for (const FormatMapping &m : kFormatMap) {
		if (snd_pcm_hw_params_test_format(pcm.get(), hw.get(), m.alsa) == 0)
			caps.formats |= uint64_t{1} << m.virtio;
	}
	for (uint8_t rate = 0; rate < vs::kNumRates; rate++) {
		if (snd_pcm_hw_params_test_rate(pcm.get(), hw.get(), vs::rate_hz(rate), 0) == 0)
			caps.rates |= uint64_t{1} << rate;
	}
	unsigned min = 0, max = 0;
	snd_pcm_hw_params_get_channels_min(hw.get(), &min);
	snd_pcm_hw_params_get_channels_max(hw.get(), &max);
	/* The device's channel maps cover 1 to 8 channels. */
	min = std::max(min, 1u);
	max = std::min(max, 8u);
	if (!caps.formats || !caps.rates || min > max) {
		logger().warn("alsa: PCM '{}' ({}) accepts no virtio format, rate or 1-8 channels; "
			      "advertising the safe default set", name, stream_word(direction));
		return std::nullopt;
	}
	caps.channels_min = static_cast<uint8_t>(min);
	caps.channels_max = static_cast<uint8_t>(max);
	logger().info("alsa: PCM '{}' ({}): formats {:#x}, rates {:#x}, {}-{} channels", name,
		      stream_word(direction), caps.formats, caps.rates, min, max);
	return caps;
}

/* The host buffer geometry chosen for one stream. */
struct Geometry {
	snd_pcm_uframes_t period = 0;
	snd_pcm_uframes_t buffer = 0;
};

/* hw and sw params for \a params: the exact format, rate and channels, a host
 * period no larger than the guest's where the device allows it (so
 * consumption, and therefore completions, follow the guest's period clock),
 * and a buffer derived from the guest's (see below). */
int configure(snd_pcm_t *pcm, const PcmParams &params, Geometry &geometry, std::string &step)
{
	snd_pcm_hw_params_t *raw_hw = nullptr;
	if (snd_pcm_hw_params_malloc(&raw_hw) < 0)
		return -ENOMEM;
	std::unique_ptr<snd_pcm_hw_params_t, HwParamsFree> hw(raw_hw);
	const snd_pcm_format_t format = *alsa_format(params.format);
	const snd_pcm_uframes_t guest_period = params.period_bytes / params.frame_bytes();

	int err;
	auto fail = [&](std::string what) {
		step = std::move(what);
		return err;
	};
	if ((err = snd_pcm_hw_params_any(pcm, hw.get())) < 0)
		return fail("hw_params_any");
	if ((err = snd_pcm_hw_params_set_access(pcm, hw.get(), SND_PCM_ACCESS_RW_INTERLEAVED)) < 0)
		return fail("interleaved access");
	if ((err = snd_pcm_hw_params_set_format(pcm, hw.get(), format)) < 0)
		return fail(fmt::format("format {}", snd_pcm_format_name(format)));
	if ((err = snd_pcm_hw_params_set_channels(pcm, hw.get(), params.channels)) < 0)
		return fail(fmt::format("{} channels", params.channels));
	if ((err = snd_pcm_hw_params_set_rate(pcm, hw.get(), params.rate_hz(), 0)) < 0)
		return fail(fmt::format("rate {} Hz", params.rate_hz()));
	snd_pcm_uframes_t period = guest_period;
	int dir = 0;
	/* A device whose smallest period is larger (an AC-3 encoder's 1536
	 * frames) still plays, with coarser completions: a failed set leaves
	 * the parameters as they were. */
	snd_pcm_hw_params_set_period_size_max(pcm, hw.get(), &period, &dir);
	period = guest_period;
	dir = 0;
	if ((err = snd_pcm_hw_params_set_period_size_near(pcm, hw.get(), &period, &dir)) < 0)
		return fail(fmt::format("period of {} frames", guest_period));
	/* The host buffer follows the guest's buffer_bytes: the depth the guest
	 * chose is the latency it accepts and its margin against late wake-ups,
	 * and the host needs no more than that. At least two host periods (one
	 * plays while the next is written), at most kMaxHostBufferMs of audio (a
	 * guest with a deep buffer must not have its latency doubled); the
	 * device then rounds it to what it allows. */
	const snd_pcm_uframes_t guest_buffer = params.buffer_bytes / params.frame_bytes();
	const snd_pcm_uframes_t most = std::max<snd_pcm_uframes_t>(
		2 * period, snd_pcm_uframes_t{params.rate_hz()} * kMaxHostBufferMs / 1000);
	const snd_pcm_uframes_t wanted = std::clamp<snd_pcm_uframes_t>(guest_buffer, 2 * period, most);
	snd_pcm_uframes_t buffer = wanted;
	if ((err = snd_pcm_hw_params_set_buffer_size_near(pcm, hw.get(), &buffer)) < 0)
		return fail(fmt::format("buffer of {} frames", wanted));
	if ((err = snd_pcm_hw_params(pcm, hw.get())) < 0)
		return fail("hw_params");
	snd_pcm_hw_params_get_period_size(hw.get(), &period, &dir);
	snd_pcm_hw_params_get_buffer_size(hw.get(), &buffer);

	snd_pcm_sw_params_t *raw_sw = nullptr;
	if (snd_pcm_sw_params_malloc(&raw_sw) < 0)
		return -ENOMEM;
	std::unique_ptr<snd_pcm_sw_params_t, SwParamsFree> sw(raw_sw);
	if ((err = snd_pcm_sw_params_current(pcm, sw.get())) < 0)
		return fail("sw_params_current");
	/* Playback starts by itself once a period is queued; capture is started
	 * explicitly by the stream's thread. */
	snd_pcm_sw_params_set_start_threshold(pcm, sw.get(),
					      params.direction == Direction::Output ? period : buffer);
	snd_pcm_sw_params_set_avail_min(pcm, sw.get(), period);
	if ((err = snd_pcm_sw_params(pcm, sw.get())) < 0)
		return fail("sw_params");
	geometry = { period, buffer };
	return 0;
}

/**
 * One open PCM. The loop calls start()/stop()/the destructor and reads the
 * atomics; while started, the stream's thread alone uses the PCM and its
 * end of the ring.
 */
class AlsaStream : public BackendStream
{
public:
	AlsaStream(boost::asio::io_context &io, PcmHandle pcm, std::string device,
		   const PcmParams &params, const Geometry &geometry, ByteRing &ring,
		   BackendStreamListener &listener)
		: notifier_(io, [this] { on_loop(); }), pcm_(std::move(pcm)), device_(std::move(device)),
		  params_(params), geometry_(geometry), frame_bytes_(params.frame_bytes()), ring_(ring),
		  listener_(listener), stop_event_(vhostpp::EventFd::create()),
		  bounce_(geometry.period * frame_bytes_), silence_(geometry.period * frame_bytes_),
		  tick_(FrameClock::tick_interval(params)),
		  tick_frames_(std::max<uint64_t>(FrameClock(params).frames_in(tick_), 1))
	{
		/* Filled once here: the thread writes it as it is, never allocates. */
		vs::fill_silence(params.format, silence_.data(), silence_.size());
		details_ = read_details();
	}

	~AlsaStream() override { stop(); }

	bool start() override
	{
		if (thread_.joinable())
			return true;
		if (!lost_error_.load()) {
			const snd_pcm_state_t state = snd_pcm_state(pcm_.get());
			if (state != SND_PCM_STATE_PREPARED) {
				const int err = snd_pcm_prepare(pcm_.get());
				if (err < 0) {
					logger().warn("alsa: PCM '{}': prepare before start failed: {}", device_,
						      snd_strerror(err));
					return false;
				}
			}
		}
		quit_.store(false);
		stop_event_.drain();
		try {
			thread_ = std::thread([this] { run(); });
		} catch (const std::system_error &e) {
			logger().warn("alsa: PCM '{}': cannot start its thread: {}", device_, e.what());
			return false;
		}
		return true;
	}

	void stop() override
	{
		if (!thread_.joinable())
			return;
		/* The thread only ever sleeps in ppoll() on this eventfd (the PCM is
		 * non-blocking), so the join below returns within microseconds. */
		quit_.store(true);
		stop_event_.signal();
		thread_.join();
		/* Frames already taken from the ring are dropped: their messages
		 * completed when they were taken. */
		if (!lost_error_.load())
			snd_pcm_drop(pcm_.get());
	}

	uint32_t delay_bytes() const override
	{
		return static_cast<uint32_t>(std::min<uint64_t>(delay_frames_.load() * frame_bytes_,
								UINT32_MAX));
	}

	uint32_t lookahead_bytes() const override
	{
		/* Paced: a few ticks, as the null back-end. Clocked: the period the
		 * PCM frees at once, and a tick for the loop to answer. */
		const uint64_t frames = paced_.load() ? kPacedLookaheadTicks * tick_frames_
						       : geometry_.period + tick_frames_;
		return static_cast<uint32_t>(frames * frame_bytes_);
	}

	uint64_t xruns() const override { return xruns_.load(); }

	std::string describe() const override
	{
		std::string clock;
		if (const int err = lost_error_.load())
			clock = fmt::format("device lost ({}): silence at {} Hz", snd_strerror(err),
					    params_.rate_hz());
		else if (paced_.load())
			clock = fmt::format("no clock of its own: paced to {} Hz", params_.rate_hz());
		else
			clock = "device clock";
		return fmt::format("alsa {} '{}' {} period {} buffer {} frames, {}",
				   stream_word(params_.direction), device_,
				   snd_pcm_format_name(*alsa_format(params_.format)), geometry_.period,
				   geometry_.buffer, clock);
	}

	std::vector<std::pair<std::string, std::string>> details() const override
	{
		auto details = details_;
		/* The clock the stream found: known once it ran, an atomic. */
		details.emplace_back("clock", lost_error_.load() ? "lost"
					      : paced_.load()   ? "paced"
								: "device");
		return details;
	}

private:
	/* ---- loop thread ---- */

	/*
	 * Read once, here, before the stream's thread exists: alsa-lib's PCM
	 * handle is not to be used from two threads, and none of this changes
	 * while the PCM stays open (hw params are fixed until it is closed).
	 */
	std::vector<std::pair<std::string, std::string>> read_details() const
	{
		std::vector<std::pair<std::string, std::string>> d;
		d.emplace_back("pcm", device_);
		d.emplace_back("pcm_type", snd_pcm_type_name(snd_pcm_type(pcm_.get())));
		snd_pcm_info_t *info = nullptr;
		snd_pcm_info_alloca(&info);
		/* A plugin without hardware below it (null, file) may have no info. */
		if (snd_pcm_info(pcm_.get(), info) == 0) {
			d.emplace_back("pcm_info_name", snd_pcm_info_get_name(info));
			if (snd_pcm_info_get_card(info) >= 0) {
				d.emplace_back("card", std::to_string(snd_pcm_info_get_card(info)));
				d.emplace_back("device", std::to_string(snd_pcm_info_get_device(info)));
			}
		}
		d.emplace_back("period_frames", std::to_string(geometry_.period));
		d.emplace_back("buffer_frames", std::to_string(geometry_.buffer));
		return d;
	}

	void on_loop()
	{
		/* The thread never logs; the loop says what it found. */
		const int err = lost_error_.load();
		if (err && !lost_logged_) {
			lost_logged_ = true;
			logger().error("alsa: PCM '{}' ({}) failed: {}; the stream goes on with {} at the "
				       "nominal rate; the next PREPARE opens the device again",
				       device_, stream_word(params_.direction), snd_strerror(err),
				       params_.direction == Direction::Output ? "its samples dropped"
									       : "silence");
		}
		if (paced_.load() && !paced_logged_ && !err) {
			paced_logged_ = true;
			logger().info("alsa: PCM '{}' ({}) takes frames faster than real time (no clock); "
				      "pacing it to {} Hz", device_, stream_word(params_.direction),
				      params_.rate_hz());
		}
		listener_.backend_progress();
	}

	/* ---- the stream's thread ---- */

	void run()
	{
		FrameClock clock(params_);
		clock.start(Clock::now());
		bool classified = false;
		if (lost_error_.load()) {
			paced_.store(true);
			classified = true;
		} else if (params_.direction == Direction::Input) {
			const int err = snd_pcm_start(pcm_.get());
			if (err < 0)
				recover(err);
			/* A clocked capture device has next to nothing ready microseconds
			 * after it started; one with a whole buffer ready has no clock. */
			const snd_pcm_sframes_t avail = snd_pcm_avail_update(pcm_.get());
			if (avail >= static_cast<snd_pcm_sframes_t>(geometry_.buffer))
				set_paced(clock, 0);
			classified = true;
		}

		while (!quit_.load(std::memory_order_relaxed)) {
			if (paced_.load(std::memory_order_relaxed)) {
				paced_tick(clock);
				wait(clock.next_tick(Clock::now()));
				continue;
			}
			clocked_step(clock, classified);
		}
	}

	/* The PCM swallowed frames instantly: from now on the FrameClock decides. */
	void set_paced(FrameClock &clock, uint64_t frames_moved)
	{
		paced_.store(true);
		delay_frames_.store(0);
		clock.advance(frames_moved);
	}

	/* One step with the PCM as the clock. */
	void clocked_step(FrameClock &clock, bool &classified)
	{
		const bool output = params_.direction == Direction::Output;
		const snd_pcm_sframes_t avail = snd_pcm_avail_update(pcm_.get());
		if (avail < 0) {
			recover(static_cast<int>(avail));
			return;
		}
		/*
		 * Move a period at a time, as the PCM's avail_min says: moving
		 * whatever little the PCM has as soon as it has it turns the thread
		 * and the loop into a ping-pong of tiny transfers. Output keeps at
		 * most kQueuedPeriods queued, whatever the buffer size (the guest's
		 * round trip is what the device holds), and tops up at once when it
		 * runs low.
		 */
		const bool room = output ? queued_frames(avail) + geometry_.period <= fill_target()
					 : static_cast<snd_pcm_uframes_t>(avail) >= geometry_.period;
		if (!room && (!output || (snd_pcm_state(pcm_.get()) == SND_PCM_STATE_RUNNING &&
					  !running_low(avail)))) {
			wait(Clock::now() + tick_);
			return;
		}
		/* What the ring can give (output) or take (input). */
		const size_t ring_frames = (output ? ring_.readable() : ring_.writable()) / frame_bytes_;
		size_t n = std::min({ static_cast<size_t>(avail), ring_frames,
				      static_cast<size_t>(geometry_.period) });
		if (output)
			n = std::min<uint64_t>(n, fill_target() - std::min(fill_target(), queued_frames(avail)));
		if (n > 0) {
			const snd_pcm_sframes_t moved = output ? write_frames(n) : read_frames(n);
			if (moved < 0) {
				recover(static_cast<int>(moved));
				return;
			}
			frames_since_start_ += moved;
			if (moved > 0)
				in_xrun_ = false;
			snd_pcm_sframes_t delay = 0;
			const bool have_delay = snd_pcm_delay(pcm_.get(), &delay) == 0;
			if (output && !classified && have_delay) {
				/* Frames written a moment ago cannot have been played by a
				 * device with a clock: a delay of 0 means there is none. */
				classified = true;
				if (delay == 0) {
					set_paced(clock, frames_since_start_);
					notifier_.notify();
					return;
				}
			}
			delay_frames_.store(have_delay && delay > 0 ? static_cast<uint64_t>(delay) : 0);
			notifier_.notify();
			return;
		}
		if (avail == 0) {
			/* The PCM is full (output) or has nothing yet (input). */
			wait(Clock::now() + tick_);
			return;
		}
		/* The ring is empty (output) or full (input): the loop refills or
		 * drains it after our last notification. Input: if it does not in
		 * time the device overruns, and that is counted. Output: a running
		 * PCM about to run dry gets silence instead (below); a short sound
		 * below the start threshold must not stay queued forever. */
		if (output) {
			const snd_pcm_state_t state = snd_pcm_state(pcm_.get());
			if (state == SND_PCM_STATE_PREPARED && frames_since_start_ > 0)
				snd_pcm_start(pcm_.get());
			else if (state == SND_PCM_STATE_RUNNING && !fill_silence_if_low(avail))
				return;
		}
		wait(Clock::now() + tick_);
	}

	/*
	 * The ring is empty and the clocked PCM has \a avail frames of room: when
	 * it holds less than kSilenceGuardTicks of audio, top it up to that with
	 * silence and count an underrun (once per episode). The device then plays
	 * silence without ever running dry (no -EPIPE, no re-prepare, no restart
	 * at the start threshold), and the guest's next samples follow a short
	 * gap of silence as soon as the loop refills the ring. False when the
	 * write failed (recovered; the caller returns at once).
	 */
	/* Frames queued in a playback PCM that has \a avail frames of room. */
	uint64_t queued_frames(snd_pcm_sframes_t avail) const
	{
		const auto room = static_cast<snd_pcm_uframes_t>(avail);
		return geometry_.buffer - std::min(room, geometry_.buffer);
	}

	/* How much a playback PCM is filled to: two periods, or its whole buffer if smaller. */
	uint64_t fill_target() const
	{
		return std::min<uint64_t>(geometry_.buffer, kQueuedPeriods * uint64_t{geometry_.period});
	}

	/* Less than kSilenceGuardTicks of audio left in the playback PCM. */
	bool running_low(snd_pcm_sframes_t avail) const
	{
		return queued_frames(avail) < kSilenceGuardTicks * tick_frames_;
	}

	bool fill_silence_if_low(snd_pcm_sframes_t avail)
	{
		const auto room = static_cast<snd_pcm_uframes_t>(avail);
		const uint64_t queued = queued_frames(avail);
		const uint64_t guard = kSilenceGuardTicks * tick_frames_;
		if (queued >= guard)
			return true;
		const auto frames = static_cast<size_t>(
			std::min<uint64_t>({ guard - queued, room, geometry_.period }));
		const snd_pcm_sframes_t r = write_silence(frames);
		if (r < 0) {
			recover(static_cast<int>(r));
			return false;
		}
		if (r > 0)
			count_xrun(true);
		return true;
	}

	/* One tick of the FrameClock: move the frames that became due. */
	void paced_tick(FrameClock &clock)
	{
		const uint64_t due = clock.take_due(Clock::now());
		if (!due)
			return;
		const bool output = params_.direction == Direction::Output;
		const bool lost = lost_error_.load() != 0;
		uint64_t moved = 0;
		while (moved < due) {
			const size_t ring_frames = (output ? ring_.readable() : ring_.writable()) / frame_bytes_;
			const size_t n = std::min<uint64_t>({ due - moved, ring_frames, geometry_.period });
			if (!n)
				break;
			snd_pcm_sframes_t r = static_cast<snd_pcm_sframes_t>(n);
			if (lost && output)
				ring_.commit_read(n * frame_bytes_); /* dropped on time */
			else if (lost)
				produce_silence(n);
			else
				r = output ? write_frames(n) : read_frames(n);
			if (r < 0)
				recover(static_cast<int>(r));
			if (r <= 0)
				break;
			moved += static_cast<uint64_t>(r);
		}
		/* Short of frames (output) or room (input): up to two ticks are
		 * owed, so a late wake-up of the loop or of this thread is caught up
		 * (never ahead of the clock, and in small steps: a burst would read
		 * the guest's samples early). Beyond that the frames are dropped as
		 * an xrun, one per episode, and the clock moves on, as the null
		 * back-end's does. */
		const uint64_t missing = due - std::min(due, moved);
		const uint64_t owed = std::min<uint64_t>(missing, kOwedTicks * tick_frames_);
		clock.owe(owed);
		count_xrun(missing > owed);
		/* Nothing is written for the frames given up: a PCM without a clock
		 * plays nothing in real time, so silence would only be inserted into
		 * what it records (a file), and when it is this thread that woke late
		 * (a loaded host), in the middle of samples the guest gave in time.
		 * The clock moving on is the silence, as with the null back-end. */
		notifier_.notify();
	}

	/* Ring -> PCM, through the bounce buffer (a frame may straddle the ring's wrap). */
	snd_pcm_sframes_t write_frames(size_t frames)
	{
		const size_t bytes = frames * frame_bytes_;
		size_t at = 0;
		for (const auto &region : ring_.read_regions(bytes)) {
			std::copy(region.begin(), region.end(), bounce_.begin() + at);
			at += region.size();
		}
		const snd_pcm_sframes_t r = snd_pcm_writei(pcm_.get(), bounce_.data(), frames);
		if (r == -EAGAIN)
			return 0;
		if (r > 0)
			ring_.commit_read(static_cast<size_t>(r) * frame_bytes_);
		return r;
	}

	/* \a frames (at most a host period) of the format's silence -> PCM. */
	snd_pcm_sframes_t write_silence(size_t frames)
	{
		const snd_pcm_sframes_t r = snd_pcm_writei(pcm_.get(), silence_.data(), frames);
		return r == -EAGAIN ? 0 : r;
	}

	/* PCM -> ring. */
	snd_pcm_sframes_t read_frames(size_t frames)
	{
		const snd_pcm_sframes_t r = snd_pcm_readi(pcm_.get(), bounce_.data(), frames);
		if (r == -EAGAIN)
			return 0;
		if (r > 0)
			ring_.write({ bounce_.data(), static_cast<size_t>(r) * frame_bytes_ });
		return r;
	}

	void produce_silence(size_t frames)
	{
		uint64_t offset = ring_.total_written();
		for (const auto &region : ring_.write_regions(frames * frame_bytes_)) {
			vs::fill_silence(params_.format, region.data(), region.size(), offset);
			offset += region.size();
		}
		ring_.commit_write(frames * frame_bytes_);
	}

	/* An xrun (EPIPE), a suspend (ESTRPIPE) or a fatal error. */
	void recover(int err)
	{
		if (err == -EAGAIN || err == -EINTR)
			return;
		if (err == -EPIPE || err == -ESTRPIPE) {
			xruns_.fetch_add(1);
			const auto now = Clock::now();
			if (now - storm_start_ > std::chrono::seconds(1)) {
				storm_start_ = now;
				storm_count_ = 0;
			}
			if (++storm_count_ > kXrunStormPerSecond) {
				lose(err);
				return;
			}
			int r = snd_pcm_recover(pcm_.get(), err, 1);
			if (r >= 0 && params_.direction == Direction::Input)
				r = snd_pcm_start(pcm_.get());
			if (r < 0)
				lose(r);
			return;
		}
		lose(err);
	}

	/* The device is gone (ENODEV, EBADFD, an xrun storm ...): stop touching it
	 * and go on at the nominal rate, so the guest is never left hanging. */
	void lose(int err)
	{
		lost_error_.store(err ? err : -EIO);
		paced_.store(true);
		delay_frames_.store(0);
		notifier_.notify();
	}

	void count_xrun(bool short_now)
	{
		if (short_now && !in_xrun_)
			xruns_.fetch_add(1);
		in_xrun_ = short_now;
	}

	/*
	 * Sleep until \a deadline or stop(). Never in the PCM's own poll
	 * descriptors: PipeWire's ALSA plugin leaves its descriptor readable
	 * while the PCM has nothing to move, and the thread then spun (measured:
	 * 60 CPU s per audio minute through snd-load --loopback). A tick (a
	 * quarter period, at most 10 ms) is soon enough for any device whose
	 * buffer holds two periods.
	 */
	void wait(Clock::time_point deadline)
	{
		const auto left = std::max<Clock::duration>(deadline - Clock::now(), Clock::duration::zero());
		const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
		const timespec timeout{ static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000) };
		pollfd stop{ stop_event_.fd(), POLLIN, 0 };
		::ppoll(&stop, 1, &timeout, nullptr);
	}

	/* Declared first, destroyed last: no posted callback outlives the stream,
	 * and the thread (joined in the destructor) never notifies a dead one. */
	LoopNotifier notifier_;
	PcmHandle pcm_;
	const std::string device_;
	const PcmParams params_;
	const Geometry geometry_;
	const uint32_t frame_bytes_;
	ByteRing &ring_;
	BackendStreamListener &listener_;
	vhostpp::EventFd stop_event_;
	std::vector<uint8_t> bounce_;
	/* A host period of the format's silence (0x80 for U8 ...). */
	std::vector<uint8_t> silence_;
	const std::chrono::nanoseconds tick_;
	const uint64_t tick_frames_;

	std::atomic<bool> quit_{false};
	std::atomic<bool> paced_{false};
	std::atomic<int> lost_error_{0};
	std::atomic<uint64_t> xruns_{0};
	std::atomic<uint64_t> delay_frames_{0};

	/* The thread's own. */
	uint64_t frames_since_start_ = 0;
	bool in_xrun_ = false;
	Clock::time_point storm_start_{};
	unsigned storm_count_ = 0;

	/* The loop's own. */
	bool lost_logged_ = false;
	bool paced_logged_ = false;
	std::vector<std::pair<std::string, std::string>> details_;

	std::thread thread_;
};

} // namespace

std::optional<snd_pcm_format_t> alsa_format(uint8_t format) noexcept
{
	for (const FormatMapping &m : kFormatMap) {
		if (m.virtio == format)
			return m.alsa;
	}
	return std::nullopt;
}

PcmCapabilities AlsaBackend::default_capabilities()
{
	PcmCapabilities caps;
	caps.formats = (uint64_t{1} << vs::kFmtS16) | (uint64_t{1} << vs::kFmtS32) |
		       (uint64_t{1} << vs::kFmtFloat);
	caps.rates = (uint64_t{1} << vs::kRate44100) | (uint64_t{1} << vs::kRate48000);
	caps.channels_min = 1;
	caps.channels_max = 2;
	return caps;
}

AlsaBackend::AlsaBackend(boost::asio::io_context &io, AlsaOptions options)
	: io_(io), options_(std::move(options))
{
	if (options_.capture_device.empty())
		options_.capture_device = options_.playback_device;
	for (Direction d : { Direction::Output, Direction::Input })
		caps_[static_cast<size_t>(d)] = probe(device(d), d).value_or(default_capabilities());
}

std::vector<std::pair<std::string, std::string>> AlsaBackend::details() const
{
	return { { "playback_device", options_.playback_device },
		 { "capture_device", options_.capture_device } };
}

const std::string &AlsaBackend::device(Direction direction) const
{
	return direction == Direction::Output ? options_.playback_device : options_.capture_device;
}

PcmCapabilities AlsaBackend::capabilities(Direction direction) const
{
	return caps_[static_cast<size_t>(direction)];
}

std::unique_ptr<BackendStream> AlsaBackend::open(const PcmParams &params, ByteRing &ring,
						 BackendStreamListener &listener)
{
	const std::string &name = device(params.direction);
	if (!alsa_format(params.format)) {
		logger().warn("alsa: format {} has no alsa-lib equivalent", vs::format_name(params.format));
		return nullptr;
	}
	PcmHandle pcm;
	int err = open_pcm(name, params.direction, pcm);
	if (err < 0) {
		logger().warn("alsa: cannot open PCM '{}' for {}: {}", name, stream_word(params.direction),
			      snd_strerror(err));
		return nullptr;
	}
	Geometry geometry;
	std::string step;
	err = configure(pcm.get(), params, geometry, step);
	if (err < 0) {
		logger().warn("alsa: PCM '{}' ({}) refused {}: {}", name, stream_word(params.direction),
			      step, snd_strerror(err));
		return nullptr;
	}
	try {
		auto stream = std::make_unique<AlsaStream>(io_, std::move(pcm), name, params, geometry,
							   ring, listener);
		logger().info("{}", stream->describe());
		return stream;
	} catch (const std::exception &e) {
		logger().warn("alsa: PCM '{}': {}", name, e.what());
		return nullptr;
	}
}

BackendInfo alsa_backend_info()
{
	namespace po = boost::program_options;
	return {
		"alsa",
		"plays and captures through alsa-lib PCMs (a sound card, PipeWire's or Pulse's plugin, a file ...)",
		[](po::options_description &options) {
			options.add_options()
				("alsa-device", po::value<std::string>()->value_name("NAME")->default_value("default"),
				 "ALSA PCM for playback")
				("alsa-capture-device", po::value<std::string>()->value_name("NAME"),
				 "ALSA PCM for capture (default: the --alsa-device one)");
		},
		[](const BackendContext &context, const po::variables_map &vm) {
			AlsaOptions options;
			if (vm.count("alsa-device"))
				options.playback_device = vm["alsa-device"].as<std::string>();
			if (vm.count("alsa-capture-device"))
				options.capture_device = vm["alsa-capture-device"].as<std::string>();
			if (options.playback_device.empty())
				throw BackendConfigError("--alsa-device: empty PCM name");
			return std::unique_ptr<AudioBackend>(
				std::make_unique<AlsaBackend>(context.io, std::move(options)));
		},
	};
}

} // namespace vhost_sound
