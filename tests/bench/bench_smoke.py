#!/usr/bin/python3
"""`tally bench --quick --json` runs and prints the documented schema. A smoke test: no figure is
asserted (throughput is the benchmark's to measure, not a unit test's).

  bench_smoke.py TALLY     prints the checks and "N passed, N failed"
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402




def main():
    tally = os.path.abspath(sys.argv[1])
    out = tempfile.mkdtemp(prefix="tally-bench-smoke-")
    try:
        p = subprocess.run([tally, "bench", "--quick", "--json", "--out", out], capture_output=True, text=True)
        t.check("tally bench --quick --json exits 0", p.returncode == 0, p.stderr[-800:])
        doc = json.loads(p.stdout)
        m = doc.get("machine", {})
        t.check("machine: cpus, mem_bytes, cpu_model, kernel", {"cpus", "mem_bytes", "cpu_model", "kernel"} <= set(m), m)
        rows = doc.get("rows", [])
        keys = {"name", "gbps", "ratio_to_raw", "ratio_to_codec_limit", "ratio_to_zarr_python", "ratio_to_untracked",
                "peak_extra_bytes"}
        t.check(f"{len(rows)} rows with the schema", rows and all(keys <= set(r) for r in rows),
              [r for r in rows if not keys <= set(r)][:1])
        t.check("every row measured", all(isinstance(r["gbps"], (int, float)) and r["gbps"] > 0 for r in rows))
        for r in rows:
            none = "-none-" in r["name"]
            ok = (r["ratio_to_raw"] is not None) == none and (r["ratio_to_codec_limit"] is not None) == (not none)
            t.check(f"{r['name']}: the ratios that apply, null where they do not", ok, r)
        t.check("scaling table", isinstance(doc.get("scaling"), list) and len(doc["scaling"]) > 0)
        t.check("bench.md and bench.json written", os.path.getsize(f"{out}/bench.md") > 100 and
              json.load(open(f"{out}/bench.json"))["rows"] == rows)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
