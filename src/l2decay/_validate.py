"""The rules for l2decay's arguments, and the one place that words their errors.

The compiled entry points (kernels/l2decay/_kernels.pyx) check the same rules at C level and
call these functions only for what their fast checks refuse, so every TypeError/ValueError
comes from here.  The optimizers use them when a group is added and when a step's fast checks
refuse it.  A multi-tensor call is validated whole before the first tensor is touched, so a bad
argument anywhere leaves every array unmodified.
"""
import math
import numbers
from typing import NamedTuple

import numpy as np

from . import _kernels

_WIDE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT16 = np.dtype(np.float16)


def is_half(dtype):
    """Whether `dtype` is float16 or bfloat16: numpy's bfloat16 is ml_dtypes' (a dependency, the
    package JAX uses), known here by its name, as l2decay does not import ml_dtypes (slow to load;
    a bfloat16 array exists only once its user has)."""
    return isinstance(dtype, np.dtype) and (dtype == _FLOAT16 or (dtype.kind == "V" and dtype.name == "bfloat16"))


_RAW_2_BYTES = np.dtype("V2")


def saved_bfloat16(value, bfloat16):
    """Array `value` as np.load gives it back, with np.save's raw 2-byte records (|V2, how it
    writes ml_dtypes' bfloat16) viewed as the dtype `bfloat16` again (None: left as they are)."""
    return value.view(bfloat16) if bfloat16 is not None and value.dtype == _RAW_2_BYTES else value


def is_float(dtype):
    """Whether `dtype` is one of the float dtypes the kernels take."""
    return isinstance(dtype, np.dtype) and (dtype in _WIDE_DTYPES or is_half(dtype))


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
    if not is_float(a.dtype):
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
    from .rules import RULES

    if value is not None and type(value) not in RULES.values():
        raise TypeError(f"{name} must be None or a rule (L2, Decoupled, Decay, Cautious or Corrected), "
                        f"got {value!r}")
    return value


# ------------------------------------------------------------------ the spec ------------------
# Every hyperparameter of the optimizer steps, written once: its rule, checked by `check` with a
# worded error, and normalized to the plain value the step compiles (settings()).
FORMS = ("torch", "keras")
ROUNDINGS = _kernels.ROUNDINGS
MAX_STEP = _kernels.MAX_STEP
STATE_DTYPES = (None, "param", "8bit")


class Real(NamedTuple):
    low_open: bool = False
    high: float = math.inf
    high_open: bool = False


class Flag(NamedTuple):
    pass


class Choice(NamedTuple):
    options: tuple
    hint: str = ""      # what the error says the value must be, when not the list of options


class Count(NamedTuple):
    low: int
    high: int


class Rule(NamedTuple):
    pass


_UNIT = Real(high=1.0, high_open=True)
SPEC = {
    "lr": Real(),
    "lam": Real(),                         # l2_step's L2 strength
    "decay": Real(high=1.0, high_open=True),   # decay_step's fraction
    "momentum": _UNIT,
    "dampening": Real(high=1.0),
    "nesterov": Flag(),
    "beta1": _UNIT,
    "beta2": _UNIT,
    "eps": Real(low_open=True),
    "amsgrad": Flag(),
    "maximize": Flag(),
    "reg": Rule(),
    "weight_decay": Real(),
    "momentum_form": Choice(FORMS),
    "eps_form": Choice(FORMS),
    "rounding": Choice((None,) + ROUNDINGS),
    "seed": Count(0, 2 ** 63 - 1),
    "state_dtype": Choice(STATE_DTYPES, "None (float32 state for bfloat16/float16 params), 'param' (state in "
                                        "each param's own dtype) or '8bit' (8-bit codes with block scales)"),
    "step": Count(1, MAX_STEP),            # a step being taken
    "step count": Count(0, MAX_STEP - 1),  # the steps a state has taken
}
SGD_KEYS = ("lr", "momentum", "dampening", "nesterov", "maximize", "reg", "momentum_form", "rounding", "seed",
            "state_dtype")
ADAM_KEYS = ("lr", "betas", "eps", "amsgrad", "maximize", "reg", "eps_form", "rounding", "seed", "state_dtype")


def check(key, value, name=None):
    """`value` of spec entry `key`, checked and normalized; errors name it `name` (default key)."""
    rule = SPEC[key]
    name = key if name is None else name
    kind = type(rule)
    if kind is Real:
        return real(name, value, low_open=rule.low_open, high=rule.high, high_open=rule.high_open)
    if kind is Flag:
        return flag(name, value)
    if kind is Rule:
        return reg(name, value)
    if kind is Count:
        return count(name, value, rule.low, rule.high)
    if value is None and None in rule.options:
        return None
    if rule.hint and not (isinstance(value, str) and value in rule.options):
        raise (ValueError if isinstance(value, str) else TypeError)(f"{name} must be {rule.hint}, got {value!r}")
    return choice(name, value, tuple(o for o in rule.options if o is not None))


def count(name, value, low, high):
    """An int in [low, high] (numpy's ints too; a float tensor count as torch keeps it, no)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= int(value) <= high:
        label = lambda x: "2**53" if x == MAX_STEP else "2**53 - 1" if x == MAX_STEP - 1 else \
            "2**63 - 1" if x == 2 ** 63 - 1 else str(x)
        raise ValueError(f"{name} must be an int in [{label(low)}, {label(high)}], got {value!r}")
    return int(value)


def step_count(name, value, low):
    """A step count: an int in [low, 2**53] (state step counts, low 0, stop one short)."""
    return check("step" if low else "step count", value, name)


def rounding_args(rounding, seed, where=""):
    """`rounding` (None or a name) and `seed` (an int >= 0), checked."""
    return check("rounding", rounding, f"{where}rounding"), check("seed", seed, f"{where}seed")


def state_dtype_arg(name, value):
    """An optimizer's `state_dtype`: None (16-bit params keep float32 state) or "param"."""
    return check("state_dtype", value, name)


def sgd_hyper(h, where):
    """SGD's hyperparameters in dict `h`, checked (names prefixed with `where`) and normalized."""
    out = dict(h)
    for key in SGD_KEYS:
        out[key] = check(key, h.get(key, SGD_DEFAULTS.get(key)), where + key)
    if out["nesterov"] and (out["momentum"] == 0 or out["dampening"] != 0):
        raise ValueError(f"{where}nesterov requires momentum > 0 and dampening == 0")
    if out["momentum_form"] == "keras" and out["dampening"] != 0:
        raise ValueError(f"{where}momentum_form 'keras' has no dampening; set dampening=0")
    return out


def adam_hyper(h, where):
    """Adam's hyperparameters in dict `h`, checked (names prefixed with `where`) and normalized."""
    out = dict(h)
    betas = h["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{where}betas must be a pair (beta1, beta2), got {betas!r}")
    for key in ADAM_KEYS:
        if key != "betas":
            out[key] = check(key, h.get(key, ADAM_DEFAULTS.get(key)), where + key)
    out["betas"] = (check("beta1", betas[0], f"{where}betas[0]"), check("beta2", betas[1], f"{where}betas[1]"))
    if out["state_dtype"] == "8bit" and out["amsgrad"]:
        raise ValueError(f"{where}state_dtype '8bit' has no amsgrad (its running maximum would be a third state); "
                         f"set amsgrad=False or another state_dtype")
    return out


def q8_params(name, params, state_dtype_value):
    """With state_dtype "8bit": every param float32, bfloat16 or float16 (8-bit state is for
    them; a float64 param's state would lose more than its arithmetic keeps)."""
    if state_dtype_value != "8bit":
        return
    for k, p in enumerate(params):
        if str(getattr(p, "dtype", "")).rpartition(".")[2] == "float64":
            raise ValueError(f"{name}[{k}] is float64: state_dtype '8bit' is for float32, bfloat16 and float16 "
                             f"params; give this group another state_dtype")


SGD_DEFAULTS = {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "maximize": False, "reg": None,
                "momentum_form": "torch", "rounding": None, "seed": 0, "state_dtype": None}
ADAM_DEFAULTS = {"amsgrad": False, "maximize": False, "reg": None, "eps_form": "torch", "rounding": None,
                 "seed": 0, "state_dtype": None}
_RULE_KINDS = {"l2": _kernels.RULE_L2, "decoupled": _kernels.RULE_DECOUPLED, "decay": _kernels.RULE_DECAY,
               "cautious": _kernels.RULE_CAUTIOUS, "corrected": _kernels.RULE_CORRECTED}


def lr_max(rule, lr, initial_lr, where=""):
    """Corrected's lr_max: its own, else the group's "initial_lr"; never below `lr` (the
    correction lam*lr/lr_max would exceed 1).  0.0 for the other rules."""
    if rule is None or rule.name != "corrected":
        return 0.0
    top = rule.lr_max
    if top is None:
        if initial_lr is None:
            raise ValueError(f"{where}reg {rule!r} needs lr_max: give Corrected(lam, lr_max=...) or a group "
                             f"with 'initial_lr' (torch's lr schedulers set it)")
        top = real(f"{where}initial_lr", initial_lr, low_open=True)
    if lr > top:
        raise ValueError(f"{where}lr {lr!r} is above {rule!r}'s lr_max {top!r}: lr_max is the largest lr of the "
                         f"schedule (the decay lam*lr**2/lr_max assumes lr <= lr_max)")
    return top


def settings(adam, h, where=""):
    """The compiled Settings of hyperparameters `h` that sgd_hyper/adam_hyper normalized (its
    "initial_lr", if any, the group's: Corrected's lr_max by default)."""
    rule = h["reg"]
    top = lr_max(rule, h["lr"], h.get("initial_lr"), where)
    common = dict(maximize=h["maximize"], rule=_RULE_KINDS[rule.name] if rule is not None else 0,
                  coef=(rule.strength / top if top else rule.coef) if rule is not None else 0.0,
                  lr_max=top, seed=h["seed"],
                  rounding=-1 if h["rounding"] is None else ROUNDINGS.index(h["rounding"]),
                  lr_float32=h.get("lr_float32", False))
    if adam:
        return _kernels.Settings(True, h["lr"], beta1=h["betas"][0], beta2=h["betas"][1], eps=h["eps"],
                                 amsgrad=h["amsgrad"], keras=h["eps_form"] == "keras", **common)
    return _kernels.Settings(False, h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                             nesterov=h["nesterov"], velocity=h["momentum_form"] == "keras", **common)


_LR = (SPEC["lr"].low_open, SPEC["lr"].high, SPEC["lr"].high_open)   # (what refresh() checks a new lr by)


class SettingsCache:
    """The compiled Settings of each param group, made again only when the group changes: a
    group keeps its Settings while it holds the very objects they were made from (a schedule's
    new lr is a new object, checked by the spec's rule for lr and set in place; any other change
    compiles them afresh).  `made[i]` is group i's; `current(groups)` says whether all still
    hold, in one compiled pass; `get(i, group, make)` returns group i's, calling make() (which
    checks every value, raising the worded error) if it changed."""

    __slots__ = ("made", "snapshots")

    def __init__(self):
        self.made, self.snapshots = [], []

    def current(self, groups):
        return _kernels.refresh(groups, self.snapshots, self.made, *_LR)

    def get(self, i, group, make):
        made, snapshots = self.made, self.snapshots
        if i < len(made) and _kernels.refresh([group], [snapshots[i]], [made[i]], *_LR):
            return made[i]
        snapshot = [tuple(v) if type(v) in (list, tuple) else v for v in group.values()]
        settings = make()
        while len(made) <= i:
            made.append(None)
            snapshots.append(None)
        made[i], snapshots[i] = settings, snapshot
        return settings

    def __reduce__(self):      # (a copy compiles its Settings afresh)
        return (SettingsCache, ())


# ------------------------------------------------------------------ refusals of the step ------
def refused(r, name, entry, *, torch=False, counts=False, rounding=None):
    """Raise the worded error for step()'s refusal `r` = (code, k, role, k2, role2): `name(k,
    role)` names an entry as the front end's user knows it, `entry(k, role)` is the object
    (role 6: the step count, the steps a state has taken if `counts`, else the step being taken);
    `rounding`: the rounding the caller asked for."""
    code, k, role, k2, role2 = r
    what = _kernels.REFUSALS[code]
    n, a = name(k, role), entry(k, role)
    pname, p = name(k, 0), entry(k, 0)
    if what == "step":
        if a is None:
            raise ValueError(f"{n} is missing: this step needs it")
        check("step count" if counts else "step", a, n)
        raise TypeError(f"{n} must be a plain int, got {type(a).__name__}")
    if what == "overlap":
        raise ValueError(f"{name(k, role)} and {name(k2, role2)} share memory; each param, gradient and state "
                         f"array must have its own (only read-only gradients may be shared)")
    if what == "missing":
        raise ValueError(f"{n} is missing: this step needs it")
    if what == "stochastic_wide":
        if torch:
            raise ValueError(f"{pname}: rounding 'stochastic' needs bfloat16 or float16 params, not {p.dtype}; use "
                             f"'nearest' or 'compensated'")
        raise ValueError(f"rounding 'stochastic' needs bfloat16 or float16 weights, but {pname} is {p.dtype} (its "
                         f"arithmetic has no wider precision to round from); use 'nearest' or 'compensated'")
    if what == "stochastic_step":
        if rounding == "stochastic":
            raise ValueError("rounding 'stochastic' needs step= (its random bits are keyed by seed, step and index)")
        raise ValueError(f"{pname} is {p.dtype}, whose default rounding is 'stochastic', which needs step= (its "
                         f"random bits are keyed by seed, step and index); pass step= or a rounding")
    if what == "q8":
        raise ValueError(f"{n} is 8-bit state (state_dtype '8bit'), which the step keeps for float32, bfloat16 "
                         f"and float16 params, Adam without amsgrad and SGD with momentum; {pname} is {p.dtype}")
    if role >= 7 or (role in (2, 3) and entry(k, 7) is not None):
        _q8_refusal(what, n, a, pname, p, role >= 7)
    if torch:
        _torch_refusal(what, n, a, p, (name(k, 2).rpartition(": ")[2], entry(k, 2)) if role > 2 else None)
    if what in ("type", "layout", "readonly"):
        _array(n, a, role != 1)
    if what == "dtype":
        if role == 1 or role == 5:
            raise TypeError(f"{n} has dtype {a.dtype} but {pname} has dtype {p.dtype}; they must match")
        first = entry(k, 2)
        if role > 2 and a.dtype in state_dtypes(p) and getattr(first, "dtype", a.dtype) != a.dtype:
            raise TypeError(f"{n} has dtype {a.dtype} but {name(k, 2)} has {first.dtype}: a param's state "
                            f"arrays share one dtype")
        if is_half(p.dtype):
            raise TypeError(f"{n} has dtype {a.dtype} but {pname} is {p.dtype}: its state must be float32 "
                            f"(16-bit weights compute in float32) or {p.dtype} (state_dtype 'param'), one dtype for "
                            f"all its state")
        raise TypeError(f"{n} has dtype {a.dtype} but {pname} has dtype {p.dtype}; they must match")
    raise ValueError(f"{n} has shape {a.shape} but {pname} has shape {p.shape}; they must match")


def _q8_refusal(what, n, a, pname, p, scales):
    """The worded errors of refusals of 8-bit state: its codes (uint8, the param's shape) or
    their scales (float32, one per Q8_BLOCK_SIZE elements)."""
    size = int(np.prod(getattr(p, "shape", ()), dtype=np.int64))
    blocks = -(-size // _kernels.Q8_BLOCK_SIZE)
    got = f"a {type(a).__name__}" if not hasattr(a, "dtype") else f"{a.dtype} of shape {tuple(a.shape)}"
    if scales:
        what_is = (f"the float32 scales of 8-bit state, one per {_kernels.Q8_BLOCK_SIZE} elements of {pname} "
                   f"({blocks}), in one block of memory{', writeable' if what == 'readonly' else ''}")
    else:
        what_is = (f"the uint8 codes of 8-bit state, of {pname}'s shape {tuple(p.shape)} and memory "
                   f"layout{', writeable' if what == 'readonly' else ''}")
    error = TypeError if what in ("type", "dtype") else ValueError
    raise error(f"{n} must be {what_is}, got {got}")


def _torch_refusal(what, n, t, p, first=None):
    """The worded errors of refusals of torch tensors."""
    import torch

    if what == "type":
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{n} must be a torch.Tensor, got {type(t).__name__}")
        if type(t) not in (torch.Tensor, torch.nn.Parameter):
            raise TypeError(f"{n} is a {type(t).__name__}: l2decay.torch steps plain tensors and parameters, "
                            f"never a tensor subclass through its storage")
        raise TypeError(f"{n} has dtype {t.dtype}: l2decay.torch takes float32, float64, bfloat16 or float16")
    if what == "layout":
        if t.layout is not torch.strided:
            raise TypeError(f"{n} is {t.layout}: l2decay.torch's SGD, Adam and AdamW take dense tensors; "
                            f"for the sparse gradients of nn.Embedding(sparse=True) use l2decay.torch.SparseAdamW")
        if not t.is_cpu:
            raise ValueError(f"{n} is on {t.device}: l2decay.torch updates CPU tensors only")
        raise ValueError(f"{n} has gaps in memory (a strided view, strides {tuple(t.stride())} for shape "
                         f"{tuple(t.shape)}): l2decay.torch updates dense tensors in place (contiguous, "
                         f"channels_last, any order of their dims) and never copies")
    if what == "dtype":
        if not isinstance(t, torch.Tensor) or not isinstance(p, torch.Tensor):
            raise TypeError(f"{n} and its param must both be torch tensors")
        if t is not p and n.endswith(".grad") or n.endswith("compensation"):
            raise TypeError(f"{n} has dtype {t.dtype} but its param ({p.dtype}) needs {p.dtype}")
        allowed = (p.dtype, torch.float32) if p.dtype in (torch.bfloat16, torch.float16) else (p.dtype,)
        other = f" ({first[0]} is {first[1].dtype})" if first is not None and first[1] is not t else ""
        raise TypeError(f"{n} has dtype {t.dtype}, but the state of a {p.dtype} param is "
                        f"{' or '.join(map(str, allowed))}, one dtype for all its tensors{other}")
    if what == "shape":
        if tuple(t.shape) == tuple(p.shape):
            raise ValueError(f"{n} is laid out in memory with strides {tuple(t.stride())} but its param with "
                             f"{tuple(p.stride())}: a param, its grad and its state share one memory layout")
        raise ValueError(f"{n} has shape {tuple(t.shape)} but its param has {tuple(p.shape)}")


def _sequence(name, seq, n=None):
    if not isinstance(seq, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of arrays, got {type(seq).__name__}")
    if n is not None and len(seq) != n:
        raise ValueError(f"{name} has {len(seq)} entries but params has {n}; one per param")
    return tuple(seq)


STATS = ("w_sq", "dw_sq", "decay_sq")   # the columns of a step's weight statistics


def stats_array(name, stats, m, lists):
    """`stats`, the array a step writes its weight statistics to: float64, C-contiguous,
    writeable, shape (m, 3), sharing no memory with an array of `lists` (lists of the step's
    arrays, or None)."""
    if not isinstance(stats, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float64, got {type(stats).__name__}")
    if stats.dtype != np.float64:
        raise TypeError(f"{name} must have dtype float64, got {stats.dtype}")
    if stats.shape != (m, 3) or not stats.flags.c_contiguous or not stats.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous array of shape ({m}, 3) (one row per param: "
                         f"{', '.join(STATS)}), got shape {stats.shape}")
    for arrays in lists:
        for a in arrays or ():
            if isinstance(a, np.ndarray) and np.may_share_memory(stats, a):
                raise ValueError(f"{name} shares memory with an array of the step; give it its own")


def state_dtype(p, chosen=None):
    """The dtype of new optimizer state of param `p`: float32 for 16-bit params (their
    arithmetic is float32) unless the optimizer's state_dtype, `chosen`, is "param", else p's own."""
    return np.dtype(np.float32) if is_half(p.dtype) and chosen != "param" else p.dtype


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
        if is_half(p.dtype):
            raise TypeError(f"{name} has dtype {a.dtype} but {pname} is {p.dtype}: its state must be float32 "
                            f"(16-bit weights compute in float32) or {p.dtype} (state_dtype 'param')")
        raise TypeError(f"{name} has dtype {a.dtype} but {pname} has dtype {p.dtype}; they must match")
    if like is not None and a.dtype != like[1].dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but {like[0]} has {like[1].dtype}: a param's state "
                        f"arrays share one dtype")
    if a.shape != p.shape:
        raise ValueError(f"{name} has shape {a.shape} but {pname} has shape {p.shape}; they must match")


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
    if name in ("Cautious", "Corrected"):
        raise ValueError(f"{where}reg {name} has no lazy form for the untouched rows: the sparse steps take "
                         f"L2, Decoupled and Decay; use a dense optimizer for {name}")
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


def sparse_settings(adam, hyper):
    """The compiled Settings of a sparse step's hyperparameters, as sparse_hyper normalized them:
    torch SparseAdam's Adam (eps added to sqrt(v)) or plain SGD."""
    if adam:
        return settings(True, {**ADAM_DEFAULTS, **hyper, "eps_form": "keras"})
    return settings(False, {**SGD_DEFAULTS, **hyper})


def sparse_step(table, rows, grad_rows, row_scale, scale, exp_avg=None, exp_avg_sq=None, *, step=None):
    """The arguments of l2decay._kernels.sparse_step (and sparse_catch_up, without grad_rows),
    but its Settings: raises the worded error for the first bad one."""
    adam = exp_avg is not None
    if step is not None and adam:
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
