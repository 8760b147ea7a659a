"""Keras 3's SGD, Adam and AdamW, and its L2 regularizer."""
import math
import numbers

import numpy as np

from ._common import (_num, _flag, _args, _name, _not, _schedule_value, _sgd, _adam, _MOMENTUM_BELOW_1, _BETA_BELOW_1,
                      _EPS_POSITIVE, _LR_NONNEGATIVE, _STRENGTH_NONNEGATIVE, _object, _class_name)
from ._setting import Setting


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
