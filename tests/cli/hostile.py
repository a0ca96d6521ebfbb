#!/usr/bin/python3
"""Hostile and careless input to the tally command on the local store: issue 15's reproductions.

Each case is what a probe found (D1..D13, local ones; the S3 ones are in tests/s3/hostile_s3.py).
Every refusal is checked the same way: exit 2, a message naming the file, key or option, no sanitizer
report (the suite runs in the release and the ASan+UBSan builds), nothing half-written and no
temporary file left in the case's directory, and an answer within a few seconds.

  hostile.py TALLY      one line per check and "N passed, N failed"; exits 1 on any failure
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

TALLY = os.path.abspath(sys.argv[1])
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def snapshot(root):
    """Every path under root with its size (directories as -1): what a command left behind."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = -1 if os.path.isdir(p) and not os.path.islink(p) else os.lstat(p).st_size
    return out


def tally(*args, timeout=30, env=None):
    try:
        return subprocess.run([TALLY, *args], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, -9, "", f"still running after {timeout} s")


def refused(name, w, args, names, timeout=30, env=None, unchanged=None):
    """Run tally ARGS in case directory w and check the refusal. names: strings the message must hold;
    a tuple among them is alternatives, any one of which will do (the engine reads chunks concurrently,
    so where several chunks are damaged the refusal names whichever a worker met first)."""
    before = snapshot(unchanged or w)
    p = tally(*args, timeout=timeout, env=env)
    after = snapshot(unchanged or w)
    t.check(f"{name}: exit 2", p.returncode == 2, (p.returncode, p.stderr[-400:]))
    def holds(n):
        return any(a in p.stderr for a in n) if isinstance(n, tuple) else n in p.stderr

    said = ", ".join(" or ".join(n) if isinstance(n, tuple) else n for n in names)
    t.check(f"{name}: the message names {said}", all(holds(n) for n in names), p.stderr[-400:])
    t.check(f"{name}: no sanitizer report", not any(s in p.stderr for s in SANITIZER), p.stderr[-400:])
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    t.check(f"{name}: nothing half-written, no temporary file", not changed, sorted(changed)[:10])
    return p


def case(w, name):
    d = os.path.join(w, name)
    os.makedirs(d)
    return d


def zarray(d, **kw):
    doc = {"zarr_format": 2, "shape": [10], "chunks": [5], "dtype": "<f4", "compressor": None,
           "fill_value": 0, "order": "C", "filters": None}
    doc.update(kw)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ".zarray"), "w") as f:
        json.dump(doc, f)


def npy_raw(path, header, data=b""):
    """A .npy file with exactly this header dict text (padded as numpy pads it)."""
    h = header + " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode("latin-1") + data)


def d1_requote(w):
    c = case(w, "d1")
    os.makedirs(f"{c}/a")
    with open(f"{c}/a/.zarray", "w") as f:
        f.write('{"fill_value":NaN,"fill_value":NaN}')
    refused("D1 two bare NaN fill values", c, ["info", f"{c}/a"], [".zarray"])
    with open(f"{c}/a/.zarray", "w") as f:
        f.write("{" + ",".join(['"fill_value":-Infinity'] * 400) + "}")
    refused("D1 four hundred bare -Infinity fill values", c, ["info", f"{c}/a"], [".zarray"])


def d2_overflow(w):
    c = case(w, "d2")
    zarray(f"{c}/a", shape=[4294967296, 4294967296], chunks=[1073741824, 1073741824], dtype="|u1")
    refused("D2 shape 2^32 x 2^32 |u1: get", c, ["get", f"{c}/a", f"{c}/out.npy"], [".zarray", "shape"])
    zarray(f"{c}/b", shape=[2305843009213693952, 8], chunks=[1, 1], dtype="<f8")
    refused("D2 shape x itemsize = 2^67: get", c, ["get", f"{c}/b", f"{c}/out.npy"], [".zarray", "shape"])
    refused("D2 shape x itemsize = 2^67: info", c, ["info", f"{c}/b"], [".zarray", "shape"])
    zarray(f"{c}/n", shape=[1 << 40, 1 << 40], chunks=[1, 1], dtype="|u1")
    refused("D2 2^80 chunks", c, ["info", f"{c}/n"], [".zarray"])
    os.makedirs(f"{c}/v3")
    with open(f"{c}/v3/zarr.json", "w") as f:
        json.dump({"zarr_format": 3, "node_type": "array", "shape": [2305843009213693952, 8], "data_type": "float64",
                   "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 1]}},
                   "chunk_key_encoding": {"name": "default"}, "fill_value": 0,
                   "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}]}, f)
    refused("D2 v3 shape x itemsize = 2^67", c, ["get", f"{c}/v3", f"{c}/out.npy"], ["zarr.json", "shape"])
    zarray(f"{c}/ok", shape=[1 << 31, 1 << 31], chunks=[1 << 30, 1 << 30], dtype="|u1")
    p = tally("info", f"{c}/ok", "--json")
    info = json.loads(p.stdout) if p.returncode == 0 else {}
    t.check("D2 a large array that fits: info gives its true size and chunk count",
            info.get("array_bytes") == 1 << 62 and info.get("nchunks") == 4, (p.returncode, p.stderr, info))


def d3_npy(w):
    c = case(w, "d3")
    npy_raw(f"{c}/big.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387929,), }", bytes(400))
    for codec in ("zstd", "none", "blosc"):
        refused(f"D3 .npy shape (4611686018427387929,) put --codec {codec}", c,
                ["put", f"{c}/big.npy", f"{c}/z-{codec}", "--codec", codec], ["big.npy", "shape"])
    npy_raw(f"{c}/wrap.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551616,), }",
            bytes(400))
    refused("D3 .npy shape (2^64,)", c, ["put", f"{c}/wrap.npy", f"{c}/z"], ["wrap.npy", "shape"])
    npy_raw(f"{c}/two.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
            bytes(64))
    refused("D3 .npy shape (2^32, 2^32) <f8", c, ["put", f"{c}/two.npy", f"{c}/z"], ["two.npy", "shape"])
    npy_raw(f"{c}/short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (200,), }", bytes(400))
    refused("D3 .npy with less data than its shape", c, ["put", f"{c}/short.npy", f"{c}/z"], ["short.npy"])


def d4_chunks(w):
    c = case(w, "d4")
    np.save(f"{c}/a.npy", np.zeros((100, 100), dtype=np.float32))
    refused("D4 --chunks 4294967296,4294967296 on 100x100", c,
            ["put", f"{c}/a.npy", f"{c}/z", "--chunks", "4294967296,4294967296"], ["--chunks"], timeout=20)
    for bad in ("-1,10", "+5,10", "10,0", "10,", " 10,10", "0x10,10", "10,10,10", "18446744073709551617,1"):
        refused(f"D4 --chunks '{bad}'", c, ["put", f"{c}/a.npy", f"{c}/z", "--chunks", bad], ["--chunks"])
    p = tally("put", f"{c}/a.npy", f"{c}/good", "--chunks", "100,7")
    t.check("D4 --chunks 100,7 still works", p.returncode == 0, p.stderr)


def full_fs(w, size):
    """A small tmpfs at w/fs (root only); None when it cannot be mounted."""
    mnt = os.path.join(w, "fs")
    os.makedirs(mnt)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt],
                                           capture_output=True).returncode != 0:
        return None
    return mnt


def d5_overwrite_enospc(w):
    c = case(w, "d5")
    mnt = full_fs(c, "3m")
    if mnt is None:
        t.skip("D5 overwrite on a full disk", "mounting a tmpfs needs root")
        return
    try:
        old = np.arange(256 * 1024, dtype=np.float32).reshape(512, 512)  # 1 MiB
        new = np.random.default_rng(5).random((1024, 1024), dtype=np.float32)  # 4 MiB: does not fit
        np.save(f"{c}/old.npy", old)
        np.save(f"{c}/new.npy", new)
        p = tally("put", f"{c}/old.npy", f"{mnt}/z", "--chunks", "64,512")
        t.check("D5 the old array is written", p.returncode == 0, p.stderr)
        refused("D5 put --overwrite onto a full disk", c,
                ["put", f"{c}/new.npy", f"{mnt}/z", "--overwrite", "--chunks", "128,1024"], ["No space left"],
                unchanged=mnt)
        p = tally("get", f"{mnt}/z", f"{c}/back.npy")
        t.check("D5 after the failed overwrite the old array reads back exactly",
                p.returncode == 0 and np.array_equal(np.load(f"{c}/back.npy"), old), p.stderr)
    finally:
        subprocess.run(["umount", mnt])


def d7_meta_size(w):
    c = case(w, "d7")
    os.makedirs(f"{c}/a")
    with open(f"{c}/a/.zarray", "wb") as f:
        f.truncate(64 << 30)  # sparse: 64 GiB of zeros
    refused("D7 a 64 GiB .zarray", c, ["info", f"{c}/a"], [".zarray", "TALLY_META_LIMIT"], timeout=10)
    zarray(f"{c}/b")
    with open(f"{c}/b/.zarray", "a") as f:
        f.write(" " * 5000)
    refused("D7 TALLY_META_LIMIT=4k: a 5 KB .zarray", c, ["info", f"{c}/b"], [".zarray", "TALLY_META_LIMIT"],
            env=dict(os.environ, TALLY_META_LIMIT="4k"))
    refused("D7 TALLY_META_LIMIT=lots", c, ["info", f"{c}/b"], ["TALLY_META_LIMIT"],
            env=dict(os.environ, TALLY_META_LIMIT="lots"))
    p = tally("info", f"{c}/b")
    t.check("D7 a 5 KB .zarray under the default limit reads", p.returncode == 0, p.stderr)


def d9_symlinks(w):
    c = case(w, "d9")
    outside = case(w, "d9-outside")
    with open(f"{outside}/secret", "wb") as f:
        f.write(np.arange(5, dtype="<f4").tobytes())
    np.save(f"{c}/a.npy", np.ones(10, dtype=np.float32))
    assert tally("put", f"{c}/a.npy", f"{c}/z", "--chunks", "5").returncode == 0
    os.unlink(f"{c}/z/0")
    os.symlink(f"{outside}/secret", f"{c}/z/0")
    refused("D9 a chunk that is a symlink to a file outside", c, ["get", f"{c}/z", f"{c}/out.npy"],
            ["z/0", "symbolic link"])
    os.makedirs(f"{outside}/c")
    assert tally("put", f"{c}/a.npy", f"{c}/v3", "--chunks", "5", "--format", "v3").returncode == 0
    shutil.rmtree(f"{c}/v3/c")
    os.symlink(f"{outside}/c", f"{c}/v3/c")
    with open(f"{outside}/c/0", "wb") as f:
        f.write(np.arange(5, dtype="<f4").tobytes())
    # both chunks lie under the symlinked directory: either may be the one refused first
    refused("D9 a chunk directory symlinked outside", c, ["get", f"{c}/v3", f"{c}/out.npy"],
            [("c/0", "c/1"), "symbolic link"])
    os.makedirs(f"{c}/m")
    os.symlink(f"{outside}/secret", f"{c}/m/.zarray")
    refused("D9 .zarray a symlink", c, ["info", f"{c}/m"], [".zarray", "symbolic link"])


def d10_zstd_reasons(w):
    c = case(w, "d10")
    np.save(f"{c}/a.npy", np.ones(16, dtype=np.float32))
    magic = b"\x28\xb5\x2f\xfd"
    block = struct.pack("<I", (64 << 3) | 1)[:3] + bytes(64)  # the last block, raw, 64 bytes
    frames = {
        "bad magic": (b"\x00\x01\x02\x03" + bytes(40), "Unknown frame descriptor"),
        "no content size": (magic + b"\x00\x00" + block, "content size"),
        "content size 2^62": (magic + b"\xe0" + struct.pack("<Q", 1 << 62) + block, "4611686018427387904"),
        "window log 41": (magic + b"\x80\xf8" + struct.pack("<I", 64) + block, "memory"),
    }
    for i, (name, (frame, reason)) in enumerate(frames.items()):
        d = f"{c}/z{i}"
        assert tally("put", f"{c}/a.npy", d, "--codec", "zstd").returncode == 0
        with open(f"{d}/0", "wb") as f:
            f.write(frame)
        p = refused(f"D10 zstd chunk with {name}", c, ["get", d, f"{c}/out.npy"], ["chunk 0", reason])
        t.check(f"D10 zstd chunk with {name}: not called truncated", "truncated" not in p.stderr, p.stderr)


def d11_fifo(w):
    c = case(w, "d11")
    os.makedirs(f"{c}/a")
    os.mkfifo(f"{c}/a/.zarray")
    refused("D11 a FIFO as .zarray", c, ["info", f"{c}/a"], [".zarray", "not a regular file"], timeout=10)
    zarray(f"{c}/b")
    os.mkfifo(f"{c}/b/.zattrs")
    refused("D11 a FIFO as .zattrs", c, ["info", f"{c}/b"], [".zattrs", "not a regular file"], timeout=10)
    zarray(f"{c}/d")
    os.mkfifo(f"{c}/d/0")
    refused("D11 a FIFO as a chunk", c, ["get", f"{c}/d", f"{c}/out.npy"], ["0", "not a regular file"], timeout=10)


def d13_json_position(w):
    c = case(w, "d13-json")
    os.makedirs(f"{c}/a")
    for text in ('{"fill_value": NaN,\n "zarr_format": 2,\n "shape": [10,,]}', '{"fill_value": NaN, "shape": [10,,]}'):
        with open(f"{c}/a/.zarray", "w") as f:
            f.write(text.replace("NaN", "1.0"))  # the same error without the NaN: where jansson puts it
        where = tally("info", f"{c}/a").stderr.split("JSON at ")[-1].split(":")[0]
        with open(f"{c}/a/.zarray", "w") as f:
            f.write(text)
        lines = text.count("\n") + 1
        refused(f"D13 a bare NaN before a syntax error ({lines} line(s)): the error's own place ({where})", c,
                ["info", f"{c}/a"], [".zarray", where])


def d13_npy(w):
    c = case(w, "d13-npy")
    for descr, says in (("<f16", "float128"), ("<f3", "3-byte"), ("<f2", "float16"), ("<i3", "3-byte")):
        npy_raw(f"{c}/x.npy", "{'descr': '%s', 'fortran_order': False, 'shape': (4,), }" % descr, bytes(64))
        p = refused(f"D13 .npy dtype {descr} named as what it is", c, ["put", f"{c}/x.npy", f"{c}/z"], [descr, says])
        if descr != "<f2":
            t.check(f"D13 .npy dtype {descr} not called float16", "float16" not in p.stderr, p.stderr)
    for name, header in (
        ("fortran_order Maybe", "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (4,), }"),
        ("fortran_order missing", "{'descr': '<f4', 'shape': (4,), }"),
        ("an unknown key", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'extra': 1, }"),
        ("a shape with a sign", "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }"),
        ("a shape that is not a tuple", "{'descr': '<f4', 'fortran_order': False, 'shape': 4, }"),
        ("text after the dict", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), } x"),
        ("a key twice", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'shape': (2,), }"),
    ):
        npy_raw(f"{c}/x.npy", header, bytes(64))
        refused(f"D13 .npy header with {name}", c, ["put", f"{c}/x.npy", f"{c}/z"], ["x.npy"])


def d13_zattrs(w):
    c = case(w, "d13-zattrs")
    zarray(f"{c}/b")
    with open(f"{c}/b/.zattrs", "w") as f:
        f.write('{"a": 1,')
    refused("D13 a malformed .zattrs", c, ["info", f"{c}/b"], [".zattrs"])
    with open(f"{c}/b/.zattrs", "w") as f:
        f.write('[1, 2]')
    refused("D13 a .zattrs that is not an object", c, ["info", f"{c}/b"], [".zattrs"])
    with open(f"{c}/b/.zattrs", "w") as f:
        f.write('{"units": "m"}')
    p = tally("info", f"{c}/b", "--json")
    t.check("D13 a good .zattrs is shown", p.returncode == 0 and json.loads(p.stdout)["attributes"] == {"units": "m"},
            p.stderr)


def n10_gzip_level(w):
    """Issue 25 N10: a v3 gzip level outside the spec's 0..9 is refused before anything is written
    (it once wrote an array tally's own reader refused); v2's numcodecs GZip takes zlib's -1."""
    c = case(w, "n10")
    np.save(f"{c}/a.npy", np.arange(100, dtype="<f4"))
    for level in ("-1", "10"):
        refused(f"N10 put --format v3 --codec gzip:level={level}", c,
                ["put", f"{c}/a.npy", f"{c}/z", "--format", "v3", "--codec", f"gzip:level={level}", "--chunks", "10"],
                ["gzip level is 0..9"] if level == "-1" else ["level"])
    p = tally("put", f"{c}/a.npy", f"{c}/v2", "--codec", "gzip:level=-1", "--chunks", "10")
    g = tally("get", f"{c}/v2", f"{c}/out.npy")
    t.check("N10 v2 gzip level -1 (numcodecs' default) is written and read back",
            p.returncode == 0 and g.returncode == 0 and
            np.array_equal(np.load(f"{c}/out.npy"), np.arange(100, dtype="<f4")), (p.stderr, g.stderr))


def n25_shard_index_budget(w):
    """Issue 25: a shard index larger than the memory budget is refused naming the limit (it once let
    one 2.1 GB request past --memory-limit 1G and took 31-47 s for a one-element region)."""
    c = case(w, "n25-index")
    n = 1 << 20  # inner chunks of one element: a 16 MiB index, 32 MiB to read and decode
    os.makedirs(f"{c}/z/c")
    doc = {"zarr_format": 3, "node_type": "array", "shape": [n], "data_type": "uint8",
           "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [n]}},
           "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}}, "fill_value": 0,
           "codecs": [{"name": "sharding_indexed", "configuration": {
               "chunk_shape": [1], "codecs": [{"name": "bytes"}],
               "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]}}]}
    with open(f"{c}/z/zarr.json", "w") as f:
        json.dump(doc, f)
    with open(f"{c}/z/c/0", "wb") as f:
        f.write(b"\xff" * (16 * n + 4))
    p = refused("N25 a shard index over --memory-limit", c,
                ["get", f"{c}/z", f"{c}/out.npy", "--region", "0:1", "--memory-limit", "16M"],
                ["c/0", "--memory-limit", "index"], timeout=10)
    p = tally("get", f"{c}/z", f"{c}/out.npy", "--region", "0:1", "--memory-limit", "64M")
    t.check("N25 ... and read past the index (here: a damaged one) when the limit holds it",
            p.returncode == 2 and "--memory-limit" not in p.stderr and "c/0" in p.stderr, p.stderr[-300:])


def i24_one_limit(w):
    """Issue 24: --memory-limit's bounds are one row of tally/opts.h's table: the command line, the
    environment and a scenario's cell refuse 1000 bytes with the same range (the cell once took it and
    failed at run time)."""
    c = case(w, "i24")
    np.save(f"{c}/a.npy", np.arange(100, dtype="<f4"))
    bounds = "outside 65536..1125899906842624"
    refused("I24 put --memory-limit 1000", c, ["put", f"{c}/a.npy", f"{c}/z", "--memory-limit", "1000"],
            ["--memory-limit", bounds])
    env = dict(os.environ, TALLY_MEMORY_LIMIT="1000")
    refused("I24 TALLY_MEMORY_LIMIT=1000", c, ["put", f"{c}/a.npy", f"{c}/z"], ["TALLY_MEMORY_LIMIT", bounds],
            env=env)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gate", "small.json")) as f:
        matrix = json.load(f)
    matrix["memory_limit"] = 1000
    with open(f"{c}/matrix.json", "w") as f:
        json.dump(matrix, f)
    refused("I24 a cell with memory_limit 1000", c, ["run", "--scenarios", f"{c}/matrix.json", "--list"],
            ["memory_limit 1000", bounds])

    # A cell's codec names are the registry's: a gzip axis is a gzip cell (it was refused, and a
    # gzip spec without a codec name was labelled none).
    matrix["memory_limit"] = 67108864
    matrix["axes"]["codec"] = ["gzip", "zlib"]
    matrix["codecs"] = {"gzip": "gzip:level=5", "zlib": "zlib"}
    with open(f"{c}/matrix.json", "w") as f:
        json.dump(matrix, f)
    p = tally("run", "--scenarios", f"{c}/matrix.json", "--list", "--impl", "tally")
    t.check("I24 a gzip and zlib codec axis lists its cells", p.returncode == 0 and
            "tally/write-local-gzip-v2-tiles" in p.stdout and "tally/read-local-zlib-v2-tiles" in p.stdout,
            (p.returncode, p.stdout[-300:], p.stderr[-300:]))


CASES = (d1_requote, d2_overflow, d3_npy, d4_chunks, d5_overwrite_enospc, d7_meta_size, d9_symlinks, d10_zstd_reasons,
         d11_fifo, d13_json_position, d13_npy, d13_zattrs, n10_gzip_level, n25_shard_index_budget,
         i24_one_limit)


def main():
    w = tempfile.mkdtemp(prefix="tally-hostile-")
    try:
        for fn in CASES:
            try:
                fn(w)
            except Exception as e:
                t.check(fn.__name__, False, f"{type(e).__name__}: {e}")
    finally:
        subprocess.run(["umount", "-q", f"{w}/d5/fs"], capture_output=True)
        shutil.rmtree(w, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
