# Part of _kernels.pyx: one SGD step and one Adam step over a list of tensors, as functional
# entries (sgd_step, adam_step: every hyperparameter and state array an argument, as in
# torch.optim's functional sgd()/adam()), their C API, and _optimizer_step, the same step over
# the param groups and state of an l2decay.optim optimizer, read afresh at every call.

# ------------------------------------------------------------- hyperparameters --------------
cdef inline bint _reg_ok(Hyper* h, object reg) noexcept:
    """The regularization rule (None or an l2decay.rules object) into `h`; h.lr must be set."""
    cdef double coef
    h.l2 = h.decoupled = h.decay = False
    h.lam = 0.0
    h.shrink = 0.0
    if reg is None:
        return True
    cls = type(reg)
    if cls is not _L2 and cls is not _Decoupled and cls is not _Decay:
        return False
    if not _real_ok(getattr(reg, "coef"), &coef, 1.0 if cls is _Decay else INFINITY, cls is _Decay):
        return False
    _set_rule(h, cls, coef)
    return True


cdef inline void _set_rule(Hyper* h, object cls, double coef) noexcept:
    """Rule class `cls` (L2, Decoupled, Decay) of coefficient `coef` into `h` (h.lr set, no rule
    set yet)."""
    if cls is _L2:
        h.l2 = True
        h.lam = coef
    elif cls is _Decoupled:
        h.decoupled = True
        h.shrink = h.lr * coef
    else:
        h.decay = True
        h.shrink = coef


_TORCH, _KERAS = "torch", "keras"
_VELOCITY, _MOMENTUM_BUFFER = "velocity", "momentum_buffer"


cdef inline bint _form_ok(object form, bint* keras) noexcept:
    if form is _TORCH or (type(form) is str and form == _TORCH):
        keras[0] = False
    elif form is _KERAS or (type(form) is str and form == _KERAS):
        keras[0] = True
    else:
        return False
    return True


cdef bint _sgd_hyper(Hyper* h, object lr, object momentum, object dampening, object nesterov,
                     object maximize, object reg, object momentum_form) noexcept:
    """Fill `h` from SGD's hyperparameters; False (h undefined) if any fails its fast check."""
    cdef double damp
    cdef bint maxi
    if not (_real_ok(lr, &h.lr) and _real_ok(momentum, &h.mu, 1.0, True)
            and _real_ok(dampening, &damp, 1.0) and _flag_ok(nesterov, &h.nesterov)
            and _flag_ok(maximize, &maxi) and _form_ok(momentum_form, &h.velocity)
            and _reg_ok(h, reg)):
        return False
    if h.nesterov and (h.mu == 0.0 or damp != 0.0):
        return False
    if h.velocity and damp != 0.0:
        return False
    h.damp1 = 1.0 - damp
    h.sign = -1.0 if maxi else 1.0
    h.amsgrad = False
    return True


cdef bint _adam_hyper(Hyper* h, bint* keras, object lr, object betas, object eps, object amsgrad,
                      object maximize, object reg, object eps_form) noexcept:
    """Fill `h` from Adam's hyperparameters; False (h undefined) if any fails its fast check."""
    cdef bint maxi
    if not ((PyTuple_CheckExact(betas) or PyList_CheckExact(betas)) and len(betas) == 2):
        return False
    if not (_real_ok(lr, &h.lr) and _real_ok(_item(betas, 0), &h.b1, 1.0, True)
            and _real_ok(_item(betas, 1), &h.b2, 1.0, True) and _real_ok(eps, &h.eps, INFINITY, False, True)
            and _flag_ok(amsgrad, &h.amsgrad) and _flag_ok(maximize, &maxi)
            and _form_ok(eps_form, keras) and _reg_ok(h, reg)):
        return False
    h.sign = -1.0 if maxi else 1.0
    h.mu = 0.0
    return True


cdef inline void _bias_correction(Task* t, const Hyper* h, long long step, bint keras) noexcept nogil:
    """Adam's step size and sqrt(1 - beta2**t) for this tensor's step t >= 1 (torch's formulas;
    eps_form "keras" folds the second correction into the step size)."""
    cdef double bc1 = 1.0 - h.b1 ** <double>step
    cdef double bc2 = 1.0 - h.b2 ** <double>step
    if keras:
        t.step_size = h.lr * sqrt(bc2) / bc1
        t.bc2_sqrt = 1.0
    else:
        t.step_size = h.lr / bc1
        t.bc2_sqrt = sqrt(bc2)


cdef long long MAX_STEP = (1LL << 53)   # step counts stay exact as doubles


cdef inline long long _step_ok(object value, long long low) noexcept:
    """A plain int in [low, MAX_STEP], or -1."""
    cdef int overflow = 0
    cdef long long x
    if type(value) is not int:
        return -1
    x = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or not low <= x <= MAX_STEP:
        return -1
    return x


# ------------------------------------------------------------- rounding ----------------------
# `rounding=None` picks by dtype: float32/float64 round to nearest (torch's arithmetic), the
# 16-bit formats ROUND_HALF_DEFAULT, chosen by measurement (README, Low precision).
cdef int ROUND_HALF_DEFAULT = ROUND_STOCHASTIC
_ROUNDINGS = {"nearest": ROUND_NEAREST, "stochastic": ROUND_STOCHASTIC, "compensated": ROUND_COMPENSATED}


cdef inline bint _rounding_ok(object value, int* out) noexcept:
    """None (-1: by dtype) or one of _ROUNDINGS' names."""
    if value is None:
        out[0] = -1
        return True
    if type(value) is not str or value not in _ROUNDINGS:
        return False
    out[0] = _ROUNDINGS[value]
    return True


def default_rounding(cnp.dtype dtype):
    """The rounding that ``rounding=None`` gives weights of numpy `dtype`: "nearest" for float32
    and float64, the 16-bit default (README, Low precision) for bfloat16 and float16."""
    cdef int kind = _type_kind(dtype.type_num)
    if kind < 0:
        raise TypeError(f"dtype must be float32, float64, bfloat16 or float16, got {dtype}")
    rounding = _effective_rounding(-1, kind)
    return next(name for name, r in _ROUNDINGS.items() if r == rounding)


cdef inline int _state_type(cnp.ndarray w) noexcept:
    """numpy type of the optimizer state of w by default: float32 for 16-bit weights, else w's."""
    cdef int k = _kind(w)
    return cnp.NPY_FLOAT if k == KIND_BF16 or k == KIND_F16 else cnp.PyArray_TYPE(w)


cdef inline bint _state_dtype_ok(object value, bint* narrow) noexcept:
    """An optimizer's state_dtype: None (16-bit params keep float32 state) or "param" (each
    param's own dtype: `narrow`)."""
    if value is None:
        narrow[0] = False
        return True
    narrow[0] = True
    return type(value) is str and value == "param"


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


cdef inline bint _set_rounding(Task* t, int rounding, unsigned long long seed, long long step,
                               Py_ssize_t index) noexcept nogil:
    """Task t's rounding (-1: by dtype) and, for "stochastic", the key of (seed, step, index);
    False if stochastic rounding is asked of weights wider than 16 bits.  Its compensation
    buffer, if any, is the front end's business (numpy arrays or torch tensors)."""
    rounding = _effective_rounding(rounding, t.kind)
    if rounding == ROUND_STOCHASTIC and not (t.kind == KIND_BF16 or t.kind == KIND_F16):
        return False
    t.rounding = rounding
    if rounding == ROUND_STOCHASTIC:
        t.key = _key(seed, step, index)
    return True


# The arrays of a call are held (one reference each, in a C array of HOLD slots per tensor)
# while the GIL may be released: another thread could drop the last reference to one.  The state
# arrays born in the call wait there too until they are published.  No Python list: building and
# freeing one cost a tenth of a small step.
cdef enum:
    HOLD = 9                # per tensor: w, g, s1, s2, s3, comp, then ...
    HOLD_BORN = 6           # ... the state array born in this call (buffer or max_exp_avg_sq),
    HOLD_BORN_COMP = 7      # ... the compensation buffer born in this call,
    HOLD_OWNER = 8          # ... the dict its state lives in (l2decay.torch's step)


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


cdef inline object _born(PyObject** held, Py_ssize_t k, Py_ssize_t slot):
    """The array born in this call for tensor k in `slot`, or None."""
    cdef PyObject* a = held[k * HOLD + slot]
    return <object>a if a != NULL else None


cdef inline bint _any_born(PyObject** held, Py_ssize_t m, Py_ssize_t slot) noexcept:
    cdef Py_ssize_t k
    for k in range(m):
        if held[k * HOLD + slot] != NULL:
            return True
    return False


cdef inline bint _round_task(Task* t, object w, int rounding, object comp, unsigned long long seed,
                             long long step, Py_ssize_t index, PyObject** held) noexcept:
    """_set_rounding, and with "compensated" the compensation buffer (None: born zero now,
    held at HOLD_BORN_COMP)."""
    if not _set_rounding(t, rounding, seed, step, index):
        return False
    if t.rounding == ROUND_COMPENSATED:
        if comp is None:
            comp = cnp.PyArray_ZEROS(cnp.PyArray_NDIM(<cnp.ndarray>w), cnp.PyArray_DIMS(<cnp.ndarray>w),
                                     cnp.PyArray_TYPE(<cnp.ndarray>w), 0)
            _hold(held, HOLD_BORN_COMP, comp)
        elif not _comp_ok(comp, w):
            return False
        t.comp = _bytes(comp)
        _hold(held, 5, comp)
    return True


cdef inline bint _seed_ok(object value, unsigned long long* out) noexcept:
    cdef int overflow = 0
    cdef long long x
    if type(value) is not int:
        return False
    x = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or x < 0:
        return False
    out[0] = <unsigned long long>x
    return True


# ------------------------------------------------------------- one tensor's task ------------
cdef inline bint _sgd_task(Task* t, const Hyper* h, object w, object g, object buf,
                           PyObject** held, bint narrow) noexcept:
    """Check one SGD tensor and fill its task, its arrays held in held[0:HOLD].  A
    momentum buffer that is None is born now (held at HOLD_BORN), in w's dtype when `narrow`
    (state_dtype "param"), else in _state_type's."""
    if not _pair_ok(w, g, False):
        return False
    _task(t, w, g, h)
    _hold(held, 0, w)
    _hold(held, 1, g)
    if h.mu == 0.0:
        return True
    if buf is None:
        buf = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(<cnp.ndarray>w), cnp.PyArray_DIMS(<cnp.ndarray>w),
                                cnp.PyArray_TYPE(<cnp.ndarray>w) if narrow else _state_type(<cnp.ndarray>w), 0)
        _hold(held, HOLD_BORN, buf)
        t.first = True
    elif not _state_ok(buf, w):
        return False
    _hold(held, 2, buf)
    t.s1 = _bytes(buf)
    t.state16 = _state16(buf, t)
    return True


cdef inline bint _adam_task(Task* t, const Hyper* h, bint keras, object w, object g, object m,
                            object v, object vmax, long long step, PyObject** held) noexcept:
    """Check one Adam tensor (step t >= 1 is the step being taken) and fill its task, its arrays
    held in held[0:HOLD].  The moments share one dtype (_state_ok's).  With amsgrad, a
    max_exp_avg_sq that is None is born now, zero, in their dtype (held at HOLD_BORN)."""
    if not (_pair_ok(w, g, False) and _state_ok(m, w) and _state_ok(v, w)
            and cnp.PyArray_TYPE(<cnp.ndarray>m) == cnp.PyArray_TYPE(<cnp.ndarray>v)):
        return False
    _task(t, w, g, h)
    _hold(held, 0, w)
    _hold(held, 1, g)
    _hold(held, 2, m)
    _hold(held, 3, v)
    t.s1 = _bytes(m)
    t.s2 = _bytes(v)
    t.state16 = _state16(m, t)
    if h.amsgrad:
        if vmax is None:
            vmax = cnp.PyArray_ZEROS(cnp.PyArray_NDIM(<cnp.ndarray>w), cnp.PyArray_DIMS(<cnp.ndarray>w),
                                     cnp.PyArray_TYPE(<cnp.ndarray>m), 0)
            _hold(held, HOLD_BORN, vmax)
        elif not (_state_ok(vmax, w) and cnp.PyArray_TYPE(<cnp.ndarray>vmax) == cnp.PyArray_TYPE(<cnp.ndarray>m)):
            return False
        _hold(held, 4, vmax)
        t.s3 = _bytes(vmax)
    t.step = step
    _bias_correction(t, h, step, keras)
    return True


# ---------------------------------------------------------------- functional entries --------
cdef int _internal(str what) except -1:
    raise AssertionError(f"internal error: {what} passed l2decay._validate but not the C checks")


def sgd_step(params, grads, momentum_buffers=None, *, lr, momentum=0.0, dampening=0.0,
             nesterov=False, maximize=False, reg=None, momentum_form="torch", rounding=None,
             seed=0, step=None, compensations=None):
    """One SGD step over a list of tensors, in place; ``grads`` are only read.

    Per tensor, with g its gradient (``-g`` when `maximize`) and b its momentum buffer:

    - `reg`: ``L2(lam)``: ``g = g + lam*w`` (in registers);  ``Decoupled(lam)``:
      ``w = w * (1 - lr*lam)`` first;  ``Decay(d)``: ``w = w * (1 - d)`` last.
    - momentum_form "torch" (torch.optim.SGD): ``b = g`` when born, else
      ``b = momentum*b + (1 - dampening)*g``; ``w = w - lr*(g + momentum*b)`` with `nesterov`,
      else ``w = w - lr*b``.  Without momentum ``w = w - lr*g``.
    - momentum_form "keras" (Keras, scikit-learn: the buffer holds a velocity): ``b = -lr*g``
      when born, else ``b = momentum*b - lr*g``; ``w = w + momentum*b - lr*g`` with `nesterov`,
      else ``w = w + b``.  The same as "torch" at a constant lr, not under a schedule.

    Parameters
    ----------
    params, grads : list/tuple of numpy.ndarray
        float32 or float64 (or 16-bit: see adam_step), C-contiguous, pairwise equal in dtype
        and shape; params writeable.
    momentum_buffers : list of numpy.ndarray or None, optional
        Needed when momentum > 0: one per param, like it and writeable (a 16-bit param's:
        float32 or its own dtype); an entry that is None is born from this step (a new array,
        float32 for a 16-bit param, is put in its place in the list).
    lr : float >= 0;  momentum : float in [0, 1);  dampening : float in [0, 1]
    nesterov, maximize : bool
    reg : None, L2, Decoupled or Decay
    momentum_form : "torch" or "keras" (dampening must be 0 with "keras")
    rounding, seed, step, compensations : how new weights are stored, see :func:`adam_step`
        (`step`, an int >= 1 or one per tensor, is needed by "stochastic" only)

    No array may share memory with another one of the call (grads may repeat).  Returns None.
    On bad input raises TypeError/ValueError and modifies nothing.
    """
    cdef Hyper h
    cdef Task stack[_STACK_TASKS]
    cdef Task* tasks
    cdef PyObject* held_stack[_STACK_TASKS * HOLD]
    cdef PyObject** held
    cdef Py_ssize_t k, m
    cdef int rnd
    cdef unsigned long long sd = 0
    cdef long long t
    if not (_rounding_ok(rounding, &rnd) and _seed_ok(seed, &sd)):
        # (refused, or a value only the fast checks refuse, a numpy str or int say: normalized)
        rounding, seed = _validate.rounding_args(rounding, seed)
        if not (_rounding_ok(rounding, &rnd) and _seed_ok(seed, &sd)):
            _internal("sgd_step's rounding")
    if not _sgd_hyper(&h, lr, momentum, dampening, nesterov, maximize, reg, momentum_form):
        n = _validate.sgd_hyper(dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                                     maximize=maximize, reg=reg, momentum_form=momentum_form), "")
        if not _sgd_hyper(&h, n["lr"], n["momentum"], n["dampening"], n["nesterov"], n["maximize"],
                          n["reg"], n["momentum_form"]):
            _internal("sgd_step's hyperparameters")
    ps, gs = _items(params), _items(grads)
    bs = _items(momentum_buffers) if momentum_buffers is not None else None
    ok = (ps is not None and gs is not None and len(ps) == len(gs)
          and (h.mu == 0.0 or (bs is not None and len(bs) == len(ps))))
    cs = _items(compensations) if compensations is not None else None
    steps = _items(step) if step is not None and type(step) is not int else None
    ok = ok and (cs is None or len(cs) == len(ps)) and (steps is None or len(steps) == len(ps))
    m = len(ps) if ok else 0
    tasks, held = NULL, NULL
    try:
        tasks = _alloc_tasks(m, stack)
        held = _alloc_held(m, held_stack)
        for k in range(m):
            t = _step_ok(step if steps is None else _item(steps, k), 1) if step is not None else 0
            if t < 0 or not (_sgd_task(&tasks[k], &h, _item(ps, k), _item(gs, k),
                                       _item(bs, k) if h.mu != 0.0 else None, held + k * HOLD, False)
                             and _round_task(&tasks[k], _item(ps, k), rnd, _item(cs, k) if cs is not None else None,
                                             sd, t, k, held + k * HOLD)) \
                    or (tasks[k].rounding == ROUND_STOCHASTIC and step is None) \
                    or (tasks[k].rounding == ROUND_COMPENSATED and cs is None):
                ok = False
                break
        if ok and m > 0 and not _no_overlap(tasks, m, False):   # (one tensor too: its state vs its grad)
            ok = False
        if not ok:
            _validate.sgd_tensors(params if ps is None else ps, grads if gs is None else gs,
                                  momentum_buffers if bs is None else bs, h.mu != 0.0)
            _validate.rounding_tensors(ps, rounding, step, compensations)
            _internal("sgd_step's arrays")
        if _any_born(held, m, HOLD_BORN_COMP) and not PyList_Check(compensations):
            raise TypeError("compensations must be a list when an entry is None (a new array is put "
                            "in its place)")
        if h.mu != 0.0 and _any_born(held, m, HOLD_BORN) and not PyList_Check(momentum_buffers):
            raise TypeError("momentum_buffers must be a list when an entry is None (a new buffer "
                            "is put in its place)")
        _run_tasks(OP_SGD, tasks, m)
        for k in range(m):
            if held[k * HOLD + HOLD_BORN] != NULL:
                momentum_buffers[k] = _born(held, k, HOLD_BORN)
            if held[k * HOLD + HOLD_BORN_COMP] != NULL:
                compensations[k] = _born(held, k, HOLD_BORN_COMP)
    finally:
        _release_held(held, m, held_stack)
        _free_tasks(tasks, stack)


def adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs=None, *, step, lr,
              betas=(0.9, 0.999), eps=1e-8, amsgrad=False, maximize=False, reg=None,
              eps_form="torch", rounding=None, seed=0, compensations=None):
    """One Adam step over a list of tensors, in place; ``grads`` are only read.

    Per tensor, with g its gradient (``-g`` when `maximize`), t its step (the one being taken,
    >= 1), m, v its moments:

    - `reg`: ``L2(lam)``: ``g = g + lam*w`` (in registers, so it enters m and v);
      ``Decoupled(lam)``: ``w = w * (1 - lr*lam)`` first (torch's AdamW); ``Decay(d)``:
      ``w = w * (1 - d)`` last.
    - ``m = beta1*m + (1 - beta1)*g;  v = beta2*v + (1 - beta2)*g*g``; with `amsgrad`
      ``vmax = max(vmax, v)`` is used for v below.
    - eps_form "torch" (torch.optim.Adam):
      ``w = w - (lr/(1 - beta1**t)) * m / (sqrt(v)/sqrt(1 - beta2**t) + eps)``.
    - eps_form "keras" (Keras, scikit-learn, thinc):
      ``w = w - (lr*sqrt(1 - beta2**t)/(1 - beta1**t)) * m / (sqrt(v) + eps)``.

    Parameters
    ----------
    params, grads, exp_avgs, exp_avg_sqs : list/tuple of numpy.ndarray
        float32 or float64, C-contiguous, equal in dtype and shape per tensor; all but grads
        writeable.
    max_exp_avg_sqs : list of numpy.ndarray or None
        Needed with amsgrad: like exp_avgs; an entry that is None is born zero (a new array is
        put in its place in the list).
    step : int >= 1, or a list/tuple of them (one per tensor)
    lr : float >= 0;  betas : pair of floats in [0, 1);  eps : float > 0
    amsgrad, maximize : bool
    reg : None, L2, Decoupled or Decay
    eps_form : "torch" or "keras"
    rounding : None, "nearest", "stochastic" or "compensated"
        How each new weight is stored.  "nearest": round to nearest (torch).  "stochastic":
        rounded up or down at random, unbiased, from a counter-based hash of (seed, step, tensor
        index, element index), so the bits are the same for any thread count and instruction
        set and after a resume; 16-bit weights only.  "compensated": the rounding error is kept
        in `compensations` (Kahan summation), decay included.  None: "nearest" for
        float32/float64, the 16-bit default (README) for bfloat16/float16.
    seed : int >= 0, for "stochastic"
    compensations : list of numpy.ndarray or None, for "compensated"
        One per param, its dtype and shape; an entry that is None is born zero (a new array
        is put in its place in the list).

    Weights and gradients may also be bfloat16 (``ml_dtypes.bfloat16``) or float16: the
    arithmetic is float32, and a tensor's state arrays (moments) are all float32 or all its
    own 16-bit dtype (the optimizers' state_dtype "param"), stored like the weights: rounded
    stochastically with "stochastic" (random bits of their own), else to nearest.

    No array may share memory with another one of the call (grads may repeat).  Returns None.
    On bad input raises TypeError/ValueError and modifies nothing.
    """
    cdef Hyper h
    cdef bint keras
    cdef Task stack[_STACK_TASKS]
    cdef Task* tasks
    cdef PyObject* held_stack[_STACK_TASKS * HOLD]
    cdef PyObject** held
    cdef Py_ssize_t k, m
    cdef long long t
    cdef int rnd
    cdef unsigned long long sd = 0
    if not (_rounding_ok(rounding, &rnd) and _seed_ok(seed, &sd)):
        # (refused, or a value only the fast checks refuse, a numpy str or int say: normalized)
        rounding, seed = _validate.rounding_args(rounding, seed)
        if not (_rounding_ok(rounding, &rnd) and _seed_ok(seed, &sd)):
            _internal("adam_step's rounding")
    if not _adam_hyper(&h, &keras, lr, betas, eps, amsgrad, maximize, reg, eps_form):
        n = _validate.adam_hyper(dict(lr=lr, betas=betas, eps=eps, amsgrad=amsgrad, maximize=maximize,
                                      reg=reg, eps_form=eps_form), "")
        if not _adam_hyper(&h, &keras, n["lr"], n["betas"], n["eps"], n["amsgrad"], n["maximize"],
                           n["reg"], n["eps_form"]):
            _internal("adam_step's hyperparameters")
    ps, gs, ms, vs = _items(params), _items(grads), _items(exp_avgs), _items(exp_avg_sqs)
    xs = _items(max_exp_avg_sqs) if max_exp_avg_sqs is not None else None
    steps = _items(step) if type(step) is not int else None
    ok = (ps is not None and gs is not None and ms is not None and vs is not None
          and len(gs) == len(ps) and len(ms) == len(ps) and len(vs) == len(ps)
          and (not h.amsgrad or (xs is not None and len(xs) == len(ps)))
          and (type(step) is int or (steps is not None and len(steps) == len(ps))))
    cs = _items(compensations) if compensations is not None else None
    ok = ok and (cs is None or len(cs) == len(ps))
    m = len(ps) if ok else 0
    tasks, held = NULL, NULL
    try:
        tasks = _alloc_tasks(m, stack)
        held = _alloc_held(m, held_stack)
        for k in range(m):
            t = _step_ok(step if steps is None else _item(steps, k), 1)
            if t < 0 or not (_adam_task(&tasks[k], &h, keras, _item(ps, k), _item(gs, k), _item(ms, k),
                                        _item(vs, k), _item(xs, k) if h.amsgrad else None, t, held + k * HOLD)
                             and _round_task(&tasks[k], _item(ps, k), rnd, _item(cs, k) if cs is not None else None,
                                             sd, t, k, held + k * HOLD)) \
                    or (tasks[k].rounding == ROUND_COMPENSATED and cs is None):
                ok = False
                break
        if ok and m > 0 and not _no_overlap(tasks, m, False):   # (one tensor too: its state vs its grad)
            ok = False
        if not ok:
            _validate.adam_tensors(params if ps is None else ps, grads if gs is None else gs,
                                   exp_avgs if ms is None else ms, exp_avg_sqs if vs is None else vs,
                                   max_exp_avg_sqs if xs is None else xs, h.amsgrad, step)
            _validate.rounding_tensors(ps, rounding, step, compensations)
            _internal("adam_step's arrays")
        if _any_born(held, m, HOLD_BORN_COMP) and not PyList_Check(compensations):
            raise TypeError("compensations must be a list when an entry is None (a new array is put "
                            "in its place)")
        if h.amsgrad and _any_born(held, m, HOLD_BORN) and not PyList_Check(max_exp_avg_sqs):
            raise TypeError("max_exp_avg_sqs must be a list when an entry is None (a new array "
                            "is put in its place)")
        _run_tasks(OP_ADAM, tasks, m)
        for k in range(m):
            if held[k * HOLD + HOLD_BORN] != NULL:
                max_exp_avg_sqs[k] = _born(held, k, HOLD_BORN)
            if held[k * HOLD + HOLD_BORN_COMP] != NULL:
                compensations[k] = _born(held, k, HOLD_BORN_COMP)
    finally:
        _release_held(held, m, held_stack)
        _free_tasks(tasks, stack)


# ---------------------------------------------------------------- optimizer step ------------
cdef extern from "Python.h":
    # borrowed reference; NULL if absent, or with an exception set if a key's __eq__ raised
    # (PyDict_GetItem would save and restore the error state around every lookup)
    void* PyDict_GetItemWithError(object d, object key)
    void* PyErr_Occurred()


cdef inline object _get(dict d, str key):
    """d[key], or None when absent."""
    cdef void* v = PyDict_GetItemWithError(d, key)
    if v == NULL:
        if PyErr_Occurred() != NULL:
            raise
        return None
    return <object>v


cdef extern from "Python.h":
    int PyDict_Next(object d, Py_ssize_t* pos, PyObject** key, PyObject** value)


# The keys of a param group the step reads, in the order l2decay.optim's groups hold them.
_SGD_KEYS = ("params", "lr", "momentum", "dampening", "nesterov", "maximize", "reg", "momentum_form",
             "rounding", "seed", "state_dtype")
_ADAM_KEYS = ("params", "lr", "betas", "eps", "amsgrad", "maximize", "reg", "eps_form", "rounding", "seed",
              "state_dtype")
cdef enum:
    _NKEYS = 11


cdef int _fields(dict d, tuple keys, PyObject** out) except -1:
    """out[i] = d[keys[i]] for the _NKEYS keys (borrowed; NULL when absent).  One pass over d
    matches its keys by identity, expecting them in the order of `keys` (a group's keys are the
    same interned strings): a third of the cost of looking each up.  Any key not matched that
    way is looked up."""
    cdef Py_ssize_t pos = 0, i = 0, j
    cdef int found = 0
    cdef PyObject* key
    cdef PyObject* value
    for j in range(_NKEYS):
        out[j] = NULL
    while PyDict_Next(d, &pos, &key, &value):
        if i >= _NKEYS or key != PyTuple_GET_ITEM(keys, i):
            for i in range(_NKEYS):
                if key == PyTuple_GET_ITEM(keys, i):
                    break
            else:
                i = 0
                continue
        if out[i] == NULL:
            out[i] = value
            found += 1
        i += 1
    if found < _NKEYS:
        for j in range(_NKEYS):
            if out[j] == NULL:
                out[j] = <PyObject*>PyDict_GetItemWithError(d, <object>PyTuple_GET_ITEM(keys, j))
                if out[j] == NULL and PyErr_Occurred() != NULL:
                    raise
    return 0


cdef inline object _obj(PyObject* p):
    return <object>p if p != NULL else None


cdef enum:
    _STACK_GROUPS = 4


def _optimizer_step(bint adam, list groups, tuple slots, list flat, list state, grads):
    """One step of an l2decay.optim optimizer, everything read afresh: `groups` its param_groups,
    `flat` its params in the order the user gave them (grads and state follow that order),
    slots[i] the indices in `flat` of group i's params.  Checks everything, then updates every
    param and state array in place and stores new buffers and step counts in `state`; returns
    True.  Returns False, having touched nothing, if any fast check fails: the optimizer then
    words the error (or normalizes a value only the fast checks refuse)."""
    cdef Py_ssize_t ngroups = len(groups), m = len(flat), i, j, k, idx, nt = 0
    cdef Hyper hstack[_STACK_GROUPS]
    cdef Hyper* hs = hstack
    cdef Hyper* h
    cdef Task stack[_STACK_TASKS]
    cdef Task* tasks
    cdef PyObject* held_stack[_STACK_TASKS * HOLD]
    cdef PyObject** held
    cdef PyObject* f[_NKEYS]
    cdef bint keras = False, ok = True, narrow = False
    cdef bint publish = adam    # anything to write back to `state` after the step
    cdef long long t
    cdef int rnd, eff
    cdef unsigned long long sd = 0
    cdef dict g, st
    gs = _items(grads)
    if gs is None or len(gs) != m or len(slots) != ngroups or len(state) != m:
        return False
    tasks, held = NULL, NULL
    try:
        if ngroups > _STACK_GROUPS:
            hs = <Hyper*>malloc(ngroups * sizeof(Hyper))
            if hs == NULL:
                raise MemoryError()
        tasks = _alloc_tasks(m, stack)
        held = _alloc_held(m, held_stack)
        for i in range(ngroups):
            h = &hs[i]
            if type(groups[i]) is not dict or type(slots[i]) is not tuple:
                return False
            g = <dict>groups[i]
            slot = <tuple>slots[i]
            _fields(g, _ADAM_KEYS if adam else _SGD_KEYS, f)
            params = _obj(f[0])
            if not (PyList_CheckExact(params) or PyTuple_CheckExact(params)) or len(params) != len(slot):
                return False
            if adam:
                ok = _adam_hyper(h, &keras, _obj(f[1]), _obj(f[2]), _obj(f[3]), _obj(f[4]), _obj(f[5]),
                                 _obj(f[6]), _obj(f[7]))
            else:
                ok = _sgd_hyper(h, _obj(f[1]), _obj(f[2]), _obj(f[3]), _obj(f[4]), _obj(f[5]), _obj(f[6]),
                                _obj(f[7]))
                key = _VELOCITY if h.velocity else _MOMENTUM_BUFFER
            if not (ok and _rounding_ok(_obj(f[8]), &rnd) and _state_dtype_ok(_obj(f[10]), &narrow)):
                return False
            seed = _obj(f[9])     # parsed when a tensor rounds stochastically
            for j in range(len(slot)):
                idx = <Py_ssize_t>slot[j]
                p = _item(params, j)
                if nt == m or not 0 <= idx < m or p is not flat[idx] or type(state[idx]) is not dict:
                    return False
                st = <dict>state[idx]
                if adam:
                    t = _step_ok(_get(st, "step"), 0)
                    if t < 0 or t == MAX_STEP or not _adam_task(
                            &tasks[nt], h, keras, p, _item(gs, idx), _get(st, "exp_avg"),
                            _get(st, "exp_avg_sq"), _get(st, "max_exp_avg_sq"), t + 1, held + nt * HOLD):
                        return False
                elif not _sgd_task(&tasks[nt], h, p, _item(gs, idx), _get(st, key), held + nt * HOLD, narrow):
                    return False
                # the state rounding needs, looked up only when it is needed (the common case,
                # rounding to nearest, pays nothing for the others)
                eff = _effective_rounding(rnd, tasks[nt].kind)
                if eff == ROUND_STOCHASTIC and not _seed_ok(seed, &sd):
                    return False
                if not adam and eff == ROUND_STOCHASTIC:
                    # SGD counts steps only for stochastic rounding's random bits
                    sv = _get(st, "step")
                    t = _step_ok(sv, 0) if sv is not None else 0
                    if t < 0 or t == MAX_STEP:
                        return False
                    tasks[nt].step = t + 1
                if not _round_task(&tasks[nt], p, eff, _get(st, "compensation") if eff == ROUND_COMPENSATED else None,
                                   sd, tasks[nt].step, idx, held + nt * HOLD):
                    return False
                publish = publish or tasks[nt].first or eff != ROUND_NEAREST
                nt += 1
        if nt != m or (m > 0 and not _no_overlap(tasks, m, False)):
            return False
        _run_tasks(OP_ADAM if adam else OP_SGD, tasks, m)
        if not publish:     # (SGD rounding to nearest, its buffers in place: the common case)
            return True
        # publish: step counts and the arrays born in this step
        nt = 0
        for i in range(ngroups):
            slot = <tuple>slots[i]
            key = _VELOCITY if hs[i].velocity else _MOMENTUM_BUFFER
            for j in range(len(slot)):
                st = <dict>state[<Py_ssize_t>slot[j]]
                born = _born(held, nt, HOLD_BORN_COMP)
                if born is not None:
                    st["compensation"] = born
                if adam or tasks[nt].rounding == ROUND_STOCHASTIC:
                    st["step"] = tasks[nt].step + 0     # (a new int object)
                born = _born(held, nt, HOLD_BORN)
                if born is not None:
                    st["max_exp_avg_sq" if adam else key] = born
                nt += 1
        return True
    finally:
        _release_held(held, m, held_stack)
        _free_tasks(tasks, stack)
        if hs != hstack:
            free(hs)


# ---------------------------------------------------------------- C API (.pxd) -------------
cdef inline void _c_reg(Hyper* h, int reg, double strength) noexcept nogil:
    h.l2 = reg == REG_L2
    h.decoupled = reg == REG_DECOUPLED
    h.decay = reg == REG_DECAY
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
