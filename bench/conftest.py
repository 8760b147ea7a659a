"""The benchmark suite: run with ``pytest bench`` (after ``pip install '.[bench]'``).

Not collected by the default ``pytest`` run (pyproject's testpaths is tests/).  Every benchmark
sets its group to "<dtype> n=<n>" (or the MLP / optimizer it measures), so the default
``--benchmark-group-by=group`` puts the two rules and all their peers for one (dtype, n) in one
table; ``--benchmark-group-by=param:rule,param:dtype`` gives a size sweep per rule instead.

L2DECAY_BENCH_SMOKE=1 shrinks every size to a tiny one: tests/test_bench_smoke.py runs the whole
suite that way once, with --benchmark-disable, so a broken benchmark fails the normal tests.
"""
import os
import sys

import pytest

from l2decay import bench

# --import-mode=importlib does not put this directory on sys.path; the modules import benchutil
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    # every implementation pinned to the same thread count (0 = all cores)
    bench.apply_threads(int(os.environ.get("L2DECAY_BENCH_THREADS", "0")))


@pytest.fixture
def run_case(benchmark):
    """Benchmark a bench.Case and record ns/element and GB/s beside pytest-benchmark's stats."""

    def run(case, group, n, passes, itemsize):
        benchmark.group = group
        benchmark.extra_info.update({"n": n, "note": case.note, "reps_per_call": case.reps})
        # one call first, untimed, of every case (as l2decay bench's calibration): an optimizer's
        # first step makes its state (two table-sized moments for the sparse steps), and
        # pytest-benchmark sizes the rounds by its first timing (5 rounds instead of hundreds)
        case.run()
        benchmark(case.run)
        bench.check_values(*case.arrays)
        stats = getattr(benchmark, "stats", None)
        if stats is not None:  # None under --benchmark-disable
            seconds = stats.stats.median / case.reps
            benchmark.extra_info["ns_per_element"] = seconds / max(n, 1) * 1e9
            benchmark.extra_info["gb_per_s"] = passes * itemsize * n / seconds / 1e9

    return run
