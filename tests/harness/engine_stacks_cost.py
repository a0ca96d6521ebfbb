"""What the call stacks of tally's own cells cost (measured, never asserted): each cell run by
`tally run --impl tally`, alternately with stacks on and with TALLY_PROFILE_STACKS=0, RUNS times; the
window's wall time (the result's wall_s) and the process's CPU time, best of RUNS each, and the stacks
the window took with the time taking them took (the result's stacks.taken and taken_s, all threads).

usage: /usr/bin/python3 engine_stacks_cost.py TALLY CELL[,CELL...] [RUNS]   (prints; writes under $TMPDIR)
"""
import json
import os
import resource
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def once(tally, cell, mode, out):
    env = dict(os.environ)
    if mode == "off":
        env["TALLY_PROFILE_STACKS"] = "0"
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([tally, "run", "--impl", "tally", "--filter", f"^{cell}$", "--out", out],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"{cell} ({mode}): tally run failed: {p.stderr[-800:]}")
    with open(os.path.join(out, "results.json")) as f:
        r = json.load(f)["results"][0]
    st = r.get("stacks") or {}
    return r["wall_s"], (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), st.get("taken"), st.get("taken_s")


def main():
    tally, cells = os.path.abspath(sys.argv[1]), sys.argv[2].split(",")
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    res = {}
    with tempfile.TemporaryDirectory() as work:
        for i in range(runs):
            for cell in cells:
                for mode in (("on", "off") if i % 2 == 0 else ("off", "on")):  # neither always first
                    res.setdefault((cell, mode), []).append(once(tally, cell, mode, os.path.join(work, mode)))
    print(f"{'cell':34} {'wall on':>9} {'wall off':>9} {'ratio':>6} {'cpu on':>8} {'cpu off':>8} {'ratio':>6} "
          f"{'stacks':>7} {'taking them':>13}")
    for cell in cells:
        on, off = res[(cell, "on")], res[(cell, "off")]
        w1, w0 = min(x[0] for x in on), min(x[0] for x in off)
        c1, c0 = min(x[1] for x in on), min(x[1] for x in off)
        taken = min(x[3] for x in on)
        print(f"{cell:34} {w1 * 1e3:7.1f}ms {w0 * 1e3:7.1f}ms {w1 / w0:6.3f} {c1:7.3f}s {c0:7.3f}s {c1 / c0:6.3f} "
              f"{on[0][2]:7d} {taken * 1e3:10.1f} ms")
    print(f"(best of {runs}; wall: the window's; cpu: the cell's processes'; taking them: all threads, best)")


if __name__ == "__main__":
    main()
