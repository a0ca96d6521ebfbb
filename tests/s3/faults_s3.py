#!/usr/bin/python3
"""Faults on the way to S3, and tally's answers to them.

  faults_s3.py TALLY S3_SERVER     one line per check; exit 1 on a failure, 77 (skip) without a server

- A proxy on loopback (s3util.FaultProxy) answers some requests 503 SlowDown, resets connections
  before answering and cuts answers off mid-body: every write and read still succeeds and reads back
  equal; a failed part is retried on its own; a cut download resumes with a Range where it stopped.
- A server that keeps answering SlowDown: the error names it and the attempts made.
- radosgw alone killed in the middle of a multipart write (the mon and the OSD keep the data): the
  write fails with a clear error and leaves no object under its key; a read says the array is
  incomplete; once radosgw is back, `tally gc` aborts the upload it left and deletes the incomplete
  array, and the same write then succeeds.

It stops and starts radosgw: ctest runs it alone (RUN_SERIAL).
"""
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3util import S3, FaultProxy, Results, require_server  # noqa: E402

require_server()
TALLY, SERVER = sys.argv[1], sys.argv[2]
BUCKET = os.environ["TALLY_S3_BUCKET"]
PREFIX = f"tally-test/faults-{os.getpid()}"
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]
s3 = S3()
R = Results()


def tally(*args, env=None, timeout=300):
    if args and args[0] == "get":  # these tests read into the same files again: replacing them is meant
        args = (*args, "--force")
    return subprocess.run([TALLY, *args], capture_output=True, text=True, env=env, timeout=timeout)


def url(name):
    return f"s3://{BUCKET}/{PREFIX}/{name}"


def part_number(target):
    m = re.search(r"partNumber=(\d+)", target)
    return int(m.group(1)) if m else None


def injected(w):
    """SlowDown, resets and cut bodies from the proxy: retried, and the data reads back equal."""
    seen = Counter()

    def plan(n, method, target, headers):
        path = target.split("?")[0]
        seen[(method, target if part_number(target) else path)] += 1
        first = seen[(method, target if part_number(target) else path)] == 1
        if first and part_number(target) == 2:
            return "slowdown"
        if first and part_number(target) == 4:
            return "reset"
        if first and method == "GET" and path.endswith("/0.0"):
            return "cut"
        if n % 5 == 2:
            return "slowdown"
        if n % 13 == 6:
            return "reset"
        return None

    proxy = FaultProxy(os.environ["AWS_ENDPOINT_URL"], plan)
    env = dict(os.environ, AWS_ENDPOINT_URL=proxy.url, TALLY_PART_SIZE="5M")
    a = np.random.default_rng(9).random((2048, 2600), dtype=np.float32)  # 21 MB: 5 parts of 5 MiB
    np.save(f"{w}/a.npy", a)
    for codec in ("none", "zstd"):
        proxy.log.clear()
        seen.clear()
        p = tally("put", f"{w}/a.npy", url(f"inj-{codec}"), "--codec", codec, "--chunks", "2048,2600", env=env)
        R.check(f"put through faults ({codec}) succeeds", p.returncode == 0, p.stderr)
        log = list(proxy.log)
        actions = Counter(e["action"] for e in log)
        R.check(f"({codec}) SlowDown and resets were injected", actions["slowdown"] >= 2 and actions["reset"] >= 1,
                actions)
        parts = [e for e in log if e["method"] == "PUT" and part_number(e["target"])]
        good = Counter(part_number(e["target"]) for e in parts if e["action"] is None and e["status"] == 200)
        R.check(f"({codec}) every part uploaded once", sorted(good) == list(range(1, len(good) + 1)) and
                set(good.values()) == {1} and len(good) >= 4, good)
        tries = Counter(part_number(e["target"]) for e in parts)
        faulted = Counter(part_number(e["target"]) for e in parts if e["action"])
        R.check(f"({codec}) a failed part is retried on its own", all(tries[n] == 1 + faulted[n] for n in tries) and
                faulted[2] >= 1 and faulted[4] >= 1, (tries, faulted))
        creates = [e for e in log if e["method"] == "POST" and "uploads" in e["target"] and e["action"] is None]
        R.check(f"({codec}) one multipart upload", len(creates) == 1, len(creates))
        proxy.log.clear()
        seen.clear()
        g = tally("get", url(f"inj-{codec}"), f"{w}/b.npy", env=env)
        R.check(f"get through faults ({codec}) reads back equal",
                g.returncode == 0 and np.array_equal(np.load(f"{w}/b.npy"), a), g.stderr)
        # The chunk's GETs: one streamed GET (zstd), or ranges read at once (none: a lone 21 MB chunk
        # is split among the workers). The first is cut; its rest is asked for with a Range from
        # where it stopped to where it was to end, and If-Match the object it began on.
        chunk = [e for e in proxy.log if e["method"] == "GET" and e["target"].endswith("/0.0")]

        def span(e):
            m = re.match(r"bytes=(\d+)-(\d*)", e["headers"].get("range", ""))
            return (int(m[1]), m[2]) if m else (0, "")

        cut = chunk[0] if chunk and chunk[0]["action"] == "cut" else None
        resumed = [e for e in chunk[1:] if "if-match" in e["headers"]]
        R.check(f"({codec}) a cut download resumes where it stopped (Range, If-Match)",
                cut and resumed and all(span(e)[0] > span(cut)[0] and span(e)[1] == span(cut)[1] for e in resumed),
                [(e["action"], e["headers"].get("range"), e["headers"].get("if-match")) for e in chunk])
    proxy.close()

    always = FaultProxy(os.environ["AWS_ENDPOINT_URL"], lambda n, m, t, h: "slowdown")
    env = dict(os.environ, AWS_ENDPOINT_URL=always.url, TALLY_S3_RETRIES="3", TALLY_S3_BACKOFF_MS="5")
    g = tally("get", url("inj-none"), f"{w}/b.npy", env=env)
    R.check("a server that keeps answering SlowDown: exit 2 naming it and the attempts",
            g.returncode == 2 and "503 SlowDown" in g.stderr and "after 4 attempts" in g.stderr, g.stderr)
    R.check("four attempts each", len(always.log) == 4, len(always.log))
    always.close()


def server(cmd):
    p = subprocess.run([SERVER, cmd], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        print(p.stdout + p.stderr)
    return p.returncode == 0


def rgw_dies_mid_write(w):
    a = np.random.default_rng(11).random((4096, 4096), dtype=np.float32)  # 64 MiB, one chunk: 13 parts
    np.save(f"{w}/big.npy", a)
    env = dict(os.environ, TALLY_PART_SIZE="5M", TALLY_IO_CONCURRENCY="2")
    target = url("crash")
    cmd = [TALLY, "put", f"{w}/big.npy", target, "--chunks", "4096,4096", "--overwrite"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    killed = False
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if s3.list_uploads(f"{PREFIX}/crash/"):
                killed = server("kill-rgw")
                break
            time.sleep(0.01)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        restarted = server("start-rgw")
    R.check("radosgw killed while parts were uploading", killed)
    R.check("radosgw back", restarted)
    R.check("the write fails: exit 2", proc.returncode == 2, (proc.returncode, err))
    R.check("with a clear error naming the chunk and the failure",
            re.search(r"0\.0.*s3 (UploadPart|CreateMultipartUpload|CompleteMultipartUpload) s3://", err) and
            re.search(r"connect|reset|Empty reply|Recv failure|Send failure", err, re.I), err)
    R.check("no credential in it", SECRET not in out + err and "Signature=" not in out + err)
    R.check("no object visible under the chunk's key", s3.head(f"{PREFIX}/crash/0.0") == 404)
    left = s3.list_uploads(f"{PREFIX}/crash/")
    R.check("the crashed write left its multipart upload", len(left) >= 1, left)
    g = tally("get", target, f"{w}/crashed.npy")
    R.check("a read of the interrupted write: exit 2, incomplete array, run tally gc",
            g.returncode == 2 and "incomplete array" in g.stderr and "tally gc" in g.stderr, g.stderr)
    g = tally("gc", target)
    m = re.search(r"removed (\d+)", g.stdout)
    R.check("tally gc aborts it and deletes the incomplete array's marker",
            g.returncode == 0 and m and int(m.group(1)) == len(left) + 1, g.stdout + g.stderr)
    R.check("nothing left under the array's prefix", s3.list_keys(f"{PREFIX}/crash/") == [])
    R.check("no multipart upload left under the prefix", s3.list_uploads(f"{PREFIX}/") == [])
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    R.check("the same write then succeeds", p.returncode == 0, p.stderr)
    g = tally("get", target, f"{w}/back.npy")
    R.check("and reads back equal", g.returncode == 0 and np.array_equal(np.load(f"{w}/back.npy"), a), g.stderr)


def main():
    with tempfile.TemporaryDirectory() as w:
        try:
            injected(w)
            rgw_dies_mid_write(w)
        finally:
            server("start-rgw")
            s3.delete_prefix(PREFIX + "/")
            R.check("the test's objects and uploads are deleted",
                    s3.list_keys(PREFIX + "/") == [] and s3.list_uploads(PREFIX + "/") == [])
    R.finish()


main()
