/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "audio/pipewire/pipewire_backend.h"

#include <algorithm>
#include <atomic>
#include <boost/program_options/value_semantic.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <mutex>
#include <thread>

#include <pipewire/pipewire.h>
#include <spa/param/audio/format-utils.h>
#include <spa/pod/builder.h>

#include "device/topology.h"
#include "sound_log.h"

namespace vhost_sound {

namespace po = boost::program_options;

namespace {

/* The first retry comes quickly (a restarted daemon is usually back within
 * a second), later ones back off so that an absent daemon costs little. */
constexpr std::chrono::milliseconds kFirstRetry{ 100 };
constexpr std::chrono::milliseconds kMaxRetry{ 2000 };

/* The device reads this many quanta ahead (it caps the look-ahead at half
 * of buffer_bytes - period_bytes itself): one for the next cycle, two to
 * cover a loop that answers late. */
constexpr uint32_t kLookaheadQuanta = 3;

/* Cycles of silence a stopped output plays before it goes inactive: the
 * buffer filled in one cycle is played in the next, so the last samples
 * taken from the ring reach the sink before the node is paused. */
constexpr uint32_t kDrainCycles = 2;

/* Holds the thread loop's lock: every PipeWire call outside its own
 * callbacks is made under it. */
class ThreadLoopLock
{
public:
	explicit ThreadLoopLock(pw_thread_loop *loop) : loop_(loop) { pw_thread_loop_lock(loop_); }
	~ThreadLoopLock() { pw_thread_loop_unlock(loop_); }
	ThreadLoopLock(const ThreadLoopLock &) = delete;
	ThreadLoopLock &operator=(const ThreadLoopLock &) = delete;

private:
	pw_thread_loop *loop_;
};

/* The virtio formats PipeWire's converter reads and writes, little-endian
 * as virtio-sound samples are; SPA_AUDIO_FORMAT_UNKNOWN for the others
 * (the 18- and 20-bit ones, which audioconvert does not handle). */
spa_audio_format spa_format(uint8_t format)
{
	namespace vs = virtio_snd;
	switch (format) {
	case vs::kFmtS8:
		return SPA_AUDIO_FORMAT_S8;
	case vs::kFmtU8:
		return SPA_AUDIO_FORMAT_U8;
	case vs::kFmtS16:
		return SPA_AUDIO_FORMAT_S16_LE;
	case vs::kFmtU16:
		return SPA_AUDIO_FORMAT_U16_LE;
	case vs::kFmtS24_3:
		return SPA_AUDIO_FORMAT_S24_LE;
	case vs::kFmtU24_3:
		return SPA_AUDIO_FORMAT_U24_LE;
	case vs::kFmtS24:
		return SPA_AUDIO_FORMAT_S24_32_LE;
	case vs::kFmtU24:
		return SPA_AUDIO_FORMAT_U24_32_LE;
	case vs::kFmtS32:
		return SPA_AUDIO_FORMAT_S32_LE;
	case vs::kFmtU32:
		return SPA_AUDIO_FORMAT_U32_LE;
	case vs::kFmtFloat:
		return SPA_AUDIO_FORMAT_F32_LE;
	case vs::kFmtFloat64:
		return SPA_AUDIO_FORMAT_F64_LE;
	default:
		return SPA_AUDIO_FORMAT_UNKNOWN;
	}
}

/* A virtio channel position (VIRTIO_SND_CHMAP_*) as PipeWire names it. */
uint32_t spa_position(uint8_t position)
{
	namespace vs = virtio_snd;
	switch (position) {
	case vs::kChmapMono:
		return SPA_AUDIO_CHANNEL_MONO;
	case vs::kChmapFl:
		return SPA_AUDIO_CHANNEL_FL;
	case vs::kChmapFr:
		return SPA_AUDIO_CHANNEL_FR;
	case vs::kChmapRl:
		return SPA_AUDIO_CHANNEL_RL;
	case vs::kChmapRr:
		return SPA_AUDIO_CHANNEL_RR;
	case vs::kChmapFc:
		return SPA_AUDIO_CHANNEL_FC;
	case vs::kChmapLfe:
		return SPA_AUDIO_CHANNEL_LFE;
	case vs::kChmapSl:
		return SPA_AUDIO_CHANNEL_SL;
	case vs::kChmapSr:
		return SPA_AUDIO_CHANNEL_SR;
	case vs::kChmapRc:
		return SPA_AUDIO_CHANNEL_RC;
	default:
		return SPA_AUDIO_CHANNEL_UNKNOWN;
	}
}

/*
 * The quantum asked for with node.latency, in frames: half of the smaller
 * of the guest's period and the look-ahead the device allows ((buffer -
 * period) / 2), so that the ring always holds the next cycle with a cycle
 * to spare, and PipeWire's quantum follows the guest's period.
 */
uint32_t quantum_frames(const PcmParams &params)
{
	const uint32_t frame = params.frame_bytes();
	const uint32_t period = params.period_bytes / frame;
	const uint32_t head = (params.buffer_bytes - params.period_bytes) / 2 / frame;
	const uint32_t base = head > 0 ? std::min(period, head) : period;
	return std::max<uint32_t>(base / 2, 16);
}

std::string node_name(Direction direction, const std::string &vm)
{
	std::string name = direction == Direction::Output ? "vhost-sound.output" : "vhost-sound.input";
	if (!vm.empty())
		name += "." + vm;
	return name;
}

std::string node_description(Direction direction, const std::string &vm)
{
	const char *what = direction == Direction::Output ? "playback" : "capture";
	return vm.empty() ? fmt::format("VM {}", what) : fmt::format("VM {} {}", vm, what);
}

} // namespace

/* The core's listener, kept apart so that the header needs no SPA types. */
struct PipeWireBackend::CoreHook {
	spa_hook hook{};
	/* Set on PipeWire's thread when the connection broke; read on the loop. */
	std::atomic<int> lost_error{ 0 };
};

/**
 * One virtio stream on PipeWire: a pw_stream while connected, the null
 * back-end's clock while not.
 *
 * Threads: the constructor, destructor and BackendStream methods run on
 * the loop; on_process() runs on PipeWire's data thread and touches only
 * the ring, the constant parameters and the atomics; on_state_changed()
 * runs on the thread loop.
 */
class PipeWireStream : public BackendStream
{
public:
	PipeWireStream(PipeWireBackend &backend, const PcmParams &params, ByteRing &ring,
		       BackendStreamListener &listener)
		: backend_(backend), params_(params), ring_(ring), listener_(listener),
		  frame_bytes_(params.frame_bytes()), quantum_(quantum_frames(params)),
		  node_name_(node_name(params.direction, backend.settings_.vm_name)),
		  fallback_(backend.fallback_.open(params, ring, listener)),
		  notifier_(backend.io_, [this] { on_notified(); })
	{
	}

	~PipeWireStream() override
	{
		if (pw_) {
			ThreadLoopLock lock(backend_.thread_loop_);
			destroy_pw_stream();
		}
		/* The fallback clock stops with its stream; the notifier after this body. */
		fallback_.reset();
		backend_.remove_stream(this);
	}

	PipeWireStream(const PipeWireStream &) = delete;
	PipeWireStream &operator=(const PipeWireStream &) = delete;

	bool start() override
	{
		running_ = true;
		/* A drain still under way just ends: the node is still active. */
		draining_.store(false, std::memory_order_release);
		if (pw_ && enabled_) {
			ThreadLoopLock lock(backend_.thread_loop_);
			pw_stream_set_active(pw_, true);
			return true;
		}
		/* Not on PipeWire, or a disabled output: the daemon's clock keeps the pace. */
		return fallback_->start();
	}

	/*
	 * The ring is not read after this returns (but for a cycle that is
	 * running now). Output first plays what PipeWire already holds, then
	 * goes inactive (on_notified()); input goes inactive at once.
	 */
	void stop() override
	{
		running_ = false;
		if (pw_ && enabled_) {
			if (params_.direction == Direction::Output) {
				drain_cycles_.store(0, std::memory_order_relaxed);
				draining_.store(true, std::memory_order_release);
				return;
			}
			ThreadLoopLock lock(backend_.thread_loop_);
			pw_stream_set_active(pw_, false);
			return;
		}
		fallback_->stop();
	}

	/*
	 * A disabled output's node goes inactive (the host shows it paused and
	 * PipeWire stops calling process), and the ring, silence only now, is
	 * consumed by the daemon's clock while the stream runs; enabled again,
	 * PipeWire takes over. Also while stopped: a node still draining a
	 * stop is cut short, and paused_ must follow the flag so that the next
	 * start() leaves the ring to the right consumer.
	 */
	void set_output_enabled(bool enabled) override
	{
		if (enabled == enabled_)
			return;
		enabled_ = enabled;
		if (!pw_)
			return; /* The clock has the ring already, whatever the flag. */
		if (!enabled) {
			{
				ThreadLoopLock lock(backend_.thread_loop_);
				pw_stream_set_active(pw_, false);
			}
			release_ring();
			if (running_)
				fallback_->start();
			return;
		}
		if (running_)
			fallback_->stop(); /* On the loop: quiet once this returns. */
		paused_.store(false, std::memory_order_seq_cst);
		if (running_) {
			ThreadLoopLock lock(backend_.thread_loop_);
			pw_stream_set_active(pw_, true);
		}
	}

	uint32_t delay_bytes() const override
	{
		if (!pw_ || (!enabled_ && running_))
			return fallback_->delay_bytes();
		pw_time time{};
		if (pw_stream_get_time_n(pw_, &time, sizeof(time)) < 0 || time.rate.denom == 0)
			return 0;
		/* The graph's delay is in its own time base (rate); the rest in the stream's frames. */
		uint64_t frames = time.delay > 0 ? static_cast<uint64_t>(time.delay) * time.rate.num *
							   params_.rate_hz() / time.rate.denom
						 : 0;
		frames += time.buffered;
		/* Output buffers queued and not yet played (their size field counts frames). */
		if (params_.direction == Direction::Output)
			frames += time.queued;
		return static_cast<uint32_t>(std::min<uint64_t>(frames * frame_bytes_, UINT32_MAX));
	}

	uint32_t lookahead_bytes() const override
	{
		const uint32_t quantum = std::max(quantum_, seen_quantum_.load(std::memory_order_relaxed));
		return kLookaheadQuanta * quantum * frame_bytes_;
	}

	uint64_t xruns() const override
	{
		return xruns_.load(std::memory_order_relaxed) + fallback_->xruns();
	}

	std::string describe() const override
	{
		const char *what = params_.direction == Direction::Output ? "playback" : "capture";
		if (!pw_)
			return fmt::format("pipewire {} '{}' (PipeWire away: {})", what, node_name_,
					   fallback_->describe());
		if (!enabled_)
			return fmt::format("pipewire {} '{}' inactive while disabled ({})", what, node_name_,
					   fallback_->describe());
		const auto state = static_cast<pw_stream_state>(state_.load(std::memory_order_relaxed));
		return fmt::format("pipewire {} '{}' {} quantum {}/{}", what, node_name_,
				   pw_stream_state_as_string(state), quantum_, params_.rate_hz());
	}

	/*
	 * node_name always; while on PipeWire node_id (once PipeWire has bound
	 * the node: not yet right after pw_stream_connect()) and the stream's
	 * state. The node id is read under the thread loop's lock: PipeWire sets
	 * it on that thread, and the data thread never takes the lock.
	 */
	std::vector<std::pair<std::string, std::string>> details() const override
	{
		std::vector<std::pair<std::string, std::string>> d;
		d.emplace_back("node_name", node_name_);
		if (!pw_) {
			d.emplace_back("stream_state", "none (PipeWire away)");
			return d;
		}
		uint32_t id;
		{
			ThreadLoopLock lock(backend_.thread_loop_);
			id = pw_stream_get_node_id(pw_);
		}
		if (id != SPA_ID_INVALID)
			d.emplace_back("node_id", std::to_string(id));
		const auto state = static_cast<pw_stream_state>(state_.load(std::memory_order_relaxed));
		d.emplace_back("stream_state", pw_stream_state_as_string(state));
		return d;
	}

	bool has_pw_stream() const { return pw_ != nullptr; }

	/* With the thread loop locked: put this stream on PipeWire through \a core. */
	void attach(pw_core *core)
	{
		if (pw_)
			return;
		/* The clock must be quiet before PipeWire's thread takes the ring
		 * (a disabled output's node is created inactive and keeps the clock). */
		fallback_->stop();
		if (!create_pw_stream(core) || !enabled_) {
			if (running_)
				fallback_->start();
		}
	}

	/* With the thread loop locked: PipeWire is gone; keep the pace on the clock. */
	void detach()
	{
		if (!pw_)
			return;
		destroy_pw_stream();
		if (running_ && enabled_) /* A disabled output's clock runs already. */
			fallback_->start();
	}

private:
	bool create_pw_stream(pw_core *core)
	{
		const PipeWireSettings &settings = backend_.settings_;
		const bool output = params_.direction == Direction::Output;
		const std::string description = node_description(params_.direction, settings.vm_name);
		const std::string latency = fmt::format("{}/{}", quantum_, params_.rate_hz());
		const std::string rate = fmt::format("1/{}", params_.rate_hz());

		pw_properties *props = pw_properties_new(
			PW_KEY_MEDIA_TYPE, "Audio",
			PW_KEY_MEDIA_CATEGORY, output ? "Playback" : "Capture",
			PW_KEY_MEDIA_ROLE, "Music",
			PW_KEY_MEDIA_CLASS, output ? "Stream/Output/Audio" : "Stream/Input/Audio",
			PW_KEY_MEDIA_NAME, description.c_str(),
			PW_KEY_NODE_NAME, node_name_.c_str(),
			PW_KEY_NODE_DESCRIPTION, description.c_str(),
			PW_KEY_APP_NAME, "vhost-sound",
			PW_KEY_NODE_LATENCY, latency.c_str(),
			PW_KEY_NODE_RATE, rate.c_str(),
			nullptr);
		if (!settings.target.empty())
			pw_properties_set(props, PW_KEY_TARGET_OBJECT, settings.target.c_str());

		/* pw_stream_new() takes the properties, also on failure. */
		pw_ = pw_stream_new(core, node_name_.c_str(), props);
		if (!pw_) {
			logger().warn("pipewire: cannot create stream '{}': {}", node_name_, std::strerror(errno));
			return false;
		}
		static const pw_stream_events kEvents = [] {
			pw_stream_events e{};
			e.version = PW_VERSION_STREAM_EVENTS;
			e.state_changed = &PipeWireStream::on_state_changed;
			e.process = &PipeWireStream::on_process;
			return e;
		}();
		stream_hook_ = {};
		pw_stream_add_listener(pw_, &stream_hook_, &kEvents, this);

		spa_audio_info_raw info{};
		info.format = spa_format(params_.format);
		info.rate = params_.rate_hz();
		info.channels = params_.channels;
		const auto map = standard_channel_map(params_.channels);
		for (size_t i = 0; i < map.size() && i < SPA_AUDIO_MAX_CHANNELS; i++)
			info.position[i] = spa_position(map[i]);
		uint8_t pod[1024];
		spa_pod_builder builder{};
		spa_pod_builder_init(&builder, pod, sizeof(pod));
		const spa_pod *format = spa_format_audio_raw_build(&builder, SPA_PARAM_EnumFormat, &info);

		auto flags = static_cast<pw_stream_flags>(PW_STREAM_FLAG_AUTOCONNECT |
							  PW_STREAM_FLAG_MAP_BUFFERS |
							  PW_STREAM_FLAG_RT_PROCESS);
		/* Stopped streams and a disabled output show as inactive on the host. */
		if (!running_ || !enabled_)
			flags = static_cast<pw_stream_flags>(flags | PW_STREAM_FLAG_INACTIVE);
		paused_.store(!enabled_, std::memory_order_seq_cst);
		state_.store(PW_STREAM_STATE_CONNECTING, std::memory_order_relaxed);
		draining_.store(false, std::memory_order_relaxed);
		drained_.store(false, std::memory_order_relaxed);
		const int rc = pw_stream_connect(pw_, output ? PW_DIRECTION_OUTPUT : PW_DIRECTION_INPUT,
						 PW_ID_ANY, flags, &format, 1);
		if (rc < 0) {
			logger().warn("pipewire: cannot connect stream '{}': {}", node_name_, std::strerror(-rc));
			destroy_pw_stream();
			return false;
		}
		logger().debug("pipewire: stream '{}' connected ({}, latency {})", node_name_,
			       virtio_snd::format_name(params_.format), latency);
		return true;
	}

	void destroy_pw_stream()
	{
		/* After this returns PipeWire's threads no longer call us back. */
		spa_hook_remove(&stream_hook_);
		pw_stream_destroy(pw_);
		pw_ = nullptr;
		in_xrun_ = false;
	}

	/* PipeWire's thread loop. */
	static void on_state_changed(void *data, pw_stream_state, pw_stream_state state, const char *error)
	{
		auto *self = static_cast<PipeWireStream *>(data);
		self->state_.store(state, std::memory_order_relaxed);
		if (state == PW_STREAM_STATE_ERROR) {
			{
				std::lock_guard guard(self->error_mutex_);
				self->error_ = error ? error : "unknown error";
			}
			self->failed_.store(true, std::memory_order_release);
			self->notifier_.notify();
		}
	}

	/*
	 * The data thread gives the ring up to the daemon's clock (a disabled
	 * output): after set_active(false) a cycle may still be running, so
	 * paused_ is raised and the loop waits for in_process_ to drop. Both
	 * sequentially consistent: either the cycle sees paused_ and leaves the
	 * ring alone, or the loop sees in_process_ and waits for the cycle (a
	 * memcpy of one quantum) to end.
	 */
	void release_ring()
	{
		paused_.store(true, std::memory_order_seq_cst);
		while (in_process_.load(std::memory_order_seq_cst))
			std::this_thread::yield();
	}

	/* PipeWire's real-time data thread: no lock, no allocation, no log, no guest memory. */
	static void on_process(void *data)
	{
		auto *self = static_cast<PipeWireStream *>(data);
		self->in_process_.store(true, std::memory_order_seq_cst);
		struct Leave {
			std::atomic<bool> &flag;
			~Leave() { flag.store(false, std::memory_order_seq_cst); }
		} leave{ self->in_process_ };
		pw_buffer *buffer = pw_stream_dequeue_buffer(self->pw_);
		if (!buffer)
			return;
		spa_data &d = buffer->buffer->datas[0];
		if (d.data && d.chunk) {
			if (self->params_.direction == Direction::Output)
				self->play(*buffer, d);
			else
				self->record(d);
		}
		pw_stream_queue_buffer(self->pw_, buffer);
		self->notifier_.notify();
	}

	void play(pw_buffer &buffer, spa_data &d)
	{
		const uint32_t max_frames = d.maxsize / frame_bytes_;
		uint32_t frames = max_frames;
		if (buffer.requested)
			frames = static_cast<uint32_t>(std::min<uint64_t>(buffer.requested, max_frames));
		seen_quantum_.store(frames, std::memory_order_relaxed);

		auto *out = static_cast<uint8_t *>(d.data);
		const size_t want = size_t{frames} * frame_bytes_;
		const bool draining = draining_.load(std::memory_order_acquire);
		if (draining && drain_cycles_.fetch_add(1, std::memory_order_relaxed) + 1 == kDrainCycles)
			drained_.store(true, std::memory_order_release);
		/* Stopped: the ring's bytes wait for the next start; paused (a
		 * disabled output): the daemon's clock has the ring. */
		const bool paused = paused_.load(std::memory_order_seq_cst);
		const size_t have = draining || paused ? 0
						       : std::min(ring_.readable() / frame_bytes_ * frame_bytes_, want);
		size_t copied = 0;
		for (const auto &region : ring_.read_regions(have)) {
			std::memcpy(out + copied, region.data(), region.size());
			copied += region.size();
		}
		ring_.commit_read(have);
		/* An empty ring plays silence, and the chunk still says the whole
		 * cycle is there: a short or stale chunk would replay old data. */
		if (have < want)
			virtio_snd::fill_silence(params_.format, out + have, want - have, have);
		if (!draining && !paused)
			count_xrun(have < want);

		d.chunk->offset = 0;
		d.chunk->stride = static_cast<int32_t>(frame_bytes_);
		d.chunk->size = static_cast<uint32_t>(want);
		buffer.size = frames;
	}

	void record(const spa_data &d)
	{
		const uint32_t offset = std::min(d.chunk->offset, d.maxsize);
		const uint32_t size = std::min(d.chunk->size, d.maxsize - offset) / frame_bytes_ * frame_bytes_;
		seen_quantum_.store(size / frame_bytes_, std::memory_order_relaxed);
		const size_t room = ring_.writable() / frame_bytes_ * frame_bytes_;
		const size_t put = std::min<size_t>(size, room);
		ring_.write({ static_cast<const uint8_t *>(d.data) + offset, put });
		count_xrun(put < size);
	}

	/* Counted once per episode, as the null back-end does. */
	void count_xrun(bool short_now)
	{
		if (short_now && !in_xrun_)
			xruns_.fetch_add(1, std::memory_order_relaxed);
		in_xrun_ = short_now;
	}

	/* The loop: progress from the data thread, a drained output, or an error from the thread loop. */
	void on_notified()
	{
		if (drained_.exchange(false, std::memory_order_acquire) && pw_ && !running_ &&
		    draining_.load(std::memory_order_acquire)) {
			ThreadLoopLock lock(backend_.thread_loop_);
			pw_stream_set_active(pw_, false);
		}
		if (failed_.exchange(false, std::memory_order_acquire) && pw_) {
			std::string error;
			{
				std::lock_guard guard(error_mutex_);
				error = error_;
			}
			logger().warn("pipewire: stream '{}' failed ({}); it keeps its pace on the daemon's "
				      "clock and is recreated on the next retry", node_name_, error);
			{
				ThreadLoopLock lock(backend_.thread_loop_);
				detach();
			}
			backend_.schedule_retry();
		}
		listener_.backend_progress();
	}

	PipeWireBackend &backend_;
	const PcmParams params_;
	ByteRing &ring_;
	BackendStreamListener &listener_;
	const uint32_t frame_bytes_;
	const uint32_t quantum_;
	const std::string node_name_;
	std::unique_ptr<BackendStream> fallback_;

	bool running_ = false;
	/* The output's enable flag (set_output_enabled()); inputs are always enabled here. */
	bool enabled_ = true;
	pw_stream *pw_ = nullptr;
	spa_hook stream_hook_{};

	std::atomic<int> state_{ PW_STREAM_STATE_UNCONNECTED };
	std::atomic<uint64_t> xruns_{ 0 };
	std::atomic<uint32_t> seen_quantum_{ 0 };
	/* Only the data thread reads and writes it (reset when no data thread runs). */
	bool in_xrun_ = false;

	/* A stopped output playing out what PipeWire holds (see stop()). */
	std::atomic<bool> draining_{ false };
	std::atomic<uint32_t> drain_cycles_{ 0 };
	std::atomic<bool> drained_{ false };

	/* See release_ring(). */
	std::atomic<bool> paused_{ false };
	std::atomic<bool> in_process_{ false };

	std::atomic<bool> failed_{ false };
	std::mutex error_mutex_;
	std::string error_;

	/* Declared last: destroyed after the pw_stream that calls notify(). */
	LoopNotifier notifier_;
};

PipeWireBackend::PipeWireBackend(boost::asio::io_context &io, PipeWireSettings settings)
	: io_(io), settings_(std::move(settings)), fallback_(io), core_hook_(std::make_unique<CoreHook>()),
	  lost_(io, [this] {
		  const int error = core_hook_->lost_error.exchange(0);
		  if (error)
			  connection_lost(std::strerror(error));
	  }),
	  retry_(io), backoff_(kFirstRetry)
{
	/* What libpipewire connects to without PW_KEY_REMOTE_NAME: $PIPEWIRE_REMOTE, else its default. */
	const char *env_remote = std::getenv("PIPEWIRE_REMOTE");
	if (!settings_.remote.empty())
		remote_name_ = settings_.remote;
	else
		remote_name_ = env_remote && *env_remote ? env_remote : PW_DEFAULT_REMOTE;
	pw_init(nullptr, nullptr);
	thread_loop_ = pw_thread_loop_new("vhost-sound-pw", nullptr);
	if (!thread_loop_)
		throw std::runtime_error("pipewire: cannot create a thread loop");
	context_ = pw_context_new(pw_thread_loop_get_loop(thread_loop_), nullptr, 0);
	if (!context_) {
		pw_thread_loop_destroy(thread_loop_);
		throw std::runtime_error("pipewire: cannot create a context");
	}
	if (pw_thread_loop_start(thread_loop_) < 0) {
		pw_context_destroy(context_);
		pw_thread_loop_destroy(thread_loop_);
		throw std::runtime_error("pipewire: cannot start the thread loop");
	}
	connect();
}

PipeWireBackend::~PipeWireBackend()
{
	retry_.cancel();
	{
		ThreadLoopLock lock(thread_loop_);
		if (core_) {
			spa_hook_remove(&core_hook_->hook);
			pw_core_disconnect(core_);
			core_ = nullptr;
		}
	}
	pw_thread_loop_stop(thread_loop_);
	pw_context_destroy(context_);
	pw_thread_loop_destroy(thread_loop_);
	pw_deinit();
}

std::vector<std::pair<std::string, std::string>> PipeWireBackend::details() const
{
	std::vector<std::pair<std::string, std::string>> d = {
		{ "remote", remote_name_ },
		{ "connection", core_ ? "connected" : "disconnected (retrying while a stream is open)" },
	};
	if (!settings_.target.empty())
		d.emplace_back("target", settings_.target);
	return d;
}

PcmCapabilities PipeWireBackend::capabilities(Direction) const
{
	uint64_t formats = 0;
	for (uint8_t f = 0; f < virtio_snd::kNumFormats; f++) {
		if (spa_format(f) != SPA_AUDIO_FORMAT_UNKNOWN)
			formats |= uint64_t{1} << f;
	}
	/* PipeWire resamples every rate to the graph's. */
	return { formats, virtio_snd::all_rates(), 1, 8 };
}

std::unique_ptr<BackendStream> PipeWireBackend::open(const PcmParams &params, ByteRing &ring,
						     BackendStreamListener &listener)
{
	auto stream = std::make_unique<PipeWireStream>(*this, params, ring, listener);
	streams_.push_back(stream.get());
	if (core_) {
		ThreadLoopLock lock(thread_loop_);
		stream->attach(core_);
	} else {
		connect();
	}
	if (!stream->has_pw_stream())
		schedule_retry();
	return stream;
}

bool PipeWireBackend::connect()
{
	if (core_)
		return true;
	const std::string where = settings_.remote.empty() ? "the default PipeWire daemon"
							   : "PipeWire remote '" + settings_.remote + "'";
	size_t attached = 0;
	{
		ThreadLoopLock lock(thread_loop_);
		pw_properties *props = settings_.remote.empty()
			? nullptr
			: pw_properties_new(PW_KEY_REMOTE_NAME, settings_.remote.c_str(), nullptr);
		core_ = pw_context_connect(context_, props, 0);
		if (!core_) {
			const int error = errno;
			if (!outage_logged_) {
				logger().warn("pipewire: cannot connect to {}: {}; streams keep their pace on the "
					      "daemon's clock (output dropped, input silent) and it retries",
					      where, std::strerror(error));
				outage_logged_ = true;
			} else {
				logger().debug("pipewire: retry: cannot connect to {}: {}", where, std::strerror(error));
			}
			return false;
		}
		static const pw_core_events kEvents = [] {
			pw_core_events e{};
			e.version = PW_VERSION_CORE_EVENTS;
			e.error = [](void *data, uint32_t id, int, int res, const char *) {
				/* PipeWire's thread: a broken connection is reported on the core. */
				auto *self = static_cast<PipeWireBackend *>(data);
				if (id == PW_ID_CORE && res == -EPIPE) {
					self->core_hook_->lost_error.store(-res);
					self->lost_.notify();
				}
			};
			return e;
		}();
		core_hook_->hook = {};
		pw_core_add_listener(core_, &core_hook_->hook, &kEvents, this);
		for (PipeWireStream *stream : streams_) {
			stream->attach(core_);
			attached += stream->has_pw_stream();
		}
	}
	if (outage_logged_)
		logger().info("pipewire: connected to {} again; {} stream(s) back on PipeWire", where, attached);
	else
		logger().info("pipewire: connected to {}", where);
	outage_logged_ = false;
	backoff_ = kFirstRetry;
	return true;
}

void PipeWireBackend::connection_lost(const std::string &why)
{
	if (!core_)
		return;
	{
		ThreadLoopLock lock(thread_loop_);
		for (PipeWireStream *stream : streams_)
			stream->detach();
		spa_hook_remove(&core_hook_->hook);
		pw_core_disconnect(core_);
		core_ = nullptr;
	}
	logger().warn("pipewire: connection lost ({}); {} stream(s) keep their pace on the daemon's clock "
		      "(output dropped, input silent) until PipeWire is back", why, streams_.size());
	outage_logged_ = true;
	backoff_ = kFirstRetry;
	schedule_retry();
}

void PipeWireBackend::schedule_retry()
{
	if (retry_pending_ || streams_.empty())
		return;
	retry_pending_ = true;
	retry_.expires_after(backoff_);
	retry_.async_wait([this](const boost::system::error_code &ec) {
		/* Cancelled only by the destructor: then this is gone. */
		if (ec)
			return;
		retry_pending_ = false;
		if (streams_.empty())
			return;
		if (connect()) {
			ThreadLoopLock lock(thread_loop_);
			for (PipeWireStream *stream : streams_)
				stream->attach(core_);
		}
		const bool missing = std::any_of(streams_.begin(), streams_.end(), [](PipeWireStream *s) {
			return !s->has_pw_stream();
		});
		if (missing) {
			backoff_ = std::min(backoff_ * 2, kMaxRetry);
			schedule_retry();
		}
	});
}

void PipeWireBackend::remove_stream(PipeWireStream *stream)
{
	streams_.erase(std::remove(streams_.begin(), streams_.end(), stream), streams_.end());
}

BackendInfo pipewire_backend_info()
{
	return {
		"pipewire",
		"plays and captures through the PipeWire daemon (PIPEWIRE_REMOTE / XDG_RUNTIME_DIR)",
		[](po::options_description &options) {
			// clang-format off
			options.add_options()
				("pipewire-target", po::value<std::string>()->value_name("NAME"),
				 "pin the streams to this sink / source (node.name or object.serial); "
				 "default: the session manager picks")
				("pipewire-remote", po::value<std::string>()->value_name("NAME"),
				 "connect to this PipeWire daemon socket instead of $PIPEWIRE_REMOTE or pipewire-0");
			// clang-format on
		},
		[](const BackendContext &context, const po::variables_map &options) {
			PipeWireSettings settings;
			settings.vm_name = context.name;
			for (const char *key : { "pipewire-target", "pipewire-remote" }) {
				if (!options.count(key))
					continue;
				const std::string value = options[key].as<std::string>();
				if (value.empty())
					throw BackendConfigError(fmt::format("--{} needs a non-empty name", key));
				(std::string_view(key) == "pipewire-target" ? settings.target : settings.remote) = value;
			}
			return std::unique_ptr<AudioBackend>(
				std::make_unique<PipeWireBackend>(context.io, std::move(settings)));
		},
	};
}

} // namespace vhost_sound
