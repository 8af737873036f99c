/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * The sound device through vhostpp::DeviceHarness: the library's own server
 * and queue lifecycle (a VM pause and resume, a guest driver reset, QEMU
 * quitting) without a socket path or a daemon thread of the test's own.
 */
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <vhostpp/frontend/device_harness.h>

#include "linux_driver.h"
#include "sound_fixture.h"

using namespace sound_test;
namespace vs = vhost_sound::virtio_snd;

TEST_CASE("the sound device through DeviceHarness: pause, resume, reset, quit", "[device][harness]")
{
	boost::asio::io_context io;
	RecordingBackend backend(io);
	NullBackend silence(io);
	SoundDevice device(backend, silence, {});
	vhostpp::DeviceHarness::Options options;
	options.driver = sound_driver_options();
	vhostpp::DeviceHarness h(io, device, options);

	h.start();
	CHECK(h.run([&] { return device.guest_connected(); }));
	SoundDriver snd(h.driver());
	PcmConfig config;
	LinuxPcm pcm(snd, 0, vs::Direction::Output, config);
	pcm.setup();
	pcm.queue_all();
	REQUIRE(snd.pcm(vs::kPcmStart, 0) == vs::kStatusOk);
	PcmRun run;
	pcm.wait_completion(run);
	const size_t held = pcm.in_flight();
	REQUIRE(held > 0);

	/* QMP stop: the held TX buffers are handed back (rewound); the stream
	 * keeps its state for the resume. */
	h.stop();
	CHECK(h.run([&] { return device.stream(0).state(); }) == PcmStream::State::Running);
	/* QMP cont: the held buffers come again and complete, each once. */
	h.resume();
	for (size_t i = 0; i < held; i++)
		pcm.wait_completion(run);
	CHECK(run.statuses == std::vector<uint32_t>(held + 1, vs::kStatusOk));

	/* The guest driver resets the device: streams released, guest still there. */
	h.reset();
	CHECK(h.run([&] { return device.stream(0).state(); }) == PcmStream::State::Idle);
	CHECK(h.run([&] { return backend.open_streams; }) == 0);
	CHECK(h.run([&] { return device.guest_connected(); }));

	/* QEMU quits: the device is detached. */
	h.detach();
	CHECK_FALSE(h.run([&] { return device.guest_connected(); }));
	CHECK(h.run([&] { return device.negotiated_features(); }) == 0);
}
