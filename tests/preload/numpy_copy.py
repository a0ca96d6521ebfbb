"""Under the preload: build a 100 MB float32 numpy array and copy it once (b = a.copy()).

Marked (default): the window is begin..end around both, and `a` is declared the window's output,
so the one extra array at the peak is the copy. With --unmarked the window is the whole process.
"""
import ctypes
import sys

import numpy as np

N = 25_000_000  # float32: 100 MB
marked = "--unmarked" not in sys.argv
lib = ctypes.CDLL(None)
if marked:
    lib.tly_mark_begin(b"copy", ctypes.c_ulonglong(N * 4))
a = np.arange(N, dtype=np.float32)
b = a.copy()
if marked:
    lib.tly_mark_end(ctypes.c_ulonglong(a.nbytes))
assert b[-1] == a[-1] and b[12345] == 12345
print(f"numpy_copy: {a.nbytes} bytes, {'marked' if marked else 'unmarked'}")
