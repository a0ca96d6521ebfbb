#!/usr/bin/python3
"""Write the fuzzers' seed corpora into tests/fuzz/corpus/NAME (committed; run again to regenerate).

Seeds are what real writers write: zarr-python 2.13 and numcodecs 0.11 (.zarray, blosc, zstd, gzip
and zlib chunks), numpy (.npy), zarrita's zarr.json (as tests/meta/test_meta_v3.c holds it), S3's XML replies,
the AWS SigV4 suite's requests (tests/data/sigv4), the project's scenario matrices; and a few of the
inputs issue 15's probe found (bare NaN fill values, shapes that overflow).
"""
import glob
import io
import json
import os
import shutil
import struct

import numcodecs
import numpy as np
import zarr

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def meta_v2(tmp):
    cases = {
        "blosc-f8": dict(shape=(1000, 1000), chunks=(100, 100), dtype="f8"),
        "zstd-i2-be": dict(shape=(7, 3), chunks=(4, 3), dtype=">i2", compressor=numcodecs.Zstd(level=2),
                           fill_value=42, dimension_separator="/"),
        "none-u1": dict(shape=(10,), chunks=(5,), dtype="u1", compressor=None, fill_value=None),
        "nan-f4": dict(shape=(3, 4, 5), chunks=(1, 2, 5), dtype="<f4", fill_value=float("nan")),
        "bool": dict(shape=(8,), chunks=(8,), dtype="bool", fill_value=True),
        "u8-big": dict(shape=(2,), chunks=(1,), dtype="<u8", fill_value=2 ** 64 - 1),
        "scalar": dict(shape=(), chunks=(), dtype="<i4", fill_value=0),
    }
    for name, kw in cases.items():
        p = os.path.join(tmp, name)
        zarr.open(p, mode="w", **kw)
        put("meta_v2", name, open(os.path.join(p, ".zarray"), "rb").read())
    put("meta_v2", "inf", '{"zarr_format": 2, "shape": [4], "chunks": [2], "dtype": "<f8", "compressor": null, '
                          '"fill_value": -Infinity, "order": "C", "filters": null}')
    put("meta_v2", "issue15-d1", '{"fill_value":NaN,"fill_value":NaN}')
    put("meta_v2", "issue15-d2", '{"zarr_format": 2, "shape": [2305843009213693952, 8], "chunks": [1, 1], '
                                 '"dtype": "<f8", "compressor": null, "fill_value": 0, "order": "C", "filters": null}')
    put("meta_v2", "filters", '{"zarr_format": 2, "shape": [10], "chunks": [5], "dtype": "<f4", "compressor": null,'
                              ' "fill_value": 0, "order": "C", "filters": [{"id": "delta", "dtype": "<f4"}]}')


def meta_v3():
    src = open(os.path.join(ROOT, "tests", "meta", "test_meta_v3.c")).read()
    # the C string literals of the zarrita documents the meta tests hold
    import re
    for m in re.finditer(r'static const char (zarrita_\w+)\[\] =\s*((?:"(?:[^"\\]|\\.)*"\s*)+);', src):
        text = "".join(bytes(s, "utf-8").decode("unicode_escape") for s in re.findall(r'"((?:[^"\\]|\\.)*)"', m[2]))
        put("meta_v3", m[1], text)
    doc = {"zarr_format": 3, "node_type": "array", "shape": [100, 37], "data_type": "uint16",
           "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [10, 10]}},
           "chunk_key_encoding": {"name": "v2", "configuration": {"separator": "."}}, "fill_value": "0x7fc0",
           "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}], "attributes": {"a": [1, {"b": None}]},
           "dimension_names": ["y", "x"]}
    put("meta_v3", "v2-keys-hex-fill", json.dumps(doc))


def npy():
    for name, a in {"f4-2d": np.arange(12, dtype="<f4").reshape(3, 4), "u1": np.arange(5, dtype="u1"),
                    "scalar": np.array(3.5), "empty": np.zeros((0, 4), dtype=">i8"), "bool": np.ones(3, bool),
                    "3d": np.zeros((2, 1, 3), dtype="<u2")}.items():
        b = io.BytesIO()
        np.save(b, a)
        put("npy", name, b.getvalue())
    h = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387929,), }"
    h += " " * (118 - len(h)) + "\n"
    put("npy", "issue15-d3", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + bytes(400))


def chunks():
    rng = np.random.default_rng(15)
    data = {"f4": rng.random(300, dtype=np.float32), "i2": np.arange(1000, dtype="<i2"), "zeros": np.zeros(64, "u1")}
    for cname in ("lz4", "zstd", "blosclz", "zlib"):
        for shuffle in (0, 1, 2):
            for name, a in data.items():
                enc = numcodecs.Blosc(cname=cname, clevel=5, shuffle=shuffle).encode(a)
                put("blosc", f"{cname}-{shuffle}-{name}", struct.pack(">H", a.nbytes) + enc)
    for level in (1, 3, 19):
        for name, a in data.items():
            put("zstd", f"{level}-{name}", bytes([7, 200, 1, 64]) + numcodecs.Zstd(level=level).encode(a))
    magic = b"\x28\xb5\x2f\xfd"
    block = struct.pack("<I", (64 << 3) | 1)[:3] + bytes(64)
    put("zstd", "issue15-d10-no-size", bytes(4) + magic + b"\x00\x00" + block)
    put("zstd", "issue15-d10-window", bytes(4) + magic + b"\x80\xf8" + struct.pack("<I", 64) + block)
    gzip_chunks(data)


def gzip_chunks(data):
    # fuzz_gzip's head: 4 piece sizes, the format (bit 0: zlib), zlib's decoded size (24 bits, little-endian)
    for level in (0, 1, 9):
        for name, a in data.items():
            put("gzip", f"gzip-{level}-{name}", bytes([7, 200, 1, 64, 0, 0, 0, 0]) + numcodecs.GZip(level=level).encode(a))
            put("gzip", f"zlib-{level}-{name}",
                bytes([7, 200, 1, 64, 1]) + struct.pack("<I", a.nbytes)[:3] + numcodecs.Zlib(level=level).encode(a))


def s3_xml():
    ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    put("s3_xml", "error", '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified'
                           ' key does not exist.</Message><Key>a/.zarray</Key><RequestId>tx0</RequestId></Error>')
    put("s3_xml", "list", f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult {ns}><Name>tally</Name>'
                          '<Prefix>a/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true'
                          '</IsTruncated><NextContinuationToken>tok==</NextContinuationToken><Contents><Key>a/0.0'
                          '</Key><Size>4</Size></Contents><Contents><Key>a/.zarray</Key></Contents></ListBucketResult>')
    put("s3_xml", "uploads", f'<ListMultipartUploadsResult {ns}><Bucket>tally</Bucket><IsTruncated>false'
                             '</IsTruncated><NextKeyMarker>a/0</NextKeyMarker><NextUploadIdMarker>2~x'
                             '</NextUploadIdMarker><Upload><Key>a/0.0</Key><UploadId>2~abc</UploadId></Upload>'
                             '<Upload><Key>a/1.0</Key></Upload></ListMultipartUploadsResult>')
    put("s3_xml", "initiate", f'<InitiateMultipartUploadResult {ns}><Bucket>tally</Bucket><Key>a/0</Key>'
                              '<UploadId>2~xyz</UploadId></InitiateMultipartUploadResult>')
    put("s3_xml", "complete-error", '<?xml version="1.0"?>\n<Error><Code>InternalError</Code><Message>We encountered'
                                    ' an internal error.\nPlease try again.</Message></Error>')


def sigv4():
    for req in sorted(glob.glob(os.path.join(ROOT, "tests", "data", "sigv4", "v4", "*", "request.txt"))):
        put("sigv4", os.path.basename(os.path.dirname(req)), open(req, "rb").read())


def matrix():
    put("matrix", "matrix.json", open(os.path.join(ROOT, "scenarios", "matrix.json"), "rb").read())
    put("matrix", "small.json", open(os.path.join(ROOT, "tests", "gate", "small.json"), "rb").read())


def results():
    """A two-cell run of tests/gate/small.json (tally run, its trace and timeline cut short:
    tests/data/results-small.json), and issue 25's reproducers made from it: markup in names
    (accepted, escaped), cells that were not measured, overflowing and mistyped figures, a cell twice."""
    base = json.load(open(os.path.join(ROOT, "tests", "data", "results-small.json")))
    put("results", "run.json", json.dumps(base, indent=1))

    def variant(name, edit):
        d = json.loads(json.dumps(base))
        edit(d)
        put("results", name, json.dumps(d, indent=1))

    evil = "<svg onload=alert(1)>"

    def names(d):
        a = d["results"][0]
        a["impl"], a["scenario"] = evil, "x' onmouseover='y"
        a["stage_time"][evil] = dict(next(iter(a["stage_time"].values())))
        a["bottleneck"]["sentence"] = "</p><img src=x onerror=alert(5)>"
        a["timeline"]["columns"][-1] = "</script><!--<script>"

    def unmeasured(d):
        d["results"][1].update(status="failed", reason="adapter said \x1b[31mno\n<b>")
        d["results"].append({"scenario": "write-s3-none-v2-tiles", "status": "skipped", "reason": "no S3 endpoint"})

    variant("issue25-n6-names.json", names)
    variant("not-measured.json", unmeasured)
    variant("issue25-n7-copies.json", lambda d: d["results"][0].update(extra_copies=1e308))
    variant("issue25-n7-ratio.json", lambda d: d["results"][0].update(peak_extra_ratio=1e308))
    variant("issue25-n7-twice.json", lambda d: d["results"].append(d["results"][0]))
    variant("issue25-n8-time.json", lambda d: d["results"][0]["timeline"]["samples"][-1].__setitem__(0, 1e308))
    variant("issue25-n9-control.json", lambda d: d["results"][0].update(scenario="a\x1b]0;b\x07"))


def main():
    import tempfile
    shutil.rmtree(OUT, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        meta_v2(tmp)
    meta_v3()
    npy()
    chunks()
    s3_xml()
    sigv4()
    matrix()
    results()
    for d in sorted(os.listdir(OUT)):
        print(f"{d}: {len(os.listdir(os.path.join(OUT, d)))} seeds")


if __name__ == "__main__":
    main()
