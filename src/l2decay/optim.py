"""SGD (with momentum) and Adam on the compiled kernels, with the regularization rule explicit.

The rules are in :mod:`l2decay.rules`; the update formulas, option by option, in
:func:`l2decay.sgd_step` and :func:`l2decay.adam_step`, which are these optimizers' steps as
plain functions.  An optimizer holds param groups (dicts with ``params`` and hyperparameters,
like torch.optim's) and per-param state, and reads both afresh at every step: change
``param_groups[i]["lr"]`` or ``["reg"]`` (a schedule), or replace a state array, and the next
step uses it, at no extra cost.  Gradients are given in the order the params were given, also
through :func:`exclude_1d`; the optimizers never write them.  A step checks every group,
gradient and state array before touching anything; a failed step modifies nothing.
"""

import numpy as np

from . import _kernels, q8
from ._kernels import REFUSALS
from ._validate import (_LR, ADAM_KEYS, SGD_KEYS, SettingsCache, _array, adam_hyper, check, disjoint, flag, is_half,
                        q8_params, refused, saved_bfloat16, settings, sgd_hyper, state_dtype, state_dtypes,
                        step_count)
from .rules import RULES, Decay, Decoupled, L2

_STEP_REFUSED = REFUSALS.index("step")
_ADAM_STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_Q8_SCALES = ("exp_avg_scale", "exp_avg_sq_scale")    # 8-bit moments' scales, beside their codes
_refresh = _kernels.refresh

__all__ = ["L2", "Decoupled", "Decay", "SGD", "Adam", "exclude_1d", "ParamGroups"]


class ParamGroups(list):
    """Param groups (what :func:`exclude_1d` returns) that remember the order the params had
    before they were grouped: ``order[k] = (group index, index in the group)`` of param k.  An
    optimizer built from them takes gradients in that order."""

    def __init__(self, groups, order):
        super().__init__(groups)
        self.order = list(order)


class _Optimizer:
    """Param groups, state and state dicts; subclasses name their hyperparameters and state."""

    _defaults = {}     # hyperparameter name -> default
    _adam = False      # which compiled step

    def __init__(self, params, *, stats=False, **hyper):
        unknown = sorted(set(hyper) - set(self._defaults))
        if unknown:
            hint = " (use reg=L2(...), Decoupled(...), Decay(...) or another rule)" if "weight_decay" in unknown else ""
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {unknown}{hint}")
        self.defaults = self._check_hyper(dict(self._defaults, **hyper), "")
        self.param_groups = []
        self.state = []     # per param, in the order of self.params: dict name -> array / count
        self._flat = []     # the params in the order the user gave them; grads and state follow it
        self._slots = ()    # per group, the indices in _flat of its params
        self._group_index = []   # per param in _flat, the index of its group
        self._kept = SettingsCache()
        self._sets = None   # per param in _flat, its group's Settings, as the last step made them
        self._uses_state = self._compensates = self._counts = False
        self._buffer_key = self._plan = None
        self._stats = flag("stats", stats)
        self.stats = None   # with stats=True, the last step's weight statistics (see step)
        if isinstance(params, np.ndarray):
            raise TypeError("params must be a list of arrays or of parameter-group dicts, not one array")
        order = getattr(params, "order", None)
        params = list(params)
        if not params:
            raise ValueError("params is empty: the optimizer has nothing to update")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)
        if order is not None:
            self._reorder(order)

    # -- groups ------------------------------------------------------------------------------
    def add_param_group(self, group):
        """Add a dict with ``params`` and optional per-group overrides of the defaults; its
        params come after all earlier ones in the order of gradients."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a parameter group must be a dict with a 'params' list")
        where = f"param_groups[{len(self.param_groups)}]."
        unknown = set(group) - {"params"} - set(self._defaults)
        if unknown:
            raise ValueError(f"{where[:-1]} has unknown keys {sorted(unknown)}; allowed: {sorted(self._defaults)}")
        params = group["params"]
        params = [params] if isinstance(params, np.ndarray) else list(params)
        seen = {id(p) for p in self._flat}
        for k, p in enumerate(params):
            _array(f"{where}params[{k}]", p, True)
            if id(p) in seen:
                raise ValueError(f"{where}params[{k}] appears in more than one place")
            seen.add(id(p))
        start = len(self._flat)
        disjoint([(f"params[{k}]", p, True) for k, p in enumerate(self._flat + params)])
        hyper = self._check_hyper({**self.defaults, **{k: v for k, v in group.items() if k != "params"}}, where)
        q8_params(f"{where}params", params, hyper["state_dtype"])
        self.param_groups.append({"params": params, **hyper})
        self._flat.extend(params)
        self.state.extend(self._new_state(p, hyper) for p in params)
        self._slots = self._slots + (tuple(range(start, start + len(params))),)
        self._group_index.extend([len(self.param_groups) - 1] * len(params))
        self._sets = None

    def _reorder(self, order):
        """Put the params (and their state) in the order the user gave them before grouping."""
        where = [(i, j) for i, g in enumerate(self.param_groups) for j in range(len(g["params"]))]
        if sorted(order) != where:
            raise ValueError("params.order does not match its groups (was the ParamGroups list changed?)")
        position = {ij: k for k, ij in enumerate(where)}
        flat = [self.param_groups[i]["params"][j] for i, j in order]
        state = [self.state[position[ij]] for ij in order]
        new_index = {ij: k for k, ij in enumerate(order)}
        self._flat, self.state = flat, state
        self._slots = tuple(tuple(new_index[(i, j)] for j in range(len(g["params"])))
                            for i, g in enumerate(self.param_groups))
        self._group_index = [i for i, _ in order]
        self._sets = None

    @property
    def params(self):
        """Every param, in the order the gradients of :meth:`step` follow."""
        return list(self._flat)

    def __getstate__(self):
        return {**self.__dict__, "_sets": None}    # (Settings are compiled afresh)

    # -- step --------------------------------------------------------------------------------
    def step(self, grads):
        """Update every parameter in place from `grads`, one array per param, in the order of
        :attr:`params` (the order the params were given in, also through exclude_1d).  The
        gradient arrays are only read.  Checks everything before touching anything.  With
        ``stats=True`` the step also sets :attr:`stats`, a new float64 array with a row per
        param (in the order of :attr:`params`): ``sum(w**2)``, ``sum(dw**2)`` and the squared
        norm of the rule's part of the step (``l2decay.STATS``), computed in the step's pass."""
        flat, state, adam = self._flat, self.state, self._adam
        if type(grads) is not list:
            if not isinstance(grads, (list, tuple)):
                raise TypeError(f"grads must be a list of arrays, one per param in the order of "
                                f"opt.params, got {type(grads).__name__}")
            grads = list(grads)
        if len(grads) != len(flat):
            raise ValueError(f"grads has {len(grads)} arrays but the optimizer has {len(flat)} params; "
                             f"{self._order_hint()}")
        sets, kept = self._sets, self._kept
        if sets is None or not _refresh(self.param_groups, kept.snapshots, kept.made, *_LR):
            sets = self._settings()
        plan = self._plan
        out = np.empty((len(flat), 3)) if self._stats else None
        if plan is not None and _kernels.state_step(adam, sets, flat, grads, state, *plan, stats=out) is None:
            if out is not None:
                self.stats = out
            return    # (the common case; anything else, a refusal too, takes the general path)
        births, comps, firsts, s2, s3, steps, sc1, sc2 = [], None, None, None, None, None, None, None
        if adam:
            # (8-bit moments are read beside the others: the state decides, loaded or converted too)
            s1, s2, s3, sc1, sc2, steps, absent = _kernels.state_columns(state, _ADAM_STATE + _Q8_SCALES, "step")
            if (self._uses_state and absent[2]) or self._compensates:
                s3, comps, firsts, births = self._gather_state(sets, s1, steps)
            elif not self._uses_state:
                s3 = None
            if absent[3] == len(flat):
                sc1 = sc2 = None
        elif self._uses_state or self._compensates or self._counts:
            s1, comps, steps, firsts, births, sc1 = self._gather_state(sets, None, None)
        else:
            s1 = None
        r = _kernels.step(adam, sets, flat, grads, s1, s2, s3, comps, steps, firsts, None, sc1, sc2, out)
        if r is not None:
            if r[0] == _STEP_REFUSED and steps is not None and any(type(t) is not int for t in steps):
                self._normalize_counts()      # (numpy ints, say: the counts they are)
                return self.step(grads)
            self._refused(r, (flat, grads, s1, s2, s3, comps, None, sc1, sc2))
        _kernels.publish(births)
        if steps is not None:
            _kernels.set_counts(state, "step", steps)
        if out is not None:
            self.stats = out

    def _refused(self, r, lists):
        state = self.state
        entry = lambda k, role: (state[k].get("step") if role == 6 else   # noqa: E731
                                 lists[role][k] if lists[role] is not None else None)
        if r[2] == 1 or r[4] == 1:    # (a gradient: say the order gradients follow)
            try:
                refused(r, self._name, entry)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{exc}; {self._order_hint()}") from None
        refused(r, self._name, entry, counts=True, rounding=self._group_of(r[1])["rounding"])

    def _normalize_counts(self):
        for k, st in enumerate(self.state):
            if "step" in st and type(st["step"]) is not int:
                st["step"] = self._step_count(k, st["step"])

    def _gather_state(self, sets, s1, steps):
        """The state entries of SGD momentum, amsgrad and the roundings other than nearest, with
        what is born in this step (published only after it passes), births as (state dict,
        key, array): Adam's (s3, comps, firsts, births), SGD's (s1, comps, steps, firsts,
        births)."""
        flat, state, adam = self._flat, self.state, self._adam
        m = len(flat)
        s3 = [None] * m if adam else None
        comps = [None] * m
        firsts = None if adam else [False] * m
        births = []
        if not adam:
            s1 = [None] * m
            sc1 = [None] * m
            steps = [0] * m if self._counts else None
        for group, slot in zip(self.param_groups, self._slots):
            if not slot:
                continue
            s = sets[slot[0]]
            key = "velocity" if group.get("momentum_form") == "keras" else "momentum_buffer"
            for k in slot:
                p, st = flat[k], state[k]
                if not isinstance(st, dict):
                    raise TypeError(f"state[{k}] must be a dict, got {type(st).__name__}")
                if not adam and s.uses_state:
                    buf, scale = st.get(key), st.get(key + "_scale")
                    if buf is None and isinstance(p, np.ndarray):
                        if group["state_dtype"] == "8bit":
                            buf, scale = q8.zeros(p.shape)
                            births.append((st, key + "_scale", scale))
                        else:
                            buf = np.empty(p.shape, state_dtype(p, group["state_dtype"]))
                        births.append((st, key, buf))
                        firsts[k] = True
                    s1[k], sc1[k] = buf, scale
                if adam and s.uses_state:
                    x = st.get("max_exp_avg_sq")
                    if x is None and isinstance(p, np.ndarray):
                        x = np.zeros(p.shape, getattr(s1[k], "dtype", p.dtype))
                        births.append((st, "max_exp_avg_sq", x))
                    s3[k] = x
                if group["rounding"] == "compensated":
                    c = st.get("compensation")
                    if c is None and isinstance(p, np.ndarray):
                        c = np.zeros_like(p)
                        births.append((st, "compensation", c))
                    comps[k] = c
                if not adam and steps is not None and (
                        group["rounding"] == "stochastic" or is_half(getattr(p, "dtype", None))):
                    # SGD counts steps only for stochastic rounding's random bits
                    t = st.get("step", 0)
                    steps[k] = t + 1 if type(t) is int else t
        if adam:
            return s3, comps, firsts, births
        return s1, comps, steps, firsts, births, (sc1 if any(x is not None for x in sc1) else None)

    def _step_count(self, k, t):
        if t is None:
            raise ValueError(f"state[{k}] has no 'step'")
        return check("step count", t, f"state[{k}]['step']")

    def _group_of(self, k):
        return self.param_groups[self._group_index[k]]

    def _settings(self):
        """The Settings of every param (in the order of params), each group's compiled again
        only when it changed (l2decay._validate.SettingsCache)."""
        groups, kept = self.param_groups, self._kept
        if len(groups) != len(self._slots):
            raise ValueError(f"param_groups has {len(groups)} groups but the optimizer was "
                             f"given {len(self._slots)}; add groups with add_param_group, never remove them")
        for i, group in enumerate(groups):
            if type(group) is not dict:
                raise TypeError(f"param_groups[{i}] must be a dict, got {type(group).__name__}")
            kept.get(i, group, lambda: self._make_settings(i, group))
        sets = [None] * len(self._flat)
        for i, slot in enumerate(self._slots):
            for k in slot:
                sets[k] = kept.made[i]
        self._sets = sets
        self._uses_state = any(s.uses_state for s in kept.made)
        self._compensates = any(g["rounding"] == "compensated" for g in groups)
        # 8-bit state born: the general path, which reads the scales (8-bit state loaded into
        # another group: state_step refuses its codes, and the general path takes it)
        self._q8 = any(g["state_dtype"] == "8bit" for g in groups)
        # SGD counts steps only for stochastic rounding's random bits
        self._counts = not self._adam and (any(g["rounding"] == "stochastic" for g in groups) or any(
            is_half(p.dtype) for p in self._flat))
        # SGD's common case, read by state_columns: momentum, one form, no rounding that keeps more
        keys = {g.get("momentum_form") for g in groups}
        self._buffer_key = None if (len(keys) != 1 or not self._uses_state or self._compensates or self._counts
                                    or self._adam) else "velocity" if "keras" in keys else "momentum_buffer"
        # the common case in one compiled call (state_step): the state keys it reads, the count
        if self._q8:
            self._plan = None
        elif self._adam:
            self._plan = None if self._compensates else (_ADAM_STATE if self._uses_state else _ADAM_STATE[:2], "step")
        elif self._compensates or self._counts or (self._uses_state and self._buffer_key is None):
            self._plan = None
        else:
            self._plan = ((self._buffer_key,) if self._uses_state else (), None)
        return sets

    def _make_settings(self, i, group):
        params, slot = group.get("params"), self._slots[i]
        if (not isinstance(params, (list, tuple)) or len(params) != len(slot)
                or any(p is not self._flat[k] for p, k in zip(params, slot))):
            raise ValueError(f"param_groups[{i}].params changed after it was added; "
                             f"use add_param_group for new parameters")
        missing = sorted(set(self._defaults) - set(group))
        if missing:
            raise ValueError(f"param_groups[{i}] is missing {missing}")
        return settings(self._adam, self._check_hyper(group, f"param_groups[{i}]."), f"param_groups[{i}].")

    def _name(self, k, role):
        """The name of step()'s entry (k, role) as a user of this optimizer knows it."""
        if role == 0:
            return f"params[{k}]"
        if role == 1:
            return f"grads[{k}]"
        if role == 6:
            return f"state[{k}]['step']"
        if role >= 7:
            return self._name(k, role - 5).replace("']", "_scale']")
        key = self._state_keys[role - 2] if role < 5 else "compensation"
        if key == "momentum_buffer" and self._group_of(k)["momentum_form"] == "keras":
            key = "velocity"
        return f"state[{k}]['{key}']"

    def _order_hint(self):
        shapes = [str(p.shape) for p in self._flat[:8]] + (["..."] if len(self._flat) > 8 else [])
        return f"grads follow the order of opt.params (the order the params were given): {', '.join(shapes)}"

    # -- subclasses --------------------------------------------------------------------------
    def _check_hyper(self, h, where):
        raise NotImplementedError

    def _new_state(self, p, hyper):
        raise NotImplementedError

    _state_arrays = ()      # names of the state arrays a state dict may hold
    _state_required = ()    # ... and must hold

    # -- state dicts -------------------------------------------------------------------------
    def state_dict(self):
        """A flat dict of numpy arrays, numbers and strings, savable with ``np.savez(f, **d)``."""
        d = {"optimizer": type(self).__name__, "num_groups": len(self.param_groups),
             "num_params": len(self._flat)}
        for i, (g, slot) in enumerate(zip(self.param_groups, self._slots)):
            d.update(hyper_entries(g, self._defaults, f"group.{i}."))
            d[f"group.{i}.params"] = np.array(slot, dtype=np.int64)
        for k, st in enumerate(self.state):
            for name, value in st.items():
                if value is not None:
                    d[f"state.{k}.{name}"] = value.copy() if isinstance(value, np.ndarray) else value
        return d

    def load_state_dict(self, d):
        """Restore hyperparameters, step counts and buffers; raises ValueError and changes
        nothing if `d` does not match this optimizer's parameters or is corrupt."""
        try:
            groups, states = self._parse_state(d)
        except KeyError as exc:
            raise ValueError(f"state dict is missing {exc.args[0]!r}") from None
        except (TypeError, OverflowError) as exc:
            raise ValueError(f"state dict is corrupt: {exc}") from None
        for g, hyper in zip(self.param_groups, groups):
            g.update(hyper)
        for st, new in zip(self.state, states):
            st.clear()
            st.update(new)

    def _parse_state(self, d):
        kind = str(np.asarray(d["optimizer"]))
        if kind != type(self).__name__:
            raise ValueError(f"state dict is for {kind}, not {type(self).__name__}")
        for key, have in (("num_groups", len(self.param_groups)), ("num_params", len(self._flat))):
            value = np.asarray(d[key])
            if value.ndim or value.dtype.kind not in "iu" or int(value) != have:
                raise ValueError(f"state dict has {key} {value!r}; this optimizer has {have}")
        groups = []
        for i, slot in enumerate(self._slots):
            pre = f"group.{i}."
            if not np.array_equal(np.asarray(d[pre + "params"]), np.array(slot)):
                raise ValueError(f"state dict group {i} holds other params than this optimizer's group {i}")
            hyper = parse_hyper(d, self._defaults, pre, f"state dict group {i}")
            groups.append(self._check_hyper(hyper, f"state dict group {i}: "))
        prefix = "state."
        names = {}
        for key in d:
            if key.startswith(prefix):
                k, _, name = key[len(prefix):].partition(".")
                if not k.isdigit() or int(k) >= len(self._flat) or name not in self._state_arrays + ("step",):
                    raise ValueError(f"state dict has an unexpected entry {key!r}")
                names.setdefault(int(k), []).append(name)
        states = []
        for k, p in enumerate(self._flat):
            new, first = {}, None
            for name in self._state_required:
                if name not in names.get(k, ()):
                    raise KeyError(f"state.{k}.{name}")
            for name in names.get(k, ()):
                value = np.asarray(d[f"state.{k}.{name}"])
                if name == "step":
                    if value.ndim or value.dtype.kind not in "iu":
                        raise ValueError(f"state dict state.{k}.step must be an int, got {value!r}")
                    new[name] = step_count(f"state dict state.{k}.step", int(value), 0)
                    continue
                if name.endswith("_scale"):
                    if name[:-6] not in names[k]:
                        raise ValueError(f"state dict has state.{k}.{name} but no state.{k}.{name[:-6]}")
                    continue
                if name + "_scale" in names[k] or (first is not None and first == np.uint8):
                    if first is not None and first != np.uint8 or name + "_scale" not in names[k]:
                        raise ValueError(f"state dict state.{k}: a param's state is all 8-bit (codes with "
                                         f"their _scale) or none of it, but {name} is not like the rest")
                    scale = np.asarray(d[f"state.{k}.{name}_scale"])
                    q8.check(f"state dict state.{k}.{name}", value, scale, p.shape)
                    first = np.dtype(np.uint8)
                    new[name] = np.array(value, order="C", copy=True)
                    new[name + "_scale"] = np.array(scale, copy=True)
                    continue
                # the state's dtype: float32 or the param's (state_dtype "param"), one for all
                dtypes = (p.dtype,) if name == "compensation" else (first,) if first else state_dtypes(p)
                value = saved_bfloat16(value, next((t for t in dtypes if t.name == "bfloat16"), None))
                if value.shape != p.shape or value.dtype not in dtypes:
                    want = " or ".join(str(t) for t in dtypes)
                    raise ValueError(f"state dict state.{k}.{name} has shape {value.shape} and dtype "
                                     f"{value.dtype}; it must have {p.shape} and {want}")
                if not np.all(np.isfinite(value)):
                    raise ValueError(f"state dict state.{k}.{name} holds non-finite values")
                if name != "compensation":
                    first = value.dtype
                new[name] = np.array(value, order="C", copy=True)
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
    maximize : bool (step along +g, as torch's)
    reg : None or a rule: L2(lam), Decoupled(lam), Decay(d), Cautious(lam), Corrected(lam, lr_max)
    momentum_form : "torch" (the buffer holds averaged gradients) or "keras" (it holds the
        velocity -lr*g, as Keras and scikit-learn; differs from "torch" under an lr schedule)
    rounding, seed, state_dtype : 16-bit weights, see :class:`Adam`

    State per param: ``momentum_buffer`` ("torch") or ``velocity`` ("keras"), born from the
    gradient of the first step with momentum > 0, as torch's.
    """

    _defaults = {"lr": 0.01, "momentum": 0.0, "dampening": 0.0, "nesterov": False,
                 "maximize": False, "reg": None, "momentum_form": "torch", "rounding": None, "seed": 0,
                 "state_dtype": None}
    _state_arrays = ("momentum_buffer", "velocity", "compensation", "momentum_buffer_scale", "velocity_scale")
    _state_keys = ("momentum_buffer",)
    _keys = SGD_KEYS

    def _check_hyper(self, h, where):
        return sgd_hyper(h, where)

    def _new_state(self, p, hyper):
        return {}


class Adam(_Optimizer):
    """Adam (Kingma & Ba), as torch.optim.Adam; with ``reg=Decoupled(lam)`` it is torch's AdamW.

    Parameters
    ----------
    params : list of arrays, or list of dicts with ``params`` and per-group overrides
    lr : float, >= 0
    betas : (float, float), each in [0, 1)
    eps : float, > 0
    amsgrad : bool (torch's: the running maximum of v is used)
    maximize : bool
    reg : None or a rule: L2(lam), Decoupled(lam), Decay(d), Cautious(lam), Corrected(lam, lr_max)
    eps_form : "torch" (eps added to the bias-corrected sqrt(v)) or "keras" (eps added to
        sqrt(v), the bias correction folded into the step size: Keras, scikit-learn, thinc)
    rounding : None, "nearest", "stochastic" or "compensated"; seed : int >= 0
        How new weights are stored (:func:`l2decay.adam_step`).
    state_dtype : None or "param"
        The dtype new state is born in: None, float32 for bfloat16/float16 params (else the
        param's); "param", each param's own dtype, 16-bit too (half the memory and traffic;
        stored like the weights: rounded stochastically with "stochastic", else to nearest).
        State arrays replaced or loaded may be either; a param's arrays share one dtype.
        Changing a group's state_dtype later leaves existing state as it is (a
        max_exp_avg_sq born later takes the moments' dtype).

    State per param: ``step`` (the steps taken), ``exp_avg``, ``exp_avg_sq`` and, with amsgrad,
    ``max_exp_avg_sq`` (born zero when amsgrad is first on), as torch's.
    """

    _defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False,
                 "maximize": False, "reg": None, "eps_form": "torch", "rounding": None, "seed": 0,
                 "state_dtype": None}
    _adam = True
    _state_arrays = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "compensation") + _Q8_SCALES
    _state_keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _keys = ADAM_KEYS
    _state_required = ("step", "exp_avg", "exp_avg_sq")

    def _check_hyper(self, h, where):
        return adam_hyper(h, where)

    def _new_state(self, p, hyper):
        if hyper["state_dtype"] == "8bit":
            (m, ms), (v, vs) = q8.zeros(p.shape), q8.zeros(p.shape)
            return {"step": 0, "exp_avg": m, "exp_avg_scale": ms, "exp_avg_sq": v, "exp_avg_sq_scale": vs}
        dt = state_dtype(p, hyper["state_dtype"])
        return {"step": 0, "exp_avg": np.zeros(p.shape, dt), "exp_avg_sq": np.zeros(p.shape, dt)}


def hyper_entries(group, keys, pre):
    """A param group's hyperparameters `keys` as state dict entries named `pre` + key: numbers
    and strings only (np.savez and np.load refuse objects), the rule as name and strength."""
    d = {}
    for key in keys:
        if key == "reg":
            reg = group["reg"]
            d[pre + "reg"] = reg.name if reg is not None else "none"
            d[pre + "reg_strength"] = reg.strength if reg is not None else 0.0
            d[pre + "reg_lr_max"] = getattr(reg, "lr_max", None) or 0.0
        elif key in ("rounding", "state_dtype"):   # None (by dtype) as a string
            d[pre + key] = group[key] or "default"
        else:
            d[pre + key] = group[key]
    return d


def parse_hyper(d, keys, pre, where):
    """The hyperparameters `keys` that hyper_entries wrote under `pre` (unchecked: the caller
    checks them); `where` names them in errors."""
    hyper = {}
    for key in keys:
        if key == "reg":
            name = str(np.asarray(d[pre + "reg"]))
            if name == "none":
                hyper["reg"] = None
            elif name not in RULES:
                raise ValueError(f"{where} has unknown reg {name!r}")
            elif name in ("decoupled", "corrected") and float(np.asarray(d[pre + "reg_lr_max"])) != 0.0:
                hyper["reg"] = RULES[name](float(np.asarray(d[pre + "reg_strength"])),
                                           float(np.asarray(d[pre + "reg_lr_max"])))
            else:
                hyper["reg"] = RULES[name](float(np.asarray(d[pre + "reg_strength"])))
        elif key in ("rounding", "state_dtype"):
            # (state dicts saved before state_dtype existed have none: None)
            value = str(np.asarray(d[pre + key])) if key == "rounding" or pre + key in d else "default"
            hyper[key] = None if value == "default" else value
        else:
            value = np.asarray(d[pre + key])
            hyper[key] = tuple(x.item() for x in value) if value.ndim else value.item()
    return hyper


def exclude_1d(params, reg, names=None, *, verbose=True):
    """Parameter groups that apply `reg` to weight matrices only, not to 1-D params (biases).

    Returns ``[{"params": [ndim >= 2], "reg": reg}, {"params": [ndim < 2], "reg": None}]``
    (empty groups left out) as a :class:`ParamGroups`, which remembers the params' order: an
    optimizer built from it takes gradients in the order of `params`.  If `verbose`, prints
    which tensors are regularized.
    """
    params = list(params)
    names = list(names) if names is not None else [f"params[{k}]" for k in range(len(params))]
    if len(names) != len(params):
        raise ValueError(f"names has {len(names)} entries but params has {len(params)}")
    for k, p in enumerate(params):
        _array(f"params[{k}]", p, True)
    on = [k for k, p in enumerate(params) if p.ndim >= 2]
    off = [k for k, p in enumerate(params) if p.ndim < 2]
    parts = [(ks, r) for ks, r in ((on, reg), (off, None)) if ks]
    groups = [{"params": [params[k] for k in ks], "reg": r} for ks, r in parts]
    where = {k: (i, j) for i, (ks, _) in enumerate(parts) for j, k in enumerate(ks)}
    if verbose:
        for label, ks in ((f"regularized with {reg!r}", on), ("not regularized", off)):
            total = sum(params[k].size for k in ks)
            shown = ", ".join(f"{names[k]} {params[k].shape}" for k in ks) or "-"
            print(f"{label}: {len(ks)} tensors, {total:,} weights: {shown}")
    return ParamGroups(groups, [where[k] for k in range(len(params))])


def default_rounding(dtype):
    """The rounding ``rounding=None`` gives weights of `dtype` ("nearest" or the 16-bit default);
    the compiled step decides it, for both front ends."""
    return _kernels.default_rounding(np.dtype(dtype))
