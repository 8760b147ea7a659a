"""Timing: medians of interleaved rounds, so that a slow moment of a shared machine hits every
case alike."""
import time

import numpy as np

from ._cases import check_values


def _calibrate(run, min_time):
    """Calls of `run` per timing so that one timing lasts >= min_time."""
    run()  # warm up: first-touch page faults, lazy init
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            run()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time or number >= 1 << 24:
            return number
        number = max(number * 2, int(number * min_time / max(elapsed, 1e-9) * 1.2))


def measure_together(cases, *, repeats=7, min_time=2e-3):
    """Median seconds per update of each case, timed in interleaved rounds (one timing of each
    case per round), so that a slow moment of a shared machine hits every case alike."""
    numbers = [_calibrate(c.run, min_time) for c in cases]
    times = [[] for _ in cases]
    for _ in range(repeats):
        for case, number, out in zip(cases, numbers, times):
            run = case.run
            t0 = time.perf_counter()
            for _ in range(number):
                run()
            out.append(time.perf_counter() - t0)
    for case in cases:
        check_values(*case.arrays)
    return [float(np.median(t)) / (number * c.reps) for c, number, t in zip(cases, numbers, times)]


def measure(case, *, repeats=7, min_time=2e-3):
    """Median seconds per update: `repeats` timings of a loop calibrated to last >= min_time."""
    return measure_together([case], repeats=repeats, min_time=min_time)[0]
