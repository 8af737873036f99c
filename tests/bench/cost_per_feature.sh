#!/bin/sh
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
# cost_per_feature.sh: the daemon's CPU per audio minute for each back-end,
# output enabled and disabled, side by side in one snd-load run (one table).
#
#  null      --backend null
#  file      --backend file --output-file (a WAV file in a private directory)
#  alsa      --backend alsa on alsa-lib's `file` plugin over `null` (an
#            ALSA_CONFIG_PATH written here: raw samples into a file, no
#            clock, so the back-end paces on its own)
#  pipewire  --backend pipewire into a private PipeWire's null sink
#            (private_pipewire.sh); the PipeWire daemon's and WirePlumber's
#            CPU is the table's "+pids" column (--also-pid), the daemon's
#            own is "CPU s/min" as for every other row
# Each twice: output on, and output off through the control socket
# (`vhostctl set output off` before the stream is set up: the device puts
# silence in the ring in place of the guest's samples; PipeWire's node is
# inactive and the null clock paces instead).
#
# With PEER naming another vhost-user sound daemon that takes
# `--backend pipewire --socket PATH` (rust-vmm's vhost-device-sound), its
# PipeWire row is measured the same way in the same run (output on only:
# it has no control socket). No null row for it (its null back-end does
# not pace) and no ALSA row (its ALSA back-end uses mmap access, which
# alsa-lib's `file` over `null` refuses: snd_pcm_mmap_begin fails with
# EBADFD, even behind `plug`).
#
# Usage: [PEER=path] tests/bench/cost_per_feature.sh [snd-load options,
# e.g. --seconds 5] (default 20 s per row) from the source tree with the
# build in ./build, or with SND_LOAD, VHOST_SOUND and VHOSTCTL naming the
# programs. Without PipeWire installed its rows are left out.
set -u
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
. "$here/private_pipewire.sh"
snd_load=${SND_LOAD:-build/tests/bench/snd-load}
vhost_sound=$(realpath "${VHOST_SOUND:-build/vhost-sound/vhost-sound}")
vhostctl=$(realpath "${VHOSTCTL:-build/tools/vhostctl/vhostctl}")

dir=$(mktemp -d /tmp/vhostpp-cost-XXXXXX)
cleanup() {
	pw_stop
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$dir/asound.conf" <<EOF
pcm.filenull { type file slave.pcm { type null } file "$dir/alsa.raw" format raw }
EOF
export ALSA_CONFIG_PATH="$dir/asound.conf"

ctl="--control-socket {dir}/ctl"
off="$vhostctl --socket {dir}/ctl set output off"
null="$vhost_sound --socket {socket} $ctl --backend null"
file="$vhost_sound --socket {socket} $ctl --backend file --output-file {dir}/out.wav"
alsa="$vhost_sound --socket {socket} $ctl --backend alsa --alsa-device filenull"
pw="$vhost_sound --socket {socket} $ctl --backend pipewire --pipewire-target test-sink"

# Options given on the command line come first: snd-load takes the first.
set -- "$@" --seconds 20 \
	--label "null output on" --daemon "$null" \
	--label "null output off" --setup "$off" --daemon "$null" \
	--label "file output on" --daemon "$file" \
	--label "file output off" --setup "$off" --daemon "$file" \
	--label "alsa file>null output on" --daemon "$alsa" \
	--label "alsa file>null output off" --setup "$off" --daemon "$alsa"
peer=${PEER:-}
if pw_available && pw_start "$dir/pw"; then
	set -- "$@" --also-pid "$PW_PID" --also-pid "$WP_PID" \
		--label "pipewire output on" --daemon "$pw" \
		--label "pipewire output off" --setup "$off" --daemon "$pw"
	if [ -n "$peer" ]; then
		# The peer cannot pin a target: WirePlumber gives it the default
		# sink, which is test-sink.
		set -- "$@" --label "peer pipewire" --daemon "$peer --backend pipewire --socket {socket}"
	fi
else
	echo "cost_per_feature: no PipeWire rows (not installed or did not start)"
fi
"$snd_load" "$@"
