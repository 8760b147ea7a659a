# Part of _kernels.pyx: the optimizer step over torch tensors (l2decay.torch), reading
# param_groups and state afresh at every call.  This module never imports torch: it reads the
# tensors through their own methods (dtype, is_cpu, layout, is_contiguous, data_ptr, numel),
# and l2decay.torch passes the torch objects it compares with.

cdef inline bint _tensor_ok(object t, tuple kinds, bint* is_double, char** ptr,
                            Py_ssize_t* n) noexcept:
    """A dense contiguous CPU float32/float64 tensor: its dtype, data pointer and size.
    kinds = (torch.float32, torch.float64, torch.strided, torch.Tensor, torch.nn.Parameter)."""
    if type(t) is not (<tuple>kinds)[3] and type(t) is not (<tuple>kinds)[4] and not isinstance(t, (<tuple>kinds)[3]):
        return False
    try:
        dt = t.dtype
        if dt is (<tuple>kinds)[0]:
            is_double[0] = False
        elif dt is (<tuple>kinds)[1]:
            is_double[0] = True
        else:
            return False
        # (a sparse tensor raises in is_contiguous or data_ptr: refused below)
        if t.is_cpu is not True or t.is_contiguous() is not True:
            return False
        ptr[0] = <char*><size_t>t.data_ptr()
        n[0] = t.numel()
    except Exception:
        return False
    return True


cdef inline bint _state_tensor_ok(object s, bint is_double, Py_ssize_t n, tuple kinds,
                                  char** ptr) noexcept:
    """A state tensor of a param with `is_double` and `n` elements."""
    cdef bint d
    cdef Py_ssize_t k
    return _tensor_ok(s, kinds, &d, ptr, &k) and d == is_double and k == n


def _tensor_step(bint adam, list groups, list regs, object state, tuple kinds, object new_tensor):
    """One step of an l2decay.torch optimizer.  groups: its param_groups (torch's keys);
    regs[i]: the rule of group i (from weight_decay or "reg"); state: its state (keyed by
    param; a step count is a plain int); new_tensor(p, zero): a new contiguous tensor like p.
    Params whose grad is None are skipped.  Returns the list of params updated, or None,
    having touched nothing but the state of params that had none, if a fast check fails (the
    optimizer then words the error or normalizes a value only the fast checks refuse)."""
    cdef Py_ssize_t ngroups = len(groups), i, j, nt = 0, m = 0, n, k
    cdef Hyper hstack[_STACK_GROUPS]
    cdef Hyper* hs = hstack
    cdef Hyper* h
    cdef Task stack[_STACK_TASKS]
    cdef Task* tasks = stack
    cdef Task* t
    cdef bint keras = False, ok, is_double, d2
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
    updated, born, dicts, keep = [], [], [], []
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
            if not ok:
                return None
            params = <list>g["params"]
            for j in range(len(params)):
                p = params[j]
                gr = getattr(p, "grad", None)
                if gr is None:
                    continue
                t = &tasks[nt]
                if not _tensor_ok(p, kinds, &is_double, &ptr, &n):
                    return None
                _init_task(t, ptr, NULL, n, KIND_F64 if is_double else KIND_F32, h)
                if not (_tensor_ok(gr, kinds, &d2, &ptr, &k) and d2 == is_double and k == n
                        and gr.shape == p.shape):
                    return None
                t.g = ptr
                st = state[p]
                if type(st) is not dict:
                    return None
                keep.append(p)
                keep.append(gr)
                if adam:
                    if not st:
                        st["step"] = 0
                        st["exp_avg"] = new_tensor(p, True)
                        st["exp_avg_sq"] = new_tensor(p, True)
                    step = _step_ok(_get(st, "step"), 0)
                    if step < 0 or step == MAX_STEP:
                        return None
                    m_, v_ = _get(st, "exp_avg"), _get(st, "exp_avg_sq")
                    if not (_state_tensor_ok(m_, is_double, n, kinds, &t.s1)
                            and _state_tensor_ok(v_, is_double, n, kinds, &t.s2)):
                        return None
                    keep.append(m_)
                    keep.append(v_)
                    new = None
                    if h.amsgrad:
                        x = _get(st, "max_exp_avg_sq")
                        if x is None:
                            x = new = new_tensor(p, True)
                        if not _state_tensor_ok(x, is_double, n, kinds, &t.s3):
                            return None
                        keep.append(x)
                    t.step = step + 1
                    _bias_correction(t, h, step + 1, False)
                else:
                    new = None
                    if h.mu != 0.0:
                        b = _get(st, "momentum_buffer")
                        if b is None:
                            b = new = new_tensor(p, False)
                            t.first = True
                        if not _state_tensor_ok(b, is_double, n, kinds, &t.s1):
                            return None
                        keep.append(b)
                born.append(new)
                dicts.append(st)
                updated.append(p)
                nt += 1
        if nt > 1 and not _no_overlap(tasks, nt, False):
            return None
        _run_tasks(OP_ADAM if adam else OP_SGD, tasks, nt)
        for k in range(nt):
            st = dicts[k]
            if adam:
                st["step"] = tasks[k].step + 0
                if born[k] is not None:
                    st["max_exp_avg_sq"] = born[k]
            elif born[k] is not None:
                st["momentum_buffer"] = born[k]
        return updated
    finally:
        _free_tasks(tasks, stack)
        if hs != hstack:
            free(hs)
