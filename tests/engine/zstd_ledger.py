#!/usr/bin/python3
"""The copy ledger of tally's zstd writes and reads against another instrument: the preload's memcpy counter.

  zstd_ledger.py TALLY [--skip WHY]    one line per check; exit 1 on a failure, 77 when it cannot run

Each cell is a `tally run` of one zstd write or read (16 MiB of random float32, level 1) under `tally
profile`, which counts every memcpy/memmove libzstd calls, with its call stack. libzstd's own block
work (literals of random floats, raw blocks: under ZSTD_compressContinue, the same 1.01 x array a
one-shot ZSTD_compress2 makes) is the codec's, not a copy of the chunk; every other byte libzstd
copies on the way from tly_zstd_encode_stream is a copy of the payload, and must be in the ledger:

- chunks that are one run each (threads 1): libzstd reads them in place, and copies nothing else (the
  buffered streaming tally used before copied 1.0 x array in and ~0.9 out, none of it in the ledger);
- strided chunks (threads 1): libzstd gathers their rows into its window buffer, 1.0 in the ledger;
- one chunk on libzstd's workers (threads 2): their round buffer and their jobs' output, 1 + the
  frame's share, in the ledger.
In each, the ledger's encode bytes equal the counter's within 0.03 x array (the workers' case: 0.05,
since they also move their window's prefix when their round buffer wraps, which the ledger cannot
see from outside; measured 1.918 against the ledger's 1.891). Reads: tally's own memcpys are the
blocks it stitches (a compressed block that arrives split), all in the ledger's decode; libzstd
copies nothing into its input buffer, and out of its window (a strided chunk: straight into the
runs) exactly the ledger's scatter. The profile takes every copy's stack (TALLY_PROFILE_COPY_MIN=1).
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

SHAPE = [128, 32768]
ARRAY = SHAPE[0] * SHAPE[1] * 4
# rows: 4 chunks of whole rows (one run each); tiles: 2 chunks of 128 runs of 64 KiB (the preload takes
# the stacks of copies from TLY_MEM_LARGE, 64 KiB, on; libzstd gathers each run in one piece)
LAYOUTS = {"rows": [32, 32768], "tiles": [128, 16384], "one": [128, 32768]}


def scenarios(path, threads):
    json.dump({"about": "zstd_ledger.py's cells",
               "axes": {"op": ["write", "read"], "store": ["local"], "codec": ["zstd"], "format": ["v2"],
                        "layout": list(LAYOUTS)},
               "layouts": {k: {"dtype": "<f4", "shape": SHAPE, "chunks": c} for k, c in LAYOUTS.items()},
               "codecs": {"zstd": "zstd:level=1"}, "threads": threads, "memory_limit": 64 << 20, "budgets": []},
              open(path, "w"))


def libzstd_copies(folded, under, besides):
    """Bytes libzstd copied in stacks through a frame named @p under, none through @p besides."""
    total = 0
    for line in open(folded):
        frames, _, n = line.rstrip("\n").rpartition(" ")
        f = frames.split(";")
        if not any(x.startswith(under) for x in f) or any(x.startswith(besides) for x in f):
            continue
        if "libzstd" not in f[-1] and not f[-1].startswith("ZSTD_"):
            continue  # a copy of tally's, if any: not libzstd's
        total += int(n)
    return total


def stream_copies(folded):
    """Bytes libzstd copied under tly_zstd_encode_stream, outside its block work."""
    return libzstd_copies(folded, "tly_zstd_encode_stream", ("ZSTD_compressContinue", "ZSTD_compressEnd"))


def cell(tally, w, op, layout, threads):
    """(the ledger's stages' copied bytes, the profile) of one cell run under tally profile."""
    sc = os.path.join(w, f"sc{threads}.json")
    scenarios(sc, threads)
    prof, out = os.path.join(w, f"p-{op}-{layout}"), os.path.join(w, f"o-{op}-{layout}")
    p = t.run(tally, "profile", "--json=" + prof + ".json", "--out", prof, "--array-bytes", str(ARRAY), "--",
              tally, "run", "--impl", "tally", "--scenarios", sc, "--filter", f"^{op}-.*-{layout}$", "--out", out,
              env=dict(os.environ, TALLY_PROFILE_COPY_MIN="1"))  # every copy's stack, not only from 64 KiB on
    if not t.check(f"{op} {layout}: ran under tally profile", p.returncode == 0, p.stderr[-400:]):
        return None
    r = json.load(open(os.path.join(out, "results.json")))["results"]
    if not t.check(f"{op} {layout}: one cell", len(r) == 1, len(r)):
        return None
    ledger = {k: v["copy_bytes"] for k, v in r[0]["stages"].items()}
    return ledger, prof


def copied(prof, lib):
    """The bytes the profile counted @p lib copying (every memcpy/memmove, any size)."""
    return json.load(open(prof + ".json"))["libraries"].get(lib, {}).get("copied_bytes", 0)


def main():
    if "--skip" in sys.argv:
        t.skip("the ledger against the memcpy counter", sys.argv[sys.argv.index("--skip") + 1])
        sys.exit(77)
    tally = os.path.abspath(sys.argv[1])
    w = tempfile.mkdtemp(prefix="tally-zstd-ledger-")
    try:
        rows, tiles, one = (cell(tally, w, "write", "rows", 1), cell(tally, w, "write", "tiles", 1),
                            cell(tally, w, "write", "one", 2))
        if rows:
            n = stream_copies(os.path.join(rows[1], "copies.folded"))
            t.check("write, chunks that are one run: libzstd copies none of their bytes outside its block work "
                    "(< 0.01 x array), and the ledger says 0", n < 0.01 * ARRAY and rows[0]["encode"] == 0,
                    f"counter {n / ARRAY:.3f}, ledger {rows[0]['encode']}")
        if tiles:
            n = stream_copies(os.path.join(tiles[1], "copies.folded"))
            t.check("write, strided chunks: libzstd gathers them once (1.00 +- 0.03 x array), and the ledger "
                    "says so", abs(n - ARRAY) <= 0.03 * ARRAY and abs(tiles[0]["encode"] - n) <= 0.03 * ARRAY,
                    f"counter {n / ARRAY:.3f}, ledger {tiles[0]['encode'] / ARRAY:.3f}")
        if one:
            n = stream_copies(os.path.join(one[1], "copies.folded"))
            # when their round buffer wraps, the workers also move the window's prefix to its start: a
            # few hundredths of the array the ledger, which sees only what goes in and comes out, misses
            t.check("write, one chunk on libzstd's workers: the round buffer and the jobs' output (more than "
                    "1.5 x array), the ledger within 0.05 x array of the counter (the prefix moves)",
                    n > 1.5 * ARRAY and abs(one[0]["encode"] - n) <= 0.05 * ARRAY,
                    f"counter {n / ARRAY:.3f}, ledger {one[0]['encode'] / ARRAY:.3f}")
        # reads (each cell writes its array first, in the same profile): tally's own memcpys are the
        # blocks it stitches (decode); libzstd's copy out of its window into a strided chunk's runs is
        # the scatter the ledger notes for it, and the only copy of libzstd's a read adds beyond its
        # block work, which is the same for both layouts' bytes
        r_rows, r_tiles = cell(tally, w, "read", "rows", 1), cell(tally, w, "read", "tiles", 1)
        for name, r in (("rows", r_rows), ("tiles", r_tiles)):
            if r:
                mine = copied(r[1], "tally")
                t.check(f"read {name}: tally's memcpys are the ledger's stitched blocks (decode), "
                        "+- 0.005 x array", abs(mine - r[0]["decode"]) <= 0.005 * ARRAY and r[0]["decode"] > 0,
                        f"counter {mine / ARRAY:.4f}, ledger {r[0]['decode'] / ARRAY:.4f}")
        for name, r in (("rows", r_rows), ("tiles", r_tiles)):
            if r:
                n = libzstd_copies(os.path.join(r[1], "copies.folded"), "ZSTD_decompressStream",
                                   ("ZSTD_decompressContinue",))
                t.check(f"read {name}: libzstd copies nothing into its input buffer, and out of its window only "
                        "what the ledger's scatter says (+- 0.03 x array)",
                        abs(n - r[0]["scatter"]) <= 0.03 * ARRAY and r[0]["scatter"] == (ARRAY if name == "tiles" else 0),
                        f"counter {n / ARRAY:.3f}, ledger {r[0]['scatter'] / ARRAY:.3f}")
    finally:
        shutil.rmtree(w, ignore_errors=True)
    sys.exit(t.summary())


if __name__ == "__main__":
    main()
