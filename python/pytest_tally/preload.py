"""tally's preload under pytest: finding it (tally preload-env), running pytest again under it, and
one test's window (tly_mark_begin_named / tly_mark_end_named) read back from TALLY_PROFILE_DIR."""

import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile

REEXEC = "PYTEST_TALLY_REEXEC"  # set in the environment pytest is run again with: never twice
OWNED_DIR = "PYTEST_TALLY_DIR"  # the TALLY_PROFILE_DIR the plugin made (and removes at the end)
ENTRIES = "PYTEST_TALLY_ENTRIES"  # where each process (xdist's workers) leaves its tests' results
TALLY_ENV = "PYTEST_TALLY_ENV"  # tally preload-env's lines, handed on to the run under the preload


def find_tally(option):
    """The tally executable: --tally-bin, else $TALLY_BIN, else `tally` on PATH; (path, how) or (None, why)."""
    for value, how in ((option, "--tally-bin"), (os.environ.get("TALLY_BIN"), "TALLY_BIN")):
        if value:
            return (value, how) if os.access(value, os.X_OK) else (None, f"{how} {value}: not an executable")
    found = shutil.which("tally")
    if found:
        return found, "PATH"
    return None, "no tally executable: give --tally-bin PATH (or TALLY_BIN), or put tally on PATH"


def preload_env(tally):
    """tally preload-env's lines as a dict ({} and the reason when it failed)."""
    try:
        p = subprocess.run([tally, "preload-env"], capture_output=True, text=True, timeout=60)
    except OSError as e:
        return {}, f"{tally} preload-env: {e}"
    if p.returncode != 0:
        return {}, f"{tally} preload-env: exit {p.returncode}: {p.stderr.strip()}"
    env = dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)
    return (env, None) if env.get("LD_PRELOAD") else ({}, f"{tally} preload-env printed no LD_PRELOAD")


def loaded():
    """The preload's mark functions when it is loaded in this process, else None."""
    try:
        lib = ctypes.CDLL(None)
        begin, end = lib.tly_mark_begin_named, lib.tly_mark_end_named
    except (AttributeError, OSError):
        return None
    begin.argtypes, begin.restype = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong], None
    end.argtypes, end.restype = [ctypes.c_char_p, ctypes.c_ulonglong], None
    return begin, end


def rerun(args, env_lines, say, out=None):
    """pytest run again as a child under the preload, with a TALLY_PROFILE_DIR of its own that is
    removed when it has ended (its processes write their whole-process windows as they exit);
    (exit status, None), or (None, why) when it could not start."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = env_lines["LD_PRELOAD"]
    directory = tempfile.mkdtemp(prefix="tally-pytest-")
    env.update({"TALLY_PROFILE_DIR": directory, OWNED_DIR: directory, REEXEC: "1",
                TALLY_ENV: json.dumps(env_lines)})
    for k in ("TALLY_PROFILE_OUT", "TALLY_PROFILE_ROOT"):
        env.pop(k, None)
    say(f"tally: running pytest again under the preload: LD_PRELOAD={env['LD_PRELOAD']}")
    try:
        child = subprocess.Popen([sys.executable, "-m", "pytest", *args], env=env)
    except OSError as e:
        shutil.rmtree(directory, ignore_errors=True)
        return None, f"cannot run {sys.executable} again: {e}"
    from . import resident

    sampler = resident.Sampler(child.pid)
    sampler.start()
    while True:
        try:
            rc = child.wait()
            break
        except KeyboardInterrupt:  # the child has it too (one process group): wait for its summary
            continue
    sampler.finish()
    shutil.rmtree(directory, ignore_errors=True)
    results = os.path.join(out, "results.json") if out else None
    if results and os.path.exists(results):
        try:
            resident.add_to_results(results, sampler)
        except (OSError, ValueError) as e:
            print(f"tally: {results}: the resident peaks could not be added: {e}", file=sys.stderr)
    return (rc if rc >= 0 else 128 - rc), None


class Window:
    """One test's window: begun, ended, and its result object read from TALLY_PROFILE_DIR."""

    def __init__(self, marks, directory, owned):
        self.begin_fn, self.end_fn = marks
        self.dir, self.owned = directory, owned
        self.prefix = f"{os.getpid()}."
        self.count = 0
        self.last = None  # (start_ns, seq) of this process's newest window file, read before a window opens

    def begin(self, array_bytes):
        """Open the window; nothing is listed or read inside it (the file's name is foreseen)."""
        if self.last is None:
            self.last = self._newest()
        self.count += 1
        self.name = f"pytest-{os.getpid()}-{self.count}".encode()
        self.path = f"{self.prefix}{self.last[0]}.{self.last[1] + 1}.json" if self.last else None
        self.begin_fn(self.name, b"write", array_bytes)

    def end(self):
        """Close the window; its result object (the preload wrote it at the end), or None."""
        self.end_fn(self.name, 0)
        for path in ([self.path] if self.path else []) + [None]:
            for f in [path] if path else self._mine():
                r = self._read(f)
                if r is not None:
                    start, seq = f.split(".")[1:3]
                    self.last = (start, int(seq))
                    return r
        return None

    def _read(self, f):
        try:
            with open(os.path.join(self.dir, f)) as fh:
                r = json.load(fh)
        except (OSError, ValueError):
            return None
        if (r.get("window") or {}).get("name") != self.name.decode() or r.get("incomplete"):
            return None
        if self.owned:
            os.unlink(os.path.join(self.dir, f))
        return r

    def _mine(self):
        return [f for f in os.listdir(self.dir) if f.startswith(self.prefix) and f.endswith(".json")]

    def _newest(self):
        best = max((f.split(".") for f in self._mine()), key=lambda p: int(p[2]), default=None)
        return (best[1], int(best[2])) if best else None
