#!/usr/bin/python3
"""What counting every copy costs (issue 20): programs that make many small memcpys, timed plainly,
with jemalloc alone, under the preload as it is, and (--before SO) under an older preload that counted
only copies of 64 KiB or more. A benchmark, not a test: it times, so it asserts nothing; run it on a
quiet machine.

  copy_cost.py BUILD_DIR [--before OLD_PRELOAD_SO] [--reps N]
      prints a table: median wall seconds of N runs (default 5) and each kind's ratio to jemalloc alone

Programs:
  storm-1     tests/bench/storms/memcpy_storm.c: 20,000,000 memcpys of 100 bytes on one thread
  storm-2     the same, 10,000,000 on each of two threads
  import      /usr/bin/python3 -c 'import zarr' (numpy, numcodecs: the interpreter's small copies)
  zarr-1000   zarr-python 2.13 writing a 40 MB float32 array in 1000 chunks (blosc lz4) to a directory
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
PYTHON = "/usr/bin/python3"
ZARR_1000 = ("import sys, numpy as np, numcodecs, zarr\n"
             "a = np.random.default_rng(1).random((2000, 5000), dtype=np.float32)\n"
             "z = zarr.open(sys.argv[1], mode='w', shape=a.shape, chunks=(200, 50), dtype='<f4',\n"
             "              compressor=numcodecs.Blosc(cname='lz4', clevel=5, shuffle=1))\n"
             "z[:] = a\n"
             "assert z.nchunks_initialized == 1000\n")


def timed(cmd, env):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr[-300:]}")
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--before", help="an older libtally-preload.so to compare with")
    ap.add_argument("--reps", type=int, default=5)
    o = ap.parse_args()
    preload = os.path.join(os.path.abspath(o.build), "libtally-preload.so")
    w = tempfile.mkdtemp(prefix="tally-copy-cost-")
    try:
        storm = os.path.join(w, "memcpy_storm")
        subprocess.run(["cc", "-O2", "-pthread", "-o", storm, os.path.join(HERE, "storms", "memcpy_storm.c")],
                       check=True)
        zdir = os.path.join(w, "z.zarr")
        progs = {
            "storm-1": [storm, "20000000", "100", "1"],
            "storm-2": [storm, "10000000", "100", "2"],
            "import": [PYTHON, "-c", "import zarr"],
            "zarr-1000": [PYTHON, "-c", ZARR_1000, zdir],
        }
        base = dict(os.environ)
        for k in ("LD_PRELOAD", "TALLY_PROFILE_OUT", "TALLY_PROFILE_ROOT"):
            base.pop(k, None)
        out = os.path.join(w, "result.json")
        kinds = {"plain": base, "jemalloc": {**base, "LD_PRELOAD": JEMALLOC}}
        if o.before:
            kinds["tally-before"] = {**base, "LD_PRELOAD": f"{os.path.abspath(o.before)} {JEMALLOC}",
                                     "TALLY_PROFILE_OUT": out}
        kinds["tally"] = {**base, "LD_PRELOAD": f"{preload} {JEMALLOC}", "TALLY_PROFILE_OUT": out}
        times = {(p, k): [] for p in progs for k in kinds}
        for _ in range(o.reps):
            for p, cmd in progs.items():
                for k, env in kinds.items():  # taking turns, so that drift in the machine's load is shared
                    shutil.rmtree(zdir, ignore_errors=True)
                    times[(p, k)].append(timed(cmd, env))
        print(f"median wall seconds of {o.reps} runs; (x): ratio to jemalloc alone")
        print(f"{'program':<12}" + "".join(f"{k:>22}" for k in kinds))
        for p in progs:
            ref = statistics.median(times[(p, "jemalloc")])
            row = "".join(f"{statistics.median(times[(p, k)]):>13.3f} ({statistics.median(times[(p, k)]) / ref:5.2f}x)"
                          for k in kinds)
            print(f"{p:<12}{row}")
    finally:
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
