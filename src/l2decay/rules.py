"""The regularization rules, as immutable values a param group holds under ``"reg"``.

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
- ``Cautious(lam)``:  Decoupled's ``w *= 1 - lr*lam`` only where the optimizer's update u
                      (the step is ``w -= lr*u``) and w agree in sign, ``u*w >= 0`` (Chen et
                      al., "Cautious Weight Decay", 2025).
- ``Corrected(lam, lr_max)``: ``w *= 1 - lam * lr**2 / lr_max``, decoupled decay corrected
                      for the lr schedule (Defazio, "Why Gradients Rapidly Increase Near the
                      End of Training", 2025: AdamC).

A rule's ``timescale(lr)`` is the number of steps over which it shrinks the weights by a
factor e, ``1 / (shrink per step)`` (Wang & Aitchison, "How to set AdamW's weight decay as you
scale model and dataset size", 2024: AdamW's weights are an average over that many steps), and
``Rule.from_timescale(tau, lr)`` the rule of a given one; ``momentum=`` (SGD's) enters L2's.

A decay schedule replaces the rule between steps (``group["reg"] = Decoupled(lam_t)``); the
optimizers read it afresh at every step, at no extra cost.
"""
import re

from . import _validate

__all__ = ["L2", "Decoupled", "Decay", "Cautious", "Corrected", "RULES", "from_repr"]


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

    def _per_strength(self, lr, momentum=0.0):
        """The fraction of every weight the rule removes per step at `lr`, per unit of strength
        (a decoupled rule's shrink does not pass through SGD's momentum)."""
        return lr

    def timescale(self, lr, *, iterations_per_epoch=None, momentum=0.0):
        """The steps (epochs, given `iterations_per_epoch`) over which the rule at learning rate
        `lr` shrinks the weights by a factor e: 1 / (the fraction it removes per step), infinite
        for strength 0.  Wang & Aitchison hold it fixed, in epochs, as model and data grow.
        `momentum`: SGD's, in [0, 1): L2's pull is a gradient, which momentum adds up
        1/(1 - momentum)-fold; the other rules' shrink it leaves alone."""
        lr = _validate.real("lr", lr, low_open=True)
        per = self.strength * self._per_strength(lr, _momentum(momentum))
        tau = 1.0 / per if per else float("inf")
        return tau if iterations_per_epoch is None else tau / _iterations(iterations_per_epoch)

    @classmethod
    def from_timescale(cls, tau, lr, *, iterations_per_epoch=None, momentum=0.0, **options):
        """The rule whose timescale at learning rate `lr` (and SGD `momentum`) is `tau` steps
        (or `tau` epochs of `iterations_per_epoch` steps); `options`: the rule's others (lr_max)."""
        tau = _validate.real("tau", tau, low_open=True)
        lr = _validate.real("lr", lr, low_open=True)
        momentum = _momentum(momentum)
        if iterations_per_epoch is not None:
            tau = tau * _iterations(iterations_per_epoch)
        return cls(1.0 / (tau * cls(0.0, **options)._per_strength(lr, momentum)), **options)


def _momentum(value):
    return _validate.real("momentum", value, high=1.0, high_open=True)


def _iterations(value):
    return _validate.count("iterations_per_epoch", value, 1, 2 ** 62)


class L2(_Rule):
    """L2 regularization: ``g + lam*w`` replaces g before the optimizer uses it (lam >= 0).

    Its timescale is SGD's, ``(1 - momentum) / (lr * lam)`` steps: the pull ``lr * lam * w``
    is part of the gradient, which momentum adds up (torch's, Keras's and Nesterov's alike,
    without dampening), so ``L2(lam)`` with momentum 0.9 is ``Decoupled(10 * lam)``'s timescale.
    Under Adam, L2's pull is divided by sqrt(v) and has no single timescale."""

    __slots__ = ()
    name = "l2"

    def _per_strength(self, lr, momentum=0.0):
        return lr / (1.0 - momentum)


class _Scheduled(_Rule):
    """A decoupled rule with an optional lr_max (> 0)."""

    __slots__ = ("lr_max",)

    def __init__(self, strength, lr_max=None):
        super().__init__(strength)
        if lr_max is not None:
            lr_max = _validate.real(f"{type(self).__name__} lr_max", lr_max, low_open=True)
            object.__setattr__(self, "coef", self.strength / lr_max)
        object.__setattr__(self, "lr_max", lr_max)

    def _key(self):
        return (type(self), self.strength, self.lr_max)

    def __repr__(self):
        extra = f", lr_max={self.lr_max!r}" if self.lr_max is not None else ""
        return f"{type(self).__name__}({self.strength!r}{extra})"

    def __reduce__(self):
        return (type(self), (self.strength, self.lr_max))


class Decoupled(_Scheduled):
    """Decoupled weight decay: ``w *= 1 - lr*lam`` before the step (torch AdamW; lam >= 0).

    With ``lr_max`` (> 0) the decay follows the lr schedule but not the base lr:
    ``w *= 1 - lam * lr / lr_max`` (the paper's schedule multiplier; optimi, Composer).
    """

    __slots__ = ()
    name = "decoupled"

    def _per_strength(self, lr, momentum=0.0):
        return lr / self.lr_max if self.lr_max is not None else lr


class Corrected(_Scheduled):
    """Schedule-corrected decoupled decay: ``w *= 1 - lam * lr**2 / lr_max`` before the step.

    Defazio (2025, AdamC) for layers followed by a normalization: with ``lam * lr`` the
    weights' equilibrium norm, and so the gradient-to-weight ratio, drifts as the schedule
    lowers lr; ``lam * lr**2 / lr_max`` holds it.  ``lr_max`` (>= every lr the rule steps
    with): given, or the group's ``"initial_lr"`` (which torch's lr schedulers set), the
    schedule's peak for decaying schedules.  At ``lr == lr_max`` it is ``Decoupled(lam)``.
    """

    __slots__ = ()
    name = "corrected"

    def _per_strength(self, lr, momentum=0.0):
        return lr * lr / self.lr_max if self.lr_max is not None else lr


class Cautious(_Rule):
    """Cautious weight decay: ``w *= 1 - lr*lam`` before the step, only on the coordinates where
    the optimizer's update u (the step is ``w -= lr*u``: Adam's ``m_hat / (sqrt(v_hat) + eps)``,
    SGD's gradient or momentum direction) and w agree in sign, ``u*w >= 0`` (lam >= 0).

    Chen et al. (2025): the decay never fights the update, so the optimizer keeps the loss's
    own stationary points.  Its timescale is Decoupled's: an upper bound on the coordinates
    the mask leaves out.
    """

    __slots__ = ()
    name = "cautious"


class Decay(_Rule):
    """Multiplicative weight decay after the step: ``w *= 1 - d``, d in [0, 1), not scaled by lr
    (its timescale, 1/d steps, is the same at any lr)."""

    __slots__ = ()
    name = "decay"

    @classmethod
    def _check(cls, strength):
        return _validate.real("Decay strength", strength, high=1.0, high_open=True)

    def _per_strength(self, lr, momentum=0.0):
        return 1.0      # (a fraction per step whatever the lr)


RULES = {cls.name: cls for cls in (L2, Decoupled, Decay, Cautious, Corrected)}

_REPR = re.compile(r"(\w+)\(([^,()]+)(?:, lr_max=([^,()]+))?\)")


def from_repr(text):
    """The rule whose repr is `text` ("L2(0.01)", "Corrected(0.01, lr_max=0.001)": exact, a
    float's repr reads back as the same float), or None when `text` reads like no rule's repr.
    A rule's repr with a value the rule refuses raises its ValueError."""
    m = _REPR.fullmatch(text) if isinstance(text, str) else None
    cls = {c.__name__: c for c in RULES.values()}.get(m.group(1)) if m else None
    if cls is None:
        return None
    if m.group(3) is not None:
        if not issubclass(cls, _Scheduled):
            raise ValueError(f"{cls.__name__} has no lr_max, got {text!r}")
        return cls(float(m.group(2)), lr_max=float(m.group(3)))
    return cls(float(m.group(2)))

