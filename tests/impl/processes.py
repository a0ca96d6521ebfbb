#!/usr/bin/python3
"""tally profile over a program's processes, and named windows (issue 20, items 5 and 6).

  processes.py TALLY PRELOAD     prints one line per check; exits 1 on any failure, 77 when tracking is off

- `sh -c "python3 -c <numpy copy of 100 MB>"`: the headline is the Python process's (1 extra copy with
  --array-bytes), the shell is listed beside it;
- a multiprocessing pool of 2 workers (fork), each copying 100 MB: three processes, the two workers
  (ended by _exit) each with numpy's 1.00 array copied, the parent with none; the tree's totals;
- two named windows one after the other (write, then read, through TALLY_MARK_FD): two results,
  each with its own peak; the first is the headline;
- nested windows: the inner's peak its own, the outer's the higher of the inner's and its own before
  or after it, `end NAME`;
- `sh -c "exec python3 ..."`: the shell's image ended by exec with its figures, then Python's;
- `bash -c true`: exit 0 with a tracked result (bash's own getenv hid the preload's settings);
- a child killed by SIGKILL: listed as leaving no result;
- the preload alone with TALLY_PROFILE_OUT and one begin/end pair: the result it always wrote.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

ARRAY = 100_000_000
MIB = 1 << 20
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
NUMPY_COPY = ("import numpy as np; a = np.random.default_rng(0).random(25_000_000, dtype=np.float32); "
              "b = a.copy(); assert float(b[-1]) == float(a[-1])")
POOL = """
import multiprocessing as mp
import numpy as np
def work(i):
    a = np.ones(12_500_000)
    b = a.copy()
    return float(b[-1])
if __name__ == "__main__":
    mp.set_start_method("fork")
    p = mp.Pool(2)
    print(p.map(work, [0, 1], chunksize=1))
    p.close()
    p.join()
"""
MARKS = """
import os, numpy as np
fd = int(os.environ["TALLY_MARK_FD"])
def mark(s):
    os.write(fd, (s + "\\n").encode())
N = 100_000_000
"""
TWO = MARKS + """
mark(f"begin save write {N}")
a = np.ones(N // 8); b = a.copy()
del a, b
mark("end save 0")
mark(f"begin load read {N}")
c = np.ones(N // 8)
mark(f"end load {N}")
"""
NESTED = MARKS + """
mark(f"begin outer write {N}")
a = np.ones(N // 8)
mark(f"begin inner write {N}")
b = a.copy(); c = a.copy()
del b, c
mark("end 0")
d = a.copy()
del a, d
mark("end outer 0")
mark(f"begin late write {N}")
mark(f"begin early write {N}")
x = np.ones(N // 8)
del x
mark("end early 0")
y = np.ones(3 * N // 8)
del y
mark("end 0")
mark(f"begin carry write {N}")
z = np.ones(2 * N // 8)
del z
mark(f"begin small write {N}")
v = np.ones(N // 8)
del v
mark("end small 0")
mark("end carry 0")
"""
KILLED = ("import subprocess, time\n"
          "p = subprocess.Popen(['/usr/bin/python3', '-c', 'import time; print(\"up\", flush=True); time.sleep(60)'],\n"
          "                     stdout=subprocess.PIPE)\n"
          "p.stdout.readline(); p.kill(); p.wait()\n")


def profile(tally, w, *args):
    p = t.run(tally, "profile", "--out", os.path.join(w, "prof"), "--json", *args, timeout=300)
    try:
        r = json.loads(p.stdout[p.stdout.index("{"):])
    except ValueError:
        r = None
    return p, r


def windows(r, name):
    return [w for p in r["processes"] for w in p["windows"] if w["name"] == name]


def growth(w):
    return (w["peak_bytes"] - w["before_bytes"]) / ARRAY


def shell_in_front(tally, w):
    p, r = profile(tally, w, "--array-bytes", str(ARRAY), "--", "sh", "-c", f"/usr/bin/python3 -c '{NUMPY_COPY}'")
    if not t.check("sh -c 'python3 ...': exit 0 and a result", p.returncode == 0 and r, p.stderr[-400:]):
        return
    t.check("... the headline is the Python process's", "python3" in r["process"]["exe"], r["process"])
    t.check(f"... 1 extra copy ({r['peak_extra_ratio']:.3f} x array)", r["extra_copies"] == 1, r["peak_extra_ratio"])
    exes = [os.path.basename(p["exe"]) for p in r["processes"]]
    t.check(f"... the shell is listed beside it ({exes})", any(e in ("dash", "sh", "bash") for e in exes) and
            any(e.startswith("python3") for e in exes), exes)
    root = [p for p in r["processes"] if p["exit_status"] is not None]
    t.check("... the shell's exit status is the program's (0)", len(root) == 1 and root[0]["exit_status"] == 0, root)


def pool(tally, w):
    p, r = profile(tally, w, "--array-bytes", str(ARRAY), "--", "/usr/bin/python3", "-c", POOL)
    if not t.check("a multiprocessing pool of 2: exit 0 and a result", p.returncode == 0 and r, p.stderr[-400:]):
        return
    procs = r["processes"]
    t.check(f"... three processes, each with a result ({len(procs)})",
            len(procs) == 3 and all(x["result"] == "complete" for x in procs), [(x["pid"], x["result"]) for x in procs])
    workers = [x for x in procs if x["forked"]]
    copied = [x["windows"][0]["libraries"].get("numpy", {}).get("copied_bytes", 0) / ARRAY for x in workers]
    t.check(f"... the two workers (forked, ended by _exit) each copied 1.00 array in numpy ({copied})",
            len(workers) == 2 and all(abs(c - 1) <= 0.02 for c in copied) and
            all(x["ended"] == "_exit" for x in workers), copied)
    parent = [x for x in procs if not x["forked"]]
    t.check("... the parent copied no array",
            len(parent) == 1 and parent[0]["windows"][0]["libraries"].get("numpy", {}).get("copied_bytes", 0) < MIB,
            parent and parent[0]["windows"][0]["libraries"])
    t.check("... the headline is a worker's (the heap that grew most)", r["process"]["forked"], r["process"])
    tree = r["tree"]
    peaks = sum(x["peak_bytes"] for x in procs)
    t.check(f"... tree: peaks added {tree['peak_sum_bytes'] / MIB:.0f} MiB, at most "
            f"{tree['concurrent_peak_bytes'] / MIB:.0f} MiB at once (at least one worker's, at most the sum)",
            tree["peak_sum_bytes"] == peaks and max(x["peak_bytes"] for x in procs) <=
            tree["concurrent_peak_bytes"] <= peaks and tree["without_result"] == [], tree)
    text = t.run(tally, "profile", "--out", os.path.join(w, "prof-text"), "--", "/usr/bin/python3", "-c", POOL,
                 timeout=300)
    lines = [ln for ln in text.stderr.splitlines() if ln.startswith("  pid ")]
    t.check("... the text says which process held what: a line per process, the workers' naming numpy's copy",
            len(lines) == 3 and sum("numpy copied" in ln for ln in lines) == 2, lines)


def two_windows(tally, w):
    p, r = profile(tally, w, "--", "/usr/bin/python3", "-c", TWO)
    if not t.check("two named windows: exit 0 and a result", p.returncode == 0 and r, p.stderr[-400:]):
        return
    save, load = windows(r, "save"), windows(r, "load")
    if not t.check("... a result for each (save, load)", len(save) == 1 and len(load) == 1, r["processes"]):
        return
    t.check(f"... save's own peak: two arrays ({growth(save[0]):.3f})", 1.98 <= growth(save[0]) <= 2.1, save)
    t.check(f"... load's own peak: one array ({growth(load[0]):.3f}), its output", 0.98 <= growth(load[0]) <= 1.05
            and load[0]["op"] == "read" and load[0]["output_bytes"] == ARRAY, load)
    t.check("... the headline is the first marked window (save), with the keys reports read",
            r["window"]["name"] == "save" and r["marked"] and r["op"] == "write" and r["extra_copies"] == 2,
            (r["window"], r["extra_copies"]))


def nested(tally, w):
    p, r = profile(tally, w, "--", "/usr/bin/python3", "-c", NESTED)
    if not t.check("nested windows: exit 0 and a result", p.returncode == 0 and r, p.stderr[-400:]):
        return
    got = {n: windows(r, n) for n in ("outer", "inner", "late", "early", "carry", "small", "process")}
    if not t.check("... a result for each window", all(len(v) == 1 for v in got.values()), r["processes"]):
        return
    g = {n: v[0] for n, v in got.items()}
    t.check(f"... inner (two copies inside it): 2 arrays ({growth(g['inner']):.3f}), depth 2",
            1.98 <= growth(g["inner"]) <= 2.1 and g["inner"]["depth"] == 2, g["inner"])
    t.check(f"... outer: its array and the inner's two copies, 3 arrays ({growth(g['outer']):.3f}): the inner's "
            "peak kept though the counters restarted", 2.98 <= growth(g["outer"]) <= 3.1, g["outer"])
    # requested bytes: a 300 MB block is 3.000 arrays (320 MiB, 3.355, in jemalloc's size classes)
    t.check(f"... early (one array) {growth(g['early']):.3f}, late (its own later 300 MB block) {growth(g['late']):.3f}",
            0.98 <= growth(g["early"]) <= 1.05 and 2.98 <= growth(g["late"]) <= 3.05, (g["early"], g["late"]))
    t.check(f"... carry: its 2 arrays before small opened ({growth(g['carry']):.3f}), small its one "
            f"({growth(g['small']):.3f}): a peak before an inner window opened is kept",
            1.98 <= growth(g["carry"]) <= 2.1 and 0.98 <= growth(g["small"]) <= 1.05, (g["carry"], g["small"]))
    t.check("... the whole process's peak is at least the outer's", g["process"]["peak_bytes"] >= g["outer"]["peak_bytes"],
            (g["process"]["peak_bytes"], g["outer"]["peak_bytes"]))
    t.check("... each closed by its end", all(v["ended"] == "end" for n, v in g.items() if n != "process"), g)


def exec_hand_over(tally, w):
    p, r = profile(tally, w, "--", "sh", "-c", "exec /usr/bin/python3 -c 'x = bytearray(30_000_000)'")
    if not t.check("sh -c 'exec python3 ...': exit 0 and a result", p.returncode == 0 and r, p.stderr[-400:]):
        return
    procs = r["processes"]
    t.check("... two images of one pid: the shell's, ended by exec with its figures, then Python's with the exit status",
            len(procs) == 2 and procs[0]["pid"] == procs[1]["pid"] and procs[0]["ended"] == "exec" and
            procs[0]["result"] == "complete" and procs[1]["exe"].startswith("/usr/bin/python3") and
            procs[1]["exit_status"] == 0 and procs[0]["exit_status"] is None, procs)
    t.check("... the headline is Python's (30 MB), and the program's exit status is in it",
            r["peak_bytes"] - r["before_bytes"] >= 30_000_000 and r["impl_process"]["exit_status"] == 0,
            (r["peak_bytes"], r["impl_process"]))


def bash_true(tally, w):
    p, r = profile(tally, w, "--", "bash", "-c", "true")
    t.check("bash -c true: exit 0 with a tracked result", p.returncode == 0 and r and r["tracking"] is True,
            (p.returncode, p.stderr[-400:]))


def killed_child(tally, w):
    p, r = profile(tally, w, "--", "/usr/bin/python3", "-c", KILLED)
    if not t.check("a child killed by SIGKILL: exit 0 and a result", p.returncode == 0 and r, p.stderr[-400:]):
        return
    none = [x for x in r["processes"] if x["result"] == "none"]
    t.check("... the child is listed as leaving no result, in the tree too",
            len(none) == 1 and [g["pid"] for g in r["tree"]["without_result"]] == [none[0]["pid"]], r["processes"])


def single_pair(preload, w):
    out = os.path.join(w, "out.json")
    prog = ("import ctypes\nlib = ctypes.CDLL(None)\n"
            "lib.tly_mark_begin(b'write', ctypes.c_ulonglong(1000))\nx = bytearray(1 << 20)\n"
            "lib.tly_mark_end(ctypes.c_ulonglong(0))\n")
    env = dict(os.environ, LD_PRELOAD=f"{preload} {JEMALLOC}", TALLY_PROFILE_OUT=out)
    env.pop("TALLY_PROFILE_DIR", None)
    p = subprocess.run(["/usr/bin/python3", "-c", prog], env=env, capture_output=True, text=True, timeout=60)
    try:
        r = json.load(open(out))
    except (OSError, ValueError):
        r = None
    t.check("one begin/end pair, TALLY_PROFILE_OUT: the marked window's result as before",
            p.returncode == 0 and r and r["marked"] and r["op"] == "write" and r["marks_ignored"] == 0 and
            not r["end_missing"] and r["array_bytes"] == 1000 and r["peak_bytes"] - r["before_bytes"] >= 1 << 20,
            (p.stderr[-300:], r and {k: r[k] for k in ("marked", "op", "marks_ignored", "end_missing")}))


def main():
    tally, preload = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if "tracking: off" in t.run(tally, "--version").stdout:
        print("skip: tracking is off in this build (sanitizers own malloc): the preload cannot run")
        return 77
    if subprocess.run(["/usr/bin/python3", "-c", "import numpy"], capture_output=True).returncode != 0:
        print("skip: no numpy for /usr/bin/python3")
        return 77
    w = tempfile.mkdtemp(prefix="tally-processes-")
    try:
        shell_in_front(tally, w)
        pool(tally, w)
        two_windows(tally, w)
        nested(tally, w)
        exec_hand_over(tally, w)
        bash_true(tally, w)
        killed_child(tally, w)
        single_pair(preload, w)
    finally:
        shutil.rmtree(w, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
