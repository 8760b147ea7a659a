"""Bad optimizer input: clear errors naming the argument; a failed step or load changes nothing."""
import numpy as np
import pytest

import l2decay
from l2decay import SGD, Adam, Decay, Decoupled, L2


def params():
    return [np.ones((3, 2)), np.zeros(2)]


@pytest.mark.parametrize(
    "cls,kw,exc,match",
    [
        (SGD, dict(lr=-1.0), ValueError, r"^lr must be in \[0"),
        (SGD, dict(lr=float("nan")), ValueError, r"^lr must be finite"),
        (SGD, dict(momentum=1.0), ValueError, r"^momentum must be in \[0, 1\)"),
        (SGD, dict(momentum=-0.1), ValueError, r"^momentum"),
        (SGD, dict(dampening=1.5), ValueError, r"^dampening"),
        (SGD, dict(nesterov=True), ValueError, r"nesterov requires momentum > 0"),
        (SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError, r"nesterov requires"),
        (SGD, dict(nesterov="yes"), TypeError, r"^nesterov must be True or False"),
        (SGD, dict(maximize=1), TypeError, r"^maximize must be True or False"),
        (SGD, dict(momentum_form="sklearn"), ValueError, r"^momentum_form must be one of \('torch', 'keras'\)"),
        (SGD, dict(momentum_form=None), TypeError, r"^momentum_form must be one of"),
        (SGD, dict(momentum=0.9, dampening=0.1, momentum_form="keras"), ValueError, r"has no dampening"),
        (SGD, dict(lr=10 ** 400), ValueError, r"^lr must be finite"),
        (SGD, dict(reg=0.01), TypeError, r"^reg must be None or a rule \(L2, Decoupled, Decay, Cautious or Corrected\)"),
        (SGD, dict(reg="l2"), TypeError, r"^reg must be"),
        (Adam, dict(betas=(1.0, 0.9)), ValueError, r"^betas\[0\] must be in \[0, 1\)"),
        (Adam, dict(betas=(0.9, -0.1)), ValueError, r"^betas\[1\]"),
        (Adam, dict(betas=0.9), TypeError, r"^betas must be a pair"),
        (Adam, dict(eps=0.0), ValueError, r"^eps must be in \(0"),
        (Adam, dict(lr="fast"), TypeError, r"^lr must be a real number"),
        (Adam, dict(amsgrad="no"), TypeError, r"^amsgrad must be True or False"),
        (Adam, dict(maximize=None), TypeError, r"^maximize must be True or False"),
        (Adam, dict(eps_form="sklearn"), ValueError, r"^eps_form must be one of"),
        (Adam, dict(eps_form=1), TypeError, r"^eps_form must be one of"),
        (Adam, dict(weight_decay=0.1), TypeError, r"unexpected keyword arguments \['weight_decay'\] \(use reg="),
    ],
)
def test_bad_hyperparameters(cls, kw, exc, match):
    with pytest.raises(exc, match=match):
        cls(params(), **kw)


@pytest.mark.parametrize("rule,value,match", [
    (L2, -0.1, r"L2 strength must be in \[0"),
    (Decoupled, float("inf"), r"Decoupled strength must be finite"),
    (Decay, 1.0, r"Decay strength must be in \[0, 1\)"),
    (Decay, -0.5, r"Decay strength"),
])
def test_bad_rules(rule, value, match):
    with pytest.raises(ValueError, match=match):
        rule(value)


def test_bad_params():
    with pytest.raises(ValueError, match="params is empty"):
        SGD([])
    with pytest.raises(TypeError, match="not one array"):
        SGD(np.ones(3))
    with pytest.raises(TypeError, match=r"param_groups\[0\].params\[1\] must have dtype float32"):
        SGD([np.ones(3), np.ones(3, dtype=int)])
    p = np.ones(3)
    with pytest.raises(ValueError, match="appears in more than one place"):
        SGD([{"params": [p]}, {"params": [p]}])


def _assert_failed_step_changes_nothing(opt, ps, grads, exc, match):
    before_p = [p.copy() for p in ps]
    before_g = [g.copy() for g in grads if isinstance(g, np.ndarray)]
    before_state = {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}
    with pytest.raises(exc, match=match):
        opt.step(grads)
    for a, b in zip(ps, before_p):
        np.testing.assert_array_equal(a, b)
    for a, b in zip([g for g in grads if isinstance(g, np.ndarray)], before_g):
        np.testing.assert_array_equal(a, b)
    after = opt.state_dict()
    for k, v in before_state.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_bad_grads_change_nothing(cls):
    ps = params()
    opt = cls([{"params": [ps[0]], "reg": L2(0.1)}, {"params": [ps[1]]}], lr=0.1)
    opt.step([np.ones((3, 2)), np.ones(2)])  # a good step first, so state is non-trivial
    _assert_failed_step_changes_nothing(opt, ps, [np.ones((3, 2))], ValueError, "grads has 1 arrays but")
    _assert_failed_step_changes_nothing(opt, ps, [np.ones((3, 2)), np.ones(3)], ValueError, r"^grads\[1\] has shape \(3,\)")
    _assert_failed_step_changes_nothing(opt, ps, [np.ones((3, 2)), np.ones(2, np.float32)], TypeError, r"^grads\[1\] has dtype float32")
    _assert_failed_step_changes_nothing(opt, ps, [np.ones((3, 2)), [1.0, 2.0]], TypeError, r"^grads\[1\] must be a numpy.ndarray")
    _assert_failed_step_changes_nothing(opt, ps, np.ones(2), TypeError, "grads must be a list")
    _assert_failed_step_changes_nothing(opt, ps, [ps[1], np.ones(2)], ValueError, r"share memory|has shape")
    opt.param_groups[1]["lr"] = -1.0  # a bad value set between steps is caught at the step
    _assert_failed_step_changes_nothing(opt, ps, [np.ones((3, 2)), np.ones(2)], ValueError, r"param_groups\[1\].lr")
    opt.param_groups[1]["lr"] = 0.1
    opt.param_groups[0]["maximize"] = "yes"
    _assert_failed_step_changes_nothing(opt, ps, [np.ones((3, 2)), np.ones(2)], TypeError, r"param_groups\[0\].maximize must be True or False")
    opt.param_groups[0]["maximize"] = False
    opt.step([np.ones((3, 2)), np.ones(2)])


def test_read_only_grads_are_fine_without_l2():
    ps = params()
    g = [np.ones((3, 2)), np.ones(2)]
    for x in g:
        x.flags.writeable = False
    SGD(ps, lr=0.1, momentum=0.9, reg=Decoupled(0.1)).step(g)
    Adam(ps, lr=0.1, reg=Decay(0.1)).step(g)


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_bad_state_dict_changes_nothing(cls):
    ps = params()
    opt = cls(ps, lr=0.1, reg=L2(0.1), **({"momentum": 0.9} if cls is SGD else {}))
    opt.step([np.ones((3, 2)), np.ones(2)])
    good = opt.state_dict()
    other = "Adam" if cls is SGD else "SGD"
    state_key = next(k for k in good if k.startswith("state.0.") and not k.endswith(".step"))
    corruptions = [
        ({**good, "optimizer": other}, f"state dict is for {other}"),
        ({**good, "num_groups": 2}, "has num_groups"),
        ({**good, "num_params": 3}, "has num_params"),
        ({**good, state_key: np.ones((2, 3))}, r"has shape \(2, 3\)"),
        ({**good, state_key: np.full((3, 2), np.nan)}, "non-finite"),
        ({**good, "group.0.lr": -3.0}, r"lr must be in"),
        ({**good, "group.0.reg": "l3"}, "unknown reg 'l3'"),
        ({**good, "group.0.params": np.array([1, 0])}, "other params"),
        ({**good, "state.7.exp_avg": np.ones(2)}, "unexpected entry"),
        ({k: v for k, v in good.items() if k != "group.0.lr"}, "missing 'group.0.lr'"),
    ]
    if cls is Adam:
        corruptions += [
            ({k: v for k, v in good.items() if k != state_key}, f"missing '{state_key}'"),
            ({**good, "state.0.step": 1.5}, r"step must be an int"),
            ({**good, "state.0.step": np.iinfo(np.int64).max}, r"step must be an int in \[0, 2\*\*53"),
            ({**good, "state.0.step": np.uint64(2 ** 64 - 1)}, r"step must be an int in \[0"),
            ({**good, "state.0.step": -1}, r"step must be an int in \[0"),
        ]
    for bad, match in corruptions:
        with pytest.raises(ValueError, match=match):
            opt.load_state_dict(bad)
        now = opt.state_dict()
        assert set(now) == set(good)
        for k, v in good.items():
            np.testing.assert_array_equal(now[k], v, err_msg=f"{k} changed after {match}")


def _snapshot(opt, ps):
    return [p.copy() for p in ps], {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}


def _assert_same(opt, ps, snap):
    for a, b in zip(ps, snap[0]):
        np.testing.assert_array_equal(a, b)
    now = opt.state_dict()
    assert set(now) == set(snap[1])
    for k, v in snap[1].items():
        np.testing.assert_array_equal(now[k], v, err_msg=k)


@pytest.mark.parametrize("cls,kw,key", [(SGD, dict(momentum=0.9), "momentum_buffer"),
                                        (SGD, dict(momentum=0.9, momentum_form="keras"), "velocity"),
                                        (Adam, {}, "exp_avg"), (Adam, {}, "exp_avg_sq"),
                                        (Adam, dict(amsgrad=True), "max_exp_avg_sq")])
def test_replaced_state_of_the_wrong_kind_is_refused_and_nothing_changes(cls, kw, key):
    ps = params()
    grads = [np.ones((3, 2)), np.ones(2)]
    opt = cls(ps, lr=0.1, **kw)
    opt.step(grads)
    good = opt.state[1][key]
    for bad, exc, match in [
        (np.ones(3), ValueError, r"has shape \(3,\) but params\[1\] has shape \(2,\)"),
        (np.ones(2, np.float32), TypeError, r"has dtype float32 but params\[1\] has dtype float64"),
        (np.ones(4)[::2], ValueError, r"must be C-contiguous"),
        ([1.0, 2.0], TypeError, r"must be a numpy.ndarray"),
        (ps[1], ValueError, r"share memory"),
        (opt.state[0][key].reshape(-1)[:2], ValueError, r"share memory"),
    ]:
        opt.state[1][key] = bad
        snap = _snapshot(opt, ps) if isinstance(bad, np.ndarray) and bad.dtype == np.float64 and bad.shape == (2,) else None
        before = [p.copy() for p in ps]
        with pytest.raises(exc, match=rf"^state\[1\]\['{key}'\] " + match if "share" not in match else match):
            opt.step(grads)
        for a, b in zip(ps, before):
            np.testing.assert_array_equal(a, b)
        if snap is not None:
            _assert_same(opt, ps, snap)
        opt.state[1][key] = good
    opt.step(grads)


def test_params_resized_or_retyped_after_construction_are_refused():
    # the step reads every param afresh: a resize or a dtype swap is caught, never run
    a, b = np.ones(4), np.ones(3)
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    opt.step([np.ones(4), np.ones(3)])
    a.resize(1000, refcheck=False)
    with pytest.raises(ValueError, match=r"^grads\[0\] has shape \(4,\) but params\[0\] has shape \(1000,\)"):
        opt.step([np.ones(4), np.ones(3)])
    with pytest.raises(ValueError, match=r"momentum_buffer'\] has shape \(4,\) but params\[0\] has shape \(1000,\)"):
        opt.step([np.ones(1000), np.ones(3)])
    c, d = np.ones(4), np.ones(3)
    opt = Adam([c, d], lr=0.1)
    c.dtype = np.float32     # 4 float64 become 8 float32
    with pytest.raises(TypeError, match=r"^grads\[0\] has dtype float64 but params\[0\] has dtype float32"):
        opt.step([np.ones(4), np.ones(3)])
    with pytest.raises(TypeError, match=r"exp_avg'\] has dtype float64 but params\[0\] has dtype float32"):
        opt.step([np.ones(8, np.float32), np.ones(3)])


def test_group_list_changes_are_refused_with_a_clear_error():
    ps = params()
    opt = SGD([{"params": [ps[0]]}, {"params": [ps[1]]}], lr=0.1)
    del opt.param_groups[1]
    with pytest.raises(ValueError, match="param_groups has 1 groups but the optimizer was given 2"):
        opt.step([np.ones((3, 2)), np.ones(2)])


def test_params_sharing_memory_are_refused():
    a = np.ones(6)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        SGD([a, a[:]])
    with pytest.raises(ValueError, match=r"share memory"):
        Adam([{"params": [a[:3]]}, {"params": [a[2:]]}])
    SGD([a[:3], a[3:]])   # adjacent, not overlapping


def test_adam_step_count_at_the_limit_is_refused():
    p = np.ones(2)
    opt = Adam([p], lr=0.1)
    opt.state[0]["step"] = 2 ** 53
    with pytest.raises(ValueError, match=r"state\[0\]\['step'\] must be an int in \[0, 2\*\*53"):
        opt.step([np.ones(2)])
    np.testing.assert_array_equal(p, 1.0)
    opt.state[0]["step"] = np.int64(5)     # a numpy int is taken as the count it is
    opt.step([np.ones(2)])
    assert opt.state[0]["step"] == 6


def test_numpy_scalars_as_hyperparameters_work():
    p1, p2 = [np.ones(3)], [np.ones(3)]
    SGD(p1, lr=0.1, momentum=0.5).step([np.ones(3)])
    opt = SGD(p2, lr=0.1, momentum=0.5)
    opt.param_groups[0]["lr"] = np.float64(0.1)
    opt.param_groups[0]["momentum"] = np.float64(0.5)
    opt.step([np.ones(3)])
    np.testing.assert_array_equal(p1[0], p2[0])


def test_conversion_helpers():
    c = l2decay.convert
    assert c.from_torch("SGD", 5e-4).rule() == L2(5e-4)
    assert c.from_torch("adam", weight_decay=1e-2).rule() == L2(1e-2)
    assert c.from_torch("AdamW", 1e-2).rule() == Decoupled(1e-2)
    assert c.from_keras("adamw", weight_decay=0.004).rule() == Decoupled(0.004)
    assert c.from_keras("sgd", kernel_regularizer=0.01).rule() == L2(0.02)
    assert c.from_sklearn_mlp("sgd", alpha=1e-4, batch_size=200).rule(batch=200) == L2(1e-4 / 200)
    with pytest.raises(ValueError, match="two rules on the same weights"):
        c.from_keras("sgd", weight_decay=0.1, kernel_regularizer=0.1)
    with pytest.raises(ValueError, match="has no l2decay counterpart"):
        c.from_torch("lion", 0.1)
    with pytest.raises(ValueError, match="batch_size=0 is refused"):
        c.from_sklearn_mlp("sgd", alpha=1e-4, batch_size=0)
    with pytest.raises(ValueError, match=r"lr\*lam must be < 1"):
        c.l2_to_decay(10.0, 0.5)


def test_conversions_at_the_edges_raise_value_errors():
    from fractions import Fraction
    c = l2decay.convert
    with pytest.raises(ValueError, match="lr is too small"):
        c.decay_to_l2(0.5, 5e-324)
    with pytest.raises(ValueError, match=r"^lam must be finite"):
        c.l2_to_decay(10 ** 400, 0.1)
    with pytest.raises(ValueError, match=r"^lr must be finite"):
        c.l2_to_decay(0.1, Fraction(10 ** 400, 3))
    assert c.l2_to_decay(Fraction(1, 10), 0.5)[0] == Decay(0.05)
    with pytest.raises(ValueError, match=r"^weight_decay must be finite"):
        c.from_torch("adamw", -(10 ** 400))
