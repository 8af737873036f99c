#!/usr/bin/env python3
"""Real-QEMU, real-Linux-guest test of vhost-sound.

    qemu_snd_test.py DAEMON WORKDIR [options]
    qemu_snd_test.py --readme-cmdlines    (the README's QEMU command lines)

DAEMON is the vhost-sound binary.  WORKDIR (normally the meson build dir of
tests/qemu) caches the guest (build-guest.sh --sound: Debian's 6.12 kernel
with virtio_snd, busybox, alsa-utils) and holds the run's logs.

One daemon serves three QEMUs in a row (TCG, never KVM):
  boot 1  the cases that need one guest: probe and hw_params against
          PCM_INFO, playback in several formats, timing, capture with input
          on, off and switched off mid-recording, back-to-back streams, QMP
          stop/cont in the middle of a play;
  boot 2  a second QEMU on the same daemon, with controls=on: probes, plays;
          then a daemon of its own with --controls and a QEMU with
          controls=on: the guest's amixer shows the mixer controls, a
          volume of 50 halves the samples, the host's input toggle shows;
  boot 3  the reconnect recipe (-S, reconnect-ms, device_add over QMP): the
          guest plays, the daemon is SIGKILLed and started again, and QEMU 10
          aborts on its vhost_dev_start assertion (pinned down: the test fails
          if QEMU does anything else); the restarted daemon must serve and
          hold no leaked fd.
Every guest command goes over a second serial port and its result comes
back on the console (guest-snd-init.sh); see README.md next to this file.

Exit status: 0 pass, 1 fail, 77 skip (a prerequisite is missing; with the CI
environment variable set a missing prerequisite is a failure instead).
"""

import argparse
import math
import json
import os
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qemu_common import (Console, Proc, Qmp, Skip, TestFailure, build_guest,  # noqa: E402
                         chardev_connected, crashed, describe_rc, expect_vhost_ops_abort, fd_targets, log,
                         now, set_log_name, shell_cmdline, unix_socket_peers, wait_for,
                         which_or_skip)

# ---------------------------------------------------------------------------
# QEMU command lines.  The vhost-user part of each is what README.md shows
# (--readme-cmdlines prints it; readme_check.py compares): the README's
# command lines are the ones this test runs.

MEM = "512M"


def snd_device_args(sock, controls=False, hotplug=False):
    """The vhost-user part of a QEMU command line for vhost-sound on `sock`.

    hotplug: the reconnect recipe.  reconnect-ms makes the chardev connect
    asynchronously, and QEMU 10 cannot realize vhost-user-snd-pci from the
    command line then ("Failed to set msg fds."): start paused (-S), add the
    device over QMP once the chardev is connected (snd_device_add()), cont."""
    args = ["-m", MEM,
            "-object", f"memory-backend-memfd,id=mem,size={MEM},share=on",
            "-numa", "node,memdev=mem",
            "-chardev", f"socket,id=snd,path={sock}" + (",reconnect-ms=500" if hotplug else "")]
    if hotplug:
        args += ["-S"]
    else:
        args += ["-device", "vhost-user-snd-pci,chardev=snd" + (",controls=on" if controls else "")]
    return args


def snd_device_add(controls=False):
    """QMP device_add of the reconnect recipe."""
    args = {"driver": "vhost-user-snd-pci", "chardev": "snd", "id": "snd0"}
    if controls:
        args["controls"] = True
    return args


def readme_cmdlines():
    """name -> the text README.md must show for it (readme_check.py)."""
    dev = "build/vhost-sound/vhost-sound --socket /tmp/snd.sock &\n"
    return {
        "snd": dev + shell_cmdline(snd_device_args("/tmp/snd.sock")),
        "snd-controls": dev + shell_cmdline(snd_device_args("/tmp/snd.sock", controls=True)),
        "snd-mixer": dev.replace("--socket", "--controls --socket")
        + shell_cmdline(snd_device_args("/tmp/snd.sock", controls=True)),
        "snd-reconnect": dev + shell_cmdline(
            snd_device_args("/tmp/snd.sock", hotplug=True)
            + ["-qmp", "unix:/tmp/qmp.sock,server=on,wait=off"],
            qmp=[("device_add", snd_device_add()), ("cont", None)], qmp_after="snd"),
    }


# ---------------------------------------------------------------------------
# patterns

# name -> (virtio format name, struct code, bytes per sample, silence byte)
FORMATS = {
    "S16_LE": ("S16", "<h", 2, 0x00),
    "S32_LE": ("S32", "<i", 4, 0x00),
    "FLOAT_LE": ("FLOAT", "<f", 4, 0x00),
    "U8": ("U8", "<B", 1, 0x80),
}


def pattern(fmt, channels, rate, frames, seed):
    """A tone on channel 0 and a frame counter (seed + frame + 1) on the
    others (channel c adds c - 1), so a dropped, repeated or shifted frame
    changes the bytes; mono carries the counter only.  No frame is silence."""
    _, code, width, _ = FORMATS[fmt]
    w = 2 * math.pi * 440 / rate
    if fmt == "S16_LE":
        tone = lambda n: int(math.sin(w * n) * 16383)               # noqa: E731
        count = lambda k: k % 32767 + 1                              # noqa: E731
    elif fmt == "S32_LE":
        tone = lambda n: int(math.sin(w * n) * 1073741823)          # noqa: E731
        count = lambda k: k * 4096                                   # noqa: E731
    elif fmt == "FLOAT_LE":
        tone = lambda n: math.sin(w * n) * 0.5                       # noqa: E731
        count = lambda k: (k % (1 << 23) + 1) / (1 << 24)            # noqa: E731
    else:
        tone = lambda n: 128 + int(math.sin(w * n) * 63)             # noqa: E731
        count = lambda k: k % 127 + 129       # never 0x80 (U8 silence)  # noqa: E731
    cols = []
    for c in range(channels):
        if channels > 1 and c == 0:
            cols.append([tone(n) for n in range(frames)])
        else:
            off = seed + 1 + c - (1 if channels > 1 else 0)
            cols.append([count(off + n) for n in range(frames)])
    flat = [v for frame in zip(*cols) for v in frame]
    return struct.pack(f"<{len(flat)}{code[1]}", *flat)


class Play:
    """One aplay of a generated pattern file."""

    def __init__(self, name, fmt, channels, rate, seconds, seed, aplay_opts="", card=0):
        self.name, self.fmt, self.channels, self.rate = name, fmt, channels, rate
        self.card = card          # the guest's sound card (extra_cards of Guest)
        self.frames = int(rate * seconds)
        self.seconds = seconds
        self.aplay_opts = aplay_opts
        self.data = pattern(fmt, channels, rate, self.frames, seed)
        self.path = f"/pat/{name}.raw"

    def cmd(self):
        return (f"aplay -D hw:{self.card},0 -t raw -f {self.fmt} -c {self.channels} -r {self.rate} "
                f"{self.aplay_opts} {self.path}").replace("  ", " ")

    def key(self):
        return (FORMATS[self.fmt][0], self.rate, self.channels)


def newc(entries):
    """A cpio (newc) archive of (path, mode, data) entries."""
    out = bytearray()
    ino = 0x7000
    for path, mode, data in entries + [("TRAILER!!!", 0, b"")]:
        name = path.encode() + b"\0"
        ino += 1
        out += b"070701" + b"".join(b"%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0))
        out += name
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def wav_bytes(fmt, channels, rate, data):
    """A plain WAV file (PCM or IEEE float, no extensible header) of `data`."""
    _, _, width, _ = FORMATS[fmt]
    tag = 3 if fmt == "FLOAT_LE" else 1
    fmt_chunk = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * width,
                            channels * width, width * 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk \
        + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def read_wav(path):
    """(key, data) of a WAV file the daemon wrote: key is (virtio format,
    rate, channels) as Play.key() has it.  The header must describe exactly
    the file (it is rewritten after every RELEASE)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise TestFailure(f"{path}: not a RIFF/WAVE file")
    if struct.unpack_from("<I", raw, 4)[0] != len(raw) - 8:
        raise TestFailure(f"{path}: RIFF size {struct.unpack_from('<I', raw, 4)[0]}, file "
                          f"holds {len(raw) - 8} bytes after it")
    pos, fmtc, data = 12, None, None
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        body = raw[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmtc = body
        elif cid == b"data":
            if pos + 8 + size != len(raw):
                raise TestFailure(f"{path}: data chunk of {size} bytes, the file has "
                                  f"{len(raw) - pos - 8} after its header")
            data = body
        pos += 8 + size + (size & 1)
    if fmtc is None or data is None:
        raise TestFailure(f"{path}: no fmt or data chunk")
    tag, ch, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmtc)
    if tag == 0xFFFE:
        tag = struct.unpack_from("<H", fmtc, 24)[0]      # SubFormat GUID's first field
    name = {(1, 8): "U8", (1, 16): "S16", (1, 32): "S32", (3, 32): "FLOAT"}.get((tag, bits))
    if not name:
        raise TestFailure(f"{path}: format tag {tag}, {bits} bits: not one this test plays")
    return (name, rate, ch), data


def silence_run(data, pos, frame, fill):
    """Frames of silence at data[pos:]."""
    n = 0
    silent = bytes([fill]) * frame
    while data[pos + n * frame:pos + (n + 1) * frame] == silent:
        n += 1
    return n


def check_output_files(base, plays):
    """The output files (base, base-2, base-3, ... in order) hold every play
    of `plays` (in order) exactly: each play's frames contiguous and exact,
    in the first file of its format from where the previous play was; before
    and after a play only silence (aplay pads its last period; the probe
    plays of /dev/zero are silence too).  Returns per play (file, leading
    silence, trailing silence) in frames."""
    stem, ext = os.path.splitext(base)
    files = []
    k = 1
    while True:
        path = base if k == 1 else f"{stem}-{k}{ext}"
        if not os.path.exists(path):
            break
        files.append((path,) + read_wav(path))
        k += 1
    if not files:
        raise TestFailure(f"no output file {base}")
    out, failures = [], []
    fi, pos = 0, 0

    def rest_silent(i, start):
        path, key, data = files[i]
        fill = 0x80 if key[0] == "U8" else 0
        bad = [j for j in range(start, len(data)) if data[j] != fill]
        if bad:
            raise TestFailure(f"{os.path.basename(path)}: non-silent byte at {bad[0]} of "
                              f"{len(data)} where only silence may be (stale or extra samples)")
    def silent_from(i, start):
        path, key, data = files[i]
        fill = 0x80 if key[0] == "U8" else 0
        return all(b == fill for b in data[start:])

    for p in plays:
        frame = len(p.data) // p.frames
        fill = FORMATS[p.fmt][3]
        # The daemon continues a file only while the format stays the same, so
        # a play is in the first file of its format, after the previous play,
        # whose samples are not all silence: files of probes in between
        # (aplay --dump-hw-params of /dev/zero) hold silence only.
        while True:
            if fi == len(files):
                raise TestFailure(f"{p.name}: no output file of format {p.key()} after the "
                                  f"previous play's ({[f[1] for f in files]})")
            if files[fi][1] == p.key() and not silent_from(fi, pos):
                break
            rest_silent(fi, pos)
            fi, pos = fi + 1, 0
        path, key, data = files[fi]
        lead = silence_run(data, pos, frame, fill)
        start = pos + lead * frame
        got = data[start:start + len(p.data)]
        if got != p.data:
            i = next((j for j in range(min(len(got), len(p.data))) if got[j] != p.data[j]),
                     min(len(got), len(p.data)))
            f = i // frame
            there = got[f * frame:f * frame + 64]
            seen = p.data.find(there) // frame if len(there) == 64 else -1
            failures.append(
                f"{p.name}: {os.path.basename(path)} differs from the played frames at frame "
                f"{f} of {p.frames} (file offset {start + i}): expected "
                f"{p.data[f * frame:f * frame + frame].hex()}, got {got[f * frame:f * frame + frame].hex()}"
                + (f", which is the play's frame {seen}: frames {seen}..{f - 1} are REPEATED"
                   if 0 <= seen < f else f", the play's frame {seen}" if seen >= 0 else ""))
            # go on after this play's last frames, wherever they are
            j = data.find(p.data[-64:], start)
            pos = j + 64 if j >= 0 else start
            out.append((os.path.basename(path), lead, None))
            continue
        pos = start + len(p.data)
        trail = silence_run(data, pos, frame, fill)
        out.append((os.path.basename(path), lead, trail))
    while fi < len(files):
        rest_silent(fi, pos)
        fi, pos = fi + 1, 0
    return out, [os.path.basename(f[0]) for f in files], failures


# ---------------------------------------------------------------------------
# the daemon

PCM_INFO_RE = re.compile(r"PCM_INFO stream (\d) \((\w+)\): formats (\S+) rates (\S+) "
                         r"channels (\d+)-(\d+)")


class Daemon:
    """A vhost-sound process.  n: its number (daemon#1, #2 share run.sock) or
    a name for a daemon of an extra sound card, which has its own sockets
    (sock, ctl) and environment (env: e.g. ALSA_CONFIG_PATH)."""

    def __init__(self, run, n, extra, sock=None, ctl=None, env=None):
        self.run = run
        self.sock, self.ctl_path = sock or run.sock, ctl or run.ctl
        argv = [run.a.daemon, "--socket", self.sock, "--control-socket", self.ctl_path,
                "--log-level", "info"] + extra
        self.proc = Proc(f"daemon#{n}", argv, os.path.join(run.rundir, f"daemon{n}.log"),
                         env=env)
        self.name = self.proc.name
        run.procs.append(self.proc)
        log(f"started {self.name} pid {self.proc.pid}: {' '.join(argv)}")
        wait_for(lambda: self.ctl_ok(), now() + 20, f"{self.name}'s control socket",
                 [self.proc])
        # what it holds serving nobody (daemon#1: before any QEMU started),
        # once it has closed its end of our QUERY connection
        self.fds_at_start = wait_for(
            lambda: (lambda p: self.fds() if p and p[1] == 0 else None)(
                unix_socket_peers(self.ctl_path, self.proc.pid)),
            now() + 10, f"{self.name} to close the QUERY connection", [self.proc])

    def fds(self):
        """Open files, the log's name made independent of the daemon's number."""
        return [re.sub(r"daemon\d+\.log$", "daemon.log", x) for x in fd_targets(self.proc.pid)]

    def ctl(self, line):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(self.ctl_path)
            s.sendall(line.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                d = s.recv(65536)
                if not d:
                    break
                buf += d
            return buf.decode().strip()
        finally:
            s.close()

    def ctl_ok(self):
        try:
            return self.ctl("QUERY").startswith("OK")
        except OSError:
            return False

    def status(self):
        """STATUS (schema 1 JSON) -> [ {key: value as text} per stream, "stream" its id ]"""
        r = self.ctl("STATUS")
        if not r.startswith("OK "):
            raise TestFailure(f"{self.name}: STATUS answered {r!r}")
        out = []
        for st in json.loads(r[3:])["streams"]:
            entry = {k: str(v) for k, v in st.items()}
            entry["stream"] = str(st["id"])
            out.append(entry)
        return out

    def pcm_info(self):
        """What the daemon told the last guest in PCM_INFO, from its log."""
        info = {}
        for m in PCM_INFO_RE.finditer(self.proc.text()):
            info[int(m.group(1))] = {
                "direction": m.group(2), "formats": m.group(3).split(","),
                "rates": [int(x) for x in m.group(4).split(",")],
                "channels": (int(m.group(5)), int(m.group(6)))}
        return info

    def set(self, what):
        r = self.ctl(f"SET {what}")
        if not r.startswith("OK"):
            raise TestFailure(f"{self.name}: SET {what} answered {r!r}")


def vhost_user_get_features(path):
    """Connect to a vhost-user socket and ask GET_FEATURES: that the daemon
    serves the protocol (not just listens).  Returns the feature bits."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall(struct.pack("<III", 1, 1, 0))
        buf = b""
        while len(buf) < 20:
            d = s.recv(20 - len(buf))
            if not d:
                raise TestFailure("vhost-user GET_FEATURES: the daemon closed the connection")
            buf += d
        req, flags, size, feats = struct.unpack("<IIIQ", buf)
        if req != 1 or size != 8 or not flags & 4:
            raise TestFailure(f"vhost-user GET_FEATURES: bad reply {req} {flags:#x} {size}")
        return feats
    finally:
        s.close()


# ---------------------------------------------------------------------------
# a private PipeWire (the configuration tests/pipewire uses)

PW_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pipewire")


class PipeWire:
    """Debian's pipewire + wireplumber on a private XDG_RUNTIME_DIR with
    tests/pipewire's configuration: null sinks test-sink (the default) and
    test-sink-2, a null source, no sound card, no D-Bus.  Its processes are
    in run.procs, so Run.teardown() stops them on every path."""

    def __init__(self, run, top):
        self.run = run
        env = dict(os.environ)
        for k in ("PIPEWIRE_RUNTIME_DIR", "PIPEWIRE_REMOTE", "DBUS_SESSION_BUS_ADDRESS"):
            env.pop(k, None)
        for sub, var in (("run", "XDG_RUNTIME_DIR"), ("state", "XDG_STATE_HOME"),
                         ("config", "XDG_CONFIG_HOME")):
            os.makedirs(os.path.join(top, sub), mode=0o700)
            env[var] = os.path.join(top, sub)
        env["WIREPLUMBER_CONFIG_DIR"] = os.path.join(PW_CONFIG, "wireplumber")
        self.env = env
        self.daemon = self._start("pipewire", ["pipewire", "-c",
                                               os.path.join(PW_CONFIG, "pipewire.conf")])
        wait_for(lambda: os.path.exists(os.path.join(top, "run", "pipewire-0")), now() + 10,
                 "the PipeWire socket", [self.daemon])
        self.manager = self._start("wireplumber", ["wireplumber", "-c", "wireplumber.conf"])
        wait_for(lambda: self.default_sink() == "test-sink", now() + 20,
                 "WirePlumber's default sink", [self.daemon, self.manager], interval=0.2)
        log(f"PipeWire up (pid {self.daemon.pid}, wireplumber {self.manager.pid}), "
            f"XDG_RUNTIME_DIR={env['XDG_RUNTIME_DIR']}")

    def _start(self, name, argv):
        p = Proc(name, argv, os.path.join(self.run.rundir, f"{name}.log"), env=self.env)
        self.run.procs.append(p)
        return p

    def dump(self):
        import subprocess
        try:
            r = subprocess.run(["pw-dump", "--no-colors"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=self.env, timeout=10)
            return json.loads(r.stdout) if r.returncode == 0 else []
        except (subprocess.TimeoutExpired, ValueError):
            return []

    def default_sink(self):
        for o in self.dump():
            if o.get("type") == "PipeWire:Interface:Metadata" and \
                    o.get("props", {}).get("metadata.name") == "default":
                for e in o.get("metadata") or []:
                    if e.get("key") == "default.audio.sink" and isinstance(e.get("value"), dict):
                        return e["value"].get("name")
        return None

    def linked(self, a, b):
        """A link joins the nodes called a and b."""
        graph = self.dump()
        ids = {}
        for o in graph:
            if o.get("type") == "PipeWire:Interface:Node":
                ids.setdefault(o["info"]["props"].get("node.name"), []).append(o["id"])
        if len(ids.get(a, [])) != 1 or len(ids.get(b, [])) != 1:
            return False
        ends = {ids[a][0], ids[b][0]}
        return any(o.get("type") == "PipeWire:Interface:Link" and
                   {o["info"].get("output-node-id"), o["info"].get("input-node-id")} == ends
                   and o["info"].get("state") != "error" for o in graph)

    def record_monitor(self, name, path):
        """pw-record of test-sink's monitor, S16 stereo 48000, into path."""
        p = self._start(name, ["pw-record", "--target", "test-sink", "--rate", "48000",
                               "--channels", "2", "--format", "s16", "-P",
                               f"{{ stream.capture.sink = true node.name = {name} }}", path])
        wait_for(lambda: self.linked(name, "test-sink"), now() + 20,
                 f"{name} linked to test-sink's monitor", [p, self.daemon], interval=0.2)
        return p


def read_wav_data(path):
    """The data chunk of a WAV file as pw-record writes it; a data chunk
    whose size was never written runs to the end of the file."""
    with open(path, "rb") as f:
        raw = f.read()
    pos = 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        if cid == b"data":
            return raw[pos + 8:] if size in (0, 0xFFFFFFFF) else raw[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    return b""


def check_exact(what, data, p):
    """data holds play p exactly: silence, every frame of p in order, silence."""
    frame = len(p.data) // p.frames
    fill = FORMATS[p.fmt][3]
    lead = silence_run(data, 0, frame, fill)
    got = data[lead * frame:lead * frame + len(p.data)]
    if got != p.data:
        i = next((j for j in range(min(len(got), len(p.data))) if got[j] != p.data[j]),
                 min(len(got), len(p.data)))
        raise TestFailure(f"{p.name}: {what} differs from the played frames at frame "
                          f"{i // frame} of {p.frames} ({len(data) // frame} frames, {lead} "
                          "silent before the play)")
    rest = data[lead * frame + len(p.data):]
    if rest.count(bytes([fill])) != len(rest):
        raise TestFailure(f"{p.name}: {what} has non-silent bytes after the play's last frame")
    return lead, len(rest) // frame


# ---------------------------------------------------------------------------
# one QEMU + guest

class Result:
    def __init__(self, rc, out, t0, t1):
        self.rc, self.out, self.t0, self.t1 = rc, out, t0, t1

    @property
    def secs(self):
        return self.t1 - self.t0


class Guest:
    def __init__(self, run, n, controls=False, hotplug=False, no_core=False, extra_cards=()):
        """extra_cards: (chardev id, vhost-user socket, PCI slot) of more
        vhost-user-snd-pci devices, each on its own daemon; their slots lie
        after the first device's, so Linux numbers them card1, card2, ...
        in this order (check_cards() checks)."""
        self.run, self.n = run, n
        d = run.sockdir
        self.qmp_path = os.path.join(d, f"qmp{n}.sock")
        self.cmd_path = os.path.join(d, f"cmd{n}.sock")
        self.console_path = os.path.join(run.rundir, f"console{n}.log")
        self.console = Console(self.console_path, prefixes=("VHTEST",))
        self.hotplug = hotplug
        self.next_id = 1
        argv = [run.qemu_bin, "-accel", "tcg", "-smp", "1", "-nodefaults",
                "-display", "none", "-no-reboot",
                "-kernel", run.kernel, "-initrd", run.initrd,
                "-append", "console=ttyS0 panic=-1",
                "-serial", f"file:{self.console_path}",
                "-chardev", f"socket,id=cmd,path={self.cmd_path},server=on,wait=off",
                "-serial", "chardev:cmd",
                "-drive", f"file={run.xfer},format=raw,if=virtio,cache=writethrough",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        argv += snd_device_args(run.sock, controls=controls, hotplug=hotplug)
        self.extra_cards = list(extra_cards)
        for cid, sock, slot in self.extra_cards:
            argv += ["-chardev", f"socket,id={cid},path={sock}",
                     "-device", f"vhost-user-snd-pci,chardev={cid},addr={slot:#x}"]
        with open(os.path.join(run.rundir, f"qemu{n}.cmdline"), "w") as f:
            f.write(" ".join(argv) + "\n")
        self.proc = Proc(f"qemu#{n}", argv, os.path.join(run.rundir, f"qemu{n}.log"),
                         no_core=no_core)
        self.name = self.proc.name
        run.procs.append(self.proc)
        self.t_start = now()
        log(f"started {self.name} pid {self.proc.pid}" + (" (controls=on)" if controls else "")
            + (" paused, reconnect-ms=500, device_add over QMP" if hotplug else ""))
        self.qmp = Qmp(self.qmp_path, now() + 30, self.proc)
        run.qmps.append(self.qmp)
        if hotplug:
            wait_for(self.chardev_connected, now() + 20, "the snd chardev to connect",
                     [self.proc])
            r = self.qmp.cmd("device_add", **snd_device_add(controls))
            if "error" in r:
                raise TestFailure(f"device_add vhost-user-snd-pci failed: {r['error']}")
            r = self.qmp.cmd("cont")
            if "error" in r:
                raise TestFailure(f"cont failed: {r['error']}")
        self.cmd_sock = wait_for(self._connect_cmd, now() + 10, "the command serial port",
                                 [self.proc])

    def check_cards(self):
        """Wait for the extra cards; card k + 1 must be extra_cards[k] (its
        PCI slot), card0 the first device.  Returns /proc/asound/cards."""
        n = len(self.extra_cards)
        r = self.sh(f"i=0; while [ ! -c /dev/snd/pcmC{n}D0p ] && [ $i -lt 300 ]; do sleep 0.1; "
                    "i=$((i+1)); done; cat /proc/asound/cards; for c in /sys/class/sound/card*; "
                    "do echo SLOT ${c##*card} $(basename $(dirname $(readlink -f $c/device))); done")
        slots = dict(x.split()[1:3] for x in r.out if x.startswith("SLOT ") and len(x.split()) == 3)
        for k, (cid, _, slot) in enumerate(self.extra_cards):
            want = f"0000:00:{slot:02x}.0"
            if slots.get(str(k + 1)) != want:
                raise TestFailure(f"guest {self.n}: card{k + 1} is on PCI {slots.get(str(k + 1))}, "
                                  f"want {want} ({cid}); cards: {slots}")
        if slots.get("0") in [f"0000:00:{c[2]:02x}.0" for c in self.extra_cards]:
            raise TestFailure(f"guest {self.n}: card0 is an extra card ({slots})")
        return [x for x in r.out if not x.startswith("SLOT ")]

    def _connect_cmd(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.cmd_path)
            return s
        except OSError:
            s.close()
            return None

    def chardev_connected(self):
        return chardev_connected(self.qmp, "snd")

    def check(self):
        self.console.poll()
        f = self.console.find("VHTEST-FAIL")
        if f:
            raise TestFailure(f"guest {self.n}: " + " ".join(f[1]))

    def wait_ready(self, timeout=150):
        def ready():
            self.check()
            return self.console.find("VHTEST-READY")
        wait_for(ready, now() + timeout, f"guest {self.n} to find its sound card",
                 [self.proc], interval=0.2)
        for tag, args in self.console.lines:
            if tag == "VHTEST-INFO":
                log(f"  guest {self.n}: {' '.join(args)}")
        log(f"guest {self.n} ready {now() - self.t_start:.1f}s after QEMU started "
            f"(guest uptime {self.console.find('VHTEST-READY')[1][0]}s)")

    def send(self, cmd):
        i = f"c{self.next_id}"
        self.next_id += 1
        if "\n" in cmd:
            raise ValueError("one line per command")
        self.cmd_sock.sendall(f"{i} {cmd}\n".encode())
        return i

    def result(self, i, timeout):
        def done():
            self.check()
            for tag, args in self.console.lines:
                if tag == "VHTEST-END" and args and args[0] == i:
                    return args
            return None
        end = wait_for(done, now() + timeout, f"guest command {i}", [self.proc], interval=0.1)
        begin = [a for t, a in self.console.lines if t == "VHTEST-BEGIN" and a[0] == i][0]
        out = [" ".join(a[1:]) for t, a in self.console.lines if t == "VHTEST-OUT" and a[0] == i]
        return Result(int(end[1]), out, float(begin[1]), float(end[2]))

    def sh(self, cmd, timeout=60, ok=True):
        r = self.result(self.send(cmd), timeout)
        if ok and r.rc != 0:
            raise TestFailure(f"guest {self.n}: `{cmd}` failed with status {r.rc}: {r.out[-8:]}")
        return r

    def quit(self):
        self.qmp.try_cmd("quit")
        rc = self.proc.wait(20)
        if rc != 0:
            raise TestFailure(f"{self.name} did not exit 0 on QMP quit: {describe_rc(rc)}")


# ---------------------------------------------------------------------------
# checks

def alsa_format_name(virtio):
    """virtio format name -> ALSA's (as aplay --dump-hw-params prints it)."""
    special = {"S8": "S8", "U8": "U8", "FLOAT": "FLOAT_LE", "FLOAT64": "FLOAT64_LE",
               "IMA_ADPCM": "IMA_ADPCM", "MU_LAW": "MU_LAW", "A_LAW": "A_LAW",
               "IEC958_SUBFRAME": "IEC958_SUBFRAME_LE", "DSD_U8": "DSD_U8",
               "DSD_U16": "DSD_U16_LE", "DSD_U32": "DSD_U32_LE"}
    if virtio in special:
        return special[virtio]
    if virtio.endswith("_3"):
        return virtio[:-2] + "_3LE"
    return virtio + "_LE"


# rates the guest is asked for: every rate of the spec, and three that are not
SPEC_RATES = [5512, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000,
              64000, 88200, 96000, 176400, 192000, 384000]
ODD_RATES = [7000, 12345, 50000]
# The rates Linux 6.12's virtio_snd can hand to ALSA (its virtio -> ALSA
# rate table ends at 192000 and has no 12000 or 24000): a rate PCM_INFO
# advertises outside this set is never asked for, hw_params settles on a
# neighbour (measured: 12000 -> 11025, 24000 -> 22050, 384000 -> 192000).
LINUX_RATES = [5512, 8000, 11025, 16000, 22050, 32000, 44100, 48000, 64000, 88200,
               96000, 176400, 192000]


class Case:
    """One case: logs its time.  A failing case with fatal=False is recorded
    (the run fails at the end) and the next cases still run."""

    def __init__(self, run, name, fatal=True):
        self.run, self.name, self.fatal = run, name, fatal

    def __enter__(self):
        self.t0 = now()
        log(f"--- case {self.name}")
        return self

    def __exit__(self, et, ev, tb):
        dt = now() - self.t0
        self.run.timings.append((self.name, dt, "ok" if et is None else "FAILED"))
        log(f"--- case {self.name}: {'ok' if et is None else 'FAILED'} in {dt:.1f}s")
        if et is TestFailure and not self.fatal:
            log(f"FAILED (going on with the next case): {ev}")
            self.run.failures.append(f"{self.name}: {ev}")
            return True
        return False


class Run:
    def __init__(self, a):
        self.a = a
        self.workdir = os.path.abspath(a.workdir)
        self.rundir = os.path.join(self.workdir, a.run_name)
        self.procs, self.qmps, self.timings, self.failures = [], [], [], []
        self.sockdir = None
        self.expected_abort = set()
        self.killed = set()     # daemons SIGKILLed on purpose: no SIGTERM exit to check

    def setup(self):
        a = self.a
        self.qemu_bin = which_or_skip(a.qemu, "tools/setup.sh --tests installs it")
        if not (os.path.isfile(a.daemon) and os.access(a.daemon, os.X_OK)):
            raise TestFailure(f"daemon binary {a.daemon} missing or not executable")
        import subprocess
        devs = subprocess.run([self.qemu_bin, "-device", "help"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=60).stdout
        if '"vhost-user-snd-pci"' not in devs:
            raise Skip(f"{self.qemu_bin} has no vhost-user-snd-pci (QEMU >= 9.0 needed; "
                       "tools/setup.sh --tests installs QEMU 10 from bookworm-backports)")
        self.qemu_version = subprocess.run([self.qemu_bin, "--version"], stdout=subprocess.PIPE,
                                           text=True).stdout.splitlines()[0]
        log(self.qemu_version)
        kernel, initrd = build_guest(self.workdir, sound=True)
        if os.path.isdir(self.rundir):
            shutil.rmtree(self.rundir)
        os.makedirs(self.rundir)
        self.sockdir = tempfile.mkdtemp(prefix="vhostpp-snd.")
        self.sock = os.path.join(self.sockdir, "snd.sock")
        self.ctl = os.path.join(self.sockdir, "ctl.sock")
        self.kernel = kernel
        self.xfer = os.path.join(self.rundir, "xfer.img")
        with open(self.xfer, "wb") as f:
            f.truncate(16 << 20)
        self.make_plays()
        # the guest image plus a second cpio archive with the patterns
        self.initrd = os.path.join(self.rundir, "initrd-patterns")
        with open(initrd, "rb") as f:
            base = f.read()
        base += b"\0" * (-len(base) % 512)
        entries = [("pat", 0o040755, b"")] + [
            (p.path[1:], 0o100644, p.data) for p in self.plays.values()]
        with open(self.initrd, "wb") as f:
            f.write(base + newc(entries))

    def make_plays(self):
        P = Play
        plays = [
            P("s16-48k", "S16_LE", 2, 48000, 1.0, 0),
            P("s32-44k", "S32_LE", 2, 44100, 1.0, 100000),
            P("float-6ch", "FLOAT_LE", 6, 48000, 0.5, 200000),
            P("u8-8k", "U8", 1, 8000, 1.0, 7),
            P("small-period", "S16_LE", 2, 48000, 1.0, 300000, "--period-time=5000"),
            P("large-buffer", "S16_LE", 2, 48000, 2.0, 400000, "--buffer-time=1000000"),
            P("timing-ref", "S16_LE", 2, 48000, 1.0, 480000),
            P("timing-10s", "S16_LE", 2, 48000, 10.0, 500000),
            P("b2b-1", "S16_LE", 2, 48000, 0.5, 1000000),
            P("b2b-2", "S16_LE", 2, 48000, 0.5, 1100000),
            P("after-capture", "S16_LE", 2, 48000, 0.5, 1200000),
            P("pause", "S16_LE", 2, 48000, 4.0, 1300000),
            P("boot2", "S16_LE", 2, 48000, 1.0, 2000000),
            P("mixer-half", "S16_LE", 2, 48000, 1.0, 2500000),
            P("boot3", "S16_LE", 2, 48000, 1.0, 3000000),
            P("boot3-killed", "S16_LE", 2, 48000, 3.0, 3100000),
            # card1: --backend alsa into alsa-lib's file plugin; card2:
            # --backend pipewire into a private PipeWire's null sink
            P("alsa-s16", "S16_LE", 2, 48000, 1.0, 4000000, card=1),
            P("alsa-s32-44k", "S32_LE", 2, 44100, 1.0, 150000, card=1),
            P("pw-s16", "S16_LE", 2, 48000, 1.0, 5000000, card=2),
        ]
        self.plays = {p.name: p for p in plays}
        self.played = []          # plays that completed, in order

    # ---- cases -----------------------------------------------------------
    def play(self, g, name, timeout=None):
        """aplay of plays[name]; card0's plays are checked in the output
        files at the end (self.played), the extra cards' by their case."""
        p = self.plays[name]
        r = g.sh(p.cmd(), timeout=timeout or 30 + 3 * p.seconds)
        bad = [x for x in r.out if "underrun" in x.lower() or "error" in x.lower()]
        if bad:
            raise TestFailure(f"{name}: aplay reported {bad[:3]}")
        if r.secs < p.seconds * 0.98:
            raise TestFailure(f"{name}: {p.frames} frames at {p.rate} Hz played in "
                              f"{r.secs:.2f}s of guest time: faster than real time")
        if p.card == 0:
            self.played.append(p)
        log(f"{name}: {p.frames} frames {p.fmt} {p.channels} ch {p.rate} Hz played in "
            f"{r.secs:.2f}s guest time ({p.aplay_opts or 'default buffer'})")
        return r

    def case_probe(self, g, d):
        r = g.sh("cat /proc/asound/card0/pcm0p/info; cat /proc/asound/card0/pcm0c/info; "
                 "aplay -l; arecord -l")
        text = "\n".join(r.out)
        streams = re.findall(r"^stream: (\w+)", text, re.M)
        if streams != ["PLAYBACK", "CAPTURE"]:
            raise TestFailure(f"pcm0p/pcm0c info: streams {streams}: {r.out[:20]}")
        devs = [x for x in r.out if x.startswith("card 0:")]
        if len(devs) != 2:
            raise TestFailure(f"aplay -l + arecord -l list {len(devs)} devices, want 1 + 1: {devs}")
        log(f"probe: {devs[0]} (playback and capture)")
        info = d.pcm_info()
        if sorted(info) != [0, 1]:
            raise TestFailure(f"daemon logged PCM_INFO for streams {sorted(info)}, want 0 and 1")
        for sid, tool, direction in ((0, "aplay", "output"), (1, "arecord", "input")):
            adv = info[sid]
            if adv["direction"] != direction:
                raise TestFailure(f"PCM_INFO stream {sid} is {adv['direction']}")
            src = "/dev/zero" if tool == "aplay" else "/dev/null"
            dump = g.sh(f"{tool} -D hw:0,0 --dump-hw-params -t raw -f S16_LE -c 2 -r 48000 "
                        f"-s 1 {src}", ok=False)
            hw = {}
            for line in dump.out:
                m = re.match(r"^([A-Z_]+): +(.*)$", line)
                if m:
                    hw[m.group(1)] = m.group(2).split()
            want = sorted(alsa_format_name(f) for f in adv["formats"])
            got = sorted(hw.get("FORMAT", []))
            if got != want:
                raise TestFailure(f"{tool} hw_params FORMAT {got} != PCM_INFO {want}")
            ch = hw.get("CHANNELS", [])
            want_ch = [str(adv["channels"][0])] if adv["channels"][0] == adv["channels"][1] \
                else [f"[{adv['channels'][0]}", f"{adv['channels'][1]}]"]
            if ch != want_ch:
                raise TestFailure(f"{tool} hw_params CHANNELS {ch} != PCM_INFO {want_ch}")
            # the exact rates: ask for each and see what hw_params settles on
            rates = SPEC_RATES + ODD_RATES
            loop = (f"for r in {' '.join(map(str, rates))}; do echo RATE $r $({tool} -v -D hw:0,0 "
                    f"-t raw -f S16_LE -c 2 -r $r -s 1 -B 20000 {src} 2>&1 | "
                    "sed -n 's/^ *rate *: *\\([0-9]*\\).*/\\1/p' | head -n 1); done")
            rr = g.sh(loop, timeout=120)
            accepted = sorted(int(x.split()[1]) for x in rr.out
                              if x.startswith("RATE ") and len(x.split()) == 3
                              and x.split()[1] == x.split()[2])
            usable = sorted(set(adv["rates"]) & set(LINUX_RATES))
            if accepted != usable:
                got_map = [x for x in rr.out if x.startswith("RATE")]
                raise TestFailure(f"{tool}: hw_params accepts exactly the rates {accepted}; PCM_INFO "
                                  f"advertised {sorted(adv['rates'])}, of which Linux can use "
                                  f"{usable} ({got_map})")
            log(f"{tool}: hw_params accepts exactly what PCM_INFO stream {sid} advertised: "
                f"{len(got)} formats, channels {' '.join(ch)}, rates {accepted} (none of "
                f"{ODD_RATES}); advertised but unusable by Linux's virtio_snd: "
                f"{sorted(set(adv['rates']) - set(LINUX_RATES)) or 'none'}")

    def case_timing(self, g):
        """10 s of audio take 10 s.  A guest command's time also holds what
        does not scale with the audio: starting aplay and parsing alsa.conf
        under TCG, and the drain of the last period (measured 0.3-0.5 s).  So
        the rate is measured as the difference to a 1 s play of the same
        format right before it: (T10 - T1) / 9 s must be within 2 %; and T10
        alone can never be shorter than 98 % of the audio."""
        ref, p = self.plays["timing-ref"], self.plays["timing-10s"]
        r1 = self.play(g, "timing-ref")
        r10 = self.play(g, "timing-10s", timeout=90)
        audio = p.seconds - ref.seconds
        ratio = (r10.secs - r1.secs) / audio
        log(f"timing: {p.seconds:.0f}s of audio took {r10.secs:.3f}s of guest time, "
            f"{ref.seconds:.0f}s took {r1.secs:.3f}s: the {audio:.0f}s difference took "
            f"{r10.secs - r1.secs:.3f}s ({(ratio - 1) * 100:+.2f}%)")
        if not 0.98 <= ratio <= 1.02:
            raise TestFailure(f"timing: {audio:.0f}s of audio took {r10.secs - r1.secs:.3f}s "
                              "(difference of a 10 s and a 1 s play), not within 2%")

    def capture_cmd(self, n, frames):
        """arecord `frames` frames of the input file's format; the data goes
        to slot n of the scratch disk for capture_data()."""
        return (f"arecord -D hw:0,0 -t raw -f S16_LE -c 2 -r 48000 -s {frames} /tmp/c.raw && "
                f"dd if=/tmp/c.raw of=/dev/vda bs=512 seek={n * 4096} conv=fsync 2>/dev/null && "
                "wc -c < /tmp/c.raw")

    def capture_data(self, n, r, frames):
        if r.rc != 0:
            raise TestFailure(f"capture: arecord failed: {r.out[-5:]}")
        size = int(r.out[-1])
        if size != frames * 4:
            raise TestFailure(f"capture: arecord wrote {size} bytes, want {frames * 4}")
        with open(self.xfer, "rb") as f:
            f.seek(n * 4096 * 512)
            return f.read(size)

    def input_file_open(self, d):
        return [x for x in fd_targets(d.proc.pid) if x == self.input_wav]

    def running(self, d, sid):
        return any(st.get("stream") == str(sid) and st.get("state") == "running"
                   for st in d.status())

    def case_capture(self, g, d):
        frames = 48000
        # input off (the daemon's default): zeros, and the file is never open
        i = g.send(self.capture_cmd(0, frames))
        wait_for(lambda: self.running(d, 1), now() + 30, "the capture stream to run",
                 [g.proc, d.proc])
        opened = self.input_file_open(d)
        data = self.capture_data(0, g.result(i, 60), frames)
        if opened:
            raise TestFailure(f"input off: the daemon holds {opened} open while capturing")
        if data.count(0) != len(data):
            raise TestFailure("capture with input off: not all zeros")
        log(f"input off: {frames} frames captured, all zero; the daemon did not hold "
            f"{os.path.basename(self.input_wav)} open while the stream ran")
        # input on: the file's frames, from its first one
        d.set("input on")
        data = self.capture_data(1, g.sh(self.capture_cmd(1, frames)), frames)
        want = self.input_data[:len(data)]
        if data != want:
            j = next(k for k in range(len(data)) if data[k] != want[k])
            raise TestFailure(f"input on: capture differs from the input file at frame {j // 4}: "
                              f"{data[j // 4 * 4:j // 4 * 4 + 16].hex()} != "
                              f"{want[j // 4 * 4:j // 4 * 4 + 16].hex()}")
        log(f"input on: {frames} frames captured, exactly the input file's first {frames}")
        # switched off in the middle of a recording
        frames = 3 * 48000
        i = g.send(self.capture_cmd(2, frames))
        wait_for(lambda: any(st.get("stream") == "1" and st.get("state") == "running"
                             and int(st.get("bytes", 0)) >= 48000 * 4 for st in d.status()),
                 now() + 30, "a second of capture", [g.proc, d.proc])
        before = int([st for st in d.status() if st["stream"] == "1"][0]["bytes"]) // 4
        d.set("input off")
        st = [st for st in d.status() if st["stream"] == "1"][0]
        after, period = int(st["bytes"]) // 4, int(st["period_bytes"]) // 4
        time.sleep(0.3)
        opened = self.input_file_open(d)
        data = self.capture_data(2, g.result(i, 60), frames)
        if opened:
            raise TestFailure(f"input switched off: the daemon still holds {opened} open")
        nz = [k for k in range(0, len(data), 4) if data[k:k + 4] != b"\0\0\0\0"]
        switch = (nz[-1] + 4) // 4 if nz else 0
        if data[:switch * 4] != self.input_data[:switch * 4]:
            raise TestFailure("input switched off: the frames before the switch are not the "
                              "input file's")
        # The daemon also silences the captured bytes of the buffer it was
        # filling at the switch (every buffer completed after SET is silent),
        # so the zeros may start at that period's first frame.
        if not before // period * period <= switch <= after + period:
            raise TestFailure(f"input switched off: zeros from frame {switch}; the device had "
                              f"delivered {before} frames before SET and {after} right after, "
                              f"period {period} frames")
        log(f"input switched off mid-recording: the file's frames up to {switch}, zeros from "
            f"there on ({before} delivered before SET input off, {after} after it, period "
            f"{period}: {switch - after} frames after the reply); the file is closed")

    def case_pause(self, g):
        p = self.plays["pause"]
        i = g.send(p.cmd())
        wait_for(lambda: g.check() or any(t == "VHTEST-BEGIN" and a[0] == i
                                         for t, a in g.console.lines),
                 now() + 20, "the paused play to start", [g.proc])
        time.sleep(1.5)
        r = g.qmp.cmd("stop")
        if "error" in r:
            raise TestFailure(f"QMP stop: {r['error']}")
        t_stop = now()
        time.sleep(2.0)
        r = g.qmp.cmd("cont")
        if "error" in r:
            raise TestFailure(f"QMP cont: {r['error']}")
        log(f"pause: VM stopped for {now() - t_stop:.2f}s in the middle of the play")
        r = g.result(i, 60)
        if r.rc != 0:
            raise TestFailure(f"pause: aplay failed after stop/cont: {r.out[-5:]}")
        self.played.append(p)
        log(f"pause: the play completed ({r.secs:.2f}s guest time for {p.seconds:.1f}s "
            f"of audio); aplay said {r.out[-3:] or 'nothing'}")

    def wait_exact(self, what, read, p, procs, timeout=15):
        """Poll read() until it holds play p exactly (check_exact); the
        back-end may still be writing the last period after aplay returned.
        Returns (leading, trailing) silent frames."""
        deadline = now() + timeout
        while True:
            try:
                return check_exact(what, read(), p)
            except TestFailure:
                if now() > deadline:
                    raise
            for q in procs:
                if not q.alive():
                    raise TestFailure(f"{q.name} exited ({describe_rc(q.rc())}) while waiting "
                                      f"for {p.name} in {what}")
            time.sleep(0.2)

    def case_alsa(self, g):
        """Issue 8: --backend alsa with alsa-lib's file plugin (over null,
        which has no clock: the back-end paces itself, so no play may be
        faster than real time, which play() checks)."""
        for name in ("alsa-s16", "alsa-s32-44k"):
            p = self.plays[name]
            self.play(g, name)

            def read():
                with open(self.alsa_raw, "rb") as f:
                    return f.read()
            lead, trail = self.wait_exact(os.path.basename(self.alsa_raw), read, p,
                                          [self.d_alsa.proc])
            log(f"{name}: alsa-lib's file plugin holds the {p.frames} frames exactly "
                f"({lead} silent frames before, {trail} after)")

    def case_pipewire(self, g):
        """Issue 9: --backend pipewire into the private PipeWire's default
        sink; pw-record reads the sink's monitor as S16.  PipeWire converts
        S16 to float as s / 32768 and back exactly (tests/pipewire checks
        both), so the monitor must hold the guest's S16 frames bit-exact."""
        p = self.plays["pw-s16"]
        path = os.path.join(self.rundir, "pw-monitor.wav")
        rec = self.pw.record_monitor("guest-rec", path)
        self.play(g, "pw-s16")
        lead, trail = self.wait_exact("pw-record of test-sink's monitor",
                                      lambda: read_wav_data(path), p,
                                      [rec, self.pw.daemon, self.d_pw.proc])
        rec.kill(signal.SIGINT)
        if rec.wait(10) is None:
            raise TestFailure("pw-record did not exit on SIGINT")
        lead, trail = check_exact("pw-record of test-sink's monitor", read_wav_data(path), p)
        log(f"pw-s16: test-sink's monitor holds the {p.frames} frames bit-exact ({lead} "
            f"silent frames before, {trail} after)")

    def mic_jack(self, g):
        """The guest's 'Mic Jack' control (amixer -c0 contents): "on" or "off"."""
        r = g.sh("amixer -c 0 contents")
        for k, line in enumerate(r.out):
            if "name='Mic Jack'" in line:
                for v in r.out[k + 1:k + 4]:
                    m = re.match(r"^: values=(on|off)$", v.strip())
                    if m:
                        return m.group(1)
        raise TestFailure(f"no 'Mic Jack' control with a value in amixer -c 0 contents: {r.out}")

    def case_jack(self, g, d):
        """Issue 10: the input's enable flag is the microphone jack's state in
        the guest (JACK_CONNECTED / JACK_DISCONNECTED events)."""
        start = self.mic_jack(g)
        if start != "off":
            raise TestFailure(f"input is off, but the guest's Mic Jack is {start}")
        for what, want in (("input on", "on"), ("input off", "off")):
            t0 = now()
            d.set(what)
            got = wait_for(lambda: (lambda v: v if v == want else None)(self.mic_jack(g)),
                           now() + 10, f"the guest's Mic Jack to become {want} after SET {what}",
                           [g.proc, d.proc], interval=0.1)
            log(f"SET {what}: the guest's Mic Jack is {got} {now() - t0:.2f}s later")

    # ---- boots -------------------------------------------------------------
    def boot1(self, d):
        with Case(self, "boot 1"):
            g = Guest(self, 1, extra_cards=[("snd-alsa", self.d_alsa.sock, 0x10),
                                            ("snd-pw", self.d_pw.sock, 0x11)])
            g.wait_ready()
            cards = g.check_cards()
            log("cards: card0 file back-end, card1 ALSA, card2 PipeWire: " + " | ".join(cards))
        with Case(self, "1 probe + hw_params = PCM_INFO"):
            self.case_probe(g, d)
        with Case(self, "2 playback formats"):
            for name in ("s16-48k", "s32-44k", "float-6ch", "u8-8k", "small-period",
                         "large-buffer"):
                self.play(g, name)
        with Case(self, "3 timing 10 s", fatal=False):
            self.case_timing(g)
        with Case(self, "4 capture: off, on, switched off"):
            self.case_capture(g, d)
        with Case(self, "5 back to back + play after capture"):
            self.play(g, "after-capture")
            self.play(g, "b2b-1")
            self.play(g, "b2b-2")
        with Case(self, "6 QMP stop/cont mid-play"):
            self.case_pause(g)
        with Case(self, "10 mic jack follows input", fatal=False):
            self.case_jack(g, d)
        with Case(self, "ALSA back-end: aplay into the file plugin", fatal=False):
            self.case_alsa(g)
        with Case(self, "PipeWire back-end: aplay to the sink", fatal=False):
            self.case_pipewire(g)
        with Case(self, "quit 1"):
            g.quit()
            log("qemu#1 quit; the daemon waits for the next QEMU")

    def boot2(self, d):
        with Case(self, "6 second QEMU + 8 controls=on"):
            g = Guest(self, 2, controls=True)
            g.wait_ready()
            r = g.sh("aplay -l; amixer -c 0 controls || true")
            log(f"controls=on: {[x for x in r.out if x.startswith('card 0:')]}; amixer: "
                f"{r.out[-3:]}")
            if any("Master Playback" in x for x in r.out):
                raise TestFailure("a daemon without --controls offered mixer controls: "
                                  f"{r.out[-6:]}")
            self.play(g, "boot2")
            g.quit()

    def boot4(self):
        """The mixer controls in a real guest, then a restart of the daemon
        while that guest is idle.  A daemon of its own (its sockets, its
        output file): one that offers VIRTIO_SND_F_CTLS cannot serve a QEMU
        without controls=on, which boot 1 is.  The guest comes by the
        reconnect recipe (controls=on in device_add), so that QEMU
        reconnects when the daemon is restarted."""
        saved = self.sock, self.ctl
        self.sock = os.path.join(self.sockdir, "snd-mixer.sock")
        self.ctl = os.path.join(self.sockdir, "ctl-mixer.sock")
        g = None
        try:
            with Case(self, "boot 4 (controls=on, reconnect recipe)"):
                self.mixer_args = ["--backend", "file", "--output-file",
                                   os.path.join(self.rundir, "mixer-out.wav"),
                                   "--input-file", self.input_wav, "--controls"]
                d = Daemon(self, 3, self.mixer_args)
                g = Guest(self, 4, controls=True, hotplug=True, no_core=True)
                g.wait_ready()
            with Case(self, "8 mixer: amixer, volume 50 % halves the samples, host mic",
                      fatal=False):
                self.case_mixer(g, d)
            with Case(self, "7 restart while idle: QEMU 10 aborts"):
                self.case_restart_idle(g, d)
        finally:
            self.sock, self.ctl = saved
            if g and g.proc.alive():    # failed half way: boot 3 should not share the CPU
                g.proc.kill(signal.SIGTERM)
                g.proc.wait(10)

    def case_mixer(self, g, d):
        out = self.mixer_args[self.mixer_args.index("--output-file") + 1]
        if True:
            r = g.sh("amixer -c 0 contents")
            text = "\n".join(r.out)
            log("amixer -c 0 contents:\n    " + "\n    ".join(r.out))
            want = {"Master Playback Volume": "min=0,max=100,step=1",
                    "Master Playback Switch": "type=BOOLEAN",
                    "Capture Volume": "min=0,max=200,step=1",
                    "Capture Switch": "type=BOOLEAN",
                    "Host Microphone Capture Switch": "type=BOOLEAN,access=r"}
            for name, info in want.items():
                m = re.search(r"name='" + re.escape(name) + r"'\n\s*; (\S+)", text)
                if not m or info not in m.group(1):
                    raise TestFailure(f"amixer contents: {name!r} with {info!r} missing: "
                                      f"{r.out[:40]}")
            if text.count("dBlinear") < 2:
                raise TestFailure("amixer contents: no dB scale on the two volumes")

            # the guest sets the playback volume to half: every S16 sample
            # the host gets is s * 50 / 100, truncated toward zero
            g.sh("amixer -c 0 cset name='Master Playback Volume' 50")
            st = json.loads(d.ctl("STATUS")[3:])["mixer"]
            if st["controls"][0]["value"] != 50 or not st["negotiated"]:
                raise TestFailure(f"after cset 50 the daemon's mixer is {st}")
            p = self.plays["mixer-half"]
            g.sh(p.cmd(), timeout=30 + 3 * p.seconds)
            half = struct.pack(f"<{len(p.data) // 2}h", *[
                int(v / 2) for v in struct.unpack(f"<{len(p.data) // 2}h", p.data)])
            _, data = read_wav(out)
            at = data.find(half)
            if at < 0:
                at_full = data.find(p.data)
                raise TestFailure("the host's file does not hold the play at half volume"
                                  + (" (it holds it at full volume)" if at_full >= 0 else ""))
            log(f"volume 50: the host's file holds all {p.frames} frames at exactly half "
                f"(s * 50 / 100, truncated), from byte {at}")

            # the host's input toggle, seen in the guest's read-only control
            def host_mic():
                r = g.sh("amixer -c 0 cget name='Host Microphone Capture Switch'")
                vals = [x for x in r.out if x.strip().startswith(": values=")]
                return vals[0].split("=", 1)[1] if vals else None
            before = host_mic()
            d.set("input on")
            on = host_mic()
            d.set("input off")
            off = host_mic()
            if (before, on, off) != ("off", "on", "off"):
                raise TestFailure(f"Host Microphone in the guest: {before} at start, {on} after "
                                  f"SET input on, {off} after SET input off")
            # the host's volume, seen by the guest
            r = d.ctl("VOLUME output 40%")
            g2 = g.sh("amixer -c 0 cget name='Master Playback Volume'")
            if r != "OK output volume 40%" or not any(x.strip() == ": values=40" for x in g2.out):
                raise TestFailure(f"VOLUME output 40% answered {r!r}; the guest reads {g2.out}")
            log("host microphone in the guest's amixer: off, on after SET input on, off after "
                "SET input off; VOLUME output 40% reads 40 in the guest")

    def case_restart_idle(self, g, d1):
        """Case 7 with the guest idle, its driver loaded and no stream
        running: the SIGKILLed daemon's successor gets QEMU's reconnect and
        QEMU 10.0 aborts all the same (vub_connect() restarts a vhost device
        that vub_disconnect() cleaned up)."""
        r = g.sh("lsmod | grep -c '^virtio_snd' ; cat /proc/asound/cards")
        if not r.out or r.out[0].strip() != "1":
            raise TestFailure(f"the guest's virtio_snd is not loaded: {r.out}")
        busy = [s for s in d1.status() if s.get("state") in ("running", "prepared")]
        if busy:
            raise TestFailure(f"the guest is not idle: streams {busy}")
        self.kill_and_restart(g, d1, 4, self.mixer_args, "while the guest is idle")

    def kill_and_restart(self, g, d1, n, args, when):
        """SIGKILL d1 under QEMU g, start daemon n with `args` on the same
        sockets; QEMU must reconnect to it and abort the QEMU 10.0 way, and
        the new daemon must serve on with nothing leaked."""
        qlog_pos = len(g.proc.text())
        d1.proc.kill(signal.SIGKILL)
        d1.proc.wait(10)
        self.killed.add(d1.proc)
        log(f"SIGKILLed {d1.name} {when}")
        wait_for(lambda: not g.chardev_connected(), now() + 15, "QEMU to see the disconnect",
                 [g.proc])
        d2 = Daemon(self, n, args)
        # the fd baseline: d1 before any QEMU (QEMU reconnects to d2 within
        # reconnect-ms=500, too soon for a sample of its own)
        base = d1.fds_at_start
        assertion = expect_vhost_ops_abort(g.proc, qlog_pos, self.qemu_version)
        self.expected_abort.add(g.proc)
        conns = d2.proc.text().count("front-end connected")
        if conns < 1:
            raise TestFailure(f"{d2.name} never saw QEMU reconnect before the abort")
        log(f"QEMU aborted as QEMU 10.0 does: {assertion}; {d2.name} had accepted "
            f"{conns} connection(s)")
        # the daemon's side: alive, serving, nothing leaked
        if not d2.proc.alive():
            raise TestFailure(f"{d2.name} died: {describe_rc(d2.proc.rc())}")
        idle = wait_for(lambda: (lambda p: p if p and p[1] == 0 else None)(
            unix_socket_peers(self.sock, d2.proc.pid)), now() + 10,
            f"{d2.name} to drop the dead connection", [d2.proc])
        after = d2.fds()
        if after != base:
            raise TestFailure(f"{d2.name} fds before QEMU's reconnect {base}, after its "
                              f"abort {after}")
        feats = vhost_user_get_features(self.sock)
        if not d2.ctl_ok():
            raise TestFailure(f"{d2.name}: control socket does not answer QUERY")
        after2 = wait_for(lambda: (lambda f: f if f == base else None)(d2.fds()),
                          now() + 5, f"{d2.name} to close the probe connection", [d2.proc])
        log(f"{d2.name}: alive, after the abort it holds the {len(after2)} fds {d1.name} held "
            f"before any QEMU ({idle[0]} listening socket(s) on the vhost-user path, no "
            f"connection), answers GET_FEATURES ({feats:#x}) and QUERY")

    def case_cmdline_reconnect(self):
        """Why the recipe: -device on the command line with a reconnect-ms
        chardev does not start (README.md says so; this keeps it true)."""
        args = snd_device_args(self.sock, hotplug=True)
        args = [a for a in args if a != "-S"] + ["-device", "vhost-user-snd-pci,chardev=snd"]
        argv = [self.qemu_bin, "-accel", "tcg", "-nodefaults", "-display", "none", "-S"] + args
        p = Proc("qemu-cmdline", argv, os.path.join(self.rundir, "qemu-cmdline.log"))
        self.procs.append(p)
        rc = p.wait(30)
        # "qemu-system-x86_64: -device ...: MESSAGE" (MESSAGE may hold ": " itself)
        msgs = [x.split(": ", 2)[-1] for x in p.text().splitlines()]
        want = ["Failed to set msg fds.", "vhost_backend_init failed: Protocol error"]
        if rc != 1 or msgs != want:
            raise TestFailure(
                "EXPECTATION STALE: -device vhost-user-snd-pci with a reconnect-ms chardev "
                f"now gives {describe_rc(rc)} and {msgs} (QEMU 10.0: exit status 1, {want}); "
                "update README.md's reconnect recipe")
        log(f"-device with reconnect-ms on the command line: {describe_rc(rc)}, {' / '.join(msgs)}")

    def boot3(self, d):
        with Case(self, "7 -device + reconnect-ms fails"):
            self.case_cmdline_reconnect()
        with Case(self, "7 reconnect recipe plays"):
            g = Guest(self, 3, hotplug=True, no_core=True)
            g.wait_ready()
            self.play(g, "boot3")
        with Case(self, "2+5+6 output files sample-exact", fatal=False):
            self.check_output()
        with Case(self, "7 restart: QEMU 10 aborts"):
            self.case_restart(g, d)

    def case_restart(self, g, d1):
        p = self.plays["boot3-killed"]
        g.send(p.cmd())
        wait_for(lambda: any(s.get("stream") == "0" and s.get("state") == "running"
                             for s in d1.status()), now() + 20,
                 "the output stream to run", [g.proc, d1.proc])
        time.sleep(0.5)     # into the play: the kill lands mid-aplay, not at its start
        self.kill_and_restart(g, d1, 2, self.daemon_args, "in the middle of an aplay")

    def check_output(self):
        res, files, failures = check_output_files(self.output_wav, self.played)
        for p, (f, lead, trail) in zip(self.played, res):
            log(f"  {p.name}: {p.frames} frames " + ("exact" if trail is not None else "NOT exact")
                + f" in {f}, {lead} silent frame(s) since the previous play"
                + (f", {trail} after" if trail is not None else ""))
        if failures:
            raise TestFailure("output files: " + "; ".join(failures))
        log(f"every play's frames are in {len(files)} output file(s) exactly once, in order, "
            "with only silence around them")

    # ---- all ---------------------------------------------------------------
    def run_all(self):
        self.output_wav = os.path.join(self.rundir, "out.wav")
        self.input_wav = os.path.join(self.rundir, "in.wav")
        self.input_data = pattern("S16_LE", 2, 48000, 4 * 48000, 9000000)
        with open(self.input_wav, "wb") as f:
            f.write(wav_bytes("S16_LE", 2, 48000, self.input_data))
        self.daemon_args = ["--backend", "file", "--output-file", self.output_wav,
                            "--input-file", self.input_wav]
        # card1's daemon: ALSA_CONFIG_PATH to a configuration with only the
        # file plugin (raw) over null, as tests/sound/test_alsa.cpp has it
        self.alsa_raw = os.path.join(self.rundir, "alsa-out.raw")
        alsa_conf = os.path.join(self.rundir, "alsa-test.conf")
        with open(alsa_conf, "w") as f:
            f.write(f'pcm.guestfile {{ type file slave.pcm {{ type null }} '
                    f'file "{self.alsa_raw}" format raw }}\n')
        self.d_alsa = Daemon(self, "-alsa", ["--backend", "alsa", "--alsa-device", "guestfile"],
                             sock=os.path.join(self.sockdir, "snd-alsa.sock"),
                             ctl=os.path.join(self.sockdir, "ctl-alsa.sock"),
                             env=dict(os.environ, ALSA_CONFIG_PATH=alsa_conf))
        # card2's: a private PipeWire daemon and vhost-sound on it
        for tool in ("pipewire", "wireplumber", "pw-dump", "pw-record"):
            which_or_skip(tool, "tools/setup.sh --tests installs PipeWire")
        self.pw = PipeWire(self, os.path.join(self.sockdir, "pw"))
        self.d_pw = Daemon(self, "-pw", ["--backend", "pipewire", "--name", "qemu-guest"],
                           sock=os.path.join(self.sockdir, "snd-pw.sock"),
                           ctl=os.path.join(self.sockdir, "ctl-pw.sock"), env=self.pw.env)
        d = Daemon(self, 1, self.daemon_args)
        self.d1 = d
        self.boot1(d)
        self.boot2(d)
        self.boot4()
        self.boot3(d)
        if self.failures:
            raise TestFailure(" | ".join(self.failures))

    def teardown(self):
        problems = []
        for q in self.qmps:
            q.close()
        for p in self.procs:
            if p.name.startswith("qemu") and p.alive():
                p.kill(signal.SIGTERM)
                if p.wait(10) is None:
                    p.kill()
                    p.wait(5)
            if p.name.startswith("qemu") and crashed(p.rc()) and p not in self.expected_abort:
                problems.append(f"{p.name} crashed: {describe_rc(p.rc())}")
        for p in self.procs:
            if not p.name.startswith("daemon") or p in self.killed:
                continue
            rc, how = p.stop(5)
            log(f"{p.name}: {how} ({describe_rc(rc)})")
            if rc != 0 or how != "exited on SIGTERM":
                problems.append(f"{p.name} did not exit 0 on SIGTERM: {how} ({describe_rc(rc)})")
        for p in reversed(self.procs):         # pw-record, wireplumber, pipewire
            if not p.name.startswith(("qemu", "daemon")) and p.alive():
                rc, how = p.stop(5)
                log(f"{p.name}: {how} ({describe_rc(rc)})")
        if self.sockdir:
            shutil.rmtree(self.sockdir, ignore_errors=True)
        return problems

    def dump_logs(self):
        log(f"logs kept in {self.rundir}")
        for p in self.procs:
            t = p.text().strip().splitlines()
            if t:
                log(f"{p.name} output (last {min(20, len(t))} of {len(t)} lines):\n    "
                    + "\n    ".join(t[-20:]))
        for name in sorted(os.listdir(self.rundir)):
            if name.startswith("console"):
                with open(os.path.join(self.rundir, name), "rb") as f:
                    t = f.read().decode("utf-8", "replace").splitlines()
                log(f"{name} (last 25 lines):\n    " + "\n    ".join(t[-25:]))


def main():
    set_log_name("qemu-snd")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("daemon", nargs="?", help="vhost-sound binary")
    ap.add_argument("workdir", nargs="?", help="cache + log directory (build dir)")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--run-name", default="run-snd")
    ap.add_argument("--total-timeout", type=float, default=420)
    ap.add_argument("--readme-cmdlines", action="store_true",
                    help="print the QEMU command lines README.md shows, and exit")
    a = ap.parse_args()
    if a.readme_cmdlines:
        for k, v in readme_cmdlines().items():
            print(f"## {k}\n{v}\n")
        return 0
    if not a.daemon or not a.workdir:
        ap.error("DAEMON and WORKDIR are needed")

    run = Run(a)

    def on_alarm(signum, frame):
        raise TestFailure(f"whole test exceeded {a.total_timeout:.0f}s")
    signal.signal(signal.SIGALRM, on_alarm)

    def on_term(signum, frame):
        raise TestFailure(f"killed by {signal.Signals(signum).name} (meson's timeout?)")
    signal.signal(signal.SIGTERM, on_term)   # so teardown stops every process
    signal.alarm(int(a.total_timeout))
    status = 0
    try:
        try:
            run.setup()
            run.run_all()
        finally:
            signal.alarm(0)
            problems = run.teardown()
        if problems:
            raise TestFailure("; ".join(problems))
    except Skip as e:
        if os.environ.get("CI"):
            log(f"FAIL: missing prerequisite (CI is set, so this is not a skip): {e}")
            return 1
        log(f"SKIP: {e}")
        return 77
    except TestFailure as e:
        log(f"FAIL: {e}")
        status = 1
    except Exception as e:
        log(f"FAIL: unexpected {type(e).__name__}: {e}")
        import traceback
        traceback.print_exc()
        status = 1
    log("per case: " + "; ".join(f"{n} {t:.1f}s {s}" for n, t, s in run.timings))
    if status:
        if os.path.isdir(run.rundir):
            run.dump_logs()
        return status
    log(f"PASS in {now():.1f}s (logs in {run.rundir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
