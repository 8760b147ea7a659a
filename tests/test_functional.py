"""sgd_step and adam_step, the optimizers' steps as functions: against the numpy reference,
their state arrays, and bad input (a clear error, nothing modified)."""
import numpy as np
import pytest

import l2decay
import numpy_reference as ref
from l2decay import Decay, Decoupled, L2, adam_step, sgd_step

DTYPES = [np.float32, np.float64]
SHAPES = [[(7, 5), (5,), (1,), (0,), (300,)], [(2, 3, 4)], [(20_000,)]]
REGS = [None, L2(0.05), Decoupled(0.05), Decay(0.01), Decoupled(0.05, lr_max=0.2)]


def reg_tuple(reg):
    return ("none", 0.0) if reg is None else (reg.name, reg.coef)


def inputs(shapes, dtype, steps, seed=0):
    rng = np.random.default_rng(seed)
    w = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return w, grads


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: f"{len(s)}-tensors")
@pytest.mark.parametrize("reg", REGS, ids=repr)
@pytest.mark.parametrize("cfg", [dict(), dict(momentum=0.9, dampening=0.1), dict(momentum=0.9, nesterov=True, maximize=True),
                                 dict(momentum=0.8, momentum_form="keras", nesterov=True)], ids=str)
def test_sgd_step_matches_the_reference_to_the_bit(dtype, shapes, reg, cfg):
    w, grads = inputs(shapes, dtype, 4)
    expected = [x.copy() for x in w]
    r = ref.SGD(expected, lr=0.05, reg=reg_tuple(reg), **cfg)
    bufs = [None] * len(w)
    for g in grads:
        g0 = [x.copy() for x in g]
        sgd_step(w, g, bufs, lr=0.05, reg=reg, **cfg)
        r.step(g)
        for a, b in zip(g, g0):
            np.testing.assert_array_equal(a, b)      # grads are only read
    for k, (a, b) in enumerate(zip(w, expected)):
        np.testing.assert_array_equal(a, b, err_msg=f"tensor {k}")
    if cfg.get("momentum"):
        for k, (a, b) in enumerate(zip(bufs, r.bufs)):
            np.testing.assert_array_equal(a, b, err_msg=f"buffer {k}")
    else:
        assert bufs == [None] * len(w)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: f"{len(s)}-tensors")
@pytest.mark.parametrize("reg", REGS, ids=repr)
@pytest.mark.parametrize("cfg", [dict(), dict(amsgrad=True, maximize=True), dict(eps_form="keras", eps=1e-3),
                                 dict(eps_form="keras", amsgrad=True, betas=(0.5, 0.9))], ids=str)
def test_adam_step_matches_the_reference_to_the_bit(dtype, shapes, reg, cfg):
    w, grads = inputs(shapes, dtype, 4)
    expected = [x.copy() for x in w]
    r = ref.Adam(expected, lr=0.01, reg=reg_tuple(reg), **cfg)
    m, v = [np.zeros_like(x) for x in w], [np.zeros_like(x) for x in w]
    vmax = [None] * len(w) if cfg.get("amsgrad") else None
    for t, g in enumerate(grads, 1):
        adam_step(w, g, m, v, vmax, step=t, lr=0.01, reg=reg, **cfg)
        r.step(g)
    for k in range(len(w)):
        np.testing.assert_array_equal(w[k], expected[k], err_msg=f"tensor {k}")
        np.testing.assert_array_equal(m[k], r.m[k])
        np.testing.assert_array_equal(v[k], r.v[k])
        if vmax is not None:
            np.testing.assert_array_equal(vmax[k], r.vmax[k])


def test_adam_step_takes_a_step_per_tensor():
    # tensors at different steps (joined at different times): each gets its own bias correction
    w, grads = inputs([(5,), (3,)], np.float64, 1)
    m, v = [np.full(5, 0.1), np.full(3, 0.2)], [np.full(5, 0.3), np.full(3, 0.4)]
    w2, m2, v2 = [x.copy() for x in w], [x.copy() for x in m], [x.copy() for x in v]
    adam_step(w, grads[0], m, v, step=[7, 2], lr=0.01)
    adam_step(w2[:1], grads[0][:1], m2[:1], v2[:1], step=7, lr=0.01)
    adam_step(w2[1:], grads[0][1:], m2[1:], v2[1:], step=2, lr=0.01)
    for a, b in zip(w + m + v, w2 + m2 + v2):
        np.testing.assert_array_equal(a, b)


def test_a_born_momentum_buffer_starts_from_the_gradient():
    w = [np.zeros(3), np.zeros(2)]
    bufs = [np.full(3, 4.0), None]      # one buffer exists, one is born
    sgd_step(w, [np.ones(3), np.ones(2)], bufs, lr=0.1, momentum=0.5, dampening=0.5)
    np.testing.assert_array_equal(bufs[0], 0.5 * 4.0 + 0.5 * 1.0)
    np.testing.assert_array_equal(bufs[1], 1.0)   # torch: born as the raw gradient, undamped
    np.testing.assert_array_equal(w[1], -0.1)


# ---- bad input: a clear error naming the argument, nothing modified --------------------------
def _sgd_args():
    rng = np.random.default_rng(3)
    w = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    g = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    b = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    return w, g, b


@pytest.mark.parametrize("change,kw,exc,match", [
    (None, dict(lr=-1.0), ValueError, r"^lr must be in \[0"),
    (None, dict(lr=0.1, momentum=1.0), ValueError, r"^momentum must be in \[0, 1\)"),
    (None, dict(lr=0.1, momentum=0.9, nesterov=1), TypeError, r"^nesterov must be True or False"),
    (None, dict(lr=0.1, maximize="no"), TypeError, r"^maximize must be True or False"),
    (None, dict(lr=0.1, reg=0.1), TypeError, r"^reg must be None or a rule \(L2, Decoupled, Decay, Cautious or Corrected\)"),
    (None, dict(lr=0.1, momentum_form="sgd"), ValueError, r"^momentum_form must be one of"),
    (lambda w, g, b: g.pop(), dict(lr=0.1), ValueError, r"^grads has 1 entries but params has 2"),
    (lambda w, g, b: g.__setitem__(1, np.ones(3)), dict(lr=0.1), ValueError, r"^grads\[1\] has shape \(3,\) but params\[1\]"),
    (lambda w, g, b: b.__setitem__(1, np.ones(4, np.float32)), dict(lr=0.1, momentum=0.9), TypeError,
     r"^momentum_buffers\[1\] has dtype float32 but params\[1\] has dtype float64"),
    (lambda w, g, b: b.__setitem__(1, w[0].reshape(-1)[:4]), dict(lr=0.1, momentum=0.9), ValueError,
     r"(params\[0\] and momentum_buffers\[1\]|momentum_buffers\[1\] and params\[0\]) share memory"),
    (lambda w, g, b: w.__setitem__(1, w[0].reshape(-1)[2:6]), dict(lr=0.1), ValueError,
     r"(params\[0\] and params\[1\]|params\[1\] and params\[0\]) share memory"),
    (lambda w, g, b: g.__setitem__(0, w[0]), dict(lr=0.1), ValueError, r"(params\[0\] and grads\[0\]|grads\[0\] and params\[0\]) share memory"),
    (lambda w, g, b: b.pop(), dict(lr=0.1, momentum=0.9), ValueError, r"^momentum_buffers has 1 entries"),
])
def test_sgd_step_bad_input_changes_nothing(change, kw, exc, match):
    w, g, b = _sgd_args()
    if change is not None:
        change(w, g, b)
    before = [[x.copy() for x in xs] for xs in (w, g, b)]
    with pytest.raises(exc, match=match):
        sgd_step(w, g, b, **kw)
    for xs, ys in zip((w, g, b), before):
        for x, y in zip(xs, ys):
            np.testing.assert_array_equal(x, y)


def test_shared_read_only_gradients_are_fine():
    w = [np.ones(3), np.ones(3)]
    g = np.ones(3)
    sgd_step(w, [g, g], lr=0.1)      # the same gradient twice: read only, allowed
    np.testing.assert_array_equal(w[1], 0.9)


def test_adam_step_bad_input_changes_nothing():
    w, g, m = _sgd_args()
    v = [np.abs(x) for x in m]
    before = [x.copy() for x in w + m + v]
    for kw, exc, match in [
        (dict(step=0, lr=0.1), ValueError, r"^step must be an int in \[1, 2\*\*53\]"),
        (dict(step=2 ** 60, lr=0.1), ValueError, r"^step must be an int in \[1"),
        (dict(step=1.0, lr=0.1), TypeError, r"^step must be an int"),
        (dict(step=[1], lr=0.1), ValueError, r"^step has 1 entries but params has 2"),
        (dict(step=[1, 0], lr=0.1), ValueError, r"^step\[1\] must be an int in \[1"),
        (dict(step=1, lr=0.1, betas=(0.9, 1.0)), ValueError, r"^betas\[1\] must be in \[0, 1\)"),
        (dict(step=1, lr=0.1, eps=0.0), ValueError, r"^eps must be in \(0"),
        (dict(step=1, lr=0.1, amsgrad=1), TypeError, r"^amsgrad must be True or False"),
        (dict(step=1, lr=0.1, amsgrad=True), ValueError, r"^max_exp_avg_sqs is needed with amsgrad"),
        (dict(step=1, lr=0.1, eps_form="sklearn"), ValueError, r"^eps_form must be one of"),
    ]:
        with pytest.raises(exc, match=match):
            adam_step(w, g, m, v, **kw)
        for x, y in zip(w + m + v, before):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(TypeError, match=r"^max_exp_avg_sqs must be a list when an entry is None"):
        adam_step(w, g, m, v, (None, None), step=1, lr=0.1, amsgrad=True)
    for x, y in zip(w + m + v, before):
        np.testing.assert_array_equal(x, y)


class Shifty(list):
    """A list whose items change on every access: the entries must fetch each once."""

    def __getitem__(self, k):
        self.calls = getattr(self, "calls", 0) + 1
        return super().__getitem__(k) if self.calls == 1 else "not an array"


def test_list_subclasses_are_read_once():
    for step in (lambda w, g: l2decay.l2_step(w, g, lr=0.1, lam=0.1),
                 lambda w, g: l2decay.decay_step(w, g, lr=0.1, decay=0.1),
                 lambda w, g: sgd_step(w, g, lr=0.1)):
        w, g = np.ones(3), np.ones(3)
        step(Shifty([w]), Shifty([g]))
        assert w[0] < 1.0
