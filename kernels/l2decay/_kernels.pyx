"""l2decay's compiled entry points: argument checks, SIMD dispatch, threading.

The loops themselves live in _loops.pxi, compiled once per instruction set into the modules
l2decay._simd_baseline, _simd_avx2 and _simd_avx512.  At import this module picks the widest
one the CPU runs (numpy's CPU feature detection; override with L2DECAY_SIMD) and calls its
`_block` through a function pointer.  Every argument is checked here at C level before any
array is touched; anything the fast checks do not accept is handed to l2decay._validate, which
raises the precise TypeError/ValueError (it is the one place that words error messages).
"""
import importlib
import os

from cpython.list cimport PyList_Check, PyList_CheckExact
from cpython.tuple cimport PyTuple_Check, PyTuple_CheckExact
from cpython.pycapsule cimport PyCapsule_GetPointer
from cython.parallel cimport prange
from libc.math cimport sqrt, isfinite
from libc.stdlib cimport malloc, free
cimport numpy as cnp

from l2decay._common cimport (Hyper, Rule, Task, block_fn, RULE_L2, RULE_DECAY, RULE_SGD,
                              RULE_ADAM, RULE_SWAP, RULE_AXPY, RULE_L2_KEEP)

from l2decay import _validate

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
    """
    int L2D_HAVE_OPENMP
    int l2d_default_threads() noexcept nogil


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

cdef block_fn _block = NULL
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
    global _block, _simd
    available = simd_available()
    if level == "auto":
        level = available[len(available) - 1]   # (wraparound is off in this module)
    if level not in available:
        raise ValueError(
            f"SIMD level {level!r} is not available here; choose one of {available + ['auto']}"
        )
    module = importlib.import_module(f"l2decay._simd_{level}")
    _block = <block_fn>PyCapsule_GetPointer(module.BLOCK, "l2decay._block")
    _simd = level


def get_simd():
    """The instruction-set level whose loops run now."""
    return _simd


# ------------------------------------------------------------------- threading -------------
# Blocks of BLOCK elements are the unit of parallel work: each runs the serial (vectorized)
# loop, so the per-element operation order, and every bit of the result, is the same for any
# thread count.
#
# The threshold is in bytes per array, measured with `l2decay bench --crossover` (README): on
# this machine (2 cores, 1 MiB L2 each) one thread wins while a tensor's arrays fit one core's L2
# and two threads win once they do not.  At 256 KiB per array two threads are 0.6-1.25x of one,
# at 384 KiB 0.9-1.4x (decay the loser), at 512 KiB 1.2-1.5x for every kernel and both dtypes.
cdef Py_ssize_t BLOCK = 1 << 13
cdef int _num_threads = 0                           # 0: OpenMP's default (all cores)
cdef Py_ssize_t _parallel_threshold = 384 * 1024    # bytes per array; smaller tensors stay serial


cdef inline Py_ssize_t _nbytes(const Task* t) noexcept nogil:
    return t.n * (8 if t.is_double else 4)


cdef inline int _threads_for(Py_ssize_t nbytes) noexcept nogil:
    if not L2D_HAVE_OPENMP or nbytes < _parallel_threshold:
        return 1
    if _num_threads > 0:
        return _num_threads
    return l2d_default_threads()


cdef void _run(Rule rule, const Task* t, const Hyper* h) noexcept nogil:
    cdef int nt = _threads_for(_nbytes(t))
    cdef Py_ssize_t nblocks, k, start
    if nt <= 1:
        _block(rule, t, h, 0, t.n)
        return
    nblocks = (t.n + BLOCK - 1) // BLOCK
    for k in prange(nblocks, schedule="static", num_threads=nt):
        start = k * BLOCK
        _block(rule, t, h, start, min(start + BLOCK, t.n))


cdef void _run_all(Rule rule, const Task* tasks, Py_ssize_t m, const Hyper* h) noexcept nogil:
    """Every task of a call: large ones split over threads one by one, small ones together
    spread over threads when their total reaches the parallel threshold."""
    cdef Py_ssize_t k, small = 0
    cdef int nt
    for k in range(m):
        if _nbytes(&tasks[k]) >= _parallel_threshold:
            _run(rule, &tasks[k], h)
        else:
            small += _nbytes(&tasks[k])
    nt = _threads_for(small)
    if nt <= 1:
        for k in range(m):
            if _nbytes(&tasks[k]) < _parallel_threshold:
                _block(rule, &tasks[k], h, 0, tasks[k].n)
        return
    for k in prange(m, schedule="dynamic", num_threads=nt):
        if _nbytes(&tasks[k]) < _parallel_threshold:
            _block(rule, &tasks[k], h, 0, tasks[k].n)


# --------------------------------------------------------------- public C API (.pxd) -------
cdef inline void _init_task(Task* t, void* w, void* g, void* s1, void* s2, Py_ssize_t n,
                            bint is_double) noexcept nogil:
    t.w = <char*>w
    t.g = <char*>g
    t.s1 = <char*>s1
    t.s2 = <char*>s2
    t.n = n
    t.is_double = is_double
    t.first = False


cdef inline void _single(Rule rule, void* w, void* g, Py_ssize_t n, bint is_double,
                         const Hyper* h) noexcept nogil:
    cdef Task t
    _init_task(&t, w, g, NULL, NULL, n, is_double)
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


# ------------------------------------------------------------------ argument checks --------
# Each fast check accepts exactly what l2decay._validate accepts, or less; on a False the
# caller hands the arguments to _validate, which raises the worded error.
cdef inline bint _real_ok(object value, double* out, double high, bint high_open,
                          bint low_open) noexcept:
    """A plain float/int, finite, in [0, high] (or the open variants)."""
    cdef double x
    if type(value) is float:
        x = <double>value
    elif type(value) is int and -(1 << 52) <= value <= (1 << 52):
        x = <double>value
    else:
        return False
    if not isfinite(x) or x < 0.0 or x > high or (high_open and x == high) or (low_open and x == 0.0):
        return False
    out[0] = x
    return True


cdef double _real(str name, object value, double high=float("inf"), bint high_open=False,
                  bint low_open=False) except? -1.0:
    cdef double x
    if _real_ok(value, &x, high, high_open, low_open):
        return x
    return _validate.real(name, value, high=high, high_open=high_open, low_open=low_open)


cdef inline bint _array_ok(object a, bint writes) noexcept:
    cdef cnp.ndarray arr
    cdef int t
    if not cnp.PyArray_Check(a):
        return False
    arr = <cnp.ndarray>a
    t = cnp.PyArray_TYPE(arr)
    return ((t == cnp.NPY_DOUBLE or t == cnp.NPY_FLOAT)
            and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_IS_C_CONTIGUOUS(arr)
            and (not writes or cnp.PyArray_ISWRITEABLE(arr)))


cdef inline bint _disjoint(cnp.ndarray a, cnp.ndarray b) noexcept:
    """Both C-contiguous: their byte ranges do not intersect (what may_share_memory tests)."""
    cdef char* pa = cnp.PyArray_BYTES(a)
    cdef char* pb = cnp.PyArray_BYTES(b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(a), nb = cnp.PyArray_NBYTES(b)
    return na == 0 or nb == 0 or pa + na <= pb or pb + nb <= pa


cdef inline bint _like(cnp.ndarray a, cnp.ndarray b) noexcept:
    return cnp.PyArray_TYPE(a) == cnp.PyArray_TYPE(b) and cnp.PyArray_SAMESHAPE(a, b)


cdef inline bint _pair_ok(object w, object g, bint writes_g) noexcept:
    return (_array_ok(w, True) and _array_ok(g, writes_g)
            and _like(<cnp.ndarray>w, <cnp.ndarray>g)
            and _disjoint(<cnp.ndarray>w, <cnp.ndarray>g))


cdef inline void _task(Task* t, object w, object g) noexcept:
    """A task for a checked pair (g may be None: filled in later)."""
    _init_task(t, cnp.PyArray_BYTES(<cnp.ndarray>w),
               cnp.PyArray_BYTES(<cnp.ndarray>g) if g is not None else NULL, NULL, NULL,
               cnp.PyArray_SIZE(<cnp.ndarray>w), cnp.PyArray_TYPE(<cnp.ndarray>w) == cnp.NPY_DOUBLE)


cdef enum:
    _STACK_TASKS = 8   # tensors per call handled without a malloc


# Calls touching fewer bytes than this keep the GIL: releasing and taking it back costs about as
# much as updating that much memory (numpy has a similar cut-off).
cdef Py_ssize_t _NOGIL_BYTES = 16384


cdef inline object _item(object seq, Py_ssize_t k):
    if PyList_CheckExact(seq):
        return (<list>seq)[k]
    if PyTuple_CheckExact(seq):
        return (<tuple>seq)[k]
    return seq[k]


cdef int _apply(Rule rule, object w, object grad, const Hyper* h) except -1:
    """Check `w`/`grad` (one array each, or equal-length lists/tuples of them) completely,
    then run `rule` on every pair, with the GIL released unless the call is tiny."""
    cdef bint writes_g = rule == RULE_L2 or rule == RULE_SWAP
    cdef Task stack[_STACK_TASKS]
    cdef Task* tasks = stack
    cdef Py_ssize_t k, m, total = 0
    if cnp.PyArray_Check(w):
        if not _pair_ok(w, grad, writes_g):
            w, grad = _validate.tensors(w, grad, writes_g)   # raises the worded error
            w, grad = w[0], grad[0]
        _task(&stack[0], w, grad)
        if _nbytes(&stack[0]) < _NOGIL_BYTES:
            _run(rule, &stack[0], h)
        else:
            with nogil:
                _run(rule, &stack[0], h)
        return 0
    if not ((PyList_Check(w) or PyTuple_Check(w)) and (PyList_Check(grad) or PyTuple_Check(grad))
            and len(w) == len(grad)):
        w, grad = _validate.tensors(w, grad, writes_g)
    else:
        for k in range(len(w)):
            if not _pair_ok(_item(w, k), _item(grad, k), writes_g):
                w, grad = _validate.tensors(w, grad, writes_g)
                break
    m = len(w)
    if m > _STACK_TASKS:
        tasks = <Task*>malloc(m * sizeof(Task))
        if tasks == NULL:
            raise MemoryError()
    try:
        for k in range(m):
            _task(&tasks[k], _item(w, k), _item(grad, k))
            total += _nbytes(&tasks[k])
        if total < _NOGIL_BYTES:
            _run_all(rule, tasks, m, h)
        else:
            # tuples hold references to the arrays while the GIL is released
            refs = (w if PyTuple_CheckExact(w) else tuple(w), grad if PyTuple_CheckExact(grad) else tuple(grad))
            with nogil:
                _run_all(rule, tasks, m, h)
    finally:
        if tasks != stack:
            free(tasks)
    return 0


# ------------------------------------------------------------------ Python entries ---------
def l2_step(w, grad, *, lr, lam, write_grad=True):
    """L2 regularization step, in place: ``grad += lam*w; w -= lr*grad``.

    Parameters
    ----------
    w, grad : numpy.ndarray or list/tuple of numpy.ndarray
        Weights and their gradients: float32 or float64, C-contiguous, writeable, pairwise
        equal in dtype and shape, not sharing memory.  Sequences update every pair in one call.
    lr : float
        Learning rate, finite, >= 0.
    lam : float
        L2 strength, finite, >= 0.
    write_grad : bool, default True
        True: ``grad`` is left holding the regularized gradient (4 array passes per element).
        False: ``grad`` is only read and may be read-only; ``w`` gets the same bits
        (``w -= lr*(grad + lam*w)``, 3 passes: what torch's SGD ``weight_decay`` does).

    Returns None.  On bad input raises TypeError/ValueError and modifies nothing.
    """
    cdef Hyper h
    h.lr = _real("lr", lr)
    h.lam = _real("lam", lam)
    if write_grad is True:
        _apply(RULE_L2, w, grad, &h)
    elif write_grad is False:
        _apply(RULE_L2_KEEP, w, grad, &h)
    else:
        raise TypeError(f"write_grad must be True or False, got {write_grad!r}")


def decay_step(w, grad, *, lr, decay):
    """Weight-decay step, in place: ``w = (w - lr*grad) * (1 - decay)``; ``grad`` is not written.

    Parameters
    ----------
    w, grad : numpy.ndarray or list/tuple of numpy.ndarray
        As in :func:`l2_step`; ``grad`` may be read-only.
    lr : float
        Learning rate, finite, >= 0.
    decay : float
        Fraction of each weight removed per step, in [0, 1).

    Returns None.  On bad input raises TypeError/ValueError and modifies nothing.
    """
    cdef Hyper h
    h.lr = _real("lr", lr)
    h.keep = 1.0 - _real("decay", decay, 1.0, True)
    _apply(RULE_DECAY, w, grad, &h)


def stream_swap(w, grad):
    """Memory-ceiling loop with the L2 rule's traffic (read 2 arrays, write 2): swap w and grad."""
    cdef Hyper h
    _apply(RULE_SWAP, w, grad, &h)


def stream_axpy(w, grad, a):
    """Memory-ceiling loop with the decay rule's traffic (read 2 arrays, write 1): w += a*grad."""
    cdef Hyper h
    h.lr = _real("a", a)
    _apply(RULE_AXPY, w, grad, &h)


# ------------------------------------------------------------------ optimizer steps --------
cdef extern from "Python.h":
    # borrowed reference, NULL if absent; never raises
    void* PyDict_GetItem(object d, object key)


cdef inline void _set_rule(Hyper* h, int rule, double lr, double strength) noexcept:
    """rule: 0 none, 1 L2, 2 decoupled, 3 decay (see l2decay.optim)."""
    h.lr = lr
    h.lam = strength
    h.l2 = rule == 1
    h.decoupled = rule == 2
    h.decay = rule == 3
    h.keep = 1.0 - lr * strength if rule == 2 else 1.0 - strength


cdef class StepPlan:
    """One optimizer step over every parameter group, compiled once and reused.

    l2decay.optim builds it from hyperparameters it has validated.  `run` first checks, at C
    level, that nothing the plan was built from has changed (the group dicts, their
    hyperparameter objects and parameter lists, by identity) and that every gradient is a valid
    partner of its parameter; if anything fails it returns False having touched nothing, and
    the optimizer takes its Python path, which raises the worded error or builds a new plan.
    """
    cdef Rule rule
    cdef list groups            # the optimizer's param_groups list
    cdef tuple group_dicts      # its dicts, as they were
    cdef tuple keys             # hyperparameter keys compared by identity
    cdef tuple snapshot         # per group: the objects under `keys`, as they were
    cdef tuple param_lists      # per group: the "params" list object
    cdef tuple params           # every parameter, flat
    cdef tuple s1, s2           # state arrays, flat (SGD: momentum buffers; Adam: m, v)
    cdef Py_ssize_t m, ngroups
    cdef Task* tasks
    cdef Hyper* hypers
    cdef Py_ssize_t* starts     # group i holds params[starts[i]:starts[i+1]]
    cdef long long* steps
    cdef object step_key

    def __cinit__(self):
        self.tasks = NULL
        self.hypers = NULL
        self.starts = NULL
        self.steps = NULL

    def __dealloc__(self):
        free(self.tasks)
        free(self.hypers)
        free(self.starts)
        free(self.steps)

    def __init__(self, str kind, list groups, tuple keys, tuple specs, tuple s1, tuple s2):
        """kind "sgd" or "adam"; specs[i] = (lr, rule, strength, momentum, dampening,
        nesterov) for SGD or (lr, rule, strength, beta1, beta2, eps) for Adam."""
        cdef Py_ssize_t i, k, n
        cdef Hyper* h
        self.rule = RULE_SGD if kind == "sgd" else RULE_ADAM
        self.groups = groups
        self.group_dicts = tuple(groups)
        self.keys = keys
        self.snapshot = tuple(tuple(g[key] for key in keys) for g in groups)
        self.param_lists = tuple(g["params"] for g in groups)
        self.params = tuple(p for g in groups for p in g["params"])
        self.s1, self.s2 = s1, s2
        self.ngroups = len(groups)
        self.m = len(self.params)
        self.step_key = "step"
        if len(specs) != self.ngroups or len(s1) != self.m or (s2 is not None and len(s2) != self.m):
            raise ValueError("internal: plan arguments of unequal length")
        self.tasks = <Task*>malloc(max(self.m, 1) * sizeof(Task))
        self.hypers = <Hyper*>malloc(max(self.ngroups, 1) * sizeof(Hyper))
        self.starts = <Py_ssize_t*>malloc((self.ngroups + 1) * sizeof(Py_ssize_t))
        self.steps = <long long*>malloc(max(self.ngroups, 1) * sizeof(long long))
        if not (self.tasks and self.hypers and self.starts and self.steps):
            raise MemoryError()
        self.starts[0] = 0
        for i in range(self.ngroups):
            self.starts[i + 1] = self.starts[i] + len(self.param_lists[i])
            h = &self.hypers[i]
            spec = specs[i]
            _set_rule(h, spec[1], spec[0], spec[2])
            if self.rule == RULE_SGD:
                h.mu = spec[3]
                h.damp1 = 1.0 - spec[4]
                h.nesterov = spec[5]
            else:
                h.b1 = spec[3]
                h.b2 = spec[4]
                h.eps = spec[5]
        for k in range(self.m):
            p = <cnp.ndarray?>self.params[k]
            _task(&self.tasks[k], p, None)   # grads are filled in by each run
            self.tasks[k].s1 = cnp.PyArray_BYTES(<cnp.ndarray?>s1[k])
            self.tasks[k].s2 = cnp.PyArray_BYTES(<cnp.ndarray?>s2[k]) if s2 is not None else NULL

    cdef bint _unchanged(self, list groups):
        cdef Py_ssize_t i, j, k
        cdef void* value
        cdef tuple snap
        if groups is not self.groups or len(groups) != self.ngroups:
            return False
        for i in range(self.ngroups):
            g = groups[i]
            if g is not self.group_dicts[i]:
                return False
            snap = <tuple>self.snapshot[i]
            for j in range(len(self.keys)):
                value = PyDict_GetItem(g, self.keys[j])
                if value == NULL or value != <void*>snap[j]:
                    return False
            plist = self.param_lists[i]
            if PyDict_GetItem(g, "params") != <void*>plist or len(plist) != self.starts[i + 1] - self.starts[i]:
                return False
            for k in range(self.starts[i], self.starts[i + 1]):
                if (<list>plist)[k - self.starts[i]] is not self.params[k]:
                    return False
            value = PyDict_GetItem(g, self.step_key)
            if value == NULL or type(<object>value) is not int or <object>value < 0:
                return False
            self.steps[i] = <object>value
        return True

    cdef void _run_groups(self) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(self.ngroups):
            _run_all(self.rule, &self.tasks[self.starts[i]], self.starts[i + 1] - self.starts[i],
                     &self.hypers[i])

    def run(self, list groups, grads):
        """Check everything, then update every parameter and state array in place; True when
        done, False (nothing touched) when the plan is stale or an argument is bad."""
        cdef Py_ssize_t i, k, total = 0
        cdef Hyper* h
        cdef long long t
        if not (PyList_Check(grads) or PyTuple_Check(grads)) or len(grads) != self.m:
            return False
        if not self._unchanged(groups):
            return False
        for i in range(self.ngroups):
            for k in range(self.starts[i], self.starts[i + 1]):
                if not _pair_ok(self.params[k], _item(grads, k), self.hypers[i].l2):
                    return False
        for i in range(self.ngroups):
            t = self.steps[i] + 1
            h = &self.hypers[i]
            if self.rule == RULE_ADAM:
                h.step_size = h.lr / (1.0 - h.b1 ** t)
                h.bc2_sqrt = sqrt(1.0 - h.b2 ** t)
            for k in range(self.starts[i], self.starts[i + 1]):
                self.tasks[k].g = cnp.PyArray_BYTES(<cnp.ndarray>_item(grads, k))
                self.tasks[k].first = t == 1
                total += _nbytes(&self.tasks[k])
        if total < _NOGIL_BYTES:
            self._run_groups()
        else:
            # a tuple holds references to the gradients while the GIL is released
            refs = grads if PyTuple_CheckExact(grads) else tuple(grads)
            with nogil:
                self._run_groups()
        for i in range(self.ngroups):
            groups[i][self.step_key] = self.steps[i] + 1
        return True


# ------------------------------------------------------------------ configuration ----------
def compiled_features():
    """OpenMP on/off, and the instruction-set level in use, built and available."""
    return {"openmp": bool(L2D_HAVE_OPENMP), "simd": _simd, "simd_built": simd_built(),
            "simd_available": simd_available()}


def get_num_threads():
    """Threads a large tensor is split over (1 without OpenMP)."""
    return _threads_for(_parallel_threshold)


def set_num_threads(int n):
    """Set the thread count for large tensors; 0 restores OpenMP's default."""
    global _num_threads
    _num_threads = n


def get_parallel_threshold():
    """Bytes per array from which a tensor is split over threads."""
    return _parallel_threshold


def set_parallel_threshold(Py_ssize_t nbytes):
    """Split tensors whose arrays hold at least `nbytes` bytes each over threads."""
    global _parallel_threshold
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
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
        except (ValueError, OverflowError):
            raise ImportError(
                f"L2DECAY_PARALLEL_THRESHOLD must be a number of bytes >= 0, got {threshold!r}"
            ) from None


_select_from_environment()
