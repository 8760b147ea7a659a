"""The rules for l2decay's arguments, and the one place that words their errors.

The compiled entry points (kernels/l2decay/_kernels.pyx) check the same rules at C level and
call these functions only for what their fast checks refuse, so every TypeError/ValueError
comes from here.  The optimizers use them when a group is added and when a step's fast checks
refuse it.  A multi-tensor call is validated whole before the first tensor is touched, so a bad
argument anywhere leaves every array unmodified.
"""
import math
import numbers

import numpy as np

try:    # numpy's bfloat16 comes from ml_dtypes (a dependency), the package JAX and TensorFlow use
    from ml_dtypes import bfloat16 as _bfloat16
    HALF_DTYPES = (np.dtype(np.float16), np.dtype(_bfloat16))
except ImportError:  # pragma: no cover
    HALF_DTYPES = (np.dtype(np.float16),)
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64)) + HALF_DTYPES
_DTYPE_NAMES = "float32, float64, float16 or bfloat16"
_PLAIN_NUMBERS = (float, int)


def real(name, value, *, low=0.0, high=math.inf, low_open=False, high_open=False):
    """`value` as a float, after checking it is a finite real number within [low, high]."""
    if type(value) not in _PLAIN_NUMBERS and (
        not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_))
    ):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        x = float(value)
    except OverflowError:   # an int or Fraction beyond float's range
        x = math.inf if value > 0 else -math.inf
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
        raise TypeError(f"{name} must have dtype {_DTYPE_NAMES} (native byte order), got {a.dtype}")
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


def tensors(w, grad, writes_grad, *, offset=0, across=False):
    """Validate `w`/`grad` (one array each, or equal-length sequences); return tuples of
    arrays ready for the kernels.  Sequence items are named from index `offset` on (a slice
    of a longer list), so errors point at the caller's own index.  `across`: also refuse
    arrays of different pairs that overlap (the kernels check it; see `disjoint`).
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
    if across:
        disjoint([(f"w[{k + offset}]", a, True) for k, a in enumerate(ws)]
                 + [(f"grad[{k + offset}]", a, writes_grad) for k, a in enumerate(gs)])
    return ws, gs


def disjoint(named):
    """Refuse two arrays of one call that overlap where either is written: `named` holds
    (name, C-contiguous array, written).  Read-only arrays may be shared.  O(k log k)."""
    spans = sorted((a.__array_interface__["data"][0], a.nbytes, name, written)
                   for name, a, written in named if a.nbytes)
    far = far_written = None   # (end, name) of the span reaching furthest, of any / written
    for start, nbytes, name, written in spans:
        for other in (far_written, far if written else None):
            if other is not None and start < other[0]:
                raise ValueError(f"{other[1]} and {name} share memory; the arrays of one call "
                                 f"must be distinct (only read-only gradients may be shared)")
        end = start + nbytes
        if far is None or end > far[0]:
            far = (end, name)
        if written and (far_written is None or end > far_written[0]):
            far_written = (end, name)


def flag(name, value):
    """`value` as a bool; only True/False (or numpy's bools) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(name, value, options):
    """`value`, one of the strings `options`, as the option itself (a plain str: the kernels'
    fast checks take no str subclass)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {options}, got {type(value).__name__}")
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return options[options.index(value)]


def reg(name, value):
    from .rules import L2, Decay, Decoupled

    if value is not None and type(value) not in (L2, Decoupled, Decay):
        raise TypeError(f"{name} must be None, L2(...), Decoupled(...) or Decay(...), got {value!r}")
    return value


FORMS = ("torch", "keras")
ROUNDINGS = ("nearest", "stochastic", "compensated")


def rounding_args(rounding, seed, where=""):
    """`rounding` (None or a name) and `seed` (an int >= 0), checked."""
    if rounding is not None:
        rounding = choice(f"{where}rounding", rounding, ROUNDINGS)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (numbers.Integral, np.integer)):
        raise TypeError(f"{where}seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2 ** 63:
        raise ValueError(f"{where}seed must be an int in [0, 2**63), got {seed!r}")
    return rounding, int(seed)


def rounding_tensors(params, rounding, step, compensations):
    """What rounding asks of the arrays of a functional step: raises the worded error."""
    ps = tuple(params)
    for k, p in enumerate(ps):
        if rounding == "stochastic" and p.dtype not in HALF_DTYPES:
            raise ValueError(f"rounding 'stochastic' needs bfloat16 or float16 weights, but params[{k}] is "
                             f"{p.dtype} (its arithmetic has no wider precision to round from); use "
                             f"'nearest' or 'compensated'")
    if rounding == "stochastic" and step is None:
        raise ValueError("rounding 'stochastic' needs step= (its random bits are keyed by seed, step and index)")
    from ._kernels import default_rounding

    half = next((k for k, p in enumerate(ps) if p.dtype in HALF_DTYPES), None)
    if rounding is None and step is None and half is not None and default_rounding(ps[half].dtype) == "stochastic":
        raise ValueError(f"params[{half}] is {ps[half].dtype}, whose default rounding is 'stochastic', which needs "
                         f"step= (its random bits are keyed by seed, step and index); pass step= or a rounding")
    if rounding == "compensated":
        if compensations is None:
            raise ValueError("rounding 'compensated' needs compensations= (a list; None entries are born zero)")
        cs = _sequence("compensations", compensations, len(ps))
        for k, (p, c) in enumerate(zip(ps, cs)):
            if c is not None:
                state_array(f"compensations[{k}]", c, f"params[{k}]", p, dtype=p.dtype)
    if step is not None:
        steps = _sequence("step", step, len(ps)) if isinstance(step, (list, tuple)) else [step] * len(ps)
        for k, t in enumerate(steps):
            step_count(f"step[{k}]" if isinstance(step, (list, tuple)) else "step", t, 1)
MAX_STEP = 2 ** 53   # step counts stay exact as doubles


def step_count(name, value, low):
    """A step count: an int in [low, 2**53] (state step counts, low 0, stop one short)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    high, label = (MAX_STEP, "2**53") if low else (MAX_STEP - 1, "2**53 - 1")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be an int in [{low}, {label}], got {value!r}")
    return int(value)


def sgd_hyper(h, where):
    """SGD's hyperparameters in dict `h`, checked (names prefixed with `where`) and normalized."""
    out = dict(h)
    out["lr"] = real(f"{where}lr", h["lr"])
    out["momentum"] = real(f"{where}momentum", h["momentum"], high=1.0, high_open=True)
    out["dampening"] = real(f"{where}dampening", h["dampening"], high=1.0)
    out["nesterov"] = flag(f"{where}nesterov", h["nesterov"])
    out["maximize"] = flag(f"{where}maximize", h["maximize"])
    out["reg"] = reg(f"{where}reg", h["reg"])
    out["momentum_form"] = choice(f"{where}momentum_form", h["momentum_form"], FORMS)
    out["rounding"], out["seed"] = rounding_args(h.get("rounding"), h.get("seed", 0), where)
    out["state_dtype"] = state_dtype_arg(f"{where}state_dtype", h.get("state_dtype"))
    if out["nesterov"] and (out["momentum"] == 0 or out["dampening"] != 0):
        raise ValueError(f"{where}nesterov requires momentum > 0 and dampening == 0")
    if out["momentum_form"] == "keras" and out["dampening"] != 0:
        raise ValueError(f"{where}momentum_form 'keras' has no dampening; set dampening=0")
    return out


def adam_hyper(h, where):
    """Adam's hyperparameters in dict `h`, checked (names prefixed with `where`) and normalized."""
    out = dict(h)
    out["lr"] = real(f"{where}lr", h["lr"])
    betas = h["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{where}betas must be a pair (beta1, beta2), got {betas!r}")
    out["betas"] = (real(f"{where}betas[0]", betas[0], high=1.0, high_open=True),
                    real(f"{where}betas[1]", betas[1], high=1.0, high_open=True))
    out["eps"] = real(f"{where}eps", h["eps"], low_open=True)
    out["amsgrad"] = flag(f"{where}amsgrad", h["amsgrad"])
    out["maximize"] = flag(f"{where}maximize", h["maximize"])
    out["reg"] = reg(f"{where}reg", h["reg"])
    out["eps_form"] = choice(f"{where}eps_form", h["eps_form"], FORMS)
    out["rounding"], out["seed"] = rounding_args(h.get("rounding"), h.get("seed", 0), where)
    out["state_dtype"] = state_dtype_arg(f"{where}state_dtype", h.get("state_dtype"))
    return out


def _sequence(name, seq, n=None):
    if not isinstance(seq, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of arrays, got {type(seq).__name__}")
    if n is not None and len(seq) != n:
        raise ValueError(f"{name} has {len(seq)} entries but params has {n}; one per param")
    return tuple(seq)


STATE_DTYPES = (None, "param")


def state_dtype_arg(name, value):
    """An optimizer's `state_dtype`: None (16-bit params keep float32 state) or "param"."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in STATE_DTYPES:
        raise (ValueError if isinstance(value, str) else TypeError)(
            f"{name} must be None (float32 state for bfloat16/float16 params) or 'param' (state in each "
            f"param's own dtype), got {value!r}")
    return "param"


def state_dtype(p, chosen=None):
    """The dtype of new optimizer state of param `p`: float32 for 16-bit params (their
    arithmetic is float32) unless the optimizer's state_dtype, `chosen`, is "param", else p's own."""
    return np.dtype(np.float32) if p.dtype in HALF_DTYPES and chosen != "param" else p.dtype


def state_dtypes(p):
    """The dtypes a state array of param `p` may have (one of them for all its arrays): float32
    or, state_dtype "param", p's own for 16-bit p; p's own otherwise."""
    return tuple(dict.fromkeys([state_dtype(p), p.dtype]))


def state_array(name, a, pname, p, dtype=None, like=None):
    """A state array (momentum buffer, Adam moment) of parameter `p`: its shape, a state dtype
    (float32 or, state_dtype "param", p's own for 16-bit p; else p's), or `dtype`, and that of
    the state array `like` = (name, array) of the same param if given; writeable."""
    _array(name, a, True)
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but {pname} has dtype {p.dtype}; they must match")
    if dtype is None and a.dtype not in state_dtypes(p):
        if p.dtype in HALF_DTYPES:
            raise TypeError(f"{name} has dtype {a.dtype} but {pname} is {p.dtype}: its state must be float32 "
                            f"(16-bit weights compute in float32) or {p.dtype} (state_dtype 'param')")
        raise TypeError(f"{name} has dtype {a.dtype} but {pname} has dtype {p.dtype}; they must match")
    if like is not None and a.dtype != like[1].dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but {like[0]} has {like[1].dtype}: a param's state "
                        f"arrays share one dtype")
    if a.shape != p.shape:
        raise ValueError(f"{name} has shape {a.shape} but {pname} has shape {p.shape}; they must match")


def sgd_tensors(params, grads, buffers, uses_buffers):
    """The arrays of l2decay.sgd_step; raises the worded error for the first bad one."""
    ps = _sequence("params", params)
    gs = _sequence("grads", grads, len(ps))
    named = []
    if uses_buffers:
        if buffers is None:
            raise ValueError("momentum_buffers is needed when momentum > 0 (None entries are born)")
        bs = _sequence("momentum_buffers", buffers, len(ps))
    for k, (p, g) in enumerate(zip(ps, gs)):
        _pair(f"params[{k}]", p, f"grads[{k}]", g, False)
        named += [(f"params[{k}]", p, True), (f"grads[{k}]", g, False)]
        if uses_buffers and bs[k] is not None:
            state_array(f"momentum_buffers[{k}]", bs[k], f"params[{k}]", p)
            named.append((f"momentum_buffers[{k}]", bs[k], True))
    disjoint(named)


def adam_tensors(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, amsgrad, step):
    """The arrays and steps of l2decay.adam_step; raises the worded error for the first bad one."""
    ps = _sequence("params", params)
    gs = _sequence("grads", grads, len(ps))
    ms = _sequence("exp_avgs", exp_avgs, len(ps))
    vs = _sequence("exp_avg_sqs", exp_avg_sqs, len(ps))
    if amsgrad:
        if max_exp_avg_sqs is None:
            raise ValueError("max_exp_avg_sqs is needed with amsgrad (None entries are born)")
        xs = _sequence("max_exp_avg_sqs", max_exp_avg_sqs, len(ps))
    if isinstance(step, (list, tuple)):
        steps = _sequence("step", step, len(ps))
        for k, t in enumerate(steps):
            step_count(f"step[{k}]", t, 1)
    else:
        step_count("step", step, 1)
    named = []
    for k, (p, g) in enumerate(zip(ps, gs)):
        _pair(f"params[{k}]", p, f"grads[{k}]", g, False)
        state_array(f"exp_avgs[{k}]", ms[k], f"params[{k}]", p)
        state_array(f"exp_avg_sqs[{k}]", vs[k], f"params[{k}]", p, like=(f"exp_avgs[{k}]", ms[k]))
        named += [(f"params[{k}]", p, True), (f"grads[{k}]", g, False),
                  (f"exp_avgs[{k}]", ms[k], True), (f"exp_avg_sqs[{k}]", vs[k], True)]
        if amsgrad and xs[k] is not None:
            state_array(f"max_exp_avg_sqs[{k}]", xs[k], f"params[{k}]", p, like=(f"exp_avgs[{k}]", ms[k]))
            named.append((f"max_exp_avg_sqs[{k}]", xs[k], True))
    disjoint(named)


# ------------------------------------------------------------------ sparse row steps -----------
SPARSE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def sparse_hyper(adam, h, where=""):
    """The hyperparameters of a sparse step (l2decay.sparse) in dict `h`, checked and normalized:
    Adam's (torch SparseAdam's: no amsgrad, eps added to sqrt(v)) or plain SGD's, and a rule
    whose decay of the untouched rows can be lazy."""
    if adam:
        out = adam_hyper({"lr": h["lr"], "betas": h["betas"], "eps": h["eps"], "amsgrad": False,
                          "maximize": h["maximize"], "reg": h["reg"], "eps_form": "keras"}, where)
        keys = ("lr", "betas", "eps", "maximize", "reg")
    else:
        out = sgd_hyper({"lr": h["lr"], "momentum": 0.0, "dampening": 0.0, "nesterov": False,
                         "maximize": h["maximize"], "reg": h["reg"], "momentum_form": "torch"}, where)
        keys = ("lr", "maximize", "reg")
    rule = out["reg"]
    name = type(rule).__name__
    if adam and name == "L2":
        raise ValueError(f"{where}reg L2 cannot be lazy under Adam: lam*w joins the gradient of every row, so "
                         f"every row's moments and weights change at every step, touched or not; use "
                         f"Decoupled(lam) (AdamW's decay, which stays out of the moments) or the dense Adam")
    if name in ("L2", "Decoupled") and out["lr"] * rule.coef >= 1:
        raise ValueError(f"{where}lr * {name} strength must be < 1 for a lazy decay (it removes that fraction "
                         f"of every weight per step), got {out['lr'] * rule.coef!r}")
    return {key: out[key] for key in keys}


def _sparse_table(name, table):
    if not isinstance(table, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(table).__name__}")
    if table.dtype not in SPARSE_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64 (native byte order), got {table.dtype}")
    if table.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x columns), got shape {table.shape}")
    _array(name, table, True)


def sparse_rows(rows, nrows):
    """Row indices of a table of `nrows` rows: a 1-D int64 or int32 array, each in range."""
    if not isinstance(rows, np.ndarray):
        raise TypeError(f"rows must be a numpy.ndarray of int64 or int32 row indices, got {type(rows).__name__}")
    if rows.dtype not in (np.dtype(np.int64), np.dtype(np.int32)):
        raise TypeError(f"rows must have dtype int64 or int32 (native byte order), got {rows.dtype}")
    if rows.ndim != 1:
        raise ValueError(f"rows must be 1-D, got shape {rows.shape}")
    if not rows.flags.c_contiguous:
        raise ValueError("rows must be C-contiguous (copy with numpy.ascontiguousarray)")
    bad = np.flatnonzero((rows < 0) | (rows >= nrows))
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"rows[{j}] is {int(rows[j])}, but the table has {nrows} rows: each index must be in "
                         f"[0, {nrows}) (negative indices do not count from the end)")


def sparse_step(table, rows, grad_rows, row_scale, scale, exp_avg=None, exp_avg_sq=None, *, step=0, lr=0.0,
                betas=(0.9, 0.999), eps=1e-8, maximize=False, reg=None):
    """The arguments of l2decay._kernels.sparse_step (and sparse_catch_up, without grad_rows):
    raises the worded error for the first bad one."""
    adam = exp_avg is not None
    if grad_rows is not None:
        sparse_hyper(adam, {"lr": lr, "betas": betas, "eps": eps, "maximize": maximize, "reg": reg})
        if adam:
            step_count("step", step, 1)
    _sparse_table("table", table)
    real("scale", scale, high=1.0, low_open=True)
    if (not isinstance(row_scale, np.ndarray) or row_scale.dtype != np.float64 or row_scale.shape != table.shape[:1]
            or not row_scale.flags.c_contiguous or not row_scale.flags.writeable):
        raise ValueError(f"row_scale must be a writeable float64 array of shape {table.shape[:1]}")
    named = [("table", table, True), ("row_scale", row_scale, True)]
    if rows is not None:
        sparse_rows(rows, table.shape[0])
        named.append(("rows", rows, False))
    if grad_rows is not None:
        _array("grad_rows", grad_rows, False)
        if grad_rows.dtype != table.dtype:
            raise TypeError(f"grad_rows has dtype {grad_rows.dtype} but table has dtype {table.dtype}; they must match")
        if grad_rows.ndim != 2 or grad_rows.shape[0] != rows.shape[0]:
            raise ValueError(f"grad_rows has shape {grad_rows.shape} but rows has {rows.shape[0]} indices: "
                             f"grad_rows must be 2-D with one gradient row per index")
        if grad_rows.shape[1] != table.shape[1]:
            raise ValueError(f"grad_rows has {grad_rows.shape[1]} columns but table has {table.shape[1]}; "
                             f"they must match")
        named.append(("grad_rows", grad_rows, False))
    if adam or exp_avg_sq is not None:
        if exp_avg is None or exp_avg_sq is None:
            raise ValueError("exp_avg and exp_avg_sq go together: both arrays (Adam) or both None (SGD)")
        state_array("exp_avg", exp_avg, "table", table)
        state_array("exp_avg_sq", exp_avg_sq, "table", table)
        named += [("exp_avg", exp_avg, True), ("exp_avg_sq", exp_avg_sq, True)]
    disjoint(named)
