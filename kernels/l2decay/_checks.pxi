# Part of _kernels.pyx: the C-level checks of arrays (and of the few scalars of l2_step,
# decay_step and the sparse steps).  On a refusal the entry hands its arguments to
# l2decay._validate, which raises the worded error (or, for a value only the fast check refuses,
# a numpy scalar say, returns it normalized).

cdef inline bint _real_ok(object value, double* out, double high=INFINITY, bint high_open=False,
                          bint low_open=False) noexcept:
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


# The bounds of the spec's real-valued arguments (l2decay._validate.SPEC) that l2_step and
# decay_step check here, read from the spec at their first call.
cdef dict _spec_bounds = {}


cdef double _real(str name, object value) except? -1.0:
    """`value` of the spec's real-valued argument `name`, checked against its rule there."""
    cdef double x
    cdef tuple b = _spec_bounds.get(name)
    if b is None:
        rule = _wording().SPEC[name]
        b = _spec_bounds[name] = (rule.high, rule.high_open, rule.low_open)
    if _real_ok(value, &x, b[0], b[1], b[2]):
        return x
    return _wording().check(name, value)


# numpy's type number of ml_dtypes.bfloat16 (a user-defined dtype: its number is given at run time,
# when ml_dtypes registers it).  l2decay does not import ml_dtypes, which takes longer to load than
# the rest of l2decay: a bfloat16 array exists only once its user has, and then the number is read.
cdef int _BF16_NUM = -1


cdef extern from "numpy/ndarraytypes.h":
    enum: NPY_USERDEF    # the first type number numpy gives a user-defined dtype


cdef bint _is_bf16(int t) noexcept:
    """Whether user-defined numpy type number t is ml_dtypes' bfloat16 (learnt once it is loaded)."""
    global _BF16_NUM
    if _BF16_NUM < 0:
        try:
            ml_dtypes = sys.modules.get("ml_dtypes")
            if ml_dtypes is not None:
                _BF16_NUM = np.dtype(ml_dtypes.bfloat16).num
        except Exception:
            return False
    return t == _BF16_NUM


cdef inline int _kind(cnp.ndarray arr) noexcept:
    """The Kind of a float array's dtype, or -1."""
    return _type_kind(cnp.PyArray_TYPE(arr))


cdef inline int _type_kind(int t) noexcept:
    """The Kind of numpy type number t, or -1."""
    if t == cnp.NPY_FLOAT:
        return KIND_F32
    if t == cnp.NPY_DOUBLE:
        return KIND_F64
    if t == cnp.NPY_FLOAT16:
        return KIND_F16
    if t == _BF16_NUM or (t >= NPY_USERDEF and _BF16_NUM < 0 and _is_bf16(t)):
        return KIND_BF16
    return -1


cdef inline bint _array_ok(object a, bint writes) noexcept:
    cdef cnp.ndarray arr
    if not cnp.PyArray_Check(a):
        return False
    arr = <cnp.ndarray>a
    return (_kind(arr) >= 0
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


cdef inline bint _state_ok(object s, object w) noexcept:
    """A state array of parameter `w`: writeable, C-contiguous, its shape, apart from it, and
    for 16-bit weights (whose arithmetic is float32) float32 or w's own dtype (state_dtype
    "param"), else w's dtype."""
    cdef int kw, ts
    if not _array_ok(s, True):
        return False
    kw = _kind(<cnp.ndarray>w)
    if kw == KIND_BF16 or kw == KIND_F16:
        ts = cnp.PyArray_TYPE(<cnp.ndarray>s)
        if not ((ts == cnp.NPY_FLOAT or ts == cnp.PyArray_TYPE(<cnp.ndarray>w))
                and cnp.PyArray_SAMESHAPE(<cnp.ndarray>s, <cnp.ndarray>w)):
            return False
    elif not _like(<cnp.ndarray>s, <cnp.ndarray>w):
        return False
    return _disjoint(<cnp.ndarray>s, <cnp.ndarray>w)


cdef inline bint _is_state16(int skind, int kind) noexcept nogil:
    """Whether state of kind `skind` of a param of `kind` is in the param's own 16-bit dtype."""
    return skind == kind and (kind == KIND_BF16 or kind == KIND_F16)


cdef inline bint _state16(object s, const Task* t) noexcept:
    """_is_state16 for state array s (passed _state_ok) of task t."""
    return _is_state16(_kind(<cnp.ndarray>s), t.kind)


cdef inline object _items(object seq):
    """`seq` as an exact list or tuple whose items are fetched once: a subclass could return
    another object on every access (after it was checked), so it is copied into a tuple."""
    if PyList_CheckExact(seq) or PyTuple_CheckExact(seq):
        return seq
    if PyList_Check(seq) or PyTuple_Check(seq):
        return tuple(seq)
    return None


cdef inline object _item(object seq, Py_ssize_t k):
    """Item k of an exact list or tuple (see _items)."""
    if PyList_CheckExact(seq):
        return (<list>seq)[k]
    return (<tuple>seq)[k]


# -- no two arrays of one call may overlap where one of them is written: with several threads
# the result would depend on their timing, and even on one thread it is not what a sequential
# loop of calls gives.  A sweep over the byte ranges sorted by start finds any such pair in
# O(k log k); up to 32 ranges, comparing every pair is faster than any sort.
cdef struct Range:
    char* lo
    char* hi
    bint written
    Py_ssize_t idx      # 6 * tensor + role (w, g, s1, s2, s3, comp)


cdef int _range_cmp(const void* a, const void* b) noexcept nogil:
    cdef const Range* x = <const Range*>a
    cdef const Range* y = <const Range*>b
    return -1 if x.lo < y.lo else (1 if x.lo > y.lo else 0)


cdef bint _no_overlap(const Task* tasks, Py_ssize_t m, bint writes_g, Py_ssize_t* first=NULL,
                      Py_ssize_t* second=NULL) noexcept:
    """No array of `tasks` overlaps another one where either is written (w and the state
    arrays are; g is when `writes_g`).  Read-only arrays may be shared.  On an overlap, `first`
    and `second` (if given) receive the two arrays as 9 * tensor + role (roles 7 and 8: the
    8-bit state's scales), first the earlier."""
    cdef Range stack[32]
    cdef Range* r = stack
    cdef Py_ssize_t k, j, count = 0, a = -1, b = -1
    cdef Range* end_any = NULL
    cdef Range* end_written = NULL
    cdef Py_ssize_t nb, size
    cdef char* ptrs[9]
    if m * 8 > 32:
        r = <Range*>malloc(m * 8 * sizeof(Range))
        if r == NULL:
            return False
    for k in range(m):
        nb = _nbytes(&tasks[k])
        if nb == 0:
            continue
        ptrs[0] = tasks[k].w
        ptrs[1] = tasks[k].g
        ptrs[2] = tasks[k].s1
        ptrs[3] = tasks[k].s2
        ptrs[4] = tasks[k].s3
        ptrs[5] = tasks[k].comp
        ptrs[6] = NULL
        ptrs[7] = <char*>tasks[k].sc1
        ptrs[8] = <char*>tasks[k].sc2
        for j in range(9):
            if ptrs[j] != NULL:
                r[count].lo = ptrs[j]
                # state arrays of 16-bit weights are float32, twice the weights' bytes (unless
                # in the weights' dtype: state16); 8-bit state a byte per element, its scales
                # 4 bytes per block
                size = nb
                if j >= 7:
                    size = 4 * ((tasks[k].n + Q8_BLOCK - 1) // Q8_BLOCK)
                elif 2 <= j <= 4 and tasks[k].sc1 != NULL:
                    size = tasks[k].n
                elif 2 <= j <= 4 and tasks[k].kind >= KIND_BF16 and not tasks[k].state16:
                    size = nb * 2
                r[count].hi = ptrs[j] + size
                r[count].written = j != 1 or writes_g
                r[count].idx = 9 * k + j
                count += 1
    if count <= 32:
        for k in range(count):
            for j in range(k + 1, count):
                if r[k].lo < r[j].hi and r[j].lo < r[k].hi and (r[k].written or r[j].written) and a < 0:
                    a, b = r[k].idx, r[j].idx
    else:
        qsort(r, count, sizeof(Range), _range_cmp)
        for k in range(count):
            if end_written != NULL and r[k].lo < end_written.hi:
                a, b = end_written.idx, r[k].idx
                break
            if r[k].written and end_any != NULL and r[k].lo < end_any.hi:
                a, b = end_any.idx, r[k].idx
                break
            if end_any == NULL or r[k].hi > end_any.hi:
                end_any = &r[k]
            if r[k].written and (end_written == NULL or r[k].hi > end_written.hi):
                end_written = &r[k]
    if r != stack:
        free(r)
    if a >= 0 and first != NULL:
        first[0], second[0] = (a, b) if a < b else (b, a)
    return a < 0


# -- tasks
cdef inline void _init_task(Task* t, void* w, void* g, Py_ssize_t n, int kind,
                            const Hyper* h) noexcept nogil:
    t.w = <char*>w
    t.g = <char*>g
    t.s1 = NULL
    t.s2 = NULL
    t.s3 = NULL
    t.n = n
    t.kind = kind
    t.comp = NULL
    t.sc1 = NULL
    t.sc2 = NULL
    t.state16 = False
    t.rounding = ROUND_NEAREST
    t.key = 0
    t.first = False
    t.step = 0
    t.step_size = 0.0
    t.bc2_sqrt = 1.0
    t.stats = NULL
    t.h = h


cdef inline void _task(Task* t, object w, object g, const Hyper* h) noexcept:
    """A task for a checked pair."""
    _init_task(t, cnp.PyArray_BYTES(<cnp.ndarray>w), cnp.PyArray_BYTES(<cnp.ndarray>g),
               cnp.PyArray_SIZE(<cnp.ndarray>w), _kind(<cnp.ndarray>w), h)


cdef inline char* _bytes(object a) noexcept:
    return cnp.PyArray_BYTES(<cnp.ndarray>a)


cdef enum:
    _STACK_TASKS = 8   # tensors per call handled without a malloc


cdef inline Task* _alloc_tasks(Py_ssize_t m, Task* stack) except NULL:
    """`stack` (room for _STACK_TASKS) when m fits, else a heap array; free with _free_tasks."""
    cdef Task* t
    if m <= _STACK_TASKS:
        return stack
    t = <Task*>malloc(m * sizeof(Task))
    if t == NULL:
        raise MemoryError()
    return t


cdef inline void _free_tasks(Task* tasks, Task* stack) noexcept:
    if tasks != stack:
        free(tasks)
