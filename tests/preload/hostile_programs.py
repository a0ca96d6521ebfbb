#!/usr/bin/python3
"""Hostile programs under the preload tracker: issue 25's reproductions (N3, N4, N5, N11, N12, N13, N14).

The preload must never change what a program does. Each program in tests/preload/hostile/ is compiled
here with cc and run three ways: plain, with the preload in its environment as tally profile sets it
(LD_PRELOAD, TALLY_PROFILE_OUT: the process's own exit status), and through `tally profile --out DIR`.
Their exit status, stdout and the files they write are compared byte for byte.

  closefrom   N3   closefrom(3), 1000 opens, a write to descriptor 1000: the bytes reach the file
  allocs      N4, N14  pvalloc, valloc, memalign and aligned_alloc with odd alignments, posix_memalign,
                   reallocarray and calloc overflow, malloc_usable_size: glibc's answers
  fsize       N5   RLIMIT_FSIZE 0: no SIGXFSZ, no partial result left, the failure said
  execs       N11  200 self-execs: no descriptor gathered on the way
  exit5       N13  _exit(5): status 5, and tally says it exited so, not "never started"
  sleeper     N12  SIGTERM, SIGINT, SIGHUP to tally profile: passed on to the program, waited for,
                   tally exits 128 + signal, no orphan, its temporary directory gone
  and N13's messages: TMPDIR that does not exist, an --out that cannot be made (before the program runs)

  hostile_programs.py TALLY PRELOAD [--skip REASON]
      one line per check and "N passed, N failed"; exits 1 on any failure, 77 when tracking is off
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile")
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
PROGRAMS = ("closefrom", "allocs", "fsize", "execs", "exit5", "sleeper")


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(77)


def tree(root):
    """Every file under root with its bytes: what a program wrote."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


class Runs:
    def __init__(self, tally, preload, work):
        self.tally, self.preload, self.work = tally, preload, work
        self.tmpdir = os.path.join(work, "tmp")  # tally profile's TMPDIR: must be empty after each run
        os.makedirs(self.tmpdir)

    def env(self, **extra):
        e = dict(os.environ, TMPDIR=self.tmpdir, **extra)
        for k in ("TALLY_PROFILE_ROOT", "TALLY_PROFILE_OUT", "TALLY_MARK_FD", "LD_PRELOAD"):
            e.pop(k, None)
        return e

    def run(self, how, name, args, cwd):
        """Run program @name one way; returns (completed process, files it wrote under cwd)."""
        os.makedirs(cwd)
        exe = os.path.join(self.work, "bin", name)
        env = self.env()
        cmd = [exe, *args]
        if how == "preloaded":
            out = os.path.join(self.work, f"result-{name}")
            os.makedirs(out, exist_ok=True)
            env.update(LD_PRELOAD=f"{self.preload} {JEMALLOC}", TALLY_PROFILE_OUT=os.path.join(out, "result.json"))
        elif how == "profiled":
            cmd = [self.tally, "profile", "--out", os.path.join(self.work, f"reports-{name}"), "--", *cmd]
        p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, timeout=120)
        return p, tree(cwd)

    def three(self, name, *args):
        """The program plain, preloaded and profiled, each in a directory of its own (args may name it: {dir})."""
        got = {}
        for how in ("plain", "preloaded", "profiled"):
            cwd = os.path.join(self.work, f"{name}-{how}")
            got[how] = self.run(how, name, [a.format(dir=cwd) for a in args], cwd)
        return got

    def tmp_clean(self, what):
        left = os.listdir(self.tmpdir)
        t.check(f"{what}: nothing left in TMPDIR", not left, left)


def same(name, got, statuses=("preloaded", "profiled")):
    """The program's exit status, stdout and files, preloaded and profiled, equal to its plain run's."""
    plain, files = got["plain"]
    for how in ("preloaded", "profiled"):
        p, f = got[how]
        if how in statuses:
            t.check(f"{name} {how}: exit status {p.returncode} == plain's {plain.returncode}",
                    p.returncode == plain.returncode, p.stderr.decode(errors="replace")[-400:])
        t.check(f"{name} {how}: stdout byte for byte", p.stdout == plain.stdout,
                (plain.stdout[-300:], p.stdout[-300:]))
        t.check(f"{name} {how}: the files it wrote byte for byte ({len(files)})", f == files,
                sorted(set(f.items()) ^ set(files.items()))[:3])


def closefrom(r):
    got = r.three("closefrom", "{dir}")
    t.check("closefrom plain: 1000 files, the one at descriptor 1000 holds the bytes",
            got["plain"][0].returncode == 0 and len(got["plain"][1]) == 1000, got["plain"][0].stdout)
    same("closefrom (N3)", got)
    r.tmp_clean("closefrom profiled")


def allocs(r):
    got = r.three("allocs")
    t.check("allocs plain: ran through", got["plain"][0].returncode == 0 and b"pvalloc(100)" in got["plain"][0].stdout)
    same("allocs (N4, N14)", got)


def fsize(r):
    got = r.three("fsize")
    same("fsize (N5)", got, statuses=("preloaded",))
    p = got["preloaded"][0]
    err = p.stderr.decode(errors="replace")
    t.check("fsize preloaded: the failed result is said (File too large)", "File too large" in err, err[-300:])
    left = os.listdir(os.path.join(r.work, "result-fsize"))
    t.check("fsize preloaded: no result and no partial file left", not left, left)
    p = got["profiled"][0]
    err = p.stderr.decode(errors="replace")
    t.check("fsize profiled: exit 2 (no figures), saying the program exited with status 0",
            p.returncode == 2 and "exited with status 0" in err, (p.returncode, err[-400:]))
    r.tmp_clean("fsize profiled")


def execs(r):
    got = r.three("execs")
    t.check("execs plain: no descriptor gained", got["plain"][0].stdout.endswith(b": 0\n"), got["plain"][0].stdout)
    same("execs (N11)", got)


def exit5(r):
    got = r.three("exit5")
    t.check("exit5 plain: status 5", got["plain"][0].returncode == 5)
    same("exit5 (N13)", got)
    err = got["profiled"][0].stderr.decode(errors="replace")
    t.check("exit5 profiled: tally says it exited with status 5 via _exit, not 'never started'",
            "exited with status 5" in err and "_exit" in err and "never started" not in err, err[-400:])
    r.tmp_clean("exit5 profiled")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def sleeper(r, sig):
    name = signal.Signals(sig).name
    d = os.path.join(r.work, f"sleeper-{name}")
    os.makedirs(d)
    pidfile, gotfile = os.path.join(d, "pid"), os.path.join(d, "got")
    cmd = [r.tally, "profile", "--out", os.path.join(d, "reports"), "--",
           os.path.join(r.work, "bin", "sleeper"), pidfile, gotfile]
    p = subprocess.Popen(cmd, env=r.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(200):
        if os.path.exists(pidfile) and open(pidfile).read().endswith("\n"):
            break
        time.sleep(0.05)
    pid = int(open(pidfile).read())
    p.send_signal(sig)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    orphan = alive(pid)  # as tally ends: a program that outlives it is an orphan
    if orphan:
        os.kill(pid, signal.SIGKILL)  # it holds tally's pipes open
    _, err = p.communicate(timeout=30)
    err = err.decode(errors="replace")
    t.check(f"{name} to tally profile: it exits 128 + {sig} as the program did", p.returncode == 128 + sig,
            (p.returncode, err[-300:]))
    got = int(open(gotfile).read()) if os.path.exists(gotfile) else None
    t.check(f"{name} to tally profile: the program got {name}", got == sig, got)
    t.check(f"{name} to tally profile: no orphan (pid {pid} is gone when tally ends)", not orphan)
    r.tmp_clean(f"{name} to tally profile")


def messages(r):
    marker = os.path.join(r.work, "ran")
    prog = ["/bin/sh", "-c", f"echo > {marker}"]
    p = subprocess.run([r.tally, "profile", "--out", os.path.join(r.work, "m1"), "--", *prog],
                       env=dict(r.env(), TMPDIR="/nonexistent"), capture_output=True, text=True, timeout=60)
    t.check("TMPDIR=/nonexistent: exit 2, the message names the path and the error",
            p.returncode == 2 and "/nonexistent" in p.stderr and "No such file or directory" in p.stderr,
            (p.returncode, p.stderr))
    p = subprocess.run([r.tally, "profile", "--out", "/proc/forbidden", "--", *prog],
                       env=r.env(), capture_output=True, text=True, timeout=60)
    t.check("--out /proc/forbidden: exit 2 naming the path and the error, before the program runs",
            p.returncode == 2 and "--out" in p.stderr and "/proc/forbidden" in p.stderr and "reports:" not in p.stderr
            and not os.path.exists(marker), (p.returncode, p.stderr, os.path.exists(marker)))
    r.tmp_clean("the refusals")


def tracking(r):
    """Whether the preload tracks here (jemalloc's hooks run): tally profile's result says."""
    p = subprocess.run([r.tally, "profile", "--json", "--out", os.path.join(r.work, "probe"), "--", "/bin/true"],
                       env=r.env(), capture_output=True, text=True, timeout=60)
    try:
        return json.loads(p.stdout).get("tracking") is True
    except ValueError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tally")
    ap.add_argument("preload")
    ap.add_argument("--skip")
    a = ap.parse_args()
    if a.skip:
        skip(a.skip)
    cc = shutil.which("cc")
    if cc is None:
        skip("no C compiler (cc) to build the hostile programs")
    with tempfile.TemporaryDirectory(prefix="tally-hostile-") as work:
        r = Runs(os.path.abspath(a.tally), os.path.abspath(a.preload), work)
        if not tracking(r):
            skip("tracking is off here: tally profile's result says tracking false")
        os.makedirs(os.path.join(work, "bin"))
        for name in PROGRAMS:
            c = subprocess.run([cc, "-O1", "-o", os.path.join(work, "bin", name), os.path.join(HERE, name + ".c")],
                               capture_output=True, text=True)
            if not t.check(f"{name}.c compiles", c.returncode == 0, c.stderr[-300:]):
                return t.summary()
        closefrom(r)
        allocs(r)
        fsize(r)
        execs(r)
        exit5(r)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            sleeper(r, sig)
        messages(r)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
