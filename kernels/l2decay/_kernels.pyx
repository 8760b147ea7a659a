"""Compiled in-place weight-update loops of l2decay: L2, decay, SGD-momentum and Adam steps.

Each rule is one private serial loop over raw pointers (fused over float/double), run on one
contiguous block; `_run` splits large tensors into blocks across OpenMP threads.  The `def`
entries only gather pointers from arrays that the Python boundary (l2decay._validate) has
already checked, then release the GIL for the whole batch of tensors.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf
from libc.stdlib cimport malloc, free
cimport numpy as cnp

cnp.import_array()

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
    #if defined(__AVX512F__)
    #define L2D_SIMD "avx512f"
    #elif defined(__AVX2__)
    #define L2D_SIMD "avx2"
    #elif defined(__AVX__)
    #define L2D_SIMD "avx"
    #elif defined(__SSE2__) || defined(_M_X64)
    #define L2D_SIMD "sse2"
    #elif defined(__ARM_NEON)
    #define L2D_SIMD "neon"
    #else
    #define L2D_SIMD "none"
    #endif
    """
    int L2D_HAVE_OPENMP
    const char* L2D_SIMD
    int l2d_default_threads() noexcept nogil


# --------------------------------------------------------------------------- rules ----------
# Hyperparameters of one call, shared by every tensor of it.  Rule flags select branches that
# are loop-invariant, so gcc -O3 unswitches them into separate vectorized loops.
cdef struct Hyper:
    double lr, lam, keep          # keep = 1 - decay (decay rule) or 1 - lr*lam (decoupled)
    bint l2, decoupled, decay     # which regularization rule: at most one is set
    double mu, damp1              # SGD: momentum, 1 - dampening
    bint nesterov
    double b1, b2, step_size, bc2_sqrt, eps   # Adam; step_size = lr / (1 - b1**t)


cdef inline void _l2_loop(floating* w, floating* g, Py_ssize_t n,
                          floating lr, floating lam) noexcept nogil:
    """grad += lam*w;  w -= lr*grad."""
    cdef Py_ssize_t i
    for i in range(n):
        g[i] = g[i] + lam * w[i]
        w[i] = w[i] - lr * g[i]


cdef inline void _decay_loop(floating* w, const floating* g, Py_ssize_t n,
                             floating lr, floating keep) noexcept nogil:
    """w = (w - lr*grad) * keep,  keep = 1 - decay."""
    cdef Py_ssize_t i
    for i in range(n):
        w[i] = (w[i] - lr * g[i]) * keep


cdef inline void _sgd_loop(floating* w, floating* g, floating* buf, Py_ssize_t n,
                           const Hyper* h, bint first) noexcept nogil:
    """torch.optim.SGD's step, with the regularization rule of `h` (see l2decay.optim)."""
    cdef Py_ssize_t i
    cdef floating lr = <floating>h.lr, lam = <floating>h.lam, keep = <floating>h.keep
    cdef floating mu = <floating>h.mu, damp1 = <floating>h.damp1
    cdef floating gi, wi, bi
    cdef bint use_momentum = h.mu != 0.0
    for i in range(n):
        gi = g[i]
        wi = w[i]
        if h.l2:
            gi = gi + lam * wi
            g[i] = gi
        if h.decoupled:
            wi = wi * keep
        if use_momentum:
            if first:
                bi = gi
            else:
                bi = mu * buf[i] + damp1 * gi
            buf[i] = bi
            if h.nesterov:
                gi = gi + mu * bi
            else:
                gi = bi
        wi = wi - lr * gi
        if h.decay:
            wi = wi * keep
        w[i] = wi


cdef inline void _adam_loop(floating* w, floating* g, floating* m, floating* v, Py_ssize_t n,
                            const Hyper* h) noexcept nogil:
    """torch.optim.Adam's step, with the regularization rule of `h` (see l2decay.optim)."""
    cdef Py_ssize_t i
    cdef floating lam = <floating>h.lam, keep = <floating>h.keep
    cdef floating b1 = <floating>h.b1, b2 = <floating>h.b2
    cdef floating a1 = <floating>(1.0 - h.b1), a2 = <floating>(1.0 - h.b2)
    cdef floating ss = <floating>h.step_size, bc2s = <floating>h.bc2_sqrt, eps = <floating>h.eps
    cdef floating gi, wi, mi, vi, root
    for i in range(n):
        gi = g[i]
        wi = w[i]
        if h.l2:
            gi = gi + lam * wi
            g[i] = gi
        if h.decoupled:
            wi = wi * keep
        mi = b1 * m[i] + a1 * gi
        vi = b2 * v[i] + a2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        if floating is float:
            root = sqrtf(vi)
        else:
            root = sqrt(vi)
        wi = wi - (ss * mi) / (root / bc2s + eps)
        if h.decay:
            wi = wi * keep
        w[i] = wi


# ------------------------------------------------------------------- threading -------------
# One task = one tensor.  Blocks of BLOCK elements are the unit of parallel work: each block
# runs the serial (vectorized) loop, so the per-element operation order, and thus every bit of
# the result, is the same for any thread count.
cdef enum Rule:
    RULE_L2 = 0
    RULE_DECAY = 1
    RULE_SGD = 2
    RULE_ADAM = 3

cdef struct Task:
    char* w
    char* g
    char* s1          # SGD momentum buffer, or Adam exp_avg
    char* s2          # Adam exp_avg_sq
    Py_ssize_t n
    bint is_double
    bint first        # SGD: the momentum buffer is initialised from this step's gradient

cdef Py_ssize_t BLOCK = 1 << 15
cdef int _num_threads = 0                    # 0: OpenMP's default (all cores)
cdef Py_ssize_t _parallel_threshold = 1 << 18  # elements; smaller tensors stay serial


cdef inline int _threads_for(Py_ssize_t n) noexcept nogil:
    if not L2D_HAVE_OPENMP or n < _parallel_threshold:
        return 1
    if _num_threads > 0:
        return _num_threads
    return l2d_default_threads()


cdef void _block(Rule rule, const Task* t, const Hyper* h,
                 Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Run `rule` on elements [a, b) of task `t`."""
    if t.is_double:
        if rule == RULE_L2:
            _l2_loop(<double*>t.w + a, <double*>t.g + a, b - a, h.lr, h.lam)
        elif rule == RULE_DECAY:
            _decay_loop(<double*>t.w + a, <double*>t.g + a, b - a, h.lr, h.keep)
        elif rule == RULE_SGD:
            _sgd_loop(<double*>t.w + a, <double*>t.g + a, <double*>t.s1 + a, b - a, h, t.first)
        else:
            _adam_loop(<double*>t.w + a, <double*>t.g + a, <double*>t.s1 + a,
                       <double*>t.s2 + a, b - a, h)
    else:
        if rule == RULE_L2:
            _l2_loop(<float*>t.w + a, <float*>t.g + a, b - a, <float>h.lr, <float>h.lam)
        elif rule == RULE_DECAY:
            _decay_loop(<float*>t.w + a, <float*>t.g + a, b - a, <float>h.lr, <float>h.keep)
        elif rule == RULE_SGD:
            _sgd_loop(<float*>t.w + a, <float*>t.g + a, <float*>t.s1 + a, b - a, h, t.first)
        else:
            _adam_loop(<float*>t.w + a, <float*>t.g + a, <float*>t.s1 + a,
                       <float*>t.s2 + a, b - a, h)


cdef void _run(Rule rule, const Task* t, const Hyper* h) noexcept nogil:
    cdef int nt = _threads_for(t.n)
    cdef Py_ssize_t nblocks, k, start
    if nt <= 1:
        _block(rule, t, h, 0, t.n)
        return
    nblocks = (t.n + BLOCK - 1) // BLOCK
    for k in prange(nblocks, schedule="static", num_threads=nt):
        start = k * BLOCK
        _block(rule, t, h, start, min(start + BLOCK, t.n))


# --------------------------------------------------------------- public C API (.pxd) -------
cdef inline void _single(Rule rule, void* w, void* g, Py_ssize_t n, bint is_double,
                         const Hyper* h) noexcept nogil:
    cdef Task t
    t.w = <char*>w
    t.g = <char*>g
    t.s1 = NULL
    t.s2 = NULL
    t.n = n
    t.is_double = is_double
    t.first = False
    _run(rule, &t, h)


cdef void l2_step_f32(float* w, float* grad, Py_ssize_t n, double lr, double lam) noexcept nogil:
    cdef Hyper h
    h.lr = lr
    h.lam = lam
    _single(RULE_L2, w, grad, n, False, &h)


cdef void l2_step_f64(double* w, double* grad, Py_ssize_t n, double lr, double lam) noexcept nogil:
    cdef Hyper h
    h.lr = lr
    h.lam = lam
    _single(RULE_L2, w, grad, n, True, &h)


cdef void decay_step_f32(float* w, const float* grad, Py_ssize_t n,
                         double lr, double decay) noexcept nogil:
    cdef Hyper h
    h.lr = lr
    h.keep = 1.0 - decay
    _single(RULE_DECAY, w, <void*>grad, n, False, &h)


cdef void decay_step_f64(double* w, const double* grad, Py_ssize_t n,
                         double lr, double decay) noexcept nogil:
    cdef Hyper h
    h.lr = lr
    h.keep = 1.0 - decay
    _single(RULE_DECAY, w, <void*>grad, n, True, &h)


# ------------------------------------------------------------------ Python entries ---------
# Arguments are tuples of arrays validated by l2decay._validate (float32/float64, C-contiguous,
# writeable where written, equal sizes and dtypes per tensor, no overlap).  Only the type of each
# item is re-checked here (by the typed cast), so that misuse raises instead of crashing.
cdef enum:
    _STACK_TASKS = 8   # tensors per call handled without a malloc


cdef void _run_all(Rule rule, tuple ws, tuple gs, tuple s1, tuple s2,
                   const Hyper* h, bint first) except *:
    cdef Py_ssize_t k, m = len(ws)
    cdef Task stack[_STACK_TASKS]
    cdef Task* tasks = stack
    cdef cnp.ndarray w
    if len(gs) != m or (s1 is not None and len(s1) != m) or (s2 is not None and len(s2) != m):
        raise ValueError("internal: tensor tuples of unequal length")
    if m > _STACK_TASKS:
        tasks = <Task*>malloc(m * sizeof(Task))
        if tasks == NULL:
            raise MemoryError()
    try:
        for k in range(m):
            w = <cnp.ndarray?>ws[k]
            tasks[k].w = <char*>cnp.PyArray_DATA(w)
            tasks[k].g = <char*>cnp.PyArray_DATA(<cnp.ndarray?>gs[k])
            tasks[k].s1 = <char*>cnp.PyArray_DATA(<cnp.ndarray?>s1[k]) if s1 is not None else NULL
            tasks[k].s2 = <char*>cnp.PyArray_DATA(<cnp.ndarray?>s2[k]) if s2 is not None else NULL
            tasks[k].n = cnp.PyArray_SIZE(w)
            tasks[k].is_double = cnp.PyArray_TYPE(w) == cnp.NPY_FLOAT64
            tasks[k].first = first
        with nogil:
            for k in range(m):
                _run(rule, &tasks[k], h)
    finally:
        if tasks != stack:
            free(tasks)


def l2_step_many(tuple ws, tuple gs, double lr, double lam):
    """For each pair: grad += lam*w; w -= lr*grad (in place, GIL released)."""
    cdef Hyper h
    h.lr = lr
    h.lam = lam
    _run_all(RULE_L2, ws, gs, None, None, &h, False)


def decay_step_many(tuple ws, tuple gs, double lr, double decay):
    """For each pair: w = (w - lr*grad) * (1 - decay) (in place, GIL released)."""
    cdef Hyper h
    h.lr = lr
    h.keep = 1.0 - decay
    _run_all(RULE_DECAY, ws, gs, None, None, &h, False)


cdef inline void _set_rule(Hyper* h, int rule, double lr, double strength):
    """rule: 0 none, 1 L2, 2 decoupled, 3 decay (see l2decay.optim)."""
    h.lr = lr
    h.lam = strength
    h.l2 = rule == 1
    h.decoupled = rule == 2
    h.decay = rule == 3
    h.keep = 1.0 - lr * strength if rule == 2 else 1.0 - strength


def sgd_step_many(tuple ws, tuple gs, tuple bufs, double lr, int rule, double strength,
                  double momentum, double dampening, bint nesterov, bint first):
    """One torch-style SGD step for every tensor; `bufs` are momentum buffers (ignored if momentum == 0)."""
    cdef Hyper h
    _set_rule(&h, rule, lr, strength)
    h.mu = momentum
    h.damp1 = 1.0 - dampening
    h.nesterov = nesterov
    _run_all(RULE_SGD, ws, gs, bufs, None, &h, first)


def adam_step_many(tuple ws, tuple gs, tuple ms, tuple vs, double lr, int rule, double strength,
                   double beta1, double beta2, double eps, long long step):
    """One torch-style Adam step number `step` (>= 1) for every tensor."""
    cdef Hyper h
    _set_rule(&h, rule, lr, strength)
    h.b1 = beta1
    h.b2 = beta2
    h.eps = eps
    h.step_size = lr / (1.0 - beta1 ** step)
    h.bc2_sqrt = sqrt(1.0 - beta2 ** step)
    _run_all(RULE_ADAM, ws, gs, ms, vs, &h, False)


# ------------------------------------------------------------------ configuration ----------
def compiled_features():
    """What the C compiler saw: OpenMP on/off and the widest SIMD extension it could use."""
    return {"openmp": bool(L2D_HAVE_OPENMP), "simd": L2D_SIMD.decode("ascii")}


def get_num_threads():
    """Threads a large tensor is split over (1 without OpenMP)."""
    return _threads_for(_parallel_threshold)


def set_num_threads(int n):
    """Set the thread count for large tensors; 0 restores OpenMP's default."""
    global _num_threads
    _num_threads = n


def get_parallel_threshold():
    return _parallel_threshold


def set_parallel_threshold(Py_ssize_t n):
    """Tensors of at least `n` elements are split over threads."""
    global _parallel_threshold
    _parallel_threshold = n
