"""Benchmark cases shared by ``l2decay bench`` and the pytest-benchmark suite in bench/.

A weight update does almost no arithmetic per byte, so its speed limit is memory bandwidth:
the L2 rule reads w and grad and writes both (4 array passes per element), the decay rule reads
both and writes w (3 passes), and "l2-keep" (``l2_step(write_grad=False)``, what torch's SGD
``weight_decay`` does) reads both and writes only w (3 passes).  Each case here is a zero-argument callable doing one update in
place, built outside any timed region, for one implementation:

- ``l2decay``: this package's kernels;
- ``numpy``:   the best in-place numpy expression of the same rule (ufuncs into a preallocated
               scratch array, no temporaries), single-threaded as numpy is;
- ``torch``:   PyTorch CPU, ``torch.optim.SGD(weight_decay=lam, fused=True)`` for L2 (it does
               not write grad back, so it is l2-keep's true peer) and ``add_``/``mul_`` for
               decay (None when torch is not installed);
- ``native``:  the same loop in plain C compiled here with ``-O3 -march=native -fopenmp``
               (_native_ref.c; None without a C compiler): what a hand-written loop reaches;
- ``stream``:  the memory ceiling: a plain compiled stream loop of the extension with the
               rule's traffic (swap for L2, axpy for decay and l2-keep), same dispatch and
               threads.

Constants keep values away from subnormals however often a case repeats: under the decay rule
w converges to -lr*g*keep/(1-keep) (about -g), and under L2 (g += lam*w; w -= lr*g) w and g
oscillate with constant amplitude (a symplectic step, lr*lam < 4).  `check_values` verifies it.
"""
import ctypes
import itertools
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time

import ml_dtypes
import numpy as np

from . import _kernels
from ._config import build_info, set_num_threads
from .optim import SGD, Adam, exclude_1d
from .rules import Decay, Decoupled, L2
from .steps import decay_step, l2_step

KERNELS = ("l2", "l2-keep", "decay")
DTYPES = ("float32", "float64")
IMPLS = ("l2decay", "numpy", "torch", "native", "stream")
# Sizes from L1 to DRAM on a typical core (48K L1d, 1M L2, 32M L3 here).
SIZES = (100, 1_000, 16_384, 131_072, 1_048_576, 4_194_304, 33_554_432)
QUICK_SIZES = (1_000, 16_384, 1_048_576, 8_388_608)
# array passes per element (reads + writes), times the itemsize = bytes moved per element
# (the optimizers never write the gradient: SGD reads w, g, b and writes w, b; Adam adds m, v)
PASSES = {"l2": 4, "l2-keep": 3, "decay": 3, "sgd-l2": 5, "sgd-decay": 5, "adam-l2": 7, "adamw": 7}
HYPER = {"l2": dict(lr=1e-2, lam=1e-2), "l2-keep": dict(lr=1e-2, lam=1e-2), "decay": dict(lr=1e-2, decay=1e-2)}
OPTIMIZERS = ("sgd-l2", "sgd-decay", "adam-l2", "adamw")
# Parameter shapes of real MLPs for the multi-tensor case.
MLP_SHAPES = {
    "iris 4-16-3": [(4, 16), (16,), (16, 3), (3,)],
    "digits 64-100-10": [(64, 100), (100,), (100, 10), (10,)],
    "mnist 784-128-64-10": [(784, 128), (128,), (128, 64), (64,), (64, 10), (10,)],
    "deep 12x(32-32)": [(32, 32), (32,)] * 12,
}


def resnet18_shapes():
    """The parameter shapes of torchvision's resnet18 (62 tensors, 11,689,512 params), written
    out so that no torchvision is needed."""
    shapes, cin = [(64, 3, 7, 7), (64,), (64,)], 64
    for cout in (64, 128, 256, 512):
        for block in range(2):
            shapes += [(cout, cin if block == 0 else cout, 3, 3), (cout,), (cout,), (cout, cout, 3, 3), (cout,), (cout,)]
            if block == 0 and cin != cout:      # the downsampling shortcut
                shapes += [(cout, cin, 1, 1), (cout,), (cout,)]
        cin = cout
    return shapes + [(1000, 512), (1000,)]


# Models for the torch optimizer table; "100 x 4" measures the cost per tensor.
TORCH_MODELS = {
    "resnet18": resnet18_shapes(),
    "mlp 784-128-64-10": [(128, 784), (128,), (64, 128), (64,), (10, 64), (10,)],
    "100 x 4": [(4,)] * 100,
}
TORCH_KINDS = ("adamw", "sgd-momentum")
TORCH_IMPLS = ("l2decay", "torch fused", "torch foreach", "deepspeed")


def inputs(n, dtype, count=2, seed=0):
    """Arrays of n values with |x| in [0.5, 1.5] and random sign: far from subnormal."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        x = rng.uniform(0.5, 1.5, n) * rng.choice([-1.0, 1.0], n)
        out.append(x.astype(dtype))
    return out


def check_values(*arrays):
    """Raise if any array holds a non-finite or subnormal value (a benchmark that drifted)."""
    for a in arrays:
        if a.size == 0:
            continue
        tiny = ml_dtypes.finfo(a.dtype).tiny      # (numpy's finfo does not know bfloat16)
        mag = np.abs(a)
        if not np.all(np.isfinite(a)) or np.any((mag > 0) & (mag < tiny)):
            raise AssertionError("benchmark inputs drifted to non-finite or subnormal values")


# ----------------------------------------------------------------------------- torch ------
def torch_module():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---------------------------------------------------------------------------- native ------
_NATIVE = {}


def native_library():
    """_native_ref.c compiled with -O3 -march=native -fopenmp into a temporary directory, once
    per process; None when there is no working C compiler."""
    if "lib" in _NATIVE:
        return _NATIVE["lib"]
    _NATIVE["lib"] = None
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return None
    src = os.path.join(os.path.dirname(__file__), "_native_ref.c")
    out = os.path.join(tempfile.mkdtemp(prefix="l2decay-native-"), "native_ref.so")
    cmd = [cc, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", src, "-o", out]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return None
    lib = ctypes.CDLL(out)
    for name in ("native_l2_f32", "native_l2_f64", "native_l2keep_f32", "native_l2keep_f64",
                 "native_decay_f32", "native_decay_f64"):
        getattr(lib, name).restype = None
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_double,
                                       ctypes.c_double, ctypes.c_int, ctypes.c_long]
    _NATIVE["lib"] = lib
    _NATIVE["cmd"] = " ".join(cmd[:5])
    return lib


def threads_in_use(threads):
    return threads or os.cpu_count() or 1


# ----------------------------------------------------------------------------- cases ------
class Case:
    """One implementation of one update on prepared arrays: ``run()`` does one update;
    ``reps`` > 1 means one call already does that many updates (native loops repeat in C)."""

    def __init__(self, run, arrays, reps=1, note=""):
        self.run, self.arrays, self.reps, self.note = run, arrays, reps, note


def rule_case(rule, impl, dtype, n, *, threads=0, native_threads=None, native_reps=None):
    """A Case for `rule` by `impl`, or None if that implementation is not available here.

    The native loop repeats `native_reps` times per call (default: enough for 64K elements, so
    ctypes' ~0.3 us call cost is amortized); 1 makes its calls directly comparable to the
    others' in a pytest-benchmark table, call cost included."""
    dtype = np.dtype(dtype)
    w, g = inputs(n, dtype)
    h = HYPER[rule]
    if impl == "l2decay":
        if rule == "l2":
            return Case(lambda: l2_step(w, g, lr=h["lr"], lam=h["lam"]), (w, g))
        if rule == "l2-keep":
            return Case(lambda: l2_step(w, g, lr=h["lr"], lam=h["lam"], write_grad=False), (w, g))
        return Case(lambda: decay_step(w, g, lr=h["lr"], decay=h["decay"]), (w, g))
    if impl == "stream":
        if rule == "l2":
            return Case(lambda: _kernels.stream_swap(w, g), (w, g))
        return Case(lambda: _kernels.stream_axpy(w, g, 0.5), (w, g))
    if impl == "numpy":
        tmp = np.empty_like(w)
        mul, add, sub = np.multiply, np.add, np.subtract
        if rule in ("l2", "l2-keep"):
            lr, lam = dtype.type(h["lr"]), dtype.type(h["lam"])
            reg = g if rule == "l2" else tmp  # where the regularized gradient goes

            def run():
                mul(w, lam, out=tmp)
                add(g, tmp, out=reg)
                mul(reg, lr, out=tmp)
                sub(w, tmp, out=w)
        else:
            lr, decay = dtype.type(h["lr"]), dtype.type(h["decay"])

            def run():
                mul(g, lr, out=tmp)
                sub(w, tmp, out=w)
                mul(w, decay, out=tmp)
                sub(w, tmp, out=w)
        return Case(run, (w, g))
    if impl == "torch":
        torch = torch_module()
        if torch is None:
            return None
        p = torch.nn.Parameter(torch.from_numpy(w))
        p.grad = torch.from_numpy(g)
        if rule in ("l2", "l2-keep"):
            opt = torch.optim.SGD([p], lr=h["lr"], weight_decay=h["lam"], fused=True)
            return Case(opt.step, (w, g), note="SGD(weight_decay, fused=True)")
        keep = 1 - h["decay"]

        def run():
            with torch.no_grad():
                p.add_(p.grad, alpha=-h["lr"])
                p.mul_(keep)
        return Case(run, (w, g), note="add_/mul_")
    if impl == "native":
        lib = native_library()
        if lib is None:
            return None
        fn = getattr(lib, f"native_{rule.replace('-', '')}_{'f64' if dtype == np.float64 else 'f32'}")
        # small sizes repeat inside C so that ctypes' call cost does not count
        reps = max(1, 65_536 // max(n, 1)) if native_reps is None else native_reps
        nt = threads_in_use(threads) if native_threads is None else native_threads
        a, b = w.ctypes.data, g.ctypes.data
        second = h["decay"] if rule == "decay" else h["lam"]
        return Case(lambda: fn(a, b, n, h["lr"], second, nt, reps), (w, g), reps=reps,
                    note=f"{nt} thread(s)")
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


MANY_IMPLS = ("one call", "loop", "optimizer")


def many_case(rule, impl, dtype, shapes):
    """Update every tensor of an MLP's parameter list: impl "one call", a Python "loop" of
    single calls, or one "optimizer" step (SGD, momentum 0.9, the rule on the weight matrices
    through exclude_1d, as the driver does)."""
    dtype = np.dtype(dtype)
    ws = [inputs(int(np.prod(s)), dtype, 1, seed=k)[0].reshape(s) for k, s in enumerate(shapes)]
    gs = [inputs(int(np.prod(s)), dtype, 1, seed=100 + k)[0].reshape(s) for k, s in enumerate(shapes)]
    h = HYPER[rule]
    step = l2_step if rule == "l2" else decay_step
    kw = {"lr": h["lr"], "lam": h["lam"]} if rule == "l2" else {"lr": h["lr"], "decay": h["decay"]}
    pairs = list(zip(ws, gs))
    if impl == "one call":
        return Case(lambda: step(ws, gs, **kw), ws + gs)
    if impl == "loop":
        def run():
            for w, g in pairs:
                step(w, g, **kw)
        return Case(run, ws + gs)
    if impl == "optimizer":
        reg = L2(h["lam"]) if rule == "l2" else Decay(h["decay"])
        opt = SGD(exclude_1d(ws, reg, verbose=False), lr=h["lr"], momentum=0.9)
        return Case(lambda: opt.step(gs), ws + gs)
    raise ValueError(f"impl must be one of {MANY_IMPLS}, got {impl!r}")


OPTIMIZER_IMPLS = ("l2decay", "schedule", "numpy", "torch")


def optimizer_case(kind, impl, dtype, n):
    """One optimizer step (SGD momentum 0.9, Adam) with a rule, by l2decay, numpy or torch;
    "schedule" is l2decay's step with the group's lr changed before every step (what every lr
    schedule does)."""
    dtype = np.dtype(dtype)
    w, g = inputs(n, dtype)
    lr, lam, mu = 1e-3, 1e-2, 0.9
    if impl in ("l2decay", "schedule"):
        reg = {"sgd-l2": L2(lam), "sgd-decay": Decay(lam * lr), "adam-l2": L2(lam), "adamw": Decoupled(lam)}[kind]
        opt = SGD([w], lr=lr, momentum=mu, reg=reg) if kind.startswith("sgd") else Adam([w], lr=lr, reg=reg)
        grads = [g]
        if impl == "l2decay":
            return Case(lambda: opt.step(grads), (w, g))
        group, lrs = opt.param_groups[0], itertools.cycle([lr, lr * 0.5])

        def scheduled():
            group["lr"] = next(lrs)
            opt.step(grads)
        return Case(scheduled, (w, g), note="lr changed before every step")
    if impl == "numpy":
        return _numpy_optimizer(kind, w, g, lr, lam, mu)
    if impl == "torch":
        torch = torch_module()
        if torch is None:
            return None
        p = torch.nn.Parameter(torch.from_numpy(w))
        p.grad = torch.from_numpy(g)
        if kind == "sgd-l2":
            opt = torch.optim.SGD([p], lr=lr, momentum=mu, weight_decay=lam, fused=True)
            return Case(opt.step, (w, g), note="SGD(momentum, weight_decay, fused=True)")
        if kind == "sgd-decay":
            opt = torch.optim.SGD([p], lr=lr, momentum=mu, fused=True)
            keep = 1 - lam * lr

            def run():
                opt.step()
                with torch.no_grad():
                    p.mul_(keep)
            return Case(run, (w, g), note="SGD(momentum, fused=True) + mul_")
        if kind == "adam-l2":
            opt = torch.optim.Adam([p], lr=lr, weight_decay=lam, fused=True)
            return Case(opt.step, (w, g), note="Adam(weight_decay, fused=True)")
        opt = torch.optim.AdamW([p], lr=lr, weight_decay=lam, fused=True)
        return Case(opt.step, (w, g), note="AdamW(fused=True)")
    raise ValueError(f"impl must be one of {OPTIMIZER_IMPLS}, got {impl!r}")


def torch_case(kind, impl, shapes):
    """One float32 step of a torch optimizer over params of `shapes` with set grads:
    l2decay.torch's, torch's with fused=True or foreach=True, or DeepSpeed's CPU Adam (AdamW
    mode); None if that implementation is not installed (or has no such optimizer)."""
    torch = torch_module()
    if torch is None:
        return None
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.rand(s, generator=gen) + 0.5) for s in shapes]
    for p in params:
        p.grad = (torch.rand(p.shape, generator=gen) + 0.5) * 1e-3
    hyper = dict(lr=1e-3, weight_decay=1e-2) if kind == "adamw" else dict(lr=1e-3, momentum=0.9, weight_decay=1e-4)
    if impl == "l2decay":
        from . import torch as l2t
        opt = (l2t.AdamW if kind == "adamw" else l2t.SGD)(params, **hyper)
    elif impl in ("torch fused", "torch foreach"):
        flag = {"fused": True} if impl == "torch fused" else {"foreach": True}
        opt = (torch.optim.AdamW if kind == "adamw" else torch.optim.SGD)(params, **hyper, **flag)
    elif impl == "deepspeed":
        try:
            from deepspeed.ops.adam import DeepSpeedCPUAdam
        except Exception:
            return None
        if kind != "adamw":
            return None
        opt = DeepSpeedCPUAdam(params, adamw_mode=True, **hyper)
    else:
        raise ValueError(f"impl must be one of {TORCH_IMPLS}, got {impl!r}")
    opt.step()    # state created outside the timing
    return Case(opt.step, [p.detach().numpy() for p in params])


def _numpy_optimizer(kind, w, g, lr, lam, mu):
    c = w.dtype.type
    tmp, buf, gr = np.empty_like(w), np.zeros_like(w), np.empty_like(w)   # gr: g + lam*w (g kept)
    m, v = np.zeros_like(w), np.zeros_like(w)
    mul, add, sub, div = np.multiply, np.add, np.subtract, np.divide
    state = {"t": 0}
    if kind.startswith("sgd"):
        keep = c(1 - lam * lr)

        def run():
            grad = g
            if kind == "sgd-l2":
                mul(w, c(lam), out=tmp)
                add(g, tmp, out=gr)
                grad = gr
            mul(buf, c(mu), out=buf)
            add(buf, grad, out=buf)
            mul(buf, c(lr), out=tmp)
            sub(w, tmp, out=w)
            if kind == "sgd-decay":
                mul(w, keep, out=w)
        return Case(run, (w, g, buf))
    b1, b2, eps = 0.9, 0.999, 1e-8

    def run():
        state["t"] += 1
        t = state["t"]
        grad = g
        if kind == "adam-l2":
            mul(w, c(lam), out=tmp)
            add(g, tmp, out=gr)
            grad = gr
        else:
            mul(w, c(1 - lr * lam), out=w)
        mul(m, c(b1), out=m)
        mul(grad, c(1 - b1), out=tmp)
        add(m, tmp, out=m)
        mul(v, c(b2), out=v)
        mul(grad, grad, out=tmp)
        mul(tmp, c(1 - b2), out=tmp)
        add(v, tmp, out=v)
        np.sqrt(v, out=tmp)
        div(tmp, c(np.sqrt(1 - b2 ** t)), out=tmp)
        add(tmp, c(eps), out=tmp)
        div(m, tmp, out=tmp)
        mul(tmp, c(lr / (1 - b1 ** t)), out=tmp)
        sub(w, tmp, out=w)
    return Case(run, (w, g, m, v))


# ----------------------------------------------------------------------- sparse rows ------
# An embedding table of SPARSE_ROWS rows x SPARSE_WIDTH float32 of which a step touches
# SPARSE_TOUCHED rows, drawn uniformly (duplicates included); AdamW's lr and decay.
SPARSE_ROWS = (100_000, 1_000_000, 4_000_000)
QUICK_SPARSE_ROWS = (100_000, 1_000_000)
SPARSE_WIDTH, SPARSE_TOUCHED, SPARSE_BATCHES = 64, 1_000, 64
# (In this order `l2decay bench` times them in each round: with torch, the first call of each
# timing of the AdamW step and of its ceiling comes right after a `mul_` of the whole table
# (torch SparseAdam + mul_'s, the dense decay's), so that following one costs both alike.)
SPARSE_IMPLS = ("l2decay adamw", "l2decay sgd", "l2decay.torch", "dense decay", "ceiling", "torch SparseAdam",
                "torch SparseAdam + mul_")


def sparse_cases(nrows, *, width=SPARSE_WIDTH, touched=SPARSE_TOUCHED, impls=SPARSE_IMPLS, seed=0):
    """[(impl, Case)]: one step of each implementation on one shared float32 table (its values
    only need to stay normal; sharing keeps 4M x 64 within memory).  Each call takes the next of
    SPARSE_BATCHES prepared random batches, so the rows come from all over the table.

    - ``l2decay adamw`` / ``l2decay sgd``: SparseAdam(reg=Decoupled) / SparseSGD(reg=Decoupled);
    - ``ceiling``: the AdamW step's memory traffic alone (``stream_rows``: the same array checks,
      coalescing, prefetching and rows read and written, almost no arithmetic), on moments of
      its own: what any step that touches those rows costs at best on this machine;
    - ``l2decay.torch``: l2decay.torch.SparseAdamW's step (the gradient set, no forward);
    - ``dense decay``: the decay alone, of the whole table: torch's ``mul_`` (numpy's in-place
      multiply without torch);
    - ``torch SparseAdam``: torch.optim.SparseAdam, which has no decay; ``+ mul_``: with the
      dense decay that AdamW's weight decay adds."""
    from .sparse import SparseAdam, SparseSGD

    rng = np.random.default_rng(seed)
    lr, wd = 1e-3, 1e-2
    keep = np.float32(1 - lr * wd)
    table = rng.uniform(0.5, 1.5, (nrows, width)).astype(np.float32)
    batches = [(rng.integers(0, nrows, touched), rng.uniform(-1, 1, (touched, width)).astype(np.float32))
               for _ in range(SPARSE_BATCHES)]
    cycle = itertools.cycle(batches)
    torch = torch_module()
    out = []
    for impl in impls:
        if impl in ("l2decay adamw", "l2decay sgd"):
            opt = (SparseAdam if impl == "l2decay adamw" else SparseSGD)(table, lr=lr, reg=Decoupled(wd))
            out.append((impl, Case(lambda step=opt.step: step(*next(cycle)), (table,))))
        elif impl == "ceiling":
            m, v, row_scale = np.zeros_like(table), np.zeros_like(table), np.ones(nrows)
            out.append((impl, Case(lambda: _kernels.stream_rows(table, *next(cycle), row_scale, m, v),
                                   (table, m, v), note="stream_rows")))
        elif impl == "dense decay" and torch is None:
            out.append((impl, Case(lambda: np.multiply(table, keep, out=table), (table,), note="numpy multiply")))
        elif torch is not None:
            t = torch.from_numpy(table)
            grads = itertools.cycle([torch.sparse_coo_tensor(torch.from_numpy(r)[None], torch.from_numpy(g),
                                                             table.shape, check_invariants=False)
                                     for r, g in batches])
            emb = torch.nn.Embedding.from_pretrained(t, freeze=False, sparse=True)
            p = emb.weight
            if impl == "dense decay":
                out.append((impl, Case(lambda: t.mul_(float(keep)), (table,), note="torch mul_")))
                continue
            if impl == "l2decay.torch":
                from .torch import SparseAdamW
                opt = SparseAdamW([p], lr=lr, weight_decay=wd).attach(emb)
            else:
                opt = torch.optim.SparseAdam([p], lr=lr)

            def run(opt=opt, p=p, mul=impl.endswith("mul_")):
                p.grad = next(grads)
                opt.step()
                if mul:
                    with torch.no_grad():
                        p.mul_(float(keep))
            out.append((impl, Case(run, (table,))))
    return out


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


def sparse_table(results):
    """The sparse-rows records as a table: us per step, how many times slower the dense decay
    and torch's SparseAdam with it are than l2decay's sparse AdamW step, and what share of the
    ceiling's speed that step reaches."""
    rows = [r for r in results if r["kind"] == "sparse"]
    head = (f"{'rows':>10} " + " ".join(f"{impl:>{max(9, len(impl))}}" for impl in SPARSE_IMPLS)
            + f" {'dense decay/l2decay':>19} {'SparseAdam+mul_/l2decay':>23} {'ceil%':>6}")
    lines = [f"sparse rows: us per step, float32 table of rows x {SPARSE_WIDTH}, {SPARSE_TOUCHED:,} rows touched "
             f"per step, AdamW's decay (lr 1e-3, weight_decay 1e-2)", head, "-" * len(head)]
    for nrows in sorted({r["rows"] for r in rows}):
        get = {impl: _find(rows, rows=nrows, impl=impl) for impl in SPARSE_IMPLS}
        me = get["l2decay adamw"]
        lines.append(f"{nrows:>10,} " + " ".join(f"{_us(get[impl]):>{max(9, len(impl))}}" for impl in SPARSE_IMPLS)
                     + f" {_ratio(me, get['dense decay']):>19} {_ratio(me, get['torch SparseAdam + mul_']):>23}"
                     + f" {_share(get['ceiling'], me):>6}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- timing ------
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


def machine_info(threads=0):
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    torch = torch_module()
    native = native_library()
    return {
        "cpu": cpu,
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "threads": threads_in_use(threads),
        "caches": cache_sizes(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "native_reference": _NATIVE.get("cmd") if native is not None else None,
        "build_info": build_info(),
    }


def cache_sizes():
    """{"L1d": bytes, "L2": bytes, "L3": bytes} of cpu0, from sysfs (empty if unknown)."""
    out = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return out
    for entry in entries:
        try:
            with open(os.path.join(base, entry, "level")) as f:
                level = f.read().strip()
            with open(os.path.join(base, entry, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(base, entry, "size")) as f:
                size = f.read().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(size[-1:], 1)
        out[f"L{level}{'d' if kind == 'Data' else ''}"] = int(size.rstrip("KMG")) * mult
    return out


def apply_threads(threads):
    """Pin every implementation to `threads` (0: all cores) alike."""
    set_num_threads(threads)
    torch = torch_module()
    if torch is not None:
        torch.set_num_threads(threads_in_use(threads))


# ----------------------------------------------------------------------- all of it ------
def _record(kind, rule, dtype, n, impl, seconds, note=""):
    itemsize = np.dtype(dtype).itemsize
    return {
        "kind": kind, "rule": rule, "dtype": dtype, "n": n, "impl": impl,
        "seconds": seconds,
        "ns_per_element": seconds / max(n, 1) * 1e9,
        "gb_per_s": PASSES.get(rule, 0) * itemsize * n / seconds / 1e9 if seconds > 0 else None,
        "note": note,
    }


# ------------------------------------------------------------------- 16-bit weights -------
HALF_KINDS = ("adamw", "sgd-momentum", "decay")
HALF_SIZES = {"adamw": 16_777_216, "sgd-momentum": 16_777_216, "decay": 33_554_432}
QUICK_HALF_SIZES = {"adamw": 4_194_304, "sgd-momentum": 4_194_304, "decay": 8_388_608}
# l2decay's step on float32 weights and on 16-bit ones with each rounding (decay_step rounds to
# nearest only), torch's fused step on the same dtypes (it rounds to nearest), and for AdamW the
# memory ceiling of l2decay's bfloat16 step: a stream loop with its traffic (stream_adam16).
# "state=param": the optimizer state in the weights' dtype (state_dtype="param", as torch keeps it).
HALF_IMPLS = ("float32", "bfloat16 nearest", "bfloat16 stochastic", "bfloat16 compensated",
              "float16 nearest", "float16 stochastic", "bfloat16 stochastic state=param", "torch fused float32",
              "torch fused bfloat16", "stream bfloat16", "stream bfloat16 state=param")


_HALF_LABELS = dict(zip(HALF_IMPLS, ("f32", "bf16 near", "bf16 SR", "bf16 comp", "f16 near", "f16 SR", "SR bf16st",
                                     "torch f32", "torch bf16", "ceiling", "ceil bf16st")))


def half_case(kind, impl, n):
    """One step over n weights: AdamW (lr 1e-3, wd 1e-2), SGD with momentum 0.9 and Decoupled
    decay, or decay_step, by l2decay on `impl`'s dtype and rounding or by torch's fused
    optimizer; None where the pair does not exist (decay_step has no rounding choice, torch no
    decay step) or torch is missing."""
    impl, narrow = impl.removesuffix(" state=param"), impl.endswith(" state=param")
    label, _, rounding = impl.removeprefix("torch fused ").removeprefix("stream ").partition(" ")
    if kind == "decay" and (rounding not in ("", "nearest") or impl.startswith("torch") or narrow):
        return None
    if impl.startswith("stream"):
        if kind != "adamw":
            return None
        w, g = (a.astype(ml_dtypes.bfloat16) for a in inputs(n, np.float32))
        m, v = (np.zeros(n, w.dtype if narrow else np.float32) for _ in range(2))
        return Case(lambda: _kernels.stream_adam16(w, g, m, v), [w, m, v], note="stream_adam16")
    dtype = np.dtype(ml_dtypes.bfloat16 if label == "bfloat16" else label)
    w, g = inputs(n, np.float32)
    g *= 1e-3
    if impl.startswith("torch"):
        torch = torch_module()
        if torch is None:
            return None
        p = torch.nn.Parameter(torch.from_numpy(w).to(getattr(torch, label)))
        p.grad = torch.from_numpy(g).to(p.dtype)
        hyper = dict(lr=1e-3, weight_decay=1e-2) if kind == "adamw" else dict(lr=1e-3, momentum=0.9, weight_decay=1e-4)
        opt = (torch.optim.AdamW if kind == "adamw" else torch.optim.SGD)([p], **hyper, fused=True)
        opt.step()
        return Case(opt.step, [p.detach().float().numpy()])
    w, g = w.astype(dtype), g.astype(dtype)
    if kind == "decay":
        return Case(lambda: decay_step(w, g, lr=1e-2, decay=1e-4), [w, g])
    hyper = dict(rounding=rounding or None, state_dtype="param" if narrow else None)
    opt = (Adam([w], lr=1e-3, reg=Decoupled(1e-2), **hyper) if kind == "adamw"
           else SGD([w], lr=1e-3, momentum=0.9, reg=Decoupled(1e-2), **hyper))
    grads = [g]
    opt.step(grads)
    return Case(lambda: opt.step(grads), [w, g])


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


OPTIMIZER_SIZES = (1_000, 1_048_576, 33_554_432)
QUICK_OPTIMIZER_SIZES = (1_000, 8_388_608)


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


CROSSOVER_SIZES = (8_192, 16_384, 32_768, 49_152, 65_536, 98_304, 131_072, 262_144, 1_048_576)


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


def crossover_table(rows):
    head = f"{'dtype':<8} {'n':>10} {'KiB/array':>9}" + "".join(f" {k:>9}" for k in ("l2", "decay", "sgd-l2", "adamw"))
    lines = ["parallel speed-up (time on 1 thread / time on all threads; > 1: threads pay)", head, "-" * len(head)]
    for dtype in DTYPES:
        for n in sorted({r["n"] for r in rows if r["dtype"] == dtype}):
            cells = [_find(rows, dtype=dtype, n=n, kind=k) for k in ("l2", "decay", "sgd-l2", "adamw")]
            lines.append(f"{dtype:<8} {n:>10,} {cells[0]['bytes_per_array'] // 1024:>9,}" + "".join(
                f" {c['serial_seconds'] / c['parallel_seconds']:>8.2f}x" for c in cells))
    return "\n".join(lines)


def _find(results, **key):
    for r in results:
        if all(r.get(k) == v for k, v in key.items()):
            return r
    return None


def _ratio(a, b):
    return f"{b['seconds'] / a['seconds']:.2f}x" if a and b else "-"


def _share(ceiling, r):
    """The share of a ceiling's speed that record r reaches, or "-"."""
    return f"{ceiling['seconds'] / r['seconds']:.0%}" if ceiling and r else "-"


def _us(r):
    return f"{r['seconds'] * 1e6:.2f}" if r else "-"


def _section(title, head, rows):
    return [title, head, "-" * len(head), *rows, ""] if rows else []


def tables(results):
    """The measurements as plain-text tables: one per dtype for the rules, then multi-tensor and
    optimizer tables.  Speed-ups are time(peer) / time(l2decay): > 1 means l2decay is faster."""
    out = []
    for dtype in DTYPES:
        rows = [r for r in results if r["kind"] == "rule" and r["dtype"] == dtype]
        if not rows:
            continue
        out.append(f"{dtype}: ns/element (GB/s), l2decay vs peers, fraction of the stream-loop ceiling")
        head = (f"{'n':>11} {'rule':<7} {'l2decay':>15} {'ceiling':>7} {'numpy':>8} {'torch':>8} "
                f"{'native':>8} {'x numpy':>8} {'x torch':>8} {'x native':>8} {'L2/decay':>8}")
        out.append(head)
        out.append("-" * len(head))
        for n in sorted({r["n"] for r in rows}):
            for rule in KERNELS:
                get = lambda impl: _find(rows, n=n, rule=rule, impl=impl)  # noqa: E731
                me = get("l2decay")
                if me is None:
                    continue
                ns = lambda r: f"{r['ns_per_element']:.3f}" if r else "-"  # noqa: E731
                l2, dec = _find(rows, n=n, rule="l2", impl="l2decay"), _find(rows, n=n, rule="decay", impl="l2decay")
                ratio = f"{l2['seconds'] / dec['seconds']:.2f}" if rule == "l2" and l2 and dec else ""
                frac = f"{me['fraction_of_ceiling']:.0%}" if me.get("fraction_of_ceiling") else "-"
                out.append(
                    f"{n:>11,} {rule:<7} {ns(me):>7} ({me['gb_per_s']:5.1f}) {frac:>7} {ns(get('numpy')):>8} "
                    f"{ns(get('torch')):>8} {ns(get('native')):>8} {_ratio(me, get('numpy')):>8} "
                    f"{_ratio(me, get('torch')):>8} {_ratio(me, get('native')):>8} {ratio:>8}"
                )
        out.append("")
    many = [r for r in results if r["kind"] == "many"]
    out += _section(
        "many tensors: one call vs a Python loop of single calls, and one SGD step (momentum 0.9,\n"
        "the rule on the weight matrices via exclude_1d) over the same tensors (us per update of all)",
        f"{'dtype':<8} {'MLP':<22} {'params':>8} {'rule':<6} {'one call':>9} {'loop':>9} {'speed-up':>9} "
        f"{'optimizer':>9} {'opt/call':>9}",
        [f"{r['dtype']:<8} {r['shapes']:<22} {r['n']:>8,} {r['rule']:<6} {_us(r):>9} {_us(loop):>9} "
         f"{_ratio(r, loop):>9} {_us(opt):>9} {_ratio(r, opt):>9}"
         for r in many if r["impl"] == "one call"
         for loop, opt in [[_find(many, dtype=r["dtype"], shapes=r["shapes"], rule=r["rule"], impl=i)
                            for i in ("loop", "optimizer")]]],
    )
    opt = [r for r in results if r["kind"] == "optimizer"]
    out += _section(
        "optimizer steps, one tensor (us per step; momentum 0.9 for SGD; schedule: the lr changed\n"
        "before every step, sched/fixed its cost)",
        f"{'dtype':<8} {'n':>10} {'step':<10} {'l2decay':>9} {'schedule':>9} {'numpy':>9} {'torch':>9} "
        f"{'sched/fixed':>11} {'x numpy':>8} {'x torch':>8}",
        [f"{r['dtype']:<8} {r['n']:>10,} {r['rule']:<10} {_us(r):>9} {_us(sch):>9} {_us(npy):>9} {_us(tor):>9} "
         f"{_ratio(r, sch):>11} {_ratio(r, npy):>8} {_ratio(r, tor):>8}"
         for r in opt if r["impl"] == "l2decay"
         for sch, npy, tor in [[_find(opt, impl=i, dtype=r["dtype"], n=r["n"], rule=r["rule"])
                                for i in ("schedule", "numpy", "torch")]]],
    )
    tor = [r for r in results if r["kind"] == "torch"]
    out += _section(
        "torch optimizers, float32 (us per step; x fused = torch fused / l2decay.torch; "
        "100 x 4: us per tensor)",
        f"{'model':<18} {'tensors':>7} {'params':>10} {'step':<12} {'l2decay':>9} {'fused':>9} {'foreach':>9} "
        f"{'deepspeed':>9} {'x fused':>8} {'x foreach':>9}",
        [f"{r['model']:<18} {r['tensors']:>7} {r['n']:>10,} {r['rule']:<12} {per(r):>9} {per(f):>9} {per(fe):>9} "
         f"{per(ds):>9} {_ratio(r, f):>8} {_ratio(r, fe):>9}"
         for r in tor if r["impl"] == "l2decay"
         for per in [lambda x, t=r["tensors"], m=r["model"]: (f"{x['seconds'] * 1e6 / (t if m == '100 x 4' else 1):.2f}"
                                                              if x else "-")]
         for f, fe, ds in [[_find(tor, impl=i, model=r["model"], rule=r["rule"])
                            for i in ("torch fused", "torch foreach", "deepspeed")]]],
    )
    half = [r for r in results if r["kind"] == "half"]
    get = lambda kind, impl: _find(half, rule=kind, impl=impl)  # noqa: E731
    out += _section(
        "16-bit weights (ns per element per step; arithmetic and state float32, torch's state in the\n"
        "param dtype, as l2decay's with state_dtype=\"param\" (bf16st); x torch: torch fused bfloat16 /\n"
        "l2decay bfloat16 stochastic, the default (st: with bfloat16 state); x f32: l2decay float32 /\n"
        "l2decay bfloat16 (the default; decay_step: nearest); SR, comp: the cost of stochastic rounding\n"
        "and of compensation over round to nearest, bfloat16; ceiling: a stream loop with the bfloat16\n"
        "AdamW step's traffic, and the share of it the default reaches (st: with bfloat16 state))",
        f"{'step':<13} {'n':>11} " + " ".join(f"{_HALF_LABELS[i]:>10}" for i in HALF_IMPLS)
        + f" {'x torch':>8} {'x f32':>6} {'SR':>6} {'comp':>6} {'ceil%':>6} {'x torch st':>10} {'ceil% st':>8}",
        [f"{kind:<13} {r['n']:>11,} " + " ".join(
            f"{get(kind, i)['ns_per_element']:>10.3f}" if get(kind, i) else f"{'-':>10}" for i in HALF_IMPLS)
         + f" {_ratio(default, get(kind, 'torch fused bfloat16')):>8}"
         + f" {_ratio(default, get(kind, 'float32')):>6}"
         + f" {_ratio(near, default) if kind != 'decay' else '-':>6}"
         + f" {_ratio(near, get(kind, 'bfloat16 compensated')) if kind != 'decay' else '-':>6}"
         + f" {_share(ceil, default):>6}"
         + f" {_ratio(narrow, get(kind, 'torch fused bfloat16')):>10}"
         + f" {_share(get(kind, 'stream bfloat16 state=param'), narrow):>8}"
         for kind in HALF_KINDS for r in [get(kind, "float32")] if r
         for near in [get(kind, "bfloat16 nearest")]
         for default in [get(kind, "bfloat16 stochastic") if kind != "decay" else near]
         for narrow in [get(kind, "bfloat16 stochastic state=param")]
         for ceil in [get(kind, "stream bfloat16")]],
    )
    return "\n".join(out)
