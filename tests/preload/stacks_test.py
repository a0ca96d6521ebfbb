#!/usr/bin/python3
"""Call stacks under the preload (issue 21): tally profile's "stacks", folded files and top sites.

  python    stacks/hold_copy.py: the top site at the peak is hold_here at its file:line (Python frames
            joined to the native ones), the top copy site copy_here; the folded files (peak, copies,
            allocated: its sites hold every byte at the peak) add up to the
            result's totals, which match the libraries' bytes at the peak within 1%; the summary names both,
            index.html draws them as flame graphs; stacks/reuse.py: code objects at freed ones' addresses
  c         stacks/static_copy.c built with -g: the copy site names the static function and its line;
            site budgets (--budgets '{"sites": {"copy_quietly": {"copied_bytes": N}}}') held, failed, missing
  zarr      stacks/zarr_blosc.py: zarr-python's 100 MB one-chunk blosc write: the compressed chunk's site
            names numcodecs' blosc compress (an extension's function found by its PyMethodDef) under
            zarr's _encode_chunk
  nested    stacks/nested.py: an outer marked window whose peak lies in an inner one carries its stacks
  off       TALLY_PROFILE_STACKS=0: no stacks, no folded files, the same peak
  hostile   stacks/deep.c: 300 frames deep (truncated at the cap), a thread that exits mid-window and a
            library dlclose'd before the report: the program's output and status unchanged, every site there;
            stacks/ssl_exit.c: OpenSSL shut down by its atexit handler before the frames are named;
            stacks/threads.c: 8 threads interning and counting on the same stacks at once

  stacks_test.py CASE TALLY [--skip REASON]; exits 1 on any failure, 77 when skipped
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stacks")


def line_of(path, tag):
    """The line of `path` that carries the comment LINE tag."""
    with open(path) as f:
        for i, text in enumerate(f, 1):
            if f"LINE {tag}" in text:
                return i
    raise AssertionError(f"no LINE {tag} in {path}")


def profile(tally, out, cmd, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([tally, "profile", "--out", out, "--", *cmd], capture_output=True, text=True, env=e, timeout=240)
    res = None
    path = os.path.join(out, "results.json")
    if os.path.exists(path):
        with open(path) as f:
            res = json.load(f)["results"][0]
    return p, res


def sites(res, key):
    return ((res or {}).get("stacks") or {}).get(key, {}).get("sites", [])


def joined(site):
    return " > ".join(site.get("frames", [])) if site else ""


def case_python(tally, work):
    script = os.path.join(HERE, "hold_copy.py")
    p, res = profile(tally, os.path.join(work, "out"), ["/usr/bin/python3", script])
    t.check("python: profiled", p.returncode == 0 and res is not None, p.stderr[-2000:])
    st = (res or {}).get("stacks") or {}
    t.check("python: stacks on, Python frames joined", st.get("enabled") is True and st.get("python_frames") is True,
            json.dumps({k: v for k, v in st.items() if k not in ("peak", "copies")}))
    peak, copies = sites(res, "peak"), sites(res, "copies")
    want_hold = f"hold_copy.py:{line_of(script, 'hold_here')} hold_here"
    want_copy = f"hold_copy.py:{line_of(script, 'copy_here')} copy_here"
    top = peak[0] if peak else {}
    t.check("python: the top site at the peak is hold_here at its line", want_hold in joined(top)
            and 100_000_000 <= top.get("bytes", 0) < 101_000_000 and top.get("blocks") == 1, joined(top)[-600:])
    t.check("python: numpy's allocation is charged to numpy, under hold_here", top.get("library") == "numpy",
            top.get("library"))
    top = copies[0] if copies else {}
    t.check("python: the top copy site is copy_here at its line, 10 copies of 10 MB",
            want_copy in joined(top) and top.get("bytes") == 100_000_000 and top.get("count") == 10,
            json.dumps(top)[-600:])
    # the gate names the site: a baseline where the library copied less, and the regression line says
    # where it copies now
    base, gated = os.path.join(work, "base.json"), os.path.join(work, "out-gate")
    subprocess.run([tally, "profile", "--array-bytes", "100000000", "--out", gated, "--", "/usr/bin/python3", script],
                   capture_output=True)
    subprocess.run([tally, "check", "--baseline", base, gated, "--update"], capture_output=True)
    b = json.load(open(base)) if os.path.exists(base) else {"cells": {}}
    cell = next(iter(b["cells"].values()), {})
    if cell.get("libraries", {}).get(top.get("library", "?")) is not None:
        cell["libraries"][top["library"]] -= 0.5
        json.dump(b, open(base, "w"))
    g = subprocess.run([tally, "check", "--baseline", base, gated], capture_output=True, text=True)
    line = next((x for x in g.stdout.splitlines() if x.startswith("REGRESSION") and "library" in x), "")
    t.check("python: tally check's regression line for the library names where it copies now (copy_here)",
            g.returncode == 1 and "copied most at" in line and "copy_here" in line, g.stdout[-800:])
    for key, name in (("peak", "peak.folded"), ("copies", "copies.folded"), ("allocated", "allocated.folded")):
        path = os.path.join(work, "out", name)
        if not os.path.exists(path):
            t.check(f"python: {name} written", False)
            continue
        total, lines = t.folded_sum(path)
        want = st[key]["total_bytes"]
        t.check(f"python: {name} adds up to stacks.{key}.total_bytes", lines >= 1 and abs(total - want) <= want * 0.01,
                f"{total} vs {want}")
    alloc = st.get("allocated", {})
    t.check("python: the allocated bytes' sites hold every byte at the peak (a stack's bytes at the peak less "
            "its bytes at the start are never more than it allocated) and hold_here",
            alloc.get("total_bytes", 0) >= st.get("peak", {}).get("total_bytes", 1)
            and any("hold_here" in joined(s) for s in alloc.get("sites", [])), json.dumps(alloc)[:400])
    libs = sum(v.get("at_peak_bytes", 0) for k, v in res.get("libraries", {}).items() if k != "mmap")
    want = st.get("peak", {}).get("total_bytes", 0)
    t.check("python: the peak's sites add up to the libraries' large blocks at the peak (1%)",
            abs(libs - want) <= 0.01 * max(libs, 1), f"sites {want}, libraries {libs}")
    html = open(os.path.join(work, "out", "index.html")).read()
    t.check("python: index.html draws both flame graphs, hold_here and copy_here in them",
            html.count("<svg class='flame'") == 2 and want_hold in html and want_copy in html)
    chromium = shutil.which("chromium")
    if chromium:  # the page as a browser builds it, offline: both flame graphs and their top frames
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              f"--user-data-dir={work}/chromium", "--dump-dom",
                              "file://" + os.path.join(work, "out", "index.html")],
                             capture_output=True, text=True, timeout=120).stdout
        t.check("python: headless Chromium's DOM of index.html has both flame graphs, hold_here and copy_here "
                "among their frames' labels", dom.count('class="flame"') == 2 and "hold_here" in dom
                and "copy_here" in dom, dom[:300])
    else:
        t.check("chromium installed (scripts/deps installs it)", False)
    t.check("python: the summary names both sites", "hold_here" in p.stderr and "copy_here" in p.stderr
            and "where the peak's large blocks were allocated" in p.stderr, p.stderr[-1500:])


def case_python_reuse(tally, work):
    p, res = profile(tally, os.path.join(work, "out-reuse"), ["/usr/bin/python3", os.path.join(HERE, "reuse.py")])
    peak = sites(res, "peak")
    named, wrong = 0, []
    for s in peak:
        fr = [f for f in s.get("frames", []) if re.match(r"gen\d+\.py:", f)]
        if not fr:
            continue
        named += 1
        m = re.match(r"gen(\d+)\.py:2 f(\d+)$", fr[0])
        if not m or m.group(1) != m.group(2) or int(m.group(1)) != s["bytes"] - 100_001 or s.get("blocks") != 1:
            wrong.append((s["bytes"], fr))
    t.check("python: functions whose code objects reuse freed addresses: each block's site names its own",
            p.returncode == 0 and named >= 150 and not wrong and res["stacks"]["peak"]["sites_count"] >= 300,
            f"{named} named, wrong: {wrong[:3]}")


def build(work, src, *extra):
    exe = os.path.join(work, os.path.splitext(os.path.basename(src))[0])
    subprocess.run(["cc", "-g", "-O1", "-o", exe, os.path.join(HERE, src), *extra], check=True)
    return exe


def case_c(tally, work):
    exe = build(work, "static_copy.c")
    p, res = profile(tally, os.path.join(work, "out"), [exe])
    t.check("c: profiled", p.returncode == 0 and res is not None and p.stdout == "1\n", p.stderr[-2000:])
    src = os.path.join(HERE, "static_copy.c")
    copies = sites(res, "copies")
    want = f"copy_quietly (static_copy.c:{line_of(src, 'copy_quietly')})"
    named = [s for s in copies if s.get("frames", [""])[-1] == want]  # two calls: two sites, one leaf
    t.check("c: the copy sites name the static function and its line",
            copies and copies[0] in named and sum(s["bytes"] for s in named) == 100_000_000
            and sum(s["count"] for s in named) == 2, json.dumps(copies[:2]))
    top = (sites(res, "peak") or [{}])[0]
    want = f"main (static_copy.c:{line_of(src, 'main')})"
    t.check("c: the top site at the peak is main's malloc at its line", want in joined(top)
            and top.get("bytes") == 100_000_000, json.dumps(top))
    case_budgets(tally, work, exe)


def case_zarr(tally, work):
    if subprocess.run(["/usr/bin/python3", "-c", "import zarr, numcodecs"], capture_output=True).returncode:
        t.skip("zarr", "zarr-python or numcodecs is not installed (scripts/deps)")
        print("SKIP: no zarr-python")
        sys.exit(77)
    p, res = profile(tally, os.path.join(work, "out"),
                     ["/usr/bin/python3", os.path.join(HERE, "zarr_blosc.py"), os.path.join(work, "a.zarr")])
    t.check("zarr: profiled", p.returncode == 0 and res is not None, p.stderr[-2000:])
    peak = sites(res, "peak")
    enc = [s for s in peak[:2] if "numcodecs/blosc compress" in s.get("frames", [])
           and any("_encode_chunk" in f for f in s["frames"]) and s.get("bytes", 0) >= 100_000_000]
    t.check("zarr: a top site at the peak is numcodecs' blosc compress under zarr's _encode_chunk", len(enc) == 1,
            json.dumps([s.get("frames") for s in peak[:2]])[:1500])
    t.check("zarr: the summary names it", "numcodecs/blosc compress" in p.stderr, p.stderr[-1500:])


def case_gdal(tally, work):
    """GDAL 3.6 reading a blosc chunk: a site at the peak runs through GDAL's multidimensional read,
    its C++ frames demangled (Debian's libgdal is stripped: its Zarr driver's internal functions have
    no names to give, and show as libgdal+0xOFFSET)."""
    if subprocess.run(["/usr/bin/python3", "-c", "from osgeo import gdal; assert gdal.GetDriverByName('ZARR')"],
                      capture_output=True).returncode:
        t.skip("gdal", "GDAL's Python binding with its Zarr driver is not installed (scripts/deps)")
        print("SKIP: no GDAL")
        sys.exit(77)
    script, store = os.path.join(HERE, "gdal_blosc.py"), os.path.join(work, "g.zarr")
    subprocess.run(["/usr/bin/python3", script, store, "write"], check=True)
    p, res = profile(tally, os.path.join(work, "out"), ["/usr/bin/python3", script, store, "read"])
    t.check("gdal: profiled", p.returncode == 0 and res is not None, p.stderr[-2000:])
    gdal_sites = [s for s in sites(res, "peak") if s.get("library") == "libgdal" and s.get("bytes", 0) >= 90_000_000]
    frames = gdal_sites[0]["frames"] if gdal_sites else []
    t.check("gdal: a site at the peak holds GDAL's 100 MB chunk buffer, through GDALMDArray::Read(...) demangled "
            "and its Python binding's MDArrayIONumPy", any(f.startswith("GDALMDArray::Read(") for f in frames)
            and any(f.startswith("MDArrayIONumPy(") for f in frames), json.dumps(frames)[:1500])


def case_nested(tally, work):
    script = os.path.join(HERE, "nested.py")
    p, res = profile(tally, os.path.join(work, "out"), ["/usr/bin/python3", script])
    t.check("nested: profiled, the outer window is the primary", p.returncode == 0 and res is not None
            and res.get("window", {}).get("name") == "outer", p.stderr[-2000:])
    top = (sites(res, "peak") or [{}])[0]
    want = f"nested.py:{line_of(script, 'big_inner')} big_inner"
    t.check("nested: the outer window's top site at its peak is the inner window's big_inner",
            want in joined(top) and top.get("bytes", 0) >= 50_000_000
            and not any("small_after" in f for f in top.get("frames", [])), json.dumps(top)[:1200])
    libs = sorted((res or {}).get("libraries", {}))
    t.check("nested: naming the inner window's frames (libdw) is not in the outer window's figures",
            not any(k.startswith(("libdw", "libelf")) for k in libs), libs)


def case_budgets(tally, work, exe):
    """Site budgets: the bytes of the sites whose frames name a text, at the peak or copied."""
    def run(budgets, env=None):
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run([tally, "profile", "--out", os.path.join(work, "out-b"), "--budgets", json.dumps(budgets),
                               "--", exe], capture_output=True, text=True, env=e, timeout=240)
    p = run({"sites": {"copy_quietly": {"copied_bytes": 100_000_000}, "main (static_copy.c": {"at_peak_bytes": 2e8}}})
    t.check("budgets: site budgets that hold: exit 0, each said", p.returncode == 0 and
            "budget held: site 'copy_quietly' copied_bytes = 100000000, limit 100000000" in p.stderr, p.stderr[-800:])
    p = run({"sites": {"copy_quietly": {"copied_bytes": 99_999_999}}})
    t.check("budgets: a site over its budget: exit 1, FAILED with its bytes", p.returncode == 1 and
            "budget FAILED: site 'copy_quietly' copied_bytes = 100000000" in p.stderr, p.stderr[-800:])
    p = run({"sites": {"copy_quietly": {"copied_bytes": 1e9}}}, {"TALLY_PROFILE_STACKS": "0"})
    t.check("budgets: a site budget without stacks fails as missing", p.returncode == 1 and
            "no call stacks" in p.stderr, p.stderr[-800:])
    p = run({"sites": {"copy_quietly": {"copies": 1}}})
    t.check("budgets: an unknown site figure: exit 2 before the program runs", p.returncode == 2 and
            "unknown figure 'copies'" in p.stderr and p.stdout == "", p.stderr[-800:])


def case_off(tally, work):
    script = os.path.join(HERE, "hold_copy.py")
    out = os.path.join(work, "out")
    p, res = profile(tally, out, ["/usr/bin/python3", script], {"TALLY_PROFILE_STACKS": "0"})
    t.check("off: profiled", p.returncode == 0 and res is not None, p.stderr[-2000:])
    st = (res or {}).get("stacks")
    t.check("off: stacks say they are off", st == {"enabled": False, "peak": None, "copies": None, "allocated": None},
            json.dumps(st))
    t.check("off: no folded files", not os.path.exists(os.path.join(out, "peak.folded"))
            and not os.path.exists(os.path.join(out, "copies.folded")))
    t.check("off: the figures are still there", (res or {}).get("peak_bytes", 0) - res.get("before_bytes", 0)
            > 100_000_000)


def case_hostile(tally, work):
    exe = build(work, "deep.c", "-pthread", "-ldl")
    lib = os.path.join(work, "libstackslib.so")
    subprocess.run(["cc", "-g", "-O1", "-shared", "-fPIC", "-o", lib, os.path.join(HERE, "deep_lib.c")], check=True)
    plain = subprocess.run([exe, lib], capture_output=True, text=True)
    p, res = profile(tally, os.path.join(work, "out"), [exe, lib])
    t.check("hostile: the program's output and status unchanged", p.returncode == plain.returncode == 0
            and p.stdout == plain.stdout == "ok\n", p.stderr[-2000:])
    peak, copies = sites(res, "peak"), sites(res, "copies")
    deep = [s for s in peak if s.get("bytes") == 3 << 20]
    t.check("hostile: the 300-frame stack is cut at the cap and marked",
            len(deep) == 1 and deep[0].get("truncated") is True and len(deep[0]["frames"]) <= 64
            and "down (deep.c:" in joined(deep[0]), json.dumps(deep)[:800])
    thr = [s for s in peak if s.get("bytes") == 5 << 20]
    t.check("hostile: the exited thread's block has its stack", len(thr) == 1 and "worker (deep.c:" in joined(thr[0]),
            json.dumps(thr)[:800])
    gone = [s for s in peak if s.get("bytes") == 7 << 20]
    t.check("hostile: the unloaded library's block is there, its frames unnamed but placed",
            len(gone) == 2 and all(re.search(r"libstackslib.so\+0x[0-9a-f]+ \[unloaded\]", joined(g)) for g in gone)
            and all("main (deep.c:" in joined(g) for g in gone), json.dumps(gone)[:800])
    t.check("hostile: copies from all three", sorted(s.get("bytes") for s in copies if s.get("bytes", 0) >= 1 << 20)
            == [3 << 20, 5 << 20, 7 << 20], json.dumps([(s["bytes"], s["frames"][-2:]) for s in copies])[:800])


def case_hostile_threads(tally, work):
    exe = build(work, "threads.c", "-pthread")
    p, res = profile(tally, os.path.join(work, "out-threads"), [exe])
    copies = [s for s in sites(res, "copies") if "site (threads.c:" in joined(s)]
    t.check("hostile: 8 threads interning the same 4 copy sites at once: every copy on them",
            p.returncode == 0 and p.stdout.strip() == str(8 * 2000 * 102400) and len(copies) == 4
            and sum(s["bytes"] for s in copies) == 8 * 2000 * 102400 and sum(s["count"] for s in copies) == 16000,
            json.dumps([(s["bytes"], s["count"], s["frames"][-1]) for s in copies]) + p.stderr[-800:])
    libs = sum(v.get("at_peak_bytes", 0) for k, v in (res or {}).get("libraries", {}).items() if k != "mmap")
    want = ((res or {}).get("stacks") or {}).get("peak", {}).get("total_bytes", -1)
    t.check("hostile: 8 threads: the sites at the peak add up to the libraries' (a block either way at most)",
            abs(libs - want) <= 102400 and want >= 8 * 102400, f"sites {want}, libraries {libs}")


def case_hostile_ssl(tally, work):
    exe = build(work, "ssl_exit.c", "-lcrypto")
    p, res = profile(tally, os.path.join(work, "out-ssl"), [exe])
    t.check("hostile: OpenSSL cleaned up at exit before the frames are named: exit 0, the site named",
            p.returncode == 0 and any("main (ssl_exit.c:" in joined(s) for s in sites(res, "peak")), p.stderr[-1500:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=("python", "c", "zarr", "gdal", "nested", "off", "hostile"))
    ap.add_argument("tally")
    ap.add_argument("--skip")
    a = ap.parse_args()
    if a.skip:
        print(f"SKIP: {a.skip}")
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="tally-stacks-") as work:
        globals()[f"case_{a.case}"](os.path.abspath(a.tally), work)
        if a.case == "python":
            case_python_reuse(os.path.abspath(a.tally), work)
        if a.case == "hostile":
            case_hostile_ssl(os.path.abspath(a.tally), work)
            case_hostile_threads(os.path.abspath(a.tally), work)
    sys.exit(t.summary())


if __name__ == "__main__":
    main()
