#!/usr/bin/python3
"""tally profile's three peaks against independent instruments (issue 20).

  peaks_crosscheck.py TALLY     one line per check; exit 1 on any failure, 77 when tracking is off

zarr-python 2.13 and GDAL 3.6 (when its Python binding is installed) write and read a 100 MB float32
array as one chunk, none / blosc / zstd, each a whole program:

- requested: `tally profile`'s peak (bytes asked for) less the anonymous mappings it counts at that
  peak, against heaptrack's "peak heap memory consumption" of the same program (heaptrack counts
  malloc's requested bytes, not mmap), within 0.03 x array;
- resident: tally's resident peak (sampled from outside by tally every ms) against this script's own
  sampler of the same run (RssAnon from /proc/PID/status of every process under tally, every ms),
  within 0.05 x array, with jemalloc keeping freed pages resident (MALLOC_CONF below) so that the
  peak is a plateau rather than a spike either sampler could miss on a loaded machine.
The difference of each is printed, so a drift shows before it fails.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402

N = 25_000_000
ARRAY = 4 * N
PROGRAM = {
    "zarr-python": """
import sys, numpy as np, zarr, numcodecs
op, codec, path = sys.argv[1:4]
comp = {"none": None, "blosc": numcodecs.Blosc(cname="lz4", clevel=5, shuffle=1), "zstd": numcodecs.Zstd(level=3)}[codec]
if op == "write":
    a = np.arange(%(n)d, dtype=np.float32) %% 1000
    a += np.random.default_rng(0).random(%(n)d, dtype=np.float32)
    z = zarr.open(path, mode="w", shape=(%(n)d,), chunks=(%(n)d,), dtype="f4", compressor=comp)
    z[:] = a
else:
    a = zarr.open(path, mode="r")[:]
    assert a.shape == (%(n)d,)
""" % {"n": N},
    "gdal": """
import sys, numpy as np
from osgeo import gdal
gdal.UseExceptions()
op, codec, path = sys.argv[1:4]
opts = ["BLOCKSIZE=%(n)d"] + {"none": [], "blosc": ["COMPRESS=BLOSC", "BLOSC_CNAME=lz4", "BLOSC_CLEVEL=5"],
                             "zstd": ["COMPRESS=ZSTD", "ZSTD_LEVEL=3"]}[codec]
if op == "write":
    a = np.arange(%(n)d, dtype=np.float32) %% 1000
    a += np.random.default_rng(0).random(%(n)d, dtype=np.float32)
    ds = gdal.GetDriverByName("ZARR").CreateMultiDimensional(path, [], ["FORMAT=ZARR_V2"])
    rg = ds.GetRootGroup()
    dim = rg.CreateDimension("x", None, None, %(n)d)
    arr = rg.CreateMDArray("array", [dim], gdal.ExtendedDataType.Create(gdal.GDT_Float32), opts)
    assert arr.WriteArray(a) == gdal.CE_None
    del arr, rg, ds
else:
    ds = gdal.OpenEx(path, gdal.OF_MULTIDIM_RASTER)
    a = ds.GetRootGroup().OpenMDArray("array").ReadAsArray()
    assert a.shape == (%(n)d,)
""" % {"n": N},
}


def available(stack):
    mod = {"zarr-python": "import zarr, numcodecs", "gdal": "from osgeo import gdal; assert gdal.GetDriverByName('ZARR')"}
    return subprocess.run(["/usr/bin/python3", "-c", mod[stack]], capture_output=True).returncode == 0


def fresh(op, store):
    """A write starts with no store (GDAL will not create over one)."""
    if op == "write":
        shutil.rmtree(store, ignore_errors=True)


def heaptrack_peak(w, cmd):
    out = os.path.join(w, "ht")
    for f in os.listdir(w):
        if f.startswith("ht."):
            os.unlink(os.path.join(w, f))
    subprocess.run(["heaptrack", "-o", out, *cmd], capture_output=True, check=True)
    text = subprocess.run(["heaptrack_print", "-f", out + ".zst"], capture_output=True, text=True).stdout
    line = next(l for l in text.splitlines() if "peak heap memory consumption" in l)
    v = line.split(":", 1)[1].strip()  # heaptrack prints decimal units: 1K = 1000
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(v[-1], 1)
    return float(v.rstrip("KMGB")) * scale


class Sampler(threading.Thread):
    """RssAnon of every process under `root` (from /proc/PID/status, each kept open and re-read with
    pread: ~20 us a sample), every ms; the highest per process. New processes are looked for every
    10 samples, so that a loaded machine does not stretch the period with directory walks."""

    def __init__(self, root):
        super().__init__(daemon=True)
        self.root, self.peak, self.stop, self.fds = root, {}, False, {}

    def children(self):
        todo = [self.root]
        while todo:
            p = todo.pop()
            try:
                for task in os.listdir(f"/proc/{p}/task"):
                    kids = [int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split()]
                    todo += kids
                    for k in kids:
                        if k not in self.fds:
                            try:
                                self.fds[k] = os.open(f"/proc/{k}/status", os.O_RDONLY)
                            except OSError:
                                pass
            except OSError:
                pass

    def run(self):
        tick = 0
        while not self.stop:
            if tick % 10 == 0:
                self.children()
            tick += 1
            for p, fd in list(self.fds.items()):
                try:
                    text = os.pread(fd, 4096, 0)
                except OSError:
                    continue
                at = text.find(b"RssAnon:")
                if at >= 0:
                    kb = int(text[at + 8:text.index(b"kB", at)])
                    self.peak[p] = max(self.peak.get(p, 0), kb * 1024)
            time.sleep(0.001)
        for fd in self.fds.values():
            os.close(fd)


def cell(tally, w, stack, op, codec, script, store):
    cmd = ["/usr/bin/python3", script, op, codec, store]
    out = os.path.join(w, "prof")
    fresh(op, store)
    # jemalloc keeps what the program frees resident for 10 s (no huge arena purging at once): each
    # process's resident peak is then a plateau both samplers reach, where a spike (a 100 MB buffer
    # freed the moment it was full) is what a 1 ms sampler on a loaded machine misses by up to 0.4 x
    # array, whichever sampler it is. The heap figures do not depend on it.
    env = dict(os.environ, MALLOC_CONF="oversize_threshold:0,dirty_decay_ms:10000,muzzy_decay_ms:10000")
    p = subprocess.Popen([tally, "profile", "--array-bytes", str(ARRAY), "--out", out, "--", *cmd],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    s = Sampler(p.pid)
    s.start()
    _, err = p.communicate()
    s.stop = True
    s.join()
    name = f"{stack} {op} {codec}"
    if p.returncode != 0:
        t.check(f"{name}: tally profile ran", False, err[-400:])
        return
    r = json.load(open(os.path.join(out, "results.json")))["results"][0]
    fresh(op, store)
    ht = heaptrack_peak(w, cmd)
    ours = r["peak_bytes"] - r["mmap_bytes"]
    d = (ours - ht) / ARRAY
    t.check(f"{name}: requested peak less mmaps {ours / 1e6:.1f} MB, heaptrack {ht / 1e6:.1f} MB: "
            f"{d:+.4f} x array (within 0.03)", abs(d) <= 0.03, (ours, ht))
    pid = r["impl_process"]["pid"]
    res = r["peaks"]["resident"]
    theirs = s.peak.get(pid)
    if res is None or theirs is None:
        t.check(f"{name}: both samplers saw the process", False, (res, sorted(s.peak)))
        return
    d = (res["peak_bytes"] - theirs) / ARRAY
    t.check(f"{name}: resident peak {res['peak_bytes'] / 1e6:.1f} MB, RssAnon sampled here "
            f"{theirs / 1e6:.1f} MB: {d:+.4f} x array (within 0.05)", abs(d) <= 0.05, (res, theirs))


def main():
    tally = os.path.abspath(sys.argv[1])
    if "tracking: off" in t.run(tally, "--version").stdout:
        print("skip: tracking is off in this build (sanitizers own malloc): the preload cannot run")
        return 77
    if not shutil.which("heaptrack"):
        t.check("heaptrack is installed (scripts/deps installs it)", False, None)
        return t.summary()
    w = tempfile.mkdtemp(prefix="tally-peaks-")
    try:
        for stack, program in PROGRAM.items():
            if not available(stack):
                print(f"skip: {stack}: not importable here")
                continue
            script = os.path.join(w, stack + ".py")
            open(script, "w").write(program)
            for codec in ("none", "blosc", "zstd"):
                store = os.path.join(w, f"{stack}-{codec}.zarr")
                for op in ("write", "read"):
                    cell(tally, w, stack, op, codec, script, store)
                shutil.rmtree(store, ignore_errors=True)
    finally:
        shutil.rmtree(w, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
