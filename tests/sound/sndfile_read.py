#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Read a WAV file with libsndfile (an independent reader) through ctypes.

Prints one line: frames rate channels major subtype kind, then every sample
as libsndfile decodes it: kind "int" gives sf_readf_int() values (the sample
scaled to 32 bits, so padded samples must sit in the high bits), kind
"double" gives sf_readf_double() values. Exits 1 if libsndfile refuses the
file, with its message on stderr.
"""
import ctypes
import ctypes.util
import sys

SFM_READ = 0x10
SF_FORMAT_SUBMASK = 0x0000FFFF
SF_FORMAT_TYPEMASK = 0x0FFF0000
FLOAT_SUBTYPES = {0x0006, 0x0007}  # SF_FORMAT_FLOAT, SF_FORMAT_DOUBLE


class SfInfo(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int),
                ("channels", ctypes.c_int), ("format", ctypes.c_int),
                ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


def main(path):
    lib = ctypes.CDLL(ctypes.util.find_library("sndfile") or "libsndfile.so.1")
    lib.sf_open.restype = ctypes.c_void_p
    lib.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(SfInfo)]
    lib.sf_strerror.restype = ctypes.c_char_p
    lib.sf_strerror.argtypes = [ctypes.c_void_p]
    lib.sf_readf_int.restype = ctypes.c_int64
    lib.sf_readf_int.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.sf_readf_double.restype = ctypes.c_int64
    lib.sf_readf_double.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.sf_close.argtypes = [ctypes.c_void_p]

    info = SfInfo()
    handle = lib.sf_open(path.encode(), SFM_READ, ctypes.byref(info))
    if not handle:
        print(lib.sf_strerror(None).decode(), file=sys.stderr)
        return 1
    subtype = info.format & SF_FORMAT_SUBMASK
    kind = "double" if subtype in FLOAT_SUBTYPES else "int"
    n = info.frames * info.channels
    if kind == "double":
        buf = (ctypes.c_double * n)()
        got = lib.sf_readf_double(handle, buf, info.frames)
        values = [repr(buf[i]) for i in range(got * info.channels)]
    else:
        buf = (ctypes.c_int32 * n)()
        got = lib.sf_readf_int(handle, buf, info.frames)
        values = [str(buf[i]) for i in range(got * info.channels)]
    lib.sf_close(handle)
    print(info.frames, info.samplerate, info.channels,
          hex(info.format & SF_FORMAT_TYPEMASK), hex(subtype), kind)
    print(" ".join(values))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
