#!/bin/sh
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
# loopback.sh: the round trip of an impulse from the guest's TX to its RX
# through a host loopback, with no sound card (snd-load --loopback).
#
# A private PipeWire (private_pipewire.sh) whose null sink "test-sink" is
# the loopback: what is played into it comes out of its monitor ports. Two
# ways into it, measured side by side in one snd-load run:
#  (b) vhost-sound --backend pipewire --pipewire-target test-sink: the
#      output stream plays into the sink, and the input stream, pinned to a
#      sink (and marked stream.capture.sink, below), is linked by
#      WirePlumber to the sink's monitor;
#  (a) vhost-sound --backend alsa with an alsa-lib configuration
#      (ALSA_CONFIG_PATH, written here) whose playback and capture PCMs are
#      PipeWire's ALSA plugin on that same sink and its monitor.
#
# Usage: tests/bench/loopback.sh [snd-load options, e.g. --seconds 10]
# from the source tree with the build in ./build, or with SND_LOAD and
# VHOST_SOUND naming the programs. Exit 77 when PipeWire is not installed.
set -u
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
. "$here/private_pipewire.sh"
snd_load=${SND_LOAD:-build/tests/bench/snd-load}
vhost_sound=${VHOST_SOUND:-build/vhost-sound/vhost-sound}
vhost_sound=$(realpath "$vhost_sound")

if ! pw_available; then
	echo "loopback: not run: pipewire, wireplumber or pw-metadata is not installed"
	exit 77
fi
dir=$(mktemp -d /tmp/vhostpp-loopback-XXXXXX)
cleanup() {
	pw_stop
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A PipeWire that does not come up (a very loaded machine) is not a
# figure of ours: say so and skip, as when it is not installed.
if ! pw_start "$dir"; then
	echo "loopback: not run: the private PipeWire did not start (logs: $dir/*.log)"
	cat "$dir"/*.log 2>/dev/null | tail -20
	exit 77
fi

# (a): PipeWire's ALSA plugin, playback into the sink and capture from it
# (a capture stream targeting a sink gets the sink's monitor). Nothing
# else is defined: ALSA_CONFIG_PATH replaces alsa.conf.
cat >"$dir/asound.conf" <<EOF
pcm.lbplay { type pipewire playback_node "test-sink" }
pcm.lbcap { type pipewire capture_node "test-sink" }
EOF
export ALSA_CONFIG_PATH="$dir/asound.conf"
# WirePlumber 0.4 links a capture stream that targets a sink to the sink's
# monitor only when the stream has stream.capture.sink = true (otherwise it
# falls back to the default source, a silent null source here). Neither
# vhost-sound's input stream nor the ALSA plugin's sets it; libpipewire adds
# PIPEWIRE_PROPS to every stream a process makes (on the output stream the
# property means nothing).
export PIPEWIRE_PROPS='{ stream.capture.sink = true }'

# Options given on the command line come first: snd-load takes the first.
"$snd_load" --loopback "$@" --seconds 10 \
	--label "vhost-sound pipewire (b)" \
	--daemon "$vhost_sound --socket {socket} --backend pipewire --pipewire-target test-sink --initial-streams output,input" \
	--label "vhost-sound alsa + pipewire plugin (a)" \
	--daemon "$vhost_sound --socket {socket} --backend alsa --alsa-device lbplay --alsa-capture-device lbcap --initial-streams output,input" \
	--also-pid "$PW_PID" --also-pid "$WP_PID"
