#!/usr/bin/python3
"""tally bench's zarr-python kind: one timed write or read of a bench cell by Debian's zarr-python 2.13,
under the bench's memory policy ("prefaulted", bench/measure.c), as tally's own kinds are measured.

  zarr_python.py SPEC_JSON     prints {"wall_s", "gbps", "memory_policy"} on stdout

The array is uniform random float32 (touched as it is made); a read decodes into an output made and
touched before its passes (get_basic_selection(out=...)); the operation runs once untimed, then
once timed; a write's array is removed after each pass. glibc's malloc is told to keep what is
freed (no mmap'd blocks, no trimming), as jemalloc is in tally's kinds, so zarr-python's own chunk
buffers are pages it already has in the timed pass.
"""
import ctypes
import json
import os
import shutil
import sys
import tempfile
import time

import numcodecs
import numpy as np
import zarr

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory():
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)


def compressor(spec):
    """numcodecs' codec for tally's codec option ("none", "zstd:level=1", "blosc:cname=lz4,...")."""
    name, _, args = spec.partition(":")
    kw = dict(a.split("=", 1) for a in args.split(",") if a)
    if name == "zstd":
        return numcodecs.Zstd(level=int(kw.get("level", 3)))
    if name == "blosc":
        return numcodecs.Blosc(cname=kw.get("cname", "lz4"), clevel=int(kw.get("clevel", 5)),
                               shuffle=int(kw.get("shuffle", 1)), blocksize=int(kw.get("blocksize", 0)))
    return None


def main():
    spec = json.loads(sys.argv[1])
    keep_freed_memory()
    shape, chunks = tuple(spec["shape"]), tuple(spec["chunks"])
    comp = compressor(spec.get("codec_spec", "none"))
    data = np.random.default_rng(0).random(shape, dtype=np.float32)
    nbytes = data.nbytes
    work = tempfile.mkdtemp(prefix="tally-bench-zarr-", dir=spec.get("dir"))
    path = os.path.join(work, "a")

    def write():
        z = zarr.open(path, mode="w", shape=shape, chunks=chunks, dtype="<f4", compressor=comp)
        z[...] = data

    try:
        if spec["op"] == "write":
            write()
            shutil.rmtree(path)
            t0 = time.perf_counter()
            write()
            wall = time.perf_counter() - t0
        else:
            write()
            del data
            out = np.empty(shape, dtype="<f4")
            out.fill(0)
            zarr.open(path, mode="r").get_basic_selection(Ellipsis, out=out)
            t0 = time.perf_counter()
            zarr.open(path, mode="r").get_basic_selection(Ellipsis, out=out)
            wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"wall_s": wall, "gbps": nbytes / wall / 1e9 if wall > 0 else 0, "memory_policy": "prefaulted"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
