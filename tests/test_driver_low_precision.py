"""The driver with bfloat16/float16 weights: the MLP computes in float32 on 16-bit weights, the
config names the rounding, checkpoints resume bit for bit, and training reaches float32's
test loss (docs/low-precision.md)."""
import numpy as np
import pytest

import l2decay.experiment.driver as tr
from l2decay.cli import main
from l2decay.experiment.mlp import DTYPES, MLP, narrow

HALVES = ("bfloat16", "float16")
TINY = dict(data="iris", train_size=0, hidden=(8,), epochs=6, batch_size=4, lr=0.1, test_fraction=0.3)


def bits(a):
    return a.view(np.uint16 if a.itemsize == 2 else np.uint32)


@pytest.mark.parametrize("dtype", HALVES)
def test_16bit_mlp_is_the_float32_net_on_its_weights(dtype):
    """Forward and backward are float32's on the 16-bit weights cast up; the gradients come
    back in the weights' dtype, rounded to nearest (what the optimizers take)."""
    half = MLP([5, 7, 4, 3], dtype=dtype, seed=1)
    wide = MLP([5, 7, 4, 3], dtype=np.float32, seed=1)
    rng = np.random.default_rng(0)
    for p, q in zip(wide.params, half.params):
        q[...] = (p + rng.normal(0, 0.1, p.shape)).astype(q.dtype)   # nonzero biases too
        p[...] = q.astype(np.float32)                                # the same weights
    X = rng.standard_normal((6, 5)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    acts_half, acts_wide = half.forward(X), wide.forward(X)
    for a, b in zip(acts_half, acts_wide):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    grads_half, grads_wide = half.backward(acts_half, y), wide.backward(acts_wide, y)
    for g, w, p in zip(grads_half, grads_wide, half.params):
        assert g.dtype == p.dtype == DTYPES[dtype]
        np.testing.assert_array_equal(bits(g), bits(w.astype(DTYPES[dtype])))
    assert half.flat_weights().dtype == np.float32
    np.testing.assert_array_equal(half.flat_weights(), wide.flat_weights())


def test_narrow_is_numpys_cast_bit_for_bit():
    """float16's subnormal results (the slow path of numpy's cast) included."""
    patterns = np.arange(0, 2 ** 32, 1021, dtype=np.uint64).astype(np.uint32).view(np.float32)
    patterns = patterns[np.isfinite(patterns)]
    edges = np.float32([2.0 ** -25, -2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -14 - 2.0 ** -30, 2.0 ** -24 * 1.5, 0.0, -0.0])
    for a in (patterns, edges):
        for dtype in (np.float16, DTYPES["bfloat16"]):
            with np.errstate(all="ignore"):
                np.testing.assert_array_equal(bits(narrow(a, dtype)), bits(a.astype(dtype)))


def test_rounding_defaults_to_the_optimizers_and_is_named():
    assert tr.Config().rounding == "nearest"
    assert tr.Config(dtype="float32").rounding == "nearest"
    assert {tr.Config(dtype=d).rounding for d in HALVES} == {tr.Config(dtype="bfloat16").rounding}
    assert tr.Config(dtype="bfloat16").rounding in ("stochastic", "compensated")
    # switching the dtype switches to its default rounding unless a rounding is given
    assert tr.Config(dtype="float32").replace(dtype="bfloat16").rounding == tr.Config(dtype="bfloat16").rounding
    assert tr.Config(dtype="bfloat16", rounding="nearest").replace(seed=3).rounding == "nearest"
    assert tr.Config(dtype="float32", rounding="compensated").to_dict()["rounding"] == "compensated"


@pytest.mark.parametrize("overrides,match", [
    (dict(dtype="float8"), r"^dtype must be one of \('float64', 'float32', 'float16', 'bfloat16'\)"),
    (dict(rounding="up"), r"^rounding must be one of \('nearest', 'stochastic', 'compensated'\), got 'up'"),
    (dict(dtype="float32", rounding="stochastic"), r"^rounding 'stochastic' needs dtype bfloat16 or float16"),
    (dict(rounding="stochastic"), r"^rounding 'stochastic' needs dtype bfloat16 or float16 .* got dtype 'float64'"),
    (dict(dtype="bfloat16", state_dtype="bfloat16"), r"^state_dtype must be None .* or '8bit'"),
])
def test_bad_dtype_or_rounding_is_a_named_error(overrides, match):
    with pytest.raises(ValueError, match=match):
        tr.Config(**TINY, **overrides)


def _strip_times(history):
    return [{k: v for k, v in h.items() if not k.endswith("_seconds")} for h in history]


@pytest.mark.parametrize("dtype,rounding,optimizer,state_dtype", [
    ("bfloat16", "stochastic", "sgd", None), ("bfloat16", "stochastic", "adam", None),
    ("bfloat16", "compensated", "sgd", None), ("float16", "stochastic", "sgd", None),
    ("bfloat16", "stochastic", "adam", "param"),
])
def test_16bit_resume_is_bit_identical(tmp_path, dtype, rounding, optimizer, state_dtype):
    """The optimizer's step count (the key of stochastic rounding's bits) and compensation
    buffer survive the checkpoint, and bfloat16 arrays (weights, and state with state_dtype
    "param") come back as bfloat16."""
    ckpt = str(tmp_path / "run.npz")
    cfg = tr.Config(**{**TINY, "epochs": 5, "lr": 0.01 if optimizer == "adam" else 0.1}, dtype=dtype,
                    rounding=rounding, optimizer=optimizer, rule="decoupled", strength=0.5,
                    state_dtype=state_dtype)
    full = tr.train(cfg)
    tr.train(cfg, epochs=2, checkpoint=ckpt)
    with np.load(ckpt) as z:
        steps_per_epoch = -(-full["n_train"] // cfg.batch_size)
        if rounding == "stochastic":
            assert int(z["opt.state.0.step"]) == 2 * steps_per_epoch
        else:
            assert "opt.state.0.compensation" in z.files
        if optimizer == "adam":
            assert z["opt.state.0.exp_avg"].dtype.itemsize == (2 if state_dtype else 4)   # (bfloat16: V2 in npz)
    resumed = tr.train(cfg, checkpoint=ckpt, resume=True)
    np.testing.assert_array_equal(resumed["weights"], full["weights"])
    assert _strip_times(resumed["history"]) == _strip_times(full["history"])
    with pytest.raises(tr.CheckpointError, match=f"rounding: checkpoint '{rounding}' vs now 'nearest'"):
        tr.train(cfg, rounding="nearest", checkpoint=ckpt, resume=True)
    with pytest.raises(tr.CheckpointError, match=f"dtype: checkpoint '{dtype}' vs now 'float32'"):
        tr.train(cfg, dtype="float32", rounding="nearest", checkpoint=ckpt, resume=True)


def test_stochastic_rounding_draws_from_the_run_seed():
    """Two runs that differ only in the seed of the rounding's bits end apart; the same seed
    gives the same bits."""
    cfg = tr.Config(**TINY, dtype="bfloat16", rounding="stochastic", rule="decoupled", strength=0.5)
    data = tr.prepare_data(cfg)
    a, b = tr.train(cfg, prepared=data), tr.train(cfg, prepared=data)
    np.testing.assert_array_equal(a["weights"], b["weights"])
    model, opt = tr.build(cfg, data)
    assert {g["seed"] for g in opt.param_groups} == {cfg.seed} and {g["rounding"] for g in opt.param_groups} == {
        "stochastic"}


@pytest.mark.parametrize("args,words", [
    ([], "float64, rounding nearest;"),
    (["--dtype", "bfloat16"], "bfloat16 weights, float32 arithmetic, rounding {default};"),
    (["--dtype", "float16", "--rounding", "nearest"], "float16 weights, float32 arithmetic, rounding nearest;"),
    (["--dtype", "float32", "--rounding", "compensated"], "float32, rounding compensated;"),
    (["--dtype", "bfloat16", "--state-dtype", "param"],
     "bfloat16 weights, float32 arithmetic, rounding {default}, state in the weights' dtype;"),
])
def test_summary_line_names_dtype_and_rounding(args, words, capsys):
    fast = ["--data", "iris", "--train-size", "0", "--hidden", "6", "--epochs", "2", "--batch-size", "16"]
    assert main(["train", *fast, *args]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert words.format(default=tr.Config(dtype="bfloat16").rounding) in line, line


# docs/low-precision.md's training table comes from `l2decay compare --dtype ... --seeds 5` (per-sample SGD,
# 300 epochs: 2.3 s a bfloat16 run).  This is the same net and data at a cost of ~1.5 s: SGD with
# momentum 0.9 on minibatches of 10 (the sweep's setting), 150 epochs, L2 1e-3, 3 seeds.
# Measured (5 seeds): float32 0.2942; bfloat16 stochastic 0.2940 (with the momentum buffer in
# bfloat16 too, state_dtype "param": 0.2940), compensated 0.2941, nearest
# 0.3173 (+7.9%, worse on every seed: the momentum-amplified L2 term, 1e-4 of a weight per
# step, is below bfloat16's half ulp and rounds away).
CHEAP = dict(batch_size=10, momentum=0.9, lr=0.01, epochs=150, rule="l2", strength=1e-3)


def _mean_test_loss(**overrides):
    cfg = tr.Config(**CHEAP, **overrides)
    return np.mean([tr.train(cfg, seed=seed, history=False)["test_loss"] for seed in range(3)])


def test_bfloat16_training_reaches_float32s_test_loss_and_round_to_nearest_does_not():
    float32 = _mean_test_loss(dtype="float32")
    default = _mean_test_loss(dtype="bfloat16")        # the optimizers' default rounding
    compensated = _mean_test_loss(dtype="bfloat16", rounding="compensated")
    nearest = _mean_test_loss(dtype="bfloat16", rounding="nearest")
    # the momentum buffer in bfloat16 too, rounded stochastically (measured, 5 seeds: 0.2940)
    state16 = _mean_test_loss(dtype="bfloat16", state_dtype="param")
    assert 0.25 < float32 < 0.35                        # the net trained (untrained: ln 10 = 2.3)
    assert abs(default / float32 - 1) < 0.03, (default, float32)           # the target
    assert abs(compensated / float32 - 1) < 0.03, (compensated, float32)
    assert abs(state16 / float32 - 1) < 0.03, (state16, float32)
    assert nearest / float32 > 1.05, (nearest, float32)                   # measured: +8.8% on these seeds
