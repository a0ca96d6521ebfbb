#!/usr/bin/python3
"""`tally bench --quick --json --filter ...` runs a few rows and prints the documented schema
(tally-bench/2): medians with their spreads, ratios null where a figure is unstable or a limit was
beaten, the layout's limits on strided rows; --help, --filter and --reps answer as documented. A
smoke test: no figure is asserted (throughput is the benchmark's to measure, not a unit test's), so
a run may exit 1 (a row invalid) as long as it says why.

  bench_smoke.py TALLY     prints the checks and "N passed, N failed"
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

# One strided uncompressed read, one compressed one-chunk write, one scaling row: about a minute on 2 cores.
FILTER = "^(read-local-none-16x4MiB|write-local-zstd-one-chunk|scaling-local-none-4x4-t1)$"
RATIOS = ("ratio_to_raw", "ratio_to_codec_limit", "ratio_to_layout_limit", "ratio_to_overlap_limit",
          "ratio_to_cpu_limit", "ratio_to_zarr_python", "ratio_to_untracked")
FIGURE = {"gbps", "gbps_min", "gbps_max", "spread", "unstable", "reps"}


def check_figures(r, reps):
    figs = r.get("figures", {})
    t.check(f"{r['name']}: every figure has its median, range, spread and {reps} repetitions",
            figs and all(FIGURE <= set(f) and len(f["reps"]) == reps for f in figs.values()), figs)
    t.check(f"{r['name']}: each median lies in its range", all(
        f["gbps_min"] <= f["gbps"] <= f["gbps_max"] for f in figs.values() if f["gbps"] is not None))
    strided = r["strided"]
    layout = ("raw_layout" if "-none-" in r["name"] else "codec_layout") if strided else r["limit"]
    t.check(f"{r['name']}: the layout's limit is {layout}", r["layout_limit"] == layout and layout in figs, r)


def check_ratios(r):
    figs = r["figures"]
    shaky = {name for name, f in figs.items() if f["unstable"] or f["gbps"] is None}
    none = "-none-" in r["name"]
    for k in RATIOS:
        den = {"ratio_to_raw": "raw", "ratio_to_codec_limit": "codec", "ratio_to_layout_limit": r["layout_limit"],
               "ratio_to_overlap_limit": r.get("overlap_limit"), "ratio_to_cpu_limit": r.get("cpu_limit"),
               "ratio_to_zarr_python": "zarr_python",
               "ratio_to_untracked": "untracked"}[k]
        applies = den in figs
        v, why = r[k], r["withheld"].get(k)
        if not applies:
            t.check(f"{r['name']}: {k} does not apply, null", v is None and why is None, r)
        elif "tally" in shaky or den in shaky:
            t.check(f"{r['name']}: {k} null, its figures unstable", v is None and why in ("unstable", "not measured"),
                    r)
        elif why == "invalid":
            t.check(f"{r['name']}: {k} withheld as invalid, and the row says so", v is None and r["invalid"]
                    and any(k in s and "invalid" in s for s in r["reasons"]), r)
        else:
            t.check(f"{r['name']}: {k} = {v:.3g} within its range, at most 1.05 if a physical limit (or at it within the noise, said)",
                    r[k + "_min"] <= v <= r[k + "_max"] and (v <= 1.05 or (r[k + "_min"] <= 1.05 and any(
                        s.startswith(f"at its limit: {k} ") for s in r["reasons"])) or k in ("ratio_to_zarr_python",
                                                             "ratio_to_untracked") or den in ("codec_layout",
                                                                                              "overlap_layout",
                                                                                              "cpu_layout")), r)
    t.check(f"{r['name']}: a CPU-shared limit on compressed rows, with the overlapped limit it comes with",
            (r.get("cpu_limit") is not None) == (not none) and (none or ({r["cpu_limit"], r["overlap_limit"]} <= set(figs)
                                                                         and len(figs[r["cpu_limit"]]["reps"]) ==
                                                                         len(figs[r["overlap_limit"]]["reps"]))), r)
    reach = r.get("overlap_reachable")
    t.check(f"{r['name']}: what the CPUs allow of the overlapped limit, on compressed rows, in (0, 1] within its range",
            "overlap_reachable" in r and (reach is None) == none and (none or 0 < r["overlap_reachable_min"] <= reach
                                                                      <= r["overlap_reachable_max"] <= 1.0 + 1e-9), r)
    t.check(f"{r['name']}: ratio_to_raw only on uncompressed rows",
            ("raw" in figs) == none and ("codec" in figs) == (not none), sorted(figs))
    status = "invalid" if r["invalid"] else "unstable" if r["unstable"] else "ok"
    t.check(f"{r['name']}: status {r['status']}, with reasons when not ok (an ok row's only: at its limit)",
            r["status"] in (status, "error") and (r["status"] == "ok") == (not [s for s in r["reasons"] if not s.startswith("at its limit: ")]), r)


def server_cpu(tally):
    """On S3 the CPU-shared limit counts the project's S3 server (its daemons' CPU from /proc), and
    only the server scripts/s3-server runs: a directory that holds none counts nothing."""
    if not (os.environ.get("AWS_ENDPOINT_URL") and os.environ.get("TALLY_S3_DIR")):
        t.skip("the S3 server's CPU in the overlapped S3 limit", "no scripts/s3-server environment")
        return
    spec = json.dumps({"scenario": "x", "kind": "overlap", "op": "read", "store": "s3", "codec": "zstd",
                       "codec_spec": "zstd:level=1", "dir": f"s3://{os.environ.get('TALLY_S3_BUCKET', 'tally')}/"
                       f"smoke-overlap-{os.getpid()}", "dtype": "<f4", "shape": [4096, 4096], "chunks": [1024, 1024],
                       "threads": 2, "io_concurrency": 8, "memory_limit": 64 << 20})
    pat = r"overlap: read [0-9.]+ s \(([0-9.]+) CPU s, of which the S3 server's (-?[0-9.]+)\)"
    p = t.run(tally, "bench-cell", spec)
    m = re.search(pat, p.stderr)
    t.check("an S3 overlapped limit's read counts the S3 server's CPU (more than 0, within the pass's)",
            p.returncode == 0 and m and 0 < float(m.group(2)) <= float(m.group(1)), p.stderr[-400:])
    p = t.run(tally, "bench-cell", spec, env=dict(os.environ, TALLY_S3_DIR=tempfile.gettempdir()))
    m = re.search(pat, p.stderr)
    t.check("with no server of the project's in TALLY_S3_DIR, none is counted (-1)",
            p.returncode == 0 and m and float(m.group(2)) == -1, p.stderr[-400:])


def main():
    tally = os.path.abspath(sys.argv[1])
    p = t.run(tally, "bench", "--help")
    t.check("tally bench --help exits 0 and names --filter, --reps, --compare",
            p.returncode == 0 and all(o in p.stdout for o in ("--filter", "--reps", "--compare", "--tolerance")),
            p.stdout + p.stderr)
    p = t.run(tally, "bench", "--quick", "--reps", "3")
    t.check("--reps below 5 is refused (exit 2)", p.returncode == 2, p.stderr)
    p = t.run(tally, "bench", "--quick", "--filter", "^no-such-row$", "--out", tempfile.gettempdir())
    t.check("a filter that matches no row is an error (exit 2)", p.returncode == 2 and "matches no row" in p.stderr,
            p.stderr)

    server_cpu(tally)
    out = tempfile.mkdtemp(prefix="tally-bench-smoke-")
    try:
        p = subprocess.run([tally, "bench", "--quick", "--json", "--filter", FILTER, "--out", out],
                           capture_output=True, text=True)
        doc = json.loads(p.stdout)
        rows = doc.get("rows", [])
        invalid = any(r["invalid"] for r in rows)
        t.check(f"tally bench --quick exits {1 if invalid else 0} ({'a row invalid' if invalid else 'none invalid'})",
                p.returncode == (1 if invalid else 0), p.stderr[-800:])
        t.check("schema tally-bench/2, 5 repetitions, the memory policy named",
                doc.get("schema") == "tally-bench/2" and doc.get("reps") == 5 and doc.get("memory_policy") ==
                "prefaulted" and doc.get("max_spread") == 0.25, {k: doc.get(k) for k in ("schema", "reps")})
        m = doc.get("machine", {})
        t.check("machine: cpus, mem_bytes, cpu_model, kernel", {"cpus", "mem_bytes", "cpu_model", "kernel"} <= set(m), m)
        names = [r["name"] for r in rows] + [r["name"] for r in doc.get("scaling", [])]
        t.check("--filter: the rows that match and no others", sorted(names) == sorted(
            ["read-local-none-16x4MiB", "write-local-zstd-one-chunk", "scaling-local-none-4x4-t1"]), names)
        keys = {"name", "key", "gbps", "gbps_min", "gbps_max", "spread", "peak_extra_bytes", "unstable", "invalid",
                "status", "reasons", "withheld"} | set(RATIOS) | {k + s for k in RATIOS for s in ("_min", "_max")}
        t.check(f"{len(rows)} rows with the schema", rows and all(keys <= set(r) for r in rows),
                [sorted(keys - set(r)) for r in rows])
        for r in rows:
            check_figures(r, 5)
            check_ratios(r)
        for r in doc.get("scaling", []):
            t.check(f"{r['name']}: write and read medians with their spreads",
                    {"write_gbps", "write_gbps_min", "write_gbps_max", "write_spread", "read_gbps", "read_spread",
                     "status"} <= set(r), r)
        md = open(f"{out}/bench.md").read()
        t.check("bench.md: medians and spreads, the policy, and rows not ok in words",
                "median" in md and "prefaulted" in md and all(
                    re.search(rf"\*\*{re.escape(r['name'])}\*\* is {r['status']}", md) for r in rows
                    if r["status"] != "ok"), md[-1500:])
        t.check("bench.json is the printed document", json.load(open(f"{out}/bench.json"))["rows"] == rows)
        head = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        t.check("the document names its date, its commit (this checkout's) and the command that made it",
                re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc.get("date", "")) and
                doc.get("command", "").startswith("tally bench ") and "--filter" in doc["command"] and
                doc.get("git_commit") == (head or None) and doc.get("took_s", 0) > 0 and
                f"commit {head[:12] or 'unknown'}" in md and f"`{doc['command']}`" in md, {k: doc.get(k) for k in
                                                                             ("date", "command", "git_commit")})
        again = os.path.join(out, "again")
        p = t.run(tally, "bench", "--judge", f"{out}/bench.json", "--out", again)
        doc2 = json.load(open(f"{again}/bench.json")) if p.returncode in (0, 1) else {}
        same = [r2["name"] for r, r2 in zip(rows, doc2.get("rows", [])) if r2["figures"] == r["figures"] and
                r2["status"] == r["status"] and all((r[k] is None) == (r2[k] is None) and (r[k] is None or abs(
                    r[k] - r2[k]) <= 1e-3 * abs(r[k])) for k in RATIOS + ("overlap_reachable",))]
        t.check("--judge: the run's figures unchanged, its ratios and verdicts again (to the stored digits), and who "
                "judged it when", p.returncode == (1 if invalid else 0) and len(same) == len(rows) and
                doc2.get("scaling") == doc["scaling"] and doc2.get("date") == doc["date"] and
                doc2.get("judged_again", {}).get("command", "").startswith("tally bench --judge") and
                "Judged again from that run's bench.json" in open(f"{again}/bench.md").read(),
                (p.returncode, same, p.stderr[-400:]))
        p = t.run(tally, "bench", "--judge", f"{out}/bench.md", "--out", again)
        t.check("--judge of a file that is not a bench document: exit 2, named", p.returncode == 2 and
                "bench.md" in p.stderr, p.stderr)
        p = t.run(tally, "bench", "--compare", f"{out}/bench.json", f"{out}/bench.json")
        t.check("--compare of a run with itself: exit 0, no regression", p.returncode == 0 and
                "0 regressions" in p.stdout, p.stdout + p.stderr)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
