#!/usr/bin/python3
"""Cells built to be bound by one resource each get that resource as their bottleneck verdict:

  encode   a local write with zstd at level 15 on 2 threads, 16 chunks, a 64 MiB budget
  memory   the same write at level 9 with a 64 KiB budget: every chunk's ticket is larger, so chunks
           run one at a time and the other worker waits for the pool
  http     an S3 write through a loopback proxy that lets 6 MB/s through (skipped without S3)

Each cell runs as `tally scenario CELL` (the child side of tally run) and its result carries
stage_time, time and bottleneck. Nothing is timed against a number: the verdicts are ratios of the
same run's times.

  bound.py TALLY
"""
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pylib"))
sys.path.insert(0, os.path.join(HERE, "..", "s3"))
import tallytest as t  # noqa: E402
import s3util  # noqa: E402


def cell(name, op, store, spec, memory_limit, threads=2, io=8, shape=(1024, 2048), chunks=(256, 512)):
    return {"scenario": name, "op": op, "store": store, "codec": spec.split(":")[0], "codec_spec": spec,
            "format": "v2", "layout": "bound", "dtype": "<f4", "shape": list(shape), "chunks": list(chunks),
            "threads": threads, "io_concurrency": io, "memory_limit": memory_limit}


def scenario(tally, c, env=None):
    p = subprocess.run([tally, "scenario", json.dumps(c)], capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        return None, p.stderr[-400:]
    return json.loads(p.stdout), ""


def expect(tally, c, resource, env=None):
    r, err = scenario(tally, c, env)
    if not t.check(f"{c['scenario']} runs", r is not None, err):
        return None
    b = r.get("bottleneck") or {}
    t.check(f"{c['scenario']}: bound by {resource} ({b.get('sentence')})", b.get("resource") == resource, b)
    st = r.get("stage_time") or {}
    t.check(f"{c['scenario']}: stage_time has busy_s, waiting_s, busy_fraction per stage",
            st and all({"busy_s", "waiting_s", "busy_fraction"} <= set(v) for v in st.values()), st)
    return r


class Bucket:
    """A token bucket shared by every connection: rate bytes per second."""

    def __init__(self, rate):
        self.rate, self.lock, self.next = rate, threading.Lock(), time.monotonic()

    def take(self, n):
        with self.lock:
            now = time.monotonic()
            self.next = max(self.next, now) + n / self.rate
            wait = self.next - now
        if wait > 0:
            time.sleep(wait)


def throttled(rate):
    """s3util's proxy with every socket read paced by one bucket: a link of @p rate bytes/s."""
    bucket = Bucket(rate)
    base = s3util._Conn

    class Slow(base):
        def read_n(self, n):
            out = b""
            while len(out) < n:
                k = min(65536, n - len(out))
                bucket.take(k)
                out += base.read_n(self, k)
            return out

    s3util._Conn = Slow
    return s3util.FaultProxy(os.environ["AWS_ENDPOINT_URL"])


def main():
    tally = os.path.abspath(sys.argv[1])
    r = expect(tally, cell("bound-encode", "write", "local", "zstd:level=15", 64 << 20), "encode")
    if r:
        st = r["stage_time"]
        t.check("bound-encode: encode busier than put", st["encode"]["busy_s"] > st["put"]["busy_s"], st)
    r = expect(tally, cell("bound-memory", "write", "local", "zstd:level=9", 64 << 10), "memory")
    if r:
        t.check("bound-memory: the pool made chunks wait, and ran them alone", r["pool"]["waits"] > 0 and
                r["pool"]["forced"] == 16, r["pool"])
        t.check("bound-memory: the ticket wait is pool's waiting", r["stage_time"]["pool"]["waiting_s"] > 0 and
                abs(r["stage_time"]["pool"]["waiting_s"] - r["time"]["waits"]["ticket_s"]) < 1e-6, r["stage_time"])
    if not (os.environ.get("AWS_ENDPOINT_URL") and os.environ.get("TALLY_S3_BUCKET")):
        t.skip("bound-http", "no S3 server (AWS_ENDPOINT_URL, TALLY_S3_BUCKET; scripts/s3-server)")
        return t.summary()
    proxy = throttled(6e6)
    try:
        env = dict(os.environ, AWS_ENDPOINT_URL=proxy.url)
        r = expect(tally, cell("bound-http", "write", "s3", "none", 64 << 20, shape=(1024, 2048), chunks=(256, 2048)),
                   "http", env)
        if r:
            t.check(f"bound-http: {r['time']['http_requests']} requests answered, workers waited on HTTP "
                    f"{100 * r['bottleneck']['inputs']['io_share']:.0f}% of their time",
                    r["time"]["http_requests"] >= 4 and r["stage_time"]["put"]["waiting_s"] >
                    r["stage_time"]["put"]["busy_s"], r["time"])
    finally:
        proxy.close()
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
