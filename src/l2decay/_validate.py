"""The rules for l2decay's arguments, and the one place that words their errors.

The compiled entry points (kernels/l2decay/_kernels.pyx) check the same rules at C level and
call these functions only for what their fast checks refuse, so every TypeError/ValueError
comes from here.  The optimizers use them directly when a group is added or a step's compiled
plan is refused.  A multi-tensor call is validated whole before the first tensor is touched, so
a bad argument anywhere leaves every array unmodified.
"""
import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_PLAIN_NUMBERS = (float, int)


def real(name, value, *, low=0.0, high=math.inf, low_open=False, high_open=False):
    """`value` as a float, after checking it is a finite real number within [low, high]."""
    if type(value) not in _PLAIN_NUMBERS and (
        not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_))
    ):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    if x < low or x > high or (low_open and x == low) or (high_open and x == high):
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low:g}, {high:g}{hi}, got {x!r}")
    return x


def _array(name, a, writes):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64 (native byte order), got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(
            f"{name} must be C-contiguous to be updated in place; got a strided view "
            f"(copy with numpy.ascontiguousarray, update, and copy back)"
        )
    if writes and not a.flags.writeable:
        raise ValueError(f"{name} is read-only, but it is updated in place")


def _pair(wname, w, gname, g, writes_grad):
    _array(wname, w, True)
    _array(gname, g, writes_grad)
    if g.dtype != w.dtype:
        raise TypeError(f"{gname} has dtype {g.dtype} but {wname} has dtype {w.dtype}; they must match")
    if g.shape != w.shape:
        raise ValueError(f"{gname} has shape {g.shape} but {wname} has shape {w.shape}; they must match")
    # Both are C-contiguous, so the bounds test of may_share_memory is exact here.
    if np.may_share_memory(w, g):
        raise ValueError(f"{wname} and {gname} share memory; they must be distinct arrays")


def tensors(w, grad, writes_grad, *, offset=0):
    """Validate `w`/`grad` (one array each, or equal-length sequences); return tuples of
    arrays ready for the kernels.  Sequence items are named from index `offset` on (a slice
    of a longer list), so errors point at the caller's own index.
    """
    if isinstance(w, np.ndarray):
        _pair("w", w, "grad", grad, writes_grad)
        return (w,), (grad,)
    if not isinstance(w, (list, tuple)):
        raise TypeError(f"w must be a numpy.ndarray or a list/tuple of them, got {type(w).__name__}")
    if not isinstance(grad, (list, tuple)):
        raise TypeError(f"grad must be a sequence of arrays like w, got {type(grad).__name__}")
    if len(grad) != len(w):
        raise ValueError(f"w has {len(w)} arrays but grad has {len(grad)}; they must be equal in number")
    ws, gs = tuple(w), tuple(grad)
    for k in range(len(ws)):
        _pair(f"w[{k + offset}]", ws[k], f"grad[{k + offset}]", gs[k], writes_grad)
    return ws, gs
