# GDAL 3.6's Zarr driver writing (argv[2] == "write") or reading a 100 MB float32 array, one blosc chunk.
import sys

import numpy as np
from osgeo import gdal

gdal.UseExceptions()
N = 25_000_000
path = sys.argv[1]
if sys.argv[2] == "write":
    a = np.arange(N, dtype=np.float32) % 1000
    ds = gdal.GetDriverByName("ZARR").CreateMultiDimensional(path, [], ["FORMAT=ZARR_V2"])
    rg = ds.GetRootGroup()
    dim = rg.CreateDimension("x", None, None, N)
    arr = rg.CreateMDArray("array", [dim], gdal.ExtendedDataType.Create(gdal.GDT_Float32),
                           [f"BLOCKSIZE={N}", "COMPRESS=BLOSC"])
    assert arr.WriteArray(a) == gdal.CE_None
    del arr, rg, ds
else:
    a = gdal.OpenEx(path, gdal.OF_MULTIDIM_RASTER).GetRootGroup().OpenMDArray("array").ReadAsArray()
    assert a.shape == (N,)
