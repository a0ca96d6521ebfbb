"""A test's window as one of tally's results: the figures derived as harness/cell/figures.c derives
them, the budgets of its ``tally`` marker checked, and the results document `tally check` reads."""

import json
import math
import os
import re
import time

FIXED_OVERHEAD = 16 << 20  # TLY_H_FIXED_OVERHEAD: a peak extra under it is never counted as copies
UNEXPLAINED_MIN = 0.75  # TLY_H_UNEXPLAINED_MIN
RESULTS_SCHEMA = "tally-results/2"
NAME_MAX = 200  # a cell's name in a results file (harness/report/schema.c)
TIMELINE_CAP = 128
MARKER_KEYS = ("array_bytes", "peak_extra", "extra_copies", "copies")

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30}


def parse_size(value, what):
    """Bytes from an int or a size as pytest-memray writes them ("24 MB", "64 MiB"); ValueError else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what}: {value!r} is not a size (bytes, or text such as '100 MB' or '64 MiB')")
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"{what}: {value!r} is not a size (bytes, or text such as '100 MB' or '64 MiB')")
        value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value <= 0 or value != value:
        raise ValueError(f"{what}: {value!r}: a size must be more than 0 bytes")
    return int(value)


def marker_budgets(kwargs):
    """The tally marker's keywords checked: a dict of them, or ValueError naming what is wrong."""
    out = {}
    for key, v in kwargs.items():
        if key == "sites":
            raise ValueError("key 'sites': call-site budgets are not supported yet (they come with another issue)")
        if key not in MARKER_KEYS:
            raise ValueError(f"unknown key '{key}' (known: {', '.join(MARKER_KEYS)})")
        if key == "array_bytes":
            out[key] = parse_size(v, "array_bytes")
        elif key == "copies":
            if not isinstance(v, dict) or not v:
                raise ValueError("copies: want a dict of library to copies x array, e.g. {'numcodecs': 1.0}")
            for lib, lim in v.items():
                if not isinstance(lib, str) or not _is_limit(lim):
                    raise ValueError(f"copies: {lib!r}: {lim!r} is not a limit (a number, 0 or more)")
            out[key] = dict(v)
        elif not _is_limit(v):
            raise ValueError(f"{key}: {v!r} is not a limit (a number, 0 or more)")
        else:
            out[key] = v
    return out


def _is_limit(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 and math.isfinite(v)


def mib(n):
    return f"{n / (1 << 20):.0f} MiB" if abs(n) >= 10 << 20 else f"{n / (1 << 20):.2f} MiB"


def _peak(before, peak, off, array):
    extra = peak - before - off
    shown = max(extra, 0)
    return extra, {"before_bytes": before, "peak_bytes": peak, "extra_bytes": shown,
                   "extra_ratio": shown / array if array else None}


def _copies(extra, array):
    """tly_h_extra_copies: the peak extra in whole arrays (llround), 0 under the fixed overhead."""
    copies = math.floor(extra / array + 0.5) if array else 0
    bound = extra < FIXED_OVERHEAD and copies != 0
    return (0 if bound else copies), bound


def derive(raw, array, array_about=None):
    """The result of one window (the preload's object, @p raw) against @p array bytes, as tally's
    harness derives every result's figures; resident memory is not sampled here."""
    r = dict(raw)
    r["array_bytes"] = array
    off = r.get("output_bytes") or 0
    extra, requested = _peak(r["before_bytes"], r["peak_bytes"], off, array)
    peaks = {"requested": requested, "reserved": None, "resident": None,
             "resident_about": "sampled by the pytest that ran this one under the preload, from outside, "
                               "and added to results.json when it has ended; not sampled when pytest was "
                               "started under the preload by another program"}
    if isinstance(r.get("reserved_before_bytes"), int) and isinstance(r.get("reserved_peak_bytes"), int):
        peaks["reserved"] = _peak(r["reserved_before_bytes"], r["reserved_peak_bytes"], off, array)[1]
    r["peaks"] = peaks
    r.pop("peaks_note", None)
    if extra < 0:
        r["peak_extra_note"] = ("the window's peak is below what was live when it began plus its output: "
                                "it ended with less than it started with")
    else:
        r.pop("peak_extra_note", None)
    shown = max(extra, 0)
    r["peak_extra_bytes"] = shown
    r["peak_extra_ratio"] = shown / array
    r["extra_copies"], r["overhead_bound"] = _copies(shown, array)
    for owner, key in (("libraries", "copied_bytes"), ("stages", "copy_bytes")):
        for v in (r.get(owner) or {}).values():
            v["copies"] = (v.get(key) or 0) / array
    if array_about:
        r["array_about"] = array_about
    for k in ("store_bytes_read", "store_bytes_written", "read_amplification"):
        r[k] = None
    r["unexplained_copies"] = _unexplained(r)
    _thin_timeline(r)
    return r


def _thin_timeline(r, cap=TIMELINE_CAP):
    """At most @p cap samples of the window's timeline (evenly, its peak and last kept): a suite's
    results stay small enough to keep (a test's own timeline is up to a sample per millisecond)."""
    tl = r.get("timeline")
    samples = (tl or {}).get("samples") or []
    if len(samples) <= cap:
        return
    step = math.ceil(len(samples) / cap)
    peak = tl.get("peak_index") or 0
    keep = sorted(set(range(0, len(samples), step)) | {peak, len(samples) - 1})
    tl["samples"] = [samples[i] for i in keep]
    tl["peak_index"] = keep.index(peak)
    tl["thinned_from"] = len(samples)


def _unexplained(r):
    volume = sum((v.get("copies") or 0) for v in (r.get("libraries") or {}).values())
    by_peak = r["extra_copies"]
    unexplained = r["peak_extra_ratio"] - volume
    if by_peak < 1 or unexplained < UNEXPLAINED_MIN:
        return None
    return {"extra_copies_by_peak": by_peak, "copy_volume": volume, "unexplained": unexplained,
            "note": f"{by_peak} extra by peak; copy volume {volume:.2f}: {unexplained:.2f} x array of the peak was "
                    "filled without memcpy, memmove or mempcpy, which the instrument cannot see: loop copies, such "
                    "as numpy's strided or transposed copies, or a buffer a codec wrote itself"}


def _top_at_peak(r):
    libs = [(v.get("at_peak_bytes") or 0, name) for name, v in (r.get("libraries") or {}).items()]
    if not libs:
        return ""
    held, name = max(libs)
    return f"{name} {mib(held)} at peak" if held > 0 else ""


def check_budgets(r, budgets):
    """Budget lines (as tally's, harness/cell/budgets.c) and the messages of those that failed."""
    lines, failed = [], []
    top = _top_at_peak(r)
    x = "x array" if not r.get("array_about") else f"x {mib(r['array_bytes'])} (no array named)"

    def line(name, limit, actual, lib=None):
        ok = actual <= limit + 1e-9
        entry = {"name": name, "limit": float(limit), "actual": float(actual), "ok": ok, "stage": None}
        if lib:
            entry["library"] = lib
        lines.append(entry)
        return ok

    if "peak_extra" in budgets and not line("peak_extra_ratio", budgets["peak_extra"], r["peak_extra_ratio"]):
        failed.append(f"tally: peak extra {r['peak_extra_ratio']:.2f} {x} > {budgets['peak_extra']:g}"
                      + (f" ({top})" if top else ""))
    if "extra_copies" in budgets and not line("extra_copies", budgets["extra_copies"], r["extra_copies"]):
        failed.append(f"tally: extra copies {r['extra_copies']} > {budgets['extra_copies']:g} (peak extra "
                      f"{r['peak_extra_ratio']:.2f} {x}{'; ' + top if top else ''})")
    loaded = r.get("loaded_libraries") or []
    for lib, limit in (budgets.get("copies") or {}).items():
        v = (r.get("libraries") or {}).get(lib)
        if v is None and lib not in loaded:
            failed.append(f"tally: budget on library '{lib}': no such library was loaded; loaded: "
                          + ", ".join(loaded))
            lines.append({"name": "copies", "limit": float(limit), "actual": None, "ok": False, "stage": None,
                          "library": lib})
            continue
        copies = (v or {}).get("copies") or 0.0
        if not line("copies", limit, copies, lib):
            failed.append(f"tally: {lib} copies {copies:.2f} {x} > {limit:g} "
                          f"({mib((v or {}).get('copied_bytes') or 0)} copied)")
    return lines, failed


def scenario_name(nodeid):
    """The node id as a cell's name: a results file's names are at most 200 bytes, without control
    characters; a longer or odder id keeps its start and a hash of the whole."""
    clean = "".join(c if c.isprintable() else "?" for c in nodeid)
    if clean == nodeid and len(nodeid.encode()) <= NAME_MAX:
        return nodeid
    import hashlib

    digest = hashlib.sha1(nodeid.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    head = clean.encode()[: NAME_MAX - 14].decode(errors="ignore")
    return f"{head}~{digest}"


def _host():
    model, mem = "unknown", 0
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), model)
        with open("/proc/meminfo") as f:
            mem = next((int(l.split()[1]) * 1024 for l in f if l.startswith("MemTotal")), 0)
    except OSError:
        pass
    return {"cpus": os.cpu_count() or 1, "mem_bytes": mem, "cpu_model": model, "kernel": os.uname().release}


def results_doc(entries, tally, tracking, untracked_reason, filt):
    """tally's results document (harness/report/results.c) of @p entries, one per test, in order."""
    entries = sorted(entries, key=lambda e: e.get("index", 0))
    return {"schema": RESULTS_SCHEMA, "tally_version": tally.get("TALLY_VERSION") or "unknown",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": _host(),
            "jemalloc_version": tally.get("TALLY_JEMALLOC") or None,
            "build_type": tally.get("TALLY_BUILD_TYPE") or "unknown", "tracking": tracking,
            "untracked_reason": untracked_reason, "matrix": "pytest", "cells_total": len(entries),
            "filter": filt, "shard": None, "git_commit": None, "git_dirty": None, "results": entries}


def write_json(path, doc):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)
