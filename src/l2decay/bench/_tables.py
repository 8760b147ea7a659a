"""The measurements as plain-text tables."""

from ._cases import (DTYPES, HALF_IMPLS, HALF_KINDS, KERNELS, SPARSE_IMPLS, SPARSE_TOUCHED, SPARSE_WIDTH,
                     _HALF_LABELS)


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


def stats_table(results):
    """The statistics records as a table: us per AdamW step without and with them, and the cost."""
    rows = [r for r in results if r["kind"] == "stats"]
    head = f"{'n':>11} {'off':>10} {'on':>10} {'cost':>6}"
    lines = ["weight statistics (stats=True): us per float32 AdamW step (Decoupled(0.01)), off and on "
             "timed together on the same arrays", head, "-" * len(head)]
    for n in sorted({r["n"] for r in rows}):
        off, on = _find(rows, n=n, impl="off"), _find(rows, n=n, impl="on")
        lines.append(f"{n:>11,} {_us(off):>10} {_us(on):>10} {_ratio(off, on):>6}")
    return "\n".join(lines)


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
    out += _section(
        "8-bit optimizer state, float32 params (us per step; moments 2.03 bytes per element against 8; x fp32 "
        "= l2decay.torch's float32-state step / its 8-bit one, x bnb, x torchao: their 8-bit step / l2decay's)",
        f"{'model':<18} {'params':>10} {'step':<12} {'fp32':>9} {'8bit':>9} {'bnb':>9} {'torchao':>9} "
        f"{'x fp32':>7} {'x bnb':>7} {'x torchao':>9}",
        [f"{r['model']:<18} {r['n']:>10,} {r['rule']:<12} {us(f):>9} {us(r):>9} {us(b):>9} {us(a):>9} "
         f"{_ratio(r, f):>7} {_ratio(r, b):>7} {_ratio(r, a):>9}"
         for r in tor if r["impl"] == "l2decay 8bit"
         for us in [lambda x: f"{x['seconds'] * 1e6:.2f}" if x else "-"]
         for f, b, a in [[_find(tor, impl=i, model=r["model"], rule=r["rule"])
                          for i in ("l2decay", "bitsandbytes 8bit", "torchao 8bit")]]],
    )
    half = [r for r in results if r["kind"] == "half"]
    get = lambda kind, impl: _find(half, rule=kind, impl=impl)  # noqa: E731
    out += _section(
        "16-bit weights (ns per element per step; arithmetic and state float32, torch's state in the\n"
        "param dtype, as l2decay's with state_dtype=\"param\" (bf16st); x torch: torch fused bfloat16 /\n"
        "l2decay bfloat16 stochastic, the default (st: with bfloat16 state); x f32: l2decay float32 /\n"
        "l2decay bfloat16 (the default; decay_step: nearest); SR, comp: the cost of stochastic rounding\n"
        "and of compensation over round to nearest, bfloat16; ceiling: a stream loop with the bfloat16\n"
        "AdamW step's traffic, and the share of it the default reaches (st: with bfloat16 state);\n"
        "x torch 8b: torch fused bfloat16 / l2decay bfloat16 nearest with 8-bit state)",
        f"{'step':<13} {'n':>11} " + " ".join(f"{_HALF_LABELS[i]:>10}" for i in HALF_IMPLS)
        + f" {'x torch':>8} {'x f32':>6} {'SR':>6} {'comp':>6} {'ceil%':>6} {'x torch st':>10} {'ceil% st':>8}"
        + f" {'x torch 8b':>10}",
        [f"{kind:<13} {r['n']:>11,} " + " ".join(
            f"{get(kind, i)['ns_per_element']:>10.3f}" if get(kind, i) else f"{'-':>10}" for i in HALF_IMPLS)
         + f" {_ratio(default, get(kind, 'torch fused bfloat16')):>8}"
         + f" {_ratio(default, get(kind, 'float32')):>6}"
         + f" {_ratio(near, default) if kind != 'decay' else '-':>6}"
         + f" {_ratio(near, get(kind, 'bfloat16 compensated')) if kind != 'decay' else '-':>6}"
         + f" {_share(ceil, default):>6}"
         + f" {_ratio(narrow, get(kind, 'torch fused bfloat16')):>10}"
         + f" {_share(get(kind, 'stream bfloat16 state=param'), narrow):>8}"
         + f" {_ratio(get(kind, 'bfloat16 nearest state=8bit'), get(kind, 'torch fused bfloat16')):>10}"
         for kind in HALF_KINDS for r in [get(kind, "float32")] if r
         for near in [get(kind, "bfloat16 nearest")]
         for default in [get(kind, "bfloat16 stochastic") if kind != "decay" else near]
         for narrow in [get(kind, "bfloat16 stochastic state=param")]
         for ceil in [get(kind, "stream bfloat16")]],
    )
    return "\n".join(out)
