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
    w -= _c(decay, dt) * w


def regularize_before(w, g, rule, s, lr):
    """The part of each rule that runs before the optimizer's step (L2, Decoupled); returns the
    gradient to use (a new array: the caller's is never written).  `s` is the rule's coef
    (for Decoupled(lam, lr_max): lam/lr_max)."""
    if rule == "l2":
        g = g + _c(s, w.dtype) * w
    if rule == "decoupled":
        w -= _c(lr * s, w.dtype) * w
    return g


def regularize_after(w, rule, s):
    """The part of each rule that runs after the step (Decay)."""
    if rule == "decay":
        w -= _c(s, w.dtype) * w


class SGD:
    """torch.optim.SGD written from the formulas, with the rule given as (name, coef);
    momentum_form "keras" is Keras' / scikit-learn's velocity form.  A tensor's buffer is born
    from its gradient at its first step with momentum (torch)."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, reg=("none", 0.0),
                 maximize=False, momentum_form="torch"):
        self.params, self.lr, self.mu, self.damp, self.nesterov = params, lr, momentum, dampening, nesterov
        self.rule, self.s = reg
        self.maximize, self.form = maximize, momentum_form
        self.bufs = [None] * len(params)

    def step(self, grads):
        for k, (w, g) in enumerate(zip(self.params, grads)):
            c = lambda x: _c(x, w.dtype)  # noqa: E731
            g = -g if self.maximize else g
            g = regularize_before(w, g, self.rule, self.s, self.lr)
            if self.mu == 0:
                w -= c(self.lr) * g
            elif self.form == "keras":
                if self.bufs[k] is None:
                    self.bufs[k] = -(c(self.lr) * g)
                else:
                    self.bufs[k] = c(self.mu) * self.bufs[k] - c(self.lr) * g
                if self.nesterov:
                    w += c(self.mu) * self.bufs[k] - c(self.lr) * g
                else:
                    w += self.bufs[k]
            else:
                if self.bufs[k] is None:
                    self.bufs[k] = g.copy()
                else:
                    self.bufs[k] = c(self.mu) * self.bufs[k] + c(1.0 - self.damp) * g
                d = g + c(self.mu) * self.bufs[k] if self.nesterov else self.bufs[k]
                w -= c(self.lr) * d
            regularize_after(w, self.rule, self.s)


class Adam:
    """torch.optim.Adam (AdamW with reg=("decoupled", lam)) written from the formulas; eps_form
    "keras" is Keras' / scikit-learn's / thinc's: eps added to sqrt(v), the bias correction in
    the step size."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, reg=("none", 0.0), amsgrad=False,
                 maximize=False, eps_form="torch"):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.rule, self.s = reg
        self.amsgrad, self.maximize, self.form = amsgrad, maximize, eps_form
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.vmax = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for k, (w, g) in enumerate(zip(self.params, grads)):
            c = lambda x: _c(x, w.dtype)  # noqa: E731
            g = -g if self.maximize else g
            g = regularize_before(w, g, self.rule, self.s, self.lr)
            self.m[k] = c(b1) * self.m[k] + c(1 - b1) * g
            self.v[k] = c(b2) * self.v[k] + c(1 - b2) * (g * g)
            v = self.v[k]
            if self.amsgrad:
                self.vmax[k] = np.maximum(self.vmax[k], v)
                v = self.vmax[k]
            if self.form == "keras":
                w -= (c(self.lr * np.sqrt(bc2) / bc1) * self.m[k]) / (np.sqrt(v) + c(self.eps))
            else:
                w -= (c(self.lr / bc1) * self.m[k]) / (np.sqrt(v) / c(np.sqrt(bc2)) + c(self.eps))
            regularize_after(w, self.rule, self.s)


def dense_grad(shape, dtype, rows, grad_rows):
    """The dense gradient of a table whose rows `rows` have gradient rows `grad_rows`; a row given
    more than once gets their sum (torch's coalesce), the others zero."""
    g = np.zeros(shape, dtype)
    np.add.at(g, rows, grad_rows)
    return g


class SparseAdam:
    """torch.optim.SparseAdam written from its formulas (torch/optim/_functional.py,
    sparse_adam: the moments and weights of the rows in the gradient only, eps added to
    sqrt(v), one step count per table), with a rule's decay of every row, dense."""

    def __init__(self, w, lr, betas=(0.9, 0.999), eps=1e-8, reg=("none", 0.0), maximize=False):
        self.w, self.lr, self.betas, self.eps, self.maximize = w, lr, betas, eps, maximize
        self.rule, self.s = reg
        self.m, self.v = np.zeros_like(w), np.zeros_like(w)
        self.t = 0

    def step(self, rows, grad_rows):
        self.t += 1
        w, c = self.w, (lambda x: _c(x, self.w.dtype))
        b1, b2 = self.betas
        touched = np.unique(rows)
        g = dense_grad(w.shape, w.dtype, rows, grad_rows)[touched]
        g = -g if self.maximize else g
        regularize_before(w, g, self.rule, self.s, self.lr)
        m_old, v_old = self.m[touched], self.v[touched]
        m_new = m_old + (g - m_old) * c(1 - b1)
        v_new = v_old + (g * g - v_old) * c(1 - b2)
        self.m[touched], self.v[touched] = m_new, v_new
        step_size = self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        w[touched] += c(-step_size) * (m_new / (np.sqrt(v_new) + c(self.eps)))
        regularize_after(w, self.rule, self.s)
