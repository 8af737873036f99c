/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file pipewire_backend.h
 * \brief The PipeWire back-end: the guest as an ordinary desktop audio client.
 */
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "audio/audio_backend.h"
#include "audio/backend_registry.h"
#include "audio/loop_notifier.h"
#include "audio/null/null_backend.h"

struct pw_thread_loop;
struct pw_context;
struct pw_core;

namespace vhost_sound {

class PipeWireStream;

/** \brief The command-line settings of the PipeWire back-end. */
struct PipeWireSettings {
	/** \brief --pipewire-target: node.name or object.serial of the sink/source to pin; "" lets the session manager pick. */
	std::string target;
	/** \brief --pipewire-remote: the daemon's socket name; "" means PIPEWIRE_REMOTE or pipewire-0. */
	std::string remote;
	/** \brief --name: the VM's name, appended to node names ("" for none). */
	std::string vm_name;
};

/**
 * \brief Plays and captures through a PipeWire daemon.
 *
 * One pw_thread_loop runs the connection; every prepared virtio stream is
 * one pw_stream whose process callback runs on PipeWire's real-time data
 * thread and only copies between the PipeWire buffer and the stream's
 * ByteRing. Progress reaches the device's loop through a LoopNotifier.
 *
 * When the daemon is not there (not started yet, restarted, the user's
 * session ended) the streams keep their pace on the null back-end's clock
 * (output is dropped, input is silence) while the back-end reconnects with
 * a backoff; once connected again every open stream gets a new pw_stream
 * and audio flows without the guest doing anything. The retry timer runs
 * only while a stream is open: an idle daemon costs nothing.
 *
 * Everything but the process callbacks runs on the device's loop thread,
 * which takes the thread loop's lock around every PipeWire call.
 */
class PipeWireBackend : public AudioBackend
{
public:
	/** \brief Connects to PipeWire at once if it is there; no error if it is not. */
	PipeWireBackend(boost::asio::io_context &io, PipeWireSettings settings);
	~PipeWireBackend() override;
	PipeWireBackend(const PipeWireBackend &) = delete;
	PipeWireBackend &operator=(const PipeWireBackend &) = delete;

	std::string_view name() const override { return "pipewire"; }
	/**
	 * \brief remote (the daemon's socket name), connection, target (when
	 * pinned); each open stream adds node_name, node_id and stream_state.
	 */
	std::vector<std::pair<std::string, std::string>> details() const override;
	/** \brief The formats PipeWire's converter handles, every rate of the spec, 1 to 8 channels. */
	PcmCapabilities capabilities(Direction direction) const override;
	std::unique_ptr<BackendStream> open(const PcmParams &params, ByteRing &ring,
					    BackendStreamListener &listener) override;

	/** \brief True while connected to a PipeWire daemon (loop thread). */
	bool connected() const { return core_ != nullptr; }

private:
	friend class PipeWireStream;

	/* Try to connect now; on success every open stream gets its pw_stream. */
	bool connect();
	/* The daemon went away: streams fall back to the clock, retries begin. */
	void connection_lost(const std::string &why);
	void schedule_retry();
	void remove_stream(PipeWireStream *stream);

	boost::asio::io_context &io_;
	const PipeWireSettings settings_;
	/* The socket name connect() reaches: --pipewire-remote, $PIPEWIRE_REMOTE or the default. */
	std::string remote_name_;
	/* Keeps a stream's pace while PipeWire is away. */
	NullBackend fallback_;

	pw_thread_loop *thread_loop_ = nullptr;
	pw_context *context_ = nullptr;
	pw_core *core_ = nullptr;
	/* The core's listener, owned here so that it outlives the core. */
	struct CoreHook;
	std::unique_ptr<CoreHook> core_hook_;
	/* Reports a lost connection from PipeWire's thread to the loop. */
	LoopNotifier lost_;

	std::vector<PipeWireStream *> streams_;
	boost::asio::steady_timer retry_;
	std::chrono::milliseconds backoff_;
	bool retry_pending_ = false;
	/* "Not available" is logged once per outage, not once per retry. */
	bool outage_logged_ = false;
};

/** \brief The registry entry: --pipewire-target, --pipewire-remote. */
BackendInfo pipewire_backend_info();

} // namespace vhost_sound
