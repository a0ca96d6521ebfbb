#!/usr/bin/python3
"""The CI gate fails closed, says exactly what regressed, and reads its inputs strictly.

Each hole a user found in the gate is a check here: a run that measured nothing, a baseline cell the
run skipped, a filter that matched nothing, --update of a failed run, a regression line that does
not name its figure, loose numbers and typos in budget files, --help, shards merged, the step summary
and the JUnit file of the check, and small arrays read as copies.

  gate.py TALLY      prints one line per check; exits 1 on any failure
"""
import json
import os
import re
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = os.path.join(HERE, "small.json")
NO_S3 = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "TALLY_S3_BUCKET")}


def run(tally, *args, env=None):
    return t.run(tally, *args, env=env)


def help_everywhere(tally):
    p = run(tally, "--help")
    t.check("tally --help exits 0 and lists bench", p.returncode == 0 and " bench " in p.stdout, p.stderr)
    cmds = [line.split()[0] for line in p.stdout.split("commands:")[1].split("\n\n")[0].strip().splitlines()]
    for c in cmds:
        for style in (["--help"], ["-h"], ["--help", "--bogus"]):
            q = run(tally, c, *style)
            t.check(f"tally {c} {' '.join(style)} exits 0 with its usage",
                    q.returncode == 0 and q.stdout.startswith(f"usage: tally {c}"), (q.returncode, q.stderr[-200:]))
    q = run(tally, "run", "--bogus")
    t.check("an unknown option: exit 2 and the usage on stderr", q.returncode == 2 and "usage: tally run" in q.stderr,
            q.returncode)


def strict_numbers(tally, w):
    np_path = os.path.join(w, "a.npy")
    with open(np_path, "wb") as f:  # a 16x16 float32 .npy, written by hand (no numpy needed)
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 16), }"
        header += " " * (118 - len(header)) + "\n"
        f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(1024))
    for bad in ("abc", "-3", "0", "2x", ""):
        p = run(tally, "put", np_path, os.path.join(w, "z"), "--threads", bad)
        t.check(f"put --threads '{bad}': exit 2 naming --threads", p.returncode == 2 and "--threads" in p.stderr,
                (p.returncode, p.stderr))
    p = run(tally, "put", np_path, os.path.join(w, "z"), "--memory-limit", "12Q")
    t.check("put --memory-limit 12Q: exit 2 naming the option", p.returncode == 2 and "--memory-limit" in p.stderr,
            p.stderr)
    p = run(tally, "put", np_path, os.path.join(w, "z"), env=dict(os.environ, TALLY_THREADS="zz"))
    t.check("TALLY_THREADS=zz: exit 2 naming the variable", p.returncode == 2 and "TALLY_THREADS" in p.stderr,
            (p.returncode, p.stderr))
    p = run(tally, "put", np_path, os.path.join(w, "z"), env=dict(os.environ, TALLY_PART_SIZE="1k"))
    t.check("TALLY_PART_SIZE=1k (under S3's 5 MiB): exit 2 naming the variable and the range",
            p.returncode == 2 and "TALLY_PART_SIZE" in p.stderr and "5242880" in p.stderr, p.stderr)
    p = run(tally, "check", "--baseline", "x.json", "--tolerance", "abc")
    t.check("check --tolerance abc: exit 2", p.returncode == 2 and "--tolerance" in p.stderr, p.stderr)
    p = run(tally, "run", "--shard", "4/3")
    t.check("run --shard 4/3: exit 2", p.returncode == 2 and "shard" in p.stderr, p.stderr)
    assert run(tally, "put", np_path, os.path.join(w, "z")).returncode == 0
    out = os.path.join(w, "b.npy")
    open(out, "w").write("keep me")
    p = run(tally, "get", os.path.join(w, "z"), out)
    t.check("get onto an existing file without --force: exit 2, the file kept",
            p.returncode == 2 and "--force" in p.stderr and open(out).read() == "keep me", p.stderr)
    p = run(tally, "get", os.path.join(w, "z"), out, "--force")
    t.check("get --force replaces it", p.returncode == 0 and os.path.getsize(out) == 128 + 1024, p.stderr)


def typos(tally, w):
    m = json.load(open(SMALL))
    cases = [("budget figure", lambda d: d["budgets"][0].update(peak_extra_ratoi=0.1), "peak_extra_ratoi"),
             ("stage name", lambda d: d["budgets"][0]["stages"].update(encdoe={"copies": 0}), "encdoe"),
             ("stage figure", lambda d: d["budgets"][0]["stages"]["encode"].update(copeis=0), "copeis"),
             ("top-level key", lambda d: d.update(thread=2), "thread"),
             ("when key", lambda d: d["budgets"][1]["when"].update(codex="zstd"), "codex"),
             ("wrong type", lambda d: d["budgets"][0].update(extra_copies="0"), "extra_copies"),
             ("layout key", lambda d: d["layouts"]["tiles"].update(chunk=[1]), "chunk")]
    for what, edit, key in cases:
        d = json.loads(json.dumps(m))
        edit(d)
        f = os.path.join(w, "typo.json")
        json.dump(d, open(f, "w"))
        p = run(tally, "run", "--scenarios", f, "--out", os.path.join(w, "typo"))
        t.check(f"a typo in a {what}: exit 2 at load naming the file and '{key}'",
                p.returncode == 2 and key in p.stderr and "typo.json" in p.stderr and "[1/" not in p.stderr,
                (p.returncode, p.stderr[-300:]))


def results(d):
    return json.load(open(os.path.join(d, "results.json")))


def fail_closed(tally, w):
    out = os.path.join(w, "untracked")
    p = run(tally, "run", "--scenarios", SMALL, "--filter", "write-local-zstd", "--out", out,
            env=dict(NO_S3, TALLY_TRACK="0"))
    t.check("TALLY_TRACK=0 tally run: exit 2, the reason named", p.returncode == 2 and "TALLY_TRACK=0" in p.stdout + p.stderr,
            (p.returncode, p.stderr[-300:]))
    p = run(tally, "run", "--scenarios", SMALL, "--filter", "nomatch", "--out", os.path.join(w, "none"))
    t.check("run --filter nomatch: exit 2, nothing measured", p.returncode == 2 and "nomatch" in p.stderr, p.stderr)
    p = run(tally, "run", "--scenarios", SMALL, "--filter", "write-local-zstd", "--out", out, "--allow-untracked",
            env=dict(NO_S3, TALLY_TRACK="0"))
    doc = results(out)
    t.check("--allow-untracked: the run completes, its cells say tracking false",
            p.returncode == 0 and all(r.get("tracking") is False for r in doc["results"]), p.stderr[-300:])
    return out


def baseline_and_check(tally, w, untracked):
    env = NO_S3
    good = os.path.join(w, "good")
    p = run(tally, "run", "--scenarios", SMALL, "--out", good, env=env)
    t.check("the small matrix runs (S3 cells skipped without an endpoint)", p.returncode == 0, p.stderr[-500:])
    doc = results(good)
    t.check("results.json carries its provenance",
            doc["schema"] == "tally-results/2" and all(k in doc for k in (
                "tally_version", "git_commit", "date", "host", "jemalloc_version", "build_type", "tracking")), doc.keys())
    base = os.path.join(w, "baseline.json")
    p = run(tally, "check", "--baseline", base, good, "--update")
    t.check("check --update writes a new baseline", p.returncode == 0 and os.path.exists(base), p.stderr)
    p = run(tally, "check", "--baseline", base, good)
    t.check("the same run against it: 0 regressions, exit 0", p.returncode == 0 and "0 regressions" in p.stdout,
            p.stdout[-500:])
    # a baseline cell the run skipped fails the check, unless a reason is given
    b = json.load(open(base))
    b["cells"]["tally/write-s3-none-v2-tiles"] = dict(b["cells"]["tally/write-local-none-v2-tiles"])
    json.dump(b, open(base, "w"))
    p = run(tally, "check", "--baseline", base, good)
    t.check("a baseline cell the run skipped (no S3): check exits 1 naming it",
            p.returncode == 1 and "MISSING" in p.stdout and "write-s3-none-v2-tiles" in p.stdout
            and "no S3 endpoint" in p.stdout, p.stdout[-400:])
    p = run(tally, "check", "--baseline", base, good, "--allow-missing", "no S3 on this runner")
    t.check("... passes with --allow-missing REASON, which it repeats with the count",
            p.returncode == 0 and "1 missing, allowed: no S3 on this runner" in p.stdout, p.stdout[-300:])
    p = run(tally, "check", "--baseline", base, good, "--allow-missing", "only local cells may be missing",
            "--allow-missing-only", "/write-local-")
    t.check("--allow-missing-only narrows the allowance: the S3 cell still fails the check",
            p.returncode == 1 and "MISSING" in p.stdout and "write-s3-none-v2-tiles" in p.stdout, p.stdout[-300:])
    ex = os.path.join(w, "excluded")
    p = run(tally, "run", "--scenarios", SMALL, "--exclude", "zstd|blosc", "--out", ex, env=env)
    names = [r["scenario"] for r in results(ex)["results"]]
    t.check("run --exclude leaves out the cells it matches, and says so in results.json",
            p.returncode == 0 and names and all("none" in n for n in names) and results(ex)["exclude"] == "zstd|blosc",
            names)
    p = run(tally, "check", "--baseline", base, untracked)
    t.check("an untracked run is never compared: check exits 1", p.returncode == 1 and "untracked" in p.stdout,
            p.stdout[-300:])
    before = open(base).read()
    p = run(tally, "check", "--baseline", base, untracked, "--update")
    t.check("--update refuses an untracked run; the baseline is unchanged",
            p.returncode == 1 and open(base).read() == before, p.stderr[-300:])
    return good, base


def regression(tally, w, base):
    planted = os.path.join(w, "planted")
    p = run(tally, "run", "--scenarios", SMALL, "--filter", "local", "--out", planted,
            env=dict(NO_S3, TALLY_PLANT="encode:2000000"))
    t.check("a copy planted in encode fails the run's budgets (exit 1)", p.returncode == 1, p.returncode)
    junit, summary = os.path.join(w, "check.xml"), os.path.join(w, "summary.md")
    p = run(tally, "check", "--baseline", base, planted, "--allow-missing", "local cells only", "--junit", junit,
            env=dict(os.environ, GITHUB_STEP_SUMMARY=summary))
    line = [x for x in p.stdout.splitlines() if x.startswith("REGRESSION tally/write-local-zstd-v2-tiles stage encode")]
    t.check("check exits 1 with a regression line naming cell, implementation, stage, figure, old, new, tolerance",
            p.returncode == 1 and line and "copies: 1 -> 1.47" in line[0] and "(tolerance 0.05)" in line[0],
            p.stdout[-600:])
    wide = os.path.join(w, "wide.json")
    b = json.load(open(base))
    b["cells"]["tally/write-local-zstd-v2-tiles"].update(tolerance=0.6, tolerance_about="a test's wide tolerance")
    json.dump(b, open(wide, "w"))
    p = run(tally, "check", "--baseline", wide, planted, "--allow-missing", "local cells only")
    t.check("a cell's own tolerance holds for its copies too: 1 -> 1.47 within 0.6 is no regression",
            not [x for x in p.stdout.splitlines() if x.startswith("REGRESSION tally/write-local-zstd-v2-tiles stage")],
            p.stdout[-600:])
    suite = ET.parse(junit).getroot().find("testsuite")
    fails = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    t.check("--junit: the check's failures in JUnit, one testcase per baseline cell",
            suite.get("name") == "tally.check" and fails and int(suite.get("failures")) >= len(fails), suite.attrib)
    text = open(summary).read() if os.path.exists(summary) else ""
    t.check("$GITHUB_STEP_SUMMARY gets a Markdown table of the regressions",
            "## tally check: failed" in text and "| REGRESSION |" in text and "stage encode copies" in text, text[:300])
    before = open(base).read()
    p = run(tally, "check", "--baseline", base, planted, "--update")
    t.check("--update refuses a run with failed budgets; the baseline is unchanged",
            p.returncode == 1 and open(base).read() == before and "budgets failed" in p.stderr, p.stderr[-300:])


def copies_unseen(tally, w, good, base):
    """A copy ledger that fell with the peak unchanged is a note, never an improvement (issue 20): a
    transposed copy is a loop, no memcpy, so its ledger says 0 with the peak of the memcpy'd copy."""
    b = json.load(open(base))
    cell = "tally/write-local-zstd-v2-tiles"
    b["cells"][cell]["copies"]["encode"] = 2.0
    lower = os.path.join(w, "ledger-lower.json")
    json.dump(b, open(lower, "w"))
    p = run(tally, "check", "--baseline", lower, good, "--allow-missing", "no S3 here")
    line = [x for x in p.stdout.splitlines() if f"{cell} stage encode copies" in x]
    t.check("copies 2 -> 0 with the same peak: a note that the copies may be unseen, not 'improved', exit 0",
            p.returncode == 0 and line and line[0].startswith("note") and "improved" not in line[0]
            and "peak did not" in line[0] and "1 improvements" not in p.stdout, p.stdout[-600:])
    b["cells"][cell]["peak_extra_ratio"] += 2.0
    b["cells"][cell]["extra_copies"] += 2
    fell = os.path.join(w, "ledger-and-peak-lower.json")
    json.dump(b, open(fell, "w"))
    p = run(tally, "check", "--baseline", fell, good, "--allow-missing", "no S3 here")
    line = [x for x in p.stdout.splitlines() if f"{cell} stage encode copies" in x]
    t.check("copies 2 -> 0 and the peak 2 arrays lower: an improvement", p.returncode == 0 and line
            and line[0].startswith("improved"), p.stdout[-600:])


def library_tolerance(tally, w, good, base):
    """A cell's library_tolerance widens its libraries' copies alone (V8's node / [unknown] split moves
    from run to run), and --update keeps it: its peak still holds to the narrow tolerance."""
    doc = json.load(open(os.path.join(good, "results.json")))
    cell = next(r for r in doc["results"] if r["status"] == "ok")
    key = f"{cell['impl']}/{cell['scenario']}"
    cell["libraries"] = {"libv8ish": {"copies": 0.90, "copied_bytes": 1, "at_peak_bytes": 0}}
    run_dir = os.path.join(w, "libtol")
    os.makedirs(run_dir, exist_ok=True)
    json.dump(doc, open(os.path.join(run_dir, "results.json"), "w"))
    b = json.load(open(base))
    b["cells"][key]["libraries"] = {"libv8ish": 0.80}
    f = os.path.join(w, "libtol-base.json")
    json.dump(b, open(f, "w"))
    p = run(tally, "check", "--baseline", f, run_dir, "--allow-missing", "a part of the run")
    t.check("a library's copies 0.80 -> 0.90 without a library_tolerance: a regression",
            p.returncode == 1 and f"{key} library libv8ish copies" in p.stdout, p.stdout[-400:])
    b["cells"][key]["library_tolerance"] = 0.15
    b["cells"][key]["library_tolerance_about"] = "a test's reason"
    json.dump(b, open(f, "w"))
    p = run(tally, "check", "--baseline", f, run_dir, "--allow-missing", "a part of the run")
    t.check("... with library_tolerance 0.15: it holds", p.returncode == 0, p.stdout[-400:])
    b["cells"][key]["peak_extra_ratio"] -= 0.10
    json.dump(b, open(f, "w"))
    p = run(tally, "check", "--baseline", f, run_dir, "--allow-missing", "a part of the run")
    t.check("... and the cell's peak 0.10 higher still fails (the peak keeps its own tolerance)",
            p.returncode == 1 and f"{key} peak_extra_ratio" in p.stdout, p.stdout[-400:])
    p = run(tally, "check", "--baseline", f, run_dir, "--update")
    kept = json.load(open(f))["cells"][key]
    t.check("--update keeps library_tolerance and its reason",
            kept.get("library_tolerance") == 0.15 and kept.get("library_tolerance_about") == "a test's reason", kept)


def store_figures(tally, w, good, base):
    """Store traffic and read amplification: in every result, budgetable, and new to an old baseline."""
    rs = {r["scenario"]: r for r in results(good)["results"]}
    rd, wr = rs["read-local-none-v2-tiles"], rs["write-local-none-v2-tiles"]
    t.check("a read's result: store_bytes_read = needed_bytes = the array, read_amplification 1, nothing written",
            rd["store_bytes_read"] == rd["chunks_io"]["needed_bytes"] == 4 * 1024 * 1024
            and rd["read_amplification"] == 1.0 and rd["store_bytes_written"] == 0,
            {k: rd.get(k) for k in ("store_bytes_read", "store_bytes_written", "read_amplification")})
    t.check("a write's result: store_bytes_written = the array, nothing read, read_amplification null",
            wr["store_bytes_written"] == 4 * 1024 * 1024 and wr["store_bytes_read"] == 0
            and "read_amplification" in wr and wr["read_amplification"] is None,
            {k: wr.get(k) for k in ("store_bytes_read", "store_bytes_written", "read_amplification")})
    blosc = rs["read-local-blosc-v2-tiles"]
    t.check("a blosc read's amplification is 1 to 1.01 (its first range may hold bytes of block 0, read again)",
            1.0 <= blosc["read_amplification"] < 1.01, blosc["read_amplification"])
    md = open(os.path.join(good, "copies.md")).read()
    t.check("copies.md shows store read, written and read amplification beside peak and copies",
            "| store read | store written | read amp. |" in md and "| 4.0 MiB | 0 B | 1.0000 |" in md, md[-600:])
    # a read_amplification budget: over it, the run fails naming the figure, its value and its limit
    m = json.load(open(SMALL))
    m["budgets"].append({"when": {"op": "read", "codec": "none"}, "read_amplification": 0.99999,
                         "store_bytes_read": 1 << 30})
    f = os.path.join(w, "amp.json")
    json.dump(m, open(f, "w"))
    p = run(tally, "run", "--scenarios", f, "--filter", "read-local", "--out", os.path.join(w, "amp"), env=NO_S3)
    t.check("read_amplification over its budget: the run exits 1 naming the cell, the figure, its value and the limit",
            p.returncode == 1 and "read-local-none-v2-tiles: budget failed: read_amplification = 1, limit 0.99999"
            in p.stderr and "store_bytes_read" not in p.stderr, (p.returncode, p.stderr[-500:]))
    m["budgets"][-1] = {"when": {"op": "write"}, "store_bytes_written": 1000}
    json.dump(m, open(f, "w"))
    p = run(tally, "run", "--scenarios", f, "--filter", "write-local-none", "--out", os.path.join(w, "amp"), env=NO_S3)
    t.check("store_bytes_written over its budget fails too",
            p.returncode == 1 and "budget failed: store_bytes_written = 4194304, limit 1000" in p.stderr,
            p.stderr[-300:])
    # the gate: the run's amplification against the baseline's; a baseline without it (older than
    # the figure) shows it as a new figure and passes
    b = json.load(open(base))
    t.check("check --update records tally's reads' read_amplification in the baseline",
            b["cells"]["tally/read-local-none-v2-tiles"].get("read_amplification") == 1.0
            and "read_amplification" not in b["cells"]["tally/write-local-none-v2-tiles"],
            b["cells"]["tally/read-local-none-v2-tiles"])
    old = os.path.join(w, "old-baseline.json")
    b["cells"].pop("tally/write-s3-none-v2-tiles", None)  # baseline_and_check's planted S3 cell
    for c in b["cells"].values():
        c.pop("read_amplification", None)
    json.dump(b, open(old, "w"))
    p = run(tally, "check", "--baseline", old, good)
    t.check("a baseline without the figure: 'new figure ... no baseline' lines, not failures (exit 0)",
            p.returncode == 0 and "new figure tally/read-local-none-v2-tiles read_amplification = 1: no baseline"
            in p.stdout and "3 new figures without a baseline" in p.stdout, p.stdout[-600:])
    b["cells"]["tally/read-local-none-v2-tiles"]["read_amplification"] = 0.9
    json.dump(b, open(old, "w"))
    p = run(tally, "check", "--baseline", old, good)
    t.check("read_amplification grown past its tolerance is a regression (exit 1)",
            p.returncode == 1 and "REGRESSION tally/read-local-none-v2-tiles read_amplification: 0.9 -> 1" in p.stdout,
            p.stdout[-600:])


def shards(tally, w, good):
    dirs = []
    for k in (1, 2, 3):
        d = os.path.join(w, f"shard{k}")
        p = run(tally, "run", "--scenarios", SMALL, "--shard", f"{k}/3", "--out", d, env=NO_S3)
        dirs.append(d)
        t.check(f"run --shard {k}/3", p.returncode == 0, p.stderr[-300:])
    names = [set(r["scenario"] for r in results(d)["results"]) for d in dirs]
    t.check("the shards are disjoint and cover the matrix",
            not (names[0] & names[1]) and not (names[1] & names[2]) and len(set.union(*names)) == 12, names)
    merged = os.path.join(w, "merged")
    p = run(tally, "report", *dirs, "--out", merged)
    t.check("tally report merges the shards", p.returncode == 0, p.stderr)
    # A cell's row holds its measured figures (a peak a few workers' timing moves by a context or
    # two): the merge must carry each as its shard measured it, and lay out the document as the
    # unsharded run does (the same cells in the same order, every other line the same).
    lines = lambda d: [x for x in open(os.path.join(d, "copies.md")).read().splitlines() if not x.startswith("Run: ")]
    is_row = lambda x: re.match(r"\| [^|]+ \| (read|write)-", x) is not None
    rows = lambda d: {x.split("|")[2].strip(): x for x in lines(d) if is_row(x)}
    measured = {}
    for d in dirs:
        measured.update(rows(d))
    got = rows(merged)
    t.check("the merged copies.md has every cell's row as its shard wrote it", got == measured and len(got) >= 6,
            [len(got)] + [(k, got.get(k), measured.get(k)) for k in set(got) | set(measured) if got.get(k) != measured.get(k)][:3])
    t.check("the merged copies.md lists the unsharded run's cells in its order", list(got) == list(rows(good)),
            (list(got), list(rows(good))))
    # The extra-copies tables are the cells' figures too (a 4 MiB blosc read's peak extra of 0.50 x array
    # is 0 or 1 copy from run to run): each entry must be the one its shard's report shows, and each
    # table must have the unsharded run's rows and columns.
    def tables(d):
        out, head, cols = {}, None, None
        for x in lines(d):
            if x.startswith("## "):
                head = x
            elif x.startswith("| store | format | layout | impl |"):
                cols = [c.strip() for c in x.split("|")[5:-1]]
            elif is_tab(x):
                c = [v.strip() for v in x.split("|")[1:-1]]
                out[(head,) + tuple(c[:4])] = dict(zip(cols, c[4:]))
        return out
    is_tab = lambda x: re.match(r"\| [^|]+ \| v[23] \| [^|]+ \| [^|]+ \|", x) is not None
    tm, tg, ts = tables(merged), tables(good), [tables(d) for d in dirs]
    want = {k: {c: next((s[k][c] for s in ts if s.get(k, {}).get(c)), "") for c in v} for k, v in tm.items()}
    t.check("the merged extra-copies tables show each cell as its shard's report does", tm == want and len(tm) >= 2,
            [(k, tm[k], want[k]) for k in tm if tm[k] != want[k]][:3])
    t.check("the merged extra-copies tables have the unsharded run's rows and columns, in its order",
            [(k, list(v)) for k, v in tm.items()] == [(k, list(v)) for k, v in tg.items()], (list(tm), list(tg)))
    a, b = [x for x in lines(merged) if not (is_row(x) or is_tab(x))], [x for x in lines(good) if not (is_row(x) or is_tab(x))]
    t.check("the merged copies.md equals the unsharded run's outside the cells' rows and tables (the runs' dates aside)",
            a == b and len(a) > 10, [x for x in zip(a, b) if x[0] != x[1]][:3])
    p = run(tally, "report", dirs[0], dirs[0], "--out", merged)
    t.check("a shard given twice is refused", p.returncode == 2 and "also in" in p.stderr, p.stderr)
    old = os.path.join(w, "old")
    os.makedirs(old)
    json.dump(results(good)["results"], open(os.path.join(old, "results.json"), "w"))
    p = run(tally, "check", "--baseline", os.path.join(w, "baseline.json"), old)
    t.check("results of another schema (an older tally's bare list): check refuses, exit 2",
            p.returncode == 2 and "schema" in p.stderr, p.stderr)


def small_arrays(tally, w):
    np_path = os.path.join(w, "s.npy")
    with open(np_path, "wb") as f:  # 320 x 320 float32 = 400 KiB
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (320, 320), }"
        header += " " * (118 - len(header)) + "\n"
        f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + os.urandom(409600))
    p = run(tally, "put", np_path, os.path.join(w, "sz"), "--codec", "zstd", "--profile")
    t.check("a 400 KiB put --profile: its fixed overhead is not called copies",
            p.returncode == 0 and "not counted as copies" in p.stdout and "extra copies" not in p.stdout, p.stdout[-300:])
    p = run(tally, "put", np_path, os.path.join(w, "sz2"), "--codec", "zstd", "--json")
    r = json.loads(p.stdout)
    t.check("... and its result says 0 extra copies, overhead-bound, with the bytes beside it",
            r["extra_copies"] == 0 and r["overhead_bound"] is True and r["peak_extra_bytes"] > 0, r["peak_extra_bytes"])


def workflow():
    """The example GitHub Actions workflow is valid YAML and runs exactly README's commands."""
    import yaml  # Debian's python3-yaml
    root = os.path.join(HERE, "..", "..")
    wf = yaml.safe_load(open(os.path.join(root, ".github", "workflows", "tally.yml")))
    steps = [st for job in wf["jobs"].values() for st in job["steps"]]
    runs = [st["run"].replace("${{ matrix.shard }}", "K") for st in steps if "run" in st]
    readme = open(os.path.join(root, "README.md")).read()
    block = readme.split("## tally in your CI", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [x.strip() for x in block.strip().splitlines()]
    t.check("the workflow parses, with jobs and steps", isinstance(wf.get("jobs"), dict) and len(runs) >= 4, runs)
    t.check("every run step of the workflow is a command README gives", all(r in lines for r in runs),
            [r for r in runs if r not in lines])
    t.check("every command README gives is a step of the workflow", all(x in runs for x in lines),
            [x for x in lines if x not in runs])
    t.check("the reports are uploaded as artifacts, the check's verdicts into JUnit",
            any("upload-artifact" in st.get("uses", "") for st in steps) and any("--junit" in r and " check " in r
                                                                                   for r in runs))


def main():
    tally = os.path.abspath(sys.argv[1])
    w = tempfile.mkdtemp(prefix="tally-gate-")
    try:
        help_everywhere(tally)
        workflow()
        strict_numbers(tally, w)
        typos(tally, w)
        if "tracking: off" in run(tally, "--version").stdout:
            t.skip("small arrays, fail-closed, baseline, regression and shard checks", "tracking is off in this build")
        else:
            small_arrays(tally, w)
            untracked = fail_closed(tally, w)
            good, base = baseline_and_check(tally, w, untracked)
            store_figures(tally, w, good, base)
            copies_unseen(tally, w, good, base)
            library_tolerance(tally, w, good, base)
            regression(tally, w, base)
            shards(tally, w, good)
    finally:
        shutil.rmtree(w, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
