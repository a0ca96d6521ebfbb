"""Issue 21's acceptance in Python: hold_here() allocates 100 MB held at the peak, copy_here() copies it
(in ten pieces through a 10 MB buffer, so that hold_here's block is the largest at the peak)."""
import numpy as np


def hold_here(n):
    return np.ones(n, dtype=np.uint8)  # LINE hold_here


def copy_here(a, piece):
    buf = bytearray(piece)
    view = memoryview(a)
    for off in range(0, len(a), piece):
        memoryview(buf)[:] = view[off:off + piece]  # LINE copy_here
    return len(buf)


a = hold_here(100_000_000)
copy_here(a, 10_000_000)
