"""Shared by the tests that run the kernels under every SIMD level and thread count."""
import contextlib

import l2decay
from l2decay import _kernels


@contextlib.contextmanager
def configured(level=None, threads=None, threshold=None):
    """The kernels' SIMD level, thread count and parallel threshold set for a block, restored after."""
    old = (_kernels.get_simd(), _kernels.get_parallel_threshold())
    try:
        if level is not None:
            _kernels.set_simd(level)
        if threads is not None:
            l2decay.set_num_threads(threads)
        if threshold is not None:
            _kernels.set_parallel_threshold(threshold)
        yield
    finally:
        _kernels.set_simd(old[0])
        _kernels.set_parallel_threshold(old[1])
        l2decay.set_num_threads(0)
