"""The preload's cost on a real stack (measured, never asserted): zarr-python 2.13 writing a 100 MB
float32 array in one chunk with blosc lz4, in fresh processes with and without the preload, best of 3.

usage: /usr/bin/python3 zarr_cost.py PRELOAD_SO [RUNS]      (prints a table; writes nothing else)

Run as a child it does one write: zarr_cost.py --child DIR, printing the write's seconds (marked, so
under the preload the result object covers exactly the write).
"""
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
SHAPE = (5000, 5000)


def child(workdir):
    import numcodecs
    import numpy as np
    import zarr

    data = np.random.default_rng(1).random(SHAPE, dtype=np.float32)
    try:
        mark = ctypes.CDLL(None)
        begin, end = mark.tly_mark_begin, mark.tly_mark_end
    except AttributeError:
        begin = end = None
    t0 = time.perf_counter()
    if begin:
        begin(b"write", ctypes.c_ulonglong(data.nbytes))
    z = zarr.open(os.path.join(workdir, "a.zarr"), mode="w", shape=SHAPE, chunks=SHAPE, dtype="<f4",
                  compressor=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=1))
    z[:] = data
    if end:
        end(ctypes.c_ulonglong(0))
    dt = time.perf_counter() - t0
    print(json.dumps({"write_s": dt, "zarr": zarr.__version__}))


def run(env, workdir):
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, __file__, "--child", workdir], env=env, capture_output=True, text=True,
                       check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])["write_s"], time.perf_counter() - t0


def main():
    if sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    preload = os.path.abspath(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory(prefix="tally-zarr-cost-") as tmp:
        base = dict(os.environ)
        base.pop("LD_PRELOAD", None)
        configs = {
            "plain": base,
            "jemalloc": dict(base, LD_PRELOAD=JEMALLOC),
            "preload": dict(base, LD_PRELOAD=f"{JEMALLOC} {preload}",
                            TALLY_PROFILE_OUT=os.path.join(tmp, "result.json")),
        }
        best = {k: [1e9, 1e9] for k in configs}
        for _ in range(runs):  # interleaved, so that noise from other work falls on all three
            for name, env in configs.items():
                w, p = run(env, tmp)
                best[name] = [min(best[name][0], w), min(best[name][1], p)]
        print(f"zarr-python write, 100 MB float32, one chunk, blosc lz4; best of {runs}")
        print(f"{'':10} {'write s':>9} {'process s':>10}")
        for name, (w, p) in best.items():
            print(f"{name:10} {w:9.3f} {p:10.3f}")
        with open(os.path.join(tmp, "result.json")) as f:
            r = json.load(f)
        libs = ", ".join(f"{k} {v['at_peak_bytes'] / 1e6:.1f} MB" for k, v in r["libraries"].items()
                         if v["at_peak_bytes"])
        print(f"last preload result: peak_extra_ratio {r['peak_extra_ratio']:.3f}, extra_copies "
              f"{r['extra_copies']}, coverage {r['coverage']['ratio']:.4f}; at the peak: {libs}")


if __name__ == "__main__":
    main()
