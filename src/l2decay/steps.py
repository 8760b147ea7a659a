"""The entry points: the two rules' in-place updates and one optimizer step as plain functions.

``l2_step`` and ``decay_step`` are compiled (kernels/l2decay/_entries.pxi).  ``sgd_step`` and
``adam_step`` gather their lists, as torch.optim's functional sgd()/adam() take them, and call
the one compiled step (kernels/l2decay/_core.pxi) that l2decay.optim and l2decay.torch call too.
"""
import numpy as np

from . import _kernels, q8
from ._kernels import decay_step, l2_step
from ._validate import (SettingsCache, _sequence, adam_hyper, check, refused, settings, sgd_hyper, state_dtype,
                        stats_array)

__all__ = ["l2_step", "decay_step", "sgd_step", "adam_step"]

_SGD_NAMES = ("params", "grads", "momentum_buffers", "", "", "compensations", "step", "momentum_scales", "")
_ADAM_NAMES = ("params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs", "compensations", "step",
               "exp_avg_scales", "exp_avg_sq_scales")
_kept = SettingsCache()   # entry 0: sgd_step's last settings, 1: adam_step's
_NO_COMPENSATIONS = "rounding 'compensated' needs compensations= (a list; None entries are born zero)"


def _steps(step, m, required=False):
    """`step` (None unless `required`, an int >= 1, or one per tensor) as a list of ints, or None."""
    if step is None and not required:
        return None
    if isinstance(step, (list, tuple)):
        steps = _sequence("step", step, m)
        return [check("step", t, f"step[{k}]") for k, t in enumerate(steps)]
    return [check("step", step)] * m


def _like(p, dtype, make):
    """A new array of p's shape made by `make`: of `dtype`, p's own for "param", p's state dtype
    for None; None if p is no array (the step refuses it)."""
    if not isinstance(p, np.ndarray):
        return None
    return make(p.shape, state_dtype(p) if dtype is None else p.dtype if dtype == "param" else dtype)


def _born(name, given, m, make, needed, births):
    """The list `given` (one entry per param; None entries are born by make(k)) as a copy with
    the new arrays in place; what is born goes to `births` as (given, k, array), put in its
    place once the step passes.  `needed`: the error when `given` is None."""
    if given is None:
        raise ValueError(needed)
    entries = list(_sequence(name, given, m))
    born = [k for k, a in enumerate(entries) if a is None]
    if born and not isinstance(given, list):
        raise TypeError(f"{name} must be a list when an entry is None (a new array is put in its place)")
    for k in born:
        entries[k] = make(k)
        births.append((given, k, entries[k]))
    return entries, born


def _scales(name, given, codes, m, births):
    """8-bit state's scales: `given` (one per param; None entries born with their codes), or None."""
    if given is None:
        return None
    return _born(name, given, m, lambda k: q8.zeros(getattr(codes[k], "shape", ()))[1], "", births)[0]


def _call(adam, s, names, ps, gs, s1, s2, s3, comps, steps, firsts, births, rounding, sc1=None, sc2=None,
          stats=None):
    if stats is not None:
        stats_array("stats", stats, len(ps), [ps, gs, s1, s2, s3, comps, sc1, sc2])
    r = _kernels.step(adam, [s] * len(ps), ps, gs, s1, s2, s3, comps, steps, firsts, None, sc1, sc2, stats)
    if r is not None:
        lists = (ps, gs, s1, s2, s3, comps, steps, sc1, sc2)
        refused(r, lambda k, role: f"{names[role]}[{k}]" if role != 6 else "step",
                lambda k, role: lists[role][k] if lists[role] is not None else None, rounding=rounding)
    _kernels.publish(births)



def sgd_step(params, grads, momentum_buffers=None, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
             maximize=False, reg=None, momentum_form="torch", rounding=None, seed=0, step=None,
             compensations=None, momentum_scales=None, stats=None):
    """One SGD step over a list of tensors, in place; ``grads`` are only read.

    Per tensor, with g its gradient (``-g`` when `maximize`) and b its momentum buffer:

    - `reg`: ``L2(lam)``: ``g = g + lam*w`` (in registers);  ``Decoupled(lam)``:
      ``w = w * (1 - lr*lam)`` first;  ``Decay(d)``: ``w = w * (1 - d)`` last.
    - momentum_form "torch" (torch.optim.SGD): ``b = g`` when born, else
      ``b = momentum*b + (1 - dampening)*g``; ``w = w - lr*(g + momentum*b)`` with `nesterov`,
      else ``w = w - lr*b``.  Without momentum ``w = w - lr*g``.
    - momentum_form "keras" (Keras, scikit-learn: the buffer holds a velocity): ``b = -lr*g``
      when born, else ``b = momentum*b - lr*g``; ``w = w + momentum*b - lr*g`` with `nesterov`,
      else ``w = w + b``.  The same as "torch" at a constant lr, not under a schedule.

    Parameters
    ----------
    params, grads : list/tuple of numpy.ndarray
        float32 or float64 (or 16-bit: see adam_step), C-contiguous, pairwise equal in dtype
        and shape; params writeable.
    momentum_buffers : list of numpy.ndarray or None, optional
        Needed when momentum > 0: one per param, like it and writeable (a 16-bit param's:
        float32 or its own dtype); an entry that is None is born from this step (a new array,
        float32 for a 16-bit param, is put in its place in the list).
    lr : float >= 0;  momentum : float in [0, 1);  dampening : float in [0, 1]
    nesterov, maximize : bool
    reg : None or a rule: L2, Decoupled, Decay, Cautious, Corrected (with its lr_max)
    momentum_form : "torch" or "keras" (dampening must be 0 with "keras")
    rounding, seed, step, compensations : how new weights are stored, see :func:`adam_step`
        (`step`, an int >= 1 or one per tensor, is needed by "stochastic" only)
    momentum_scales : list of numpy.ndarray or None, optional
        8-bit momentum (float32, bfloat16 and float16 params): the buffers are uint8 codes of
        the param's shape and these their float32 scales, one per :data:`l2decay.q8.BLOCK`
        elements (:mod:`l2decay.q8`); None entries of both are born.

    stats : numpy.ndarray or None, optional
        float64 of shape (len(params), 3): the step sets row k, in its own pass over tensor k,
        to ``sum(w**2)`` of the new weights, ``sum(dw**2)`` of the step and the squared norm of
        the rule's part of it (``l2decay.STATS`` names the columns; docs: Optimizers).

    No array may share memory with another one of the call (grads may repeat).  Returns None.
    On bad input raises TypeError/ValueError and modifies nothing.
    """
    h = {"lr": lr, "momentum": momentum, "dampening": dampening, "nesterov": nesterov, "maximize": maximize,
         "reg": reg, "momentum_form": momentum_form, "rounding": rounding, "seed": seed}
    s = _kept.get(0, h, lambda: settings(False, sgd_hyper(h, "")))
    ps = list(_sequence("params", params))
    gs = list(_sequence("grads", grads, len(ps)))
    births, bufs, firsts, comps = [], None, None, None
    sc1 = None
    if s.uses_state:
        bufs, born = _born("momentum_buffers", momentum_buffers, len(ps),
                           lambda k: _like(ps[k], np.uint8, np.zeros) if momentum_scales is not None
                           else _like(ps[k], None, np.empty),
                           "momentum_buffers is needed when momentum > 0 (None entries are born)", births)
        firsts = [False] * len(ps)
        for k in born:
            firsts[k] = True
        sc1 = _scales("momentum_scales", momentum_scales, bufs, len(ps), births)
    elif momentum_scales is not None:
        raise ValueError("momentum_scales is for 8-bit momentum; this step has momentum 0 (no state)")
    if rounding == "compensated":
        comps, _ = _born("compensations", compensations, len(ps), lambda k: _like(ps[k], "param", np.zeros),
                         _NO_COMPENSATIONS, births)
    _call(False, s, _SGD_NAMES, ps, gs, bufs, None, None, comps, _steps(step, len(ps)), firsts, births, rounding,
          sc1, None, stats)


def adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs=None, *, step, lr, betas=(0.9, 0.999),
              eps=1e-8, amsgrad=False, maximize=False, reg=None, eps_form="torch", rounding=None, seed=0,
              compensations=None, exp_avg_scales=None, exp_avg_sq_scales=None, stats=None):
    """One Adam step over a list of tensors, in place; ``grads`` are only read.

    Per tensor, with g its gradient (``-g`` when `maximize`), t its step (the one being taken,
    >= 1), m, v its moments:

    - `reg`: ``L2(lam)``: ``g = g + lam*w`` (in registers, so it enters m and v);
      ``Decoupled(lam)``: ``w = w * (1 - lr*lam)`` first (torch's AdamW); ``Decay(d)``:
      ``w = w * (1 - d)`` last.
    - ``m = beta1*m + (1 - beta1)*g;  v = beta2*v + (1 - beta2)*g*g``; with `amsgrad`
      ``vmax = max(vmax, v)`` is used for v below.
    - eps_form "torch" (torch.optim.Adam):
      ``w = w - (lr/(1 - beta1**t)) * m / (sqrt(v)/sqrt(1 - beta2**t) + eps)``.
    - eps_form "keras" (Keras, scikit-learn, thinc):
      ``w = w - (lr*sqrt(1 - beta2**t)/(1 - beta1**t)) * m / (sqrt(v) + eps)``.

    Parameters
    ----------
    params, grads, exp_avgs, exp_avg_sqs : list/tuple of numpy.ndarray
        float32 or float64, C-contiguous, equal in dtype and shape per tensor; all but grads
        writeable.
    max_exp_avg_sqs : list of numpy.ndarray or None
        Needed with amsgrad: like exp_avgs; an entry that is None is born zero (a new array is
        put in its place in the list).
    step : int >= 1, or a list/tuple of them (one per tensor)
    lr : float >= 0;  betas : pair of floats in [0, 1);  eps : float > 0
    amsgrad, maximize : bool
    reg : None or a rule: L2, Decoupled, Decay, Cautious, Corrected (with its lr_max)
    eps_form : "torch" or "keras"
    rounding : None, "nearest", "stochastic" or "compensated"
        How each new weight is stored.  "nearest": round to nearest (torch).  "stochastic":
        rounded up or down at random, unbiased, from a counter-based hash of (seed, step, tensor
        index, element index), so the bits are the same for any thread count and instruction
        set and after a resume; 16-bit weights only.  "compensated": the rounding error is kept
        in `compensations` (Kahan summation), decay included.  None: "nearest" for
        float32/float64, the 16-bit default (docs/low-precision.md) for bfloat16/float16.
    seed : int >= 0, for "stochastic"
    compensations : list of numpy.ndarray or None, for "compensated"
        One per param, its dtype and shape; an entry that is None is born zero (a new array
        is put in its place in the list).

    exp_avg_scales, exp_avg_sq_scales : lists of numpy.ndarray or None
        8-bit moments (float32, bfloat16 and float16 params, no amsgrad): exp_avgs and
        exp_avg_sqs are then uint8 codes of each param's shape and these their float32
        scales, one per :data:`l2decay.q8.BLOCK` elements (:mod:`l2decay.q8`, which also makes
        them); both or neither.  The step is then
        ``w = w - (lr/(1 - beta1**t)) * m / (sqrt(v) * (1/sqrt(1 - beta2**t)) + eps)``.

    Weights and gradients may also be bfloat16 (``ml_dtypes.bfloat16``) or float16: the
    arithmetic is float32, and a tensor's state arrays (moments) are all float32 or all its
    own 16-bit dtype (the optimizers' state_dtype "param"), stored like the weights: rounded
    stochastically with "stochastic" (random bits of their own), else to nearest.

    stats : numpy.ndarray or None, optional
        float64 of shape (len(params), 3): the step sets row k, in its own pass over tensor k,
        to ``sum(w**2)`` of the new weights, ``sum(dw**2)`` of the step and the squared norm of
        the rule's part of it (``l2decay.STATS`` names the columns; docs: Optimizers).

    No array may share memory with another one of the call (grads may repeat).  Returns None.
    On bad input raises TypeError/ValueError and modifies nothing.
    """
    h = {"lr": lr, "betas": betas, "eps": eps, "amsgrad": amsgrad, "maximize": maximize, "reg": reg,
         "eps_form": eps_form, "rounding": rounding, "seed": seed}
    s = _kept.get(1, h, lambda: settings(True, adam_hyper(h, "")))
    ps = list(_sequence("params", params))
    gs = list(_sequence("grads", grads, len(ps)))
    ms = list(_sequence("exp_avgs", exp_avgs, len(ps)))
    vs = list(_sequence("exp_avg_sqs", exp_avg_sqs, len(ps)))
    births, xs, comps = [], None, None
    if s.uses_state:
        xs, _ = _born("max_exp_avg_sqs", max_exp_avg_sqs, len(ps),
                         lambda k: _like(ps[k], getattr(ms[k], "dtype", None), np.zeros),
                         "max_exp_avg_sqs is needed with amsgrad (None entries are born)", births)
    if rounding == "compensated":
        comps, _ = _born("compensations", compensations, len(ps), lambda k: _like(ps[k], "param", np.zeros),
                         _NO_COMPENSATIONS, births)
    if (exp_avg_scales is None) != (exp_avg_sq_scales is None):
        raise ValueError("8-bit moments need both exp_avg_scales and exp_avg_sq_scales")
    sc1 = None if exp_avg_scales is None else list(_sequence("exp_avg_scales", exp_avg_scales, len(ps)))
    sc2 = None if exp_avg_sq_scales is None else list(_sequence("exp_avg_sq_scales", exp_avg_sq_scales, len(ps)))
    _call(True, s, _ADAM_NAMES, ps, gs, ms, vs, xs, comps, _steps(step, len(ps), True), None, births, rounding,
          sc1, sc2, stats)
