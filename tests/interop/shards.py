#!/usr/bin/python3
"""Zarr v3 sharding (sharding_indexed v1.0, issue 12): tally against an independent writer and reader.

  shards.py TALLY      one line per check and "N passed, N failed"; exits 1 on any failure

A  written here, read by tally. The writer in this file follows the spec, not tally: numcodecs
   encodes each inner chunk (bytes little or big endian, then blosc, zstd or gzip, then crc32c), the
   inner chunks go into the shard object in a shuffled order, the index is little-endian uint64
   (offset, nbytes) per inner chunk in C order, 2^64-1 twice for an inner chunk that is all fill value,
   then the CRC-32C of the index (index_codecs [bytes, crc32c]) or not ([bytes]), at the start or the
   end. The arrays have edge shards, missing inner chunks and missing shards, out-of-bounds inner
   chunks stored with junk padding, index-only shard objects, a NaN fill value and several dtypes.
   zarrita (npm) reads every array first: the data is proven by a second reader before tally is
   judged by it. Then `tally get`, whole and regions, must equal numpy exactly.
B  written by tally, read here and by zarrita: `tally put --shards --chunks` for each codec (gzip when
   the command takes it) and both index locations; zarrita reads them back; the reader in this file
   checks every shard's index (inside the object, after a start index or before an end one, no
   overlaps, no unused bytes, a valid CRC-32C, 2^64-1 twice exactly for each all-fill inner chunk)
   and decodes every inner chunk with numcodecs. `tally get` reads them back and `tally info` names
   the shard shape, the inner chunk shape and the index location.
C  corrupt shards (the issue's "what it must show"): a wrong index checksum, entries past the end of
   the object, overlapping entries, truncated objects, inner chunks that fail to decode. Each
   `tally get` exits 2, names the shard key and what is wrong, prints no sanitizer report and writes
   nothing (no output .npy, no temporary file). Runs in the ASan+UBSan build too.
D  metadata tally must refuse, naming zarr.json: inner chunks that do not divide the shard, an unknown
   index_location; nested sharding read correctly or refused by name.

zarrita 0.7.5 reads every shard index as a suffix of the object whatever index_location says;
zarrita_io.mjs serves its request from the object's start for "start" arrays (see there). Its crc32c
codec checks nothing: checksums are checked by the reader here (CRC-32C table below, checked against
the known vectors).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pylib"))
sys.path.insert(0, HERE)
import tallytest as t  # noqa: E402
from interop import ZarritaIO  # noqa: E402

SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")
MISSING = 2**64 - 1
TALLY = None


# ---------------------------------------------------------------- CRC-32C (Castagnoli), table-driven
def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    tab = CRC32C_TABLE
    for b in bytes(data):
        crc = tab[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c_le(data):
    return crc32c(data).to_bytes(4, "little")


def crc32c_vectors():
    # the check value of the CRC catalogue, and RFC 3720's (iSCSI) B.4 vectors
    vectors = [(b"123456789", 0xE3069283), (bytes(32), 0x8A9136AA), (b"\xff" * 32, 0x62A8AB43),
               (bytes(range(32)), 0x46DD794E), (bytes(range(31, -1, -1)), 0x113FDB5C)]
    for data, want in vectors:
        got = crc32c(data)
        t.check(f"crc32c({data[:9]!r}{'...' if len(data) > 9 else ''}) == {want:#010x}", got == want, f"{got:#010x}")
    t.check("crc32c continues: crc32c(b) from crc32c(a) is crc32c(a + b)",
            crc32c(b"56789", crc32c(b"1234")) == 0xE3069283)


# ---------------------------------------------------------------- dtypes, codecs
V3_DTYPES = {"bool": "b1", "int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8", "uint8": "u1",
             "uint16": "u2", "uint32": "u4", "uint64": "u8", "float32": "f4", "float64": "f8"}


def v3_name(dtype):
    dt = np.dtype(dtype)
    return {v: k for k, v in V3_DTYPES.items()}[f"{dt.kind}{dt.itemsize}"]


def with_endian(dtype, endian):
    dt = np.dtype(dtype)
    return dt if dt.itemsize == 1 else dt.newbyteorder("<" if endian == "little" else ">")


def codec_json(spec, itemsize):
    """v3 JSON of a bytes-to-bytes codec: 'zstd', 'gzip', 'blosc[:cname:shuffle]'."""
    name, *opt = spec.split(":")
    if name == "zstd":
        return {"name": "zstd", "configuration": {"level": 3, "checksum": False}}
    if name == "gzip":
        return {"name": "gzip", "configuration": {"level": 5}}
    if name == "blosc":
        cname, shuffle = (opt + ["lz4", "shuffle"])[:2] if opt else ("lz4", "shuffle")
        return {"name": "blosc", "configuration": {"cname": cname, "clevel": 5, "shuffle": shuffle,
                                                   "typesize": itemsize, "blocksize": 0}}
    raise ValueError(spec)


def numcodec(cj):
    """numcodecs' codec for one v3 bytes-to-bytes codec's JSON (None: crc32c, handled here)."""
    import numcodecs
    name, cfg = cj["name"], cj.get("configuration", {})
    if name == "zstd":
        return numcodecs.Zstd(level=cfg.get("level", 3))
    if name == "gzip":
        return numcodecs.GZip(level=cfg.get("level", 5))
    if name == "blosc":
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[cfg.get("shuffle", "noshuffle")]
        return numcodecs.Blosc(cname=cfg.get("cname", "lz4"), clevel=cfg.get("clevel", 5), shuffle=shuffle,
                               blocksize=cfg.get("blocksize", 0))
    if name == "crc32c":
        return None
    raise ValueError(f"inner codec {name} is not one this test reads")


def fill_json(fill):
    if isinstance(fill, float) and np.isnan(fill):
        return "NaN"
    return fill


def fill_from_json(v):
    return {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}.get(v, v) if isinstance(v, str) else v


def is_fill(a, fill):
    if isinstance(fill, float) and np.isnan(fill):
        return bool(np.all(np.isnan(a)))
    return bool(np.all(a == fill))


def shard_key(coords, sep="/"):
    return "c" + "".join(f"{sep}{c}" for c in coords)


def ceil_div(a, b):
    return -(-a // b)


# ---------------------------------------------------------------- the independent writer
def write_sharded(d, data, shard, inner, fill, codec=None, endian="little", inner_crc=False, index_crc=True,
                  location="end", seed=0, pad=None, keep_oob=False, index_only_empty=False):
    """Lay out DATA as a sharded v3 array at D, following the sharding_indexed v1.0 spec.

    pad: the value of the out-of-bounds elements of edge inner chunks (default the fill value);
    keep_oob: store the inner chunks wholly outside the array too (the spec leaves them to the writer);
    index_only_empty: a shard whose inner chunks are all fill is written as an index of 2^64-1 pairs
    (default: the shard object is not written). Returns what was laid out, for the case's name."""
    rng = np.random.default_rng(seed)
    shape = data.shape
    assert all(s % i == 0 for s, i in zip(shard, inner)), "inner chunks divide the shard"
    sdt = with_endian(data.dtype, endian)
    bytes_codec = {"name": "bytes", "configuration": {"endian": endian}}
    comp = codec_json(codec, data.dtype.itemsize) if codec else None
    inner_codecs = [bytes_codec] + ([comp] if comp else []) + ([{"name": "crc32c"}] if inner_crc else [])
    index_codecs = [{"name": "bytes", "configuration": {"endian": "little"}}] + (
        [{"name": "crc32c"}] if index_crc else [])
    meta = {
        "zarr_format": 3, "node_type": "array", "shape": list(shape), "data_type": v3_name(data.dtype),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shard)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill_json(fill),
        "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": list(inner), "codecs": inner_codecs, "index_codecs": index_codecs,
            "index_location": location}}],
        "attributes": {"written_by": "tests/interop/shards.py"},
    }
    os.makedirs(d)
    with open(os.path.join(d, "zarr.json"), "w") as f:
        json.dump(meta, f, indent=2)
    enc = numcodec(comp) if comp else None
    per = [s // i for s, i in zip(shard, inner)]
    n_inner = int(np.prod(per))
    index_bytes = 16 * n_inner + (4 if index_crc else 0)
    grid = [ceil_div(n, s) for n, s in zip(shape, shard)]
    stats = {"shards": 0, "absent_shards": 0, "inner": 0, "missing_inner": 0, "oob_stored": 0}
    for sc in np.ndindex(*grid):
        src = tuple(slice(c * s, min((c + 1) * s, n)) for c, s, n in zip(sc, shard, shape))
        ext = [sl.stop - sl.start for sl in src]
        block = np.full(shard, fill if pad is None else pad, dtype=data.dtype)
        block[tuple(slice(0, e) for e in ext)] = data[src]
        chunks = {}
        for k, ic in enumerate(np.ndindex(*per)):
            full = tuple(slice(i * w, (i + 1) * w) for i, w in zip(ic, inner))
            inb = tuple(slice(i * w, min((i + 1) * w, e)) for i, w, e in zip(ic, inner, ext))
            oob = any(sl.stop <= sl.start for sl in inb)
            if oob and not keep_oob:
                continue
            if not oob and is_fill(block[inb], fill):
                stats["missing_inner"] += 1
                continue
            stats["oob_stored"] += oob
            arr = np.ascontiguousarray(block[full].astype(sdt))
            b = bytes(enc.encode(arr)) if enc else arr.tobytes()
            if inner_crc:
                b += crc32c_le(b)
            chunks[k] = b
        if not chunks and not index_only_empty:
            stats["absent_shards"] += 1
            continue
        order = list(chunks)
        rng.shuffle(order)
        if len(order) > 1 and order == sorted(order):
            order.reverse()  # never C order: the spec allows any, a reader must not assume one
        index = np.full((n_inner, 2), MISSING, dtype="<u8")
        body = bytearray()
        base = index_bytes if location == "start" else 0
        for k in order:
            index[k] = (base + len(body), len(chunks[k]))
            body += chunks[k]
        ib = index.tobytes()
        if index_crc:
            ib += crc32c_le(ib)
        assert len(ib) == index_bytes
        path = os.path.join(d, shard_key(sc))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(ib + body if location == "start" else bytes(body) + ib)
        stats["shards"] += 1
        stats["inner"] += len(chunks)
    return stats


# ---------------------------------------------------------------- the independent reader
class ShardMeta:
    def __init__(self, d):
        with open(os.path.join(d, "zarr.json")) as f:
            m = json.load(f)
        self.json = m
        self.shape = tuple(m["shape"])
        self.shard = tuple(m["chunk_grid"]["configuration"]["chunk_shape"])
        codecs = m["codecs"]
        if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
            raise ValueError(f"codecs are not one sharding_indexed: {codecs}")
        cfg = codecs[0]["configuration"]
        self.inner = tuple(cfg["chunk_shape"])
        self.location = cfg.get("index_location", "end")
        ic = cfg.get("index_codecs", [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}])
        names = [c["name"] for c in ic]
        if names not in (["bytes"], ["bytes", "crc32c"]) or ic[0].get("configuration", {}).get("endian",
                                                                                                "little") != "little":
            raise ValueError(f"index_codecs {ic}")
        self.index_crc = names == ["bytes", "crc32c"]
        inner_codecs = cfg["codecs"]
        if inner_codecs[0]["name"] != "bytes":
            raise ValueError(f"inner codecs do not start with bytes: {inner_codecs}")
        endian = inner_codecs[0].get("configuration", {}).get("endian", "little")
        self.dtype = with_endian(V3_DTYPES[m["data_type"]], endian)
        rest = inner_codecs[1:]
        self.inner_crc = bool(rest) and rest[-1]["name"] == "crc32c"
        if self.inner_crc:
            rest = rest[:-1]
        if len(rest) > 1:
            raise ValueError(f"more than one compressor: {rest}")
        self.compressor = rest[0]["name"] if rest else None
        self.decoder = numcodec(rest[0]) if rest else None
        self.fill = fill_from_json(m["fill_value"])
        enc = m.get("chunk_key_encoding", {"name": "default"})
        self.sep = enc.get("configuration", {}).get("separator", "/" if enc["name"] == "default" else ".")
        self.default_keys = enc["name"] == "default"
        self.per = tuple(s // i for s, i in zip(self.shard, self.inner))
        self.n_inner = int(np.prod(self.per))
        self.index_bytes = 16 * self.n_inner + (4 if self.index_crc else 0)
        self.grid = tuple(ceil_div(n, s) for n, s in zip(self.shape, self.shard))

    def key(self, sc):
        return shard_key(sc, self.sep) if self.default_keys else self.sep.join(map(str, sc))


def inspect_shard(obj, sm):
    """Parse and check one shard object's index. Returns (entries [(offset, nbytes) or None per inner
    chunk in C order], problems [str], unused bytes)."""
    problems = []
    if len(obj) < sm.index_bytes:
        return None, [f"object of {len(obj)} bytes is shorter than its index ({sm.index_bytes})"], 0
    ib = obj[:sm.index_bytes] if sm.location == "start" else obj[len(obj) - sm.index_bytes:]
    raw = ib[:16 * sm.n_inner]
    if sm.index_crc and crc32c_le(raw) != ib[16 * sm.n_inner:]:
        problems.append(f"index CRC-32C {ib[16 * sm.n_inner:].hex()} is not {crc32c_le(raw).hex()}")
    pairs = np.frombuffer(raw, dtype="<u8").reshape(sm.n_inner, 2)
    lo, hi = (sm.index_bytes, len(obj)) if sm.location == "start" else (0, len(obj) - sm.index_bytes)
    entries = []
    for k, (off, n) in enumerate(pairs.tolist()):
        if off == MISSING and n == MISSING:
            entries.append(None)
            continue
        if off == MISSING or n == MISSING:
            problems.append(f"inner chunk {k}: half-missing pair ({off}, {n})")
        elif off < lo or off + n > hi:
            problems.append(f"inner chunk {k}: bytes {off}..{off + n} outside the data region {lo}..{hi}")
        entries.append((off, n))
    used = sorted((e[0], e[0] + e[1], k) for k, e in enumerate(entries) if e)
    for (a0, a1, ka), (b0, b1, kb) in zip(used, used[1:]):
        if b0 < a1:
            problems.append(f"inner chunks {ka} and {kb} overlap ({a0}..{a1}, {b0}..{b1})")
    unused = (hi - lo) - sum(e[1] for e in entries if e)
    return entries, problems, unused


def decode_inner(b, sm):
    if sm.inner_crc:
        if crc32c_le(b[:-4]) != b[-4:]:
            raise ValueError("inner chunk CRC-32C mismatch")
        b = b[:-4]
    if sm.decoder is not None:
        b = bytes(sm.decoder.decode(b))
    want = int(np.prod(sm.inner)) * sm.dtype.itemsize
    if len(b) != want:
        raise ValueError(f"inner chunk decodes to {len(b)} bytes, not {want}")
    return np.frombuffer(b, dtype=sm.dtype).reshape(sm.inner)


def read_sharded(d):
    """Read a sharded array with the reader here. Returns (array, {key: report}), report holding
    entries, problems, unused bytes and the object's size; raises on what cannot be decoded."""
    sm = ShardMeta(d)
    out = np.full(sm.shape, sm.fill, dtype=sm.dtype)
    reports = {}
    for sc in np.ndindex(*sm.grid):
        key = sm.key(sc)
        path = os.path.join(d, *key.split("/"))
        if not os.path.exists(path):
            reports[key] = None
            continue
        with open(path, "rb") as f:
            obj = f.read()
        entries, problems, unused = inspect_shard(obj, sm)
        reports[key] = {"entries": entries, "problems": problems, "unused": unused, "size": len(obj)}
        if entries is None or problems:
            continue
        for k, ic in enumerate(np.ndindex(*sm.per)):
            if entries[k] is None:
                continue
            off, n = entries[k]
            a = decode_inner(obj[off:off + n], sm)
            origin = [s * c + i * w for s, c, i, w in zip(sc, sm.shard, ic, sm.inner)]
            dst = tuple(slice(o, min(o + w, n_)) for o, w, n_ in zip(origin, sm.inner, sm.shape))
            if any(sl.stop <= sl.start for sl in dst):
                continue
            out[dst] = a[tuple(slice(0, sl.stop - sl.start) for sl in dst)]
    return out, reports


# ---------------------------------------------------------------- helpers
def tally(*args, timeout=60):
    try:
        return subprocess.run([TALLY, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess([TALLY, *args], -9, "", f"still running after {timeout} s")


def ran(p):
    """A command that must succeed: exit 0 and no sanitizer report (UBSan may report and go on)."""
    return p.returncode == 0 and not any(x in p.stderr for x in SANITIZER)


def brief(err):
    """The message of a failed command: its first lines (a usage text after it says nothing)."""
    return " / ".join(err.strip().splitlines()[:3])[:600]


def same(want, got):
    """Equal values, shape and data type (byte order aside: it is the bytes codec's, not the array's)."""
    if want.shape != got.shape:
        return False, f"shape {got.shape}, want {want.shape}"
    if (want.dtype.kind, want.dtype.itemsize) != (got.dtype.kind, got.dtype.itemsize):
        return False, f"dtype {got.dtype}, want {want.dtype}"
    ok = np.array_equal(want, got, equal_nan=want.dtype.kind == "f")
    if ok:
        return True, ""
    bad = np.argwhere(~((want == got) | (np.isnan(want) & np.isnan(got)) if want.dtype.kind == "f" else want == got))
    i = tuple(bad[0])
    return False, f"{len(bad)} elements differ, first at {i}: {got[i]!r}, want {want[i]!r}"


def region_spec(region):
    return ",".join(f"{sl.start}:{sl.stop}" for sl in region)


def regions_of(shape):
    """A region across shard and inner chunk borders, a small one at the origin, the far edge corner."""
    return [tuple(slice(s // 3, s - s // 4) for s in shape),
            tuple(slice(0, min(s, 3)) for s in shape),
            tuple(slice(max(0, s - 5), s) for s in shape)]


def zarrita_reads(zio, d, want, name):
    raw = d + ".zarrita.bin"
    try:
        zio.call("read", d, raw)
    except Exception as e:
        return t.check(name, False, e)
    native = want.dtype.newbyteorder("=") if want.dtype.itemsize > 1 else want.dtype
    got = np.fromfile(raw, dtype=native.newbyteorder("<") if native.itemsize > 1 else native)
    os.unlink(raw)
    if want.dtype.kind == "b":
        got = got.astype(bool)
    if got.size != want.size:
        return t.check(name, False, f"{got.size} elements, want {want.size}")
    return t.check(name, *same(want, got.reshape(want.shape)))


def tally_gets(d, want, name, work):
    out = os.path.join(work, "get.npy")
    p = tally("get", d, out, "--force")
    ok = t.check(f"tally get {name}: exit 0", ran(p), (p.returncode, brief(p.stderr)))
    if ok:
        t.check(f"tally get {name}: equal", *same(want, np.load(out)))
    for region in regions_of(want.shape):
        spec = region_spec(region)
        p = tally("get", d, out, "--force", "--region", spec)
        if t.check(f"tally get {name} --region {spec}: exit 0", ran(p), (p.returncode, brief(p.stderr))):
            t.check(f"tally get {name} --region {spec}: equal", *same(want[region], np.load(out)))


def make_data(dtype, shape, seed, fill, fill_regions=()):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        a = rng.random(shape) < 0.5
    elif dt.kind == "f":
        a = (rng.standard_normal(shape) * 1000).astype(dt)
    else:
        info = np.iinfo(dt)
        a = rng.integers(max(info.min, -30000), min(info.max, 60000), size=shape,
                         dtype=dt.newbyteorder("=")).astype(dt)
    # never the fill value by chance: a stored inner chunk must not be all fill
    if dt.kind != "b":
        a[a == (0 if isinstance(fill, float) and np.isnan(fill) else fill)] += 1
    for r in fill_regions:
        a[r] = fill
    return a


# ---------------------------------------------------------------- A: written here, read by zarrita then tally
S = np.s_
INDEPENDENT = [
    # name, dtype, shape, shard, inner, fill, writer options, all-fill regions
    ("f4 none end, missing inner chunk and shard", "<f4", (64, 48), (32, 32), (16, 16), 7.0,
     dict(codec=None, location="end"), [S[0:16, 16:32], S[32:64, 32:48]]),
    ("int16 big-endian zstd+crc32c start", ">i2", (64, 48), (32, 32), (8, 16), 7,
     dict(codec="zstd", endian="big", inner_crc=True, location="start"), [S[8:16, 0:16], S[40:48, 32:48]]),
    ("uint8 blosc end, index without crc32c, partial edge shard", "|u1", (60, 48), (16, 48), (8, 8), 7,
     dict(codec="blosc:lz4:shuffle", index_crc=False, location="end"), [S[16:24, 8:16]]),
    ("float64 big-endian gzip+crc32c start, missing shard", ">f8", (64, 48), (32, 32), (16, 16), 7.0,
     dict(codec="gzip", endian="big", inner_crc=True, location="start"), [S[0:32, 32:48], S[48:64, 0:16]]),
    ("int64 3-d zstd end, edges in every dimension", "<i8", (10, 9, 7), (4, 6, 4), (2, 3, 2), -1,
     dict(codec="zstd", location="end"), [S[8:10, 6:9, 4:7], S[0:2, 0:3, 0:2]]),
    ("bool 1-d none end", "|b1", (100,), (32,), (8,), False,
     dict(codec=None, location="end"), [S[8:16], S[64:96]]),
    ("uint16 out-of-bounds inner chunks stored, junk padding", "<u2", (50, 40), (32, 32), (16, 16), 7,
     dict(codec=None, location="end", pad=0xABCD, keep_oob=True), [S[0:16, 0:16]]),
    ("float32 NaN fill, index-only shard objects, zstd start", "<f4", (64, 48), (32, 32), (16, 16), float("nan"),
     dict(codec="zstd", location="start", index_only_empty=True), [S[32:64, 0:32], S[0:16, 32:48]]),
    ("float64 one shard is the array, blosc zstd bitshuffle end", "<f8", (64, 48), (64, 48), (16, 12), 0.0,
     dict(codec="blosc:zstd:bitshuffle", location="end"), [S[16:32, 12:24]]),
]


def independent(zio, work, gzip):
    for n, (name, dtype, shape, shard, inner, fill, opts, fills) in enumerate(INDEPENDENT):
        d = os.path.join(work, f"ind{n}")
        data = make_data(dtype, shape, 100 + n, fill, fills)
        try:
            stats = write_sharded(d, data, shard, inner, fill, seed=n, **opts)
        except Exception as e:
            t.check(f"A {name}: written here", False, f"{type(e).__name__}: {e}")
            continue
        print(f"-- A {name}: {stats}")
        # the writer's layout read back by the reader here: its index checks hold on its own data
        try:
            got, reports = read_sharded(d)
            problems = [f"{k}: {p}" for k, r in reports.items() if r for p in r["problems"]]
            t.check(f"A {name}: the reader here reads it", not problems and same(data, got)[0],
                    problems or same(data, got)[1])
        except Exception as e:
            t.check(f"A {name}: the reader here reads it", False, f"{type(e).__name__}: {e}")
        zarrita_reads(zio, d, data, f"A {name}: zarrita reads it (the test data proven by a second reader)")
        if opts.get("codec") == "gzip" and not gzip["read"]:
            t.skip(f"A {name}: tally get", gzip["why_read"])
            continue
        tally_gets(d, data, f"A {name}", work)


# ---------------------------------------------------------------- B: written by tally, read here and by zarrita
def check_tally_shards(d, src, shards, chunks, location, codec, inner_crc, name):
    """The metadata and every shard object of an array tally wrote."""
    try:
        sm = ShardMeta(d)
    except Exception as e:
        return t.check(f"{name}: zarr.json is one sharding_indexed codec", False, f"{type(e).__name__}: {e}")
    t.check(f"{name}: zarr.json shard shape {list(shards)}, inner {list(chunks)}, index_location {location}",
            sm.shard == tuple(shards) and sm.inner == tuple(chunks) and sm.location == location,
            (sm.shard, sm.inner, sm.location))
    want_comp = None if codec == "none" else codec.split(":")[0]
    t.check(f"{name}: inner codecs bytes{'' if not want_comp else ', ' + want_comp}{', crc32c' if inner_crc else ''}",
            sm.compressor == want_comp and sm.inner_crc == inner_crc, sm.json["codecs"][0]["configuration"]["codecs"])
    try:
        got, reports = read_sharded(d)
    except Exception as e:
        return t.check(f"{name}: the reader here decodes every inner chunk", False, f"{type(e).__name__}: {e}")
    problems = [f"{k}: {p}" for k, r in reports.items() if r for p in r["problems"]]
    t.check(f"{name}: every index inside its object, after a start index or before an end one, "
            f"no overlaps, half-missing pairs none{', CRC-32C valid' if sm.index_crc else ''}", not problems,
            problems[:6])
    unused = {k: r["unused"] for k, r in reports.items() if r and r["unused"]}
    t.check(f"{name}: no unused bytes in the shard objects", not unused, unused)
    t.check(f"{name}: the reader here decodes it equal to the source", *same(src, got))
    # 2^64-1 exactly where an inner chunk is all fill, an entry wherever it is not
    wrong = []
    absent = []
    for sc in np.ndindex(*sm.grid):
        r = reports[sm.key(sc)]
        for k, ic in enumerate(np.ndindex(*sm.per)):
            origin = [s * c + i * w for s, c, i, w in zip(sc, sm.shard, ic, sm.inner)]
            part = tuple(slice(o, min(o + w, n)) for o, w, n in zip(origin, sm.inner, sm.shape))
            empty = any(sl.stop <= sl.start for sl in part) or is_fill(src[part], sm.fill)
            entry = None if r is None or r["entries"] is None else r["entries"][k]
            if r is None and not empty:
                absent.append(sm.key(sc))
            elif r is not None and r["entries"] is not None and (entry is None) != empty:
                wrong.append(f"{sm.key(sc)} inner {ic}: {'entry' if entry else '2^64-1'} for an "
                             f"{'all-fill' if empty else 'stored'} inner chunk")
    t.check(f"{name}: a shard object for every shard holding data", not absent, sorted(set(absent)))
    t.check(f"{name}: 2^64-1 exactly for the all-fill inner chunks", not wrong, wrong[:6])
    return True


def info_shows(d, shards, chunks, location, inner_crc, name):
    """tally info --json: "chunks" the shard shape, "inner_chunks", "index_location", "inner_crc32c"; the
    text form shows the same lines."""
    p = tally("info", d, "--json")
    if not t.check(f"{name}: tally info --json exit 0", ran(p), (p.returncode, brief(p.stderr))):
        return
    info = json.loads(p.stdout)
    want = {"sharded": True, "chunks": list(shards), "inner_chunks": list(chunks), "index_location": location,
            "inner_crc32c": inner_crc}
    got = {k: info.get(k) for k in want}
    t.check(f"{name}: tally info --json shows the shards, inner chunks and index location", got == want,
            f"{got}, want {want}")
    text = tally("info", d).stdout
    lines = [f"inner_chunks  {json.dumps(list(chunks), separators=(',', ':'))}", f"index_location {location}"]
    t.check(f"{name}: tally info shows them too", all(ln in text for ln in lines), text)


def tally_writes(zio, work, gzip):
    shape, shards, chunks = (64, 48), (32, 32), (16, 16)
    # all-fill (0, tally's fill value) inner chunks: one in a full shard, a whole shard, and edge ones
    src = make_data("<f4", shape, 7, 0.0, [S[0:16, 16:32], S[32:64, 32:48], S[48:64, 0:16]])
    cases = []
    for codec in ("none", "zstd", "blosc", "gzip"):
        for location in ("end", "start"):
            cases.append((codec, location, src, shards, chunks, False))
    cases += [
        ("zstd", "start", make_data(">i2", (10, 9, 7), 8, 0, [S[0:2, 0:3, 0:2], S[8:10, 6:9, 4:7]]), (4, 6, 4),
         (2, 3, 2), True),
        ("blosc:cname=zstd,clevel=3,shuffle=2", "end", make_data("|u1", (100,), 9, 0, [S[8:16]]), (32,), (8,), False),
        ("none", None, make_data("<i8", (30, 20), 10, 0, [S[0:5, 0:10]]), (10, 20), (5, 10), True),
        ("zstd", "end", make_data("|b1", (40, 24), 11, False, [S[0:8, 0:8]]), (16, 24), (8, 8), False),
        ("gzip", "start", make_data("<f8", (64, 48), 12, 0.0, [S[16:32, 0:16]]), (32, 48), (16, 16), True),
    ]
    for n, (codec, location, data, shards, chunks, inner_crc) in enumerate(cases):
        name = (f"B tally put {data.dtype.str} {data.shape} --shards {','.join(map(str, shards))} --chunks "
                f"{','.join(map(str, chunks))} --codec {codec} "
                f"{'--index-location ' + location if location else '(default index location)'}"
                f"{' --crc32c' if inner_crc else ''}")
        if codec.startswith("gzip") and not gzip["write"]:
            t.skip(name, gzip["why_write"])
            continue
        npy = os.path.join(work, f"tw{n}.npy")
        np.save(npy, data)
        d = os.path.join(work, f"tw{n}")
        args = ["put", npy, d, "--format", "v3", "--shards", ",".join(map(str, shards)),
                "--chunks", ",".join(map(str, chunks)), "--codec", codec]
        if location:
            args += ["--index-location", location]
        if inner_crc:
            args += ["--crc32c"]
        p = tally(*args)
        if not t.check(f"{name}: exit 0", ran(p), (p.returncode, brief(p.stderr))):
            continue
        location = location or "end"
        check_tally_shards(d, data, shards, chunks, location, codec, inner_crc, name)
        zarrita_reads(zio, d, data, f"{name}: zarrita reads it")
        tally_gets(d, data, name, work)
        info_shows(d, shards, chunks, location, inner_crc, name)


# ---------------------------------------------------------------- C: corrupt shards
def snapshot(root):
    out = {}
    for dd, dirs, files in os.walk(root):
        for nm in dirs + files:
            p = os.path.join(dd, nm)
            out[os.path.relpath(p, root)] = -1 if os.path.isdir(p) else os.lstat(p).st_size
    return out


def refused(name, c, args, key, what):
    """tally ARGS in case directory C: exit 2, KEY named, one of WHAT (words, any case) said, no sanitizer
    report, nothing written (no output .npy, no temporary file, the array as it was)."""
    before = snapshot(c)
    p = tally(*args, timeout=30)
    after = snapshot(c)
    err = p.stderr
    t.check(f"{name}: exit 2", p.returncode == 2, (p.returncode, brief(err)))
    t.check(f"{name}: the message names {key}", key in err, brief(err))
    t.check(f"{name}: the message says what is wrong ({' | '.join(what)})",
            any(w.lower() in err.lower() for w in what), brief(err))
    t.check(f"{name}: no sanitizer report", not any(s in err for s in SANITIZER), err[-800:])
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    t.check(f"{name}: nothing written", not changed, changed[:10])
    print(f"     tally said: {brief(err)}")


CHECKSUM = ["checksum", "crc"]
PAST_END = ["past the end", "beyond", "outside", "out of bounds", "out of range", "exceeds", "overflow", "end of",
            "larger than", "bigger than"]
OVERLAP = ["overlap"]
TRUNCATED = ["truncat", "short", "smaller than", "past the end", "beyond", "outside", "end of", "exceeds",
             "out of range", "out of bounds", "checksum", "crc"]
DECODE = ["decod", "corrupt", "crc", "checksum", "invalid", "length", "inner chunk", "expected"]


class Shard:
    """One shard object of an array written here, its index parsed, to be broken and put back."""

    def __init__(self, d, key):
        self.sm = ShardMeta(d)
        self.path = os.path.join(d, *key.split("/"))
        with open(self.path, "rb") as f:
            self.obj = bytearray(f.read())
        ib = self.index_raw()
        self.pairs = np.frombuffer(bytes(ib[:16 * self.sm.n_inner]), dtype="<u8").reshape(-1, 2).copy()

    def index_at(self):
        return 0 if self.sm.location == "start" else len(self.obj) - self.sm.index_bytes

    def index_raw(self):
        i = self.index_at()
        return self.obj[i:i + self.sm.index_bytes]

    def stored(self):
        """Inner chunks stored, by offset: [(k, offset, nbytes)]."""
        return sorted(((k, int(o), int(n)) for k, (o, n) in enumerate(self.pairs) if o != MISSING),
                      key=lambda e: e[1])

    def put_index(self, crc=True):
        """Write the pairs back; crc: a CRC-32C of the new index (a consistent lie); else the old one."""
        raw = self.pairs.astype("<u8").tobytes()
        i = self.index_at()
        old = bytes(self.obj[i + len(raw):i + self.sm.index_bytes])
        self.obj[i:i + self.sm.index_bytes] = raw + ((crc32c_le(raw) if crc else old) if self.sm.index_crc else b"")
        return self.save()

    def save(self):
        with open(self.path, "wb") as f:
            f.write(self.obj)
        return self


def corruption(work):
    data = make_data("<f4", (64, 48), 21, 7.0, [S[0:16, 16:32]])
    key = "c/1/0"  # a full shard: 4 inner chunks of 16x16, all stored

    def base(kind, location, n, seed=None):
        c = os.path.join(work, f"bad{n}")
        os.makedirs(c)
        d = os.path.join(c, "a")
        opts = {"none": dict(codec=None), "zstd": dict(codec="zstd"),
                "crc": dict(codec=None, inner_crc=True)}[kind]
        write_sharded(d, data, (32, 32), (16, 16), 7.0, location=location, seed=n if seed is None else seed, **opts)
        return c, d

    cases = []

    def case(fn):
        cases.append(fn)
        return fn

    @case
    def checksum(sh):
        """index checksum wrong (one bit of the CRC flipped)"""
        i = sh.index_at() + 16 * sh.sm.n_inner
        sh.obj[i] ^= 0x01
        sh.save()
        return CHECKSUM

    @case
    def checksum_stale(sh):
        """an index entry changed, the checksum not (nbytes of the first stored chunk one less)"""
        k = sh.stored()[0][0]
        sh.pairs[k, 1] -= 1
        sh.put_index(crc=False)
        return CHECKSUM

    @case
    def past_end(sh):
        """an entry running past the end of the object (CRC-32C recomputed)"""
        k, off, n = sh.stored()[-1]
        sh.pairs[k] = (len(sh.obj) - 8, n)
        sh.put_index()
        return PAST_END

    @case
    def past_end_far(sh):
        """an entry starting past the end of the object (offset 1 MiB on)"""
        k = sh.stored()[0][0]
        sh.pairs[k, 0] = len(sh.obj) + (1 << 20)
        sh.put_index()
        return PAST_END

    @case
    def past_end_wraps(sh):
        """an entry whose offset + nbytes wraps 2^64 (offset 2^64-16, nbytes 32)"""
        k = sh.stored()[0][0]
        sh.pairs[k] = (2**64 - 16, 32)
        sh.put_index()
        return PAST_END

    @case
    def half_missing(sh):
        """an entry with offset 2^64-1 and a real nbytes (missing is both 2^64-1)"""
        k, off, n = sh.stored()[0]
        sh.pairs[k] = (MISSING, n)
        sh.put_index()
        return PAST_END + ["missing", "2^64", "18446744073709551615", "invalid"]

    @case
    def into_index(sh):
        """an entry overlapping the index bytes themselves"""
        k, off, n = sh.stored()[0]
        at = sh.index_at()
        sh.pairs[k] = (at + 8 if sh.sm.location == "start" else at - n + 8, n)
        sh.put_index()
        return OVERLAP + PAST_END

    @case
    def overlap(sh):
        """two entries overlapping by 4 bytes (same lengths: each decodes, only the overlap is wrong)"""
        st = sh.stored()
        (_, oa, na), (kb, _, nb) = st[0], st[1]
        sh.pairs[kb] = (oa + na - 4, nb)
        sh.put_index()
        return OVERLAP

    @case
    def overlap_same(sh):
        """two entries naming the same bytes"""
        st = sh.stored()
        (_, oa, na), (kb, _, _) = st[0], st[1]
        sh.pairs[kb] = (oa, na)
        sh.put_index()
        return OVERLAP

    @case
    def truncated_half(sh):
        """the object cut to half its size"""
        del sh.obj[len(sh.obj) // 2:]
        sh.save()
        return TRUNCATED

    @case
    def truncated_last_byte(sh):
        """the object's last byte cut"""
        del sh.obj[-1:]
        sh.save()
        return TRUNCATED

    @case
    def truncated_below_index(sh):
        """the object cut to 10 bytes, shorter than its index"""
        del sh.obj[10:]
        sh.save()
        return TRUNCATED

    @case
    def empty_object(sh):
        """the object emptied (0 bytes: not a missing shard, a broken one)"""
        del sh.obj[:]
        sh.save()
        return TRUNCATED

    def decode_case(kind, doc):
        def fn(sh):
            k, off, n = sh.stored()[1]
            if kind == "garbage":
                sh.obj[off:off + n] = bytes((i * 37 + 11) & 0xFF for i in range(n))
            elif kind == "short":
                sh.pairs[k, 1] = n - 8
                sh.put_index()
            elif kind == "flip":
                sh.obj[off + n // 2] ^= 0x40
            sh.save()
            return DECODE
        fn.__doc__ = doc
        fn.__name__ = f"decode_{kind}"
        return fn

    decode_garbage = decode_case("garbage", "an inner chunk's bytes replaced by garbage (zstd cannot decode them)")
    decode_short = decode_case("short", "an inner chunk 8 bytes shorter than its shape (bytes codec, no compressor)")
    decode_flip = decode_case("flip", "an inner chunk with one bit flipped under its crc32c (bytes + crc32c)")

    plan = []
    for location in ("end", "start"):
        for fn in cases:
            plan.append(("none", location, fn))
        plan.append(("zstd", location, checksum))
        plan.append(("zstd", location, decode_garbage))
        plan.append(("none", location, decode_short))
        plan.append(("crc", location, decode_flip))
    for kind in ("none", "zstd", "crc"):
        for location in ("end", "start"):
            c, d = base(kind, location, f"-control-{kind}-{location}", seed=99)
            out = os.path.join(c, "out.npy")
            p = tally("get", d, out)
            if t.check(f"C control: the unbroken {kind} array, index at {location}, reads", ran(p),
                       (p.returncode, brief(p.stderr))):
                t.check(f"C control: the unbroken {kind} array, index at {location}: equal", *same(data, np.load(out)))
    for n, (kind, location, fn) in enumerate(plan):
        name = f"C {fn.__doc__} [{kind} inner chunks, index at {location}]"
        try:
            c, d = base(kind, location, n)
            what = fn(Shard(d, key))
        except Exception as e:
            t.check(name, False, f"setting up: {type(e).__name__}: {e}")
            continue
        # the reader here refuses it too: the case is the corruption it claims to be
        try:
            _, reports = read_sharded(d)
            seen = reports[key]["problems"] if reports.get(key) else ["the shard object is gone"]
        except Exception as e:
            seen = [f"{type(e).__name__}: {e}"]
        t.check(f"{name}: the reader here refuses it too", bool(seen), "it reads the shard without a complaint")
        out = os.path.join(c, "out.npy")
        refused(f"{name}: get", c, ["get", d, out], key, what)
        if fn in (checksum, past_end_far, overlap):
            # a region of one intact inner chunk of the broken shard: the index is not to be trusted
            refused(f"{name}: get --region 48:52,0:4", c, ["get", d, out, "--region", "48:52,0:4"], key, what)
        if fn is checksum and kind == "none" and location == "end":
            # the other shards are intact: a region of them reads
            p = tally("get", d, out, "--region", "0:32,0:32")
            if t.check(f"{name}: a region of the intact shard c/0/0 still reads", ran(p),
                       (p.returncode, brief(p.stderr))):
                t.check(f"{name}: ... equal", *same(data[0:32, 0:32], np.load(out)))
                os.unlink(out)


# ---------------------------------------------------------------- D: metadata to refuse
def bad_metadata(work):
    data = make_data("<f4", (64, 48), 31, 7.0)

    def variant(n, edit):
        c = os.path.join(work, f"meta{n}")
        os.makedirs(c)
        d = os.path.join(c, "a")
        write_sharded(d, data, (32, 32), (16, 16), 7.0, codec="zstd")
        p = os.path.join(d, "zarr.json")
        with open(p) as f:
            m = json.load(f)
        edit(m["codecs"][0]["configuration"], m)
        with open(p, "w") as f:
            json.dump(m, f)
        return c, d

    def not_dividing(cfg, m):
        cfg["chunk_shape"] = [12, 16]

    def rank(cfg, m):
        cfg["chunk_shape"] = [16]

    def location(cfg, m):
        cfg["index_location"] = "middle"

    def index_zstd(cfg, m):
        cfg["index_codecs"] = [{"name": "bytes", "configuration": {"endian": "little"}},
                               {"name": "zstd", "configuration": {"level": 3, "checksum": False}}]

    # the control: unedited, the array reads (else every refusal below says nothing)
    c, d = variant("control", lambda cfg, m: None)
    p = tally("get", d, os.path.join(c, "out.npy"))
    t.check("D control: the unedited array reads", ran(p), (p.returncode, brief(p.stderr)))
    for n, (doc, edit, words) in enumerate((
            ("inner chunk shape 12x16 does not divide the shard 32x32", not_dividing,
             ["divide", "multiple", "chunk_shape"]),
            ("inner chunk shape of rank 1 in a rank-2 array", rank, ["rank", "dimension", "chunk_shape"]),
            ("index_location 'middle'", location, ["index_location", "middle"]),
            ("index_codecs with zstd (not a fixed-size index)", index_zstd, ["index_codecs", "index codec"]))):
        c, d = variant(n, edit)
        refused(f"D {doc}: get", c, ["get", d, os.path.join(c, "out.npy")], "zarr.json", words)

    # nested sharding: read right or refused by name (the issue allows either); no shard objects, so a
    # reader that takes it reads the fill value everywhere
    c = os.path.join(work, "nested")
    os.makedirs(c)
    d = os.path.join(c, "a")
    write_sharded(d, np.full((64, 48), 7.0, dtype="<f4"), (32, 32), (16, 16), 7.0, codec=None)
    p = os.path.join(d, "zarr.json")
    with open(p) as f:
        m = json.load(f)
    cfg = m["codecs"][0]["configuration"]
    cfg["codecs"] = [{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [8, 8], "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "index_codecs": cfg["index_codecs"], "index_location": "end"}}]
    with open(p, "w") as f:
        json.dump(m, f)
    out = os.path.join(c, "out.npy")
    r = tally("get", d, out)
    if ran(r):
        t.check("D nested sharding: read, the fill value everywhere", *same(np.full((64, 48), 7.0, "<f4"),
                                                                           np.load(out)))
    else:
        t.check("D nested sharding: refused by name (exit 2, zarr.json, sharding and nested | inner codecs | inside | within)",
                r.returncode == 2 and "zarr.json" in r.stderr and "shard" in r.stderr
                and any(w in r.stderr.lower() for w in ("nested", "inner codecs", "inside", "within")),
                (r.returncode, brief(r.stderr)))


# ---------------------------------------------------------------- main
def gzip_support(work):
    """Whether tally reads a v3 gzip array (one written here, unsharded) and writes a sharded gzip one:
    the gzip cases run where it does, and say why they are skipped where it does not."""
    import numcodecs
    a = np.arange(12, dtype="<f4").reshape(3, 4)
    d = os.path.join(work, "probe-read")
    os.makedirs(os.path.join(d, "c", "0"))
    with open(os.path.join(d, "zarr.json"), "w") as f:
        json.dump({"zarr_format": 3, "node_type": "array", "shape": [3, 4], "data_type": "float32",
                   "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [3, 4]}},
                   "chunk_key_encoding": {"name": "default"}, "fill_value": 0,
                   "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                              {"name": "gzip", "configuration": {"level": 5}}]}, f)
    with open(os.path.join(d, "c", "0", "0"), "wb") as f:
        f.write(bytes(numcodecs.GZip(level=5).encode(a)))
    r = tally("get", d, os.path.join(work, "probe-read.npy"))
    npy = os.path.join(work, "probe.npy")
    np.save(npy, a)
    w = tally("put", npy, os.path.join(work, "probe-write"), "--format", "v3", "--codec", "gzip", "--shards", "3,4",
              "--chunks", "1,4")
    out = {"read": r.returncode == 0, "write": w.returncode == 0,
           "why_read": f"tally get of a v3 gzip array fails here: {brief(r.stderr)}",
           "why_write": f"tally put --format v3 --codec gzip --shards is refused here: {brief(w.stderr)}"}
    print(f"gzip: tally reads v3 gzip: {out['read']}; writes sharded gzip: {out['write']}")
    return out


def main():
    global TALLY
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    TALLY = os.path.abspath(sys.argv[1])
    start = time.monotonic()
    work = tempfile.mkdtemp(prefix="tally-shards-")
    zio = None
    try:
        crc32c_vectors()
        if not os.path.isdir(os.path.join(HERE, "node_modules", "zarrita")):
            t.check("zarrita installed", False, "tests/interop/node_modules/zarrita is missing: run scripts/deps")
            return t.summary()
        node = shutil.which("node")
        if node is None:
            t.check("node installed", False, "node is missing: run scripts/deps")
            return t.summary()
        zio = ZarritaIO(node, os.path.join(HERE, "zarrita_io.mjs"))
        gzip = gzip_support(work)
        for section in (independent, tally_writes):
            try:
                section(zio, work, gzip)
            except Exception as e:
                t.check(section.__name__, False, f"{type(e).__name__}: {e}")
        for section in (corruption, bad_metadata):
            try:
                section(work)
            except Exception as e:
                t.check(section.__name__, False, f"{type(e).__name__}: {e}")
    finally:
        if zio is not None:
            zio.close()
        shutil.rmtree(work, ignore_errors=True)
        print(f"{time.monotonic() - start:.1f} s")
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
