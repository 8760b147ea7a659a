"""The training driver: minibatch training of an MLP with one regularization rule, per-epoch
history, atomic checkpoints with bit-identical resume, and a side-by-side comparison of rules.

Every weight update goes through the compiled optimizer kernels; the rule applies to the weight
matrices only (biases are not regularized, see :func:`l2decay.exclude_1d`).
"""
import dataclasses
import json
import os
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from . import datasets
from .mlp import MLP
from .optim import SGD, Adam, Decay, Decoupled, L2, exclude_1d

RULE_TYPES = {"none": None, "l2": L2, "decay": Decay, "decoupled": Decoupled}
# Strengths `compare` uses unless told otherwise: every rule removes the same fraction of each
# weight per step at the default lr (decay d = lr * lam), so under plain SGD they are the same
# update up to constants (the seed's claim) and differences come from momentum or Adam alone.
DEFAULT_STRENGTH = {"none": 0.0, "l2": 1e-3, "decay": 2e-4, "decoupled": 1e-3}
OUTSIDE = 5.0  # the seed's "a good net stays within about +-5"


@dataclass
class Config:
    """Everything that defines a run (and, but for `epochs`, what a checkpoint must match)."""

    # Defaults: a small training set, a wide layer and long per-sample (online) training, so
    # the unregularized net fits the training set perfectly and overfits, as in the seed.
    data: str = "digits"
    test_fraction: float = 0.5
    train_size: int = 150  # 0: all of the training split; else a stratified subset of this size
    hidden: tuple = (100,)
    activation: str = "tanh"
    loss: str = "ce"
    dtype: str = "float64"
    optimizer: str = "sgd"
    lr: float = 0.2
    momentum: float = 0.0
    batch_size: int = 1
    epochs: int = 300
    rule: str = "none"
    strength: float = 0.0
    seed: int = 0

    def regularizer(self):
        cls = RULE_TYPES[self.rule]
        return None if cls is None else cls(self.strength)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (other settings, or unreadable)."""


@dataclass
class Data:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str
    fingerprint: str = field(default="")


def prepare_data(cfg):
    """Load, split (stratified, seeded), optionally subsample, and standardize."""
    X, y, source = datasets.load(cfg.data)
    rng = np.random.default_rng([cfg.seed, 1])
    train, test = datasets.stratified_split(y, cfg.test_fraction, rng)
    if cfg.train_size and cfg.train_size < train.size:
        keep, _ = datasets.stratified_split(y[train], 1.0 - cfg.train_size / train.size, rng)
        train = train[np.sort(keep)]
    X_train, X_test = datasets.standardize(X[train], X[test])
    dt = np.dtype(cfg.dtype)
    data = Data(X_train.astype(dt), y[train], X_test.astype(dt), y[test], int(y.max()) + 1, source)
    data.fingerprint = f"{source}:{X.shape}:{train.size}:{float(np.sum(X_train)):.17g}"
    return data


def weight_stats(model):
    w = np.concatenate([W.ravel() for W in model.weights])
    return {
        "mean_abs_weight": float(np.mean(np.abs(w))),
        "max_abs_weight": float(np.max(np.abs(w))),
        "fraction_outside_5": float(np.mean(np.abs(w) > OUTSIDE)),
    }


def build(cfg, data):
    """The model and optimizer a config describes (deterministic for cfg.seed)."""
    model = MLP([data.X_train.shape[1], *cfg.hidden, data.n_classes], activation=cfg.activation,
                loss=cfg.loss, dtype=cfg.dtype, seed=cfg.seed)
    groups = exclude_1d(model.params, cfg.regularizer(), model.names, verbose=False)
    if cfg.optimizer == "sgd":
        opt = SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    elif cfg.optimizer == "adam":
        opt = Adam(groups, lr=cfg.lr)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {cfg.optimizer!r}")
    return model, opt


def _identity(cfg, data):
    d = cfg.to_dict()
    del d["epochs"]
    d["data_fingerprint"] = data.fingerprint
    return d


def save_checkpoint(path, cfg, data, model, opt, epoch, rng, history):
    """Write the whole training state to `path` (.npz) atomically: a temporary file in the same
    directory, flushed to disk, then renamed over `path`. A crash leaves the old file intact."""
    arrays = {f"param.{k}": p for k, p in enumerate(model.params)}
    arrays.update({f"opt.{k}": v for k, v in opt.state_dict().items()})
    arrays["epoch"] = epoch
    arrays["meta"] = json.dumps({
        "identity": _identity(cfg, data),
        "rng": rng.bit_generator.state,
        "history": history,
    })
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".l2decay-ckpt-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_checkpoint(path, cfg, data, model, opt, rng):
    """Restore model, optimizer, rng from `path`; returns (epoch, history).  Refuses (and
    changes nothing) if the checkpoint was written with other settings."""
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = {k: z[k] for k in z.files}
        meta = json.loads(str(stored["meta"]))
        epoch = int(stored["epoch"])
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a readable l2decay checkpoint ({exc})") from None
    want = _identity(cfg, data)
    have = meta.get("identity", {})
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff:
        detail = ", ".join(f"{k}: checkpoint {have.get(k)!r} vs now {want.get(k)!r}" for k in diff)
        raise CheckpointError(f"{path} was written with other settings ({detail})")
    if epoch > cfg.epochs:
        raise CheckpointError(f"{path} is at epoch {epoch}, beyond --epochs {cfg.epochs}")
    params = [stored.get(f"param.{k}") for k in range(len(model.params))]
    for k, (p, q) in enumerate(zip(params, model.params)):
        if p is None or p.shape != q.shape or p.dtype != q.dtype:
            raise CheckpointError(f"{path}: parameter {k} does not match the model")
    try:
        opt.load_state_dict({k[4:]: v for k, v in stored.items() if k.startswith("opt.")})
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    for p, q in zip(params, model.params):
        np.copyto(q, p)
    rng.bit_generator.state = meta["rng"]
    return epoch, meta["history"]


def _progress(total, initial, label, enabled):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=label, unit="epoch", leave=False)


def train(cfg=None, *, prepared=None, checkpoint=None, resume=False, progress=False, **overrides):
    """Train one model with one rule; returns a run dict (final metrics and per-epoch history).

    ``train(Config(...))`` or ``train(rule="l2", strength=1e-3, epochs=10, ...)``; keyword
    overrides replace Config fields.  `prepared` reuses a :func:`prepare_data` result.
    """
    cfg = dataclasses.replace(cfg or Config(), **overrides)
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    data = prepared or prepare_data(cfg)
    model, opt = build(cfg, data)
    rng = np.random.default_rng([cfg.seed, 2])  # batch order
    start, history = 0, []
    if resume and checkpoint and os.path.exists(checkpoint):
        start, history = load_checkpoint(checkpoint, cfg, data, model, opt, rng)
    n = data.X_train.shape[0]
    bar = _progress(cfg.epochs, start, cfg.rule, progress)
    for epoch in range(start + 1, cfg.epochs + 1):
        t_epoch = time.perf_counter()
        update = 0.0
        order = rng.permutation(n)
        for i in range(0, n, cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            acts = model.forward(data.X_train[idx])
            grads = model.backward(acts, data.y_train[idx])
            t = time.perf_counter()
            opt.step(grads)   # in the model's order, which exclude_1d keeps
            update += time.perf_counter() - t
        train_acc, train_loss = model.evaluate(data.X_train, data.y_train)
        test_acc, test_loss = model.evaluate(data.X_test, data.y_test)
        history.append({
            "epoch": epoch, "train_accuracy": train_acc, "test_accuracy": test_acc,
            "train_loss": train_loss, "test_loss": test_loss, **weight_stats(model),
            "update_seconds": update, "epoch_seconds": time.perf_counter() - t_epoch,
        })
        if checkpoint:
            save_checkpoint(checkpoint, cfg, data, model, opt, epoch, rng, history)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(test_acc=f"{test_acc:.3f}")
    if bar is not None:
        bar.close()
    last = history[-1]
    run = {"rule": cfg.rule, "strength": cfg.strength}
    run.update({k: last[k] for k in ("train_accuracy", "test_accuracy", "train_loss", "test_loss",
                                       "mean_abs_weight", "max_abs_weight", "fraction_outside_5")})
    run["update_seconds"] = sum(h["update_seconds"] for h in history)
    run["epoch_seconds"] = sum(h["epoch_seconds"] for h in history)
    run["history"] = history
    run["weights"] = np.concatenate([W.ravel() for W in model.weights])
    return run


def compare(cfg=None, strengths=None, *, progress=False, **overrides):
    """Train once per rule (none, l2, decay, decoupled) from the same initial weights and batch
    order; returns the list of run dicts."""
    cfg = dataclasses.replace(cfg or Config(), **overrides)
    strengths = {**DEFAULT_STRENGTH, **(strengths or {})}
    data = prepare_data(cfg)
    return [
        train(dataclasses.replace(cfg, rule=rule, strength=strengths[rule]), prepared=data,
              progress=progress)
        for rule in ("none", "l2", "decay", "decoupled")
    ]
