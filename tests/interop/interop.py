#!/usr/bin/python3
"""Interop between tally and the Zarr implementations people use, both ways.

  interop.py zarr-python TALLY   v2: zarr-python 2.13 (Debian's python3-zarr) opens what tally wrote,
                                 and tally reads what zarr-python wrote, with equal values
  interop.py zarrita TALLY       v3: the same with zarrita (npm), through tests/interop/zarrita_io.mjs

Runs with /usr/bin/python3 (Debian's numpy and zarr). Prints one line per case and a closing
"N passed, N failed" line; exits 1 when any case failed.
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

HERE = os.path.dirname(os.path.abspath(__file__))

DTYPES = ["<f4", ">i4", "|u1", "<f8", "|b1", "<i8", ">u2", "<i2", ">f8"]
SHAPES = [((37, 23), (10, 7)), ((5, 9, 11), (2, 4, 5)), ((1000,), (128,))]


def data_for(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, dtype=dt.newbyteorder("=")).astype(dt)


def equal(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False, f"shape/dtype {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    if a.dtype.kind == "f":
        ok = np.array_equal(a, b, equal_nan=True)
    else:
        ok = np.array_equal(a, b)
    return ok, "" if ok else f"{int(np.sum(a != b))} elements differ"



def tally(tally_bin, *args):
    p = subprocess.run([tally_bin, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"tally {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def run_case(name, fn):
    try:
        fn()
    except Exception as e:  # a case that cannot run is a failed case, with its reason
        t.check(name, False, f"{type(e).__name__}: {e}")


# ---------------------------------------------------------------- v2: zarr-python
def zarr_python(tally_bin, work):
    import numcodecs
    import zarr

    print(f"zarr-python {zarr.__version__}, numcodecs {numcodecs.__version__}")
    codecs = {
        "none": None,
        "blosc": numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
        "blosc:cname=zstd,clevel=3,shuffle=2": numcodecs.Blosc(cname="zstd", clevel=3,
                                                               shuffle=numcodecs.Blosc.BITSHUFFLE),
        "zstd:level=5": numcodecs.Zstd(level=5),
        "gzip:level=5": numcodecs.GZip(level=5),
        "zlib": numcodecs.Zlib(level=1),
    }
    n = 0
    for dtype in DTYPES:
        for (shape, chunks) in SHAPES:
            for codec, compressor in codecs.items():
                for sep in (".", "/"):
                    n += 1
                    if n % 5 and not (dtype == "<f4"):
                        # every dtype, codec and separator is covered (12 cases a shape, 12 % 5 != 0: each
                        # shape's sample starts elsewhere); not every product
                        continue
                    case = f"v2 {dtype} {shape} chunks {chunks} {codec} sep {sep}"
                    src = data_for(dtype, shape, n)
                    npy = os.path.join(work, f"src{n}.npy")
                    np.save(npy, src)

                    def tally_writes(case=case, src=src, npy=npy, codec=codec, sep=sep, chunks=chunks):
                        d = os.path.join(work, f"t{n}")
                        tally(tally_bin, "put", npy, d, "--chunks", ",".join(map(str, chunks)), "--codec", codec,
                              "--separator", sep)
                        z = zarr.open(d, mode="r")
                        ok, why = equal(src, z[...])
                        t.check(f"zarr-python reads tally's {case}", ok, why)

                    def zarr_writes(case=case, src=src, compressor=compressor, sep=sep, chunks=chunks,
                                    dtype=dtype):
                        d = os.path.join(work, f"z{n}")
                        fill = np.nan if np.dtype(dtype).kind == "f" else 0
                        z = zarr.open(d, mode="w", shape=src.shape, chunks=chunks, dtype=dtype,
                                      compressor=compressor, dimension_separator=sep, fill_value=fill)
                        # leave the last chunks unwritten: tally must read them as the fill value
                        part = tuple(slice(0, max(1, s - c)) for s, c in zip(src.shape, chunks))
                        z[part] = src[part]
                        out = os.path.join(work, f"z{n}.npy")
                        tally(tally_bin, "get", d, out)
                        ok, why = equal(z[...], np.load(out))
                        t.check(f"tally reads zarr-python's {case}", ok, why)
                        region = tuple(slice(s // 3, s - s // 4) for s in src.shape)
                        spec = ",".join(f"{r.start}:{r.stop}" for r in region)
                        tally(tally_bin, "get", d, out, "--region", spec, "--force")
                        ok, why = equal(z[region], np.load(out))
                        t.check(f"tally reads region {spec} of zarr-python's {case}", ok, why)

                    run_case(case, tally_writes)
                    run_case(case, zarr_writes)

    # The memray-array workload shape, small: one chunk, and fill values zarr-python writes as strings.
    def fill_values():
        for fill in (np.nan, np.inf, -np.inf, 42.5):
            d = os.path.join(work, f"fill{fill}")
            z = zarr.open(d, mode="w", shape=(10, 10), chunks=(5, 5), dtype="<f8", fill_value=fill)
            z[:5, :5] = 1.0
            out = d + ".npy"
            tally(tally_bin, "get", d, out)
            ok, why = equal(z[...], np.load(out))
            t.check(f"tally reads zarr-python fill_value {fill}", ok, why)

    run_case("fill values", fill_values)

    # gzip and zlib chunks of several MiB: streamed through several reads and output blocks each way
    # (numcodecs' GZip writes its header with Python's gzip module: an mtime, OS 255).
    def big_deflate_chunks():
        src = (np.arange(1500 * 1100, dtype="<f4") % 977).reshape(1500, 1100)
        npy = os.path.join(work, "big.npy")
        np.save(npy, src)
        for name, compressor in (("gzip", numcodecs.GZip(level=1)), ("zlib:level=6", numcodecs.Zlib(level=6))):
            d = os.path.join(work, f"big-z-{name}")
            z = zarr.open(d, mode="w", shape=src.shape, chunks=(1500, 1000), dtype=src.dtype, compressor=compressor)
            z[...] = src
            out = d + ".npy"
            tally(tally_bin, "get", d, out)
            ok, why = equal(src, np.load(out))
            t.check(f"tally reads zarr-python's multi-MiB {name} chunks", ok, why)
            tally(tally_bin, "get", d, out, "--region", "7:1400,3:1099", "--force")
            ok, why = equal(src[7:1400, 3:1099], np.load(out))
            t.check(f"tally reads a region of zarr-python's multi-MiB {name} chunks", ok, why)
            d = os.path.join(work, f"big-t-{name}")
            tally(tally_bin, "put", npy, d, "--chunks", "1500,1000", "--codec", name)
            z = zarr.open(d, mode="r")
            ok, why = equal(src, z[...])
            t.check(f"zarr-python reads tally's multi-MiB {name} chunks ({z.compressor})", ok, why)

    run_case("big deflate chunks", big_deflate_chunks)


# ---------------------------------------------------------------- v3: zarrita
class ZarritaIO:
    """One node process (zarrita_io.mjs serve) for the whole test: a request per line, a reply per line."""

    def __init__(self, node, script):
        self.p = subprocess.Popen([node, script, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1)

    def call(self, *args):
        self.p.stdin.write(json.dumps(args) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"zarrita {args[0]}: the node process ended (exit {self.p.wait()})")
        r = json.loads(line)
        if not r["ok"]:
            raise RuntimeError(f"zarrita {args[0]}: {r['error'][-500:]}")

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def zarrita(tally_bin, work):
    node = shutil.which("node")
    script = os.path.join(HERE, "zarrita_io.mjs")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "zarrita")):
        t.check("zarrita installed", False, "tests/interop/node_modules/zarrita is missing: run scripts/deps")
        return
    print(f"zarrita {json.load(open(os.path.join(HERE, 'node_modules', 'zarrita', 'package.json')))['version']}")
    zio = ZarritaIO(node, script)
    v3names = {"<f4": "float32", "<f8": "float64", "|u1": "uint8", "<i2": "int16", "<i8": "int64",
               "|b1": "bool", "<u4": "uint32", ">i4": "int32", ">f8": "float64"}
    codecs = {
        "none": [],
        "zstd:level=3": [{"name": "zstd", "configuration": {"level": 3, "checksum": False}}],
        "blosc": "blosc",
    }
    # every compressor zarrita's c-blosc (numcodecs.js, wasm) has, each shuffle, blocksize automatic
    # and forced: read by tally block by block (one dtype; the dtypes above cover typesizes).
    # (zarrita 0.7.5 hands numcodecs.js the v3 shuffle name, which it takes as 0: its frames are
    # unshuffled whatever the configuration says.)
    cnames = ["blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd"]
    shuffles = ["noshuffle", "shuffle", "bitshuffle"]
    frames = [(c, s, b) for c in cnames for s in shuffles for b in (0, 4096)]
    n = 0
    for dtype, v3 in v3names.items():
        for (shape, chunks) in SHAPES:
            for codec, extra in codecs.items():
                n += 1
                case = f"v3 {dtype} {shape} chunks {chunks} {codec}"
                src = data_for(dtype, shape, n)

                def tally_writes(case=case, src=src, codec=codec, chunks=chunks):
                    npy = os.path.join(work, f"v3src{n}.npy")
                    np.save(npy, src)
                    d = os.path.join(work, f"v3t{n}")
                    tally(tally_bin, "put", npy, d, "--format", "v3", "--chunks", ",".join(map(str, chunks)),
                          "--codec", codec)
                    raw = os.path.join(work, f"v3t{n}.bin")
                    zio.call("read", d, raw)
                    got = np.fromfile(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(src.shape)
                    if np.dtype(dtype).kind == "b":
                        got = got.astype(bool)
                    ok, why = equal(src, got.astype(src.dtype))
                    t.check(f"zarrita reads tally's {case}", ok, why)

                def zarrita_writes(case=case, src=src, extra=extra, chunks=chunks, dtype=dtype, v3=v3):
                    d = os.path.join(work, f"v3z{n}")
                    raw = os.path.join(work, f"v3z{n}.bin")
                    src.astype(np.dtype(dtype).newbyteorder("<")).tofile(raw)
                    if extra == "blosc":
                        extra = [{"name": "blosc", "configuration": {
                            "cname": "lz4", "clevel": 5, "shuffle": "shuffle" if src.itemsize > 1 else "noshuffle",
                            "typesize": src.itemsize, "blocksize": 0}}]
                    endian = "big" if dtype[0] == ">" else "little"
                    spec = {"shape": list(src.shape), "chunks": list(chunks), "data_type": v3,
                            "codecs": [{"name": "bytes", "configuration": {"endian": endian}}] + extra}
                    zio.call("write", d, raw, json.dumps(spec))
                    out = os.path.join(work, f"v3z{n}.npy")
                    tally(tally_bin, "get", d, out)
                    ok, why = equal(src, np.load(out))
                    t.check(f"tally reads zarrita's {case}", ok, why)

                run_case(case, tally_writes)
                run_case(case, zarrita_writes)

    def zarrita_blosc(cname, shuffle, blocksize, k):
        case = f"v3 <f8 blosc {cname} {shuffle} blocksize {blocksize or 'auto'}"
        shape, chunks = (300, 200), (128, 96)  # strided chunks, edge chunks, several blocks each
        # compressible (a ramp with a little noise): compressed frames, not memcpyed ones
        src = np.add.outer(np.arange(shape[0]), np.arange(shape[1]) * 0.5) + data_for("<f8", shape, k) * 1e-6
        d = os.path.join(work, f"v3b{k}")
        raw = os.path.join(work, f"v3b{k}.bin")
        src.tofile(raw)
        spec = {"shape": list(shape), "chunks": list(chunks), "data_type": "float64",
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                           {"name": "blosc", "configuration": {"cname": cname, "clevel": 5, "shuffle": shuffle,
                                                               "typesize": 8, "blocksize": blocksize}}]}
        zio.call("write", d, raw, json.dumps(spec))
        out = os.path.join(work, f"v3b{k}.npy")
        tally(tally_bin, "get", d, out)
        ok, why = equal(src, np.load(out))
        t.check(f"tally reads zarrita's {case}", ok, why)

    for k, (cname, shuffle, blocksize) in enumerate(frames):
        run_case(f"zarrita blosc {cname}", lambda: zarrita_blosc(cname, shuffle, blocksize, k))
    zio.close()


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("zarr-python", "zarrita"):
        print(__doc__, file=sys.stderr)
        return 2
    tally_bin = os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="tally-interop-")
    try:
        (zarr_python if sys.argv[1] == "zarr-python" else zarrita)(tally_bin, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
