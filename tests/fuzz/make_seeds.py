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


def session_seeds():
    def message(code, payload=b'', flags=VERSION, fd_specs=()):
        out = u8(0) + u8(code) + u8(flags) + u16(0xffff) + u16(len(payload)) + payload
        out += u8(len(fd_specs))
        for spec in fd_specs:
            out += spec
        return out

    def memfd(pages, contents=b''):
        return u8(0) + u8(pages) + u16(len(contents)) + contents

    eventfd = u8(1)

    def signal(idx):
        return u8(3) + u8(idx)

    mem = bytes(ring_memory(8, [[(0x4000, 16, DESC_NEXT, 1), (0x5000, 64, DESC_WRITE, 0)],
                                [(0x4100, 32, 0, 0)]])[:0x2000])
    region = u64(0) + u64(0x10000) + u64(USER_BASE) + u64(0)
    features = F_VERSION_1 | F_PROTOCOL | F_EVENT_IDX | F_INDIRECT
    protocol = PF_MQ | PF_REPLY_ACK | PF_CONFIG | PF_RESET_DEVICE | PF_STATUS

    def start(protocol_features=protocol, mem_slots=False):
        s = message(GET_FEATURES) + message(SET_OWNER)
        s += message(GET_PROTOCOL_FEATURES) + message(SET_PROTOCOL_FEATURES, u64(protocol_features))
        s += message(GET_QUEUE_NUM) + message(SET_FEATURES, u64(features))
        if mem_slots:
            s += message(GET_MAX_MEM_SLOTS) + message(ADD_MEM_REG, u64(0) + region, fd_specs=[memfd(16, mem)])
        else:
            s += message(SET_MEM_TABLE, u32(1) + u32(0) + region,
                         fd_specs=[memfd(16, mem)])
        for q in (0, 1):
            s += message(SET_VRING_NUM, u32(q) + u32(8))
            s += message(SET_VRING_ADDR, u32(q) + u32(0) + u64(USER_BASE + q * 0x8000) +
                         u64(USER_BASE + q * 0x8000 + 0x2000) + u64(USER_BASE + q * 0x8000 + 0x1000) + u64(0))
            s += message(SET_VRING_BASE, u32(q) + u32(0))
            s += message(SET_VRING_KICK, u64(q), fd_specs=[eventfd])
            s += message(SET_VRING_CALL, u64(q), fd_specs=[eventfd])
            s += message(SET_VRING_ENABLE, u32(q) + u32(1))
        s += message(SET_STATUS, u64(0xf))
        return s

    # Eventfds are numbered in the order sent: kick0, call0, kick1, call1.
    seeds = {
        'startup': start(),
        'startup_kick': start() + signal(0) + signal(2),
        'pause_resume': start() + signal(2) + message(SET_VRING_ENABLE, u32(1) + u32(0)) +
                        message(GET_VRING_BASE, u32(1) + u32(0)) + message(GET_VRING_BASE, u32(0) + u32(0)) +
                        message(SET_VRING_NUM, u32(1) + u32(8)) + message(SET_VRING_BASE, u32(1) + u32(0)) +
                        message(SET_VRING_ADDR, u32(1) + u32(0) + u64(USER_BASE + 0x8000) +
                                u64(USER_BASE + 0xa000) + u64(USER_BASE + 0x9000) + u64(0)) +
                        message(SET_VRING_KICK, u64(1), fd_specs=[eventfd]) +
                        message(SET_VRING_ENABLE, u32(1) + u32(1)) + signal(4),
        'mem_slots': start(protocol | PF_MEM_SLOTS, mem_slots=True) + signal(0) +
                     message(REM_MEM_REG, u64(0) + region, fd_specs=[memfd(16)]),
        'need_reply_everywhere': start() + message(GET_CONFIG, u32(0) + u32(8) + u32(0) + bytes(8), VERSION | NEED_REPLY) +
                                 message(SET_CONFIG, u32(0) + u32(8) + u32(0) + bytes(8), VERSION | NEED_REPLY) +
                                 message(GET_STATUS, flags=VERSION | NEED_REPLY),
        'reset_mid_stream': start() + signal(0) + message(RESET_DEVICE) + start(),
        'memtable_replaced': start() + message(SET_MEM_TABLE, u32(1) + u32(0) + region,
                                               fd_specs=[memfd(16, mem)]) + signal(0),
    }
    for name, data in seeds.items():
        write('session', name, data)


def main():
    wire_seeds()
    virtqueue_seeds()
    session_seeds()
    return 0


if __name__ == '__main__':
    sys.exit(main())
