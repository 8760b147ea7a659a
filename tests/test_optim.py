"""SGD and Adam against numpy references and torch; the rules' equivalences and divergences."""
import io

import numpy as np
import pytest

import l2decay
import numpy_reference as ref
from l2decay import SGD, Adam, Decay, Decoupled, L2

SHAPES = [(7, 5), (5,), (1,), (0,), (300,)]
RULES = {"none": None, "l2": L2(0.05), "decoupled": Decoupled(0.05), "decay": Decay(0.01)}
RTOL = {np.float32: 1e-4, np.float64: 1e-11}


class Problem:
    """A least-squares problem per tensor: grad = A @ w - b, so trajectories depend on w."""

    def __init__(self, dtype, seed=0, shapes=SHAPES):
        rng = np.random.default_rng(seed)
        self.w0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
        self.A = [(rng.standard_normal((w.size, w.size)) / max(1, w.size) ** 0.5 + np.eye(w.size)).astype(dtype) for w in self.w0]
        self.b = [rng.standard_normal(w.size).astype(dtype) for w in self.w0]

    def params(self):
        return [w.copy() for w in self.w0]

    def grads(self, params):
        return [(A @ w.ravel() - b).reshape(w.shape).astype(w.dtype) for A, b, w in zip(self.A, self.b, params)]


def run(opt_params, opt, problem, steps):
    for _ in range(steps):
        opt.step(problem.grads(opt_params))
    return opt_params


def reg_tuple(reg):
    return ("none", 0.0) if reg is None else (reg.name, reg.strength)


SGD_CONFIGS = [
    dict(momentum=0.0),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.3),
    dict(momentum=0.8, nesterov=True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=str)
def test_sgd_matches_reference(dtype, rule, cfg):
    problem = Problem(dtype)
    p1, p2 = problem.params(), problem.params()
    run(p1, SGD(p1, lr=0.05, reg=RULES[rule], **cfg), problem, 40)
    run(p2, ref.SGD(p2, lr=0.05, reg=reg_tuple(RULES[rule]), **cfg), problem, 40)
    for k, (a, b) in enumerate(zip(p1, p2)):
        np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype], err_msg=f"tensor {k} {rule} {cfg}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("cfg", [dict(), dict(betas=(0.5, 0.9), eps=1e-3)], ids=str)
def test_adam_matches_reference(dtype, rule, cfg):
    problem = Problem(dtype)
    p1, p2 = problem.params(), problem.params()
    run(p1, Adam(p1, lr=0.01, reg=RULES[rule], **cfg), problem, 40)
    run(p2, ref.Adam(p2, lr=0.01, reg=reg_tuple(RULES[rule]), **cfg), problem, 40)
    for k, (a, b) in enumerate(zip(p1, p2)):
        np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype], err_msg=f"tensor {k} {rule} {cfg}")


def test_l2_writes_grads_and_other_rules_do_not():
    problem = Problem(np.float64)
    for reg, written in ((L2(0.1), True), (Decoupled(0.1), False), (Decay(0.1), False), (None, False)):
        for cls in (SGD, Adam):
            p = problem.params()
            g = problem.grads(p)
            g0 = [x.copy() for x in g]
            cls(p, lr=0.01, reg=reg).step(g)
            changed = any(not np.array_equal(a, b) for a, b in zip(g, g0))
            assert changed == written, (cls.__name__, reg)


# ---- torch (optional extra): the same conventions as torch.optim ----------------------------
def _torch_run(torch_opt_factory, problem, steps):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(w.copy(), requires_grad=False) for w in problem.w0]
    opt = torch_opt_factory(params)
    for _ in range(steps):
        for p, g in zip(params, problem.grads([p.numpy() for p in params])):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
    return [p.numpy() for p in params]


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=str)
def test_sgd_l2_equals_torch_sgd_weight_decay(cfg):
    torch = pytest.importorskip("torch")
    problem = Problem(np.float64)
    expected = _torch_run(lambda ps: torch.optim.SGD(ps, lr=0.05, weight_decay=0.05, **cfg), problem, 40)
    p = problem.params()
    run(p, SGD(p, lr=0.05, reg=L2(0.05), **cfg), problem, 40)
    for a, b in zip(p, expected):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("torch_name,reg", [("Adam", L2(0.05)), ("AdamW", Decoupled(0.05))])
def test_adam_equals_torch(torch_name, reg):
    torch = pytest.importorskip("torch")
    problem = Problem(np.float64)
    cls = getattr(torch.optim, torch_name)
    expected = _torch_run(lambda ps: cls(ps, lr=0.01, weight_decay=0.05), problem, 40)
    p = problem.params()
    run(p, Adam(p, lr=0.01, reg=reg), problem, 40)
    for a, b in zip(p, expected):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# ---- equivalences (plain SGD) and divergences (momentum, Adam) ------------------------------
def test_plain_sgd_l2_equals_decoupled():
    problem = Problem(np.float64, seed=1)
    p1, p2 = problem.params(), problem.params()
    run(p1, SGD(p1, lr=0.02, reg=L2(0.3)), problem, 500)
    run(p2, SGD(p2, lr=0.02, reg=l2decay.convert.l2_to_decoupled(0.3)), problem, 500)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_plain_sgd_decay_equals_converted_l2():
    problem = Problem(np.float64, seed=2)
    d, lr = 0.01, 0.05
    reg, lr2 = l2decay.convert.decay_to_l2(d, lr)
    p1, p2 = problem.params(), problem.params()
    run(p1, SGD(p1, lr=lr, reg=Decay(d)), problem, 500)
    run(p2, SGD(p2, lr=lr2, reg=reg), problem, 500)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    back, lr3 = l2decay.convert.l2_to_decay(reg.strength, lr2)
    assert back.strength == pytest.approx(d, rel=1e-14) and lr3 == pytest.approx(lr, rel=1e-14)


def _divergence(cls, reg_a, reg_b, steps=300, **kw):
    problem = Problem(np.float64, seed=3)
    p1, p2 = problem.params(), problem.params()
    run(p1, cls(p1, reg=reg_a, **kw), problem, steps)
    run(p2, cls(p2, reg=reg_b, **kw), problem, steps)
    num = sum(float(np.sum((a - b) ** 2)) for a, b in zip(p1, p2)) ** 0.5
    den = sum(float(np.sum(a ** 2)) for a in p1) ** 0.5
    return num / den


def test_rules_diverge_under_momentum_and_adam():
    same = _divergence(SGD, L2(0.3), Decoupled(0.3), lr=0.02)
    momentum = _divergence(SGD, L2(0.3), Decoupled(0.3), lr=0.02, momentum=0.9)
    adam = _divergence(Adam, L2(0.3), Decoupled(0.3), lr=0.02)
    assert same < 1e-12
    # With momentum the L2 term passes through the buffer and is amplified by 1/(1 - mu) in
    # steady state, decoupled decay is not: the fixed points differ (g = -lam*w vs
    # g = -lam*(1 - mu)*w).  Adam divides the L2 term by sqrt(v); decoupled decay it does not.
    assert momentum > 1e-2
    assert adam > 1e-2


# ---- parameter groups, state ----------------------------------------------------------------
def test_param_groups_and_exclude_1d(capsys):
    problem = Problem(np.float64)
    p = problem.params()
    groups = l2decay.exclude_1d(p, L2(0.1), names=["W1", "b1", "c", "d", "e"])
    out = capsys.readouterr().out
    assert "regularized with L2(0.1): 1 tensors, 35 weights: W1 (7, 5)" in out
    assert "not regularized: 4 tensors" in out
    opt = SGD(groups, lr=0.1, momentum=0.5)
    assert opt.param_groups[0]["reg"] == L2(0.1) and opt.param_groups[1]["reg"] is None
    ordered = groups[0]["params"] + groups[1]["params"]
    expected = [x.copy() for x in ordered]
    grads = problem.grads(problem.params())
    gmap = dict(zip(map(id, p), grads))
    g_ordered = [gmap[id(x)] for x in ordered]
    r = ref.SGD(expected[:1], lr=0.1, momentum=0.5, reg=("l2", 0.1))
    r2 = ref.SGD(expected[1:], lr=0.1, momentum=0.5)
    opt.step([g.copy() for g in g_ordered])
    r.step([g_ordered[0].copy()])
    r2.step([g.copy() for g in g_ordered[1:]])
    for a, b in zip(ordered, expected):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_group_overrides_lr():
    a, b = np.ones(3), np.ones(3)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    opt.step([np.ones(3), np.ones(3)])
    np.testing.assert_allclose(a, 0.9)
    np.testing.assert_allclose(b, 0.5)


@pytest.mark.parametrize("cls,kw", [(SGD, dict(momentum=0.9, reg=L2(0.01))), (Adam, dict(reg=Decay(0.01)))])
def test_state_dict_round_trip_is_bit_identical(cls, kw):
    problem = Problem(np.float32)
    p_full = problem.params()
    opt_full = cls(p_full, lr=0.01, **kw)
    run(p_full, opt_full, problem, 20)

    p = problem.params()
    opt = cls(p, lr=0.01, **kw)
    run(p, opt, problem, 8)
    buf = io.BytesIO()
    np.savez(buf, **opt.state_dict())
    buf.seek(0)
    saved = dict(np.load(buf))
    p_resumed = [x.copy() for x in p]
    opt2 = cls(p_resumed, lr=0.5)  # wrong lr on purpose: the state dict restores it
    opt2.load_state_dict(saved)
    run(p_resumed, opt2, problem, 12)
    for a, b in zip(p_resumed, p_full):
        np.testing.assert_array_equal(a, b)


# -- the compiled step plan: reused while nothing changes, rebuilt when something does -------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_changing_hyperparameters_between_steps_takes_effect(dtype):
    # a schedule: lr, momentum and the rule change between steps, as a user's loop does
    problem = Problem(dtype, seed=4)
    p1, p2 = problem.params(), problem.params()
    opt = SGD(p1, lr=0.05, momentum=0.9, reg=L2(0.05))
    refopt = ref.SGD(p2, lr=0.05, momentum=0.9, reg=("l2", 0.05))
    for step in range(12):
        lr = 0.05 * 0.8 ** step
        reg = L2(0.05) if step < 6 else Decoupled(0.02)
        opt.param_groups[0]["lr"] = lr
        opt.param_groups[0]["reg"] = reg
        refopt.lr, (refopt.rule, refopt.s) = lr, reg_tuple(reg)
        opt.step(problem.grads(p1))
        refopt.step(problem.grads(p2))
    assert opt.param_groups[0]["step"] == 12
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype])


def test_adam_step_count_set_by_hand_is_used():
    # bias correction depends on the step count; resetting it restarts the correction
    problem = Problem(np.float64, seed=5, shapes=[(6,)])
    p1 = problem.params()
    opt = Adam(p1, lr=0.1)
    run(p1, opt, problem, 3)
    opt.param_groups[0]["step"] = 0
    opt.state[0]["exp_avg"][:] = 0
    opt.state[0]["exp_avg_sq"][:] = 0
    p2 = [p.copy() for p in p1]
    refopt = ref.Adam(p2, lr=0.1)
    run(p1, opt, problem, 2)
    run(p2, refopt, problem, 2)
    np.testing.assert_allclose(p1[0], p2[0], rtol=1e-12)
    assert opt.param_groups[0]["step"] == 2


def test_params_swapped_or_frozen_after_construction_are_refused():
    w = np.ones(4)
    opt = SGD([w], lr=0.1)
    opt.step([np.ones(4)])
    opt.param_groups[0]["params"][0] = np.ones(4)
    with pytest.raises(ValueError, match=r"param_groups\[0\].params changed"):
        opt.step([np.ones(4)])
    opt.param_groups[0]["params"][0] = w
    w.flags.writeable = False
    with pytest.raises(ValueError, match=r"w\[0\] is read-only"):
        opt.step([np.ones(4)])
    w.flags.writeable = True
    opt.step([np.ones(4)])
    np.testing.assert_allclose(w, 0.8)
