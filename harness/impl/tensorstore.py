#!/usr/bin/python3
"""tally's adapter for TensorStore (the `tensorstore` Python package).

  PYTHON harness/impl/tensorstore.py --probe | --cell CELL.json   (docs/impl-protocol.md)

Not packaged for Debian 12 (and pip's index is out of reach from tally's machines): where the module
is not importable, --probe says unavailable with the ImportError's text and every cell is skipped with
it. Where it is (`pip install tensorstore` into an interpreter with numpy; run the adapter with that
interpreter), it runs every cell:

  v2: the "zarr" driver, metadata {shape, chunks, dtype, order "C", fill_value 0, compressor
      {"id": "blosc", cname, clevel, shuffle, blocksize} | {"id": "zstd", level} | null}
  v3: the "zarr3" driver, metadata {shape, data_type, chunk_grid regular, chunk_key_encoding default,
      fill_value 0, codecs [bytes little-endian, then blosc {cname, clevel, shuffle "noshuffle" |
      "shuffle" | "bitshuffle", typesize, blocksize} | zstd {level, checksum}]}
  local: the "file" kvstore at the cell's url; s3: the "s3" kvstore {bucket, path PREFIX/, endpoint
      AWS_ENDPOINT_URL, aws_region}; credentials from the AWS_* environment (the default chain).

Write: ts.open(spec, create=True).result(), then store.write(data).result(). Read: ts.open(spec,
open=True).result(), store.read().result() (a new numpy array). The context caps the chunk cache at
zero bytes (so a read is not served from a cache the fixture's write filled) and the data-copy and
file-I/O concurrency at the cell's threads.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tally_adapter  # noqa: E402

# The script's directory comes first on sys.path, and this file is tensorstore.py: import the real
# package from the rest of the path.
_HERE = os.path.dirname(os.path.abspath(__file__))


def _import_tensorstore():
    saved = list(sys.path)
    try:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
        import tensorstore as ts
        return ts
    finally:
        sys.path[:] = saved


BLOSC_SHUFFLE_V3 = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle"}


class TensorStore(tally_adapter.Adapter):
    name = "tensorstore"

    def probe(self):
        ts = _import_tensorstore()
        return getattr(ts, "__version__", "unknown")

    def skip(self, cell):
        if cell["format"] == "v2" and cell["codec"] == "zstd" and cell["codec_config"].get("checksum"):
            return "TensorStore's zarr (v2) zstd compressor has no checksum option"
        return None

    def setup(self, cell):
        self.ts = _import_tensorstore()

    def kvstore(self, cell):
        if cell["store"] == "local":
            return {"driver": "file", "path": cell["url"].rstrip("/") + "/"}
        endpoint, region = tally_adapter.s3_env()
        return {"driver": "s3", "bucket": cell["s3_bucket"], "path": cell["s3_prefix"] + "/",
                "endpoint": endpoint, "aws_region": region}

    def context(self, cell):
        n = max(1, int(cell["threads"]))
        return self.ts.Context({"cache_pool": {"total_bytes_limit": 0},
                                "data_copy_concurrency": {"limit": n},
                                "file_io_concurrency": {"limit": n}})

    def metadata(self, cell):
        cc = cell["codec_config"]
        shape, chunks = [int(n) for n in cell["shape"]], [int(n) for n in cell["chunks"]]
        if cell["format"] == "v2":
            comp = None
            if cell["codec"] == "blosc":
                comp = {"id": "blosc", "cname": cc["cname"], "clevel": int(cc["clevel"]),
                        "shuffle": int(cc["shuffle"]), "blocksize": int(cc["blocksize"])}
            elif cell["codec"] == "zstd":
                comp = {"id": "zstd", "level": int(cc["level"])}
            return {"shape": shape, "chunks": chunks, "dtype": cell["dtype"], "order": "C",
                    "fill_value": 0, "compressor": comp, "filters": None}
        import numpy as np
        dt = np.dtype(cell["dtype"])
        codecs = [{"name": "bytes", "configuration": {"endian": "big" if dt.byteorder == ">" else "little"}}]
        if cell["codec"] == "blosc":
            codecs.append({"name": "blosc", "configuration": {
                "cname": cc["cname"], "clevel": int(cc["clevel"]),
                "shuffle": BLOSC_SHUFFLE_V3[int(cc["shuffle"])], "typesize": dt.itemsize,
                "blocksize": int(cc["blocksize"])}})
        elif cell["codec"] == "zstd":
            codecs.append({"name": "zstd", "configuration": {"level": int(cc["level"]),
                                                             "checksum": bool(cc.get("checksum", False))}})
        return {"shape": shape, "data_type": dt.newbyteorder("=").name,
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
                "chunk_key_encoding": {"name": "default"}, "fill_value": 0, "codecs": codecs}

    def spec(self, cell):
        return {"driver": "zarr" if cell["format"] == "v2" else "zarr3", "kvstore": self.kvstore(cell)}

    def write(self, cell, data):
        spec = self.spec(cell)
        spec["metadata"] = self.metadata(cell)
        store = self.ts.open(spec, create=True, context=self.context(cell)).result()
        store.write(data).result()
        del store

    def read(self, cell):
        store = self.ts.open(self.spec(cell), open=True, context=self.context(cell)).result()
        out = store.read().result()
        del store
        return out


if __name__ == "__main__":
    sys.exit(tally_adapter.main(TensorStore()))
