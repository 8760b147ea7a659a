"""l2decay.torch against torch.optim itself: every option, state dicts both ways, schedulers,
autograd's version counters, bad input.  Skipped when torch is not installed."""
import copy
import importlib
import io
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import l2decay.torch as lt  # noqa: E402
from l2decay import Cautious, Corrected, Decay, Decoupled, L2  # noqa: E402

SHAPES = [(7, 5), (5,), (1,), (300,)]
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-13), torch.float32: dict(rtol=1e-6, atol=1e-6)}


class Problem:
    """A quadratic per tensor: grad = A @ w - b with A symmetric positive definite, so runs
    converge and a last-bit difference (torch's fused multiply-adds round once where ours
    round twice) shrinks instead of growing."""

    def __init__(self, dtype, seed=0, shapes=SHAPES):
        g = torch.Generator().manual_seed(seed)
        self.w0 = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes]
        ms = [torch.randn(w.numel(), w.numel(), generator=g, dtype=torch.float64) for w in self.w0]
        self.A = [(m @ m.T / w.numel() + torch.eye(w.numel(), dtype=torch.float64)).to(dtype)
                  for m, w in zip(ms, self.w0)]
        self.b = [torch.randn(w.numel(), generator=g, dtype=torch.float64).to(dtype) for w in self.w0]

    def params(self):
        return [torch.nn.Parameter(w.clone()) for w in self.w0]

    def set_grads(self, params, sign=1.0):
        with torch.no_grad():
            for A, b, p in zip(self.A, self.b, params):
                p.grad = sign * (A @ p.reshape(-1) - b).reshape(p.shape)


def run(problem, opt, params, steps, scheduler=None):
    # with maximize the gradient is negated, so the run still converges (an ascent would
    # amplify torch's fused multiply-adds, one rounding apart from ours, without bound)
    sign = -1.0 if opt.defaults.get("maximize") else 1.0
    for _ in range(steps):
        problem.set_grads(params, sign)
        opt.step()
        if scheduler is not None:
            scheduler.step()


def assert_close(a, b, dtype):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.detach().numpy(), y.detach().numpy(), **TOL[dtype])


SGD_OPTIONS = [dict(momentum=m, dampening=d, nesterov=n, maximize=x, weight_decay=wd)
               for m, d, n, x, wd in itertools.product((0.0, 0.9), (0.0, 0.3), (False, True), (False, True), (0.0, 1e-2))
               if not (n and (m == 0 or d != 0))]
ADAM_OPTIONS = [dict(amsgrad=a, maximize=x, weight_decay=wd, decoupled_weight_decay=dec)
                for a, x, wd, dec in itertools.product((False, True), (False, True), (0.0, 1e-2), (False, True))]
ADAMW_OPTIONS = [dict(amsgrad=a, maximize=x, weight_decay=wd)
                 for a, x, wd in itertools.product((False, True), (False, True), (0.0, 1e-2))]
PARITY = ([("SGD", o) for o in SGD_OPTIONS] + [("Adam", o) for o in ADAM_OPTIONS]
          + [("AdamW", o) for o in ADAMW_OPTIONS])


def _decoupled(name, options):
    return options.get("weight_decay") and (name == "AdamW" or options.get("decoupled_weight_decay"))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name,options", PARITY, ids=[f"{n}-{o}" for n, o in PARITY])
def test_each_class_equals_torchs_over_200_steps(name, options, dtype):
    problem = Problem(dtype)
    lr = 0.01 if name == "SGD" else 1e-3
    mine, theirs = problem.params(), problem.params()
    run(problem, getattr(lt, name)(mine, lr=lr, **options), mine, 200)
    run(problem, getattr(torch.optim, name)(theirs, lr=lr, **options), theirs, 200)
    if dtype == torch.float32 and _decoupled(name, options):
        # torch decays by w*float32(1 - lr*wd), here 1e-5 off by 0.14%; l2decay by w - (lr*wd)*w.
        # The exact run (float64) decides: l2decay's float32 run must be at least as close to it.
        exact = Problem(torch.float64)
        exact.w0, exact.A, exact.b = ([x.double() for x in xs] for xs in (problem.w0, problem.A, problem.b))
        ref = exact.params()
        run(exact, getattr(torch.optim, name)(ref, lr=lr, **options), ref, 200)
        err = lambda ps: max((p.detach().double() - r.detach()).abs().max().item() for p, r in zip(ps, ref))  # noqa: E731
        assert err(mine) <= err(theirs), (err(mine), err(theirs))
        return
    assert_close(mine, theirs, dtype)


def test_defaults_are_torchs():
    p = [torch.nn.Parameter(torch.ones(2))]
    for name in ("SGD", "Adam", "AdamW"):
        ours, theirs = getattr(lt, name)(p).defaults, getattr(torch.optim, name)(p).defaults
        assert {k: v for k, v in ours.items() if k not in ("reg", "rounding", "seed", "state_dtype")} == theirs
        assert ours["reg"] is None and ours["rounding"] is None and ours["seed"] == 0 and ours["state_dtype"] is None


@pytest.mark.parametrize("reg,torch_name,torch_kw", [
    (L2(0.05), "SGD", dict(weight_decay=0.05)),
    (Decoupled(0.05), "AdamW", dict(weight_decay=0.05)),
])
def test_reg_equals_the_torch_setting_it_names(reg, torch_name, torch_kw):
    problem = Problem(torch.float64)
    mine, theirs = problem.params(), problem.params()
    cls = lt.SGD if torch_name == "SGD" else lt.Adam
    run(problem, cls(mine, lr=0.01, momentum=0.9, reg=reg) if cls is lt.SGD else cls(mine, lr=0.01, reg=reg), mine, 50)
    topt = getattr(torch.optim, torch_name)(theirs, lr=0.01, **({"momentum": 0.9} if torch_name == "SGD" else {}), **torch_kw)
    run(problem, topt, theirs, 50)
    assert_close(mine, theirs, torch.float64)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_weight_decay_changed_between_steps_is_read_afresh_as_torch_does(name):
    # the kernels make a group's rule from weight_decay (and Adam's decoupled_weight_decay) at
    # every step; a stray decoupled_weight_decay key in an SGD group means nothing, as in torch
    problem = Problem(torch.float64)
    mine, theirs = problem.params(), problem.params()
    kw = dict(lr=0.01, momentum=0.9) if name == "SGD" else dict(lr=0.01)
    opts = [getattr(lt, name)(mine, **kw), getattr(torch.optim, name)(theirs, **kw)]
    changes = {5: dict(weight_decay=0.3), 10: dict(decoupled_weight_decay=True), 15: dict(weight_decay=0.0),
               20: dict(weight_decay=0.05, decoupled_weight_decay=False)}
    for t in range(30):
        for opt in opts:
            opt.param_groups[0].update(changes.get(t, {}))
        for params, opt in zip((mine, theirs), opts):
            problem.set_grads(params)
            opt.step()
    assert_close(mine, theirs, torch.float64)
    start = problem.params()
    assert max(float((a.detach() - b.detach()).abs().max()) for a, b in zip(mine, start)) > 1e-3   # (it trained)


def test_decay_rule_and_lr_following_decay_per_group():
    # Decay(d) after the step; Decoupled(lam, lr_max) follows the lr schedule: checked with zero
    # gradients, where only the decay acts
    a, b = torch.nn.Parameter(torch.ones(4, dtype=torch.float64)), torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = lt.SGD([{"params": [a], "reg": Decay(0.1)}, {"params": [b], "reg": Decoupled(0.2, lr_max=0.5)}], lr=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    ea = eb = 1.0
    for t in range(4):
        lr = 0.5 * 0.5 ** t
        a.grad, b.grad = torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
        opt.step()
        sched.step()
        ea *= 0.9
        eb *= 1 - lr * (0.2 / 0.5)
    np.testing.assert_allclose(a.detach().numpy(), ea, rtol=1e-15)
    np.testing.assert_allclose(b.detach().numpy(), eb, rtol=1e-15)


def test_weight_decay_and_reg_together_are_refused():
    p = [torch.nn.Parameter(torch.ones(2))]
    with pytest.raises(ValueError, match="weight_decay or reg, not both"):
        lt.AdamW(p, weight_decay=0.1, reg=L2(0.1))
    assert lt.AdamW(p, reg=Decay(0.01)).defaults["weight_decay"] == 0


def test_params_without_grad_are_skipped():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = lt.Adam([a, b], lr=0.1)
    a.grad = torch.ones(3)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(3)) and b not in opt.state
    assert opt.state[a]["step"] == 1


# ---- state dicts: torch's format, both ways -------------------------------------------------
@pytest.mark.parametrize("name,kw", [("AdamW", dict(amsgrad=True)), ("Adam", dict(weight_decay=0.01)),
                                     ("SGD", dict(momentum=0.9, nesterov=True, weight_decay=0.01))])
@pytest.mark.parametrize("direction", ["torch-to-l2decay", "l2decay-to-torch"])
def test_state_dicts_move_between_torch_and_l2decay(name, kw, direction):
    problem = Problem(torch.float64, seed=3)
    first, then = ((torch.optim, lt) if direction == "torch-to-l2decay" else (lt, torch.optim))
    lr = 0.01
    ref = problem.params()
    ref_opt = getattr(first, name)(ref, lr=lr, **kw)
    run(problem, ref_opt, ref, 10)
    saved = copy.deepcopy(ref_opt.state_dict())
    resumed = [torch.nn.Parameter(p.detach().clone()) for p in ref]
    opt = getattr(then, name)(resumed, lr=0.5)     # wrong lr on purpose: the state dict restores it
    opt.load_state_dict(saved)
    run(problem, ref_opt, ref, 10)
    run(problem, opt, resumed, 10)
    assert_close(resumed, ref, torch.float64)
    if direction == "torch-to-l2decay" and name != "SGD":
        assert isinstance(opt.state_dict()["state"][0]["step"], torch.Tensor)


def test_state_dict_saves_with_torch_save(tmp_path):
    problem = Problem(torch.float32)
    p = problem.params()
    opt = lt.AdamW(p, lr=1e-3, reg=Decoupled(0.1, lr_max=1e-3))
    run(problem, opt, p, 3)
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    opt2 = lt.AdamW([torch.nn.Parameter(x.detach().clone()) for x in p])
    opt2.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=False))
    assert opt2.param_groups[0]["reg"] == Decoupled(0.1, lr_max=1e-3)


@pytest.mark.parametrize("name,reg", [("AdamW", Decoupled(0.1)), ("AdamW", Decoupled(0.1, lr_max=1e-2)),
                                      ("Adam", L2(0.05)), ("SGD", L2(0.05)), ("SGD", Decay(1e-3)),
                                      ("AdamW", Decay(1e-3)), ("AdamW", Cautious(0.1)), ("SGD", Cautious(0.1)),
                                      ("Adam", Corrected(0.1, lr_max=2e-2))], ids=str)
def test_checkpoints_with_a_rule_load_with_weights_only_and_resume_exactly(tmp_path, name, reg):
    problem = Problem(torch.float32)
    kw = {"momentum": 0.9} if name == "SGD" else {}
    full, half = problem.params(), problem.params()
    opt_full = getattr(lt, name)(full, lr=1e-2, reg=reg, **kw)
    opt = getattr(lt, name)(half, lr=1e-2, reg=reg, **kw)
    run(problem, opt_full, full, 10)
    run(problem, opt, half, 4)
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    saved = torch.load(tmp_path / "opt.pt", weights_only=True)      # torch's default since 2.6
    assert saved["param_groups"][0]["reg"] == repr(reg)
    resumed = [torch.nn.Parameter(x.detach().clone()) for x in half]
    opt2 = getattr(lt, name)(resumed, lr=0.5, **kw)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["reg"] == reg and opt2.param_groups[0]["weight_decay"] == 0.0
    run(problem, opt2, resumed, 6)
    for a, b in zip(resumed, full):
        assert torch.equal(a.detach(), b.detach())


@pytest.mark.parametrize("name,reg", [("AdamW", Decoupled(0.1)), ("Adam", Decoupled(0.1)), ("Adam", L2(0.05)),
                                      ("SGD", L2(0.05))], ids=str)
def test_torch_resumes_the_same_training_from_a_checkpoint_with_a_rule(name, reg):
    """Where torch's class can express the rule, the state dict says it in torch's terms too."""
    problem = Problem(torch.float64)
    kw = {"momentum": 0.9} if name == "SGD" else {}
    ours, theirs = problem.params(), problem.params()
    opt = getattr(lt, name)(ours, lr=1e-2, reg=reg, **kw)
    run(problem, opt, ours, 4)
    with torch.no_grad():
        for a, b in zip(theirs, ours):
            a.copy_(b)
    topt = getattr(torch.optim, name)(theirs, lr=1e-2, **kw)
    topt.load_state_dict(copy.deepcopy(opt.state_dict()))    # (as saved: torch would share our tensors)
    run(problem, opt, ours, 20)
    run(problem, topt, theirs, 20)
    assert_close(ours, theirs, torch.float64)
    for rule, wd in ((Decay(1e-3), 0.0), (Decoupled(0.1, lr_max=1e-2), 0.0)):   # no torch counterpart
        opt.param_groups[0]["reg"] = rule
        assert opt.state_dict()["param_groups"][0]["weight_decay"] == wd


def test_a_saved_rule_that_is_not_one_is_refused():
    p = torch.nn.Parameter(torch.ones(3))
    opt = lt.AdamW([p], reg=Decoupled(0.1))
    sd = opt.state_dict()
    for bad in ("Decay(0.1, lr_max=1.0)", "Decoupled(-1.0)", "L2(nan)"):
        sd["param_groups"][0]["reg"] = bad
        with pytest.raises(ValueError, match=r"^state dict: param_groups\[0\]\.reg '.*': (Decay has no lr_max|"
                                             r"Decoupled strength must be|L2 strength must be)"):
            opt.load_state_dict(sd)
    assert opt.param_groups[0]["reg"] == Decoupled(0.1)
    sd["param_groups"][0]["reg"] = "L1(0.1)"          # no rule's repr: refused as any bad group is
    opt.load_state_dict(sd)
    p.grad = torch.ones(3)
    with pytest.raises(TypeError, match=r"^param_groups\[0\]\.reg must be"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(3))


# ---- schedulers ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,make_sched", [
    ("SGD", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=60)),
    ("AdamW", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.01, total_steps=60)),
    ("Adam", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20)),
    ("SGD", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5)),
])
def test_schedulers_work_as_with_torch(name, make_sched):
    # OneCycleLR cycles SGD's momentum and Adam's betas[0] too
    problem = Problem(torch.float64, seed=4)
    kw = dict(momentum=0.9, weight_decay=1e-3) if name == "SGD" else dict(weight_decay=1e-3)
    mine, theirs = problem.params(), problem.params()
    o1, o2 = getattr(lt, name)(mine, lr=0.01, **kw), getattr(torch.optim, name)(theirs, lr=0.01, **kw)
    run(problem, o1, mine, 60, make_sched(o1))
    run(problem, o2, theirs, 60, make_sched(o2))
    assert_close(mine, theirs, torch.float64)


def test_autograd_sees_the_in_place_update():
    p = torch.nn.Parameter(torch.ones(3))
    y = (p * p).sum()          # saves p for backward
    p.grad = torch.ones(3)
    lt.SGD([p], lr=0.1).step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_closure_and_zero_grad():
    p = torch.nn.Parameter(torch.tensor([3.0]))
    opt = lt.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss
    assert opt.step(closure).item() == 9.0
    assert p.item() == 3.0 - 0.25 * 6.0


# ---- bad input: a clear error naming the param, nothing modified --------------------------
def _two():
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    a.grad, b.grad = torch.ones(3, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    return a, b


@pytest.mark.parametrize("make_bad,exc,match", [
    # (torch itself refuses a .grad of another shape or dtype: these get there the long way)
    (lambda b: b.grad.resize_(3), ValueError, r"params\[1\].grad has shape \(3,\)"),
    (lambda b: (setattr(b, "grad_dtype", None), setattr(b, "grad", torch.ones(2, dtype=torch.float32))), TypeError,
     r"params\[1\].grad has dtype torch.float32"),
    (lambda b: setattr(b, "grad", torch.ones(2, dtype=torch.float64).to_sparse()), TypeError, r"params\[1\].grad is torch.sparse_coo"),
    (lambda b: setattr(b, "grad", torch.ones(4, dtype=torch.float64)[::2]), ValueError,
     r"params\[1\].grad is laid out in memory with strides \(2,\) but its param with \(1,\)"),
])
def test_bad_grads_are_refused_and_nothing_changes(make_bad, exc, match):
    a, b = _two()
    opt = lt.Adam([a, b], lr=0.1)
    opt.step()
    a.grad, b.grad = torch.ones(3, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    before = [a.detach().clone(), b.detach().clone()] + [v.clone() for s in opt.state.values() for v in s.values()
                                                         if isinstance(v, torch.Tensor)]
    make_bad(b)
    with pytest.raises(exc, match=r"^param_groups\[0\]\." + match):
        opt.step()
    after = [a.detach(), b.detach()] + [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    for x, y in zip(after, before):
        assert torch.equal(x, y)
    assert [s["step"] for s in opt.state.values()] == [1, 1]


@pytest.mark.parametrize("param,exc,match", [
    (lambda: torch.nn.Parameter(torch.ones(3, device="meta")), ValueError, r"is on meta"),
    (lambda: torch.nn.Parameter(torch.ones(3, dtype=torch.complex64)), TypeError, r"has dtype torch.complex64"),
    (lambda: torch.ones(3, dtype=torch.int64), TypeError, r"has dtype torch.int64"),
    (lambda: torch.nn.Parameter(torch.ones(3, 8)[:, ::2]), ValueError, r"has gaps in memory \(a strided view"),
])
def test_params_l2decay_cannot_update_are_refused(param, exc, match):
    p = param()
    p.grad = torch.ones_like(p)
    a, _ = _two()
    opt = lt.SGD([a, p], lr=0.1)
    with pytest.raises(exc, match=r"^param_groups\[0\]\.params\[1\] " + match):
        opt.step()
    assert torch.equal(a.detach(), torch.ones(3, dtype=torch.float64))


def test_capturable_and_differentiable_are_refused():
    p = [torch.nn.Parameter(torch.ones(2))]
    for kw in (dict(capturable=True), dict(differentiable=True)):
        with pytest.raises(ValueError, match=f"{next(iter(kw))}=True is not supported"):
            lt.Adam(p, **kw)
    lt.Adam(p, foreach=True, fused=True)     # ask nothing we lack: accepted
    lt.SGD(p, foreach=False, fused=False)


def test_tensor_hyperparameters_and_state_from_torch_load():
    problem = Problem(torch.float64, seed=5)
    mine, theirs = problem.params(), problem.params()
    f64 = dict(dtype=torch.float64)
    o1 = lt.Adam(mine, lr=torch.tensor(0.01, **f64), betas=(torch.tensor(0.9, **f64), torch.tensor(0.999, **f64)))
    o2 = torch.optim.Adam(theirs, lr=torch.tensor(0.01, **f64), betas=(torch.tensor(0.9, **f64), torch.tensor(0.999, **f64)))
    run(problem, o1, mine, 10)
    run(problem, o2, theirs, 10)
    assert_close(mine, theirs, torch.float64)


FLOAT32_LR = [("SGD", dict(momentum=0.9, weight_decay=1e-2)), ("Adam", dict(weight_decay=1e-2)),
              ("Adam", dict(weight_decay=1e-2, decoupled_weight_decay=True, amsgrad=True)),
              ("AdamW", dict(weight_decay=0.1))]


@pytest.mark.parametrize("name,options", FLOAT32_LR, ids=[f"{n}-{o}" for n, o in FLOAT32_LR])
def test_float32_tensor_lr_is_computed_with_as_torch_does(name, options):
    # torch forms lr/(1 - beta1**t) and 1 - lr*weight_decay in float32 from a float32 tensor lr,
    # which a scheduler then rewrites in place: float64 params show both (the float lr misses by 1e-6)
    problem = Problem(torch.float64, seed=3)
    mine, theirs = problem.params(), problem.params()
    o1 = getattr(lt, name)(mine, lr=torch.tensor(0.01), **options)
    o2 = getattr(torch.optim, name)(theirs, lr=torch.tensor(0.01), **options)
    run(problem, o1, mine, 60, torch.optim.lr_scheduler.StepLR(o1, 7, gamma=0.7))
    run(problem, o2, theirs, 60, torch.optim.lr_scheduler.StepLR(o2, 7, gamma=0.7))
    assert o1.param_groups[0]["lr"] is not None and float(o1.param_groups[0]["lr"]) < 0.01 * 0.7 ** 7
    assert_close(mine, theirs, torch.float64)


def test_tensor_lr_written_in_place_is_read_at_every_step():
    for cls in (lt.SGD, lt.AdamW):
        p = torch.nn.Parameter(torch.ones(3))
        opt = cls([p], lr=torch.tensor(0.1), weight_decay=0.0)
        p.grad = torch.ones(3)
        opt.step()
        before = p.detach().clone()
        opt.param_groups[0]["lr"].fill_(0.0)
        opt.step()
        assert torch.equal(p.detach(), before), cls.__name__


@pytest.mark.parametrize("bad,error,match", [
    (dict(lr=torch.tensor([0.1, 0.2])), ValueError, r"lr as a tensor must have 1 element, got shape \(2,\)"),
    (dict(lr=torch.tensor(0.1, dtype=torch.bfloat16)), TypeError, "lr must be a float, or a float32 or float64 tensor"),
    (dict(lr=torch.tensor(1)), TypeError, "lr must be a float, or a float32 or float64 tensor, got a torch.int64"),
    (dict(betas=(torch.tensor(0.9), 0.999)), ValueError, r"betas\[0\] as a torch.float32 tensor: .* float64 tensor"),
    (dict(weight_decay=torch.tensor(0.1)), ValueError, "weight_decay as a torch.float32 tensor"),
])
def test_tensor_hyperparameters_torch_computes_otherwise_are_refused(bad, error, match):
    p = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(error, match=match):
        lt.AdamW([p], **bad)
    opt = lt.AdamW([p], lr=0.1)          # the same, set in a group later: refused at the step
    opt.param_groups[0].update(bad)
    p.grad = torch.ones(3)
    with pytest.raises(error, match=match):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(3)) and not opt.state[p]


def _sparse_adamw_case():
    emb = torch.nn.Embedding(4, 3, sparse=True)
    torch.nn.init.ones_(emb.weight)
    opt = lt.SparseAdamW(emb.parameters(), lr=0.5, weight_decay=0.0).attach(emb)

    def set_grad():
        emb(torch.tensor([1])).sum().backward()
    return opt, emb.weight, set_grad, "SparseAdamW"


def _sgd_case():
    p = torch.nn.Parameter(torch.ones(3))

    def set_grad():
        p.grad = torch.ones(3)
    return lt.SGD([p], lr=0.5), p, set_grad, "SGD"


@pytest.mark.parametrize("make", [_sgd_case, _sparse_adamw_case], ids=["SGD", "SparseAdamW"])
def test_step_hooks_and_the_profiler_still_work(make):
    opt, p, set_grad, name = make()
    seen = []
    pre = opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    post = opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    set_grad()
    before = p.detach().clone()
    opt.step()
    assert seen == ["pre", "post"] and not torch.equal(p.detach(), before)
    pre.remove()
    post.remove()
    opt.step()
    assert seen == ["pre", "post"]    # (removed: the step without the wrapper)
    with torch.profiler.profile() as prof:
        opt.step()
    assert any(f"Optimizer.step#{name}.step" in e.name for e in prof.events())


@pytest.mark.parametrize("make", [_sgd_case, _sparse_adamw_case], ids=["SGD", "SparseAdamW"])
def test_a_step_pre_hook_may_return_new_args_and_kwargs(make):
    """torch's contract: a pre-hook returns None or (args, kwargs) for the step; here it adds a
    closure to opt.step(), whose loss the step returns."""
    opt, p, set_grad, _ = make()
    calls = []

    def closure():
        calls.append(1)
        return torch.tensor(3.0)

    opt.register_step_pre_hook(lambda o, args, kwargs: (args, {**kwargs, "closure": closure}))
    set_grad()
    assert opt.step() == 3.0 and calls == [1]


# ---- 16-bit params ---------------------------------------------------------------------------
ml_dtypes = pytest.importorskip("ml_dtypes")


def _as_numpy(t):
    """A bfloat16/float16 tensor's memory as numpy (torch has no numpy bfloat16)."""
    dt = ml_dtypes.bfloat16 if t.dtype == torch.bfloat16 else np.float16
    return t.detach().view(torch.int16).numpy().view(dt)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("rounding", [None, "nearest", "stochastic", "compensated"])
@pytest.mark.parametrize("name", ["SGD", "AdamW"])
@pytest.mark.parametrize("state_dtype", [None, "param"])
def test_16_bit_params_step_as_l2decay_optim_does(dtype, rounding, name, state_dtype):
    # the same compiled step as the numpy optimizers: the same bits, state float32 or, with
    # state_dtype "param", the param's dtype (its bits the same too)
    import l2decay
    gen = torch.Generator().manual_seed(0)
    shapes = [(6, 5), (5,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in shapes]
    grads = [[(torch.randn(s, generator=gen) * 0.1).to(dtype) for s in shapes] for _ in range(4)]
    ws = [_as_numpy(p).copy() for p in params]
    kw = dict(lr=0.05, rounding=rounding, seed=3, state_dtype=state_dtype)
    if name == "SGD":
        opt = lt.SGD(params, momentum=0.9, weight_decay=1e-2, **kw)
        ref = l2decay.SGD(ws, momentum=0.9, reg=L2(1e-2), **kw)
    else:
        opt = lt.AdamW(params, **kw)
        ref = l2decay.Adam(ws, reg=Decoupled(1e-2), **kw)
    for g in grads:
        for p, x in zip(params, g):
            p.grad = x
        opt.step()
        ref.step([_as_numpy(x) for x in g])
    for p, w in zip(params, ws):
        np.testing.assert_array_equal(_as_numpy(p).view(np.uint16), w.view(np.uint16))
    st = opt.state[params[0]]
    mine = st.get("exp_avg", st.get("momentum_buffer"))
    assert mine.dtype == (dtype if state_dtype == "param" else torch.float32)
    theirs = ref.state[0].get("exp_avg", ref.state[0].get("momentum_buffer"))
    np.testing.assert_array_equal(_as_numpy(mine).view(np.uint8), theirs.view(np.uint8))
    assert ("compensation" in st) == (rounding == "compensated")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("rounding", ["nearest", "stochastic", "compensated"])
@pytest.mark.parametrize("name", ["SGD", "AdamW"])
@pytest.mark.parametrize("state_dtype", [None, "param"])
def test_16_bit_checkpoint_resumes_bit_identically(dtype, rounding, name, state_dtype):
    # torch's load_state_dict casts state to the param's dtype; a 16-bit param's float32
    # moments (or momentum) must come back as float32 (with state_dtype "param": stay in its
    # dtype), the compensation buffer in its dtype
    gen = torch.Generator().manual_seed(1)
    shapes = [(6, 5), (5,)]
    w0 = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    grads = [[(torch.randn(s, generator=gen) * 0.1).to(dtype) for s in shapes] for _ in range(8)]
    kw = dict(rounding=rounding, seed=3, state_dtype=state_dtype)
    make = (lambda ps: lt.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-2, **kw)) \
        if name == "SGD" else (lambda ps: lt.AdamW(ps, lr=0.05, **kw))

    def train(params, opt, gs):
        for g in gs:
            for p, x in zip(params, g):
                p.grad = x.clone()
            opt.step()

    straight = [torch.nn.Parameter(w.clone()) for w in w0]
    train(straight, make(straight), grads)
    first = [torch.nn.Parameter(w.clone()) for w in w0]
    opt = make(first)
    train(first, opt, grads[:4])
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    resumed = [torch.nn.Parameter(p.detach().clone()) for p in first]
    opt2 = make(resumed)
    opt2.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
    st = opt2.state[resumed[0]]
    assert st["exp_avg" if name == "AdamW" else "momentum_buffer"].dtype == (
        dtype if state_dtype == "param" else torch.float32)
    if rounding == "compensated":
        assert st["compensation"].dtype == dtype
    train(resumed, opt2, grads[4:])
    for a, b in zip(resumed, straight):
        assert torch.equal(a.detach().view(torch.int16), b.detach().view(torch.int16))


def test_torch_16_bit_checkpoint_continues_with_float32_moments():
    # torch's fused AdamW keeps a bfloat16 param's moments in bfloat16: they load as float32
    p = torch.nn.Parameter(torch.randn(50, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16))
    theirs = torch.optim.AdamW([p], lr=1e-2, fused=True)
    for _ in range(3):
        p.grad = torch.randn(50, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
        theirs.step()
    saved = theirs.state_dict()
    q = torch.nn.Parameter(p.detach().clone())
    ours = lt.AdamW([q], lr=1e-2)
    ours.load_state_dict(saved)
    st = ours.state[q]
    assert st["exp_avg"].dtype == torch.float32 and st["step"] == 3
    assert torch.equal(st["exp_avg"], saved["state"][0]["exp_avg"].float())
    q.grad = p.grad.clone()
    ours.step()
    assert st["step"] == 4 and not torch.equal(q.detach(), p.detach())
    # ... and as saved, in bfloat16, with state_dtype="param"
    r = torch.nn.Parameter(p.detach().clone())
    ours = lt.AdamW([r], lr=1e-2, state_dtype="param")
    ours.load_state_dict(saved)
    st = ours.state[r]
    assert st["exp_avg"].dtype == torch.bfloat16 and torch.equal(st["exp_avg"], saved["state"][0]["exp_avg"])
    r.grad = p.grad.clone()
    ours.step()
    assert st["step"] == 4 and st["exp_avg_sq"].dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_param_dtype_state_follows_torchs_fused_adamw(dtype):
    # torch's fused AdamW keeps a 16-bit param's moments in its dtype, rounded to nearest; so
    # does state_dtype="param" with rounding="nearest".  The formulas differ in their last
    # bits (torch: lerp for m, w*(1 - lr*wd); l2decay: b1*m + (1-b1)*g, w - (lr*wd)*w), so
    # a few weights in a thousand differ after 20 steps; with float32 moments, many more do.
    gen = torch.Generator().manual_seed(0)
    n = 100_000
    w0 = torch.randn(n, generator=gen).to(dtype)
    grads = [(torch.randn(n, generator=gen) * 0.1).to(dtype) for _ in range(20)]
    ref = torch.nn.Parameter(w0.clone())
    theirs = torch.optim.AdamW([ref], lr=1e-2, weight_decay=0.1, fused=True)
    for g in grads:
        ref.grad = g.clone()
        theirs.step()
    share = {}
    for state_dtype in (None, "param"):
        p = torch.nn.Parameter(w0.clone())
        ours = lt.AdamW([p], lr=1e-2, weight_decay=0.1, rounding="nearest", state_dtype=state_dtype)
        for g in grads:
            p.grad = g.clone()
            ours.step()
        share[state_dtype] = float((p.detach() != ref.detach()).double().mean())
        if state_dtype == "param":
            st, ts = ours.state[p], theirs.state[ref]
            assert st["exp_avg"].dtype == dtype and st["exp_avg_sq"].dtype == dtype
            assert float((st["exp_avg_sq"] != ts["exp_avg_sq"]).double().mean()) < 1e-3
            scale = float(ts["exp_avg"].abs().max())
            assert float((st["exp_avg"].float() - ts["exp_avg"].float()).abs().max()) < 0.01 * scale
    assert share["param"] < 0.01 < 0.05 < share[None], share


def test_amsgrad_maximum_is_born_in_the_moments_dtype():
    import l2decay
    gen = torch.Generator().manual_seed(5)
    p = torch.nn.Parameter(torch.randn(300, generator=gen).to(torch.bfloat16))
    w = _as_numpy(p).copy()
    opt = lt.AdamW([p], lr=0.01, amsgrad=True, state_dtype="param", seed=2)
    ref = l2decay.Adam([w], lr=0.01, amsgrad=True, reg=Decoupled(1e-2), state_dtype="param", seed=2)
    for _ in range(3):
        g = (torch.randn(300, generator=gen) * 0.1).to(torch.bfloat16)
        p.grad = g
        opt.step()
        ref.step([_as_numpy(g)])
    st = opt.state[p]
    assert st["max_exp_avg_sq"].dtype == torch.bfloat16
    np.testing.assert_array_equal(_as_numpy(st["max_exp_avg_sq"]).view(np.uint16),
                                  ref.state[0]["max_exp_avg_sq"].view(np.uint16))
    np.testing.assert_array_equal(_as_numpy(p).view(np.uint16), w.view(np.uint16))


def test_state_of_mixed_dtypes_is_refused_and_nothing_changes():
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    opt = lt.AdamW([p], lr=0.1, state_dtype="param")
    p.grad = torch.ones(4, dtype=torch.bfloat16)
    opt.step()
    st = opt.state[p]
    assert st["exp_avg"].dtype == torch.bfloat16
    st["exp_avg_sq"] = st["exp_avg_sq"].float()
    before = p.detach().clone(), st["exp_avg"].clone(), st["exp_avg_sq"].clone()
    with pytest.raises(TypeError, match=r"state of param_groups\[0\]\.params\[0\]: exp_avg_sq has dtype torch\.float32, "
                                        r"but the state of a torch\.bfloat16 param is torch\.bfloat16 or torch\.float32, "
                                        r"one dtype for all its tensors \(exp_avg is torch\.bfloat16\)"):
        opt.step()
    assert torch.equal(p.detach(), before[0]) and torch.equal(st["exp_avg"], before[1])
    assert torch.equal(st["exp_avg_sq"], before[2]) and st["step"] == 1
    st["exp_avg_sq"] = st["exp_avg_sq"].to(torch.float16)
    with pytest.raises(TypeError, match=r"exp_avg_sq has dtype torch\.float16, but the state of a torch\.bfloat16 param"):
        opt.step()
    with pytest.raises(TypeError, match=r"^state_dtype must be None"):
        lt.SGD([p], lr=0.1, state_dtype=torch.bfloat16)
    opt.param_groups[0]["state_dtype"] = "float16"
    with pytest.raises(ValueError, match=r"^param_groups\[0\]\.state_dtype must be None"):
        opt.step()
    assert torch.equal(p.detach(), before[0])
    # one param whose state is its own gradient: refused, nothing written
    opt.param_groups[0]["state_dtype"] = "param"
    st["exp_avg_sq"] = before[2].to(torch.bfloat16)
    st["exp_avg"] = p.grad
    with pytest.raises(ValueError, match=r"^param_groups\[0\]\.params\[0\]\.grad and state of param_groups\[0\]\.params"
                                         r"\[0\]: exp_avg share memory"):
        opt.step()
    assert torch.equal(p.detach(), before[0]) and torch.equal(p.grad, torch.ones(4, dtype=torch.bfloat16))
    # a stale max_exp_avg_sq of another dtype is not read without amsgrad: no error
    st["exp_avg"] = before[1].clone()
    st["max_exp_avg_sq"] = torch.zeros(4)
    opt.step()
    assert st["step"] == 2


def test_16_bit_torch_params_get_their_decay():
    # torch's own AdamW keeps none of a 1e-5 decay in bfloat16; l2decay's default keeps it
    p = torch.nn.Parameter(torch.randn(200_000, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16))
    w0 = p.detach().double().clone()
    ours, theirs = lt.AdamW([p], lr=1.0, weight_decay=1e-5), None
    q = torch.nn.Parameter(p.detach().clone())
    theirs = torch.optim.AdamW([q], lr=1.0, weight_decay=1e-5)
    for _ in range(300):
        p.grad = torch.zeros_like(p)
        q.grad = torch.zeros_like(q)
        ours.step()
        theirs.step()
    want = w0 * (1 - 1e-5) ** 300
    share = lambda x: float(((w0 * (w0 - x.detach().double())).sum() / (w0 * (w0 - want)).sum()))  # noqa: E731
    assert share(q) == 0.0
    assert share(p) == pytest.approx(1.0, abs=0.02)


def test_stochastic_rounding_of_float32_params_is_refused():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    opt = lt.SGD([p], lr=0.1, rounding="stochastic")
    with pytest.raises(ValueError, match=r"rounding 'stochastic' needs bfloat16 or float16 params"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(3))


class LoggedTensor(torch.Tensor):
    """A tensor subclass: it may keep its data anywhere, so the step refuses it."""


def test_tensor_subclasses_are_refused_naming_the_param():
    p = torch.nn.Parameter(torch.ones(3).as_subclass(LoggedTensor))
    q = torch.nn.Parameter(torch.ones(3))
    p.grad, q.grad = torch.ones(3), torch.ones(3)
    opt = lt.AdamW([q, p], lr=0.1)
    with pytest.raises(TypeError, match=r"^param_groups\[0\]\.params\[1\] is a LoggedTensor: l2decay\.torch steps "
                                        r"plain tensors"):
        opt.step()
    assert torch.equal(q.detach(), torch.ones(3)) and not opt.state[q] and not opt.state[p]


def test_dtensor_params_step_their_local_shards_like_torch():
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch without distributed")
    from torch.distributed.tensor import DeviceMesh, Shard, distribute_tensor
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        mesh = DeviceMesh("cpu", [0])
        w0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        ps = [torch.nn.Parameter(distribute_tensor(w0.clone(), mesh, [Shard(0)])) for _ in range(2)]
        opts = [lt.AdamW([ps[0]], lr=0.01, weight_decay=0.1), torch.optim.AdamW([ps[1]], lr=0.01, weight_decay=0.1)]
        for step in range(3):
            g = torch.randn(8, 3, generator=torch.Generator().manual_seed(step), dtype=torch.float64)
            for p, opt in zip(ps, opts):
                p.grad = distribute_tensor(g.clone(), mesh, [Shard(0)])
                opt.step()
        np.testing.assert_allclose(ps[0].full_tensor().detach().numpy(), ps[1].full_tensor().detach().numpy(),
                                   rtol=1e-12, atol=1e-15)
        assert type(opts[0].state[ps[0]]["exp_avg"]).__name__ == "DTensor"   # as torch keeps it
    finally:
        dist.destroy_process_group()


def test_private_torch_names_still_exist():
    # l2decay.torch lists each private torch name it uses, where torch has no public one: an
    # upgrade that drops one must fail here, not in a user's step
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    for name in lt.TORCH_PRIVATE:
        module, _, attr = name.rpartition(".")
        if module == "torch.optim.Optimizer":       # (set on each optimizer by its __init__)
            assert hasattr(opt, attr), name
            continue
        assert hasattr(importlib.import_module(module), attr), name


def test_concurrent_steps_of_one_optimizer_are_serialized():
    import threading
    p = torch.nn.Parameter(torch.ones(1000))
    p.grad = torch.full((1000,), 1e-3)
    opt = lt.AdamW([p], lr=1e-3)
    errors = []

    def run():
        try:
            for _ in range(40):
                opt.step()
        except Exception as exc:   # (any error is a failure: collected, then asserted empty)
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and opt.state[p]["step"] == 80
    q = torch.nn.Parameter(torch.ones(1000))
    q.grad = p.grad.clone()
    ref = lt.AdamW([q], lr=1e-3)
    for _ in range(80):
        ref.step()
    assert torch.equal(p.detach(), q.detach())


def test_a_param_listed_twice_is_refused_naming_both_places():
    p, q = torch.nn.Parameter(torch.ones(4, 5)), torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match=r"^param_groups\[0\]\.params\[2\] is param_groups\[0\]\.params\[0\] again"):
        lt.AdamW([p, q, p], lr=0.1)
    opt = lt.SGD([q], lr=0.1)
    with pytest.raises(ValueError, match=r"^param_groups\[1\]\.params\[1\] is param_groups\[1\]\.params\[0\] again"):
        opt.add_param_group({"params": iter([p, p])})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_state_of_another_shape_with_the_same_size_is_refused(name):
    p = torch.nn.Parameter(torch.randn(4, 5))
    opt = getattr(lt, name)([p], lr=0.1, **({"momentum": 0.9} if name == "SGD" else {}))
    p.grad = torch.ones(4, 5)
    opt.step()
    key = "momentum_buffer" if name == "SGD" else "exp_avg"
    st = opt.state[p]
    good = st[key]
    st[key] = torch.zeros(5, 4)
    before = p.detach().clone()
    with pytest.raises(ValueError, match=rf"^state of param_groups\[0\]\.params\[0\]: {key} has shape \(5, 4\) but its "
                                         r"param has \(4, 5\)"):
        opt.step()
    assert torch.equal(p.detach(), before)
    st[key] = good
    p.data = torch.zeros(20)          # the param's data replaced by another shape
    p.grad = torch.ones(20)
    with pytest.raises(ValueError, match=rf"{key} has shape \(4, 5\) but its param has \(20,\)"):
        opt.step()
    assert torch.equal(p.detach(), torch.zeros(20))


def test_sparse_gradients_are_refused_pointing_at_sparse_adamw():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = lt.SGD(emb.parameters(), lr=0.1)
    emb(torch.tensor([1])).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(TypeError, match=r"^param_groups\[0\]\.params\[0\]\.grad is torch\.sparse_coo: .* use "
                                        r"l2decay\.torch\.SparseAdamW"):
        opt.step()
    assert torch.equal(emb.weight.detach(), before)



# ---- channels_last and other dense layouts ---------------------------------------------------
def _cnn(dtype):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3),
                              torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    net(torch.zeros(1, 3, 10, 10))
    return net.to(dtype=dtype, memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name,kw", [("AdamW", dict(lr=1e-2, weight_decay=0.1)),
                                     ("SGD", dict(lr=1e-2, momentum=0.9, weight_decay=1e-3))], ids=["AdamW", "SGD"])
def test_channels_last_cnn_steps_in_place_as_torch(dtype, name, kw):
    mine, theirs = _cnn(dtype), _cnn(dtype)
    o1, o2 = getattr(lt, name)(mine.parameters(), **kw), getattr(torch.optim, name)(theirs.parameters(), **kw)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(16, 3, 10, 10, generator=g, dtype=dtype).to(memory_format=torch.channels_last)
    y = torch.randn(16, 2, generator=g, dtype=dtype)
    ptrs = [p.data_ptr() for p in mine.parameters()]
    for _ in range(50):
        for net, opt in ((mine, o1), (theirs, o2)):
            opt.zero_grad()
            ((net(X) - y) ** 2).mean().backward()
            opt.step()
    conv = [p for p in mine.parameters() if p.ndim == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in conv)
    assert sum(not p.is_contiguous() for p in conv) == 2          # (a 1x1 kernel is both)
    assert [p.data_ptr() for p in mine.parameters()] == ptrs                  # in place
    for p in conv:
        assert all(t.stride() == p.stride() for t in o1.state[p].values() if torch.is_tensor(t) and t.ndim == 4)
    assert_close(list(mine.parameters()), list(theirs.parameters()), dtype)


def test_a_grad_laid_out_otherwise_than_its_param_is_refused():
    p = torch.nn.Parameter(torch.randn(2, 3, 4, 4).to(memory_format=torch.channels_last))
    opt = lt.AdamW([p], lr=0.1)
    p.grad = torch.ones(2, 3, 4, 4)                    # contiguous
    before = p.detach().clone()
    with pytest.raises(ValueError, match=r"^param_groups\[0\]\.params\[0\]\.grad is laid out in memory with "
                                         r"strides \(48, 16, 4, 1\) but its param with \(48, 1, 12, 3\)"):
        opt.step()
    assert torch.equal(p.detach(), before) and not opt.state[p]
    p.grad = torch.ones_like(p)                          # its param's layout: stepped
    opt.step()
    assert opt.state[p]["exp_avg"].stride() == p.stride()
