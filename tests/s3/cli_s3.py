#!/usr/bin/python3
"""tally put/get against a real S3 (radosgw from scripts/s3-server), checked by an independent client.

  cli_s3.py TALLY     one line per check and "N passed, N failed"; exit 1 on a failure, 77 (skip)
                      without a server

- put then get round-trips equal for every codec and both formats, a chunk over the part size
  (multipart) among them; nothing is left behind (no object, no multipart upload);
- a chunk not stored reads as the fill value (zstd and blosc chunks among others: found missing by
  the range that would say their size);
- a blosc chunk among others read whole is one request; a stored frame or a part of a chunk is
  its header's range and then its bytes;
- a region read asks only for the chunks it needs, uncompressed ones by range GETs of their rows;
- a wrong secret exits 2 naming SignatureDoesNotMatch, and neither secret nor signature appears;
- a missing bucket exits 2 naming NoSuchBucket;
- sharded v3 arrays (issue 12) round-trip at both index locations with shards over the part size
  (multipart; an index at the start patched into the first part, kept until the commit), their
  indexes checked by this client, and a region read of 4 inner chunks GETs the index and those 4
  inner chunks' bytes only;
- a shard's index at the end costs one request (issue 23): a suffix range (Range: bytes=-N, no HEAD),
  so a read's store_read_requests is per shard 1 + its groups of inner chunks; a server that answers
  the suffix with the whole object (200) or refuses it (416) is asked again the ordinary way, and an
  empty shard object (RGW refuses its suffix: 416) is an error naming the truncation;
- TLS is verified: a self-signed endpoint is refused, and accepted with AWS_CA_BUNDLE or
  TALLY_S3_CA_BUNDLE naming its certificate; connections are kept alive and reused.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3util import S3, FaultProxy, Results, require_server  # noqa: E402

require_server()
TALLY = sys.argv[1]
BUCKET = os.environ["TALLY_S3_BUCKET"]
PREFIX = f"tally-test/cli-{os.getpid()}"
s3 = S3()
R = Results()


def tally(*args, env=None):
    if args and args[0] == "get":  # these tests read into the same files again: replacing them is meant
        args = (*args, "--force")
    return subprocess.run([TALLY, *args], capture_output=True, text=True, env=env, timeout=300)


def url(name):
    return f"s3://{BUCKET}/{PREFIX}/{name}"


def chunk_sizes(prefix):
    """The stored sizes of an array's chunks, as this client's HEADs say."""
    return [int(s3.request("HEAD", k)[1]["Content-Length"]) for k in s3.list_keys(prefix + "/")
            if re.search(r"/\d+\.\d+$", k)]


def roundtrips(w):
    rng = np.random.default_rng(5)
    a = rng.random((300, 500), dtype=np.float32)
    np.save(f"{w}/a.npy", a)
    for fmt in ("v2", "v3"):
        for codec in ("none", "zstd", "blosc", "zstd:level=5", "blosc:cname=zstd,clevel=3,shuffle=2"):
            name = f"{fmt}-{codec.split(':')[0]}{'-cfg' if ':' in codec else ''}"
            p = tally("put", f"{w}/a.npy", url(name), "--codec", codec, "--format", fmt, "--chunks", "128,128")
            if not R.check(f"put {fmt} {codec}", p.returncode == 0, p.stderr):
                continue
            g = tally("get", url(name), f"{w}/b.npy")
            R.check(f"get {fmt} {codec} equal", g.returncode == 0 and np.array_equal(np.load(f"{w}/b.npy"), a),
                    g.stderr)
    meta = s3.list_keys(f"{PREFIX}/v3-zstd/")
    R.check("v3 keys: zarr.json and c/I/J", f"{PREFIX}/v3-zstd/zarr.json" in meta and
            f"{PREFIX}/v3-zstd/c/2/3" in meta, meta[:5])
    # One chunk of 26 MB: a multipart upload from the array's memory (none) or from the encoder's
    # blocks (zstd, incompressible data), both over the 8 MiB part size.
    big = rng.random((3000, 2200), dtype=np.float32)
    np.save(f"{w}/big.npy", big)
    for codec in ("none", "zstd"):
        p = tally("put", f"{w}/big.npy", url(f"big-{codec}"), "--codec", codec, "--json")
        R.check(f"put one 26 MB chunk ({codec}): multipart", p.returncode == 0, p.stderr)
        g = tally("get", url(f"big-{codec}"), f"{w}/big2.npy")
        R.check(f"get it back ({codec})", g.returncode == 0 and np.array_equal(np.load(f"{w}/big2.npy"), big), g.stderr)
        status, hdrs, _ = s3.request("HEAD", f"{PREFIX}/big-{codec}/0.0")
        R.check(f"stored as a multipart object ({codec})", status == 200 and re.search(r"-\d+\"?$", hdrs.get("ETag", "")),
                hdrs.get("ETag"))
    blosc_one_chunk(w, big)
    p = tally("put", f"{w}/a.npy", url("v2-none"), "--codec", "zstd")
    R.check("put over an existing array needs --overwrite", p.returncode == 2 and "--overwrite" in p.stderr, p.stderr)
    p = tally("put", f"{w}/a.npy", url("v2-none"), "--codec", "zstd", "--overwrite", "--chunks", "300,500")
    g = tally("get", url("v2-none"), f"{w}/b.npy")
    R.check("--overwrite replaces the array", p.returncode == 0 and g.returncode == 0 and
            np.array_equal(np.load(f"{w}/b.npy"), a), p.stderr + g.stderr)
    keys = s3.list_keys(f"{PREFIX}/v2-none/")
    R.check("and clears the old chunks", sorted(k.rsplit("/", 1)[1] for k in keys) == [".zarray", "0.0"], keys)
    R.check("no multipart upload left behind", s3.list_uploads(PREFIX + "/") == [], s3.list_uploads(PREFIX + "/"))


def missing_chunks(w):
    """A chunk that is not stored reads as the fill value, found missing by the request that reads it
    (zstd: the first range, which also says its size; blosc: the header's range), with no HEAD."""
    a = np.load(f"{w}/a.npy")
    want = a.copy()
    want[128:256, 128:256] = 0
    for name, fmt, codec, key in (("miss-zstd", "v2", "zstd", "1.1"), ("miss-blosc", "v3", "blosc", "c/1/1")):
        p = tally("put", f"{w}/a.npy", url(name), "--codec", codec, "--format", fmt, "--chunks", "128,128")
        R.check(f"{name}: put", p.returncode == 0, p.stderr)
        status, _, _ = s3.request("DELETE", f"{PREFIX}/{name}/{key}")
        R.check(f"{name}: chunk {key} deleted by this client", status == 204, status)
        g = tally("get", url(name), f"{w}/b.npy", "--threads", "2")
        R.check(f"{name}: the missing chunk reads as the fill value, the others as written",
                g.returncode == 0 and np.array_equal(np.load(f"{w}/b.npy"), want), g.stderr)


def blosc_one_chunk(w, big):
    """A 26 MB blosc chunk written block by block to S3, its blocks compressed on the threads and its
    header and offset table patched into the first part (kept until the commit): a multipart object
    that is numcodecs' own frame byte for byte (one thread: blocks in order), and zarr-python reads it."""
    import json
    import numcodecs
    import zarr
    from numcodecs import blosc
    blosc.use_threads = False
    for fmt in ("v2", "v3"):
        name = f"big-blosc-{fmt}"
        p = tally("put", f"{w}/big.npy", url(name), "--codec", "blosc", "--format", fmt, "--threads", "4")
        R.check(f"put one 26 MB blosc chunk ({fmt}) block by block", p.returncode == 0, p.stderr)
        key = f"{PREFIX}/{name}/" + ("0.0" if fmt == "v2" else "c/0/0")
        status, hdrs, body = s3.request("GET", key)
        R.check(f"stored as a multipart object (blosc {fmt})", status == 200 and
                re.search(r"-\d+\"?$", hdrs.get("ETag", "")), hdrs.get("ETag"))
        # the first part, kept for the table, is S3's least (5 MiB) where the frame outgrows a part, so that
        # the next go out as they fill: 4 parts for these ~24 MB, where a first part of 8 MiB made 3
        m = re.search(r"-(\d+)\"?$", hdrs.get("ETag", ""))
        want = 1 + -(-(len(body) - (5 << 20)) // (8 << 20))
        R.check(f"a 5 MiB first part, then 8 MiB parts: {want} parts (blosc {fmt}, {len(body)} bytes)",
                m is not None and int(m.group(1)) == want and want != -(-len(body) // (8 << 20)), hdrs.get("ETag"))
        meta_key = f"{PREFIX}/{name}/" + (".zarray" if fmt == "v2" else "zarr.json")
        _, _, meta = s3.request("GET", meta_key)
        if fmt == "v2":
            conf = json.loads(meta)["compressor"]
        else:
            conf = dict(next(c for c in json.loads(meta)["codecs"] if c["name"] == "blosc")["configuration"])
            conf["shuffle"] = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[conf["shuffle"]]
            conf = {"id": "blosc", "cname": conf["cname"], "clevel": conf["clevel"], "shuffle": conf["shuffle"],
                    "blocksize": conf.get("blocksize", 0)}
        ref = bytes(numcodecs.get_codec(conf).encode(big))
        R.check(f"numcodecs' frame byte for byte (blosc {fmt}, {len(body)} bytes)", body == ref,
                f"{len(body)} bytes, numcodecs {len(ref)}")
        if fmt == "v2":
            d = os.path.join(w, "big-blosc.zarr")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, ".zarray"), "wb") as f:
                f.write(meta)
            with open(os.path.join(d, "0.0"), "wb") as f:
                f.write(body)
            z = zarr.open(d, mode="r")
            R.check("zarr-python reads it", np.array_equal(z[...], big), "differs")


def blosc_chunk_requests(w):
    """Through a logging proxy: a blosc chunk among others, read whole, is one request (the whole frame
    from byte 0, its size in the reply; no HEAD, no header range first); a stored frame (clevel 0) is
    its first range and then its bytes; a region that wants part of a chunk reads its header and the
    blocks it needs."""
    a = np.load(f"{w}/a.npy")  # 300 x 500 float32 in chunks of 128 x 128: 12 chunks, 64 KiB each
    for name, codec in (("req-blosc", "blosc"), ("req-stored", "blosc:cname=lz4,clevel=0,shuffle=0")):
        p = tally("put", f"{w}/a.npy", url(name), "--codec", codec, "--chunks", "128,128")
        R.check(f"put {name}", p.returncode == 0, p.stderr)
    proxy = FaultProxy(os.environ["AWS_ENDPOINT_URL"])
    env = dict(os.environ, AWS_ENDPOINT_URL=proxy.url)
    chunk = lambda e: re.search(r"/\d+\.\d+$", e["target"].split("?")[0])
    try:
        for name in ("req-blosc", "req-stored"):
            proxy.log.clear()
            g = tally("get", url(name), f"{w}/b.npy", "--threads", "2", env=env)
            R.check(f"get {name} equal", g.returncode == 0 and np.array_equal(np.load(f"{w}/b.npy"), a), g.stderr)
            reqs = [e for e in proxy.log if chunk(e)]
            per = {}
            for e in reqs:
                per.setdefault(e["target"].rsplit("/", 1)[1], []).append(e["headers"].get("range", ""))
            inner = [k for k in per if k[0] != "2" and k[-1] != "3"]  # chunks the array's edges do not cut
            R.check(f"{name}: every chunk's first request is from byte 0, and no HEAD",
                    len(per) == 12 and all(v[0].startswith("bytes=0-") for v in per.values()) and
                    all(e["method"] == "GET" for e in reqs), per)
            if name == "req-blosc":
                R.check("req-blosc: one request per chunk", len(reqs) == 12, per)
            else:  # a stored frame's bytes are then read as an uncompressed chunk's: whole, or by rows at the edge
                R.check("req-stored: its first range, then its bytes (2 requests per inner chunk)",
                        len(inner) == 6 and all(len(per[k]) == 2 and per[k][1] == "bytes=16-65551" for k in inner), per)
        # chunks whose one-range ticket is over a small budget (forced: they run alone) and whose need,
        # known from the header, is within it: the part given back early must not leave the pool shut
        # (512 KiB uint8 chunks that compress: c-blosc's blocks of 128 KiB; the ticket before the header
        # counts its largest automatic block, 1 MiB: 1.86 MB over the 1.5 MiB budget; the need, 0.87 MB)
        n = 6 * 524288
        v = ((np.arange(n) // 7) % 251 + np.random.default_rng(9).integers(0, 4, n)).astype(np.uint8)
        np.save(f"{w}/v.npy", v)
        p = tally("put", f"{w}/v.npy", url("req-forced"), "--codec", "blosc", "--chunks", "524288")
        R.check("put req-forced (six 512 KiB blosc chunks)", p.returncode == 0, p.stderr)
        try:
            g = subprocess.run([TALLY, "get", url("req-forced"), f"{w}/v2.npy", "--force", "--memory-limit", "1572864"],
                               capture_output=True, text=True, timeout=60)
            done = (g.returncode, g.stderr)
        except subprocess.TimeoutExpired:
            done = (None, "no answer in 60 s: the pool stayed shut")
        R.check("req-forced: read under a 1.5 MiB budget (one-range tickets forced) ends, equal",
                done[0] == 0 and np.array_equal(np.load(f"{w}/v2.npy"), v), done)
        proxy.log.clear()
        g = tally("get", url("req-blosc"), f"{w}/b.npy", "--region", "0:100,0:100", env=env)
        R.check("req-blosc: a region within chunk 0.0 equal",
                g.returncode == 0 and np.array_equal(np.load(f"{w}/b.npy"), a[:100, :100]), g.stderr)
        reqs = [e for e in proxy.log if chunk(e)]
        R.check("req-blosc: a part of a chunk reads its header's range and then its blocks' (2 requests)",
                len(reqs) == 2 and reqs[0]["body_bytes"] < 4096, [(e["headers"].get("range"), e["body_bytes"])
                                                                  for e in reqs])
    finally:
        proxy.close()


def region_reads(w):
    """Through a logging proxy: which objects a region read asks for, and how much."""
    a = np.arange(400 * 600, dtype=np.int32).reshape(400, 600)
    np.save(f"{w}/r.npy", a)
    for codec in ("none", "zstd"):
        p = tally("put", f"{w}/r.npy", url(f"region-{codec}"), "--codec", codec, "--chunks", "100,200")
        R.check(f"put 4x3 chunks ({codec})", p.returncode == 0, p.stderr)
    proxy = FaultProxy(os.environ["AWS_ENDPOINT_URL"])
    env = dict(os.environ, AWS_ENDPOINT_URL=proxy.url)
    for codec in ("none", "zstd"):
        proxy.log.clear()
        g = tally("get", url(f"region-{codec}"), f"{w}/s.npy", "--region", "150:170,150:390", env=env)
        ok = g.returncode == 0 and np.array_equal(np.load(f"{w}/s.npy"), a[150:170, 150:390])
        R.check(f"region read ({codec}) equal", ok, g.stderr)
        gets = [e for e in proxy.log if e["method"] == "GET"]
        chunk_gets = {e["target"].rsplit("/", 1)[1] for e in gets if not e["target"].split("?")[0].endswith(
            (".zarray", "zarr.json", ".zattrs"))}
        R.check(f"({codec}) only the chunks the region touches: 1.0 and 1.1", chunk_gets == {"1.0", "1.1"}, chunk_gets)
        if codec == "none":
            ranged = [e for e in gets if e["target"].endswith(("1.0", "1.1"))]
            R.check("(none) range GETs", ranged and all("range" in e["headers"] for e in ranged),
                    [e["headers"].get("range") for e in ranged])
            fetched = sum(e["body_bytes"] for e in ranged)
            R.check("(none) fetching the region's bytes, not the chunks'", fetched == 20 * 240 * 4,
                    f"{fetched} bytes for a {20 * 240 * 4}-byte region of two {100 * 200 * 4}-byte chunks")
    proxy.log.clear()
    proxy.connections = 0
    g = tally("get", url("region-none"), f"{w}/s.npy", "--region", "0:400,0:300", env=env)
    R.check("connections are kept alive: far fewer than requests",
            g.returncode == 0 and len(proxy.log) > 100 and proxy.connections <= 34,
            f"{proxy.connections} connections for {len(proxy.log)} requests")
    proxy.close()


def big_chunk_reads(w):
    """How big chunks are read, seen through a logging proxy: a lone uncompressed chunk by parallel
    range GETs of at least 8 MiB; zstd chunks beside others by range GETs of at most the part size
    (decoded on the workers); a lone zstd chunk by one streamed GET; a lone blosc chunk by groups of
    blocks as large as half the memory budget allows over its lanes and the groups read ahead (up
    to 8 MiB), or of 1 MiB where the budget is small."""
    rng = np.random.default_rng(9)
    big = rng.random((6000, 2200), dtype=np.float32)  # two chunks of 26.4 MB, incompressible
    np.save(f"{w}/big.npy", big)
    for name, codec, chunks in (("lone-none", "none", "6000,2200"), ("pair-zstd", "zstd", "3000,2200"),
                                ("lone-zstd", "zstd", "6000,2200"), ("lone-blosc", "blosc", "6000,2200")):
        p = tally("put", f"{w}/big.npy", url(name), "--codec", codec, "--chunks", chunks)
        R.check(f"put {name}", p.returncode == 0, p.stderr)
    proxy = FaultProxy(os.environ["AWS_ENDPOINT_URL"])
    env = dict(os.environ, AWS_ENDPOINT_URL=proxy.url)
    try:
        for name in ("lone-none", "pair-zstd", "lone-zstd"):
            proxy.log.clear()
            g = tally("get", url(name), f"{w}/big2.npy", "--threads", "2", env=env)
            R.check(f"get {name} equal", g.returncode == 0 and np.array_equal(np.load(f"{w}/big2.npy"), big), g.stderr)
            gets = [e for e in proxy.log if e["method"] == "GET" and re.search(r"/\d+\.\d+$", e["target"])]
            sizes = sorted(e["body_bytes"] for e in gets)
            ranged = all("range" in e["headers"] for e in gets)
            if name == "lone-none":  # 52.8 MB in ranges of >= 8 MiB, at once
                R.check("lone chunk: split into range GETs of at least 8 MiB", ranged and 2 <= len(gets) <= 6 and
                        sum(sizes) == big.nbytes and sizes[0] >= 8 << 20, sizes)
            elif name == "pair-zstd":  # each 26.4 MB chunk in blocks of the 8 MiB part size
                R.check("zstd chunks beside others: range GETs of at most 8 MiB, several per chunk",
                        ranged and len(gets) >= 4 and max(sizes) == 8 << 20, sizes)
                heads = [e for e in proxy.log if e["method"] == "HEAD" and re.search(r"/\d+\.\d+$", e["target"])]
                firsts = [e for e in gets if e["headers"].get("range", "").startswith("bytes=0-")]
                R.check("zstd chunks beside others: no HEAD, each chunk's size from its first range (bytes=0-)",
                        not heads and len(firsts) == 2 and len(gets) == sum(-(-n // (8 << 20)) for n in
                                                                             chunk_sizes(f"{PREFIX}/pair-zstd")),
                        ([e["target"] for e in heads], [(e["target"], e["headers"].get("range")) for e in gets]))
            else:
                R.check("a lone zstd chunk: one streamed GET", len(gets) == 1 and "range" not in gets[0]["headers"],
                        [(e["body_bytes"], e["headers"].get("range")) for e in gets])
        # a lone blosc chunk (52.8 MB, blocks of 0.5 MiB or so): the header's range, then groups of blocks
        for limit, most, least in (("64M", 8 << 20, 2 << 20), ("8M", 1 << 20, 0)):
            proxy.log.clear()
            g = tally("get", url("lone-blosc"), f"{w}/big2.npy", "--threads", "2", "--memory-limit", limit, "--json",
                      env=env)
            R.check(f"get lone-blosc equal (budget {limit})",
                    g.returncode == 0 and np.array_equal(np.load(f"{w}/big2.npy"), big), g.stderr)
            res = json.loads(g.stdout) if g.returncode == 0 else {}
            gets = [e for e in proxy.log if e["method"] == "GET" and re.search(r"/0\.0$", e["target"])]
            heads = [e for e in proxy.log if e["method"] == "HEAD" and re.search(r"/0\.0$", e["target"])]
            R.check(f"lone blosc chunk, budget {limit}: no HEAD, its size from the first range's Content-Range",
                    not heads and gets and gets[0]["headers"].get("range", "").startswith("bytes=0-"),
                    [(e["method"], e["headers"].get("range")) for e in heads + gets[:1]])
            groups = sorted(e["body_bytes"] for e in gets)[1:]  # the first range: header and offset table
            R.check(f"lone blosc chunk, budget {limit}: range GETs of groups over {least >> 20} MiB, at most "
                    f"{most >> 20} MiB (and the blocks' pad), peak within half the budget and a lane's work",
                    groups and all("range" in e["headers"] for e in gets) and groups[-1] <= most + (64 << 10) and
                    groups[len(groups) // 2] > least and res.get("peak_extra_bytes", 1 << 40) <= (
                        int(limit[:-1]) << 19) + (8 << 20),
                    f"{len(gets)} GETs, sizes {groups[:3]}..{groups[-3:]}, peak {res.get('peak_extra_bytes')}")
    finally:
        proxy.close()


def parts_in_flight(w):
    """A lone chunk's S3 writer uploads as many copied parts at once as half the memory budget holds
    (less the part being filled and, for blosc, the first part it keeps for the table): seen through a
    proxy that holds every UploadPart but the first (blosc's, sent at the commit) 0.3 s, counting how
    many it holds at once."""
    held = {"now": 0, "most": 0}
    lock = threading.Lock()

    def plan(n, method, target, headers):
        if method == "PUT" and "partNumber=" in target and "partNumber=1&" not in target + "&":
            with lock:
                held["now"] += 1
                held["most"] = max(held["most"], held["now"])
            time.sleep(0.3)
            with lock:
                held["now"] -= 1
        return None

    proxy = FaultProxy(os.environ["AWS_ENDPOINT_URL"], plan)
    env = dict(os.environ, AWS_ENDPOINT_URL=proxy.url)
    try:
        # 52.8 MB of random floats in one chunk, 8 MiB parts: 64 MiB holds 4 parts (blosc: the kept first,
        # one filling, 2 uploading; zstd: one filling, 3 uploading); 16 MiB holds 1 (1 uploading)
        for codec, limit, want in (("blosc", "64M", 2), ("zstd", "64M", 3), ("blosc", "16M", 1)):
            held["most"] = 0
            name = f"inflight-{codec}-{limit}"
            p = tally("put", f"{w}/big.npy", url(name), "--codec", codec, "--chunks", "6000,2200",
                      "--memory-limit", limit, "--part-size", "8M", env=env)
            R.check(f"lone {codec} chunk, budget {limit}: {want} parts uploading at once at most, and reached",
                    p.returncode == 0 and held["most"] == want, f"{held['most']} at once; {p.stderr}")
    finally:
        proxy.close()


def tls(w):
    here = os.path.dirname(os.path.abspath(__file__))
    cert = f"{here}/tls/localhost.pem"
    proxy = FaultProxy(os.environ["AWS_ENDPOINT_URL"], tls=(cert, f"{here}/tls/localhost.key"))
    env = dict(os.environ, AWS_ENDPOINT_URL=proxy.url)
    env.pop("AWS_CA_BUNDLE", None)
    env.pop("TALLY_S3_CA_BUNDLE", None)
    g = tally("get", url("v2-zstd"), f"{w}/t.npy", env=env)
    R.check("TLS: an endpoint with an untrusted certificate is refused",
            g.returncode == 2 and re.search(r"certificate|SSL", g.stderr), g.stderr)
    for var in ("AWS_CA_BUNDLE", "TALLY_S3_CA_BUNDLE"):
        g = tally("get", url("v2-zstd"), f"{w}/t.npy", env=dict(env, **{var: cert}))
        R.check(f"TLS: trusted with {var}", g.returncode == 0 and np.array_equal(np.load(f"{w}/t.npy"),
                                                                                np.load(f"{w}/a.npy")), g.stderr)
    proxy.close()


def errors(w):
    np.save(f"{w}/e.npy", np.zeros((10, 10), dtype=np.float32))
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    wrong = "WrongSecret" + secret[::-1]
    env = dict(os.environ, AWS_SECRET_ACCESS_KEY=wrong)
    for cmd in (["put", f"{w}/e.npy", url("denied")], ["get", url("v2-zstd"), f"{w}/x.npy"]):
        p = tally(*cmd, env=env)
        out = p.stdout + p.stderr
        R.check(f"wrong secret: {cmd[0]} exits 2 with SignatureDoesNotMatch",
                p.returncode == 2 and "SignatureDoesNotMatch" in p.stderr, (p.returncode, p.stderr))
        R.check(f"wrong secret: {cmd[0]} prints no secret and no signature",
                wrong not in out and secret not in out and "Signature=" not in out and "AWS4-HMAC" not in out, out)
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    p = tally("get", url("v2-zstd"), f"{w}/x.npy", env=env)
    R.check("no credentials: exit 2 naming the variables", p.returncode == 2 and "AWS_ACCESS_KEY_ID" in p.stderr,
            p.stderr)
    for cmd in (["put", f"{w}/e.npy", "s3://tally-no-such-bucket/a"], ["get", "s3://tally-no-such-bucket/a", f"{w}/x.npy"]):
        p = tally(*cmd)
        R.check(f"missing bucket: {cmd[0]} exits 2 naming NoSuchBucket", p.returncode == 2 and "NoSuchBucket" in p.stderr,
                (p.returncode, p.stderr))
    p = tally("get", url("never-written"), f"{w}/x.npy")
    R.check("missing array: exit 2", p.returncode == 2 and "no Zarr array" in p.stderr, p.stderr)


def shard_index(key, n, start, size):
    """The (offset, nbytes) pairs of a shard's index, its CRC-32C checked here (crc32c of the spec)."""
    ib = 16 * n + 4
    off = 0 if start else size - ib
    status, _, body = s3.request("GET", key, headers={"Range": f"bytes={off}-{off + ib - 1}"})
    if status != 206 or len(body) != ib:
        return None
    crc = 0xFFFFFFFF
    for byte in body[:16 * n]:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    if (crc ^ 0xFFFFFFFF) != int.from_bytes(body[16 * n:], "little"):
        return None
    return [(int.from_bytes(body[16 * i:16 * i + 8], "little"), int.from_bytes(body[16 * i + 8:16 * i + 16], "little"))
            for i in range(n)]


def sharded(w):
    """Sharded arrays on S3: both index locations, shards over the part size, region reads by range."""
    rng = np.random.default_rng(12)
    a = rng.random((3000, 2000), dtype=np.float32)
    a[:500, :500] = 0  # one all-fill inner chunk: not stored
    np.save(f"{w}/sh.npy", a)
    for loc in ("end", "start"):
        for codec in ("none", "zstd"):
            name = f"shard-{loc}-{codec}"
            p = tally("put", f"{w}/sh.npy", url(name), "--format", "v3", "--shards", "2000,2000", "--chunks",
                      "500,500", "--index-location", loc, "--codec", codec, "--part-size", "5M")
            if not R.check(f"sharded put ({loc}, {codec}): 16 MB shards over a 5 MiB part", p.returncode == 0,
                           p.stderr):
                continue
            g = tally("get", url(name), f"{w}/shb.npy")
            R.check(f"sharded get ({loc}, {codec}) equal",
                    g.returncode == 0 and np.array_equal(np.load(f"{w}/shb.npy"), a), g.stderr)
            key = f"{PREFIX}/{name}/c/0/0"
            status, hdrs, _ = s3.request("HEAD", key)
            size = int(hdrs.get("Content-Length", "0"))
            idx = shard_index(key, 16, loc == "start", size) if status == 200 else None
            ok = idx is not None and idx[0] == (2**64 - 1, 2**64 - 1)
            stored = sorted(e for e in (idx or [])[1:])
            lo, hi = (16 * 16 + 4, size) if loc == "start" else (0, size - 16 * 16 - 4)
            ok = ok and len(stored) == 15 and stored[0][0] >= lo and stored[-1][0] + stored[-1][1] <= hi
            ok = ok and all(stored[i][0] + stored[i][1] <= stored[i + 1][0] for i in range(14))
            R.check(f"({loc}, {codec}) index: checksum, the all-fill inner chunk 2^64-1, 15 inside the data, "
                    "none overlapping", ok, f"{size} bytes, {idx and idx[:3]}")
            R.check(f"({loc}, {codec}) a multipart object", re.search(r"-\d+\"?$", hdrs.get("ETag", "")),
                    hdrs.get("ETag"))
    proxy = FaultProxy(os.environ["AWS_ENDPOINT_URL"])
    env = dict(os.environ, AWS_ENDPOINT_URL=proxy.url)
    g = tally("get", url("shard-end-zstd"), f"{w}/shr.npy", "--region", "750:1250,750:1250", "--json", env=env)
    R.check("sharded region read equal", g.returncode == 0 and np.array_equal(np.load(f"{w}/shr.npy"),
                                                                            a[750:1250, 750:1250]), g.stderr)
    key = f"{PREFIX}/shard-end-zstd/c/0/0"
    gets = [e for e in proxy.log if e["method"] == "GET" and e["target"].split("?")[0].endswith("c/0/0")]
    status, hdrs, _ = s3.request("HEAD", key)
    idx = shard_index(key, 16, False, int(hdrs.get("Content-Length", "0")))
    want = sum(idx[i][1] for i in (5, 6, 9, 10)) + 16 * 16 + 4 if idx else -1
    fetched = sum(e["body_bytes"] for e in gets)
    R.check("the region's 4 inner chunks and the index are all it GETs (ranges)",
            fetched == want and all("range" in e["headers"] for e in gets),
            f"{fetched} bytes in {len(gets)} GETs, the index and inner chunks 5, 6, 9, 10 hold {want}")
    proxy.close()
    R.check("no multipart upload left behind by sharded writes", s3.list_uploads(PREFIX + "/") == [],
            s3.list_uploads(PREFIX + "/"))


class SuffixProxy(FaultProxy):
    """Answers a GET of a suffix range (bytes=-N) as a server without them would: "whole" sends the whole
    object with a 200, "refuse" a 416 InvalidRange; everything else goes to RGW."""

    def __init__(self, upstream, mode):
        super().__init__(upstream, plan=lambda n, method, target, h: (
            mode if method == "GET" and h.get("range", "").startswith("bytes=-") else None))

    def act(self, action, sock, entry, headers, body):
        key = urllib.parse.unquote(entry["target"].split("?")[0][len(f"/{BUCKET}/"):])
        if action == "whole":
            status, _, data = s3.request("GET", key)
            reason = b"OK" if status == 200 else b"Error"
        else:
            status, reason, data = 416, b"Requested Range Not Satisfiable", (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRange</Code></Error>')
        sock.sendall(b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n\r\n" % (status, reason, len(data)) + data)
        entry["status"], entry["body_bytes"] = status, len(data)
        return True


def shard_requests(w):
    """One request per shard index: store_read_requests (the --json result) and the GETs on the wire."""
    rng = np.random.default_rng(23)
    a = rng.random((1000, 1000), dtype=np.float32)
    a[:250, :250] = 0  # one all-fill inner chunk: not stored, not read
    np.save(f"{w}/sr.npy", a)
    # 4 shards of 4 inner chunks; none: each stored inner chunk its own group (read straight into the
    # output); zstd: a shard's 4 inner chunks (under 8 MiB together) one group
    groups = {"none": 15, "zstd": 4}
    for codec in ("none", "zstd"):
        name = f"sr-{codec}"
        p = tally("put", f"{w}/sr.npy", url(name), "--format", "v3", "--shards", "500,500", "--chunks", "250,250",
                  "--codec", codec)
        if not R.check(f"sharded put for the request count ({codec})", p.returncode == 0, p.stderr):
            continue
        for mode, per_index in ((None, 1), ("whole", 2), ("refuse", 3)):
            proxy = SuffixProxy(os.environ["AWS_ENDPOINT_URL"], mode) if mode else FaultProxy(
                os.environ["AWS_ENDPOINT_URL"])
            g = tally("get", url(name), f"{w}/srb.npy", "--json", env=dict(os.environ, AWS_ENDPOINT_URL=proxy.url))
            proxy.close()
            res = json.loads(g.stdout) if g.returncode == 0 else {}
            ok = g.returncode == 0 and np.array_equal(np.load(f"{w}/srb.npy"), a)
            data = [e for e in proxy.log if "/c/" in e["target"]]
            want = 4 * per_index + groups[codec]
            what = mode or "RGW"
            R.check(f"sharded read ({codec}, {what}) equal", ok, g.stderr)
            R.check(f"({codec}, {what}) store_read_requests = 4 shards x {per_index} + {groups[codec]} groups",
                    res.get("store_read_requests") == want and len(data) == want,
                    f"store_read_requests {res.get('store_read_requests')}, {len(data)} requests on the wire, "
                    f"want {want}")
            if mode is None:
                suffix = [e for e in data if e["headers"].get("range") == f"bytes=-{16 * 4 + 4}"]
                R.check(f"({codec}) each index one suffix GET, no HEAD",
                        len(suffix) == 4 and not any(e["method"] == "HEAD" for e in data),
                        [(e["method"], e["headers"].get("range")) for e in data][:8])
    # an empty shard object: RGW refuses its suffix range (416); the read says what is wrong
    status, _, _ = s3.request("PUT", f"{PREFIX}/sr-zstd/c/0/0", body=b"")
    g = tally("get", url("sr-zstd"), f"{w}/srb.npy")
    R.check("an empty shard object: an error naming its size against the index's", status == 200 and
            g.returncode != 0 and "0 bytes, fewer than its index's 68" in g.stderr, g.stderr)


def main():
    with tempfile.TemporaryDirectory() as w:
        try:
            roundtrips(w)
            missing_chunks(w)
            blosc_chunk_requests(w)
            sharded(w)
            shard_requests(w)
            region_reads(w)
            big_chunk_reads(w)
            parts_in_flight(w)
            tls(w)
            errors(w)
        finally:
            s3.delete_prefix(PREFIX + "/")
            R.check("the test's objects are deleted", s3.list_keys(PREFIX + "/") == [])
    R.finish()


main()
