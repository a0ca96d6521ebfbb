"""The plugin's own cases (run by tests/pytest/plugin.py under pytest --tally, never directly)."""
import numpy as np
import pytest

N = 100_000_000


@pytest.fixture
def data():
    """Allocated in the test's setup: outside its window, so not an extra of it."""
    return np.ones(N, dtype=np.uint8)


@pytest.mark.tally(array_bytes=N, extra_copies=1)
def test_two_copies_over(data):
    a, b = data.copy(), data.copy()
    assert a.sum() == b.sum() == N


@pytest.mark.tally(array_bytes=N, extra_copies=2)
def test_two_copies_within(data):
    a, b = data.copy(), data.copy()
    assert a.sum() == b.sum() == N


@pytest.mark.tally(array_bytes="100 MB", peak_extra=1.1)
def test_peak_over(data):
    a, b = data.copy(), data.copy()
    del a, b


@pytest.mark.tally(copies={"numpy": 1.5})
def test_copies_set_in_test(data, tally_window):
    tally_window.set_array(N)
    a, b = data.copy(), data.copy()
    del a, b


@pytest.mark.tally(copies={"numcodec": 1.0})
def test_library_never_loaded():
    pass


@pytest.mark.parametrize("kib", [64, 128], ids=["small id", "large[x]"])
def test_param(kib):
    assert len(bytes(kib << 10)) == kib << 10


def test_raises():
    raise RuntimeError("a test that raises")


def test_skips_in_body():
    pytest.skip("skipped in its body")
