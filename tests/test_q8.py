"""8-bit optimizer state (state_dtype "8bit"): the codes and scales of l2decay.q8 and the steps
that keep them, against tests/numpy_reference.py's definition, on every front end; threads,
instruction sets, resume, conversions and bad input."""
import io

import numpy as np
import pytest

import l2decay
import numpy_reference as ref
from kernel_config import configured
from l2decay import Cautious, Corrected, Decay, Decoupled, L2, _kernels, q8

RULES = [(None, 0.0), ("l2", 1e-2), ("decoupled", 0.1), ("decay", 1e-3), ("cautious", 2.0), ("corrected", 4.0)]
# (Corrected's coef, the reference's s, is lam/lr_max, exact here: Corrected(0.125, lr_max=1/32))
_RULE = {None: None, "l2": L2, "decoupled": Decoupled, "decay": Decay, "cautious": Cautious,
         "corrected": lambda s: Corrected(s / 32, lr_max=1 / 32)}


def _reg(rule, s):
    return None if rule is None else _RULE[rule](s)


LEVELS = _kernels.simd_available()


def _grads(rng, n):
    # magnitudes over many binades, so that codes of every exponent and both signs occur
    return (rng.standard_normal(n) * np.exp(rng.standard_normal(n) * 3)).astype(np.float32)


def test_every_code_decodes_and_codes_back():
    codes = np.arange(256, dtype=np.uint8)
    for signed in (True, False):
        for scale in (1.0, 2.0 ** -40, 2.0 ** 30):
            scales = np.array([scale], np.float32)
            values = q8.decode(codes, scales, signed)
            assert np.array_equal(values, ref.q8_decode(codes, scales, signed))
            again, s = q8.encode(values, signed)
            assert np.array_equal(again, codes) and s[0] == scale


def _hard_values(rng, signed):
    x = _grads(rng, 5000) * np.float32(1e-3)
    # ties between two codes, values below the smallest code, zeros, one huge block
    ties = ((1 + (2 * rng.integers(0, 8, 300) + 1) / 16) * 2.0 ** rng.integers(-12, 0, 300)).astype(np.float32)
    x = np.concatenate([x, ties, np.float32(1.875) * np.ones(1, np.float32), np.float32(2.0 ** -20) * x[:100],
                        np.zeros(40, np.float32), np.float32(1e30) * x[:300]])
    return np.abs(x) if not signed else x


@pytest.mark.parametrize("signed", [True, False])
def test_encoding_follows_the_definition(signed):
    rng = np.random.default_rng(3)
    x = _hard_values(rng, signed)
    codes, scales = q8.encode(x, signed)
    rcodes, rscales = ref.q8_encode(x, signed)
    assert np.array_equal(codes, rcodes) and np.array_equal(scales, rscales)
    back = q8.decode(codes, scales, signed)
    # half a code's step (3 mantissa bits), or below the smallest code at most that code
    smallest = np.repeat(scales, q8.BLOCK)[:x.size].astype(np.float64) * 1.125 * 2.0 ** (-15 if signed else -31)
    err = np.abs(back.astype(np.float64) - x)
    assert np.all(err <= np.maximum(np.abs(x) / 16, smallest) * (1 + 1e-6))
    if not signed:
        assert not np.any((x > 0) & (codes == 0))


@pytest.mark.parametrize("level", LEVELS)
def test_the_compiled_code_is_the_definition_at_every_instruction_set(level):
    # a born momentum buffer is the gradient, coded; lr=0 leaves the weights as they are
    rng = np.random.default_rng(4)
    g = _hard_values(rng, True)
    w = np.zeros(g.size, np.float32)
    bufs, scales = [None], [None]
    with configured(level=level, threads=1):
        l2decay.sgd_step([w], [g], bufs, lr=0.0, momentum=0.9, momentum_scales=scales)
    codes, cs = ref.q8_encode(g, True)
    assert np.array_equal(bufs[0], codes) and np.array_equal(scales[0], cs)
    # decoded, times the momentum, and coded again
    rw, rb, rs = w.copy(), codes.copy(), cs.copy()
    with configured(level=level, threads=1):
        l2decay.sgd_step([w], [np.zeros_like(g)], bufs, lr=0.0, momentum=0.9, momentum_scales=scales)
    ref.sgd_8bit(rw, np.zeros_like(g), rb, rs, 0.0, 0.9, False, 0.0, False, None, 0.0)
    assert np.array_equal(bufs[0], rb) and np.array_equal(scales[0], rs) and not np.array_equal(rb, codes)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("rule,s", RULES)
@pytest.mark.parametrize("n", [1, 255, 256, 257, 3000, 40_000])
def test_adam_step_with_8bit_moments_matches_the_reference(rule, s, n, level):
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n).astype(np.float32)
    (m, sm), (v, sv) = q8.zeros(n), q8.zeros(n)
    rw, rm, rsm, rv, rsv = w.copy(), m.copy(), sm.copy(), v.copy(), sv.copy()
    for t in range(1, 13):
        g = _grads(rng, n)
        with configured(level=level):
            l2decay.adam_step([w], [g], [m], [v], step=t, lr=1e-2, reg=_reg(rule, s), maximize=t % 2 == 0,
                              exp_avg_scales=[sm], exp_avg_sq_scales=[sv])
        ref.adam_8bit(rw, g, rm, rsm, rv, rsv, t, 1e-2, 0.9, 0.999, 1e-8, rule, s, maximize=t % 2 == 0)
        assert np.array_equal(w, rw) and np.array_equal(m, rm) and np.array_equal(v, rv)
        assert np.array_equal(sm, rsm) and np.array_equal(sv, rsv)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_adam_step_with_8bit_moments_on_16bit_weights(dtype):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(np.float16)
    rng = np.random.default_rng(5)
    n = 1000
    w = rng.standard_normal(n).astype(dt)
    (m, sm), (v, sv) = q8.zeros(n), q8.zeros(n)
    rw, rm, rsm, rv, rsv = w.copy(), m.copy(), sm.copy(), v.copy(), sv.copy()
    for t in range(1, 8):
        g = _grads(rng, n).astype(dt)
        l2decay.adam_step([w], [g], [m], [v], step=t, lr=1e-2, reg=Decoupled(0.1), rounding="nearest",
                          exp_avg_scales=[sm], exp_avg_sq_scales=[sv])
        ref.adam_8bit(rw, g, rm, rsm, rv, rsv, t, 1e-2, 0.9, 0.999, 1e-8, "decoupled", 0.1)
        assert np.array_equal(w.view(np.uint16), rw.view(np.uint16)) and np.array_equal(m, rm)
        assert np.array_equal(v, rv) and np.array_equal(sm, rsm) and np.array_equal(sv, rsv)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("nesterov,dampening", [(False, 0.0), (True, 0.0), (False, 0.5)])
@pytest.mark.parametrize("rule,s", RULES)
def test_sgd_step_with_8bit_momentum_matches_the_reference(rule, s, nesterov, dampening, level):
    rng = np.random.default_rng(7)
    n = 2000
    w = rng.standard_normal(n).astype(np.float32)
    bufs, scales = [None], [None]
    rw, rb, rs = w.copy(), *q8.zeros(n)
    for t in range(1, 10):
        g = _grads(rng, n)
        with configured(level=level):
            l2decay.sgd_step([w], [g], bufs, lr=1e-2, momentum=0.9, dampening=dampening, nesterov=nesterov,
                             reg=_reg(rule, s), momentum_scales=scales)
        ref.sgd_8bit(rw, g, rb, rs, 1e-2, 0.9, t == 1, dampening, nesterov, rule, s)
        assert bufs[0].dtype == np.uint8 and np.array_equal(w, rw)
        assert np.array_equal(bufs[0], rb) and np.array_equal(scales[0], rs)


def _run_adam(n, dtype, rounding, steps=4):
    rng = np.random.default_rng(11)
    w = rng.standard_normal(n).astype(dtype)
    opt = l2decay.Adam([w], lr=1e-2, reg=Decoupled(0.1), state_dtype="8bit", rounding=rounding)
    for _ in range(steps):
        opt.step([np.clip(_grads(rng, n), -1e4, 1e4).astype(dtype)])
    st = opt.state[0]
    return [w.view(np.uint8).copy()] + [st[k].copy() for k in ("exp_avg", "exp_avg_scale", "exp_avg_sq",
                                                               "exp_avg_sq_scale")]


@pytest.mark.parametrize("case", ["float32", "bfloat16-stochastic", "float16-compensated"])
def test_8bit_steps_are_bit_identical_for_any_thread_count_and_instruction_set(case):
    name, _, rounding = case.partition("-")
    if name == "bfloat16":
        dtype = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    else:
        dtype = np.dtype(name)
    n = 300_001        # over the parallel threshold, cut into chunks, a partial last block
    level = _kernels.get_simd()
    try:
        runs = []
        for threads, simd in [(1, "baseline")] + [(2, lv) for lv in _kernels.simd_available()]:
            l2decay.set_num_threads(threads)
            _kernels.set_simd(simd)
            runs.append(_run_adam(n, dtype, rounding or None))
    finally:
        l2decay.set_num_threads(0)
        _kernels.set_simd(level)
    for other in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0], other))


def test_numpy_optimizers_resume_bit_identically_from_a_saved_state_dict(tmp_path):
    rng = np.random.default_rng(13)
    shapes = [(40, 30), (30,), (7, 3, 5)]
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[_grads(rng, int(np.prod(s))).reshape(s) for s in shapes] for _ in range(12)]
    for make in (lambda ws: l2decay.Adam(ws, lr=1e-2, reg=Decoupled(0.1), state_dtype="8bit"),
                 lambda ws: l2decay.SGD(ws, lr=1e-2, momentum=0.9, nesterov=True, state_dtype="8bit")):
        straight = [w.copy() for w in w0]
        opt = make(straight)
        for g in grads:
            opt.step(g)
        resumed = [w.copy() for w in w0]
        first = make(resumed)
        for g in grads[:5]:
            first.step(g)
        np.savez(tmp_path / "opt.npz", **first.state_dict())
        second = make(resumed)
        second.load_state_dict(dict(np.load(tmp_path / "opt.npz")))
        for g in grads[5:]:
            second.step(g)
        assert all(np.array_equal(a, b) for a, b in zip(straight, resumed))


def test_state_memory_is_at_most_2_1_bytes_per_element_for_both_moments():
    w = np.zeros(1 << 20, np.float32)
    opt = l2decay.Adam([w], state_dtype="8bit")
    st = opt.state[0]
    used = sum(st[k].nbytes for k in ("exp_avg", "exp_avg_scale", "exp_avg_sq", "exp_avg_sq_scale"))
    assert used / w.size <= 2.1 and used / w.size >= 2.0


def test_float32_state_converts_to_8bit_and_back():
    rng = np.random.default_rng(17)
    w = rng.standard_normal(5000).astype(np.float32)
    opt = l2decay.Adam([w], lr=1e-2)
    for _ in range(5):
        opt.step([_grads(rng, 5000)])
    m = opt.state[0]["exp_avg"].copy()
    q8.to_8bit(opt.state[0])
    st = opt.state[0]
    assert st["exp_avg"].dtype == np.uint8 and st["exp_avg_sq_scale"].dtype == np.float32
    assert np.array_equal(q8.decode(st["exp_avg"], st["exp_avg_scale"], True), q8.decode(*q8.encode(m, True), True))
    opt.step([_grads(rng, 5000)])          # the step continues on 8-bit state (the state decides)
    codes = (st["exp_avg"].copy(), st["exp_avg_scale"].copy())
    q8.to_float(st)
    assert st["exp_avg"].dtype == np.float32 and "exp_avg_scale" not in st
    assert np.array_equal(st["exp_avg"], q8.decode(*codes, True))


def test_bad_8bit_state_is_refused_naming_it_and_changing_nothing():
    w = np.ones(600, np.float32)
    g = np.ones(600, np.float32)
    (m, sm), (v, sv) = q8.zeros(600), q8.zeros(600)
    cases = [
        (dict(exp_avgs=[m.astype(np.float32)]), TypeError, r"exp_avgs\[0\] must be the uint8 codes of 8-bit state"),
        (dict(exp_avg_scales=[np.ones(2, np.float32)]), ValueError,
         r"exp_avg_scales\[0\] must be the float32 scales of 8-bit state, one per 256 elements .*\(3\)"),
        (dict(exp_avg_sq_scales=[np.ones(3)]), TypeError, r"exp_avg_sq_scales\[0\] must be the float32 scales"),
        (dict(exp_avg_sqs=[np.zeros(599, np.uint8)]), ValueError, r"exp_avg_sqs\[0\] must be the uint8 codes"),
    ]
    for change, error, match in cases:
        args = {**dict(exp_avgs=[m], exp_avg_sqs=[v], exp_avg_scales=[sm], exp_avg_sq_scales=[sv]), **change}
        with pytest.raises(error, match=match):
            l2decay.adam_step([w], [g], args.pop("exp_avgs"), args.pop("exp_avg_sqs"), step=1, lr=0.1, **args)
        assert np.all(w == 1) and not m.any() and not v.any() and np.all(sm == 1) and np.all(sv == 1)
    with pytest.raises(ValueError, match=r"exp_avgs\[0\] is 8-bit state .* params\[0\] is float64"):
        l2decay.adam_step([np.ones(3)], [np.ones(3)], [np.zeros(3, np.uint8)], [np.zeros(3, np.uint8)], step=1,
                          lr=0.1, exp_avg_scales=[np.ones(1, np.float32)], exp_avg_sq_scales=[np.ones(1, np.float32)])
    with pytest.raises(ValueError, match="state_dtype '8bit' has no amsgrad"):
        l2decay.Adam([w], state_dtype="8bit", amsgrad=True)
    with pytest.raises(ValueError, match=r"params\[0\] is float64: state_dtype '8bit' is for float32"):
        l2decay.Adam([np.ones(3)], state_dtype="8bit")


@pytest.mark.parametrize("change,match", [
    (lambda d: d.update({"state.0.exp_avg_scale": np.full(3, -1.6, np.float32)}),
     r"state.0.exp_avg: scale 0 is -1.6[0-9]*; each scale must be finite and positive"),
    (lambda d: d.update({"state.0.exp_avg_sq_scale": np.full(3, np.inf, np.float32)}), "scale 0 is inf"),
    (lambda d: d.update({"state.0.exp_avg_scale": np.zeros(3, np.float32)}), "scale 0 is 0.0"),
    (lambda d: d.update({"state.0.exp_avg": d["state.0.exp_avg"].astype(np.int8)}), "must be uint8 of shape"),
    (lambda d: d.update({"state.0.exp_avg_sq_scale": np.ones(2, np.float32)}), r"float32 of shape \(3,\)"),
    (lambda d: d.pop("state.0.exp_avg_sq_scale"), "all 8-bit .* or none of it"),
    (lambda d: d.pop("state.0.exp_avg"), "'state.0.exp_avg'"),
])
def test_bad_8bit_state_dicts_are_refused_changing_nothing(change, match):
    w = np.ones(600, np.float32)
    opt = l2decay.Adam([w], state_dtype="8bit")
    opt.step([np.ones(600, np.float32)])
    d = opt.state_dict()
    change(d)
    before = {k: v.copy() for k, v in opt.state[0].items() if isinstance(v, np.ndarray)}
    with pytest.raises((ValueError, TypeError), match=match):
        opt.load_state_dict(d)
    assert all(np.array_equal(opt.state[0][k], v) for k, v in before.items())


torch = pytest.importorskip("torch")
import l2decay.torch as lt  # noqa: E402


def _torch_model(seed=0, channels_last=False):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 3))
    return net.to(memory_format=torch.channels_last) if channels_last else net


def _train(net, opt, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    X, y = torch.randn(16, 3, 8, 8, generator=g), torch.randn(16, 3, generator=g)
    for _ in range(steps):
        opt.zero_grad()
        ((net(X) - y) ** 2).mean().backward()
        opt.step()


@pytest.mark.parametrize("name", ["AdamW", "SGD"])
def test_torch_8bit_state_equals_the_numpy_optimizers(name):
    net = _torch_model()
    kw = dict(lr=1e-2, weight_decay=0.1) if name == "AdamW" else dict(lr=1e-2, momentum=0.9)
    opt = getattr(lt, name)(net.parameters(), state_dtype="8bit", **kw)
    ref_net = _torch_model()
    ws = [p.detach().numpy().copy() for p in ref_net.parameters()]
    nkw = dict(lr=1e-2, reg=Decoupled(0.1)) if name == "AdamW" else dict(lr=1e-2, momentum=0.9)
    nopt = (l2decay.Adam if name == "AdamW" else l2decay.SGD)(ws, state_dtype="8bit", **nkw)
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(16, 3, 8, 8, generator=g), torch.randn(16, 3, generator=g)
    for _ in range(15):
        opt.zero_grad()
        ((net(X) - y) ** 2).mean().backward()
        opt.step()
        for p, w in zip(ref_net.parameters(), ws):
            p.data = torch.from_numpy(w)
        ref_net.zero_grad()
        ((ref_net(X) - y) ** 2).mean().backward()
        nopt.step([p.grad.numpy() for p in ref_net.parameters()])
    assert all(torch.equal(p.detach(), torch.from_numpy(w)) for p, w in zip(net.parameters(), ws))
    st = opt.state[next(net.parameters())]
    key = "exp_avg" if name == "AdamW" else "momentum_buffer"
    assert st[key].dtype == torch.uint8 and st[key + "_scale"].dtype == torch.float32


def test_torch_8bit_checkpoint_loads_weights_only_and_resumes_bit_identically():
    net, again = _torch_model(), _torch_model()
    opt = lt.AdamW(net.parameters(), lr=1e-2, state_dtype="8bit")
    _train(net, opt, 5)
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buf)
    _train(net, opt, 5, seed=2)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    again.load_state_dict(saved["model"])
    opt2 = lt.AdamW(again.parameters(), lr=1e-2, state_dtype="8bit")
    opt2.load_state_dict(saved["opt"])
    assert opt2.state[next(again.parameters())]["exp_avg"].dtype == torch.uint8
    _train(again, opt2, 5, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters()))


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled:UserWarning")   # (one process, on purpose)
def test_torch_8bit_state_saves_and_loads_through_distributed_checkpoints(tmp_path):
    dcp = pytest.importorskip("torch.distributed.checkpoint")
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    net, again = _torch_model(), _torch_model()
    opt = lt.AdamW(net.parameters(), lr=1e-2, state_dtype="8bit")
    _train(net, opt, 5)
    model_sd, optim_sd = get_state_dict(net, opt)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp_path / "dcp"))
    _train(net, opt, 5, seed=2)
    opt2 = lt.AdamW(again.parameters(), lr=1e-2, state_dtype="8bit")
    model_sd, optim_sd = get_state_dict(again, opt2)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=str(tmp_path / "dcp"))
    set_state_dict(again, opt2, model_state_dict=state["model"], optim_state_dict=state["optim"])
    st = opt2.state[next(again.parameters())]
    assert st["exp_avg"].dtype == st["exp_avg_sq"].dtype == torch.uint8 and st["exp_avg_scale"].dtype == torch.float32
    _train(again, opt2, 5, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters()))


def test_torch_channels_last_8bit_codes_follow_memory_order():
    net, flat = _torch_model(channels_last=True), _torch_model()
    opt = lt.AdamW(net.parameters(), lr=1e-2, state_dtype="8bit")
    _train(net, opt, 3)
    conv = net[0].weight
    st = opt.state[conv]
    assert st["exp_avg"].is_contiguous(memory_format=torch.channels_last)
    # the codes decode (in memory order, block by block) to the moments' values
    m = q8.to_float(dict(st))["exp_avg"]
    assert m.shape == conv.shape and m.is_contiguous(memory_format=torch.channels_last)
    assert torch.isfinite(m).all() and m.abs().sum() > 0
    del flat


def test_torch_8bit_refusals_name_the_param():
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    p.grad = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"params\[0\] is float64: state_dtype '8bit' is for float32"):
        lt.AdamW([p], state_dtype="8bit").step()
    q = torch.nn.Parameter(torch.zeros(3))
    q.grad = torch.ones(3)
    with pytest.raises(ValueError, match="state_dtype '8bit' has no amsgrad"):
        lt.Adam([q], state_dtype="8bit", amsgrad=True).step()
    assert torch.equal(q.detach(), torch.zeros(3))
    opt = lt.AdamW([q], state_dtype="8bit")
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["exp_avg_scale"] = torch.full((1,), float("nan"))
    with pytest.raises(ValueError, match=r"state of param 0: exp_avg: scale 0 is nan"):
        lt.AdamW([q], state_dtype="8bit").load_state_dict(sd)
