#!/bin/sh
# /init of the vhostpp QEMU test guest (busybox only).
#
# Reads the virtio-rng device through /dev/hwrng and reports on the serial
# console in lines the host parses (every report line starts with "HWRNG-"
# or "VHTEST-"):
#
#   VHTEST-INIT <uptime>                     init started
#   VHTEST-INFO <key> <value...>             diagnostics (rng_current, ...)
#   VHTEST-HWRNG-READY <uptime>              /dev/hwrng exists
#   HWRNG-FIRST <hex of the first 32 bytes>  (of the main read)
#   HWRNG-SHA256 <nbytes> <sha256 hex>       of the main read
#   HWRNG-BREAKS <max> <count> <list>        run structure of the main read
#   HWRNG-TIME <ms>                          time taken by the main read
#   HWRNG-SPAN <uptime start> <uptime end>   of the main read
#   HWRNG-DONE
#   HWRNG-CHUNK <n> <len> <hex first 16 bytes> <hex last byte> <sha256> <max> <count> <list> <uptime start> <uptime end>
#   VHTEST-POWEROFF <uptime>
#   VHTEST-FAIL <reason>                     something went wrong in the guest
#
# Run structure: <max> is the largest byte value seen; a "break" is a byte
# b[i] that is not (b[i-1]+1) % 251; <list> is "-" or comma-separated
# "<offset>:<prev>:<byte>" for every break (at most 200 are listed, <count>
# is always exact).  The host uses it to tell bytes taken by the kernel's own
# hwrng thread (short forward skips) from real corruption, and re-derives the
# expected SHA-256 from it, so the list cannot hide anything.
#
# Kernel command line knobs (all optional):
#   vhtest.bytes=N     size of the main read            (default 65536)
#   vhtest.analyze=0|1 run-structure analysis in guest   (default 1)
#   vhtest.chunk=N     size of each loop read            (default 4096)
#   vhtest.chunks=N    number of loop reads; -1 = until powered off (default 0)
#   vhtest.wait=N      seconds to wait for /dev/hwrng    (default 60)
#   vhtest.quality=N   if set, written to /sys/class/misc/hw_random/rng_quality

. /lib/guest-lib.sh
up_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
hex() { od -An -v -tx1 | tr -d ' \n'; }
# rd FILE N: read exactly N bytes of /dev/hwrng with ONE read(2) (the hwrng
# core loops until the request is filled).  Not `head -c`: it reads through a
# stdio buffer and would throw away device bytes beyond N.
rd() { dd if=/dev/hwrng of="$1" bs="$2" count=1 iflag=fullblock 2>/dev/null; }
# Print "<max> <count> <list>" for FILE (see the run-structure note above).
runs() {
    od -An -v -tu1 "$1" | awk '
        BEGIN { n = 0; max = 0; breaks = 0; list = "" }
        { for (i = 1; i <= NF; i++) {
              b = $i + 0
              if (b > max) max = b
              if (n > 0 && b != (prev + 1) % 251) {
                  breaks++
                  if (breaks <= 200)
                      list = list (list == "" ? "" : ",") n ":" prev ":" b
              }
              prev = b; n++
          } }
        END { printf "%d %d %s\n", max, breaks, (list == "" ? "-" : list) }'
}

say "VHTEST-INIT $(up)"

BYTES=65536
ANALYZE=1
CHUNK=4096
CHUNKS=0
WAIT=60
QUALITY=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        vhtest.bytes=*) BYTES=${arg#*=} ;;
        vhtest.analyze=*) ANALYZE=${arg#*=} ;;
        vhtest.chunk=*) CHUNK=${arg#*=} ;;
        vhtest.chunks=*) CHUNKS=${arg#*=} ;;
        vhtest.wait=*) WAIT=${arg#*=} ;;
        vhtest.quality=*) QUALITY=${arg#*=} ;;
    esac
done
say "VHTEST-INFO config bytes=$BYTES analyze=$ANALYZE chunk=$CHUNK chunks=$CHUNKS"
say "VHTEST-INFO kernel $(uname -r) $(cat /kernel-package)"

load_modules

# Poll (bounded) for the device node; the driver creates it asynchronously.
tries=$((WAIT * 10))
while [ ! -c /dev/hwrng ]; do
    tries=$((tries - 1))
    [ $tries -gt 0 ] || fail "no /dev/hwrng after ${WAIT}s"
    sleep 0.1
done
say "VHTEST-HWRNG-READY $(up)"

HWR=/sys/class/misc/hw_random
if [ -n "$QUALITY" ] && [ -e $HWR/rng_quality ]; then
    echo "$QUALITY" > $HWR/rng_quality || say "VHTEST-INFO cannot-set-rng_quality"
fi
for f in rng_available rng_current rng_quality; do
    [ -e $HWR/$f ] && say "VHTEST-INFO $f $(cat $HWR/$f)"
done
for f in default_quality current_quality; do
    [ -e /sys/module/rng_core/parameters/$f ] &&
        say "VHTEST-INFO rng_core.$f $(cat /sys/module/rng_core/parameters/$f)"
done
# Is the kernel's hwrng feeder thread (it would consume device bytes) running?
kthread=none
for c in /proc/[0-9]*/comm; do
    [ "$(cat $c 2>/dev/null)" = hwrng ] && kthread=running
done
say "VHTEST-INFO hwrng-kthread $kthread"

# ---- main read -------------------------------------------------------------
t0=$(up_ms); s0=$(up)
rd /tmp/main.bin "$BYTES" || fail "reading /dev/hwrng"
t1=$(up_ms); s1=$(up)
got=$(wc -c < /tmp/main.bin)
[ "$got" -eq "$BYTES" ] || fail "short read: $got of $BYTES bytes"
say "HWRNG-FIRST $(head -c 32 /tmp/main.bin | hex)"
say "HWRNG-SHA256 $got $(sha256sum /tmp/main.bin | cut -d' ' -f1)"
if [ "$ANALYZE" = 1 ]; then
    say "HWRNG-BREAKS $(runs /tmp/main.bin)"
fi
say "HWRNG-TIME $((t1 - t0))"
say "HWRNG-SPAN $s0 $s1"
say "HWRNG-DONE"

# ---- loop reads (reconnect test) ------------------------------------------
n=0
while [ "$CHUNKS" -lt 0 ] || [ "$n" -lt "$CHUNKS" ]; do
    c0=$(up)
    rd /tmp/chunk.bin "$CHUNK" || say "VHTEST-INFO chunk-read-error"
    c1=$(up)
    n=$((n + 1))
    if [ "$ANALYZE" = 1 ]; then r=$(runs /tmp/chunk.bin); else r="- - -"; fi
    say "HWRNG-CHUNK $n $(wc -c < /tmp/chunk.bin) $(head -c 16 /tmp/chunk.bin | hex) $(tail -c 1 /tmp/chunk.bin | hex) $(sha256sum /tmp/chunk.bin | cut -d' ' -f1) $r $c0 $c1"
done

say "VHTEST-POWEROFF $(up)"
poweroff -f
sleep 3600
