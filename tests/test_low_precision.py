"""16-bit weights (bfloat16, float16) and the rounding modes: against numpy references of the
formulas, bit-identical across threads, instruction sets and resumes, and the share of the
intended weight decay actually applied (the point of it all)."""

import numpy as np
import pytest

ml_dtypes = pytest.importorskip("ml_dtypes")
import l2decay  # noqa: E402
import numpy_reference as ref  # noqa: E402
from kernel_config import configured  # noqa: E402
from l2decay import SGD, Adam, Cautious, Corrected, Decay, Decoupled, L2, _kernels  # noqa: E402

BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
HALVES = [BF16, F16]
F32 = np.float32


def data(dtype, shapes, steps, seed=0):
    rng = np.random.default_rng(seed)
    w = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[(rng.standard_normal(s) * 0.1).astype(dtype) for s in shapes] for _ in range(steps)]
    return w, grads


def reg_tuple(reg):
    return ("none", 0.0) if reg is None else (reg.name, reg.coef)


SHAPES = [(7, 5), (5,), (0,), (333,)]
REGS = [None, L2(0.05), Decoupled(0.05), Decay(0.01), Cautious(0.5), Corrected(0.5, lr_max=0.1)]


def _rounded(arrays, dtype):
    """Round float32 arrays (or None) in place to `dtype` (nearest even), kept as float32."""
    for x in arrays:
        if x is not None:
            x[...] = x.astype(dtype).astype(F32)


@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("reg", REGS, ids=repr)
@pytest.mark.parametrize("cls,cfg", [(SGD, dict(momentum=0.9, nesterov=True)), (SGD, dict(momentum=0.8, momentum_form="keras")),
                                     (SGD, dict()), (Adam, dict(amsgrad=True)), (Adam, dict(eps_form="keras"))], ids=str)
@pytest.mark.parametrize("state_dtype", [None, "param"])
def test_nearest_is_float32_arithmetic_rounded_once_per_step(dtype, reg, cls, cfg, state_dtype):
    # the reference: float32 copies, the float32 formulas, the weights rounded to the 16-bit
    # format after every step (round to nearest even); the state stays float32, or with
    # state_dtype "param" is rounded to the 16-bit format too (the step itself uses the
    # unrounded values, held in registers)
    w, grads = data(dtype, SHAPES, 5)
    w32 = [x.astype(F32) for x in w]
    r = (ref.SGD if cls is SGD else ref.Adam)(w32, lr=0.05 if cls is SGD else 0.01, reg=reg_tuple(reg), **cfg)
    opt = cls(w, lr=0.05 if cls is SGD else 0.01, reg=reg, rounding="nearest", state_dtype=state_dtype, **cfg)
    for g in grads:
        opt.step(g)
        r.step([x.astype(F32) for x in g])
        _rounded(w32, dtype)
        if state_dtype == "param":
            _rounded(r.bufs if cls is SGD else r.m + r.v + r.vmax, dtype)
    for k, (a, b) in enumerate(zip(w, w32)):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a.astype(F32), b, err_msg=f"tensor {k}")
    want = dtype if state_dtype == "param" else np.dtype(F32)
    for k, st in enumerate(opt.state):
        names = [n for n in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "velocity") if n in st]
        assert names or cls is SGD and "momentum" not in cfg
        for n in names:
            assert st[n].dtype == want, (k, n)
        if cls is Adam:
            np.testing.assert_array_equal(st["exp_avg"].astype(F32), r.m[k], err_msg=f"exp_avg {k}")
            np.testing.assert_array_equal(st["exp_avg_sq"].astype(F32), r.v[k], err_msg=f"exp_avg_sq {k}")


def _kahan(w, c, change, pre=0.0, post=0.0):
    """The compensated write, in numpy: the change (decay included) added to w + c."""
    dt, w0 = w.dtype, w.astype(F32)
    d = change - F32(pre) * w0
    d = d - F32(post) * (w0 + d)
    y = d + c.astype(F32)
    t = (w0 + y).astype(dt)
    return t, (y - (t.astype(F32) - w0)).astype(dt)


@pytest.mark.parametrize("dtype", HALVES + [np.dtype(F32)], ids=str)
@pytest.mark.parametrize("reg", [None, Decoupled(0.3), Decay(1e-3)], ids=repr)
def test_compensated_is_kahan_summation_with_the_decay_inside(dtype, reg):
    w, grads = data(dtype, [(1000,)], 20)
    w_ref, c_ref = w[0].copy(), np.zeros_like(w[0])
    opt = SGD(w, lr=0.01, reg=reg, rounding="compensated")
    pre = 0.01 * 0.3 if isinstance(reg, Decoupled) else 0.0
    post = 1e-3 if isinstance(reg, Decay) else 0.0
    for g in grads:
        opt.step(g)
        w_ref, c_ref = _kahan(w_ref, c_ref, -(F32(0.01) * g[0].astype(F32)), pre, post)
    np.testing.assert_array_equal(w[0], w_ref)
    np.testing.assert_array_equal(opt.state[0]["compensation"], c_ref)


def test_stochastic_rounding_is_unbiased():
    # x lies 0.3 of the way from one bfloat16 to the next: about 30% of a million draws round up
    n = 1_000_000
    lo = np.float32(1.0)
    hi = np.float32(np.nextafter(BF16.type(1.0), BF16.type(2.0)))   # 1 + 2**-7
    x = lo + np.float32(0.3) * (hi - lo)
    w = np.full(n, lo, dtype=BF16)
    g = np.full(n, -(x - lo), dtype=F32)          # step: w - lr*g = x
    l2decay.sgd_step([w.view(BF16)], [g.astype(BF16)], lr=1.0, rounding="stochastic", seed=7, step=1)
    up = np.mean(w.astype(F32) == hi)
    exact_g = np.float32(g[0].astype(BF16))      # the gradient as bfloat16 stores it
    p = float((-exact_g) / (hi - lo))
    assert np.all((w.astype(F32) == lo) | (w.astype(F32) == hi))
    assert abs(up - p) < 5 * np.sqrt(p * (1 - p) / n), (up, p)


@pytest.mark.parametrize("lo, frac", [(1.0, 0.3), (-3.0, 0.85), (3 * 2.0 ** -24, 0.6), (2.0 ** -14, 0.1)],
                         ids=["one", "negative", "subnormal", "smallest-normal"])
def test_float16_stochastic_rounding_is_unbiased(lo, frac):
    # x lies `frac` of the way from a float16 to the next away from zero (a gap of a power of
    # two, subnormal ones too): that share of a million draws rounds away
    n = 1_000_000
    f16 = np.float16
    lo = f16(lo)
    hi = np.nextafter(lo, f16(np.inf) if lo > 0 else f16(-np.inf))
    lr = np.float32(2.0 ** -10)      # the gradient, a float16 too, stays normal
    g = np.full(n, -(np.float32(frac) * (np.float32(hi) - np.float32(lo))) / lr, dtype=F32).astype(f16)
    w = np.full(n, lo, dtype=f16)
    l2decay.sgd_step([w], [g], lr=float(lr), rounding="stochastic", seed=5, step=1)
    x = np.float32(lo) - lr * np.float32(g[0])       # the float32 value being rounded
    p = float((x - np.float32(lo)) / (np.float32(hi) - np.float32(lo)))
    assert np.all((w == lo) | (w == hi))
    away = np.mean(w == hi)
    assert 0.05 < p < 0.95
    assert abs(away - p) < 5 * np.sqrt(p * (1 - p) / n), (away, p)


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_16_bit_state_is_rounded_stochastically_unbiased_and_apart_from_the_weight(dtype):
    # Adam's first step from zero moments with g = 1: m = 0.1, v = 0.001 (float32 values that
    # fall between two 16-bit neighbours), and w = 1 - lr*(m/0.1)/(sqrt(v/0.001) + eps) placed
    # 0.3 of the way down its gap.  Each stored value must round up with the probability of its
    # distance, and the three coins must be independent (their bits are different hash bits).
    n = 1_000_000
    one = np.ones(n, dtype)
    gap = np.float32(1.0) - np.float32(np.nextafter(dtype.type(1.0), dtype.type(0.0)))
    lr = float(np.float32(0.3) * gap)
    w = one.copy()
    m, v = np.zeros(n, dtype), np.zeros(n, dtype)
    l2decay.adam_step([w], [one], [m], [v], step=1, lr=lr, eps=1e-30, rounding="stochastic", seed=3)
    ups = {}
    for name, got, x in (("m", m, np.float32(0.1)), ("v", v, np.float32(1.0) * np.float32(1 - 0.999)),
                         ("w", w, None)):
        if x is None:   # the float32 weight the step computes (its exact reference: nearest state)
            ref_w, rm, rv = one.copy(), np.zeros(n, dtype), np.zeros(n, dtype)
            ref_w32 = [ref_w.astype(F32)]
            ref.Adam(ref_w32, lr=lr, eps=1e-30).step([one.astype(F32)])
            x = ref_w32[0][0]
        lo = np.float32(x.astype(dtype).astype(F32))
        lo = lo if lo <= x else np.float32(np.nextafter(dtype.type(x), dtype.type(-np.inf)))
        hi = np.float32(np.nextafter(dtype.type(lo), dtype.type(np.inf)))
        got32 = got.astype(F32)
        assert np.all((got32 == lo) | (got32 == hi)), name
        p = float((x - lo) / (hi - lo))
        up = got32 == hi
        assert 0.02 < p < 0.98, (name, p)
        assert abs(up.mean() - p) < 5 * np.sqrt(p * (1 - p) / n), (name, up.mean(), p)
        ups[name] = up
    for a, b in (("m", "v"), ("m", "w"), ("v", "w")):
        corr = np.corrcoef(ups[a], ups[b])[0, 1]
        assert abs(corr) < 5 / np.sqrt(n), (a, b, corr)


def test_bfloat16_second_moment_never_shrinks_rounded_to_nearest_and_follows_rounded_stochastically():
    # beta2 = 0.999: v moves by 1e-3 of (g*g - v), under half a bfloat16 unit of v unless g*g
    # exceeds about 3v.  50 steps at g = 1, then 2,000 at g = 0.1 (the figures of docs/low-precision.md)
    n = 10_000
    got = {}
    for rounding in ("nearest", "stochastic"):
        w = np.ones(n, BF16)
        opt = Adam([w], lr=1e-6, rounding=rounding, state_dtype="param")
        for g in [np.ones(n, BF16)] * 50 + [np.full(n, 0.1, BF16)] * 2000:
            opt.step([g])
        got[rounding] = opt.state[0]["exp_avg_sq"].astype(np.float64).mean()
    v50 = 1 - 0.999 ** 50
    want = v50 * 0.999 ** 2000 + 0.01 * (1 - 0.999 ** 2000)
    assert got["nearest"] == pytest.approx(v50, rel=0.01)           # stuck where g = 1 left it
    assert got["stochastic"] == pytest.approx(want, rel=0.01), (got, want)


def test_state_dtype_is_checked_and_a_bad_state_changes_nothing():
    with pytest.raises(ValueError, match=r"^state_dtype must be None .* or '8bit'"):
        Adam([np.ones(3, BF16)], state_dtype="bfloat16")
    with pytest.raises(TypeError, match=r"^param_groups\[1\]\.state_dtype must be None"):
        SGD([{"params": [np.ones(3, BF16)]}, {"params": [np.ones(2, BF16)], "state_dtype": float}])
    w = [np.ones(3, BF16), np.ones(4, F32)]
    opt = Adam(w, lr=0.1, state_dtype="param")
    # state in each param's own dtype, float32 for the float32 param
    assert [st["exp_avg"].dtype for st in opt.state] == [BF16, np.dtype(F32)]
    opt.state[0]["exp_avg_sq"] = np.zeros(3, F32)           # one param, two state dtypes
    before = [x.copy() for x in w], [dict((k, np.copy(v)) for k, v in st.items()) for st in opt.state]
    with pytest.raises(TypeError, match=r"^state\[0\]\['exp_avg_sq'\] has dtype float32 but state\[0\]\['exp_avg'\] "
                                        r"has bfloat16: a param's state arrays share one dtype"):
        opt.step([np.ones(3, BF16), np.ones(4, F32)])
    for a, b in zip(w, before[0]):
        np.testing.assert_array_equal(a, b)
    for st, old in zip(opt.state, before[1]):
        for k in old:
            np.testing.assert_array_equal(st[k], old[k])
    # float32 moments (replaced, or loaded from a state dict) are taken as they are
    opt.state[0]["exp_avg"] = np.zeros(3, F32)
    opt.step([np.ones(3, BF16), np.ones(4, F32)])
    assert opt.state[0]["exp_avg"].dtype == F32 and opt.state[0]["step"] == 1
    d = opt.state_dict()
    d["state.0.exp_avg_sq"] = d["state.0.exp_avg_sq"].astype(BF16)
    with pytest.raises(ValueError, match=r"state dict state\.0\.exp_avg_sq has shape \(3,\) and dtype bfloat16; it must "
                                         r"have \(3,\) and float32"):
        opt.load_state_dict(d)
    # one tensor whose state is its own gradient: refused (the overlap check runs for one
    # tensor too), nothing written
    g, wb = np.ones(3, BF16), np.ones(3, BF16)
    with pytest.raises(ValueError, match=r"grads\[0\] and momentum_buffers\[0\] share memory|momentum_buffers\[0\] "
                                         r"and grads\[0\] share memory"):
        l2decay.sgd_step([wb], [g], [g], lr=0.1, momentum=0.5, rounding="nearest")
    assert np.all(g.astype(F32) == 1) and np.all(wb.astype(F32) == 1)
    with pytest.raises(ValueError, match=r"share memory"):
        l2decay.adam_step([wb], [g], [g], [np.zeros(3, BF16)], step=1, lr=0.1, rounding="nearest")
    assert np.all(g.astype(F32) == 1) and np.all(wb.astype(F32) == 1)
    # a numpy string is the value it spells (and a numpy int seed its int)
    l2decay.sgd_step([wb], [g], lr=0.1, rounding=np.str_("stochastic"), seed=np.int64(3), step=1)
    opt2 = Adam([np.ones(3, BF16)], lr=0.1, state_dtype=np.str_("param"), rounding=np.str_("nearest"))
    opt2.step([np.ones(3, BF16)])
    assert opt2.state[0]["exp_avg"].dtype == BF16
    with pytest.raises(TypeError, match=r"^state_dtype must be None"):
        Adam([np.ones(3, BF16)], state_dtype=1)
    # the functional step: an SGD buffer in the weights' dtype is taken as given
    buf = [np.full(3, 0.5, BF16)]
    l2decay.sgd_step([np.ones(3, BF16)], [np.ones(3, BF16)], buf, lr=0.1, momentum=0.5, rounding="nearest")
    assert buf[0].dtype == BF16 and np.all(buf[0].astype(F32) == 1.25)


@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("cls,cfg", [(Adam, dict(lr=0.01, amsgrad=True)), (SGD, dict(lr=0.05, momentum=0.9))], ids=str)
@pytest.mark.parametrize("state_dtype", [None, "param"])
def test_stochastic_rounding_is_the_same_bits_on_every_level_thread_count_and_resume(dtype, cls, cfg, state_dtype):
    shapes = [(3 * 8192 + 5,), (77,), (0,)]
    w0, grads = data(dtype, shapes, 4, seed=3)
    cfg = dict(cfg, reg=Decoupled(0.1), rounding="stochastic", seed=11, state_dtype=state_dtype)
    results, states = [], []
    for level in _kernels.simd_available():
        for threads in (1, 2, 3):
            with configured(level=level, threads=threads, threshold=1024):
                w = [x.copy() for x in w0]
                opt = cls(w, **cfg)
                for g in grads:
                    opt.step(g)
                results.append(w)
                states.append(opt.state_dict())
    for w in results[1:]:
        for a, b in zip(w, results[0]):
            np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))
    for st in states[1:]:
        for key, value in st.items():
            if isinstance(value, np.ndarray) and key.startswith("state."):
                assert value.dtype == (dtype if state_dtype == "param" else F32)
                np.testing.assert_array_equal(value.view(np.uint8), states[0][key].view(np.uint8), err_msg=key)
    # a resume from a state dict continues with the same random bits
    w = [x.copy() for x in w0]
    opt = cls(w, **cfg)
    for g in grads[:2]:
        opt.step(g)
    saved = opt.state_dict()
    w2 = [x.copy() for x in w]
    opt2 = cls(w2, lr=0.01)
    opt2.load_state_dict(saved)
    for g in grads[2:]:
        opt2.step(g)
    for a, b in zip(w2, results[0]):
        np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))
    # another seed draws other bits
    w3 = [x.copy() for x in w0]
    opt3 = cls(w3, **dict(cfg, seed=12))
    for g in grads:
        opt3.step(g)
    assert not np.array_equal(w3[0].view(np.uint16), results[0][0].view(np.uint16))


def decay_applied(dtype, lr_wd, rounding, n=200_000, steps=1000):
    """Decay only (zero gradients), N(0,1) weights: the share of the intended shrink
    (1 - lr*wd)**steps that the stored weights show."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(n).astype(dtype)
    w = w0.copy()
    opt = SGD([w], lr=1.0, reg=Decoupled(lr_wd), rounding=rounding)
    g = np.zeros(n, dtype)
    for _ in range(steps):
        opt.step([g])
    a, b = w0.astype(np.float64), w.astype(np.float64)
    return float(np.sum(a * (a - b)) / np.sum(a * (a - a * (1 - lr_wd) ** steps)))


# The share of the intended decay applied (docs/low-precision.md's table).  Round to nearest loses all of it
# in bfloat16 below 2**-9 per step; stochastic rounding and compensation apply it.
@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("lr_wd", [1e-5, 1e-4, 1e-3])
@pytest.mark.parametrize("rounding", ["stochastic", "compensated"])
def test_16_bit_weights_get_their_decay(dtype, lr_wd, rounding):
    assert decay_applied(dtype, lr_wd, rounding) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("dtype,lr_wd", [(BF16, 1e-5), (BF16, 1e-3), (F16, 1e-5)])
def test_round_to_nearest_loses_small_decays(dtype, lr_wd):
    assert decay_applied(dtype, lr_wd, "nearest") == 0.0


@pytest.mark.parametrize("lr_wd,rounding,want,tol", [(1e-8, "compensated", 1.0, 0.01), (1e-7, "compensated", 1.0, 0.01),
                                                      (1e-6, "nearest", 1.0, 0.005), (1e-8, "nearest", 0.0, 0.0)])
def test_float32_decay_applied(lr_wd, rounding, want, tol):
    # w - (lr*wd)*w: at 1e-6 round to nearest applies it faithfully (a rounded factor
    # 1 - lr*wd gave 101.5%); at 1e-8 nothing can, but compensation
    assert decay_applied(np.float32, lr_wd, rounding, n=50_000) == pytest.approx(want, abs=tol)


def test_rounding_errors_are_named_and_change_nothing():
    w = [np.ones(3, F32)]
    with pytest.raises(ValueError, match=r"^rounding must be one of \('nearest', 'stochastic', 'compensated'\)"):
        SGD(w, rounding="up")
    with pytest.raises(TypeError, match=r"^seed must be an int"):
        Adam(w, rounding="stochastic", seed=1.5)
    opt = SGD(w, lr=0.1, rounding="stochastic")
    with pytest.raises(ValueError, match=r"rounding 'stochastic' needs bfloat16 or float16 weights, but params\[0\] is float32"):
        opt.step([np.ones(3, F32)])
    np.testing.assert_array_equal(w[0], 1.0)
    with pytest.raises(ValueError, match=r"^rounding 'stochastic' needs step="):
        l2decay.sgd_step([np.ones(3, BF16)], [np.ones(3, BF16)], lr=0.1, rounding="stochastic")
    with pytest.raises(ValueError, match=r"^params\[0\] is bfloat16, whose default rounding is 'stochastic', which "
                                         r"needs step="):
        l2decay.sgd_step([np.ones(3, BF16)], [np.ones(3, BF16)], lr=0.1)
    with pytest.raises(ValueError, match=r"^rounding 'compensated' needs compensations="):
        l2decay.sgd_step([np.ones(3, BF16)], [np.ones(3, BF16)], lr=0.1, rounding="compensated")
    h = [np.ones(3, BF16)]
    with pytest.raises(TypeError, match=r"^exp_avgs\[0\] has dtype float16 but params\[0\] is bfloat16: its state "
                                        r"must be float32 .* or bfloat16 \(state_dtype 'param'\)"):
        l2decay.adam_step(h, [np.ones(3, BF16)], [np.zeros(3, F16)], [np.zeros(3, F16)], step=1, lr=0.1)
    with pytest.raises(TypeError, match=r"^exp_avg_sqs\[0\] has dtype float32 but exp_avgs\[0\] has bfloat16: a "
                                        r"param's state arrays share one dtype"):
        l2decay.adam_step(h, [np.ones(3, BF16)], [np.zeros(3, BF16)], [np.zeros(3, F32)], step=1, lr=0.1)
    with pytest.raises(TypeError, match=r"^grads\[0\] has dtype float16 but params\[0\] has dtype bfloat16"):
        l2decay.sgd_step(h, [np.ones(3, F16)], lr=0.1)
    np.testing.assert_array_equal(h[0].astype(F32), 1.0)


def test_kernels_take_16_bit_arrays():
    for dt in HALVES:
        w, g = np.full(4, 2.0, dt), np.full(4, 1.0, dt)
        l2decay.decay_step(w, g, lr=0.5, decay=0.25)
        np.testing.assert_array_equal(w.astype(F32), 1.125)
        l2decay.l2_step(w, g, lr=0.5, lam=1.0)
        np.testing.assert_array_equal(g.astype(F32), 2.125)
        np.testing.assert_array_equal(w.astype(F32), 0.0625)


@pytest.mark.parametrize("level", _kernels.simd_available())
def test_float16_conversions_are_exact_for_every_half_on_every_level(level):
    # the float16 <-> float32 conversions are integer and float arithmetic (so that they
    # vectorize); every one of the 65,536 halves times several scales, rounded back to float16,
    # must be numpy's float32 -> float16 (round to nearest even, subnormals, overflow to inf)
    halves = np.arange(1 << 16, dtype=np.uint16).view(F16)
    finite = np.isfinite(halves)
    with configured(level=level):
        for lr in (0.0, 1.0, 0.3, 1.7e-3, 3.1e4, 2.0 ** -20):
            w, g = np.zeros_like(halves), halves.copy()
            with np.errstate(all="ignore"):
                want = (np.float32(0) - np.float32(lr) * halves.astype(F32)).astype(F16)
                # g = g + 0*w: every finite half back unchanged (but -0 + 0 = +0)
                back = (halves.astype(F32) + np.float32(0)).astype(F16)
            l2decay.l2_step(w, g, lr=lr, lam=0.0)
            np.testing.assert_array_equal(g.view(np.uint16)[finite], back.view(np.uint16)[finite])
            both = np.isfinite(halves) & np.isfinite(want)
            np.testing.assert_array_equal(w.view(np.uint16)[both], want.view(np.uint16)[both])
            assert np.array_equal(np.isnan(w), np.isnan(want)) and np.array_equal(np.isinf(w), np.isinf(want))


@pytest.mark.parametrize("rounding", ["nearest", "stochastic", "compensated"])
def test_float16_overflow_is_inf_as_in_ieee_arithmetic(rounding):
    # documented behaviour (docs/low-precision.md): a new weight beyond float16's range
    # (65504) is stored as +-inf, as numpy and torch float16 arithmetic give; nothing raises and
    # the other weights are updated as usual
    w = np.array([65000, 60000, -65000, 1.0], F16)
    g = np.array([-1000, -10, 1000, 0.5], F16)
    opt = SGD([w], lr=1.0, rounding=rounding, seed=3)
    opt.step([g])
    assert w[0] == np.inf and w[2] == -np.inf
    assert w[1] in (np.float16(60000), np.float16(60032)) and w[3] == np.float16(0.5)   # 60010's neighbours


def test_compensated_overflow_turns_the_weight_nan_at_the_next_step():
    w = np.array([65000, 1.0], F16)
    opt = SGD([w], lr=1.0, rounding="compensated")
    opt.step([np.array([-1000, 0], F16)])
    assert w[0] == np.inf and opt.state[0]["compensation"][0] == -np.inf
    opt.step([np.zeros(2, F16)])
    assert np.isnan(w[0]) and w[1] == 1.0


@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("cls,kw", [(Adam, dict(rounding="compensated", reg=Decoupled(0.1))),
                                    (Adam, dict(state_dtype="param", reg=L2(0.01))),
                                    (SGD, dict(momentum=0.9, state_dtype="param", rounding="compensated"))],
                         ids=["adam-compensated", "adam-param-state", "sgd-param-state-compensated"])
def test_npz_checkpoint_of_16_bit_state_resumes_bit_identically(tmp_path, dtype, cls, kw):
    """np.savez stores bfloat16 as raw 2-byte records (|V2): load_state_dict reads them back."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((6, 5)).astype(dtype)
    grads = [rng.standard_normal((6, 5)).astype(dtype) for _ in range(10)]
    full, half = w0.copy(), w0.copy()
    opt_full, opt = cls([full], lr=0.01, **kw), cls([half], lr=0.01, **kw)
    for g in grads:
        opt_full.step([g])
    for g in grads[:4]:
        opt.step([g])
    np.savez(tmp_path / "opt.npz", **opt.state_dict())
    resumed = half.copy()
    opt2 = cls([resumed], lr=0.5)
    opt2.load_state_dict(np.load(tmp_path / "opt.npz"))
    for g in grads[4:]:
        opt2.step([g])
    np.testing.assert_array_equal(resumed.view(np.uint16), full.view(np.uint16))
    assert all(a.dtype == b.dtype for a, b in zip(opt2.state[0].values(), opt_full.state[0].values())
               if isinstance(a, np.ndarray))
