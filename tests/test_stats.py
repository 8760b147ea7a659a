"""The weight statistics a step records in its own pass: against numpy sums of the old and new
weights, the same bits on every instruction set and thread count, and on every front end."""
import numpy as np
import pytest

import l2decay
from kernel_config import configured
from l2decay import SGD, Adam, Cautious, Corrected, Decay, Decoupled, L2, _kernels

RULES = [None, L2(0.05), Decoupled(0.05), Decay(0.01), Cautious(0.5), Corrected(0.5, lr_max=0.1)]
SIZES = [1, 17, 2048, 2049, 3 * 8192 + 5]


def _expected(w_old, w_new, reg, lr, direction_decayed=None):
    """The sums from the definition: sum w_new**2, sum dw**2, and the rule's part of the step."""
    wo, wn = w_old.astype(np.float64), w_new.astype(np.float64)
    d = wn - wo
    if reg is None:
        rule = 0.0
    elif reg.name == "l2":
        rule = (lr * reg.coef) ** 2 * np.sum(wo * wo)
    elif reg.name == "decay":
        rule = (reg.coef / (1 - reg.coef)) ** 2 * np.sum(wn * wn)
    else:
        shrink = lr * (lr * reg.coef) if reg.name == "corrected" else lr * reg.coef
        keep = d * wo <= 0 if reg.name == "cautious" else np.ones(wo.shape, bool)
        rule = shrink ** 2 * np.sum(np.where(keep, wo * wo, 0.0))
    return np.array([np.sum(wn * wn), np.sum(d * d), rule])


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
@pytest.mark.parametrize("reg", RULES, ids=repr)
@pytest.mark.parametrize("kind", ["sgd", "adam", "adam-8bit"])
def test_stats_are_the_sums_of_the_old_and_new_weights(dtype, reg, kind):
    if kind == "adam-8bit" and dtype == "float64":
        return      # (8-bit state is for float32 and 16-bit params)
    dt = np.dtype(pytest.importorskip("ml_dtypes").bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    rng = np.random.default_rng(1)
    ws = [rng.standard_normal(n).astype(dt) for n in SIZES]
    lr = 0.05
    for t in range(3):
        grads = [rng.standard_normal(n).astype(dt) for n in SIZES]
        old = [w.copy() for w in ws]
        out = np.full((len(ws), 3), np.nan)
        if kind == "sgd":
            l2decay.sgd_step(ws, grads, lr=lr, reg=reg, rounding="nearest", stats=out)
        else:
            if t == 0:
                if kind == "adam":
                    st = [[np.zeros(w.shape, np.float64 if dtype == "float64" else np.float32) for w in ws]
                          for _ in range(2)]
                    scales = [None, None]
                else:
                    pairs = [[l2decay.q8.zeros(w.shape) for w in ws] for _ in range(2)]
                    st = [[c for c, _ in p] for p in pairs]
                    scales = [[s for _, s in p] for p in pairs]
            l2decay.adam_step(ws, grads, st[0], st[1], step=t + 1, lr=lr, reg=reg, rounding="nearest",
                              exp_avg_scales=scales[0], exp_avg_sq_scales=scales[1], stats=out)
        for k, (a, b) in enumerate(zip(old, ws)):
            # (float32 and 16-bit weights: float32 lanes of at most STATS_BLOCK / 32 elements each)
            np.testing.assert_allclose(out[k], _expected(a, b, reg, lr), rtol=1e-12 if dtype == "float64" else 1e-5,
                                       atol=1e-300, err_msg=f"tensor {k} of {a.size}, step {t}")


VARIANTS = [("sgd", {}), ("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.9, "nesterov": True, "maximize": True}),
            ("sgd", {"momentum": 0.9, "dampening": 0.5}), ("sgd", {"momentum": 0.9, "momentum_form": "keras"}),
            ("sgd", {"momentum": 0.9, "momentum_form": "keras", "nesterov": True}),
            ("adam", {}), ("adam", {"amsgrad": True}), ("adam", {"eps_form": "keras"}),
            ("adam", {"eps_form": "keras", "amsgrad": True, "maximize": True})]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reg", [None, L2(0.05), Decoupled(0.05), Decay(0.01)], ids=repr)
@pytest.mark.parametrize("kind,options", VARIANTS, ids=[f"{k}-{o}" for k, o in VARIANTS])
def test_stats_of_every_loop_variant_are_the_sums_and_leave_the_step_as_it_is(dtype, reg, kind, options):
    rng = np.random.default_rng(7)
    sizes = [5, 64, 8192 + 33]         # a short group alone, whole groups, and a second block's short group
    w0 = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [[rng.standard_normal(n).astype(dtype) for n in sizes] for _ in range(3)]
    kw = dict(lr=0.05, reg=reg, **options)
    w_on, w_off = [x.copy() for x in w0], [x.copy() for x in w0]
    on = (Adam if kind == "adam" else SGD)(w_on, stats=True, **kw)
    off = (Adam if kind == "adam" else SGD)(w_off, **kw)
    for t, g in enumerate(grads):
        old = [x.copy() for x in w_on]
        on.step(g)
        off.step(g)
        for k, (a, b) in enumerate(zip(old, w_on)):
            np.testing.assert_allclose(on.stats[k], _expected(a, b, reg, 0.05), rtol=1e-12 if dtype == "float64" else 1e-5,
                                       atol=1e-300, err_msg=f"tensor {k} of {a.size}, step {t}")
    assert all(np.array_equal(a, b) for a, b in zip(w_on, w_off))


def test_decay_share_of_a_step_with_no_gradient_is_the_whole_step():
    w = [np.linspace(-3, 3, 5000)]
    out = np.empty((1, 3))
    l2decay.sgd_step(w, [np.zeros(5000)], lr=0.1, reg=Decoupled(0.2), stats=out)
    assert out[0, 2] == pytest.approx(out[0, 1], rel=1e-12)
    assert out[0, 0] == pytest.approx(np.sum(w[0] ** 2), rel=1e-13)
    assert out[0, 2] > 0


@pytest.mark.parametrize("case", ["float32-adam", "float64-sgd", "float32-adam-8bit", "bfloat16-adam-stochastic",
                                  "float16-sgd-compensated"])
@pytest.mark.parametrize("reg", [Decoupled(0.1), Cautious(0.5), Decay(0.01)], ids=repr)
def test_stats_are_the_same_bits_on_every_level_and_thread_count_and_leave_the_step_as_it_is(case, reg):
    name, kind, *rest = case.split("-")
    dtype = np.dtype(pytest.importorskip("ml_dtypes").bfloat16) if name == "bfloat16" else np.dtype(name)
    q8 = rest == ["8bit"]
    rounding = rest[0] if rest and not q8 else None
    rng = np.random.default_rng(4)
    shapes = [(3 * 8192 + 5,), (300,), (2049,)]
    w0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    runs = []
    for level in _kernels.simd_available():
        for threads in (1, 2, 3):
            for stats in (True, False):
                with configured(level=level, threads=threads, threshold=1024):
                    w = [x.copy() for x in w0]
                    kw = dict(lr=0.05, reg=reg, rounding=rounding, stats=stats)
                    if kind == "adam":
                        opt = Adam(w, state_dtype="8bit" if q8 else None, **kw)
                    else:
                        opt = SGD(w, momentum=0.9, **kw)
                    for g in grads:
                        opt.step(g)
                runs.append(([x.view(np.uint8) for x in w], opt.stats))
    first_w, first_stats = runs[0]
    assert first_stats.shape == (3, 3) and np.all(first_stats[:, :2] > 0)
    for w, stats in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(first_w, w))
        assert stats is None or np.array_equal(stats, first_stats)


def test_optimizer_stats_follow_the_params_order_and_are_new_each_step():
    rng = np.random.default_rng(2)
    params = [rng.standard_normal((30, 20)), np.zeros(20), rng.standard_normal((20, 5)), np.zeros(5)]
    groups = l2decay.exclude_1d(params, Decoupled(0.1), ["W1", "b1", "W2", "b2"], verbose=False)
    opt = Adam(groups, lr=0.01, stats=True)
    assert opt.stats is None
    old = [p.copy() for p in params]
    opt.step([np.ones_like(p) for p in params])
    first = opt.stats
    for k, (a, b) in enumerate(zip(old, params)):
        rule = Decoupled(0.1) if a.ndim == 2 else None
        np.testing.assert_allclose(first[k], _expected(a, b, rule, 0.01), rtol=1e-12, atol=1e-300)
    opt.step([np.ones_like(p) for p in params])
    assert opt.stats is not first and not np.array_equal(opt.stats, first)
    assert Adam([np.ones(3)]).stats is None


def test_torch_stats_are_a_dict_per_param_that_stepped():
    torch = pytest.importorskip("torch")
    import l2decay.torch as lt
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
    params = list(model.parameters())
    for make in (lambda ps: lt.AdamW(ps, lr=0.01, weight_decay=0.1, stats=True),
                 lambda ps: lt.SGD(ps, lr=0.1, momentum=0.9, reg=Cautious(0.5), stats=True),
                 lambda ps: lt.AdamW(ps, lr=0.01, stats=True, state_dtype="8bit", rounding="nearest")):
        opt = make(params)
        model(torch.ones(3, 8)).sum().backward()
        params[-1].grad = None                      # a param without a grad is not stepped
        old = [p.detach().clone() for p in params]
        opt.step()
        assert set(opt.stats) == set(params[:-1])
        for p, o in zip(params[:-1], old):
            s = opt.stats[p]
            assert list(s) == list(l2decay.STATS)
            assert s["w_sq"] == pytest.approx(float((p.detach().double() ** 2).sum()), rel=1e-5)
            assert s["dw_sq"] == pytest.approx(float(((p.detach().double() - o.double()) ** 2).sum()), rel=1e-5)
        opt.zero_grad()
    assert lt.AdamW(params).stats is None


@pytest.mark.parametrize("bad,exc,match", [
    (np.empty((2, 3), np.float32), TypeError, r"^stats must have dtype float64"),
    (np.empty((3, 3)), ValueError, r"^stats must be a writeable C-contiguous array of shape \(2, 3\)"),
    (np.empty((3, 2)).T, ValueError, r"^stats must be a writeable C-contiguous"),
    ([[0.0] * 3] * 2, TypeError, r"^stats must be a numpy.ndarray"),
])
def test_bad_stats_arrays_are_refused_and_nothing_changes(bad, exc, match):
    w, g = [np.ones(3), np.ones(4)], [np.ones(3), np.ones(4)]
    with pytest.raises(exc, match=match):
        l2decay.sgd_step(w, g, lr=0.1, reg=Decay(0.1), stats=bad)
    assert all(np.array_equal(x, np.ones_like(x)) for x in w)


def test_a_stats_array_that_shares_memory_with_a_param_is_refused():
    block = np.ones(12)
    w = [block[:6]]
    stats = block[3:6].reshape(1, 3)       # the param's last three elements
    with pytest.raises(ValueError, match=r"^stats shares memory with an array of the step"):
        l2decay.sgd_step(w, [np.ones(6)], lr=0.1, stats=stats)
    assert np.array_equal(block, np.ones(12))
    with pytest.raises(TypeError, match=r"^stats must be True or False"):
        SGD([np.ones(3)], stats="yes")
