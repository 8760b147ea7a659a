# Part of _kernels.pyx: the one optimizer step.  Every front end (l2decay.sgd_step/adam_step,
# l2decay.optim's SGD/Adam, l2decay.torch) gathers flat lists, one entry per tensor, as
# torch.optim's functional sgd()/adam() take them, and calls step().  The hyperparameters come
# as Settings, compiled by l2decay._validate (the spec of every argument) after it checked them;
# the arrays are checked here, once, and a refusal is returned as a code that _validate words in
# the front end's own names.  Nothing is modified unless everything passed.

# The names of the Rounding enum (_common.pxd), in its order; the one list of them.
ROUNDINGS = ("nearest", "stochastic", "compensated")
MAX_STEP = 1 << 53       # step counts stay exact as doubles

# Rule kinds of Settings (l2decay.rules: L2, Decoupled, Decay).
RULE_NONE, RULE_L2, RULE_DECOUPLED, RULE_DECAY, RULE_CAUTIOUS, RULE_CORRECTED = 0, 1, 2, 3, 4, 5

# What a tensor's entry in step()'s lists is: roles, and the codes step() returns for a refusal.
ROLES = ("param", "grad", "state1", "state2", "state3", "compensation", "step", "scale1", "scale2")
cdef enum:
    R_W = 0
    R_G = 1
    R_S1 = 2
    R_S2 = 3
    R_S3 = 4
    R_COMP = 5
    R_SC1 = 7           # 8-bit state: the scales of state1, state2
    R_SC2 = 8
    NROLES = 9
# (code, k, role, k2, role2): the array at [k][role] is not a float array/plain tensor of a
# supported dtype; not C-contiguous or not on the CPU; read-only; not of the dtype it must have;
# not of its param's shape; missing (None where the step needs it); overlapping [k2][role2];
# stochastic rounding of a float32/float64 param; stochastic rounding without a step count;
# a step count that is no int in [0, MAX_STEP] (Adam: [1, MAX_STEP]).
REFUSALS = ("type", "layout", "readonly", "dtype", "shape", "missing", "overlap", "stochastic_wide",
            "stochastic_step", "step", "q8")
cdef enum:
    E_TYPE = 0
    E_LAYOUT = 1
    E_READONLY = 2
    E_DTYPE = 3
    E_SHAPE = 4
    E_MISSING = 5
    E_OVERLAP = 6
    E_STOCHASTIC_WIDE = 7
    E_STOCHASTIC_STEP = 8
    E_STEP = 9          # steps[k] (role R_STEP) is no int in [0, MAX_STEP]
    E_Q8 = 10           # 8-bit state (scales given) where the step has none: a float64 param,
                        # amsgrad, SGD without momentum
    R_STEP = 6
    V_U8 = 10           # View.kind of a uint8 array or tensor (8-bit state's codes)
Q8_BLOCK_SIZE = Q8_BLOCK


cdef inline double _shrink32(double lr, double coef) noexcept:
    """Decoupled's shrink as torch computes its factor from a float32 tensor lr: 1 - lr*wd in
    float32 (1 - factor is then exact in double)."""
    return 1.0 - <double><float>(1.0 - <float>(<float>lr * <float>coef))


cdef class Settings:
    """One param group's hyperparameters (or one functional call's), compiled for step().  Made
    only by l2decay._validate, which checks every value first: this class trusts them."""
    cdef Hyper h
    cdef bint keras
    cdef int rounding                 # -1: by the param's dtype
    cdef unsigned long long seed
    cdef double coef                  # the rule's coefficient (Decoupled's shrink follows lr)
    cdef double lr_max                # Corrected's (its shrink is lr*(lr*coef)), else 0
    cdef bint lr32                    # lr is a float32 tensor's: its products rounded as torch's

    def __init__(self, bint adam, double lr, *, double momentum=0.0, double dampening=0.0,
                 bint nesterov=False, bint velocity=False, double beta1=0.0, double beta2=0.0,
                 double eps=0.0, bint amsgrad=False, bint keras=False, bint maximize=False,
                 int rule=0, double coef=0.0, double lr_max=0.0, int rounding=-1, unsigned long long seed=0,
                 bint lr_float32=False):
        self.lr32 = lr_float32 and not keras
        self.h.lr = lr
        self.h.sign = -1.0 if maximize else 1.0
        self.h.mu = 0.0 if adam else momentum
        self.h.damp1 = 1.0 - dampening
        self.h.nesterov = nesterov
        self.h.velocity = velocity
        self.h.b1 = beta1
        self.h.b2 = beta2
        self.h.eps = eps
        self.h.amsgrad = adam and amsgrad
        self.h.l2 = self.h.decoupled = self.h.decay = self.h.cautious = False
        self.h.lam = self.h.shrink = 0.0
        self.coef = coef
        self.lr_max = lr_max if rule == RULE_CORRECTED else 0.0
        if rule == RULE_L2:
            self.h.l2 = True
            self.h.lam = coef
        elif rule == RULE_DECOUPLED or rule == RULE_CAUTIOUS or rule == RULE_CORRECTED:
            self.h.decoupled = True
            self.h.cautious = rule == RULE_CAUTIOUS
            self._shrink_at(lr)
        elif rule == RULE_DECAY:
            self.h.decay = True
            self.h.shrink = coef
        self.keras = keras
        self.rounding = rounding
        self.seed = seed

    cdef void _shrink_at(self, double lr):
        """A decoupled rule's shrink at lr: lr*coef (as torch's float32 arithmetic for a float32
        tensor lr); Corrected's lr*(lr*coef), coef its lam/lr_max."""
        if self.lr_max != 0.0:
            self.h.shrink = lr * (lr * self.coef)
        elif self.lr32:
            self.h.shrink = _shrink32(lr, self.coef)
        else:
            self.h.shrink = lr * self.coef

    cdef bint _set_lr(self, object value, bint low_open, double high, bint high_open) except -1:
        """lr = value if it is a plain number the spec's rule for lr (its bounds given) accepts."""
        cdef double x
        if type(value) is float:
            x = <double>value
        elif type(value) is int and -(1 << 52) <= value <= (1 << 52):
            x = <double>value
        else:
            return False
        if not (isfinite(x) and x >= 0.0 and (x > 0.0 or not low_open) and (x < high or (x == high and not high_open))):
            return False
        if self.lr_max != 0.0 and x > self.lr_max:
            return False        # (made afresh, the group's check words the refusal)
        self.h.lr = x
        self.lr32 = False
        if self.h.decoupled:
            self._shrink_at(x)
        return True

    @property
    def uses_state(self):
        """Whether a step keeps a momentum buffer (SGD) or the amsgrad maximum (Adam)."""
        return self.h.mu != 0.0 or self.h.amsgrad


# -- arrays and tensors ---------------------------------------------------------------------
# l2decay.torch registers torch's plain tensor types, its float dtypes and the public accessors
# the step reads a tensor through (this module never imports torch).  A tensor of exactly those
# types is read through the accessors themselves, torch.Tensor.data_ptr(t) and the like, which
# neither type can override: a lookup on the instance first costs as much again.  A tensor of
# any other type (a DTensor, say) is refused: l2decay.torch unwraps the subclasses it knows
# through torch's own API before it calls step().
cdef object _T_TENSOR = None, _T_PARAM = None, _T_F32 = None, _T_F64 = None, _T_BF16 = None, _T_F16 = None
cdef object _T_DTYPE = None, _T_IS_CPU = None, _T_IS_CONTIGUOUS = None, _T_DATA_PTR = None, _T_NUMEL = None
cdef object _T_GRAD = None, _T_SHAPE = None, _T_STRIDE = None, _T_U8 = None


def register_torch(tensor, parameter, float32, float64, bfloat16, float16, uint8):
    """`tensor` and `parameter`: torch.Tensor and torch.nn.Parameter; then torch's float dtypes
    and uint8 (8-bit state's codes)."""
    global _T_TENSOR, _T_PARAM, _T_F32, _T_F64, _T_BF16, _T_F16, _T_U8
    global _T_DTYPE, _T_IS_CPU, _T_IS_CONTIGUOUS, _T_DATA_PTR, _T_NUMEL, _T_GRAD, _T_SHAPE, _T_STRIDE
    _T_TENSOR, _T_PARAM, _T_F32, _T_F64, _T_BF16, _T_F16 = tensor, parameter, float32, float64, bfloat16, float16
    _T_DTYPE, _T_IS_CPU, _T_GRAD, _T_SHAPE = tensor.dtype, tensor.is_cpu, tensor.grad, tensor.shape
    _T_IS_CONTIGUOUS, _T_DATA_PTR, _T_NUMEL = tensor.is_contiguous, tensor.data_ptr, tensor.numel
    _T_STRIDE = tensor.stride
    _T_U8 = uint8


cdef extern from "Python.h":
    object PyObject_Vectorcall(object callable, PyObject** args, size_t nargsf, PyObject* kwnames)
    ctypedef object (*descrgetfunc)(object, object, object)
    ctypedef struct _DescrType "PyTypeObject":
        descrgetfunc tp_descr_get
    _DescrType* _type_of "Py_TYPE"(object o)


cdef inline object _attr(object descr, object t):
    """torch.Tensor's property `descr` of t (descr.__get__(t))."""
    return _type_of(descr).tp_descr_get(descr, t, type(t))


cdef inline object _call(object method, object t):
    """torch.Tensor's method `method` of t, called unbound: method(t)."""
    cdef PyObject* arg = <PyObject*>t
    return PyObject_Vectorcall(method, &arg, 1, NULL)


cdef struct View:
    char* ptr
    Py_ssize_t n
    int kind
    bint torch
    bint perm       # a dense tensor whose dims are in another order than contiguous (channels_last)


cdef bint _dense(object t) except -1:
    """Whether tensor t's elements fill one block of memory, no gaps, no overlaps, its dims in
    some order (channels_last, any permutation of a contiguous tensor): an element-wise step
    may then read it as flat, when every tensor of its param is laid out alike."""
    dims = sorted([(st, sz) for sz, st in zip(_attr(_T_SHAPE, t), _call(_T_STRIDE, t)) if sz != 1])
    expected = 1
    for st, sz in dims:
        if st != expected:
            return False
        expected *= sz
    return True


cdef inline bint _same_layout(object a, object b, const View* va, const View* vb):
    """Tensors of one shape laid out alike: equal strides (where a dim has more than one
    element); with a dense param a, its grad or state b is then dense too."""
    if not (va.perm or vb.perm):
        return True
    sa, sb = _call(_T_STRIDE, a), _call(_T_STRIDE, b)
    if sa == sb:
        return True
    shape = _attr(_T_SHAPE, a)
    return [st for sz, st in zip(shape, sa) if sz != 1] == [st for sz, st in zip(shape, sb) if sz != 1]


cdef inline int _view(object a, View* v, bint writes, bint codes=False) except -2:
    """Fill `v` for a C-contiguous native-order numpy float array (writeable if `writes`) or a
    plain dense (contiguous, or its dims in another order) CPU float torch tensor (`codes`: a
    uint8 one, 8-bit state's, kind V_U8); -1, or the refusal code."""
    cdef cnp.ndarray arr
    if cnp.PyArray_Check(a):
        arr = <cnp.ndarray>a
        v.kind = _kind(arr) if not codes else (V_U8 if cnp.PyArray_TYPE(arr) == cnp.NPY_UINT8 else -1)
        if v.kind < 0:
            return E_TYPE
        if not (cnp.PyArray_ISNOTSWAPPED(arr) and cnp.PyArray_IS_C_CONTIGUOUS(arr)):
            return E_TYPE if not cnp.PyArray_ISNOTSWAPPED(arr) else E_LAYOUT
        if writes and not cnp.PyArray_ISWRITEABLE(arr):
            return E_READONLY
        v.ptr = cnp.PyArray_BYTES(arr)
        v.n = cnp.PyArray_SIZE(arr)
        v.torch = v.perm = False
        return -1
    tp = type(a)
    if tp is not _T_TENSOR and tp is not _T_PARAM or _T_TENSOR is None:
        return E_TYPE
    dt = _attr(_T_DTYPE, a)
    if codes:
        if dt is not _T_U8:
            return E_TYPE
        v.kind = V_U8
    elif dt is _T_F32:
        v.kind = KIND_F32
    elif dt is _T_F64:
        v.kind = KIND_F64
    elif dt is _T_BF16:
        v.kind = KIND_BF16
    elif dt is _T_F16:
        v.kind = KIND_F16
    else:
        return E_TYPE
    try:      # (a sparse or otherwise unstrided tensor raises in is_contiguous or data_ptr)
        if _attr(_T_IS_CPU, a) is not True:
            return E_LAYOUT
        # (not contiguous: dense or not is decided for the param, and its grad and state must
        # share its layout)
        v.perm = _call(_T_IS_CONTIGUOUS, a) is not True
        v.ptr = <char*><size_t>_call(_T_DATA_PTR, a)
        v.n = _call(_T_NUMEL, a)
    except Exception:
        return E_LAYOUT
    v.torch = True
    return -1


cdef inline bint _same_shape(object a, object b, const View* va, const View* vb):
    """Arrays: equal shapes.  Tensors: equal sizes (torch itself keeps a grad of its param's
    shape; a state tensor's shape is compared by _same_state_shape)."""
    if not va.torch:
        return vb.torch == False and cnp.PyArray_SAMESHAPE(<cnp.ndarray>a, <cnp.ndarray>b)
    return vb.torch and va.n == vb.n


cdef inline bint _same_state_shape(object w, object x, const View* vw, const View* vx, object shape):
    """State x of param w has w's shape (`shape`: w's torch.Size, read once per param)."""
    return (_same_shape(w, x, vw, vx) and (not vw.torch or _attr(_T_SHAPE, x) == shape)
            and _same_layout(w, x, vw, vx))


# -- the step -------------------------------------------------------------------------------
cdef struct _Refusal:
    int code
    Py_ssize_t k, role, k2, role2


cdef inline int _refuse(_Refusal* r, int code, Py_ssize_t k, Py_ssize_t role) noexcept:
    r.code = code
    r.k = k
    r.role = role
    r.k2 = r.role2 = -1
    return code


cdef inline object _at(list xs, Py_ssize_t k):
    return None if xs is None else xs[k]


cdef int _fill(Op op, Task* t, Settings s, object w, object g, object s1, object s2, object s3,
               object comp, object q1, object q2, long long step, bint first, Py_ssize_t place,
               Py_ssize_t k, PyObject** hold, _Refusal* r) except -2:
    """Check tensor k's entries and fill its task; -1, or the refusal code (in `r`).  q1, q2:
    the scales of 8-bit state (s1, s2 then hold its codes), or None."""
    cdef View vw, vg, vs
    cdef int code, skind = -1
    cdef char** dst[3]
    cdef float** sdst[2]
    cdef Py_ssize_t j, nstate = 0
    cdef bint q8 = q1 is not None
    code = _view(w, &vw, True)
    if code < 0 and vw.perm and not _dense(w):
        code = E_LAYOUT
    if code >= 0:
        return _refuse(r, code, k, R_W)
    code = _view(g, &vg, False)
    if code >= 0:
        return _refuse(r, code, k, R_G)
    if vg.kind != vw.kind or vg.torch != vw.torch:
        return _refuse(r, E_DTYPE, k, R_G)
    if not (_same_shape(w, g, &vw, &vg) and _same_layout(w, g, &vw, &vg)):
        return _refuse(r, E_SHAPE, k, R_G)
    _init_task(t, vw.ptr, vg.ptr, vw.n, vw.kind, &s.h)
    _hold(hold, 0, w)
    _hold(hold, 1, g)
    _hold(hold, 6, s)
    xs = (s1, s2, s3)
    dst[0], dst[1], dst[2] = &t.s1, &t.s2, &t.s3
    if op == OP_ADAM:
        nstate = 3 if s.h.amsgrad else 2
        t.step = step
        _bias_correction(t, &s.h, step, s.keras, s.lr32)
    elif s.h.mu != 0.0:
        nstate = 1
        t.first = first
    if q8 and (vw.kind == KIND_F64 or nstate != (2 if op == OP_ADAM else 1)):
        return _refuse(r, E_Q8, k, R_S1)
    # (reading a tensor's shape allocates a torch.Size: once per param)
    shape = _attr(_T_SHAPE, w) if vw.torch and (nstate or comp is not None) else None
    sdst[0], sdst[1] = &t.sc1, &t.sc2
    for j in range(nstate):
        x = (<tuple>xs)[j]
        if x is None:
            return _refuse(r, E_MISSING, k, R_S1 + j)
        code = _view(x, &vs, True, q8)
        if code >= 0:
            return _refuse(r, code, k, R_S1 + j)
        if q8:       # codes of the param's shape and layout, and their blocks' float32 scales
            if vs.torch != vw.torch:
                return _refuse(r, E_DTYPE, k, R_S1 + j)
            if not _same_state_shape(w, x, &vw, &vs, shape):
                return _refuse(r, E_SHAPE, k, R_S1 + j)
            dst[j][0] = vs.ptr
            _hold(hold, 2 + j, x)
            sc = q1 if j == 0 else q2
            if sc is None:
                return _refuse(r, E_MISSING, k, R_SC1 + j)
            code = _view(sc, &vs, True)
            if code < 0 and vs.perm:
                code = E_LAYOUT
            if code >= 0:
                return _refuse(r, code, k, R_SC1 + j)
            if vs.kind != KIND_F32 or vs.torch != vw.torch:
                return _refuse(r, E_DTYPE, k, R_SC1 + j)
            if vs.n != (vw.n + Q8_BLOCK - 1) // Q8_BLOCK:
                return _refuse(r, E_SHAPE, k, R_SC1 + j)
            sdst[j][0] = <float*>vs.ptr
            _hold(hold, 7 + j, sc)
            continue
        # float32 state for 16-bit params, or their own dtype (state_dtype "param"); else the
        # param's; one dtype for all of a param's state
        if vs.torch != vw.torch or not (vs.kind == vw.kind or (vs.kind == KIND_F32 and vw.kind >= KIND_BF16)) \
                or (j > 0 and vs.kind != skind):
            return _refuse(r, E_DTYPE, k, R_S1 + j)
        if not _same_state_shape(w, x, &vw, &vs, shape):
            return _refuse(r, E_SHAPE, k, R_S1 + j)
        skind = vs.kind
        dst[j][0] = vs.ptr
        _hold(hold, 2 + j, x)
    t.state16 = _is_state16(skind, vw.kind)
    t.rounding = _effective_rounding(s.rounding, vw.kind)
    if t.rounding == ROUND_STOCHASTIC:
        if not (vw.kind == KIND_BF16 or vw.kind == KIND_F16):
            return _refuse(r, E_STOCHASTIC_WIDE, k, R_W)
        if step < 1:
            return _refuse(r, E_STOCHASTIC_STEP, k, R_W)
        t.step = step
        t.key = _key(s.seed, step, place)
    elif t.rounding == ROUND_COMPENSATED:
        if comp is None:
            return _refuse(r, E_MISSING, k, R_COMP)
        code = _view(comp, &vs, True)
        if code >= 0:
            return _refuse(r, code, k, R_COMP)
        if vs.kind != vw.kind or vs.torch != vw.torch:
            return _refuse(r, E_DTYPE, k, R_COMP)
        if not _same_state_shape(w, comp, &vw, &vs, shape):
            return _refuse(r, E_SHAPE, k, R_COMP)
        t.comp = vs.ptr
        _hold(hold, 5, comp)
    return -1


cdef inline bint _fits(list xs, Py_ssize_t m) noexcept:
    return xs is None or len(xs) == m


cpdef object step(bint adam, list settings, list params, list grads, list state1=None, list state2=None,
                  list state3=None, list compensations=None, list steps=None, list firsts=None,
                  list places=None, list scales1=None, list scales2=None, object stats=None):
    """One SGD (or, `adam`, Adam) step of every tensor k in place, with settings[k] (a Settings,
    typically one per group), from params[k], grads[k] (only read) and its state:

    - SGD: state1[k] the momentum buffer (or velocity) when momentum > 0, firsts[k] True when it
      is born in this step (its contents are then ignored);
    - Adam: state1[k], state2[k] exp_avg and exp_avg_sq, state3[k] max_exp_avg_sq with amsgrad,
      steps[k] the step being taken (>= 1);
    - compensations[k] with rounding "compensated"; steps[k] (the step being taken: SGD's too)
      and places[k] (the param's place in its optimizer: default k) key stochastic rounding;
    - 8-bit state (state_dtype "8bit", float32 and 16-bit params): scales1[k] (and Adam's
      scales2[k]), the float32 scales of each Q8_BLOCK_SIZE elements' codes, which state1[k]
      (state2[k]) then holds as uint8 of the param's shape;
    - stats: None, or a float64 C-contiguous array of shape (len(params), 3) whose row k the
      step sets, in its own pass, to tensor k's sum of w**2 (the new weights), sum of dw**2
      (new minus old) and the squared norm of the rule's part of the step: Decoupled's (and
      Corrected's, Cautious' where it decayed) shrink*w_old, Decay's d/(1 - d)*w_new, L2's
      lr*lam*w_old (the pull it adds to the gradient, before the optimizer scales it), 0 without
      a rule.  The same bits for any thread count and instruction set.

    Entries are numpy arrays or plain torch tensors, never mixed within a tensor's entries;
    steps are ints in [0, MAX_STEP] (0: no step count; Adam's >= 1).  Returns None
    when every tensor was updated, or, having modified nothing, the first refusal as
    (REFUSALS index, k, ROLES index, k2, role2) (k2, role2: the other array of an overlap,
    else -1)."""
    cdef Op op = OP_ADAM if adam else OP_SGD
    cdef Py_ssize_t m = len(params), k
    cdef Task stack[_STACK_TASKS]
    cdef Task* tasks = NULL
    cdef PyObject* held_stack[_STACK_TASKS * HOLD]
    cdef PyObject** held = NULL
    cdef _Refusal r
    cdef long long t
    cdef Py_ssize_t i1 = 0, i2 = 0
    cdef double* partials = NULL
    if (len(settings) != m or len(grads) != m or not _fits(state1, m) or not _fits(state2, m)
            or not _fits(state3, m) or not _fits(compensations, m) or not _fits(steps, m) or not _fits(firsts, m)
            or not _fits(places, m) or not _fits(scales1, m) or not _fits(scales2, m)):
        raise ValueError("step()'s lists must be one entry per param")
    try:
        tasks = _alloc_tasks(m, stack)
        held = _alloc_held(m, held_stack)
        for k in range(m):
            s = settings[k]
            if type(s) is not Settings:
                raise TypeError("settings must be l2decay._validate's Settings")
            t = 0 if steps is None else _step_ok(steps[k], 1 if adam else 0)
            if t < 0 or (adam and steps is None):
                return (E_STEP, k, R_STEP, -1, -1)
            if _fill(op, &tasks[k], <Settings>s, params[k], grads[k], _at(state1, k), _at(state2, k),
                     _at(state3, k), _at(compensations, k), _at(scales1, k), _at(scales2, k), t,
                     firsts is not None and firsts[k] is True,
                     k if places is None else <Py_ssize_t>places[k], k, held + k * HOLD, &r) >= 0:
                return (r.code, r.k, r.role, -1, -1)
        if m > 0 and not _no_overlap(tasks, m, False, &i1, &i2):
            return (E_OVERLAP, i1 // NROLES, i1 % NROLES, i2 // NROLES, i2 % NROLES)
        if stats is not None:
            partials = _stats_partials(tasks, m, stats)
        _run_tasks(op, tasks, m)
        if stats is not None:
            _stats_sums(tasks, m, partials, <double*>cnp.PyArray_DATA(<cnp.ndarray>stats))
        return None
    finally:
        free(partials)
        _release_held(held, m, held_stack)
        _free_tasks(tasks, stack)


cdef double* _stats_partials(Task* tasks, Py_ssize_t m, object stats) except NULL:
    """Room for the sums of every task's blocks (Task.stats pointed into it), for `stats`, a
    float64 C-contiguous writeable array of shape (m, 3) (the front ends checked it)."""
    cdef Py_ssize_t k, total = 0
    cdef double* p
    if (not isinstance(stats, cnp.ndarray) or cnp.PyArray_TYPE(<cnp.ndarray>stats) != cnp.NPY_FLOAT64
            or not cnp.PyArray_ISCARRAY(<cnp.ndarray>stats) or stats.shape != (m, 3)):
        raise ValueError("stats must be a writeable C-contiguous float64 array of shape (len(params), 3)")
    for k in range(m):
        total += 3 * ((tasks[k].n + STATS_BLOCK - 1) // STATS_BLOCK)
    p = <double*>malloc((total + 1) * sizeof(double))
    if p == NULL:
        raise MemoryError()
    total = 0
    for k in range(m):
        tasks[k].stats = p + total
        total += 3 * ((tasks[k].n + STATS_BLOCK - 1) // STATS_BLOCK)
    return p


cdef void _stats_sums(const Task* tasks, Py_ssize_t m, const double* partials, double* out) noexcept:
    """out[k] = task k's sums over its blocks, added in block order, the third turned into the
    squared norm of its rule's part of the step (see step)."""
    cdef Py_ssize_t k, j, nb
    cdef double sw, sd, so, f
    cdef const Hyper* h
    for k in range(m):
        sw = sd = so = 0.0
        nb = (tasks[k].n + STATS_BLOCK - 1) // STATS_BLOCK
        for j in range(nb):
            sw += tasks[k].stats[3 * j]
            sd += tasks[k].stats[3 * j + 1]
            so += tasks[k].stats[3 * j + 2]
        h = tasks[k].h
        if h.decoupled:
            f = h.shrink
        elif h.decay:
            f = h.shrink / (1.0 - h.shrink)
            so = sw
        elif h.l2:
            f = h.lr * h.lam
        else:
            f = 0.0
        out[3 * k] = sw
        out[3 * k + 1] = sd
        out[3 * k + 2] = f * f * so


# -- helpers of the front ends' gathering (the step above reads none of this) -----------------
cdef extern from "Python.h":
    int PyDict_Next(object d, Py_ssize_t* pos, PyObject** key, PyObject** value)
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL


cdef inline bint _is_tensor(object v) noexcept:
    return type(v) is _T_TENSOR or type(v) is _T_PARAM


cdef Py_ssize_t _changed(object group, object snapshot) except -3:
    """-1 if param group `group` holds what `snapshot` (a list: its values in order, a list or
    tuple value, "params" and "betas", as a tuple of its items) recorded, the very objects, and
    none of them a tensor (its value may change in place); the place of the one value that
    differs when its key is "lr"; else -2."""
    cdef Py_ssize_t pos = 0, i = 0, j, n, at = -1
    cdef bint values
    cdef PyObject* key
    cdef PyObject* value
    if type(group) is not dict or type(snapshot) is not list or len(<dict>group) != len(<list>snapshot):
        return -2
    while PyDict_Next(group, &pos, &key, &value):
        old = (<list>snapshot)[i]
        i += 1
        v = <object>value
        if value == <PyObject*>old and type(v) is not tuple:
            if _is_tensor(v):          # (a scheduler writes a tensor lr in place)
                return -2
            continue
        if (type(v) is list or type(v) is tuple) and type(old) is tuple and len(v) == len(old):
            n = len(old)
            values = <object>key != "params"     # (betas: its items may be tensors)
            for j in range(n):
                if v[j] is not (<tuple>old)[j] or (values and _is_tensor(v[j])):
                    return -2
            continue
        if at >= 0 or type(<object>key) is not str or <object>key != "lr":
            return -2
        at = i - 1
    return at


def refresh(list groups, list snapshots, list made, bint low_open, double high, bint high_open):
    """Whether every group's compiled Settings (made[i], made from what snapshots[i] recorded)
    still hold: the group holds the very same objects, or only its lr changed to a plain number
    that the spec's rule for lr (its bounds given) accepts, which is then set (the snapshot
    too).  False: some group must be compiled afresh, with the spec's worded errors."""
    cdef Py_ssize_t i, at, n = len(groups)
    if len(snapshots) != n or len(made) != n:
        return False
    for i in range(n):
        at = _changed(groups[i], snapshots[i])
        if at == -1:
            continue
        if at < 0 or type(made[i]) is not Settings:
            return False
        value = (<dict>groups[i])["lr"]
        if not (<Settings>made[i])._set_lr(value, low_open, high, high_open):
            return False
        (<list>snapshots[i])[at] = value
    return True


def torch_lists(list groups, list made):
    """For l2decay.torch's gathering: the params with a grad of every group, their grads, their
    groups' Settings (made[i] for group i) and their places among all params, as four lists;
    None if a param is no plain tensor (the front end then gathers it through torch's API)."""
    cdef Py_ssize_t i, j, place = 0
    cdef list ps = [], gs = [], sets = [], places = []
    if len(made) != len(groups):
        return None
    for i in range(len(groups)):
        params = (<dict>groups[i])["params"]
        s = made[i]
        for j in range(len(<list>params)):
            p = (<list>params)[j]
            tp = type(p)
            if tp is not _T_TENSOR and tp is not _T_PARAM:
                return None
            g = _attr(_T_GRAD, p)
            if g is not None:
                ps.append(p)
                gs.append(g)
                sets.append(s)
                places.append(place)
            place += 1
    return ps, gs, sets, places


cpdef list state_columns(list states, tuple keys, object count=None, object mapping=None):
    """For state dicts `states`: a list per key of `keys` of each dict's entry (None if absent),
    then, with key `count`, the step each takes now (its count + 1, or the count as it is, None
    if absent, when it is no plain int: the step refuses it), then how many entries were absent
    per key."""
    cdef Py_ssize_t n = len(states), k, j, nkeys = len(keys)
    cdef PyObject* v
    cols = [[None] * n for j in range(nkeys)]
    cdef list absent = [0] * nkeys
    steps = [0] * n if count is not None else None
    if nkeys == 0 and count is None:     # (nothing to read: no state dict is looked up, or made)
        return [steps, absent]
    for k in range(n):
        d = states[k] if mapping is None else mapping[states[k]]
        if type(d) is not dict:
            raise TypeError(f"state[{k}] must be a dict, got {type(d).__name__}")
        for j in range(nkeys):
            v = PyDict_GetItemWithError(d, keys[j])
            if v != NULL:
                (<list>cols[j])[k] = <object>v
            else:
                absent[j] += 1
        if count is not None:
            v = PyDict_GetItemWithError(d, count)
            if v != NULL:
                c = <object>v
                steps[k] = c + 1 if type(c) is int else c
            else:
                steps[k] = None
    cols.append(steps)
    cols.append(absent)
    return cols


def state_step(bint adam, list settings, list params, list grads, list states, tuple keys, object count,
               object mapping=None, list places=None, object stats=None):
    """The front ends' common case in one call: state_columns(states, keys, count, mapping),
    then, if no state dict lacked a key, step() on those columns (and `stats`) and set_counts().  Returns
    step()'s result (None: done), or False, having done nothing, if a dict lacked a key."""
    cdef Py_ssize_t nk = len(keys)
    cdef list cols = state_columns(states, keys, count, mapping)
    for a in <list>cols[nk + 1]:
        if a:
            return False
    steps = cols[nk]
    r = step(adam, settings, params, grads, cols[0] if nk > 0 else None, cols[1] if nk > 1 else None,
             cols[2] if nk > 2 else None, None, steps, None, places, None, None, stats)
    if r is None and steps is not None:
        set_counts(states, count, steps, mapping)
    return r


def publish(list births):
    """What a step made, put in place once it passed: container[key] = value for each
    (container, key, value) of `births` (new state in a state dict, in a functional call's list)."""
    for container, key, value in births:
        container[key] = value


cpdef set_counts(list states, object count, list steps, object mapping=None):
    """states[k][count] = steps[k] where steps[k] > 0: the step counts a step took.  With
    `mapping`, `states` are its keys, whose values are the state dicts."""
    cdef Py_ssize_t k
    if len(steps) != len(states):
        raise ValueError("set_counts takes one step per state")
    for k in range(len(steps)):
        t = steps[k]
        if t:
            (states[k] if mapping is None else mapping[states[k]])[count] = t
