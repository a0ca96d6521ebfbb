#!/usr/bin/python3
"""Other stacks on S3 (issue 23 item 4): zarr-python 2.13 through the boto3 store and zarrita through
FetchStore / presigned PUTs, against the radosgw of scripts/s3-server (scripts/test starts it and
exports its environment; without it: SKIP, 77).

  stacks_s3.py TALLY

- `tally run` of a small matrix (32 MB float32 arrays: one chunk, and one v3 shard of 16 inner chunks)
  with --impl zarr-python,zarrita on S3: every cell the stacks can do runs and is verified (the adapter
  reads back what it wrote, or the harness's fixture, and compares it with the data), each result
  names its store (impl_label) and carries the figures (peak extra, copies by library) within bounds
  measured on this machine; copies.md shows the labels;
- zarrita reads what tally wrote: its S3 read cells read an array tally's engine wrote (s3_fixture),
  and tally reads what zarr-python + boto3 wrote (`tally get` of an array the boto3 store holds);
- nothing is left under the prefixes, and no anonymous read policy is left on the bucket;
- the boto3 store's errors: a wrong secret names the key and HTTP 403, prints no secret; a dead
  endpoint names the endpoint.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "pylib"))
sys.path.insert(0, os.path.join(ROOT, "harness", "impl"))
import tallytest as t  # noqa: E402
from s3util import SKIP, require_server  # noqa: E402

SHAPE = [4000, 2000]  # 32 MB: above the 16 MiB fixed overhead, so copies are copies
ARRAY = SHAPE[0] * SHAPE[1] * 4


def matrix(path):
    impl = os.path.join(ROOT, "harness", "impl")
    m = {
        "axes": {"op": ["write", "read"], "store": ["s3"], "codec": ["none", "blosc", "zstd"],
                 "format": ["v2", "v3"], "layout": ["one-chunk", "sharded"]},
        "layouts": {"one-chunk": {"dtype": "<f4", "shape": SHAPE, "chunks": SHAPE},
                    "sharded": {"dtype": "<f4", "shape": SHAPE, "chunks": SHAPE, "inner_chunks": [1000, 500],
                                "formats": ["v3"], "ops": ["read"]}},
        "codecs": {"none": "none", "blosc": "blosc:cname=lz4,clevel=5,shuffle=1", "zstd": "zstd:level=3"},
        "impls": {"zarr-python": {"command": ["/usr/bin/python3", os.path.join(impl, "zarr_python.py")]},
                  "zarrita": {"command": ["node", "--no-concurrent-array-buffer-sweeping",
                                          os.path.join(impl, "zarrita.mjs")],
                              "sharded_fixture": True, "s3_fixture": True}},
        "threads": 2, "memory_limit": 67108864, "budgets": [],
    }
    with open(path, "w") as f:
        json.dump(m, f)


# What each stack can do on S3, and the bounds of its peak extra (x array). Measured with these 32 MB
# arrays on this machine (2 cores, the test's radosgw): zarr-python + boto3 reads 0.90-1.01 (the chunk's
# body, http.client's bytes, beside the output), writes 1.02-1.08 (none: zarr's tobytes copy) and 1.90-2.00
# (numcodecs' bound-sized output and its shrunk copy); zarrita 1.9-3.1, with V8's garbage collector.
def expect(impl, op, fmt, codec, layout):
    """(status, (low, high) peak extra x array or None, the library that must hold the most at the peak,
    None for a read: the output, numpy's or node's, is what the peak holds most of, and is not extra)."""
    if impl == "zarr-python":
        if fmt != "v2" or layout != "one-chunk":
            return "skipped", None, None
        if op == "read":
            return "ok", (0.75, 1.2), None  # the body's bytes (http.client): zstd/blosc the encoded chunk
        return "ok", ((0.85, 1.25) if codec == "none" else (1.7, 2.2)), ("numpy" if codec == "none" else "numcodecs")
    if fmt != "v3" or (op == "write" and layout != "one-chunk"):
        return "skipped", None, None
    return "ok", (0.5, 6.0), ("node" if op == "write" else None)  # fetch's bodies, V8's ArrayBuffers


def run_matrix(tally, w):
    path = os.path.join(w, "matrix.json")
    matrix(path)
    out = os.path.join(w, "run")
    p = t.run(tally, "run", "--scenarios", path, "--impl", "zarr-python,zarrita", "--out", out,
              "--cell-timeout", "300")
    t.check("tally run --impl zarr-python,zarrita on S3: exit 0", p.returncode == 0, p.stderr[-2000:])
    try:
        with open(os.path.join(out, "results.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        t.check("results.json", False, e)
        return
    ran = 0
    for e in doc["results"]:
        name = f"{e.get('impl')}/{e.get('scenario')}"
        want, bounds, holder = expect(e["impl"], e["op"], e["format"], e["codec"], e["layout"])
        if not t.check(f"{name}: {want}", e.get("status") == want, f"{e.get('status')}: {e.get('reason')}"):
            continue
        if want != "ok":
            t.check(f"{name}: skipped with a reason", bool(e.get("reason")), e)
            continue
        ran += 1
        label = e.get("impl_label", "")
        t.check(f"{name}: verified, labelled '{label}'", e.get("verified") is True and (
            label == "zarr-python + boto3 store" if e["impl"] == "zarr-python"
            else label.startswith("zarrita + ")), e.get("impl_label"))
        ratio = e.get("peak_extra_ratio")
        t.check(f"{name}: peak extra {ratio} x array within {bounds}",
                isinstance(ratio, (int, float)) and bounds[0] <= ratio <= bounds[1], ratio)
        libs = e.get("libraries") or {}
        top = max(libs, key=lambda k: libs[k].get("at_peak_bytes", 0)) if libs else None
        t.check(f"{name}: copies by library{f', {holder} holds the most at the peak' if holder else ''} ({top})",
                (holder is None or top == holder) and libs and all("copies" in v for v in libs.values()), sorted(libs))
        if e["impl"] == "zarr-python" and e["op"] == "read":
            # the body is botocore's: read by http.client, charged to the interpreter, a whole chunk
            held = libs.get("python3.11", {}).get("at_peak_bytes", 0)
            t.check(f"{name}: python3.11 (http.client's body) holds {held / ARRAY:.2f} x array",
                    held >= 0.75 * ARRAY, held)
    t.check("cells ran: 6 zarr-python + boto3, 9 zarrita (6 reads incl. 3 sharded of tally's, 3 writes)", ran == 15,
            ran)
    try:
        md = open(os.path.join(out, "copies.md")).read()
    except OSError as e:
        md = str(e)
    t.check("copies.md names 'zarr-python + boto3 store' and zarrita's stores",
            "| zarr-python + boto3 store |" in md and "zarrita + FetchStore" in md and "zarrita + presigned-PUT store" in md,
            md[-500:])


def round_trip(tally, w):
    """zarr-python + boto3 writes, tally reads it back; tally writes, zarr-python + boto3 reads."""
    import numpy as np
    import zarr
    import numcodecs
    import s3_boto3_store as s3b
    bucket = os.environ["TALLY_S3_BUCKET"]
    prefix = f"tally-test-stacks/{os.getpid()}"
    a = np.random.default_rng(3).random((300, 500), dtype=np.float32)
    np.save(os.path.join(w, "a.npy"), a)
    for codec, comp in (("none", None), ("zstd", numcodecs.Zstd(level=3)), ("blosc", numcodecs.Blosc())):
        store = s3b.Boto3Store(bucket, f"{prefix}/zp-{codec}")
        z = zarr.open_array(store, mode="w-", shape=a.shape, chunks=(100, 200), dtype=a.dtype, compressor=comp)
        z[...] = a
        out = os.path.join(w, f"b-{codec}.npy")
        p = t.run(tally, "get", f"s3://{bucket}/{prefix}/zp-{codec}", out)
        t.check(f"tally reads what zarr-python + boto3 wrote ({codec})",
                p.returncode == 0 and np.array_equal(np.load(out), a), p.stderr[-500:])
        p = t.run(tally, "put", os.path.join(w, "a.npy"), f"s3://{bucket}/{prefix}/tl-{codec}", "--codec", codec,
                  "--chunks", "128,128")
        back = zarr.open_array(s3b.Boto3Store(bucket, f"{prefix}/tl-{codec}"), mode="r")[...] if p.returncode == 0 else None
        t.check(f"zarr-python + boto3 reads what tally wrote ({codec})",
                p.returncode == 0 and np.array_equal(back, a), p.stderr[-500:])
    s3b.Boto3Store(bucket, prefix).remove_all()
    t.check("the boto3 store removed what it wrote", list(s3b.Boto3Store(bucket, prefix)) == [])


def errors(w):
    import s3_boto3_store as s3b
    bucket = os.environ["TALLY_S3_BUCKET"]
    secret = "not-the-secret-0123456789"
    code = ("import sys; sys.path.insert(0, %r); import s3_boto3_store as s\n"
            "try:\n    s.Boto3Store(%r, 'tally-test-stacks/err')['.zarray']\nexcept s.StoreError as e:\n    print(e)\n"
            % (os.path.join(ROOT, "harness", "impl"), bucket))
    p = t.run("/usr/bin/python3", "-c", code, env=dict(os.environ, AWS_SECRET_ACCESS_KEY=secret))
    t.check("a wrong secret: the key, HTTP 403 and the variables to check; no secret printed",
            f"s3://{bucket}/tally-test-stacks/err/.zarray" in p.stdout and "HTTP 403" in p.stdout
            and "AWS_SECRET_ACCESS_KEY" in p.stdout and secret not in p.stdout + p.stderr
            and os.environ["AWS_SECRET_ACCESS_KEY"] not in p.stdout + p.stderr, p.stdout + p.stderr[-300:])
    dead = "http://127.0.0.1:9"  # discard: nothing listens
    p = t.run("/usr/bin/python3", "-c", code, env=dict(os.environ, AWS_ENDPOINT_URL=dead), timeout=120)
    t.check("a dead endpoint: the key and the endpoint named", f"no answer from {dead}" in p.stdout
            and ".zarray" in p.stdout, p.stdout + p.stderr[-300:])
    # and no read policy is left by zarrita's cells
    pol = s3b._policy(s3b.client(), bucket)
    t.check("no anonymous read statement left on the bucket",
            not [s for s in pol.get("Statement", []) if str(s.get("Sid", "")).startswith("tallyread")], pol)


def main():
    if len(sys.argv) != 2:
        print("usage: stacks_s3.py TALLY", file=sys.stderr)
        return 2
    require_server()
    try:
        import boto3  # noqa: F401
    except ImportError as e:
        print(f"SKIP: boto3 is not importable by /usr/bin/python3 (Debian: python3-boto3; scripts/deps): {e}")
        return SKIP
    if shutil.which("node") is None or not os.path.isdir(os.path.join(ROOT, "harness", "impl", "node_modules", "zarrita")):
        print("SKIP: node or zarrita (harness/impl/node_modules: scripts/deps runs npm ci) is missing")
        return SKIP
    tally = sys.argv[1]
    w = tempfile.mkdtemp(prefix="tally-test-stacks-")
    try:
        if "tracking: off" in t.run(tally, "--version").stdout:
            t.skip("tally run of the S3 stacks", "tracking is off in this build (sanitizers own malloc): the "
                   "preload cannot measure the adapters")
        else:
            run_matrix(tally, w)
        round_trip(tally, w)
        errors(w)
    except subprocess.TimeoutExpired as e:
        t.check("no step timed out", False, e)
    finally:
        shutil.rmtree(w, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
