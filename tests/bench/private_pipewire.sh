#!/bin/sh
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
# private_pipewire.sh: sourced by the benchmark scripts. A private PipeWire
# (Debian's pipewire + wireplumber) with the tests' configuration
# (tests/pipewire: null sinks test-sink and test-sink-2 whose monitor ports
# exist, a null source, no sound card, no D-Bus) on a private
# XDG_RUNTIME_DIR, so every client the script starts finds only it.
#
# pw_start DIR: start it in DIR (made by the caller); sets PW_PID, WP_PID.
# The sourcing script sets here= to tests/bench (the configuration is in
# ../pipewire).
# pw_stop: stop what pw_start started (by pid), idempotent.
# pw_available: true when the programs are installed.

pw_available() {
	command -v pipewire >/dev/null 2>&1 && command -v wireplumber >/dev/null 2>&1 &&
		command -v pw-metadata >/dev/null 2>&1
}

# pw_wait SECONDS COMMAND...: poll COMMAND every 50 ms until it succeeds.
pw_wait() {
	_n=$(($1 * 20))
	shift
	while [ "$_n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
		_n=$((_n - 1))
	done
	return 1
}

pw_default_sink_is() {
	pw-metadata -n default 0 default.audio.sink 2>/dev/null | grep -q "\"$1\""
}

pw_start() {
	_pwdir=$1
	_conf=$(CDPATH= cd -- "${here:?the sourcing script sets here}/../pipewire" && pwd)
	mkdir -p "$_pwdir/run" "$_pwdir/state" "$_pwdir/config"
	chmod 700 "$_pwdir/run"
	export XDG_RUNTIME_DIR="$_pwdir/run" XDG_STATE_HOME="$_pwdir/state" \
		XDG_CONFIG_HOME="$_pwdir/config" WIREPLUMBER_CONFIG_DIR="$_conf/wireplumber"
	unset PIPEWIRE_RUNTIME_DIR PIPEWIRE_REMOTE DBUS_SESSION_BUS_ADDRESS
	pipewire -c "$_conf/pipewire.conf" >"$_pwdir/pipewire.log" 2>&1 &
	PW_PID=$!
	if ! pw_wait 20 test -S "$_pwdir/run/pipewire-0"; then
		echo "private PipeWire: no socket after 20 s" >&2
		return 1
	fi
	wireplumber -c wireplumber.conf >"$_pwdir/wireplumber.log" 2>&1 &
	WP_PID=$!
	# WirePlumber links streams once it has chosen the default sink.
	if ! pw_wait 20 pw_default_sink_is test-sink; then
		echo "private PipeWire: WirePlumber chose no default sink in 20 s" >&2
		return 1
	fi
}

pw_stop() {
	for _p in ${WP_PID:-} ${PW_PID:-}; do
		kill "$_p" 2>/dev/null && wait "$_p" 2>/dev/null
	done
	WP_PID= PW_PID=
}
