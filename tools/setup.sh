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
	# The QEMU guest tests: a static busybox for the initramfs, cpio to pack
	# it, binutils (readelf) to find the guest tools' libraries; the kernels,
	# alsa-utils and their libraries are fetched with apt-get download.
	# QEMU itself comes from bookworm-backports, below.
	packages+=(busybox-static cpio gzip xz-utils binutils)
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

[[ "${1:-}" == "--tests" ]] || exit 0

# QEMU 10 (vhost-user-snd-pci) and the guest's 6.12 kernel (virtio_snd) are
# in bookworm-backports. Add that suite when no apt source has it, on the
# same archive as the machine's own bookworm source (never a fixed host),
# at its default priority (100), so nothing is upgraded from it unless asked.
suite_uri() { # the archive URI of apt suite $1, empty if no source has it
	apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
		awk -v s="$1" '$2 == s { print $1; exit }'
}
if [[ -z $(suite_uri bookworm-backports) ]]; then
	uri=$(suite_uri bookworm)
	[[ -n $uri ]] || { echo "setup: no bookworm apt source to derive bookworm-backports from" >&2; exit 1; }
	echo "setup: adding bookworm-backports ($uri)"
	printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" |
		"${sudo[@]}" tee /etc/apt/sources.list.d/vhostpp-backports.sources >/dev/null
	"${sudo[@]}" apt-get update -qq
fi
# Only QEMU from backports, with just the three packages it needs from there
# (qemu-system-common, qemu-system-data, seabios), each named: apt does not
# take a dependency's backports version on its own (it reports "held broken
# packages"); `-t bookworm-backports` would raise every candidate and pull
# Mesa and more from backports.
qemu_version=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true)
if [[ $qemu_version != *bpo12* ]]; then
	echo "setup: installing qemu-system-x86 from bookworm-backports"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		qemu-system-x86/bookworm-backports qemu-system-common/bookworm-backports \
		qemu-system-data/bookworm-backports seabios/bookworm-backports
fi
