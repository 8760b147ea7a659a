"""What is timed: the cases (zero-argument callables doing one update in place, built outside
any timed region), their inputs and sizes."""
import itertools

import ml_dtypes
import numpy as np

from .. import _kernels
from ..optim import SGD, Adam, exclude_1d
from ..rules import Decay, Decoupled, L2
from ..steps import adam_step, decay_step, l2_step
from ._machine import native_library, threads_in_use, torch_module


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


def gpt2_shapes(n_layer=6, n_embd=384, vocab=8192, positions=256):
    """The parameter shapes of Hugging Face's GPT2LMHeadModel for this config (the lm head is tied
    to the token embedding): 6 layers of 384 give 76 tensors, 13,891,584 params."""
    block = [(n_embd,), (n_embd,), (n_embd, 3 * n_embd), (3 * n_embd,), (n_embd, n_embd), (n_embd,),
             (n_embd,), (n_embd,), (n_embd, 4 * n_embd), (4 * n_embd,), (4 * n_embd, n_embd), (n_embd,)]
    return [(vocab, n_embd), (positions, n_embd)] + block * n_layer + [(n_embd,), (n_embd,)]


# Models for the torch optimizer table; "100 x 4" measures the cost per tensor.
TORCH_MODELS = {
    "resnet18": resnet18_shapes(),
    "gpt2 6x384": gpt2_shapes(),
    "mlp 784-128-64-10": [(128, 784), (128,), (64, 128), (64,), (10, 64), (10,)],
    "100 x 4": [(4,)] * 100,
}


TORCH_KINDS = ("adamw", "sgd-momentum")


TORCH_IMPLS = ("l2decay", "l2decay 8bit", "torch fused", "torch foreach", "deepspeed", "bitsandbytes 8bit",
               "torchao 8bit")


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


class Case:
    """One implementation of one update on prepared arrays: ``run()`` does one update;
    ``reps`` > 1 means one call already does that many updates (native loops repeat in C)."""

    def __init__(self, run, arrays, reps=1, note=""):
        self.run, self.arrays, self.reps, self.note = run, arrays, reps, note


def _torch_param(w, g):
    """(torch, a Parameter sharing w's memory with grad g's), or (None, None) without torch."""
    torch = torch_module()
    if torch is None:
        return None, None
    p = torch.nn.Parameter(torch.from_numpy(w))
    p.grad = torch.from_numpy(g)
    return torch, p


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
        torch, p = _torch_param(w, g)
        if torch is None:
            return None
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
    if kind == "adam-l2":
        # Adam walks w at about lr per step to L2's rest point -g/lam, where the gradient is 0
        # and the moments shrink into subnormals; at lam 1e-2 it got there within a
        # calibration's rounds (~60K steps), at 1e-4 it is millions of steps away
        lam = 1e-4
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
        torch, p = _torch_param(w, g)
        if torch is None:
            return None
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
    l2decay.torch's (with float32 or 8-bit state), torch's with fused=True or foreach=True,
    DeepSpeed's CPU Adam (AdamW mode), bitsandbytes' or torchao's 8-bit optimizers (block-wise
    dynamic quantization); None if that implementation is not installed (or has no such
    optimizer)."""
    torch = torch_module()
    if torch is None:
        return None
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.rand(s, generator=gen) + 0.5) for s in shapes]
    for p in params:
        p.grad = (torch.rand(p.shape, generator=gen) + 0.5) * 1e-3
    hyper = dict(lr=1e-3, weight_decay=1e-2) if kind == "adamw" else dict(lr=1e-3, momentum=0.9, weight_decay=1e-4)
    if impl in ("l2decay", "l2decay 8bit"):
        from .. import torch as l2t
        opt = (l2t.AdamW if kind == "adamw" else l2t.SGD)(params, **hyper,
                                                          state_dtype="8bit" if impl == "l2decay 8bit" else None)
    elif impl == "bitsandbytes 8bit":
        try:
            import bitsandbytes as bnb
        except Exception:
            return None
        opt = (bnb.optim.AdamW8bit if kind == "adamw" else bnb.optim.SGD8bit)(params, **hyper)
    elif impl == "torchao 8bit":
        try:
            from torchao.optim import AdamW8bit
        except Exception:
            return None
        if kind != "adamw":
            return None
        opt = AdamW8bit(params, **hyper)
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
    from ..sparse import SparseAdam, SparseSGD

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
                from ..torch import SparseAdamW
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


HALF_KINDS = ("adamw", "sgd-momentum", "decay")


HALF_SIZES = {"adamw": 16_777_216, "sgd-momentum": 16_777_216, "decay": 33_554_432}


QUICK_HALF_SIZES = {"adamw": 4_194_304, "sgd-momentum": 4_194_304, "decay": 8_388_608}


# l2decay's step on float32 weights and on 16-bit ones with each rounding (decay_step rounds to
# nearest only), torch's fused step on the same dtypes (it rounds to nearest), and for AdamW the
# memory ceiling of l2decay's bfloat16 step: a stream loop with its traffic (stream_adam16).
# "state=param": the optimizer state in the weights' dtype (state_dtype="param", as torch keeps it);
# "state=8bit": 8-bit state (state_dtype="8bit").
HALF_IMPLS = ("float32", "bfloat16 nearest", "bfloat16 stochastic", "bfloat16 compensated",
              "float16 nearest", "float16 stochastic", "bfloat16 stochastic state=param",
              "bfloat16 nearest state=8bit", "torch fused float32", "torch fused bfloat16", "stream bfloat16",
              "stream bfloat16 state=param")


_HALF_LABELS = dict(zip(HALF_IMPLS, ("f32", "bf16 near", "bf16 SR", "bf16 comp", "f16 near", "f16 SR", "SR bf16st",
                                     "bf16 8bit", "torch f32", "torch bf16", "ceiling", "ceil bf16st")))


def half_case(kind, impl, n):
    """One step over n weights: AdamW (lr 1e-3, wd 1e-2), SGD with momentum 0.9 and Decoupled
    decay, or decay_step, by l2decay on `impl`'s dtype and rounding or by torch's fused
    optimizer; None where the pair does not exist (decay_step has no rounding choice, torch no
    decay step) or torch is missing."""
    impl, _, state = impl.partition(" state=")
    narrow = state == "param"
    label, _, rounding = impl.removeprefix("torch fused ").removeprefix("stream ").partition(" ")
    if kind == "decay" and (rounding not in ("", "nearest") or impl.startswith("torch") or state):
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
    hyper = dict(rounding=rounding or None, state_dtype=state or None)
    opt = (Adam([w], lr=1e-3, reg=Decoupled(1e-2), **hyper) if kind == "adamw"
           else SGD([w], lr=1e-3, momentum=0.9, reg=Decoupled(1e-2), **hyper))
    grads = [g]
    opt.step(grads)
    return Case(lambda: opt.step(grads), [w, g])


OPTIMIZER_SIZES = (1_000, 1_048_576, 33_554_432)


QUICK_OPTIMIZER_SIZES = (1_000, 8_388_608)


CROSSOVER_SIZES = (8_192, 16_384, 32_768, 49_152, 65_536, 98_304, 131_072, 262_144, 1_048_576)


# The cost of the weight statistics: float32 AdamW at 1M elements (L3: the step is bound by
# arithmetic) and 16M (DRAM: by memory).
STATS_SIZES = (1_048_576, 16_777_216)


STATS_IMPLS = ("off", "on")


def stats_cases(n):
    """float32 AdamW (``Decoupled(0.01)``, lr 1e-3) without and with weight statistics, as
    [(impl, Case)] of STATS_IMPLS: both step the same arrays (the functional ``adam_step``,
    ``stats=None`` or an array), so that timed together only the statistics differ."""
    w, g = inputs(n, "float32")
    m, v = np.zeros_like(w), np.zeros_like(w)
    out = np.empty((1, 3))
    steps, reg = itertools.count(1), Decoupled(1e-2)

    def step(stats):
        adam_step([w], [g], [m], [v], step=next(steps), lr=1e-3, reg=reg, stats=stats)
    return [("off", Case(lambda: step(None), (w, g, m, v))),
            ("on", Case(lambda: step(out), (w, g, m, v), note="stats=(1, 3) array"))]
