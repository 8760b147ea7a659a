"""Conversions: other libraries' optimizer settings as exact l2decay configurations, and the
plain-SGD identities between l2decay's three rules.

**From another library.** ``from_torch``, ``from_keras``, ``from_optax``, ``from_thinc`` and
``from_sklearn_mlp`` take a setting in that library's own terms (its optimizer name and keyword
names, with its defaults, or the optimizer object where it can be read) and return a
:class:`Setting`: the l2decay optimizer, its hyperparameters with the library's conventions
(``momentum_form``, ``eps_form``), the rule and its strength, whether 1-D params (biases) are
regularized, and what the training loop must do per step when the library's penalty depends
on the batch or the learning rate.  ``setting.build(params)`` makes the optimizer;
``setting.set_step(opt, lr=..., batch=...)`` before a step sets what that step's lr and batch
make of the rule.  Each conversion's docstring cites the formulas it reproduces (file and
function of the library's source).  tests/test_convert_peers.py drives each library side by
side with l2decay from the same weights and gradients.  What l2decay cannot reproduce (another
optimizer, gradient clipping, parameter averages, ...) is refused with a ValueError that says
what and why, never approximated; so is a value the library itself refuses.

**Between the rules.**  For plain SGD (no momentum) the rules are the same update up to
constants:

- ``L2(lam)`` at lr:            ``w' = (1 - lr*lam)*w - lr*g``
- ``Decoupled(lam)`` at lr:     ``w' = (1 - lr*lam)*w - lr*g``   (identical)
- ``Decay(d)`` at lr:           ``w' = (1 - d)*w - (1 - d)*lr*g``
  = ``L2(d / ((1 - d)*lr))`` at ``lr' = (1 - d)*lr``.

With momentum or Adam no such identity exists (Loshchilov & Hutter, "Decoupled Weight Decay
Regularization", ICLR 2019): L2 passes through the momentum buffer / Adam's moments, the others
do not.  ``decay_to_l2`` and friends are exact for plain SGD and define what "the same
strength" means elsewhere.
"""
import dataclasses
import math
import numbers
import types

import numpy as np

from ._validate import flag, real
from .optim import SGD, Adam, exclude_1d
from .rules import L2, RULES, Decay, Decoupled

__all__ = [
    "decay_to_l2", "l2_to_decay", "l2_to_decoupled", "decoupled_to_l2",
    "Setting", "from_torch", "from_keras", "from_optax", "from_thinc", "from_sklearn_mlp",
]


# ---- plain-SGD identities between the rules ----------------------------------------------------
def decay_to_l2(d, lr):
    """``Decay(d)`` at `lr` is plain-SGD-equivalent to ``L2(lam)`` at ``lr2``; returns ``(L2(lam), lr2)``.

    ``(w - lr*g)*(1-d) = (1 - lr2*lam)*w - lr2*g``  with  ``lr2 = (1-d)*lr``,  ``lam = d/((1-d)*lr)``.
    """
    d = real("d", d, high=1.0, high_open=True)
    lr = real("lr", lr, low_open=True)
    lr2 = (1.0 - d) * lr
    if lr2 == 0.0 or not math.isfinite(d / lr2):
        raise ValueError(f"lr is too small for d={d!r}: the equivalent L2 strength d/((1-d)*lr) "
                         f"is not a finite number, got lr={lr!r}")
    return L2(d / lr2), lr2


def l2_to_decay(lam, lr):
    """``L2(lam)`` at `lr` is plain-SGD-equivalent to ``Decay(d)`` at ``lr2``; returns ``(Decay(d), lr2)``.

    The inverse of :func:`decay_to_l2`: ``d = lr*lam``, ``lr2 = lr/(1 - lr*lam)``; needs ``lr*lam < 1``.
    """
    lam = real("lam", lam)
    lr = real("lr", lr, low_open=True)
    d = lr * lam
    if d >= 1.0:
        raise ValueError(f"lr*lam must be < 1 for an equivalent decay, got {d!r}")
    if not math.isfinite(lr / (1.0 - d)):
        raise ValueError(f"lr/(1 - lr*lam) overflows for lr={lr!r}, lam={lam!r}")
    return Decay(d), lr / (1.0 - d)


def l2_to_decoupled(lam):
    """``L2(lam)`` ≡ ``Decoupled(lam)`` at the same lr for plain SGD: both give ``(1 - lr*lam)*w - lr*g``."""
    return Decoupled(real("lam", lam))


def decoupled_to_l2(lam):
    """``Decoupled(lam)`` ≡ ``L2(lam)`` at the same lr for plain SGD (see :func:`l2_to_decoupled`)."""
    return L2(real("lam", lam))


# ---- the configuration a conversion returns ------------------------------------------------------
_SCALES = (None, "1/batch", "lr", "1/lr")


@dataclasses.dataclass(frozen=True)
class Setting:
    """Another library's optimizer setting as a complete l2decay configuration.

    Fields
    ------
    library : the library converted from ("torch", "keras", "optax", "thinc", "sklearn")
    optimizer : "sgd" (:class:`l2decay.SGD`) or "adam" (:class:`l2decay.Adam`)
    hyper : the optimizer's keyword arguments other than params and reg (read-only), the
        library's conventions included (``momentum_form``, ``eps_form``)
    reg : the rule's name, "l2", "decoupled" or "decay", or None (no regularization)
    strength : the library's own number (weight_decay, alpha, L2, ...)
    scale : how that number becomes the rule's strength at a step: None (as it is),
        "1/batch" (divided by the batch's row count or sample-weight sum: scikit-learn),
        "lr" (times the step's lr: thinc's decay), "1/lr" (divided by it: optax's decay after
        the lr)
    decay_1d : whether 1-D params (biases) get the rule, as the library does by default
    notes : what the training loop must do that the optimizer cannot carry (an lr schedule
        of the library's, the per-batch strength)
    """

    library: str
    optimizer: str
    hyper: types.MappingProxyType
    reg: str = None
    strength: float = 0.0
    scale: str = None
    decay_1d: bool = True
    notes: tuple = ()

    def __post_init__(self):
        # a frozen dataclass still holds a mutable dict: freeze it, so that a Setting is a value
        object.__setattr__(self, "hyper", types.MappingProxyType(dict(self.hyper)))
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.reg is not None and self.reg not in RULES:
            raise ValueError(f"reg must be None or one of {sorted(RULES)}, got {self.reg!r}")
        if self.scale not in _SCALES:
            raise ValueError(f"scale must be one of {_SCALES}, got {self.scale!r}")
        object.__setattr__(self, "strength", real("strength", self.strength))
        object.__setattr__(self, "notes", tuple(self.notes))

    def __hash__(self):
        # the generated hash would hash the mappingproxy, which cannot be hashed
        return hash((self.library, self.optimizer, tuple(self.hyper.items()), self.reg, self.strength,
                     self.scale, self.decay_1d, self.notes))

    @property
    def varies(self):
        """True when the rule depends on the step's lr or batch (call :meth:`set_step`)."""
        return self.reg is not None and self.scale is not None

    def rule(self, *, lr=None, batch=None, strength=None):
        """The rule of a step at learning rate `lr` (default: ``hyper["lr"]``) on a batch of
        `batch` rows (or that sample-weight sum), with the library's number `strength` (default:
        the setting's own); None when the setting has no regularization.  `batch` is needed,
        and only used, when ``scale == "1/batch"`` (scikit-learn)."""
        if self.reg is None:
            if strength is not None and real("strength", strength) != 0.0:
                raise ValueError(f"this {self.library} setting has no regularization, so a strength of "
                                 f"{strength!r} has no rule to go to: convert a setting with a nonzero one")
            return None
        lr = self.hyper["lr"] if lr is None else real("lr", lr)
        s = self.strength if strength is None else real("strength", strength)
        if self.scale == "1/batch":
            if batch is None:
                raise ValueError(f"{self.library} divides its penalty by each batch's row count (or "
                                 f"sample-weight sum): pass batch=, the rows of this step's batch")
            s = s / real("batch", batch, low_open=True)
        elif self.scale == "lr":
            s = s * lr
        elif self.scale == "1/lr":
            if lr == 0.0:
                raise ValueError(f"{self.library}'s decay of {s!r} per step is {s!r}/lr in l2decay's "
                                 f"Decoupled: it needs lr > 0, got lr=0.0")
            s = s / lr
        if not math.isfinite(s):
            raise ValueError(f"the rule's strength overflows at lr={lr!r}, batch={batch!r}")
        if self.reg == "decay" and s >= 1.0:
            raise ValueError(f"{self.library}'s decay per step {s!r} (at lr={lr!r}) is >= 1: it would "
                             f"zero or flip the weights, and l2decay's Decay needs a fraction < 1")
        return RULES[self.reg](s)

    def build(self, params, *, batch=None):
        """The l2decay optimizer for `params` (a list of arrays, or of param-group dicts): the
        rule of :meth:`rule` (at ``hyper["lr"]`` and `batch`), not on 1-D params when
        ``decay_1d`` is False (:func:`l2decay.exclude_1d`; groups given as dicts are taken as
        they are, with the rule as their default)."""
        cls = SGD if self.optimizer == "sgd" else Adam
        rule = self.rule(batch=batch)
        if isinstance(params, np.ndarray):
            raise TypeError("params must be a list of arrays or of parameter-group dicts, not one array")
        params = list(params)
        as_groups = bool(params) and isinstance(params[0], dict)
        if rule is not None and not self.decay_1d and not as_groups:
            return cls(exclude_1d(params, rule, verbose=False), **self.hyper)
        return cls(params, reg=rule, **self.hyper)

    def set_step(self, opt, *, lr=None, batch=None, momentum=None, betas=None, strength=None):
        """Before a step of `opt` (built by :meth:`build`): set in every group what the library's
        schedule sets for this step: `lr`, SGD's `momentum`, Adam's `betas` and the rule's
        `strength` (in the library's terms, as the field; its weight_decay, say), each if given;
        and every regularized group's rule (a group whose ``reg`` is not None) to :meth:`rule`
        at that group's lr, `batch` and strength, when it depends on them.  Everything is
        checked before any group changes: a value the optimizer would refuse changes nothing."""
        groups = getattr(opt, "param_groups", None)
        if not isinstance(opt, (SGD, Adam)) or not all(isinstance(g, dict) for g in groups):
            raise TypeError(f"opt must be an l2decay optimizer (SGD or Adam), got {type(opt).__name__}")
        for key, value, owner in (("momentum", momentum, "sgd"), ("betas", betas, "adam")):
            if value is not None and self.optimizer != owner:
                raise TypeError(f"{key} is {'SGD' if owner == 'sgd' else 'Adam'}'s; this setting is "
                                f"{'SGD' if self.optimizer == 'sgd' else 'Adam'}")
        changes = {k: v for k, v in (("lr", lr), ("momentum", momentum), ("betas", betas)) if v is not None}
        if "lr" in changes:
            changes["lr"] = real("lr", lr)
        update = self.reg is not None and (strength is not None or self.scale == "lr" or self.scale == "1/lr"
                                           or (self.scale == "1/batch" and batch is not None))
        if strength is not None and self.reg is None:
            self.rule(strength=strength)          # (words why a strength has nowhere to go)
        rules, new = {}, []
        for i, group in enumerate(groups):
            g = {**group, **changes}
            if update and g.get("reg") is not None:
                key = g["lr"]
                if key not in rules:
                    rules[key] = self.rule(lr=key, batch=batch, strength=strength)
                g["reg"] = rules[key]
            # the optimizer's own check of the group as it would step
            opt._check_hyper({k: v for k, v in g.items() if k != "params"}, f"param_groups[{i}].")
            new.append(g)
        for group, g in zip(groups, new):
            group.update(g)


# ---- checking a library's arguments ------------------------------------------------------------
_REQUIRED = object()   # an argument the library has no default for


def _unwrap(value):
    """A one-element tensor or array hyperparameter (torch, jax and Keras allow them) as the
    number it holds; anything else unchanged."""
    if isinstance(value, numbers.Number) or isinstance(value, (str, bytes)):
        return value
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    if callable(size):          # torch's Tensor.size() is a method; numel() is the count
        size = value.numel() if callable(getattr(value, "numel", None)) else None
    if callable(item) and size == 1:
        return item()
    return value


def _num(peer, name, value, *, low=-math.inf, high=math.inf, low_open=False, high_open=False,
         why=None):
    """`value` as a float: a real number, finite, in the interval; outside it a ValueError says
    whether the library itself refuses it (`why` None) or why l2decay cannot reproduce it."""
    x = real(name, _unwrap(value), low=-math.inf)
    if x < low or x > high or (low_open and x == low) or (high_open and x == high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        if why is None:
            raise ValueError(f"{name}={x!r} is refused by {peer} itself: it must be in {interval}")
        raise ValueError(f"{name}={x!r} cannot be reproduced by l2decay ({peer}): {why}")
    return x


def _flag(peer, name, value):
    try:
        return flag(name, _unwrap(value))
    except TypeError as exc:
        raise TypeError(f"{exc} ({peer})") from None


def _args(peer, table, given):
    """The library's arguments: its defaults (`table`) updated with `given`; unknown or missing
    ones raise TypeError naming them."""
    unknown = sorted(set(given) - set(table))
    if unknown:
        raise TypeError(f"{peer} has no argument(s) {unknown}; its arguments: {sorted(table)}")
    out = dict(table, **given)
    missing = sorted(k for k, v in out.items() if v is _REQUIRED)
    if missing:
        raise TypeError(f"{peer} needs {missing} (it has no default)")
    return out


def _name(library, value, known, refused=""):
    """A case-insensitive optimizer name of `library` among `known`."""
    if not isinstance(value, str):
        raise TypeError(f"the {library} optimizer must be given by name (one of {sorted(known)}) "
                        f"or as an optimizer object, got {type(value).__name__}")
    name = value.lower()
    if name not in known:
        raise ValueError(f"{library} optimizer {value!r} has no l2decay counterpart: l2decay has SGD "
                         f"(with momentum) and Adam{refused}; convertible: {sorted(known)}")
    return name


def _not(peer, what, why):
    raise ValueError(f"{what} cannot be reproduced by l2decay ({peer}): {why}")


def _a_schedule(peer, name):
    return TypeError(f"{name} of {peer} is a schedule; give its value at the step as a float "
                     f"(and later steps' values with Setting.set_step(opt, lr=..., ...))")


def _schedule_value(peer, name, value):
    """Refuse a schedule (a callable) where a number is needed, saying how to use one."""
    if callable(value) and not isinstance(value, numbers.Number):
        raise _a_schedule(peer, name)
    return value


def _sgd(lr, momentum, nesterov, form, dampening=0.0, maximize=False):
    # l2decay refuses nesterov without momentum; with momentum 0 the libraries' nesterov
    # update is the plain step, so it is dropped there
    return {"lr": lr, "momentum": momentum, "dampening": dampening,
            "nesterov": bool(nesterov and momentum > 0), "maximize": maximize, "momentum_form": form}


def _adam(lr, b1, b2, eps, form, amsgrad=False, maximize=False):
    return {"lr": lr, "betas": (b1, b2), "eps": eps, "amsgrad": amsgrad, "maximize": maximize,
            "eps_form": form}


_MOMENTUM_BELOW_1 = "l2decay's SGD takes momentum in [0, 1) (at 1 and above the velocity never decays)"
_BETA_BELOW_1 = "l2decay's Adam takes betas in [0, 1)"
_EPS_POSITIVE = "l2decay's Adam takes eps > 0"
_LR_NONNEGATIVE = "l2decay takes lr >= 0"
_STRENGTH_NONNEGATIVE = "l2decay's rules take a strength >= 0"


# ---- torch ---------------------------------------------------------------------------------------
_TORCH = {
    "sgd": ("SGD", {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                    "nesterov": False, "maximize": False, "foreach": None, "differentiable": False,
                    "fused": None}),
    "adam": ("Adam", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                      "amsgrad": False, "foreach": None, "maximize": False, "capturable": False,
                      "differentiable": False, "fused": None, "decoupled_weight_decay": False}),
    "adamw": ("AdamW", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2,
                        "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                        "differentiable": False, "fused": None}),
}
_UNSET = object()   # from_torch's weight_decay not given positionally


def _object(library, opt, attr, names):
    """Refuse what is neither a name nor an optimizer object of `library` (one with `attr`)."""
    if not hasattr(opt, attr):
        raise TypeError(f"the {library} optimizer must be given by name (one of {names}) or as an "
                        f"optimizer object, got {type(opt).__name__}")


def _class_name(opt, module, table, converts):
    """The lower-case class name of an optimizer object from `module` that `table` knows; refuse
    any other class, saying which ones l2decay converts."""
    cls = type(opt)
    name = cls.__name__.lower()
    if not cls.__module__.startswith(module) or name not in table:
        raise ValueError(f"{cls.__module__}.{cls.__name__} has no l2decay counterpart: l2decay "
                         f"converts {converts}")
    return name


def _torch_object(opt):
    _object("torch.optim", opt, "param_groups", sorted(_TORCH))
    name = _class_name(opt, "torch.optim", _TORCH, "torch.optim.SGD, Adam and AdamW")
    table = _TORCH[name][1]
    groups = opt.param_groups
    differ = sorted(k for k in table if len({repr(g.get(k, table[k])) for g in groups}) > 1)
    if differ:
        raise ValueError(f"the param groups of this {type(opt).__name__} differ in {differ}: convert each "
                         f"group's values by name, from_torch({name!r}, **values), and give l2decay "
                         f"one param group per Setting")
    notes = []
    # an lr scheduler keeps initial_lr in every group, OneCycleLR and CyclicLR the bounds of the
    # momentum they cycle (torch/optim/lr_scheduler.py)
    if any("initial_lr" in g for g in groups):
        notes.append("an lr scheduler is attached to this optimizer: lr is its value now; give each "
                     "step's with set_step(opt, lr=group['lr'])")
    if any("max_momentum" in g for g in groups):
        what = "momentum" if name == "sgd" else "betas"
        notes.append(f"the scheduler cycles {what} too (cycle_momentum): give each step's with "
                     f"set_step(opt, {what}=group[{what!r}])")
    return name, {k: groups[0].get(k, v) for k, v in table.items()}, notes


def _torch_number(peer, name, value):
    """Refuse a schedule or a tensor torch computes in another precision than float64."""
    _schedule_value(peer, name, value)
    dtype = getattr(value, "dtype", None)
    if type(value).__module__.startswith("torch") and dtype is not None and str(dtype) != "torch.float64":
        _not(peer, f"{name} as a {dtype} tensor", f"torch computes the step size in the tensor's dtype, "
             f"l2decay in float64: give {name} as a float (or a float64 tensor)")


def from_torch(optimizer, weight_decay=_UNSET, **kwargs):
    """A torch.optim setting: ``from_torch("adamw", lr=1e-3, weight_decay=0.05)``, torch's
    names and defaults, or a ``torch.optim.SGD``/``Adam``/``AdamW`` object (its param groups
    must agree).  `weight_decay` may also be given as the second positional argument.

    torch/optim/sgd.py ``_single_tensor_sgd``: ``g = g + wd*w``; the buffer ``b = g`` at its
    first step, then ``b = momentum*b + (1 - dampening)*g``; ``g = g + momentum*b`` (nesterov)
    or ``b``; ``w -= lr*g``: l2decay's SGD with ``momentum_form="torch"`` and ``L2(wd)``.

    torch/optim/adam.py ``_single_tensor_adam``: ``g = g + wd*w``, or, with
    ``decoupled_weight_decay=True`` (and in torch/optim/adamw.py ``AdamW``, which sets it),
    ``w *= 1 - lr*wd``; ``m = lerp(m, g, 1-beta1)``, ``v = beta2*v + (1-beta2)*g*g``,
    ``w -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)``: l2decay's Adam with
    ``eps_form="torch"`` and ``L2(wd)`` or ``Decoupled(wd)``.  Defaults carried over: lr 1e-3,
    eps 1e-8, AdamW's weight_decay 1e-2.  torch regularizes every param of a group, biases
    included: ``decay_1d`` is True.

    An optimizer object with an lr scheduler attached gives its values now; the Setting's
    ``notes`` say what ``set_step`` must carry each step (the lr; OneCycleLR's and CyclicLR's
    momentum or betas too).

    Refused: other optimizers (RMSprop, Adagrad, ...: no l2decay counterpart), momentum >= 1,
    dampening outside [0, 1], eps 0, ``capturable``/``differentiable`` (l2decay steps numpy
    arrays, with no CUDA graphs or autograd through the step), a schedule where a number is
    needed, a tensor hyperparameter other than float64 (torch computes the step size in the
    tensor's dtype); ``foreach``/``fused`` are implementation choices of the same update and
    accepted.
    """
    if weight_decay is not _UNSET:
        kwargs["weight_decay"] = weight_decay
    notes = []
    if isinstance(optimizer, str):
        name = _name("torch.optim", optimizer, _TORCH, refused="; torch's others (RMSprop, Adagrad, ...) "
                     "use other updates")
        a = _args(f"torch.optim.{_TORCH[name][0]}", _TORCH[name][1], kwargs)
    else:
        if kwargs:
            raise TypeError("give a torch optimizer object or a name with its arguments, not both")
        name, a, notes = _torch_object(optimizer)
    peer = f"torch.optim.{_TORCH[name][0]}"
    for key in ("lr", "weight_decay", "momentum", "dampening", "betas", "eps"):
        values = a.get(key) if isinstance(a.get(key), (tuple, list)) else [a.get(key)]
        for value in values:
            _torch_number(peer, key, value)
    wd = _num(peer, "weight_decay", a["weight_decay"], low=0.0)
    lr = _num(peer, "lr", a["lr"], low=0.0)
    maximize = _flag(peer, "maximize", a["maximize"])
    for key in ("capturable", "differentiable"):
        if a.get(key) and _flag(peer, key, a[key]):
            _not(peer, f"{key}=True", "l2decay steps numpy arrays in place: no CUDA graph capture and "
                 "no autograd through the step")
    for key in ("foreach", "fused"):
        if a[key] is not None:
            _flag(peer, key, a[key])
    if name == "sgd":
        mu = _num(peer, "momentum", a["momentum"], low=0.0)
        mu = _num(peer, "momentum", mu, high=1.0, high_open=True, why=_MOMENTUM_BELOW_1)
        damp = _num(peer, "dampening", a["dampening"], low=0.0, high=1.0,
                    why="l2decay's SGD takes dampening in [0, 1]")
        nesterov = _flag(peer, "nesterov", a["nesterov"])
        if nesterov and (mu <= 0 or damp != 0):
            raise ValueError(f"nesterov=True with momentum={mu!r}, dampening={damp!r} is refused by "
                             f"{peer} itself: Nesterov momentum requires a momentum and zero dampening")
        hyper = _sgd(lr, mu, nesterov, "torch", damp, maximize)
        reg = "l2"
    else:
        betas = a["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r} ({peer})")
        b1 = _num(peer, "betas[0]", betas[0], low=0.0, high=1.0, high_open=True)
        b2 = _num(peer, "betas[1]", betas[1], low=0.0, high=1.0, high_open=True)
        eps = _num(peer, "eps", a["eps"], low=0.0)
        eps = _num(peer, "eps", eps, low=0.0, low_open=True, why=_EPS_POSITIVE)
        hyper = _adam(lr, b1, b2, eps, "torch", _flag(peer, "amsgrad", a["amsgrad"]), maximize)
        decoupled = name == "adamw" or _flag(peer, "decoupled_weight_decay", a["decoupled_weight_decay"])
        reg = "decoupled" if decoupled else "l2"
    return Setting("torch", "sgd" if name == "sgd" else "adam", hyper,
                   reg if wd else None, wd, None, True, tuple(notes))


# ---- Keras 3 -------------------------------------------------------------------------------------
_KERAS_BASE = {"weight_decay": None, "clipnorm": None, "clipvalue": None, "global_clipnorm": None,
               "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
               "loss_scale_factor": None, "gradient_accumulation_steps": None, "name": None}
_KERAS = {
    "sgd": ("SGD", dict(_KERAS_BASE, learning_rate=0.01, momentum=0.0, nesterov=False)),
    "adam": ("Adam", dict(_KERAS_BASE, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                          amsgrad=False)),
    "adamw": ("AdamW", dict(_KERAS_BASE, learning_rate=0.001, weight_decay=0.004, beta_1=0.9,
                            beta_2=0.999, epsilon=1e-7, amsgrad=False)),
}
_FLOATX = {"float32": np.float32, "float64": np.float64}


def _keras_object(opt):
    _object("Keras", opt, "get_config", sorted(_KERAS))
    name = _class_name(opt, "keras", _KERAS, "keras.optimizers.SGD, Adam and AdamW")
    config = {k: v for k, v in opt.get_config().items() if k in _KERAS[name][1]}
    notes = []
    # the variable Keras steps with: already rounded to floatx; a schedule's value now
    config["learning_rate"] = float(np.asarray(opt.learning_rate))
    if isinstance(opt.get_config().get("learning_rate"), dict) or callable(getattr(opt, "_learning_rate", None)):
        notes.append(f"Keras' learning rate is a schedule; lr is its value at iteration "
                     f"{int(np.asarray(opt.iterations))}: set each step's with set_step(opt, lr=...)")
    excluded = (getattr(opt, "_exclude_from_weight_decay", None)
                or getattr(opt, "_exclude_from_weight_decay_pattern", None))
    if excluded and config.get("weight_decay"):
        notes.append("this optimizer excludes variables from weight decay (exclude_from_weight_decay): "
                     "give those params their own group with reg=None")
    return name, config, notes


def from_keras(optimizer, *, kernel_regularizer=None, floatx=None, **kwargs):
    """A Keras 3 setting: ``from_keras("adamw", learning_rate=1e-3, weight_decay=0.004)``,
    Keras' names and defaults, or a ``keras.optimizers.SGD``/``Adam``/``AdamW`` object;
    `kernel_regularizer` is the layers' ``keras.regularizers.L2(l2)`` (or its l2 number).

    keras/src/optimizers/base_optimizer.py ``BaseOptimizer._apply_weight_decay`` (and the
    torch backend's ``TorchOptimizer._apply_weight_decay``): before the step, every variable
    not excluded gets ``w = w - w*wd*lr``: ``Decoupled(wd)``, biases included (``decay_1d``;
    Keras excludes only what ``exclude_from_weight_decay`` names).

    keras/src/optimizers/sgd.py ``SGD.update_step``: ``m = momentum*m - lr*g; w += m``
    (nesterov: ``w += momentum*m - lr*g``): ``momentum_form="keras"``, whose buffer holds
    ``-lr*g`` and so follows an lr schedule as Keras does.

    keras/src/optimizers/adam.py ``Adam.update_step``: ``m += (g - m)*(1-beta1)``,
    ``v += (g*g - v)*(1-beta2)``, ``w -= m*alpha / (sqrt(v) + epsilon)`` with
    ``alpha = lr*sqrt(1-beta2**t)/(1-beta1**t)``: ``eps_form="keras"`` (l2decay writes the
    moments ``beta1*m + (1-beta1)*g``, the same value up to rounding: 1e-14 over 300 steps in
    the tests).  Defaults carried over: epsilon 1e-7, AdamW's weight_decay 0.004.

    keras/src/regularizers/regularizers.py ``L2.__call__``: ``l2 * sum(w**2)`` is added to the
    loss, so the gradient gains ``2*l2*w``: ``L2(2*l2)``, on the kernels only (``decay_1d``
    False; a ``bias_regularizer`` is the user's own).

    Keras holds the learning rate in a `floatx` variable (``keras.config.floatx()``, float32
    by default): lr is rounded to it here as Keras does (an object's is read as Keras holds
    it).  With float64 weights set floatx to float64 in Keras: its torch backend also computes
    the decay factor ``1 - wd*lr`` in floatx, which no lr can reproduce.

    Refused: other optimizers, gradient clipping (``clipnorm``, ``clipvalue``,
    ``global_clipnorm``), ``use_ema``, ``loss_scale_factor``, ``gradient_accumulation_steps``,
    momentum 1, L1 penalties, weight_decay together with an L2 regularizer (two rules on one
    weight), and values l2decay does not take (negative lr or decay, epsilon <= 0, betas
    outside [0, 1)).
    """
    notes = []
    if isinstance(optimizer, str):
        name = _name("Keras", optimizer, _KERAS)
        peer = f"keras.optimizers.{_KERAS[name][0]}"
        a = _args(peer, _KERAS[name][1], kwargs)
        floatx = "float32" if floatx is None else floatx
        if not isinstance(floatx, str) or floatx not in _FLOATX:
            raise ValueError(f"floatx must be one of {sorted(_FLOATX)} (Keras' config.floatx()), got {floatx!r}")
    else:
        if kwargs or floatx is not None:
            raise TypeError("give a Keras optimizer object or a name with its arguments, not both "
                            "(an object holds its learning rate as Keras rounded it)")
        name, a, notes = _keras_object(optimizer)
        peer = f"keras.optimizers.{_KERAS[name][0]}"
        a = _args(peer, _KERAS[name][1], a)
        floatx = "float64"   # already rounded by Keras
    lr = _num(peer, "learning_rate", _schedule_value(peer, "learning_rate", a["learning_rate"]))
    lr = _num(peer, "learning_rate", lr, low=0.0, why=_LR_NONNEGATIVE)
    with np.errstate(over="ignore"):   # an lr beyond float32's range is refused just below
        lr = float(_FLOATX[floatx](lr))
    if not math.isfinite(lr):
        raise ValueError(f"learning_rate overflows Keras' floatx {floatx}")
    if sum(a[k] is not None for k in ("clipnorm", "clipvalue", "global_clipnorm")) > 1:
        raise ValueError(f"{peer} itself refuses more than one of clipnorm, clipvalue and global_clipnorm")
    for key in ("clipnorm", "clipvalue", "global_clipnorm"):
        if a[key] is not None and _num(peer, key, a[key]) > 0:
            _not(peer, f"{key}={a[key]!r}", "l2decay's optimizers have no gradient clipping")
    if _flag(peer, "use_ema", a["use_ema"]):
        _not(peer, "use_ema=True", "l2decay keeps no moving average of the weights")
    if a["loss_scale_factor"] is not None:
        _not(peer, f"loss_scale_factor={a['loss_scale_factor']!r}", "l2decay has no loss scaling; give it "
             "the gradient of the unscaled loss and leave loss_scale_factor None")
    if a["gradient_accumulation_steps"] is not None:
        steps = a["gradient_accumulation_steps"]
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 2:
            raise ValueError(f"gradient_accumulation_steps={steps!r} is refused by {peer} itself: it must "
                             f"be an integer >= 2")
        _not(peer, f"gradient_accumulation_steps={steps!r}", "l2decay steps on every gradient it is given; "
             "average the gradients yourself and step once")
    if a["weight_decay"] is None and name == "adamw":
        raise ValueError(f"weight_decay=None is refused by {peer} itself: it must be a float")
    wd = 0.0 if a["weight_decay"] is None else _num(peer, "weight_decay", a["weight_decay"])
    wd = _num(peer, "weight_decay", wd, low=0.0, why=_STRENGTH_NONNEGATIVE)
    l2 = _keras_l2(kernel_regularizer)
    if wd and l2:
        _not(peer, f"weight_decay={wd!r} with an L2({l2!r}) kernel regularizer",
             "two rules on the same weights; an l2decay param group has one rule")
    if name == "sgd":
        mu = _num(peer, "momentum", a["momentum"], low=0.0, high=1.0)
        mu = _num(peer, "momentum", mu, high=1.0, high_open=True, why=_MOMENTUM_BELOW_1)
        hyper = _sgd(lr, mu, _flag(peer, "nesterov", a["nesterov"]), "keras")
    else:
        b1 = _num(peer, "beta_1", _schedule_value(peer, "beta_1", a["beta_1"]), low=0.0, high=1.0,
                  high_open=True, why=_BETA_BELOW_1)
        b2 = _num(peer, "beta_2", _schedule_value(peer, "beta_2", a["beta_2"]), low=0.0, high=1.0,
                  high_open=True, why=_BETA_BELOW_1)
        eps = _num(peer, "epsilon", a["epsilon"], low=0.0, low_open=True, why=_EPS_POSITIVE)
        hyper = _adam(lr, b1, b2, eps, "keras", _flag(peer, "amsgrad", a["amsgrad"]))
    optimizer = "sgd" if name == "sgd" else "adam"
    if l2:
        return Setting("keras", optimizer, hyper, "l2", 2.0 * l2, None, False, tuple(notes))
    return Setting("keras", optimizer, hyper, "decoupled" if wd else None, wd, None, True, tuple(notes))


def _keras_l2(regularizer):
    """The l2 factor of a Keras kernel regularizer (None, a number, or an L2 / L1L2 object)."""
    if regularizer is None:
        return 0.0
    if isinstance(regularizer, numbers.Real) and not isinstance(regularizer, bool):
        return _num("keras.regularizers.L2", "kernel_regularizer", regularizer, low=0.0)
    kind = type(regularizer).__name__
    config = getattr(regularizer, "get_config", None)
    if kind not in ("L2", "L1L2", "L1") or not callable(config):
        raise ValueError(f"kernel_regularizer {regularizer!r} cannot be reproduced by l2decay: it takes "
                         f"keras.regularizers.L2 (or L1L2 with l1=0), or the l2 number")
    config = config()
    l1 = _num(f"keras.regularizers.{kind}", "l1", config.get("l1", 0.0))
    if l1:
        _not(f"keras.regularizers.{kind}", f"l1={l1!r}", "l2decay has no L1 penalty")
    return _num(f"keras.regularizers.{kind}", "l2", config.get("l2", 0.0), low=0.0)


# ---- optax ---------------------------------------------------------------------------------------
_OPTAX = {
    "sgd": {"learning_rate": _REQUIRED, "momentum": None, "nesterov": False, "accumulator_dtype": None},
    "adam": {"learning_rate": _REQUIRED, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0,
             "mu_dtype": None, "nesterov": False},
    "adamw": {"learning_rate": _REQUIRED, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0,
              "mu_dtype": None, "weight_decay": 1e-4, "mask": None, "nesterov": False},
}
_OPTAX_DECAY = {"weight_decay": 0.0, "mask": None}
_OPTAX_CLIPS = ("clip", "clip_by_global_norm", "clip_by_block_rms", "adaptive_grad_clip",
                "per_example_global_norm_clip")


def _optax_alias(name, kwargs):
    peer = f"optax.{name}"
    a = _args(peer, _OPTAX[name], kwargs)
    lr = _num(peer, "learning_rate", _schedule_value(peer, "learning_rate", a["learning_rate"]))
    lr = _num(peer, "learning_rate", lr, low=0.0, why=_LR_NONNEGATIVE)
    for key in ("accumulator_dtype", "mu_dtype"):
        if a.get(key) is not None:
            _not(peer, f"{key}={a[key]!r}", "l2decay keeps its state in the param's dtype")
    nesterov = _flag(peer, "nesterov", a["nesterov"])
    if name == "sgd":
        mu = 0.0 if a["momentum"] is None else _num(peer, "momentum", a["momentum"])
        mu = _num(peer, "momentum", mu, low=0.0, high=1.0, high_open=True, why=_MOMENTUM_BELOW_1)
        return _sgd(lr, mu, nesterov, "torch"), 0.0
    if nesterov:
        _not(peer, "nesterov=True", "that is NAdam(W), which l2decay does not have")
    if _num(peer, "eps_root", a["eps_root"]) != 0.0:
        _not(peer, f"eps_root={a['eps_root']!r}", "l2decay's Adam adds eps outside the square root only")
    b1 = _num(peer, "b1", a["b1"], low=0.0, high=1.0, high_open=True, why=_BETA_BELOW_1)
    b2 = _num(peer, "b2", a["b2"], low=0.0, high=1.0, high_open=True, why=_BETA_BELOW_1)
    eps = _num(peer, "eps", a["eps"], low=0.0, low_open=True, why=_EPS_POSITIVE)
    wd = 0.0
    if name == "adamw":
        if a["mask"] is not None:
            _not(peer, "a mask", "give the masked-out params their own l2decay param group with "
                 "reg=None (Setting.rule() is the others' rule)")
        wd = _num(peer, "weight_decay", _schedule_value(peer, "weight_decay", a["weight_decay"]),
                  low=0.0, why=_STRENGTH_NONNEGATIVE)
    return _adam(lr, b1, b2, eps, "torch"), wd


def _optax_decay(kwargs):
    peer = "optax.add_decayed_weights"
    a = _args(peer, _OPTAX_DECAY, kwargs)
    if a["mask"] is not None:
        _not(peer, "a mask", "give the masked-out params their own l2decay param group with reg=None "
             "(Setting.rule() is the others' rule)")
    return _num(peer, "weight_decay", _schedule_value(peer, "weight_decay", a["weight_decay"]))


def from_optax(transform, /, **kwargs):
    """An optax setting: an alias by name, ``from_optax("adamw", learning_rate=1e-3)``, or an
    ``optax.chain`` as a list of ``(name, kwargs)`` in chain order, e.g.
    ``from_optax([("add_decayed_weights", {"weight_decay": 1e-4}), ("sgd", {"learning_rate": 0.1,
    "momentum": 0.9})])``.  optax's transformations are closures, so they are described, not
    read.

    optax/_src/alias.py ``sgd`` = ``chain(trace(momentum, nesterov), scale_by_learning_rate)``;
    optax/transforms/_accumulation.py ``trace``: ``t = g + momentum*t``, nesterov
    ``g + momentum*t``: torch's buffer (``momentum_form="torch"``, no dampening).

    optax/_src/alias.py ``adam``/``adamw`` and optax/_src/transform.py ``scale_by_adam``:
    ``m = (1-b1)*g + b1*m``, ``v = (1-b2)*g**2 + b2*v``,
    ``u = (m/(1-b1**t)) / (sqrt(v/(1-b2**t) + eps_root) + eps)``: ``eps_form="torch"``;
    ``adamw`` adds ``weight_decay*w`` to ``u`` before ``scale_by_learning_rate``:
    ``Decoupled(weight_decay)``, default 1e-4.

    optax/transforms/_adding.py ``add_decayed_weights(wd)``: ``u = u + wd*w`` with the params
    before the step.  Before the optimizer it is ``L2(wd)``; after it (after the lr scaling),
    ``add_decayed_weights(-c)`` shrinks by ``c*w`` per step, taken from the pre-step weights:
    ``Decoupled(c/lr)`` (``scale="1/lr"``: set_step keeps it at c per step under an lr
    schedule), not ``Decay(c)``, which would shrink the updated weights.  No mask means every
    param: ``decay_1d`` True.

    optax evaluates a schedule at its step count, an int32 array, so the value is float32 even
    with ``jax_enable_x64``: give ``set_step`` what optax computes at step t,
    ``schedule(jnp.int32(t))``, under ``jax.jit`` when the update is jitted (jit and eager
    values differ in the last bit at some steps; a float64 formula of the schedule differs
    at float32's precision).  ``inject_hyperparams(adamw)(...)`` is converted through what it wraps, with
    ``set_step(opt, lr=..., betas=..., strength=...)`` from its ``state.hyperparams``.

    Refused: other transformations and chains, gradient clipping, schedules (give the step's
    value), masks, ``eps_root``, Nesterov Adam (NAdam), ``mu_dtype``/``accumulator_dtype``, a
    negative L2 or a growing decay, momentum >= 1, eps <= 0.
    """
    if isinstance(transform, str):
        chain = [(transform, kwargs)]
    elif isinstance(transform, (list, tuple)):
        if kwargs:
            raise TypeError("give a chain's arguments inside its (name, kwargs) pairs")
        chain = list(transform)
    else:
        raise TypeError(f"the optax setting must be an alias name or a list of (name, kwargs) pairs in "
                        f"optax.chain order (optax's transformations cannot be read), got "
                        f"{type(transform).__name__}")
    steps = []
    for k, step in enumerate(chain):
        if (not isinstance(step, (tuple, list)) or len(step) != 2 or not isinstance(step[0], str)
                or not isinstance(step[1], dict)):
            raise TypeError(f"chain[{k}] must be a (name, kwargs dict) pair, got {step!r}")
        steps.append((step[0].lower(), step[1]))
    names = [n for n, _ in steps]
    known = set(_OPTAX) | {"add_decayed_weights"}
    for n in names:
        if n in _OPTAX_CLIPS:
            _not("optax", n, "l2decay's optimizers have no gradient clipping: clip the gradients before "
                 "l2decay's step and convert the chain without it")
        if n == "inject_hyperparams":
            _not("optax", "inject_hyperparams", "it is read through what it wraps: convert the optimizer it "
                 "wraps with its hyperparameters' values now (from_optax('adamw', learning_rate=..., "
                 "weight_decay=...)), and give set_step each step's injected values (state.hyperparams): "
                 "set_step(opt, lr=..., betas=..., strength=...)")
        if n not in known:
            _name("optax", n, _OPTAX, refused=" (and add_decayed_weights around them)")
    aliases = [k for k, n in enumerate(names) if n in _OPTAX]
    where = [k for k, n in enumerate(names) if n == "add_decayed_weights"]
    if len(aliases) != 1 or len(steps) > 2 or len(where) != len(steps) - 1:
        raise ValueError(f"optax.chain({', '.join(names)}) cannot be reproduced by l2decay: it takes one "
                         f"of sgd, adam, adamw, alone or with one add_decayed_weights before or after it")
    name, a = steps[aliases[0]]
    hyper, wd = _optax_alias(name, a)
    optimizer = "sgd" if name == "sgd" else "adam"
    reg, strength, scale = ("decoupled", wd, None) if wd else (None, 0.0, None)
    notes = ()
    if where:
        s = _optax_decay(steps[where[0]][1])
        if s and wd:
            _not("optax", f"chain({', '.join(names)})", "adamw's decay and add_decayed_weights are two "
                 "rules on the same weights; an l2decay param group has one rule")
        if s and where[0] == 0:
            if s < 0:
                _not("optax", f"add_decayed_weights({s!r}) before the optimizer",
                     "a negative L2 strength grows the weights; l2decay's L2 takes lam >= 0")
            reg, strength = "l2", s
        elif s:
            if s > 0:
                _not("optax", f"add_decayed_weights({s!r}) after the optimizer",
                     "after the lr scaling a positive weight_decay grows the weights by that fraction "
                     "per step; a decay is add_decayed_weights(-c), c >= 0")
            reg, strength, scale = "decoupled", -s, "1/lr"
            notes = (f"add_decayed_weights after the lr shrinks by {-s!r} per step whatever the lr: "
                     f"change lr with set_step(opt, lr=...), which keeps Decoupled({-s!r}/lr)",)
            if hyper["lr"] == 0.0:
                _not("optax", f"add_decayed_weights({s!r}) after an optimizer with learning_rate=0",
                     "l2decay's Decoupled scales the decay by lr")
    return Setting("optax", optimizer, hyper, reg, strength, scale, True, notes)


# ---- thinc ---------------------------------------------------------------------------------------
_THINC = {
    "sgd": {"learn_rate": _REQUIRED, "L2": 0.0, "grad_clip": 1.0, "L2_is_weight_decay": True,
            "use_averages": True},
    "adam": {"learn_rate": 0.001, "L2": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
             "grad_clip": 1.0, "L2_is_weight_decay": True, "use_averages": True},
}


def _thinc_object(opt):
    _object("thinc", opt, "L2_is_weight_decay", sorted(_THINC))
    cls = type(opt)
    if not cls.__module__.startswith("thinc") or cls.__name__ != "Optimizer":
        raise ValueError(f"{cls.__module__}.{cls.__name__} is not a thinc optimizer: l2decay converts "
                         f"thinc.api.Optimizer objects (from thinc.api.SGD and Adam)")
    if opt.use_radam:
        _not("thinc", "RAdam", "l2decay has no RAdam")
    notes = []
    values = {}
    for attr, key in (("learn_rate", "learn_rate"), ("L2", "L2"), ("b1", "beta1"), ("b2", "beta2"),
                      ("eps", "eps"), ("grad_clip", "grad_clip")):
        schedule = getattr(opt, attr)
        if getattr(schedule, "name", None) == "constant":
            values[key] = schedule.attrs["rate"]
            continue
        if key != "learn_rate":
            _not("thinc", f"a schedule for {key}", "give thinc a constant; l2decay converts "
                 "schedules of the learning rate only (set_step(opt, lr=...))")
        values[key] = schedule(opt.step, key=None, last_score=opt.last_score)
        notes.append(f"thinc's learn_rate is a schedule; lr is its value at step {opt.step}: set each "
                     f"step's with set_step(opt, lr=...)")
    values["L2_is_weight_decay"] = opt.L2_is_weight_decay
    values["use_averages"] = opt.averages is not None
    # thinc.optimizers.Optimizer.__call__ takes the Adam path when both betas are > 0, else the
    # plain step (from_thinc sorts out which); an Optimizer from thinc.api.SGD has betas 0
    return "adam", values, notes


def _thinc_constant(peer, key, value):
    """thinc takes a list or iterator of values as a schedule: refuse one as the object path does."""
    if isinstance(value, (list, tuple, types.GeneratorType)) or callable(value):
        if key == "learn_rate":
            raise _a_schedule(peer, key)
        _not(peer, f"a schedule for {key}", "give thinc a constant; l2decay converts schedules of the "
             "learning rate only (set_step(opt, lr=...))")
    return value


def from_thinc(optimizer, *, lr_scale=1.0, **kwargs):
    """A thinc setting: ``from_thinc("adam", learn_rate=1e-3, L2=1e-4, grad_clip=0.0,
    use_averages=False)``, thinc's names and defaults (``thinc.api.SGD``, ``Adam``), or a
    ``thinc.api.Optimizer`` object.

    thinc/optimizers.py ``Optimizer.__call__``: with ``L2_is_weight_decay=False``,
    ``gradient += L2*weights`` before the step: ``L2(L2)``.  With ``L2_is_weight_decay=True``
    (thinc's default) ``weights -= lr*L2*weights`` *after* the step, on the updated weights:
    ``Decay(lr*L2)`` (``scale="lr"``: set_step keeps it at lr*L2 under an lr schedule), not
    ``Decoupled(L2)``, which decays the weights before the step.  thinc regularizes every
    param it is called with: ``decay_1d`` True.  The plain step is ``weights -= lr*gradient``.

    ``Optimizer._adam`` and thinc/backends/numpy_ops.pyx ``NumpyOps.adam``/``_adam_momentum``:
    ``m = beta1*m + (1-beta1)*g``, ``v = beta2*v + (1-beta2)*g**2``,
    ``w -= lr_t * m/(sqrt(v) + eps)`` with ``lr_t = lr*sqrt(1-beta2**t)/(1-beta1**t)``:
    ``eps_form="keras"``, eps 1e-8.  thinc's compiled Adam is float32 only.

    A thinc call's ``lr_scale`` multiplies the learning rate everywhere, the decay's too: give
    the calls' ``lr_scale`` here (``lr`` is then ``learn_rate*lr_scale``, and so is each lr
    given to ``set_step``).

    Refused: ``grad_clip`` other than 0 (thinc clips each gradient array to that norm, default
    1.0; l2decay has no clipping: pass ``grad_clip=0.0``), ``use_averages=True`` (thinc's
    default: it keeps an average of the weights on the side, which l2decay does not), RAdam,
    schedules other than the learning rate's, ``lr*L2 >= 1`` with the decay, and values
    l2decay does not take (negative lr or L2, betas outside [0, 1), eps <= 0).
    """
    notes = []
    if isinstance(optimizer, str):
        name = _name("thinc", optimizer, _THINC, refused=" (thinc's RAdam is another update)")
        peer = f"thinc.api.{'SGD' if name == 'sgd' else 'Adam'}"
        a = _args(peer, _THINC[name], kwargs)
        for key, value in a.items():
            _thinc_constant(peer, key, value)
    else:
        if kwargs:
            raise TypeError("give a thinc optimizer object or a name with its arguments, not both")
        name, a, notes = _thinc_object(optimizer)
        peer = "thinc.api.Optimizer"
    lr = _num(peer, "learn_rate", _schedule_value(peer, "learn_rate", a["learn_rate"]))
    lr = _num(peer, "learn_rate", lr, low=0.0, why=_LR_NONNEGATIVE)
    scale = _num("thinc.api.Optimizer.__call__", "lr_scale", lr_scale)
    lr = _num("thinc.api.Optimizer.__call__", "lr_scale", scale, low=0.0, why=_LR_NONNEGATIVE) * lr
    if scale != 1.0:
        notes.append(f"thinc's calls scale the learning rate by lr_scale={scale!r}: lr is learn_rate*{scale!r}, "
                     f"and so must be each lr given to set_step(opt, lr=...)")
    l2 = _num(peer, "L2", _schedule_value(peer, "L2", a["L2"]), low=0.0, why=_STRENGTH_NONNEGATIVE)
    clip = _num(peer, "grad_clip", _schedule_value(peer, "grad_clip", a["grad_clip"]))
    problems = []
    if clip != 0.0:
        problems.append(f"grad_clip={clip!r} (thinc clips each gradient array to that norm; l2decay's "
                        f"optimizers have no clipping: pass grad_clip=0.0)")
    if _flag(peer, "use_averages", a["use_averages"]):
        problems.append("use_averages=True (thinc keeps an average of the weights beside them, which "
                        "l2decay does not; the updates of the weights are the same: pass use_averages=False)")
    if problems:
        raise ValueError(f"{peer} with {' and '.join(problems)} cannot be reproduced by l2decay")
    decay = _flag(peer, "L2_is_weight_decay", a["L2_is_weight_decay"])
    if decay and lr * l2 >= 1.0:
        _not(peer, f"L2={l2!r} at learn_rate={lr!r}", "thinc's decay lr*L2 >= 1 zeroes or flips the "
             "weights; l2decay's Decay takes a fraction < 1")
    if name == "adam":
        b1 = _num(peer, "beta1", _schedule_value(peer, "beta1", a["beta1"]), low=0.0, high=1.0,
                  high_open=True, why=_BETA_BELOW_1)
        b2 = _num(peer, "beta2", _schedule_value(peer, "beta2", a["beta2"]), low=0.0, high=1.0,
                  high_open=True, why=_BETA_BELOW_1)
        # thinc.optimizers.Optimizer.__call__ takes its Adam path only when both betas are > 0;
        # with beta2 == 0 it takes the plain step, and beta2 > 0 alone raises NotImplementedError
        if b1 == 0.0 and b2 > 0.0:
            raise ValueError(f"beta1=0.0 with beta2={b2!r} is refused by thinc itself (its Optimizer "
                             f"raises NotImplementedError)")
        if b2 == 0.0:
            name = "sgd"
    if name == "sgd":
        hyper = _sgd(lr, 0.0, False, "torch")
    else:
        eps = _num(peer, "eps", _schedule_value(peer, "eps", a["eps"]), low=0.0, low_open=True,
                   why=_EPS_POSITIVE)
        hyper = _adam(lr, b1, b2, eps, "keras")
    if not l2:
        return Setting("thinc", name, hyper, None, 0.0, None, True, tuple(notes))
    if decay:
        notes.append(f"thinc decays by lr*{l2!r} after each step: change lr with set_step(opt, lr=...), "
                     f"which keeps the Decay at lr*{l2!r}")
        return Setting("thinc", name, hyper, "decay", l2, "lr", True, tuple(notes))
    return Setting("thinc", name, hyper, "l2", l2, None, True, tuple(notes))


# ---- scikit-learn's MLP --------------------------------------------------------------------------
_SKLEARN = {"alpha": 1e-4, "batch_size": "auto", "learning_rate": "constant", "learning_rate_init": 1e-3,
            "power_t": 0.5, "momentum": 0.9, "nesterovs_momentum": True, "beta_1": 0.9,
            "beta_2": 0.999, "epsilon": 1e-8, "early_stopping": False}
_SKLEARN_SCHEDULES = ("constant", "invscaling", "adaptive")


def from_sklearn_mlp(solver, **kwargs):
    """A scikit-learn MLPClassifier/MLPRegressor setting: ``from_sklearn_mlp("adam", alpha=1e-4,
    batch_size=32, learning_rate_init=1e-3)``, its names and defaults, or the estimator.

    sklearn/neural_network/_multilayer_perceptron.py ``BaseMultilayerPerceptron._backprop`` and
    ``_compute_loss_grad``: ``coef_grad = (X.T @ delta + alpha*W) / sw_sum``, where sw_sum is
    the batch's row count, or its sample-weight sum: on the gradient of the mean loss that is
    ``L2(alpha / sw_sum)``, per batch (``scale="1/batch"``; call ``set_step(opt,
    batch=rows or weight sum)`` before every step).  ``_fit_stochastic``: batch_size "auto" is
    ``min(200, n_samples)``, a batch_size above n_samples is clipped to it, and the last batch
    of an epoch holds the rows left over.  Intercepts are not penalized: ``decay_1d`` False.

    sklearn/neural_network/_stochastic_optimizers.py ``SGDOptimizer._get_updates``:
    ``v = momentum*v - lr*g; w += v`` (nesterov, sklearn's default: ``w += momentum*v - lr*g``):
    ``momentum_form="keras"``; ``AdamOptimizer._get_updates``: ``w -= lr_t*m/(sqrt(v) + eps)``,
    ``lr_t = lr*sqrt(1-beta2**t)/(1-beta1**t)``: ``eps_form="keras"``.  Defaults carried over:
    learning_rate_init 1e-3, momentum 0.9 with Nesterov, epsilon 1e-8.  The sgd solver's
    ``learning_rate`` "invscaling"/"adaptive" change lr at epoch ends (see ``notes``).

    Refused: the lbfgs solver (no l2decay counterpart), ``early_stopping=True`` (its validation
    split changes the batches), momentum 1, and what scikit-learn itself refuses (negative alpha, batch_size < 1, momentum outside [0, 1], ...).
    """
    notes = []
    if isinstance(solver, str):
        if solver.lower() == "lbfgs":
            _not("scikit-learn MLP", "solver='lbfgs'", "L-BFGS has no l2decay counterpart")
        name = _name("scikit-learn MLP", solver, ("sgd", "adam"))
        a = _args(f"scikit-learn MLP solver={name!r}", _SKLEARN, kwargs)
    else:
        if kwargs:
            raise TypeError("give a scikit-learn estimator or a solver name with its arguments, not both")
        _object("scikit-learn MLP", solver, "get_params", ["adam", "sgd"])
        cls = type(solver)
        if not cls.__module__.startswith("sklearn") or cls.__name__ not in ("MLPClassifier", "MLPRegressor"):
            raise ValueError(f"{cls.__module__}.{cls.__name__} cannot be converted: l2decay converts "
                             f"scikit-learn's MLPClassifier and MLPRegressor")
        params = solver.get_params()
        return from_sklearn_mlp(params["solver"], **{k: params[k] for k in _SKLEARN})
    peer = "scikit-learn MLP"
    if _flag(peer, "early_stopping", a["early_stopping"]):
        _not(peer, "early_stopping=True", "scikit-learn then holds out validation_fraction of the training "
             "rows, so its batches are not those of the data given to fit; convert with "
             "early_stopping=False (and stop on your own validation score)")
    alpha = _num(peer, "alpha", a["alpha"], low=0.0)
    bs = a["batch_size"]
    if not (bs == "auto" if isinstance(bs, str) else
            isinstance(bs, numbers.Integral) and not isinstance(bs, bool) and bs >= 1):
        raise ValueError(f"batch_size={bs!r} is refused by {peer} itself: it must be 'auto' or an int >= 1")
    schedule = a["learning_rate"]
    if schedule not in _SKLEARN_SCHEDULES:
        raise ValueError(f"learning_rate={schedule!r} is refused by {peer} itself: it must be one of "
                         f"{_SKLEARN_SCHEDULES}")
    lr = _num(peer, "learning_rate_init", a["learning_rate_init"], low=0.0, low_open=True)
    power_t = _num(peer, "power_t", a["power_t"], low=0.0)
    notes.append("scikit-learn divides alpha by each batch's row count (or sample-weight sum): call "
                 "set_step(opt, batch=...) before every step; batch_size 'auto' is min(200, n_samples), "
                 "a larger batch_size is clipped to n_samples, the last batch holds the rows left over")
    if name == "sgd":
        mu = _num(peer, "momentum", a["momentum"], low=0.0, high=1.0)
        mu = _num(peer, "momentum", mu, high=1.0, high_open=True, why=_MOMENTUM_BELOW_1)
        hyper = _sgd(lr, mu, _flag(peer, "nesterovs_momentum", a["nesterovs_momentum"]), "keras")
        if schedule == "invscaling":
            notes.append(f"learning_rate='invscaling': after each epoch scikit-learn sets lr = "
                         f"{lr!r} / (t + 1)**{power_t!r}, t the samples seen so far: "
                         f"set_step(opt, lr=...)")
        elif schedule == "adaptive":
            notes.append("learning_rate='adaptive': scikit-learn divides lr by 5 after n_iter_no_change "
                         "epochs without improvement: set_step(opt, lr=...)")
    else:
        b1 = _num(peer, "beta_1", a["beta_1"], low=0.0, high=1.0, high_open=True)
        b2 = _num(peer, "beta_2", a["beta_2"], low=0.0, high=1.0, high_open=True)
        eps = _num(peer, "epsilon", a["epsilon"], low=0.0, low_open=True)
        hyper = _adam(lr, b1, b2, eps, "keras")
    return Setting("sklearn", name, hyper, "l2" if alpha else None, alpha, "1/batch" if alpha else None,
                   False, tuple(notes))
