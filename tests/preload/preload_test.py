"""The preload tracker (libtally-preload.so) in processes not built with tally: one case per run.

usage: preload_test.py CASE --preload SO --jemalloc SO [--planted EXE] [--skip REASON]

  numpy_marked    /usr/bin/python3 copies a 100 MB array inside marks (ctypes): extra_copies 1,
                  numpy holds both arrays at the peak, memcpy volume 1.00 charged to numpy
  numpy_unmarked  the same, whole process (no marks)
  planted         a C program and its libplanted.so: copy and block both 0.50 charged to libplanted
  mmap            a 100 MB anonymous mapping grown to 200 MB with mremap: the "mmap" line, in the peak
  node            Node through TALLY_MARK_FD around a 100 MB Buffer
  bad_out         TALLY_PROFILE_OUT in a missing directory: exit status unchanged, a message
  no_jemalloc     the preload without jemalloc: exit status unchanged, tracking false and why

Exit 77 (skipped, with the reason) when the case cannot run here: a sanitizer build (jemalloc's
hooks cannot run under ASan), no numpy in /usr/bin/python3, no node.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
ARRAY = 100_000_000


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(77)


def fail(msg, result=None):
    if result is not None:
        shown = {k: v for k, v in result.items() if k not in ("stages", "timeline")}
        print(json.dumps(shown, indent=1)[:6000])
    print(f"FAIL: {msg}")
    sys.exit(1)


def check(cond, msg, result=None):
    if not cond:
        fail(msg, result)
    print(f"ok: {msg}")


def near(value, want, tol):
    return value is not None and abs(value - want) <= tol


def run(opts, cmd, env_extra=None, preload=None):
    """Run @cmd under the preload; returns (completed process, result object or None)."""
    out = os.path.join(opts.tmp, "result.json")
    if os.path.exists(out):
        os.unlink(out)
    env = dict(os.environ)
    env.pop("TALLY_PROFILE_ROOT", None)
    env["LD_PRELOAD"] = preload if preload is not None else f"{opts.jemalloc} {opts.preload}"
    env["TALLY_PROFILE_OUT"] = out
    env.update(env_extra or {})
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    result = None
    if os.path.exists(out):
        with open(out) as f:
            result = json.load(f)
    return p, result


def common(r, marked):
    check(r is not None, "a result object was written")
    check(r["tracking"] is True and r["untracked_reason"] is None, "tracking is on", r)
    check(r["marked"] is marked, f"marked is {marked}", r)
    cov = r["coverage"]["ratio"]
    check(cov >= 0.99, f"coverage {cov:.4f} >= 0.99 (tracked live / jemalloc allocated since the hooks)", r)
    tl = r["timeline"]
    check(tl["columns"][:2] == ["t_s", "live"] and tl["columns"][-2:] == ["small", "mmap"], "timeline columns", r)
    peak_row = tl["samples"][tl["peak_index"]]
    check(peak_row[1] == r["peak_bytes"], "the timeline's peak sample is the peak", r)
    check(sum(peak_row[2:]) == peak_row[1], "the peak sample's columns add up to live", r)
    split = sum(v["at_peak_bytes"] for v in r["libraries"].values()) + r["small"]["at_peak_bytes"]
    split += r["mmap_bytes"] - tl["samples"][0][-1]
    check(split == r["peak_bytes"] - r["before_bytes"], "the at-peak split adds up to peak - baseline", r)


def lib_at_peak_max(r):
    return max(r["libraries"].items(), key=lambda kv: kv[1]["at_peak_bytes"])


def need_numpy():
    if subprocess.run([PYTHON, "-c", "import numpy"], capture_output=True).returncode != 0:
        skip(f"{PYTHON} has no numpy")


def case_numpy_marked(opts):
    need_numpy()
    p, r = run(opts, [PYTHON, os.path.join(HERE, "numpy_copy.py")])
    check(p.returncode == 0, "the script ran")
    common(r, True)
    check(r["op"] == "copy" and r["array_bytes"] == ARRAY, "op and array_bytes from tly_mark_begin", r)
    check(r["extra_copies"] == 1, f"extra_copies 1 (peak_extra_ratio {r['peak_extra_ratio']:.3f})", r)
    name, lib = lib_at_peak_max(r)
    check(name == "numpy", "numpy's library holds the most at the peak", r)
    check(lib["at_peak_bytes"] >= 2 * ARRAY, f"numpy holds both arrays at the peak ({lib['at_peak_bytes']} bytes)", r)
    check(near(lib["copies"], 1.0, 0.02), f"memcpy volume charged to numpy: {lib['copies']:.3f} arrays", r)
    check(lib["path"].endswith(".so") and "/numpy/" in lib["path"], "numpy's path", r)


def case_numpy_unmarked(opts):
    need_numpy()
    p, r = run(opts, [PYTHON, os.path.join(HERE, "numpy_copy.py"), "--unmarked"],
               {"TALLY_PROFILE_ARRAY_BYTES": str(ARRAY)})
    check(p.returncode == 0, "the script ran")
    common(r, False)
    check(r["op"] is None and r["array_bytes"] == ARRAY, "array_bytes from TALLY_PROFILE_ARRAY_BYTES", r)
    check(r["before_bytes"] < 1 << 20, "the whole-process window starts near nothing", r)
    lib = r["libraries"]["numpy"]
    check(lib["at_peak_bytes"] >= 2 * ARRAY, "numpy holds both arrays at the peak", r)
    check(lib["live_bytes"] == 0 and lib["frees"] == lib["allocs"], "numpy's arrays were freed by exit", r)
    check(near(lib["copies"], 1.0, 0.02), f"memcpy volume charged to numpy: {lib['copies']:.3f} arrays", r)
    check(r["peak_extra_ratio"] >= 2.0, "both arrays are extra without marks", r)


def case_planted(opts):
    p, r = run(opts, [opts.planted, str(ARRAY)])
    check(p.returncode == 0, "tally-planted ran")
    common(r, True)
    check("libplanted" in r["libraries"], "libplanted has a line of its own", r)
    lib = r["libraries"]["libplanted"]
    check(near(lib["copies"], 0.50, 0.02), f"copies charged to libplanted: {lib['copies']:.3f}", r)
    at_peak = lib["at_peak_bytes"] / ARRAY
    check(near(at_peak, 0.50, 0.02), f"libplanted at the peak: {at_peak:.3f}", r)
    check(near(r["peak_extra_ratio"], 0.50, 0.02), f"peak_extra_ratio {r['peak_extra_ratio']:.3f}", r)
    exe = os.path.basename(opts.planted)
    check(r["libraries"].get(exe, {}).get("copied_bytes", 0) == 0, "nothing copied charged to the program", r)


def case_mmap(opts):
    p, r = run(opts, [opts.planted, str(ARRAY), "0", "mmap"])
    check(p.returncode == 0, "tally-planted mapped, grew and unmapped")
    common(r, True)
    check(r["mmap_count"] == 2, "the mapping and its mremap'd successor were counted", r)
    check(r["mmap_peak_bytes"] >= 2 * ARRAY, f"mmap's own peak {r['mmap_peak_bytes']} >= 2 arrays", r)
    check(r["mmap_bytes"] >= 2 * ARRAY and r["peak_extra_bytes"] >= 2 * ARRAY, "the mapping is in the peak", r)
    check(r["timeline"]["samples"][-1][-1] == 0, "and gone at the end (munmap)", r)
    check(r["coverage"]["tracked_live_bytes"] < ARRAY // 10, "coverage counts the heap, not the mapping", r)


def case_node(opts):
    node = shutil.which("node")
    if node is None:
        skip("no node on PATH")
    p, r = run(opts, [node, os.path.join(HERE, "node_buffer.js"), str(ARRAY)])
    check(p.returncode == 0 and "marks on" in p.stdout, "node ran with TALLY_MARK_FD")
    common(r, True)
    check(r["op"] == "write" and r["array_bytes"] == ARRAY, "begin write N through the descriptor", r)
    check(r["peak_extra_bytes"] >= ARRAY, "the Buffer is in the peak", r)
    name, lib = lib_at_peak_max(r)
    check(lib["at_peak_bytes"] >= ARRAY, f"the Buffer is charged to {name}", r)
    print(f"note: the Buffer lands in {name!r}; mmap at the peak: {r['mmap_bytes']} bytes")


def case_bad_out(opts):
    missing = os.path.join(opts.tmp, "no-such-dir", "result.json")
    env = dict(os.environ, LD_PRELOAD=f"{opts.jemalloc} {opts.preload}", TALLY_PROFILE_OUT=missing)
    env.pop("TALLY_PROFILE_ROOT", None)
    for cmd, status in (([opts.planted, "1000000", "3"], 3),
                        ([PYTHON, "-c", "import sys; sys.exit(5)"], 5)):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        sys.stderr.write(p.stderr)
        check(p.returncode == status, f"{os.path.basename(cmd[0])} exits {status} as it would without the preload")
        check("TALLY_PROFILE_OUT" in p.stderr and "No such file or directory" in p.stderr,
              "stderr says the output directory is missing")
        check(not os.path.exists(os.path.dirname(missing)), "nothing was created")


def case_no_jemalloc(opts):
    p, r = run(opts, [opts.planted, "1000000", "4"], preload=opts.preload)
    check(p.returncode == 4, "exit status unchanged without jemalloc")
    check(r is not None and r["tracking"] is False, "a result that says tracking is off", r)
    check("jemalloc" in (r["untracked_reason"] or ""), f"and why: {r['untracked_reason']}", r)

def case_planted_rows(opts):
    """Every copy counted (issue 20): 100 MB copied in 20,000-byte memcpys from libplanted, each under
    the 64 KiB that was once the threshold, is 1.00 x array charged to libplanted, in the mid band,
    as many calls and bytes as the library itself counted."""
    p, r = run(opts, [opts.planted, str(ARRAY), "0", "rows"])
    check(p.returncode == 0, "tally-planted copied its rows")
    common(r, True)
    m = re.search(r"rows: (\d+) bytes in (\d+) memcpy calls", p.stdout)
    check(m is not None, "the program counted its own copies", p.stdout)
    own_bytes, own_calls = int(m.group(1)), int(m.group(2))
    check(own_bytes == ARRAY and own_calls == ARRAY // 20000, f"{own_calls} calls, {own_bytes} bytes", p.stdout)
    check("libplanted" in r["libraries"], "libplanted has a line of its own", r)
    lib = r["libraries"]["libplanted"]
    check(near(lib["copies"], 1.00, 0.02), f"copies charged to libplanted: {lib['copies']:.3f} x array", r)
    mid = lib["copy_bands"]["mid"]
    check(mid["count"] == own_calls and mid["bytes"] == own_bytes,
          f"libplanted's mid band (4-64 KiB) is the library's own count: {mid} vs {own_calls} calls", r)
    check(lib["copy_count"] == sum(b["count"] for b in lib["copy_bands"].values())
          and lib["copied_bytes"] == sum(b["bytes"] for b in lib["copy_bands"].values()),
          "copy_count and copied_bytes are the bands' sums", r)
    check(lib["copy_bands"]["large"]["count"] == 0, "no large copies", r)
    stage = sum(s["copy_bytes"] for s in r["stages"].values())
    check(stage < ARRAY // 100, f"copies under TALLY_PROFILE_COPY_MIN are not in the stages' ledger ({stage})", r)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--preload")
    ap.add_argument("--jemalloc", default="/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    ap.add_argument("--planted")
    ap.add_argument("--skip")
    opts = ap.parse_args()
    if opts.skip:
        skip(opts.skip)
    with tempfile.TemporaryDirectory(prefix="tally-preload-") as tmp:
        opts.tmp = tmp
        CASES[opts.case](opts)
    print("PASS")


if __name__ == "__main__":
    main()
