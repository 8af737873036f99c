#!/usr/bin/env bash
# Set up, build and run every test: first the normal build (all suites,
# including the QEMU guest test), then an ASan/UBSan build of the suites
# that do not boot a guest. Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh --tests || exit 1

status=0
run_suites() {
	local dir=$1; shift
	if [[ ! -d $dir ]]; then
		meson setup "$dir" "$@" >/dev/null || return 1
	fi
	ninja -C "$dir" || return 1
	meson test -C "$dir" --print-errorlogs --num-processes 2 "${MESON_TEST_ARGS[@]}"
}

MESON_TEST_ARGS=()
run_suites build || status=1
summaries=(build/meson-logs/testlog.json)

if [[ "${VHOSTPP_SKIP_SANITIZERS:-0}" != 1 ]]; then
	MESON_TEST_ARGS=(--no-suite qemu)
	run_suites build-sanitize -Db_sanitize=address,undefined -Db_lundef=false || status=1
	summaries+=(build-sanitize/meson-logs/testlog.json)
fi

python3 tools/test-summary.py "${summaries[@]}" || status=1
exit $status
