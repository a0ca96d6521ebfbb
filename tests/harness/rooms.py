#!/usr/bin/env python3
"""The harness's rooms in the order harness/README.md states them, checked against the includes.

Each folder of harness/ is a room; a room may include the rooms above it in the README's table,
harness.h and options.h (beside them, below every room), and libtally's public headers; never a room
below it, never src/. Every .c and .h of every room is read; a room of harness/ the README does not
list, or a listed one that is not there, fails too."""
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HARNESS = os.path.join(ROOT, "harness")
SHARED = {"harness.h", "options.h"}  # beside the rooms, below all of them
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def readme_order():
    with open(os.path.join(HARNESS, "README.md"), encoding="utf-8") as f:
        return re.findall(r"^\| `([a-z_]+)/` \|", f.read(), re.M)


def main():
    order = readme_order()
    rooms = sorted(d for d in os.listdir(HARNESS) if os.path.isdir(os.path.join(HARNESS, d))
                   and d not in ("node_modules", "__pycache__"))
    bad = []
    if sorted(order) != rooms:
        bad.append(f"README.md lists rooms {order}, harness/ holds {rooms}")
    rank = {r: i for i, r in enumerate(order)}
    checked = 0
    for room in rooms:
        for dirpath, dirnames, files in os.walk(os.path.join(HARNESS, room)):
            dirnames[:] = [d for d in dirnames if d != "node_modules"]
            for name in sorted(files):
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, ROOT)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                for inc in INCLUDE.findall(text):
                    checked += 1
                    top = inc.split("/")[0]
                    if inc in SHARED or top == "tally" or "/" not in inc and os.path.exists(
                            os.path.join(dirpath, inc)):
                        continue  # shared, public, or a header beside the file (impl's programs)
                    if top not in rank:
                        bad.append(f"{rel} includes \"{inc}\": not a room of harness/ (src/ is not the harness's)")
                    elif room in rank and rank[top] > rank[room]:
                        bad.append(f"{rel} includes \"{inc}\": room {top}/ is below {room}/ in harness/README.md")
    for b in bad:
        print("FAIL", b)
    print(f"{checked} includes of {len(rooms)} rooms checked against the order {' > '.join(order)}: "
          f"{len(bad)} wrong")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
