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


def regularize_before(w, g, rule, s, lr):
    """The part of each rule that runs before the optimizer's step (L2, Decoupled)."""
    if rule == "l2":
        g += _c(s, w.dtype) * w
    if rule == "decoupled":
        w *= _c(1.0 - lr * s, w.dtype)


def regularize_after(w, rule, s):
    """The part of each rule that runs after the step (Decay)."""
    if rule == "decay":
        w *= _c(1.0 - s, w.dtype)


class SGD:
    """torch.optim.SGD written from the formulas, with the rule given as (name, strength)."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, reg=("none", 0.0)):
        self.params, self.lr, self.mu, self.damp, self.nesterov = params, lr, momentum, dampening, nesterov
        self.rule, self.s = reg
        self.bufs = [None] * len(params)

    def step(self, grads):
        for k, (w, g) in enumerate(zip(self.params, grads)):
            c = lambda x: _c(x, w.dtype)  # noqa: E731
            regularize_before(w, g, self.rule, self.s, self.lr)
            d = g
            if self.mu != 0:
                if self.bufs[k] is None:
                    self.bufs[k] = g.copy()
                else:
                    self.bufs[k] = c(self.mu) * self.bufs[k] + c(1.0 - self.damp) * g
                d = g + c(self.mu) * self.bufs[k] if self.nesterov else self.bufs[k]
            w -= c(self.lr) * d
            regularize_after(w, self.rule, self.s)


class Adam:
    """torch.optim.Adam (AdamW with reg=("decoupled", lam)) written from the formulas."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, reg=("none", 0.0)):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.rule, self.s = reg
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1 ** self.t)
        bc2_sqrt = np.sqrt(1 - b2 ** self.t)
        for k, (w, g) in enumerate(zip(self.params, grads)):
            c = lambda x: _c(x, w.dtype)  # noqa: E731
            regularize_before(w, g, self.rule, self.s, self.lr)
            self.m[k] = c(b1) * self.m[k] + c(1 - b1) * g
            self.v[k] = c(b2) * self.v[k] + c(1 - b2) * (g * g)
            w -= (c(step_size) * self.m[k]) / (np.sqrt(self.v[k]) / c(bc2_sqrt) + c(self.eps))
            regularize_after(w, self.rule, self.s)
