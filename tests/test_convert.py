"""l2decay.convert without the libraries: what each conversion returns (defaults carried over,
conventions, rules), the Setting's rule/build/set_step, and every refusal.  The conversions
against the libraries themselves are in test_convert_peers.py."""
import dataclasses
import math

import numpy as np
import pytest

import l2decay
from l2decay import SGD, Adam, Decay, Decoupled, L2
from l2decay.convert import (Setting, from_keras, from_optax, from_sklearn_mlp, from_thinc,
                             from_torch)

F32 = lambda x: float(np.float32(x))  # noqa: E731  (Keras holds its learning rate in float32)

# (conversion, optimizer, hyper it must hold, reg, strength, scale, decay_1d)
CASES = {
    "torch sgd defaults": (lambda: from_torch("sgd"), "sgd",
                           dict(lr=1e-3, momentum=0.0, dampening=0.0, nesterov=False, momentum_form="torch"),
                           None, 0.0, None, True),
    "torch sgd weight_decay": (lambda: from_torch("SGD", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
                               "sgd", dict(lr=0.1, momentum=0.9, nesterov=True), "l2", 5e-4, None, True),
    "torch adam weight_decay": (lambda: from_torch("adam", weight_decay=1e-2), "adam",
                                dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, eps_form="torch"), "l2", 1e-2, None,
                                True),
    "torch adam decoupled": (lambda: from_torch("adam", weight_decay=1e-2, decoupled_weight_decay=True), "adam",
                             dict(eps=1e-8), "decoupled", 1e-2, None, True),
    "torch adamw defaults": (lambda: from_torch("AdamW"), "adam", dict(eps=1e-8, amsgrad=False), "decoupled",
                             1e-2, None, True),
    "torch adamw positional weight_decay": (lambda: from_torch("adamw", 0.05, amsgrad=True, maximize=True), "adam",
                                            dict(amsgrad=True, maximize=True), "decoupled", 0.05, None, True),
    "keras sgd defaults": (lambda: from_keras("sgd"), "sgd", dict(lr=F32(0.01), momentum=0.0, momentum_form="keras"),
                           None, 0.0, None, True),
    "keras sgd nesterov without momentum": (lambda: from_keras("sgd", nesterov=True), "sgd", dict(nesterov=False),
                                            None, 0.0, None, True),
    "keras adam defaults": (lambda: from_keras("adam"), "adam",
                            dict(lr=F32(1e-3), betas=(0.9, 0.999), eps=1e-7, eps_form="keras"), None, 0.0, None,
                            True),
    "keras adamw defaults": (lambda: from_keras("adamw"), "adam", dict(eps=1e-7), "decoupled", 0.004, None, True),
    "keras adam weight_decay floatx64": (lambda: from_keras("adam", learning_rate=0.1, weight_decay=0.01,
                                                            floatx="float64"),
                                         "adam", dict(lr=0.1), "decoupled", 0.01, None, True),
    "keras L2 regularizer": (lambda: from_keras("sgd", momentum=0.9, kernel_regularizer=0.01), "sgd",
                             dict(momentum=0.9), "l2", 0.02, None, False),
    "optax sgd": (lambda: from_optax("sgd", learning_rate=0.1, momentum=0.9, nesterov=True), "sgd",
                  dict(lr=0.1, momentum=0.9, nesterov=True, dampening=0.0, momentum_form="torch"), None, 0.0, None,
                  True),
    "optax sgd no momentum": (lambda: from_optax("sgd", learning_rate=0.1, nesterov=True), "sgd",
                              dict(momentum=0.0, nesterov=False), None, 0.0, None, True),
    "optax adamw defaults": (lambda: from_optax("adamw", learning_rate=1e-3), "adam",
                             dict(eps=1e-8, eps_form="torch"), "decoupled", 1e-4, None, True),
    "optax decayed weights before": (lambda: from_optax([("add_decayed_weights", {"weight_decay": 1e-3}),
                                                         ("adam", {"learning_rate": 0.01})]),
                                     "adam", dict(lr=0.01), "l2", 1e-3, None, True),
    "optax decayed weights after": (lambda: from_optax([("sgd", {"learning_rate": 0.1}),
                                                        ("add_decayed_weights", {"weight_decay": -1e-3})]),
                                    "sgd", dict(lr=0.1), "decoupled", 1e-3, "1/lr", True),
    "thinc sgd decay": (lambda: from_thinc("sgd", learn_rate=0.1, L2=1e-4, grad_clip=0.0, use_averages=False),
                        "sgd", dict(lr=0.1, momentum=0.0), "decay", 1e-4, "lr", True),
    "thinc adam coupled": (lambda: from_thinc("adam", L2=1e-4, L2_is_weight_decay=False, grad_clip=0.0,
                                              use_averages=False),
                           "adam", dict(lr=1e-3, eps=1e-8, eps_form="keras"), "l2", 1e-4, None, True),
    "thinc adam beta2 0 is thinc's plain step": (lambda: from_thinc("adam", beta2=0.0, grad_clip=0.0,
                                                                    use_averages=False),
                                                 "sgd", dict(lr=1e-3), None, 0.0, None, True),
    "sklearn sgd defaults": (lambda: from_sklearn_mlp("sgd"), "sgd",
                             dict(lr=1e-3, momentum=0.9, nesterov=True, momentum_form="keras"), "l2", 1e-4,
                             "1/batch", False),
    "sklearn adam": (lambda: from_sklearn_mlp("adam", alpha=0.5, batch_size=32, epsilon=1e-6), "adam",
                     dict(eps=1e-6, eps_form="keras"), "l2", 0.5, "1/batch", False),
    "sklearn alpha 0": (lambda: from_sklearn_mlp("adam", alpha=0.0), "adam", {}, None, 0.0, None, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_conversion(case):
    convert, optimizer, hyper, reg, strength, scale, decay_1d = CASES[case]
    s = convert()
    assert (s.optimizer, s.reg, s.strength, s.scale, s.decay_1d) == (optimizer, reg, strength, scale, decay_1d)
    for key, value in hyper.items():
        assert s.hyper[key] == value, key
    # hyper is complete: the optimizer takes it as it is
    (SGD if optimizer == "sgd" else Adam)([np.zeros(3)], **s.hyper)


def test_the_defaults_that_differ_between_libraries_are_carried_over():
    assert [from_torch("adam").hyper["eps"], from_keras("adam").hyper["eps"], from_optax("adam", learning_rate=1.0)
            .hyper["eps"], from_sklearn_mlp("adam").hyper["eps"]] == [1e-8, 1e-7, 1e-8, 1e-8]
    assert [from_torch("adamw").strength, from_keras("adamw").strength,
            from_optax("adamw", learning_rate=1.0).strength] == [1e-2, 4e-3, 1e-4]
    assert from_keras("adamw").decay_1d and not from_sklearn_mlp("sgd").decay_1d
    assert from_keras("sgd").hyper["lr"] == F32(0.01) != 0.01


def test_rule_per_batch_and_per_lr():
    sk = from_sklearn_mlp("sgd", alpha=0.5, batch_size=32)
    assert sk.rule(batch=22) == L2(0.5 / 22) and sk.rule(batch=32) == L2(0.5 / 32)
    assert sk.rule(batch=17.25) == L2(0.5 / 17.25)          # a sample-weight sum
    with pytest.raises(ValueError, match="pass batch="):
        sk.rule()
    with pytest.raises(ValueError, match=r"^batch must be in \(0, inf\]"):
        sk.rule(batch=0)
    th = from_thinc("sgd", learn_rate=0.1, L2=0.01, grad_clip=0.0, use_averages=False)
    assert th.rule() == Decay(0.1 * 0.01) and th.rule(lr=0.5) == Decay(0.5 * 0.01)
    with pytest.raises(ValueError, match=r"decay per step 1\.0 .* >= 1"):
        th.rule(lr=100.0)
    ox = from_optax([("sgd", {"learning_rate": 0.1}), ("add_decayed_weights", {"weight_decay": -1e-3})])
    assert ox.rule() == Decoupled(1e-3 / 0.1) and ox.rule(lr=0.05) == Decoupled(1e-3 / 0.05)
    with pytest.raises(ValueError, match="needs lr > 0"):
        ox.rule(lr=0.0)
    assert from_torch("sgd", weight_decay=0.1).rule(lr=5.0, batch=3) == L2(0.1)   # neither matters
    assert from_torch("sgd").rule() is None


def test_build_decays_what_the_library_decays():
    W, b, v = np.ones((3, 2)), np.ones(2), np.ones(4)
    opt = from_keras("adamw", learning_rate=0.1, floatx="float64").build([W, b, v])
    assert type(opt) is Adam and len(opt.param_groups) == 1
    assert opt.param_groups[0]["reg"] == Decoupled(0.004) and opt.param_groups[0]["eps_form"] == "keras"
    opt = from_sklearn_mlp("sgd", alpha=0.5, learning_rate_init=0.1, nesterovs_momentum=False).build([W, b, v],
                                                                                                   batch=10)
    assert type(opt) is SGD and opt.params == [W, b, v]
    assert [(len(g["params"]), g["reg"]) for g in opt.param_groups] == [(1, L2(0.05)), (2, None)]
    # one step: only W is regularized, in the velocity form (born -lr*(g + lam*w))
    g = [np.zeros((3, 2)), np.zeros(2), np.zeros(4)]
    opt.step(g)
    assert np.all(W == 1 - 0.1 * 0.05) and np.all(b == 1) and np.all(v == 1)
    assert "velocity" in opt.state[0]
    # groups given as dicts are kept, the rule is their default
    opt = from_torch("sgd", weight_decay=0.1).build([{"params": [W]}, {"params": [b], "reg": None}])
    assert [g["reg"] for g in opt.param_groups] == [L2(0.1), None]
    with pytest.raises(TypeError, match="not one array"):
        from_torch("sgd").build(W)
    with pytest.raises(ValueError, match="pass batch="):
        from_sklearn_mlp("sgd").build([W])


def test_set_step_sets_lr_and_the_rule_of_regularized_groups():
    W, b = np.ones((3, 2)), np.ones(2)
    sk = from_sklearn_mlp("adam", alpha=0.5)
    opt = sk.build([W, b], batch=32)
    sk.set_step(opt, batch=22)
    assert [g["reg"] for g in opt.param_groups] == [L2(0.5 / 22), None]
    sk.set_step(opt, lr=0.5)                      # the lr alone: the rule stays that of the batch
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5] and opt.param_groups[0]["reg"] == L2(0.5 / 22)
    th = from_thinc("sgd", learn_rate=0.1, L2=0.01, grad_clip=0.0, use_averages=False)
    opt = th.build([W, b])
    opt.param_groups[0]["lr"] = 0.2               # a schedule set by hand: the rule follows it
    th.set_step(opt)
    assert opt.param_groups[0]["reg"] == Decay(0.2 * 0.01)
    th.set_step(opt, lr=0.3)
    assert opt.param_groups[0]["reg"] == Decay(0.3 * 0.01)
    # a constant rule is left as the user set it
    tw = from_torch("adamw")
    opt = tw.build([W, b])
    opt.param_groups[0]["reg"] = Decoupled(0.5)
    tw.set_step(opt, lr=0.01)
    assert opt.param_groups[0]["reg"] == Decoupled(0.5) and opt.param_groups[0]["lr"] == 0.01
    with pytest.raises(TypeError, match="opt must be an l2decay optimizer"):
        tw.set_step([W])
    with pytest.raises(ValueError, match=r"^lr must be in \[0, inf\]"):
        tw.set_step(opt, lr=-1.0)


def test_set_step_carries_momentum_betas_and_strength():
    W, b = np.ones((3, 2)), np.ones(2)
    sgd = from_torch("sgd", lr=0.1, momentum=0.9, weight_decay=0.01)
    opt = sgd.build([{"params": [W]}, {"params": [b], "reg": None}])
    sgd.set_step(opt, lr=0.2, momentum=0.8, strength=0.05)
    assert [(g["lr"], g["momentum"], g["reg"]) for g in opt.param_groups] == [(0.2, 0.8, L2(0.05)), (0.2, 0.8, None)]
    adamw = from_torch("adamw", lr=0.01, weight_decay=0.1)
    opt = adamw.build([W, b])
    adamw.set_step(opt, betas=(0.85, 0.99), strength=0.2)
    assert opt.param_groups[0]["betas"] == (0.85, 0.99) and opt.param_groups[0]["reg"] == Decoupled(0.2)
    # the strength is the library's number: thinc's L2 still becomes Decay(lr*L2)
    th = from_thinc("sgd", learn_rate=0.1, L2=0.01, grad_clip=0.0, use_averages=False)
    opt = th.build([W])
    th.set_step(opt, lr=0.2, strength=0.03)
    assert opt.param_groups[0]["reg"] == Decay(0.2 * 0.03)
    with pytest.raises(TypeError, match="betas is Adam's; this setting is SGD"):
        sgd.set_step(sgd.build([W]), betas=(0.9, 0.99))
    with pytest.raises(TypeError, match="momentum is SGD's; this setting is Adam"):
        adamw.set_step(adamw.build([W]), momentum=0.9)
    with pytest.raises(ValueError, match="no regularization, so a strength of 0.1 has no rule"):
        plain = from_torch("adam")
        plain.set_step(plain.build([W]), strength=0.1)


@pytest.mark.parametrize("setting,kwargs,match", [
    # thinc decays by lr*L2 after the step: lr*L2 >= 1 would flip the weights
    (from_thinc("sgd", learn_rate=0.1, L2=2.0, grad_clip=0.0, use_averages=False), {"lr": 0.6}, ">= 1"),
    # optax's add_decayed_weights after the lr is Decoupled(c/lr): lr 0 has none
    (from_optax([("sgd", {"learning_rate": 0.1}), ("add_decayed_weights", {"weight_decay": -1e-3})]), {"lr": 0.0},
     "needs lr > 0"),
    (from_torch("sgd", lr=0.1, momentum=0.9), {"lr": 0.2, "momentum": 1.5}, r"param_groups\[0\]\.momentum"),
    (from_torch("adam", lr=0.1), {"lr": 0.2, "betas": (0.9, 1.0)}, r"param_groups\[0\]\.betas"),
])
def test_set_step_that_fails_changes_nothing(setting, kwargs, match):
    W, b = np.ones((3, 2)), np.ones(2)
    opt = setting.build([{"params": [W]}, {"params": [b]}])
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match=match):
        setting.set_step(opt, **kwargs)
    assert opt.param_groups == before


def test_setting_is_a_value():
    s = from_torch("adamw", lr=0.01)
    assert s == from_torch("adamw", lr=0.01, weight_decay=0.01) and hash(s) == hash(from_torch("adamw", lr=0.01))
    assert s != from_torch("adamw", lr=0.02)
    with pytest.raises(TypeError):
        s.hyper["lr"] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.reg = "l2"
    assert dataclasses.replace(s, reg="l2").rule() == L2(0.01)
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adam'"):
        Setting("x", "rmsprop", {})
    with pytest.raises(ValueError, match="reg must be None or one of"):
        Setting("x", "sgd", {"lr": 0.1}, reg="l1")
    with pytest.raises(ValueError, match="scale must be one of"):
        Setting("x", "sgd", {"lr": 0.1}, reg="l2", scale="batch")
    with pytest.raises(ValueError, match="^strength must be finite"):
        Setting("x", "sgd", {"lr": 0.1}, reg="l2", strength=math.inf)


def test_notes_say_what_the_loop_must_do():
    assert any("set_step(opt, batch=...)" in n for n in from_sklearn_mlp("sgd").notes)
    notes = from_sklearn_mlp("sgd", learning_rate="invscaling", learning_rate_init=0.1, power_t=0.25).notes
    assert any("0.1 / (t + 1)**0.25" in n for n in notes)
    assert any("divides lr by 5" in n for n in from_sklearn_mlp("sgd", learning_rate="adaptive").notes)
    assert from_torch("adamw").notes == ()
    assert any("set_step(opt, lr=...)" in n for n in from_thinc("sgd", learn_rate=0.1, L2=1e-4, grad_clip=0.0,
                                                                use_averages=False).notes)
    after = from_optax([("sgd", {"learning_rate": 0.1}), ("add_decayed_weights", {"weight_decay": -1e-3})])
    assert any("set_step(opt, lr=...)" in n for n in after.notes)
    assert from_optax("adamw", learning_rate=0.1).notes == ()


def test_sklearn_estimator_and_old_names_of_the_api():
    sklearn = pytest.importorskip("sklearn.neural_network")
    est = sklearn.MLPClassifier(solver="sgd", alpha=1e-3, batch_size=16, momentum=0.5)
    assert from_sklearn_mlp(est) == from_sklearn_mlp("sgd", alpha=1e-3, batch_size=16, momentum=0.5)
    with pytest.raises(ValueError, match="L-BFGS has no l2decay counterpart"):
        from_sklearn_mlp(sklearn.MLPRegressor(solver="lbfgs"))
    with pytest.raises(TypeError, match="not both"):
        from_sklearn_mlp(est, alpha=0.1)


REFUSED = [
    # unknown optimizers and arguments
    (lambda: from_torch("rmsprop"), ValueError, r"torch\.optim optimizer 'rmsprop' has no l2decay counterpart"),
    (lambda: from_torch("sgd", betas=(0.9, 0.99)), TypeError, r"torch\.optim\.SGD has no argument\(s\) \['betas'\]"),
    (lambda: from_keras("lion"), ValueError, "Keras optimizer 'lion' has no l2decay counterpart"),
    (lambda: from_optax("lamb", learning_rate=0.1), ValueError, "optax optimizer 'lamb' has no l2decay"),
    (lambda: from_optax("sgd"), TypeError, r"optax\.sgd needs \['learning_rate'\]"),
    (lambda: from_thinc("radam"), ValueError, "thinc optimizer 'radam' has no l2decay counterpart"),
    (lambda: from_thinc("sgd", grad_clip=0.0, use_averages=False), TypeError, r"needs \['learn_rate'\]"),
    (lambda: from_sklearn_mlp("lbfgs"), ValueError, "L-BFGS has no l2decay counterpart"),
    (lambda: from_sklearn_mlp("sgd", hidden_layer_sizes=(3,)), TypeError, "has no argument"),
    # what the library itself refuses
    (lambda: from_torch("sgd", momentum=-0.1), ValueError, r"momentum=-0\.1 is refused by torch\.optim\.SGD itself"),
    (lambda: from_torch("sgd", nesterov=True), ValueError, "Nesterov momentum requires a momentum and zero dampening"),
    (lambda: from_torch("adam", betas=(1.0, 0.9)), ValueError, r"betas\[0\]=1\.0 is refused by torch\.optim\.Adam"),
    (lambda: from_torch("adam", weight_decay=-1.0), ValueError, r"weight_decay=-1\.0 is refused by torch"),
    (lambda: from_keras("sgd", momentum=1.5), ValueError, r"momentum=1\.5 is refused by keras\.optimizers\.SGD"),
    (lambda: from_keras("adamw", weight_decay=None), ValueError, "weight_decay=None is refused by keras"),
    (lambda: from_keras("sgd", clipnorm=1.0, clipvalue=1.0), ValueError, "refuses more than one of clipnorm"),
    (lambda: from_keras("sgd", gradient_accumulation_steps=1), ValueError, "must be an integer >= 2"),
    (lambda: from_thinc("adam", beta1=0.0, grad_clip=0.0, use_averages=False), ValueError,
     "refused by thinc itself"),
    (lambda: from_sklearn_mlp("sgd", alpha=-1.0), ValueError, r"alpha=-1\.0 is refused by scikit-learn MLP itself"),
    (lambda: from_sklearn_mlp("sgd", batch_size=0), ValueError, "batch_size=0 is refused by scikit-learn"),
    (lambda: from_sklearn_mlp("sgd", batch_size="all"), ValueError, "batch_size='all' is refused"),
    (lambda: from_sklearn_mlp("sgd", momentum=1.5), ValueError, r"momentum=1\.5 is refused by scikit-learn"),
    (lambda: from_sklearn_mlp("sgd", learning_rate="cosine"), ValueError, "learning_rate='cosine' is refused"),
    (lambda: from_sklearn_mlp("adam", epsilon=0.0), ValueError, r"epsilon=0\.0 is refused"),
    (lambda: from_sklearn_mlp("sgd", learning_rate_init=0.0), ValueError, "learning_rate_init=0.0 is refused"),
    # what l2decay cannot reproduce
    (lambda: from_torch("sgd", momentum=1.0), ValueError, r"momentum=1\.0 cannot be reproduced by l2decay"),
    (lambda: from_torch("sgd", momentum=0.9, dampening=1.5), ValueError, "takes dampening in"),
    (lambda: from_torch("adam", eps=0.0), ValueError, r"eps=0\.0 cannot be reproduced .* eps > 0"),
    (lambda: from_torch("adamw", capturable=True), ValueError, "capturable=True cannot be reproduced"),
    (lambda: from_torch("sgd", differentiable=True), ValueError, "no autograd through the step"),
    (lambda: from_keras("sgd", momentum=1.0), ValueError, r"momentum=1\.0 cannot be reproduced"),
    (lambda: from_keras("adam", clipnorm=1.0), ValueError, "no gradient clipping"),
    (lambda: from_keras("adam", global_clipnorm=1.0), ValueError, "no gradient clipping"),
    (lambda: from_keras("sgd", clipvalue=0.5), ValueError, "no gradient clipping"),
    (lambda: from_keras("adam", use_ema=True), ValueError, "no moving average"),
    (lambda: from_keras("adam", loss_scale_factor=128.0), ValueError, "no loss scaling"),
    (lambda: from_keras("adam", gradient_accumulation_steps=4), ValueError, "average the gradients yourself"),
    (lambda: from_keras("adam", epsilon=0.0), ValueError, "eps > 0"),
    (lambda: from_keras("adam", learning_rate=-0.1), ValueError, "lr >= 0"),
    (lambda: from_keras("adam", learning_rate=lambda: 0.1), TypeError, "is a schedule"),
    (lambda: from_keras("adamw", kernel_regularizer=0.01), ValueError, "two rules on the same weights"),
    (lambda: from_keras("adam", floatx="float16"), ValueError, "floatx must be one of"),
    (lambda: from_keras("adam", learning_rate=1e300), ValueError, "overflows Keras' floatx float32"),
    (lambda: from_optax("adam", learning_rate=0.1, eps_root=1e-8), ValueError, "eps outside the square root"),
    (lambda: from_optax("adam", learning_rate=0.1, nesterov=True), ValueError, "NAdam"),
    (lambda: from_optax("adamw", learning_rate=0.1, mask=lambda p: p), ValueError, "reg=None"),
    (lambda: from_optax("sgd", learning_rate=lambda t: 0.1), TypeError, "is a schedule"),
    (lambda: from_optax("sgd", learning_rate=0.1, momentum=1.0), ValueError, "momentum in"),
    (lambda: from_optax("sgd", learning_rate=0.1, accumulator_dtype="bfloat16"), ValueError, "param's dtype"),
    (lambda: from_optax([("add_decayed_weights", {"weight_decay": -0.1}), ("sgd", {"learning_rate": 0.1})]),
     ValueError, "negative L2"),
    (lambda: from_optax([("sgd", {"learning_rate": 0.1}), ("add_decayed_weights", {"weight_decay": 0.1})]),
     ValueError, "grows the weights"),
    (lambda: from_optax([("adamw", {"learning_rate": 0.1}), ("add_decayed_weights", {"weight_decay": -0.1})]),
     ValueError, "two rules"),
    (lambda: from_optax([("sgd", {"learning_rate": 0.1}), ("adam", {"learning_rate": 0.1})]), ValueError,
     r"optax\.chain\(sgd, adam\) cannot be reproduced"),
    (lambda: from_optax([("add_decayed_weights", {"weight_decay": 0.1})]), ValueError, "cannot be reproduced"),
    (lambda: from_optax([("sgd", {"learning_rate": 0.0}), ("add_decayed_weights", {"weight_decay": -0.1})]),
     ValueError, "learning_rate=0"),
    (lambda: from_optax([("sgd", 0.1)]), TypeError, r"chain\[0\] must be a \(name, kwargs dict\) pair"),
    (lambda: from_optax(object()), TypeError, "cannot be read"),
    (lambda: from_thinc("adam"), ValueError, r"grad_clip=1\.0 .* and use_averages=True"),
    (lambda: from_thinc("sgd", learn_rate=0.1, grad_clip=5.0, use_averages=False), ValueError, "no clipping"),
    (lambda: from_thinc("sgd", learn_rate=0.1, use_averages=True, grad_clip=0.0), ValueError,
     "average of the weights"),
    (lambda: from_thinc("sgd", learn_rate=0.5, L2=2.0, grad_clip=0.0, use_averages=False), ValueError,
     "lr\\*L2 >= 1"),
    (lambda: from_thinc("sgd", learn_rate=0.1, L2=-1.0, grad_clip=0.0, use_averages=False), ValueError,
     "strength >= 0"),
    (lambda: from_thinc("sgd", learn_rate=[0.1, 0.2], grad_clip=0.0, use_averages=False), TypeError,
     "learn_rate of thinc.api.SGD is a schedule"),
    (lambda: from_thinc("sgd", learn_rate=0.1, L2=[1e-4, 1e-5], grad_clip=0.0, use_averages=False), ValueError,
     "a schedule for L2 cannot be reproduced"),
    (lambda: from_thinc("sgd", learn_rate=0.1, grad_clip=0.0, use_averages=False, lr_scale=-1.0), ValueError,
     r"lr_scale=-1\.0 cannot be reproduced"),
    (lambda: from_torch("sgd", lr=lambda t: 0.1), TypeError, "lr of torch.optim.SGD is a schedule"),
    (lambda: from_optax([("clip_by_global_norm", {"max_norm": 1.0}), ("adamw", {"learning_rate": 0.1})]),
     ValueError, "clip_by_global_norm cannot be reproduced .* no gradient clipping"),
    (lambda: from_optax("inject_hyperparams", learning_rate=0.1), ValueError, "through what it wraps"),
    (lambda: from_sklearn_mlp("adam", early_stopping=True), ValueError, "validation_fraction"),
    (lambda: from_sklearn_mlp("sgd", momentum=1.0), ValueError, r"momentum=1\.0 cannot be reproduced"),
]


@pytest.mark.parametrize("call,exc,match", REFUSED, ids=[m for _, _, m in REFUSED])
def test_refused(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_types_are_checked_with_the_argument_named():
    with pytest.raises(TypeError, match=r"^lr must be a real number, got str"):
        from_torch("sgd", lr="0.1")
    with pytest.raises(TypeError, match=r"^nesterov must be True or False, got 1 \(torch\.optim\.SGD\)"):
        from_torch("sgd", momentum=0.9, nesterov=1)
    with pytest.raises(TypeError, match=r"betas must be a pair"):
        from_torch("adam", betas=0.9)
    with pytest.raises(TypeError, match="give a torch optimizer object or a name"):
        from_torch(SGD([np.zeros(1)]), lr=0.1)


def test_one_element_arrays_are_numbers():
    # torch, jax and Keras allow 0-d tensors as hyperparameters; a numpy 0-d array stands in
    s = from_torch("adamw", lr=np.array(0.01), betas=(np.array(0.8), 0.9), weight_decay=np.float32(0.5))
    assert s.hyper["lr"] == 0.01 and s.hyper["betas"] == (0.8, 0.9) and s.strength == 0.5
    with pytest.raises(TypeError, match="^lr must be a real number"):
        from_torch("sgd", lr=np.array([0.1, 0.2]))


def test_the_optimizers_object_is_read_where_it_can_be():
    with pytest.raises(ValueError, match="l2decay converts torch.optim.SGD, Adam and AdamW"):
        from_torch(l2decay.SGD([np.zeros(1)]))
    for convert in (from_torch, from_keras, from_thinc, from_sklearn_mlp):
        with pytest.raises(TypeError, match="must be given by name .* or as an optimizer object, got int"):
            convert(3)
    # another library's object: refused by what it lacks, or by its class
    for convert in (from_keras, from_thinc, from_sklearn_mlp):
        with pytest.raises(TypeError, match="or as an optimizer object, got Adam"):
            convert(l2decay.Adam([np.zeros(1)]))
