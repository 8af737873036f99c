#!/bin/sh
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# The installed device API stands alone: install the build into a scratch
# DESTDIR, build the rng example against it with `pkg-config vhostpp` only,
# and check what was installed: no internal header, front-end headers only
# under vhostpp/frontend/ (and no testing hooks).
#
# usage: check_installed.sh BUILD_DIR RNG_SOURCE CXX
set -eu
build=$1
rng=$2
cxx=$3

dest=$(mktemp -d "${TMPDIR:-/tmp}/vhostpp-install-XXXXXX")
trap 'rm -rf "$dest"' EXIT

meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$dest.log" 2>&1 || {
	cat "$dest.log"; rm -f "$dest.log"; echo "FAIL: meson install"; exit 1; }
rm -f "$dest.log"

fail=0
pc=$(find "$dest" -name vhostpp.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: no vhostpp.pc installed"; exit 1; }
[ -n "$(find "$dest" -name vhostpp-frontend.pc)" ] || { echo "FAIL: no vhostpp-frontend.pc"; fail=1; }

inc=$(find "$dest" -type d -path '*/include/vhostpp' | head -n 1)
[ -n "$inc" ] || { echo "FAIL: no include/vhostpp installed"; exit 1; }
if [ -n "$(find "$inc" -path '*internal*')" ]; then
	echo "FAIL: internal headers installed:"; find "$inc" -path '*internal*'; fail=1
fi
# Front-end headers only under vhostpp/frontend/; the core set names none.
for h in frontend.h driver_memory.h driver_queue.h device_driver.h; do
	if [ -e "$inc/$h" ]; then echo "FAIL: $inc/$h installed outside vhostpp/frontend/"; fail=1; fi
done
if [ -e "$inc/frontend/testing.h" ]; then echo "FAIL: frontend/testing.h installed"; fail=1; fi
if grep -l '^#include.*internal/' "$inc"/*.h "$inc"/frontend/*.h 2>/dev/null; then
	echo "FAIL: an installed header includes an internal one"; fail=1
fi

# Build the example with the installed tree only: the source tree's
# include directories are nowhere on the command line.
# The installed .pc files first; the system's own (fmt, which vhostpp.pc
# names for static linking) after them.
PKG_CONFIG_SYSROOT_DIR=$dest
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH
flags=$(pkg-config --cflags --libs vhostpp)
echo "pkg-config vhostpp: $flags"
out=$dest/rng
# shellcheck disable=SC2086
"$cxx" -std=c++20 -Wall -Wextra -Werror -o "$out" "$rng" $flags -lboost_program_options || {
	echo "FAIL: the rng example does not build against the installed headers"; exit 1; }
libdir=$(pkg-config --libs-only-L vhostpp | sed 's/^ *-L//; s/ .*//')
LD_LIBRARY_PATH=$libdir "$out" --help >/dev/null || { echo "FAIL: the example does not run"; fail=1; }

# The front-end headers stand alone too.
printf '#include <vhostpp/frontend/device_driver.h>\nint main() { return 0; }\n' >"$dest/fe.cpp"
# shellcheck disable=SC2086
"$cxx" -std=c++20 -Wall -Wextra -Werror -o "$dest/fe" "$dest/fe.cpp" \
	$(pkg-config --cflags --libs vhostpp-frontend) || {
	echo "FAIL: vhostpp/frontend/device_driver.h does not build installed"; fail=1; }

[ $fail -eq 0 ] && echo "installed headers: OK"
exit $fail
