#!/bin/bash
# Build (or reuse) a tiny Linux guest for the QEMU tests.
#
#   build-guest.sh OUTDIR [--sound]
#
# Produces OUTDIR/vmlinuz and OUTDIR/initrd.gz:
#   * the kernel is Debian's linux-image-<ver>-amd64 (the package the
#     linux-image-amd64 metapackage depends on: bookworm's 6.1 for the rng
#     guest, bookworm-backports' 6.12 with --sound, the first with
#     virtio_snd), fetched with `apt-get download` and unpacked with
#     `dpkg -x` -- nothing is installed on the host;
#   * the initramfs (cpio newc, gzip) holds busybox (static), the virtio modules
#     the guest needs (plus their dependencies, in load order) and our /init:
#     guest-init.sh (virtio-rng) or, with --sound, guest-snd-init.sh plus
#     aplay, arecord and amixer with their shared libraries and alsa-lib's
#     configuration, all from Debian's packages (alsa-utils, libasound2,
#     libasound2-data, libc6), downloaded and unpacked the same way.
#
# If OUTDIR already holds a complete result built from the same inputs
# (this script, the /init script, guest-lib.sh, the mode), it is reused and nothing is
# downloaded.
# Prints the two paths on the last two lines of stdout:
#   KERNEL=<path>
#   INITRD=<path>
# Exit status: 0 ok, 77 if a prerequisite cannot be had (apt-get, dpkg, cpio
# missing; the kernel or busybox-static package cannot be downloaded), 1 on
# other errors.

set -euo pipefail

die() { echo "build-guest: error: $*" >&2; exit 1; }
missing() { echo "build-guest: missing prerequisite: $*" >&2; exit 77; }
log() { echo "build-guest: $*" >&2; }

[ $# -eq 1 ] || { [ $# -eq 2 ] && [ "$2" = --sound ]; } ||
    { echo "usage: $0 OUTDIR [--sound]" >&2; exit 2; }
OUTDIR=$1
SOUND=0
[ $# -eq 2 ] && SOUND=1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INIT_SRC=$HERE/guest-init.sh
[ $SOUND -eq 1 ] && INIT_SRC=$HERE/guest-snd-init.sh
[ -f "$INIT_SRC" ] || die "missing $INIT_SRC"

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

# Virtio modules the guest needs: a virtio-rng device on PCI, or a
# virtio-sound device plus a virtio-blk disk (the sound test's capture
# results travel to the host on it).  Their dependencies are resolved from
# the modules' own `depends=` modinfo field, because the unpacked (not
# installed) package ships no modules.dep.
WANTED_MODULES="virtio_pci virtio_rng"
[ $SOUND -eq 1 ] && WANTED_MODULES="virtio_pci virtio_blk virtio_snd"
# apt suite of the kernel package: bookworm's default, or backports for 6.12
KSUITE=
[ $SOUND -eq 1 ] && KSUITE=bookworm-backports

# ---- cache check ----------------------------------------------------------
LIB_SRC=$HERE/guest-lib.sh
inputs_hash=$( (cat "$0" "$INIT_SRC" "$LIB_SRC"; echo "sound=$SOUND") | sha256sum | cut -d' ' -f1)
stamp=$OUTDIR/guest.stamp
if [ -f "$stamp" ] && [ -s "$OUTDIR/vmlinuz" ] && [ -s "$OUTDIR/initrd.gz" ] &&
   grep -qx "inputs=$inputs_hash" "$stamp"; then
    log "reusing guest in $OUTDIR ($(grep '^kernel_pkg=' "$stamp"))"
    echo "KERNEL=$OUTDIR/vmlinuz"
    echo "INITRD=$OUTDIR/initrd.gz"
    exit 0
fi

tools="apt-get apt-cache dpkg dpkg-deb cpio gzip find sort"
[ $SOUND -eq 1 ] && tools="$tools readelf"
for tool in $tools; do
    command -v "$tool" >/dev/null 2>&1 || missing "$tool"
done

# ---- busybox (must be static: the initramfs has no libc) -------------------
is_static() {
    # A static ELF has no program interpreter (PT_INTERP), whose path string
    # ("/lib64/ld-linux-x86-64.so.2" etc.) sits in the first page of the file.
    [ -x "$1" ] || return 1
    if command -v readelf >/dev/null 2>&1; then
        ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'program interpreter'
    else
        ! head -c 4096 "$1" | grep -qa '/ld-'
    fi
}

WORK=$OUTDIR/work
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

BUSYBOX=""
for cand in /bin/busybox /usr/bin/busybox; do
    if [ -x "$cand" ] && is_static "$cand"; then BUSYBOX=$cand; break; fi
done
if [ -z "$BUSYBOX" ]; then
    log "no static busybox on the host; fetching busybox-static with apt-get download"
    (cd "$WORK" && apt-get download busybox-static >&2) ||
        (apt-get update >&2 && cd "$WORK" && apt-get download busybox-static >&2) ||
        missing "busybox-static (apt-get download failed)"
    dpkg -x "$WORK"/busybox-static_*.deb "$WORK/bb"
    BUSYBOX=$WORK/bb/bin/busybox
    [ -x "$BUSYBOX" ] || die "busybox-static package has no bin/busybox"
fi
log "busybox: $BUSYBOX"

# ---- kernel package --------------------------------------------------------
resolve_kernel_pkg() {
    # linux-image-amd64 -> "Depends: linux-image-6.1.0-NN-amd64"
    if [ -n "$KSUITE" ]; then
        apt-cache show "linux-image-amd64/$KSUITE" 2>/dev/null |
            sed -n 's/^Depends: \(linux-image-[0-9][^ ,]*\).*/\1/p' | head -n 1
    else
        apt-cache depends linux-image-amd64 2>/dev/null |
            sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
    fi
}

kpkg=$(resolve_kernel_pkg || true)
if [ -z "$kpkg" ]; then
    log "apt-cache does not know linux-image-amd64; running apt-get update"
    apt-get update >&2 || missing "apt-get update failed"
    kpkg=$(resolve_kernel_pkg || true)
    [ -n "$kpkg" ] || missing "cannot resolve the kernel package behind linux-image-amd64"
fi
log "kernel package: $kpkg"

if ! (cd "$WORK" && apt-get download "$kpkg" >&2); then
    log "apt-get download $kpkg failed; running apt-get update and retrying"
    apt-get update >&2 || missing "apt-get update failed"
    kpkg=$(resolve_kernel_pkg || true)
    [ -n "$kpkg" ] || missing "cannot resolve the kernel package behind linux-image-amd64"
    (cd "$WORK" && apt-get download "$kpkg" >&2) || missing "kernel package $kpkg (apt-get download failed)"
fi
deb=$(ls "$WORK"/"$kpkg"_*.deb | head -n 1)
kver_pkg=$(dpkg-deb -f "$deb" Version)
log "unpacking $(basename "$deb")"
dpkg -x "$deb" "$WORK/k"
rm -f "$deb"

vmlinuz=$(ls "$WORK"/k/boot/vmlinuz-* 2>/dev/null | head -n 1)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $kpkg"
kver=${vmlinuz##*/vmlinuz-}
MODDIR=$WORK/k/lib/modules/$kver
[ -d "$MODDIR" ] || die "no lib/modules/$kver in $kpkg"

# ---- module dependency resolution -----------------------------------------
# name (dashes -> underscores) of a module file path
modname() { local b=${1##*/}; b=${b%%.ko*}; echo "${b//-/_}"; }

declare -A MODPATH=() BUILTIN=()
while IFS= read -r p; do
    MODPATH[$(modname "$p")]=$p
done < <(cd "$MODDIR" && find kernel -name '*.ko*' | sort)
if [ -f "$MODDIR/modules.builtin" ]; then
    while IFS= read -r p; do
        BUILTIN[$(modname "$p")]=1
    done < "$MODDIR/modules.builtin"
fi

# Decompress into the staging dir if needed; print the staged file name.
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,dev,proc,sys,tmp,lib/modules}
stage_module() {
    local name=$1 src=$MODDIR/${MODPATH[$1]} dst=$ROOT/lib/modules/$1.ko
    case "$src" in
        *.ko) cp "$src" "$dst" ;;
        *.ko.xz) xz -dc "$src" > "$dst" || die "xz failed on $src" ;;
        *.ko.zst) zstd -qdc "$src" > "$dst" || die "zstd failed on $src" ;;
        *.ko.gz) gzip -dc "$src" > "$dst" || die "gzip failed on $src" ;;
        *) die "unknown module format: $src" ;;
    esac
}

mod_depends() {
    # The .modinfo section holds NUL-separated "key=value" strings; names
    # there may use dashes (6.12: "snd-pcm") where the file names use _.
    tr '\0' '\n' < "$ROOT/lib/modules/$1.ko" | sed -n 's/^depends=//p' | head -n 1 | tr ',-' ' _'
}

declare -A VISITED=()
LOAD_ORDER=()
visit() {
    local name=$1 dep
    [ -n "${VISITED[$name]:-}" ] && return 0
    VISITED[$name]=1
    if [ -n "${BUILTIN[$name]:-}" ]; then
        log "module $name is built into the kernel"
        return 0
    fi
    [ -n "${MODPATH[$name]:-}" ] || die "module $name not found in $kpkg"
    stage_module "$name"
    for dep in $(mod_depends "$name"); do
        visit "$dep"
    done
    LOAD_ORDER+=("$name")     # post-order: dependencies first
}
for m in $WANTED_MODULES; do visit "$m"; done
printf '%s\n' "${LOAD_ORDER[@]}" > "$ROOT/lib/modules/load-order"
log "module load order: ${LOAD_ORDER[*]}"

# ---- alsa-utils and its libraries (--sound) ---------------------------------
# aplay, arecord and amixer from Debian's alsa-utils, every shared library
# they need (found through their ELF NEEDED entries, recursively, in the
# unpacked packages only: a library missing there is an error, not something
# quietly taken from the host) and alsa-lib's configuration, which
# snd_pcm_open("hw:0,0") reads.
USERLAND_PKGS="alsa-utils libasound2 libasound2-data libc6"
stage_alsa_utils() {
    local u=$WORK/u p deb
    mkdir -p "$u"
    for p in $USERLAND_PKGS; do
        (cd "$WORK" && apt-get download "$p" >&2) || missing "$p (apt-get download failed)"
        deb=$(ls "$WORK"/"$p"_*.deb | head -n 1)
        dpkg -x "$deb" "$u"
        rm -f "$deb"
    done
    mkdir -p "$ROOT/lib64" "$ROOT/usr/lib/x86_64-linux-gnu" "$ROOT/usr/share"
    cp -r "$u/usr/share/alsa" "$ROOT/usr/share/alsa"
    declare -A have=()
    local todo=() f lib found d
    for f in aplay arecord amixer; do
        [ -x "$u/usr/bin/$f" ] || die "alsa-utils has no usr/bin/$f"
        cp "$u/usr/bin/$f" "$ROOT/bin/$f"
        todo+=("$u/usr/bin/$f")
    done
    # the program interpreter the binaries name
    cp -L "$u/lib64/ld-linux-x86-64.so.2" "$ROOT/lib64/" ||
        die "libc6 has no lib64/ld-linux-x86-64.so.2"
    while [ ${#todo[@]} -gt 0 ]; do
        f=${todo[0]}; todo=("${todo[@]:1}")
        for lib in $(LC_ALL=C readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            [ -n "${have[$lib]:-}" ] && continue
            found=
            for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
                if [ -e "$u/$d/$lib" ]; then found=$u/$d/$lib; break; fi
            done
            [ -n "$found" ] || die "$lib (needed by ${f##*/}) is in none of: $USERLAND_PKGS"
            cp -L "$found" "$ROOT/usr/lib/x86_64-linux-gnu/$lib"
            have[$lib]=1
            todo+=("$found")
        done
    done
    log "alsa-utils: aplay arecord amixer with ${!have[*]}"
}

# ---- initramfs -------------------------------------------------------------
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$ROOT/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$ROOT/bin/$applet"
done
ln -s bin "$ROOT/sbin"
if [ $SOUND -eq 1 ]; then
    stage_alsa_utils
fi
cp "$INIT_SRC" "$ROOT/init"
cp "$LIB_SRC" "$ROOT/lib/guest-lib.sh"
chmod 755 "$ROOT/init"
echo "$kpkg $kver_pkg ($kver)" > "$ROOT/kernel-package"

(cd "$ROOT" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 > "$WORK/initrd.gz"
cp "$vmlinuz" "$WORK/vmlinuz"

# Install atomically-ish: stamp last, so an interrupted build is not reused.
rm -f "$stamp"
mv -f "$WORK/vmlinuz" "$OUTDIR/vmlinuz"
mv -f "$WORK/initrd.gz" "$OUTDIR/initrd.gz"
{
    echo "inputs=$inputs_hash"
    echo "kernel_pkg=$kpkg $kver_pkg"
    echo "kernel_release=$kver"
    echo "modules=${LOAD_ORDER[*]}"
} > "$stamp"
log "guest ready in $OUTDIR ($kpkg $kver_pkg)"
echo "KERNEL=$OUTDIR/vmlinuz"
echo "INITRD=$OUTDIR/initrd.gz"
