#!/usr/bin/env bash
# Set up, build and run the main job: the vhost-sound daemon with the null
# audio back-end, listening on $VHOST_SOUND_SOCKET (default /tmp/vhost-sound.sock).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
[[ -d build ]] || meson setup build
ninja -C build

socket=${VHOST_SOUND_SOCKET:-/tmp/vhost-sound.sock}
echo "run: starting vhost-sound on $socket (Ctrl-C stops it)"
exec build/vhost-sound/vhost-sound --socket "$socket" --backend null \
	--control-socket "${socket%.sock}.ctl" "$@"
