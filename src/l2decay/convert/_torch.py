"""torch.optim's SGD, Adam and AdamW."""

from ._common import (_num, _flag, _args, _name, _not, _schedule_value, _sgd, _adam, _MOMENTUM_BELOW_1, _EPS_POSITIVE,
                      _object, _class_name)
from ._setting import Setting


_TORCH = {
    "sgd": ("SGD", {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                    "nesterov": False, "maximize": False, "foreach": None, "differentiable": False,
                    "fused": None}),
    "adam": ("Adam", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                      "amsgrad": False, "foreach": None, "maximize": False, "capturable": False,
                      "differentiable": False, "fused": None, "decoupled_weight_decay": False}),
    "adamw": ("AdamW", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2,
                        "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                        "differentiable": False, "fused": None}),
}
_UNSET = object()   # from_torch's weight_decay not given positionally




def _torch_object(opt):
    _object("torch.optim", opt, "param_groups", sorted(_TORCH))
    name = _class_name(opt, "torch.optim", _TORCH, "torch.optim.SGD, Adam and AdamW")
    table = _TORCH[name][1]
    groups = opt.param_groups
    differ = sorted(k for k in table if len({repr(g.get(k, table[k])) for g in groups}) > 1)
    if differ:
        raise ValueError(f"the param groups of this {type(opt).__name__} differ in {differ}: convert each "
                         f"group's values by name, from_torch({name!r}, **values), and give l2decay "
                         f"one param group per Setting")
    notes = []
    # an lr scheduler keeps initial_lr in every group, OneCycleLR and CyclicLR the bounds of the
    # momentum they cycle (torch/optim/lr_scheduler.py)
    if any("initial_lr" in g for g in groups):
        notes.append("an lr scheduler is attached to this optimizer: lr is its value now; give each "
                     "step's with set_step(opt, lr=group['lr'])")
    if any("max_momentum" in g for g in groups):
        what = "momentum" if name == "sgd" else "betas"
        notes.append(f"the scheduler cycles {what} too (cycle_momentum): give each step's with "
                     f"set_step(opt, {what}=group[{what!r}])")
    return name, {k: groups[0].get(k, v) for k, v in table.items()}, notes


def _torch_number(peer, name, value):
    """Refuse a schedule or a tensor torch computes in another precision than float64."""
    _schedule_value(peer, name, value)
    dtype = getattr(value, "dtype", None)
    if type(value).__module__.startswith("torch") and dtype is not None and str(dtype) != "torch.float64":
        _not(peer, f"{name} as a {dtype} tensor", f"torch computes the step size in the tensor's dtype, "
             f"l2decay in float64: give {name} as a float (or a float64 tensor)")


def from_torch(optimizer, weight_decay=_UNSET, **kwargs):
    """A torch.optim setting: ``from_torch("adamw", lr=1e-3, weight_decay=0.05)``, torch's
    names and defaults, or a ``torch.optim.SGD``/``Adam``/``AdamW`` object (its param groups
    must agree).  `weight_decay` may also be given as the second positional argument.

    torch/optim/sgd.py ``_single_tensor_sgd``: ``g = g + wd*w``; the buffer ``b = g`` at its
    first step, then ``b = momentum*b + (1 - dampening)*g``; ``g = g + momentum*b`` (nesterov)
    or ``b``; ``w -= lr*g``: l2decay's SGD with ``momentum_form="torch"`` and ``L2(wd)``.

    torch/optim/adam.py ``_single_tensor_adam``: ``g = g + wd*w``, or, with
    ``decoupled_weight_decay=True`` (and in torch/optim/adamw.py ``AdamW``, which sets it),
    ``w *= 1 - lr*wd``; ``m = lerp(m, g, 1-beta1)``, ``v = beta2*v + (1-beta2)*g*g``,
    ``w -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)``: l2decay's Adam with
    ``eps_form="torch"`` and ``L2(wd)`` or ``Decoupled(wd)``.  Defaults carried over: lr 1e-3,
    eps 1e-8, AdamW's weight_decay 1e-2.  torch regularizes every param of a group, biases
    included: ``decay_1d`` is True.

    An optimizer object with an lr scheduler attached gives its values now; the Setting's
    ``notes`` say what ``set_step`` must carry each step (the lr; OneCycleLR's and CyclicLR's
    momentum or betas too).

    Refused: other optimizers (RMSprop, Adagrad, ...: no l2decay counterpart), momentum >= 1,
    dampening outside [0, 1], eps 0, ``capturable``/``differentiable`` (l2decay steps numpy
    arrays, with no CUDA graphs or autograd through the step), a schedule where a number is
    needed, a tensor hyperparameter other than float64 (torch computes the step size in the
    tensor's dtype); ``foreach``/``fused`` are implementation choices of the same update and
    accepted.
    """
    if weight_decay is not _UNSET:
        kwargs["weight_decay"] = weight_decay
    notes = []
    if isinstance(optimizer, str):
        name = _name("torch.optim", optimizer, _TORCH, refused="; torch's others (RMSprop, Adagrad, ...) "
                     "use other updates")
        a = _args(f"torch.optim.{_TORCH[name][0]}", _TORCH[name][1], kwargs)
    else:
        if kwargs:
            raise TypeError("give a torch optimizer object or a name with its arguments, not both")
        name, a, notes = _torch_object(optimizer)
    peer = f"torch.optim.{_TORCH[name][0]}"
    for key in ("lr", "weight_decay", "momentum", "dampening", "betas", "eps"):
        values = a.get(key) if isinstance(a.get(key), (tuple, list)) else [a.get(key)]
        for value in values:
            _torch_number(peer, key, value)
    wd = _num(peer, "weight_decay", a["weight_decay"], low=0.0)
    lr = _num(peer, "lr", a["lr"], low=0.0)
    maximize = _flag(peer, "maximize", a["maximize"])
    for key in ("capturable", "differentiable"):
        if a.get(key) and _flag(peer, key, a[key]):
            _not(peer, f"{key}=True", "l2decay steps numpy arrays in place: no CUDA graph capture and "
                 "no autograd through the step")
    for key in ("foreach", "fused"):
        if a[key] is not None:
            _flag(peer, key, a[key])
    if name == "sgd":
        mu = _num(peer, "momentum", a["momentum"], low=0.0)
        mu = _num(peer, "momentum", mu, high=1.0, high_open=True, why=_MOMENTUM_BELOW_1)
        damp = _num(peer, "dampening", a["dampening"], low=0.0, high=1.0,
                    why="l2decay's SGD takes dampening in [0, 1]")
        nesterov = _flag(peer, "nesterov", a["nesterov"])
        if nesterov and (mu <= 0 or damp != 0):
            raise ValueError(f"nesterov=True with momentum={mu!r}, dampening={damp!r} is refused by "
                             f"{peer} itself: Nesterov momentum requires a momentum and zero dampening")
        hyper = _sgd(lr, mu, nesterov, "torch", damp, maximize)
        reg = "l2"
    else:
        betas = a["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r} ({peer})")
        b1 = _num(peer, "betas[0]", betas[0], low=0.0, high=1.0, high_open=True)
        b2 = _num(peer, "betas[1]", betas[1], low=0.0, high=1.0, high_open=True)
        eps = _num(peer, "eps", a["eps"], low=0.0)
        eps = _num(peer, "eps", eps, low=0.0, low_open=True, why=_EPS_POSITIVE)
        hyper = _adam(lr, b1, b2, eps, "torch", _flag(peer, "amsgrad", a["amsgrad"]), maximize)
        decoupled = name == "adamw" or _flag(peer, "decoupled_weight_decay", a["decoupled_weight_decay"])
        reg = "decoupled" if decoupled else "l2"
    return Setting("torch", "sgd" if name == "sgd" else "adam", hyper,
                   reg if wd else None, wd, None, True, tuple(notes))
