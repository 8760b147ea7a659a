"""The update loops of l2decay compiled for the baseline instruction set (flags: setup.py SIMD_LEVELS)."""
include "_loops.pxi"
