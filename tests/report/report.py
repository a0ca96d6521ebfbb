#!/usr/bin/python3
"""The reports of `tally run`, as their readers meet them: index.html renders in a real browser (one
scenario's report in headless Chromium, Debian's chromium: the screenshot is not blank — it holds the
summary table's text and the timeline's coloured areas); trace.json is trace-event JSON (counter
tracks per stage, as Perfetto reads it); --junit writes JUnit XML; and a copy planted in a stage
makes `tally run` exit 1 naming that stage. Then (report_time.py) the trace's slices and flows, the
page's stage colours, the screenshots of two cells, and an S3 write's requests in its trace.

  report.py TALLY [SHOTS_DIR]      prints the checks and "N passed, N failed"; exits 1 on any failure
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import tallytest as t  # noqa: E402
import report_time  # noqa: E402




def png_pixels(path):
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) with the stdlib."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, f"PNG type {ctype}/{depth}/{interlace}"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def main():
    tally = os.path.abspath(sys.argv[1])
    chromium = shutil.which("chromium")
    if not chromium:
        t.check("chromium installed (scripts/deps installs it)", False)
        return t.summary()
    work = tempfile.mkdtemp(prefix="tally-render-")
    try:
        out = os.path.join(work, "report")
        # --allow-untracked: this test is about the reports, and runs under ASan (tracking off) too
        p = subprocess.run([tally, "run", "--filter", "^write-local-blosc-v2-strided$", "--out", out,
                            "--junit", f"{work}/junit.xml", "--allow-untracked", "--impl", "tally"], capture_output=True, text=True)
        t.check("tally run writes a report", p.returncode == 0 and os.path.exists(f"{out}/index.html"), p.stderr)
        for name in ("copies.md", "trace.json", "results.json"):
            t.check(f"{name} written", os.path.getsize(f"{out}/{name}") > 100)
        trace = json.load(open(f"{out}/trace.json"))
        events = trace["traceEvents"]
        counters = [e for e in events if e.get("ph") == "C"]
        meta = [e for e in events if e.get("ph") == "M" and e.get("name") == "process_name"]
        t.check("trace.json: trace events with counter tracks per stage",
              len(counters) > 2 and all({"name", "pid", "ts", "args"} <= set(e) for e in counters)
              and {"pool", "gather", "encode", "caller"} <= set(counters[0]["args"]), counters[:1])
        t.check("trace.json: the scenario names its process", meta and
              meta[0]["args"]["name"] == "write-local-blosc-v2-strided", meta)
        t.check("trace.json: counters in time order", all(a["ts"] <= b["ts"] for a, b in zip(counters, counters[1:])))
        suite = ET.parse(f"{work}/junit.xml").getroot().find("testsuite")
        t.check("--junit: JUnit XML with the cell, named impl/scenario", suite is not None and suite.get("tests") == "1"
              and suite.find("testcase").get("name") == "tally/write-local-blosc-v2-strided")
        # a planted copy fails the run, naming the stage
        env = dict(os.environ, TALLY_PLANT="encode:10000000")
        p = subprocess.run([tally, "run", "--filter", "^write-local-blosc-v2-one-chunk$", "--out", f"{work}/planted",
                            "--junit", f"{work}/planted.xml", "--allow-untracked", "--impl", "tally"], capture_output=True, text=True,
                           env=env)
        t.check("a copy planted in encode: tally run exits 1", p.returncode == 1, p.returncode)
        t.check("... and the message names the stage and the limit",
              "stage encode copies" in p.stderr and "limit 0" in p.stderr, p.stderr[-300:])
        failure = ET.parse(f"{work}/planted.xml").getroot().find("testsuite/testcase/failure")
        t.check("... and JUnit records the failure", failure is not None and "encode copies" in failure.text)
        page = open(f"{work}/planted/index.html").read()
        t.check("... and index.html names the failed budget beside the cell's chart",
                re.search(r"class='failed'><b>failed budgets</b><ul>(<li>[^<]*</li>)*<li>stage encode copies = "
                          r"[\d.]+, limit 0</li>", page) is not None and page.index("class='failed'") < page.index("class='memory'"))
        shot = os.path.join(work, "shot.png")
        p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", f"--user-data-dir={work}/profile", f"--screenshot={shot}",
                            "--window-size=900,900", f"file://{out}/index.html"],
                           capture_output=True, text=True, timeout=120)
        t.check("chromium takes a screenshot", os.path.exists(shot), p.stderr[-500:])
        w, h, bpp, rows = png_pixels(shot)
        colours, dark, coloured, total = set(), 0, 0, 0
        for row in rows[::3]:
            for x in range(0, w * bpp, bpp * 3):
                r, g, b = row[x], row[x + 1], row[x + 2]
                colours.add((r >> 4, g >> 4, b >> 4))
                dark += r + g + b < 200
                coloured += max(r, g, b) - min(r, g, b) > 60
                total += 1
        t.check(f"screenshot {w}x{h} is not blank: {len(colours)} colours", len(colours) > 20)
        t.check(f"text is drawn: {100 * dark / total:.1f}% dark pixels", dark / total > 0.005)
        tracking = json.load(open(f"{out}/results.json"))["results"][0].get("tracking", True)
        if tracking:
            t.check(f"the timeline's stage areas are drawn: {100 * coloured / total:.1f}% coloured pixels",
                  coloured / total > 0.01)
        else:  # ASan or valgrind own malloc: no timeline to draw
            print("skip the timeline's areas: tracking is off in this build")
        report_time.check_trace(trace, json.load(open(f"{out}/results.json"))["results"][0])
        report_time.check_colours(chromium, work, out, png_pixels, tracking)
        shots = sys.argv[2] if len(sys.argv) > 2 else os.path.join(work, "shots")
        report_time.check_screenshots(tally, chromium, work, shots, png_pixels)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
