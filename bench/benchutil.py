"""Helpers shared by the benchmark modules (on sys.path via conftest.py)."""
import os

import numpy as np
import pytest

from l2decay import bench

SMOKE = os.environ.get("L2DECAY_BENCH_SMOKE") == "1"
SIZES = (1, 100) if SMOKE else bench.SIZES
OPT_SIZES = (7,) if SMOKE else (1_000, 16_384, 1_048_576)


def skip_unless(case, impl):
    if case is None:
        pytest.skip(f"{impl} is not available here")
    return case


def itemsize(dtype):
    return np.dtype(dtype).itemsize
