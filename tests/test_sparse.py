"""Sparse rows (l2decay.sparse, l2decay.torch.SparseAdamW): the lazy decay against the dense
algorithm, reads and checkpoints of the true weights, save/restore, refusals, bad input."""
import io

import numpy as np
import pytest

import numpy_reference as ref
from kernel_config import configured
from l2decay import L2, Decay, Decoupled, SparseAdam, SparseSGD

V, D = 300, 8


def batches(steps, seed=0, k_max=40, dtype=np.float64):
    """Random sparse gradients: row indices skewed toward low rows (high rows are touched
    rarely, so they skip many steps), duplicates included, and their gradient rows."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        k = int(rng.integers(0, k_max + 1))
        rows = (V * rng.random(k) ** 3).astype(np.int64)
        out.append((rows, rng.standard_normal((k, D)).astype(dtype)))
    return out


def table(dtype=np.float64, seed=1):
    return np.random.default_rng(seed).standard_normal((V, D)).astype(dtype)


def rel(a, b):
    """Largest distance over the largest weight."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def schedule(t):
    return 0.1 * (1 + 0.5 * np.cos(t / 37))       # an lr that changes at every step


SGD_RULES = [(None, ("none", 0.0)), (Decoupled(0.05), ("decoupled", 0.05)), (Decay(0.01), ("decay", 0.01)),
             (L2(0.05), ("l2", 0.05)), (Decoupled(0.02, lr_max=0.2), ("decoupled", 0.1))]


@pytest.mark.parametrize("reg, rule", SGD_RULES, ids=repr)
@pytest.mark.parametrize("lr_schedule", [False, True])
def test_sgd_is_the_dense_algorithm_within_1e_12(reg, rule, lr_schedule):
    w0 = table()
    opt = SparseSGD(w0.copy(), lr=0.1, reg=reg)
    dense = w0.copy()
    slow = ref.SGD([dense], lr=0.1, reg=rule)
    worst = 0.0
    for t, (rows, grads) in enumerate(batches(1000)):
        if lr_schedule:
            opt.param_groups[0]["lr"] = slow.lr = schedule(t)
        opt.step(rows, grads)
        slow.step([ref.dense_grad(dense.shape, dense.dtype, rows, grads)])
        if t % 97 == 0:     # reads of a few rows on the way, true weights already
            some = np.arange(0, V, 13)
            worst = max(worst, rel(opt.rows(some), dense[some]))
    worst = max(worst, rel(opt.flush(), dense))
    assert worst < 1e-12


ADAM_RULES = [(None, ("none", 0.0)), (Decoupled(0.1), ("decoupled", 0.1)), (Decay(1e-3), ("decay", 1e-3))]


@pytest.mark.parametrize("reg, rule", ADAM_RULES, ids=repr)
@pytest.mark.parametrize("maximize, lr_schedule", [(False, False), (True, True)])
def test_adam_is_sparse_adam_plus_dense_decay_within_1e_12(reg, rule, maximize, lr_schedule):
    w0 = table()
    opt = SparseAdam(w0.copy(), lr=0.01, betas=(0.8, 0.99), eps=1e-6, reg=reg, maximize=maximize)
    dense = w0.copy()
    slow = ref.SparseAdam(dense, lr=0.01, betas=(0.8, 0.99), eps=1e-6, reg=rule, maximize=maximize)
    for t, (rows, grads) in enumerate(batches(1000, seed=2)):
        if lr_schedule:
            opt.param_groups[0]["lr"] = slow.lr = schedule(t) / 10
        opt.step(rows, grads)
        slow.step(rows, grads)
    assert rel(opt.flush(), dense) < 1e-12
    assert rel(opt.state["exp_avg"], slow.m) < 1e-12 and rel(opt.state["exp_avg_sq"], slow.v) < 1e-12
    assert opt.state["step"] == slow.t == 1000


@pytest.mark.parametrize("cls", [SparseSGD, SparseAdam])
def test_rows_given_many_times_are_summed_as_the_dense_algorithm(cls):
    # far more rows than the table has (each given ~10 times a step), and one row given 500
    # times: the coalescing's hash table, its probes and the summing at scale
    rng = np.random.default_rng(11)
    w0 = table()
    opt = cls(w0.copy(), lr=0.01, reg=Decoupled(0.1))
    dense = w0.copy()
    slow = (ref.SparseAdam(dense, lr=0.01, reg=("decoupled", 0.1)) if cls is SparseAdam
            else ref.SGD([dense], lr=0.01, reg=("decoupled", 0.1)))
    for t in range(60):
        rows = np.full(500, 7) if t % 3 == 2 else rng.integers(0, V, 3_000)
        grads = rng.standard_normal((len(rows), D))
        opt.step(rows, grads)
        if cls is SparseAdam:
            slow.step(rows, grads)
        else:
            slow.step([ref.dense_grad(dense.shape, dense.dtype, rows, grads)])
    assert rel(opt.flush(), dense) < 1e-12


def test_a_step_writes_only_the_rows_it_is_given():
    opt = SparseSGD(table(), lr=0.1, reg=Decoupled(0.5))
    for rows, grads in batches(5):
        opt.step(rows, grads)
    before = opt.table.copy()
    rows = np.array([3, 7, 3])
    opt.step(rows, np.ones((3, D)))
    changed = np.flatnonzero(np.any(opt.table != before, axis=1))
    assert set(changed) <= {3, 7}
    assert opt.scale < 1.0 and np.all(opt.rows(np.array([299])) != before[299])   # decayed when read


def test_the_scale_folds_before_it_underflows_and_stays_exact():
    # Decay(0.5) halves every weight per step: the scale passes 1e-200 every ~660 steps
    opt = SparseSGD(table(), lr=0.1, reg=Decay(0.5))
    dense = table()
    slow = ref.SGD([dense], lr=0.1, reg=("decay", 0.5))
    folds, last = 0, 1.0
    for rows, grads in batches(2000, seed=3):
        opt.step(rows, grads)
        slow.step([ref.dense_grad(dense.shape, dense.dtype, rows, grads)])
        folds += opt.scale > last
        last = opt.scale
        assert 1e-200 * 2 ** -53 < opt.scale <= 1.0
    assert folds >= 2
    assert rel(opt.flush(), dense) < 1e-12


@pytest.mark.parametrize("cls, reg", [(SparseAdam, Decoupled(0.1)), (SparseSGD, Decay(0.01))], ids=["adam", "sgd"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_bits_are_the_same_on_any_thread_count_and_simd_level(cls, reg, dtype):
    from l2decay import _kernels

    results = []
    for level in _kernels.simd_available():
        for threshold, threads in ((1 << 62, 1), (0, 2), (0, 3)):
            # threshold 0: the rows of every step split over threads
            with configured(level=level, threads=threads, threshold=threshold):
                opt = cls(table(dtype), lr=0.01, reg=reg)
                for rows, grads in batches(200, seed=9, dtype=dtype):
                    opt.step(rows, grads)
                results.append(opt.flush().copy())
    assert len(results) >= 3
    assert all(np.array_equal(results[0], r) for r in results[1:])


def test_float32_and_int32_indices():
    opt64 = SparseAdam(table(np.float32), lr=0.01, reg=Decoupled(0.1))
    opt32 = SparseAdam(table(np.float32), lr=0.01, reg=Decoupled(0.1))
    dense = table(np.float32)
    slow = ref.SparseAdam(dense, lr=0.01, reg=("decoupled", 0.1))
    for rows, grads in batches(300, seed=4, dtype=np.float32):
        opt64.step(rows, grads)
        opt32.step(rows.astype(np.int32), grads)
        slow.step(rows, grads)
    assert np.array_equal(opt64.flush(), opt32.flush())
    assert rel(opt64.table, dense) < 1e-5


@pytest.mark.parametrize("cls, reg", [(SparseSGD, Decay(0.01)), (SparseAdam, Decoupled(0.1))])
def test_save_restore_continues_bit_identically_and_holds_true_weights(cls, reg, tmp_path):
    data = batches(600, seed=5)
    a = cls(table(), lr=0.05, reg=reg)
    dense = table()
    if cls is SparseSGD:
        slow = ref.SGD([dense], lr=0.05, reg=("decay", 0.01))
        slow_step = lambda rows, grads: slow.step([ref.dense_grad(dense.shape, dense.dtype, rows, grads)])  # noqa: E731
    else:
        slow_step = ref.SparseAdam(dense, lr=0.05, reg=("decoupled", 0.1)).step
    for rows, grads in data[:300]:
        a.step(rows, grads)
        slow_step(rows, grads)
    np.savez(tmp_path / "ckpt.npz", **a.state_dict())
    assert rel(np.load(tmp_path / "ckpt.npz")["table"], dense) < 1e-12    # the true weights, not v
    b = cls(np.zeros((V, D)), lr=0.5, reg=None)     # hyperparameters come from the checkpoint
    b.load_state_dict(np.load(tmp_path / "ckpt.npz"))
    assert b.param_groups[0] == a.param_groups[0]
    for rows, grads in data[300:]:
        a.step(rows, grads)
        b.step(rows, grads)
    assert np.array_equal(a.flush(), b.flush())
    for name, value in a.state.items():
        assert np.array_equal(value, b.state[name]), name


def test_load_state_dict_refuses_a_checkpoint_of_another_table_and_changes_nothing():
    a = SparseAdam(table(), reg=Decoupled(0.1))
    d = a.state_dict()
    b = SparseAdam(np.zeros((V + 1, D)))
    with pytest.raises(ValueError, match=r"state dict table has shape \(300, 8\)"):
        b.load_state_dict(d)
    assert not b.table.any() and b.state["step"] == 0
    with pytest.raises(ValueError, match="state dict is for SparseAdam, not SparseSGD"):
        SparseSGD(table()).load_state_dict(d)
    with pytest.raises(ValueError, match="missing 'exp_avg'"):
        SparseAdam(table()).load_state_dict({k: v for k, v in d.items() if k != "exp_avg"})


# ---------------------------------------------------------------------- refusals, bad input
def test_rules_that_cannot_be_lazy_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="L2 cannot be lazy under Adam: lam\\*w joins the gradient of every row"):
        SparseAdam(table(), reg=L2(1e-3))
    with pytest.raises(TypeError, match="momentum cannot be lazy"):
        SparseSGD(table(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="lr \\* Decoupled strength must be < 1"):
        SparseSGD(table(), lr=2.0, reg=Decoupled(0.5))


def trained(cls):
    opt = cls(table(), lr=0.05, reg=Decoupled(0.1))
    for rows, grads in batches(20, seed=6):
        opt.step(rows, grads)
    return opt


def snapshot(opt):
    return (opt.table.copy(), opt.row_scale.copy(), opt.scale,
            {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in opt.state.items()})


def assert_unchanged(opt, snap):
    t, rs, scale, state = snap
    assert np.array_equal(opt.table, t) and np.array_equal(opt.row_scale, rs) and opt.scale == scale
    for k, v in state.items():
        assert np.array_equal(opt.state[k], v), k


k = 5
GOOD_ROWS = np.array([1, 2, 3, 2, 299])
BAD = [
    ("row out of range", np.array([1, 2, 3, 2, V]), np.ones((k, D)), ValueError,
     r"rows\[4\] is 300, but the table has 300 rows: each index must be in \[0, 300\)"),
    ("negative row", np.array([1, -1, 3, 2, 0]), np.ones((k, D)), ValueError,
     r"rows\[1\] is -1, .*negative indices do not count from the end"),
    ("float indices", GOOD_ROWS.astype(np.float64), np.ones((k, D)), TypeError,
     "rows must have dtype int64 or int32 .*, got float64"),
    ("uint64 indices", GOOD_ROWS.astype(np.uint64), np.ones((k, D)), TypeError,
     "rows must have dtype int64 or int32 .*, got uint64"),
    ("int16 indices", GOOD_ROWS.astype(np.int16), np.ones((k, D)), TypeError, "rows must have dtype int64 or int32"),
    ("list of indices", [1, 2, 3, 2, 0], np.ones((k, D)), TypeError, "rows must be a numpy.ndarray"),
    ("2-D indices", GOOD_ROWS.reshape(1, k), np.ones((k, D)), ValueError, "rows must be 1-D"),
    ("too few gradient rows", GOOD_ROWS, np.ones((k - 1, D)), ValueError,
     r"grad_rows has shape \(4, 8\) but rows has 5 indices"),
    ("gradient too wide", GOOD_ROWS, np.ones((k, D + 1)), ValueError, "grad_rows has 9 columns but table has 8"),
    ("1-D gradient", GOOD_ROWS, np.ones(k * D), ValueError, r"grad_rows has shape \(40,\)"),
    ("float32 gradient", GOOD_ROWS, np.ones((k, D), np.float32), TypeError,
     "grad_rows has dtype float32 but table has dtype float64"),
    ("non-finite lr", GOOD_ROWS, np.ones((k, D)), ValueError, "lr must be finite"),
]


@pytest.mark.parametrize("cls", [SparseSGD, SparseAdam])
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_names_the_argument_and_modifies_nothing(cls, case):
    label, rows, grads, exc, message = case
    opt = trained(cls)
    snap = snapshot(opt)
    if label == "non-finite lr":
        opt.param_groups[0]["lr"] = float("nan")
    with pytest.raises(exc, match=message):
        opt.step(rows, grads)
    assert_unchanged(opt, snap)
    if label != "non-finite lr" and not label.startswith(("too few", "gradient too", "1-D grad", "float32 grad")):
        with pytest.raises(exc, match=message):     # reads check their rows the same way
            opt.rows(rows)
        assert_unchanged(opt, snap)


def test_rule_changed_to_one_that_cannot_be_lazy_modifies_nothing():
    opt = trained(SparseAdam)
    snap = snapshot(opt)
    opt.param_groups[0]["reg"] = L2(1e-3)
    with pytest.raises(ValueError, match="L2 cannot be lazy under Adam"):
        opt.step(GOOD_ROWS, np.ones((k, D)))
    assert_unchanged(opt, snap)


@pytest.mark.parametrize("bad, exc, message", [
    (np.zeros(V), ValueError, r"table must be 2-D \(rows x columns\), got shape \(300,\)"),
    (np.zeros((2, 3, 4)), ValueError, "table must be 2-D"),
    (np.zeros((V, D), np.int64), TypeError, "table must have dtype float32 or float64"),
    (np.zeros((D, V)).T, ValueError, "table must be C-contiguous"),
    ([[0.0] * D] * 3, TypeError, "table must be a numpy.ndarray"),
])
def test_bad_table_is_refused(bad, exc, message):
    with pytest.raises(exc, match=message):
        SparseAdam(bad)


# ---------------------------------------------------------------------------------- torch
def embedding_run(steps, lr, wd, seed, emb, opt, reference=False, change=None):
    """Train `emb` on random sparse batches with a loss that depends on the weights read:
    sum((emb(idx) - target)**2); `reference`: AdamW's decay as a dense mul_ before the step.
    change(t, group): hyperparameters changed before step t, returning the (lr, wd) it sets."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for t in range(steps):
        idx = (V * torch.rand(4, 6, generator=gen, dtype=torch.float64) ** 3).long()
        target = torch.randn(4, 6, D, generator=gen, dtype=torch.float64)
        opt.zero_grad()
        ((emb(idx) - target) ** 2).sum().backward()
        if change is not None:
            lr, wd = change(t, opt.param_groups[0])
        if reference:
            with torch.no_grad():
                emb.weight.mul_(1 - lr * wd)
        opt.step()


def embeddings(n=2):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    first = torch.nn.Embedding(V, D, sparse=True, dtype=torch.float64)
    out = [first]
    for _ in range(n - 1):
        e = torch.nn.Embedding(V, D, sparse=True, dtype=torch.float64)
        e.load_state_dict(first.state_dict())
        out.append(e)
    return out


def test_torch_sparse_adamw_is_torch_sparse_adam_plus_dense_decay_within_1e_12():
    torch = pytest.importorskip("torch")
    from l2decay.torch import SparseAdamW

    mine, theirs = embeddings()
    opt = SparseAdamW(mine.parameters(), lr=0.01, weight_decay=0.1).attach(mine)
    ref_opt = torch.optim.SparseAdam(theirs.parameters(), lr=0.01)
    embedding_run(1000, 0.01, 0.1, 7, mine, opt)
    embedding_run(1000, 0.01, 0.1, 7, theirs, ref_opt, reference=True)
    weight = mine.state_dict()["weight"]        # the module's state dict flushes: true weights
    assert rel(weight.numpy(), theirs.weight.detach().numpy()) < 1e-12
    a, b = opt.state[mine.weight], ref_opt.state[theirs.weight]
    assert a["step"] == b["step"] == 1000
    assert rel(a["exp_avg"].numpy(), b["exp_avg"].numpy()) < 1e-12


def test_torch_sparse_adamw_reads_changed_hyperparameters_at_every_step():
    # a new lr at every step (a scheduler's), weight_decay changed, betas a list changed in place:
    # each step uses the group's values of that step
    torch = pytest.importorskip("torch")
    from l2decay.torch import SparseAdamW

    def change(t, group):
        group["lr"] = 0.01 * (1 + 0.5 * np.cos(t / 7))
        if t == 100:
            group["weight_decay"] = 0.3
        if t == 200:
            group["betas"][0] = 0.5
        return group["lr"], group.get("weight_decay", 0.1 if t < 100 else 0.3)

    mine, theirs = embeddings()
    opt = SparseAdamW(mine.parameters(), lr=0.01, betas=[0.9, 0.999], weight_decay=0.1).attach(mine)
    ref_opt = torch.optim.SparseAdam(theirs.parameters(), lr=0.01, betas=[0.9, 0.999])
    embedding_run(300, 0.01, 0.1, 3, mine, opt, change=change)
    embedding_run(300, 0.01, 0.1, 3, theirs, ref_opt, reference=True, change=change)
    assert rel(mine.state_dict()["weight"].numpy(), theirs.weight.detach().numpy()) < 1e-12
    assert rel(opt.state[mine.weight]["exp_avg"].numpy(), ref_opt.state[theirs.weight]["exp_avg"].numpy()) < 1e-12


def test_torch_checkpoint_resumes_bit_identically_and_loads_into_sparse_adam():
    torch = pytest.importorskip("torch")
    from l2decay.torch import SparseAdamW

    a_emb, b_emb = embeddings()
    a = SparseAdamW(a_emb.parameters(), lr=0.01, weight_decay=0.1).attach(a_emb)
    embedding_run(200, 0.01, 0.1, 8, a_emb, a)
    buf = io.BytesIO()
    torch.save({"model": a_emb.state_dict(), "opt": a.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)
    b = SparseAdamW(b_emb.parameters(), lr=0.01, weight_decay=0.1).attach(b_emb)
    b_emb.load_state_dict(ckpt["model"])
    b.load_state_dict(ckpt["opt"])
    embedding_run(200, 0.01, 0.1, 9, a_emb, a)
    embedding_run(200, 0.01, 0.1, 9, b_emb, b)
    a.flush()
    b.flush()
    assert torch.equal(a_emb.weight, b_emb.weight)
    torch.optim.SparseAdam(b_emb.parameters()).load_state_dict(ckpt["opt"])   # torch's format


def test_torch_refuses_a_lazy_param_no_module_reads_and_dense_gradients():
    torch = pytest.importorskip("torch")
    from l2decay.torch import SparseAdamW

    (emb,) = embeddings(1)
    opt = SparseAdamW(emb.parameters(), weight_decay=0.1)
    emb(torch.tensor([1, 2])).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(ValueError, match=r"param_groups\[0\].params\[0\] decays lazily .* opt.attach\(embedding\)"):
        opt.step()
    assert torch.equal(emb.weight, before) and not opt.state
    dense = torch.nn.Embedding(V, D, dtype=torch.float64)
    opt = SparseAdamW(dense.parameters()).attach(dense)
    dense(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(TypeError, match="not a sparse tensor: .* use l2decay.torch.AdamW"):
        opt.step()
    with pytest.raises(ValueError, match="Linear.weight is not a param of this optimizer"):
        opt.attach(torch.nn.Linear(2, 2))


def test_torch_loaded_moments_are_copies_and_training_continues_bit_identically():
    # load_state_dict moves the moments torch made into memory numpy allocated (huge pages)
    torch = pytest.importorskip("torch")
    from l2decay.torch import SparseAdamW

    a, b = embeddings(2)
    opt_a = SparseAdamW(a.parameters(), lr=0.01).attach(a)
    embedding_run(5, 0.01, 0.01, 1, a, opt_a)
    saved = opt_a.state_dict()
    b.load_state_dict(a.state_dict())
    opt_b = SparseAdamW(b.parameters(), lr=0.01).attach(b)
    opt_b.load_state_dict(saved)
    m = opt_b.state[b.weight]["exp_avg"]
    assert torch.equal(m, saved["state"][0]["exp_avg"])
    assert m.untyped_storage().data_ptr() != saved["state"][0]["exp_avg"].untyped_storage().data_ptr()
    embedding_run(5, 0.01, 0.01, 2, a, opt_a)
    embedding_run(5, 0.01, 0.01, 2, b, opt_b)
    assert torch.equal(a.state_dict()["weight"], b.state_dict()["weight"])


@pytest.mark.parametrize("tables", [1, 2])
def test_torch_state_broken_after_steps_is_refused_in_torch_terms_and_nothing_changes(tables):
    # after the first steps a step takes its fast path; a refusal there goes back to the
    # checked path, which words it, with nothing modified (of any table)
    torch = pytest.importorskip("torch")
    from l2decay.torch import SparseAdamW

    embs = embeddings(tables)
    opt = SparseAdamW([e.weight for e in embs], lr=0.01).attach(*embs)
    for _ in range(3):
        opt.zero_grad()
        sum(e(torch.tensor([[1, 2], [2, 5]])).sum() for e in embs).backward()
        opt.step()
    last = embs[-1].weight
    opt.state[last]["exp_avg_sq"] = opt.state[last]["exp_avg_sq"].float()    # the wrong dtype
    opt.zero_grad()
    sum(e(torch.tensor([[1, 2], [2, 7]])).sum() for e in embs).backward()
    before = [e.weight.detach().clone() for e in embs]
    steps = [opt.state[e.weight]["step"] for e in embs]
    with pytest.raises(TypeError, match=rf"state of param_groups\[0\]\.params\[{tables - 1}\]: exp_avg_sq has dtype "
                                        r"torch\.float32"):
        opt.step()
    assert all(torch.equal(e.weight.detach(), b) for e, b in zip(embs, before))
    assert [opt.state[e.weight]["step"] for e in embs] == steps


def test_torch_sparse_adam_checkpoint_loads_into_sparse_adamw_and_continues():
    # torch's SparseAdam saves no weight_decay: the group takes SparseAdamW's own
    torch = pytest.importorskip("torch")
    from l2decay.torch import SparseAdamW

    a, b = embeddings(2)
    torch_opt = torch.optim.SparseAdam(a.parameters(), lr=0.01)
    embedding_run(5, 0.01, 0.0, 1, a, torch_opt)
    b.load_state_dict(a.state_dict())
    ours = SparseAdamW(b.parameters(), lr=0.01, weight_decay=0.1).attach(b)
    ours.load_state_dict(torch_opt.state_dict())
    assert ours.param_groups[0]["weight_decay"] == 0.1
    embedding_run(20, 0.01, 0.1, 2, a, torch_opt, reference=True)
    embedding_run(20, 0.01, 0.1, 2, b, ours)
    assert ours.state[b.weight]["step"] == 25
    assert rel(b.state_dict()["weight"].numpy(), a.weight.detach().numpy()) < 1e-12


@pytest.mark.parametrize("change", ["half", "bfloat16"])
def test_sparse_adamw_table_changing_dtype_with_pending_decay_is_refused(change):
    """module.half() replaces the table's data, its pending decay unapplied: refused at the next
    forward, state_dict and flush, naming the param; flush() first keeps every decay."""
    torch = pytest.importorskip("torch")
    from l2decay.torch import SparseAdamW
    torch.manual_seed(0)
    emb = torch.nn.Embedding(10, 3, sparse=True)
    ref = torch.nn.Embedding(10, 3, sparse=True)
    ref.load_state_dict(emb.state_dict())
    opts = [SparseAdamW(m.parameters(), lr=0.1, weight_decay=0.5).attach(m) for m in (emb, ref)]
    for _ in range(3):
        for m, opt in zip((emb, ref), opts):
            m(torch.tensor([1, 2])).sum().backward()
            opt.step()
            opt.zero_grad()
    opts[1].flush()
    expected = ref.weight.detach().clone()
    emb.half() if change == "half" else emb.to(torch.bfloat16)
    match = r"^param_groups\[0\]\.params\[0\] is torch\.(float16|bfloat16) now, with weight decay pending .*opt\.flush\(\)"
    for read in (lambda: emb(torch.tensor([5])), emb.state_dict, opts[0].flush):
        with pytest.raises(TypeError, match=match):
            read()
    emb.float()                       # back to float32: the pending decay applies to what it holds
    assert torch.allclose(emb(torch.tensor([5])), expected[5:6], rtol=1e-2)
    ref.half()                        # flushed first: nothing pending, no error
    ref(torch.tensor([5]))
