"""l2decay.convert against the libraries themselves: each one driven side by side with l2decay
from the same weights, on gradients computed from each side's own weights, for 300 steps.

The measure is the largest relative distance between the two trajectories over all steps,
``max_t |w_t - w'_t| / |w'_t|`` over all params at once.  Float64 runs must agree to 1e-12;
thinc's compiled Adam exists in float32 only, where the bound is float32 noise.  Where a naive
conversion (another rule or convention: the "old" one) differs, it is run too and must miss,
so each test could fail.  Run with ``-s`` to see the measured values (lines starting with
"measured"); the conversions page's table quotes them.

Each library is optional (the ``peers`` extra installs them all): its tests skip without it.
Keras runs in a subprocess per backend (torch, jax), since its backend and floatx are fixed
per process; this file is that subprocess's script too (``python test_convert_peers.py keras
BACKEND OUT``).
"""
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from l2decay import Decay, convert

STEPS = 300
TOL64 = 1e-12
# float32 noise: one float32 ulp (2**-23 relative) per step, accumulated over the run (3.6e-5)
TOL32 = STEPS * 2.0 ** -23


class Problem:
    """One least-squares problem per tensor: grad = scale*(A @ w - b), so each side's gradients
    depend on its own weights.  Shapes: a (6, 4) matrix, its bias (4,) and a vector (40,)."""

    def __init__(self, dtype=np.float64, seed=0, gscale=1.0, shapes=((6, 4), (4,), (40,))):
        rng = np.random.default_rng(seed)
        self.w0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
        self.A = [(rng.standard_normal((w.size, w.size)) / w.size ** 0.5 + np.eye(w.size)).astype(dtype)
                  for w in self.w0]
        self.b = [rng.standard_normal(w.size).astype(dtype) for w in self.w0]
        self.gscale = np.asarray(gscale, dtype)[()]

    def params(self):
        return [w.copy() for w in self.w0]

    def grads(self, params):
        return [(self.gscale * (A @ np.asarray(w).ravel() - b)).reshape(np.shape(w))
                for A, b, w in zip(self.A, self.b, params)]


def flat(params):
    return np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in params])


def max_rel(traj, ref):
    return max(float(np.linalg.norm(a - b) / np.linalg.norm(b)) for a, b in zip(traj, ref))


def run_l2decay(setting, problem, steps=STEPS, lrs=None, each=None):
    """l2decay's trajectory under `setting`: built by it, set_step (with the schedule's lr, or
    the keywords each(t)) before every step."""
    params = problem.params()
    opt = setting.build(params)
    traj = []
    for t in range(steps):
        setting.set_step(opt, **(each(t) if each is not None else {"lr": None if lrs is None else lrs[t]}))
        opt.step(problem.grads(params))
        traj.append(flat(params))
    return traj


def old(setting, **changes):
    """`setting` converted naively: another rule (reg, strength, scale) or other
    hyperparameters (any other keyword)."""
    fields = {k: v for k, v in changes.items() if k in ("reg", "strength", "scale")}
    hyper = {k: v for k, v in changes.items() if k not in fields}
    return dataclasses.replace(setting, hyper={**setting.hyper, **hyper}, **fields)


def measured(name, value, old_value=None):
    extra = "" if old_value is None else f"   (old conversion: {old_value:.2g})"
    print(f"\nmeasured {name}: {value:.2g}{extra}")


def check(name, diff, tol=TOL64, old_diff=None):
    measured(name, diff, old_diff)
    assert diff <= tol, f"{name}: l2decay differs from the library by {diff:.3g} (bound {tol:.1g})"
    if old_diff is not None:   # the test can tell a wrong conversion from a right one
        assert old_diff > 10 * tol, f"{name}: the old conversion is as close ({old_diff:.3g})"


def step_lrs(lr0):
    """An lr schedule: halved every 60 steps (a step schedule, as Keras' and torch's)."""
    return [lr0 * 0.5 ** (t // 60) for t in range(STEPS)]


# ---- torch ---------------------------------------------------------------------------------------
def run_torch(make, problem, lrs=None):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(w.copy()) for w in problem.w0]
    opt = make(params)
    traj = []
    for t in range(STEPS):
        if lrs is not None:
            for g in opt.param_groups:
                g["lr"] = lrs[t]
        for p, g in zip(params, problem.grads([p.numpy() for p in params])):
            p.grad = torch.from_numpy(g)
        opt.step()
        traj.append(flat([p.numpy() for p in params]))
    return traj


TORCH_CASES = {
    # id: (torch class, kwargs, lr schedule, the old conversion or None)
    "sgd-weight_decay": ("SGD", dict(lr=0.05, weight_decay=0.1), None, None),
    "sgd-momentum-nesterov-weight_decay": ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.1),
                                           None, None),
    "sgd-momentum-dampening-schedule": ("SGD", dict(lr=0.02, momentum=0.9, dampening=0.3, weight_decay=0.05),
                                        step_lrs(0.02), None),
    "adam-weight_decay": ("Adam", dict(lr=0.01, weight_decay=0.1), None, None),
    "adam-amsgrad-maximize": ("Adam", dict(lr=0.01, amsgrad=True, maximize=True, weight_decay=0.05), None, None),
    "adamw-defaults": ("AdamW", dict(lr=0.01), None, None),
    "adam-decoupled_weight_decay": ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), None,
                                    dict(reg="l2")),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_torch(case):
    torch = pytest.importorskip("torch")
    cls, kw, lrs, was = TORCH_CASES[case]
    problem = Problem()
    expected = run_torch(lambda ps: getattr(torch.optim, cls)(ps, **kw), problem, lrs)
    setting = convert.from_torch(cls, **kw)
    # the optimizer object converts to the same setting as its name and arguments
    assert convert.from_torch(getattr(torch.optim, cls)([torch.zeros(1)], **kw)) == setting
    old_diff = None if was is None else max_rel(run_l2decay(old(setting, **was), problem, lrs=lrs), expected)
    check(f"torch {case}", max_rel(run_l2decay(setting, problem, lrs=lrs), expected), old_diff=old_diff)


def test_torch_object_with_differing_groups_is_refused():
    torch = pytest.importorskip("torch")
    opt = torch.optim.AdamW([{"params": [torch.zeros(2, 2)]}, {"params": [torch.zeros(2)], "weight_decay": 0.0}])
    with pytest.raises(ValueError, match=r"param groups of this AdamW differ in \['weight_decay'\]"):
        convert.from_torch(opt)
    with pytest.raises(ValueError, match="no l2decay counterpart"):
        convert.from_torch(torch.optim.RMSprop([torch.zeros(1)]))


@pytest.mark.parametrize("cls,kw", [("SGD", dict(lr=0.02, momentum=0.9, weight_decay=0.05)),
                                    ("AdamW", dict(lr=0.01, weight_decay=0.1))])
def test_torch_object_under_one_cycle(cls, kw):
    """OneCycleLR cycles lr and momentum (SGD) or betas[0] (Adam): the conversion of the optimizer
    says so, and set_step carrying both each step reproduces torch; the lr alone does not."""
    torch = pytest.importorskip("torch")
    problem = Problem()
    params = [torch.tensor(w.copy()) for w in problem.w0]
    opt = getattr(torch.optim, cls)(params, **kw)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5 * kw["lr"], total_steps=STEPS + 1)
    setting = convert.from_torch(opt)
    key = "momentum" if cls == "SGD" else "betas"
    assert any("set_step(opt, lr=" in n for n in setting.notes)
    assert any(f"set_step(opt, {key}=" in n for n in setting.notes)
    values, expected = [], []
    for _ in range(STEPS):
        values.append({"lr": opt.param_groups[0]["lr"], key: opt.param_groups[0][key]})
        for p, g in zip(params, problem.grads([p.numpy() for p in params])):
            p.grad = torch.from_numpy(g)
        opt.step()
        sched.step()
        expected.append(flat([p.numpy() for p in params]))
    check(f"torch {cls} OneCycleLR lr and {key}", max_rel(run_l2decay(setting, problem, each=values.__getitem__),
                                                          expected),
          old_diff=max_rel(run_l2decay(setting, problem, each=lambda t: {"lr": values[t]["lr"]}), expected))


def test_torch_tensor_lr_of_another_dtype_is_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"lr as a torch\.float32 tensor cannot be reproduced .* float64"):
        convert.from_torch(torch.optim.AdamW([torch.zeros(1)], lr=torch.tensor(0.01)))
    with pytest.raises(ValueError, match=r"lr as a torch\.float32 tensor"):
        convert.from_torch("adamw", lr=torch.tensor(0.01))
    problem = Problem()     # a float64 tensor is torch's float arithmetic: exact
    lr = torch.tensor(0.01, dtype=torch.float64)
    expected = run_torch(lambda ps: torch.optim.AdamW(ps, lr=lr), problem)
    check("torch AdamW float64 tensor lr", max_rel(run_l2decay(convert.from_torch("adamw", lr=lr), problem),
                                                   expected))


# ---- scikit-learn's MLP --------------------------------------------------------------------------
def _sk():
    pytest.importorskip("sklearn")
    from sklearn.neural_network import MLPRegressor
    return MLPRegressor


def sk_data(n, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    y = np.sin(X @ rng.standard_normal((5, 2))) + 0.1 * rng.standard_normal((n, 2))
    return X, y, rng.uniform(0.2, 3.0, n)


def sk_run(est, X, y, sw, epochs):
    """scikit-learn's own fit for `epochs` epochs from this test's weights (warm_start keeps
    them; a fresh optimizer is made, as in a first fit): (initial weights, final weights,
    samples seen before)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning; a batch_size > n_samples is clipped
        est.set_params(max_iter=1).fit(X, y, sample_weight=sw)   # builds the layers
        rng = np.random.default_rng(5)
        est.coefs_ = [rng.uniform(-0.5, 0.5, c.shape) for c in est.coefs_]
        est.intercepts_ = [rng.uniform(-0.5, 0.5, c.shape) for c in est.intercepts_]
        w0 = [c.copy() for c in est.coefs_ + est.intercepts_]
        t0 = est.t_
        est.set_params(warm_start=True, max_iter=epochs).fit(X, y, sample_weight=sw)
    return w0, flat(est.coefs_ + est.intercepts_), t0


def sk_data_grads(twin, params, Xb, yb, swb):
    """The data part of scikit-learn's gradient at `params`, from its own backprop (a twin
    estimator with alpha=0): ``X.T @ delta / sw_sum``, in the order coefs then intercepts."""
    n_layers = len(params) // 2
    twin.coefs_, twin.intercepts_ = params[:n_layers], params[n_layers:]
    units = [Xb.shape[1]] + list(twin.hidden_layer_sizes) + [yb.shape[1]]
    activations = [Xb] + [None] * (len(units) - 1)
    deltas = [None] * (len(activations) - 1)
    coef_grads = [np.empty((a, b)) for a, b in zip(units[:-1], units[1:])]
    intercept_grads = [np.empty(b) for b in units[1:]]
    _, coef_grads, intercept_grads = twin._backprop(Xb, yb, swb, activations, deltas, coef_grads,
                                                   intercept_grads)
    return [g.copy() for g in coef_grads + intercept_grads]


def l2decay_fit(setting, est, w0, X, y, sw, epochs, batch_rows, t0=0, batch_of=None):
    """The same training in l2decay: scikit-learn's batches (in order, no shuffling), its data
    gradients, and ``set_step(opt, batch=...)`` with each batch's rows or sample-weight sum
    (or `batch_of(rows, weights)`, to run the old conversion)."""
    twin = type(est)(**{**est.get_params(), "alpha": 0.0, "warm_start": False, "max_iter": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twin.fit(X, y)
    params = [w.copy() for w in w0]
    n = X.shape[0]
    batch_of = batch_of or (lambda rows, weights: rows if weights is None else weights.sum())
    opt = None
    t = t0
    for _ in range(epochs):
        for start in range(0, n, batch_rows):
            rows = slice(start, min(start + batch_rows, n))
            swb = None if sw is None else sw[rows]
            batch = batch_of(rows.stop - rows.start, swb)
            if opt is None:
                opt = setting.build(params, batch=batch)
            setting.set_step(opt, batch=batch)
            opt.step(sk_data_grads(twin, params, X[rows], y[rows], swb))
        t += n
        if est.learning_rate == "invscaling":   # scikit-learn's SGDOptimizer.iteration_ends
            setting.set_step(opt, lr=est.learning_rate_init / (t + 1) ** est.power_t)
    return flat(params)


SK_CASES = {
    # id: (the estimator's optimizer arguments, n_samples, with sample weights?)
    "sgd-n150-batch32": (dict(solver="sgd", batch_size=32, learning_rate_init=0.05), 150, False),
    "adam-n150-batch32": (dict(solver="adam", batch_size=32, learning_rate_init=0.01), 150, False),
    "sgd-n150-batch30-divides": (dict(solver="sgd", batch_size=30, learning_rate_init=0.05), 150, False),
    "sgd-sample_weight": (dict(solver="sgd", batch_size=32, learning_rate_init=0.05), 150, True),
    "adam-sample_weight": (dict(solver="adam", batch_size=32, learning_rate_init=0.01), 150, True),
    "sgd-batch_size-above-n": (dict(solver="sgd", batch_size=500, learning_rate_init=0.05), 150, False),
    "adam-batch_size-auto-n250": (dict(solver="adam", learning_rate_init=0.01), 250, False),
    "sgd-invscaling-momentum": (dict(solver="sgd", batch_size=32, learning_rate_init=0.05,
                                     learning_rate="invscaling", power_t=0.3), 150, False),
    "sgd-no-nesterov": (dict(solver="sgd", batch_size=32, learning_rate_init=0.05, nesterovs_momentum=False),
                        150, False),
}


def test_sklearn_early_stopping_is_refused():
    """early_stopping=True fits on a validation split of the rows, so other batches: refused
    with the reason, from the estimator and by name."""
    MLPRegressor = _sk()
    with pytest.raises(ValueError, match="early_stopping=True cannot be reproduced .* validation_fraction"):
        convert.from_sklearn_mlp(MLPRegressor(solver="adam", early_stopping=True))
    with pytest.raises(ValueError, match="early_stopping=True cannot be reproduced"):
        convert.from_sklearn_mlp("sgd", early_stopping=True)
    assert convert.from_sklearn_mlp(MLPRegressor(solver="adam")) == convert.from_sklearn_mlp("adam")


@pytest.mark.parametrize("case", sorted(SK_CASES))
def test_sklearn_mlp_fit(case):
    """scikit-learn's own MLPRegressor.fit, 60 epochs (300 or more steps), against l2decay on
    its batches with the per-batch rule; the old conversion, L2(alpha/batch_size), misses
    whenever a batch is not batch_size rows (the last one, sample weights, 'auto', clipping)."""
    MLPRegressor = _sk()
    kw, n, weighted = SK_CASES[case]
    X, y, sw = sk_data(n)
    sw = sw if weighted else None
    epochs = 60
    est = MLPRegressor(hidden_layer_sizes=(8,), activation="tanh", alpha=0.5, shuffle=False, random_state=0,
                       tol=0.0, n_iter_no_change=10 ** 6, **kw)
    w0, expected, t0 = sk_run(est, X, y, sw, epochs)
    setting = convert.from_sklearn_mlp(est)
    assert setting == convert.from_sklearn_mlp(kw["solver"], **{k: v for k, v in kw.items() if k != "solver"},
                                               alpha=0.5)
    rows = min(200, n) if est.batch_size == "auto" else min(est.batch_size, n)
    got = l2decay_fit(setting, est, w0, X, y, sw, epochs, rows, t0)
    diff = float(np.linalg.norm(got - expected) / np.linalg.norm(expected))
    nominal = 200 if est.batch_size == "auto" else est.batch_size
    was = l2decay_fit(setting, est, w0, X, y, sw, epochs, rows, t0, batch_of=lambda rows, weights: nominal)
    old_diff = float(np.linalg.norm(was - expected) / np.linalg.norm(expected))
    if case.endswith("divides"):   # every batch is batch_size rows: the old conversion held here
        measured(f"scikit-learn {case}", diff)
        assert diff <= TOL64 and old_diff <= TOL64
    else:
        check(f"scikit-learn {case}", diff, old_diff=old_diff)


def test_sklearn_sgd_optimizer_under_an_lr_schedule():
    """scikit-learn's SGDOptimizer (the sgd solver's step) with its learning_rate changed before
    every step: its velocity holds -lr*g (momentum_form "keras"); torch's form misses."""
    _sk()
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer
    problem = Problem()
    lrs = step_lrs(0.05)
    for nesterov in (True, False):
        params = problem.params()
        opt = SGDOptimizer(params, learning_rate_init=0.05, momentum=0.9, nesterov=nesterov)
        expected = []
        for t in range(STEPS):
            opt.learning_rate = lrs[t]
            opt.update_params(params, problem.grads(params))
            expected.append(flat(params))
        setting = convert.from_sklearn_mlp("sgd", learning_rate_init=0.05, momentum=0.9,
                                           nesterovs_momentum=nesterov, alpha=0.0)
        old_diff = max_rel(run_l2decay(old(setting, momentum_form="torch"), problem, lrs=lrs), expected)
        check(f"scikit-learn SGDOptimizer momentum lr-schedule nesterov={nesterov}",
              max_rel(run_l2decay(setting, problem, lrs=lrs), expected), old_diff=old_diff)


@pytest.mark.parametrize("eps,gscale", [(1e-8, 1.0), (1e-3, 1.0), (1e-8, 1e-6)],
                         ids=["eps1e-8", "eps1e-3", "small-grads"])
def test_sklearn_adam_optimizer(eps, gscale):
    """scikit-learn's AdamOptimizer adds epsilon to sqrt(v) with the bias correction in the step
    size (eps_form "keras"); torch's form misses when eps matters (eps 1e-3, small gradients)."""
    _sk()
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer
    problem = Problem(gscale=gscale)
    params = problem.params()
    opt = AdamOptimizer(params, learning_rate_init=0.01, epsilon=eps)
    expected = []
    for _ in range(STEPS):
        opt.update_params(params, problem.grads(params))
        expected.append(flat(params))
    setting = convert.from_sklearn_mlp("adam", learning_rate_init=0.01, epsilon=eps, alpha=0.0)
    diff = max_rel(run_l2decay(setting, problem), expected)
    old_diff = max_rel(run_l2decay(old(setting, eps_form="torch"), problem), expected)
    if eps == 1e-8 and gscale == 1.0:   # eps is negligible against sqrt(v): both forms agree
        measured("scikit-learn AdamOptimizer eps1e-8", diff)
        assert diff <= TOL64
    else:
        check(f"scikit-learn AdamOptimizer eps={eps} grads*{gscale}", diff, old_diff=old_diff)


# ---- thinc ---------------------------------------------------------------------------------------
def run_thinc(opt, problem, lr_scale=1.0):
    """thinc's trajectory: its optimizer called per param, as thinc's models call it."""
    traj = []
    params = problem.params()
    for _ in range(STEPS):
        grads = problem.grads(params)
        for k, (p, g) in enumerate(zip(params, grads)):
            # (thinc writes, and zeroes, the gradient)
            params[k], _ = opt((0, f"param{k}"), p, g.copy(), lr_scale=lr_scale)
        opt.step_schedules()
        traj.append(flat(params))
    return traj


THINC_CASES = {
    # id: (thinc optimizer, kwargs, dtype, the old conversion or None)
    "sgd-L2-coupled": ("SGD", dict(learn_rate=0.05, L2=0.1, L2_is_weight_decay=False), np.float64, None),
    "sgd-L2-weight-decay": ("SGD", dict(learn_rate=0.05, L2=0.1), np.float64, dict(reg="decoupled", scale=None)),
    "adam-L2-weight-decay": ("Adam", dict(learn_rate=0.01, L2=0.1), np.float32, dict(reg="decoupled", scale=None)),
    "adam-L2-coupled": ("Adam", dict(learn_rate=0.01, L2=0.1, L2_is_weight_decay=False), np.float32, None),
    "adam-eps1e-3": ("Adam", dict(learn_rate=0.01, eps=1e-3), np.float32, dict(eps_form="torch")),
}


@pytest.mark.parametrize("case", sorted(THINC_CASES))
def test_thinc(case):
    """thinc's Optimizer (grad_clip=0, use_averages=False: what l2decay can reproduce).  Its
    compiled Adam is float32 only: there both sides are also held to the float64 answer."""
    thinc_api = pytest.importorskip("thinc.api")
    name, kw, dtype, was = THINC_CASES[case]
    kw = dict(kw, grad_clip=0.0, use_averages=False)
    problem = Problem(dtype)
    expected = run_thinc(getattr(thinc_api, name)(**kw), problem)
    setting = convert.from_thinc(name, **kw)
    assert convert.from_thinc(getattr(thinc_api, name)(**kw)) == setting
    diff = max_rel(run_l2decay(setting, problem), expected)
    old_diff = None if was is None else max_rel(run_l2decay(old(setting, **was), problem), expected)
    tol = TOL64 if dtype == np.float64 else TOL32
    check(f"thinc {case} {np.dtype(dtype).name}", diff, tol, old_diff)
    if dtype == np.float32:   # both within float32 noise of the exact (float64) trajectory
        exact = run_l2decay(setting, Problem(np.float64))
        assert max_rel(expected, exact) <= tol and max_rel(run_l2decay(setting, problem), exact) <= tol


def test_thinc_weight_decay_follows_an_lr_schedule():
    """thinc decays by lr*L2 at the step's lr: set_step(opt, lr=...) keeps Decay(lr*L2) in step."""
    thinc_api = pytest.importorskip("thinc.api")
    lrs = step_lrs(0.05)
    problem = Problem()
    expected = run_thinc(thinc_api.SGD(learn_rate=list(lrs), L2=0.1, grad_clip=0.0, use_averages=False), problem)
    setting = convert.from_thinc("sgd", learn_rate=lrs[0], L2=0.1, grad_clip=0.0, use_averages=False)
    old_diff = max_rel(run_l2decay(old(setting, scale=None), problem, lrs=lrs), expected)
    check("thinc sgd-L2-weight-decay lr-schedule", max_rel(run_l2decay(setting, problem, lrs=lrs), expected),
          old_diff=old_diff)


def test_thinc_object_with_an_lr_schedule():
    thinc_api = pytest.importorskip("thinc.api")
    opt = thinc_api.SGD(learn_rate=[0.3, 0.2, 0.1], L2=0.01, grad_clip=0.0, use_averages=False)
    s = convert.from_thinc(opt)
    assert s.hyper["lr"] == 0.3 and s.rule() == Decay(0.3 * 0.01)
    assert any("learn_rate is a schedule" in n for n in s.notes)
    opt = thinc_api.Adam(beta1=[0.9, 0.8], grad_clip=0.0, use_averages=False)
    with pytest.raises(ValueError, match="a schedule for beta1 cannot be reproduced"):
        convert.from_thinc(opt)


def test_thinc_lr_scale():
    """thinc's calls may scale the lr (lr_scale), the decay's too: converted with it."""
    thinc_api = pytest.importorskip("thinc.api")
    kw = dict(learn_rate=0.05, L2=0.1, grad_clip=0.0, use_averages=False)
    problem = Problem()
    expected = run_thinc(thinc_api.SGD(**kw), problem, lr_scale=0.5)
    setting = convert.from_thinc("sgd", lr_scale=0.5, **kw)
    assert convert.from_thinc(thinc_api.SGD(**kw), lr_scale=0.5) == setting
    assert setting.hyper["lr"] == 0.025 and any("lr_scale=0.5" in n for n in setting.notes)
    check("thinc sgd-L2-weight-decay lr_scale=0.5", max_rel(run_l2decay(setting, problem), expected),
          old_diff=max_rel(run_l2decay(convert.from_thinc("sgd", **kw), problem), expected))


def test_thinc_defaults_are_refused():
    thinc_api = pytest.importorskip("thinc.api")
    with pytest.raises(ValueError, match=r"grad_clip=1\.0 .* and use_averages=True .* cannot be reproduced"):
        convert.from_thinc(thinc_api.Adam())
    with pytest.raises(ValueError, match="l2decay has no RAdam"):
        convert.from_thinc(thinc_api.RAdam(grad_clip=0.0, use_averages=False))


# ---- optax ---------------------------------------------------------------------------------------
def run_optax(tx, problem):
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    with jax.enable_x64(True):
        params = [jax.numpy.asarray(w) for w in problem.w0]
        state = tx.init(params)
        traj = []
        for _ in range(STEPS):
            grads = [jax.numpy.asarray(g) for g in problem.grads([np.asarray(p) for p in params])]
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            traj.append(flat([np.asarray(p) for p in params]))
    return traj


def optax_chain(optax, chain):
    """The optax transformation a (name, kwargs) chain describes, built by optax itself."""
    return optax.chain(*[getattr(optax, name)(**kw) for name, kw in chain])


OPTAX_CASES = {
    # id: (the chain, in optax.chain order; was the old conversion Decay(c), c the decay per step?)
    "sgd-momentum-nesterov": ([("sgd", dict(learning_rate=0.02, momentum=0.9, nesterov=True))], False),
    "add_decayed_weights-then-sgd": ([("add_decayed_weights", dict(weight_decay=0.1)),
                                      ("sgd", dict(learning_rate=0.02, momentum=0.9))], False),
    "add_decayed_weights-then-adam": ([("add_decayed_weights", dict(weight_decay=0.1)),
                                       ("adam", dict(learning_rate=0.01))], False),
    "adam-eps1e-3": ([("adam", dict(learning_rate=0.01, eps=1e-3))], False),
    "adamw-defaults": ([("adamw", dict(learning_rate=0.01))], False),
    "adamw-0.1": ([("adamw", dict(learning_rate=0.01, weight_decay=0.1))], False),
    "sgd-then-add_decayed_weights(-lr*wd)": ([("sgd", dict(learning_rate=0.05, momentum=0.9)),
                                             ("add_decayed_weights", dict(weight_decay=-0.05 * 0.01))], True),
    "adam-then-add_decayed_weights(-c)": ([("adam", dict(learning_rate=0.01)),
                                          ("add_decayed_weights", dict(weight_decay=-1e-3))], True),
}


@pytest.mark.parametrize("case", sorted(OPTAX_CASES))
def test_optax(case):
    optax = pytest.importorskip("optax")
    chain, was_decay = OPTAX_CASES[case]
    problem = Problem()
    expected = run_optax(optax_chain(optax, chain), problem)
    setting = convert.from_optax(chain)
    old_diff = None
    if was_decay:   # Decay(c) shrinks the updated weights; optax shrinks the weights before the step
        c = -chain[1][1]["weight_decay"]
        old_diff = max_rel(run_l2decay(old(setting, reg="decay", strength=c, scale=None), problem), expected)
    check(f"optax {case}", max_rel(run_l2decay(setting, problem), expected), old_diff=old_diff)


def test_optax_decay_after_the_lr_under_a_schedule():
    """chain(sgd(schedule), add_decayed_weights(-c)) shrinks by c*w per step whatever the lr:
    Decoupled(c/lr) at each step's lr (set_step)."""
    optax = pytest.importorskip("optax")
    lrs = step_lrs(0.05)
    problem = Problem()
    tx = optax.chain(optax.sgd(lambda count: 0.05 * 0.5 ** (count // 60), momentum=0.9),
                     optax.add_decayed_weights(-1e-3))
    expected = run_optax(tx, problem)
    setting = convert.from_optax([("sgd", dict(learning_rate=lrs[0], momentum=0.9)),
                                  ("add_decayed_weights", dict(weight_decay=-1e-3))])
    fixed = dataclasses.replace(setting, strength=setting.strength / lrs[0], scale=None)  # Decoupled(c/lr0)
    check("optax sgd-then-add_decayed_weights(-c) lr-schedule",
          max_rel(run_l2decay(setting, problem, lrs=lrs), expected),
          old_diff=max_rel(run_l2decay(fixed, problem, lrs=lrs), expected))


def test_optax_inject_hyperparams_changed_mid_run():
    """inject_hyperparams(adamw) with its weight_decay and lr changed mid-run: converted through
    adamw, with set_step carrying both from state.hyperparams; the lr alone misses."""
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    with pytest.raises(ValueError, match="through what it wraps"):
        convert.from_optax("inject_hyperparams", learning_rate=0.01)
    problem = Problem()
    values, expected = [], []
    with jax.enable_x64(True):
        tx = optax.inject_hyperparams(optax.adamw)(learning_rate=0.01, weight_decay=0.1)
        params = [jax.numpy.asarray(w) for w in problem.w0]
        state = tx.init(params)
        for t in range(STEPS):
            if t == 100:
                state.hyperparams["weight_decay"] = jax.numpy.asarray(0.5)
            if t == 200:
                state.hyperparams["learning_rate"] = jax.numpy.asarray(0.003)
            values.append({"lr": float(state.hyperparams["learning_rate"]),
                           "strength": float(state.hyperparams["weight_decay"])})
            grads = [jax.numpy.asarray(g) for g in problem.grads([np.asarray(p) for p in params])]
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            expected.append(flat([np.asarray(p) for p in params]))
    setting = convert.from_optax("adamw", learning_rate=0.01, weight_decay=0.1)
    check("optax inject_hyperparams(adamw) weight_decay and lr changed",
          max_rel(run_l2decay(setting, problem, each=values.__getitem__), expected),
          old_diff=max_rel(run_l2decay(setting, problem, each=lambda t: {"lr": values[t]["lr"]}), expected))


def test_optax_schedule_values_are_float32():
    """optax evaluates a schedule at its int32 count: float32 even with x64, as from_optax's
    docstring says; the values it gives reproduce optax (whose update runs eagerly here), the
    float64 formula's do not."""
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    schedule = optax.exponential_decay(0.05, transition_steps=7, decay_rate=0.9)
    problem = Problem()
    expected = run_optax(optax.sgd(schedule, momentum=0.9), problem)
    with jax.enable_x64(True):
        given = [float(schedule(jax.numpy.int32(t))) for t in range(STEPS)]
    formula = [0.05 * 0.9 ** (t / 7) for t in range(STEPS)]
    setting = convert.from_optax("sgd", learning_rate=given[0], momentum=0.9)
    check("optax sgd exponential_decay at int32 counts", max_rel(run_l2decay(setting, problem, lrs=given), expected),
          old_diff=max_rel(run_l2decay(setting, problem, lrs=formula), expected))


# ---- Keras 3, one subprocess per backend ---------------------------------------------------------
KERAS_CASES = {
    # id: (class, kwargs, gradient scale, lr schedule?, floatx, L2 regularizer, the old conversion)
    "sgd-momentum-lr-schedule": ("SGD", dict(learning_rate=0.05, momentum=0.9), 1.0, True, "float64", None,
                                 dict(momentum_form="torch")),
    "sgd-nesterov-weight_decay": ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
                                  1.0, False, "float64", None, None),
    "adam-eps1e-3": ("Adam", dict(learning_rate=0.01, epsilon=1e-3), 1.0, False, "float64", None,
                     dict(eps_form="torch")),
    "adam-small-gradients": ("Adam", dict(learning_rate=0.01), 1e-6, False, "float64", None, dict(eps_form="torch")),
    "adamw-defaults": ("AdamW", dict(learning_rate=0.01), 1.0, False, "float64", None, None),
    "adamw-eps1e-3-lr-schedule": ("AdamW", dict(learning_rate=0.01, epsilon=1e-3, weight_decay=0.05), 1.0, True,
                                  "float64", None, dict(eps_form="torch")),
    "adam-amsgrad-weight_decay": ("Adam", dict(learning_rate=0.01, amsgrad=True, weight_decay=0.05), 1.0, False,
                                  "float64", None, None),
    "sgd-momentum-L2-regularizer": ("SGD", dict(learning_rate=0.05, momentum=0.9), 1.0, False, "float64", 0.05,
                                    None),
    "adam-L2-regularizer": ("Adam", dict(learning_rate=0.01), 1.0, False, "float64", 0.05, None),
    # Keras' default floatx rounds the learning rate to float32, float64 weights or not
    "sgd-momentum-floatx32": ("SGD", dict(learning_rate=0.05, momentum=0.9), 1.0, False, "float32", None,
                              "unrounded"),
    "adam-floatx32": ("Adam", dict(learning_rate=0.01), 1.0, False, "float32", None, "unrounded"),
    # ... and the torch backend computes the decay factor 1 - wd*lr in float32: a limit (below)
    "adamw-floatx32": ("AdamW", dict(learning_rate=0.01, weight_decay=0.05), 1.0, False, "float32", None, None),
}
KERAS_BACKENDS = ("torch", "jax")


def keras_worker(backend, out):
    """The subprocess: every Keras case with `backend`, against l2decay; writes
    {case: [difference, old conversion's difference or None, object == name setting]}."""
    import keras

    assert keras.backend.backend() == backend
    results = {}
    for case, (cls, kw, gscale, schedule, floatx, l2, was) in KERAS_CASES.items():
        keras.config.set_floatx(floatx)
        problem = Problem(gscale=gscale)
        lrs = step_lrs(kw["learning_rate"]) if schedule else None
        reg = keras.regularizers.L2(l2) if l2 else None
        opt = getattr(keras.optimizers, cls)(**kw)
        variables = [keras.Variable(w.copy(), dtype="float64") for w in problem.w0]
        expected = []
        for t in range(STEPS):
            if lrs is not None:
                opt.learning_rate = lrs[t]
            values = [keras.ops.convert_to_numpy(v) for v in variables]
            grads = problem.grads(values)
            if reg is not None:   # the regularizer's gradient, by the backend's autodiff, on kernels
                grads = [g + _autodiff(backend, reg, w) if w.ndim >= 2 else g for g, w in zip(grads, values)]
            opt.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
            expected.append(flat([keras.ops.convert_to_numpy(v) for v in variables]))
        setting = convert.from_keras(cls, kernel_regularizer=reg, floatx=floatx, **kw)
        same = convert.from_keras(getattr(keras.optimizers, cls)(**kw), kernel_regularizer=reg) == setting
        run_lrs = None if lrs is None else [float(getattr(np, floatx)(x)) for x in lrs]
        diff = max_rel(run_l2decay(setting, problem, lrs=run_lrs), expected)
        old_diff = None
        if was == "unrounded":
            old_diff = max_rel(run_l2decay(old(setting, lr=kw["learning_rate"]), problem), expected)
        elif was is not None:
            old_diff = max_rel(run_l2decay(old(setting, **was), problem, lrs=run_lrs), expected)
        results[case] = [diff, old_diff, same]
    keras.config.set_floatx("float32")
    objects = {}
    try:
        convert.from_keras(keras.optimizers.RMSprop())
    except ValueError as exc:
        objects["rmsprop"] = str(exc)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    s = convert.from_keras(keras.optimizers.Adam(learning_rate=schedule))
    objects["schedule"] = [s.hyper["lr"], list(s.notes)]
    opt = keras.optimizers.AdamW()
    opt.exclude_from_weight_decay(var_names=["bias"])
    objects["excluded"] = list(convert.from_keras(opt).notes)
    results["_objects"] = objects
    with open(out, "w") as f:
        json.dump(results, f)


def _autodiff(backend, regularizer, w):
    if backend == "torch":
        import torch
        x = torch.tensor(w, requires_grad=True)
        regularizer(x).backward()
        return x.grad.numpy()
    import jax
    return np.asarray(jax.grad(lambda x: regularizer(x))(w))


@pytest.fixture(scope="module", params=KERAS_BACKENDS)
def keras_results(request, tmp_path_factory):
    backend = request.param
    # not imported here: Keras fixes its backend at import, from KERAS_BACKEND
    for module in ("keras", backend):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    out = tmp_path_factory.mktemp(f"keras-{backend}") / "results.json"
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_ENABLE_X64="1")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "keras", backend, str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        return backend, json.load(f)


@pytest.mark.parametrize("case", sorted(c for c in KERAS_CASES if c != "adamw-floatx32"))
def test_keras(keras_results, case):
    backend, results = keras_results
    diff, old_diff, same = results[case]
    assert same, "the Keras optimizer object converts to another setting than its name and arguments"
    check(f"keras[{backend}] {case}", diff, old_diff=old_diff)


def test_keras_objects(keras_results):
    """What a Keras optimizer object holds beyond its config: a schedule's current value, its
    exclusions from weight decay; and another optimizer's class is refused."""
    _, results = keras_results
    objects = results["_objects"]
    assert "no l2decay counterpart: l2decay converts keras.optimizers.SGD, Adam and AdamW" in objects["rmsprop"]
    lr, notes = objects["schedule"]
    assert lr == pytest.approx(0.1, rel=1e-7)   # the value the backend computes, float32 or not
    assert any("schedule" in n and "set_step" in n for n in notes)
    assert any("exclude_from_weight_decay" in n for n in objects["excluded"])


def test_keras_float32_decay_factor(keras_results):
    """float64 weights under floatx float32 with weight decay: the jax backend reproduces (the
    lr is rounded to float32 as Keras holds it); the torch backend's factor 1 - wd*lr is itself
    rounded to float32 (TorchOptimizer._apply_weight_decay), which no l2decay lr reproduces:
    a float32 rounding per step, not a convention.  Set floatx float64 for float64 weights."""
    backend, results = keras_results
    diff = results["adamw-floatx32"][0]
    measured(f"keras[{backend}] adamw-floatx32 (float64 weights)", diff)
    if backend == "jax":
        assert diff <= TOL64
    else:
        assert 1e-12 < diff < TOL32


if __name__ == "__main__":   # the Keras subprocess
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if sys.argv[1] == "keras":
        keras_worker(sys.argv[2], sys.argv[3])
