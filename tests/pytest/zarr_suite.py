#!/usr/bin/python3
"""pytest --tally over zarr-python's own tests (Debian's python3-zarr ships them), gated by tally check.

  zarr_suite.py TALLY [-k EXPR]   one line per check; exit 1 on any failure, 77 when tracking is off
                                  or zarr's tests are not installed

The same outcome with and without --tally; one result per test; a baseline from one run passes a
second run; a copy planted in one test (numcodecs' BZ2 copies its input) fails exactly that test's
check, naming the figure. The default -k subset leaves out the tests whose data is random each run
(test_object_arrays_*, test_np_ufuncs: their figures move by up to 0.85 MiB run to run) and zarr
v3's (skipped here).
Every run has PYTHONMALLOC=malloc: pymalloc's 1 MiB arenas are anonymous mmaps, counted, and a test
whose window happens to take a new one moves by 1 MiB (README, "In a pytest suite").
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SUITE = "/usr/lib/python3/dist-packages/zarr/tests/test_core.py"
SUBSET = "(BZ2 or NoCompressor or DirectoryStore or WithPath) and not V3 and not object_arrays and not np_ufuncs"
PLANTED = "TestArrayWithBZ2Compressor::test_array_2d"
failures = 0


def check(what, ok, detail=""):
    global failures
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + ("" if ok else f"\n     {detail}"))


def pytest(tally, tmp, *args, env=None):
    e = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), HERE]), TALLY_BIN=tally,
             PYTHONMALLOC="malloc", **(env or {}))
    e.pop("LD_PRELOAD", None)
    cmd = [sys.executable, "-m", "pytest", "-p", "pytest_tally", "-p", "plant_copy", "-p", "no:cacheprovider",
           "-q", *args]
    return subprocess.run(cmd, cwd=tmp, env=e, capture_output=True, text=True, timeout=900)


def counts(p):
    last = (p.stdout.strip().splitlines() or [""])[-1]
    return dict((k, int(n)) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|xfailed)", last))


def main():
    tally = os.path.abspath(sys.argv[1])
    kexpr = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "-k" else SUBSET
    if "tracking: off" in subprocess.run([tally, "--version"], capture_output=True, text=True).stdout:
        print("skip: tracking is off in this build (sanitizers own malloc): the preload cannot run")
        return 77
    if not os.path.exists(SUITE):
        print(f"skip: {SUITE} is not installed (python3-zarr)")
        return 77
    with tempfile.TemporaryDirectory(prefix="tally-pytest-zarr-") as tmp:
        sel = [SUITE, "-k", kexpr]
        plain = pytest(tally, tmp, *sel)
        first = os.path.join(tmp, "first")
        tracked = pytest(tally, tmp, "--tally", "--tally-out", first, *sel)
        c0, c1 = counts(plain), counts(tracked)
        check(f"the same outcome with and without --tally: {c0}", c0 == c1 and c0.get("passed"),
              f"{c0} vs {c1}\n{tracked.stdout[-2000:]}{tracked.stderr[-2000:]}")
        import json

        with open(os.path.join(first, "results.json")) as f:
            res = json.load(f)["results"]
        check("one result per test", len(res) == sum(c0.values()), f"{len(res)} results, {c0}")
        base = os.path.join(tmp, "baseline.json")
        u = subprocess.run([tally, "check", "--baseline", base, "--update", first], capture_output=True, text=True)
        c = subprocess.run([tally, "check", "--baseline", base, first], capture_output=True, text=True)
        check("tally check --update, then tally check of that run: passes", u.returncode == 0 and c.returncode == 0,
              u.stdout + u.stderr + c.stdout[-2000:])
        again = os.path.join(tmp, "again")
        pytest(tally, tmp, "--tally", "--tally-out", again, *sel)
        c = subprocess.run([tally, "check", "--baseline", base, again], capture_output=True, text=True)
        check("a second run passes the gate", c.returncode == 0, c.stdout[-3000:])
        planted = os.path.join(tmp, "planted")
        p = pytest(tally, tmp, "--tally", "--tally-out", planted, *sel, env={"TALLY_PLANT_TEST": PLANTED})
        check("the planted copy leaves the tests' outcome as it was", counts(p) == c0, p.stdout[-1000:])
        c = subprocess.run([tally, "check", "--baseline", base, planted], capture_output=True, text=True)
        bad = [l for l in c.stdout.splitlines() if l.startswith("REGRESSION")]
        check("the planted copy fails exactly that test's check, naming the figure",
              c.returncode == 1 and bad and all(PLANTED in l for l in bad) and any("copies" in l for l in bad),
              c.stdout[-3000:])
        for l in bad:
            print(f"     {l}")
    print(f"{'FAILED' if failures else 'passed'}: {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
