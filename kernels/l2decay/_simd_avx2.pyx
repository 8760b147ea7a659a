"""The update loops of l2decay compiled for the avx2 instruction set (flags: setup.py SIMD_LEVELS)."""
include "_loops.pxi"
