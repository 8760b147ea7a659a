"""Plain numpy references of every l2decay rule, written from the formulas; used only by tests.

Each mirrors the kernel's operation order in the array's own dtype (hyperparameters rounded
once to it), so the compiled kernels are expected to agree to the last bit; the tests still
compare with dtype-specific tolerances so an honest reordering would not break them.
"""
import numpy as np


def _c(x, dtype):
    return np.asarray(x, dtype=dtype)[()]


def l2_step(w, grad, lr, lam):
    dt = w.dtype
    grad += _c(lam, dt) * w
    w -= _c(lr, dt) * grad


def decay_step(w, grad, lr, decay):
    dt = w.dtype
    w -= _c(lr, dt) * grad
    w *= _c(1.0 - decay, dt)
