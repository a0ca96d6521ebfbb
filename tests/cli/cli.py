#!/usr/bin/python3
"""The tally command line, as a user meets it: put/get/info, the --json result object, the figures
of the zero-copy paths, exit statuses and error messages.

  cli.py TALLY      prints one line per check and "N passed, N failed"; exits 1 on any failure
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

FIELDS = ["op", "store", "codec", "codec_config", "format", "dtype", "shape", "chunks", "array_bytes",
          "before_bytes", "output_bytes", "wall_s", "throughput_bps", "peak_bytes", "peak_extra_ratio",
          "extra_copies", "stages", "coverage"]
STAGE_FIELDS = ["allocs", "alloc_bytes", "peak_bytes", "at_peak_bytes", "copy_bytes", "copies"]
STAGES = ["plan", "gather", "encode", "put", "get", "decode", "scatter", "meta", "sign", "http", "pool",
          "caller", "unstaged"]



def run(tally, *args):
    return subprocess.run([tally, *args], capture_output=True, text=True)


def put_json(tally, *args):
    p = run(tally, "put", *args, "--json")
    if p.returncode != 0:
        raise RuntimeError(f"put {args}: exit {p.returncode}: {p.stderr}")
    return json.loads(p.stdout)


def get_json(tally, *args):
    p = run(tally, "get", *args, "--json", "--force")
    if p.returncode != 0:
        raise RuntimeError(f"get {args}: exit {p.returncode}: {p.stderr}")
    return json.loads(p.stdout)


def schema(tally, w):
    a = np.random.default_rng(1).random((300, 200), dtype=np.float32)
    np.save(f"{w}/a.npy", a)
    r = put_json(tally, f"{w}/a.npy", f"{w}/z", "--chunks", "100,100", "--codec", "zstd:level=2")
    t.check("put --json has every field", all(k in r for k in FIELDS), [k for k in FIELDS if k not in r])
    t.check("every stage reported with its fields",
          all(s in r["stages"] and all(f in r["stages"][s] for f in STAGE_FIELDS) for s in STAGES))
    t.check("op/store/codec/format", (r["op"], r["store"], r["codec"], r["format"]) == ("write", "local", "zstd", "v2"))
    t.check("codec_config", r["codec_config"] == {"id": "zstd", "level": 2, "checksum": False}, r["codec_config"])
    t.check("dtype/shape/chunks", (r["dtype"], r["shape"], r["chunks"]) == ("<f4", [300, 200], [100, 100]))
    t.check("array_bytes", r["array_bytes"] == a.nbytes)
    t.check("extra_copies is peak_extra_ratio rounded, or 0 when the extra is under the fixed overhead",
            r["extra_copies"] == (0 if r["overhead_bound"] else round(r["peak_extra_ratio"]))
            and r["overhead_bound"] == (r["peak_extra_bytes"] < 16 << 20 and round(r["peak_extra_ratio"]) != 0), r)
    t.check("throughput = array / wall", abs(r["throughput_bps"] * r["wall_s"] - a.nbytes) < a.nbytes * 1e-3)
    if r.get("tracking", True):
        t.check("coverage near 1", 0.9 < r["coverage"]["ratio"] < 1.1, r["coverage"])
        t.check("the zstd library's allocations land in encode", r["stages"]["encode"]["allocs"] > 0)
    g = get_json(tally, f"{w}/z", f"{w}/b.npy")
    t.check("get --json: op read", g["op"] == "read")
    t.check("get writes the array", np.array_equal(np.load(f"{w}/b.npy"), a))
    if g.get("tracking", True):
        t.check("get: output_bytes is the output buffer", a.nbytes <= g["output_bytes"] < a.nbytes * 1.2,
              g["output_bytes"])
    info = json.loads(run(tally, "info", f"{w}/z", "--json").stdout)
    t.check("info --json", info["shape"] == [300, 200] and info["nchunks"] == 6 and info["codec"] == "zstd", info)


def zero_copy(tally, w):
    """The figures of the zero-copy paths on a 16 MB array (one chunk, and strided chunks)."""
    a = np.random.default_rng(2).random((2048, 2048), dtype=np.float32)
    np.save(f"{w}/big.npy", a)
    # codec, chunks, write extra copies, read extra copies; blosc goes block by block both ways (a
    # few 0.5 MiB blocks in flight)
    cases = [
        ("none", "2048,2048", 0, 0), ("none", "512,512", 0, 0),
        ("zstd", "2048,2048", 0, 0), ("zstd", "512,512", 0, 0),
        ("blosc", "2048,2048", 0, 0),
    ]
    for codec, chunks, wc, rc in cases:
        d = f"{w}/zc-{codec}-{chunks}"
        r = put_json(tally, f"{w}/big.npy", d, "--chunks", chunks, "--codec", codec, "--threads", "1")
        if not r.get("tracking", True):
            t.check(f"{codec} {chunks}: figures need tracking", True)
            continue
        gather = r["stages"]["gather"]["copies"]
        t.check(f"write {codec} chunks {chunks}: {wc} extra copies (got {r['extra_copies']}, "
              f"ratio {r['peak_extra_ratio']:.3f})", r["extra_copies"] == wc)
        t.check(f"write {codec} chunks {chunks}: no gather copy", gather == 0, gather)
        g = get_json(tally, d, f"{w}/back.npy", "--threads", "1")
        t.check(f"read {codec} chunks {chunks}: {rc} extra copies (got {g['extra_copies']}, "
              f"ratio {g['peak_extra_ratio']:.3f})", g["extra_copies"] == rc)
        t.check(f"read {codec} chunks {chunks}: equal", np.array_equal(np.load(f"{w}/back.npy"), a))


def errors(tally, w):
    a = np.arange(100, dtype="<i4").reshape(10, 10)
    np.save(f"{w}/e.npy", a)
    p = run(tally, "put", f"{w}/missing.npy", f"{w}/x")
    t.check("missing input: exit 2, names the file", p.returncode == 2 and "missing.npy" in p.stderr, p.stderr)
    run(tally, "put", f"{w}/e.npy", f"{w}/e")
    p = run(tally, "put", f"{w}/e.npy", f"{w}/e")
    t.check("existing array: exit 2, says --overwrite", p.returncode == 2 and "overwrite" in p.stderr, p.stderr)
    t.check("--overwrite replaces it", run(tally, "put", f"{w}/e.npy", f"{w}/e", "--overwrite").returncode == 0)
    p = run(tally, "get", f"{w}/e", f"{w}/o.npy", "--region", "0:11,:")
    t.check("region out of bounds: exit 2, names the dimension", p.returncode == 2 and "dimension 0" in p.stderr,
          p.stderr)
    p = run(tally, "put", f"{w}/e.npy", f"{w}/q", "--codec", "lzma")
    t.check("unknown codec: exit 2, names it", p.returncode == 2 and "lzma" in p.stderr, p.stderr)
    p = run(tally, "put", f"{w}/e.npy", f"{w}/q", "--chunks", "3")
    t.check("chunks of the wrong rank: exit 2", p.returncode == 2 and "--chunks" in p.stderr, p.stderr)
    p = run(tally, "get", f"{w}/nothing", f"{w}/o.npy")
    t.check("no array: exit 2, says so", p.returncode == 2 and "no Zarr array" in p.stderr, p.stderr)
    # corrupt and unsupported metadata
    os.makedirs(f"{w}/bad", exist_ok=True)
    with open(f"{w}/bad/.zarray", "w") as f:
        f.write('{"zarr_format": 2, "shape": [10], "chunks": [5], "dtype": "<f4", "compressor": null,'
                ' "fill_value": 0, "order": "C", "filters": [{"id": "delta", "dtype": "<f4"}]}')
    p = run(tally, "get", f"{w}/bad", f"{w}/o.npy")
    t.check("filters are refused by name", p.returncode == 2 and "filter" in p.stderr, p.stderr)
    with open(f"{w}/bad/.zarray", "w") as f:
        f.write('{"zarr_format": 2, "shape": [10], "chunks": [5, ')
    p = run(tally, "get", f"{w}/bad", f"{w}/o.npy")
    t.check("malformed .zarray: exit 2, names the file", p.returncode == 2 and ".zarray" in p.stderr, p.stderr)
    f32 = np.zeros((3, 3), dtype=np.float32, order="F")
    np.save(f"{w}/f.npy", np.asfortranarray(f32 + np.arange(3)))
    p = run(tally, "put", f"{w}/f.npy", f"{w}/fz")
    t.check("Fortran-order .npy refused", p.returncode == 2 and "Fortran" in p.stderr, p.stderr)
    np.save(f"{w}/s.npy", np.array(["a", "bc"]))
    p = run(tally, "put", f"{w}/s.npy", f"{w}/sz")
    t.check("string dtype refused by name", p.returncode == 2 and "string" in p.stderr, p.stderr)
    # a corrupt chunk: the error names the chunk, and the output file is not written
    run(tally, "put", f"{w}/e.npy", f"{w}/c", "--codec", "zstd", "--chunks", "5,5")
    with open(f"{w}/c/1.1", "r+b") as f:
        f.truncate(7)
    p = run(tally, "get", f"{w}/c", f"{w}/c.npy")
    t.check("corrupt chunk: exit 2, names it", p.returncode == 2 and "1.1" in p.stderr, p.stderr)
    t.check("no output left behind", not os.path.exists(f"{w}/c.npy"))
    t.check("usage: no arguments exits 2", run(tally).returncode == 2)
    t.check("--help exits 0", run(tally, "--help").returncode == 0)
    # Every command refuses a word it does not know, at once, with its usage, and does nothing
    # (no directory named after the word; a parser that looped would hit the timeout).
    for cmd in ("put", "get", "info", "gc", "run", "report", "check", "selftest", "peer", "bench", "demo",
                "preload-env"):
        try:
            p = subprocess.run([tally, cmd, "--no-such-option"], capture_output=True, text=True, timeout=20, cwd=w)
            ok, why = p.returncode == 2 and "usage" in p.stderr, f"exit {p.returncode}: {p.stderr.strip()[:120]}"
        except subprocess.TimeoutExpired:
            ok, why = False, "still running after 20 s"
        t.check(f"{cmd} --no-such-option: exit 2 with usage", ok and not os.path.exists(f"{w}/--no-such-option"), why)


def full_disk(tally, w):
    """A full disk: a clear error naming errno and the chunk, and no torn or temporary file left."""
    mnt = f"{w}/small-fs"
    os.makedirs(mnt)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt],
                                           capture_output=True).returncode != 0:
        print("skip full disk: mounting a 1 MiB tmpfs needs root")
        return
    try:
        a = np.random.default_rng(3).random((1024, 1024), dtype=np.float32)  # 4 MiB into 1 MiB
        np.save(f"{w}/full.npy", a)
        p = run(tally, "put", f"{w}/full.npy", f"{mnt}/z", "--chunks", "128,1024", "--threads", "2")
        t.check("full disk: exit 2", p.returncode == 2, p.returncode)
        t.check("full disk: the message names errno and the chunk",
              "No space left on device" in p.stderr and "chunk" in p.stderr, p.stderr.strip())
        left = os.listdir(f"{mnt}/z") if os.path.isdir(f"{mnt}/z") else []
        t.check("full disk: no temporary file left", not any(".tmp-" in f for f in left), left)
        sizes = {f: os.path.getsize(f"{mnt}/z/{f}") for f in left if not f.startswith(".")}
        t.check("full disk: every visible chunk is whole", all(v == 128 * 1024 * 4 for v in sizes.values()), sizes)
    finally:
        subprocess.run(["umount", mnt])


def main():
    tally = os.path.abspath(sys.argv[1])
    w = tempfile.mkdtemp(prefix="tally-cli-")
    try:
        for fn in (schema, zero_copy, errors, full_disk):
            try:
                fn(tally, w)
            except Exception as e:
                t.check(fn.__name__, False, f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(w, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
