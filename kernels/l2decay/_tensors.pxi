# Part of _kernels.pyx: the optimizer step over torch tensors (l2decay.torch), reading
# param_groups and state afresh at every call.  This module never imports torch: it reads the
# tensors through their own methods (dtype, is_cpu, is_contiguous, data_ptr, numel), and
# l2decay.torch passes the torch objects it compares with:
# kinds = (float32, float64, strided, Tensor, Parameter, bfloat16, float16).

cdef inline int _tensor_kind(object t, tuple kinds, char** ptr, Py_ssize_t* n) noexcept:
    """The Kind of a dense contiguous CPU float tensor, with its data pointer and size; -1."""
    cdef int kind
    if type(t) is not (<tuple>kinds)[3] and type(t) is not (<tuple>kinds)[4] and not isinstance(t, (<tuple>kinds)[3]):
        return -1
    try:
        dt = t.dtype
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
        if t.is_cpu is not True or t.is_contiguous() is not True:
            return -1
        ptr[0] = <char*><size_t>t.data_ptr()
        n[0] = t.numel()
    except Exception:
        return -1
    return kind


cdef inline bint _state_tensor_ok(object s, int kind, Py_ssize_t n, tuple kinds, char** ptr) noexcept:
    """A state tensor of `kind` (float32 for 16-bit params, see _state_kind) with n elements."""
    cdef Py_ssize_t k
    return _tensor_kind(s, kinds, ptr, &k) == kind and k == n


cdef inline int _state_kind(int kind) noexcept nogil:
    return KIND_F32 if kind == KIND_BF16 or kind == KIND_F16 else kind


def _tensor_step(bint adam, list groups, list regs, object state, tuple kinds, object new_tensor):
    """One step of an l2decay.torch optimizer.  groups: its param_groups (torch's keys, and
    "rounding" and "seed"); regs[i]: the rule of group i (from weight_decay or "reg"); state:
    its state (keyed by param; a step count is a plain int); new_tensor(p, state): a new zero
    contiguous tensor like p (float32 for 16-bit params when `state`).  Params whose grad is
    None are skipped.  Returns the list of params updated, or None, having touched nothing but
    the state of params that had none, if a fast check fails (the optimizer then words the
    error or normalizes a value only the fast checks refuse)."""
    cdef Py_ssize_t ngroups = len(groups), i, j, nt = 0, m = 0, n, k, base = 0
    cdef Hyper hstack[_STACK_GROUPS]
    cdef Hyper* hs = hstack
    cdef Hyper* h
    cdef Task stack[_STACK_TASKS]
    cdef Task* tasks = stack
    cdef Task* t
    cdef bint keras = False, ok
    cdef int kind, skind, rnd
    cdef unsigned long long sd
    cdef long long step
    cdef char* ptr
    cdef dict g
    if len(regs) != ngroups:
        return None
    for i in range(ngroups):
        if type(groups[i]) is not dict or not PyList_CheckExact((<dict>groups[i]).get("params")):
            return None
        m += len((<dict>groups[i])["params"])
    if ngroups > _STACK_GROUPS:
        hs = <Hyper*>malloc(ngroups * sizeof(Hyper))
        if hs == NULL:
            raise MemoryError()
    updated, born, born_c, dicts, keep = [], [], [], [], []
    try:
        tasks = _alloc_tasks(m, stack)
        for i in range(ngroups):
            h = &hs[i]
            g = <dict>groups[i]
            if _get(g, "differentiable") is True or _get(g, "capturable") is True:
                return None
            if adam:
                ok = _adam_hyper(h, &keras, _get(g, "lr"), _get(g, "betas"), _get(g, "eps"),
                                 _get(g, "amsgrad"), _get(g, "maximize"), regs[i], _TORCH)
            else:
                ok = _sgd_hyper(h, _get(g, "lr"), _get(g, "momentum"), _get(g, "dampening"),
                                _get(g, "nesterov"), _get(g, "maximize"), regs[i], _TORCH)
            seed = _get(g, "seed")
            if not (ok and _rounding_ok(_get(g, "rounding"), &rnd) and _seed_ok(0 if seed is None else seed, &sd)):
                return None
            params = <list>g["params"]
            if i:
                base += len((<dict>groups[i - 1])["params"])
            for j in range(len(params)):
                p = params[j]
                gr = getattr(p, "grad", None)
                if gr is None:
                    continue
                t = &tasks[nt]
                kind = _tensor_kind(p, kinds, &ptr, &n)
                if kind < 0:
                    return None
                _init_task(t, ptr, NULL, n, kind, h)
                if not (_tensor_kind(gr, kinds, &ptr, &k) == kind and k == n and gr.shape == p.shape):
                    return None
                t.g = ptr
                skind = _state_kind(kind)
                st = state[p]
                if type(st) is not dict:
                    return None
                keep.append(p)
                keep.append(gr)
                new = None
                if adam:
                    if not st:
                        st["step"] = 0
                        st["exp_avg"] = new_tensor(p, True)
                        st["exp_avg_sq"] = new_tensor(p, True)
                    step = _step_ok(_get(st, "step"), 0)
                    if step < 0 or step == MAX_STEP:
                        return None
                    m_, v_ = _get(st, "exp_avg"), _get(st, "exp_avg_sq")
                    if not (_state_tensor_ok(m_, skind, n, kinds, &t.s1)
                            and _state_tensor_ok(v_, skind, n, kinds, &t.s2)):
                        return None
                    keep.append(m_)
                    keep.append(v_)
                    if h.amsgrad:
                        x = _get(st, "max_exp_avg_sq")
                        if x is None:
                            x = new = new_tensor(p, True)
                        if not _state_tensor_ok(x, skind, n, kinds, &t.s3):
                            return None
                        keep.append(x)
                    _bias_correction(t, h, step + 1, False)
                else:
                    # SGD counts steps only for stochastic rounding's random bits
                    step = _step_ok(_get(st, "step"), 0) if _get(st, "step") is not None else 0
                    if step < 0 or step == MAX_STEP:
                        return None
                    if h.mu != 0.0:
                        b = _get(st, "momentum_buffer")
                        if b is None:
                            b = new = new_tensor(p, True)
                            t.first = True
                        if not _state_tensor_ok(b, skind, n, kinds, &t.s1):
                            return None
                        keep.append(b)
                t.step = step + 1
                if not _set_rounding(t, rnd, sd, t.step, base + j):   # (index: the param's place)
                    return None
                c = None
                if t.rounding == ROUND_COMPENSATED:
                    c = _get(st, "compensation")
                    if c is None:
                        c = new_tensor(p, False)
                        born_c.append(c)
                    else:
                        born_c.append(None)
                    if not _state_tensor_ok(c, kind, n, kinds, &t.comp):
                        return None
                    keep.append(c)
                else:
                    born_c.append(None)
                born.append(new)
                dicts.append(st)
                updated.append(p)
                nt += 1
        if nt > 1 and not _no_overlap(tasks, nt, False):
            return None
        _run_tasks(OP_ADAM if adam else OP_SGD, tasks, nt)
        for k in range(nt):
            st = dicts[k]
            if adam or tasks[k].rounding == ROUND_STOCHASTIC:
                st["step"] = tasks[k].step + 0
            if born_c[k] is not None:
                st["compensation"] = born_c[k]
            if born[k] is not None:
                st["max_exp_avg_sq" if adam else "momentum_buffer"] = born[k]
        return updated
    finally:
        _free_tasks(tasks, stack)
        if hs != hstack:
            free(hs)
