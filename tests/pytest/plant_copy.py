"""A planted copy (pytest -p plant_copy): in the test whose node id ends with $TALLY_PLANT_TEST,
numcodecs' BZ2 codec copies its input once before compressing it (numpy's copy: a memcpy)."""
import os

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _planted_copy(request, monkeypatch):
    target = os.environ.get("TALLY_PLANT_TEST")
    if target and request.node.nodeid.endswith(target):
        from numcodecs.bz2 import BZ2

        encode = BZ2.encode
        monkeypatch.setattr(BZ2, "encode", lambda self, buf: encode(self, np.array(buf, copy=True)))
    yield
