"""The `l2decay` command."""
import argparse
import sys
import time

import numpy as np

from . import build_info, decay_step, l2_step


def _demo(args):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(args.n)
    g = rng.standard_normal(args.n)
    for name, step, kw in (("l2_step", l2_step, {"lam": 0.01}), ("decay_step", decay_step, {"decay": 0.01})):
        wk, gk = w.copy(), g.copy()
        t0 = time.perf_counter()
        step(wk, gk, lr=0.1, **kw)
        dt = time.perf_counter() - t0
        print(f"{name:11s} n={args.n}: {dt * 1e3:.3f} ms, mean |w| {np.abs(w).mean():.4f} -> {np.abs(wk).mean():.4f}")
    print("build:", build_info())
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="l2decay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run both update kernels once and print what was built")
    p.add_argument("--n", type=int, default=1_000_000)
    p.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
