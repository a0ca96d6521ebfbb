"""The resident peak of each test, sampled from outside the measured processes, as tally's
harness/cell/resident.c samples it: the first pytest (the one without the preload) reads the
anonymous resident bytes of the pytest it started and of its children (xdist's workers) from
/proc/PID/statm every millisecond, keeping a point when they moved by 256 KiB or more; when that
pytest has ended, each test's window (pid, t0_ns, t1_ns: CLOCK_MONOTONIC) takes its resident
figures from the series and results.json is written again with them."""

import bisect
import json
import os
import threading
import time

PERIOD_S = 0.001  # TLY_H_RESIDENT_PERIOD_NS
CHILDREN_EVERY = 10  # TLY_H_RESIDENT_CHILDREN_EVERY
GRAIN = 256 << 10  # TLY_H_RESIDENT_GRAIN
PEAKS_APART = 0.25  # TLY_H_PEAKS_APART
PAGE = os.sysconf("SC_PAGE_SIZE")


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.series = {}  # pid -> [fd, times, bytes, last kept]
        self._watch(pid)

    def _watch(self, pid):
        if pid in self.series:
            return
        try:
            fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        self.series[pid] = [fd, [], [], None]

    def _children(self):
        for pid, s in list(self.series.items()):
            if s[0] < 0:
                continue
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tasks:
                try:
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        kids = f.read().split()
                except OSError:
                    continue
                for k in kids:
                    self._watch(int(k))

    def _sample(self):
        t = time.monotonic_ns()
        for s in self.series.values():
            if s[0] < 0:
                continue
            try:
                size, res, shared = (int(x) for x in os.pread(s[0], 128, 0).split()[:3])
            except (OSError, ValueError):
                res = 0
            if res == 0:  # gone (a zombie's are 0)
                os.close(s[0])
                s[0] = -1
                continue
            b = (res - min(shared, res)) * PAGE
            if s[3] is None or abs(b - s[3]) >= GRAIN:
                s[1].append(t)
                s[2].append(b)
                s[3] = b

    def run(self):
        tick = 0
        while not self.stop.is_set():
            if tick % CHILDREN_EVERY == 0:
                self._children()
            self._sample()
            tick += 1
            time.sleep(PERIOD_S)
        self._sample()

    def finish(self):
        self.stop.set()
        self.join()
        for s in self.series.values():
            if s[0] >= 0:
                os.close(s[0])

    def window(self, pid, t0, t1):
        """(before, peak) anonymous resident bytes of @p pid's window [t0, t1], or None."""
        s = self.series.get(pid)
        if not s or not s[1] or t1 < s[1][0]:
            return None
        i = max(bisect.bisect_right(s[1], t0) - 1, 0)  # the last point at or before the start
        j = bisect.bisect_right(s[1], t1)
        return s[2][i], max(s[2][i:max(j, i + 1)])


def add_to_results(path, sampler):
    """Each measured test's resident figures into results.json at @p path (written again)."""
    with open(path) as f:
        doc = json.load(f)
    for e in doc.get("results", []):
        if e.get("status") not in ("ok", "failed") or not isinstance(e.get("peaks"), dict):
            continue
        w = sampler.window((e.get("process") or {}).get("pid"), e.get("t0_ns") or 0, e.get("t1_ns") or 0)
        if w is None:
            e["resident_about"] = "the test's process was not sampled"
            continue
        before, peak = w
        # and what the process read of itself just before it gave memory back (the preload's
        # resident_releases: a spike the samples may have missed), as tally's harness takes it
        peak = max([peak] + [b for _, b in e.get("resident_releases") or []])
        array, off = e.get("array_bytes") or 0, e.get("output_bytes") or 0
        extra = max(peak - before - off, 0)
        e["resident_before_bytes"], e["resident_peak_bytes"] = before, peak
        e["peaks"]["resident"] = {"before_bytes": before, "peak_bytes": peak, "extra_bytes": extra,
                                  "extra_ratio": extra / array if array else None}
        e["peaks"].pop("resident_about", None)
        req = e.get("peak_extra_ratio")
        if array and isinstance(req, (int, float)) and abs(req - extra / array) > PEAKS_APART:
            e["peaks_note"] = _apart(req, extra / array)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


def _apart(requested, resident):
    """harness/cell/figures.c's words for a requested and a resident peak extra further apart than 0.25."""
    if requested > resident:
        return (f"the heap's requested peak extra ({requested:.2f} x array) is above the resident one ({resident:.2f}): "
                "memory was allocated and not all touched when the heap peaked (a zero-filled or calloc'd buffer the "
                "kernel maps lazily, an output not yet written), or was freed before it was all written")
    return (f"the resident peak extra ({resident:.2f} x array) is above the heap's requested one ({requested:.2f}): "
            "memory freed but not yet returned to the kernel, memory-mapped files written or copied into, or memory "
            "the heap counters do not see (thread stacks, a JIT heap, an allocator of the program's own)")
