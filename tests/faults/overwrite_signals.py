#!/usr/bin/python3
"""put --overwrite killed at random points: every later get is exactly the old array or exactly the
new one, or (S3, by its documented contract) a clear "incomplete array ... run tally gc" error;
never a mix with exit 0 (issue 15, D5).

  overwrite_signals.py TALLY local|s3 [RUNS]    one line per check; exit 1 on a failure, 77 (skip)
                                                for s3 without a server

Each run writes the old array, starts `tally put NEW --overwrite`, sends SIGTERM (or SIGINT, every
fourth run) after a random delay within the time an uninterrupted overwrite takes (a quarter of the
runs in its first 15%, a quarter around its end), and reads the array back. The old and new arrays differ in every element, codec and chunking, so a mix
cannot pass for either. After each run `tally gc` must leave nothing behind: no staging directory
beside a local array, no marker, multipart upload or orphan chunk under an S3 prefix.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pylib"))
sys.path.insert(0, os.path.join(HERE, "..", "s3"))
import tallytest as t  # noqa: E402

TALLY, MODE = os.path.abspath(sys.argv[1]), sys.argv[2]
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 20


def tally(*args, timeout=120):
    return subprocess.run([TALLY, *args], capture_output=True, text=True, timeout=timeout)


def main():
    if MODE == "s3":
        from s3util import S3, require_server
        require_server()
        s3 = S3()
        prefix = f"tally-test/signals-{os.getpid()}"
        target = f"s3://{os.environ['TALLY_S3_BUCKET']}/{prefix}/a"
    w = tempfile.mkdtemp(prefix="tally-signals-")
    if MODE == "local":
        target = f"{w}/arrays/a"
    rng = np.random.default_rng(15)
    side = 512 if MODE == "local" else 256  # S3: 256 chunks to delete and 128 to write per overwrite
    old = rng.random((side, side), dtype=np.float32)
    new = old + 1.0  # differs in every element
    np.save(f"{w}/old.npy", old)
    np.save(f"{w}/new.npy", new)
    put_old = ["put", f"{w}/old.npy", target, "--overwrite", "--chunks", "16,16", "--codec", "none"]
    put_new = ["put", f"{w}/new.npy", target, "--overwrite", "--chunks", "32,16", "--codec", "zstd",
               "--threads", "2"]
    outcomes = {"old": 0, "new": 0, "incomplete": 0, "mixed or wrong": 0}
    killed = 0
    try:
        p = tally(*put_old)
        assert p.returncode == 0, p.stderr
        spans = []
        for _ in range(2):
            t0 = time.monotonic()
            p = tally(*put_new)
            spans.append(time.monotonic() - t0)
            assert p.returncode == 0, p.stderr
        span = max(spans)
        print(f"an uninterrupted overwrite takes {span * 1000:.0f} ms; signals at random points in it")
        for run in range(RUNS):
            p = tally(*put_old)
            if not t.check(f"run {run}: the old array is written", p.returncode == 0, p.stderr):
                continue
            sig = signal.SIGINT if run % 4 == 3 else signal.SIGTERM
            # a quarter of the runs early, a quarter near the end, half anywhere: every phase is hit
            r = random.Random(run)
            delay = span * (r.uniform(0, 0.15) if run % 4 == 0 else r.uniform(0.85, 1.1) if run % 4 == 1 else
                            r.uniform(0, 1))
            proc = subprocess.Popen([TALLY, *put_new], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(delay)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=120)
            killed += proc.returncode < 0
            out = f"{w}/back.npy"
            g = tally("get", target, out, "--force")
            if g.returncode == 0:
                back = np.load(out)
                what = ("old" if back.shape == old.shape and np.array_equal(back, old) else
                        "new" if back.shape == new.shape and np.array_equal(back, new) else "mixed or wrong")
            elif MODE == "s3" and "incomplete array" in g.stderr and "tally gc" in g.stderr:
                what = "incomplete"
            else:
                what = "mixed or wrong"
            outcomes[what] += 1
            t.check(f"run {run}: {sig.name} after {delay * 1000:.0f} ms (put exit {proc.returncode}): the get reads "
                    f"{what}", what in ("old", "new") or (what == "incomplete" and MODE == "s3"),
                    (g.returncode, g.stderr[-300:], err[-300:]))
            gc = tally("gc", target)
            t.check(f"run {run}: tally gc", gc.returncode == 0, gc.stderr)
            if MODE == "local":
                left = [n for n in os.listdir(f"{w}/arrays") if n != "a"]
                inside = [n for n in os.listdir(target) if n.startswith(".") and ".tmp-" in n] if os.path.isdir(
                    target) else []
                t.check(f"run {run}: nothing left beside or in the array after gc", not left and not inside,
                        left + inside)
            else:
                uploads = s3.list_uploads(prefix + "/")
                marker = s3.head(f"{prefix}/a/.tally-incomplete")
                t.check(f"run {run}: no multipart upload and no marker left after gc",
                        uploads == [] and marker == 404, (uploads, marker))
                if what == "incomplete":
                    t.check(f"run {run}: gc deleted the incomplete array", s3.list_keys(prefix + "/") == [],
                            s3.list_keys(prefix + "/")[:5])
        print(f"{MODE}: {RUNS} runs, {killed} killed before they finished: " +
              ", ".join(f"{v} {k}" for k, v in outcomes.items()))
        t.check(f"{MODE}: never a mix", outcomes["mixed or wrong"] == 0, outcomes)
        t.check(f"{MODE}: runs were killed mid-write", killed >= RUNS // 4, killed)
    finally:
        if MODE == "s3":
            s3.delete_prefix(prefix + "/")
        shutil.rmtree(w, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
