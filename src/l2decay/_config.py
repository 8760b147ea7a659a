"""What was built and how it runs: build_info(), thread control, the cimport include path."""
import os

import numpy as np

from . import _kernels

try:
    from ._build_config import CONFIG as _BUILD
except ImportError:  # built by something other than this project's setup.py
    _BUILD = {}


def build_info():
    """A dict describing the compiled kernels: Cython version, compiler flags, OpenMP, the SIMD
    level in use (``simd``; L2DECAY_SIMD overrides it) with those built and available, the
    thread count (L2DECAY_NUM_THREADS) and the parallel threshold in bytes per array
    (L2DECAY_PARALLEL_THRESHOLD) now in force, and the numpy versions."""
    info = dict(_BUILD)
    info.update(_kernels.compiled_features())
    info["num_threads"] = _kernels.get_num_threads()
    info["parallel_threshold_bytes"] = _kernels.get_parallel_threshold()
    info["numpy_version"] = np.__version__
    return info


def set_num_threads(n):
    """Threads used for tensors above the parallel threshold, at most 1024; 0 means OpenMP's
    default.  A process forked after a parallel call runs every call on one thread (OpenMP's
    thread pool does not survive a fork)."""
    _kernels.set_num_threads(n)


def get_num_threads():
    return _kernels.get_num_threads()


def get_include():
    """Directory to put on Cython's include path to ``cimport l2decay._kernels``."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _apply_environment():
    value = os.environ.get("L2DECAY_NUM_THREADS")
    if value:
        try:
            set_num_threads(int(value))
        except ValueError:
            raise ValueError(f"L2DECAY_NUM_THREADS must be an int in [0, {_kernels.MAX_THREADS}], "
                             f"got {value!r}") from None
