"""The `l2decay` command: train one rule, or compare the rules side by side, on real data."""
import argparse
import dataclasses
import json
import math
import os
import sys

import numpy as np

from . import datasets
from .driver import DEFAULT_STRENGTH, CheckpointError, Config, OutputError, check_writable, compare, train

RULE_FLAGS = (("l2", "LAMBDA", "L2 regularization: grad += LAMBDA*w before the optimizer"),
              ("decay", "FRACTION", "weight decay: w *= 1 - FRACTION after each step"),
              ("decoupled", "LAMBDA", "decoupled decay: w *= 1 - lr*LAMBDA before each step (AdamW)"))


def _int_at_least(low):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        return v
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


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


def _hidden(text):
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected widths like 64 or 128,64, got {text!r}")
    return sizes


def _parser():
    d = Config()
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("data and model")
    g.add_argument("--data", default=d.data,
                   help=f"embedded data set ({', '.join(datasets.EMBEDDED)}) or a CSV path "
                        f"(numeric features, integer class label last, optional header); default {d.data}")
    g.add_argument("--test-fraction", type=_fraction, default=d.test_fraction, help=f"default {d.test_fraction}")
    g.add_argument("--train-size", type=_nonneg_int, default=d.train_size,
                   help=f"stratified subset of the training split (0: all); default {d.train_size}")
    g.add_argument("--hidden", type=_hidden, default=d.hidden, help="hidden widths, e.g. 64 or 128,64; default 100")
    g.add_argument("--activation", choices=("tanh", "relu"), default=d.activation)
    g.add_argument("--loss", choices=("ce", "mse"), default=d.loss, help="cross-entropy or squared error")
    g.add_argument("--dtype", choices=("float64", "float32"), default=d.dtype)
    g = common.add_argument_group("training")
    g.add_argument("--optimizer", choices=("sgd", "adam"), default=d.optimizer)
    g.add_argument("--lr", type=_nonneg_float, default=d.lr, help=f"default {d.lr}")
    g.add_argument("--momentum", type=_fraction, default=d.momentum, help="SGD momentum in [0, 1)")
    g.add_argument("--batch-size", type=_positive_int, default=d.batch_size, help="1: per-sample (online) training")
    g.add_argument("--epochs", type=_positive_int, default=d.epochs, help=f"default {d.epochs}")
    g.add_argument("--seed", type=_nonneg_int, default=d.seed)
    g = common.add_argument_group("output")
    g.add_argument("--json", metavar="PATH", help="write config, final metrics and per-epoch history")
    g.add_argument("--plot", metavar="PATH.png", help="learning curves and weight histograms (needs matplotlib)")
    g.add_argument("--quiet", action="store_true", help="no progress bar, no table")

    parser = argparse.ArgumentParser(prog="l2decay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", parents=[common], help="train with one rule")
    rules = p.add_mutually_exclusive_group()
    for name, metavar, help_ in RULE_FLAGS:
        rules.add_argument(f"--{name}", type=_fraction if name == "decay" else _nonneg_float, metavar=metavar, help=help_)
    p.add_argument("--checkpoint", metavar="PATH", help="save the training state (.npz) after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint up to --epochs in total")
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("compare", parents=[common],
                       help="train with no regularization, l2, decay and decoupled from the same start")
    for name, metavar, help_ in RULE_FLAGS:
        p.add_argument(f"--{name}", type=_fraction if name == "decay" else _nonneg_float, metavar=metavar,
                       default=DEFAULT_STRENGTH[name], help=f"{help_}; default {DEFAULT_STRENGTH[name]:g}")
    p.set_defaults(func=_cmd_compare)
    p = sub.add_parser("bench", help="time the update rules against numpy, torch, a native C loop "
                                     "and the memory ceiling (see README, Performance)")
    p.add_argument("--quick", action="store_true", help="4 sizes, fewer repeats: under 30 s")
    p.add_argument("--sizes", type=_sizes, metavar="N,N,...", help="element counts to sweep (overrides --quick's)")
    p.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    p.add_argument("--threads", type=_nonneg_int, default=0,
                   help="threads for every implementation alike (l2decay, torch, native C); 0: all cores")
    p.add_argument("--repeats", type=_positive_int, help="timings per case, median reported (default 7, quick 5)")
    p.add_argument("--json", metavar="PATH", help='write {"machine": {...}, "results": [...]}')
    p.add_argument("--plot", metavar="PATH.png", help="ns/element against n, log-log, caches marked (needs matplotlib)")
    p.add_argument("--crossover", action="store_true",
                   help="instead of the sweep: one thread against all, per size, to place the parallel "
                        "threshold (L2DECAY_PARALLEL_THRESHOLD)")
    p.add_argument("--quiet", action="store_true", help="no progress lines, no tables")
    p.set_defaults(func=_cmd_bench)
    return parser


def _sizes(text):
    try:
        sizes = tuple(int(s.replace("_", "")) for s in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected element counts like 1000,16384, got {text!r}")
    return sizes


def _config(args, **extra):
    return Config(data=args.data, test_fraction=args.test_fraction, train_size=args.train_size,
                  hidden=args.hidden, activation=args.activation, loss=args.loss, dtype=args.dtype,
                  optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, batch_size=args.batch_size,
                  epochs=args.epochs, seed=args.seed, **extra)


COLUMNS = [("rule", "rule", "{:<10}"), ("strength", "strength", "{:>8g}"),
           ("train_accuracy", "train acc", "{:>9.3f}"), ("test_accuracy", "test acc", "{:>8.3f}"),
           ("train_loss", "train loss", "{:>10.4f}"), ("test_loss", "test loss", "{:>9.4f}"),
           ("mean_abs_weight", "mean|w|", "{:>7.3f}"), ("max_abs_weight", "max|w|", "{:>7.3f}"),
           ("fraction_outside_5", "|w|>5", "{:>6.1%}"), ("update_seconds", "update s", "{:>8.2f}"),
           ("epoch_seconds", "epochs s", "{:>8.2f}")]


def format_table(runs):
    header = "  ".join(f"{title:>{len(fmt.format(runs[0][key]))}}" if i else f"{title:<10}"
                       for i, (key, title, fmt) in enumerate(COLUMNS))
    lines = [header]
    for r in runs:
        lines.append("  ".join(fmt.format(r[key]) for key, _, fmt in COLUMNS))
    return "\n".join(lines)


def _report(args, cfg, runs):
    if not args.quiet:
        n_train = cfg.train_size or "all"
        print(f"data {cfg.data}: {n_train} training samples, test fraction {cfg.test_fraction}; "
              f"MLP hidden {list(cfg.hidden)} {cfg.activation}, loss {cfg.loss}, {cfg.dtype}; "
              f"{cfg.optimizer} lr {cfg.lr:g} momentum {cfg.momentum:g}, batch {cfg.batch_size}, "
              f"{cfg.epochs} epochs, seed {cfg.seed}; rules act on weight matrices, not biases")
        print(format_table(runs))
    if args.json:
        out = {"config": {k: v for k, v in cfg.to_dict().items() if k not in ("rule", "strength")},
               "runs": [{k: v for k, v in r.items() if k != "weights"} for r in runs]}
        _write_json(args.json, out)
    if args.plot:
        from .plot import plot_runs
        plot_runs(runs, args.plot)


def _cmd_train(args):
    rule, strength = "none", 0.0
    for name, _, _ in RULE_FLAGS:
        if getattr(args, name) is not None:
            rule, strength = name, getattr(args, name)
    if args.resume and not args.checkpoint:
        raise _UsageError("--resume needs --checkpoint PATH")
    cfg = _config(args, rule=rule, strength=strength)
    run = train(cfg, checkpoint=args.checkpoint, resume=args.resume, progress=_tty(args))
    _report(args, cfg, [run])


def _cmd_compare(args):
    cfg = _config(args)
    strengths = {name: getattr(args, name) for name, _, _ in RULE_FLAGS}
    runs = compare(cfg, strengths, progress=_tty(args))
    _report(args, cfg, runs)


def _cmd_bench(args):
    from . import bench

    quick = args.quick
    sizes = args.sizes or (bench.QUICK_SIZES if quick else bench.SIZES)
    dtypes = bench.DTYPES if args.dtype == "both" else (args.dtype,)
    repeats = args.repeats or (5 if quick else 7)
    say = None if args.quiet else (lambda msg: print(f"  measured {msg}", file=sys.stderr, flush=True))
    machine = bench.machine_info(args.threads)
    if not args.quiet:
        b = machine["build_info"]
        print(f"{machine['cpu']}, {machine['cores']} cores, {machine['threads']} threads; l2decay SIMD "
              f"{b['simd']} (available {', '.join(b['simd_available'])}), OpenMP {b['openmp']}, "
              f"parallel from {b['parallel_threshold_bytes'] // 1024:,} KiB per array; numpy {machine['numpy']}, "
              f"torch {machine['torch'] or 'not installed'}; native C: "
              f"{machine['native_reference'] or 'no C compiler'}", flush=True)
    if args.crossover:
        results = bench.crossover(sizes=args.sizes or bench.CROSSOVER_SIZES, dtypes=dtypes,
                                  threads=args.threads, repeats=args.repeats or 9, progress=say)
        text = bench.crossover_table(results)
    else:
        results = bench.sweep(sizes=sizes, dtypes=dtypes, threads=args.threads, repeats=repeats,
                              optimizer_sizes=bench.QUICK_OPTIMIZER_SIZES if quick else bench.OPTIMIZER_SIZES,
                              progress=say)
        text = bench.tables(results)
    if not args.quiet:
        print(text)
    if args.json:
        _write_json(args.json, {"machine": machine, "results": results})
    if args.plot and not args.crossover:
        from .plot import plot_bench
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
    """Write `doc` as strict JSON.  json.dump would write NaN and Infinity, which JSON parsers
    refuse: such a run is reported as an error instead, and nothing is written."""
    found = _non_finite(doc, "")
    if found:
        raise OutputError(f"{path}: not written, as JSON has no NaN or infinity: {found}")
    text = json.dumps(doc, indent=1, allow_nan=False)
    with open(path, "w") as f:
        f.write(text)


def _tty(args):
    return not args.quiet and sys.stderr.isatty()


class _UsageError(Exception):
    pass


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.plot:
        from .plot import require_matplotlib
        try:
            require_matplotlib()
        except ImportError as exc:
            parser.error(str(exc))
    if args.command != "bench" and args.data not in datasets.EMBEDDED and not os.path.exists(args.data) \
            and not args.data.endswith((".csv", ".gz")):
        parser.error(f"argument --data: unknown data set {args.data!r} "
                     f"(embedded: {', '.join(datasets.EMBEDDED)}; or a path to a .csv file)")
    try:
        for path in (args.json, args.plot):  # before training, not after it
            if path:
                check_writable(path)
        args.func(args)
    except _UsageError as exc:
        parser.error(str(exc))
    except (datasets.DataError, CheckpointError, OutputError) as exc:
        print(f"l2decay: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
