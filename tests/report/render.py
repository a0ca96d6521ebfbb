#!/usr/bin/python3
"""index.html renders in a real browser: run one scenario, open its report in headless Chromium
(Debian's chromium), take a screenshot, and check the picture is not blank — it must hold the
summary table's text and the timeline's coloured areas.

  render.py TALLY      prints the checks and "N passed, N failed"; exits 1 on any failure
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok or not detail else ': ' + str(detail)}", flush=True)


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
        check("chromium installed (scripts/deps installs it)", False)
        print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
        return 1
    work = tempfile.mkdtemp(prefix="tally-render-")
    try:
        out = os.path.join(work, "report")
        p = subprocess.run([tally, "run", "--filter", "^write-local-blosc-v2-strided$", "--out", out],
                           capture_output=True, text=True)
        check("tally run writes a report", p.returncode == 0 and os.path.exists(f"{out}/index.html"), p.stderr)
        for name in ("copies.md", "trace.json", "results.json"):
            check(f"{name} written", os.path.getsize(f"{out}/{name}") > 100)
        shot = os.path.join(work, "shot.png")
        p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", f"--user-data-dir={work}/profile", f"--screenshot={shot}",
                            "--window-size=900,900", f"file://{out}/index.html"],
                           capture_output=True, text=True, timeout=120)
        check("chromium takes a screenshot", os.path.exists(shot), p.stderr[-500:])
        w, h, bpp, rows = png_pixels(shot)
        colours, dark, coloured, total = set(), 0, 0, 0
        for row in rows[::3]:
            for x in range(0, w * bpp, bpp * 3):
                r, g, b = row[x], row[x + 1], row[x + 2]
                colours.add((r >> 4, g >> 4, b >> 4))
                dark += r + g + b < 200
                coloured += max(r, g, b) - min(r, g, b) > 60
                total += 1
        check(f"screenshot {w}x{h} is not blank: {len(colours)} colours", len(colours) > 20)
        check(f"text is drawn: {100 * dark / total:.1f}% dark pixels", dark / total > 0.005)
        check(f"the timeline's stage areas are drawn: {100 * coloured / total:.1f}% coloured pixels",
              coloured / total > 0.01)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
