"""The training driver: minibatch training of an MLP with one regularization rule, per-epoch
history, atomic checkpoints with bit-identical resume, and a side-by-side comparison of rules
over several seeds.

Every weight update goes through the compiled optimizer kernels; the rule applies to the weight
matrices only (biases are not regularized, see :func:`l2decay.exclude_1d`).
"""
import dataclasses
import json
import math
import os
import re
import tempfile
import time
import tokenize
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import datasets
from .._validate import ROUNDINGS, is_half, real, saved_bfloat16, state_dtype_arg
from .mlp import ACTIVATIONS, DTYPES, LOSSES, MLP, compute_dtype
from ..optim import SGD, Adam, default_rounding, exclude_1d
from .parallel import run_all
from ..rules import Cautious, Corrected, Decay, Decoupled, L2

RULE_TYPES = {"none": None, "l2": L2, "decay": Decay, "decoupled": Decoupled, "cautious": Cautious,
              "corrected": Corrected}
# `compare`'s rules unless told otherwise: no rule and the three classic ones (the article's
# and AdamW's); the recent two on request (--rules)
COMPARED_RULES = ("none", "l2", "decay", "decoupled")
SCHEDULES = ("constant", "cosine")
# Strengths `compare` uses unless told otherwise: every rule removes the same fraction of each
# weight per step at the default lr (decay d = lr * lam), so under plain SGD they are the same
# update up to constants (the article's claim: "L2 regularization and weight decay are the same
# thing") and differences come from momentum or Adam alone.
DEFAULT_STRENGTH = {"none": 0.0, "l2": 1e-3, "decay": 2e-4, "decoupled": 1e-3, "cautious": 1e-3, "corrected": 1e-3}
# Each optimizer's own default learning rate: SGD's is this experiment's (per-sample steps on
# standardized digits), Adam's is torch's.  Adam at SGD's 0.2 diverges.
DEFAULT_LR = {"sgd": 0.2, "adam": 1e-3}
# `compare` trains every rule on this many seeds: enough for a mean and a spread, few enough
# that the default run takes about 11 s on 2 cores (16 runs of 1.3 s on 2 worker processes).
DEFAULT_SEEDS = 4
OUTSIDE = 5.0  # the article: "a good NN might have weight values that range between -5.0 to +5.0"
# The final metrics of a run, taken from the last epoch of its history.
METRICS = ("train_accuracy", "test_accuracy", "train_loss", "test_loss",
           "mean_abs_weight", "max_abs_weight", "fraction_outside_5")
HISTORY_KEYS = ("epoch", *METRICS, "update_seconds", "epoch_seconds")


@dataclass
class Config:
    """Everything that defines a run (and, but for `epochs`, what a checkpoint must match)."""

    # Defaults: a small training set, a wide layer and long per-sample (online) training, so
    # the unregularized net fits the training set perfectly and overfits, as the article
    # describes ("near 100% accuracy" on the training data, poor on new data).
    data: str = "digits"
    test_fraction: float = 0.5
    train_size: int = 150  # 0: all of the training split; else a stratified subset of this size
    hidden: tuple = (100,)
    activation: str = "tanh"
    loss: str = "ce"
    dtype: str = "float64"  # the weights'; 16-bit weights compute in float32 (see MLP)
    rounding: str = None  # how new weights are stored; None: the optimizers' default for dtype
    state_dtype: str = None  # the optimizer state's: None float32 for 16-bit weights, "param" theirs
    optimizer: str = "sgd"
    lr: float = None  # None: the optimizer's own default, DEFAULT_LR
    schedule: str = "constant"  # "cosine": lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2 in each epoch
    momentum: float = 0.0  # SGD only; Adam's momentum is its betas
    batch_size: int = 1
    epochs: int = 300
    rule: str = "none"
    strength: float = 0.0
    seed: int = 0

    def __post_init__(self):
        """Every field checked here, so that a bad value is a ValueError/TypeError naming it
        (each message starts with the field's name) rather than a failure deep inside training."""
        choices = {"activation": ACTIVATIONS, "loss": LOSSES, "dtype": tuple(DTYPES),
                   "optimizer": tuple(DEFAULT_LR), "rule": tuple(RULE_TYPES), "schedule": SCHEDULES}
        for name, options in choices.items():
            if getattr(self, name) not in options:
                raise ValueError(f"{name} must be one of {options}, got {getattr(self, name)!r}")
        if not isinstance(self.data, str):
            raise TypeError(f"data must be a data set name or a CSV path, got {type(self.data).__name__}")
        for name, low in (("train_size", 0), ("batch_size", 1), ("epochs", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {value!r}")
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if isinstance(self.hidden, (str, bytes)) or not all(
                isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in self.hidden):
            raise ValueError(f"hidden must be a list of positive int layer widths, got {self.hidden!r}")
        real("test_fraction", self.test_fraction, low_open=True, high=1.0, high_open=True)
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        real("lr", self.lr)
        if self.rule == "corrected" and self.lr == 0:
            raise ValueError("lr must be > 0 with rule 'corrected' (it is the schedule's peak, its lr_max)")
        real("momentum", self.momentum, high=1.0, high_open=True)
        if self.momentum and self.optimizer != "sgd":
            # refused rather than ignored: a user who asks for momentum would not get it
            raise ValueError(f"momentum applies to optimizer 'sgd' only ({self.optimizer}'s momentum is "
                             f"its betas), got momentum={self.momentum!r}")
        real("strength", self.strength)
        if self.rounding is None:  # named, so that a checkpoint and the summary say which
            self.rounding = default_rounding(DTYPES[self.dtype])
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {self.rounding!r}")
        if self.rounding == "stochastic" and not is_half(DTYPES[self.dtype]):
            raise ValueError(f"rounding 'stochastic' needs dtype bfloat16 or float16 ({self.dtype} arithmetic has "
                             f"no wider precision to round from), got dtype {self.dtype!r}")
        state_dtype_arg("state_dtype", self.state_dtype)
        if self.state_dtype == "8bit" and self.dtype == "float64":
            raise ValueError("state_dtype '8bit' is for float32, bfloat16 and float16 weights; give dtype float32 "
                             "(or 16-bit) with it")

    def replace(self, **changes):
        """A copy with `changes`; switching the optimizer without giving an lr also switches to
        the new optimizer's default lr (SGD's 0.2 would make Adam diverge), and switching the
        dtype without giving a rounding to the new dtype's default rounding."""
        if changes.get("optimizer", self.optimizer) != self.optimizer and "lr" not in changes:
            changes["lr"] = None
        if changes.get("dtype", self.dtype) != self.dtype and "rounding" not in changes:
            changes["rounding"] = None
        return dataclasses.replace(self, **changes)

    def regularizer(self):
        cls = RULE_TYPES[self.rule]
        if cls is Corrected:          # (the schedule's peak is the configured lr)
            return Corrected(self.strength, lr_max=self.lr)
        return None if cls is None else cls(self.strength)

    def lr_at(self, epoch):
        """The learning rate of `epoch` (1-based) under the schedule."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / self.epochs))
        return self.lr

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d


class ConfigError(ValueError):
    """A setting that only fails once the data is known (the model's memory); like Config's
    errors, the message starts with the field's name."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (other settings, or unreadable)."""


class OutputError(ValueError):
    """An output (checkpoint, JSON, plot) that cannot be written: checked before training."""


def check_writable(path):
    """Raise OutputError unless a file can be created at `path`: its folder exists and takes a
    new file.  Checked before training, so a bad path does not cost the run."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        what = "is not a folder" if os.path.exists(directory) else "does not exist"
        raise OutputError(f"{path}: folder {directory} {what}")
    if os.path.isdir(path):
        raise OutputError(f"{path} is a folder, not a file")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OutputError(f"{path}: the file is not writable")
    if not os.access(directory, os.W_OK):
        raise OutputError(f"{path}: folder {directory} is not writable")
    # os.access alone is not enough: root passes it on read-only folders, and it knows nothing
    # of read-only mounts; creating a file is the real test.
    try:
        fd, probe = tempfile.mkstemp(prefix=".l2decay-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in folder {directory} ({exc.strerror or exc})") from None


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
    dt = compute_dtype(cfg.dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # checked just below, with a clear message
        X_train, X_test = (A.astype(dt) for A in datasets.standardize(X[train], X[test]))
    for split, A in (("training", X_train), ("test", X_test)):
        bad = ~np.isfinite(A).all(axis=0)
        if bad.any():
            raise datasets.DataError(
                f"{source}: feature column {np.flatnonzero(bad)[0] + 1} of the {split} split does not "
                f"standardize to finite {dt} values (values far outside the training split's range); "
                f"rescale that column")
    data = Data(X_train, y[train], X_test, y[test], int(y.max()) + 1, source)
    # the exact rows and labels of both splits: resuming on other data must be refused
    data.fingerprint = datasets.fingerprint(X[train], y[train], X[test], y[test])
    return data


def weight_stats(model):
    w = model.flat_weights()
    return {
        "mean_abs_weight": float(np.mean(np.abs(w))),
        "max_abs_weight": float(np.max(np.abs(w))),
        "fraction_outside_5": float(np.mean(np.abs(w) > OUTSIDE)),
    }


def build(cfg, data):
    """The model and optimizer a config describes (deterministic for cfg.seed)."""
    try:
        model = MLP([data.X_train.shape[1], *cfg.hidden, data.n_classes], activation=cfg.activation,
                    loss=cfg.loss, dtype=cfg.dtype, seed=cfg.seed)
    except ValueError as exc:  # Config checked the rest: what is left is the memory the sizes need
        raise ConfigError(f"hidden {list(cfg.hidden)} is too large: {exc}") from None
    groups = exclude_1d(model.params, cfg.regularizer(), model.names, verbose=False)
    # stochastic rounding's random bits follow the run's seed (and the step, kept in the state)
    rounding = {"rounding": cfg.rounding, "seed": cfg.seed, "state_dtype": cfg.state_dtype}
    # stats: each weight matrix's norm, read from the last step of an epoch (no pass of its own)
    if cfg.optimizer == "sgd":
        opt = SGD(groups, lr=cfg.lr, momentum=cfg.momentum, stats=True, **rounding)
    elif cfg.optimizer == "adam":
        opt = Adam(groups, lr=cfg.lr, stats=True, **rounding)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {cfg.optimizer!r}")
    return model, opt


def _identity(cfg, data):
    d = cfg.to_dict()
    del d["epochs"]
    d["data_fingerprint"] = data.fingerprint
    return d


def _temporary_prefix(path):
    return f".{os.path.basename(path)}.l2decay-tmp-"


def _remove_stale_temporaries(directory, prefix):
    """Remove what killed writes of this checkpoint left behind.  mkstemp's random tail has no
    dot, so a temporary of another checkpoint whose name merely starts like ours (one of
    'run.npz.l2decay-tmp-x' is '.run.npz.l2decay-tmp-x.l2decay-tmp-*.npz') never matches."""
    stale = re.compile(re.escape(prefix) + r"[^.]+\.npz")
    for name in os.listdir(directory):
        if stale.fullmatch(name):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass  # gone already, or not ours to remove: not worth failing the run for


def save_checkpoint(path, cfg, data, model, opt, epoch, rng, history):
    """Write the whole training state to `path` (.npz) atomically: a temporary file in the same
    directory, flushed to disk, then renamed over `path`. A crash leaves the old file intact,
    and the next save removes the temporary a kill left (one writer per checkpoint path)."""
    arrays = {f"param.{k}": p for k, p in enumerate(model.params)}
    arrays.update({f"opt.{k}": v for k, v in opt.state_dict().items()})
    arrays["epoch"] = epoch
    arrays["meta"] = json.dumps({
        "identity": _identity(cfg, data),
        "rng": rng.bit_generator.state,
        "history": history,
    })
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _temporary_prefix(path)
    _remove_stale_temporaries(directory, prefix)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".npz", dir=directory)
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


# What reading a damaged or foreign file can raise: zipfile's BadZipFile, RuntimeError for an
# "encrypted" or NotImplementedError for an unknown compression flag, zlib.error from a broken
# deflate stream, EOFError from an empty file, ValueError or tokenize.TokenError from a broken
# .npy header or JSON text, OSError from the file system.
_UNREADABLE = (OSError, EOFError, ValueError, RuntimeError, zipfile.BadZipFile, zlib.error,
               tokenize.TokenError)


def _read_checkpoint(path):
    """The arrays stored in `path`, every byte checked against the zip's CRC-32s: numpy stops
    reading a member after the bytes its header asks for, so it does not check them itself."""
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()
    if bad is not None:
        raise ValueError(f"{bad} fails its CRC check")
    arrays = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            try:
                value = z[key]
            except ValueError as exc:
                # numpy's message advises allow_pickle=True: unpickling a file runs its code,
                # and l2decay never writes objects, so the file is simply not a checkpoint
                if "allow_pickle" in str(exc):
                    raise ValueError(f"{key} holds pickled Python objects, which an l2decay checkpoint "
                                     f"never does") from None
                raise
            if not isinstance(value, np.ndarray):  # a zip member without a .npy header: raw bytes
                raise ValueError(f"{key} is not a .npy array")
            arrays[key] = saved_bfloat16(value, DTYPES["bfloat16"])   # (params, compensation, state)
    return arrays


def _meta(stored):
    """The checkpoint's meta dict (identity, rng, history), or None."""
    m = stored.get("meta")
    if m is None or m.shape != () or m.dtype.kind != "U":
        return None
    meta = json.loads(str(m))
    return meta if isinstance(meta, dict) else None


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_history(history, epoch):
    """None if `history` is the per-epoch list a run of `epoch` epochs writes, else what is wrong."""
    if not isinstance(history, list) or len(history) != epoch:
        return f"history is not a list of {epoch} epochs"
    for i, h in enumerate(history, start=1):
        if not isinstance(h, dict) or not all(_is_number(h.get(k)) for k in HISTORY_KEYS) or h["epoch"] != i:
            return f"history entry {i} is not epoch {i} with {', '.join(HISTORY_KEYS)}"
    return None


def _check_rng_state(rng, state):
    """None if `state` is a state of rng's kind of bit generator, else why not (tried on a
    fresh generator, so `rng` itself is untouched)."""
    probe = type(rng.bit_generator)(0)
    try:
        probe.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        return f"rng state is not a {type(probe).__name__} state ({exc})"
    if probe.state != state:  # the setter silently coerces some values (a float state)
        return f"rng state is not a {type(probe).__name__} state"
    return None


def load_checkpoint(path, cfg, data, model, opt, rng):
    """Restore model, optimizer, rng from `path`; returns (epoch, history).  Refuses (and
    changes nothing) if the checkpoint was written with other settings or is damaged: all of
    it is checked before anything is restored."""
    try:
        stored = _read_checkpoint(path)
        meta = _meta(stored)
    except _UNREADABLE as exc:
        raise CheckpointError(f"{path}: not a readable l2decay checkpoint ({exc})") from None
    if meta is None:
        raise CheckpointError(f"{path}: not an l2decay checkpoint (no meta JSON object)")
    for key, kind, name in (("identity", dict, "an object"), ("rng", dict, "an object"), ("history", list, "a list")):
        if not isinstance(meta.get(key), kind):
            raise CheckpointError(f"{path}: not an l2decay checkpoint (meta {key} is not {name})")
    epoch = stored.get("epoch")
    if epoch is None or epoch.shape != () or epoch.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: not an l2decay checkpoint (no integer epoch)")
    epoch = int(epoch)
    want, have = _identity(cfg, data), {"schedule": "constant", **meta["identity"]}   # (saved before schedules)
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff:
        detail = ", ".join(f"{k}: checkpoint {have.get(k)!r} vs now {want.get(k)!r}" for k in diff)
        raise CheckpointError(f"{path} was written with other settings ({detail})")
    if epoch < 1:
        raise CheckpointError(f"{path}: epoch {epoch} is not a completed epoch (>= 1)")
    if epoch > cfg.epochs:
        raise CheckpointError(f"{path} is at epoch {epoch}, beyond --epochs {cfg.epochs}")
    problem = _check_history(meta["history"], epoch) or _check_rng_state(rng, meta["rng"])
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    names = {f"param.{k}" for k in range(len(model.params))}
    if names != {k for k in stored if k.startswith("param.")}:
        raise CheckpointError(f"{path}: holds other parameters than the model's {len(names)}")
    params = [stored[f"param.{k}"] for k in range(len(model.params))]
    for k, (p, q) in enumerate(zip(params, model.params)):
        if p.shape != q.shape or p.dtype != q.dtype:
            raise CheckpointError(f"{path}: parameter {k} does not match the model")
    opt_state = {k[4:]: v for k, v in stored.items() if k.startswith("opt.")}
    lr = cfg.lr_at(epoch)               # (the lr the checkpoint's last epoch stepped with)
    stored_lr = opt_state.get("group.0.lr")
    if cfg.schedule == "cosine" and stored_lr is not None and stored_lr.shape == () and float(stored_lr) != lr:
        raise CheckpointError(f"{path}: its cosine schedule spans other --epochs (lr {float(stored_lr)!r} at epoch "
                              f"{epoch}, {lr!r} now); resume with the --epochs it was started with")
    for group in opt.param_groups:
        group["lr"] = lr
    # The identity pins the settings, so the stored hyperparameters (lr, momentum, rule, ...)
    # must be the ones `opt` was built with: load_state_dict would take any value.
    for key, value in opt.state_dict().items():
        have = opt_state.get(key)
        if have is None and key.endswith(".state_dtype"):   # (checkpoints from before state_dtype)
            have = np.asarray("default")
        if not key.startswith("state.") and (have is None or have.shape != np.shape(value)
                                             or not np.array_equal(have, value)):
            shown = None if have is None else have.tolist()
            raise CheckpointError(f"{path}: optimizer setting {key} is {shown!r}, the settings give {value!r}")
    try:  # the last check: it validates everything, and restores the optimizer only if all is well
        opt.load_state_dict(opt_state)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    for p, q in zip(params, model.params):
        np.copyto(q, p)
    rng.bit_generator.state = meta["rng"]
    return epoch, meta["history"]


def progress_bar(total, *, unit, label, initial=0, enabled=True):
    """A tqdm bar on stderr that appears only once a job has run 2 s, so short runs print
    nothing extra; None when not `enabled`."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=label, unit=unit, leave=False, delay=2.0)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`: `saved_epoch` is the last epoch the checkpoint holds (0:
    none written by this run)."""

    def __init__(self, checkpoint, saved_epoch):
        super().__init__(checkpoint, saved_epoch)
        self.checkpoint, self.saved_epoch = checkpoint, saved_epoch


def train(cfg=None, *, prepared=None, checkpoint=None, resume=False, progress=False, history=True,
          **overrides):
    """Train one model with one rule; returns a run dict (final metrics and per-epoch history).

    ``train(Config(...))`` or ``train(rule="l2", strength=1e-3, epochs=10, ...)``; keyword
    overrides replace Config fields.  `prepared` reuses a :func:`prepare_data` result.
    ``history=False`` evaluates the model after the last epoch only (half the time of a
    minibatch run, whose evaluations cost as much as its steps); the history is then that one
    epoch, and there can be no checkpoint.  Ctrl-C raises :class:`Interrupted` (a
    KeyboardInterrupt) saying what the checkpoint holds.
    """
    cfg = (cfg or Config()).replace(**overrides)
    if checkpoint:
        if not history:
            raise ValueError("history=False cannot be checkpointed: a checkpoint holds every epoch's history")
        check_writable(checkpoint)
    data = prepared or prepare_data(cfg)
    model, opt = build(cfg, data)
    rng = np.random.default_rng([cfg.seed, 2])  # batch order
    start, done = 0, []
    if resume and checkpoint and os.path.exists(checkpoint):
        start, done = load_checkpoint(checkpoint, cfg, data, model, opt, rng)
    bar = progress_bar(cfg.epochs, initial=start, unit="epoch", label=cfg.rule, enabled=progress)
    saved, update_seconds, seconds = start, 0.0, 0.0
    try:
        for epoch in range(start + 1, cfg.epochs + 1):
            entry = _epoch(cfg, data, model, opt, rng, epoch, evaluate=history or epoch == cfg.epochs)
            update_seconds += entry["update_seconds"]
            seconds += entry["epoch_seconds"]
            if "test_loss" in entry:
                done.append(entry)
            if checkpoint:
                save_checkpoint(checkpoint, cfg, data, model, opt, epoch, rng, done)
                saved = epoch
            if bar is not None:
                bar.update(1)
                if "test_loss" in entry:
                    bar.set_postfix(test_acc=f"{entry['test_accuracy']:.3f}", refresh=False)  # keep the delay
    except KeyboardInterrupt:
        raise Interrupted(checkpoint, saved) from None
    finally:
        if bar is not None:
            bar.close()
    last = done[-1]
    run = {"rule": cfg.rule, "strength": cfg.strength, "seed": cfg.seed,
           "n_train": int(data.X_train.shape[0]), "n_test": int(data.X_test.shape[0])}
    run.update({k: last[k] for k in METRICS})
    run["layer_norms"] = last.get("layer_norms")      # (absent from checkpoints of older versions)
    rule = cfg.regularizer()
    # the rule's timescale at the peak lr (steps, then epochs): Wang & Aitchison's; L2's
    # through SGD's momentum (cfg.momentum is 0 under Adam)
    steps = -(-int(data.X_train.shape[0]) // cfg.batch_size)
    tau = rule.timescale(cfg.lr, iterations_per_epoch=steps, momentum=cfg.momentum) if rule is not None else math.inf
    run["timescale_epochs"] = tau if math.isfinite(tau) else None     # (None: no decay; JSON has no inf)
    # from the loaded history too, so a resumed run reports the time of all its epochs
    run["update_seconds"] = sum(h["update_seconds"] for h in done) if history else update_seconds
    run["epoch_seconds"] = sum(h["epoch_seconds"] for h in done) if history else seconds
    run["history"] = done
    run["weights"] = model.flat_weights()
    return run


def _epoch(cfg, data, model, opt, rng, epoch, evaluate=True):
    """One pass over the training split in a fresh random order; the epoch's history entry
    (without the metrics unless `evaluate`)."""
    t_epoch = time.perf_counter()
    update = 0.0
    for group in opt.param_groups:
        group["lr"] = cfg.lr_at(epoch)
    order = rng.permutation(data.X_train.shape[0])
    for i in range(0, order.size, cfg.batch_size):
        idx = order[i:i + cfg.batch_size]
        acts = model.forward(data.X_train[idx])
        grads = model.backward(acts, data.y_train[idx])
        t = time.perf_counter()
        opt.step(grads)   # in the model's order, which exclude_1d keeps
        update += time.perf_counter() - t
    entry = {"epoch": epoch}
    if evaluate:
        train_acc, train_loss = model.evaluate(data.X_train, data.y_train)
        test_acc, test_loss = model.evaluate(data.X_test, data.y_test)
        entry.update({"train_accuracy": train_acc, "test_accuracy": test_acc, "train_loss": train_loss,
                      "test_loss": test_loss, **weight_stats(model)})
        # ||W|| of each weight matrix (the step's own sums; biases are not regularized)
        entry["layer_norms"] = [math.sqrt(s) for s, p in zip(opt.stats[:, 0], model.params) if p.ndim == 2]
    entry.update({"update_seconds": update, "epoch_seconds": time.perf_counter() - t_epoch})
    return entry


def seed_list(first, seeds):
    """`seeds` as a tuple: an int n is the n seeds first, first+1, ...; a sequence is taken as is."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        return tuple(range(first, first + int(seeds)))
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds must be distinct ints >= 0, got {seeds!r}")
    return tuple(int(s) for s in seeds)


def _data_key(cfg):
    """The fields prepare_data reads: runs that share them share the data."""
    return cfg.data, cfg.test_fraction, cfg.train_size, cfg.dtype, cfg.seed


def train_task(cfg, cache):
    """:func:`train` for :func:`l2decay.experiment.parallel.run_all`: the data is loaded once per worker
    and seed (loading and splitting digits takes a tenth of a run)."""
    key = _data_key(cfg)
    if key not in cache:
        cache.clear()  # tasks come seed by seed: keep one data set, not all of them
        cache[key] = prepare_data(cfg)
    return train(cfg, prepared=cache[key])


def run_with_progress(function, tasks, jobs, *, label, progress):
    """run_all(function, tasks, jobs) with a progress bar of one tick per finished run."""
    bar = progress_bar(len(tasks), unit="run", label=label, enabled=progress)
    try:
        return run_all(function, tasks, jobs, on_result=None if bar is None else lambda i, r: bar.update(1))
    finally:
        if bar is not None:
            bar.close()


def compare(cfg=None, strengths=None, *, seeds=None, jobs=1, progress=False, rules=COMPARED_RULES, **overrides):
    """Train every rule of `rules` (none, l2, decay, decoupled; cautious and corrected too if
    asked) on each seed; for one seed all rules start
    from the same data split, initial weights and batch order.  Returns the runs, seed by seed
    in that rule order, each with its ``seed``; :func:`summarize` gives means and spreads.

    `seeds`: a count of seeds from ``cfg.seed`` on (default DEFAULT_SEEDS) or a list of seeds.
    `jobs`: worker processes (1: all in this process; the CLI uses every core).  A script that
    passes jobs > 1 needs the ``if __name__ == "__main__":`` guard of multiprocessing's spawn.
    """
    cfg = (cfg or Config()).replace(**overrides)
    strengths = {**DEFAULT_STRENGTH, **(strengths or {})}
    rules = tuple(rules)
    unknown = [r for r in rules if r not in RULE_TYPES]
    if unknown or not rules or len(set(rules)) != len(rules):
        raise ValueError(f"rules must be distinct names of {tuple(RULE_TYPES)}, got {rules!r}")
    tasks = [cfg.replace(seed=seed, rule=rule, strength=strengths[rule])
             for seed in seed_list(cfg.seed, DEFAULT_SEEDS if seeds is None else seeds) for rule in rules]
    return run_with_progress(train_task, tasks, jobs, label="compare", progress=progress)


def _stats(values):
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "per_seed": [float(v) for v in a]}


def summarize(runs):
    """Per rule, in the order of `runs`: each final metric's mean, sd (sample standard deviation
    over seeds; 0 for one seed), min, max and per-seed values, and the seconds per run."""
    out = []
    for rule in dict.fromkeys(r["rule"] for r in runs):
        mine = [r for r in runs if r["rule"] == rule]
        entry = {"rule": rule, "strength": mine[0]["strength"], "seeds": [r["seed"] for r in mine]}
        entry.update({k: _stats([r[k] for r in mine]) for k in METRICS})
        if all(r.get("layer_norms") for r in mine):
            entry["weight_norm"] = _stats([math.sqrt(sum(x * x for x in r["layer_norms"])) for r in mine])
            entry["layer_norms"] = [_stats(layer) for layer in zip(*(r["layer_norms"] for r in mine))]
        entry["timescale_epochs"] = mine[0].get("timescale_epochs")
        entry["seconds_per_run"] = float(np.mean([r["epoch_seconds"] for r in mine]))
        out.append(entry)
    return out


def read_comparison(runs):
    """What the runs of :func:`compare` show, as (verdict, lines).  `verdict` holds the
    qualitative findings, which must not change with the machine (BLAS and CPU change the
    last bits of every trajectory, and a single seed's numbers with them); `lines` states
    them with the numbers behind them.  Each finding compares seeds pairwise (same data, start
    and batch order) or with the seed-to-seed spread, not one trajectory."""
    by_seed = {}
    for r in runs:
        by_seed.setdefault(r["seed"], {})[r["rule"]] = r
    seeds = sorted(by_seed)
    regs = [rule for rule in ("l2", "decay", "decoupled") if all(rule in by_seed[s] for s in seeds)]
    has_none = all("none" in by_seed[s] for s in seeds)
    summary = {e["rule"]: e for e in summarize(runs)}
    verdict, lines = {}, []
    lowest = min(r["train_accuracy"] for r in runs)
    verdict["overfits"] = lowest >= 0.99
    if verdict["overfits"]:
        lines.append(f"Every run fits its training set (train accuracy >= {lowest:.3f}), as the article says an "
                     f"overfitted net does.")
    else:
        lines.append(f"Not every run fits its training set (lowest train accuracy {lowest:.3f}): train longer or "
                     f"on fewer samples to see overfitting.")
    if has_none and regs:
        ratios = [by_seed[s]["none"]["test_loss"] / max(by_seed[s][rule]["test_loss"] for rule in regs)
                  for s in seeds]
        acc = np.mean([min(by_seed[s][rule]["test_accuracy"] for rule in regs) - by_seed[s]["none"]["test_accuracy"]
                       for s in seeds])
        verdict["regularization_helps"] = all(q > 1 for q in ratios)
        if verdict["regularization_helps"]:
            lines.append(f"Every rule beats no regularization on every seed: test loss {np.mean(ratios):.1f}x lower on "
                         f"average ({min(ratios):.1f}-{max(ratios):.1f}x per seed), test accuracy {100 * acc:+.1f} "
                         f"points.")
        else:
            lines.append(f"Regularization does not help on every seed (test loss ratio none/worst rule "
                         f"{min(ratios):.2f}-{max(ratios):.2f}).")
        none = summary["none"]
        reg_w = np.mean([summary[rule]["mean_abs_weight"]["mean"] for rule in regs])
        biggest = none["max_abs_weight"]["max"]
        verdict["article_large_weights"] = biggest >= 25.0
        lines.append(f"Without regularization the weights are {none['mean_abs_weight']['mean'] / reg_w:.1f}x larger "
                     f"(mean |w|); the largest is {biggest:.1f} and {100 * none['fraction_outside_5']['mean']:.2g}% "
                     f"pass +-5, so the article's weights of 25 or 32 "
                     f"{'do appear' if verdict['article_large_weights'] else 'do not appear'}.")
    if len(regs) > 1:
        means = {rule: summary[rule]["test_loss"]["mean"] for rule in regs}
        gap = max(means.values()) - min(means.values())
        spread = max(summary[rule]["test_loss"]["sd"] for rule in regs)
        if len(seeds) < 2:
            verdict["rules_agree"] = None
            lines.append(f"The rules' test losses differ by {gap:.4f}; one seed cannot say whether that is more than "
                         f"chance (use --seeds).")
        else:
            verdict["rules_agree"] = gap < spread
            best, worst = min(means, key=means.get), max(means, key=means.get)
            if verdict["rules_agree"]:
                lines.append(f"The {len(regs)} rules are equivalent here: their mean test losses differ by {gap:.4f}, "
                             f"less than the seed-to-seed spread (sd up to {spread:.4f}).")
            else:
                lines.append(f"The rules differ: {best} ends lowest ({means[best]:.4f}) and {worst} highest "
                             f"({means[worst]:.4f}) in mean test loss, {gap:.4f} apart, more than the seed-to-seed "
                             f"spread (sd up to {spread:.4f}).")
    norms = {rule: e["weight_norm"]["mean"] for rule, e in summary.items() if e.get("weight_norm")}
    if norms:
        layers = lambda rule: ", ".join(f"W{k + 1} {x['mean']:.2f}"  # noqa: E731
                                        for k, x in enumerate(summary[rule]["layer_norms"]))
        lines.append("Final weight norm ||W|| (all weight matrices; per layer in brackets) per rule: "
                     + ", ".join(f"{rule} {v:.2f} ({layers(rule)})" for rule, v in norms.items()) + ".")
    for rule in ("cautious", "corrected"):
        if rule in norms and "decoupled" in norms and all(rule in by_seed[s] for s in seeds):
            diffs = [by_seed[s][rule]["test_loss"] - by_seed[s]["decoupled"]["test_loss"] for s in seeds]
            verdict[f"{rule}_lower_than_decoupled"] = all(d < 0 for d in diffs)
            lines.append(f"{rule} against decoupled at the same strength, seed by seed: test loss {np.mean(diffs):+.4f} "
                         f"on average ({sum(d < 0 for d in diffs)} of {len(diffs)} seeds lower), weight norm "
                         f"{norms[rule] / norms['decoupled']:.2f}x.")
    return verdict, lines
