#!/usr/bin/python3
"""Results files are input (issue 25: N6-N9): a profiled program or an adapter writes them, so report,
check and check --update read them as hostile. Each reproducer of the probe is a fixture here:

- N6 markup in a status, a stage name, an impl or a scenario: refused where the schema names the
  value (a status is ok/skipped/failed/untracked), else escaped: index.html, parsed with html.parser,
  has no element or attribute that came from the input; junit.xml and check.xml parse;
- N7 extra_copies of 1e308, -1e9, "x", null; peak_extra_ratio of 1e308 or NaN; a cell twice: exit 2
  naming the file, the cell and the key, never "improved"; check --update writes nothing;
- N8 figures that overflow a writer (1e308 seconds): refused; what is accepted gives trace.json that
  strict JSON loads (no inf, no nan) and an index.html without inf or nan;
- N9 a control character in a cell's name: refused, and never raw on the terminal; in a matrix's
  layout name: refused at load;
- a profiled program that forges the preload's result: the same refusals (exit 2) or escaping.

  hostile_results.py TALLY      prints one line per check; exits 1 on any failure
"""
import copy
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = os.path.join(HERE, "..", "gate", "small.json")
CELLS = "^(write|read)-local-zstd-v2-tiles$"
EVIL = "<svg onload=alert(1)>"
# what the page's writers emit: any other tag or attribute came from the input
TAGS = {"html", "head", "meta", "title", "style", "body", "svg", "defs", "pattern", "rect", "h1", "h3", "p", "span",
        "table", "tr", "th", "td", "a", "section", "div", "ul", "li", "b", "script", "text", "line", "path", "g",
        "h4"}  # h4: a flame graph's title (tally's own cells have call stacks)
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class Page(html.parser.HTMLParser):
    """The elements and attributes of a page (and any that look like an event handler)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.handlers, self.text = set(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.handlers += [(tag, k) for k, _ in attrs if k.startswith("on")]

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.text.append(data)


def page_of(path):
    p = Page()
    p.feed(open(path, encoding="utf-8").read())
    p.close()
    return p


def run(tally, *args, **kw):
    return t.run(tally, *args, **kw)


def write(d, doc):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(doc, f)
    return d


def refused(p, where, key, cell=None):
    """exit 2, the message names the file, the key (and the cell); never a verdict; no raw control character."""
    text = p.stdout + p.stderr
    return (p.returncode == 2 and where in p.stderr and f"key '{key}'" in p.stderr and (cell is None or cell in p.stderr)
            and "improved" not in text and "0 regressions" not in text and not RAW_CONTROL.search(text))


def base_run(tally, w):
    if "tracking: off" in run(tally, "--version").stdout:
        # sanitizer builds measure nothing (their cells are untracked, which --update never records): the
        # forgeries start from a run of the release build kept as a fixture, the same two cells
        t.skip("a small run to forge from", "tracking is off in this build: tests/data/results-small.json instead")
        return json.load(open(os.path.join(HERE, "..", "data", "results-small.json")))
    out = os.path.join(w, "base")
    p = run(tally, "run", "--scenarios", SMALL, "--filter", CELLS, "--out", out, "--impl", "tally",
            "--allow-untracked")
    t.check("a small run to forge from", p.returncode == 0 and os.path.exists(f"{out}/results.json"), p.stderr[-300:])
    return json.load(open(f"{out}/results.json"))


def n6_markup(tally, w, doc):
    d = copy.deepcopy(doc)
    d["results"][0]["status"] = EVIL
    p = run(tally, "report", write(f"{w}/n6-status", d), "--out", f"{w}/n6-status-out")
    t.check("N6 markup as a cell's status: report exits 2 naming file, cell and key 'status'",
            refused(p, "n6-status/results.json", "status", "write-local-zstd-v2-tiles"), p.stderr)
    t.check("... and writes no index.html", not os.path.exists(f"{w}/n6-status-out/index.html"))

    d = copy.deepcopy(doc)
    a, b = d["results"]
    a["impl"], a["scenario"] = EVIL, "<script>alert(2)</script>"
    b["scenario"] = "x' onmouseover='alert(3)"
    st = a["stage_time"]
    st[EVIL] = dict(next(iter(st.values())))
    st["'><svg onload=alert(4)>"] = dict(next(iter(st.values())))
    a["bottleneck"]["resource"] = EVIL
    a["bottleneck"]["sentence"] = "</p><img src=x onerror=alert(5)>"
    a["timeline"]["columns"][-1] = "</script><script>alert(6)</script><!--"
    a["stages"][EVIL] = dict(a["stages"]["encode"])
    for ev in a["trace"]:
        if ev.get("ph") == "M" and ev.get("name") == "thread_name":
            ev["args"]["name"] = EVIL
    d["host"]["cpu_model"] = "| a | b |\n<svg onload=alert(7)>"
    src = write(f"{w}/n6", d)
    out = f"{w}/n6-out"
    p = run(tally, "report", src, "--out", out)
    t.check("N6 markup in impl, scenario, stage names, thread names, timeline columns, the verdict: report accepts "
            "it (exit 0)", p.returncode == 0, p.stderr[-400:])
    if p.returncode != 0:
        return
    page = page_of(f"{out}/index.html")
    t.check("index.html parses to the writers' elements only (no <svg>/<img>/<script> from the input)",
            page.tags <= TAGS and "img" not in page.tags, page.tags - TAGS)
    t.check("index.html: no event-handler attribute (onload=, onmouseover=, onerror=)", not page.handlers,
            page.handlers[:5])
    body = open(f"{out}/index.html", encoding="utf-8").read()
    t.check("index.html: the input's markup is there as text, escaped",
            "&lt;svg onload=alert(1)&gt;" in body and "<svg onload" not in body and "onmouseover='" not in body)
    scripts = re.findall(r"<script type='application/json' id='mem\d+'>(.*?)</script>", body, re.S)
    t.check("the charts' hover data still parse as JSON, the column's name intact",
            scripts and all(json.loads(s) for s in scripts)
            and any("</script><script>alert(6)</script><!--" in json.loads(s)["cols"] for s in scripts))
    trace = json.loads(open(f"{out}/trace.json").read(), parse_constant=lambda c: 1 / 0)
    t.check("trace.json loads as strict JSON with the names as they were",
            any(e.get("args", {}).get("name") == f"{EVIL}/<script>alert(2)</script>" for e in trace["traceEvents"]))
    md = open(f"{out}/copies.md", encoding="utf-8").read()
    t.check("copies.md: names in table cells escaped (no raw markup, no raw control character)",
            "<svg" not in md and "<script" not in md and "&lt;script&gt;" in md and not RAW_CONTROL.search(md), md[:400])
    n6_check_names(tally, w, src)
    p = run(tally, "run", "--scenarios", SMALL, "--filter", "^write-local-none-v2-tiles$", "--out", f"{w}/run",
            "--impl", "tally", "--allow-untracked", "--junit", f"{w}/run-junit.xml")
    names = [c.get("name") for c in ET.parse(f"{w}/run-junit.xml").getroot().iter("testcase")]
    t.check("a run's junit.xml parses, its tests named impl/scenario (unique across stacks)",
            p.returncode == 0 and names == ["tally/write-local-none-v2-tiles"], names)


def n6_check_names(tally, w, src):
    """The gate's outputs (check.xml, the summary) with the forged names, from a baseline --update made."""
    junit = f"{w}/n6-junit.xml"
    base = f"{w}/n6-baseline.json"
    p = run(tally, "check", "--baseline", base, src, "--update")
    t.check("check --update records the cells under their names", p.returncode == 0, p.stderr[-300:])
    if p.returncode != 0:
        return
    b = json.load(open(base))
    b["cells"]["tally/read-local-zstd-v2-tiles"] = dict(b["cells"][f"{EVIL}/<script>alert(2)</script>"])
    b["cells"]["tally/read-local-zstd-v2-tiles"]["extra_copies"] = 0
    b["cells"]["tally/read-local-zstd-v2-tiles"]["peak_extra_ratio"] = 0
    b["cells"][f"tally/{EVIL}-missing"] = dict(b["cells"]["tally/read-local-zstd-v2-tiles"])
    json.dump(b, open(base, "w"))
    p = run(tally, "check", "--baseline", base, src, "--junit", junit, "--summary", f"{w}/n6-summary.md")
    root = ET.parse(junit).getroot()
    names = [c.get("name") for c in root.iter("testcase")]
    t.check("check.xml parses, the cells named as they are", f"tally/{EVIL}-missing" in names, names)
    summary = open(f"{w}/n6-summary.md", encoding="utf-8").read()
    t.check("the check's summary: no raw markup", "<svg" not in summary and "MISSING" in summary, summary[-300:])


def n7_lenient_gate(tally, w, doc):
    base = f"{w}/n7-baseline.json"
    good = write(f"{w}/n7-good", doc)
    p = run(tally, "check", "--baseline", base, good, "--update")
    t.check("a baseline from the good run", p.returncode == 0, p.stderr[-300:])
    kept = open(base).read()
    cases = [("extra_copies", 1e308), ("extra_copies", -1e9), ("extra_copies", -1000000000), ("extra_copies", "x"),
             ("extra_copies", None), ("extra_copies", 1.5), ("extra_copies", -12345678901234),
             ("peak_extra_ratio", 1e308), ("peak_extra_ratio", float("nan")), ("peak_extra_ratio", "0.1"),
             ("peak_extra_ratio", None), ("wall_s", 1e308), ("store_bytes_read", -1), ("read_amplification", -0.5)]
    for key, value in cases:
        d = copy.deepcopy(doc)
        d["results"][0][key] = value
        src = write(f"{w}/n7", d)
        with open(f"{src}/results.json", "w") as f:
            json.dump(d, f, allow_nan=True)  # NaN as Python writes it: jansson refuses the token
        shown = json.dumps(value, allow_nan=True)
        for args, what in (([], "check"), (["--update"], "check --update")):
            p = run(tally, "check", "--baseline", base, src, *args)
            where = "n7/results.json"
            ok = refused(p, where, key, "write-local-zstd-v2-tiles") if value == value else (
                p.returncode == 2 and where in p.stderr and "improved" not in p.stdout)
            t.check(f"N7 {key} = {shown}: {what} exits 2 naming file, cell and key (NaN: JSON's parser names it)", ok, (p.returncode, p.stderr,
                                                                                        p.stdout[-200:]))
            t.check(f"... {what} leaves the baseline as it was", open(base).read() == kept)
        p = run(tally, "report", src, "--out", f"{w}/n7-out")
        t.check(f"N7 {key} = {shown}: report exits 2 too",
                p.returncode == 2 and (key in p.stderr if value == value else "invalid token" in p.stderr), p.stderr)
    d = copy.deepcopy(doc)
    d["results"].append(copy.deepcopy(d["results"][0]))
    d["results"][-1]["extra_copies"] = 0
    src = write(f"{w}/n7-dup", d)
    for args in ([], ["--update"]):
        p = run(tally, "check", "--baseline", base, src, *args)
        t.check(f"N7 a cell twice in one file: check {' '.join(args)} exits 2 naming it",
                refused(p, "n7-dup/results.json", "scenario", "tally/write-local-zstd-v2-tiles")
                and "twice" in p.stderr and open(base).read() == kept, p.stderr)
    b = json.load(open(base))
    b["cells"]["tally/write-local-zstd-v2-tiles"]["extra_copies"] = -12345678901234
    bad = f"{w}/n7-bad-baseline.json"
    json.dump(b, open(bad, "w"))
    p = run(tally, "check", "--baseline", bad, good)
    t.check("N7 a baseline with extra_copies -12345678901234: check exits 2 naming file, cell and key",
            refused(p, "n7-bad-baseline.json", "extra_copies", "tally/write-local-zstd-v2-tiles"), p.stderr)


def n8_overflow(tally, w, doc):
    d = copy.deepcopy(doc)
    d["results"][0]["timeline"]["samples"][-1][0] = 1e308
    p = run(tally, "report", write(f"{w}/n8", d), "--out", f"{w}/n8-out")
    t.check("N8 a timeline time of 1e308: report exits 2 naming the sample",
            refused(p, "n8/results.json", f"timeline.samples[{len(d['results'][0]['timeline']['samples']) - 1}][0]"),
            p.stderr)
    for key in ("busy_s", "waiting_s"):
        d = copy.deepcopy(doc)
        next(iter(d["results"][0]["stage_time"].values()))[key] = 1e308
        p = run(tally, "report", write(f"{w}/n8", d), "--out", f"{w}/n8-out")
        t.check(f"N8 a stage's {key} of 1e308: report exits 2 naming it", p.returncode == 2 and key in p.stderr,
                p.stderr)
    # the largest figures the schema accepts: the writers stay finite
    d = copy.deepcopy(doc)
    for e in d["results"]:
        e["wall_s"] = 1e9
        e["timeline"]["samples"][-1][0] = 1e9
        e["timeline"]["samples"][0][0] = 0
        for v in e["stage_time"].values():
            v.update(busy_s=1e9, waiting_s=1e9, busy_fraction=1e15, busy_threads=1e15)
        e["peak_extra_ratio"] = 1e15
        e["throughput_bps"] = 1e18
        for ev in e["trace"]:
            if "ts_ns" in ev:
                ev["ts_ns"] = 2 ** 63 - 1
    p = run(tally, "report", write(f"{w}/n8-max", d), "--out", f"{w}/n8-max-out")
    t.check("N8 the largest accepted figures: report exits 0", p.returncode == 0, p.stderr[-300:])
    if p.returncode == 0:
        text = open(f"{w}/n8-max-out/trace.json").read()
        json.loads(text, parse_constant=lambda c: 1 / 0)
        t.check("trace.json is strict JSON (no inf, no nan)", not re.search(r"\b(inf|nan)\b", text, re.I))
        body = open(f"{w}/n8-max-out/index.html").read()
        t.check("index.html has no inf or nan in a number", not re.search(r"[=' (,]-?(inf|nan)\b", body, re.I),
                re.findall(r".{30}-?(?:inf|nan)\b.{10}", body, re.I)[:3])


def n9_controls(tally, w, doc):
    for key, value in (("scenario", "write\x1b[2J\x1b]0;pwned\x07"), ("impl", "tally\r\x1b[31m"),
                       ("scenario", "a\x85b"), ("scenario", "a\nb")):
        d = copy.deepcopy(doc)
        d["results"][0][key] = value
        src = write(f"{w}/n9", d)
        for cmd in (["report", src, "--out", f"{w}/n9-out"], ["check", "--baseline", f"{w}/n9-b.json", src],
                    ["check", "--baseline", f"{w}/n9-b.json", src, "--update"]):
            p = run(tally, *cmd)
            t.check(f"N9 {key} {value!r}: {cmd[0]}{' --update' if '--update' in cmd else ''} exits 2 naming the key, "
                    "the name shown escaped", refused(p, "n9/results.json", key) and "\\x" in p.stderr, p.stderr)
        t.check("... nothing written", not os.path.exists(f"{w}/n9-b.json") and not os.path.exists(f"{w}/n9-out"))
    d = copy.deepcopy(doc)
    next(iter(d["results"][0]["stages"].values()))
    d["results"][0]["stages"]["enc\x1bode"] = d["results"][0]["stages"].pop("encode")
    p = run(tally, "report", write(f"{w}/n9", d), "--out", f"{w}/n9-out")
    t.check("N9 a control character in a stage's name: exit 2 naming stages.enc\\x1bode",
            refused(p, "n9/results.json", "stages.enc\\x1bode"), p.stderr)
    m = json.load(open(SMALL))
    m["layouts"]["ti\x1bles"] = m["layouts"].pop("tiles")
    m["axes"]["layout"] = ["ti\x1bles"]
    for r in m.get("budgets", []):
        if r.get("when", {}).get("layout") == "tiles":
            r["when"]["layout"] = "ti\x1bles"
    f = f"{w}/n9-matrix.json"
    json.dump(m, open(f, "w"))
    p = run(tally, "run", "--scenarios", f, "--out", f"{w}/n9-run", "--junit", f"{w}/n9-junit.xml")
    t.check("N9 a control character in a matrix's layout name: run exits 2 at load, nothing raw on the terminal",
            p.returncode == 2 and "control character" in p.stderr and not RAW_CONTROL.search(p.stdout + p.stderr)
            and not os.path.exists(f"{w}/n9-junit.xml"), (p.returncode, p.stderr[-300:]))


def forged_profile(tally, w):
    """The preload's result files are the profiled processes' to write: forge one."""
    if "tracking: off" in run(tally, "--version").stdout:
        t.skip("a profiled program that forges its result", "tracking is off in this build (no preload)")
        return
    # a marked window's result of a process that never was, beside the real one's in TALLY_PROFILE_DIR:
    # the first marked window is the primary result
    forge = ("import json, os, sys\n"
             "r = json.loads(sys.argv[1])\n"
             "r['process'] = {'pid': 1, 'ppid': 0, 'exe': '/x', 'argv': ['x'], 'start_ns': 1, 'forked': False}\n"
             "r['window'] = {'name': 'w', 'op': 'write', 'marked': True, 'seq': 0, 'depth': 1, 't0_ns': 1,\n"
             "               't1_ns': 2, 'timeline_t0_ns': 1, 'ended': 'end', 'incomplete': False}\n"
             "open(os.environ['TALLY_PROFILE_DIR'] + '/1.1.0.json', 'w').write(json.dumps(r))\n"
             "os._exit(0)\n")
    base = {"tracking": True, "marked": True, "array_bytes": 1000, "before_bytes": 0, "output_bytes": 0,
            "peak_bytes": 2000, "peak_extra_bytes": 1000, "peak_extra_ratio": 1.0, "extra_copies": 1,
            "wall_s": 0.5, "libraries": {EVIL: {"alloc_bytes": 5, "at_peak_bytes": 5, "copied_bytes": 0}},
            "stage_time": {EVIL: {"busy_s": 0.1, "waiting_s": 0, "busy_fraction": 0.2, "busy_threads": 0.2}},
            "timeline": {"columns": ["t_s", "live", EVIL], "samples": [[0, 0, 0], [0.5, 10, 10]], "peak_index": 1}}
    out = f"{w}/profile"
    p = run(tally, "profile", "--out", out, "--", sys.executable, "-c", forge, json.dumps(base))
    t.check("a forged result with markup in library and stage names: profile exits 0", p.returncode == 0,
            (p.returncode, p.stderr[-300:]))
    if p.returncode == 0:
        page = page_of(f"{out}/index.html")
        t.check("... its index.html has only the writers' elements, no handler", page.tags <= TAGS and not page.handlers,
                (page.tags - TAGS, page.handlers))
    for key, value in (("wall_s", 1e308), ("before_bytes", -1000000000), ("output_bytes", "x")):
        bad = dict(base, **{key: value})
        shutil.rmtree(out, ignore_errors=True)
        p = run(tally, "profile", "--out", out, "--", sys.executable, "-c", forge, json.dumps(bad))
        t.check(f"a forged result with {key} = {value!r}: profile exits 2 naming the key, writes no report",
                p.returncode == 2 and key in p.stderr and "preload's result" in p.stderr
                and not os.path.exists(f"{out}/index.html"), (p.returncode, p.stderr[-300:]))
    ctl = dict(base, libraries={"lib\x1b[2Jx": {"alloc_bytes": 5}})
    p = run(tally, "profile", "--out", out, "--", sys.executable, "-c", forge, json.dumps(ctl))
    t.check("a forged library name with a control character: exit 2, nothing raw on the terminal",
            p.returncode == 2 and not RAW_CONTROL.search(p.stdout + p.stderr), (p.returncode, p.stderr[-300:]))


def main():
    tally = os.path.abspath(sys.argv[1])
    w = tempfile.mkdtemp(prefix="tally-hostile-results-")
    try:
        doc = base_run(tally, w)
        n6_markup(tally, w, doc)
        n7_lenient_gate(tally, w, doc)
        n8_overflow(tally, w, doc)
        n9_controls(tally, w, doc)
        forged_profile(tally, w)
    finally:
        shutil.rmtree(w, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
