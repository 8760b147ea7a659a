"""Cautious and Corrected decay and the rules' timescales: the papers' formulas on every front
end, across threads and instruction sets, and bad input."""
import math

import numpy as np
import pytest

import l2decay
import numpy_reference as ref
from kernel_config import configured
from l2decay import SGD, Adam, Cautious, Corrected, Decay, Decoupled, L2, _kernels
from l2decay.rules import from_repr

SHAPES = [(9, 7), (5,), (1,), (300,)]


class Problem:
    """A least-squares problem per tensor, grad = A @ w - b: the updates' signs follow w."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.w0 = [rng.standard_normal(s) for s in SHAPES]
        self.A = [rng.standard_normal((w.size, w.size)) / w.size ** 0.5 + np.eye(w.size) for w in self.w0]
        self.b = [rng.standard_normal(w.size) for w in self.w0]

    def params(self):
        return [w.copy() for w in self.w0]

    def grads(self, params):
        return [(A @ np.asarray(w).ravel() - b).reshape(w.shape) for A, b, w in zip(self.A, self.b, params)]


def _schedule(t, steps=300, top=0.05):
    """A cosine schedule from `top` to a tenth of it: the lr Corrected corrects for."""
    return top * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t / steps)))


# ------------------------------------------------------------------ the formulas ---------------
@pytest.mark.parametrize("kind", ["sgd", "sgd-momentum", "sgd-keras", "adam", "adam-8bit"])
def test_cautious_is_decoupled_where_update_and_weight_agree_and_no_decay_where_they_differ(kind):
    # one step from fresh state: the update u has the gradient's sign in every form (momentum's
    # buffer is born as g, the velocity as -lr*g, Adam's m as (1 - beta1)*g)
    rng = np.random.default_rng(3)
    n = 4000
    w0 = rng.standard_normal(n).astype(np.float32)
    w0[:50] = 0.0
    g = rng.standard_normal(n).astype(np.float32)
    g[50:100] = 0.0
    got = {}
    for name, reg in (("cautious", Cautious(0.5)), ("decoupled", Decoupled(0.5)), ("none", None)):
        w = [w0.copy()]
        if kind.startswith("adam"):
            Adam(w, lr=0.1, reg=reg, state_dtype="8bit" if kind == "adam-8bit" else None).step([g])
        else:
            SGD(w, lr=0.1, reg=reg, momentum=0.0 if kind == "sgd" else 0.9,
                momentum_form="keras" if kind == "sgd-keras" else "torch").step([g])
        got[name] = w[0]
    opposite = ((g > 0) & (w0 < 0)) | ((g < 0) & (w0 > 0))
    assert 1000 < opposite.sum() < 3000
    np.testing.assert_array_equal(got["cautious"], np.where(opposite, got["none"], got["decoupled"]))
    assert not np.array_equal(got["decoupled"][~opposite], got["none"][~opposite])


def test_corrected_is_decoupled_times_lr_over_lr_max():
    # w *= 1 - lam * lr**2 / lr_max: Decoupled(lam * lr / lr_max) at this lr, Decoupled(lam) at lr_max
    w0 = np.linspace(-2.0, 2.0, 101)
    g = np.cos(w0)
    for lr, lr_max in ((0.02, 0.08), (0.08, 0.08)):
        a, b = [w0.copy()], [w0.copy()]
        l2decay.sgd_step(a, [g], lr=lr, reg=Corrected(0.3, lr_max=lr_max))
        l2decay.sgd_step(b, [g], lr=lr, reg=Decoupled(0.3 * lr / lr_max))
        np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-16)
    c = [w0.copy()]
    l2decay.sgd_step(c, [np.zeros_like(g)], lr=0.02, reg=Corrected(0.3, lr_max=0.08))
    np.testing.assert_allclose(c[0], w0 * (1 - 0.3 * 0.02 ** 2 / 0.08), rtol=1e-15)


# ------------------------------------------------------------------ every front end ------------
FRONT_ENDS = ["functional", "optimizer", "torch"]
OPTIMIZERS = {"sgd": dict(momentum=0.9), "sgd-nesterov-maximize": dict(momentum=0.8, nesterov=True, maximize=True),
              "sgd-keras": dict(momentum=0.9, momentum_form="keras"), "adam": {}, "adam-amsgrad": dict(amsgrad=True)}


def _reference(kind, params, reg, cfg):
    tup = (reg.name, reg.coef)
    if kind.startswith("adam"):
        return ref.Adam(params, lr=0.05, reg=tup, **cfg)
    return ref.SGD(params, lr=0.05, reg=tup, **cfg)


def _run(front, kind, params, reg, cfg, problem, steps):
    """`steps` steps of front end `front` on the schedule; returns the final params as numpy."""
    adam = kind.startswith("adam")
    if front == "torch":
        torch = pytest.importorskip("torch")
        import l2decay.torch as lt
        ps = [torch.nn.Parameter(torch.from_numpy(p)) for p in params]
        opt = (lt.Adam if adam else lt.SGD)(ps, lr=_schedule(0), reg=reg, **cfg)
        for t in range(steps):
            opt.param_groups[0]["lr"] = _schedule(t)
            for p, gr in zip(ps, problem.grads([p.detach().numpy() for p in ps])):
                p.grad = torch.from_numpy(gr)
            opt.step()
        return [p.detach().numpy() for p in ps]
    if front == "optimizer":
        opt = (Adam if adam else SGD)(params, lr=_schedule(0), reg=reg, **cfg)
        for t in range(steps):
            opt.param_groups[0]["lr"] = _schedule(t)
            opt.step(problem.grads(params))
        return params
    state = [[None] * len(params) for _ in range(3)]
    for t in range(steps):
        grads = problem.grads(params)
        if adam:
            if state[0][0] is None:
                state = [[np.zeros_like(p) for p in params] for _ in range(3)]
            l2decay.adam_step(params, grads, state[0], state[1], state[2] if cfg.get("amsgrad") else None,
                              step=t + 1, lr=_schedule(t), reg=reg, **cfg)
        else:
            l2decay.sgd_step(params, grads, state[0], lr=_schedule(t), reg=reg, **cfg)
    return params


@pytest.mark.parametrize("front,kind", [(f, k) for f in FRONT_ENDS for k in sorted(OPTIMIZERS)
                                        if not (f == "torch" and k == "sgd-keras")])   # (torch has no velocity form)
@pytest.mark.parametrize("reg", [Cautious(0.5), Corrected(0.5, lr_max=0.05)], ids=repr)
def test_new_rules_follow_the_reference_for_300_float64_steps_on_every_front_end(front, kind, reg):
    problem = Problem()
    cfg = OPTIMIZERS[kind]
    expected = problem.params()
    r = _reference(kind, expected, reg, cfg)
    for t in range(300):
        r.lr = _schedule(t)
        r.step(problem.grads(expected))
    got = _run(front, kind, problem.params(), reg, cfg, problem, 300)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    # the rule made a difference: Decoupled at the same strength ends elsewhere
    other = _run(front, kind, problem.params(), Decoupled(0.5), cfg, problem, 300)
    assert max(np.abs(a - b).max() for a, b in zip(got, other)) > 1e-4


def test_torch_corrected_takes_lr_max_from_the_schedulers_initial_lr():
    torch = pytest.importorskip("torch")
    import l2decay.torch as lt
    problem = Problem()
    runs = []
    for reg in (Corrected(0.5), Corrected(0.5, lr_max=0.05)):
        ps = [torch.nn.Parameter(torch.from_numpy(p)) for p in problem.params()]
        opt = lt.AdamW(ps, lr=0.05, reg=reg)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=40, eta_min=0.005)
        for _ in range(40):
            for p, gr in zip(ps, problem.grads([p.detach().numpy() for p in ps])):
                p.grad = torch.from_numpy(gr)
            opt.step()
            sched.step()
        runs.append([p.detach().clone() for p in ps])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


@pytest.mark.parametrize("case", ["float32-sgd", "float64-adam", "float32-adam-8bit", "bfloat16-adam-stochastic",
                                  "float16-sgd-compensated"])
@pytest.mark.parametrize("reg", [Cautious(0.5), Corrected(0.5, lr_max=0.05)], ids=repr)
def test_new_rules_give_the_same_bits_on_every_level_and_thread_count(case, reg):
    name, kind, *rest = case.split("-")
    dtype = np.dtype(pytest.importorskip("ml_dtypes").bfloat16) if name == "bfloat16" else np.dtype(name)
    q8 = rest == ["8bit"]
    rounding = rest[0] if rest and not q8 else None
    n = 3 * 8192 + 5
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(4)]
    runs = []
    for level in _kernels.simd_available():
        for threads in (1, 2, 3):
            with configured(level=level, threads=threads, threshold=1024):
                w = [w0.copy()]
                if kind == "adam":
                    opt = Adam(w, lr=0.05, reg=reg, rounding=rounding, state_dtype="8bit" if q8 else None)
                else:
                    opt = SGD(w, lr=0.05, momentum=0.9, reg=reg, rounding=rounding)
                for g in grads:
                    opt.step([g])
            runs.append(w[0].view(np.uint8))
    assert all(np.array_equal(runs[0], r) for r in runs[1:])
    assert not np.array_equal(runs[0], w0.view(np.uint8))


# ------------------------------------------------------------------ timescales -----------------
def test_timescale_is_the_steps_that_shrink_the_weights_by_e():
    rule = Decoupled.from_timescale(500, lr=0.01)
    assert rule.strength == pytest.approx(1 / (500 * 0.01), rel=1e-15)
    w = [np.ones(4)]
    for _ in range(500):
        l2decay.sgd_step(w, [np.zeros(4)], lr=0.01, reg=rule)
    assert w[0][0] == pytest.approx(math.exp(-1), rel=2e-3)      # (1 - 1/500)**500
    assert rule.timescale(0.01) == pytest.approx(500, rel=1e-15)
    assert rule.timescale(0.01, iterations_per_epoch=50) == pytest.approx(10, rel=1e-15)


@pytest.mark.parametrize("cls,options,per_step", [
    (Decoupled, {}, lambda lam, lr: lam * lr),
    (Decoupled, {"lr_max": 0.1}, lambda lam, lr: lam * lr / 0.1),
    (Cautious, {}, lambda lam, lr: lam * lr),
    (Corrected, {"lr_max": 0.1}, lambda lam, lr: lam * lr ** 2 / 0.1),
    (L2, {}, lambda lam, lr: lam * lr),
    (Decay, {}, lambda lam, lr: lam),
], ids=["decoupled", "decoupled-lr_max", "cautious", "corrected", "l2", "decay"])
def test_each_rule_reports_its_timescale_and_is_built_from_one(cls, options, per_step):
    rule = cls(0.02, **options)
    assert rule.timescale(0.05) == pytest.approx(1 / per_step(0.02, 0.05), rel=1e-14)
    assert rule.timescale(0.05, iterations_per_epoch=100) == pytest.approx(1 / per_step(0.02, 0.05) / 100, rel=1e-14)
    built = cls.from_timescale(rule.timescale(0.05), lr=0.05, **options)
    assert type(built) is cls and built.strength == pytest.approx(0.02, rel=1e-14)
    in_epochs = cls.from_timescale(4.0, lr=0.05, iterations_per_epoch=25, **options)
    assert in_epochs.timescale(0.05) == pytest.approx(100, rel=1e-14)
    assert cls(0.0, **options).timescale(0.05) == math.inf


def test_l2_timescale_through_sgd_momentum_is_the_slow_decay_it_gives():
    # with zero loss gradient, SGD momentum mu on L2's pull decays w by the slow root of
    # r**2 - (1 + mu - lr*lam) r + mu, about 1 - lr*lam / (1 - mu) per step
    lr, mu = 0.01, 0.9
    rule = L2.from_timescale(2000, lr=lr, momentum=mu)
    assert rule.strength == pytest.approx((1 - mu) / (2000 * lr), rel=1e-14)
    assert rule.timescale(lr, momentum=mu) == pytest.approx(2000, rel=1e-14)
    assert rule.timescale(lr) == pytest.approx(2000 / (1 - mu), rel=1e-14)      # plain SGD's: 10x longer
    w = np.ones(3)
    opt = l2decay.SGD([w], lr=lr, momentum=mu, reg=rule)
    at = {}
    for t in range(1, 4001):
        opt.step([np.zeros(3)])
        at[t] = w[0]
    assert at[4000] / at[2000] == pytest.approx(math.exp(-1), rel=1e-2)
    # the decoupled rules' shrink does not go through the momentum
    for other in (Decoupled(0.5), Corrected(0.5, lr_max=0.1), Cautious(0.5), Decay(1e-3)):
        assert other.timescale(lr, momentum=mu) == other.timescale(lr)
    assert Decoupled.from_timescale(2000, lr=lr, momentum=mu) == Decoupled.from_timescale(2000, lr=lr)


@pytest.mark.parametrize("call,match", [
    (lambda: Decoupled.from_timescale(0, lr=0.1), r"^tau must be in \(0, inf\]"),
    (lambda: L2(0.1).timescale(0.1, momentum=1.0), r"^momentum must be in \[0, 1\), got 1.0"),
    (lambda: L2.from_timescale(10, lr=0.1, momentum=-0.5), r"^momentum must be in \[0, 1\)"),
    (lambda: Decoupled(0.1).timescale(0.1, momentum="0.9"), r"^momentum must be a real number, got str"),
    (lambda: Decoupled.from_timescale(-5, lr=0.1), r"^tau must be in"),
    (lambda: Decoupled.from_timescale(math.inf, lr=0.1), r"^tau must be finite"),
    (lambda: Cautious.from_timescale(10, lr=0), r"^lr must be in \(0, inf\]"),
    (lambda: Decoupled.from_timescale(10, lr=0.1, iterations_per_epoch=0), r"^iterations_per_epoch must be an int in"),
    (lambda: Decoupled(0.1).timescale(0.1, iterations_per_epoch=2.5), r"^iterations_per_epoch must be an int"),
    (lambda: Decay.from_timescale(0.5, lr=0.1), r"^Decay strength must be in \[0, 1\)"),
    (lambda: Cautious(-0.1), r"^Cautious strength must be in \[0, inf\]"),
    (lambda: Cautious(math.nan), r"^Cautious strength must be finite"),
    (lambda: Corrected(0.1, lr_max=0), r"^Corrected lr_max must be in \(0, inf\]"),
    (lambda: Corrected(math.inf), r"^Corrected strength must be finite"),
])
def test_bad_rules_and_timescales_are_refused_by_name(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


# ------------------------------------------------------------------ bad input in the steps -----
def test_an_lr_above_corrected_lr_max_is_refused_and_nothing_changes():
    w, g = [np.ones(5)], [np.ones(5)]
    with pytest.raises(ValueError, match=r"^lr 0\.2 is above Corrected\(0\.1, lr_max=0\.1\)'s lr_max 0\.1"):
        l2decay.sgd_step(w, g, lr=0.2, reg=Corrected(0.1, lr_max=0.1))
    assert np.array_equal(w[0], np.ones(5))
    opt = Adam(w, lr=0.05, reg=Corrected(0.1, lr_max=0.1))
    opt.step(g)
    before, state = w[0].copy(), {k: np.copy(v) for k, v in opt.state[0].items()}
    opt.param_groups[0]["lr"] = 0.3          # a schedule that overshoots lr_max
    with pytest.raises(ValueError, match=r"^param_groups\[0\]\.lr 0\.3 is above Corrected"):
        opt.step(g)
    assert np.array_equal(w[0], before)
    assert all(np.array_equal(opt.state[0][k], v) for k, v in state.items())


def test_corrected_without_lr_max_needs_an_initial_lr():
    w = [np.ones(3)]
    with pytest.raises(ValueError, match=r"^reg Corrected\(0\.1\) needs lr_max"):
        l2decay.adam_step(w, [np.ones(3)], [np.zeros(3)], [np.zeros(3)], step=1, lr=0.1, reg=Corrected(0.1))
    with pytest.raises(ValueError, match=r"^param_groups\[0\]\.reg Corrected\(0\.1\) needs lr_max"):
        SGD(w, lr=0.1, reg=Corrected(0.1)).step([np.ones(3)])
    assert np.array_equal(w[0], np.ones(3))
    torch = pytest.importorskip("torch")
    import l2decay.torch as lt
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    opt = lt.AdamW([p], lr=0.1, reg=Corrected(0.1))
    with pytest.raises(ValueError, match=r"^param_groups\[0\]\.reg Corrected\(0\.1\) needs lr_max.*initial_lr"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(3)) and not opt.state[p]
    opt.param_groups[0]["initial_lr"] = 0.05       # below the lr in force
    with pytest.raises(ValueError, match=r"^param_groups\[0\]\.lr 0\.1 is above Corrected\(0\.1\)'s lr_max 0\.05"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(3)) and not opt.state[p]


@pytest.mark.parametrize("reg", [Cautious(0.1), Corrected(0.1, lr_max=0.1)], ids=repr)
def test_sparse_steps_refuse_the_rules_without_a_lazy_form(reg):
    table = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"has no lazy form"):
        l2decay.SparseAdam(table, lr=0.01, reg=reg)
    assert np.array_equal(table, np.ones((4, 3)))


# ------------------------------------------------------------------ state dicts and reprs ------
@pytest.mark.parametrize("reg", [Cautious(0.25), Corrected(0.25, lr_max=0.5), Decoupled(0.25, lr_max=0.5)], ids=repr)
def test_rules_read_back_from_repr_and_numpy_state_dicts(tmp_path, reg):
    assert from_repr(repr(reg)) == reg and hash(from_repr(repr(reg))) == hash(reg)
    problem = Problem()
    full, half = problem.params(), problem.params()
    opt_full = Adam(full, lr=0.05, reg=reg)
    opt = Adam(half, lr=0.05, reg=reg)
    for _ in range(6):
        opt_full.step(problem.grads(full))
    for _ in range(3):
        opt.step(problem.grads(half))
    np.savez(tmp_path / "opt.npz", **opt.state_dict())
    resumed = [w.copy() for w in half]
    opt2 = Adam(resumed, lr=0.05)
    opt2.load_state_dict(dict(np.load(tmp_path / "opt.npz")))
    assert opt2.param_groups[0]["reg"] == reg
    for _ in range(3):
        opt2.step(problem.grads(resumed))
    assert all(np.array_equal(a, b) for a, b in zip(resumed, full))
