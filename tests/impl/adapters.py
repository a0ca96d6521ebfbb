#!/usr/bin/python3
"""The adapters of harness/impl (docs/impl-protocol.md), each on small cells, as `tally run` starts them.

  adapters.py SOURCE_DIR BUILD_DIR

For every adapter whose --probe says available: a [512, 512] float32 array in chunks of [256, 256]
and [512, 512], each codec (none, blosc, zstd) and format (v2, v3), written and read, each cell in a
fresh directory of its own with a cell file and a data .npy made here. Checked: the exit status, one
JSON result line, the status the stack's support says (ok, or skipped with a reason), verified true,
nothing left beside the cell and the data; the marks (a stand-in for the preload's tly_mark_begin/end,
compiled here and loaded with LD_PRELOAD; zarrita through TALLY_MARK_FD) are one begin/end pair with
the array's bytes and the output's. Errors: a garbage cell file and a missing data file exit 1 with
a reason naming what failed; a codec the library rejects fails and leaves nothing behind.
TensorStore: its probe says unavailable with a reason where it is not importable (here).
The S3 cells of GDAL, zarr-python (through harness/impl/s3_boto3_store.py, where boto3 is importable)
and zarrita (writes through presigned PUTs; a read without the harness's fixture is skipped) run when
AWS_ENDPOINT_URL and TALLY_S3_BUCKET are set (scripts/s3-server env), and must leave no object under
their prefix; otherwise they are skipped, saying so.

Prints one line per case and a closing "N passed, N failed" line; exits 1 when any case failed.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

try:
    import boto3  # noqa: F401  (zarr-python's S3 cells go through harness/impl/s3_boto3_store.py)
    BOTO3 = True
except ImportError:
    BOTO3 = False

SRC, BUILD = (os.path.abspath(a) for a in sys.argv[1:3]) if len(sys.argv) == 3 else (None, None)
if SRC is None:
    print(__doc__, file=sys.stderr)
    sys.exit(2)
IMPL = os.path.join(SRC, "harness", "impl")
sys.path.insert(0, IMPL)
import tally_adapter  # noqa: E402  (its S3 listing checks what the S3 cells left)

RESULTS = {"passed": 0, "failed": 0, "skipped": 0}
SHAPE = [512, 512]
CODECS = {
    "none": {"id": "none"},
    "blosc": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
    "zstd": {"id": "zstd", "level": 3, "checksum": False},
}
ADAPTERS = {
    "zarr-python": ["/usr/bin/python3", os.path.join(IMPL, "zarr_python.py")],
    "gdal": ["/usr/bin/python3", os.path.join(IMPL, "gdal.py")],
    "tensorstore": ["/usr/bin/python3", os.path.join(IMPL, "tensorstore.py")],
    "zarrita": ["node", os.path.join(IMPL, "zarrita.mjs")],
    "nczarr": [os.path.join(BUILD, "tally-impl-nczarr")],
}

FAKE_MARKS = r"""
#include <stdio.h>
#include <stdlib.h>
static void line(const char *fmt, const char *s, unsigned long long n) {
    const char *path = getenv("TALLY_FAKE_MARKS");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (!f) return;
    fprintf(f, fmt, s, n);
    fclose(f);
}
void tly_mark_begin(const char *op, unsigned long long n) { line("begin %s %llu\n", op, n); }
void tly_mark_end(unsigned long long n) { line("end%s %llu\n", "", n); }
void tly_mark_push(const char *stage) { line("push %s%llu\n", stage, 0); }
void tly_mark_pop(void) { line("pop%s%llu\n", "", 0); }
"""


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + detail}", flush=True)


def skip_case(name, why):
    RESULTS["skipped"] += 1
    print(f"skip {name}: {why}", flush=True)


def secrets():
    return [v for v in (os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_SESSION_TOKEN")) if v]


def run(cmd, env=None, pass_fds=()):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, pass_fds=pass_fds)
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    try:
        result = json.loads(lines[-1]) if len(lines) == 1 else None
    except ValueError:
        result = None
    return p, result


def probe(name):
    p, r = run(ADAPTERS[name] + ["--probe"])
    return p, r


def expected(name, cell, probe_line):
    """What the stack's support says the cell must be: "ok" or "skipped"."""
    fmt, store, codec = cell["format"], cell["store"], cell["codec"]
    if name == "zarr-python":
        return "ok" if fmt == "v2" and (store == "local" or BOTO3) else "skipped"
    if name == "gdal":
        return "ok" if fmt == "v2" else "skipped"
    if name == "zarrita":
        # on S3 it reads only a fixture the harness writes (tally run's s3_fixture): none here
        return "ok" if fmt == "v3" and (store == "local" or cell["op"] == "write") else "skipped"
    if name == "nczarr":
        return "ok" if fmt == "v2" and store == "local" and probe_line["codecs"].get(codec) else "skipped"
    return "ok"  # tensorstore, where importable: everything


def make_cell(work, name, op, store, fmt, codec, chunks, cc=None):
    scenario = f"{op}-{store}-{codec}-{fmt}-{chunks[0]}x{chunks[1]}"
    if store == "local":
        url = os.path.join(work, "array")
    else:
        url = f"s3://{os.environ['TALLY_S3_BUCKET']}/tally-test-impl/{os.getpid()}-{name}-{scenario}"
    cell = {"scenario": scenario, "impl": name, "op": op, "store": store, "format": fmt, "layout": "small",
            "codec": codec, "codec_config": cc or CODECS[codec], "dtype": "<f4", "shape": SHAPE,
            "chunks": chunks, "threads": 2, "memory_limit": 67108864,
            "data_path": os.path.join(work, "data.npy"), "url": url, "verify": True}
    path = os.path.join(work, "cell.json")
    with open(path, "w") as f:
        json.dump(cell, f)
    return cell, path


def marks_env(name, work, fake_lib):
    """The environment (and fds) that make the adapter send marks to a file we read afterwards."""
    out = os.path.join(work, "..", f"marks-{os.path.basename(work)}.txt")
    env = dict(os.environ)
    env.pop("TALLY_MARK_FD", None)
    fds = ()
    if name == "zarrita":
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        env["TALLY_MARK_FD"] = str(fd)
        fds = (fd,)
    elif fake_lib:
        env["LD_PRELOAD"] = fake_lib
        env["TALLY_FAKE_MARKS"] = out
    else:
        return env, fds, None
    return env, fds, out


def left_behind(cell, work):
    extra = sorted(set(os.listdir(work)) - {"data.npy", "cell.json"})
    if cell["store"] == "s3":
        bucket, prefix = tally_adapter.split_s3_url(cell["url"])
        extra += tally_adapter.s3_list(bucket, prefix)
    return extra


def run_cell(name, cell, path, work, probe_line, fake_lib, want=None):
    label = f"{name} {cell['scenario']}"
    env, fds, marks = marks_env(name, work, fake_lib)
    try:
        p, r = run(ADAPTERS[name] + ["--cell", path], env=env, pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    want = want or expected(name, cell, probe_line)
    problems = []
    if r is None:
        problems.append(f"no single JSON line on stdout: {p.stdout[-300:]!r} (stderr {p.stderr[-300:]!r})")
    else:
        if r.get("impl") != name or r.get("scenario") != cell["scenario"]:
            problems.append(f"impl/scenario {r.get('impl')!r}/{r.get('scenario')!r}")
        if r.get("status") != want:
            problems.append(f"status {r.get('status')!r} (want {want}): {r.get('reason')}")
        if want == "ok" and r.get("verified") is not True:
            problems.append("not verified")
        if want != "ok" and not (isinstance(r.get("reason"), str) and len(r["reason"]) > 10):
            problems.append(f"no reason: {r.get('reason')!r}")
        if want == "ok" and not r.get("impl_version"):
            problems.append("no impl_version")
    if p.returncode != (1 if want == "failed" else 0):
        problems.append(f"exit {p.returncode}: {p.stderr[-300:]}")
    if any(s in p.stdout + p.stderr for s in secrets()):
        problems.append("a secret was printed")
    left = left_behind(cell, work)
    if left:
        problems.append(f"left behind: {left[:5]}")
    if want == "ok" and marks:
        try:
            with open(marks) as f:
                got = f.read().split("\n")[:-1]
            os.unlink(marks)
        except OSError as e:
            got = [str(e)]
        nbytes = int(np.prod(SHAPE)) * 4
        want_marks = [f"begin {cell['op']} {nbytes}", f"end {nbytes if cell['op'] == 'read' else 0}"]
        if got != want_marks:
            problems.append(f"marks {got} (want {want_marks})")
        if r and r.get("extra", {}).get("marked") is not True:
            problems.append("extra.marked is not true under the marks")
    elif marks and os.path.exists(marks):
        os.unlink(marks)
    check(label, not problems, "; ".join(problems))
    return r


def fake_marks_lib(tmp):
    cc = shutil.which("cc")
    if not cc:
        return None
    src, lib = os.path.join(tmp, "fake_marks.c"), os.path.join(tmp, "libfake-marks.so")
    with open(src, "w") as f:
        f.write(FAKE_MARKS)
    p = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", lib, src], capture_output=True, text=True)
    return lib if p.returncode == 0 else None


def errors(name, tmp, probe_line):
    """A garbage cell, a missing data file, a codec the library rejects: exit 1, a reason, nothing left."""
    work = tempfile.mkdtemp(prefix=f"err-{name}-", dir=tmp)
    path = os.path.join(work, "cell.json")
    with open(path, "w") as f:
        f.write("{this is not json")
    p, r = run(ADAPTERS[name] + ["--cell", path])
    ok = (p.returncode == 1 and r is not None and r.get("status") == "failed" and path in (r.get("reason") or "")
          and "json" in r["reason"].lower() and p.stderr.strip() != "")
    check(f"{name} garbage cell file: exit 1, failed, a reason naming the file", ok,
          f"exit {p.returncode}, line {r}, stderr {p.stderr[-200:]!r}")

    # A cell the stack runs (v2 for most, v3 for zarrita), whose data file is not there.
    fmt = "v3" if name == "zarrita" else "v2"
    cell, path = make_cell(work, name, "write", "local", fmt, "none", [256, 256])
    p, r = run(ADAPTERS[name] + ["--cell", path])
    ok = (p.returncode == 1 and r is not None and r.get("status") == "failed"
          and cell["data_path"] in (r.get("reason") or "") and not os.path.exists(cell["url"]))
    check(f"{name} missing data file: exit 1, failed, the reason names the file", ok,
          f"exit {p.returncode}, line {r}")

    # Codec names come from tally's registry (the cell's "codecs", as tally run writes it): one the
    # adapter does not configure is skipped with a reason, one not in the list is refused.
    registry = ["none", "blosc", "zstd", "gzip", "zlib"]
    for codec, want in (("gzip", "skipped"), ("lzma", "failed")):
        cell, path = make_cell(work, name, "write", "local", fmt, codec, [256, 256], {"id": codec})
        cell["codecs"] = registry
        with open(path, "w") as f:
            json.dump(cell, f)
        p, r = run(ADAPTERS[name] + ["--cell", path])
        reason = (r or {}).get("reason") or ""
        ok = (r is not None and r.get("status") == want and p.returncode == (0 if want == "skipped" else 1)
              and (f"does not configure {codec}" in reason if want == "skipped" else "lzma" in reason))
        check(f"{name} a {codec} cell: {want}, a reason naming it", ok, f"exit {p.returncode}, line {r}")

    # blosc with a compressor name no library has: the write fails after the array was begun.
    if name == "nczarr" and not probe_line["codecs"].get("blosc"):
        skip_case(f"{name} rejected codec", "no blosc filter here")
    else:
        # (random data: GDAL writes no chunk that holds only zeros, so it would never compress one)
        np.save(os.path.join(work, "data.npy"), np.random.default_rng(1).random(SHAPE, dtype=np.float32))
        cc = dict(CODECS["blosc"], cname="nosuchcodec")
        cell, path = make_cell(work, name, "write", "local", fmt, "blosc", [256, 256], cc)
        run_cell(name, cell, path, work, probe_line, None, want="failed")


def main():
    tmp = tempfile.mkdtemp(prefix="tally-test-impl-")
    try:
        fake_lib = fake_marks_lib(tmp)
        if not fake_lib:
            skip_case("marks through LD_PRELOAD", "no C compiler to build the stand-in")
        data = np.random.default_rng(7).random(SHAPE, dtype=np.float32)
        s3 = bool(os.environ.get("AWS_ENDPOINT_URL") and os.environ.get("TALLY_S3_BUCKET"))
        for name in ADAPTERS:
            if name == "nczarr" and not os.path.exists(ADAPTERS[name][0]):
                skip_case(name, f"{ADAPTERS[name][0]} is not built (netCDF-C not found by CMake)")
                continue
            p, pl = probe(name)
            if pl is None or p.returncode != 0 or pl.get("impl") != name or "available" not in pl:
                check(f"{name} --probe", False, f"exit {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr[-300:]!r}")
                continue
            if not pl["available"]:
                ok = isinstance(pl.get("reason"), str) and pl["reason"] != ""
                if name == "tensorstore":
                    check(f"{name} --probe: unavailable with a reason ({pl.get('reason')})", ok, f"{pl}")
                    work = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp)
                    np.save(os.path.join(work, "data.npy"), data)
                    cell, path = make_cell(work, name, "write", "local", "v3", "zstd", [256, 256])
                    run_cell(name, cell, path, work, pl, fake_lib, want="skipped")
                else:
                    check(f"{name} --probe: available", False, f"{pl}")
                continue
            check(f"{name} --probe: available, version {pl.get('version')}", bool(pl.get("version")), f"{pl}")
            on_s3 = name in ("gdal", "zarr-python", "zarrita")
            stores = ["local"] + (["s3"] if on_s3 and s3 else [])
            if on_s3 and not s3:
                skip_case(f"{name} s3 cells", "AWS_ENDPOINT_URL and TALLY_S3_BUCKET are not set (scripts/s3-server env)")
            for store in stores:
                for fmt in ("v2", "v3"):
                    for codec in CODECS:
                        for chunks in ([256, 256], [512, 512]):
                            for op in ("write", "read"):
                                work = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp)
                                np.save(os.path.join(work, "data.npy"), data)
                                cell, path = make_cell(work, name, op, store, fmt, codec, chunks)
                                run_cell(name, cell, path, work, pl, fake_lib)
                                shutil.rmtree(work)
            errors(name, tmp, pl)
        if s3 and "gdal" in ADAPTERS:
            # S3 errors: wrong credentials fail with a reason that holds no secret.
            work = tempfile.mkdtemp(prefix="gdal-s3-err-", dir=tmp)
            np.save(os.path.join(work, "data.npy"), data)
            cell, path = make_cell(work, "gdal", "write", "s3", "v2", "none", [256, 256])
            env = dict(os.environ, AWS_SECRET_ACCESS_KEY="not-the-secret-0123456789")
            p, r = run(ADAPTERS["gdal"] + ["--cell", path], env=env)
            ok = (p.returncode == 1 and r is not None and r.get("status") == "failed" and r.get("reason")
                  and "not-the-secret-0123456789" not in p.stdout + p.stderr)
            check("gdal s3 wrong credentials: failed, a reason, no secret printed", ok,
                  f"exit {p.returncode}, line {r}, stderr {p.stderr[-200:]!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed, {RESULTS['skipped']} skipped")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
