# Sourced by both guests' /init (guest-init.sh, guest-snd-init.sh) from
# /lib/guest-lib.sh: the mounts, the console report helpers, module loading.

PATH=/bin
export PATH

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Keep kernel messages off the console so they cannot split our report lines.
echo 1 > /proc/sys/kernel/printk

up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "$*"; }
fail() {
    say "VHTEST-FAIL $*"
    poweroff -f
    sleep 3600
}
# The modules build-guest.sh staged, dependencies first.
load_modules() {
    for m in $(cat /lib/modules/load-order); do
        insmod /lib/modules/$m.ko || fail "insmod $m"
    done
    say "VHTEST-INFO modules-loaded $(up)"
}
