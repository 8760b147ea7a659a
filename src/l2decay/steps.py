"""The compiled entry points: the two rules' in-place updates and one optimizer step.

All are in kernels/l2decay/_kernels.pyx: they check every argument at C level, deferring to
l2decay._validate for the worded error, then update in place with the GIL released.
"""
from ._kernels import adam_step, decay_step, l2_step, sgd_step

__all__ = ["l2_step", "decay_step", "sgd_step", "adam_step"]
