"""The kernels release the GIL: two threads run them at once, with correct results."""
import os
import threading
import time

import numpy as np
import pytest

import l2decay
import numpy_reference as ref


def test_concurrent_calls_are_correct():
    n, calls = 200_001, 20
    rng = np.random.default_rng(1)
    jobs = []
    for k in range(2):
        w = rng.standard_normal(n)
        g = rng.standard_normal(n)
        jobs.append((w, g, w.copy(), g.copy()))
    errors = []

    def work(w, g):
        try:
            for _ in range(calls):
                l2decay.l2_step(w, g, lr=0.01, lam=0.1)
                l2decay.decay_step(w, g, lr=0.01, decay=0.01)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w, g)) for w, g, _, _ in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for w, g, w_ref, g_ref in jobs:
        for _ in range(calls):
            ref.l2_step(w_ref, g_ref, 0.01, 0.1)
            ref.decay_step(w_ref, g_ref, 0.01, 0.01)
        np.testing.assert_array_equal(w, w_ref)
        np.testing.assert_array_equal(g, g_ref)


def test_python_runs_while_a_kernel_runs():
    """While one thread is inside a long kernel call, another keeps executing Python.

    Had the call held the GIL, the main thread's loop would stall for the whole call, leaving
    one gap between its timestamps as long as the call; with the GIL released the gaps stay
    far shorter (only OS scheduling noise).
    """
    n = 40_000_000
    w = np.ones(n)
    g = np.full(n, 1e-3)
    started = threading.Event()
    span = []

    def kernel():
        started.set()
        t0 = time.perf_counter()
        l2decay.decay_step(w, g, lr=0.1, decay=1e-6)
        span.append((t0, time.perf_counter()))

    l2decay.set_num_threads(1)
    try:
        t = threading.Thread(target=kernel)
        t.start()
        started.wait()
        stamps = []
        while t.is_alive():
            stamps.append(time.perf_counter())
        t.join()
    finally:
        l2decay.set_num_threads(0)
    (t0, t1), = span
    inside = [s for s in stamps if t0 <= s <= t1]
    duration = t1 - t0
    assert len(inside) > 100, "the main thread never ran while the kernel did"
    gaps = np.diff([t0] + inside + [t1])
    assert gaps.max() < 0.5 * duration, (gaps.max(), duration)
    assert w[0] == np.float64(1 - 0.1 * 1e-3) * np.float64(1 - 1e-6)


def _parallel_update(n=1 << 20):
    w, g = np.ones(n), np.full(n, 0.5)
    l2decay.decay_step(w, g, lr=0.1, decay=0.0)    # 8 MiB per array: split over threads
    return float(w[0])


def _in_child(queue):
    queue.put(_parallel_update())


def test_a_forked_child_does_not_hang_after_the_parent_ran_threads():
    # libgomp's pool does not survive fork(): without the at-fork handler the child's first
    # parallel call waits forever (multiprocessing's default start method on Linux forks)
    import multiprocessing as mp
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    assert _parallel_update() == 0.95
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in its first parallel call")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == 0.95


def test_torch_dataloader_workers_can_use_the_kernels():
    torch = pytest.importorskip("torch")
    assert _parallel_update() == 0.95

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.tensor(_parallel_update(), dtype=torch.float64)

    loader = torch.utils.data.DataLoader(Data(), batch_size=2, num_workers=2, timeout=60,
                                         multiprocessing_context="fork")
    values = torch.cat(list(loader))
    assert values.tolist() == [0.95] * 4


@pytest.mark.parametrize("n", [-1, 2 ** 31 - 1, 1025, 1.5, "2", True])
def test_thread_counts_are_bounded(n):
    with pytest.raises(ValueError, match=r"n must be an int in \[0, 1024\]"):
        l2decay.set_num_threads(n)


def test_environment_thread_count_out_of_range_is_a_clear_error():
    import subprocess
    import sys
    env = {**os.environ, "L2DECAY_NUM_THREADS": "99999999999"}
    proc = subprocess.run([sys.executable, "-c", "import l2decay; l2decay.set_num_threads"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "L2DECAY_NUM_THREADS must be an int in [0, 1024], got '99999999999'" in proc.stderr
    assert "OverflowError" not in proc.stderr
