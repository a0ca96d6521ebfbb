#!/usr/bin/python3
"""The peer: one cell of tally's matrix run by Debian's zarr-python 2.13, measured.

  peer_zarr_python.py CELL_JSON     prints one result object on stdout (run by `tally peer`, one process per cell)

Method (stated in the report): the array is uniform random float32 in [0, 1) (numpy's rng.random, as
memray-array); tracemalloc is started after the data exists (numpy registers its buffers with
tracemalloc, so array-sized allocations are seen); peak_extra_ratio = (traced peak - output) / array,
extra_copies = its rounding (memray-array's method). Peak RSS (VmHWM, reset through
/proc/self/clear_refs before the operation) is reported beside it.
"""
import json
import os
import shutil
import sys
import tempfile
import time
import tracemalloc

import numcodecs
import numpy as np
import zarr


def vm_hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def compressor(codec, zstd_level=3):
    if codec == "blosc":
        return numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    if codec == "zstd":
        return numcodecs.Zstd(level=zstd_level)
    return None


def main():
    cell = json.loads(sys.argv[1])
    base = {k: cell.get(k) for k in ("scenario", "op", "store", "codec", "format", "layout")}
    base.update(peer=f"zarr-python {zarr.__version__}", method=__doc__.split("Method (stated in the report): ")[1]
                .strip().replace("\n", " "))
    if cell["format"] != "v2":
        base.update(status="skipped", reason="zarr-python 2.13 has no Zarr v3 (its 'v3' is a pre-spec draft)")
        print(json.dumps(base))
        return 0
    if cell["store"] != "local":
        base.update(status="skipped", reason="the peer runs the local cells")
        print(json.dumps(base))
        return 0
    shape, chunks = tuple(cell["shape"]), tuple(cell["chunks"])
    data = np.random.default_rng(0).random(shape, dtype=np.float32)
    nbytes = data.nbytes
    work = tempfile.mkdtemp(prefix="tally-peer-", dir=cell.get("dir"))  # the bench's directory, when given
    path = os.path.join(work, "a")
    try:
        if cell["op"] == "write":
            reset_hwm()
            rss0 = vm_hwm()
            tracemalloc.start()
            t0 = time.perf_counter()
            z = zarr.open(path, mode="w", shape=shape, chunks=chunks, dtype="<f4", compressor=compressor(cell["codec"], cell.get("zstd_level", 3)))
            z[...] = data
            wall = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            output = 0
        else:
            z = zarr.open(path, mode="w", shape=shape, chunks=chunks, dtype="<f4", compressor=compressor(cell["codec"], cell.get("zstd_level", 3)))
            z[...] = data
            del data, z
            reset_hwm()
            rss0 = vm_hwm()
            tracemalloc.start()
            t0 = time.perf_counter()
            out = zarr.open(path, mode="r")[...]
            wall = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            output = out.nbytes
        rss = vm_hwm()
        ratio = (peak - output) / nbytes
        base.update(status="ok", array_bytes=nbytes, output_bytes=output, peak_bytes=peak,
                    peak_extra_ratio=ratio, extra_copies=int(round(ratio)), wall_s=wall,
                    throughput_bps=nbytes / wall if wall > 0 else 0, rss_peak_bytes=rss,
                    rss_extra_ratio=(rss - rss0 - output) / nbytes if cell["op"] == "read" else (rss - rss0) / nbytes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
