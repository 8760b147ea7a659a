"""optax's sgd, adam and adamw, and add_decayed_weights around them."""

from ._common import (_REQUIRED, _num, _flag, _args, _name, _not, _schedule_value, _sgd, _adam, _MOMENTUM_BELOW_1,
                      _BETA_BELOW_1, _EPS_POSITIVE, _LR_NONNEGATIVE, _STRENGTH_NONNEGATIVE)
from ._setting import Setting


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
