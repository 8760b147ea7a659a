"""The `l2decay` command: train one rule, compare the rules over several seeds, or sweep the
learning rate against each rule's strength, on real data."""
import argparse
import json
import math
import os
import sys

import numpy as np

from . import __version__
from ._validate import ROUNDINGS, SPEC
from .experiment import datasets, sweep
from .experiment.driver import (COMPARED_RULES, DEFAULT_LR, DEFAULT_SEEDS, DEFAULT_STRENGTH, OUTSIDE, RULE_TYPES,
                                SCHEDULES, CheckpointError, Config, ConfigError, Interrupted, OutputError,
                                check_writable, compare, read_comparison, summarize, train)
from .experiment.mlp import DTYPES, compute_dtype
from .optim import default_rounding
from .experiment.parallel import available_cores

RULE_FLAGS = (("l2", "LAMBDA", "L2 regularization: grad += LAMBDA*w before the optimizer"),
              ("decay", "FRACTION", "weight decay: w *= 1 - FRACTION after each step"),
              ("decoupled", "LAMBDA", "decoupled decay: w *= 1 - lr*LAMBDA before each step (AdamW)"),
              ("cautious", "LAMBDA", "cautious decay: decoupled, only where the update and w agree in sign"),
              ("corrected", "LAMBDA", "corrected decay: w *= 1 - LAMBDA*lr**2/lr_max before each step (AdamC; "
                                      "lr_max: --lr)"))
WEIGHT_NOTE = (f"|w|>{OUTSIDE:g}: the share of weights beyond +-{OUTSIDE:g}, the range the article gives for a "
               f"good net's weights (an overfitted one, it says, has weights like 25 or -32)")
STDOUT = "-"  # --json -: the JSON document on stdout, the table on stderr


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error form: one line, 'l2decay: error: ...', exit 2 (argparse
    would print the usage first, several lines)."""

    def error(self, message):
        self.exit(2, f"l2decay: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already states it."""

    def _get_help_string(self, action):
        text = action.help or ""
        # identity, not ==: a default of 0 (--seed) is shown, one of False (a flag) is not
        if "default" in text or action.default is None or action.default is False \
                or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _int_at_least(low, high=None, label=None):
    """A parser of an int >= low (and <= high, named `label` in the error), for argparse."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"must be <= {label}, got {v}")
        return v
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)
# a run's seed keys its stochastic rounding too, whose seeds the spec bounds (the last seed of a
# --seeds span is checked in _check_inputs)
MAX_SEED = SPEC["seed"].high
_seed = _int_at_least(0, MAX_SEED, "2**63 - 1")
_seed_count = _int_at_least(1, 1_000_000, "1,000,000")


def _nonneg_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def _fraction(text):
    v = _nonneg_float(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return v


def _open_fraction(text):
    v = _nonneg_float(text)
    if not 0 < v < 1:  # both splits need samples
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return v


def _positive_ints(example):
    """A parser of comma-separated positive ints (digits may be grouped with _), for argparse."""
    def parse(text):
        try:
            values = tuple(int(s.replace("_", "")) for s in text.split(","))
        except ValueError:
            values = ()
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}")
        return values
    return parse


_hidden = _positive_ints("widths like 64 or 128,64")
_sizes = _positive_ints("element counts like 1000,16384")


def _choices(allowed):
    def parse(text):
        values = tuple(dict.fromkeys(v.strip() for v in text.split(",")))
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"expected some of {','.join(allowed)} (comma-separated), got {text!r}")
        return values
    return parse


def _data_options(parser):
    d = Config()
    g = parser.add_argument_group("data and model")
    g.add_argument("--data", default=d.data,
                   help=f"embedded data set ({', '.join(datasets.EMBEDDED)}) or a CSV path "
                        f"(numeric features, integer class label last, optional header)")
    g.add_argument("--test-fraction", type=_open_fraction, default=d.test_fraction,
                   help="share of each class held out for testing, in (0, 1)")
    g.add_argument("--train-size", type=_nonneg_int, default=d.train_size,
                   help="stratified subset of the training split (0: all of it)")
    g.add_argument("--hidden", type=_hidden, default=",".join(map(str, d.hidden)),
                   help="hidden layer widths, e.g. 64 or 128,64")
    g.add_argument("--activation", choices=("tanh", "relu"), default=d.activation, help="hidden activation")
    g.add_argument("--loss", choices=("ce", "mse"), default=d.loss,
                   help="softmax cross-entropy or sigmoid squared error")
    g.add_argument("--dtype", choices=tuple(DTYPES), default=d.dtype,
                   help="float type of the weights; bfloat16 and float16 weights compute in float32")
    g.add_argument("--rounding", choices=ROUNDINGS,
                   help=f"how each new weight is stored (docs: Low precision); stochastic needs a 16-bit --dtype "
                        f"(default: the optimizers', {default_rounding(DTYPES['float32'])} for float32 and float64, "
                        f"{default_rounding(DTYPES['bfloat16'])} for bfloat16 and float16)")
    g.add_argument("--state-dtype", choices=("param", "8bit"),
                   help="keep the optimizer state (momentum, Adam's moments) in the weights' dtype, 16-bit too: "
                        "rounded stochastically with --rounding stochastic, else to nearest (default: float32 "
                        "for bfloat16/float16 weights); 8bit: 8-bit codes with block scales (docs: Low precision; "
                        "not for float64)")
    return g


def _output_options(parser, what):
    g = parser.add_argument_group("output")
    g.add_argument("--json", metavar="PATH", help=f"write {what} as JSON; - for stdout (default: no JSON)")
    g.add_argument("--plot", metavar="PATH.png", help="write the figure (needs matplotlib: pip install "
                                                      "'l2decay[plot]'; default: no figure)")
    g.add_argument("--quiet", action="store_true", help="no progress bar, no table")


def _parser():
    d = Config()
    common = _Parser(add_help=False)
    _data_options(common)
    g = common.add_argument_group("training")
    g.add_argument("--optimizer", choices=tuple(DEFAULT_LR), default=d.optimizer, help="the optimizer")
    g.add_argument("--lr", type=_nonneg_float,
                   help="learning rate (default: " + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_LR.items()) + ")")
    g.add_argument("--momentum", type=_fraction, help="momentum in [0, 1), sgd only (default: 0)")
    g.add_argument("--batch-size", type=_positive_int, default=d.batch_size, help="1: per-sample (online) training")
    g.add_argument("--epochs", type=_positive_int, default=d.epochs, help="passes over the training set")
    g.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                   help="the lr of each epoch: constant, or cosine from --lr down to 0")
    g.add_argument("--seed", type=_seed, default=d.seed,
                   help="random seed of the split, initial weights and batch order")
    _output_options(common, "the config, final metrics and per-epoch history")

    parser = _Parser(prog="l2decay", description=__doc__, formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"l2decay {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("train", parents=[common], formatter_class=_Formatter, help="train with one rule",
                       epilog=WEIGHT_NOTE,
                       description="Train the MLP with one rule (none without a rule option).")
    rules = p.add_mutually_exclusive_group()
    for name, metavar, help_ in RULE_FLAGS:
        rules.add_argument(f"--{name}", type=_fraction if name == "decay" else _nonneg_float, metavar=metavar,
                           help=f"{help_} (default: no regularization)")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="save the training state (.npz) after every epoch (default: none)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint up to --epochs in total")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("compare", parents=[common], formatter_class=_Formatter, epilog=WEIGHT_NOTE,
                       help="train with no regularization, l2, decay and decoupled (or --rules) over several seeds",
                       description="Train every rule from the same start (data split, initial weights, batch "
                                   "order) on each seed, and report each rule's mean and spread over the seeds.")
    for name, metavar, help_ in RULE_FLAGS:
        p.add_argument(f"--{name}", type=_fraction if name == "decay" else _nonneg_float, metavar=metavar,
                       default=DEFAULT_STRENGTH[name], help=help_)
    p.add_argument("--rules", type=_choices(tuple(RULE_TYPES)), default=",".join(COMPARED_RULES),
                   help="rules to compare, comma-separated")
    p.add_argument("--seeds", type=_seed_count, default=DEFAULT_SEEDS,
                   help="number of seeds, from --seed on")
    p.add_argument("--jobs", type=_positive_int, default=available_cores(),
                   help=f"worker processes (default: {available_cores()}, the cores available)")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("sweep", formatter_class=_Formatter,
                       help="learning rate x strength grid per rule, for SGD (momentum) and Adam: "
                            "Loshchilov & Hutter's figure 2",
                       description="Train every rule on a grid of learning rates and strengths, for SGD with "
                                   "momentum and for Adam, and measure how the best strength moves with the "
                                   "learning rate (the slope of log best strength against log lr: 0 is "
                                   "separable, +-1 a diagonal valley).")
    _data_options(p)
    g = p.add_argument_group("the grid and its runs")
    g.add_argument("--quick", action="store_true", help="a coarse grid (a point per decade) on one seed: "
                                                         "under a minute on 2 cores")
    g.add_argument("--optimizers", type=_choices(sweep.OPTIMIZERS), default=",".join(sweep.OPTIMIZERS),
                   help="optimizers to sweep, comma-separated")
    g.add_argument("--rules", type=_choices(sweep.SWEEPABLE_RULES), default=",".join(sweep.SWEPT_RULES),
                   help="rules to sweep, comma-separated")
    g.add_argument("--momentum", type=_fraction, default=sweep.MOMENTUM, help="SGD's momentum")
    g.add_argument("--batch-size", type=_positive_int, default=sweep.RUN["batch_size"], help="minibatch size")
    g.add_argument("--epochs", type=_positive_int, default=sweep.RUN["epochs"], help="passes over the training set")
    g.add_argument("--seed", type=_seed, default=d.seed, help="the first seed")
    g.add_argument("--seeds", type=_positive_int,
                   help=f"number of seeds (default: {sweep.SEEDS['full']}, with --quick {sweep.SEEDS['quick']})")
    g.add_argument("--jobs", type=_positive_int, default=available_cores(),
                   help=f"worker processes (default: {available_cores()}, the cores available)")
    _output_options(p, "every run's final metrics and the slopes")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("bench", formatter_class=_Formatter,
                       help="time the update rules against numpy, torch, a native C loop "
                            "and the memory ceiling (see the docs, Performance)")
    p.add_argument("--quick", action="store_true", help="4 sizes, fewer repeats")
    p.add_argument("--sizes", type=_sizes, metavar="N,N,...",
                   help="element counts to sweep, overriding --quick's (default: 100 to 32M, 7 sizes)")
    p.add_argument("--dtype", choices=("float32", "float64", "both"), default="both", help="dtypes to time")
    p.add_argument("--threads", type=_nonneg_int, default=0,
                   help="threads for every implementation alike (l2decay, torch, native C); 0: all cores")
    p.add_argument("--repeats", type=_positive_int, help="timings per case, median reported (default: 7, quick 5)")
    p.add_argument("--json", metavar="PATH", help='write {"machine": {...}, "results": [...]} (default: no JSON)')
    p.add_argument("--plot", metavar="PATH.png",
                   help="ns/element against n, log-log, caches marked (needs matplotlib; default: no figure)")
    p.add_argument("--crossover", action="store_true",
                   help="instead of the sweep: one thread against all, per size, to place the parallel "
                        "threshold (L2DECAY_PARALLEL_THRESHOLD)")
    p.add_argument("--sparse", action="store_true",
                   help="instead of the sweep: sparse rows, a step of 1,000 rows of a 64-wide float32 table of "
                        "100K, 1M and 4M rows (--quick: 100K, 1M; --sizes: these row counts) against the dense "
                        "decay, torch's SparseAdam and the step's memory ceiling")
    p.add_argument("--stats", action="store_true",
                   help="instead of the sweep: the cost of the weight statistics (stats=True), float32 AdamW "
                        "at 1M and 16M elements (--sizes: these) without and with them, timed together "
                        "(default repeats: 15)")
    p.add_argument("--quiet", action="store_true", help="no progress lines, no tables")
    p.set_defaults(func=_cmd_bench)
    return parser


class _UsageError(Exception):
    """A bad option found after parsing: reported like argparse's own errors."""


def _config(args, **fixed):
    """The Config the options describe (`fixed`: fields the command sets itself); a value Config
    refuses is a usage error naming the option (Config's messages start with the field's name)."""
    values = {name: getattr(args, name) for name in Config.__dataclass_fields__ if hasattr(args, name)}
    values.update(fixed)
    if values.get("momentum") is not None and values.get("optimizer") != "sgd":
        raise _UsageError(f"argument --momentum: applies to --optimizer sgd only ({values['optimizer']}'s momentum "
                          f"is its betas)")
    values["momentum"] = values.get("momentum") or 0.0
    try:
        return Config(**values)
    except (TypeError, ValueError) as exc:
        raise _UsageError(_option_message(exc)) from None


def _option_message(exc):
    """'test_fraction must be ...' -> 'argument --test-fraction: must be ...'."""
    name, _, rest = str(exc).partition(" ")
    if name in Config.__dataclass_fields__ and name not in ("rule", "strength"):
        return f"argument --{name.replace('_', '-')}: {rest}"
    return str(exc)


def _setting(cfg):
    """The settings line above a table (the sample counts come from the runs: train_size asks
    for a subset, the data decides how many there are)."""
    opt = f"{cfg.optimizer} lr {cfg.lr:g}" + (f" momentum {cfg.momentum:g}" if cfg.optimizer == "sgd" else "")
    opt += " (cosine schedule)" if cfg.schedule == "cosine" else ""
    return f"MLP hidden {list(cfg.hidden)} {cfg.activation}, loss {cfg.loss}, {_precision(cfg)}; {opt}, " \
           f"batch {cfg.batch_size}, {cfg.epochs} epochs"


def _precision(cfg):
    """The weights' dtype, the arithmetic's when it differs, and how new weights are stored."""
    arithmetic = compute_dtype(cfg.dtype).name
    weights = cfg.dtype if arithmetic == cfg.dtype else f"{cfg.dtype} weights, {arithmetic} arithmetic"
    state = ", state in the weights' dtype" if cfg.state_dtype == "param" and cfg.dtype != arithmetic else \
        ", 8-bit optimizer state" if cfg.state_dtype == "8bit" else ""
    return f"{weights}, rounding {cfg.rounding}{state}"


def _counts(runs):
    def span(key):
        lo, hi = min(r[key] for r in runs), max(r[key] for r in runs)
        return f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"{span('n_train')} training samples, {span('n_test')} test samples"


def _seed_span(seeds):
    seeds = sorted(seeds)
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]})"
    return f"{len(seeds)} seeds ({', '.join(map(str, seeds))})"


COLUMNS = [("rule", "rule", "{:<10}"), ("strength", "strength", "{:>8g}"),
           ("train_accuracy", "train acc", "{:>9.3f}"), ("test_accuracy", "test acc", "{:>8.3f}"),
           ("train_loss", "train loss", "{:>10.4f}"), ("test_loss", "test loss", "{:>9.4f}"),
           ("mean_abs_weight", "mean|w|", "{:>7.3f}"), ("max_abs_weight", "max|w|", "{:>7.3f}"),
           ("fraction_outside_5", "|w|>5", "{:>6.2%}"), ("update_seconds", "update s", "{:>8.2f}"),
           ("epoch_seconds", "epochs s", "{:>8.2f}")]


def format_table(runs):
    """One row per run (the train command)."""
    header = "  ".join(f"{title:>{len(fmt.format(runs[0][key]))}}" if i else f"{title:<10}"
                       for i, (key, title, fmt) in enumerate(COLUMNS))
    lines = [header]
    for r in runs:
        lines.append("  ".join(fmt.format(r[key]) for key, _, fmt in COLUMNS))
    return "\n".join(lines)


# (metric, title, format, with spread): the summary table of compare, one row per rule
SUMMARY_COLUMNS = [("train_accuracy", "train acc", "{:.3f}", False), ("test_accuracy", "test acc", "{:.3f}", True),
                   ("train_loss", "train loss", "{:.4f}", False), ("test_loss", "test loss", "{:.4f}", True),
                   ("mean_abs_weight", "mean|w|", "{:.3f}", False), ("max_abs_weight", "max|w|", "{:.3f}", False),
                   ("fraction_outside_5", "|w|>5", "{:.2%}", False)]


def format_summary(summary):
    """One row per rule: means over the seeds, +- the sd over seeds for the test metrics, the
    largest max|w| of any seed, and the seconds per run."""
    rows = []
    for e in summary:
        cells = [e["rule"], f"{e['strength']:g}"]
        for key, _, fmt, spread in SUMMARY_COLUMNS:
            value = e[key]["max" if key == "max_abs_weight" else "mean"]
            cells.append(fmt.format(value) + (f" +- {fmt.format(e[key]['sd'])}" if spread else ""))
        norm = e.get("weight_norm")
        cells.append(f"{norm['mean']:.2f}" if norm else "-")
        tau = e.get("timescale_epochs")
        cells.append(f"{tau:.3g}" if tau is not None else "-")
        cells.append(f"{e['seconds_per_run']:.2f}")
        rows.append(cells)
    titles = ["rule", "strength", *(c[1] for c in SUMMARY_COLUMNS), "||W||", "tau ep", "s/run"]
    widths = [max(len(t), *(len(r[k]) for r in rows)) for k, t in enumerate(titles)]

    def line(cells):  # the rule left-aligned, numbers right-aligned
        return "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(titles), *map(line, rows)])


def _say(args):
    """Where the human-readable report goes: stdout, or stderr when the JSON takes stdout."""
    return sys.stderr if args.json == STDOUT else sys.stdout


def _cmd_train(args):
    rule, strength = "none", 0.0
    for name, _, _ in RULE_FLAGS:
        if getattr(args, name) is not None:
            rule, strength = name, getattr(args, name)
    if args.resume and not args.checkpoint:
        raise _UsageError("--resume needs --checkpoint PATH")
    cfg = _config(args, rule=rule, strength=strength)
    if args.checkpoint:
        check_writable(args.checkpoint)
    if args.resume and not os.path.exists(args.checkpoint):
        print(f"l2decay: no checkpoint at {args.checkpoint} yet: starting fresh", file=sys.stderr)
    run = _guarded(train, cfg, checkpoint=args.checkpoint, resume=args.resume, progress=_tty(args))
    out = _say(args)
    if not args.quiet:
        print(f"data {cfg.data}: {_counts([run])}, test fraction {cfg.test_fraction}; {_setting(cfg)}, "
              f"seed {cfg.seed}; rules act on weight matrices, not biases", file=out)
        print(format_table([run]), file=out)
        print(WEIGHT_NOTE, file=out)
    if args.json:
        _write_json(args.json, {"config": _config_dict(cfg), "runs": [_strip(run)]})
    if args.plot:
        from .experiment.plot import plot_runs
        plot_runs([run], args.plot)


def _cmd_compare(args):
    cfg = _config(args)
    strengths = {name: getattr(args, name) for name, _, _ in RULE_FLAGS}
    runs = _guarded(compare, cfg, strengths, seeds=args.seeds, jobs=args.jobs, progress=_tty(args), rules=args.rules)
    summary = summarize(runs)
    verdict, reading = read_comparison(runs)
    seeds = sorted({r["seed"] for r in runs})
    out = _say(args)
    if not args.quiet:
        print(f"data {cfg.data}: {_counts(runs)}, test fraction {cfg.test_fraction}; {_setting(cfg)}; "
              f"{_seed_span(seeds)}; rules act on weight matrices, not biases", file=out)
        print(format_summary(summary), file=out)
        print(f"Means over {_seed_span(seeds)}; +- is the standard deviation over seeds; max|w| is the largest "
              f"of any seed. {WEIGHT_NOTE}.", file=out)
        print("Reading:", file=out)
        for line in reading:
            print(f"- {line}", file=out)
    if args.json:
        config = _config_dict(cfg)
        config["seeds"] = seeds
        config["strengths"] = {rule: strengths[rule] for rule in args.rules if rule in strengths}
        _write_json(args.json, {"config": config, "summary": summary,
                                "reading": {"verdict": verdict, "lines": reading},
                                "runs": [_strip(r) for r in runs]})
    if args.plot:
        from .experiment.plot import plot_runs
        plot_runs(runs, args.plot)


def _cmd_sweep(args):
    cfg = _config(args, optimizer="sgd", lr=None, momentum=None)  # the sweep sets these per run
    results = _guarded(sweep.sweep, cfg, optimizers=args.optimizers, rules=args.rules, quick=args.quick,
                       seeds=args.seeds, momentum=args.momentum, jobs=args.jobs, progress=_tty(args))
    analysis = sweep.analyse(results)
    verdict, reading = sweep.read_sweep(analysis, args.momentum)
    seeds = sorted({r["seed"] for r in results})
    out = _say(args)
    if not args.quiet:
        n = len(results)
        seconds = sum(r["seconds"] for r in results)
        print(f"data {cfg.data}: {_counts(results)}, test fraction {cfg.test_fraction}; MLP hidden "
              f"{list(cfg.hidden)} {cfg.activation}, loss {cfg.loss}, {_precision(cfg)}; batch {cfg.batch_size}, "
              f"{cfg.epochs} epochs; sgd momentum {args.momentum:g}; {_seed_span(seeds)}; {n} runs, "
              f"{seconds / n:.2f} s each", file=out)
        print(sweep.format_surfaces(results), file=out)
        print(file=out)
        print(f"Slope of log10(best strength) against log10(lr): 0 is separable, +-1 a diagonal valley "
              f"(|slope| < {sweep.SEPARABLE:.2g}: separable, > {sweep.DIAGONAL:.2g}: diagonal):", file=out)
        print(sweep.format_slopes(analysis), file=out)
        print("Reading:", file=out)
        for line in reading:
            print(f"- {line}" if not line.startswith("  ") else f"  {line.strip()}", file=out)
    if args.json:
        config = {k: v for k, v in _config_dict(cfg).items() if k not in ("optimizer", "lr", "momentum", "seed")}
        config.update(optimizers=list(args.optimizers), rules=list(args.rules), momentum=args.momentum,
                      seeds=seeds, quick=args.quick)
        _write_json(args.json, {"config": config, "analysis": analysis,
                                "reading": {"verdict": verdict, "lines": reading}, "results": results})
    if args.plot:
        from .experiment.plot import plot_sweep
        plot_sweep(results, analysis, args.plot, momentum=args.momentum)


def _config_dict(cfg):
    return {k: v for k, v in cfg.to_dict().items() if k not in ("rule", "strength")}


def _strip(run):
    return {k: v for k, v in run.items() if k != "weights"}


def _guarded(function, *args, **kwargs):
    """Call the training `function`; a setting that fails once the data is known (the model's
    memory) becomes a usage error naming the option."""
    try:
        return function(*args, **kwargs)
    except ConfigError as exc:
        raise _UsageError(_option_message(exc)) from None


def _cmd_bench(args):
    from . import bench

    quick = args.quick
    sizes = args.sizes or (bench.QUICK_SIZES if quick else bench.SIZES)
    dtypes = bench.DTYPES if args.dtype == "both" else (args.dtype,)
    repeats = args.repeats or (5 if quick else 7)
    # the 16-bit table's sizes: its own (large, memory-bound) ones, or the largest of --sizes
    half_sizes = ({kind: max(args.sizes) for kind in bench.HALF_KINDS} if args.sizes
                  else bench.QUICK_HALF_SIZES if quick else bench.HALF_SIZES)
    say = None if args.quiet else (lambda msg: print(f"  measured {msg}", file=sys.stderr, flush=True))
    machine = bench.machine_info(args.threads)
    out = _say(args)
    if not args.quiet:
        b = machine["build_info"]
        print(f"{machine['cpu']}, {machine['cores']} cores, {machine['threads']} threads; l2decay SIMD "
              f"{b['simd']} (available {', '.join(b['simd_available'])}), OpenMP {b['openmp']}, "
              f"parallel from {b['parallel_threshold_bytes'] // 1024:,} KiB per array; numpy {machine['numpy']}, "
              f"torch {machine['torch'] or 'not installed'}; native C: "
              f"{machine['native_reference'] or 'no C compiler'}", file=out, flush=True)
    if args.crossover:
        results = bench.crossover(sizes=args.sizes or bench.CROSSOVER_SIZES, dtypes=dtypes,
                                  threads=args.threads, repeats=args.repeats or 9, progress=say)
        text = bench.crossover_table(results)
    elif args.sparse:
        results = bench.measure_sparse(rows=args.sizes or (bench.QUICK_SPARSE_ROWS if quick else bench.SPARSE_ROWS),
                                     repeats=repeats, progress=say)
        text = bench.sparse_table(results)
    elif args.stats:
        results = bench.measure_stats(sizes=args.sizes or bench.STATS_SIZES, repeats=args.repeats or 15,
                                      progress=say)
        text = bench.stats_table(results)
    else:
        results = bench.measure_all(sizes=sizes, dtypes=dtypes, threads=args.threads, repeats=repeats,
                              optimizer_sizes=bench.QUICK_OPTIMIZER_SIZES if quick else bench.OPTIMIZER_SIZES,
                              half_sizes=half_sizes, progress=say)
        text = bench.tables(results)
    if not args.quiet:
        print(text, file=out)
    if args.json:
        _write_json(args.json, {"machine": machine, "results": results})
    if args.plot and not (args.crossover or args.sparse or args.stats):
        from .experiment.plot import plot_bench
        plot_bench(results, machine, args.plot)


def _non_finite(obj, where):
    """The first NaN or infinity in `obj` and where it is ('runs[0].history[2].test_loss is nan'),
    or None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else f"{where.lstrip('.')} is {obj}"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = _non_finite(value, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}")
        if found:
            return found
    return None


def _write_json(path, doc):
    """Write `doc` as strict JSON to `path` (- : stdout).  json.dump would write NaN and
    Infinity, which JSON parsers refuse: such a run is reported as an error instead, and
    nothing is written."""
    found = _non_finite(doc, "")
    if found:
        raise OutputError(f"{'stdout' if path == STDOUT else path}: not written, as JSON has no NaN or "
                          f"infinity: {found}")
    text = json.dumps(doc, indent=1, allow_nan=False)
    if path == STDOUT:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    with open(path, "w") as f:
        f.write(text)


def _tty(args):
    return not args.quiet and sys.stderr.isatty()


def _check_inputs(args):
    """What can be checked before any training, so that a bad option costs no run."""
    seed, seeds = getattr(args, "seed", None), getattr(args, "seeds", None)
    if seed is not None and seeds is not None and seed + seeds - 1 > MAX_SEED:
        raise _UsageError(f"argument --seeds: the last seed, --seed + --seeds - 1 = {seed + seeds - 1}, must be "
                          f"<= 2**63 - 1")
    if getattr(args, "plot", None):
        from .experiment.plot import require_matplotlib
        try:
            require_matplotlib()
        except ImportError as exc:
            raise _UsageError(str(exc)) from None
    data = getattr(args, "data", None)
    if data is not None and data not in datasets.EMBEDDED and not os.path.exists(data) \
            and not data.endswith((".csv", ".gz")):
        raise _UsageError(f"argument --data: unknown data set {data!r} "
                          f"(embedded: {', '.join(datasets.EMBEDDED)}; or a path to a .csv file)")
    for path in (args.json, getattr(args, "plot", None)):
        if path and path != STDOUT:
            check_writable(path)


def _what_was_saved(exc):
    if not isinstance(exc, Interrupted) or not exc.checkpoint:
        return "nothing written"
    if exc.saved_epoch:
        return f"{exc.checkpoint} holds epoch {exc.saved_epoch}; add --resume to continue from it"
    return f"no epoch completed, nothing saved in {exc.checkpoint}"


# what to make smaller when a command runs out of memory: its own options
_MEMORY_HINTS = {"train": "; try a smaller --hidden, --train-size or --batch-size",
                 "compare": "; try a smaller --hidden, --train-size or --batch-size",
                 "sweep": "; try a smaller --batch-size or fewer --jobs",
                 "bench": "; try smaller --sizes"}


def main(argv=None):
    """The command line; returns the exit code: 0, 2 for a bad option or input (one line on
    stderr, never a traceback), 130 after Ctrl-C."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _check_inputs(args)
        args.func(args)
    except _UsageError as exc:
        parser.exit(2, f"l2decay: error: {exc} (see l2decay {args.command} --help)\n")
    except (datasets.DataError, CheckpointError, OutputError) as exc:
        print(f"l2decay: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        hint = _MEMORY_HINTS.get(args.command, "")
        print(f"l2decay: error: out of memory{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # "\r": over the terminal's "^C", so that Ctrl-C leaves one line
        start = "\r" if sys.stderr.isatty() else ""
        print(f"{start}l2decay: interrupted: {_what_was_saved(exc)}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
