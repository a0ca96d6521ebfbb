import numpy as np
import pytest


@pytest.mark.parametrize("i", range(6))
@pytest.mark.tally(array_bytes=32 << 20, extra_copies=2)
def test_worker(i):
    a = np.ones(32 << 20, dtype=np.uint8)
    assert a.copy().sum() == 32 << 20
