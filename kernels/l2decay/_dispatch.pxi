# Part of _kernels.pyx: which compiled loops run (SIMD dispatch) and on how many threads.

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define L2D_HAVE_OPENMP 1
    static int l2d_default_threads(void) { return omp_get_max_threads(); }
    #else
    #define L2D_HAVE_OPENMP 0
    static int l2d_default_threads(void) { return 1; }
    #endif
    #if defined(_WIN32)
    static int l2d_register_atfork(void (*child)(void)) { (void)child; return 0; }
    #else
    #include <pthread.h>
    static int l2d_register_atfork(void (*child)(void)) { return pthread_atfork(NULL, NULL, child); }
    #endif
    """
    int L2D_HAVE_OPENMP
    int l2d_default_threads() noexcept nogil
    int l2d_register_atfork(void (*child)() noexcept nogil) noexcept nogil


# ------------------------------------------------------------------- SIMD dispatch ---------
SIMD_LEVELS = ("baseline", "avx2", "avx512")
# numpy's names (numpy/_core/_multiarray_umath.__cpu_features__) of what each level's flags
# (setup.py SIMD_LEVELS) let the compiler use.
_SIMD_NEEDS = {
    "baseline": (),
    "avx2": ("AVX", "AVX2", "F16C", "FMA3"),
    "avx512": ("AVX", "AVX2", "F16C", "FMA3", "AVX512F", "AVX512CD", "AVX512VL", "AVX512BW",
               "AVX512DQ"),
}

cdef chunk_fn _chunk = NULL
cdef chunk_fn _q8_chunk = NULL        # tasks with 8-bit state (Task.sc1 set)
cdef chunk_fn _stats_chunk = NULL     # tasks that record weight statistics (Task.stats set)
cdef rows_fn _rows = NULL
_simd = None


def _cpu_features():
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return __cpu_features__


def simd_built():
    """Instruction-set levels compiled into this installation, narrowest first."""
    built = []
    for level in SIMD_LEVELS:
        try:
            importlib.import_module(f"l2decay._simd_{level}")
        except ImportError:
            continue
        built.append(level)
    return built


def simd_available():
    """Levels both compiled and supported by this CPU, narrowest first."""
    features = _cpu_features()
    return [lv for lv in simd_built() if all(features.get(f, False) for f in _SIMD_NEEDS[lv])]


def set_simd(str level):
    """Use the loops compiled for `level` ("baseline", "avx2", "avx512", or "auto" for the
    widest this CPU supports).  Results are bit-identical at every level; only speed differs."""
    global _chunk, _q8_chunk, _stats_chunk, _rows, _simd
    available = simd_available()
    if level == "auto":
        level = available[len(available) - 1]   # (wraparound is off in this module)
    if level not in available:
        raise ValueError(
            f"SIMD level {level!r} is not available here; choose one of {available + ['auto']}"
        )
    module = importlib.import_module(f"l2decay._simd_{level}")
    _chunk = <chunk_fn>PyCapsule_GetPointer(module.CHUNK, "l2decay._chunk")
    _q8_chunk = <chunk_fn>PyCapsule_GetPointer(module.Q8, "l2decay._q8")
    _stats_chunk = <chunk_fn>PyCapsule_GetPointer(module.STATS, "l2decay._stats")
    _rows = <rows_fn>PyCapsule_GetPointer(module.ROWS, "l2decay._rows")
    _simd = level


def get_simd():
    """The instruction-set level whose loops run now."""
    return _simd


# ------------------------------------------------------------------- threading -------------
# Chunks of CHUNK_SIZE elements are the unit of parallel work: each runs the serial (vectorized)
# loop, so the per-element operation order, and every bit of the result, is the same for any
# thread count.
#
# The threshold is in bytes per array: one thread wins while a tensor's arrays fit one core's
# L2, more win once they do not (`l2decay bench --crossover`; figures in docs/performance.md).
# That holds for the memory-bound loops; an Adam element costs several times as much arithmetic
# (a square root and a division), so its steps split at a third of it, and with 8-bit state
# (decoding and coding too) at a sixth (crossovers measured: docs/performance.md).
cdef Py_ssize_t CHUNK_SIZE = 1 << 13
cdef int _num_threads = 0                           # 0: OpenMP's default (all cores)
cdef Py_ssize_t _parallel_threshold = 384 * 1024    # bytes per array; smaller tensors stay serial
MAX_THREADS = 1024                                  # set_num_threads refuses more
# libgomp is not fork-safe: a child forked after the parent used its thread pool hangs in its
# first parallel region.  A forked child therefore runs every call on its own thread.
cdef bint _forked = False


cdef void _in_forked_child() noexcept nogil:
    global _forked
    _forked = True


cdef inline Py_ssize_t _nbytes(const Task* t) noexcept nogil:
    return t.n * kind_size(t.kind)


cdef inline Py_ssize_t _threshold(Op op, const Task* t) noexcept nogil:
    """The bytes per array from which op on task t is split over threads."""
    if op == OP_ADAM:
        return _parallel_threshold // (6 if t.sc1 != NULL else 3)
    return _parallel_threshold


cdef inline int _threads_for(Py_ssize_t nbytes, Py_ssize_t threshold=-1) noexcept nogil:
    if not L2D_HAVE_OPENMP or _forked or nbytes < (_parallel_threshold if threshold < 0 else threshold):
        return 1
    if _num_threads > 0:
        return _num_threads
    return l2d_default_threads()


cdef inline void _piece(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Elements [a, b) of task t, by the loops of its kind of state (and statistics)."""
    if t.stats != NULL:
        _stats_chunk(op, t, a, b)
    elif t.sc1 != NULL:
        _q8_chunk(op, t, a, b)
    else:
        _chunk(op, t, a, b)


cdef void _run(Op op, const Task* t) noexcept nogil:
    cdef int nt = _threads_for(_nbytes(t), _threshold(op, t))
    cdef Py_ssize_t nchunks, k, start
    if nt <= 1:
        _piece(op, t, 0, t.n)
        return
    nchunks = (t.n + CHUNK_SIZE - 1) // CHUNK_SIZE
    for k in prange(nchunks, schedule="static", num_threads=nt):
        start = k * CHUNK_SIZE
        _piece(op, t, start, min(start + CHUNK_SIZE, t.n))


cdef void _run_all(Op op, const Task* tasks, Py_ssize_t m) noexcept nogil:
    """Every task of a call.  When the call reaches the parallel threshold (a large task, or
    small ones together), all of it runs in one parallel region: large tasks cut in chunks,
    small ones whole, and each thread takes one contiguous run of those pieces, the runs about
    equal in elements: one region has no joins where a thread idles, and contiguous runs keep
    each core's prefetcher streaming and its pieces in its own cache from step to step (docs:
    Design)."""
    cdef Py_ssize_t k, c, u, units = 0, total = 0, nb, elems = 0, done, thr, low = _parallel_threshold
    cdef Py_ssize_t* unit_task
    cdef Py_ssize_t* unit_start
    cdef Py_ssize_t* bound
    cdef int nt
    for k in range(m):
        nb = _nbytes(&tasks[k])
        total += nb
        elems += tasks[k].n
        thr = _threshold(op, &tasks[k])
        low = min(low, thr)
        units += (tasks[k].n + CHUNK_SIZE - 1) // CHUNK_SIZE if nb >= thr else 1
    nt = _threads_for(total, low)
    if nt > 1 and m == 1:
        _run(op, &tasks[0])
        return
    unit_task = <Py_ssize_t*>malloc((2 * units + nt + 1) * sizeof(Py_ssize_t)) if nt > 1 else NULL
    if unit_task == NULL:       # (one thread, or no memory: every task in turn)
        for k in range(m):
            _run(op, &tasks[k])
        return
    unit_start = unit_task + units
    bound = unit_start + units
    u = 0
    for k in range(m):
        if _nbytes(&tasks[k]) >= _threshold(op, &tasks[k]):
            c = 0
            while c < tasks[k].n:
                unit_task[u] = k
                unit_start[u] = c
                u += 1
                c += CHUNK_SIZE
        else:
            unit_task[u] = k
            unit_start[u] = -1       # the whole task
            u += 1
    # thread c takes the units from bound[c] to bound[c + 1], about equal in elements
    c = 0
    bound[0] = 0
    done = 0
    for u in range(units):
        k = unit_task[u]
        done += tasks[k].n if unit_start[u] < 0 else min(CHUNK_SIZE, tasks[k].n - unit_start[u])
        while c + 1 < nt and done * nt >= (c + 1) * elems:
            c += 1
            bound[c] = u + 1
    while c + 1 <= nt:
        c += 1
        bound[c] = units
    for c in prange(nt, schedule="static", num_threads=nt):
        for u in range(bound[c], bound[c + 1]):
            k = unit_task[u]
            if unit_start[u] < 0:
                _piece(op, &tasks[k], 0, tasks[k].n)
            else:
                _piece(op, &tasks[k], unit_start[u], min(unit_start[u] + CHUNK_SIZE, tasks[k].n))
    free(unit_task)


# Calls touching fewer bytes than this keep the GIL: releasing and taking it back costs about as
# much as updating that much memory (numpy has a similar cut-off).
cdef Py_ssize_t _NOGIL_BYTES = 16384


cdef void _run_tasks(Op op, const Task* tasks, Py_ssize_t m) noexcept:
    """_run_all with the GIL released unless the call is tiny.  The caller holds references to
    every array of `tasks` for the whole call."""
    cdef Py_ssize_t k, total = 0
    for k in range(m):
        total += _nbytes(&tasks[k])
    if total < _NOGIL_BYTES:
        _run_all(op, tasks, m)
    else:
        with nogil:
            _run_all(op, tasks, m)


# ------------------------------------------------------------------ configuration ----------
def compiled_features():
    """OpenMP on/off, and the instruction-set level in use, built and available."""
    return {"openmp": bool(L2D_HAVE_OPENMP), "simd": _simd, "simd_built": simd_built(),
            "simd_available": simd_available()}


def get_num_threads():
    """Threads a large tensor is split over (1 without OpenMP, and in a forked child)."""
    return _threads_for(_parallel_threshold)


def set_num_threads(n):
    """Set the thread count for large tensors, 0 to MAX_THREADS; 0 restores OpenMP's default."""
    global _num_threads
    if type(n) is not int or not 0 <= n <= MAX_THREADS:
        raise ValueError(f"n must be an int in [0, {MAX_THREADS}], got {n!r}")
    _num_threads = n


def get_parallel_threshold():
    """Bytes per array from which a tensor is split over threads."""
    return _parallel_threshold


def set_parallel_threshold(nbytes):
    """Split tensors whose arrays hold at least `nbytes` bytes each over threads."""
    global _parallel_threshold
    if type(nbytes) is not int or not 0 <= nbytes <= (1 << 62):
        raise ValueError(f"nbytes must be an int in [0, 2**62], got {nbytes!r}")
    _parallel_threshold = nbytes


def _select_from_environment():
    level = os.environ.get("L2DECAY_SIMD", "").strip() or "auto"
    try:
        set_simd(level)
    except ValueError as exc:
        raise ImportError(f"L2DECAY_SIMD={level!r}: {exc}") from None
    threshold = os.environ.get("L2DECAY_PARALLEL_THRESHOLD", "").strip()
    if threshold:
        try:
            set_parallel_threshold(int(threshold))
        except ValueError:
            raise ImportError(
                f"L2DECAY_PARALLEL_THRESHOLD must be a number of bytes in [0, 2**62], got {threshold!r}"
            ) from None
