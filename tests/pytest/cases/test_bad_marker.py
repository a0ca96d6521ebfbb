import pytest


@pytest.mark.tally(array_bytes=1000, extra_copy=1)
def test_misspelt():
    pass
