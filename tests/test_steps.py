"""l2_step and decay_step against the numpy reference: sweep, properties, in-place contract."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import l2decay
import numpy_reference as ref

DTYPES = [np.float32, np.float64]
SHAPES = [(0,), (1,), (7,), (1000,), (100003,), (300007,), (3, 0), (31, 33), (5, 7, 9)]
# The kernels round hyperparameters to the dtype and follow numpy's operation order, so they
# match to the bit today; these tolerances allow an honest reordering, nothing more.
RTOL = {np.float32: 2e-6, np.float64: 4e-15}
HYPER = {"l2": dict(lr=0.05, lam=0.3), "decay": dict(lr=0.05, decay=0.02)}
RULES = {
    "l2": (l2decay.l2_step, ref.l2_step),
    "decay": (l2decay.decay_step, ref.decay_step),
}


def make(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 3).astype(dtype), rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_sweep_matches_reference(rule, dtype, shape):
    kernel, reference = RULES[rule]
    w, g = make(shape, dtype)
    w_ref, g_ref = w.copy(), g.copy()
    kernel(w, g, **HYPER[rule])
    reference(w_ref, g_ref, **HYPER[rule])
    where = f"rule={rule} dtype={dtype.__name__} shape={shape}"
    np.testing.assert_allclose(w, w_ref, rtol=RTOL[dtype], atol=0, err_msg=where)
    np.testing.assert_allclose(g, g_ref, rtol=RTOL[dtype], atol=0, err_msg=where)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_many_steps_stay_on_reference(dtype):
    w, g = make((513,), dtype, seed=3)
    w_ref = w.copy()
    for step in range(200):
        g = np.random.default_rng(step).standard_normal(513).astype(dtype)
        g_ref = g.copy()
        if step % 2:
            l2decay.l2_step(w, g, lr=0.01, lam=0.1)
            ref.l2_step(w_ref, g_ref, 0.01, 0.1)
        else:
            l2decay.decay_step(w, g, lr=0.01, decay=0.01)
            ref.decay_step(w_ref, g_ref, 0.01, 0.01)
    np.testing.assert_allclose(w, w_ref, rtol=50 * RTOL[dtype])


floats = st.floats(-1e3, 1e3, allow_nan=False, width=32)
hyper_lr = st.floats(0, 10, allow_nan=False)


@st.composite
def pairs(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=40))
    w = draw(hnp.arrays(dtype, shape, elements=floats))
    g = draw(hnp.arrays(dtype, shape, elements=floats))
    return w, g


@settings(max_examples=150, deadline=None)
@given(pairs(), hyper_lr, st.floats(0, 10, allow_nan=False))
def test_l2_property(wg, lr, lam):
    w, g = wg
    w_ref, g_ref = w.copy(), g.copy()
    l2decay.l2_step(w, g, lr=lr, lam=lam)
    ref.l2_step(w_ref, g_ref, lr, lam)
    np.testing.assert_allclose(g, g_ref, rtol=RTOL[w.dtype.type], atol=0)
    np.testing.assert_allclose(w, w_ref, rtol=RTOL[w.dtype.type], atol=0)


@settings(max_examples=150, deadline=None)
@given(pairs(), hyper_lr, st.floats(0, 1, exclude_max=True, allow_nan=False))
def test_decay_property(wg, lr, decay):
    w, g = wg
    g_before = g.copy()
    w_ref = w.copy()
    l2decay.decay_step(w, g, lr=lr, decay=decay)
    ref.decay_step(w_ref, g.copy(), lr, decay)
    np.testing.assert_array_equal(g, g_before)
    np.testing.assert_allclose(w, w_ref, rtol=RTOL[w.dtype.type], atol=0)


@settings(max_examples=60, deadline=None)
@given(pairs())
def test_decay_with_zero_lr_is_pure_shrink(wg):
    w, g = wg
    expected = w - w.dtype.type(0.5) * w        # (w - 0*g) - decay*(w - 0*g)
    l2decay.decay_step(w, g, lr=0.0, decay=0.5)
    np.testing.assert_array_equal(w, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_in_place_contract(dtype):
    w, g = make((4, 5), dtype)
    w_id, g_id, g_before = id(w), id(g), g.copy()
    assert l2decay.decay_step(w, g, lr=0.1, decay=0.1) is None
    np.testing.assert_array_equal(g, g_before)  # decay never writes grad
    assert l2decay.l2_step(w, g, lr=0.1, lam=0.5) is None
    assert id(w) == w_id and id(g) == g_id
    assert w.dtype == dtype and g.dtype == dtype and w.shape == (4, 5)
    assert not np.array_equal(g, g_before)  # L2 leaves the regularized gradient in grad


def test_decay_accepts_read_only_grad():
    w, g = make((10,), np.float64)
    g.flags.writeable = False
    w_ref = w.copy()
    l2decay.decay_step(w, g, lr=0.1, decay=0.1)
    ref.decay_step(w_ref, g, 0.1, 0.1)
    np.testing.assert_array_equal(w, w_ref)


def test_views_that_are_contiguous_are_updated_in_place():
    base = np.arange(20, dtype=np.float64)
    grad = np.ones(10)
    view = base[5:15]
    l2decay.decay_step(view, grad, lr=1.0, decay=0.0)
    np.testing.assert_array_equal(base[5:15], np.arange(5, 15) - 1.0)
    np.testing.assert_array_equal(base[:5], np.arange(5))


def test_sequence_equals_single_calls():
    shapes = [(64, 784), (64,), (10, 64), (10,), (3, 3, 3), (0,), (1,), (7,), (9, 2), (5,), (100,)]
    dts = [np.float64, np.float32] * 6
    pairs_ = [make(s, dts[k], seed=k) for k, s in enumerate(shapes)]  # 11 tensors: heap path
    ws = [w for w, _ in pairs_]
    gs = [g for _, g in pairs_]
    ws_ref = [w.copy() for w in ws]
    gs_ref = [g.copy() for g in gs]
    l2decay.l2_step(ws, gs, lr=0.1, lam=0.2)
    for w, g in zip(ws_ref, gs_ref):
        l2decay.l2_step(w, g, lr=0.1, lam=0.2)
    for k in range(len(ws)):
        np.testing.assert_array_equal(ws[k], ws_ref[k], err_msg=f"tensor {k}")
        np.testing.assert_array_equal(gs[k], gs_ref[k], err_msg=f"tensor {k}")
    l2decay.decay_step(tuple(ws), tuple(gs), lr=0.1, decay=0.3)
    for w, g in zip(ws_ref, gs_ref):
        l2decay.decay_step(w, g, lr=0.1, decay=0.3)
    for k in range(len(ws)):
        np.testing.assert_array_equal(ws[k], ws_ref[k], err_msg=f"tensor {k}")


def test_empty_sequences_are_a_no_op():
    assert l2decay.l2_step([], [], lr=0.1, lam=0.1) is None
    assert l2decay.decay_step((), (), lr=0.1, decay=0.1) is None


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_thread_count_does_not_change_bits(dtype):
    w, g = make((1_000_003,), dtype, seed=7)
    results = []
    before = l2decay.get_num_threads()
    try:
        for threads in (1, 2, 3):
            l2decay.set_num_threads(threads)
            w1, g1 = w.copy(), g.copy()
            l2decay.l2_step(w1, g1, lr=0.1, lam=0.3)
            l2decay.decay_step(w1, g1, lr=0.1, decay=0.01)
            results.append((w1, g1))
    finally:
        l2decay.set_num_threads(0)
    assert l2decay.get_num_threads() == before
    for w1, g1 in results[1:]:
        np.testing.assert_array_equal(w1, results[0][0])
        np.testing.assert_array_equal(g1, results[0][1])


def test_build_info_says_what_was_built():
    info = l2decay.build_info()
    for key in ("cython_version", "compile_flags", "openmp", "simd", "num_threads", "numpy_version"):
        assert key in info, key
    assert info["cython_version"].startswith("3.")
    assert "-O3" in info["compile_flags"] or "/O2" in info["compile_flags"]
    if info["march"] is None:  # -march only when the person building asked for it
        assert not any(f.startswith("-march") for f in info["compile_flags"])
    assert not any("fast-math" in f for f in info["compile_flags"])
    assert info["num_threads"] >= 1
    if not info["openmp"]:
        assert info["num_threads"] == 1


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_l2_without_writing_grad_gives_the_same_weights(dtype, shape):
    w, g = make(shape, dtype, seed=9)
    w_ref, g_ref = w.copy(), g.copy()
    g0 = g.copy()
    g.flags.writeable = False  # only read: a read-only gradient is accepted
    l2decay.l2_step(w, g, lr=0.05, lam=0.3, write_grad=False)
    ref.l2_step(w_ref, g_ref, 0.05, 0.3)
    np.testing.assert_array_equal(w, w_ref)
    np.testing.assert_array_equal(g, g0)


def test_write_grad_must_be_a_bool():
    w, g = make((5,), np.float64)
    w0 = w.copy()
    with pytest.raises(TypeError, match="write_grad must be True or False, got 'no'"):
        l2decay.l2_step(w, g, lr=0.1, lam=0.1, write_grad="no")
    np.testing.assert_array_equal(w, w0)


def test_decay_step_is_the_expression_the_docs_print():
    # docs/kernels.md prints `z = w - lr*g; w = z - decay*z`: bit for bit, where (w - lr*g) * (1 - decay)
    # differs in the last bit for about a quarter of float32 elements
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        w, g = rng.standard_normal(10_000).astype(dt), rng.standard_normal(10_000).astype(dt)
        z = w - dt(0.1) * g
        want = z - dt(0.02) * z
        l2decay.decay_step(w, g, lr=0.1, decay=0.02)
        np.testing.assert_array_equal(w, want)
    page = Path(__file__).resolve().parents[1] / "docs" / "kernels.md"
    if page.exists():   # (in a checkout)
        assert "l2decay.decay_step(w, g, lr=0.1, decay=0.02)  # z = w - lr*g; w = z - decay*z" in page.read_text()
