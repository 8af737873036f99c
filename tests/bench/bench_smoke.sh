#!/bin/sh
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
# bench_smoke: each benchmark program runs very briefly and prints its
# figures. Not a timing test: it checks that the programs still work and
# print what BENCHMARKS.md shows, never what the figures are.
# Arguments: bench_virtqueue bench_notify bench_daemon snd-load vhost-sound
# vhostctl tests/bench-source-dir
set -u
virtqueue=$1 notify=$2 daemon=$3 snd_load=$4 vhost_sound=$5 vhostctl=$6 src=$7
fail=0

# check NAME PATTERN OUTPUT: OUTPUT must have a line matching PATTERN.
check() {
	if ! printf '%s\n' "$3" | grep -Eq "$2"; then
		echo "FAIL: $1 printed no line matching /$2/"
		fail=1
	fi
}

# run NAME CMD...: the command must exit 0; its output is kept in $out.
run() {
	name=$1
	shift
	out=$("$@" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	if [ $rc -ne 0 ]; then
		echo "FAIL: $name exited $rc"
		fail=1
	fi
}

run bench_virtqueue "$virtqueue" --quick --chains 500
check bench_virtqueue '^machine: nproc [0-9]+' "$out"
check bench_virtqueue '^indirect4 +on +32 \| +[0-9.]+ +[0-9.]+ +[0-9.]+x' "$out"
# Tiny and odd chain counts must not hang (each wait is bounded).
run bench_virtqueue_small "$virtqueue" --quick --chains 1
check bench_virtqueue_small '^1-desc +off +32 \|' "$out"

run bench_notify "$notify" --quick
check bench_notify '^eventfd round trips .*[0-9]+/s' "$out"
check bench_notify 'EVENT_IDX saves .* of kicks' "$out"

run bench_daemon "$daemon" --quick --count 2
check bench_daemon 'start-up to listening socket: min [0-9.]+ ms' "$out"
check bench_daemon 'idle, no guest: +RSS anon +[0-9]+ KiB' "$out"
check bench_daemon 'stream prepared, not started: +RSS anon' "$out"
check bench_daemon 'density: 2 of 2 daemons listening' "$out"

run snd-load "$snd_load" --daemon "$vhost_sound --socket {socket} --backend null" \
	--seconds 0.3 --period-ms 10
check snd-load 'pacing error [-+][0-9.]+ %' "$out"
check snd-load 'completion interval: p50 [0-9.]+ ms' "$out"
check snd-load '[0-9.]+ CPU s per audio minute' "$out"

# --label / --setup: a setup command that fails fails that target.
out=$("$snd_load" --seconds 0.3 --label broken --setup false \
	--daemon "$vhost_sound --socket {socket} --backend null" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ $rc -eq 0 ]; then
	echo "FAIL: snd-load passed with a failing --setup"
	fail=1
fi
check snd-load-setup '^== broken' "$out"
check snd-load-setup 'FAILED: --setup failed' "$out"

# The scripts, a second or two each. Whether an impulse came back depends on
# PipeWire linking the streams in time on a loaded machine, so only the
# loopback line itself is checked; PipeWire missing skips it (77).
export SND_LOAD="$snd_load" VHOST_SOUND="$vhost_sound" VHOSTCTL="$vhostctl"
out=$(sh "$src/loopback.sh" --seconds 1.5 2>&1)
rc=$?
printf '%s\n' "$out"
if [ $rc -eq 77 ]; then
	echo "loopback.sh: skipped (no PipeWire)"
elif [ $rc -ne 0 ]; then
	echo "FAIL: loopback.sh exited $rc"
	fail=1
else
	check loopback.sh '^== vhost-sound pipewire' "$out"
	check loopback.sh '^  loopback: ' "$out"
fi

run cost_per_feature.sh sh "$src/cost_per_feature.sh" --seconds 1
check cost_per_feature.sh '^  null output off +[-+][0-9.]+ ' "$out"
check cost_per_feature.sh '^  alsa file>null output on +[-+][0-9.]+ ' "$out"

exit $fail
