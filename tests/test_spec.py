"""One spec of every argument: each boundary gets the same verdict, in words that name the
argument, through every public entry (functional, numpy optimizers, torch optimizers, state
dicts), and no public input reaches anything but a TypeError/ValueError with nothing modified."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from l2decay import L2, Adam, Decay, Decoupled, SGD, adam_step, sgd_step
from l2decay._validate import SPEC, check

torch = pytest.importorskip("torch")
import l2decay.torch as lt  # noqa: E402

NAN, INF = math.nan, math.inf
# (key, value, accepted): every side of each rule in the spec
BOUNDARIES = {
    "lr": [(0.0, True), (1e300, True), (-1e-300, False), (NAN, False), (INF, False), ("0.1", False),
           (True, False), (np.float32(0.5), True), (None, False)],
    "momentum": [(0.0, True), (0.999, True), (1.0, False), (-0.1, False), (NAN, False)],
    "dampening": [(0.0, True), (1.0, True), (1.5, False), (-1.0, False)],
    "nesterov": [(False, True), (np.bool_(False), True), (1, False), ("no", False)],
    "maximize": [(True, True), (0, False), (None, False)],
    "eps": [(1e-300, True), (0.0, False), (-1e-8, False), (INF, False)],
    "amsgrad": [(True, True), (1, False)],
    "betas": [((0.0, 0.999), True), ([0.5, 0.5], True), ((1.0, 0.9), False), ((0.9, -0.1), False), ((0.9,), False),
              (0.9, False), ((0.9, NAN), False)],
    "reg": [(None, True), (L2(0.1), True), (Decoupled(0.1), True), (Decay(0.1), True), (0.1, False), ("l2", False)],
    "rounding": [(None, True), ("nearest", True), ("up", False), (1, False)],
    "seed": [(0, True), (2 ** 63 - 1, True), (-1, False), (2 ** 63, False), (1.5, False), (np.int64(3), True)],
    "state_dtype": [(None, True), ("param", True), ("float16", False), (np.float16, False)],
}
SGD_KEYS = ("lr", "momentum", "dampening", "nesterov", "maximize", "reg", "rounding", "seed", "state_dtype")
ADAM_KEYS = ("lr", "eps", "amsgrad", "maximize", "betas", "reg", "rounding", "seed", "state_dtype")
FUNCTIONAL = ("lr", "momentum", "dampening", "nesterov", "maximize", "eps", "amsgrad", "betas", "reg", "rounding",
              "seed")


def _verdict(call):
    """(None, None) if call() passes, else the exception's type and message."""
    try:
        call()
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)
    return None, None


def _entries(adam, key, value):
    """Every public entry that takes `key`, as (label, call, the name its error must start with)."""
    w, g = np.ones(4), np.full(4, 0.5)
    base = {} if key == "lr" else {"lr": 0.1}
    out = []
    if key in FUNCTIONAL and key != "state_dtype":
        if adam:
            call = lambda: adam_step([w.copy()], [g], [np.zeros(4)], [np.zeros(4)], [None], step=1,   # noqa: E731
                                     **{**base, key: value})
        else:
            call = lambda: sgd_step([w.copy()], [g], [None], **{**base, key: value})   # noqa: E731
        out.append(("functional", call, key))
    cls, tcls = (Adam, lt.Adam) if adam else (SGD, lt.SGD)
    out.append(("numpy init", lambda: cls([w.copy()], **{**base, key: value}), key))

    def numpy_group():
        opt = cls([w.copy()], lr=0.1)
        opt.param_groups[0][key] = value
        opt.step([g])
    out.append(("numpy group", numpy_group, f"param_groups[0].{key}"))

    def numpy_state_dict():
        opt = cls([w.copy()], lr=0.1)
        d = opt.state_dict()
        d[f"group.0.{key}"] = value
        opt.load_state_dict(d)
        opt.step([g])
    if key not in ("reg", "rounding", "state_dtype"):   # (a state dict holds these as names)
        out.append(("numpy state dict", numpy_state_dict, f"state dict group 0: {key}"))
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    p.grad = torch.full((4,), 0.5, dtype=torch.float64)
    out.append(("torch init", lambda: tcls([p], **{**base, key: value}), key))

    def torch_group():
        opt = tcls([p], lr=0.1)
        opt.param_groups[0][key] = value
        opt.step()
    out.append(("torch group", torch_group, f"param_groups[0].{key}"))

    def torch_state_dict():
        opt = tcls([p], lr=0.1)
        d = opt.state_dict()
        d["param_groups"][0][key] = value
        opt.load_state_dict(d)
        opt.step()
    out.append(("torch state dict", torch_state_dict, f"param_groups[0].{key}"))
    return out


@pytest.mark.parametrize("adam", [False, True], ids=["sgd", "adam"])
def test_every_boundary_of_the_spec_has_one_verdict_through_every_entry(adam):
    for key in ADAM_KEYS if adam else SGD_KEYS:
        for value, accepted in BOUNDARIES[key]:
            kinds = set()
            for label, call, name in _entries(adam, key, value):
                exc, message = _verdict(call)
                where = f"{key}={value!r} through {label}"
                if accepted:
                    assert exc is None, f"{where}: refused: {message}"
                    continue
                assert exc is not None, f"{where}: accepted"
                if label == "numpy state dict":   # (load_state_dict's contract: a ValueError, the cause in it)
                    assert exc is ValueError and name in message, f"{where}: {message!r}"
                    continue
                kinds.add(exc)
                assert message.startswith(name), f"{where}: {message!r}"   # (betas: betas[1] too)
            assert len(kinds) <= 1, f"{key}={value!r}: {kinds}"


@pytest.mark.parametrize("key", sorted(BOUNDARIES))
def test_the_spec_itself_agrees_with_the_boundaries(key):
    for value, accepted in BOUNDARIES[key]:
        if key == "betas":
            continue
        spec_key = key
        exc, message = _verdict(lambda: check(spec_key, value))
        assert (exc is None) == accepted, (key, value, message)
        if exc is not None:
            assert message.startswith(key), message
    assert set(BOUNDARIES) - {"betas"} <= set(SPEC)


# -- no public input reaches anything but a worded TypeError/ValueError ------------------------
def _array_like():
    dtypes = st.sampled_from([np.float64, np.float32, np.float16, np.int32, ">f8"])
    shapes = st.sampled_from([(3,), (4,), (2, 2), ()])
    return st.builds(lambda d, s, c: (np.ones(s, d)[::2] if c and s else np.ones(s, d)), dtypes, shapes, st.booleans())


_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2 ** 70, 2 ** 70), st.none(),
                    st.booleans(), st.text(max_size=3), st.sampled_from(["nearest", "stochastic", "compensated",
                                                                         "torch", "keras", "param"]),
                    st.builds(np.float32, st.floats(-2, 2)), st.builds(np.int64, st.integers(-3, 3)),
                    st.sampled_from([L2(0.1), Decoupled(0.5), Decay(0.5)]))


@settings(max_examples=300, deadline=None)
@given(w=_array_like(), g=_array_like(), state=st.lists(st.one_of(_array_like(), st.none()), min_size=3, max_size=3),
       key=st.sampled_from(["lr", "momentum", "dampening", "nesterov", "maximize", "rounding", "seed", "step",
                            "betas", "eps", "amsgrad", "eps_form", "momentum_form"]),
       value=_values, adam=st.booleans(), share=st.sampled_from([None, "w", "g"]))
def test_no_input_reaches_anything_but_a_worded_error(w, g, state, key, value, adam, share):
    if share == "w":
        state[0] = w
    elif share == "g":
        state[0] = g
    kwargs = {"lr": 0.1, key: value}
    before = [a.copy() for a in [w, g] + [s for s in state if s is not None]]
    try:
        if adam:
            kwargs.setdefault("step", 1)
            if key in ("momentum", "dampening", "nesterov", "momentum_form"):
                kwargs.pop(key)
            adam_step([w], [g], [state[0]], [state[1]], [state[2]], **kwargs)
        else:
            for k in ("betas", "eps", "amsgrad", "eps_form"):
                kwargs.pop(k, None)
            sgd_step([w], [g], [state[0]], **kwargs)
    except (TypeError, ValueError) as exc:
        assert "internal error" not in str(exc)
        after = [a for a in [w, g] + [s for s in state if s is not None]]
        for a, b in zip(after, before):
            np.testing.assert_array_equal(a, b)


def test_numpy_ints_and_buffers_that_are_other_arrays_are_worded():
    w, g = np.ones(3), np.ones(3)
    adam_step([w], [g], [np.zeros(3)], [np.zeros(3)], step=np.int64(3), lr=0.1)
    sgd_step([w], [g], step=np.int64(3), lr=0.1)
    for comp in (w, g):
        with pytest.raises(ValueError, match=r"share memory"):
            sgd_step([w], [g], lr=0.1, rounding="compensated", compensations=[comp])
    other = np.ones(3)
    with pytest.raises(ValueError, match=r"^compensations\[0\] and compensations\[1\] share memory|share memory"):
        c = np.zeros(3)
        sgd_step([w, other], [g, g], lr=0.1, rounding="compensated", compensations=[c, c])


def test_torch_state_dicts_are_checked_as_numpy_ones():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    opt = lt.Adam([p], lr=0.1)
    opt.step()
    good = opt.state_dict()
    for key, value in [("exp_avg", torch.full((3,), math.nan)), ("exp_avg_sq", torch.full((3,), math.inf))]:
        d = opt.state_dict()
        d["state"][0][key] = value
        with pytest.raises(ValueError, match=rf"state dict: state of param 0: {key} holds non-finite values"):
            lt.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1).load_state_dict(d)
        with pytest.raises(ValueError, match=rf"state dict state.0.{key} holds non-finite values"):
            a = Adam([np.ones(3, np.float32)], lr=0.1)
            a.step([np.ones(3, np.float32)])
            sd = a.state_dict()
            sd[f"state.0.{key}"] = value.numpy()
            Adam([np.ones(3, np.float32)], lr=0.1).load_state_dict(sd)
    for key in ("exp_avg", "step"):
        d = opt.state_dict()
        del d["state"][0][key]
        q = torch.nn.Parameter(torch.ones(3))
        q.grad = torch.ones(3)
        fresh = lt.Adam([q], lr=0.1)
        with pytest.raises(ValueError, match=rf"state dict: state of param 0 has no {key!r}"):
            fresh.load_state_dict(d)
        fresh.step()       # (nothing was loaded: it starts afresh)
    lt.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1).load_state_dict(good)


def test_torch_group_errors_name_the_group_and_key():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    opt = lt.AdamW([p], lr=0.1)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))]})
    opt.param_groups[1]["weight_decay"] = math.nan
    with pytest.raises(ValueError, match=r"^param_groups\[1\]\.weight_decay must be finite"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(3))


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(["lr", "momentum", "dampening", "nesterov", "maximize", "rounding", "seed", "betas",
                            "eps", "amsgrad", "reg", "state_dtype", "weight_decay", "momentum_form", "eps_form"]),
       value=_values, adam=st.booleans(), front=st.sampled_from(["numpy", "torch"]), state=st.booleans())
def test_no_group_value_or_state_reaches_anything_but_a_worded_error(key, value, adam, front, state):
    if front == "numpy":
        w = np.ones(3)
        opt = (Adam if adam else SGD)([w], lr=0.1, **({} if adam else {"momentum": 0.5}))
        opt.step([np.ones(3)])
        before = w.copy()
        step = lambda: opt.step([np.ones(3)])   # noqa: E731
        where = opt.state[0]
    else:
        p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
        p.grad = torch.ones(3, dtype=torch.float64)
        opt = (lt.AdamW if adam else lt.SGD)([p], lr=0.1, **({} if adam else {"momentum": 0.5}))
        opt.step()
        before = p.detach().numpy().copy()
        step = opt.step
        w = p.detach().numpy()
        where = opt.state[p]
    if state:    # the value where the step keeps its step count or a state array instead
        where["step" if adam else "momentum_buffer"] = value
    elif key in opt.param_groups[0] or front == "numpy":
        opt.param_groups[0][key] = value
    try:
        step()
    except (TypeError, ValueError) as exc:
        assert "internal error" not in str(exc)
        np.testing.assert_array_equal(w, before)
