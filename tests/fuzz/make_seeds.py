#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Write the seed corpora of tests/fuzz/corpus/ (checked in; run again after
changing a harness's input format). Each seed is a well-formed scenario in
that harness's own record format, so that the fuzzer starts from inputs that
reach deep states: a negotiated session with mapped memory and started
rings, a ring holding plain, chained and indirect descriptors, and so on."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# vhost-user request codes and flags (QEMU docs/interop/vhost-user.rst).
GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE = 1, 2, 3, 4, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE = 15, 16, 17, 18
SET_BACKEND_REQ_FD, GET_CONFIG, SET_CONFIG, RESET_DEVICE = 21, 24, 25, 34
GET_MAX_MEM_SLOTS, ADD_MEM_REG, REM_MEM_REG, SET_STATUS, GET_STATUS = 36, 37, 38, 39, 40
VERSION, NEED_REPLY = 0x1, 0x8

F_EVENT_IDX, F_INDIRECT, F_PROTOCOL, F_VERSION_1 = 1 << 29, 1 << 28, 1 << 30, 1 << 32
PF_MQ, PF_REPLY_ACK, PF_BACKEND_REQ, PF_CONFIG = 1 << 0, 1 << 3, 1 << 5, 1 << 9
PF_RESET_DEVICE, PF_MEM_SLOTS, PF_STATUS = 1 << 13, 1 << 15, 1 << 16

DESC_NEXT, DESC_WRITE, DESC_INDIRECT = 1, 2, 4
USER_BASE = 0x7f0000000000


def u8(v): return struct.pack('<B', v)
def u16(v): return struct.pack('<H', v)
def u32(v): return struct.pack('<I', v)
def u64(v): return struct.pack('<Q', v)


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def ring_memory(size, chains, event_idx=False, desc=0x0, avail=0x1000, used=0x2000):
    """Guest memory bytes holding a split ring of `size` at the given offsets.
    `chains` is a list of descriptor lists [(addr, len, flags, next)], each
    placed from the next free table slot; indirect tables go at 0x3000+."""
    mem = bytearray(0x8000)
    slot = 0
    heads = []
    for chain in chains:
        heads.append(slot)
        for i, (addr, length, flags, nxt) in enumerate(chain):
            struct.pack_into('<QIHH', mem, desc + 16 * (slot + i), addr, length, flags,
                             slot + nxt if flags & DESC_NEXT else 0)
        slot += len(chain)
    struct.pack_into('<HH', mem, avail, 0, len(heads))
    for i, h in enumerate(heads):
        struct.pack_into('<H', mem, avail + 4 + 2 * i, h)
    if event_idx:
        struct.pack_into('<H', mem, avail + 4 + 2 * size, 0)
    return mem


def wire_seeds():
    def msg(nfds, code, payload, flags=VERSION):
        return u8(nfds) + u32(code) + u32(flags) + u32(len(payload)) + payload
    region = u64(0) + u64(0x10000) + u64(USER_BASE) + u64(0)
    seeds = {
        'get_features': msg(0, GET_FEATURES, b''),
        'set_features': msg(0, SET_FEATURES, u64(F_VERSION_1 | F_PROTOCOL | F_EVENT_IDX)),
        'set_owner_need_reply': msg(0, SET_OWNER, b'', VERSION | NEED_REPLY),
        'mem_table': msg(1, SET_MEM_TABLE, u32(1) + u32(0) + region),
        'mem_table_two_fds': msg(2, SET_MEM_TABLE, u32(2) + u32(0) + region + u64(0x10000) +
                                 u64(0x10000) + u64(USER_BASE + 0x100000) + u64(0)),
        'vring_num': msg(0, SET_VRING_NUM, u32(0) + u32(256)),
        'vring_addr': msg(0, SET_VRING_ADDR, u32(0) + u32(0) + u64(USER_BASE) +
                          u64(USER_BASE + 0x2000) + u64(USER_BASE + 0x1000) + u64(0)),
        'vring_kick': msg(1, SET_VRING_KICK, u64(0)),
        'vring_kick_nofd': msg(0, SET_VRING_KICK, u64(0x100)),
        'vring_enable': msg(0, SET_VRING_ENABLE, u32(1) + u32(1)),
        'get_config': msg(0, GET_CONFIG, u32(0) + u32(8) + u32(0) + bytes(8)),
        'add_mem_reg': msg(1, ADD_MEM_REG, u64(0) + region),
        'rem_mem_reg': msg(0, REM_MEM_REG, u64(0) + region),
        'set_status': msg(0, SET_STATUS, u64(0xf)),
        'backend_req_fd': msg(1, SET_BACKEND_REQ_FD, b''),
        'unknown_code': msg(0, 0xffffffff, b''),
    }
    for name, data in seeds.items():
        write('wire', name, data)


def virtqueue_seeds():
    def scenario(size_code, features, chains, patch=(0, 0)):
        size = 1 << size_code
        head = u8(size_code) + u8(features) + u16(0) + u16(0x0) + u16(0x1000) + u16(0x2000)
        head += u16(patch[0]) + u8(patch[1])
        return head + bytes(ring_memory(size, chains, features & 1))
    plain = [[(0x4000, 64, 0, 0)]]
    chained = [[(0x4000, 16, DESC_NEXT, 1), (0x4100, 128, DESC_NEXT | DESC_WRITE, 2),
                (0x4200, 8, DESC_WRITE, 0)]]
    straddle = [[(0x7ff0, 32, 0, 0)]]  # crosses from region 0 into region 1 (guest-adjacent)
    seeds = {
        'plain': scenario(3, 0, plain),
        'chained_event_idx': scenario(3, 1, chained * 1),
        'many': scenario(4, 3, plain + chained + plain),
        'indirect': scenario(3, 2, [[(0x3000, 48, DESC_INDIRECT, 0)]]),
        'straddle': scenario(3, 0, straddle),
        'patched': scenario(3, 0, chained, patch=(0x0, 16)),
    }
    # The indirect table the 'indirect' seed points at (three descriptors).
    for name, data in seeds.items():
        data = bytearray(data)
        if name == 'indirect':
            base = 15  # the harness's header bytes before guest memory
            for i, (addr, length, flags, nxt) in enumerate([(0x4000, 16, DESC_NEXT, 1),
                                                           (0x4100, 64, DESC_NEXT | DESC_WRITE, 2),
                                                           (0x4200, 8, DESC_WRITE, 0)]):
                struct.pack_into('<QIHH', data, base + 0x3000 + 16 * i, addr, length, flags, nxt)
        write('virtqueue', name, bytes(data))


class Guest:
    """64 KiB of guest memory (gpa 0, front-end address USER_BASE): queue q's
    split ring of RING_SIZE at q * 0x1000 (descriptors, avail at +0x200, used
    at +0x400), buffers from 0x8000 on."""
    RING_SIZE = 16

    def __init__(self, queues):
        self.mem = bytearray(0x10000)
        self.next_buffer = 0x8000
        self.slots = [0] * queues
        self.published = [0] * queues

    @staticmethod
    def ring(q):
        base = q * 0x1000
        return base, base + 0x200, base + 0x400

    def buffer(self, data):
        """A buffer holding `data` (bytes), or `data` zero bytes (int)."""
        length = data if isinstance(data, int) else len(data)
        gpa = self.next_buffer
        if not isinstance(data, int):
            self.mem[gpa:gpa + length] = data
        self.next_buffer += (length + 15) // 16 * 16
        return gpa, length

    def chain(self, q, parts):
        """Make a chain of `parts` [(data, writable)] available on queue q."""
        desc, avail, _ = self.ring(q)
        head = self.slots[q]
        for i, (data, writable) in enumerate(parts):
            gpa, length = self.buffer(data)
            last = i == len(parts) - 1
            flags = (DESC_WRITE if writable else 0) | (0 if last else DESC_NEXT)
            struct.pack_into('<QIHH', self.mem, desc + 16 * (head + i), gpa, length, flags,
                             0 if last else head + i + 1)
        self.slots[q] += len(parts)
        struct.pack_into('<H', self.mem, avail + 4 + 2 * (self.published[q] % self.RING_SIZE), head)
        self.published[q] += 1
        struct.pack_into('<HH', self.mem, avail, 0, self.published[q])

    def image(self):
        return bytes(self.mem[:0xffff])


def session_record(code, payload=b'', flags=VERSION, fd_specs=()):
    out = u8(0) + u8(code) + u8(flags) + u16(0xffff) + u16(len(payload)) + payload
    out += u8(len(fd_specs))
    for spec in fd_specs:
        out += spec
    return out


def memfd_spec(pages, contents=b''):
    return u8(0) + u8(pages) + u16(len(contents)) + contents


EVENTFD_SPEC = u8(1)


def signal(idx):
    return u8(3) + u8(idx)


def patch(before, after, memfd=0):
    """Records that turn memory image `before` into `after` (the guest
    writing its memory while the device runs)."""
    out = b''
    i = 0
    while i < len(after):
        if before[i] == after[i]:
            i += 1
            continue
        j = i
        while j < len(after) and before[j] != after[j] and j - i < 1024:
            j += 1
        out += u8(7) + u8(memfd) + u32(i) + u16(j - i) + after[i:j]
        i = j
    return out


REGION = u64(0) + u64(0x10000) + u64(USER_BASE) + u64(0)
FEATURES = F_VERSION_1 | F_PROTOCOL | F_EVENT_IDX | F_INDIRECT
PROTOCOL = PF_MQ | PF_REPLY_ACK | PF_CONFIG | PF_RESET_DEVICE | PF_STATUS


def start(queues, image, protocol_features=PROTOCOL, features=FEATURES, mem_slots=False):
    """QEMU's start-up sequence. Eventfds are numbered in the order sent:
    queue q's kick is 2q, its call 2q + 1."""
    r = session_record
    s = r(GET_FEATURES) + r(SET_OWNER)
    s += r(GET_PROTOCOL_FEATURES) + r(SET_PROTOCOL_FEATURES, u64(protocol_features))
    s += r(GET_QUEUE_NUM) + r(SET_FEATURES, u64(features))
    if mem_slots:
        s += r(GET_MAX_MEM_SLOTS) + r(ADD_MEM_REG, u64(0) + REGION, fd_specs=[memfd_spec(16, image)])
    else:
        s += r(SET_MEM_TABLE, u32(1) + u32(0) + REGION, fd_specs=[memfd_spec(16, image)])
    for q in range(queues):
        desc, avail, used = Guest.ring(q)
        s += r(SET_VRING_NUM, u32(q) + u32(Guest.RING_SIZE))
        s += r(SET_VRING_ADDR, u32(q) + u32(0) + u64(USER_BASE + desc) + u64(USER_BASE + used) +
               u64(USER_BASE + avail) + u64(0))
        s += r(SET_VRING_BASE, u32(q) + u32(0))
        s += r(SET_VRING_KICK, u64(q), fd_specs=[EVENTFD_SPEC])
        s += r(SET_VRING_CALL, u64(q), fd_specs=[EVENTFD_SPEC])
        s += r(SET_VRING_ENABLE, u32(q) + u32(1))
    s += r(SET_STATUS, u64(0xf))
    return s


def session_seeds():
    r = session_record
    g = Guest(2)
    g.chain(0, [(b'\x11' * 16, False), (64, True)])
    g.chain(0, [(b'\x22' * 32, False)])
    g.chain(1, [(b'\x33' * 8, False), (32, True)])
    g.chain(1, [(16, True)])
    image = g.image()
    later = Guest(2)
    later.mem[:] = g.mem
    later.chain(1, [(b'\x44' * 8, False), (8, True)])
    resume = (r(SET_VRING_NUM, u32(1) + u32(Guest.RING_SIZE)) + r(SET_VRING_BASE, u32(1) + u32(0)) +
              r(SET_VRING_ADDR, u32(1) + u32(0) + u64(USER_BASE + 0x1000) + u64(USER_BASE + 0x1400) +
                u64(USER_BASE + 0x1200) + u64(0)) +
              r(SET_VRING_KICK, u64(1), fd_specs=[EVENTFD_SPEC]) + r(SET_VRING_ENABLE, u32(1) + u32(1)))
    seeds = {
        'startup': start(2, image),
        'startup_kick': start(2, image) + signal(0) + signal(2),
        'pause_resume': start(2, image) + signal(2) + r(SET_VRING_ENABLE, u32(1) + u32(0)) +
                        r(GET_VRING_BASE, u32(1) + u32(0)) + r(GET_VRING_BASE, u32(0) + u32(0)) +
                        resume + signal(4) + patch(image, later.image()) + signal(4),
        'mem_slots': start(2, image, PROTOCOL | PF_MEM_SLOTS, mem_slots=True) + signal(0) +
                     r(REM_MEM_REG, u64(0) + REGION, fd_specs=[memfd_spec(16)]),
        'need_reply_everywhere': start(2, image) +
                                 r(GET_CONFIG, u32(0) + u32(8) + u32(0) + bytes(8), VERSION | NEED_REPLY) +
                                 r(SET_CONFIG, u32(0) + u32(8) + u32(0) + bytes(8), VERSION | NEED_REPLY) +
                                 r(GET_STATUS, flags=VERSION | NEED_REPLY),
        'reset_mid_stream': start(2, image) + signal(0) + r(RESET_DEVICE) + start(2, image),
        'memtable_replaced': start(2, image) + r(SET_MEM_TABLE, u32(1) + u32(0) + REGION,
                                                 fd_specs=[memfd_spec(16, later.image())]) + signal(0),
        'guest_rewrites_ring': start(2, image) + patch(image, later.image()) + signal(2),
    }
    for name, data in seeds.items():
        write('session', name, data)


# virtio-snd (virtio spec, device-types/sound): request codes and layouts.
SND_JACK_INFO, SND_JACK_REMAP = 1, 2
SND_PCM_INFO, SND_PCM_SET_PARAMS, SND_PCM_PREPARE, SND_PCM_RELEASE = 0x100, 0x101, 0x102, 0x103
SND_PCM_START, SND_PCM_STOP, SND_CHMAP_INFO = 0x104, 0x105, 0x200
SND_CTL_INFO, SND_CTL_ENUM_ITEMS, SND_CTL_READ, SND_CTL_WRITE = 0x300, 0x301, 0x302, 0x303
SND_CTL_TLV_READ, SND_CTL_TLV_WRITE = 0x304, 0x305
SND_F_CTLS = 1 << 0
SND_FMT_S16, SND_FMT_U8, SND_FMT_FLOAT = 5, 4, 19
SND_RATE_48000, SND_RATE_8000 = 7, 1
CTL, EVT, TX, RX = 0, 1, 2, 3


def snd_query(code, start_id, count, size):
    return u32(code) + u32(start_id) + u32(count) + u32(size)


def snd_pcm(code, stream):
    return u32(code) + u32(stream)


def snd_set_params(stream, buffer_bytes, period_bytes, channels, fmt, rate):
    return u32(SND_PCM_SET_PARAMS) + u32(stream) + u32(buffer_bytes) + u32(period_bytes) + u32(0) + \
        u8(channels) + u8(fmt) + u8(rate) + u8(0)


def snd_seeds():
    def control(g, request, response=4):
        g.chain(CTL, [(request, False), (response, True)])

    def io(g, q, stream, period):
        if q == TX:
            g.chain(TX, [(u32(stream), False), (bytes(range(256)) * (period // 256) + bytes(period % 256), False),
                         (8, True)])
        else:
            g.chain(RX, [(u32(stream), False), (period, True), (8, True)])

    kick = {q: signal(2 * q) for q in (CTL, EVT, TX, RX)}
    seeds = {}

    g = Guest(4)
    control(g, snd_query(SND_JACK_INFO, 0, 2, 24), 4 + 2 * 24)
    control(g, snd_query(SND_PCM_INFO, 0, 2, 32), 4 + 2 * 32)
    control(g, snd_query(SND_CHMAP_INFO, 0, 2, 24), 4 + 2 * 24)
    control(g, u32(SND_JACK_REMAP) + u32(0) + u32(1) + u32(2), 4)
    g.chain(EVT, [(8, True)])
    seeds['info'] = start(4, g.image()) + kick[CTL] + kick[EVT]

    for name, q, stream, fmt, channels, frame in (('playback', TX, 0, SND_FMT_S16, 2, 4),
                                                  ('capture', RX, 1, SND_FMT_S16, 2, 4),
                                                  ('playback_u8_mono', TX, 0, SND_FMT_U8, 1, 1),
                                                  ('capture_float', RX, 1, SND_FMT_FLOAT, 2, 8)):
        period = 48 * frame
        g = Guest(4)
        control(g, snd_set_params(stream, 4 * period, period, channels, fmt, SND_RATE_48000))
        control(g, snd_pcm(SND_PCM_PREPARE, stream))
        for _ in range(4):
            io(g, q, stream, period)
        control(g, snd_pcm(SND_PCM_START, stream))
        first = g.image()
        g.mem[:] = first + b'\0'
        control(g, snd_pcm(SND_PCM_STOP, stream))
        control(g, snd_pcm(SND_PCM_RELEASE, stream))
        second = g.image()
        # SET_PARAMS + PREPARE + START, the periods, then (later) STOP + RELEASE.
        seeds[name] = start(4, first) + kick[CTL] + kick[q] + patch(first, second) + kick[CTL]

    # The mixer controls (VIRTIO_SND_F_CTLS negotiated): info, a write, a
    # refused write, a TLV, then a playback at volume 50 with the gain
    # applied (the 16-entry control ring holds 8 requests).
    g = Guest(4)
    control(g, snd_query(SND_CTL_INFO, 0, 5, 96), 4 + 5 * 96)
    control(g, u32(SND_CTL_WRITE) + u32(0) + u32(50) + bytes(508), 4)
    control(g, u32(SND_CTL_WRITE) + u32(4) + u32(1) + bytes(508), 4)
    control(g, u32(SND_CTL_TLV_READ) + u32(2), 4 + 64)
    control(g, snd_set_params(0, 768, 192, 2, SND_FMT_S16, SND_RATE_48000))
    control(g, snd_pcm(SND_PCM_PREPARE, 0))
    for _ in range(4):
        io(g, TX, 0, 192)
    control(g, snd_pcm(SND_PCM_START, 0))
    g.chain(EVT, [(8, True)])
    seeds['controls'] = start(4, g.image(), features=FEATURES | SND_F_CTLS) + kick[CTL] + kick[EVT] + kick[TX]

    # I/O in the wrong state, on the wrong queue and without room for the status.
    g = Guest(4)
    io(g, TX, 1, 64)
    io(g, RX, 0, 64)
    g.chain(TX, [(u32(0), False)])
    g.chain(TX, [(u32(7), False), (16, False), (8, True)])
    control(g, snd_pcm(SND_PCM_START, 0))
    control(g, u32(0xdead), 4)
    control(g, snd_query(SND_PCM_INFO, 1, 5, 32), 4 + 32)
    seeds['wrong_state'] = start(4, g.image()) + kick[TX] + kick[RX] + kick[CTL]

    # A VM pause with TX buffers held: ring stop, then restart.
    g = Guest(4)
    control(g, snd_set_params(0, 768, 192, 2, SND_FMT_S16, SND_RATE_48000))
    control(g, snd_pcm(SND_PCM_PREPARE, 0))
    for _ in range(4):
        io(g, TX, 0, 192)
    control(g, snd_pcm(SND_PCM_START, 0))
    desc, avail, used = Guest.ring(TX)
    r = session_record
    seeds['pause'] = (start(4, g.image()) + kick[CTL] + kick[TX] + r(SET_VRING_ENABLE, u32(TX) + u32(0)) +
                      r(GET_VRING_BASE, u32(TX) + u32(0)) + r(SET_VRING_NUM, u32(TX) + u32(Guest.RING_SIZE)) +
                      r(SET_VRING_BASE, u32(TX) + u32(0)) +
                      r(SET_VRING_ADDR, u32(TX) + u32(0) + u64(USER_BASE + desc) + u64(USER_BASE + used) +
                        u64(USER_BASE + avail) + u64(0)) +
                      r(SET_VRING_KICK, u64(TX), fd_specs=[EVENTFD_SPEC]) + r(SET_VRING_ENABLE, u32(TX) + u32(1)) +
                      signal(8))
    for name, data in seeds.items():
        write('snd', name, data)


def wav_seeds():
    def chunk(tag, body):
        return tag + u32(len(body)) + body + (b'\0' if len(body) % 2 else b'')

    def riff(*chunks):
        body = b'WAVE' + b''.join(chunks)
        return b'RIFF' + u32(len(body)) + body

    def fmt(tag, channels, rate, bits, container=None):
        block = channels * (container or bits) // 8
        return chunk(b'fmt ', u16(tag) + u16(channels) + u32(rate) + u32(rate * block) + u16(block) + u16(bits))

    def extensible(channels, rate, container, valid, subformat_tag, mask):
        block = channels * container // 8
        guid = u16(subformat_tag) + bytes.fromhex('000000001000800000aa00389b71')
        body = (u16(0xfffe) + u16(channels) + u32(rate) + u32(rate * block) + u16(block) + u16(container) +
                u16(22) + u16(valid) + u32(mask) + guid)
        return chunk(b'fmt ', body)

    seeds = {
        's16_stereo': riff(fmt(1, 2, 48000, 16), chunk(b'data', bytes(range(64)))),
        'u8_mono_odd_chunk': riff(chunk(b'LIST', b'INFOx'), fmt(1, 1, 8000, 8), chunk(b'data', bytes(7))),
        's24_3': riff(fmt(1, 2, 44100, 24), chunk(b'data', bytes(60))),
        'float_6ch': riff(extensible(6, 48000, 32, 32, 3, 0x3f), chunk(b'data', bytes(6 * 4 * 4))),
        's24_in_32': riff(extensible(2, 96000, 32, 24, 1, 0x3), chunk(b'data', bytes(32))),
        'streamed_size': riff(fmt(1, 2, 48000, 16)) + b'data' + u32(0xffffffff) + bytes(40),
        'truncated': riff(fmt(1, 2, 48000, 16), chunk(b'data', bytes(64)))[:50],
    }
    for name, data in seeds.items():
        write('wav', name, data)


def main():
    wire_seeds()
    virtqueue_seeds()
    session_seeds()
    snd_seeds()
    wav_seeds()
    return 0


if __name__ == '__main__':
    sys.exit(main())
