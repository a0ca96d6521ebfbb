#!/usr/bin/python3
"""Every blosc frame numcodecs writes reads back equal through tally's block-by-block path, a frame
that lies is exit 2 naming its chunk, and every frame tally writes block by block is numcodecs' own
(byte for byte but for snappy's, which c-blosc leaves uncompressed where its output buffer has not
room for snappy's worst case) and reads back in zarr-python and zarrita.

  blosc_frames.py TALLY

The frames: numcodecs 0.11's c-blosc (Debian's) with every compressor it has, shuffle none, byte and
bit, typesizes 1-8, blocksize automatic and forced, compressed on blosc's threads (blocks out of
order, as zarr-python writes from the main thread) and without, and memcpyed frames (clevel 0, and
bytes that do not compress). Each is one chunk of a v2 array of bytes, 2 chunks wide, so tally
reads it whole (chunks strided in the output: each block scattered from a block buffer), one column
of chunks (contiguous: blocks decoded in place), a region that cuts every chunk, and a single row.
Runs with /usr/bin/python3 (Debian's numpy, numcodecs and zarr).
"""
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

CHUNK = (420, 600)  # 252000 bytes: a multiple of every typesize 1-8
N = CHUNK[0] * CHUNK[1]


def chunk_data(k, typesize, random=False):
    rng = np.random.default_rng(k)
    if random:
        return rng.integers(0, 256, N, dtype=np.uint8)
    # a slow ramp of little-endian typesize-byte integers with a little noise: shuffle matters
    n = N // typesize
    v = (np.arange(n, dtype=np.uint64) // 7 + rng.integers(0, 4, n, dtype=np.uint64)) * (k + 1)
    b = v.astype("<u8").view(np.uint8).reshape(n, 8)[:, :typesize]
    return np.ascontiguousarray(b).reshape(-1)


def frames():
    """(description, raw bytes, frame bytes) for every case."""
    from numcodecs import blosc
    out = []
    k = 0
    for cname in blosc.list_compressors():
        for shuffle in (blosc.NOSHUFFLE, blosc.SHUFFLE, blosc.BITSHUFFLE):
            for typesize in range(1, 9):
                for blocksize in (0, 2000):
                    threads = k % 2 == 1
                    raw = chunk_data(k, typesize)
                    blosc.use_threads = threads
                    src = raw.view(f"V{typesize}") if typesize > 1 else raw
                    frame = blosc.compress(src, cname.encode(), 5, shuffle, blocksize)
                    out.append((f"{cname} shuffle {shuffle} typesize {typesize} blocksize {blocksize or 'auto'}"
                                f"{' threads' if threads else ''}", raw, frame))
                    k += 1
        # memcpyed: clevel 0, and bytes that do not compress
        for clevel, random in ((0, False), (9, True)):
            raw = chunk_data(k, 4, random)
            blosc.use_threads = True
            frame = blosc.compress(raw.view("V4"), cname.encode(), clevel, blosc.SHUFFLE, 0)
            out.append((f"{cname} clevel {clevel}{' random' if random else ''} (memcpyed)", raw, frame))
            k += 1
    return out


def tally(tally_bin, *args):
    return t.run(tally_bin, *args)


def make_array(work, name, cases):
    """A v2 |u1 array holding one case per chunk, 2 chunks wide; returns (dir, expected array)."""
    import numcodecs
    import zarr
    rows = (len(cases) + 1) // 2
    shape = (rows * CHUNK[0], 2 * CHUNK[1])
    d = os.path.join(work, name)
    zarr.open(d, mode="w", shape=shape, chunks=CHUNK, dtype="|u1", compressor=numcodecs.Blosc(), fill_value=0)
    want = np.zeros(shape, dtype=np.uint8)
    for k, (_, raw, frame) in enumerate(cases):
        i, j = divmod(k, 2)
        with open(os.path.join(d, f"{i}.{j}"), "wb") as f:
            f.write(frame)
        want[i * CHUNK[0]:(i + 1) * CHUNK[0], j * CHUNK[1]:(j + 1) * CHUNK[1]] = raw.reshape(CHUNK)
    return d, want


def on_s3(d):
    """The array in directory @p d put on the project's S3 server object by object (this client's
    PUTs): its URL, or None without a server (AWS_ENDPOINT_URL, TALLY_S3_BUCKET; scripts/test starts
    one). On S3 a blosc chunk among others that is read whole is one request, its blocks decoded
    where they lie in it (read_blocks.c one_range())."""
    if not (os.environ.get("AWS_ENDPOINT_URL") and os.environ.get("TALLY_S3_BUCKET")):
        return None
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "s3"))
    from s3util import S3
    s3 = S3()
    prefix = f"{S3_PREFIX}/{os.path.basename(d)}"
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            status, _, body = s3.request("PUT", f"{prefix}/{name}", body=f.read())
        if status != 200:
            raise RuntimeError(f"PUT {prefix}/{name}: HTTP {status} {body[:200]!r}")
    return f"s3://{s3.bucket}/{prefix}"


S3_PREFIX = f"tally-test/blosc-frames-{os.getpid()}"


def get(tally_bin, d, out, region=None):
    args = ["get", d, out, "--force"] + (["--region", region] if region else [])
    p = tally(tally_bin, *args)
    if p.returncode != 0:
        raise RuntimeError(f"tally {' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-500:]}")
    return np.load(out)


def every_frame(tally_bin, work):
    import numcodecs
    import zarr
    cases = frames()
    flags = [c[2][2] for c in cases]
    t.check(f"{len(cases)} frames, memcpyed among them", any(f & 0x02 for f in flags), "none memcpyed")
    unordered = 0
    for _, _, frame in cases:
        v = struct.unpack_from("<BBBBIII", frame)
        if not v[2] & 0x02 and v[4] > v[5]:
            n = -(-v[4] // v[5])
            starts = struct.unpack_from(f"<{n}i", frame, 16)
            unordered += list(starts) != sorted(starts)
    t.check("frames with their blocks out of order among them", unordered > 0, "none")
    d, want = make_array(work, "frames", cases)
    z = zarr.open(d, mode="r")
    t.check(f"numcodecs {numcodecs.__version__} reads every frame back", np.array_equal(z[...], want))
    out = os.path.join(work, "out.npy")
    got = get(tally_bin, d, out)
    rows = want.shape[0]
    for k, (what, _, _) in enumerate(cases):
        i, j = divmod(k, 2)
        sl = (slice(i * CHUNK[0], (i + 1) * CHUNK[0]), slice(j * CHUNK[1], (j + 1) * CHUNK[1]))
        t.check(f"tally reads {what}", np.array_equal(got[sl], want[sl]), "differs")
    regions = {
        "one column of chunks (each contiguous in the output)": (slice(0, rows), slice(0, CHUNK[1])),
        "a region cutting every chunk": (slice(37, rows - 41), slice(13, 2 * CHUNK[1] - 7)),
        "one row": (slice(CHUNK[0] + 5, CHUNK[0] + 6), slice(0, 2 * CHUNK[1])),
    }
    for what, (r, c) in regions.items():
        spec = f"{r.start}:{r.stop},{c.start}:{c.stop}"
        got = get(tally_bin, d, out, spec)
        t.check(f"tally reads {what} ({spec}) of every frame", np.array_equal(got, want[r, c]), "differs")
    url = on_s3(d)
    if url is None:
        t.skip("every frame on S3", "no S3 server (AWS_ENDPOINT_URL, TALLY_S3_BUCKET; scripts/test starts one)")
        return
    got = get(tally_bin, url, out)
    at = lambda k: (slice(k // 2 * CHUNK[0], (k // 2 + 1) * CHUNK[0]), slice(k % 2 * CHUNK[1], (k % 2 + 1) * CHUNK[1]))
    bad = [what for k, (what, _, _) in enumerate(cases) if not np.array_equal(got[at(k)], want[at(k)])]
    t.check(f"S3: tally reads every frame ({len(cases)} of them, each chunk read whole)", not bad, bad[:5])
    for what, (r, c) in regions.items():
        spec = f"{r.start}:{r.stop},{c.start}:{c.stop}"
        got = get(tally_bin, url, out, spec)
        t.check(f"S3: tally reads {what} ({spec}) of every frame", np.array_equal(got, want[r, c]), "differs")


def set32(b, at, v):
    struct.pack_into("<I", b, at, v & 0xFFFFFFFF)


def lies(tally_bin, work):
    """Frames that lie: exit 2, and the message names the chunk."""
    from numcodecs import blosc
    blosc.use_threads = False
    raw = chunk_data(1, 4)
    good = bytes(blosc.compress(raw.view("V4"), b"zstd", 5, blosc.SHUFFLE, 8192))  # 31 blocks, unsplit
    n = struct.unpack_from("<I", good, 4)[0]
    nblocks = -(-n // 8192)
    start = list(struct.unpack_from(f"<{nblocks}i", good, 16))

    def with_(fn):
        b = bytearray(good)
        fn(b)
        return bytes(b)

    bad = {
        "an offset past the end": with_(lambda b: set32(b, 16 + 4 * 3, len(good) + 10)),
        "two blocks overlapping": with_(lambda b: set32(b, 16 + 4 * 5, start[4])),
        "a block cut short by the next": with_(lambda b: set32(b, 16 + 4 * 5, start[5] - 50)),
        "a block longer than declared": with_(lambda b: set32(b, start[6], struct.unpack_from("<I", b, start[6])[0]
                                                              + 100000)),
        "a header that lies about nbytes": with_(lambda b: set32(b, 4, n - 4)),
        "a header that lies about cbytes": with_(lambda b: set32(b, 12, len(good) + 1)),
        "a truncated frame": good[:len(good) // 2],
        "a frame cut in its table": good[:16 + 4 * 5],
        "a frame cut in its header": good[:9],
    }
    for what, frame in bad.items():
        d, _ = make_array(work, "lie", [("good", raw, good), ("bad", raw, frame), ("good", raw, good)])
        p = tally(tally_bin, "get", d, os.path.join(work, "lie.npy"), "--force")
        t.check(f"{what}: exit 2 naming the chunk", p.returncode == 2 and "chunk 0.1" in p.stderr,
                f"exit {p.returncode}: {p.stderr.strip()[-300:]}")
        url = on_s3(d)
        if url is not None:  # read whole, each chunk in one request
            p = tally(tally_bin, "get", url, os.path.join(work, "lie.npy"), "--force")
            t.check(f"S3: {what}: exit 2 naming the chunk", p.returncode == 2 and "chunk 0.1" in p.stderr,
                    f"exit {p.returncode}: {p.stderr.strip()[-300:]}")
        shutil.rmtree(d)


def tally_writes(tally_bin, work):
    """tally put with every compressor, shuffle, typesize 1-8 (by dtype) and block size, whole chunks
    and strided ones (gathered two blocks at a time): zarr-python reads them, and they are the frames
    numcodecs writes for the same chunks (one thread: blocks in order)."""
    import json
    import subprocess
    from numcodecs import blosc
    import zarr
    blosc.use_threads = False
    dtypes = ["|u1", "<i2", "<f4", "<f8"]
    shape = (240, 600)
    cases = [(c, s, dtypes[k % 4], 5, (0, 4096, 100000)[k % 3], "smooth")
             for k, (c, s) in enumerate((c, s) for c in blosc.list_compressors() for s in (0, 1, 2))]
    cases += [(c, 1, "<f4", 0, 0, "smooth") for c in ("lz4", "zstd")]       # clevel 0: memcpyed
    cases += [(c, 2, "<i2", 9, 0, "random") for c in ("blosclz", "zlib")]   # outgrows: memcpyed
    for k, (cname, shuffle, dtype, clevel, blocksize, kind) in enumerate(cases):
        dt = np.dtype(dtype)
        rng = np.random.default_rng(k)
        if kind == "random":
            src = rng.integers(0, 256, shape[0] * shape[1] * dt.itemsize, dtype=np.uint8).view(dt).reshape(shape)
        else:
            src = (np.add.outer(np.arange(shape[0]), np.arange(shape[1]) // 3) % 120).astype(dt)
        npy = os.path.join(work, f"w{k}.npy")
        np.save(npy, src)
        spec = f"blosc:cname={cname},clevel={clevel},shuffle={shuffle},blocksize={blocksize}"
        for chunks in ((240, 600), (120, 200)):
            what = f"{spec} {dtype} chunks {chunks}"
            d = os.path.join(work, f"w{k}-{chunks[1]}")
            p = tally(tally_bin, "put", npy, d, "--chunks", ",".join(map(str, chunks)), "--codec", spec)
            if p.returncode != 0:
                t.check(f"tally writes {what}", False, p.stderr.strip()[-300:])
                continue
            z = zarr.open(d, mode="r")
            t.check(f"zarr-python reads tally's {what}", np.array_equal(z[...], src), "differs")
            same = total = 0
            for i in range(shape[0] // chunks[0]):
                for j in range(shape[1] // chunks[1]):
                    block = np.ascontiguousarray(src[i * chunks[0]:(i + 1) * chunks[0],
                                                     j * chunks[1]:(j + 1) * chunks[1]])
                    ref = bytes(blosc.compress(block, cname.encode(), clevel, shuffle, blocksize))
                    with open(os.path.join(d, f"{i}.{j}"), "rb") as f:
                        same += f.read() == ref
                    total += 1
            if cname != "snappy":
                t.check(f"tally's {what}: numcodecs' frames byte for byte", same == total, f"{same} of {total}")
            shutil.rmtree(d)
    # zarrita (v3) reads what tally writes block by block, each compressor and shuffle
    node = shutil.which("node")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zarrita_io.mjs")
    if node is None or not os.path.isdir(os.path.join(os.path.dirname(script), "node_modules", "zarrita")):
        t.skip("zarrita reads tally's frames", "node or tests/interop/node_modules/zarrita missing (scripts/deps)")
        return
    src = (np.add.outer(np.arange(shape[0]), np.arange(shape[1]) * 0.25)).astype("<f8")
    npy = os.path.join(work, "v3.npy")
    np.save(npy, src)
    for cname in blosc.list_compressors():
        for shuffle in (0, 1, 2):
            spec = f"blosc:cname={cname},clevel=5,shuffle={shuffle}"
            d = os.path.join(work, f"v3-{cname}-{shuffle}")
            p = tally(tally_bin, "put", npy, d, "--format", "v3", "--chunks", "120,200", "--codec", spec)
            raw = os.path.join(work, "v3.bin")
            q = subprocess.run([node, script, "read", d, raw], capture_output=True, text=True) \
                if p.returncode == 0 else p
            ok = q.returncode == 0 and np.array_equal(np.fromfile(raw, dtype="<f8").reshape(shape), src)
            t.check(f"zarrita reads tally's v3 <f8 {spec}", ok, (q.stderr or "").strip()[-300:])
            if ok:
                json.loads(q.stdout)  # zarrita said what it read
            shutil.rmtree(d, ignore_errors=True)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    tally_bin = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="tally-blosc-frames-")
    try:
        for fn in (every_frame, lies, tally_writes):
            try:
                fn(tally_bin, work)
            except Exception as e:  # a part that cannot run is a failed check, with its reason
                t.check(fn.__name__, False, f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if os.environ.get("AWS_ENDPOINT_URL") and os.environ.get("TALLY_S3_BUCKET"):
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "s3"))
            from s3util import S3
            S3().delete_prefix(S3_PREFIX + "/")
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
