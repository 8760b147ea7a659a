"""thinc's SGD and Adam."""
import types

from ._common import (_REQUIRED, _num, _flag, _args, _name, _not, _a_schedule, _schedule_value, _sgd, _adam,
                      _BETA_BELOW_1, _EPS_POSITIVE, _LR_NONNEGATIVE, _STRENGTH_NONNEGATIVE, _object)
from ._setting import Setting


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
