"""Bad input: a clear TypeError/ValueError naming the argument, and nothing modified."""
import re

import numpy as np
import pytest

import l2decay

STEPS = {
    "l2": (l2decay.l2_step, dict(lr=0.1, lam=0.1)),
    "decay": (l2decay.decay_step, dict(lr=0.1, decay=0.1)),
}


def fresh(n=6, dtype=np.float64):
    return np.linspace(-1, 1, n).astype(dtype), np.linspace(2, 3, n).astype(dtype)


def assert_refused(step, w, g, exc, match, **hyper):
    """The call raises `exc` matching `match`, and every array passed is unchanged."""
    arrays = [a for a in (w if isinstance(w, (list, tuple)) else [w]) if isinstance(a, np.ndarray)]
    arrays += [a for a in (g if isinstance(g, (list, tuple)) else [g]) if isinstance(a, np.ndarray)]
    before = [a.copy() for a in arrays]
    with pytest.raises(exc, match=match):
        step(w, g, **hyper)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rule", sorted(STEPS))
def test_non_array(rule):
    step, hyper = STEPS[rule]
    w, g = fresh()
    assert_refused(step, [1.0, 2.0], [g, g], TypeError, r"w\[0\] must be a numpy.ndarray", **hyper)
    assert_refused(step, w, list(g), TypeError, r"grad must be a numpy.ndarray", **hyper)
    assert_refused(step, 3.0, g, TypeError, r"w must be a numpy.ndarray or a list", **hyper)
    assert_refused(step, [w], g, TypeError, r"grad must be a sequence", **hyper)


@pytest.mark.parametrize("rule", sorted(STEPS))
@pytest.mark.parametrize("dtype", [np.int64, np.int16, np.complex128, bool, ">f8", ">f2"])
def test_bad_dtype(rule, dtype):
    step, hyper = STEPS[rule]
    w, g = fresh()
    bad = np.ones(6, dtype=dtype)
    assert_refused(step, bad, g, TypeError, r"w must have dtype float32, float64, float16 or bfloat16", **hyper)
    assert_refused(step, w, bad, TypeError, r"grad must have dtype float32, float64, float16 or bfloat16", **hyper)


@pytest.mark.parametrize("rule", sorted(STEPS))
def test_mismatched_dtype_and_shape(rule):
    step, hyper = STEPS[rule]
    w, g = fresh()
    assert_refused(step, w, g.astype(np.float32), TypeError, r"grad has dtype float32 but w", **hyper)
    assert_refused(step, w, np.ones(7), ValueError, r"grad has shape \(7,\) but w has shape \(6,\)", **hyper)
    assert_refused(step, w, g.reshape(2, 3), ValueError, r"grad has shape \(2, 3\)", **hyper)


@pytest.mark.parametrize("rule", sorted(STEPS))
def test_non_contiguous_refused(rule):
    step, hyper = STEPS[rule]
    base = np.arange(12, dtype=np.float64)
    assert_refused(step, base[::2], np.ones(6), ValueError, r"w must be C-contiguous", **hyper)
    assert_refused(step, np.ones(6), base[::2], ValueError, r"grad must be C-contiguous", **hyper)
    fortran = np.asfortranarray(np.ones((3, 4)))
    assert_refused(step, fortran, np.ones((3, 4)), ValueError, r"w must be C-contiguous", **hyper)


@pytest.mark.parametrize("rule", sorted(STEPS))
def test_read_only(rule):
    step, hyper = STEPS[rule]
    w, g = fresh()
    w.flags.writeable = False
    assert_refused(step, w, g, ValueError, r"w is read-only", **hyper)


def test_read_only_grad_refused_by_l2_only():
    w, g = fresh()
    g.flags.writeable = False
    assert_refused(l2decay.l2_step, w, g, ValueError, r"grad is read-only", lr=0.1, lam=0.1)
    l2decay.decay_step(w, g, lr=0.1, decay=0.1)  # decay never writes grad: allowed


@pytest.mark.parametrize("rule", sorted(STEPS))
def test_shared_memory(rule):
    step, hyper = STEPS[rule]
    w, _ = fresh()
    assert_refused(step, w, w, ValueError, r"w and grad share memory", **hyper)
    buf = np.arange(12, dtype=np.float64)
    assert_refused(step, buf[:6], buf[3:9], ValueError, r"share memory", **hyper)


@pytest.mark.parametrize("rule", sorted(STEPS))
def test_arrays_overlapping_across_pairs_are_refused(rule):
    # with threads the result would depend on their timing; sequentially it would differ from a
    # loop of single calls.  Each case names both arrays; nothing is modified.
    step, hyper = STEPS[rule]
    buf = np.arange(20, dtype=np.float64)
    a, b, c, d = (np.arange(10.0) + k for k in range(4))
    for ws, gs, names in [
        ([buf[:10], buf[5:15]], [a, b], ("w[0]", "w[1]")),
        ([a, b], [c, a], ("w[0]", "grad[1]")),
        ([a, a], [c, d], ("w[0]", "w[1]")),
        ([a, b], [c, c], ("grad[0]", "grad[1]")) if rule == "l2" else (None, None, None),
    ]:
        if ws is None:
            continue
        before = [x.copy() for x in ws + gs]
        pattern = rf"({re.escape(names[0])} and {re.escape(names[1])}|{re.escape(names[1])} and {re.escape(names[0])}) share memory"
        with pytest.raises(ValueError, match=pattern):
            step(ws, gs, **hyper)
        for x, y in zip(ws + gs, before):
            np.testing.assert_array_equal(x, y)


def test_a_read_only_gradient_may_be_shared_across_pairs():
    g = np.ones(10)
    ws = [np.ones(10), np.ones(10)]
    l2decay.decay_step(ws, [g, g], lr=0.1, decay=0.1)
    l2decay.l2_step(ws, [g, g], lr=0.1, lam=0.1, write_grad=False)
    np.testing.assert_array_equal(ws[0], ws[1])


@pytest.mark.parametrize(
    "name,value,exc",
    [
        ("lr", -0.1, ValueError),
        ("lr", float("nan"), ValueError),
        ("lr", float("inf"), ValueError),
        ("lr", "0.1", TypeError),
        ("lr", None, TypeError),
        ("lr", True, TypeError),
        ("lam", -1e-9, ValueError),
        ("lam", float("-inf"), ValueError),
        ("lam", 1j, TypeError),
        ("decay", 1.0, ValueError),
        ("decay", 1.5, ValueError),
        ("decay", -0.01, ValueError),
        ("decay", float("nan"), ValueError),
    ],
)
def test_bad_hyperparameters(name, value, exc):
    rule = "decay" if name == "decay" else "l2"
    step, hyper = STEPS[rule]
    if name == "lr":
        for step, hyper in STEPS.values():
            w, g = fresh()
            assert_refused(step, w, g, exc, rf"^{name} must", **{**hyper, name: value})
        return
    w, g = fresh()
    assert_refused(step, w, g, exc, rf"^{name} must", **{**hyper, name: value})


def test_hyperparameters_accept_numpy_scalars_and_ints():
    w, g = fresh()
    l2decay.l2_step(w, g, lr=np.float32(0.1), lam=0)
    l2decay.decay_step(w, g, lr=1, decay=np.float64(0.5))


@pytest.mark.parametrize("rule", sorted(STEPS))
def test_bad_pair_late_in_a_sequence_modifies_no_earlier_pair(rule):
    step, hyper = STEPS[rule]
    ws = [fresh()[0] for _ in range(4)]
    gs = [fresh()[1] for _ in range(4)]
    gs[3] = np.ones(5)
    assert_refused(step, ws, gs, ValueError, r"grad\[3\] has shape", **hyper)
    gs[3] = np.ones(6, dtype=np.float32)
    assert_refused(step, ws, gs, TypeError, r"grad\[3\] has dtype", **hyper)


@pytest.mark.parametrize("rule", sorted(STEPS))
def test_unequal_sequence_lengths(rule):
    step, hyper = STEPS[rule]
    ws = [fresh()[0] for _ in range(3)]
    gs = [fresh()[1] for _ in range(2)]
    assert_refused(step, ws, gs, ValueError, r"w has 3 arrays but grad has 2", **hyper)


def test_missing_keyword_hyperparameters():
    w, g = fresh()
    with pytest.raises(TypeError):
        l2decay.l2_step(w, g, 0.1, 0.1)  # keyword-only: positional use is an error
    with pytest.raises(TypeError):
        l2decay.decay_step(w, g, lr=0.1)
