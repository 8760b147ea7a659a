"""SIMD dispatch and threading: every instruction-set level and thread count gives the same bits.

The loops are compiled once per level (l2decay._simd_<level>); which one runs is picked at
import from the CPU's features, or by L2DECAY_SIMD.  Each test runs the same updates at every
level available on this machine and under several thread counts and compares results bit for bit.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import l2decay
from l2decay import _kernels

import numpy_reference as ref
from kernel_config import configured

DTYPES = [np.float32, np.float64]
LEVELS = _kernels.simd_available()
SIZES = [0, 1, 7, 16, 33, 1000, 16385]


def arrays(n, dtype, count, seed):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n) * 2).astype(dtype) for _ in range(count)]


def run_rules(n, dtype):
    """Every kernel once on fresh copies of the same inputs; returns all arrays they wrote."""
    out = []
    w, g = arrays(n, dtype, 2, seed=n)
    l2decay.l2_step(w, g, lr=0.05, lam=0.3)
    out += [w, g]
    w, g = arrays(n, dtype, 2, seed=n + 1)
    l2decay.decay_step(w, g, lr=0.05, decay=0.02)
    out.append(w)
    w, g = arrays(n, dtype, 2, seed=n + 3)
    l2decay.l2_step(w, g, lr=0.05, lam=0.3, write_grad=False)
    out.append(w)
    for reg in (None, l2decay.L2(0.1), l2decay.Decoupled(0.1), l2decay.Decay(0.01)):
        for cls, kw in ((l2decay.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
                        (l2decay.SGD, dict(lr=0.05, momentum=0.5, dampening=0.3)),
                        (l2decay.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, momentum_form="keras",
                                           maximize=True)),
                        (l2decay.Adam, dict(lr=0.01)),
                        (l2decay.Adam, dict(lr=0.01, amsgrad=True, eps_form="keras", maximize=True))):
            w, = arrays(n, dtype, 1, seed=n + 2)
            opt = cls([w], reg=reg, **kw)
            for step in range(3):
                g, = arrays(n, dtype, 1, seed=step)
                opt.step([g])
            out.append(w)
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n", SIZES)
def test_every_simd_level_gives_the_same_bits(dtype, n):
    results = {}
    for level in LEVELS:
        with configured(level=level):
            results[level] = run_rules(n, dtype)
    base = results[LEVELS[0]]
    for level, arrs in results.items():
        for k, (a, b) in enumerate(zip(arrs, base)):
            np.testing.assert_array_equal(a, b, err_msg=f"{level} vs {LEVELS[0]}, array {k}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_levels_and_threads_match_the_numpy_reference_to_the_bit(dtype):
    # many blocks and an odd tail, split over threads by a lowered threshold (bytes per array)
    n = 3 * 32768 + 5
    w0, g0 = arrays(n, dtype, 2, seed=11)
    w_ref, g_ref = w0.copy(), g0.copy()
    ref.l2_step(w_ref, g_ref, 0.05, 0.3)
    ref.decay_step(w_ref, g_ref, 0.05, 0.02)
    for level in LEVELS:
        for threads in (1, 2, 3):
            with configured(level=level, threads=threads, threshold=1024):
                w, g = w0.copy(), g0.copy()
                l2decay.l2_step(w, g, lr=0.05, lam=0.3)
                l2decay.decay_step(w, g, lr=0.05, decay=0.02)
            np.testing.assert_array_equal(w, w_ref, err_msg=f"{level}, {threads} threads")
            np.testing.assert_array_equal(g, g_ref, err_msg=f"{level}, {threads} threads")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("cls,kw,ref_cls", [
    (l2decay.SGD, dict(momentum=0.9, dampening=0.2, maximize=True), ref.SGD),
    (l2decay.SGD, dict(momentum=0.9, nesterov=True, momentum_form="keras"), ref.SGD),
    (l2decay.Adam, dict(amsgrad=True), ref.Adam),
    (l2decay.Adam, dict(eps_form="keras", maximize=True), ref.Adam),
], ids=["sgd", "sgd-keras", "adam-amsgrad", "adam-keras"])
def test_optimizer_steps_on_every_level_and_thread_count_match_the_reference(dtype, cls, kw, ref_cls):
    # one large tensor split over threads, and small ones spread over threads together
    shapes = [(3 * 8192 + 5,), (300,), (17, 3), (0,), (999,)]
    rng = np.random.default_rng(12)
    w0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    expected = [w.copy() for w in w0]
    r = ref_cls(expected, lr=0.01, reg=("l2", 0.1), **kw)
    for g in grads:
        r.step(g)
    for level in LEVELS:
        for threads in (1, 2, 3):
            with configured(level=level, threads=threads, threshold=1024):
                ws = [w.copy() for w in w0]
                opt = cls(ws, lr=0.01, reg=l2decay.L2(0.1), **kw)
                for g in grads:
                    opt.step(g)
            for k, (a, b) in enumerate(zip(ws, expected)):
                np.testing.assert_array_equal(a, b, err_msg=f"{level}, {threads} threads, tensor {k}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("threads", [2, 3, 7])
@pytest.mark.parametrize("shapes", [
    [(300,), (17,), (40, 25), (1,), (0,), (999,)] * 5,
    [(3, 50_000), (7,), (40, 25), (1,), (20_000,)],      # large ones cut in chunks, among small ones
    [(40, 25), (999,)],                                   # fewer pieces than threads
], ids=["small", "mixed", "few"])
def test_many_small_tensors_in_parallel_equal_serial(dtype, threads, shapes):
    # below the threshold one by one, above it together: the call spreads them over threads,
    # each thread a contiguous run of pieces
    rng = np.random.default_rng(5)
    ws = [rng.standard_normal(s).astype(dtype) for s in shapes]
    gs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    expected = []
    for w, g in zip(ws, gs):
        w, g = w.copy(), g.copy()
        ref.l2_step(w, g, 0.1, 0.2)
        ref.decay_step(w, g, 0.1, 0.05)
        expected.append((w, g))
    # (40, 25) float64 is 8000 bytes: every tensor below 10000, their total above
    with configured(threads=threads, threshold=10_000):
        l2decay.l2_step(ws, gs, lr=0.1, lam=0.2)
        l2decay.decay_step(ws, gs, lr=0.1, decay=0.05)
    for k, ((w, g), (we, ge)) in enumerate(zip(zip(ws, gs), expected)):
        np.testing.assert_array_equal(w, we, err_msg=f"tensor {k}")
        np.testing.assert_array_equal(g, ge, err_msg=f"tensor {k}")


def test_each_level_module_was_compiled_for_its_level():
    expect = {"baseline": None, "avx2": "avx2", "avx512": "avx512f"}
    for level in _kernels.simd_built():
        module = __import__(f"l2decay._simd_{level}", fromlist=["COMPILED_FOR"])
        if expect[level] is not None:
            assert module.COMPILED_FOR == expect[level], level
        elif sys.platform != "win32":
            # baseline: no AVX of any kind, whatever the machine building it had
            assert not module.COMPILED_FOR.startswith("avx"), module.COMPILED_FOR


def test_auto_picks_the_widest_level_the_cpu_runs():
    info = l2decay.build_info()
    assert "baseline" in info["simd_built"]
    assert info["simd_available"] == [lv for lv in info["simd_built"] if lv in LEVELS]
    if not os.environ.get("L2DECAY_SIMD"):
        assert info["simd"] == LEVELS[-1]
    features = _kernels._cpu_features()
    if "avx512" in info["simd_available"]:
        assert features["AVX512F"] and features["AVX512VL"]
    if "avx2" in info["simd_available"]:
        assert features["AVX2"]


def test_set_simd_refuses_an_unknown_level():
    before = _kernels.get_simd()
    with pytest.raises(ValueError, match="'sse9' is not available here"):
        _kernels.set_simd("sse9")
    assert _kernels.get_simd() == before


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_environment_variable_overrides_the_choice():
    proc = run_python("import l2decay; print(l2decay.build_info()['simd'])", L2DECAY_SIMD="baseline")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "baseline"


def test_environment_variable_sets_the_parallel_threshold():
    code = "import l2decay; print(l2decay.build_info()['parallel_threshold_bytes'])"
    proc = run_python(code, L2DECAY_PARALLEL_THRESHOLD="65536")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "65536"
    proc = run_python(code, L2DECAY_PARALLEL_THRESHOLD="-5")
    assert proc.returncode != 0 and "L2DECAY_PARALLEL_THRESHOLD must be a number of bytes" in proc.stderr


def test_environment_variable_with_a_bad_level_fails_clearly():
    proc = run_python("import l2decay; l2decay.l2_step", L2DECAY_SIMD="avx9000")
    assert proc.returncode != 0
    assert "L2DECAY_SIMD='avx9000'" in proc.stderr
    assert "choose one of" in proc.stderr


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
@pytest.mark.parametrize("n", [0, 1, 17, 3 * 8192 + 5])
def test_16_bit_adam_stream_loop_matches_numpy_on_every_level(half, n):
    import ml_dtypes
    dt = np.dtype(ml_dtypes.bfloat16) if half == "bfloat16" else np.dtype(np.float16)
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal(n).astype(dt)
    g = (rng.standard_normal(n) * 1e-3).astype(dt)
    bits = g.view(np.uint16)
    want_m = np.float32(0.5) * np.float32(1.0) + bits.astype(np.float32)
    for level in LEVELS:
        for threads, threshold in ((1, 1 << 62), (2, 0)):
            with configured(level=level, threads=threads, threshold=threshold):
                w, m, v = w0.copy(), np.ones(n, np.float32), np.ones(n, np.float32)
                _kernels.stream_adam16(w, g, m, v)
                np.testing.assert_array_equal(m, want_m)
                np.testing.assert_array_equal(v, want_m)
                np.testing.assert_array_equal(w.view(np.uint16), w0.view(np.uint16) ^ (bits & 1))
                # with 16-bit moments (state_dtype "param"): m = (m >> 1) ^ g on the bits
                w, m, v = w0.copy(), np.full(n, 6, np.uint16).view(dt), np.full(n, 9, np.uint16).view(dt)
                _kernels.stream_adam16(w, g, m, v)
                np.testing.assert_array_equal(m.view(np.uint16), np.uint16(3) ^ bits)
                np.testing.assert_array_equal(v.view(np.uint16), np.uint16(4) ^ bits)
                np.testing.assert_array_equal(w.view(np.uint16), w0.view(np.uint16) ^ (bits & 1))
    with pytest.raises(TypeError, match="stream_adam16 takes"):
        _kernels.stream_adam16(np.ones(3, np.float32), np.ones(3, np.float32), np.ones(3, np.float32),
                               np.ones(3, np.float32))
    with pytest.raises(TypeError, match="stream_adam16 takes .* both float32 or both w's dtype"):
        _kernels.stream_adam16(w0[:3].copy(), g[:3].copy(), np.ones(3, np.float32), np.ones(3, dt))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("nrows, width, k", [(1, 1, 1), (50, 7, 30), (2_000, 64, 1_000), (300, 700, 40)])
def test_sparse_rows_stream_loop_matches_numpy_on_every_level(dtype, nrows, width, k):
    # the sparse AdamW step's traffic (bench's ceiling): its rows coalesced as the step's, then
    # w += g, m += g, v += g*g on each, its row scale set to 1; no other row touched
    rng = np.random.default_rng(5)
    table0 = rng.standard_normal((nrows, width)).astype(dtype)
    rows = rng.integers(0, nrows, k)
    grads = rng.standard_normal((k, width)).astype(dtype)
    summed = np.zeros_like(table0)
    for r, g in zip(rows, grads):   # in order of appearance, as the step sums repeated rows
        summed[r] += g
    touched = np.isin(np.arange(nrows), rows)
    for level in LEVELS:
        for threads, threshold in ((1, 1 << 62), (2, 0)):
            with configured(level=level, threads=threads, threshold=threshold):
                table, m, v = table0.copy(), np.ones_like(table0), np.full_like(table0, 2)
                row_scale = np.full(nrows, 0.5)
                _kernels.stream_rows(table, rows, grads, row_scale, m, v)
                np.testing.assert_array_equal(table, table0 + summed)
                np.testing.assert_array_equal(m, 1 + summed)
                np.testing.assert_array_equal(v, np.where(touched[:, None], 2 + summed * summed, 2))
                np.testing.assert_array_equal(row_scale, np.where(touched, 1.0, 0.5))
    table, m, v = table0.copy(), np.ones_like(table0), np.ones_like(table0)
    for bad in ((np.array([nrows]), grads[:1]), (rows, grads[:, :-1] if width > 1 else grads[:0])):
        with pytest.raises(TypeError, match="stream_rows takes sparse_step's arrays"):
            _kernels.stream_rows(table, *bad, np.ones(nrows), m, v)
    np.testing.assert_array_equal(table, table0)
    np.testing.assert_array_equal(m, 1)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n", SIZES)
def test_stream_loops_match_numpy(dtype, n):
    w, g = arrays(n, dtype, 2, seed=3)
    w0, g0 = w.copy(), g.copy()
    _kernels.stream_swap(w, g)
    np.testing.assert_array_equal(w, g0)
    np.testing.assert_array_equal(g, w0)
    _kernels.stream_axpy(w, g, 0.25)
    np.testing.assert_array_equal(w, g0 + dtype(0.25) * w0)
