"""SGD and Adam against numpy references and torch; the rules' equivalences and divergences."""
import io

import numpy as np
import pytest

import l2decay
import numpy_reference as ref
from l2decay import SGD, Adam, Cautious, Corrected, Decay, Decoupled, L2

SHAPES = [(7, 5), (5,), (1,), (0,), (300,)]
RULES = {"none": None, "l2": L2(0.05), "decoupled": Decoupled(0.05), "decay": Decay(0.01),
         "decoupled-lr_max": Decoupled(0.05, lr_max=0.2), "cautious": Cautious(0.5),
         "corrected": Corrected(0.5, lr_max=0.2)}
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
    return ("none", 0.0) if reg is None else (reg.name, reg.coef)


SGD_CONFIGS = [
    dict(momentum=0.0),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.3),
    dict(momentum=0.8, nesterov=True),
    dict(maximize=True),
    dict(momentum=0.9, dampening=0.3, maximize=True),
    dict(momentum=0.8, nesterov=True, maximize=True),
]
# Keras' / scikit-learn's velocity form (no dampening there); torch has no such option
SGD_KERAS_CONFIGS = [
    dict(momentum=0.9, momentum_form="keras"),
    dict(momentum=0.8, nesterov=True, momentum_form="keras"),
    dict(momentum=0.9, momentum_form="keras", maximize=True),
]
ADAM_CONFIGS = [
    dict(),
    dict(betas=(0.5, 0.9), eps=1e-3),
    dict(amsgrad=True),
    dict(maximize=True),
    dict(amsgrad=True, maximize=True, betas=(0.8, 0.99)),
]
ADAM_KERAS_CONFIGS = [dict(eps_form="keras", eps=1e-3), dict(eps_form="keras", amsgrad=True, eps=1e-7)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("cfg", SGD_CONFIGS + SGD_KERAS_CONFIGS, ids=str)
def test_sgd_matches_reference(dtype, rule, cfg):
    problem = Problem(dtype)
    p1, p2 = problem.params(), problem.params()
    run(p1, SGD(p1, lr=0.05, reg=RULES[rule], **cfg), problem, 40)
    run(p2, ref.SGD(p2, lr=0.05, reg=reg_tuple(RULES[rule]), **cfg), problem, 40)
    for k, (a, b) in enumerate(zip(p1, p2)):
        np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype], err_msg=f"tensor {k} {rule} {cfg}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("cfg", ADAM_CONFIGS + ADAM_KERAS_CONFIGS, ids=str)
def test_adam_matches_reference(dtype, rule, cfg):
    problem = Problem(dtype)
    p1, p2 = problem.params(), problem.params()
    run(p1, Adam(p1, lr=0.01, reg=RULES[rule], **cfg), problem, 40)
    run(p2, ref.Adam(p2, lr=0.01, reg=reg_tuple(RULES[rule]), **cfg), problem, 40)
    for k, (a, b) in enumerate(zip(p1, p2)):
        np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype], err_msg=f"tensor {k} {rule} {cfg}")


@pytest.mark.parametrize("reg", [None, L2(0.1), Decoupled(0.1), Decay(0.1)], ids=repr)
@pytest.mark.parametrize("cls,kw", [(SGD, {}), (SGD, dict(momentum=0.9)), (SGD, dict(momentum=0.9, momentum_form="keras")),
                                    (Adam, {}), (Adam, dict(amsgrad=True, maximize=True))], ids=str)
def test_optimizers_never_write_the_gradients(cls, kw, reg):
    problem = Problem(np.float64)
    p = problem.params()
    g = problem.grads(p)
    for x in g:
        x.flags.writeable = False     # a write would raise inside numpy, a kernel write would not
    g0 = [x.copy() for x in g]
    opt = cls(p, lr=0.01, reg=reg, **kw)
    opt.step(g)
    opt.step(g)
    for a, b in zip(g, g0):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(p, problem.params()))


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


@pytest.mark.parametrize("wd", [0.0, 0.05])
@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=str)
def test_sgd_equals_torch_sgd(cfg, wd):
    torch = pytest.importorskip("torch")
    problem = Problem(np.float64)
    expected = _torch_run(lambda ps: torch.optim.SGD(ps, lr=0.05, weight_decay=wd, **cfg), problem, 40)
    p = problem.params()
    run(p, SGD(p, lr=0.05, reg=L2(wd) if wd else None, **cfg), problem, 40)
    for a, b in zip(p, expected):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=str)
@pytest.mark.parametrize("torch_name,torch_kw,reg", [
    ("Adam", {}, None),
    ("Adam", dict(weight_decay=0.05), L2(0.05)),
    ("AdamW", dict(weight_decay=0.05), Decoupled(0.05)),
    ("Adam", dict(weight_decay=0.05, decoupled_weight_decay=True), Decoupled(0.05)),
], ids=["adam", "adam-wd", "adamw", "adam-decoupled"])
def test_adam_equals_torch(torch_name, torch_kw, reg, cfg):
    torch = pytest.importorskip("torch")
    problem = Problem(np.float64)
    cls = getattr(torch.optim, torch_name)
    expected = _torch_run(lambda ps: cls(ps, lr=0.01, **torch_kw, **cfg), problem, 40)
    p = problem.params()
    run(p, Adam(p, lr=0.01, reg=reg, **cfg), problem, 40)
    for a, b in zip(p, expected):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_schedules_and_momentum_switched_on_midway_equal_torch():
    # lr schedule (torch's StepLR-like decay, set through param_groups as schedulers do), and
    # momentum switched on after 3 steps with dampening: torch births the buffer from the raw
    # gradient whenever it is born
    torch = pytest.importorskip("torch")
    problem = Problem(np.float64, seed=6)
    tparams = [torch.tensor(w.copy()) for w in problem.w0]
    topt = torch.optim.SGD(tparams, lr=0.05, weight_decay=0.01)
    p = problem.params()
    opt = SGD(p, lr=0.05, reg=L2(0.01))
    for step in range(12):
        lr = 0.05 * 0.9 ** step
        momentum, dampening = (0.0, 0.0) if step < 3 else (0.9, 0.5)
        for g in (topt.param_groups[0], opt.param_groups[0]):
            g["lr"], g["momentum"], g["dampening"] = lr, momentum, dampening
        for tp, g in zip(tparams, problem.grads([t.numpy() for t in tparams])):
            tp.grad = torch.from_numpy(g)
        topt.step()
        opt.step(problem.grads(p))
    for a, b in zip(p, tparams):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)


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
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("cls, kw", [(SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
                                     (Adam, dict(lr=0.01, betas=(0.8, 0.9), amsgrad=True))],
                         ids=["sgd", "adam"])
def test_groups_rebuilt_with_other_key_objects_and_order_step_alike(cls, kw):
    # a group rebuilt with equal but distinct key strings, in another order, with an extra key
    # (as schedulers add), must be read the same
    problem = Problem(np.float64, seed=5)
    p1, p2 = problem.params(), problem.params()
    a, b = cls(p1, reg=L2(0.01), **kw), cls(p2, reg=L2(0.01), **kw)
    b.param_groups[0] = {"".join(list(k)): v for k, v in reversed(list(b.param_groups[0].items()))}
    b.param_groups[0]["initial_lr"] = 1.0
    assert all(k is not j for k in b.param_groups[0] for j in a.param_groups[0])
    for step in range(5):
        lr = 0.05 * 0.5 ** step
        a.param_groups[0]["lr"] = lr
        b.param_groups[0]["".join(["l", "r"])] = lr
        a.step(problem.grads(p1))
        b.step(problem.grads(p2))
    for x, y in zip(p1, p2):
        np.testing.assert_array_equal(x, y)
    assert b.param_groups[0]["lr"] == lr and b.param_groups[0]["initial_lr"] == 1.0


def test_adam_step_count_set_by_hand_is_used():
    # bias correction depends on the step count (per param, as torch's); resetting it and the
    # moments restarts Adam
    problem = Problem(np.float64, seed=5, shapes=[(6,)])
    p1 = problem.params()
    opt = Adam(p1, lr=0.1)
    run(p1, opt, problem, 3)
    assert opt.state[0]["step"] == 3
    opt.state[0]["step"] = 0
    opt.state[0]["exp_avg"][:] = 0
    opt.state[0]["exp_avg_sq"][:] = 0
    p2 = [p.copy() for p in p1]
    refopt = ref.Adam(p2, lr=0.1)
    run(p1, opt, problem, 2)
    run(p2, refopt, problem, 2)
    np.testing.assert_array_equal(p1[0], p2[0])
    assert opt.state[0]["step"] == 2


def test_params_swapped_or_frozen_after_construction_are_refused():
    w = np.ones(4)
    opt = SGD([w], lr=0.1)
    opt.step([np.ones(4)])
    opt.param_groups[0]["params"][0] = np.ones(4)
    with pytest.raises(ValueError, match=r"param_groups\[0\].params changed"):
        opt.step([np.ones(4)])
    opt.param_groups[0]["params"][0] = w
    w.flags.writeable = False
    with pytest.raises(ValueError, match=r"^params\[0\] is read-only"):
        opt.step([np.ones(4)])
    w.flags.writeable = True
    opt.step([np.ones(4)])
    np.testing.assert_allclose(w, 0.8)


# -- state and groups are read afresh at every step --------------------------------------------
@pytest.mark.parametrize("key", ["momentum_buffer", "velocity"])
def test_a_replaced_momentum_buffer_is_used_and_saved(key):
    form = "keras" if key == "velocity" else "torch"
    w = np.zeros(3)
    opt = SGD([w], lr=0.1, momentum=0.5, momentum_form=form)
    opt.step([np.ones(3)])
    new = np.full(3, 10.0)
    opt.state[0][key] = new
    before = w.copy()
    opt.step([np.ones(3)])
    expected_buf = 0.5 * 10.0 + 1.0 if form == "torch" else 0.5 * 10.0 - 0.1
    np.testing.assert_array_equal(new, expected_buf)           # the new array was updated in place
    step = -0.1 * expected_buf if form == "torch" else expected_buf
    np.testing.assert_allclose(w, before + step, rtol=1e-15)
    np.testing.assert_array_equal(opt.state_dict()[f"state.0.{key}"], new)


def test_replaced_adam_moments_are_used():
    w = np.zeros(2)
    opt = Adam([w], lr=0.1)
    opt.step([np.ones(2)])
    m, v = np.array([2.0, -2.0]), np.array([4.0, 4.0])
    opt.state[0]["exp_avg"], opt.state[0]["exp_avg_sq"] = m, v
    p2 = [w.copy()]
    r = ref.Adam(p2, lr=0.1)
    r.t, r.m, r.v = 1, [np.array([2.0, -2.0])], [np.array([4.0, 4.0])]
    opt.step([np.ones(2)])
    r.step([np.ones(2)])
    np.testing.assert_array_equal(w, p2[0])
    np.testing.assert_array_equal(m, r.m[0])


def test_edited_betas_list_and_params_tuple_take_effect():
    problem = Problem(np.float64, seed=7, shapes=[(5,), (3, 2)])
    p1, p2 = problem.params(), problem.params()
    opt = Adam([{"params": p1, "betas": [0.9, 0.999]}], lr=0.01)
    refopt = ref.Adam(p2, lr=0.01)
    run(p1, opt, problem, 2)
    run(p2, refopt, problem, 2)
    opt.param_groups[0]["betas"] = [0.5, 0.999]   # a list, as a user might set it
    opt.param_groups[0]["params"] = tuple(p1)     # the same arrays in a tuple
    refopt.betas = (0.5, 0.999)
    run(p1, opt, problem, 2)
    run(p2, refopt, problem, 2)
    opt.param_groups[0]["betas"][0] = 0.7         # edited in place
    refopt.betas = (0.7, 0.999)
    run(p1, opt, problem, 2)
    run(p2, refopt, problem, 2)
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)


def test_decay_schedule_and_lr_following_decay():
    # a decay schedule: the rule replaced before each step; Decoupled(lam, lr_max) follows the
    # lr schedule but not the base lr: w *= 1 - lam * lr_t / lr_max
    w = np.ones(4)
    opt = SGD([w], lr=0.2, reg=Decoupled(0.1, lr_max=0.2))
    expected = 1.0
    for t in range(5):
        lr = 0.2 * 0.5 ** t
        opt.param_groups[0]["lr"] = lr
        opt.step([np.zeros(4)])
        expected *= 1 - lr * (0.1 / 0.2)
    np.testing.assert_allclose(w, expected, rtol=1e-15)
    for t in range(3):
        lam = 0.01 * (t + 1)
        opt.param_groups[0]["reg"] = Decoupled(lam)
        opt.param_groups[0]["lr"] = 0.1
        opt.step([np.zeros(4)])
        expected *= 1 - 0.1 * lam
    np.testing.assert_allclose(w, expected, rtol=1e-15)


def test_exclude_1d_keeps_the_users_order_of_gradients():
    rng = np.random.default_rng(8)
    shapes = [(8, 3), (3,), (3, 2), (2,)]
    p = [rng.standard_normal(s) for s in shapes]
    p_ref = [x.copy() for x in p]
    groups = l2decay.exclude_1d(p, L2(0.1), names=["W1", "b1", "W2", "b2"], verbose=False)
    opt = SGD(groups, lr=0.1, momentum=0.5)
    assert [x.shape for x in opt.params] == shapes
    on = ref.SGD(p_ref[0::2], lr=0.1, momentum=0.5, reg=("l2", 0.1))
    off = ref.SGD(p_ref[1::2], lr=0.1, momentum=0.5)
    for _ in range(3):
        grads = [rng.standard_normal(s) for s in shapes]   # in the user's order
        opt.step(grads)
        on.step(grads[0::2])
        off.step(grads[1::2])
    for a, b in zip(p, p_ref):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"grads\[1\] has shape \(3, 2\) but params\[1\] has shape "
                                         r"\(3,\).*order of opt.params.*\(8, 3\), \(3,\), \(3, 2\), \(2,\)"):
        opt.step([grads[0], grads[2], grads[1], grads[3]])


def test_optimizers_pickle_and_deepcopy_after_steps():
    import copy
    import pickle
    problem = Problem(np.float64, seed=9)
    for cls, kw in ((SGD, dict(momentum=0.9, reg=L2(0.01))), (Adam, dict(amsgrad=True, reg=Decoupled(0.1, lr_max=0.1)))):
        p = problem.params()
        opt = cls(l2decay.exclude_1d(p, kw.pop("reg"), verbose=False), lr=0.01, **kw)
        run(p, opt, problem, 3)
        for make_clone in (copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))):
            clone = make_clone(opt)
            assert all(a is not b for a, b in zip(clone.params, p))
            run(p, opt, problem, 2)
            run(clone.params, clone, problem, 2)
            for a, b in zip(p, clone.params):
                np.testing.assert_array_equal(a, b)


def test_momentum_switched_on_midway_births_the_buffer_from_the_raw_gradient():
    # torch's rule (checked against torch itself above when it is installed): a buffer born at
    # any step starts as that step's gradient, undamped
    problem = Problem(np.float64, seed=10)
    p1, p2 = problem.params(), problem.params()
    opt = SGD(p1, lr=0.05, reg=L2(0.01))
    r = ref.SGD(p2, lr=0.05, reg=("l2", 0.01))
    for step in range(6):
        if step == 2:
            opt.param_groups[0].update(momentum=0.9, dampening=0.5)
            r.mu, r.damp = 0.9, 0.5
        opt.step(problem.grads(p1))
        r.step(problem.grads(p2))
    assert all(st["momentum_buffer"] is not None for st in opt.state)
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)


class _Shifty(list):
    def __getitem__(self, k):
        self.calls = getattr(self, "calls", 0) + 1
        return super().__getitem__(k) if self.calls == 1 else np.ones(1)


def test_grads_in_a_list_subclass_are_read_once():
    w = np.ones(3)
    SGD([w], lr=0.1).step(_Shifty([np.ones(3)]))
    np.testing.assert_allclose(w, 0.9)
