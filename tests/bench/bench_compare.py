#!/usr/bin/python3
"""`tally bench --compare OLD.json NEW.json` on synthetic bench documents: a change counts only when
the two runs' ranges are apart and the medians differ by more than the tolerance; a ratio that drops
so is a regression (exit 1), GB/s that does is shown and does not fail. Nothing is timed here.

  bench_compare.py TALLY     prints the checks and "N passed, N failed"
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402


def fig(med, lo, hi):
    return {"gbps": med, "gbps_min": lo, "gbps_max": hi, "spread": (hi - lo) / med, "unstable": False}


def row(key, gbps, ratio, array_bytes=1 << 26, withheld=None):
    """A judged row as tally bench writes it (the fields --compare reads)."""
    r = {"name": key, "key": key, "array_bytes": array_bytes, "status": "ok", "withheld": {}}
    r.update({"gbps": gbps[0], "gbps_min": gbps[1], "gbps_max": gbps[2]})
    for k in ("ratio_to_raw", "ratio_to_codec_limit", "ratio_to_layout_limit", "ratio_to_zarr_python",
              "ratio_to_untracked"):
        r.update({k: None, k + "_min": None, k + "_max": None})
    if ratio is None:
        r["withheld"]["ratio_to_raw"] = withheld or "unstable"
        r["status"] = withheld or "unstable"
    else:
        r.update({"ratio_to_raw": ratio[0], "ratio_to_raw_min": ratio[1], "ratio_to_raw_max": ratio[2]})
    return r


def doc(rows, array_bytes=1 << 26, schema="tally-bench/2"):
    return {"schema": schema, "quick": True, "reps": 5, "array_bytes": array_bytes, "rows": rows, "scaling": []}


def compare(tally, work, old, new, *extra):
    paths = []
    for name, d in (("old.json", old), ("new.json", new)):
        paths.append(os.path.join(work, name))
        with open(paths[-1], "w") as f:
            json.dump(d, f)
    return t.run(tally, "bench", "--compare", *paths, *extra)


def main():
    tally = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="tally-bench-compare-")
    base = [row("read-local-none-chunks1024", (2.0, 1.9, 2.1), (0.90, 0.85, 0.95))]
    try:
        p = compare(tally, work, doc(base), doc(base))
        t.check("the same run: exit 0, every figure agrees", p.returncode == 0 and "2 agree" in p.stdout, p.stdout)

        slower = [row("read-local-none-chunks1024", (1.6, 1.5, 2.0), (0.72, 0.68, 0.86))]
        p = compare(tally, work, doc(base), doc(slower))
        t.check("20% slower but the ranges overlap: noise, exit 0", p.returncode == 0 and "REGRESSION" not in p.stdout,
                p.stdout)

        slower = [row("read-local-none-chunks1024", (1.6, 1.55, 1.65), (0.72, 0.70, 0.74))]
        p = compare(tally, work, doc(base), doc(slower))
        t.check("ranges apart and 20% slower: a regression, exit 1", p.returncode == 1, p.stdout)
        t.check("the regression names the row and the figure",
                "REGRESSION   read-local-none-chunks1024 ratio_to_raw" in p.stdout, p.stdout)
        t.check("GB/s apart and slower is shown, as slower", "slower       read-local-none-chunks1024 gbps" in p.stdout,
                p.stdout)

        machine = [row("read-local-none-chunks1024", (1.6, 1.55, 1.65), (0.90, 0.86, 0.94))]
        p = compare(tally, work, doc(base), doc(machine))
        t.check("GB/s 20% slower, ratios held: the machine, not a regression (exit 0)",
                p.returncode == 0 and "slower" in p.stdout and "REGRESSION" not in p.stdout, p.stdout)
        p = compare(tally, work, doc(base), doc(slower), "--tolerance", "0.25")
        t.check("within --tolerance 0.25: apart, not a regression (exit 0)",
                p.returncode == 0 and "apart" in p.stdout, p.stdout)

        p = compare(tally, work, doc(slower), doc(base))
        t.check("faster: an improvement, exit 0", p.returncode == 0 and "improvement" in p.stdout, p.stdout)

        full = [row("read-local-none-chunks1024", (1.0, 0.98, 1.02), (0.88, 0.84, 0.93), array_bytes=1 << 30)]
        p = compare(tally, work, doc(base), doc(full, array_bytes=1 << 30))
        t.check("quick against full: GB/s is not compared, ratios are", p.returncode == 0
                and "different arrays" in p.stdout and "1 agree" in p.stdout, p.stdout)

        shaky = [row("read-local-none-chunks1024", (2.0, 1.9, 2.1), None)]
        p = compare(tally, work, doc(base), doc(shaky))
        t.check("an unstable ratio is not compared, and says so", p.returncode == 0
                and "not compared read-local-none-chunks1024: ratio_to_raw (measured, unstable)" in p.stdout,
                p.stdout)

        p = compare(tally, work, doc(base), doc(base + [row("write-local-none-one-chunk", (1, 1, 1), (1, 1, 1))]))
        t.check("a row only in NEW is named", "only in NEW  write-local-none-one-chunk" in p.stdout, p.stdout)

        p = compare(tally, work, doc(base, schema="tally-bench/1"), doc(base))
        t.check("an old document is refused (exit 2)", p.returncode == 2 and "tally-bench/2" in p.stderr, p.stderr)
        p = t.run(tally, "bench", "--compare", os.path.join(work, "new.json"))
        t.check("--compare needs two files (exit 2)", p.returncode == 2, p.stderr)
        p = compare(tally, work, doc(base), doc(base), "--tolerance", "x")
        t.check("--tolerance must be a number (exit 2)", p.returncode == 2, p.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
