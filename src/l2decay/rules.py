"""The three regularization rules, as immutable values a param group holds under ``"reg"``.

Per step t, gradient g, weights w, learning rate lr (the optimizers' formulas are in
:func:`l2decay.sgd_step` and :func:`l2decay.adam_step`):

- ``L2(lam)``:        ``g + lam*w`` replaces g before anything else, so it flows into the
                      momentum buffer / Adam moments (torch SGD and Adam ``weight_decay``).  The
                      caller's gradient arrays are never written.
- ``Decoupled(lam)``: ``w *= 1 - lr*lam`` before the step, which uses the raw g (torch AdamW,
                      Loshchilov & Hutter's SGDW/AdamW).  ``Decoupled(lam, lr_max=L)`` follows
                      the lr schedule but not the base lr: ``w *= 1 - lam*lr/L`` (optimi's
                      ``decouple_lr``, Composer's DecoupledAdamW with L the initial lr).
- ``Decay(d)``:       the step with the raw g, then ``w *= 1 - d``; d is a per-step fraction,
                      not scaled by lr (the article's rule).

A decay schedule replaces the rule between steps (``group["reg"] = Decoupled(lam_t)``); the
optimizers read it afresh at every step, at no extra cost.
"""
import re

from . import _validate

__all__ = ["L2", "Decoupled", "Decay", "RULES", "from_repr"]


class _Rule:
    """A rule and its strength; equal when of the same kind and strength."""

    __slots__ = ("strength", "coef")
    name = "none"

    def __init__(self, strength):
        object.__setattr__(self, "strength", self._check(strength))
        # what the kernels read: the strength in the units of their formula
        object.__setattr__(self, "coef", self.strength)

    @classmethod
    def _check(cls, strength):
        return _validate.real(f"{cls.__name__} strength", strength)

    def __setattr__(self, key, value):
        raise AttributeError(f"{type(self).__name__} is immutable; make a new one")

    def _key(self):
        return (type(self), self.strength)

    def __eq__(self, other):
        return isinstance(other, _Rule) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"{type(self).__name__}({self.strength!r})"

    def __reduce__(self):
        return (type(self), (self.strength,))


class L2(_Rule):
    """L2 regularization: ``g + lam*w`` replaces g before the optimizer uses it (lam >= 0)."""

    __slots__ = ()
    name = "l2"


class Decoupled(_Rule):
    """Decoupled weight decay: ``w *= 1 - lr*lam`` before the step (torch AdamW; lam >= 0).

    With ``lr_max`` (> 0) the decay follows the lr schedule but not the base lr:
    ``w *= 1 - lam * lr / lr_max`` (the paper's schedule multiplier; optimi, Composer).
    """

    __slots__ = ("lr_max",)
    name = "decoupled"

    def __init__(self, strength, lr_max=None):
        super().__init__(strength)
        if lr_max is not None:
            lr_max = _validate.real("Decoupled lr_max", lr_max, low_open=True)
            object.__setattr__(self, "coef", self.strength / lr_max)
        object.__setattr__(self, "lr_max", lr_max)

    def _key(self):
        return (type(self), self.strength, self.lr_max)

    def __repr__(self):
        extra = f", lr_max={self.lr_max!r}" if self.lr_max is not None else ""
        return f"Decoupled({self.strength!r}{extra})"

    def __reduce__(self):
        return (Decoupled, (self.strength, self.lr_max))


class Decay(_Rule):
    """Multiplicative weight decay after the step: ``w *= 1 - d``, d in [0, 1), not scaled by lr."""

    __slots__ = ()
    name = "decay"

    @classmethod
    def _check(cls, strength):
        return _validate.real("Decay strength", strength, high=1.0, high_open=True)


RULES = {cls.name: cls for cls in (L2, Decoupled, Decay)}

_REPR = re.compile(r"(\w+)\(([^,()]+)(?:, lr_max=([^,()]+))?\)")


def from_repr(text):
    """The rule whose repr is `text` ("L2(0.01)", "Decoupled(0.01, lr_max=0.001)": exact, a
    float's repr reads back as the same float), or None when `text` reads like no rule's repr.
    A rule's repr with a value the rule refuses raises its ValueError."""
    m = _REPR.fullmatch(text) if isinstance(text, str) else None
    cls = {c.__name__: c for c in RULES.values()}.get(m.group(1)) if m else None
    if cls is None:
        return None
    if m.group(3) is not None:
        if cls is not Decoupled:
            raise ValueError(f"{cls.__name__} has no lr_max, got {text!r}")
        return cls(float(m.group(2)), lr_max=float(m.group(3)))
    return cls(float(m.group(2)))

