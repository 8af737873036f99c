#!/usr/bin/env python3
"""What the QEMU guest tests share: processes, QMP, the guest console, the
cached guest image, polling with deadlines.  Python 3 stdlib only.

Used by qemu_rng_test.py (vhost-user-rng) and qemu_snd_test.py
(vhost-sound); see README.md next to this file.
"""

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOG_NAME = "qemu"


def set_log_name(name):
    """The tag every log line of this process starts with."""
    global LOG_NAME
    LOG_NAME = name


T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def log(msg):
    print(f"[{LOG_NAME} {now():6.1f}s] {msg}", flush=True)


class TestFailure(Exception):
    pass



class Skip(Exception):
    pass



class Console:
    """The guest's serial console log, as QEMU writes it; only the report
    lines (a tag "<PREFIX>-<NAME>" anywhere in a line, PREFIX one of
    `prefixes`) are kept, as (tag, [words])."""

    def __init__(self, path, prefixes=("HWRNG", "VHTEST")):
        self.line_re = re.compile(r"((?:%s)-[A-Z0-9-]+)(.*)$" % "|".join(prefixes))
        self.path = path
        self.seen = {}        # line index -> host time first seen
        self.lines = []

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return self.lines
        text = data.decode("utf-8", "replace")
        # only complete lines
        complete = text[:text.rfind("\n") + 1] if "\n" in text else ""
        lines = []
        for raw in complete.splitlines():
            m = self.line_re.search(raw.rstrip("\r"))
            if m:
                lines.append((m.group(1), m.group(2).split()))
        t = now()
        for i in range(len(self.lines), len(lines)):
            self.seen[i] = t
        self.lines = lines
        return lines

    def find(self, tag):
        for i, (t, args) in enumerate(self.lines):
            if t == tag:
                return i, args
        return None

    def all(self, tag):
        return [(i, args) for i, (t, args) in enumerate(self.lines) if t == tag]

    def tail(self, n=40):
        try:
            with open(self.path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no console log)"
        return "\n".join(data.splitlines()[-n:])



class Proc:
    def __init__(self, name, argv, logpath, env=None, no_core=False):
        self.name = name
        self.argv = argv
        self.logpath = logpath
        self.logf = open(logpath, "wb")

        def no_core_dump():
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                  stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True,
                                  preexec_fn=no_core_dump if no_core else None)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def rc(self):
        return self.p.poll()

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL.  Returns (rc, how)."""
        if not self.alive():
            return self.rc(), "exited by itself"
        self.kill(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is not None:
            return rc, "exited on SIGTERM"
        self.kill(signal.SIGKILL)
        return self.wait(timeout), "did NOT exit on SIGTERM within %.0fs; SIGKILLed" % timeout

    def text(self):
        self.logf.flush()
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


def describe_rc(rc):
    if rc is None:
        return "running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


def crashed(rc):
    return rc is not None and rc < 0 and -rc in (
        signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL,
        signal.SIGFPE, signal.SIGSYS, signal.SIGTRAP)


class Qmp:
    def __init__(self, path, deadline, proc):
        self.sock = None
        while True:
            if not proc.alive():
                raise TestFailure(f"qemu exited ({describe_rc(proc.rc())}) before its "
                                  "QMP socket came up")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                self.sock = s
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if now() > deadline:
                    raise TestFailure(f"QMP socket {path} never came up")
                time.sleep(0.05)
        self.sock.settimeout(10)
        self.buf = b""
        self._read()                       # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise TestFailure("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "return" in r or "error" in r:
                return r
            # asynchronous event: ignore

    def try_cmd(self, name, **args):
        try:
            return self.cmd(name, **args)
        except (OSError, TestFailure, ValueError) as e:
            return {"error": str(e)}

    def close(self):
        if self.sock:
            self.sock.close()


def chardev_connected(qmp, label):
    """QMP query-chardev: is chardev `label` connected (QEMU's side)?"""
    r = qmp.try_cmd("query-chardev")
    for c in r.get("return", []):
        if c.get("label") == label:
            return not c.get("filename", "").startswith("disconnected")
    return False


def unix_socket_peers(path, pid):
    """Connected unix sockets bound to `path` that process `pid` holds."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.match(r"socket:\[(\d+)\]", target)
            if m:
                inodes.add(m.group(1))
    except OSError:
        return None
    listening = connected = 0
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) < 8 or parts[7] != path or parts[6] not in inodes:
                continue
            state = parts[5]
            if state == "01" and parts[3] == "00010000":   # SS_UNCONNECTED + listen
                listening += 1
            elif state == "03":                           # SS_CONNECTED
                connected += 1
            elif state == "01":
                listening += 1
    return listening, connected



def fd_targets(pid):
    """What process `pid` has open, normalised (socket:[123] -> socket)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        out.append(re.sub(r":\[\d+\]$", "", t))
    return sorted(out)


# --------------------------------------------------------------------------

def which_or_skip(prog, why):
    path = shutil.which(prog)
    if not path:
        raise Skip(f"{prog} not found ({why})")
    return path


def build_guest(workdir, sound=False):
    """Build or reuse the cached guest (build-guest.sh); (kernel, initrd)."""
    guestdir = os.path.join(workdir, "guest-snd" if sound else "guest")
    script = os.path.join(HERE, "build-guest.sh")
    log(f"guest: {script} {guestdir}" + (" --sound" if sound else ""))
    r = subprocess.run(["bash", script, guestdir] + (["--sound"] if sound else []),
                       stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=600)
    if r.returncode == 77:
        raise Skip("build-guest.sh: " + r.stderr.strip().splitlines()[-1])
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise TestFailure(f"build-guest.sh failed with status {r.returncode}")
    for line in r.stderr.strip().splitlines()[-2:]:
        log("  " + line)
    paths = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    return paths["KERNEL"], paths["INITRD"]


def wait_for(cond, deadline, what, procs=(), interval=0.05):
    """Poll `cond` until it returns a true value or the deadline passes."""
    while True:
        v = cond()
        if v:
            return v
        for p in procs:
            if not p.alive():
                raise TestFailure(f"{p.name} exited ({describe_rc(p.rc())}) while "
                                  f"waiting for {what}")
        if now() > deadline:
            raise TestFailure(f"timed out waiting for {what}")
        time.sleep(interval)




def shell_cmdline(args, qmp=(), qmp_after=None):
    """A QEMU command line as README.md shows it: the test's own arguments,
    wrapped at 76 columns, "..." for the rest (kernel, console, ...), then
    the QMP commands the test sends once chardev `qmp_after` is connected."""
    out, line = [], "qemu-system-x86_64"
    i = 0
    while i < len(args):
        pair = args[i].startswith("-") and i + 1 < len(args) and not args[i + 1].startswith("-")
        item = f"{args[i]} {args[i + 1]}" if pair else args[i]
        i += 2 if pair else 1
        if len(line) + 1 + len(item) > 76:
            out.append(line + " \\")
            line = "  " + item
        else:
            line += " " + item
    out.append(line + " ...")
    if qmp:
        out.append(f"# once QMP query-chardev shows '{qmp_after}' connected:")
        for name, arguments in qmp:
            msg = {"execute": name}
            if arguments:
                msg["arguments"] = arguments
            out.append(json.dumps(msg))
    return "\n".join(out)


# QEMU 10.0's answer to a vhost-user back-end that is SIGKILLed and started
# again: hw/virtio/vhost-user-base.c (every vhost-user-base device: snd, rng,
# gpio, ...) cleans the vhost device up on the disconnect and, on the
# reconnect, starts it again without initialising it, so vhost_dev_start()
# asserts.  Measured with 10.0.2 for vhost-user-snd-pci and vhost-user-rng-pci.
QEMU10_VHOST_OPS_ASSERT_RE = re.compile(
    r"vhost\.c:\d+: vhost_dev_start: Assertion `hdev->vhost_ops' failed\.")


def expect_vhost_ops_abort(qemu, since, version, timeout=30):
    """Wait for `qemu` (a Proc) to die the QEMU 10.0 way after its back-end
    was restarted: SIGABRT on the vhost_dev_start assertion, printed after
    text offset `since` of its log.  Returns the assertion line; raises
    TestFailure (EXPECTATION STALE) on anything else, so the test fails
    once QEMU behaves differently."""
    rc = qemu.wait(timeout)
    lines = [x.strip() for x in qemu.text()[since:].splitlines() if x.strip()]
    log(f"{qemu.name}'s messages after the kill:\n    " + "\n    ".join(lines[-14:]))
    hit = [x for x in lines if QEMU10_VHOST_OPS_ASSERT_RE.search(x)]
    if rc != -signal.SIGABRT or not hit:
        state = "still running" if rc is None else describe_rc(rc)
        raise TestFailure(
            f"EXPECTATION STALE: after the back-end was SIGKILLed and started again, "
            f"{version} is {state} and did not abort on \"vhost_dev_start: Assertion "
            "`hdev->vhost_ops' failed\" as QEMU 10.0 does. QEMU behaves differently now: "
            "see whether the guest resumes, then update this test, tests/qemu/README.md "
            "and README.md")
    return hit[0]
