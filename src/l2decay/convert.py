"""Conversions between regularization conventions: l2decay's three rules and other libraries'.

For plain SGD (no momentum) the rules are the same update up to constants:

- ``L2(lam)`` at lr:            ``w' = (1 - lr*lam)*w - lr*g``
- ``Decoupled(lam)`` at lr:     ``w' = (1 - lr*lam)*w - lr*g``   (identical)
- ``Decay(d)`` at lr:           ``w' = (1 - d)*w - (1 - d)*lr*g``
  = ``L2(d / ((1 - d)*lr))`` at ``lr' = (1 - d)*lr``.

With momentum or Adam no such identity exists (Loshchilov & Hutter, "Decoupled Weight Decay
Regularization", ICLR 2019): L2 passes through the momentum buffer / Adam's moments, the others
do not.  The functions below are exact for plain SGD and define what "the same strength" means
elsewhere.
"""
import math

from ._validate import real
from .rules import L2, Decay, Decoupled

__all__ = [
    "decay_to_l2", "l2_to_decay", "l2_to_decoupled", "decoupled_to_l2",
    "from_torch", "from_keras", "from_sklearn_mlp",
]


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


def from_torch(optimizer, weight_decay):
    """The rule matching torch.optim's ``weight_decay`` argument.

    - ``SGD``, ``Adam`` (and ``RMSprop``, ``Adagrad``): ``grad = grad.add(param, alpha=weight_decay)``
      before momentum/moments, i.e. ``L2(weight_decay)``.
    - ``AdamW``: ``param.mul_(1 - lr*weight_decay)`` before the Adam step, i.e.
      ``Decoupled(weight_decay)``.
    """
    wd = real("weight_decay", weight_decay)
    name = str(optimizer).lower()
    if name == "adamw":
        return Decoupled(wd)
    if name in ("sgd", "adam", "rmsprop", "adagrad"):
        return L2(wd)
    raise ValueError(f"optimizer must be one of 'sgd', 'adam', 'adamw', 'rmsprop', 'adagrad', got {optimizer!r}")


def from_keras(*, weight_decay=None, l2=None):
    """The rule matching a Keras 3 setting; give exactly one of the two.

    - optimizer ``weight_decay=wd``: Keras applies ``variable - variable*wd*lr`` before the
      gradient step, i.e. ``Decoupled(wd)``.
    - ``keras.regularizers.L2(l2)``: adds ``l2 * sum(w**2)`` to the loss, whose gradient is
      ``2*l2*w``, i.e. ``L2(2*l2)``.
    """
    if (weight_decay is None) == (l2 is None):
        raise ValueError("give exactly one of weight_decay or l2")
    if weight_decay is not None:
        return Decoupled(real("weight_decay", weight_decay))
    return L2(2.0 * real("l2", l2))


def from_sklearn_mlp(alpha, batch_size):
    """The rule matching scikit-learn MLPClassifier/MLPRegressor's ``alpha``.

    sklearn adds ``0.5*alpha*||W||**2 / n_samples`` to the mean loss, where n_samples is the
    minibatch size, so the weight gradient gains ``alpha*W / batch_size``: ``L2(alpha/batch_size)``.
    sklearn does not regularize intercepts: pair this with :func:`l2decay.exclude_1d`.
    """
    alpha = real("alpha", alpha)
    if type(batch_size) is not int or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return L2(alpha / batch_size)
