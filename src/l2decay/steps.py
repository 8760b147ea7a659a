"""The two in-place update rules the project compares, as validated Python entry points."""
from . import _kernels
from ._validate import real, tensors


def l2_step(w, grad, *, lr, lam):
    """L2 regularization step, in place: ``grad += lam*w; w -= lr*grad``.

    Parameters
    ----------
    w, grad : numpy.ndarray or list/tuple of numpy.ndarray
        Weights and their gradients: float32 or float64, C-contiguous, writeable, pairwise
        equal in dtype and shape, not sharing memory.  Sequences update every pair in one call.
    lr : float
        Learning rate, finite, >= 0.
    lam : float
        L2 strength, finite, >= 0.

    Both ``w`` and ``grad`` are updated; ``grad`` is left holding the regularized gradient.
    Returns None.  On bad input raises TypeError/ValueError and modifies nothing.
    """
    lr = real("lr", lr)
    lam = real("lam", lam)
    ws, gs = tensors(w, grad, True)
    _kernels.l2_step_many(ws, gs, lr, lam)


def decay_step(w, grad, *, lr, decay):
    """Weight-decay step, in place: ``w = (w - lr*grad) * (1 - decay)``; ``grad`` is not written.

    Parameters
    ----------
    w, grad : numpy.ndarray or list/tuple of numpy.ndarray
        As in :func:`l2_step`; ``grad`` may be read-only.
    lr : float
        Learning rate, finite, >= 0.
    decay : float
        Fraction of each weight removed per step, in [0, 1).

    Returns None.  On bad input raises TypeError/ValueError and modifies nothing.
    """
    lr = real("lr", lr)
    decay = real("decay", decay, high=1.0, high_open=True)
    ws, gs = tensors(w, grad, False)
    _kernels.decay_step_many(ws, gs, lr, decay)
