#!/usr/bin/env python3
"""Real-QEMU, real-Linux-guest test of a vhost-user RNG device.

    qemu_rng_test.py DEVICE WORKDIR [options]

DEVICE is the vhost-user-rng example binary; it is started as
``DEVICE --socket <path> --pattern``.  In --pattern mode byte k of the
device's whole output since the process started is ``k % 251``.

WORKDIR (normally the meson build dir of tests/qemu) caches the guest
(kernel + initramfs from build-guest.sh) and holds the run's logs.

What is checked (see README.md next to this file for the details):
  1. the guest boots (TCG, no KVM), loads virtio_pci + virtio_rng and reads
     /dev/hwrng: the main read must be the pattern, i.e. exactly the bytes
     re-derived from its first byte and the breaks the guest reports, and
     every break must be a short forward skip (bytes consumed by the guest
     kernel's own "hwrng" thread), never anything else;
  2. reconnect: while the guest keeps reading, the device is SIGKILLed and
     started again on the same socket; QEMU must reconnect, the new device
     must accept the connection and keep running, and the test reports
     whether the guest's reads resume (they must, unless --allow-no-resume).

--expect-qemu72-mem-slots-failure replaces the second half of step 2 by the
exact QEMU 7.2 failure seen when CONFIGURE_MEM_SLOTS was negotiated on the
first connection: QEMU reconnects (every second) but never sends the memory
regions again, the restarted device refuses SET_VRING_ADDR and closes the
connection, and QEMU either keeps reconnecting or aborts on an assertion in
msix_unset_vector_notifiers.  It checks QEMU's messages, the device's log,
that the device survives with a stable fd count, and FAILS if the guest's
reads resume (the expectation would then be stale).

Exit status: 0 pass, 1 fail, 77 skip (a prerequisite is missing; with the
CI environment variable set a missing prerequisite is a failure instead).

--builtin-rng-selftest[=pattern|gaps|random] replaces the vhost-user device
by QEMU's own virtio-rng fed from a generated file, to exercise the guest and
the checks without the device; "gaps" and "random" feed data that must FAIL.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# qemu_common and (with --trace) vhost_user_trace are imported from here:
# leave no __pycache__ in the source tree
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qemu_common import (Console, Proc, Qmp, Skip, TestFailure, build_guest,  # noqa: E402
                         chardev_connected, crashed, describe_rc, expect_vhost_ops_abort, fd_targets, log,
                         now, set_log_name, unix_socket_peers, wait_for, which_or_skip)
set_log_name("qemu-rng")
PATTERN_MOD = 251
# Bytes the guest may legitimately miss.  Linux 6.1's rng core runs a
# "hwrng" kernel thread as soon as a hw_random device registers; it cannot be
# disabled from user space (rng_quality=0 only stops entropy crediting).  Each
# time it wakes it reads ONE rng buffer (64 bytes on x86: SMP_CACHE_BYTES) from
# the same device, then sleeps for the crng reseed interval, which is never
# shorter than 1 s (max(1 s, uptime/2) early in boot, 60 s later).  So in any
# span of dt seconds of guest time it takes at most 64 * (1 + floor(dt))
# bytes.  Those show up in the guest's reads as short forward skips of the
# pattern; everything else (values >= 251, backward jumps, skips larger than
# the thread could have taken, more skips than it could have made) fails.
STEAL_UNIT = 64
STEAL_MIN_INTERVAL = 1.0
TIME_SLACK = 0.1


def steal_allowance(dt):
    return STEAL_UNIT * (1 + int(max(0.0, dt + TIME_SLACK) // STEAL_MIN_INTERVAL))
class PatternMismatch(TestFailure):
    """What the guest read is not the device's k % 251 stream."""


# --------------------------------------------------------------------------
# pattern checks

_PATTERN = bytes(range(PATTERN_MOD)) * 2


def pattern_run(first, length):
    """The contiguous pattern run of `length` bytes starting at value `first`."""
    out = bytearray()
    v = first
    while len(out) < length:
        take = min(length - len(out), PATTERN_MOD)
        out += _PATTERN[v:v + take]
        v = (v + take) % PATTERN_MOD
    return bytes(out)


def gap(prev, nxt):
    """How many pattern bytes are missing between `prev` and `nxt`."""
    return (nxt - prev - 1) % PATTERN_MOD


def parse_breaks(text):
    if text == "-":
        return []
    out = []
    for item in text.split(","):
        off, prev, byte = (int(x) for x in item.split(":"))
        out.append((off, prev, byte))
    return out


def rebuild(first, length, breaks):
    """Re-derive the bytes the guest must have read from its run structure."""
    out = bytearray()
    v = first
    pos = 0
    for off, prev, byte in breaks + [(length, None, None)]:
        if off < pos or off > length:
            raise PatternMismatch(f"break offset {off} out of order")
        seg = pattern_run(v, off - pos)
        out += seg
        if byte is None:
            break
        last = seg[-1] if seg else None
        if last != prev:
            raise PatternMismatch(
                f"break at {off}: guest says previous byte {prev}, "
                f"run structure gives {last}")
        v = byte
        pos = off
    return bytes(out)


class Block:
    """One read done by the guest (main read or a chunk), as it reported it."""

    def __init__(self, name, length, head_hex, sha, maxv, count, breaks,
                 last_hex=None, t_start=None, t_end=None, seen_at=None):
        self.name = name
        self.length = length
        self.head = bytes.fromhex(head_hex) if head_hex else b""
        self.sha = sha
        self.maxv = maxv
        self.count = count
        self.breaks = breaks
        self.last = bytes.fromhex(last_hex)[0] if last_hex else None
        self.t_start = t_start          # guest uptime around the read
        self.t_end = t_end
        self.seen_at = seen_at          # host monotonic time the line was seen
        self.first = self.head[0] if self.head else None
        self.steals = []                # (offset, prev, byte, skipped bytes)
        self.foreign = []               # breaks nothing explains, same form
        self.restart = None             # the device-restart break, if allowed

    def verify(self, allow_restart=False):
        """Check self-consistency and pattern-ness.  Returns the last byte.

        With allow_restart, one discontinuity of any size may be the device
        restart (the new process starts its stream at 0 again): self.restart.
        """
        if self.length <= 0:
            raise PatternMismatch(f"{self.name}: empty read")
        if self.maxv >= PATTERN_MOD:
            raise PatternMismatch(
                f"{self.name}: byte value {self.maxv} >= {PATTERN_MOD}: "
                "not the k%251 pattern")
        if self.count != len(self.breaks):
            raise PatternMismatch(
                f"{self.name}: {self.count} discontinuities (more than the guest "
                f"lists): not the pattern")
        if self.first >= PATTERN_MOD:
            raise PatternMismatch(f"{self.name}: first byte {self.first} >= {PATTERN_MOD}")
        expected = rebuild(self.first, self.length, self.breaks)
        if not expected.startswith(self.head):
            raise PatternMismatch(
                f"{self.name}: first bytes {self.head.hex()} are not the pattern "
                f"run {expected[:len(self.head)].hex()}")
        digest = hashlib.sha256(expected).hexdigest()
        if digest != self.sha:
            raise PatternMismatch(
                f"{self.name}: SHA-256 {self.sha} != {digest} expected for "
                f"{self.length} pattern bytes from value {self.first} with "
                f"{len(self.breaks)} reported break(s)")
        if self.last is not None and expected[-1] != self.last:
            raise PatternMismatch(f"{self.name}: last byte mismatch")
        self.classify(allow_restart)
        return expected[-1]

    def classify(self, allow_restart):
        """Sort the breaks into steals (explained by the guest's hwrng thread),
        at most one restart discontinuity (if allowed) and foreign ones."""
        allowance = steal_allowance(self.t_end - self.t_start)
        steals, foreign = [], []
        for off, prev, byte in self.breaks:
            g = gap(prev, byte)
            (steals if 1 <= g <= allowance else foreign).append((off, prev, byte, g))
        self.restart = None
        if allow_restart:
            if len(foreign) == 1:
                self.restart = foreign.pop()
            elif not foreign and sum(x[3] for x in steals) > allowance:
                # the biggest skip is the restart, the rest must be steals
                self.restart = max(steals, key=lambda x: x[3])
                steals.remove(self.restart)
        if sum(x[3] for x in steals) > allowance:
            # more than the hwrng thread could have taken in this time
            foreign += steals
            steals = []
        self.steals, self.foreign = steals, foreign
# --------------------------------------------------------------------------
# console report lines


def chunk_from(args, seen_at):
    # n len head16 last sha max count list t_start t_end
    if len(args) < 10:
        raise TestFailure(f"malformed HWRNG-CHUNK line: {' '.join(args)}")
    n, length, head, last, sha, maxv, count, lst, t0, t1 = args[:10]
    if maxv == "-":
        raise TestFailure("guest ran without run-structure analysis")
    return Block(f"chunk {n}", int(length), head, sha, int(maxv), int(count),
                 parse_breaks(lst), last_hex=last, t_start=float(t0),
                 t_end=float(t1), seen_at=seen_at)


# --------------------------------------------------------------------------
# --expect-qemu72-mem-slots-failure: what QEMU 7.2 and the restarted device
# must do when CONFIGURE_MEM_SLOTS was negotiated on the first connection

# The device's log lines: "[hh:mm:ss.mmm] [vhostpp] [level] message"
DEV_LINE_RE = re.compile(r"^\[(\d+):(\d+):(\d+(?:\.\d+)?)\] \[[^\]]*\] \[(\w+)\] (.*)$")
DEV_CONNECTED = "front-end connected"
DEV_DISCONNECTED = "front-end disconnected"
DEV_NO_MEM_RE = re.compile(r"^SET_VRING_ADDR: queue (\d+) before any memory table; "
                           r"closing the connection$")
DEV_NO_PROTO = "no SET_PROTOCOL_FEATURES on this connection (a reconnect)"


def device_connections(text):
    """Split a device log into the connections it accepted.

    Each is a dict: t (seconds since midnight), lines [(level, msg)], no_mem
    (queue index of the SET_VRING_ADDR refusal, or None), no_proto (it noted
    the missing SET_PROTOCOL_FEATURES), ended (refused or disconnected).
    Only complete lines are used."""
    conns = []
    text = text[:text.rfind("\n") + 1] if "\n" in text else ""
    for raw in text.splitlines():
        if not raw.strip():
            continue
        m = DEV_LINE_RE.match(raw.strip())
        if not m:
            if conns:
                conns[-1]["lines"].append(("?", raw.strip()))
            continue
        level, msg = m.group(4), m.group(5)
        if msg == DEV_CONNECTED:
            conns.append({"t": int(m.group(1)) * 3600 + int(m.group(2)) * 60
                          + float(m.group(3)), "lines": [], "no_mem": None,
                          "no_proto": False, "ended": False})
            continue
        if not conns:
            continue
        cur = conns[-1]
        cur["lines"].append((level, msg))
        mm = DEV_NO_MEM_RE.match(msg)
        if mm and level == "error":
            cur["no_mem"] = int(mm.group(1))
            cur["ended"] = True
        elif msg == DEV_DISCONNECTED:
            cur["ended"] = True
        elif DEV_NO_PROTO in msg and level == "warning":
            cur["no_proto"] = True
    return conns


def check_device_connection(i, conn):
    """The restarted device must refuse each connection exactly so: note the
    missing SET_PROTOCOL_FEATURES, then refuse SET_VRING_ADDR for lack of a
    memory table and close.  Raises TestFailure otherwise (ended only)."""
    if not conn["ended"]:
        return
    what = f"connection {i + 1} to the restarted device"
    bad = [f"[{lv}] {msg}" for lv, msg in conn["lines"]
           if lv in ("error", "critical", "?") and not DEV_NO_MEM_RE.match(msg)]
    if bad:
        raise TestFailure(f"{what}: unexpected device message(s): {bad[:4]}")
    if conn["no_mem"] is None:
        raise TestFailure(
            f"{what} ended WITHOUT the expected '[error] SET_VRING_ADDR: queue N before "
            "any memory table; closing the connection' (device said: "
            f"{[m for _, m in conn['lines']][:6]}): this is not the QEMU 7.2 "
            "CONFIGURE_MEM_SLOTS failure this mode expects")
    if not conn["no_proto"]:
        raise TestFailure(
            f"{what}: the device did not report that QEMU skipped "
            "SET_PROTOCOL_FEATURES on the reconnect (expected its warning "
            f"'...{DEV_NO_PROTO}...')")


QEMU_MSG_RE = re.compile(r"^\S*qemu[^\s:]*: (.*)$")
QEMU_EOF = "Unexpected end-of-file before all data were read"
# printed by vhost_dev_stop() each time the chardev closes under a started
# vhost device (the messages cannot be sent on the closed socket)
QEMU_STOP_GROUP = ("Failed to set msg fds.",
                   "Failed to set msg fds.",
                   "vhost VQ 0 ring restore failed: -22: Invalid argument (22)",
                   "Failed to set msg fds.",
                   "vhost_set_vring_call failed: Invalid argument (22)")
QEMU_WRITE_FAIL_RE = re.compile(r"^Failed to write msg\. Wrote -?\d+ instead of \d+\.$")
QEMU_OP_FAIL_RE = re.compile(r"^vhost_\w+ failed: .*\(\d+\)$")
QEMU_ERROR_STARTING = "Error starting vhost-user-rng: 5"
QEMU_MSIX_ASSERT_RE = re.compile(
    r"msix\.c:\d+: msix_unset_vector_notifiers: Assertion "
    r"`dev->msix_vector_use_notifier && dev->msix_vector_release_notifier' failed\.$")


def parse_qemu_after_kill(text):
    """Sort QEMU's messages since the device was killed into what QEMU 7.2
    prints in this failure: one end-of-file (the back-end channel of the
    killed process), one QEMU_STOP_GROUP per closed connection, and possibly
    the fatal tail (a failed write, 'Error starting vhost-user-rng: 5', the
    msix assertion).  Everything else is 'unexpected'."""
    msgs = []
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw:
            continue
        m = QEMU_MSG_RE.match(raw)
        msgs.append(m.group(1) if m else raw)
    r = {"eof": msgs.count(QEMU_EOF), "groups": 0, "partial": [], "fatal": None,
         "fatal_ok": False, "unexpected": [], "n": len(msgs)}
    msgs = [x for x in msgs if x != QEMU_EOF]
    i = 0
    while i < len(msgs):
        if tuple(msgs[i:i + len(QEMU_STOP_GROUP)]) == QEMU_STOP_GROUP:
            r["groups"] += 1
            i += len(QEMU_STOP_GROUP)
            continue
        if QEMU_WRITE_FAIL_RE.match(msgs[i]):
            tail = msgs[i:]
            r["fatal"] = tail
            j = 1
            if j < len(tail) and QEMU_OP_FAIL_RE.match(tail[j]):
                j += 1
            r["fatal_ok"] = (len(tail) == j + 2 and tail[j] == QEMU_ERROR_STARTING
                             and bool(QEMU_MSIX_ASSERT_RE.search(tail[j + 1])))
            break
        rest = tuple(msgs[i:])
        if len(rest) < len(QEMU_STOP_GROUP) and QEMU_STOP_GROUP[:len(rest)] == rest:
            r["partial"] = list(rest)        # a stop still being printed
            break
        r["unexpected"].append(msgs[i])
        i += 1
    return r


TRACE_LINE_RE = re.compile(r"^\s*[\d.]+ #(\d+) (.*)$")
# what a front-end sends to set up a back-end from scratch; QEMU 7.2 sends
# none of it on a reconnect
TRACE_NOT_ON_RECONNECT = ("GET_FEATURES", "GET_PROTOCOL_FEATURES", "SET_PROTOCOL_FEATURES",
                          "SET_OWNER", "SET_MEM_TABLE", "ADD_MEM_REG")
CONFIGURE_MEM_SLOTS_BIT = 15


def trace_connections(path):
    """vhost-user-trace.log -> {conn: {"connected", "closed", "q2d": [(name, args)]}}"""
    conns = {}
    with open(path) as f:
        for line in f:
            m = TRACE_LINE_RE.match(line)
            if not m:
                continue
            n, rest = int(m.group(1)), m.group(2)
            d = conns.setdefault(n, {"connected": False, "closed": False, "q2d": []})
            if rest.startswith("connected front-end"):
                d["connected"] = True
            elif "closing" in rest:
                d["closed"] = True
            elif rest.startswith("Q->D "):
                parts = rest.split(" ", 2)
                d["q2d"].append((parts[1], parts[2] if len(parts) > 2 else ""))
    return conns


def trace_first_connection(path):
    """(all connections, the first one, re match of its SET_PROTOCOL_FEATURES
    u64 or None) of a vhost-user-trace.log."""
    conns = trace_connections(path)
    first = conns.get(1)
    if not first:
        raise TestFailure("trace: no first connection")
    spf = [x for n, x in first["q2d"] if n == "SET_PROTOCOL_FEATURES"]
    return conns, first, re.search(r"u64=(0x[0-9a-f]+)", spf[0]) if spf else None


def make_pattern_file(path, kind, size):
    data = bytearray(pattern_run(0, size))
    if kind == "gaps":
        # drop 100 bytes every 8 KiB: a device that loses data
        out = bytearray()
        for i in range(0, len(data), 8192):
            out += data[i:i + 8192 - 100]
        data = out
    elif kind == "random":
        data = bytearray(os.urandom(size))
    with open(path, "wb") as f:
        f.write(data)


def rng_device_args(path, device_on_cmdline=False):
    """The vhost-user part of the test's QEMU command line (README.md shows
    it: readme_check.py compares)."""
    args = ["-m", "256M",
            "-object", "memory-backend-memfd,id=mem,size=256M,share=on",
            "-numa", "node,memdev=mem",
            "-chardev", f"socket,id=c0,path={path},reconnect-ms=1000"]
    if device_on_cmdline:
        return args + ["-device", "vhost-user-rng-pci,chardev=c0,id=rng0"]
    # vhost-user-rng's realize does not wait for the chardev: with
    # reconnect-ms the socket connects asynchronously, so a -device on the
    # command line finds it unconnected and fails ("Failed to set msg fds.";
    # QEMU 7.2 then aborted on an assertion).  So start paused, wait for the
    # connection, device_add, cont.
    return args + ["-S"]


def rng_device_add():
    """The QMP device_add that goes with rng_device_args()."""
    return {"driver": "vhost-user-rng-pci", "chardev": "c0", "id": "rng0"}


def readme_cmdlines():
    """name -> the text README.md must show for it (readme_check.py)."""
    from qemu_common import shell_cmdline
    dev = "build/libvhostpp/examples/vhost-user-rng --socket /tmp/rng.sock --no-mem-slots &\n"
    return {"rng": dev + shell_cmdline(
        rng_device_args("/tmp/rng.sock") + ["-qmp", "unix:/tmp/qmp.sock,server=on,wait=off"],
        qmp=[("device_add", rng_device_add()), ("cont", None)], qmp_after="c0")}


class Run:
    def __init__(self, args):
        self.a = args
        self.workdir = os.path.abspath(args.workdir)
        self.rundir = os.path.join(self.workdir, args.run_name)
        self.procs = []
        self.killed = []
        self.qmp = None
        self.notes = []
        self.times = {}
        self.strict_exit = []     # devices that must exit 0 on SIGTERM

    # ----------------------------------------------------------------------
    def setup(self):
        a = self.a
        self.qemu_bin = which_or_skip(a.qemu, "apt-get install qemu-system-x86")
        if not a.builtin_rng_selftest:
            if not (os.path.isfile(a.device) and os.access(a.device, os.X_OK)):
                raise TestFailure(f"device binary {a.device} missing or not executable")
        devs = subprocess.run([self.qemu_bin, "-device", "help"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=60).stdout
        need = "virtio-rng-pci" if a.builtin_rng_selftest else "vhost-user-rng-pci"
        if f'"{need}"' not in devs:
            raise Skip(f"{self.qemu_bin} has no {need} device")
        ver = subprocess.run([self.qemu_bin, "--version"], stdout=subprocess.PIPE,
                             text=True).stdout.splitlines()[0]
        self.qemu_version = ver
        log(ver)
        self.kernel, self.initrd = build_guest(self.workdir)
        if os.path.isdir(self.rundir):
            shutil.rmtree(self.rundir)
        os.makedirs(self.rundir)
        # unix socket paths are limited to 108 bytes
        self.sock = os.path.join(self.rundir, "rng.sock")
        if len(self.sock) > 100:
            self.sockdir = tempfile.mkdtemp(prefix="vhostpp-qemu.")
            self.sock = os.path.join(self.sockdir, "rng.sock")
        self.qmp_path = os.path.join(os.path.dirname(self.sock), "qmp.sock")
        self.console_path = os.path.join(self.rundir, "console.log")
        self.console = Console(self.console_path)

    def start_device(self, n):
        argv = [self.a.device, "--socket", self.sock, "--pattern"] + self.a.device_arg
        p = Proc(f"device#{n}", argv, os.path.join(self.rundir, f"device{n}.log"))
        self.procs.append(p)
        log(f"started {p.name} pid {p.pid}: {' '.join(argv)}")
        return p

    def start_qemu(self, cmdline):
        a = self.a
        argv = [self.qemu_bin, "-accel", "tcg", "-smp", "1",
                "-nodefaults", "-display", "none", "-no-reboot",
                "-serial", f"file:{self.console_path}",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-kernel", self.kernel, "-initrd", self.initrd,
                "-append", cmdline]
        if a.builtin_rng_selftest:
            pat = os.path.join(self.rundir, "rng-source.bin")
            make_pattern_file(pat, a.builtin_rng_selftest, 8 << 20)
            argv += ["-m", "256M", "-object", f"rng-random,id=r0,filename={pat}",
                     "-device", "virtio-rng-pci,rng=r0,id=rng0"]
        else:
            path = self.sock
            if a.trace:
                # QEMU talks to the logging proxy, the proxy to the device
                from vhost_user_trace import TraceProxy
                path = os.path.join(os.path.dirname(self.sock), "trace.sock")
                self.trace_log = os.path.join(self.rundir, "vhost-user-trace.log")
                self.proxy = TraceProxy(path, self.sock, self.trace_log)
                log(f"tracing vhost-user messages to {self.trace_log}")
            argv += rng_device_args(path, a.device_on_cmdline)
        # an abort is an expected outcome in --expect-qemu72-mem-slots-failure:
        # do not leave a core file behind for it
        p = Proc("qemu", argv, os.path.join(self.rundir, "qemu.log"),
                 no_core=bool(a.expect_qemu72_mem_slots_failure
                              or a.expect_qemu10_restart_abort))
        self.procs.append(p)
        self.qemu = p
        self.times["qemu_start"] = now()
        log(f"started qemu pid {p.pid}")
        with open(os.path.join(self.rundir, "qemu.cmdline"), "w") as f:
            f.write(" ".join(argv) + "\n")
        return p

    # ----------------------------------------------------------------------
    def virtio_state(self):
        """QEMU's view of the device, for the log: the chardev only.

        Not the x-query-virtio-* commands: QEMU 10.0.2 dies of SIGSEGV on
        x-query-virtio-status of a running vhost-user-rng-pci (measured), and
        QEMU 7.2's x-query-virtio-queue-status sent GET_VRING_BASE to the
        back-end, which stopped the ring."""
        if not self.qmp:
            return {}
        st = {}
        r = self.qmp.try_cmd("query-chardev")
        if "return" in r:
            for c in r["return"]:
                if c.get("label") == "c0":
                    st["chardev"] = c.get("filename")
        else:
            st["error"] = r.get("error")
        return st

    def chardev_connected(self):
        return chardev_connected(self.qmp, "c0")

    # ----------------------------------------------------------------------
    def wait_main(self):
        c = self.console
        deadline = now() + self.a.boot_timeout
        wait_for(lambda: c.poll() and c.find("VHTEST-INIT"), deadline,
                 "the guest's /init to start", [self.qemu])
        self.times["init"] = now() - self.times["qemu_start"]
        i, args = c.find("VHTEST-INIT")
        log(f"guest /init started after {self.times['init']:.1f}s "
            f"(guest uptime {args[0]}s)")

        def done_or_fail():
            c.poll()
            if c.find("VHTEST-FAIL"):
                raise TestFailure("guest: " + " ".join(c.find("VHTEST-FAIL")[1]))
            return c.find("HWRNG-DONE")
        wait_for(done_or_fail, deadline, "HWRNG-DONE (the guest's main read)", [self.qemu])
        self.times["done"] = now() - self.times["qemu_start"]
        for tag, args in c.lines:
            if tag.startswith("VHTEST-INFO") or tag == "VHTEST-HWRNG-READY":
                log(f"  guest: {tag} {' '.join(args)}")

        first = c.find("HWRNG-FIRST")[1][0]
        length, sha = c.find("HWRNG-SHA256")[1][:2]
        brk = c.find("HWRNG-BREAKS")
        if not brk:
            raise TestFailure("guest reported no run structure (HWRNG-BREAKS)")
        maxv, count, lst = brk[1][:3]
        ms = int(c.find("HWRNG-TIME")[1][0])
        t0, t1 = (float(x) for x in c.find("HWRNG-SPAN")[1][:2])
        main = Block("main read", int(length), first, sha, int(maxv), int(count),
                     parse_breaks(lst), t_start=t0, t_end=t1)
        last = main.verify()
        log(f"main read: {main.length} bytes in {ms} ms, first byte {main.first} "
            f"(device offset = {main.first} mod 251), SHA-256 {main.sha[:16]}... "
            "matches the pattern re-derived from the guest's run structure")
        if main.foreign:
            raise PatternMismatch(
                f"main read: discontinuities that the guest's hwrng thread cannot "
                f"explain (offset, prev, byte, skipped) {main.foreign[:8]}: "
                "not the pattern")
        if main.steals:
            log(f"main read: {len(main.steals)} short skip(s) (offset, bytes) "
                f"{main.steals} -- bytes taken by the guest kernel's hwrng thread")
        else:
            log("main read: one contiguous pattern run, exact SHA-256 match")
        self.main = main
        self.main_last = last
        return main

    def chunks(self):
        out = []
        for i, args in self.console.all("HWRNG-CHUNK"):
            out.append(chunk_from(args, self.console.seen.get(i)))
        return out

    def check_chunk_stream(self, chunks, restart_at=None):
        """Verify every chunk and the joins between them.

        Returns the number of 'foreign' discontinuities (neither contiguous
        nor a short skip).  `restart_at` (host time) is when the device was
        killed: one foreign discontinuity is allowed after it, since the new
        device process starts its stream at byte 0 again.
        """
        prev = self.main
        prev_last = self.main_last
        steals = 0
        restart_used = False
        for ch in chunks:
            may_restart = (restart_at is not None and not restart_used
                           and ch.seen_at is not None and ch.seen_at >= restart_at)
            g = gap(prev_last, ch.first)
            allowance = steal_allowance(ch.t_start - prev.t_end)
            if g > allowance:
                what = (f"between {prev.name} and {ch.name}: {prev_last} -> {ch.first} "
                        f"({g} bytes skipped, at most {allowance} explicable)")
                if not may_restart:
                    raise PatternMismatch(f"chunks: pattern broken {what}")
                restart_used = True
                may_restart = False
                log(f"chunks: discontinuity at the device restart ({what}) -- expected, "
                    "the new device process starts its stream again")
            elif g:
                steals += 1
            ch.verify(allow_restart=may_restart)
            if ch.restart:
                restart_used = True
                off, p, b, gg = ch.restart
                log(f"chunks: discontinuity at the device restart (inside {ch.name} at "
                    f"offset {off}: {p} -> {b}, {gg} bytes skipped) -- expected, the new "
                    "device process starts its stream again")
            if ch.foreign:
                raise PatternMismatch(
                    f"chunks: pattern broken inside {ch.name}: (offset, prev, byte, "
                    f"skipped) {ch.foreign[:8]}, steals {ch.steals[:8]} in "
                    f"{ch.t_end - ch.t_start:.2f}s")
            steals += len(ch.steals)
            prev, prev_last = ch, ch.last
        return steals

    # ----------------------------------------------------------------------
    def run_selftest(self):
        kind = self.a.builtin_rng_selftest
        log(f"SELFTEST with QEMU's built-in virtio-rng fed a '{kind}' file"
            + ("" if kind == "pattern" else " -- this run must FAIL"))
        self.start_qemu(self.cmdline(chunks=self.a.selftest_chunks))
        self.qmp = Qmp(self.qmp_path, now() + 30, self.qemu)
        self.wait_main()
        c = self.console
        wait_for(lambda: c.poll() and c.find("VHTEST-POWEROFF"), now() + 60,
                 "the guest to finish its chunk reads", [])
        chunks = self.chunks()
        if len(chunks) != self.a.selftest_chunks:
            raise TestFailure(f"expected {self.a.selftest_chunks} chunks, got {len(chunks)}")
        steals = self.check_chunk_stream(chunks)
        log(f"{len(chunks)} chunks of {chunks[0].length} bytes ok "
            f"({steals} short skip(s) by the guest's hwrng thread)")
        rc = self.qemu.wait(30)
        if rc != 0:
            raise TestFailure(f"qemu did not exit cleanly after poweroff: {describe_rc(rc)}")
        log("guest powered off, qemu exited 0")

    def cmdline(self, chunks):
        return (f"console=ttyS0 panic=-1 vhtest.quality=0 vhtest.bytes={self.a.bytes} "
                f"vhtest.chunk={self.a.chunk} vhtest.chunks={chunks}")

    def run_device(self):
        a = self.a
        dev1 = self.start_device(1)
        wait_for(lambda: os.path.exists(self.sock), now() + 15,
                 f"{dev1.name} to create {self.sock}", [dev1])
        # what the device holds while it serves nobody
        self.idle_fds_at_start = self.device_fds(dev1)
        self.start_qemu(self.cmdline(chunks=-1 if not a.no_reconnect else a.selftest_chunks))
        self.qmp = Qmp(self.qmp_path, now() + 30, self.qemu)
        if not a.device_on_cmdline:
            wait_for(self.chardev_connected, now() + 20,
                     "qemu's chardev to connect to the device", [self.qemu, dev1])
            r = self.qmp.cmd("device_add", **rng_device_add())
            if "error" in r:
                raise TestFailure(f"device_add vhost-user-rng-pci failed: {r['error']}")
            r = self.qmp.cmd("cont")
            if "error" in r:
                raise TestFailure(f"cont failed: {r['error']}")
            log("chardev connected; added vhost-user-rng-pci (device_add) and started "
                "the paused VM")
        st = self.virtio_state()
        log(f"qemu connected; virtio state: {json.dumps(st)}")
        self.wait_main()
        if a.no_reconnect:
            c = self.console
            wait_for(lambda: c.poll() and c.find("VHTEST-POWEROFF"), now() + 60,
                     "the guest to finish its chunk reads", [self.qemu])
            chunks = self.chunks()
            steals = self.check_chunk_stream(chunks)
            log(f"{len(chunks)} chunks ok ({steals} short skip(s) by the guest's hwrng "
                "thread)")
            rc = self.qemu.wait(30)
            if rc != 0:
                raise TestFailure(f"qemu did not exit cleanly after poweroff: "
                                  f"{describe_rc(rc)}")
            log("guest powered off, qemu exited 0")
            return
        self.reconnect(dev1)

    def reconnect(self, dev1):
        a = self.a
        c = self.console
        wait_for(lambda: c.poll() and len(c.all("HWRNG-CHUNK")) >= 3, now() + 60,
                 "3 HWRNG-CHUNK lines before the restart", [self.qemu, dev1])
        before = self.chunks()
        self.check_chunk_stream(before)
        rate = (before[-1].t_end - before[0].t_end) / max(1, len(before) - 1)
        log(f"guest is reading: {len(before)} chunks so far, one per {rate:.2f}s of guest time")
        st_before = self.virtio_state()
        log(f"virtio state before the kill: {json.dumps(st_before)}")
        qemu_log_pos = len(self.qemu.text())

        # ---- kill -9 the device ----
        self.kill_time = now()
        dev1.kill(signal.SIGKILL)
        self.killed.append(dev1)
        dev1.wait(10)
        log(f"SIGKILLed {dev1.name} ({describe_rc(dev1.rc())})")
        wait_for(lambda: not self.chardev_connected(), now() + 15,
                 "qemu to notice the disconnect", [self.qemu])
        self.times["disconnect_seen"] = now() - self.kill_time
        st_disc = self.virtio_state()
        log(f"qemu noticed the disconnect after {self.times['disconnect_seen']:.2f}s; "
            f"virtio state: {json.dumps(st_disc)}")
        n_at_kill = len(c.poll() and c.all("HWRNG-CHUNK"))

        # ---- start it again on the same socket path ----
        dev2 = self.start_device(2)
        self.dev2 = dev2
        t_restart = now()
        if a.expect_qemu72_mem_slots_failure:
            self.expect_mem_slots_failure(dev2, n_at_kill, qemu_log_pos)
            return
        if a.expect_qemu10_restart_abort:
            self.expect_restart_abort(dev2, n_at_kill, qemu_log_pos)
            return
        wait_for(self.chardev_connected, now() + 20,
                 "qemu to reconnect to the restarted device", [self.qemu, dev2])
        self.times["reconnect"] = now() - t_restart
        log(f"qemu reconnected {self.times['reconnect']:.2f}s after the restart")
        peers = wait_for(lambda: (lambda r: r if r and r[1] >= 1 else None)(
            unix_socket_peers(self.sock, dev2.pid)), now() + 10,
            f"{dev2.name} to hold an accepted connection", [dev2])
        log(f"{dev2.name} holds {peers[1]} connected socket(s) on {self.sock}")
        n_at_reconnect = len(c.poll() and c.all("HWRNG-CHUNK"))
        if n_at_reconnect - n_at_kill > 1:
            raise TestFailure(
                f"{n_at_reconnect - n_at_kill} chunks completed while no device was "
                "running: the guest is not reading from the device")

        # ---- do the guest's reads resume? ----
        want = n_at_reconnect + 3
        t_wait = now()
        deadline = now() + a.resume_timeout
        resumed = True
        try:
            wait_for(lambda: c.poll() and len(c.all("HWRNG-CHUNK")) >= want, deadline,
                     "guest reads to resume", [self.qemu, dev2])
        except TestFailure as e:
            if not self.qemu.alive() or not dev2.alive():
                raise
            resumed = False
            reason = str(e)
        st_after = self.virtio_state()
        qemu_said = self.qemu.text()[qemu_log_pos:].strip()
        log("qemu's messages since the kill:" + ("\n    " + qemu_said.replace("\n", "\n    ")
                                                  if qemu_said else " (none)"))
        log(f"virtio state after the restart: {json.dumps(st_after)}")
        if not dev2.alive():
            raise TestFailure(f"{dev2.name} died: {describe_rc(dev2.rc())}")

        all_chunks = self.chunks()
        if resumed:
            self.times["resume"] = now() - t_wait
            new = all_chunks[n_at_reconnect:]
            steals = self.check_chunk_stream(all_chunks, restart_at=self.kill_time)
            log(f"RECONNECT: guest reads RESUMED: {len(new)} new chunk(s) "
                f"({sum(x.length for x in new)} bytes) after the restart, all "
                f"pattern runs; {steals} short skip(s) overall")
            self.reconnect_result = "resumed"
        else:
            self.check_chunk_stream(all_chunks, restart_at=self.kill_time)
            q = (st_after.get("queue") or {})
            log(f"RECONNECT: guest reads did NOT resume within {a.resume_timeout:.0f}s "
                f"({reason}); chunks: {n_at_kill} at the kill, {len(all_chunks)} now; "
                f"queue {q}")
            self.reconnect_result = "not resumed"
            if not a.allow_no_resume:
                raise TestFailure("guest reads did not resume after the device restart")
            self.notes.append("reconnect: QEMU reconnected and the device accepted, "
                              "but the guest's reads did not resume")
        # daemon health: still alive after everything
        if not dev2.alive():
            raise TestFailure(f"{dev2.name} died: {describe_rc(dev2.rc())}")

    def device_fds(self, dev):
        """fd_targets() with the log file's name made independent of the
        device's number, so two device processes compare."""
        return [re.sub(r"device\d+\.log$", "device.log", x) for x in fd_targets(dev.pid)]

    def expect_restart_abort(self, dev2, n_at_kill, qemu_log_pos):
        """--expect-qemu10-restart-abort: QEMU 10.0 reconnects to the
        restarted device and aborts (vhost_dev_start asserts); the device
        must come through it alive, serving nobody, with the fds it held at
        the start.  Fails if QEMU does anything else."""
        qemu = self.qemu
        self.strict_exit.append(dev2)
        line = expect_vhost_ops_abort(qemu, qemu_log_pos, self.qemu_version)
        conns = self.dev2.text().count(DEV_CONNECTED)
        if conns < 1:
            raise TestFailure(f"qemu aborted without ever reconnecting to {dev2.name}")
        log(f"QEMU aborted as QEMU 10.0 does ({line}) after {conns} reconnect(s)")
        if self.a.trace:
            self.check_trace_restart_abort()
        c = self.console
        new = len(c.poll() and c.all("HWRNG-CHUNK")) - n_at_kill
        if new > 1:
            raise TestFailure(f"{new} chunks completed after the kill, yet QEMU aborted")
        if not dev2.alive():
            raise TestFailure(f"{dev2.name} died: {describe_rc(dev2.rc())}")
        wait_for(lambda: (lambda p: p and p[0] >= 1 and p[1] == 0)(
            unix_socket_peers(self.sock, dev2.pid)), now() + 10,
            f"{dev2.name} to listen and hold no connection", [dev2])
        fds = wait_for(lambda: (lambda f: f if f == self.idle_fds_at_start else None)(
            self.device_fds(dev2)), now() + 5,
            f"{dev2.name} to hold what device#1 held before QEMU ({self.idle_fds_at_start}; "
            f"it holds {self.device_fds(dev2)})", [dev2])
        log(f"{dev2.name}: alive, listening, no connection, the {len(fds)} fds device#1 "
            "held before QEMU started")
        self.reconnect_result = ("QEMU 10.0 aborted on the reconnect (vhost_dev_start "
                                 f"assertion); device alive, {len(fds)} fds as at the start")

    # ----------------------------------------------------------------------
    def idle_fds(self, dev):
        """A consistent snapshot of `dev`'s open files while it holds no
        connection: (connections accepted so far, fd targets), or None if it
        is busy (a connection open or not yet refused) right now."""
        conns = device_connections(dev.text())
        if conns and not conns[-1]["ended"]:
            return None
        p = unix_socket_peers(self.sock, dev.pid)
        if not p or p[0] < 1 or p[1] != 0:
            return None
        try:
            fds = fd_targets(dev.pid)
        except OSError:
            return None
        p2 = unix_socket_peers(self.sock, dev.pid)
        conns2 = device_connections(dev.text())
        if not p2 or p2[1] != 0 or len(conns2) != len(conns):
            return None
        return len(conns), fds

    def expect_mem_slots_failure(self, dev2, n_at_kill, qemu_log_pos):
        """After the restart, expect exactly QEMU 7.2's CONFIGURE_MEM_SLOTS
        failure, and check that the restarted device survives it cleanly."""
        a = self.a
        c = self.console
        qemu = self.qemu
        self.strict_exit.append(dev2)
        t_restart = now()

        def stale_check():
            c.poll()
            new = len(c.all("HWRNG-CHUNK")) - n_at_kill
            if new > 1:
                raise TestFailure(
                    f"EXPECTATION STALE: the guest's reads RESUMED after the device restart "
                    f"({new} chunks completed since the kill) with a device that offers "
                    "CONFIGURE_MEM_SLOTS. --expect-qemu72-mem-slots-failure describes QEMU "
                    "7.2, which never re-sends the memory regions on a reconnect; this "
                    "QEMU or this device no longer behaves that way. Run the plain "
                    "reconnect test instead (it must pass) and update tests/qemu/README.md "
                    "and meson.build")

        def conns_checked():
            conns = device_connections(dev2.text())
            for i, x in enumerate(conns):
                check_device_connection(i, x)
            return conns

        # ---- the restarted device listens; fd count before any connection ----
        wait_for(lambda: (lambda p: p and p[0] >= 1)(unix_socket_peers(self.sock, dev2.pid)),
                 now() + 15, f"{dev2.name} to listen on {self.sock}", [dev2])
        snap = self.idle_fds(dev2)
        baseline = snap[1] if snap and snap[0] == 0 else None
        if baseline is not None:
            log(f"{dev2.name} listens; {len(baseline)} fds open before any connection")
        else:
            log(f"{dev2.name} listens; QEMU connected before a baseline fd sample")

        # ---- QEMU reconnects; the device refuses each connection; sample fds ----
        wait_for(lambda: device_connections(dev2.text()) or not qemu.alive(), now() + 20,
                 f"QEMU to reconnect to {dev2.name}", [dev2])
        conns = conns_checked()
        if not conns:
            raise TestFailure(f"qemu exited ({describe_rc(qemu.rc())}) without ever "
                              f"reconnecting to {dev2.name}")
        self.times["reconnect"] = now() - t_restart
        log(f"QEMU reconnected {self.times['reconnect']:.2f}s after the restart "
            f"({dev2.name} accepted the connection)")
        samples = []              # (connections so far, fd targets)
        deadline = now() + a.resume_timeout
        while True:
            stale_check()
            if not dev2.alive():
                raise TestFailure(f"{dev2.name} died: {describe_rc(dev2.rc())}")
            conns = conns_checked()
            snap = self.idle_fds(dev2)
            if snap and snap[0] >= 1 and (not samples or snap[0] > samples[-1][0]):
                samples.append(snap)
            q = parse_qemu_after_kill(qemu.text()[qemu_log_pos:])
            if not qemu.alive() or q["fatal"]:
                break                     # QEMU died or is dying
            if snap and samples and samples[-1][0] >= a.mem_slots_attempts:
                # enough attempts watched; stop at a quiet moment between two
                # attempts in which QEMU's messages account for every connection
                if (q["groups"] == snap[0] + 1 and not q["partial"]
                        and len(conns_checked()) == snap[0]):
                    break
            if now() > deadline:
                raise TestFailure(
                    f"QEMU neither aborted nor made {a.mem_slots_attempts} reconnect "
                    f"attempts within {a.resume_timeout:.0f}s ({len(conns)} seen, "
                    f"{len(samples)} idle fd sample(s))")
            time.sleep(0.05)
        if q["fatal"] and qemu.wait(10) is None:
            raise TestFailure(f"qemu printed {q['fatal'][-1]!r} but did not exit")
        qemu_died = not qemu.alive()

        if qemu_died:
            # QEMU gone: the device must simply go on listening, idle
            t_dead = now()
            time.sleep(1.0)
            snap = wait_for(lambda: self.idle_fds(dev2), now() + 5,
                            f"{dev2.name} to be idle after QEMU exited", [dev2])
            samples.append(snap)
            log(f"QEMU exited ({describe_rc(qemu.rc())}) "
                f"{t_dead - t_restart:.1f}s after the restart")
        stale_check()
        conns = conns_checked()
        if not conns[-1]["ended"]:
            raise TestFailure(f"{dev2.name}: the last connection is still open")
        qtext = qemu.text()[qemu_log_pos:]
        q = parse_qemu_after_kill(qtext)
        qlines = qtext.strip().splitlines()
        if len(qlines) > 16:          # the same stop messages once per connection
            qlines = qlines[:6] + [f"... ({len(qlines) - 12} more lines) ..."] + qlines[-6:]
        log("qemu's messages since the kill (all in qemu.log):"
            + ("\n    " + "\n    ".join(qlines) if qlines else " (none)"))

        # ---- QEMU: exactly the 7.2 behaviour, nothing else ----
        if qemu_died:
            rc = qemu.rc()
            if rc != -signal.SIGABRT or not q["fatal_ok"]:
                raise TestFailure(
                    f"qemu died ({describe_rc(rc)}), but not in the one way this mode "
                    "accepts (SIGABRT after 'Error starting vhost-user-rng: 5' on the "
                    "'msix_unset_vector_notifiers: Assertion `dev->msix_vector_use_notifier "
                    "&& dev->msix_vector_release_notifier' failed.' assertion); its last "
                    f"messages: {(q['fatal'] or q['unexpected'])[-4:]}")
        elif q["fatal"]:
            raise TestFailure(f"qemu printed its fatal messages but is still running: "
                              f"{q['fatal']}")
        if q["unexpected"]:
            raise TestFailure(f"qemu printed messages this mode does not expect: "
                              f"{q['unexpected'][:6]}")
        if q["eof"] != 1:
            raise TestFailure(f"expected qemu to report the killed back-end's end-of-file "
                              f"once ('{QEMU_EOF}'), it did {q['eof']} times")
        if q["groups"] != len(conns) + 1:
            raise TestFailure(
                f"qemu stopped its vhost device {q['groups']} time(s); expected "
                f"{len(conns) + 1}: once for the kill and once per connection "
                f"({len(conns)}) that the restarted device closed")
        log(f"qemu: {len(conns)} reconnect(s), each one refused by the device; qemu "
            f"stopped its vhost device {q['groups']} times (kill + every refused "
            "connection)" + (f", then aborted: {' / '.join(q['fatal'])}" if qemu_died
                             else ", and it is still reconnecting"))
        if len(conns) >= 2:
            gaps = [b["t"] - a_["t"] for a_, b in zip(conns, conns[1:])]
            log(f"qemu reconnect interval {min(gaps):.2f}-{max(gaps):.2f}s")

        # ---- vhost-user messages on the reconnects (with --trace) ----
        if a.trace:
            self.check_trace_mem_slots(len(conns), exact=qemu_died)

        # ---- the device: alive, every connection closed, no fd growth ----
        if not dev2.alive():
            raise TestFailure(f"{dev2.name} died: {describe_rc(dev2.rc())}")
        queues = sorted({x["no_mem"] for x in conns})
        log(f"{dev2.name}: accepted {len(conns)} connection(s); on each it logged the "
            "missing SET_PROTOCOL_FEATURES and '[error] SET_VRING_ADDR: queue "
            f"{'/'.join(map(str, queues))} before any memory table; closing the "
            "connection'; it holds no connection now and is still running")
        counts = [len(f) for _, f in samples]
        desc = ", ".join(f"{len(f)} after connection {n}" for n, f in samples)
        if qemu_died:
            desc += " (the last sample after QEMU exited)"
        log(f"{dev2.name} fd count: "
            + (f"{len(baseline)} before any connection, " if baseline is not None else "")
            + desc)
        ref = baseline if baseline is not None else samples[0][1]
        for n, f in samples:
            if len(f) != len(ref):
                extra = [x for x in f if x not in ref or f.count(x) > ref.count(x)]
                raise TestFailure(
                    f"{dev2.name}: fd count grew across QEMU's reconnect attempts: "
                    f"{counts} (baseline {len(baseline) if baseline else '-'}); "
                    f"after connection {n} it holds {sorted(set(extra))} more than before")
        if len(samples) < 2 and not qemu_died:
            raise TestFailure("fewer than 2 idle fd samples while QEMU kept reconnecting")

        if not qemu_died:
            log(f"virtio state now: {json.dumps(self.virtio_state())}")
        c.poll()
        all_chunks = self.chunks()
        self.check_chunk_stream(all_chunks, restart_at=self.kill_time)
        log(f"RECONNECT (expected QEMU 7.2 CONFIGURE_MEM_SLOTS failure): the guest's "
            f"reads did NOT resume ({len(all_chunks)} chunks, {n_at_kill} at the kill)")
        self.reconnect_result = (
            "QEMU 7.2 + CONFIGURE_MEM_SLOTS failure as expected: "
            f"{len(conns)} reconnect(s) without memory regions, each refused at "
            "SET_VRING_ADDR; QEMU " + ("aborted (msix_unset_vector_notifiers assertion)"
                                       if qemu_died else "kept reconnecting every ~1 s")
            + f"; device alive, fd count {len(ref)} throughout")
        if not qemu_died:
            # end QEMU here, so that how it ends is checked too
            self.qmp.try_cmd("quit")
            rc = qemu.wait(15)
            if rc != 0:
                raise TestFailure(f"qemu did not exit cleanly on QMP quit: {describe_rc(rc)}"
                                  f"; its last messages: {qemu.text().strip().splitlines()[-4:]}")
            log("qemu exited 0 on QMP quit")

    def check_trace_restart_abort(self):
        """With --trace under QEMU 10: what CONFIGURE_MEM_SLOTS changes on a
        reconnect.  The first connection negotiated it and got its memory by
        ADD_MEM_REG (when the device offers it); every reconnect carries no
        message at all -- QEMU aborts before it sends one, so neither
        SET_MEM_TABLE nor ADD_MEM_REG comes again, whatever was negotiated."""
        conns, first, m = trace_first_connection(self.trace_log)
        mem_slots = bool(m and (int(m.group(1), 16) >> CONFIGURE_MEM_SLOTS_BIT) & 1)
        mapped = [n for n, _ in first["q2d"] if n in ("SET_MEM_TABLE", "ADD_MEM_REG")]
        if not mapped or (mem_slots and "ADD_MEM_REG" not in mapped) or (
                not mem_slots and "SET_MEM_TABLE" not in mapped):
            raise TestFailure(f"trace: first connection mapped memory with {sorted(set(mapped))} "
                              f"(CONFIGURE_MEM_SLOTS {'on' if mem_slots else 'off'})")
        later = [k for k in sorted(conns) if k > 1 and conns[k]["connected"]]
        if not later:
            raise TestFailure("trace: QEMU never reconnected through the proxy")
        for k in later:
            if conns[k]["q2d"]:
                raise TestFailure(
                    f"trace: reconnect #{k} carried {[n for n, _ in conns[k]['q2d']]}: QEMU "
                    "now sends messages before it aborts; re-measure what it re-sends")
        log(f"trace: connection #1 negotiated CONFIGURE_MEM_SLOTS "
            f"{'on' if mem_slots else 'off'} and mapped memory with {sorted(set(mapped))}; "
            f"the {len(later)} reconnect(s) carried no message before QEMU aborted")

    def check_trace_mem_slots(self, n_device_conns, exact):
        """With --trace: the first connection negotiated CONFIGURE_MEM_SLOTS
        and got its memory through ADD_MEM_REG; no reconnect re-sends the
        protocol features or any memory region before SET_VRING_ADDR."""
        conns, first, m = trace_first_connection(self.trace_log)
        spf = [x for n, x in first["q2d"] if n == "SET_PROTOCOL_FEATURES"]
        if not m or not (int(m.group(1), 16) >> CONFIGURE_MEM_SLOTS_BIT) & 1:
            raise TestFailure(f"trace: CONFIGURE_MEM_SLOTS was not negotiated on the first "
                              f"connection (SET_PROTOCOL_FEATURES {spf}): this mode needs a "
                              "device that offers it")
        if not any(n == "ADD_MEM_REG" for n, _ in first["q2d"]):
            raise TestFailure("trace: the first connection got no ADD_MEM_REG")
        later = [k for k in sorted(conns) if k > 1 and conns[k]["connected"]]
        # exact once QEMU is gone; while it reconnects one attempt may be in flight
        if len(later) != n_device_conns if exact else abs(len(later) - n_device_conns) > 1:
            raise TestFailure(f"trace: {len(later)} reconnect(s) through the proxy, but the "
                              f"device accepted {n_device_conns}")
        for k in later:
            names = [n for n, _ in conns[k]["q2d"]]
            if not conns[k]["closed"]:
                continue                  # still in flight
            if "SET_VRING_ADDR" not in names:
                raise TestFailure(f"trace: reconnect #{k} sent no SET_VRING_ADDR: {names}")
            bad = [n for n in names if n in TRACE_NOT_ON_RECONNECT]
            if bad:
                raise TestFailure(
                    f"trace: reconnect #{k} sent {bad}: QEMU re-sends set-up messages, "
                    f"the QEMU 7.2 expectation is stale ({names})")
        names = [n for n, _ in conns[later[0]]["q2d"]] if later else []
        log(f"trace: connection #1 negotiated CONFIGURE_MEM_SLOTS ({m.group(1)}) and mapped "
            f"memory with ADD_MEM_REG; each of the {len(later)} reconnect(s) sent "
            f"{' '.join(names)} -- no GET/SET_PROTOCOL_FEATURES, SET_MEM_TABLE or "
            "ADD_MEM_REG")

    # ----------------------------------------------------------------------
    def teardown(self):
        problems = []
        qemu = getattr(self, "qemu", None)
        qemu_was_alive = qemu is not None and qemu.alive()
        if self.qmp:
            if self.qemu.alive():
                self.qmp.try_cmd("quit")
            self.qmp.close()
        for p in self.procs:
            if p.name == "qemu":
                if p.wait(15) is None:
                    p.kill()
                    p.wait(5)
        if qemu_was_alive and crashed(qemu.rc()):
            problems.append(f"qemu crashed at teardown: {describe_rc(qemu.rc())}")
        if getattr(self, "proxy", None):
            self.proxy.close()
        if getattr(self, "sockdir", None):
            shutil.rmtree(self.sockdir, ignore_errors=True)
        # devices: let them see qemu go away, then stop them; a crash fails
        for p in self.procs:
            if not p.name.startswith("device"):
                continue
            if p in self.killed:
                continue          # we SIGKILLed it on purpose
            rc, how = p.stop(5)
            log(f"{p.name}: {how} ({describe_rc(rc)})")
            if crashed(rc):
                problems.append(f"{p.name} crashed: {describe_rc(rc)}")
            elif p in self.strict_exit and (rc != 0 or how != "exited on SIGTERM"):
                problems.append(f"{p.name} did not exit cleanly on SIGTERM: {how} "
                                f"({describe_rc(rc)})")
        return problems

    def diagnose(self):
        """One-line pointers to the most telling messages in the logs."""
        for p in self.procs:
            for line in p.text().splitlines():
                low = line.lower()
                if ("assertion" in low or "[error]" in low or "[critical]" in low
                        or "segmentation" in low or "error starting" in low):
                    log(f"diagnosis: {p.name} said: {line.strip()}")
            if p.rc() is not None and crashed(p.rc()):
                log(f"diagnosis: {p.name} {describe_rc(p.rc())}")

    def dump_logs(self):
        self.diagnose()
        log(f"logs kept in {self.rundir}:")
        for name in sorted(os.listdir(self.rundir)):
            if name.endswith(".log") or name.endswith(".cmdline"):
                log(f"  {os.path.join(self.rundir, name)}")
        log("console (last lines):\n" + self.console.tail(40))
        if getattr(self, "trace_log", None) and os.path.exists(self.trace_log):
            with open(self.trace_log) as f:
                lines = f.read().splitlines()
            log(f"vhost-user trace (last {min(60, len(lines))} of {len(lines)} lines):\n"
                + "\n".join("    " + x for x in lines[-60:]))
        elif not self.a.builtin_rng_selftest:
            log("hint: re-run with --trace to log every vhost-user message")
        for p in self.procs:
            t = p.text().strip()
            if t:
                lines = t.splitlines()
                log(f"{p.name} output (last {min(25, len(lines))} of {len(lines)} lines):\n"
                    + "\n".join("    " + x for x in lines[-25:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("device", help="vhost-user-rng device binary ('-' with selftest)")
    ap.add_argument("workdir", help="cache + log directory (build dir)")
    ap.add_argument("--builtin-rng-selftest", nargs="?", const="pattern",
                    choices=["pattern", "gaps", "random"],
                    help="use QEMU's own virtio-rng on a generated file instead of DEVICE")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--bytes", type=int, default=65536, help="size of the main read")
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--selftest-chunks", type=int, default=10)
    ap.add_argument("--no-reconnect", action="store_true")
    ap.add_argument("--device-arg", action="append", default=[],
                    help="extra argument for the device (repeatable)")
    ap.add_argument("--run-name", default="qemu-rng-run",
                    help="name of the log directory under WORKDIR")
    ap.add_argument("--device-on-cmdline", action="store_true",
                    help="put -device vhost-user-rng-pci on the command line instead of "
                         "adding it over QMP while paused (aborts QEMU 7.2)")
    ap.add_argument("--trace", action="store_true",
                    help="put a logging proxy between QEMU and the device and log "
                         "every vhost-user message (vhost-user-trace.log)")
    ap.add_argument("--allow-no-resume", action="store_true",
                    help="pass if QEMU reconnects and the device accepts, even if the "
                         "guest's reads do not resume")
    ap.add_argument("--expect-qemu72-mem-slots-failure", action="store_true",
                    help="after the restart, expect QEMU 7.2's failure with a device that "
                         "offers CONFIGURE_MEM_SLOTS (no memory regions re-sent; QEMU "
                         "keeps reconnecting or aborts in msix_unset_vector_notifiers) "
                         "and check the device survives it; fails if the reads resume")
    ap.add_argument("--expect-qemu10-restart-abort", action="store_true",
                    help="after the restart, expect QEMU 10.0 to abort on its vhost_dev_start "
                         "assertion and check the device survives it; fails otherwise")
    ap.add_argument("--mem-slots-attempts", type=int, default=5,
                    help="with --expect-qemu72-mem-slots-failure: reconnect attempts to "
                         "watch (fd count sampled after each) unless QEMU aborts first")
    ap.add_argument("--boot-timeout", type=float, default=100)
    ap.add_argument("--resume-timeout", type=float, default=30)
    ap.add_argument("--total-timeout", type=float, default=170)
    a = ap.parse_args()
    if a.expect_qemu72_mem_slots_failure and a.expect_qemu10_restart_abort:
        ap.error("--expect-qemu72-mem-slots-failure and --expect-qemu10-restart-abort "
                 "describe different QEMUs")
    if (a.expect_qemu72_mem_slots_failure or a.expect_qemu10_restart_abort) and (
            a.builtin_rng_selftest or a.no_reconnect or a.allow_no_resume):
        ap.error("--expect-qemu72-mem-slots-failure and --expect-qemu10-restart-abort need "
                 "the reconnect test with a "
                 "vhost-user DEVICE (no --builtin-rng-selftest, --no-reconnect or "
                 "--allow-no-resume)")

    run = Run(a)
    in_ci = bool(os.environ.get("CI"))

    def on_alarm(signum, frame):
        raise TestFailure(f"whole test exceeded {a.total_timeout:.0f}s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(a.total_timeout))

    negative = a.builtin_rng_selftest in ("gaps", "random")
    status = 0
    try:
        try:
            run.setup()
            if a.builtin_rng_selftest:
                try:
                    run.run_selftest()
                except PatternMismatch as e:
                    if not negative:
                        raise
                    log(f"negative selftest: the checks rejected the corrupted data, as "
                        f"they must: {e}")
                else:
                    if negative:
                        raise TestFailure("negative selftest: the checks ACCEPTED data "
                                          "that is not the pattern")
            else:
                run.run_device()
        finally:
            signal.alarm(0)
            problems = run.teardown() if run.procs else []
        if problems:
            raise TestFailure("; ".join(problems))
    except Skip as e:
        if in_ci:
            log(f"FAIL: missing prerequisite (CI is set, so this is not a skip): {e}")
            print("0 passed, 1 failed")
            return 1
        log(f"SKIP: {e}")
        return 77
    except TestFailure as e:
        log(f"FAIL: {e}")
        status = 1
    except Exception as e:           # harness bug or environment trouble
        log(f"FAIL: unexpected {type(e).__name__}: {e}")
        import traceback
        traceback.print_exc()
        status = 1
    if status:
        if os.path.isdir(run.rundir):
            run.dump_logs()
        print("0 passed, 1 failed")
        return status
    t = run.times
    log("timings: /init after %.1fs, main read done after %.1fs%s, total %.1fs" % (
        t.get("init", -1), t.get("done", -1),
        "".join(f", {k} {v:.1f}s" for k, v in t.items()
                if k in ("disconnect_seen", "reconnect", "resume")), now()))
    if getattr(run, "reconnect_result", None):
        log(f"reconnect result: {run.reconnect_result}")
    for n in run.notes:
        log("NOTE: " + n)
    log(f"PASS (logs in {run.rundir})")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
