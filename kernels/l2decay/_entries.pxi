# Part of _kernels.pyx: the two rules' entries, l2_step and decay_step, for Python and for
# Cython (the C API declared in _kernels.pxd), and the bench-only stream loops.

# ---------------------------------------------------------------- C API (.pxd) -------------
cdef inline void _single(Op op, void* w, void* g, Py_ssize_t n, bint is_double,
                         const Hyper* h) noexcept nogil:
    cdef Task t
    _init_task(&t, w, g, n, KIND_F64 if is_double else KIND_F32, h)
    _run(op, &t)


cdef void l2_step_f32(float* w, float* grad, Py_ssize_t n, double lr, double lam) noexcept nogil:
    cdef Hyper h
    h.lr = lr
    h.lam = lam
    _single(OP_L2, w, grad, n, False, &h)


cdef void l2_step_f64(double* w, double* grad, Py_ssize_t n, double lr, double lam) noexcept nogil:
    cdef Hyper h
    h.lr = lr
    h.lam = lam
    _single(OP_L2, w, grad, n, True, &h)


cdef void decay_step_f32(float* w, const float* grad, Py_ssize_t n,
                         double lr, double decay) noexcept nogil:
    cdef Hyper h
    h.lr = lr
    h.shrink = decay
    _single(OP_DECAY, w, <void*>grad, n, False, &h)


cdef void decay_step_f64(double* w, const double* grad, Py_ssize_t n,
                         double lr, double decay) noexcept nogil:
    cdef Hyper h
    h.lr = lr
    h.shrink = decay
    _single(OP_DECAY, w, <void*>grad, n, True, &h)


# ------------------------------------------------------------------ Python entries ---------
cdef int _apply(Op op, object w, object grad, const Hyper* h) except -1:
    """Check `w`/`grad` (one array each, or equal-length lists/tuples of them) completely,
    then run `op` on every pair, with the GIL released unless the call is tiny."""
    cdef bint writes_g = op == OP_L2 or op == OP_STREAM_SWAP
    cdef Task stack[_STACK_TASKS]
    cdef Task* tasks
    cdef Py_ssize_t k, m
    if cnp.PyArray_Check(w):
        if not _pair_ok(w, grad, writes_g):
            w, grad = _wording().tensors(w, grad, writes_g)   # raises the worded error
            w, grad = w[0], grad[0]
        _task(&stack[0], w, grad, h)
        _run_tasks(op, stack, 1)
        return 0
    ws, gs = _items(w), _items(grad)
    ok = ws is not None and gs is not None and len(ws) == len(gs)
    if ok:
        for k in range(len(ws)):
            if not _pair_ok(_item(ws, k), _item(gs, k), writes_g):
                ok = False
                break
    if not ok:
        ws, gs = _wording().tensors(w, grad, writes_g)     # raises, or returns checked tuples
    m = len(ws)
    tasks = _alloc_tasks(m, stack)
    try:
        for k in range(m):
            _task(&tasks[k], _item(ws, k), _item(gs, k), h)
        if m > 1 and not _no_overlap(tasks, m, writes_g):
            _wording().tensors(ws, gs, writes_g, across=True)   # raises the worded error
            raise ValueError("w and grad arrays share memory; they must be distinct")
        # ws and gs (exact lists or tuples, or _validate's tuples) hold the arrays while the GIL
        # is released; a list could be emptied by another thread, so tuples are used then
        refs = (ws if PyTuple_CheckExact(ws) else tuple(ws), gs if PyTuple_CheckExact(gs) else tuple(gs))
        _run_tasks(op, tasks, m)
    finally:
        _free_tasks(tasks, stack)
    return 0


def l2_step(w, grad, *, lr, lam, write_grad=True):
    """L2 regularization step, in place: ``grad += lam*w; w -= lr*grad``.

    Parameters
    ----------
    w, grad : numpy.ndarray or list/tuple of numpy.ndarray
        Weights and their gradients: float32 or float64, C-contiguous, writeable, pairwise
        equal in dtype and shape.  Sequences update every pair in one call.  No array may share
        memory with another one of the call (a read-only ``grad`` may be passed twice).
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
        _apply(OP_L2, w, grad, &h)
    elif write_grad is False:
        _apply(OP_L2_KEEP, w, grad, &h)
    else:
        raise TypeError(f"write_grad must be True or False, got {write_grad!r}")


def decay_step(w, grad, *, lr, decay):
    """Weight-decay step, in place: ``w = (w - lr*grad) * (1 - decay)``, computed as
    ``z = w - lr*grad; w = z - decay*z`` (a rounded ``1 - decay`` would distort small decays);
    ``grad`` is not written.

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
    h.shrink = _real("decay", decay)
    _apply(OP_DECAY, w, grad, &h)


# ---- bench only: plain stream loops with the rules' traffic, the memory ceiling -------------
def stream_swap(w, grad):
    """Memory-ceiling loop with the L2 rule's traffic (read 2 arrays, write 2): swap w and grad."""
    cdef Hyper h
    _apply(OP_STREAM_SWAP, w, grad, &h)


def stream_axpy(w, grad, a):
    """Memory-ceiling loop with the decay rule's traffic (read 2 arrays, write 1): w += a*grad."""
    cdef Hyper h
    h.lr = _real("lr", a)
    _apply(OP_STREAM_AXPY, w, grad, &h)


def stream_adam16(w, grad, exp_avg, exp_avg_sq):
    """Memory-ceiling loop with an Adam step's traffic on 16-bit weights (bfloat16/float16 w and
    grad read, exp_avg and exp_avg_sq read and written, float32 or w's dtype, w written),
    almost no arithmetic: what any such step's memory costs at best."""
    cdef Hyper h
    cdef Task t
    ok = (_pair_ok(w, grad, False) and _state_ok(exp_avg, w) and _state_ok(exp_avg_sq, w)
          and cnp.PyArray_TYPE(<cnp.ndarray>exp_avg) == cnp.PyArray_TYPE(<cnp.ndarray>exp_avg_sq))
    if ok:
        _task(&t, w, grad, &h)
        t.s1 = _bytes(exp_avg)
        t.s2 = _bytes(exp_avg_sq)
        t.state16 = _state16(exp_avg, &t)
        ok = (t.kind == KIND_BF16 or t.kind == KIND_F16) and _no_overlap(&t, 1, False)
    if not ok:
        raise TypeError("stream_adam16 takes bfloat16 or float16 w and grad of one shape and exp_avg and "
                        "exp_avg_sq of that shape, both float32 or both w's dtype, all C-contiguous and apart")
    _run_tasks(OP_STREAM_ADAM16, &t, 1)
