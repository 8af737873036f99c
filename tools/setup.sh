#!/usr/bin/env bash
# Install what building and testing vhostpp needs on Debian 12, and nothing
# that is already there. Runs apt-get as root, or through sudo.
set -euo pipefail

packages=(
	g++ meson ninja-build pkg-config python3
	libboost-dev libboost-program-options-dev
	libspdlog-dev libfmt-dev catch2 nlohmann-json3-dev scdoc
	libasound2-dev libpipewire-0.3-dev
)
if [[ "${1:-}" == "--tests" ]]; then
	# The QEMU guest test: an emulator, a static busybox for the initramfs,
	# cpio to pack it; the kernel package itself is fetched with apt-get download.
	packages+=(qemu-system-x86 busybox-static cpio gzip xz-utils)
	# The fuzz targets: clang with libFuzzer and the sanitizer runtimes.
	packages+=(clang libclang-rt-dev)
	# The PipeWire back-end's tests: a private daemon, its session manager,
	# its clients (pw-dump, pw-record, pw-cat), and JSON for pw-dump.
	packages+=(pipewire pipewire-bin wireplumber libspa-0.2-modules)
	# The file back-end's tests read its WAV files back with independent
	# readers: sox/soxi, and libsndfile through Python's ctypes.
	packages+=(sox libsndfile1)
	# The control tests: systemd-analyze and systemd-socket-activate (the
	# units, LISTEN_FDS); setpriv and unshare (foreign uids, the sandbox).
	packages+=(systemd util-linux)
	# The ALSA back-end's tests: alsa-lib's file/null/linear/copy plugins come
	# with libasound2; the a52 plugin (a PCM that refuses rates) with
	# libasound2-plugins; aplay/arecord for trying a configuration by hand.
	# The clocked-PCM case: a private PipeWire with WirePlumber (in a private
	# D-Bus session) and PipeWire's ALSA plugin.
	packages+=(alsa-utils libasound2-plugins pipewire-bin wireplumber pipewire-alsa dbus-daemon)
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)

# The guest test downloads Debian's kernel package, so it needs package lists too.
need_lists=0
[[ ${#missing[@]} -gt 0 ]] && need_lists=1
if [[ "${1:-}" == "--tests" ]] && ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
	need_lists=1
fi

if [[ $need_lists -eq 1 ]]; then
	echo "setup: updating package lists"
	"${sudo[@]}" apt-get update -qq
fi
if [[ ${#missing[@]} -gt 0 ]]; then
	echo "setup: installing ${missing[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
	echo "setup: all build packages present"
fi
