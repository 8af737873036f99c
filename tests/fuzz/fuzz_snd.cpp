/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Target 4, virtio-snd: the whole vhost-sound device (control, event, TX and
 * RX queues, both PCM streams on the null back-end and the daemon's silence
 * source) served over a real socket, driven by the session records of
 * session_harness.h. The seeds negotiate, map memory holding control
 * requests (info queries, SET_PARAMS, PREPARE, START, STOP, RELEASE) and I/O
 * messages, and kick the queues, so the stream state machine is reachable.
 */

#include "audio/null/null_backend.h"
#include "device/sound_device.h"
#include "session_harness.h"
#include "sound_log.h"

namespace {

using namespace vhost_sound;

/* A device with its back-ends, owned together. */
struct Sound {
	explicit Sound(boost::asio::io_context &io) : backend(io), silence(io), device(backend, silence, options()) {}

	static SoundDevice::Options options()
	{
		SoundDevice::Options o;
		o.output_enabled = true;
		o.input_enabled = true;
		/* The CTL_* requests and the gain in the data path too. */
		o.controls = true;
		/* Below the sanitizer allocator's mmap()ed sizes: an input can hold
		 * 40 000 PCM_PREPAREs, and at 1 MiB each (an mmap, shadow poisoning
		 * and an munmap under ASan) they take 10 s: a libFuzzer timeout on a
		 * loaded machine that is ASan's cost, not the daemon's. */
		o.tuning.max_buffer_bytes = 64u << 10;
		return o;
	}

	NullBackend backend;
	NullBackend silence;
	SoundDevice device;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const bool routed = [] {
		fuzz::route_library_log();
		/* stderr (the default sink) with FUZZ_LOG, else every line formatted and dropped. */
		if (!std::getenv("FUZZ_LOG"))
			vhost_sound::set_log_sink([](vhostpp::LogLevel, std::string_view) {});
		vhost_sound::logger().set_level(spdlog::level::trace);
		return true;
	}();
	(void)routed;
	fuzz::run_session(data, size, [](boost::asio::io_context &io) {
		auto sound = std::make_shared<Sound>(io);
		return std::shared_ptr<vhostpp::Device>(sound, &sound->device);
	});
	return 0;
}
