#!/usr/bin/python3
"""Any stack under tally's instrument: `tally profile -- CMD` and `tally run --impl`.

  profile.py TALLY PLANTED_EXE     prints one line per check; exits 1 on any failure, 77 when tracking is off

- a 100 MB numpy array copied once (b = a.copy()), whole process: 1 extra copy, numpy holding both
  arrays at the peak, a memcpy volume of 1.00 array charged to numpy;
- time: without marks it is said not to be attributable; with the marks' push/pop stages each stage
  gets its wall time (a sleep in put is at least the sleep), the stages' sum within the window's;
- a planted C library that copies half the array and keeps a half-array block: 0.50 +- 0.02 of both
  charged to it, and a budget on that library fails the profile (exit 1);
- bad input: a command not found (127), killed by a signal (128 + signal), a static binary (untracked,
  exit 2), a program with an allocator of its own (untracked, exit 2), each with a clear message; the
  program's own exit status passed through;
- the matrix's implementations on memray-array's one-chunk cells: zarr-python's extra copies as
  counted by hand (write 0 / 2 / 2, read 1 / 1 / 1 for none / blosc / zstd), and each peak extra
  between what zarr-python must hold at its peak (below) and that plus 16 MiB; coverage of 0.99 or
  more in every cell another stack ran, and an adapter that prints garbage: that cell failed with the
  reason, every other cell kept.

Why a floor and an allowance, not one figure (issue 27): the headline peak counts requested bytes (as
heaptrack does), the reserved one jemalloc's usable bytes (size classes: 4 a doubling, so a
100,000,033-byte request holds 96 MiB = 100,663,296 bytes); each is held to its floor. What
zarr-python must hold at its peak is fixed by the format: a write keeps the compressor's output buffer
(blosc: the input's size + 16, zstd: ZSTD_compressBound) and the bytes object it is cut down to (the
encoded chunk); a read keeps the chunk file's bytes beside the output. Those buffers are the floor
(in size classes: write 0 / 2.013 / 2.013, read 1.007 x array), computed here from the encoded sizes that
tally's own cells of the same data report (store_bytes_written). Above the floor is what is not payload:
the interpreter's small objects, c-blosc's per-call temporaries (3.7 MB), the adapter's tracemalloc
tables. Measured on this 2-core machine, 10 runs quiet and 10 under two concurrent scripts/test
(load average 10-19): every cell gave the same figure to 6 digits in all 20 (write 0.00114 / 2.05096
/ 2.01424, read 1.01353 / 1.01357 / 1.01451), 0.001-0.038 x array above its floor; the peak does not
move with load. A run on another machine measured 0.048 above the floor for both the write none and
the write zstd cell (the same 4.8 MB in both: not a size class, not load, something that process
held at its peak), which the old test's 0.05 bound only just met or missed.
The allowance is the line every report already draws between a fixed working set and a copy (16 MiB,
`overhead_bound`): more than that at the peak would be a copy-sized defect, and is caught; less than
the floor would be the instrument losing a buffer the format requires, and is caught too.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

ARRAY = 100_000_000
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
NUMPY_COPY = ("import numpy as np\n"
              "a = np.random.default_rng(0).random(25_000_000, dtype=np.float32)\n"
              "b = a.copy()\n"
              "assert float(b[-1]) == float(a[-1])\n")

NUMPY_TRANSPOSED = ("import numpy as np\n"
                    "a = np.random.default_rng(0).random(25_000_000, dtype=np.float32).reshape(5000, 5000)\n"
                    "b = np.ascontiguousarray(a.T)\n"
                    "assert float(b[0, -1]) == float(a[-1, 0])\n")


def profile(tally, w, *args):
    p = t.run(tally, "profile", "--out", os.path.join(w, "prof"), "--json", *args)
    try:
        r = json.loads(p.stdout[p.stdout.index("{"):])
    except ValueError:
        r = None
    return p, r


def numpy_copy(tally, w):
    p, r = profile(tally, w, "--array-bytes", str(ARRAY), "--", "/usr/bin/python3", "-c", NUMPY_COPY)
    t.check("tally profile -- python3 (numpy copy): exit 0 and a result", p.returncode == 0 and r, p.stderr[-400:])
    if not r:
        return
    numpy = r["libraries"].get("numpy", {})
    t.check(f"extra copies 1 (peak extra {r['peak_extra_ratio']:.3f} x array)", r["extra_copies"] == 1, r["peak_extra_ratio"])
    t.check(f"numpy's extension holds both arrays at the peak ({numpy.get('at_peak_bytes', 0) / ARRAY:.3f} x array)",
            1.98 <= numpy.get("at_peak_bytes", 0) / ARRAY <= 2.1, numpy)
    t.check(f"a memcpy volume of 1.00 array charged to numpy ({numpy.get('copies', 0):.3f})",
            abs(numpy.get("copies", 0) - 1.0) <= 0.02, numpy)
    t.check("the result is an engine cell's object, by library", all(k in r for k in (
        "peak_bytes", "peak_extra_ratio", "extra_copies", "timeline", "libraries", "coverage", "mmap_bytes",
        "tracking", "impl")), sorted(r))
    for name in ("results.json", "copies.md", "index.html", "trace.json"):
        t.check(f"{name} written", os.path.getsize(os.path.join(w, "prof", name)) > 50)
    peaks = r["peaks"]
    t.check("three peaks, each with its extra: requested (the headline) <= reserved, resident sampled; each "
            f"{peaks['requested']['extra_ratio']:.3f} / {peaks['reserved']['extra_ratio']:.3f} / "
            f"{peaks['resident']['extra_ratio']:.3f} x array: one copy and the interpreter's own (1 to 1.25), resident "
            "within 0.05 of requested (the copy was written: all of it resident)",
            r["peak_extra_bytes"] == peaks["requested"]["extra_bytes"]
            and peaks["requested"]["peak_bytes"] <= peaks["reserved"]["peak_bytes"]
            and all(1 <= peaks[k]["extra_ratio"] <= 1.25 for k in ("requested", "reserved", "resident"))
            and abs(peaks["resident"]["extra_ratio"] - peaks["requested"]["extra_ratio"]) <= 0.05, peaks)
    rss, peak = r.get("max_rss_bytes", 0), r["peak_bytes"]
    t.check(f"max RSS beside the heap peak: {rss / 2**20:.1f} MiB resident, {peak / 2**20:.1f} MiB peak (both arrays "
            "written, so resident at least 0.95 of the peak, and at most the peak + 64 MiB of interpreter and libraries)",
            0.95 * peak <= rss <= peak + (64 << 20), (rss, peak))
    p = t.run(tally, "profile", "--out", os.path.join(w, "prof-text"), "--array-bytes", str(ARRAY), "--",
              "/usr/bin/python3", "-c", NUMPY_COPY)
    head = next((ln for ln in p.stderr.splitlines() if ln.startswith("tally profile: ")), "")
    total = next((ln for ln in p.stderr.splitlines() if ln.startswith("total at the peak")), "")
    shown_peak = head.split("; peak ")[1].split(" (")[0] if "; peak " in head else "?"
    t.check(f"the text table adds up: its rows (libraries, blocks under 64 KiB, mmap) total the peak ({shown_peak})",
            p.returncode == 0 and total.split()[-2:] == shown_peak.split() and "blocks under 64 KiB" in p.stderr
            and "max RSS" in head, (head, total))
    p, r = profile(tally, w, "--array-bytes", str(ARRAY), "--", "/bin/true")
    t.check("a whole-process peak below one array: peak extra 0 (never negative), and why",
            p.returncode == 0 and r and r["peak_extra_bytes"] == 0 and r["peak_extra_ratio"] == 0
            and "below one array" in r.get("peak_extra_note", ""), r and (r["peak_extra_bytes"], r.get("peak_extra_note")))
    t.check("without marks, time is said not to be attributable (stage_time null, and why)",
            r.get("stage_time") is None and "not attributable without marks" in r.get("stage_time_about", ""),
            r.get("stage_time_about"))
    # a buffer touched and freed at once: the process reads its resident bytes just before jemalloc
    # gives the pages back, so the resident peak holds the spike whatever the sampler saw
    spike = "b = bytearray(100_000_000)\nb[::4096] = b'x' * len(b[::4096])\ndel b\n"
    p, r = profile(tally, w, "--array-bytes", str(ARRAY), "--", "/usr/bin/python3", "-c", spike)
    rel = max((b for _, b in r.get("resident_releases", [])), default=0) if r else 0
    res = (r or {}).get("peaks", {}).get("resident") or {}
    t.check(f"a 100 MB buffer touched and freed: read just before its release ({rel / 1e6:.1f} MB resident), and "
            f"the resident peak ({res.get('peak_bytes', 0) / 1e6:.1f} MB) at least that",
            p.returncode == 0 and rel >= 0.95 * ARRAY and res.get("peak_bytes", 0) >= rel, (rel, res))
    # --json pipes: stdout is the result alone, the program's own stdout goes to stderr; --json=FILE
    p = t.run(tally, "profile", "--out", os.path.join(w, "prof-json"), "--json", "--", "/bin/echo", "program-said")
    try:
        piped = json.loads(p.stdout)
    except ValueError:
        piped = None
    t.check("--json: stdout is the result object alone (the program's stdout went to stderr)",
            p.returncode == 0 and piped and "program-said" in p.stderr, (p.stdout[:200], p.stderr[-200:]))
    jf = os.path.join(w, "result.json")
    p = t.run(tally, "profile", "--out", os.path.join(w, "prof-json"), f"--json={jf}", "--", "/bin/echo", "x")
    t.check("--json=FILE: the result object in FILE, the table on stderr",
            p.returncode == 0 and json.load(open(jf)).get("impl") == "echo" and "tally profile:" in p.stderr, p.stderr)
    p = t.run(tally, "profile", "--json=/nonexistent-dir/r.json", "--", "/bin/echo", "must-not-run")
    t.check("--json=FILE that cannot be written: exit 2 before the program runs",
            p.returncode == 2 and "must-not-run" not in p.stdout + p.stderr and "--json" in p.stderr, p.stderr)


MARKED_STAGES = ("import ctypes, time\n"
                 "lib = ctypes.CDLL(None)\n"
                 "lib.tly_mark_begin(b'write', ctypes.c_ulonglong(1 << 20))\n"
                 "lib.tly_mark_push(b'encode'); x = sum(i * i for i in range(300000)); lib.tly_mark_pop()\n"
                 "lib.tly_mark_push(b'put'); time.sleep(0.05); lib.tly_mark_pop()\n"
                 "lib.tly_mark_end(ctypes.c_ulonglong(0))\n")


def unseen_copies(tally, w):
    """Issue 20: a transposed copy is a loop, no memcpy. The result names the copy the peak holds and no
    copy volume explains (JSON and text), and tally check against the memcpy'd copy's baseline, with the
    same peak, does not call the ledger's 1 -> 0 an improvement."""
    copy_out, tr_out = os.path.join(w, "np-copy"), os.path.join(w, "np-transposed")
    p = t.run(tally, "profile", "--name", "np", "--out", copy_out, "--array-bytes", str(ARRAY), "--",
              "/usr/bin/python3", "-c", NUMPY_COPY)
    r = json.load(open(os.path.join(copy_out, "results.json")))["results"][0] if p.returncode == 0 else {}
    t.check("a memcpy'd copy: no unexplained copies", p.returncode == 0 and r.get("unexplained_copies", 0) is None
            and "unexplained copies" not in p.stderr, r.get("unexplained_copies"))
    p = t.run(tally, "profile", "--name", "np", "--out", tr_out, "--array-bytes", str(ARRAY), "--",
              "/usr/bin/python3", "-c", NUMPY_TRANSPOSED)
    r = json.load(open(os.path.join(tr_out, "results.json")))["results"][0] if p.returncode == 0 else {}
    u = r.get("unexplained_copies") or {}
    t.check(f"a transposed copy: 1 extra by peak, numpy copied ~0, and unexplained_copies says so ({u.get('note')})",
            r.get("extra_copies") == 1 and r["libraries"]["numpy"]["copies"] < 0.02
            and u.get("extra_copies_by_peak") == 1 and u.get("unexplained", 0) >= 0.75
            and "transposed" in u.get("note", ""), (r.get("extra_copies"), u))
    t.check("... and tally profile's text prints it", "unexplained copies: 1 extra by peak" in p.stderr,
            p.stderr[-600:])
    base = os.path.join(w, "np-baseline.json")
    p = t.run(tally, "check", "--baseline", base, copy_out, "--update")
    q = t.run(tally, "check", "--baseline", base, tr_out)
    numpy = [ln for ln in q.stdout.splitlines() if "library numpy copies" in ln]
    t.check("tally check, transposed against the copy's baseline: the ledger's 1 -> 0 with the same peak is a note, "
            "never 'improved'", p.returncode == 0 and q.returncode == 0 and numpy and numpy[0].startswith("note")
            and "improved" not in q.stdout and "0 improvements" in q.stdout, q.stdout[-800:])


def marked_stages(tally, w):
    p, r = profile(tally, w, "--", "/usr/bin/python3", "-c", MARKED_STAGES)
    st = (r or {}).get("stage_time") or {}
    t.check("the marks' push/pop stages get the time: encode and put, put at least its 50 ms sleep",
            p.returncode == 0 and st.get("encode", {}).get("busy_s", 0) > 0 and
            st.get("put", {}).get("busy_s", 0) >= 0.05, (p.stderr[-300:], st))
    t.check("... and the stages' time is the marked window's (not more)",
            sum(v["busy_s"] + v["waiting_s"] for v in st.values()) <= r["wall_s"] * 1.01 + 0.001, (st, r and r["wall_s"]))


def planted(tally, w, exe):
    p, r = profile(tally, w, "--budgets", '{"libraries": {"libplanted": {"copies": 0.1}}}', "--", exe, str(ARRAY))
    lib = (r or {}).get("libraries", {}).get("libplanted", {})
    t.check(f"the planted library's copy: 0.50 +- 0.02 ({lib.get('copies', 0):.3f})",
            abs(lib.get("copies", 0) - 0.5) <= 0.02, lib)
    t.check(f"... and its block at the peak: 0.50 +- 0.02 ({lib.get('at_peak_bytes', 0) / ARRAY:.3f})",
            abs(lib.get("at_peak_bytes", 0) / ARRAY - 0.5) <= 0.02, lib)
    t.check("a budget on that library fails: exit 1, naming it",
            p.returncode == 1 and "library libplanted copies" in p.stderr, (p.returncode, p.stderr[-300:]))
    p, r = profile(tally, w, "--", exe, "1000000", "7")
    t.check("the program's exit status is passed through (7)", p.returncode == 7, p.returncode)


def fails_closed(tally, w):
    """Issue 20's 'fails closed': --budgets checked before the program runs, a budget on a library the
    process never loaded fails, a program that failed is recorded as failed with its status."""
    flag = os.path.join(w, "ran")
    p = t.run(tally, "profile", "--out", os.path.join(w, "fc"), "--budgets",
              '{"libraries": {"numcodecs": {"copies": 0.5}}, "bogus": 1}', "--", "/usr/bin/touch", flag)
    t.check("an unknown --budgets key: exit 2 naming it, before the program runs",
            p.returncode == 2 and "bogus" in p.stderr and not os.path.exists(flag), (p.returncode, p.stderr[-300:]))
    p = t.run(tally, "profile", "--out", os.path.join(w, "fc"), "--budgets", "{not json", "--", "/usr/bin/touch", flag)
    t.check("--budgets that is not JSON: exit 2 before the program runs",
            p.returncode == 2 and "--budgets" in p.stderr and not os.path.exists(flag), (p.returncode, p.stderr[-300:]))
    p = t.run(tally, "profile", "--out", os.path.join(w, "fc"), "--budgets", '{"libraries": {"numcodec": {"copies": 0.5}}}',
              "--", "/usr/bin/python3", "-c", "import numcodecs, numpy as np; a = np.ones(1 << 22); b = a.copy()")
    t.check("a budget on a misspelt library (numcodec): exit 2, 'no such library was loaded', the loaded ones named",
            p.returncode == 2 and "budget on library 'numcodec': no such library was loaded" in p.stderr
            and "numcodecs" in p.stderr and "held" not in p.stderr, (p.returncode, p.stderr[-400:]))
    # libblosc, loaded by numcodecs and idle here (numcodecs itself now has a line: every copy is counted,
    # and its import copies a few bytes)
    p, r = profile(tally, w, "--budgets", '{"libraries": {"libblosc": {"copies": 0.5}}}', "--", "/usr/bin/python3",
                   "-c", "import numcodecs, numpy as np; a = np.ones(1 << 22); b = a.copy()")
    t.check("... and on a library that loaded and copied nothing: held (exit 0)",
            p.returncode == 0 and r and "libblosc" in r.get("loaded_libraries", []) and "libblosc" not in r["libraries"],
            (p.returncode, p.stderr[-300:]))
    p, r = profile(tally, w, "--", "/usr/bin/python3", "-c", "import sys; sys.exit(3)")
    proc = (r or {}).get("impl_process", {})
    t.check("sys.exit(3): exit 3, the result program_failed with exit_status 3 and no signal",
            p.returncode == 3 and r and r["status"] == "program_failed" and proc.get("exit_status") == 3
            and proc.get("signal") is None, (p.returncode, r and r.get("status"), proc))
    p, r = profile(tally, w, "--", "/bin/true")
    t.check("a program that succeeds: status ok, exit_status 0",
            p.returncode == 0 and r and r["status"] == "ok" and r["impl_process"].get("exit_status") == 0,
            (p.returncode, r and r.get("impl_process")))


def bad_input(tally, w):
    p = t.run(tally, "profile", "--out", os.path.join(w, "bad"), "--", "no-such-command-here")
    t.check("a command not found: exit 127, named", p.returncode == 127 and "no-such-command-here" in p.stderr
            and "not found" in p.stderr, (p.returncode, p.stderr))
    p = t.run(tally, "profile", "--out", os.path.join(w, "bad"), "--", "/bin/sh", "-c", "kill -9 $$")
    t.check("a command killed by a signal: exit 137, said so", p.returncode == 137 and "signal 9" in p.stderr,
            (p.returncode, p.stderr))
    src = os.path.join(w, "own.c")
    open(src, "w").write(
        "#include <stdlib.h>\n#include <string.h>\n"
        "static char heap[1 << 20]; static size_t used;\n"
        "void *malloc(size_t n) { void *p = heap + used; used += (n + 15) & ~(size_t)15; return p; }\n"
        "void free(void *p) { (void)p; }\n"
        "void *calloc(size_t a, size_t b) { void *p = malloc(a * b); memset(p, 0, a * b); return p; }\n"
        "void *realloc(void *p, size_t n) { void *q = malloc(n); if (p) memcpy(q, p, n); return q; }\n"
        "int main(void) { char *x = malloc(100000); x[0] = 1; return x[0] - 1; }\n")
    for name, flags in (("static", ["-static"]), ("own-allocator", [])):
        exe = os.path.join(w, name)
        c = subprocess.run(["cc", "-O1", *flags, "-o", exe, src], capture_output=True, text=True)
        if c.returncode != 0:
            t.skip(f"a {name} program", f"cc failed: {c.stderr[-200:]}")
            continue
        p = t.run(tally, "profile", "--out", os.path.join(w, "bad"), "--", exe)
        t.check(f"a {name} program: exit 2, untracked, with the reason",
                p.returncode == 2 and "untracked" in p.stderr, (p.returncode, p.stderr[-300:]))


def size_class(n):
    """jemalloc 5.3's usable size for a request of n bytes (its size classes: 4 per doubling above 32 B)."""
    if n <= 8:
        return 8
    if n <= 16:
        return 16
    lg = (n - 1).bit_length() - 1  # 2^lg < n <= 2^(lg+1)
    delta = 1 << max(lg - 2, 4)
    return (n + delta - 1) // delta * delta


PYBYTES_HEADER = 33  # a bytes object of n bytes is one malloc of offsetof(PyBytesObject, ob_sval) + n + 1
OVERHEAD = 16 << 20  # the fixed-overhead line every report draws (overhead_bound): not a copy


def zarr_python_floor(op, codec, array, encoded, unit=lambda n: n):
    """The bytes zarr-python 2.13 must hold above `before` at its peak (the read's output aside): numcodecs'
    output buffer and the bytes it is cut to (write), the chunk file's bytes (read; DirectoryStore reads
    the file into one bytes object); as requested (unit: bytes asked for) or in jemalloc's size classes
    (unit=size_class: the reserved peak's)."""
    if op == "read":
        return unit(encoded + PYBYTES_HEADER)
    if codec == "none":
        return 0  # the array's own memory goes to the file
    bound = array + 16 if codec == "blosc" else array + (array >> 8)  # BLOSC_MAX_OVERHEAD, ZSTD_compressBound
    return unit(bound + PYBYTES_HEADER) + unit(encoded + PYBYTES_HEADER)


def zarr_python_peaks(tally, w, cells):
    """zarr-python's six v2 cells: extra copies as counted by hand, each peak between its floor and the
    floor plus the fixed-overhead line (the module's docstring says why)."""
    copies = {"write": {"none": 0, "blosc": 2, "zstd": 2}, "read": {"none": 1, "blosc": 1, "zstd": 1}}
    # the encoded chunk of each codec, from tally's own cells of the same data (the same frames:
    # blosc_compress_ctx's byte for byte; zstd level 3 within bytes of ZSTD_compress's)
    out = os.path.join(w, "encoded")
    p = t.run(tally, "run", "--impl", "tally", "--filter", "write-local-.*-v2-one-chunk$", "--out", out)
    encoded = {r["codec"]: r["store_bytes_written"] for r in json.load(open(os.path.join(out, "results.json")))[
        "results"] if r["status"] == "ok" and r.get("store_bytes_written")}
    t.check("tally's own write cells give each codec's encoded chunk", p.returncode == 0 and len(encoded) == 3,
            (p.returncode, encoded))
    t.check("zarr-python's six v2 one-chunk cells ran", len(cells) == 6, [r["scenario"] for r in cells])
    for r in cells:
        if r["codec"] not in encoded:
            continue
        want = copies[r["op"]][r["codec"]]
        t.check(f"zarr-python {r['op']} {r['codec']}: {r['extra_copies']} extra copies, as counted by hand ({want})",
                r["extra_copies"] == want, r["peak_extra_ratio"])
        for kind, unit in (("requested", lambda n: n), ("reserved", size_class)):
            floor = zarr_python_floor(r["op"], r["codec"], r["array_bytes"], encoded[r["codec"]], unit)
            extra = r["peaks"][kind]["extra_bytes"]
            t.check(f"zarr-python {r['op']} {r['codec']}: {kind} peak extra {extra / r['array_bytes']:.4f} x array, "
                    f"at least the {floor / r['array_bytes']:.4f} its buffers must hold and under that + 16 MiB "
                    f"(above it: {(extra - floor) / r['array_bytes']:.4f})",
                    floor <= extra <= floor + OVERHEAD, (extra, floor))
        t.check(f"zarr-python {r['op']} {r['codec']}: the headline peak extra is the requested one",
                r["peak_extra_bytes"] == r["peaks"]["requested"]["extra_bytes"], r["peaks"])


def impls(tally, w):
    cells = os.path.join(w, "impls")
    p = t.run(tally, "run", "--impl", "zarr-python,gdal,nczarr,zarrita,tensorstore", "--filter", "local-.*-one-chunk",
              "--out", cells)
    t.check("tally run --impl (one-chunk local cells of five stacks): exit 0", p.returncode == 0, p.stderr[-600:])
    res = json.load(open(os.path.join(cells, "results.json")))["results"]
    ran = [r for r in res if r["status"] == "ok"]
    t.check(f"{len(ran)} cells ran, every other skipped with its reason",
            len(ran) >= 18 and all(r.get("reason") for r in res if r["status"] == "skipped"),
            [r for r in res if r["status"] not in ("ok", "skipped")][:2])
    low = [(r["impl"], r["scenario"], r["coverage"]["ratio"]) for r in ran if r["coverage"]["ratio"] < 0.99]
    t.check("coverage 0.99 or more in every cell another stack ran", not low, low)
    zarr_python_peaks(tally, w, [r for r in ran if r["impl"] == "zarr-python" and r["format"] == "v2"])
    # GDAL moves a chunk between its block cache and the caller's buffer in 20,000-byte rows: every one
    # is counted now, 1.00 x array charged to libgdal (issue 20; it said 0.00 under a 64 KiB threshold)
    gdal = [r for r in ran if r["impl"] == "gdal" and r["codec"] == "none"]
    got = [(r["scenario"], ((r["libraries"].get("libgdal") or {}).get("copies") or 0)) for r in gdal]
    if not gdal and all(r["status"] == "skipped" for r in res if r["impl"] == "gdal"):
        t.skip("libgdal's row copies", "GDAL is not installed (python3-gdal)")
    else:
        t.check(f"GDAL's uncompressed cells: libgdal copied 1.00 +- 0.02 x array ({got})",
                gdal and all(abs(c - 1.0) <= 0.02 for _, c in got) and all(
                    r["libraries"]["libgdal"]["copy_bands"]["mid"]["bytes"] >= 0.98 * r["array_bytes"] for r in gdal),
                got)
    ts = [r for r in res if r["impl"] == "tensorstore"]
    t.check("tensorstore's cells say why they skip", ts and all(
        r["status"] == "skipped" and "tensorstore" in r["reason"] for r in ts) or any(r["status"] == "ok" for r in ts),
        ts[:1])
    # an adapter that prints garbage: its cells fail with the reason, the run keeps every other cell
    m = json.load(open(os.path.join(ROOT, "scenarios", "matrix.json")))
    script = 'case "$1" in --probe) echo \'{"available": true, "version": "0"}\' ;; *) echo "not json at all" ;; esac'
    m["impls"] = {"garbage": {"command": ["/bin/sh", "-c", script, "garbage"]}}
    m["axes"]["layout"] = ["one-chunk"]
    m["axes"]["store"] = ["local"]
    m["axes"]["format"] = ["v2"]
    m["axes"]["codec"] = ["none"]
    m.pop("scenarios", None)
    f = os.path.join(w, "garbage.json")
    json.dump(m, open(f, "w"))
    p = t.run(tally, "run", "--scenarios", f, "--impl", "tally,garbage", "--out", os.path.join(w, "g"))
    res = json.load(open(os.path.join(w, "g", "results.json")))["results"]
    bad = [r for r in res if r["impl"] == "garbage"]
    good = [r for r in res if r["impl"] == "tally" and r["status"] == "ok"]
    t.check("an adapter that prints garbage: its cells fail naming it, exit 2, tally's cells kept",
            p.returncode == 2 and bad and all(r["status"] == "failed" and "result line" in r["reason"] for r in bad)
            and len(good) == 2, (p.returncode, bad[:1]))
    # an adapter that hangs (and a process it started): --cell-timeout kills both, the cell fails as timeout
    started = os.path.join(w, "hang-started.pid")  # the pid of what the adapter started, to look for after
    script = ('case "$2" in --probe) echo \'{"available": true, "version": "0"}\' ;; '
              '*) sleep 300 & echo $! > "$1"; echo hanging >&2; wait ;; esac')  # $1: the pid file (an absolute word)
    m["impls"] = {"hang": {"command": ["/bin/sh", "-c", script, "hang", started]}}
    json.dump(m, open(f, "w"))
    t0 = time.monotonic()
    p = t.run(tally, "run", "--scenarios", f, "--impl", "hang", "--filter", "write", "--cell-timeout", "2",
              "--out", os.path.join(w, "h"))
    took = time.monotonic() - t0
    res = json.load(open(os.path.join(w, "h", "results.json")))["results"]
    def alive(pid):  # a zombie waiting for its new parent to reap it has ended
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False
    pids = open(started).read().split() if os.path.exists(started) else []
    left = [p for p in pids if alive(p)] if pids else ["the adapter never wrote its pid file"]
    t.check(f"a hung adapter: killed at --cell-timeout 2 ({took:.1f} s for the run), its cell failed as timeout, "
            "nothing it started left running",
            p.returncode == 2 and res and all(r["status"] == "failed" and r["reason"].startswith("timeout") for r in res)
            and took < 30 and not left, (p.returncode, res[:1], left))
    t.check("tally run says when each cell starts and how long it took",
            "write-local-none-v2-one-chunk started" in p.stderr and " s)" in p.stderr, p.stderr[-400:])


def main():
    tally, planted_exe = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if "tracking: off" in t.run(tally, "--version").stdout:
        print("skip: tracking is off in this build (sanitizers own malloc): the preload cannot run")
        return 77
    w = tempfile.mkdtemp(prefix="tally-profile-")
    try:
        numpy_copy(tally, w)
        marked_stages(tally, w)
        unseen_copies(tally, w)
        planted(tally, w, planted_exe)
        fails_closed(tally, w)
        bad_input(tally, w)
        impls(tally, w)
    finally:
        shutil.rmtree(w, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
