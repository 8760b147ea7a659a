"""The configuration a conversion returns, and the plain-SGD identities between the rules."""
import dataclasses
import math
import types

import numpy as np

from .._validate import real
from ..optim import SGD, Adam, exclude_1d
from ..rules import L2, RULES, Decay, Decoupled


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

    Attributes
    ----------
    library : str
        The library converted from: "torch", "keras", "optax", "thinc" or "sklearn".
    optimizer : str
        "sgd" (:class:`l2decay.SGD`) or "adam" (:class:`l2decay.Adam`).
    hyper : mapping
        The optimizer's keyword arguments other than params and reg (read-only), the library's
        conventions included (``momentum_form``, ``eps_form``).
    reg : str or None
        The rule's name, "l2", "decoupled" or "decay", or None (no regularization).
    strength : float
        The library's own number (weight_decay, alpha, L2, ...).
    scale : str or None
        How that number becomes the rule's strength at a step: None (as it is), "1/batch"
        (divided by the batch's row count or sample-weight sum: scikit-learn), "lr" (times the
        step's lr: thinc's decay), "1/lr" (divided by it: optax's decay after the lr).
    decay_1d : bool
        Whether 1-D params (biases) get the rule, as the library does by default.
    notes : tuple of str
        What the training loop must do that the optimizer cannot carry (an lr schedule of the
        library's, the per-batch strength, the values a scheduler changes).
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
        if not isinstance(opt, (SGD, Adam)):
            raise TypeError(f"opt must be an l2decay optimizer (SGD or Adam), got {type(opt).__name__}")
        groups = opt.param_groups
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
