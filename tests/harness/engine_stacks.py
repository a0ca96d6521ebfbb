#!/usr/bin/python3
"""Call stacks of tally's own cells (issue 21, item 5): tally run's engine cells carry "stacks" as the
preload's results do, each stack rooted at its stage.

  on      write-local-blosc-v2-strided and read-local-blosc-v2-strided (the matrix's cells): every site's
          outermost frame is its stage ("stage gather") and says the same stage as its "stage"; the top
          copy site of the strided write is gather's, its innermost frame the engine function that called
          tly_copy (write_blocks.c: tly__put_blocks, or block_task on a lane), its top peak site a chunk's buffer from the pool
          (tly_pool_alloc, stage pool); the read's top copy site scatter's (its innermost frame in
          read_blocks.c: scatter, or read_group where the compiler inlined it, under read_group) and its top peak site the output buffer's (tly_h_alloc_output, in the caller's
          stage); peak.folded, copies.folded and allocated.folded in stacks/tally/CELL/ add up to the
          blocks' totals, and those to the result's figures within 1% (the peak above the window's start;
          every stage's copies); index.html draws the flame graphs
  failed  the strided write under a budget it cannot meet (gather copies 0.5): tally run says the budget
          and the cell's top sites for the peak and for the copies
  off     TALLY_PROFILE_STACKS=0: "enabled": false, no folded files, the same copies

  engine_stacks.py CASE TALLY [--untracked REASON]; exits 1 on any failure. --untracked (the sanitizer
  build: tracking is off) runs the cells with --allow-untracked and checks what stacks there are without
  tracking, the copies': the figures of the peak and of the allocations are skipped, saying why.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UNTRACKED = None  # why tracking is off in this build, or None
CELLS = ("write-local-blosc-v2-strided", "read-local-blosc-v2-strided")


def run(tally, out, cells, scenarios=None, env=None):
    e = dict(os.environ)
    e.update(env or {})
    args = [tally, "run", "--impl", "tally", "--filter", "^(" + "|".join(cells) + ")$", "--out", out]
    if scenarios:
        args += ["--scenarios", scenarios]
    if UNTRACKED:
        args.append("--allow-untracked")
    p = subprocess.run(args, capture_output=True, text=True, env=e, timeout=600, cwd=ROOT)
    res = {}
    path = os.path.join(out, "results.json")
    if os.path.exists(path):
        with open(path) as f:
            res = {r["scenario"]: r for r in json.load(f)["results"]}
    return p, res


def near(a, b, rel=0.01):
    return abs(a - b) <= rel * max(abs(b), 1)


def case_on(tally, work):
    out = os.path.join(work, "on")
    p, res = run(tally, out, CELLS)
    t.check("on: tally run ran both cells", p.returncode == 0 and set(CELLS) <= set(res), p.stderr[-2000:])
    for name in CELLS:
        r = res.get(name, {})
        st = r.get("stacks") or {}
        t.check(f"{name}: stacks enabled", st.get("enabled") is True, json.dumps(st)[:300])
        kinds = ("copies",) if UNTRACKED else ("peak", "copies", "allocated")
        every = [s for k in kinds for s in st.get(k, {}).get("sites", [])]
        t.check(f"{name}: every site's outermost frame is its stage",
                every and all(s["frames"] and s["frames"][0] == f"stage {s.get('stage')}" for s in every),
                [s["frames"][:1] + [s.get("stage")] for s in every][:5])
        peak_extra = r.get("peak_bytes", 0) - r.get("before_bytes", 0)
        copies = sum(v.get("copies", 0) for v in r.get("stages", {}).values()) * r.get("array_bytes", 0)
        want = {"peak": peak_extra, "copies": copies, "allocated": None}
        for key in ("peak", "copies", "allocated"):
            if UNTRACKED and key != "copies":
                t.skip(f"{name}: {key} sites", UNTRACKED)
                continue
            path = os.path.join(out, "stacks", "tally", name, f"{key}.folded")
            total = st.get(key, {}).get("total_bytes", -1)
            if not t.check(f"{name}: {key}.folded written", os.path.exists(path), path):
                continue
            s, lines = t.folded_sum(path)
            t.check(f"{name}: {key}.folded adds up to stacks.{key}.total_bytes", lines >= 1 and s == total,
                    f"{s} in {lines} lines, total {total}")
            if want[key] is not None:
                t.check(f"{name}: stacks.{key}.total_bytes is the result's figure within 1%", near(total, want[key]),
                        f"{total} vs {want[key]}")
    w = res.get(CELLS[0], {}).get("stacks", {})
    top = (w.get("copies", {}).get("sites") or [{}])[0]
    t.check("write: the top copy site is gather's, its leaf the engine function that copies (in write_blocks.c: "
            "tly__put_blocks, or block_task on a lane)",
            top.get("stage") == "gather" and re.match(r"\w+ \(write_blocks\.c:\d+\)$",
                                                      (top.get("frames") or ["?"])[-1]),
            json.dumps(top)[:600])
    top = (w.get("peak", {}).get("sites") or [{}])[0]
    if UNTRACKED:
        t.skip("write: the top peak site", UNTRACKED)
    else:
        t.check("write: the top peak site is a chunk's buffer from the pool, in stage pool (tly_pool_alloc)",
                top.get("stage") == "pool" and re.match(r"tly_pool_alloc \(pool\.c:\d+\)$",
                                                        ([f for f in top.get("frames", []) if "jemalloc" not in f]
                                                         or ["?"])[-1]), json.dumps(top)[:600])
    r = res.get(CELLS[1], {}).get("stacks", {})
    top = (r.get("copies", {}).get("sites") or [{}])[0]
    t.check("read: the top copy site is scatter's, its leaf the engine function that copies (in read_blocks.c: "
            "scatter, or read_group where the compiler inlined it), under read_group",
            top.get("stage") == "scatter" and re.match(r"\w+ \(read_blocks\.c:\d+\)$", (top.get("frames") or ["?"])[-1])
            and any(re.match(r"read_group \(read_blocks\.c:\d+\)$", f) for f in top.get("frames", [])),
            json.dumps((top.get("frames") or [])[-4:]))
    top = (r.get("peak", {}).get("sites") or [{}])[0]
    if UNTRACKED:
        t.skip("read: the top peak site", UNTRACKED)
    else:
        t.check("read: the top peak site is the output buffer, in the caller's stage (tly_h_alloc_output)",
                top.get("stage") == "caller" and any(f.startswith("tly_h_alloc_output (") for f in top.get("frames", [])),
                json.dumps(top)[:600])
    with open(os.path.join(out, "index.html"), encoding="utf-8") as f:
        page = f.read()
    t.check("index.html draws the cells' flame graphs", page.count("<svg class='flame'") >= (2 if UNTRACKED else 4)
            and "stage gather" in page and "stage scatter" in page)
    # the flame graphs are drawn in the page as written (html_flame.c: not d3-flame-graph's script from
    # harness/impl/node_modules), so the page is the same where npm never ran
    refs = re.findall(r"""<(?:script|link|img|iframe)[^>]*\b(?:src|href)\s*=""", page, re.I)
    t.check("index.html loads nothing from elsewhere (no script src, no link href, no node_modules)",
            not refs and "node_modules" not in page, refs[:3])


def case_failed(tally, work):
    with open(os.path.join(ROOT, "scenarios", "matrix.json")) as f:
        m = json.load(f)
    m["budgets"].append({"when": {"op": "write", "layout": "strided", "codec": "blosc"},
                         "about": "engine_stacks.py: a budget the cell cannot meet", "stages": {"gather": {"copies": 0.5}}})
    src = os.path.join(work, "matrix.json")
    with open(src, "w") as f:
        json.dump(m, f)
    p, res = run(tally, os.path.join(work, "failed"), CELLS[:1], scenarios=src)
    err = p.stderr
    t.check("failed: tally run exits 1 (a budget failed)", p.returncode == 1, err[-1500:])
    t.check("failed: it says the budget", "budget failed: stage gather copies" in err, err[-1500:])
    peak = err.split("where the peak's large blocks were allocated")[-1].split("where the large copies")[0]
    copies = err.split("where the large copies were made")[-1]
    if UNTRACKED:
        t.skip("failed: 3 sites at the peak", UNTRACKED)
    else:
        t.check("failed: it prints 3 sites at the peak", "where the peak's large blocks were allocated" in err
                and all(f"  {i}. " in peak for i in (1, 2, 3)), err[-1500:])
    t.check("failed: it prints the top copy site: gather's, in write_blocks.c",
            "where the large copies were made" in err and re.search(r"  1\. [^\n]*stage gather: [^\n]*\(write_blocks\.c:\d+\)",
                                                                     copies), err[-1500:])


def case_off(tally, work):
    out = os.path.join(work, "off")
    p, res = run(tally, out, CELLS[:1], env={"TALLY_PROFILE_STACKS": "0"})
    r = res.get(CELLS[0], {})
    t.check("off: ran", p.returncode == 0 and r, p.stderr[-1500:])
    t.check("off: stacks say they are off", r.get("stacks") == {"enabled": False, "peak": None, "copies": None,
                                                                 "allocated": None}, json.dumps(r.get("stacks")))
    t.check("off: no folded files", not os.path.exists(os.path.join(out, "stacks")))
    t.check("off: the same copies", near(r.get("stages", {}).get("gather", {}).get("copies", 0), 1.0))


def main():
    global UNTRACKED
    case, tally = sys.argv[1], os.path.abspath(sys.argv[2])
    if len(sys.argv) > 4 and sys.argv[3] == "--untracked":
        UNTRACKED = sys.argv[4]
    with tempfile.TemporaryDirectory() as work:
        {"on": case_on, "failed": case_failed, "off": case_off}[case](tally, work)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
