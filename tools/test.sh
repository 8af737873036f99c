#!/usr/bin/env bash
# Set up, build and run every test: first the normal build (all suites,
# including the QEMU guest test), then an ASan/UBSan build and a
# ThreadSanitizer build of the suites that do not boot a guest, then every
# libFuzzer target for VHOSTPP_FUZZ_SECONDS (60) each. Ends with one line
# "N passed, N failed". VHOSTPP_SKIP_SANITIZERS=1 / VHOSTPP_SKIP_FUZZ=1 leave
# those parts out.
set -uo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh --tests || exit 1

status=0
# Where CI's time goes: each phase's seconds and the running total.
phase_start=0
phase_done() {
	echo "test.sh: $1 took $((SECONDS - phase_start)) s (total $SECONDS s)"
	phase_start=$SECONDS
}
phase_done setup
run_suites() {
	local dir=$1; shift
	local rc=0
	if [[ ! -d $dir ]]; then
		meson setup "$dir" "$@" >/dev/null || return 1
	fi
	ninja -C "$dir" || return 1
	phase_done "building $dir"
	meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 "${MESON_TEST_ARGS[@]}" || rc=1
	phase_done "testing $dir"
	return $rc
}

MESON_TEST_ARGS=()
run_suites build || status=1
summaries=(build/meson-logs/testlog.json)

if [[ "${VHOSTPP_SKIP_SANITIZERS:-0}" != 1 ]]; then
	# Leaks in third-party plugins the tests load (tests/lsan.supp says which).
	export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp print_suppressions=0}
	# The soak (60 s of wall time) runs in the normal build only.
	MESON_TEST_ARGS=(--no-suite qemu --no-suite soak)
	# Unoptimised: GCC 12 takes ~4x the CPU to compile a test at -O2 with
	# ASan+UBSan as at -O0 (test_device.cpp: 77 s against 20 s), and every
	# suite is paced by time, not CPU. ThreadSanitizer compiles fast at -O2.
	run_suites build-sanitize -Db_sanitize=address,undefined -Db_lundef=false -Doptimization=0 || status=1
	summaries+=(build-sanitize/meson-logs/testlog.json)

	# Every suite with threads: the loop thread against the front-end's, the
	# byte ring, the ALSA and PipeWire back-ends' own threads.
	export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp}
	MESON_TEST_ARGS=(--no-suite qemu --no-suite fuzz --no-suite soak)
	# GCC cannot instrument standalone fences (-Wtsan); TSan still sees the
	# acquire/release pairs that order the rings.
	run_suites build-tsan -Db_sanitize=thread -Db_lundef=false -Dcpp_args=-Wno-tsan || status=1
	summaries+=(build-tsan/meson-logs/testlog.json)
fi

if [[ "${VHOSTPP_SKIP_FUZZ:-0}" != 1 ]]; then
	# Every target, the session and snd ones included now that kick, call
	# and err fds must be eventfds (a pipe at EOF once spun the loop).
	# shellcheck disable=SC2086
	bash tests/fuzz/run "${VHOSTPP_FUZZ_SECONDS:-60}" ${VHOSTPP_FUZZ_TARGETS:-wire virtqueue wav control session snd} || status=1
	phase_done fuzzing
	summaries+=(build-fuzz/fuzz-testlog.json)
fi

python3 tools/test-summary.py "${summaries[@]}" || status=1
exit $status
