"""A small numpy multilayer perceptron: forward and backward with BLAS matmuls, no autograd."""
import os

import ml_dtypes
import numpy as np

from .._validate import is_half

ACTIVATIONS = ("tanh", "relu")
LOSSES = ("ce", "mse")
# The weights' float types by name (numpy knows bfloat16 only as ml_dtypes' type, not by name).
DTYPES = {dt.name: dt for dt in map(np.dtype, (np.float64, np.float32, np.float16, ml_dtypes.bfloat16))}


def compute_dtype(dtype):
    """The dtype the net computes in for weights of `dtype`: float32 for the 16-bit formats,
    else `dtype` itself.  BLAS has no 16-bit matmul: numpy's own 16-bit loops are far slower,
    and store every result in 16 bits."""
    dtype = np.dtype(DTYPES.get(dtype, dtype))
    return np.dtype(np.float32) if is_half(dtype) else dtype


def narrow(a, dtype):
    """`a` cast to `dtype`, rounded to nearest even, as ``a.astype(dtype)``, bit for bit.

    numpy's float32 -> float16 cast sets the floating-point underflow flag element by element
    for every inexact result below float16's normal range (2**-14), a slow path per element,
    and most of a per-sample gradient is that small.
    Rounded first to float16's subnormal grid (2**-24 apart; exact in float32), they cast
    exactly, without the flag."""
    if dtype == np.float16 and a.dtype == np.float32:
        tiny = np.abs(a) < 2.0 ** -14
        if tiny.any():
            a = np.where(tiny, np.rint(a * 2.0 ** 24) * 2.0 ** -24, a)
    return a.astype(dtype)


def _memory_bytes():
    """Physical memory, or a bound no machine reaches when it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


class MLP:
    """Fully connected net: ``sizes[0]`` inputs, hidden layers, ``sizes[-1]`` outputs.

    Parameters are ``[W1, b1, W2, b2, ...]`` with ``W`` of shape (fan_in, fan_out), Glorot
    uniform initialization from `seed`.  ``loss="ce"``: softmax + cross-entropy;
    ``loss="mse"``: sigmoid outputs and half the squared error to one-hot targets (the classic
    backpropagation net).  Losses are means over the batch.

    ``dtype`` is the weights' type: float64, float32, or bfloat16/float16 (by name or numpy
    type).  16-bit weights stay 16-bit (the optimizer updates them); each :meth:`forward` casts
    them to float32 once and computes in float32, :meth:`backward` reuses that cast and returns
    the gradients in the weights' type, as the optimizers take them.
    """

    def __init__(self, sizes, *, activation="tanh", loss="ce", dtype=np.float64, seed=0):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if isinstance(sizes, (str, bytes)) or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                                       for s in sizes):
            raise TypeError(f"sizes must be a list of int layer widths, got {sizes!r}")
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least 2 positive layer widths, got {sizes}")
        try:
            known = np.dtype(DTYPES.get(dtype, dtype)) in DTYPES.values()
        except TypeError:
            known = False
        if not known:
            raise TypeError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
        dtype = np.dtype(DTYPES.get(dtype, dtype))
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        nbytes = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])) * np.dtype(dtype).itemsize
        if nbytes > _memory_bytes():
            raise ValueError(f"sizes {sizes} need {nbytes >> 30:,} GiB of parameters, more than this "
                             f"machine's {_memory_bytes() >> 30:,} GiB of memory")
        self.sizes, self.activation, self.loss, self.dtype = sizes, activation, loss, dtype
        self.compute_dtype = compute_dtype(dtype)
        rng = np.random.default_rng(seed)
        self.params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            self.params.append(rng.uniform(-limit, limit, (fan_in, fan_out)).astype(self.dtype))
            self.params.append(np.zeros(fan_out, dtype=self.dtype))
        self.names = [f"{kind}{i + 1}" for i in range(len(sizes) - 1) for kind in ("W", "b")]
        self._working = self.params   # what forward computed with; backward uses the same

    def _cast(self, arrays, dtype):
        return arrays if self.dtype == self.compute_dtype else [narrow(a, dtype) for a in arrays]

    @property
    def weights(self):
        """The weight matrices (not the biases)."""
        return self.params[0::2]

    def flat_weights(self):
        """Every weight matrix's values in one array, in the compute dtype (statistics of
        16-bit values would be summed in 16 bits)."""
        return np.concatenate([W.ravel() for W in self.weights]).astype(self.compute_dtype, copy=False)

    def _act(self, z):
        return np.tanh(z, out=z) if self.activation == "tanh" else np.maximum(z, 0, out=z)

    def forward(self, X):
        """Activations of every layer, in the compute dtype; the last is the output (probabilities)."""
        acts = [X]
        params = self._working = self._cast(self.params, self.compute_dtype)
        n_layers = len(params) // 2
        for i in range(n_layers):
            z = acts[-1] @ params[2 * i]
            z += params[2 * i + 1]
            if i < n_layers - 1:
                acts.append(self._act(z))
            elif self.loss == "ce":
                z -= z.max(axis=1, keepdims=True)
                np.exp(z, out=z)
                z /= z.sum(axis=1, keepdims=True)
                acts.append(z)
            else:
                acts.append(1.0 / (1.0 + np.exp(-z)))
        return acts

    def loss_value(self, out, y):
        n = y.shape[0]
        if self.loss == "ce":
            p = out[np.arange(n), y]
            return float(-np.mean(np.log(np.maximum(p, np.finfo(out.dtype).tiny))))
        target = np.zeros_like(out)
        target[np.arange(n), y] = 1
        return float(0.5 * np.sum((out - target) ** 2) / n)

    def backward(self, acts, y):
        """Gradients of the mean batch loss, in the order and dtype of ``params``, at the weights
        of the :meth:`forward` call that gave `acts`."""
        out = acts[-1]
        n = y.shape[0]
        delta = out.copy()
        delta[np.arange(n), y] -= 1
        if self.loss == "mse":
            delta *= out * (1 - out)
        delta /= n
        grads = [None] * len(self.params)
        for i in range(len(self.params) // 2 - 1, -1, -1):
            grads[2 * i] = acts[i].T @ delta
            grads[2 * i + 1] = delta.sum(axis=0)
            if i > 0:
                delta = delta @ self._working[2 * i].T
                a = acts[i]
                if self.activation == "tanh":
                    delta *= 1 - a * a
                else:
                    delta *= a > 0
        return self._cast(grads, self.dtype)

    def predict(self, X):
        return np.argmax(self.forward(X)[-1], axis=1)

    def evaluate(self, X, y):
        """(accuracy, mean loss) on X, y."""
        out = self.forward(X)[-1]
        return float(np.mean(np.argmax(out, axis=1) == y)), self.loss_value(out, y)
