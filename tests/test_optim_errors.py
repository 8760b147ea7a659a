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
        (SGD, dict(nesterov="yes"), TypeError, r"nesterov must be a bool"),
        (SGD, dict(reg=0.01), TypeError, r"^reg must be None, L2"),
        (SGD, dict(reg="l2"), TypeError, r"^reg must be"),
        (Adam, dict(betas=(1.0, 0.9)), ValueError, r"^betas\[0\] must be in \[0, 1\)"),
        (Adam, dict(betas=(0.9, -0.1)), ValueError, r"^betas\[1\]"),
        (Adam, dict(betas=0.9), TypeError, r"^betas must be a pair"),
        (Adam, dict(eps=0.0), ValueError, r"^eps must be in \(0"),
        (Adam, dict(lr="fast"), TypeError, r"^lr must be a real number"),
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
    _assert_failed_step_changes_nothing(opt, ps, [np.ones((3, 2)), np.ones(3)], ValueError, r"grad\[1\] has shape \(3,\)")
    _assert_failed_step_changes_nothing(opt, ps, [np.ones((3, 2)), np.ones(2, np.float32)], TypeError, r"grad\[1\] has dtype float32")
    _assert_failed_step_changes_nothing(opt, ps, [np.ones((3, 2)), [1.0, 2.0]], TypeError, r"grad\[1\] must be a numpy.ndarray")
    _assert_failed_step_changes_nothing(opt, ps, np.ones(2), TypeError, "grads must be a list")
    ro = np.ones((3, 2))
    ro.flags.writeable = False  # L2 writes the gradient: refused
    _assert_failed_step_changes_nothing(opt, ps, [ro, np.ones(2)], ValueError, r"grad\[0\] is read-only")
    opt.param_groups[1]["lr"] = -1.0  # a bad value set between steps is caught at the step
    _assert_failed_step_changes_nothing(opt, ps, [np.ones((3, 2)), np.ones(2)], ValueError, r"param_groups\[1\].lr")


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
    opt = cls(ps, lr=0.1, reg=L2(0.1))
    opt.step([np.ones((3, 2)), np.ones(2)])
    good = opt.state_dict()
    other = "Adam" if cls is SGD else "SGD"
    state_key = next(k for k in good if k.startswith("state.0."))
    corruptions = [
        ({**good, "optimizer": other}, f"state dict is for {other}"),
        ({**good, "num_groups": 2}, "has 2 parameter groups"),
        ({k: v for k, v in good.items() if k != state_key}, f"missing '{state_key}'"),
        ({**good, state_key: np.ones((2, 3))}, r"has shape \(2, 3\)"),
        ({**good, state_key: np.full((3, 2), np.nan)}, "non-finite"),
        ({**good, "group.0.lr": -3.0}, r"lr must be in"),
        ({**good, "group.0.reg": "l3"}, "unknown reg 'l3'"),
        ({**good, "group.0.step": 1.5}, "invalid step count"),
        ({**good, "group.0.num_params": 5}, "different number of params"),
    ]
    for bad, match in corruptions:
        with pytest.raises(ValueError, match=match):
            opt.load_state_dict(bad)
        now = opt.state_dict()
        for k, v in good.items():
            np.testing.assert_array_equal(now[k], v, err_msg=f"{k} changed after {match}")


def test_conversion_helpers():
    c = l2decay.convert
    assert c.from_torch("SGD", 5e-4) == L2(5e-4)
    assert c.from_torch("adam", 1e-2) == L2(1e-2)
    assert c.from_torch("AdamW", 1e-2) == Decoupled(1e-2)
    assert c.from_keras(weight_decay=0.004) == Decoupled(0.004)
    assert c.from_keras(l2=0.01) == L2(0.02)
    assert c.from_sklearn_mlp(1e-4, 200) == L2(1e-4 / 200)
    with pytest.raises(ValueError, match="exactly one"):
        c.from_keras(weight_decay=0.1, l2=0.1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        c.from_torch("lion", 0.1)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        c.from_sklearn_mlp(1e-4, 0)
    with pytest.raises(ValueError, match=r"lr\*lam must be < 1"):
        c.l2_to_decay(10.0, 0.5)
