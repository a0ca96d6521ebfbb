#!/usr/bin/python3
"""Concurrent writers and readers of one S3 array (issue 25 N1, N2), against the real radosgw.

  races_s3.py TALLY [ROUNDS]   one line per check and "N passed, N failed"; exit 1 on a failure, 77 (skip)
                               without a server; ROUNDS defaults to 20

- a reader during an overwrite: while `put --overwrite` replaces array A with B (same shape and
  codec, so the metadata documents are byte for byte alike: only the writer's id tells them apart),
  readers run `get` again and again; every read that exits 0 returns exactly A or exactly B (never a
  mix, never fill values where the overwrite had deleted a chunk), and every other exits 2 saying why
  ("replaced while it was read", "incomplete array", "no Zarr array");
- two writers at once: two `put --overwrite` of A and B onto array C, started together; at most one
  exits 0, the other exits 2 naming the write that holds the array, and the array read afterwards is
  exactly the winner's (when both lose to a third party nobody wins: never here);
- a marker left by a process that no longer runs (SIGKILL mid-write) is taken over by the next
  `put --overwrite`; one left by a live writer is not, and `tally gc` leaves a running write alone
  (exit 2 naming it) but removes what a write that no longer runs left.

Each round's counts are printed; the totals must be 0 mixed and 0 silent fills.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3util import S3, Results, require_server  # noqa: E402

require_server()
TALLY = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
BUCKET = os.environ["TALLY_S3_BUCKET"]
PREFIX = f"tally-test/races-{os.getpid()}"
s3 = S3()
R = Results()
SHAPE, CHUNKS = (1024, 1024), "64,64"  # 4 MiB of float32 in 256 chunks of 16 KiB: reads and writes long enough to overlap
WHY = ("replaced while it was read", "incomplete array", "no Zarr array")


def tally(*args, timeout=300):
    return subprocess.run([TALLY, *args], capture_output=True, text=True, timeout=timeout)


def url(name):
    return f"s3://{BUCKET}/{PREFIX}/{name}"


def arrays(w):
    """Three arrays with no zero anywhere (a zero in a read is a fill value) and no element alike."""
    n = SHAPE[0] * SHAPE[1]
    out = {}
    for i, name in enumerate("ABC"):
        a = (np.arange(n, dtype=np.float32) + 1 + i * n).reshape(SHAPE)
        np.save(f"{w}/{name}.npy", a)
        out[name] = a
    return out


def put(w, name, dst, *extra):
    return tally("put", f"{w}/{name}.npy", url(dst), "--chunks", CHUNKS, "--codec", "zstd", "--overwrite", *extra)


def judge(got, data):
    """'A', 'B', 'C', 'fill' (zeros where values were), or 'mixed'."""
    for k, a in data.items():
        if np.array_equal(got, a):
            return k
    if (got == 0).any():
        return "fill"
    return "mixed"


def reader_during_overwrite(w, data):
    totals = {"A": 0, "B": 0, "refused": 0, "mixed": 0, "fill": 0, "unclear": 0}
    unclear = []
    for rnd in range(ROUNDS):
        src = "A" if rnd % 2 == 0 else "B"
        dst = "B" if src == "A" else "A"
        if rnd == 0:
            p = put(w, src, "r")
            if not R.check("reader race: the first array is written", p.returncode == 0, p.stderr[-300:]):
                return
        writer = subprocess.Popen([TALLY, "put", f"{w}/{dst}.npy", url("r"), "--chunks", CHUNKS, "--codec", "zstd",
                                   "--overwrite"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stop = threading.Event()
        lock = threading.Lock()

        def read_loop(k):
            i = 0
            while not stop.is_set() or i == 0:
                out = f"{w}/read-{k}.npy"
                p = tally("get", url("r"), out, "--force")
                i += 1
                with lock:
                    if p.returncode == 0:
                        totals[judge(np.load(out), {"A": data["A"], "B": data["B"]})] += 1
                    elif p.returncode == 2 and any(s in p.stderr for s in WHY):
                        totals["refused"] += 1
                    else:
                        totals["unclear"] += 1
                        unclear.append((p.returncode, p.stderr[-300:]))

        readers = [threading.Thread(target=read_loop, args=(k,)) for k in range(2)]
        for t in readers:
            t.start()
        _, err = writer.communicate(timeout=300)
        stop.set()
        for t in readers:
            t.join()
        if not R.check(f"reader race round {rnd + 1}: the overwrite exits 0", writer.returncode == 0, err[-300:]):
            return
    print(f"reader race, {ROUNDS} rounds: {totals}")
    R.check(f"reader race: 0 mixed, 0 silent fills in {ROUNDS} rounds "
            f"({totals['A'] + totals['B']} reads returned one whole array, {totals['refused']} refused, saying why)",
            totals["mixed"] == 0 and totals["fill"] == 0, totals)
    R.check("reader race: every read that did not succeed said why (replaced, incomplete or no array), exit 2",
            totals["unclear"] == 0, unclear[:3])
    R.check("reader race: reads overlapped the overwrites (some refused or read the old array mid-write)",
            totals["refused"] > 0, totals)


def two_writers(w, data):
    totals = {"one won": 0, "both won": 0, "none won": 0, "mixed": 0, "wrong array": 0, "unclear loser": 0}
    detail = []
    for rnd in range(ROUNDS):
        p = put(w, "C", "wr")
        if not R.check(f"writer race round {rnd + 1}: array C written", p.returncode == 0, p.stderr[-300:]):
            return
        procs = {k: subprocess.Popen([TALLY, "put", f"{w}/{k}.npy", url("wr"), "--chunks", CHUNKS, "--codec", "zstd",
                                      "--overwrite"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for k in ("A", "B")}
        res = {k: (p.wait(timeout=300), p.stderr.read()) for k, p in procs.items()}
        won = [k for k, (rc, _) in res.items() if rc == 0]
        for k, (rc, err) in res.items():
            if rc != 0 and not (rc == 2 and "another write" in err):
                totals["unclear loser"] += 1
                detail.append((k, rc, err[-300:]))
        g = tally("get", url("wr"), f"{w}/wr.npy", "--force")
        got = judge(np.load(f"{w}/wr.npy"), data) if g.returncode == 0 else f"get failed: {g.stderr[-200:]}"
        if len(won) == 1:
            totals["one won"] += 1
            if got != won[0]:
                totals["wrong array" if got in data else "mixed"] += 1
                detail.append((won, got))
        elif len(won) == 2:
            totals["both won"] += 1
            detail.append(("both exited 0", got))
        else:
            totals["none won"] += 1
            detail.append(("none exited 0", got, res))
    print(f"writer race, {ROUNDS} rounds: {totals}")
    R.check(f"writer race: in each of {ROUNDS} rounds exactly one writer exits 0 "
            f"({totals['both won']} rounds both, {totals['none won']} none)",
            totals["one won"] == ROUNDS, detail[:3])
    R.check("writer race: the array read afterwards is exactly the winner's (0 mixed, 0 wrong)",
            totals["mixed"] == 0 and totals["wrong array"] == 0, detail[:3])
    R.check("writer race: each loser exits 2 naming the write that holds the array", totals["unclear loser"] == 0,
            detail[:3])


def interrupted(w, data):
    """A killed writer's marker is taken over; a live writer's is not."""
    p = subprocess.Popen([TALLY, "put", f"{w}/A.npy", url("k"), "--chunks", CHUNKS, "--codec", "zstd", "--overwrite"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline and s3.head(f"{PREFIX}/k/.tally-incomplete") != 200:
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    marker = s3.request("GET", f"{PREFIX}/k/.tally-incomplete")[2]
    R.check("a writer killed mid-write leaves its marker, naming its process",
            b"writer: " in marker and f"pid: {p.pid}".encode() in marker, marker[-200:])
    q = put(w, "B", "k")
    g = tally("get", url("k"), f"{w}/k.npy", "--force")
    R.check("put --overwrite takes over the marker of a writer that no longer runs, and writes its array",
            q.returncode == 0 and g.returncode == 0 and judge(np.load(f"{w}/k.npy"), data) == "B",
            (q.stderr[-300:], g.stderr[-300:]))
    # a live writer: a marker naming this very process (the test), which runs: its pid and start time
    start = open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]
    body = (f"tally: an array is being written here\nwriter: 0123456789abcdef0123456789abcdef\npid: {os.getpid()}\n"
            f"host: {os.uname().nodename}\nstart: {start}\nsince: now\n").encode()
    s3.request("PUT", f"{PREFIX}/k/.tally-incomplete", body=body)
    q = put(w, "C", "k")
    R.check("a marker whose writer runs is not taken over: exit 2 naming its pid, the array untouched",
            q.returncode == 2 and "another write holds this array" in q.stderr and f"pid {os.getpid()}" in q.stderr,
            (q.returncode, q.stderr[-300:]))
    g = tally("get", url("k"), f"{w}/k.npy", "--force")
    R.check("... and the array is still B's", g.returncode == 0 and judge(np.load(f"{w}/k.npy"), data) == "B",
            g.stderr[-300:])
    gc = tally("gc", url("k"))
    R.check("tally gc leaves a running write alone: exit 2 naming it, the marker kept",
            gc.returncode == 2 and "a write is running here" in gc.stderr and
            s3.head(f"{PREFIX}/k/.tally-incomplete") == 200, (gc.returncode, gc.stderr[-300:]))
    dead = subprocess.Popen(["true"])  # a process that no longer runs: its pid in the marker
    dead.wait()
    s3.request("PUT", f"{PREFIX}/k/.tally-incomplete",
               body=body.replace(f"pid: {os.getpid()}".encode(), f"pid: {dead.pid}".encode()))
    gc = tally("gc", url("k"))
    g = tally("get", url("k"), f"{w}/k.npy", "--force")
    R.check("tally gc removes the marker a write that no longer runs left beside the array, the array kept",
            gc.returncode == 0 and s3.head(f"{PREFIX}/k/.tally-incomplete") == 404 and
            g.returncode == 0 and judge(np.load(f"{w}/k.npy"), data) == "B", (gc.stderr[-300:], g.stderr[-300:]))


def main():
    w = tempfile.mkdtemp(prefix="tally-races-")
    try:
        data = arrays(w)
        reader_during_overwrite(w, data)
        two_writers(w, data)
        interrupted(w, data)
    finally:
        s3.delete_prefix(PREFIX)
        subprocess.run(["rm", "-rf", w])
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
