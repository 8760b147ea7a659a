"""SGD (with momentum) and Adam on the compiled kernels, with the regularization rule explicit.

Three rules, each exact (per step t, gradient g, weights w, learning rate lr):

- ``L2(lam)``:        ``g += lam*w`` in place before anything else, so it flows into the
                      momentum buffer / Adam moments (torch SGD and Adam ``weight_decay``).
- ``Decoupled(lam)``: ``w *= 1 - lr*lam`` before the step, which uses the raw g
                      (torch AdamW, Loshchilov & Hutter's SGDW/AdamW).
- ``Decay(d)``:       the step with the raw g, then ``w *= 1 - d``; d is a per-step fraction,
                      not scaled by lr (the seed's rule).

SGD: with momentum mu, ``b = g`` on a tensor's first step, else ``b = mu*b + (1-dampening)*g``;
then ``g = g + mu*b`` (nesterov) or ``g = b``; ``w -= lr*g``.  Same as torch.optim.SGD.
Adam: ``m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
w -= (lr/(1-b1**t)) * m / (sqrt(v)/sqrt(1-b2**t) + eps)``.  Same as torch.optim.Adam.

Each (optimizer, rule) pair is one compiled fused pass per tensor, all tensors of a parameter
group in one call.  A step validates every group and gradient first; a failed step modifies
nothing.
"""
from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._validate import _array, real, tensors

__all__ = ["L2", "Decoupled", "Decay", "SGD", "Adam", "exclude_1d"]


@dataclass(frozen=True)
class _Rule:
    strength: float
    code = 0
    name = "none"

    def __post_init__(self):
        object.__setattr__(self, "strength", real(f"{type(self).__name__} strength", self.strength))

    def __repr__(self):
        return f"{type(self).__name__}({self.strength!r})"


class L2(_Rule):
    """L2 regularization: ``g += lam*w`` before the optimizer sees g (strength >= 0)."""

    code = 1
    name = "l2"


class Decoupled(_Rule):
    """Decoupled weight decay: ``w *= 1 - lr*lam`` before the step (torch AdamW; strength >= 0)."""

    code = 2
    name = "decoupled"


class Decay(_Rule):
    """Multiplicative weight decay after the step: ``w *= 1 - d``, d in [0, 1), not scaled by lr."""

    code = 3
    name = "decay"

    def __post_init__(self):
        object.__setattr__(
            self, "strength", real("Decay strength", self.strength, high=1.0, high_open=True)
        )


RULES = {cls.name: cls for cls in (L2, Decoupled, Decay)}


def _rule_code(reg):
    return (0, 0.0) if reg is None else (reg.code, reg.strength)


def _check_reg(reg, where):
    if reg is not None and not isinstance(reg, _Rule):
        raise TypeError(f"{where}reg must be None, L2(...), Decoupled(...) or Decay(...), got {reg!r}")
    return reg


class _Optimizer:
    """Parameter groups, validation, state (de)serialization; subclasses define the step."""

    # hyperparameter name -> default; subclasses fill it
    _defaults = {}
    # state arrays kept per parameter (created zero-filled, like the parameter)
    _state_names = ()

    def __init__(self, params, **hyper):
        unknown = sorted(set(hyper) - set(self._defaults))
        if unknown:
            hint = " (use reg=L2(...), Decoupled(...) or Decay(...))" if "weight_decay" in unknown else ""
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {unknown}{hint}")
        self.defaults = self._check_hyper(dict(self._defaults, **hyper), "")
        self._plan = None  # compiled step (see step)
        self.param_groups = []
        self.state = []  # per parameter, flat order: dict name -> array
        self._owners = []  # the parameter each entry of state belongs to
        if isinstance(params, np.ndarray):
            raise TypeError("params must be a list of arrays or of parameter-group dicts, not one array")
        params = list(params)
        if not params:
            raise ValueError("params is empty: the optimizer has nothing to update")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    # -- groups ------------------------------------------------------------------------------
    def add_param_group(self, group):
        """Add a dict with ``params`` and optional per-group overrides of the defaults."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a parameter group must be a dict with a 'params' list")
        where = f"param_groups[{len(self.param_groups)}]."
        unknown = set(group) - {"params"} - set(self._defaults)
        if unknown:
            raise ValueError(f"{where[:-1]} has unknown keys {sorted(unknown)}; allowed: {sorted(self._defaults)}")
        params = group["params"]
        params = [params] if isinstance(params, np.ndarray) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for k, p in enumerate(params):
            _array(f"{where}params[{k}]", p, True)
            if id(p) in seen:
                raise ValueError(f"{where}params[{k}] appears in more than one place")
            seen.add(id(p))
        hyper = self._check_hyper({**self.defaults, **{k: v for k, v in group.items() if k != "params"}}, where)
        self.param_groups.append({"params": params, **hyper, "step": 0})
        self._plan = None
        self.state.extend({name: np.zeros_like(p) for name in self._state_names} for p in params)
        self._owners.extend(params)

    def _check_hyper(self, h, where):
        h["lr"] = real(f"{where}lr", h["lr"])
        _check_reg(h["reg"], where)
        return h

    @property
    def params(self):
        return [p for g in self.param_groups for p in g["params"]]

    # -- step --------------------------------------------------------------------------------
    def step(self, grads):
        """Update every parameter in place from `grads` (arrays in the order of the params).

        Validates all groups and gradients before touching anything.  With ``L2`` the gradient
        arrays are overwritten with the regularized gradient.
        """
        # Fast path: a compiled plan that checks, at C level, that the groups are as it was
        # built from and that every gradient fits its parameter; it returns False, touching
        # nothing, otherwise.  Changing a group's hyperparameters (a schedule) rebuilds it.
        if self._plan is not None and self._plan.run(self.param_groups, grads):
            return
        specs = self._check_step(grads)
        self._plan = _kernels.StepPlan(
            self._kind, self.param_groups, tuple(self._defaults), specs,
            *[tuple(s[name] for s in self.state) for name in self._state_names],
            *[None] * (2 - len(self._state_names)),
        )
        if not self._plan.run(self.param_groups, grads):
            raise RuntimeError("internal error: a step passed validation but its plan refused it")

    def _check_step(self, grads):
        """Validate every group and gradient (raising the worded error); return each group's
        kernel arguments."""
        params = self.params
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads must be a list of arrays matching the params, got {type(grads).__name__}")
        if len(grads) != len(params):
            raise ValueError(f"grads has {len(grads)} arrays but the optimizer has {len(params)} params")
        specs, start = [], 0
        for i, group in enumerate(self.param_groups):
            hyper = self._check_hyper(dict(group), f"param_groups[{i}].")
            n = len(group["params"])
            tensors(group["params"], list(grads[start:start + n]), type(hyper["reg"]) is L2, offset=start)
            for k, p in enumerate(group["params"]):
                if start + k >= len(self._owners) or p is not self._owners[start + k]:
                    raise ValueError(f"param_groups[{i}].params changed after it was added; "
                                     f"use add_param_group for new parameters")
            if type(group["step"]) is not int or group["step"] < 0:
                raise ValueError(f"param_groups[{i}].step must be a non-negative int, got {group['step']!r}")
            specs.append(self._spec(hyper))
            start += n
        return tuple(specs)

    def _spec(self, hyper):
        raise NotImplementedError

    # -- state -------------------------------------------------------------------------------
    def state_dict(self):
        """A flat dict of numpy arrays, numbers and strings, savable with ``np.savez(f, **d)``."""
        d = {"optimizer": type(self).__name__, "num_groups": len(self.param_groups)}
        for i, g in enumerate(self.param_groups):
            for key in self._defaults:
                if key == "reg":
                    d[f"group.{i}.reg"] = g["reg"].name if g["reg"] is not None else "none"
                    d[f"group.{i}.reg_strength"] = _rule_code(g["reg"])[1]
                else:
                    d[f"group.{i}.{key}"] = g[key]
            d[f"group.{i}.step"] = g["step"]
            d[f"group.{i}.num_params"] = len(g["params"])
        for k, s in enumerate(self.state):
            for name, arr in s.items():
                d[f"state.{k}.{name}"] = arr.copy()
        return d

    def load_state_dict(self, d):
        """Restore hyperparameters, step counts and buffers; raises and changes nothing if `d`
        does not match this optimizer's parameters or is corrupt."""
        try:
            new_groups, new_state = self._parse_state(d)
        except KeyError as exc:
            raise ValueError(f"state dict is missing {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ValueError(f"state dict is corrupt: {exc}") from None
        self._plan = None
        for g, (hyper, step) in zip(self.param_groups, new_groups):
            g.update(hyper)
            g["step"] = step
        for s, new in zip(self.state, new_state):
            for name, arr in new.items():
                np.copyto(s[name], arr)

    def _parse_state(self, d):
        kind = str(np.asarray(d["optimizer"]))
        if kind != type(self).__name__:
            raise ValueError(f"state dict is for {kind}, not {type(self).__name__}")
        if int(np.asarray(d["num_groups"])) != len(self.param_groups):
            raise ValueError(
                f"state dict has {int(np.asarray(d['num_groups']))} parameter groups, this optimizer "
                f"has {len(self.param_groups)}"
            )
        groups, k = [], 0
        for i, g in enumerate(self.param_groups):
            pre = f"group.{i}."
            if int(np.asarray(d[pre + "num_params"])) != len(g["params"]):
                raise ValueError(f"state dict group {i} has a different number of params")
            hyper = {}
            for key in self._defaults:
                if key == "reg":
                    name = str(np.asarray(d[pre + "reg"]))
                    if name == "none":
                        hyper["reg"] = None
                    elif name in RULES:
                        hyper["reg"] = RULES[name](float(np.asarray(d[pre + "reg_strength"])))
                    else:
                        raise ValueError(f"state dict group {i} has unknown reg {name!r}")
                else:
                    value = np.asarray(d[pre + key])
                    hyper[key] = tuple(float(x) for x in value) if value.ndim else value.item()
            hyper = self._check_hyper(hyper, f"state dict group {i}: ")
            step = np.asarray(d[pre + "step"])
            if step.ndim or step.dtype.kind not in "iu" or int(step) < 0:
                raise ValueError(f"state dict group {i} has an invalid step count {step!r}")
            groups.append((hyper, int(step)))
        states = []
        for k, p in enumerate(self.params):
            new = {}
            for name in self._state_names:
                arr = np.asarray(d[f"state.{k}.{name}"])
                if arr.shape != p.shape or arr.dtype != p.dtype:
                    raise ValueError(
                        f"state dict state.{k}.{name} has shape {arr.shape} and dtype {arr.dtype}; "
                        f"the param has {p.shape} and {p.dtype}"
                    )
                if not np.all(np.isfinite(arr)):
                    raise ValueError(f"state dict state.{k}.{name} holds non-finite values")
                new[name] = arr
            states.append(new)
        return groups, states


class SGD(_Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD.

    Parameters
    ----------
    params : list of arrays, or list of dicts with ``params`` and per-group overrides
    lr : float, >= 0
    momentum : float in [0, 1)
    dampening : float in [0, 1]
    nesterov : bool (needs momentum > 0 and dampening == 0)
    reg : None, L2(lam), Decoupled(lam) or Decay(d)
    """

    _defaults = {"lr": 0.01, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "reg": None}
    _state_names = ("momentum_buffer",)
    _kind = "sgd"

    def _check_hyper(self, h, where):
        h = super()._check_hyper(h, where)
        h["momentum"] = real(f"{where}momentum", h["momentum"], high=1.0, high_open=True)
        h["dampening"] = real(f"{where}dampening", h["dampening"], high=1.0)
        if not isinstance(h["nesterov"], (bool, np.bool_)):
            raise TypeError(f"{where}nesterov must be a bool, got {h['nesterov']!r}")
        h["nesterov"] = bool(h["nesterov"])
        if h["nesterov"] and (h["momentum"] == 0 or h["dampening"] != 0):
            raise ValueError(f"{where}nesterov requires momentum > 0 and dampening == 0")
        return h

    def _spec(self, h):
        code, strength = _rule_code(h["reg"])
        return (h["lr"], code, strength, h["momentum"], h["dampening"], h["nesterov"])


class Adam(_Optimizer):
    """Adam (Kingma & Ba), as torch.optim.Adam; with ``reg=Decoupled(lam)`` it is torch's AdamW.

    Parameters
    ----------
    params : list of arrays, or list of dicts with ``params`` and per-group overrides
    lr : float, >= 0
    betas : (float, float), each in [0, 1)
    eps : float, > 0
    reg : None, L2(lam), Decoupled(lam) or Decay(d)
    """

    _defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "reg": None}
    _state_names = ("exp_avg", "exp_avg_sq")
    _kind = "adam"

    def _check_hyper(self, h, where):
        h = super()._check_hyper(h, where)
        betas = h["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{where}betas must be a pair (beta1, beta2), got {betas!r}")
        h["betas"] = (
            real(f"{where}betas[0]", betas[0], high=1.0, high_open=True),
            real(f"{where}betas[1]", betas[1], high=1.0, high_open=True),
        )
        h["eps"] = real(f"{where}eps", h["eps"], low_open=True)
        return h

    def _spec(self, h):
        code, strength = _rule_code(h["reg"])
        return (h["lr"], code, strength, h["betas"][0], h["betas"][1], h["eps"])


def exclude_1d(params, reg, names=None, *, verbose=True):
    """Parameter groups that apply `reg` to weight matrices only, not to 1-D params (biases).

    Returns ``[{"params": [ndim >= 2], "reg": reg}, {"params": [ndim < 2], "reg": None}]``
    (empty groups left out) and, if `verbose`, prints which tensors are regularized.
    """
    params = list(params)
    names = list(names) if names is not None else [f"params[{k}]" for k in range(len(params))]
    if len(names) != len(params):
        raise ValueError(f"names has {len(names)} entries but params has {len(params)}")
    on = [(n, p) for n, p in zip(names, params) if p.ndim >= 2]
    off = [(n, p) for n, p in zip(names, params) if p.ndim < 2]
    groups = [g for g in ({"params": [p for _, p in on], "reg": reg},
                          {"params": [p for _, p in off], "reg": None}) if g["params"]]
    if verbose:
        for label, items in ((f"regularized with {reg!r}", on), ("not regularized", off)):
            total = sum(p.size for _, p in items)
            shown = ", ".join(f"{n} {p.shape}" for n, p in items) or "-"
            print(f"{label}: {len(items)} tensors, {total:,} weights: {shown}")
    return groups
