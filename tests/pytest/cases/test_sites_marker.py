import pytest


@pytest.mark.tally(sites={"numcodecs/blosc.py:42": 1})
def test_sites():
    pass
