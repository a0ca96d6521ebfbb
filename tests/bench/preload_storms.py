#!/usr/bin/python3
"""The preload's cost on allocation-heavy programs (issue 25), beside the instruments users compare it
with. A benchmark, not a test: it times, so it asserts nothing; run it on a quiet machine.

  preload_storms.py BUILD_DIR [REPS]     prints a table: median wall seconds of REPS runs (default 5)
                                         and each kind's ratio to the program run plainly

Programs (tests/bench/storms/, compiled here with cc -O2):
  realloc    4,000,000 reallocs of one block to sizes between 16 B and 8 KiB (freed every 1000)
  threads    200 threads, each 50,000 malloc/free pairs of 16-528 B (10 million pairs)

Kinds, taking turns within each repetition:
  plain      glibc's malloc, nothing preloaded
  jemalloc   libjemalloc.so.2 preloaded (what the preload tracker runs on: its own cost apart)
  tally      `LD_PRELOAD="libtally-preload.so libjemalloc.so.2"`, as `tally profile` runs a program
  heaptrack  `heaptrack PROGRAM` (Debian's heaptrack 1.4: records every allocation with its stack)
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
JEMALLOC = "/lib/x86_64-linux-gnu/libjemalloc.so.2"


def timed(cmd, env):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr[-300:]}")
    return dt


def main():
    build = os.path.abspath(sys.argv[1])
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    preload = os.path.join(build, "libtally-preload.so")
    w = tempfile.mkdtemp(prefix="tally-storms-")
    try:
        progs = {}
        for name, src, extra, args in (("realloc", "realloc_storm.c", [], ["4000000"]),
                                       ("threads", "thread_storm.c", ["-pthread"], ["200", "50000"])):
            exe = os.path.join(w, name)
            subprocess.run(["cc", "-O2", *extra, "-o", exe, os.path.join(HERE, "storms", src)], check=True)
            progs[name] = [exe, *args]
        base = dict(os.environ)
        base.pop("LD_PRELOAD", None)
        kinds = {
            "plain": (lambda cmd: cmd, base),
            "jemalloc": (lambda cmd: cmd, {**base, "LD_PRELOAD": JEMALLOC}),
            "tally": (lambda cmd: cmd, {**base, "LD_PRELOAD": f"{preload} {JEMALLOC}",
                                        "TALLY_PROFILE_OUT": os.path.join(w, "result.json")}),
        }
        if shutil.which("heaptrack"):
            kinds["heaptrack"] = (lambda cmd: ["heaptrack", "-o", os.path.join(w, "ht"), *cmd], base)
        times = {(p, k): [] for p in progs for k in kinds}
        for _ in range(reps):
            for p, cmd in progs.items():
                for k, (wrap, env) in kinds.items():
                    times[(p, k)].append(timed(wrap(cmd), env))
                    for f in os.listdir(w):
                        if f.startswith("ht"):
                            os.unlink(os.path.join(w, f))
        print(f"median of {reps} runs, wall seconds (range), ratio to plain; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f} at the end")
        print("| program | " + " | ".join(kinds) + " |")
        print("|---|" + "---|" * len(kinds))
        for p in progs:
            plain = statistics.median(times[(p, "plain")])
            cells = []
            for k in kinds:
                t = times[(p, k)]
                m = statistics.median(t)
                cells.append(f"{m:.3f} s ({min(t):.3f}-{max(t):.3f}) {m / plain:.1f}x")
            print(f"| {p} | " + " | ".join(cells) + " |")
    finally:
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
