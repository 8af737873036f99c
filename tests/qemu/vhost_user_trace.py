#!/usr/bin/env python3
"""A logging proxy for the vhost-user control socket (test diagnostics).

The front-end (QEMU) connects to PROXY_PATH; for each such connection the
proxy connects to BACKEND_PATH and forwards every message both ways, passing
file descriptors along (SCM_RIGHTS), and logs one line per message:

    <time> #<conn> Q->D SET_VRING_BASE flags=0x1 size=8 fds=0 index=0 num=12
    <time> #<conn> D->Q GET_FEATURES(reply) flags=0x5 size=8 fds=0 u64=0x140000000

When either side closes, the other side of that pair is closed too, so the
front-end sees a back-end restart as a disconnect and reconnects, as it would
without the proxy.

Standalone:  vhost_user_trace.py PROXY_PATH BACKEND_PATH [LOGFILE]
"""

import os
import socket
import struct
import sys
import threading
import time

REQUESTS = {
    1: "GET_FEATURES", 2: "SET_FEATURES", 3: "SET_OWNER", 4: "RESET_OWNER",
    5: "SET_MEM_TABLE", 6: "SET_LOG_BASE", 7: "SET_LOG_FD", 8: "SET_VRING_NUM",
    9: "SET_VRING_ADDR", 10: "SET_VRING_BASE", 11: "GET_VRING_BASE",
    12: "SET_VRING_KICK", 13: "SET_VRING_CALL", 14: "SET_VRING_ERR",
    15: "GET_PROTOCOL_FEATURES", 16: "SET_PROTOCOL_FEATURES", 17: "GET_QUEUE_NUM",
    18: "SET_VRING_ENABLE", 19: "SEND_RARP", 20: "NET_SET_MTU",
    21: "SET_BACKEND_REQ_FD", 22: "IOTLB_MSG", 23: "SET_VRING_ENDIAN",
    24: "GET_CONFIG", 25: "SET_CONFIG", 26: "CREATE_CRYPTO_SESSION",
    27: "CLOSE_CRYPTO_SESSION", 28: "POSTCOPY_ADVISE", 29: "POSTCOPY_LISTEN",
    30: "POSTCOPY_END", 31: "GET_INFLIGHT_FD", 32: "SET_INFLIGHT_FD",
    33: "GPU_SET_SOCKET", 34: "RESET_DEVICE", 35: "VRING_KICK",
    36: "GET_MAX_MEM_SLOTS", 37: "ADD_MEM_REG", 38: "REM_MEM_REG",
    39: "SET_STATUS", 40: "GET_STATUS",
}
U64 = {1, 2, 6, 12, 13, 14, 15, 16, 17, 36, 39, 40}
VRING_STATE = {8, 10, 11, 18, 23}
HDR = struct.Struct("<III")
MAX_FDS = 8


def decode(req, reply, payload):
    try:
        if len(payload) == 8 and (req in U64 or reply):
            if req in VRING_STATE:
                i, n = struct.unpack("<II", payload)
                return f"index={i} num={n}"
            (v,) = struct.unpack("<Q", payload)
            if req in (12, 13, 14) and not reply:
                return f"index={v & 0xff}{' NOFD' if v & 0x100 else ''}"
            return f"u64={v:#x}"
        if req in VRING_STATE and len(payload) == 8:
            i, n = struct.unpack("<II", payload)
            return f"index={i} num={n}"
        if req == 9 and len(payload) >= 40:
            i, fl, desc, used, avail, lg = struct.unpack_from("<IIQQQQ", payload)
            return (f"index={i} flags={fl:#x} desc={desc:#x} used={used:#x} "
                    f"avail={avail:#x}")
        if req == 5 and len(payload) >= 8:
            (n,) = struct.unpack_from("<I", payload)
            regs = []
            for k in range(min(n, 8)):
                gpa, size, uva, off = struct.unpack_from("<QQQQ", payload, 8 + 32 * k)
                regs.append(f"[gpa={gpa:#x} size={size:#x} uva={uva:#x} off={off:#x}]")
            return f"nregions={n} " + " ".join(regs)
        if req in (37, 38) and len(payload) >= 40:
            gpa, size, uva, off = struct.unpack_from("<QQQQ", payload, 8)
            return f"[gpa={gpa:#x} size={size:#x} uva={uva:#x} off={off:#x}]"
        if req in (24, 25) and len(payload) >= 12:
            o, s, f = struct.unpack_from("<III", payload)
            return f"offset={o} size={s} flags={f:#x}"
    except struct.error:
        pass
    return payload[:32].hex() if payload else ""


class TraceProxy:
    def __init__(self, proxy_path, backend_path, logfile, connect_timeout=10.0):
        self.proxy_path = proxy_path
        self.backend_path = backend_path
        self.connect_timeout = connect_timeout
        self.logf = open(logfile, "a", buffering=1) if isinstance(logfile, str) else logfile
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.nconn = 0
        self.stopping = False
        if os.path.exists(proxy_path):
            os.unlink(proxy_path)
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(proxy_path)
        self.lsock.listen(4)
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def log(self, msg):
        with self.lock:
            self.logf.write(f"{time.monotonic() - self.t0:9.3f} {msg}\n")

    def _accept_loop(self):
        while not self.stopping:
            try:
                fe, _ = self.lsock.accept()
            except OSError:
                return
            self.nconn += 1
            n = self.nconn
            be = self._connect_backend(n)
            if be is None:
                self.log(f"#{n} front-end connected, back-end unreachable: closing")
                fe.close()
                continue
            self.log(f"#{n} connected front-end <-> back-end")
            pair = {"open": True}
            for src, dst, tag in ((fe, be, "Q->D"), (be, fe, "D->Q")):
                threading.Thread(target=self._pump, args=(n, src, dst, tag, pair, fe, be),
                                 daemon=True).start()

    def _connect_backend(self, n):
        deadline = time.monotonic() + self.connect_timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.backend_path)
                return s
            except OSError:
                s.close()
                if time.monotonic() > deadline or self.stopping:
                    return None
                time.sleep(0.05)

    def _recv_exact(self, sock, n):
        buf = b""
        while len(buf) < n:
            data = sock.recv(n - len(buf))
            if not data:
                return None
            buf += data
        return buf

    def _pump(self, n, src, dst, tag, pair, fe, be):
        why = "closed"
        try:
            while True:
                hdr, fds, _, _ = socket.recv_fds(src, HDR.size, MAX_FDS)
                if not hdr:
                    break
                if len(hdr) < HDR.size:
                    rest = self._recv_exact(src, HDR.size - len(hdr))
                    if rest is None:
                        break
                    hdr += rest
                req, flags, size = HDR.unpack(hdr)
                payload = self._recv_exact(src, size) if size else b""
                if payload is None:
                    why = "closed mid-message"
                    break
                reply = bool(flags & 0x4)
                name = REQUESTS.get(req, f"REQ{req}") + ("(reply)" if reply else "")
                self.log(f"#{n} {tag} {name} flags={flags:#x} size={size} fds={len(fds)} "
                         f"{decode(req, reply, payload)}")
                try:
                    if fds:
                        socket.send_fds(dst, [hdr + payload], fds)
                    else:
                        dst.sendall(hdr + payload)
                finally:
                    for fd in fds:
                        os.close(fd)
        except OSError as e:
            why = f"error {e}"
        if pair["open"]:
            pair["open"] = False
            self.log(f"#{n} {'front-end' if tag == 'Q->D' else 'back-end'} {why}: "
                     "closing the pair")
            for s in (fe, be):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for s in (src,):
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self.stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass
        try:
            os.unlink(self.proxy_path)
        except OSError:
            pass


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    out = sys.argv[3] if len(sys.argv) == 4 else sys.stdout
    TraceProxy(sys.argv[1], sys.argv[2], out)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
