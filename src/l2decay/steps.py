"""The two in-place update rules the project compares.

Both are compiled entry points (kernels/l2decay/_kernels.pyx): they check every argument at C
level, deferring to l2decay._validate for the worded error, then update in place with the GIL
released.
"""
from ._kernels import decay_step, l2_step

__all__ = ["l2_step", "decay_step"]
