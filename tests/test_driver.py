"""The MLP against finite differences; train/compare end to end; checkpoints and resume."""
import json
import os

import numpy as np
import pytest

import l2decay
import l2decay.driver as tr
from l2decay.mlp import MLP


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_backward_matches_finite_differences(activation, loss):
    rng = np.random.default_rng(0)
    model = MLP([5, 7, 4, 3], activation=activation, loss=loss, seed=1)
    for p in model.params:
        p += rng.normal(0, 0.1, p.shape)  # nonzero biases too
    X = rng.standard_normal((6, 5))
    y = rng.integers(0, 3, 6)
    grads = model.backward(model.forward(X), y)
    h = 1e-6
    for p, g, name in zip(model.params, grads, model.names):
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            up = model.loss_value(model.forward(X)[-1], y)
            p[i] = old - h
            down = model.loss_value(model.forward(X)[-1], y)
            p[i] = old
            num[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8, err_msg=f"{name} {activation} {loss}")


def test_mlp_float32_and_determinism():
    a = MLP([4, 3, 2], dtype=np.float32, seed=5)
    b = MLP([4, 3, 2], dtype=np.float32, seed=5)
    assert all(p.dtype == np.float32 for p in a.params)
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p, q)
    X = np.ones((2, 4), np.float32)
    assert all(g.dtype == np.float32 for g in a.backward(a.forward(X), np.array([0, 1])))


TINY = dict(data="iris", train_size=0, hidden=(8,), epochs=6, batch_size=4, lr=0.1, test_fraction=0.3)


def test_train_returns_history_and_final_metrics():
    run = tr.train(rule="l2", strength=0.01, **TINY)
    assert run["rule"] == "l2" and run["strength"] == 0.01
    assert len(run["history"]) == 6
    assert [h["epoch"] for h in run["history"]] == list(range(1, 7))
    for key in ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "mean_abs_weight", "max_abs_weight"):
        assert run[key] == run["history"][-1][key]
    assert 0 <= run["test_accuracy"] <= 1 and run["train_accuracy"] > 0.5  # iris is easy
    assert run["history"][-1]["train_loss"] < run["history"][0]["train_loss"]


def test_compare_same_start_and_rules_shrink_weights():
    runs = tr.compare(tr.Config(**TINY), {"l2": 0.5, "decay": 0.05, "decoupled": 0.5})
    assert [r["rule"] for r in runs] == ["none", "l2", "decay", "decoupled"]
    none = runs[0]
    for r in runs[1:]:
        assert r["mean_abs_weight"] < none["mean_abs_weight"], r["rule"]
    # plain SGD: L2(lam) and Decoupled(lam) are the same update up to rounding
    np.testing.assert_allclose(runs[1]["weights"], runs[3]["weights"], rtol=1e-9, atol=1e-12)


def test_split_is_stratified_and_standardized_on_train_only():
    data = tr.prepare_data(tr.Config(data="iris", train_size=0, test_fraction=0.2))
    assert data.X_train.shape[0] == 120 and data.X_test.shape[0] == 30
    assert np.bincount(data.y_test).tolist() == [10, 10, 10]
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.X_train.std(axis=0), 1, atol=1e-12)
    assert not np.allclose(data.X_test.mean(axis=0), 0, atol=1e-3)


def _strip_times(history):
    return [{k: v for k, v in h.items() if not k.endswith("_seconds")} for h in history]


def test_resume_is_bit_identical(tmp_path):
    ckpt = str(tmp_path / "run.npz")
    cfg = tr.Config(**{**TINY, "epochs": 7}, rule="decay", strength=0.01, momentum=0.9)
    full = tr.train(cfg)
    tr.train(cfg, epochs=3, checkpoint=ckpt)
    resumed = tr.train(cfg, checkpoint=ckpt, resume=True)
    np.testing.assert_array_equal(resumed["weights"], full["weights"])
    assert _strip_times(resumed["history"]) == _strip_times(full["history"])
    # and the Adam state round-trips as well
    cfg = tr.Config(**{**TINY, "epochs": 5, "lr": 0.01}, optimizer="adam", rule="decoupled", strength=0.1)
    full = tr.train(cfg)
    ckpt2 = str(tmp_path / "adam.npz")
    tr.train(cfg, epochs=2, checkpoint=ckpt2)
    np.testing.assert_array_equal(tr.train(cfg, checkpoint=ckpt2, resume=True)["weights"], full["weights"])


def test_checkpoint_from_other_settings_is_refused(tmp_path):
    ckpt = str(tmp_path / "run.npz")
    tr.train(tr.Config(**TINY), epochs=2, checkpoint=ckpt)
    with pytest.raises(tr.CheckpointError, match=r"other settings \(hidden: checkpoint \[8\] vs now \[9\]"):
        tr.train(tr.Config(**TINY), hidden=(9,), checkpoint=ckpt, resume=True)
    with pytest.raises(tr.CheckpointError, match=r"rule: checkpoint 'none' vs now 'l2'"):
        tr.train(tr.Config(**TINY), rule="l2", strength=0.1, checkpoint=ckpt, resume=True)
    with pytest.raises(tr.CheckpointError, match=r"data"):
        tr.train(tr.Config(**TINY), data="breast_cancer", checkpoint=ckpt, resume=True)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(tr.CheckpointError, match="not a readable l2decay checkpoint"):
        tr.train(tr.Config(**TINY), checkpoint=str(tmp_path / "junk.npz"), resume=True)


def test_crash_while_writing_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    ckpt = str(tmp_path / "run.npz")
    cfg = tr.Config(**TINY)
    tr.train(cfg, epochs=2, checkpoint=ckpt)
    before = open(ckpt, "rb").read()
    real_savez = np.savez

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")  # a partial write ...
        raise KeyboardInterrupt  # ... then the process is interrupted

    monkeypatch.setattr(tr.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        tr.train(cfg, epochs=4, checkpoint=ckpt, resume=True)
    monkeypatch.setattr(tr.np, "savez", real_savez)
    assert open(ckpt, "rb").read() == before
    assert os.listdir(tmp_path) == ["run.npz"]  # no temporary file left behind
    resumed = tr.train(cfg, epochs=4, checkpoint=ckpt, resume=True)
    assert len(resumed["history"]) == 4


def test_json_shape_from_cli(tmp_path):
    from l2decay.cli import main
    out = tmp_path / "c.json"
    assert main(["compare", "--data", "iris", "--train-size", "0", "--hidden", "6", "--epochs", "3",
                 "--batch-size", "8", "--quiet", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"config", "runs"}
    assert doc["config"]["data"] == "iris" and doc["config"]["epochs"] == 3
    assert [r["rule"] for r in doc["runs"]] == ["none", "l2", "decay", "decoupled"]
    for r in doc["runs"]:
        for key in ("strength", "train_accuracy", "test_accuracy", "train_loss", "test_loss",
                    "mean_abs_weight", "max_abs_weight", "history"):
            assert key in r
        assert len(r["history"]) == 3 and r["history"][0]["epoch"] == 1
    out2 = tmp_path / "t.json"
    assert main(["train", "--data", "iris", "--train-size", "0", "--epochs", "2", "--decay", "0.01",
                 "--quiet", "--json", str(out2)]) == 0
    doc = json.loads(out2.read_text())
    assert len(doc["runs"]) == 1 and doc["runs"][0]["rule"] == "decay" and doc["runs"][0]["strength"] == 0.01


def test_public_api_names():
    import l2decay
    assert l2decay.train is tr.train and l2decay.compare is tr.compare and l2decay.MLP is MLP
    run = l2decay.train(data="iris", train_size=0, epochs=1)
    assert len(run["history"]) == 1


@pytest.mark.parametrize("overrides,exc,match", [
    (dict(rule="l3"), ValueError, r"^rule must be one of"),
    (dict(optimizer="lion"), ValueError, r"^optimizer must be one of"),
    (dict(dtype="int8"), ValueError, r"^dtype must be one of"),
    (dict(epochs="3"), TypeError, r"^epochs must be an int"),
    (dict(epochs=0), ValueError, r"^epochs must be >= 1"),
    (dict(seed=-1), ValueError, r"^seed must be >= 0"),
    (dict(hidden=(0,)), ValueError, r"^hidden must be a list of positive int"),
    (dict(lr=10 ** 400), ValueError, r"^lr must be finite"),
    (dict(test_fraction=1.0), ValueError, r"^test_fraction must be in \(0, 1\)"),
    (dict(hidden=(10 ** 9,)), ValueError, r"need [\d,]+ GiB of parameters, more than this machine"),
])
def test_bad_settings_are_named_errors(overrides, exc, match):
    with pytest.raises(exc, match=match):
        tr.train(**{**TINY, **overrides})


@pytest.mark.parametrize("kw,exc,match", [
    (dict(sizes="abc"), TypeError, r"^sizes must be a list of int"),
    (dict(sizes=[4, 3], seed=-1), ValueError, r"^seed must be a non-negative int"),
    (dict(sizes=[4, 3], dtype="int8"), TypeError, r"^dtype must be float32 or float64"),
])
def test_bad_mlp_arguments(kw, exc, match):
    sizes = kw.pop("sizes")
    with pytest.raises(exc, match=match):
        l2decay.MLP(sizes, **kw)
