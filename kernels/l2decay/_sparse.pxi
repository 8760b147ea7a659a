# Part of _kernels.pyx: sparse row steps on a 2-D table (l2decay.sparse, l2decay.torch's
# SparseAdamW).  A step updates only the rows it is given; the decay of every other row is lazy.
#
# The table's true weights are  w[r] = table[r] * scale / row_scale[r]:  `scale` (a double held
# by the caller) is the product of every step's decay factor since the last fold, and
# row_scale[r] the value `scale` had when row r was last brought up to date.  A step multiplies
# `scale` by its factor (O(1)); a touched row is first caught up (the decay of the steps it
# skipped, one multiplication), then takes the dense loop's step with the same Hyper, so the
# rule's own order (Decoupled before the step, Decay after, L2 in the gradient) is the dense
# algorithm's.  A row touched at every step is never caught up and gets the dense loop's bits.
# When `scale` drops below _FOLD_BELOW every row is caught up and the scales reset to 1.

include "_catch_up.pxi"

cdef enum:
    # How far ahead of the row being updated the rows to come are requested from memory, in
    # cache lines (a row's lines in the table, Adam's moments and its row scale): a row's lines
    # come from anywhere in memory, and more requests than the core can track are wasted.
    # Measured (V = 1M rows x 64 float32, 1,000 rows a step, 2 threads, us per step for 13, 26,
    # 52, 78, 104, 156 lines): Adam 77, 68, 61, 63, 68, 69; SGD 41, 31, 27, 29, 29, 31.
    _PREFETCH_LINES = 64


cdef double _FOLD_BELOW = 1e-200   # far above double's underflow (2.2e-308): one more step's
                                   # factor (>= 2**-53, decay < 1) keeps scale a normal number


cdef inline bint _index_ok(object a) noexcept:
    """A 1-D C-contiguous array of int64 or int32 row indices, native byte order."""
    cdef cnp.ndarray arr
    if not cnp.PyArray_Check(a):
        return False
    arr = <cnp.ndarray>a
    return (cnp.PyArray_ISSIGNED(arr) and (cnp.PyArray_ITEMSIZE(arr) == 8 or cnp.PyArray_ITEMSIZE(arr) == 4)
            and cnp.PyArray_NDIM(arr) == 1 and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_IS_C_CONTIGUOUS(arr))


cdef inline long long _row_at(const char* rows, bint wide, Py_ssize_t j) noexcept nogil:
    return (<const long long*>rows)[j] if wide else <long long>(<const int*>rows)[j]


cdef inline bint _rows_in_range(const char* rows, bint wide, Py_ssize_t k, Py_ssize_t nrows) noexcept nogil:
    cdef Py_ssize_t j
    cdef long long r
    for j in range(k):
        r = _row_at(rows, wide, j)
        if r < 0 or r >= nrows:
            return False
    return True


cdef inline bint _table_ok(object t) noexcept:
    """A writeable C-contiguous 2-D float32/float64 table."""
    return (_array_ok(t, True) and cnp.PyArray_NDIM(<cnp.ndarray>t) == 2
            and (_kind(<cnp.ndarray>t) == KIND_F32 or _kind(<cnp.ndarray>t) == KIND_F64))


cdef inline bint _row_scale_ok(object s, object table) noexcept:
    """The table's row scales: float64, one per row, writeable, apart from the table."""
    return (_array_ok(s, True) and cnp.PyArray_TYPE(<cnp.ndarray>s) == cnp.NPY_DOUBLE
            and cnp.PyArray_NDIM(<cnp.ndarray>s) == 1
            and cnp.PyArray_DIM(<cnp.ndarray>s, 0) == cnp.PyArray_DIM(<cnp.ndarray>table, 0)
            and _disjoint(<cnp.ndarray>s, <cnp.ndarray>table))


cdef inline bint _rows_ok(object rows, object table, object row_scale) noexcept:
    """Row indices of `table`, all in range, apart from the arrays a step writes."""
    return (_index_ok(rows) and _disjoint(<cnp.ndarray>rows, <cnp.ndarray>table)
            and _disjoint(<cnp.ndarray>rows, <cnp.ndarray>row_scale)
            and _rows_in_range(_bytes(rows), cnp.PyArray_ITEMSIZE(<cnp.ndarray>rows) == 8,
                               cnp.PyArray_DIM(<cnp.ndarray>rows, 0), cnp.PyArray_DIM(<cnp.ndarray>table, 0)))


cdef void _fold(char* table, int kind, Py_ssize_t nrows, Py_ssize_t d, double* row_scale,
                double scale) noexcept nogil:
    """Catch every row up to `scale`, then reset the row scales to 1 (the caller's scale too)."""
    cdef Py_ssize_t r, row_bytes = d * kind_size(kind)
    cdef int nt = _threads_for(nrows * row_bytes)
    for r in prange(nrows, schedule="static", num_threads=nt):
        _catch_up(table + r * row_bytes, kind, d, row_scale, r, scale)
        row_scale[r] = 1.0


cdef Py_ssize_t _coalesce(const char* rows, bint wide, Py_ssize_t k, const char* grads, Py_ssize_t d,
                   int kind, long long* uniq, const char** gptr, char** sums) except -1:
    """The distinct rows of `rows` in order of first appearance into `uniq`, and for each the
    gradient row to use into `gptr`: the given row, or for a row given more than once the sum
    of its rows in order of appearance (in `*sums`, allocated here, only for those rows; the
    caller frees it), as torch's coalesce() sums them.  Returns the number of distinct rows.
    O(k): a hash table of rows with 4k slots or more, probed linearly (at a load of 0.5 the
    probes' branches mispredict); a slot's place among the distinct rows is read only for a row
    seen before."""
    cdef Py_ssize_t cap = 16, shift = 60, j, s, u = 0, i, row_bytes = d * kind_size(kind)
    cdef Py_ssize_t* where
    cdef Py_ssize_t* first
    cdef Py_ssize_t* slots_sum
    cdef Py_ssize_t dup
    cdef long long* keys
    cdef Py_ssize_t* slots
    cdef unsigned long long hsh
    cdef long long r
    while cap < 4 * k:
        cap *= 2
        shift -= 1
    keys = <long long*>malloc(cap * sizeof(long long) + cap * sizeof(Py_ssize_t) + 3 * (k + 1) * sizeof(Py_ssize_t))
    if keys == NULL:
        raise MemoryError()
    slots = <Py_ssize_t*>(keys + cap)
    where = slots + cap
    first = where + k + 1
    slots_sum = first + k + 1      # per distinct row: its place among the summed rows, or -1
    memset(keys, 0xff, cap * sizeof(long long))    # every slot empty: -1
    for j in range(k):
        r = _row_at(rows, wide, j)
        hsh = (<unsigned long long>r * 0x9E3779B97F4A7C15ULL) >> shift
        while keys[hsh] != -1 and keys[hsh] != r:
            hsh = (hsh + 1) & <unsigned long long>(cap - 1)
        if keys[hsh] == -1:
            keys[hsh] = r
            slots[hsh] = u
            uniq[u] = r
            first[u] = j
            slots_sum[u] = -1
            where[j] = u
            u += 1
        else:
            where[j] = slots[hsh]
    sums[0] = NULL
    for s in range(u):
        gptr[s] = grads + first[s] * row_bytes
    if u < k:
        # only the rows given more than once get a summed copy; the others are read in place
        dup = 0
        for j in range(k):
            s = where[j]
            if first[s] != j and slots_sum[s] < 0:
                slots_sum[s] = dup
                dup += 1
        sums[0] = <char*>malloc(dup * row_bytes)
        if sums[0] == NULL:
            free(keys)
            raise MemoryError()
        for s in range(u):
            if slots_sum[s] >= 0:
                memcpy(sums[0] + slots_sum[s] * row_bytes, grads + first[s] * row_bytes, row_bytes)
                gptr[s] = sums[0] + slots_sum[s] * row_bytes
        for j in range(k):
            s = where[j]
            if first[s] == j:
                continue
            if kind == KIND_F64:
                for i in range(d):
                    (<double*>gptr[s])[i] += (<const double*>(grads + j * row_bytes))[i]
            else:
                for i in range(d):
                    (<float*>gptr[s])[i] += (<const float*>(grads + j * row_bytes))[i]
    free(keys)
    return u


cdef void _sparse_rows(Op op, const Task* t, char* table, char* m, char* v, double* row_scale,
                       const long long* uniq, const char** gptr, Py_ssize_t u, Py_ssize_t row_bytes,
                       double before, double after) noexcept nogil:
    """The row loop (the loop module's _rows) over all u distinct rows, split over threads when
    the rows' arrays (the table's, the gradient's and Adam's moments) reach the parallel
    threshold.  The rows are distinct and each is updated alone, so the bits are the same for
    any thread count."""
    cdef int nt = _threads_for(u * row_bytes * (4 if m != NULL else 2))
    cdef Py_ssize_t c, lines = (row_bytes + 63) // 64 * (3 if m != NULL else 1) + 1
    cdef Py_ssize_t ahead = max(1, _PREFETCH_LINES // lines)
    if nt <= 1:
        _rows(op, t, table, m, v, row_scale, uniq, gptr, 0, u, row_bytes, before, after, ahead)
        return
    for c in prange(nt, schedule="static", num_threads=nt):
        _rows(op, t, table, m, v, row_scale, uniq, gptr, c * u // nt, (c + 1) * u // nt,
              row_bytes, before, after, ahead)


cdef bint _sparse_arrays_ok(object table, object rows, object grad_rows, object row_scale, object exp_avg,
                            object exp_avg_sq) noexcept:
    """A sparse step's arrays (sparse_step's docstring), apart from each other where written;
    exp_avg and exp_avg_sq both None (SGD) or both the table's state."""
    cdef bint ok = (_table_ok(table) and _row_scale_ok(row_scale, table) and _rows_ok(rows, table, row_scale)
                    and _array_ok(grad_rows, False) and cnp.PyArray_NDIM(<cnp.ndarray>grad_rows) == 2
                    and cnp.PyArray_TYPE(<cnp.ndarray>grad_rows) == cnp.PyArray_TYPE(<cnp.ndarray>table)
                    and cnp.PyArray_DIM(<cnp.ndarray>grad_rows, 0) == cnp.PyArray_DIM(<cnp.ndarray>rows, 0)
                    and cnp.PyArray_DIM(<cnp.ndarray>grad_rows, 1) == cnp.PyArray_DIM(<cnp.ndarray>table, 1)
                    and _disjoint(<cnp.ndarray>grad_rows, <cnp.ndarray>table)
                    and _disjoint(<cnp.ndarray>grad_rows, <cnp.ndarray>row_scale))
    if not ok or (exp_avg is None and exp_avg_sq is None):
        return ok
    ok = (_state_ok(exp_avg, table) and _state_ok(exp_avg_sq, table)
          and _disjoint(<cnp.ndarray>exp_avg, <cnp.ndarray>exp_avg_sq))
    for other in (rows, grad_rows, row_scale):
        ok = ok and _disjoint(<cnp.ndarray>exp_avg, <cnp.ndarray>other) \
            and _disjoint(<cnp.ndarray>exp_avg_sq, <cnp.ndarray>other)
    return ok


cdef int _sparse_run(Op op, Task* t, object table, object rows, object grad_rows, object row_scale,
                     object exp_avg, object exp_avg_sq, double before, double after) except -1:
    """The row work of a step on checked arrays (task t: the table's kind and width, the
    Hyper and bias correction): the given rows coalesced, then each one's step (op)."""
    cdef Py_ssize_t k = cnp.PyArray_DIM(<cnp.ndarray>rows, 0), u
    cdef Py_ssize_t row_bytes = t.n * kind_size(t.kind)
    cdef char* base = _bytes(table)
    cdef double* rs = <double*>_bytes(row_scale)
    cdef char* m = NULL if exp_avg is None else _bytes(exp_avg)
    cdef char* v = NULL if exp_avg_sq is None else _bytes(exp_avg_sq)
    cdef long long* uniq = <long long*>malloc((k + 1) * sizeof(long long))
    cdef const char** gptr = <const char**>malloc((k + 1) * sizeof(char*))
    cdef char* sums = NULL
    try:
        if uniq == NULL or gptr == NULL:
            raise MemoryError()
        u = _coalesce(_bytes(rows), cnp.PyArray_ITEMSIZE(<cnp.ndarray>rows) == 8, k, _bytes(grad_rows), t.n,
                      t.kind, uniq, gptr, &sums)
        if u * row_bytes < _NOGIL_BYTES:
            _sparse_rows(op, t, base, m, v, rs, uniq, gptr, u, row_bytes, before, after)
        else:
            with nogil:
                _sparse_rows(op, t, base, m, v, rs, uniq, gptr, u, row_bytes, before, after)
    finally:
        free(uniq)
        free(<void*>gptr)
        free(sums)
    return 0


cdef inline double _all_rows_shrink(const Hyper* h) noexcept:
    """The fraction of every weight a step removes, touched or not (what `scale` tracks)."""
    if h.decoupled or h.decay:
        return h.shrink
    if h.l2:        # plain SGD: an untouched row's gradient is lam*w, so w -= lr*lam*w
        return h.lr * h.lam
    return 0.0


def sparse_step(table, rows, grad_rows, row_scale, scale, exp_avg=None, exp_avg_sq=None, *,
                step=0, Settings settings):
    """One sparse step of `table`'s given rows, in place; returns the table's new scale.

    Plain SGD when `exp_avg` is None: the dense SGD step (no momentum) on each distinct row of
    `rows`.  Adam otherwise (torch.optim.SparseAdam's step on those rows: moments of the touched
    rows only, eps added to sqrt(v), `step` the table's step count t >= 1).  `settings`: their
    hyperparameters and rule, compiled by l2decay._validate.sparse_settings, which checks that
    the rule's decay can be lazy (None, L2 with SGD only, Decoupled or Decay).  Every other row decays
    lazily: see the top of this file (_sparse.pxi) for `scale` and `row_scale`.  Rows given
    more than once have their gradient rows summed first (torch's coalesce).

    table: 2-D float32/float64, C-contiguous, writeable; rows: 1-D int64 or int32, each in
    [0, table rows); grad_rows: (len(rows), table columns), table's dtype; row_scale: float64,
    one per row; exp_avg, exp_avg_sq: like table.  On bad input raises TypeError/ValueError and modifies nothing.
    """
    cdef Task t
    cdef bint adam = exp_avg is not None, ok
    cdef double before = 1.0, after, shrink   # (before: set by _real_ok when it accepts)
    cdef long long tstep = 0
    cdef char* base
    cdef double* rs
    cdef Py_ssize_t nrows
    shrink = _all_rows_shrink(&settings.h)
    if adam:
        tstep = _step_ok(step, 1)
        if tstep < 0:
            tstep = _wording().step_count("step", step, 1)
    ok = (_real_ok(scale, &before, 1.0, False, True) and (adam or exp_avg_sq is None)
          and _sparse_arrays_ok(table, rows, grad_rows, row_scale, exp_avg, exp_avg_sq))
    if not ok:
        _wording().sparse_step(table, rows, grad_rows, row_scale, scale, exp_avg, exp_avg_sq)
        raise ValueError("sparse_step's arrays must be apart from each other where written")
    after = before - shrink * before
    _init_task(&t, NULL, NULL, cnp.PyArray_DIM(<cnp.ndarray>table, 1), _kind(<cnp.ndarray>table), &settings.h)
    if adam:
        _bias_correction(&t, &settings.h, tstep, True)
    _sparse_run(OP_ADAM if adam else OP_SGD, &t, table, rows, grad_rows, row_scale, exp_avg, exp_avg_sq,
                before, after)
    if after < _FOLD_BELOW:
        base, rs, nrows = _bytes(table), <double*>_bytes(row_scale), cnp.PyArray_DIM(<cnp.ndarray>table, 0)
        with nogil:
            _fold(base, t.kind, nrows, t.n, rs, after)
        after = 1.0
    return after


def sparse_catch_up(table, row_scale, scale, rows=None):
    """Bring rows of `table` up to date, in place, so that they hold their true weights
    (see sparse_step): the given `rows` (1-D int64 or int32; repeats allowed), their row scales
    set to `scale`, returning how many rows changed; or, when `rows` is None, every row, the row
    scales reset to 1 (the caller's scale becomes 1.0), returning the number of rows.  O(len(rows)
    * columns), or O(table) for all.  On bad input raises TypeError/ValueError, modifying nothing."""
    cdef double sc = 1.0
    cdef Py_ssize_t j, k, changed = 0, d, row_bytes
    cdef long long r
    cdef int kind
    cdef bint wide
    cdef const char* idx
    cdef char* base
    cdef double* rs
    if not (_real_ok(scale, &sc, 1.0, False, True) and _table_ok(table) and _row_scale_ok(row_scale, table)
            and (rows is None or _rows_ok(rows, table, row_scale))):
        _wording().sparse_step(table, rows, None, row_scale, scale)
        raise ValueError("sparse_catch_up's arrays must be apart from each other where written")
    kind = _kind(<cnp.ndarray>table)
    d = cnp.PyArray_DIM(<cnp.ndarray>table, 1)
    row_bytes = d * kind_size(kind)
    base = _bytes(table)
    rs = <double*>_bytes(row_scale)
    if rows is None:
        with nogil:
            _fold(base, kind, cnp.PyArray_DIM(<cnp.ndarray>table, 0), d, rs, sc)
        return cnp.PyArray_DIM(<cnp.ndarray>table, 0)
    k = cnp.PyArray_DIM(<cnp.ndarray>rows, 0)
    idx = _bytes(rows)
    wide = cnp.PyArray_ITEMSIZE(<cnp.ndarray>rows) == 8
    for j in range(k):
        r = _row_at(idx, wide, j)
        if _catch_up(base + r * row_bytes, kind, d, rs, r, sc):
            changed += 1
    return changed


def stream_rows(table, rows, grad_rows, row_scale, exp_avg, exp_avg_sq):
    """Bench only: the memory ceiling of a sparse Adam step, sparse_step's path with almost no
    arithmetic (w += g, m += g, v += g*g): the same array checks, coalescing, prefetching and rows of
    the table, the moments and the row scales read and written (the row scales set to 1), the
    gradient rows read.  What any step with that traffic costs at best on this machine."""
    cdef Hyper h
    cdef Task t
    if exp_avg is None or not _sparse_arrays_ok(table, rows, grad_rows, row_scale, exp_avg, exp_avg_sq):
        raise TypeError("stream_rows takes sparse_step's arrays: a float32/float64 table, its rows, their gradient "
                        "rows, the row scales and exp_avg and exp_avg_sq like the table, all apart")
    _init_task(&t, NULL, NULL, cnp.PyArray_DIM(<cnp.ndarray>table, 1), _kind(<cnp.ndarray>table), &h)
    _sparse_run(OP_STREAM_ROWS, &t, table, rows, grad_rows, row_scale, exp_avg, exp_avg_sq, 1.0, 1.0)
