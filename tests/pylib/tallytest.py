"""What every Python test of tally shares: named checks, one line each, and the summary that sets the
exit status. A test that checked nothing fails (a test that cannot fail is no test).

    import tallytest as t
    t.check("put writes the array", ok, detail)
    sys.exit(t.summary())
"""
import subprocess

RESULTS = {"passed": 0, "failed": 0, "skipped": 0}


def check(name, ok, detail=""):
    """Count and print one check; returns ok."""
    RESULTS["passed" if ok else "failed"] += 1
    shown = "" if ok or detail in ("", None) else ": " + str(detail)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{shown}", flush=True)
    return bool(ok)


def skip(name, why):
    """Say that a check could not run here, and why (it does not count as passed)."""
    RESULTS["skipped"] += 1
    print(f"skip {name}: {why}", flush=True)


def run(*args, **kw):
    """subprocess.run with text output captured."""
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


def summary():
    """Print "N passed, N failed"; the exit status: 1 on a failure or when nothing was checked."""
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed"
          + (f", {RESULTS['skipped']} skipped" if RESULTS["skipped"] else ""))
    return 1 if RESULTS["failed"] or not RESULTS["passed"] else 0


def folded_sum(path):
    """A folded stacks file's (flamegraph.pl's format: frames joined by ';', a space, a count) total
    count and its number of lines; a line not in that format fails the test."""
    total, lines = 0, 0
    with open(path) as f:
        for line in f:
            frames, _, count = line.rstrip("\n").rpartition(" ")
            if not frames or not count.isdigit():
                raise AssertionError(f"{path}: not a folded line: {line!r}")
            total += int(count)
            lines += 1
    return total, lines
