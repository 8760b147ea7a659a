"""The measurements `l2decay bench` makes: result records of every case family."""
import numpy as np

from .. import _kernels
from ._cases import (CROSSOVER_SIZES, DTYPES, HALF_IMPLS, HALF_KINDS, HALF_SIZES, IMPLS, KERNELS, MANY_IMPLS,
                     MLP_SHAPES, OPTIMIZERS, OPTIMIZER_IMPLS, OPTIMIZER_SIZES, PASSES, SIZES, SPARSE_ROWS,
                     SPARSE_TOUCHED, SPARSE_WIDTH, STATS_SIZES, TORCH_IMPLS, TORCH_KINDS, TORCH_MODELS, half_case,
                     many_case, optimizer_case, rule_case, sparse_cases, stats_cases, torch_case)
from ._machine import apply_threads, threads_in_use, torch_module
from ._timing import measure, measure_together


def measure_sparse(*, rows=SPARSE_ROWS, repeats=7, progress=None):
    """The sparse-rows table's records: us per step of each implementation at each table size."""
    results = []
    for nrows in rows:
        labelled = sparse_cases(nrows)
        for (impl, case), sec in zip(labelled, measure_together([c for _, c in labelled], repeats=repeats)):
            rec = _record("sparse", impl, "float32", nrows * SPARSE_WIDTH, impl, sec, case.note)
            rec.update(rows=nrows, width=SPARSE_WIDTH, touched=SPARSE_TOUCHED)
            results.append(rec)
        del labelled
        if progress:
            progress(f"sparse rows, {nrows:,} x {SPARSE_WIDTH}")
    return results


def measure_stats(*, sizes=STATS_SIZES, repeats=15, progress=None):
    """The statistics table's records: AdamW without and with weight statistics at each size,
    timed together on the same arrays."""
    results = []
    for n in sizes:
        labelled = stats_cases(n)
        for (impl, case), sec in zip(labelled, measure_together([c for _, c in labelled], repeats=repeats)):
            results.append(_record("stats", "adamw", "float32", n, impl, sec, case.note))
        del labelled
        if progress:
            progress(f"weight statistics, n={n:,}")
    return results


def _record(kind, rule, dtype, n, impl, seconds, note=""):
    itemsize = np.dtype(dtype).itemsize
    return {
        "kind": kind, "rule": rule, "dtype": dtype, "n": n, "impl": impl,
        "seconds": seconds,
        "ns_per_element": seconds / max(n, 1) * 1e9,
        "gb_per_s": PASSES.get(rule, 0) * itemsize * n / seconds / 1e9 if seconds > 0 else None,
        "note": note,
    }


def measure_half(*, sizes=HALF_SIZES, repeats=7, progress=None):
    """The 16-bit table's rows: every kind x implementation, timed together per kind."""
    results = []
    for kind in HALF_KINDS:
        n = sizes[kind]
        labelled = [(impl, half_case(kind, impl, n)) for impl in HALF_IMPLS]
        labelled = [(impl, c) for impl, c in labelled if c is not None]
        for (impl, case), sec in zip(labelled, measure_together([c for _, c in labelled], repeats=repeats)):
            results.append({"kind": "half", "rule": kind, "n": n, "impl": impl, "seconds": sec,
                            "ns_per_element": sec / n * 1e9})
        del labelled
        if progress:
            progress(f"16-bit weights, {kind} n={n:,}")
    return results


def measure_all(*, sizes=SIZES, dtypes=DTYPES, threads=0, repeats=7, optimizer_sizes=OPTIMIZER_SIZES,
          half_sizes=HALF_SIZES, progress=None):
    """Measure every rule x dtype x size x implementation, the multi-tensor call and the
    optimizer steps; returns a list of result dicts (see docs/performance.md)."""
    apply_threads(threads)
    nt = threads_in_use(threads)
    results = []
    todo = [(dt, n) for dt in dtypes for n in sizes]
    for dtype, n in todo:
        for rule in KERNELS:
            labelled = []
            for impl in IMPLS:
                # native twice: the best a hand-written loop does here, serial or on every thread
                for t in (sorted({1, nt}) if impl == "native" else [None]):
                    case = rule_case(rule, impl, dtype, n, threads=threads, native_threads=t)
                    if case is not None:
                        labelled.append((impl, case))
            seconds = measure_together([c for _, c in labelled], repeats=repeats)
            rows = {}
            for (impl, case), sec in zip(labelled, seconds):
                if impl not in rows or sec < rows[impl]["seconds"]:
                    rows[impl] = _record("rule", rule, dtype, n, impl, sec, case.note)
            del labelled
            ceiling = rows["stream"]["gb_per_s"]
            for r in rows.values():
                r["fraction_of_ceiling"] = r["gb_per_s"] / ceiling if ceiling else None
            results.extend(rows.values())
            if progress:
                progress(f"{dtype} n={n:,} {rule}")
    for dtype in dtypes:
        for label, shapes in MLP_SHAPES.items():
            n = int(sum(np.prod(s) for s in shapes))
            for rule in ("l2", "decay"):
                cases = [many_case(rule, impl, dtype, shapes) for impl in MANY_IMPLS]
                for impl, s in zip(MANY_IMPLS, measure_together(cases, repeats=repeats)):
                    rec = _record("many", rule, dtype, n, impl, s, f"{label}, {len(shapes)} tensors")
                    rec["shapes"] = label
                    results.append(rec)
        if progress:
            progress(f"{dtype} multi-tensor")
        for n in optimizer_sizes:
            for kind in OPTIMIZERS:
                labelled = [(impl, optimizer_case(kind, impl, dtype, n)) for impl in OPTIMIZER_IMPLS]
                labelled = [(impl, c) for impl, c in labelled if c is not None]
                for (impl, case), s in zip(labelled, measure_together([c for _, c in labelled], repeats=repeats)):
                    results.append(_record("optimizer", kind, dtype, n, impl, s, case.note))
                del labelled
            if progress:
                progress(f"{dtype} optimizers n={n:,}")
    results += measure_torch(repeats=repeats, progress=progress)
    results += measure_half(sizes=half_sizes, repeats=repeats, progress=progress)
    return results


def measure_torch(*, repeats=7, progress=None):
    """The torch optimizer table's rows (empty without torch)."""
    results = []
    if torch_module() is None:
        return results
    for label, shapes in TORCH_MODELS.items():
        n = int(sum(np.prod(s) for s in shapes))
        for kind in TORCH_KINDS:
            labelled = [(impl, torch_case(kind, impl, shapes)) for impl in TORCH_IMPLS]
            labelled = [(impl, c) for impl, c in labelled if c is not None]
            for (impl, case), sec in zip(labelled, measure_together([c for _, c in labelled], repeats=repeats)):
                rec = _record("torch", kind, "float32", n, impl, sec)
                rec["model"], rec["tensors"] = label, len(shapes)
                results.append(rec)
            del labelled
        if progress:
            progress(f"torch optimizers, {label}")
    return results


def crossover(*, sizes=CROSSOVER_SIZES, dtypes=DTYPES, threads=0, repeats=9, progress=None):
    """l2decay's kernels on one thread against all `threads` at each size, to place the
    parallel threshold: returns result dicts with serial and parallel seconds."""
    apply_threads(threads)
    old = _kernels.get_parallel_threshold()
    out = []
    try:
        for dtype in dtypes:
            for n in sizes:
                for kind in ("l2", "decay", "sgd-l2", "adamw"):
                    case = (rule_case(kind, "l2decay", dtype, n) if kind in KERNELS
                            else optimizer_case(kind, "l2decay", dtype, n))
                    _kernels.set_parallel_threshold(1 << 62)
                    serial = measure(case, repeats=repeats)
                    _kernels.set_parallel_threshold(0)
                    parallel = measure(case, repeats=repeats)
                    out.append({"kind": kind, "dtype": dtype, "n": n, "bytes_per_array": n * np.dtype(dtype).itemsize,
                                "serial_seconds": serial, "parallel_seconds": parallel,
                                "threads": threads_in_use(threads)})
                if progress:
                    progress(f"{dtype} n={n:,} serial vs parallel")
    finally:
        _kernels.set_parallel_threshold(old)
    return out
