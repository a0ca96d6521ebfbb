"""report.py's checks of where the time goes, as a reader meets it:

- trace.json: valid trace-event JSON whose slices nest on every track, each thread named, a slice per
  chunk (key, bytes) and per codec call, flows from each chunk's encode to its put;
- index.html: every stage's colour (the page's key, as Chromium renders it) differs from every
  other's by at least MIN_DELTA_E in CIELAB and MIN_DELTA_L in lightness (greyscale), and the colours
  the charts use are the key's; the hover shows the time, each stage's bytes and the total;
- screenshots (kept in SHOTS_DIR) of read-local-zstd-v2-strided, where decode and scatter are drawn,
  and of write-s3-blosc-v2-one-chunk (when an S3 server is configured), where put, http and sign are;
- that S3 write's trace.json: one slice per HTTP request with its status, each sent from inside the put slice of
  the worker that sent it.
"""
import json
import math
import os
import re
import subprocess
from collections import defaultdict

import tallytest as t

MIN_DELTA_E = 20.0  # CIELAB ΔE*76 between any two stages' colours
MIN_DELTA_L = 3.0   # and their lightness: apart in greyscale too
MIN_PIXELS = 350    # a stage "clearly visible" in a screenshot: more than its swatches (244 px) alone


def lab(hexcolour):
    r, g, b = (int(hexcolour[i:i + 2], 16) / 255 for i in (1, 3, 5))

    def lin(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = lin(r), lin(g), lin(b)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(v):
        return v ** (1 / 3) if v > 0.008856 else 7.787 * v + 16 / 116
    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def tracks(events):
    by = defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            by[(e["pid"], e["tid"])].append(e)
    for v in by.values():
        v.sort(key=lambda e: (e["ts"], -e["dur"]))
    return by


def misnested(by):
    """Slices that begin inside another on their track and end after it (µs, 1 ns slack)."""
    bad = []
    for v in by.values():
        stack = []
        for e in v:
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"] + 1e-3:
                stack.pop()
            if stack and e["ts"] + e["dur"] > stack[-1]["ts"] + stack[-1]["dur"] + 1e-3:
                bad.append((stack[-1]["name"], e["name"]))
            stack.append(e)
    return bad


def enclosing(by, track, e, name):
    """The slices called @p name on @p track that hold [ts, ts + dur] of @p e."""
    return [s for s in by.get(track, []) if s is not e and s["name"] == name and s["ts"] <= e["ts"] + 1e-3
            and e["ts"] + e["dur"] <= s["ts"] + s["dur"] + 1e-3]


def starting_in(by, track, e, name):
    """The slices called @p name on @p track that hold the start of @p e."""
    return [s for s in by.get(track, []) if s is not e and s["name"] == name and s["ts"] <= e["ts"] + 1e-3
            and e["ts"] <= s["ts"] + s["dur"] + 1e-3]


def check_trace(trace, result):
    ev = trace["traceEvents"]
    t.check("trace.json: every event has ph, pid and tid; slices have name, cat, ts and a duration >= 0",
            all({"ph", "pid", "tid"} <= set(e) for e in ev) and all(
                {"name", "cat", "ts", "dur"} <= set(e) and e["dur"] >= 0 for e in ev if e["ph"] == "X"))
    by = tracks(ev)
    bad = misnested(by)
    t.check(f"trace.json: {sum(map(len, by.values()))} slices on {len(by)} tracks, every one nested in its parent",
            by and not bad, bad[:5])
    named = {(e["pid"], e["tid"]) for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    t.check("trace.json: every track is a named thread", set(by) <= named, set(by) - named)
    x = [e for e in ev if e["ph"] == "X"]
    chunks = [e for e in x if e["cat"] == "chunk"]
    t.check(f"trace.json: a slice per chunk ({len(chunks)}) with its key and bytes",
            len(chunks) == result["chunks_io"]["chunks"] and all(
                {"key", "bytes"} <= set(c["args"]) and c["args"]["bytes"] > 0 for c in chunks), chunks[:1])
    codec = [e for e in x if e["cat"] == "codec"]
    # one call per chunk, or (blosc, block by block) one per block: every chunk has its own
    inside = [c for c in chunks if any((k["pid"], k["tid"]) == (c["pid"], c["tid"]) and c["ts"] <= k["ts"] + 1e-3
                                       and k["ts"] + k["dur"] <= c["ts"] + c["dur"] + 1e-3 for k in codec)]
    t.check(f"trace.json: codec calls as slices ({len(codec)}), bytes in and out, inside each of the "
            f"{len(chunks)} chunks ({len(inside)})",
            codec and len(inside) == len(chunks) and all({"bytes_in", "bytes_out"} <= set(c["args"]) for c in codec),
            codec[:1])
    stages = {e["name"] for e in x if e["cat"] == "stage"}
    t.check(f"trace.json: stage scopes as slices ({sorted(stages)})", {"gather", "encode", "put"} <= stages)
    starts = {e["id"] for e in ev if e["ph"] == "s"}
    ends = {e["id"] for e in ev if e["ph"] == "f"}
    e2p = [e for e in ev if e["ph"] == "s" and e["name"] == "encode to put"]
    t.check(f"trace.json: a flow from each chunk's encode to its put ({len(e2p)}), each with its end",
            len(e2p) == len(chunks) and starts == ends, (len(e2p), starts ^ ends))


def dump_dom(chromium, work, url):
    p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={work}/profile-dom", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    return p.stdout


def screenshot(chromium, work, url, path, height):
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={work}/profile-shot", f"--screenshot={path}", f"--window-size=1100,{height}",
                    url], capture_output=True, text=True, timeout=120)
    return os.path.exists(path)


def colour_counts(png_pixels, path, colours):
    """Pixels of each colour (within 3 per channel) in the screenshot."""
    w, h, bpp, rows = png_pixels(path)
    want = {c: tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in colours}
    n = dict.fromkeys(colours, 0)
    for row in rows:
        for x in range(0, w * bpp, bpp):
            px = row[x], row[x + 1], row[x + 2]
            for c, (r, g, b) in want.items():
                if abs(px[0] - r) <= 3 and abs(px[1] - g) <= 3 and abs(px[2] - b) <= 3:
                    n[c] += 1
                    break
    return n


def page_key(dom):
    """stage -> colour, from the page's key of stages."""
    return {m.group(1): m.group(2).lower() for m in re.finditer(
        r"<span class=\"stage-key\" data-stage=\"(\w+)\">.*?fill=\"(#[0-9a-fA-F]{6})\"", dom)}


def check_colours(chromium, work, out, png_pixels, tracking=True):
    dom = dump_dom(chromium, work, f"file://{out}/index.html#hover")
    key = page_key(dom)
    t.check(f"index.html: a key of all 13 stages' colours ({len(key)})", len(key) == 13, key)
    labs = {s: lab(c) for s, c in key.items()}
    worst = min(((math.dist(labs[a], labs[b]), a, b) for a in labs for b in labs if a < b), default=(0, "", ""))
    t.check(f"every two stages' colours are at least ΔE {MIN_DELTA_E:g} apart (closest: {worst[1]}/{worst[2]} "
            f"{worst[0]:.1f})", worst[0] >= MIN_DELTA_E)
    light = min(((abs(labs[a][0] - labs[b][0]), a, b) for a in labs for b in labs if a < b), default=(0, "", ""))
    t.check(f"... and at least {MIN_DELTA_L:g} apart in lightness, so in greyscale (closest: {light[1]}/{light[2]} "
            f"{light[0]:.1f})", light[0] >= MIN_DELTA_L)
    used = {(m.group(1), m.group(2).lower()) for m in re.finditer(
        r"class=\"stage-time\" data-stage=\"(\w+)\">.*?fill=\"(#[0-9a-fA-F]{6})\"", dom)}
    used |= {(m.group(1), m.group(2).lower()) for m in re.finditer(
        r"class=\"legend-item\" data-series=\"(\w+)\">.*?fill=\"(#[0-9a-fA-F]{6})\"", dom)}
    t.check(f"the charts draw each stage in the key's colour ({len(used)} uses)",
            used and all(key.get(s) == c for s, c in used), sorted(used))
    tip = re.search(r"<div id=\"tip\"[^>]*>(.*?)</div>", dom, re.S)
    tip = tip.group(1) if tip else ""
    t.check("hover shows the time, each stage's bytes and the total" + ("" if tracking else " (0: tracking is off)"),
            re.search(r"t = [\d.]+ ms", tip) and "total above the start" in tip and
            (not tracking or any(re.search(rf"^{s} [\d.]+ MiB", tip, re.M) for s in key)), tip)


def run_cell(tally, work, name, env=None):
    out = os.path.join(work, name)
    p = subprocess.run([tally, "run", "--filter", f"^{name}$", "--out", out, "--allow-untracked", "--impl", "tally"],
                       capture_output=True, text=True, env=env, timeout=600)
    ok = t.check(f"tally run {name}", p.returncode == 0, p.stderr[-400:])
    return out if ok else None


def visible(tally, chromium, work, shots, png_pixels, name, stages):
    out = run_cell(tally, work, name)
    if out is None:
        return None
    os.makedirs(shots, exist_ok=True)
    shot = os.path.join(shots, f"{name}.png")
    if not t.check(f"screenshot {shot}", screenshot(chromium, work, f"file://{out}/index.html", shot, 1250)):
        return out
    key = page_key(dump_dom(chromium, work, f"file://{out}/index.html"))
    n = colour_counts(png_pixels, shot, [key[s] for s in stages])
    for s in stages:
        t.check(f"{name}: {s} clearly visible ({n[key[s]]} px of its colour)", n[key[s]] >= MIN_PIXELS)
    return out


def check_s3_requests(out):
    trace = json.load(open(f"{out}/trace.json"))
    result = json.load(open(f"{out}/results.json"))["results"][0]
    ev = trace["traceEvents"]
    by = tracks(ev)
    http = [e for e in ev if e.get("cat") == "http"]
    t.check(f"S3 write: one slice per HTTP request ({len(http)} of {result['time']['http_requests']} answered)",
            http and len(http) == result["time"]["http_requests"])
    t.check("... each with its method, key, status, bytes and retries",
            all({"method", "key", "status", "bytes", "retries"} <= set(e["args"]) and e["args"]["status"] >= 200
                for e in http), http[:1])
    t.check("... and the requests nest where they sit", not misnested(by), misnested(by)[:3])
    sent = {(e["tid"], e["ts"]) for e in ev if e.get("ph") == "s" and e["name"] == "sent"}
    # metadata, and the marker of an incomplete array (docs/reliability.md): the caller's, not a worker's
    chunk = [e for e in http
             if not re.search(r"(\.zarray|\.zattrs|zarr\.json|\.zgroup|\.tally-incomplete)$", e["args"]["key"])]
    bad = []
    for e in chunk:
        worker = e["args"].get("worker_tid", e["tid"])
        # sent from inside a put of its worker: a part of a chunk written block by block (blosc's lanes)
        # goes on uploading while the lane that filled it compresses its next block, so it starts in
        # that put and may end after it
        if not starting_in(by, (e["pid"], worker), e, "put"):
            bad.append(("not sent from inside its worker's put", e["name"]))
        if e["tid"] != worker and (worker, e["ts"]) not in sent:
            bad.append(("no flow from the put that sent it", e["name"]))
    mine = [e for e in chunk if "worker_tid" not in e["args"]]
    t.check(f"... each of the {len(chunk)} chunk requests sent from inside a put slice of the worker that sent it "
            f"({len(mine)} on the worker's own track, {len(chunk) - len(mine)} in flight together on its lanes, "
            "each sent from inside that put and linked to it by a flow)", chunk and not bad, bad[:3])


def check_screenshots(tally, chromium, work, shots, png_pixels):
    visible(tally, chromium, work, shots, png_pixels, "read-local-zstd-v2-strided", ["decode", "scatter"])
    if not (os.environ.get("AWS_ENDPOINT_URL") and os.environ.get("TALLY_S3_BUCKET")):
        t.skip("write-s3-blosc-v2-one-chunk's screenshot and trace", "no S3 server (scripts/s3-server)")
        return
    out = visible(tally, chromium, work, shots, png_pixels, "write-s3-blosc-v2-one-chunk", ["put", "http", "sign"])
    if out:
        check_s3_requests(out)
