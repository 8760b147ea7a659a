"""`l2decay sweep`: learning rate against regularization strength, per rule, for SGD with
momentum and for Adam: a test of the central figure of Loshchilov & Hutter, "Decoupled Weight
Decay Regularization" (ICLR 2019, figure 2).

Their claim: with L2 regularization the best strength depends on the learning rate (the good
settings lie along a diagonal of the lr x strength grid); with decoupled weight decay the two
are close to independent ("separable"), so each can be tuned alone.  Their decoupled decay is
``w *= 1 - eta_t * lambda``, scaled by the schedule multiplier eta_t but not by the learning
rate alpha: with the constant schedule used here that is ``Decay(lambda)``.  ``Decoupled``
is torch's convention (AdamW, SGDW: ``w *= 1 - lr * lambda``), scaled by the learning rate.
The sweep runs the three rules, and Cautious decay on request (`rules=`, `--rules`).

The measure: for each lr, the strength of lowest mean test loss over the seeds (refined by a
parabola through the grid's best point and its two neighbours, in log strength), then the
least-squares slope of log10(best strength) against log10(lr).  Slope 0: separable.  Slope -1:
the product lr * strength is what matters; +1: their ratio.  Either is a diagonal valley.
"""
import dataclasses
import warnings

import numpy as np

from .driver import Config, prepare_data, run_with_progress, seed_list, train, _data_key

OPTIMIZERS = ("sgd", "adam")
SWEPT_RULES = ("l2", "decoupled", "decay")
# what --rules may add: cautious decay, on decoupled decay's grid (Corrected equals Decoupled on
# the sweep's constant lr)
SWEEPABLE_RULES = SWEPT_RULES + ("cautious",)
# The runs: the compare experiment's data and net (150 digits, 100 tanh units), trained in
# minibatches of 10 for 300 epochs (4,500 steps), evaluated after the last epoch only: 0.15 s
# a run on this project's 2-core machine, so that the full grid's 810 runs take a minute on 2
# workers.  Per-sample training, compare's, would take 1.3 s a run.
RUN = dict(batch_size=10, epochs=300)
MOMENTUM = 0.9  # SGD's momentum here: the setting where L2 and decoupled decay differ
# log10 ranges (low, high) of each grid.  Learning rates: where each optimizer trains without
# diverging.  Strengths: four decades around each rule's best (found by a wider sweep), so
# that a valley moving one decade per decade of lr still stays inside the grid.
LR_RANGE = {"sgd": (-3.0, -1.0), "adam": (-4.0, -2.0)}
STRENGTH_RANGE = {("sgd", "l2"): (-5.0, -1.0), ("sgd", "decoupled"): (-4.0, 0.0), ("sgd", "decay"): (-6.0, -2.0),
                  ("adam", "l2"): (-5.0, -1.0), ("adam", "decoupled"): (-3.0, 1.0), ("adam", "decay"): (-5.0, -1.0),
                  ("sgd", "cautious"): (-4.0, 0.0), ("adam", "cautious"): (-3.0, 1.0)}
STEP = {"full": 0.5, "quick": 1.0}  # grid spacing in decades
SEEDS = {"full": 3, "quick": 1}
# Words for a slope: |slope| < 1/3 separable (the best strength moves less than a third of a
# decade per decade of lr), > 2/3 diagonal, else in between.  The claim is judged on the
# difference of the two rules' |slopes|: MARGIN or more (half a decade per decade of lr) one
# way or the other, else no clear difference.  The slopes of single seeds scatter by about 0.3
# (sd, in the full sweep), hence the margin.
SEPARABLE, DIAGONAL, MARGIN = 1 / 3, 2 / 3, 0.5


def grid(optimizer, rule=None, quick=False):
    """The learning rates (rule None) or the strengths of `rule` swept for `optimizer`."""
    low, high = LR_RANGE[optimizer] if rule is None else STRENGTH_RANGE[optimizer, rule]
    step = STEP["quick" if quick else "full"]
    return tuple(float(f"{10 ** e:.6g}") for e in np.arange(low, high + step / 2, step))


def sweep_task(cfg, cache):
    """One grid point of one seed (for :func:`l2decay.experiment.parallel.run_all`): final metrics only."""
    key = _data_key(cfg)
    if key not in cache:
        cache.clear()
        cache[key] = prepare_data(cfg)
    # large learning rates diverge: expected in a grid, reported as such, not as warnings
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        run = train(cfg, prepared=cache[key], history=False)
    out = {"optimizer": cfg.optimizer, "lr": cfg.lr, "rule": cfg.rule, "strength": cfg.strength, "seed": cfg.seed,
           "n_train": run["n_train"], "n_test": run["n_test"], "seconds": run["epoch_seconds"]}
    for k in ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "mean_abs_weight"):
        out[k] = run[k] if np.isfinite(run[k]) else None
    out["diverged"] = out["test_loss"] is None or not np.isfinite(run["mean_abs_weight"])
    return out


def sweep(cfg=None, *, optimizers=OPTIMIZERS, rules=SWEPT_RULES, quick=False, lrs=None, strengths=None, seeds=None,
          momentum=MOMENTUM, jobs=1, progress=False):
    """Train every (optimizer, rule, lr, strength, seed) of the grid; returns the results, one
    dict per run (final metrics; a diverged run has None for them and ``diverged`` True).

    `cfg` gives the data and the net (default: RUN's minibatches on compare's data); `lrs`
    maps an optimizer to its learning rates and `strengths` an (optimizer, rule) pair to its
    strengths (default: :func:`grid`); `seeds` a count from ``cfg.seed`` on or a list
    (default 3, quick 1).  `jobs`: worker processes, as for :func:`l2decay.compare`.
    """
    cfg = (cfg or Config(**RUN)).replace(rule="none", strength=0.0, momentum=0.0)
    seeds = seed_list(cfg.seed, SEEDS["quick" if quick else "full"] if seeds is None else seeds)
    for name, values, allowed in (("optimizers", optimizers, OPTIMIZERS), ("rules", rules, SWEEPABLE_RULES)):
        if not values or any(v not in allowed for v in values):
            raise ValueError(f"{name} must be a non-empty selection of {allowed}, got {values!r}")
    tasks = []
    for seed in seeds:  # seed by seed: a worker then loads each seed's data once
        for opt in optimizers:
            base = cfg.replace(seed=seed, optimizer=opt, momentum=momentum if opt == "sgd" else 0.0)
            for rule in rules:
                for lr in (lrs or {}).get(opt) or grid(opt, quick=quick):
                    for s in (strengths or {}).get((opt, rule)) or grid(opt, rule, quick=quick):
                        # Config checks each value here, before the first run
                        tasks.append(dataclasses.replace(base, rule=rule, lr=float(lr), strength=float(s)))
    return run_with_progress(sweep_task, tasks, jobs, label="sweep", progress=progress)


def surface(results, optimizer, rule, seed=None):
    """(lrs, strengths, loss): the mean test loss over seeds (or of one `seed`) on the grid,
    rows lr and columns strength; inf where a run diverged, NaN where no run was made."""
    mine = [r for r in results if r["optimizer"] == optimizer and r["rule"] == rule
            and (seed is None or r["seed"] == seed)]
    lrs = sorted({r["lr"] for r in mine})
    strengths = sorted({r["strength"] for r in mine})
    total = np.zeros((len(lrs), len(strengths)))
    count = np.zeros_like(total)
    for r in mine:
        i, j = lrs.index(r["lr"]), strengths.index(r["strength"])
        total[i, j] += np.inf if r["diverged"] else r["test_loss"]
        count[i, j] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return lrs, strengths, np.where(count > 0, total / np.maximum(count, 1), np.nan)


def valley(lrs, strengths, loss):
    """Per lr with a finite loss: (log10 lr, log10 best strength, inside), the best refined by
    the parabola through the best grid point and its neighbours; `inside` is False when the
    best is at the grid's edge (then the true best may lie beyond it)."""
    x = np.log10(strengths)
    points = []
    for i, lr in enumerate(lrs):
        row = np.where(np.isfinite(loss[i]), loss[i], np.inf)
        if not np.isfinite(row).any():
            continue
        b = int(np.argmin(row))
        # a diverged neighbour counts as higher: the best is still bracketed, but not refined
        best, inside = x[b], 0 < b < len(x) - 1
        if inside and np.isfinite(row[b - 1]) and np.isfinite(row[b + 1]):
            left, mid, right = row[b - 1], row[b], row[b + 1]
            curvature = left - 2 * mid + right
            if curvature > 0:  # a true minimum; the vertex stays between the neighbours
                h = (x[b + 1] - x[b - 1]) / 2
                best = float(np.clip(x[b] - h * (right - left) / (2 * curvature), x[b - 1], x[b + 1]))
        points.append((float(np.log10(lr)), float(best), bool(inside)))
    return points


def slope(points):
    """Least-squares slope of log best strength against log lr over the points inside the
    grid (all points when fewer than two are inside), or None with fewer than two lrs."""
    use = [p for p in points if p[2]]
    if len(use) < 2:
        use = points
    if len(use) < 2:
        return None
    xs, ys = np.array([p[0] for p in use]), np.array([p[1] for p in use])
    return float(np.polyfit(xs, ys, 1)[0])


def analyse(results):
    """Per (optimizer, rule): the valley and its slope on the mean surface, the slope of each
    seed's own surface, and the best cell."""
    out = []
    seeds = sorted({r["seed"] for r in results})
    for opt in dict.fromkeys(r["optimizer"] for r in results):
        for rule in dict.fromkeys(r["rule"] for r in results if r["optimizer"] == opt):
            lrs, strengths, loss = surface(results, opt, rule)
            points = valley(lrs, strengths, loss)
            finite = np.where(np.isfinite(loss), loss, np.inf)
            i, j = np.unravel_index(int(np.argmin(finite)), finite.shape)
            per_seed = [slope(valley(*surface(results, opt, rule, seed))) for seed in seeds] if len(seeds) > 1 else []
            per_seed = [s for s in per_seed if s is not None]
            out.append({"optimizer": opt, "rule": rule, "slope": slope(points),
                        "seed_slopes": per_seed,
                        "valley": [{"log10_lr": a, "log10_best_strength": b, "inside_grid": c} for a, b, c in points],
                        "best": {"lr": lrs[i], "strength": strengths[j],
                                 "test_loss": float(finite[i, j]) if np.isfinite(finite[i, j]) else None},
                        "diverged_runs": sum(1 for r in results if r["optimizer"] == opt and r["rule"] == rule
                                             and r["diverged"])})
    return out


def _signed(value):
    """'+0.25'; never '-0.00' (a rounded tiny negative)."""
    return f"{round(value, 2) or 0.0:+.2f}"


def shape(value):
    if value is None:
        return "undetermined"
    return "separable" if abs(value) < SEPARABLE else "diagonal" if abs(value) > DIAGONAL else "in between"


def claim(l2_slope, decoupled_slope):
    """'holds' when L2's valley is steeper than the decoupled rule's by MARGIN or more,
    'reversed' when it is the other way round, 'unclear' otherwise (or without slopes)."""
    if l2_slope is None or decoupled_slope is None:
        return "unclear"
    gap = abs(l2_slope) - abs(decoupled_slope)
    return "holds" if gap >= MARGIN else "reversed" if gap <= -MARGIN else "unclear"


_RULE_NAMES = {"l2": "L2", "decoupled": "Decoupled", "decay": "Decay", "cautious": "Cautious"}
_CLAIM_WORDS = {
    "holds": "the claim holds: L2's best strength moves with the learning rate more than {d}'s does",
    "reversed": "the claim is reversed: {d}'s best strength moves with the learning rate more than L2's does",
    "unclear": "no clear difference between L2's valley and {d}'s",
}


def read_sweep(analysis, momentum=MOMENTUM):
    """(verdict, lines): per optimizer, the slopes, and whether the paper's claim holds against
    its own decoupled decay (Decay here, not scaled by the lr) and against torch's convention
    (Decoupled, scaled by the lr)."""
    verdict, lines = {}, []
    by = {(a["optimizer"], a["rule"]): a for a in analysis}
    for opt in dict.fromkeys(a["optimizer"] for a in analysis):
        name = f"SGD (momentum {momentum:g})" if opt == "sgd" else "Adam"
        parts, mine = [], {}
        for rule in SWEEPABLE_RULES:
            a = by.get((opt, rule))
            if a is None:
                continue
            mine[rule] = a["slope"]
            spread = ""
            if len(a["seed_slopes"]) > 1:
                spread = f" (per seed {_signed(np.mean(a['seed_slopes']))} +- {np.std(a['seed_slopes'], ddof=1):.2f})"
            value = "n/a" if a["slope"] is None else _signed(a["slope"])
            parts.append(f"{_RULE_NAMES[rule]} {value}{spread}, {shape(a['slope'])}")
        lines.append(f"{name}, slope of the valley: " + "; ".join(parts) + ".")
        verdict[opt] = {rule: shape(k) for rule, k in mine.items()}
        for rule, whose in (("decay", "the paper's decoupled decay (Decay: not scaled by the lr)"),
                            ("decoupled", "torch's decoupled decay (Decoupled: scaled by the lr)")):
            if "l2" in mine and rule in mine:
                outcome = claim(mine["l2"], mine[rule])
                verdict[opt][f"claim_vs_{rule}"] = outcome
                lines.append(f"  Against {whose}: " + _CLAIM_WORDS[outcome].format(d=_RULE_NAMES[rule]) + ".")
    return verdict, lines


def format_surfaces(results):
    """The mean test loss of every grid cell as text, one block per (optimizer, rule); * marks
    each lr's best strength, 'div' a diverged run."""
    blocks = []
    for opt in dict.fromkeys(r["optimizer"] for r in results):
        for rule in dict.fromkeys(r["rule"] for r in results if r["optimizer"] == opt):
            lrs, strengths, loss = surface(results, opt, rule)
            lines = [f"{opt} {rule}: mean test loss; rows lr, columns strength",
                     "lr \\ strength " + " ".join(f"{s:>8.2g}" for s in strengths)]
            for i, lr in enumerate(lrs):
                finite = np.where(np.isfinite(loss[i]), loss[i], np.inf)
                b = int(np.argmin(finite)) if np.isfinite(finite).any() else -1
                cells = []
                for j, v in enumerate(loss[i]):
                    text = "     div" if np.isinf(v) else "       -" if np.isnan(v) else f"{v:8.3f}"
                    cells.append(text[1:] + "*" if j == b else text)
                lines.append(f"{lr:<14.3g}" + " ".join(cells))
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_slopes(analysis):
    header = f"{'optimizer':<10} {'rule':<10} {'slope':>6} {'per seed':>14}  {'best lr':>8} {'strength':>9} " \
             f"{'test loss':>9}  valley"
    lines = [header]
    for a in analysis:
        per_seed = (f"{_signed(np.mean(a['seed_slopes']))} +- {np.std(a['seed_slopes'], ddof=1):.2f}"
                    if len(a["seed_slopes"]) > 1 else "-")
        best = a["best"]
        loss = "-" if best["test_loss"] is None else f"{best['test_loss']:.4f}"
        value = "-" if a["slope"] is None else _signed(a["slope"])
        lines.append(f"{a['optimizer']:<10} {a['rule']:<10} {value:>6} {per_seed:>14}  {best['lr']:>8.3g} "
                     f"{best['strength']:>9.3g} {loss:>9}  {shape(a['slope'])}")
    return "\n".join(lines)
