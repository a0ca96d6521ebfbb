import numcodecs
import numpy as np
import pytest

zarr = pytest.importorskip("zarr")


@pytest.fixture
def data():
    return np.random.default_rng(0).random((5000, 5000), dtype=np.float32)  # 100 MB, outside the window


@pytest.mark.tally(array_bytes=100_000_000, peak_extra=1.1)
def test_zarr_write(data, tmp_path):
    z = zarr.open(str(tmp_path / "a.zarr"), mode="w", shape=data.shape, chunks=data.shape, dtype=data.dtype,
                  compressor=numcodecs.Blosc())
    z[...] = data
