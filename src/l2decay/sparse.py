"""Sparse rows: optimizers for a 2-D table (an embedding) whose step touches only some rows,
with the weight decay of every other row in O(1) instead of O(rows x columns).

A multiplicative decay changes every weight at every step: for a table of V rows of which a
step touches k, decaying densely costs O(V*D) for O(k*D) of gradient.  Here the decay of the
untouched rows is lazy.  The optimizer keeps a table scale ``scale`` (the product of every
step's decay factor since the last fold) and one number per row, ``row_scale[r]`` (the value of
``scale`` when row r was last brought up to date), so that the true weights are
``table[r] * scale / row_scale[r]``.  A step multiplies ``scale`` by its factor and updates the
rows it is given: each is caught up first (the decay of the steps it skipped, one
multiplication), then takes the dense step.  For plain SGD every rule is exact; for Adam,
torch.optim.SparseAdam's step on the touched rows plus a decoupled decay of every row is exact.

Reading the weights goes through the optimizer: :meth:`rows` catches up the rows asked for
(O(k*D)), :meth:`flush` every row (O(V*D), like any read of the whole table), and
:meth:`state_dict` flushes, so a checkpoint holds the true weights (DyNet lost its scale on
save, dynet#1201).  Reading ``opt.table`` directly between steps sees rows not yet decayed.
"""
import numpy as np

from . import _kernels
from ._validate import SettingsCache, _sparse_table, sparse_hyper, sparse_settings, step_count
from .optim import hyper_entries, parse_hyper
from .rules import Decay, Decoupled, L2

__all__ = ["SparseSGD", "SparseAdam", "L2", "Decoupled", "Decay"]

_REFUSED = {
    "momentum": "momentum cannot be lazy: a row's buffer keeps moving it at every step, touched or not",
    "weight_decay": "give the rule as reg=Decoupled(lam) (AdamW's decay), Decay(d) or, for SGD, L2(lam)",
    "amsgrad": "torch.optim.SparseAdam has no amsgrad, and this is its step",
}


class _SparseOptimizer:
    """The table, its lazy decay and the optimizer state; subclasses name the step."""

    _defaults = {}
    _adam = False

    def __init__(self, table, **hyper):
        unknown = sorted(set(hyper) - set(self._defaults))
        if unknown:
            why = "; ".join(_REFUSED[k] for k in unknown if k in _REFUSED)
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {unknown}"
                            + (f" ({why})" if why else ""))
        _sparse_table("table", table)
        self.param_groups = [sparse_hyper(self._adam, dict(self._defaults, **hyper))]
        self._kept = SettingsCache()
        self.table = table
        self.scale = 1.0
        self.row_scale = np.ones(table.shape[0])
        self.state = self._new_state()

    def _new_state(self):
        if not self._adam:
            return {"step": 0}
        return {"step": 0, "exp_avg": np.zeros_like(self.table), "exp_avg_sq": np.zeros_like(self.table)}

    def step(self, rows, grad_rows):
        """Update the given rows from their gradient rows (``grad_rows[j]`` is the gradient of
        row ``rows[j]``; a row given twice has its gradients summed) and decay every row.

        rows: 1-D numpy array of int64 or int32 indices in [0, table rows); grad_rows: 2-D,
        (len(rows), table columns), the table's dtype; only read.  Checks everything before
        touching anything: on a TypeError/ValueError nothing is modified, the scale included."""
        g, st = self.param_groups[0], self.state
        s = self._kept.get(0, g, lambda: sparse_settings(self._adam, sparse_hyper(self._adam, g, "param_groups[0].")))
        self.scale = _kernels.sparse_step(
            self.table, rows, grad_rows, self.row_scale, self.scale, st.get("exp_avg"), st.get("exp_avg_sq"),
            step=st["step"] + 1, settings=s)
        st["step"] += 1

    def rows(self, rows):
        """The true weights of `rows` (a copy, ``len(rows)`` x columns); those rows of
        ``table`` are brought up to date in place.  O(len(rows) * columns)."""
        _kernels.sparse_catch_up(self.table, self.row_scale, self.scale, rows)
        return self.table[rows]

    def flush(self):
        """Bring every row up to date, so that ``table`` holds the true weights, and return it.
        O(rows * columns): do it to read or hand over the whole table, not at every step."""
        _kernels.sparse_catch_up(self.table, self.row_scale, self.scale)
        self.scale = 1.0
        return self.table

    def state_dict(self):
        """A flat dict of numpy arrays, numbers and strings, savable with ``np.savez(f, **d)``:
        the hyperparameters, the step count, the moments (Adam) and the table's true weights
        (``table``: the state dict flushes first).  A run restored from it with
        :meth:`load_state_dict` continues bit for bit as the run that saved it."""
        d = {"optimizer": type(self).__name__, "table": self.flush().copy(), "step": self.state["step"]}
        d.update(hyper_entries(self.param_groups[0], self.param_groups[0], "group.0."))
        for name, value in self.state.items():
            if isinstance(value, np.ndarray):
                d[name] = value.copy()
        return d

    def load_state_dict(self, d):
        """Restore the hyperparameters, the step count, the moments and the table (copied into
        ``table`` in place); raises ValueError and changes nothing if `d` does not fit this
        optimizer's table or is corrupt."""
        try:
            kind = str(np.asarray(d["optimizer"]))
            if kind != type(self).__name__:
                raise ValueError(f"state dict is for {kind}, not {type(self).__name__}")
            group = sparse_hyper(self._adam, parse_hyper(d, self.param_groups[0], "group.0.", "state dict"),
                                 "state dict: ")
            step = np.asarray(d["step"])
            if step.ndim or step.dtype.kind not in "iu":
                raise ValueError(f"state dict step must be an int, got {step!r}")
            state = {"step": step_count("state dict step", int(step), 0)}
            arrays = {"table": None}
            arrays.update((name, None) for name in self.state if name != "step")
            for name in arrays:
                value = np.asarray(d[name])
                if value.shape != self.table.shape or value.dtype != self.table.dtype:
                    raise ValueError(f"state dict {name} has shape {value.shape} and dtype {value.dtype}; it must "
                                     f"have the table's, {self.table.shape} and {self.table.dtype}")
                if not np.all(np.isfinite(value)):
                    raise ValueError(f"state dict {name} holds non-finite values")
                arrays[name] = value
        except KeyError as exc:
            raise ValueError(f"state dict is missing {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ValueError(f"state dict is corrupt: {exc}") from None
        np.copyto(self.table, arrays.pop("table"))
        self.row_scale.fill(1.0)
        self.scale = 1.0
        state.update((name, np.array(value, order="C", copy=True)) for name, value in arrays.items())
        self.param_groups[0].update(group)
        self.state = state


class SparseSGD(_SparseOptimizer):
    """Plain SGD (no momentum) on the rows a step is given, every row decayed by `reg`.

    Parameters
    ----------
    table : numpy.ndarray, 2-D float32 or float64, C-contiguous, writeable; updated in place
    lr : float, >= 0
    maximize : bool
    reg : None, Decoupled(lam), Decay(d) or L2(lam) (for plain SGD L2 is a decay of every row
        by lr*lam; lr*lam < 1)

    Each step is exactly the dense SGD step of the whole table with a zero gradient in the rows
    not given: ``w -= lr*(g + lam*w)`` (L2), ``w = w*(1 - lr*lam) - lr*g`` (Decoupled),
    ``w = (w - lr*g)*(1 - d)`` (Decay).  State: ``step``, the steps taken.
    """

    _defaults = {"lr": 0.01, "maximize": False, "reg": None}


class SparseAdam(_SparseOptimizer):
    """torch.optim.SparseAdam on the rows a step is given, every row decayed by `reg`.

    Parameters
    ----------
    table : numpy.ndarray, 2-D float32 or float64, C-contiguous, writeable; updated in place
    lr : float, >= 0
    betas : (float, float), each in [0, 1)
    eps : float, > 0
    maximize : bool
    reg : None, Decoupled(lam) (AdamW's decay: ``w *= 1 - lr*lam`` first; lr*lam < 1) or
        Decay(d) (``w *= 1 - d`` after the step).  L2 is refused: under Adam it cannot be lazy.

    A step is torch's SparseAdam step on the rows given (their moments only; eps added to
    sqrt(v); one step count for the whole table, as torch's) with the decay of every row.
    State: ``step``, ``exp_avg``, ``exp_avg_sq`` (the table's shape and dtype).
    """

    _defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "maximize": False, "reg": None}
    _adam = True
