# Part of _kernels.pyx: what the SGD and Adam steps share (bias correction, rounding, the
# references a call holds) and their C API.

cdef inline void _bias_correction(Task* t, const Hyper* h, long long step, bint keras,
                                  bint lr32=False) noexcept nogil:
    """Adam's step size and sqrt(1 - beta2**t) for this tensor's step t >= 1 (torch's formulas;
    eps_form "keras" folds the second correction into the step size; `lr32`: lr is a float32
    tensor's, and torch divides it in float32)."""
    cdef double bc1 = 1.0 - h.b1 ** <double>step
    cdef double bc2 = 1.0 - h.b2 ** <double>step
    if keras:
        t.step_size = h.lr * sqrt(bc2) / bc1
        t.bc2_sqrt = 1.0
    else:
        t.step_size = <float>(<float>h.lr / <float>bc1) if lr32 else h.lr / bc1
        t.bc2_sqrt = sqrt(bc2)


cdef inline long long _step_ok(object value, long long low) noexcept:
    """A plain int in [low, MAX_STEP], or -1."""
    cdef int overflow = 0
    cdef long long x
    if type(value) is not int:
        return -1
    x = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or not low <= x <= C_MAX_STEP:
        return -1
    return x


# ------------------------------------------------------------- rounding ----------------------
# `rounding=None` picks by dtype: float32/float64 round to nearest (torch's arithmetic), the
# 16-bit formats ROUND_HALF_DEFAULT, chosen by measurement (docs/low-precision.md).
cdef int ROUND_HALF_DEFAULT = ROUND_STOCHASTIC


def default_rounding(cnp.dtype dtype):
    """The rounding that ``rounding=None`` gives weights of numpy `dtype`: "nearest" for float32
    and float64, the 16-bit default (docs/low-precision.md) for bfloat16 and float16."""
    cdef int kind = _type_kind(dtype.type_num)
    if kind < 0:
        raise TypeError(f"dtype must be float32, float64, bfloat16 or float16, got {dtype}")
    rounding = _effective_rounding(-1, kind)
    return ROUNDINGS[rounding]


cdef inline unsigned int _key(unsigned long long seed, long long step, Py_ssize_t index) noexcept nogil:
    """32 bits of (seed, step, tensor index) for stochastic rounding (splitmix64's mixer)."""
    cdef unsigned long long z = seed * 0x9E3779B97F4A7C15ULL + <unsigned long long>step * 0xBF58476D1CE4E5B9ULL \
        + <unsigned long long>index * 0x94D049BB133111EBULL
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return <unsigned int>((z ^ (z >> 31)) >> 32)


cdef inline int _effective_rounding(int rounding, int kind) noexcept nogil:
    """`rounding`, or for -1 (None) the dtype's default."""
    if rounding >= 0:
        return rounding
    return ROUND_HALF_DEFAULT if kind == KIND_BF16 or kind == KIND_F16 else ROUND_NEAREST


# The arrays of a call are held (one reference each, in a C array of HOLD slots per tensor)
# while the GIL may be released: another thread could drop the last reference to one.  No
# Python list: building and freeing one cost a tenth of a small step.
cdef enum:
    HOLD = 9                # per tensor: w, g, s1, s2, s3, comp, its Settings, 8-bit scales 1, 2


cdef inline PyObject** _alloc_held(Py_ssize_t m, PyObject** stack) except NULL:
    """HOLD empty slots per tensor: `stack` (room for _STACK_TASKS tensors) when m fits, else
    a heap array; release with _release_held."""
    cdef PyObject** held = stack
    if m > _STACK_TASKS:
        held = <PyObject**>malloc(m * HOLD * sizeof(PyObject*))
        if held == NULL:
            raise MemoryError()
    memset(held, 0, m * HOLD * sizeof(PyObject*))
    return held


cdef inline void _release_held(PyObject** held, Py_ssize_t m, PyObject** stack) noexcept:
    cdef Py_ssize_t k
    if held == NULL:
        return
    for k in range(m * HOLD):
        Py_XDECREF(held[k])
    if held != stack:
        free(held)


cdef inline void _hold(PyObject** held, Py_ssize_t slot, object a) noexcept:
    Py_INCREF(a)
    Py_XDECREF(held[slot])
    held[slot] = <PyObject*>a


# ---------------------------------------------------------------- C API (.pxd) -------------
cdef inline void _c_reg(Hyper* h, int reg, double strength) noexcept nogil:
    h.l2 = reg == REG_L2
    h.decoupled = reg == REG_DECOUPLED
    h.decay = reg == REG_DECAY
    h.cautious = False
    h.lam = strength if h.l2 else 0.0
    h.shrink = h.lr * strength if h.decoupled else (strength if h.decay else 0.0)


cdef inline void _c_sgd(void* w, const void* grad, void* buf, Py_ssize_t n, bint is_double,
                        double lr, double momentum, double dampening, bint nesterov, bint maximize,
                        int reg, double strength, bint first, bint velocity) noexcept nogil:
    cdef Hyper h
    cdef Task t
    h.lr = lr
    h.mu = momentum
    h.damp1 = 1.0 - dampening
    h.nesterov = nesterov
    h.velocity = velocity
    h.sign = -1.0 if maximize else 1.0
    h.amsgrad = False
    _c_reg(&h, reg, strength)
    _init_task(&t, w, <void*>grad, n, KIND_F64 if is_double else KIND_F32, &h)
    t.s1 = <char*>buf
    t.first = first
    _run(OP_SGD, &t)


cdef void sgd_step_f32(float* w, const float* grad, float* momentum_buffer, Py_ssize_t n,
                       double lr, double momentum, double dampening, bint nesterov,
                       bint maximize, int reg, double strength, bint first,
                       bint velocity) noexcept nogil:
    _c_sgd(w, grad, momentum_buffer, n, False, lr, momentum, dampening, nesterov, maximize, reg,
           strength, first, velocity)


cdef void sgd_step_f64(double* w, const double* grad, double* momentum_buffer, Py_ssize_t n,
                       double lr, double momentum, double dampening, bint nesterov,
                       bint maximize, int reg, double strength, bint first,
                       bint velocity) noexcept nogil:
    _c_sgd(w, grad, momentum_buffer, n, True, lr, momentum, dampening, nesterov, maximize, reg,
           strength, first, velocity)


cdef inline void _c_adam(void* w, const void* grad, void* m, void* v, void* vmax, Py_ssize_t n,
                         bint is_double, long long step, double lr, double beta1, double beta2,
                         double eps, bint maximize, int reg, double strength,
                         bint keras) noexcept nogil:
    cdef Hyper h
    cdef Task t
    h.lr = lr
    h.b1 = beta1
    h.b2 = beta2
    h.eps = eps
    h.mu = 0.0
    h.amsgrad = vmax != NULL
    h.sign = -1.0 if maximize else 1.0
    _c_reg(&h, reg, strength)
    _init_task(&t, w, <void*>grad, n, KIND_F64 if is_double else KIND_F32, &h)
    t.s1 = <char*>m
    t.s2 = <char*>v
    t.s3 = <char*>vmax
    _bias_correction(&t, &h, step, keras)
    _run(OP_ADAM, &t)


cdef void adam_step_f32(float* w, const float* grad, float* exp_avg, float* exp_avg_sq,
                        float* max_exp_avg_sq, Py_ssize_t n, long long step, double lr,
                        double beta1, double beta2, double eps, bint maximize, int reg,
                        double strength, bint keras) noexcept nogil:
    _c_adam(w, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, False, step, lr, beta1, beta2, eps,
            maximize, reg, strength, keras)


cdef void adam_step_f64(double* w, const double* grad, double* exp_avg, double* exp_avg_sq,
                        double* max_exp_avg_sq, Py_ssize_t n, long long step, double lr,
                        double beta1, double beta2, double eps, bint maximize, int reg,
                        double strength, bint keras) noexcept nogil:
    _c_adam(w, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, True, step, lr, beta1, beta2, eps,
            maximize, reg, strength, keras)
