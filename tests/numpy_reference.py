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
    """The part of each rule that runs before the optimizer's step and needs no update (L2,
    Decoupled, Corrected); returns the gradient to use (a new array: the caller's is never
    written).  `s` is the rule's coef (for Decoupled(lam, lr_max) and Corrected: lam/lr_max)."""
    if rule == "l2":
        g = g + _c(s, w.dtype) * w
    if rule == "decoupled":
        w -= _c(lr * s, w.dtype) * w
    if rule == "corrected":         # lam * lr**2 / lr_max
        w -= _c(lr * (lr * s), w.dtype) * w
    return g


def opposite(u, w):
    """Where u*w < 0 (by the signs: a product could round to 0)."""
    return ((u > 0) & (w < 0)) | ((u < 0) & (w > 0))


def cautious(w, u, rule, s, lr):
    """Cautious(lam), with the update u of the step w -= lr*u: Decoupled's shrink where
    u*w >= 0 (Chen et al. 2025), before the step."""
    if rule == "cautious":
        w -= np.where(opposite(u, w), _c(0, w.dtype), _c(lr * s, w.dtype)) * w


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
                cautious(w, g, self.rule, self.s, self.lr)
                w -= c(self.lr) * g
            elif self.form == "keras":
                if self.bufs[k] is None:
                    self.bufs[k] = -(c(self.lr) * g)
                else:
                    self.bufs[k] = c(self.mu) * self.bufs[k] - c(self.lr) * g
                change = c(self.mu) * self.bufs[k] - c(self.lr) * g if self.nesterov else self.bufs[k]
                cautious(w, -change, self.rule, self.s, self.lr)
                w += change
            else:
                if self.bufs[k] is None:
                    self.bufs[k] = g.copy()
                else:
                    self.bufs[k] = c(self.mu) * self.bufs[k] + c(1.0 - self.damp) * g
                d = g + c(self.mu) * self.bufs[k] if self.nesterov else self.bufs[k]
                cautious(w, d, self.rule, self.s, self.lr)
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
            cautious(w, self.m[k], self.rule, self.s, self.lr)     # (u = m_hat/(sqrt(v_hat)+eps): m's sign)
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


# ---- 8-bit optimizer state (state_dtype "8bit"), written from its definition in docs/low-precision.md:
# a value is an 8-bit float code times its block's scale (largest magnitude / 1.875); code 0 is
# zero, codes 8*E + M (M < 8) are (1 + M/8) * 2**(E - bias), no subnormals
Q8_BLOCK = 256
_Q8 = {True: (15, 127), False: (31, 255)}     # signed: (exponent bias, largest code)


def q8_decode(codes, scales, signed):
    """float32 values of uint8 `codes` (flat) with per-block `scales`."""
    bias, _ = _Q8[signed]
    c = codes.astype(np.int64)
    mag = c & 127 if signed else c
    value = np.where(mag > 0, (1 + (mag & 7) / 8) * 2.0 ** ((mag >> 3) - bias), 0.0)
    value = np.where((c & 128) > 0, -value, value) if signed else value
    scale = np.repeat(scales.astype(np.float64), Q8_BLOCK)[:len(c)]
    return (value * scale).astype(np.float32)


def q8_scale(block):
    """float32(max|block|) / 1.875 in float32; 1 below float32's normal range; NaN if not finite."""
    a = np.max(np.abs(block)) if len(block) else np.float32(0)
    if not np.isfinite(a):
        return np.float32(np.nan)
    if a < np.finfo(np.float32).tiny:
        return np.float32(1)
    return np.float32(a) / np.float32(1.875)


def q8_encode(x, signed):
    """(codes, scales) of float32 values x (flat): each block's scale, then each value to the
    nearest code (ties away from zero), 0 below the smallest; a positive unsigned value never to 0."""
    bias, top = _Q8[signed]
    n = len(x)
    scales = np.array([q8_scale(x[i:i + Q8_BLOCK]) for i in range(0, n, Q8_BLOCK)], dtype=np.float32)
    normal = np.array([len(x[i:i + Q8_BLOCK]) and np.max(np.abs(x[i:i + Q8_BLOCK])) >= np.finfo(np.float32).tiny
                       for i in range(0, n, Q8_BLOCK)])
    inv = np.where(normal, 1.0 / scales.astype(np.float64), 0.0).astype(np.float32)    # (float32 1/scale)
    y = (x.astype(np.float32) * np.repeat(inv, Q8_BLOCK)[:n]).astype(np.float64)
    codes = np.zeros(n, np.int64)
    for i, v in enumerate(np.abs(y)):
        code = 0
        if v > 0:
            e = int(np.floor(np.log2(v)))
            m = v / 2.0 ** e * 8 - 8            # in [0, 8)
            r = np.floor(m)
            frac = m - r
            r = r + 1 if frac >= 0.5 else r
            code = max((e + bias) * 8 + int(r), 0)   # (r == 8 carries into the exponent)
            if not signed and code == 0:
                code = 1
        codes[i] = min(code, top)
    if signed:
        codes = codes | np.where(np.signbit(y), 128, 0)
    return codes.astype(np.uint8), scales


def adam_8bit(w, g, codes_m, scales_m, codes_v, scales_v, t, lr, b1, b2, eps, rule=None, s=0.0, maximize=False):
    """One Adam step with 8-bit moments in float32 arithmetic, rounding to nearest, in place on flat
    arrays (w float32, or 16-bit: computed in float32, stored rounded to nearest): the moments
    decoded, updated, the weight stepped (multiplying sqrt(v) by 1/sqrt(1 - beta2**t)), the
    moments coded again."""
    f = np.float32
    w0 = w.astype(np.float32)
    gi = g.astype(np.float32) * f(-1.0 if maximize else 1.0)
    if rule == "l2":
        gi = gi + f(s) * w0
    m = f(b1) * q8_decode(codes_m, scales_m, True) + f(1.0 - b1) * gi
    v = f(b2) * q8_decode(codes_v, scales_v, False) + f(1.0 - b2) * (gi * gi)
    ss, ibc2s = f(lr / (1.0 - b1 ** t)), f(1.0 / np.sqrt(1.0 - b2 ** t))
    x = w0          # (a new float32 array: the decoupled rules shrink it in place)
    regularize_before(x, gi, rule if rule != "l2" else None, s, lr)
    cautious(x, m, rule, s, lr)
    x = x + -((ss * m) / (np.sqrt(v) * ibc2s + f(eps)))
    if rule == "decay":
        x = x - f(s) * x
    w[...] = x.astype(w.dtype)
    codes_m[...], scales_m[...] = q8_encode(m, True)
    codes_v[...], scales_v[...] = q8_encode(v, False)


def sgd_8bit(w, g, codes, scales, lr, momentum, first, dampening=0.0, nesterov=False, rule=None, s=0.0):
    """One SGD step ("torch" form) with an 8-bit momentum buffer, float32 arithmetic, in place on
    flat arrays: the buffer decoded (or born from g), updated, the weight stepped, the buffer coded."""
    f = np.float32
    w0 = w.astype(np.float32)
    gi = g.astype(np.float32)
    if rule == "l2":
        gi = gi + f(s) * w0
    b = gi if first else f(momentum) * q8_decode(codes, scales, True) + f(1.0 - dampening) * gi
    u = (gi + f(momentum) * b) if nesterov else b
    change = -(f(lr) * u)
    x = w0
    regularize_before(x, gi, rule if rule != "l2" else None, s, lr)
    cautious(x, u, rule, s, lr)
    x = x + change
    if rule == "decay":
        x = x - f(s) * x
    w[...] = x.astype(w.dtype)
    codes[...], scales[...] = q8_encode(b, True)
