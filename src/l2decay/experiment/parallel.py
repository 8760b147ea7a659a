"""Independent training runs (seeds, grid points) in worker processes.

Each run is a small net trained one sample or one minibatch at a time: a single core does it
best, and the runs themselves are the parallelism.  BLAS must then use one thread per worker:
with its default of one thread per core, two workers on two cores fight over the cores, and
the per-epoch evaluation matmuls become many times slower.  OpenBLAS reads its thread count once, when numpy loads, so the workers are *spawned*
(fresh interpreters that load numpy with the variables below set), not forked from a process
whose BLAS is already running.  Workers ignore Ctrl-C: the parent catches it, terminates them
and reports once, instead of one traceback per worker.
"""
import contextlib
import multiprocessing
import os
import signal

# What BLAS libraries and OpenMP read for their thread count, set to 1 in the workers unless
# the user has set them (then theirs holds).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


def available_cores():
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def _one_thread_each():
    """os.environ with the thread variables at 1 (those the user did not set) while workers
    start; restored afterwards.  This process's own BLAS, already loaded, is not affected."""
    added = [name for name in THREAD_VARIABLES if name not in os.environ]
    for name in added:
        os.environ[name] = "1"
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _worker_init():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


_CACHE = {}  # per worker process: what a function wants to keep between its tasks (loaded data)


def _call(item):
    index, function, task = item
    return index, function(task, _CACHE)


def run_all(function, tasks, jobs, on_result=None):
    """``[function(task, cache) for task in tasks]``, on up to `jobs` worker processes.

    `function` must be a module-level function (workers import it by name); `cache` is a dict
    that lives as long as the worker, for data shared by tasks.  `on_result(index, result)` is
    called in this process as each run ends (in completion order).  jobs == 1, or a single
    task, runs here without workers.  Ctrl-C terminates the workers and raises
    KeyboardInterrupt here.
    """
    tasks = list(tasks)
    jobs = max(1, min(int(jobs), len(tasks)))
    results = [None] * len(tasks)
    if jobs == 1:
        cache = {}
        for index, task in enumerate(tasks):
            results[index] = function(task, cache)
            if on_result:
                on_result(index, results[index])
        return results
    with _one_thread_each():
        pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_worker_init)
    try:
        for index, result in pool.imap_unordered(_call, [(i, function, t) for i, t in enumerate(tasks)]):
            results[index] = result
            if on_result:
                on_result(index, result)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return results
