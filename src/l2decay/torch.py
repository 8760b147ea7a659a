"""l2decay's compiled optimizer steps as drop-in ``torch.optim`` optimizers (needs torch).

``SGD``, ``Adam`` and ``AdamW`` take torch's arguments with torch's defaults and meaning
(``weight_decay`` is L2 for SGD and Adam, decoupled for AdamW and for
``Adam(decoupled_weight_decay=True)``), plus ``reg=``, any l2decay rule (``L2``,
``Decoupled``, ``Decay``, ``Cautious``, ``Corrected``), per param group.  They subclass
``torch.optim.Optimizer``, so schedulers, ``state_dict``/``load_state_dict`` (torch's format:
a state dict of ``torch.optim.AdamW`` loads here and the other way round),
DistributedDataParallel and ``ZeroRedundancyOptimizer`` work as with torch's own.

Params: CPU float32/float64/bfloat16/float16, contiguous, updated in place (no copies); params
whose grad is None are skipped.  16-bit params compute in float32 with float32 state (or, with
``state_dtype="param"``, state in their own dtype, as torch's optimizers keep it), and
``rounding=`` ("nearest", "stochastic", "compensated"; None: nearest for float32/float64,
stochastic for 16-bit) and ``seed=`` choose how new weights (and 16-bit state) are stored, as
l2decay.optim's.  A step reads param_groups and state afresh, checks every tensor before it
touches any, and updates all params of all groups in one compiled call.  ``foreach`` and
``fused`` are accepted and change nothing (the step is always one fused pass per tensor);
``capturable`` and ``differentiable`` are refused.  With ``stats=True`` each step records, in
its own pass, ``opt.stats``: for each param it stepped, ``{"w_sq", "dw_sq", "decay_sq"}`` (the
new weights' sum of squares, the step's, its rule's part's; a sharded param's local shard's).

``SparseAdamW`` is torch's ``SparseAdam`` with AdamW's decay, for ``nn.Embedding(sparse=True)``:
the decay of the rows a step does not touch is lazy (l2decay.sparse), applied when an attached
module reads them.
"""
import threading

import numpy as np
import torch

from . import _kernels, q8
from ._validate import (STATS, SettingsCache, adam_hyper, flag as _flag, q8_params, real, refused, reg as _check_reg,
                        rounding_args, settings, sgd_hyper, sparse_hyper, sparse_settings,
                        sparse_step as _check_sparse_step, state_dtype_arg, step_count)
from .rules import L2, Cautious, Corrected, Decay, Decoupled, from_repr

__all__ = ["SGD", "Adam", "AdamW", "SparseAdamW", "L2", "Decoupled", "Decay", "Cautious", "Corrected"]

# The private torch names this module uses, each where torch has no public one
# (tests/test_torch.py::test_private_torch_names fails if an upgrade removes one): whether any
# global or per-optimizer step hook is registered (torch.optim only lets one register them) and
# whether the profiler is on, the reasons to run torch.optim's wrapper of step; and the version bump
# of in-place updates, whose public torch.autograd.graph.increment_version is a Python wrapper
# of it costing a small step a tenth more.
TORCH_PRIVATE = ("torch.optim.optimizer._global_optimizer_pre_hooks",
                 "torch.optim.optimizer._global_optimizer_post_hooks", "torch.autograd._profiler_enabled",
                 "torch.optim.Optimizer._optimizer_step_pre_hooks", "torch.optim.Optimizer._optimizer_step_post_hooks",
                 "torch._C._increment_version")
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks  # noqa: E402
_profiler_enabled = torch.autograd._profiler_enabled
_increment_version = torch._C._increment_version
_HALVES = (torch.bfloat16, torch.float16)
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_ADAM_STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_kernels.register_torch(torch.Tensor, torch.nn.Parameter, torch.float32, torch.float64, torch.bfloat16, torch.float16,
                         torch.uint8)
_UNSET = object()   # weight_decay not given: its torch default, or 0 when reg= is given


def _new_tensor(p, state_dtype, empty=False):
    """Zeros (or, `empty`, uninitialized) like p: float32 for a 16-bit p (whose arithmetic is
    float32) unless `state_dtype` is "param" (a group's choice for its optimizer state; always for
    a compensation buffer), else p's dtype; uint8 codes for "8bit" (their scales: _new_scales).
    A DTensor's is a DTensor, as torch.optim makes it."""
    dtype = torch.uint8 if state_dtype == "8bit" else \
        torch.float32 if state_dtype != "param" and p.dtype in _HALVES else p.dtype
    with torch.no_grad():
        # (in p's memory format: a channels_last param's state is channels_last, as torch's)
        return (torch.empty_like if empty else torch.zeros_like)(p, dtype=dtype, memory_format=torch.preserve_format)


def _new_scales(p):
    """The scales of new 8-bit state of p (l2decay.q8): ones, float32, one per block."""
    return torch.ones(q8.blocks(p.numel()), dtype=torch.float32)


def _local(t):
    """The tensor whose storage a step updates for tensor `t`: a DTensor's local shard
    (torch.distributed.tensor's public to_local(), sharing its storage); any other subclass as
    it is, which the step refuses, naming it."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:     # (torch built without distributed)
        return t
    if isinstance(t, DTensor):
        with torch.no_grad():
            return t.to_local()
    return t


def _shard(t, p, name, at):
    """What the step updates for tensor `t` of param `p` (itself, its grad or a state; None as
    it is): a DTensor's local shard when `t` is laid out as `p` is, on the same mesh with the same
    placements, none of them Partial; then every rank steps the same elements of each, as
    torch's step of the whole does.  Anything else is refused, naming it (`name(at[:2], at[2])`):
    redistributing here would be a collective, which a refusal on one rank would leave the
    others waiting in."""
    if t is None:
        return t
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:     # (torch built without distributed)
        return t
    if isinstance(p, DTensor):
        if t is p:
            if any(x.is_partial() for x in p.placements):
                raise ValueError(f"{name(at[:2], at[2])} is a DTensor placed {tuple(p.placements)}: its local tensor is a partial "
                                 f"sum, not the param; redistribute it to Shard or Replicate placements")
        elif not isinstance(t, DTensor) or t.device_mesh != p.device_mesh or t.placements != p.placements:
            got = f"a {type(t).__name__}" if not isinstance(t, DTensor) else \
                f"placed {tuple(t.placements)} on {t.device_mesh}"
            raise ValueError(f"{name(at[:2], at[2])} must be a DTensor laid out as its param ({tuple(p.placements)} on "
                             f"{p.device_mesh}), got {got}: redistribute it to the param's placements first")
    elif isinstance(t, DTensor):
        raise ValueError(f"{name(at[:2], at[2])} is a DTensor but its param is a {type(p).__name__}: give both as DTensors "
                         f"laid out alike, or neither")
    return _local(t)


def _count(name, t):
    """A state's step count as the plain int the step reads: torch keeps it as a float tensor."""
    if isinstance(t, torch.Tensor) and t.numel() == 1:
        t = t.item()
    if isinstance(t, float) and t.is_integer():
        t = int(t)
    return step_count(name, t, 0)


def _rows_state(t):
    """A copy of tensor t (a SparseAdamW moment) in memory numpy allocated and wrote: numpy asks
    the kernel for huge pages for large arrays, and torch does not, so the random rows of a step
    miss the TLB less.  Written now, so that no page faults in later at a random row."""
    a = np.empty(tuple(t.shape), dtype=t.detach().numpy().dtype)
    a[...] = t.detach().numpy()
    return torch.from_numpy(a)


def _hooked(opt):
    """Whether a step of `opt` has step hooks or the profiler to run: torch.optim.Optimizer's
    wrapper of step (a few us) is skipped when not."""
    return bool(opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks or _global_optimizer_pre_hooks
                or _global_optimizer_post_hooks or _profiler_enabled())


def _as_called(closure):
    """The args of step's call for its hook wrapper: none without a closure, as opt.step() is
    called, so that a step pre-hook's (args, kwargs) may add one as torch's contract allows."""
    return () if closure is None else (closure,)


def _number(value, name, lr=False):
    """A hyperparameter given as a 1-element tensor (torch allows them) as the float it holds:
    a float64 tensor's exactly; a float32 tensor's for `lr` (the step rounds its products in
    float32 as torch's does: Settings(lr_float32=True)); any other tensor refused."""
    if not isinstance(value, torch.Tensor):
        return value
    if value.numel() != 1:
        raise ValueError(f"{name} as a tensor must have 1 element, got shape {tuple(value.shape)}")
    if value.dtype == torch.float64 or (lr and value.dtype == torch.float32):
        return value.item()
    if value.dtype == torch.float32:
        raise ValueError(f"{name} as a torch.float32 tensor: torch computes with it in float32, which l2decay.torch "
                         f"reproduces only for the lr of SGD, Adam and AdamW; give {name} as a float or a float64 tensor")
    raise TypeError(f"{name} must be a float, or a float32 or float64 tensor, got a {value.dtype} tensor")


def _lr_float32(lr):
    return isinstance(lr, torch.Tensor) and lr.dtype == torch.float32


def _stats_by_param(params, out):
    """A step's statistics (rows of `out`, one per param) as {param: {"w_sq", "dw_sq", "decay_sq"}}."""
    return {p: dict(zip(STATS, row)) for p, row in zip(params, out.tolist())}


class _Base(torch.optim.Optimizer):
    """What SGD, Adam and AdamW share: the rule of each group, the step, the state dict."""

    _adam = False

    def __init__(self, params, defaults, weight_decay, default_wd, reg, rounding, seed, state_dtype, stats):
        for flag in ("capturable", "differentiable"):
            if defaults.get(flag, False):
                raise ValueError(f"{flag}=True is not supported by l2decay.torch (CPU steps, no autograd "
                                 f"through the step); use torch.optim for it")
        _check_reg("reg", reg)
        if reg is not None and weight_decay is not _UNSET and weight_decay != 0:
            raise ValueError("give weight_decay or reg, not both (reg=L2(wd) is SGD/Adam's weight_decay, "
                             "reg=Decoupled(wd) AdamW's)")
        defaults["weight_decay"] = (0 if reg is not None else default_wd) if weight_decay is _UNSET else weight_decay
        defaults["reg"] = reg
        defaults["rounding"], defaults["seed"] = rounding_args(rounding, seed)
        defaults["state_dtype"] = state_dtype_arg("state_dtype", state_dtype)
        self._kept = SettingsCache()
        self._plain_groups = self._uses_state = False
        self._lock = threading.Lock()   # one step at a time: a step's gather and publish are not atomic
        self._stats = _flag("stats", stats)
        self.stats = None    # with stats=True: {param: {"w_sq", "dw_sq", "decay_sq"}} of the last step
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        """torch's, refusing a param listed twice in the group (torch.optim warns and steps it
        twice; the step would refuse the pair as sharing memory)."""
        params = param_group.get("params") if isinstance(param_group, dict) else None
        if params is not None and not isinstance(params, (torch.Tensor, set)):
            param_group["params"] = params = list(params)
            where = f"param_groups[{len(getattr(self, 'param_groups', ()))}]."
            first = {}
            for j, p in enumerate(params):
                k = first.setdefault(id(p), j)
                if k != j:
                    raise ValueError(f"{where}params[{j}] is {where}params[{k}] again: a param appears once "
                                     f"in an optimizer (torch.optim warns and steps it twice)")
        super().add_param_group(param_group)

    def __setstate__(self, state):
        super().__setstate__(state)
        self._kept = SettingsCache()
        self._plain_groups = self._uses_state = False
        self._lock = threading.Lock()
        self._stats = state.get("_stats", False)
        self.stats = None
        for group in self.param_groups:   # a state dict from torch's optimizer has no "reg"
            group.setdefault("reg", None)
            group.setdefault("rounding", None)
            group.setdefault("seed", 0)
            for key, value in self.defaults.items():   # (state_dtype too: the optimizer's own)
                if key not in ("reg", "rounding", "seed"):
                    group.setdefault(key, value)

    def _decoupled(self, group):
        return False

    @staticmethod
    def _torch_terms(rule):
        """What torch's class of the same name reads to apply `rule`: its weight_decay (and
        decoupled_weight_decay), or None where it cannot express the rule."""
        return {"weight_decay": rule.strength} if type(rule) is L2 else None

    def _group_rule(self, group, where=""):
        """The group's rule: "reg" if set, else the one its weight_decay means."""
        reg = _check_reg(f"{where}reg", group.get("reg"))
        wd = real(f"{where}weight_decay", _number(group.get("weight_decay", 0), f"{where}weight_decay"))
        if reg is not None:
            if wd:
                raise ValueError(f"{where[:-1] or 'a param group'} has both weight_decay and reg; set one of them")
            return reg
        if not wd:
            return None
        return (Decoupled if self._decoupled(group) else L2)(wd)

    def step(self, closure=None):
        """One step of every param with a grad; returns closure's loss if given one.

        Step hooks (register_step_pre_hook/post_hook) and the profiler's record_function work
        as in torch.optim; without them the step skips their wrapper."""
        if closure is not None or _hooked(self):
            # (the hooks see the call as the user made it: a pre-hook may return new args and kwargs)
            return self._profiled_step(*_as_called(closure)) if _hooked(self) else self._step(closure)
        with self._lock:     # (the common case, _step's without a closure)
            if not self._plain_step():
                self._gather_and_step()

    # torch.optim.Optimizer wraps a subclass's step in its hooks and profiler unless it is
    # marked as wrapped already: step calls that wrapper itself when it has anything to do
    step.hooked = True

    def _step(self, closure=None):
        # (no torch.no_grad() needed: the update is one compiled call, outside autograd)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with self._lock:
            if not self._plain_step():
                self._gather_and_step()
        return loss

    _profiled_step = torch.optim.Optimizer.profile_hook_step(_step)

    def _settings(self, i, group):
        """Group i's compiled Settings, checked afresh when one of its values changed."""
        return self._kept.get(i, group, lambda: self._make_settings(i, group))

    def _make_settings(self, i, group):
        self._plain_groups = False      # (_gather_and_step decides it again)
        where = f"param_groups[{i}]."
        for flag in ("capturable", "differentiable"):
            if group.get(flag):
                raise ValueError(f"{where}{flag}=True is not supported by l2decay.torch")
        rule = self._group_rule(group, where)
        hyper = self._check_group({k: v for k, v in group.items() if k != "params"}, rule, where)
        hyper["reg"] = rule
        hyper["lr_float32"] = _lr_float32(group["lr"])
        hyper["rounding"], hyper["seed"] = rounding_args(group.get("rounding"), group.get("seed", 0), where)
        hyper["state_dtype"] = state_dtype_arg(f"{where}state_dtype", group.get("state_dtype"))
        if hyper["state_dtype"] == "8bit":
            if group.get("amsgrad"):
                raise ValueError(f"{where}state_dtype '8bit' has no amsgrad (its running maximum would be a third "
                                 f"state); set amsgrad=False or another state_dtype")
            q8_params(f"{where}params", group["params"], "8bit")
        hyper["eps_form"] = hyper["momentum_form"] = "torch"
        # (Corrected's lr_max by default; a scheduler copies a tensor lr into it)
        hyper["initial_lr"] = _number(group.get("initial_lr"), f"{where}initial_lr", lr=True)
        return settings(self._adam, hyper, where)

    def _plain_step(self):
        """The step of the common case, gathered with a few compiled passes: every group's
        Settings made before, every param with a grad a plain tensor with its state made, no
        rounding that needs more state.  False, having touched nothing, when the case is not
        that common one (_gather_and_step then gathers each param in turn and words any
        refusal)."""
        groups, kept, adam = self.param_groups, self._kept, self._adam
        if not (kept.current(groups) and self._plain_groups):
            return False
        lists = _kernels.torch_lists(groups, kept.made)
        if lists is None:
            return False
        ps, gs, sets, places = lists
        if not ps:
            return True
        if adam:
            keys, count = (_ADAM_STATE if self._uses_state else _ADAM_STATE[:2]), "step"
        else:
            keys, count = (("momentum_buffer",) if self._uses_state else ()), None
        out = np.empty((len(ps), 3)) if self._stats else None
        if _kernels.state_step(adam, sets, ps, gs, ps, keys, count, self.state, places, out) is not None:
            return False
        _increment_version(ps)
        if out is not None:
            self.stats = _stats_by_param(ps, out)
        return True

    def _gather_and_step(self):
        """Gather every param with a grad, its state (new state made here, kept only if the step
        passes) and its group's Settings into flat lists; one compiled step; then publish."""
        adam, state = self._adam, self.state
        sets, ps, gs, s1, s2, s3, comps, steps, firsts, places, where = [], [], [], [], [], [], [], [], [], [], []
        sc1, sc2 = [], []
        births, owners, owners_p = [], [], []
        place = 0
        for i, group in enumerate(self.param_groups):
            s = self._settings(i, group)
            sdt, rounding = group.get("state_dtype"), group.get("rounding")
            for j, p in enumerate(group["params"]):
                place += 1
                g = p.grad
                if g is None:
                    continue
                st = state[p]
                plain = type(p) in _PLAIN
                if plain and type(g) in _PLAIN:
                    local, lg = p, g
                else:
                    local, lg = _shard(p, p, self._name, (i, j, 0)), _shard(g, p, self._name, (i, j, 1))
                sets.append(s)
                ps.append(local)
                gs.append(lg)
                places.append(place - 1)
                where.append((i, j))
                owners.append(st)
                owners_p.append(p)
                t = st.get("step", 0)
                if type(t) is not int:
                    t = st["step"] = _count(f"state of param_groups[{i}].params[{j}]: step", t)
                if sdt == "8bit" and not plain:
                    raise ValueError(f"param_groups[{i}].params[{j}] is a {type(p).__name__}: state_dtype '8bit' is "
                                     f"for plain tensors (its scales follow the tensor's blocks, not its shards)")
                if adam:
                    if not st:
                        m, v = _new_tensor(p, sdt), _new_tensor(p, sdt)
                        births += [(st, "step", 0), (st, "exp_avg", m), (st, "exp_avg_sq", v)]
                        if sdt == "8bit":
                            births += [(st, "exp_avg_scale", _new_scales(p)), (st, "exp_avg_sq_scale", _new_scales(p))]
                            sc1.append(births[-2][2])
                            sc2.append(births[-1][2])
                        else:
                            sc1.append(None)
                            sc2.append(None)
                    else:
                        m, v = st.get("exp_avg"), st.get("exp_avg_sq")
                        sc1.append(st.get("exp_avg_scale"))
                        sc2.append(st.get("exp_avg_sq_scale"))
                    s1.append(m if plain and type(m) in _PLAIN else _shard(m, p, self._name, (i, j, 2)))
                    s2.append(v if plain and type(v) in _PLAIN else _shard(v, p, self._name, (i, j, 3)))
                    x = None
                    if s.uses_state:
                        x = st.get("max_exp_avg_sq")
                        if x is None:
                            x = _new_tensor(p, "param" if m is not None and m.dtype == p.dtype else None)
                            births.append((st, "max_exp_avg_sq", x))
                        x = x if plain and type(x) in _PLAIN else _shard(x, p, self._name, (i, j, 4))
                    s3.append(x)
                    steps.append(t + 1)
                else:
                    b, first, q = None, False, None
                    if s.uses_state:
                        b, q = st.get("momentum_buffer"), st.get("momentum_buffer_scale")
                        if b is None:
                            b, first = _new_tensor(p, sdt, empty=True), True
                            births.append((st, "momentum_buffer", b))
                            if sdt == "8bit":
                                q = _new_scales(p)
                                births.append((st, "momentum_buffer_scale", q))
                        b = b if plain and type(b) in _PLAIN else _shard(b, p, self._name, (i, j, 2))
                    s1.append(b)
                    sc1.append(q)
                    firsts.append(first)
                    # SGD counts steps only for stochastic rounding's random bits
                    steps.append(t + 1 if rounding == "stochastic" or (rounding is None and p.dtype in _HALVES)
                                 else 0)
                c = None
                if rounding == "compensated":
                    c = st.get("compensation")
                    if c is None:
                        c = _new_tensor(p, "param")
                        births.append((st, "compensation", c))
                    c = c if plain and type(c) in _PLAIN else _shard(c, p, self._name, (i, j, 5))
                comps.append(c)
        if not ps:
            return
        q8 = any(x is not None for x in sc1)
        out = np.empty((len(ps), 3)) if self._stats else None
        r = _kernels.step(adam, sets, ps, gs, s1, s2 if adam else None, s3 if adam else None, comps, steps,
                          None if adam else firsts, places, sc1 if q8 else None, sc2 if q8 and adam else None, out)
        if r is not None:
            lists = (ps, gs, s1, s2, s3, comps, None, sc1, sc2 if adam else None)
            refused(r, lambda k, role: self._name(where[k], role),
                    lambda k, role: (self.state[owners_p[k]].get("step") if role == 6 else
                                     lists[role][k] if lists[role] is not None and k < len(lists[role]) else None),
                    torch=True,
                    counts=True, rounding=self.param_groups[where[r[1]][0]].get("rounding"))
        _kernels.publish(births)
        _kernels.set_counts(owners, "step", steps)
        # in-place updates as torch's own: autograd sees the params changed
        _increment_version(ps)
        if out is not None:
            self.stats = _stats_by_param(owners_p, out)
        self._uses_state = any(s.uses_state for s in self._kept.made)
        # (the common case of _plain_step: plain params, no rounding that keeps more state)
        self._plain_groups = all(g.get("rounding") in (None, "nearest") and g.get("state_dtype") != "8bit" and all(
            type(p) in _PLAIN and p.dtype not in _HALVES for p in g["params"]) for g in self.param_groups)

    def _name(self, ij, role):
        """The name of step()'s entry `role` of param ij = (group, index) in torch's terms."""
        name = f"param_groups[{ij[0]}].params[{ij[1]}]"
        if role == 0:
            return name
        if role == 1:
            return f"{name}.grad"
        if role >= 7:
            return self._name(ij, role - 5) + "_scale"
        key = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")[role - 2] if self._adam and role < 5 else \
            "momentum_buffer" if role < 5 else "compensation" if role == 5 else "step"
        return f"state of {name}: {key}"

    def state_dict(self):
        """torch's format: step counts as float32 tensors, as torch.optim's own, and every group's
        rule as a string, its repr (``"Decoupled(0.01)"``: one value, which
        torch.distributed.checkpoint loads whatever rule the loading optimizer holds), so that
        ``torch.load(weights_only=True)`` reads it with no allow-listing; where torch's class
        can express the rule (L2 on SGD and Adam, Decoupled on Adam and AdamW), the group's
        ``weight_decay`` (and ``decoupled_weight_decay``) say it too, so torch.optim resumes the
        same training; else ``weight_decay`` is 0 (Decay, and Decoupled with lr_max, have no
        torch counterpart)."""
        sd = super().state_dict()
        sd["state"] = {k: {name: (torch.tensor(float(v), dtype=torch.float32) if name == "step" else v)
                           for name, v in s.items()} for k, s in sd["state"].items()}
        for group in sd["param_groups"]:         # (copies: torch packs each group anew)
            rule = group.get("reg")
            if rule is None:
                continue
            group["reg"] = repr(rule)       # exact: a float's repr reads back as the same float
            group["weight_decay"] = 0.0
            for key, value in (self._torch_terms(rule) or {}).items():
                group[key] = value
        return sd

    def load_state_dict(self, state_dict):
        """torch's, except that a bfloat16/float16 param's optimizer state is loaded as float32
        (torch casts it to the param's dtype) unless the param's group has state_dtype "param":
        l2decay's own checkpoints resume exactly, and torch's (moments in the param's dtype)
        continue with float32 moments, or exactly as saved with state_dtype "param".  As
        l2decay.optim's, it refuses, changing nothing, a state that lacks what the step needs or
        holds non-finite values."""
        required = ("step", "exp_avg", "exp_avg_sq") if self._adam else ()
        groups = []
        for i, group in enumerate(state_dict.get("param_groups", ())):
            saved = group.get("reg") if isinstance(group, dict) else None
            try:
                rule = from_repr(saved)
            except ValueError as exc:
                raise ValueError(f"state dict: param_groups[{i}].reg {saved!r}: {exc}") from None
            if rule is not None:
                # a rule saved as its repr: the rule again, and weight_decay 0 as it was beside it
                # (anything else is left to the step, which refuses a bad group in its own words)
                group = dict(group, reg=rule, weight_decay=0.0)
            groups.append(group)
        state_dict = dict(state_dict, param_groups=groups)
        ours = [p for g in self.param_groups for p in g["params"]]
        saved = [i for g in groups if isinstance(g, dict) for i in g.get("params", ())]
        param_of = dict(zip(saved, ours)) if len(saved) == len(ours) else {}
        for pid, st in state_dict.get("state", {}).items():
            for key in required if st else ():
                if key not in st:
                    raise ValueError(f"state dict: state of param {pid} has no {key!r}")
            for key in [k for k in st if k.endswith("_scale")] if pid in param_of else ():
                codes, scales = st.get(key[:-6]), st[key]
                if not (torch.is_tensor(codes) and torch.is_tensor(scales)):
                    raise TypeError(f"state dict: state of param {pid}: {key[:-6]} and {key} must be tensors")
                q8.check(f"state dict: state of param {pid}: {key[:-6]}", codes.detach().cpu().numpy(),
                         scales.detach().cpu().numpy(), tuple(param_of[pid].shape))
            for key, value in st.items():
                value = _local(value) if torch.is_tensor(value) and type(value) not in _PLAIN else value
                if (key != "step" and torch.is_tensor(value) and value.is_floating_point()
                        and not bool(torch.isfinite(value).all())):
                    raise ValueError(f"state dict: state of param {pid}: {key} holds non-finite values")
        super().load_state_dict(state_dict)
        saved = [i for g in state_dict["param_groups"] for i in g["params"]]
        in_group = [(p, g) for g in self.param_groups for p in g["params"]]
        for pid, (p, group) in zip(saved, in_group):
            for key, value in state_dict["state"].get(pid, {}).items():
                # 8-bit state as saved: torch cast its codes and scales to the param's dtype
                if key.endswith("_scale") or (key + "_scale") in state_dict["state"][pid]:
                    self.state[p][key] = value.detach().to(device=p.device, copy=True)
            # (with state_dtype "param", torch's cast to the param's dtype is what is wanted)
            if p.dtype not in _HALVES or p not in self.state or group.get("state_dtype") == "param":
                continue
            for key, value in state_dict["state"].get(pid, {}).items():
                # (the compensation buffer is in the param's dtype, as torch casts it)
                if key not in ("step", "compensation") and torch.is_tensor(value) and value.is_floating_point():
                    self.state[p][key] = value.to(device=p.device, dtype=torch.float32, copy=True)


class SGD(_Base):
    """torch.optim.SGD, on l2decay's compiled step; ``weight_decay`` is ``L2(weight_decay)``."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=_UNSET, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None, reg=None, rounding=None, seed=0,
                 state_dtype=None, stats=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        self._check_group({**defaults, "weight_decay": 0 if weight_decay is _UNSET else weight_decay},
                          reg, "")
        super().__init__(params, defaults, weight_decay, 0, reg, rounding, seed, state_dtype, stats)

    @staticmethod
    def _check_group(h, reg, where):
        out = sgd_hyper({"lr": _number(h["lr"], f"{where}lr", True), "momentum": h["momentum"], "dampening": h["dampening"],
                         "nesterov": h["nesterov"], "maximize": h["maximize"], "reg": reg,
                         "momentum_form": "torch"}, where)
        if reg is None:
            real(f"{where}weight_decay", _number(h.get("weight_decay", 0), f"{where}weight_decay"))
        return {k: out[k] for k in ("lr", "momentum", "dampening", "nesterov", "maximize")}


class Adam(_Base):
    """torch.optim.Adam on l2decay's compiled step; ``weight_decay`` is ``L2(weight_decay)``, or
    ``Decoupled(weight_decay)`` with ``decoupled_weight_decay=True`` (torch's AdamW)."""

    _adam = True
    _default_wd = 0

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=_UNSET, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False, reg=None, rounding=None, seed=0, state_dtype=None, stats=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        wd = self._default_wd if weight_decay is _UNSET else weight_decay
        self._check_group({**defaults, "weight_decay": wd}, reg, "")
        super().__init__(params, defaults, weight_decay, self._default_wd, reg, rounding, seed, state_dtype, stats)

    def _decoupled(self, group):
        return bool(group.get("decoupled_weight_decay", False))

    @staticmethod
    def _torch_terms(rule):
        if type(rule) is L2:
            return {"weight_decay": rule.strength, "decoupled_weight_decay": False}
        if type(rule) is Decoupled and rule.lr_max is None:
            return {"weight_decay": rule.strength, "decoupled_weight_decay": True}
        return None

    @staticmethod
    def _check_group(h, reg, where):
        betas = h["betas"]
        if isinstance(betas, (tuple, list)):
            betas = tuple(_number(b, f"{where}betas[{i}]") for i, b in enumerate(betas))
        out = adam_hyper({"lr": _number(h["lr"], f"{where}lr", True), "betas": betas, "eps": h["eps"], "amsgrad": h["amsgrad"],
                          "maximize": h["maximize"], "reg": reg, "eps_form": "torch"}, where)
        if reg is None:
            real(f"{where}weight_decay", _number(h.get("weight_decay", 0), f"{where}weight_decay"))
        return {k: out[k] for k in ("lr", "betas", "eps", "amsgrad", "maximize")}


class AdamW(Adam):
    """torch.optim.AdamW on l2decay's compiled step: ``weight_decay`` (default 1e-2) is
    ``Decoupled(weight_decay)``."""

    _default_wd = 1e-2

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=_UNSET, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None, reg=None,
                 rounding=None, seed=0, state_dtype=None, stats=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         foreach=foreach, maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused, decoupled_weight_decay=True, reg=reg,
                         rounding=rounding, seed=seed, state_dtype=state_dtype, stats=stats)


class SparseAdamW(torch.optim.Optimizer):
    """torch.optim.SparseAdam with AdamW's decoupled weight decay, for the sparse gradients of
    ``nn.Embedding(sparse=True)`` and ``nn.EmbeddingBag(sparse=True)``, in O(rows touched) per
    step: a step is SparseAdam's on the rows in the gradient, plus ``w *= 1 - lr*weight_decay``
    on every row, done lazily (l2decay.sparse explains how).

    A row's decay is applied when something reads it, so every reader must go through the
    optimizer: ``attach(module)`` hooks the module that reads the param as its ``weight``.
    Before each forward the rows of its input are brought up to date (O(rows read)), so the
    forward computes with the true weights, and ``module.state_dict()`` (and this optimizer's
    ``state_dict()``) first bring every row up to date (O(table)): checkpoints hold true weights.
    ``flush()`` does the same before any other read of ``weight`` (a weight tied to another
    layer, say).  A step refuses a param with weight_decay > 0 that no attached module reads.

    Arguments are torch.optim.SparseAdam's (lr, betas, eps, maximize) and ``weight_decay``
    (AdamW's default 1e-2; lr*weight_decay < 1).  Params: 2-D CPU float32/float64 tables with
    sparse gradients of whole rows.  State: SparseAdam's (``step``, one count per table,
    ``exp_avg``, ``exp_avg_sq``), so state dicts move between the two classes.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, maximize=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        self._hyper = {}      # id(group) -> its hyperparameter values and what _group_reg made of them
        self._group_reg(defaults, "")
        super().__init__(params, defaults)
        self._lazy = {}       # param -> [row_scale (numpy float64, one per row), scale]
        self._readers = {}    # param -> the hook handles of the modules attached to read it

    _KEYS = ("lr", "betas", "eps", "weight_decay", "maximize")

    def _group_reg(self, group, where):
        """The group's hyperparameters for the kernel (lr, betas, eps, maximize, reg: the rule
        Decoupled(weight_decay), or None), checked; kept while the group holds the same
        immutable values (a scheduler's new lr is checked afresh; a list or tensor always)."""
        values = tuple(group[k] for k in self._KEYS)
        kept = self._hyper.get(id(group))
        if kept is not None and all(a is b for a, b in zip(kept[0], values)):
            return kept[1]
        lr, betas, eps, wd, maximize = values
        wd = real(f"{where}weight_decay", _number(wd, f"{where}weight_decay"))
        hyper = sparse_hyper(True, {"lr": _number(lr, f"{where}lr"), "eps": _number(eps, f"{where}eps"),
                                    "maximize": maximize, "reg": Decoupled(wd) if wd else None,
                                    "betas": tuple(_number(b, f"{where}betas[{i}]") for i, b in enumerate(betas))
                                    if isinstance(betas, (tuple, list))
                                    else betas}, where)
        if all(type(x) in (float, int, bool) for x in values[:1] + values[2:]) and type(betas) is tuple \
                and all(type(b) in (float, int) for b in betas):
            self._hyper[id(group)] = (values, hyper)   # (the same values in another group: the same hyper)
        return hyper

    def _settings_of(self, hyper):
        """The compiled Settings of `hyper` (what _group_reg made), made once per such dict."""
        s = hyper.get("settings")
        if s is None:
            s = hyper["settings"] = sparse_settings(True, {k: v for k, v in hyper.items() if k != "settings"})
        return s

    def attach(self, *modules):
        """Hook each module (nn.Embedding, nn.EmbeddingBag: one whose ``weight`` is a param of
        this optimizer, read by its forward at the rows of its first argument): its forward
        reads rows brought up to date, its ``state_dict()`` the whole table, and its
        ``load_state_dict()`` restarts the lazy decay from the loaded weights.  Returns self."""
        params = [p for group in self.param_groups for p in group["params"]]
        for module in modules:
            p = getattr(module, "weight", None)
            if not any(p is q for q in params):
                raise ValueError(f"{type(module).__name__}.weight is not a param of this optimizer; attach the "
                                 f"modules whose weight it updates")
            self._readers.setdefault(p, []).extend([
                module.register_forward_pre_hook(self._reader(p)),
                module.register_state_dict_pre_hook(lambda *_: self.flush()),
                module.register_load_state_dict_post_hook(self._loaded(p)),
            ])
        return self

    def _pending(self, p, lazy):
        """Whether p has a decay pending on rows not read since; refuses a table whose dtype
        changed meanwhile (module.half(), say): its pending decay cannot be applied."""
        if lazy[1] == 1.0:
            return False
        if p.dtype not in (torch.float32, torch.float64):
            name = next((f"param_groups[{i}].params[{j}]" for i, g in enumerate(self.param_groups)
                         for j, q in enumerate(g["params"]) if q is p), "a param")
            raise TypeError(f"{name} is {p.dtype} now, with weight decay pending on the rows not read since "
                            f"its last step: SparseAdamW keeps float32 or float64 tables; call opt.flush() "
                            f"before changing a table's dtype (module.half(), module.to(...))")
        return True

    def _reader(self, p):
        def catch_up(module, args):
            lazy = self._lazy.get(p)
            rows = args[0] if args else None
            if lazy is None or not self._pending(p, lazy) or not isinstance(rows, torch.Tensor):
                return
            try:
                changed = _kernels.sparse_catch_up(p.detach().numpy(), lazy[0], lazy[1],
                                                   rows.detach().reshape(-1).contiguous().numpy())
            except (TypeError, ValueError, RuntimeError):
                return    # indices the module refuses: its own forward says so
            if changed:
                _increment_version([p])
        return catch_up

    def _loaded(self, p):
        def restart(module, incompatible_keys):
            lazy = self._lazy.get(p)
            if lazy is not None:
                lazy[0].fill(1.0)
                lazy[1] = 1.0
        return restart

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:   # a state dict from torch's SparseAdam has no weight_decay
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    def flush(self):
        """Bring every row of every param up to date, so that each ``weight`` holds the true
        weights: O(rows * columns) per param that has decayed since the last flush."""
        pending = [(p, lazy) for p, lazy in self._lazy.items() if self._pending(p, lazy)]
        for p, lazy in pending:       # (every table checked before any is changed)
            _kernels.sparse_catch_up(p.detach().numpy(), lazy[0], lazy[1])
            lazy[1] = 1.0
            _increment_version([p])

    def state_dict(self):
        """torch's format (SparseAdam's state), after flush(): with the module's own
        state_dict(), which flushes too, a checkpoint holds the true weights."""
        self.flush()
        return super().state_dict()

    def load_state_dict(self, state_dict):
        """torch's, after flush() (the params keep their true weights and the lazy decay
        restarts from them)."""
        self.flush()
        super().load_state_dict(state_dict)
        for st in self.state.values():      # (torch made them: moved to huge pages)
            for key in ("exp_avg", "exp_avg_sq"):
                t = st.get(key)
                if (isinstance(t, torch.Tensor) and t.layout is torch.strided and t.is_cpu
                        and t.dtype in (torch.float32, torch.float64)):   # (anything else: step() words it)
                    st[key] = _rows_state(t)

    @staticmethod
    def _check_tensor(name, t, like=None):
        """A table (or, `like` its table, a moment) SparseAdamW steps: a dense CPU float tensor."""
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.layout is not torch.strided:
            raise TypeError(f"{name} is {t.layout}: SparseAdamW's tables and their state are dense tensors")
        if not t.is_cpu:
            raise ValueError(f"{name} is on {t.device}: l2decay.torch updates CPU tensors only")
        if t.dtype not in (torch.float32, torch.float64) + _HALVES:
            raise TypeError(f"{name} has dtype {t.dtype}: l2decay.torch takes float32, float64, bfloat16 "
                            f"or float16")
        if like is not None and t.dtype != like.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but its param ({like.dtype}) needs {like.dtype}")
        if like is not None and t.shape != like.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)} but its param has {tuple(like.shape)}")
        if not t.is_contiguous():
            raise ValueError(f"{name} is not contiguous: SparseAdamW steps rows of contiguous tables in place "
                             f"and never copies")

    def _grad_rows(self, name, p):
        """The indices and values of p's sparse gradient as numpy arrays, p checked."""
        self._check_tensor(name, p)
        grad = p.grad
        if not isinstance(grad, torch.Tensor) or grad.layout is not torch.sparse_coo:
            raise TypeError(f"{name}.grad is not a sparse tensor: SparseAdamW takes the sparse gradients of "
                            f"nn.Embedding(sparse=True) or nn.EmbeddingBag(sparse=True); use "
                            f"l2decay.torch.AdamW for dense ones")
        if p.dtype not in (torch.float32, torch.float64) or p.ndim != 2:
            raise TypeError(f"{name} is {p.dtype} of shape {tuple(p.shape)}: SparseAdamW takes 2-D float32 or "
                            f"float64 tables")
        if grad.sparse_dim() != 1 or grad.dense_dim() != 1 or grad.shape != p.shape:
            raise ValueError(f"{name}.grad must hold whole rows of the table (sparse_dim 1, dense_dim 1, "
                             f"shape {tuple(p.shape)})")
        return grad._indices()[0].numpy(), grad._values().detach().contiguous().numpy()

    def step(self, closure=None):
        """One step of every param with a gradient; returns closure's loss if given one.
        Checks every param, gradient and group before updating any.  Step hooks and the
        profiler work as in torch.optim; without them the step skips their wrapper."""
        if _hooked(self):
            return self._profiled_step(*_as_called(closure))
        return self._step(closure)

    step.hooked = True    # (as _Base.step)

    def _step(self, closure=None):
        # (no torch.no_grad() needed: the update is compiled calls on numpy views, outside autograd)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        todo = self._plain_todo()
        if todo is None or not self._steps(todo, fast=True):
            self._steps(self._checked_todo(), fast=False)
        return loss

    def _plain_todo(self):
        """What a step updates, when every param with a grad is in the common case (its
        group's hyperparameters checked before, its state and lazy scales made, its sparse
        gradient of one sparse dimension, all viewable as numpy arrays); else None.  The
        kernel checks the arrays; anything it refuses goes through _checked_todo, which words
        the error in torch's terms."""
        todo = []
        for group in self.param_groups:
            kept = self._hyper.get(id(group))
            if kept is None or not all(a is group[k] for a, k in zip(kept[0], self._KEYS)):
                return None
            hyper = kept[1]
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                st, lazy = self.state.get(p), self._lazy.get(p)
                if (not st or lazy is None or type(st["step"]) is not int or grad.layout is not torch.sparse_coo
                        or (hyper["reg"] is not None and p not in self._readers)):
                    return None
                try:
                    idx = grad._indices()
                    if idx.shape[0] != 1 or not p.is_cpu:
                        return None
                    todo.append((p.detach().numpy(), idx.numpy()[0], grad._values().numpy(), lazy,
                                 st["exp_avg"].numpy(), st["exp_avg_sq"].numpy(), st, hyper, p))
                except (TypeError, ValueError, RuntimeError):
                    return None
        return todo

    def _checked_todo(self):
        """What a step updates, every param, gradient, state and group checked with worded
        errors, state and lazy scales made where missing."""
        todo = []
        for i, group in enumerate(self.param_groups):
            where = f"param_groups[{i}]."
            hyper = self._group_reg(group, where)
            for j, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                name = f"{where}params[{j}]"
                rows, values = self._grad_rows(name, p)
                if hyper["reg"] is not None and p not in self._readers:
                    raise ValueError(f"{name} decays lazily (weight_decay {hyper['reg'].strength}): attach the "
                                     f"module that reads it, opt.attach(embedding), so that its forward reads "
                                     f"decayed rows")
                st = self.state[p]
                if not st:
                    zero = torch.zeros((), dtype=p.dtype).expand(p.shape)
                    st.update(step=0, exp_avg=_rows_state(zero), exp_avg_sq=_rows_state(zero))
                st["step"] = _count(f"state of {name}: step", st["step"])
                for key in ("exp_avg", "exp_avg_sq"):
                    self._check_tensor(f"state of {name}: {key}", st[key], like=p)
                lazy = self._lazy.get(p)
                if lazy is None:
                    lazy = self._lazy[p] = [torch.ones(p.shape[0], dtype=torch.float64).numpy(), 1.0]
                todo.append((p.detach().numpy(), rows, values, lazy, st["exp_avg"].numpy(),
                             st["exp_avg_sq"].numpy(), st, hyper, p))
        return todo

    def _steps(self, todo, fast):
        """The kernel's step of each entry of `todo`, every entry checked before any is updated
        (the kernel checks one before updating it).  `fast`: a refusal returns False, with
        nothing modified; else it raises."""
        if len(todo) > 1:
            try:
                for table, rows, values, lazy, m, v, st, hyper, p in todo:
                    _check_sparse_step(table, rows, values, lazy[0], lazy[1], m, v, step=st["step"] + 1)
            except (TypeError, ValueError):
                if fast:
                    return False
                raise
        for table, rows, values, lazy, m, v, st, hyper, p in todo:
            try:
                lazy[1] = _kernels.sparse_step(table, rows, values, lazy[0], lazy[1], m, v, step=st["step"] + 1,
                                               settings=self._settings_of(hyper))
            except (TypeError, ValueError):
                if fast and len(todo) == 1:      # (checked all, changed nothing)
                    return False
                raise
            st["step"] += 1
        _increment_version([p for *_, p in todo])
        return True

    _profiled_step = torch.optim.Optimizer.profile_hook_step(_step)
