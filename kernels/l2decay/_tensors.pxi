# Part of _kernels.pyx: the optimizer step over torch tensors (l2decay.torch), reading
# param_groups and state afresh at every call.  This module never imports torch: it reads the
# tensors through their own methods (dtype, is_cpu, is_contiguous, data_ptr, numel), and
# l2decay.torch passes the torch objects it compares with:
# kinds = (float32, float64, strided, Tensor, Parameter, bfloat16, float16, then torch's C
# accessors TensorBase.dtype, .is_cpu, .is_contiguous, .data_ptr, .numel, .grad, .shape, then
# whether hash(t) is id(t) for a plain Tensor and Parameter).
#
# For a plain Tensor or Parameter those accessors are called directly (the descriptor's own
# C get / vectorcall): `t.data_ptr()` first looks the name up in the type and in the
# Parameter's instance dict, a sixth of a small model's step.  Other subclasses may override
# any of them, so they are read the ordinary way.
cdef extern from "Python.h":
    object PyObject_Vectorcall(object callable, PyObject** args, size_t nargsf, PyObject* kwnames)
    ctypedef object (*descrgetfunc)(object, object, object)
    ctypedef struct _TypeSlots "PyTypeObject":
        descrgetfunc tp_descr_get
    _TypeSlots* _type_of "Py_TYPE"(object o)


cdef extern from *:
    """
    /* d[key] for a key whose hash is its address (a plain Tensor or Parameter: torch's
       Tensor.__hash__ is id(self), which hash() takes as is), without calling that Python
       __hash__: borrowed, NULL if absent (or with an error set).  Where CPython no longer
       exports the known-hash lookup, the ordinary one. */
    static PyObject* l2d_dict_get_by_id(PyObject* d, PyObject* key) {
    #if PY_VERSION_HEX < 0x030D0000 && !defined(PYPY_VERSION)
        return _PyDict_GetItem_KnownHash(d, key, (Py_hash_t)(uintptr_t)key);
    #else
        return PyDict_GetItemWithError(d, key);
    #endif
    }
    """
    void* l2d_dict_get_by_id(object d, object key)


cdef inline object _state_of(object state, object p, tuple kinds):
    """state[p] (a defaultdict: a new entry if absent), without p's Python __hash__ for a plain
    Tensor or Parameter when kinds[14] (l2decay.torch checked that their hash is id)."""
    cdef void* v
    if kinds[14] is True and _plain(p, kinds) and PyDict_Check(state):
        v = l2d_dict_get_by_id(state, p)
        if v != NULL:
            return <object>v
        if PyErr_Occurred() != NULL:
            raise
    return state[p]


cdef inline object _getd(object descr, object t):
    """descr.__get__(t) through its C slot."""
    return _type_of(descr).tp_descr_get(descr, t, type(t))


cdef inline object _call0(object method, object t):
    """method(t) for an unbound C method, by vectorcall."""
    cdef PyObject* arg = <PyObject*>t
    return PyObject_Vectorcall(method, &arg, 1, NULL)


cdef inline bint _plain(object t, tuple kinds) noexcept:
    return type(t) is (<tuple>kinds)[3] or type(t) is (<tuple>kinds)[4]


cdef inline int _tensor_kind(object t, tuple kinds, char** ptr, Py_ssize_t* n) noexcept:
    """The Kind of a dense contiguous CPU float tensor, with its data pointer and size (unless
    `n` is NULL: the caller knows it); -1."""
    cdef int kind
    cdef bint plain = _plain(t, kinds)
    if not plain and not isinstance(t, (<tuple>kinds)[3]):
        return -1
    try:
        dt = _getd(kinds[7], t) if plain else t.dtype
        if dt is (<tuple>kinds)[0]:
            kind = KIND_F32
        elif dt is (<tuple>kinds)[1]:
            kind = KIND_F64
        elif dt is (<tuple>kinds)[5]:
            kind = KIND_BF16
        elif dt is (<tuple>kinds)[6]:
            kind = KIND_F16
        else:
            return -1
        # (a sparse tensor raises in is_contiguous or data_ptr: refused here)
        if plain:
            if _getd(kinds[8], t) is not True or _call0(kinds[9], t) is not True:
                return -1
            ptr[0] = <char*><size_t>_call0(kinds[10], t)
            if n != NULL:
                n[0] = _call0(kinds[11], t)
        else:
            if t.is_cpu is not True or t.is_contiguous() is not True:
                return -1
            ptr[0] = <char*><size_t>t.data_ptr()
            if n != NULL:
                n[0] = t.numel()
    except Exception:
        return -1
    return kind


cdef inline bint _state_tensor_ok(object s, int kind, Py_ssize_t n, tuple kinds, char** ptr) noexcept:
    """A tensor of `kind` with n elements (a compensation buffer: the param's kind)."""
    cdef Py_ssize_t k
    return _tensor_kind(s, kinds, ptr, &k) == kind and k == n


cdef inline int _state_kind(object s, int kind, Py_ssize_t n, tuple kinds, char** ptr) noexcept:
    """The kind of a state tensor (with n elements) of a param of `kind`: float32 for 16-bit
    params, or their own (state_dtype "param"); else the param's.  -1 if it is none of these."""
    cdef Py_ssize_t k = -1
    cdef int sk = _tensor_kind(s, kinds, ptr, &k)
    if k != n or not (sk == kind or (sk == KIND_F32 and (kind == KIND_BF16 or kind == KIND_F16))):
        return -1
    return sk


cdef inline bint _torch_wd_ok(object wd, object reg, double* out) noexcept:
    """A group's weight_decay (None: absent) beside its "reg" into `out`: a plain number, 0 if
    "reg" is set; False where l2decay.torch's _group_rule decides (or raises)."""
    if wd is None:
        out[0] = 0.0
        return True
    return _real_ok(wd, out) and (reg is None or out[0] == 0.0)


cdef inline bint _torch_wd_rule(Hyper* h, double wd, object decoupled) noexcept:
    """weight_decay wd > 0 of a group without "reg" into `h` (h.lr set), the rule l2decay.torch's
    _group_rule makes of it: Decoupled(wd) when `decoupled` (Adam's decoupled_weight_decay,
    AdamW's always), else L2(wd)."""
    if decoupled is True:
        _set_rule(h, _Decoupled, wd)
    elif decoupled is False or decoupled is None:
        _set_rule(h, _L2, wd)
    else:
        return False
    return True


def _tensor_step(bint adam, list groups, list regs, object state, tuple kinds, object new_tensor):
    """One step of an l2decay.torch optimizer.  groups: its param_groups (torch's keys, and
    "rounding" and "seed"); regs[i]: the rule of group i, or regs None: each group's rule as
    l2decay.torch's _group_rule makes it from its "reg" or "weight_decay"; state:
    its state (keyed by param; a step count is a plain int); new_tensor(p, state_dtype): a new
    zero contiguous tensor like p, float32 for a 16-bit p unless state_dtype is "param" (the
    group's "state_dtype" for optimizer state; "param" for a compensation buffer).  Params whose grad is
    None are skipped.  Returns the list of params updated, or None, having touched nothing but
    the state of params that had none, if a fast check fails (the optimizer then words the
    error or normalizes a value only the fast checks refuse)."""
    cdef Py_ssize_t ngroups = len(groups), i, j, nt = 0, m = 0, n, k, base = 0
    cdef Hyper hstack[_STACK_GROUPS]
    cdef Hyper* hs = hstack
    cdef Hyper* h
    cdef Task stack[_STACK_TASKS]
    cdef Task* tasks = NULL
    cdef Task* t
    cdef PyObject* held_stack[_STACK_TASKS * HOLD]
    cdef PyObject** held = NULL
    cdef PyObject** hd
    cdef bint keras = False, ok
    cdef int kind, skind, rnd
    cdef bint narrow
    cdef unsigned long long sd
    cdef long long step, bc_step = -1
    cdef double bc_size = 0.0, bc_sqrt = 1.0
    cdef char* ptr
    cdef dict g
    if regs is not None and len(regs) != ngroups:
        return None
    for i in range(ngroups):
        if type(groups[i]) is not dict or not PyList_CheckExact((<dict>groups[i]).get("params")):
            return None
        m += len((<dict>groups[i])["params"])
    try:
        if ngroups > _STACK_GROUPS:
            hs = <Hyper*>malloc(ngroups * sizeof(Hyper))
            if hs == NULL:
                raise MemoryError()
        tasks = _alloc_tasks(m, stack)
        held = _alloc_held(m, held_stack)
        updated = [None] * m
        for i in range(ngroups):
            h = &hs[i]
            g = <dict>groups[i]
            if _get(g, "differentiable") is True or _get(g, "capturable") is True:
                return None
            if regs is not None:
                reg, wd = regs[i], 0.0
            else:
                reg, wd = _get(g, "reg"), 0.0
                if not _torch_wd_ok(_get(g, "weight_decay"), reg, &wd):
                    return None
            if adam:
                ok = _adam_hyper(h, &keras, _get(g, "lr"), _get(g, "betas"), _get(g, "eps"),
                                 _get(g, "amsgrad"), _get(g, "maximize"), reg, _TORCH)
            else:
                ok = _sgd_hyper(h, _get(g, "lr"), _get(g, "momentum"), _get(g, "dampening"),
                                _get(g, "nesterov"), _get(g, "maximize"), reg, _TORCH)
            if ok and wd != 0.0:
                ok = _torch_wd_rule(h, wd, _get(g, "decoupled_weight_decay") if adam else False)
            seed, sdt = _get(g, "seed"), _get(g, "state_dtype")
            if not (ok and _rounding_ok(_get(g, "rounding"), &rnd) and _seed_ok(0 if seed is None else seed, &sd)
                    and _state_dtype_ok(sdt, &narrow)):
                return None
            params = <list>g["params"]
            bc_step = -1
            if i:
                base += len((<dict>groups[i - 1])["params"])
            for j in range(len(params)):
                p = params[j]
                gr = _getd(kinds[12], p) if _plain(p, kinds) else getattr(p, "grad", None)
                if gr is None:
                    continue
                t = &tasks[nt]
                hd = held + nt * HOLD
                kind = _tensor_kind(p, kinds, &ptr, &n)
                if kind < 0:
                    return None
                _init_task(t, ptr, NULL, n, kind, h)
                if _plain(gr, kinds) and _plain(p, kinds):
                    # (its shape equal to the param's, its size is too: no numel() call)
                    if not (_tensor_kind(gr, kinds, &ptr, NULL) == kind and _getd(kinds[13], gr) == _getd(kinds[13], p)):
                        return None
                elif not (_tensor_kind(gr, kinds, &ptr, &k) == kind and k == n and gr.shape == p.shape):
                    return None
                t.g = ptr
                st = _state_of(state, p, kinds)
                if type(st) is not dict:
                    return None
                _hold(hd, 0, p)
                _hold(hd, 1, gr)
                _hold(hd, HOLD_OWNER, st)
                if adam:
                    if not st:
                        st["step"] = 0
                        st["exp_avg"] = new_tensor(p, sdt)
                        st["exp_avg_sq"] = new_tensor(p, sdt)
                    step = _step_ok(_get(<dict>st, "step"), 0)
                    if step < 0 or step == MAX_STEP:
                        return None
                    m_, v_ = _get(<dict>st, "exp_avg"), _get(<dict>st, "exp_avg_sq")
                    skind = _state_kind(m_, kind, n, kinds, &t.s1)
                    if skind < 0 or not _state_tensor_ok(v_, skind, n, kinds, &t.s2):
                        return None
                    t.state16 = _is_state16(skind, kind)
                    _hold(hd, 2, m_)
                    _hold(hd, 3, v_)
                    if h.amsgrad:
                        x = _get(<dict>st, "max_exp_avg_sq")
                        if x is None:
                            x = new_tensor(p, "param" if t.state16 else None)
                            _hold(hd, HOLD_BORN, x)
                        if not _state_tensor_ok(x, skind, n, kinds, &t.s3):
                            return None
                        _hold(hd, 4, x)
                    if step + 1 != bc_step:    # (params of a group mostly share their step)
                        _bias_correction(t, h, step + 1, False)
                        bc_step, bc_size, bc_sqrt = step + 1, t.step_size, t.bc2_sqrt
                    else:
                        t.step_size, t.bc2_sqrt = bc_size, bc_sqrt
                else:
                    # SGD counts steps only for stochastic rounding's random bits
                    sv = _get(<dict>st, "step")
                    step = _step_ok(sv, 0) if sv is not None else 0
                    if step < 0 or step == MAX_STEP:
                        return None
                    if h.mu != 0.0:
                        b = _get(<dict>st, "momentum_buffer")
                        if b is None:
                            b = new_tensor(p, sdt)
                            _hold(hd, HOLD_BORN, b)
                            t.first = True
                        skind = _state_kind(b, kind, n, kinds, &t.s1)
                        if skind < 0:
                            return None
                        t.state16 = _is_state16(skind, kind)
                        _hold(hd, 2, b)
                t.step = step + 1
                if not _set_rounding(t, rnd, sd, t.step, base + j):   # (index: the param's place)
                    return None
                if t.rounding == ROUND_COMPENSATED:
                    c = _get(<dict>st, "compensation")
                    if c is None:
                        c = new_tensor(p, "param")
                        _hold(hd, HOLD_BORN_COMP, c)
                    if not _state_tensor_ok(c, kind, n, kinds, &t.comp):
                        return None
                    _hold(hd, 5, c)
                updated[nt] = p
                nt += 1
        if nt > 0 and not _no_overlap(tasks, nt, False):
            return None
        _run_tasks(OP_ADAM if adam else OP_SGD, tasks, nt)
        for k in range(nt):
            hd = held + k * HOLD
            st = <object>hd[HOLD_OWNER]
            if adam or tasks[k].rounding == ROUND_STOCHASTIC:
                st["step"] = tasks[k].step + 0
            if hd[HOLD_BORN_COMP] != NULL:
                st["compensation"] = <object>hd[HOLD_BORN_COMP]
            if hd[HOLD_BORN] != NULL:
                st["max_exp_avg_sq" if adam else "momentum_buffer"] = <object>hd[HOLD_BORN]
        if nt < m:
            del updated[nt:]
        return updated
    finally:
        _release_held(held, m, held_stack)
        _free_tasks(tasks, stack)
        if hs != hstack:
            free(hs)
