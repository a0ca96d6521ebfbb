"""zarr-python 2.13: 100 MB of float32 written as one blosc chunk (issue 21's acceptance)."""
import shutil
import sys

import numcodecs
import numpy as np
import zarr

path = sys.argv[1]
a = np.arange(25_000_000, dtype=np.float32)
shutil.rmtree(path, ignore_errors=True)
z = zarr.open(path, mode="w", shape=a.shape, chunks=a.shape, dtype=a.dtype,
              compressor=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=1))
z[:] = a
shutil.rmtree(path)
