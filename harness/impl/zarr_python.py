#!/usr/bin/python3
"""tally's adapter for zarr-python: Debian 12's python3-zarr (zarr-python 2.13, numcodecs 0.11).

  /usr/bin/python3 harness/impl/zarr_python.py --probe | --cell CELL.json   (docs/impl-protocol.md)

Runs the Zarr v2 cells: zarr.open_array on a directory store, `z[...] = data` / `z[...]`, with
numcodecs Blosc(cname, clevel, shuffle, blocksize) or Zstd(level); numcodecs' blosc threads are the
cell's threads. The array is at the cell's url itself. Skips v3 (zarr-python 2.13's "v3" is a pre-spec
draft).

S3 cells run through harness/impl/s3_boto3_store.py's Boto3Store (a MutableMapping over Debian's
boto3: s3fs, fsspec's S3 filesystem and what zarr-python uses for s3:// URLs, is not packaged in
Debian 12). Their copies are the store's as much as zarr's, so the result line's "label" names the
pair, "zarr-python + boto3 store", and every report shows that label for them.

Extra figure (as the earlier peer script measured it, memray-array's method): tracemalloc is
started just outside the marks and stopped just after them, so it sees the same window; numpy
registers its buffers with tracemalloc, so array-sized allocations are traced.
peak_extra_ratio = (traced peak - output bytes) / array bytes, extra_copies = its rounding.
"""
import os
import sys
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3_boto3_store  # noqa: E402
import tally_adapter  # noqa: E402


class ZarrPython(tally_adapter.Adapter):
    name = "zarr-python"

    def probe(self):
        import numcodecs
        import zarr
        self.numcodecs_version = numcodecs.__version__
        return zarr.__version__

    def skip(self, cell):
        if cell["format"] != "v2":
            return "zarr-python 2.13 has no Zarr v3 (its 'v3' is a pre-spec draft)"
        if cell["store"] == "s3":
            try:
                self.boto3_versions = s3_boto3_store.versions()
            except ImportError as e:
                return (f"the S3 cells run through {s3_boto3_store.LABEL} (Debian 12 packages no s3fs), and boto3 "
                        f"is not importable by {sys.executable} (Debian: python3-boto3): {e}")
        cc = cell["codec_config"]
        if cell["codec"] == "zstd" and cc.get("checksum"):
            return f"numcodecs {self.numcodecs_version} Zstd has no checksum option"
        return None

    def compressor(self, cell):
        import numcodecs
        cc = cell["codec_config"]
        if cell["codec"] == "blosc":
            return numcodecs.Blosc(cname=cc["cname"], clevel=int(cc["clevel"]), shuffle=int(cc["shuffle"]),
                                   blocksize=int(cc["blocksize"]))
        if cell["codec"] == "zstd":
            return numcodecs.Zstd(level=int(cc["level"]))
        return None

    def setup(self, cell):
        from numcodecs import blosc
        blosc.set_nthreads(max(1, int(cell["threads"])))
        # the boto3 client outside the window, as an import is: its construction loads botocore's
        # service model (~20 MB of Python objects), a fixed cost that is no copy of the array
        self.s3 = s3_boto3_store.client() if cell["store"] == "s3" else None

    def label(self, cell):
        return s3_boto3_store.LABEL if cell["store"] == "s3" else None

    def location(self, cell):
        """The store zarr opens: the directory, or the boto3 store on the cell's bucket and prefix."""
        if cell["store"] == "local":
            return cell["url"]
        return s3_boto3_store.Boto3Store(cell["s3_bucket"], cell["s3_prefix"], self.s3)

    def write(self, cell, data):
        import zarr
        z = zarr.open_array(self.location(cell), mode="w-", shape=tuple(cell["shape"]), chunks=tuple(cell["chunks"]),
                            dtype=cell["dtype"], compressor=self.compressor(cell))
        z[...] = data

    def read(self, cell):
        import zarr
        return zarr.open_array(self.location(cell), mode="r")[...]

    def window_open(self, cell):
        tracemalloc.start()

    def window_close(self, cell, array_bytes, output_bytes):
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        ratio = (peak - output_bytes) / array_bytes if array_bytes else 0.0
        store = {}
        if cell["store"] == "s3":
            store = {"store": {"name": "Boto3Store (harness/impl/s3_boto3_store.py)", **self.boto3_versions}}
        return {**store, "tracemalloc": {
            "peak_bytes": peak, "output_bytes": output_bytes,
            "peak_extra_ratio": round(ratio, 4), "extra_copies": int(round(ratio)),
            "about": "tracemalloc started just before tly_mark_begin and stopped just after tly_mark_end "
                     "(the same window); peak_extra_ratio = (traced peak - output bytes) / array bytes, "
                     "extra_copies = its rounding (memray-array's method); tracemalloc's own bookkeeping "
                     "is in the preload's figures for this window"}}


if __name__ == "__main__":
    sys.exit(tally_adapter.main(ZarrPython()))
