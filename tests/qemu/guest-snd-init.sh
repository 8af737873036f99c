#!/bin/sh
# /init of the vhostpp QEMU sound test guest (busybox + alsa-utils).
#
# Loads virtio_pci, virtio_blk and virtio_snd, waits for the card, then runs
# the host's commands: each line the host writes to the second serial port
# (/dev/ttyS1) is "<id> <shell command>"; the command runs with sh -c and
# its output and exit status come back on the console (ttyS0), so one boot
# serves every case.  Report lines (the host parses only these):
#
#   VHTEST-INIT <uptime>                  init started
#   VHTEST-INFO <key> <value...>          diagnostics
#   VHTEST-READY <uptime>                 card present, taking commands
#   VHTEST-BEGIN <id> <uptime>            command <id> starts
#   VHTEST-OUT <id> <line>                one line of its stdout + stderr
#   VHTEST-END <id> <status> <uptime>     it ended with exit status <status>
#   VHTEST-FAIL <reason>                  something went wrong in the guest
#
# The uptimes in BEGIN and END are read right before and right after the
# command, so END - BEGIN is the command's duration in guest time.
# Files the host adds to the initramfs (a second cpio archive) are in /pat;
# /dev/vda is a scratch disk the host reads back (captures).

. /lib/guest-lib.sh

say "VHTEST-INIT $(up)"
say "VHTEST-INFO kernel $(uname -r) $(cat /kernel-package)"
load_modules

# The driver creates the card asynchronously: poll, bounded.
tries=600
while [ ! -c /dev/snd/pcmC0D0p ] || [ ! -c /dev/snd/pcmC0D0c ]; do
    tries=$((tries - 1))
    [ $tries -gt 0 ] || fail "no /dev/snd/pcmC0D0p + pcmC0D0c after 60s ($(ls /dev/snd 2>&1 | tr '\n' ' '))"
    sleep 0.1
done
say "VHTEST-INFO cards $(tr '\n' '|' < /proc/asound/cards)"
[ -e /sys/block/vda ] || fail "no /dev/vda (virtio-blk scratch disk)"

stty -F /dev/ttyS1 raw -echo || fail "stty on /dev/ttyS1"
exec 3< /dev/ttyS1
say "VHTEST-READY $(up)"
while read -r id cmd <&3; do
    say "VHTEST-BEGIN $id $(up)"
    sh -c "$cmd" > /tmp/out 2>&1
    rc=$?
    t=$(up)
    sed "s/^/VHTEST-OUT $id /" /tmp/out
    say "VHTEST-END $id $rc $t"
done
fail "command port /dev/ttyS1 closed"
