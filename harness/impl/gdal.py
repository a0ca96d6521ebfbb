#!/usr/bin/python3
"""tally's adapter for GDAL's Zarr driver: Debian 12's GDAL 3.6 (python3-gdal), multidimensional API.

  /usr/bin/python3 harness/impl/gdal.py --probe | --cell CELL.json   (docs/impl-protocol.md)

Write: gdal.GetDriverByName("ZARR").CreateMultiDimensional(URL, [], ["FORMAT=ZARR_V2"]), one
dimension per axis, CreateMDArray("array", dims, Float32, ["BLOCKSIZE=...", "COMPRESS=BLOSC|ZSTD",
BLOSC_CNAME/CLEVEL/SHUFFLE/BLOCKSIZE/NUM_THREADS, ZSTD_LEVEL]), MDArray.WriteArray(data), then the
array, group and dataset are released (that flushes and writes the metadata). Read:
gdal.OpenEx(URL, OF_MULTIDIM_RASTER), OpenMDArray("array").ReadAsArray(). GDAL makes URL a Zarr
group (.zgroup, .zmetadata) and the array is URL/array. GDAL_CACHEMAX=64 (MB).

S3: /vsis3/BUCKET/PREFIX, with AWS_S3_ENDPOINT (host:port of AWS_ENDPOINT_URL), AWS_HTTPS (from its
scheme), AWS_VIRTUAL_HOSTING=FALSE and AWS_REGION set as GDAL config options; the credentials GDAL
reads from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment. Before a read's window,
GDAL's /vsicurl caches (listings, file sizes, data) are cleared so the read starts cold.

v3 is skipped: GDAL 3.6's FORMAT=ZARR_V3 is the pre-spec v3 draft (zarr.json with "zarr_format":
"https://purl.org/zarr/spec/protocol/core/3.0", metadata under meta/root/NAME.array.json, chunks under
data/root/NAME/c0/0, a "compressor" rather than "codecs"): zarrita 0.7.5 and tally do not find an
array in what it writes, and GDAL 3.6 opens a spec v3 array (zarrita's) as an empty group.
"""
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tally_adapter  # noqa: E402

V3_REASON = ("GDAL 3.6's FORMAT=ZARR_V3 is the pre-spec Zarr v3 draft (zarr.json names the protocol "
             "https://purl.org/zarr/spec/protocol/core/3.0, metadata under meta/root/*.array.json, a "
             "'compressor' instead of 'codecs'): zarrita 0.7.5 and tally find no array in what it writes, and "
             "it opens a published-spec v3 array as an empty group")
CACHEMAX_MB = 64
ARRAY = "array"


class Gdal(tally_adapter.Adapter):
    name = "gdal"

    def probe(self):
        from osgeo import gdal
        if gdal.GetDriverByName("ZARR") is None:
            raise tally_adapter.Unavailable(f"GDAL {gdal.__version__} has no ZARR driver")
        return gdal.__version__

    def skip(self, cell):
        if cell["format"] == "v3":
            return V3_REASON
        if cell["codec"] == "zstd" and cell["codec_config"].get("checksum"):
            return "GDAL 3.6's Zarr driver has no zstd checksum option"
        from osgeo import gdal_array
        import numpy as np
        if gdal_array.NumericTypeCodeToGDALTypeCode(np.dtype(cell["dtype"]).newbyteorder("=")) is None:
            return f"GDAL has no data type for {cell['dtype']}"
        if cell["dtype"][0] == ">":
            return "the adapter writes native (little-endian) dtypes only"
        return None

    def path(self, cell):
        if cell["store"] == "local":
            return cell["url"]
        return f"/vsis3/{cell['s3_bucket']}/{cell['s3_prefix']}"

    def setup(self, cell):
        from osgeo import gdal
        gdal.UseExceptions()
        gdal.SetConfigOption("GDAL_CACHEMAX", str(CACHEMAX_MB))
        if cell["store"] == "s3":
            endpoint, region = tally_adapter.s3_env()
            u = urllib.parse.urlparse(endpoint)
            if not u.netloc:
                raise tally_adapter.Failure("AWS_ENDPOINT_URL is not a URL with a host")
            gdal.SetConfigOption("AWS_S3_ENDPOINT", u.netloc)
            gdal.SetConfigOption("AWS_HTTPS", "YES" if u.scheme == "https" else "NO")
            gdal.SetConfigOption("AWS_VIRTUAL_HOSTING", "FALSE")
            gdal.SetConfigOption("AWS_REGION", region)

    def options(self, cell):
        cc = cell["codec_config"]
        opts = ["BLOCKSIZE=" + ",".join(str(int(c)) for c in cell["chunks"])]
        if cell["codec"] == "blosc":
            opts += ["COMPRESS=BLOSC", f"BLOSC_CNAME={cc['cname']}", f"BLOSC_CLEVEL={int(cc['clevel'])}",
                     "BLOSC_SHUFFLE=" + ("NONE", "BYTE", "BIT")[int(cc["shuffle"])],
                     f"BLOSC_BLOCKSIZE={int(cc['blocksize'])}", f"BLOSC_NUM_THREADS={max(1, int(cell['threads']))}"]
        elif cell["codec"] == "zstd":
            opts += ["COMPRESS=ZSTD", f"ZSTD_LEVEL={int(cc['level'])}"]
        return opts

    def write(self, cell, data):
        from osgeo import gdal, gdal_array
        gtype = gdal_array.NumericTypeCodeToGDALTypeCode(data.dtype.newbyteorder("="))
        ds = gdal.GetDriverByName("ZARR").CreateMultiDimensional(self.path(cell), [], ["FORMAT=ZARR_V2"])
        rg = ds.GetRootGroup()
        dims = [rg.CreateDimension(f"dim{i}", None, None, int(n)) for i, n in enumerate(cell["shape"])]
        arr = rg.CreateMDArray(ARRAY, dims, gdal.ExtendedDataType.Create(gtype), self.options(cell))
        if arr.WriteArray(data) != gdal.CE_None:
            raise tally_adapter.Failure(f"MDArray.WriteArray: {gdal.GetLastErrorMsg()}")
        del arr, dims, rg
        ds = None  # closes the dataset: flushes chunks and writes .zarray/.zmetadata

    def read(self, cell):
        from osgeo import gdal
        ds = gdal.OpenEx(self.path(cell), gdal.OF_MULTIDIM_RASTER)
        arr = ds.GetRootGroup().OpenMDArray(ARRAY)
        if arr is None:
            raise tally_adapter.Failure(f"no array {ARRAY!r} in {self.path(cell)}")
        out = arr.ReadAsArray()
        del arr
        ds = None  # noqa: F841
        return out

    def window_open(self, cell):
        if cell["store"] == "s3" and cell["op"] == "read":
            from osgeo import gdal
            gdal.VSICurlClearCache()  # a cold read: what the fixture's write left cached goes

    def window_close(self, cell, array_bytes, output_bytes):
        return {"gdal_cachemax_mb": CACHEMAX_MB, "array_path": f"{tally_adapter.location(cell)}/{ARRAY}"}


if __name__ == "__main__":
    sys.exit(tally_adapter.main(Gdal()))
