# Part of _loops.pxi: the weight statistics a step can record in its own pass (Task.stats).
#
# Three sums per block of STATS_BLOCK elements: sum w_new**2, sum (w_new - w_old)**2 and sum
# w_old**2 (Cautious: only where the step decayed, (w_new - w_old)*w_old <= 0), each in lanes
# (_lanes_add: float32 lanes for float32 and 16-bit weights, float64 for float64), the lanes added
# in order in float64 (_lanes_out), and _core's step adds the blocks in order: no instruction set
# or thread count changes a bit.  The tuned float32/float64 SGD and Adam loops add to the lanes as
# they step (no second read); the other loops (16-bit weights, rounding modes, Cautious, 8-bit
# state, the rules' own steps) step a block whose old weights were copied, then sum the block
# while it is still in cache.


cdef inline void _block_stats(const store_t* w, const store_t* w0, Py_ssize_t n, bint cautious, work_t like,
                              double* out) noexcept nogil:
    """out[0..3) = the sums of block w (new) / w0 (old) of n <= STATS_BLOCK elements, in lanes of
    the working precision (`like`: float32 for float32 and 16-bit weights, whose values and
    differences it holds exactly, float64 for float64)."""
    cdef work_t lanes[3 * STATS_LANES]
    cdef Py_ssize_t i, start = 0, end
    _lanes_zero(lanes)
    while start < n:        # a group of lanes at a time: the inner loop vectorizes
        end = min(n, start + STATS_LANES)
        for i in range(start, end):
            _lanes_add(lanes, i - start, _ld(w, i, like), _ld(w0, i, like), cautious)
        start = end
    _lanes_out(lanes, out)


cdef inline void _stats_typed(const store_t* w, const store_t* w0, Py_ssize_t n, bint cautious,
                              double* out) noexcept nogil:
    if store_t is double:
        if cautious:
            _block_stats(w, w0, n, True, <double>0, out)
        else:
            _block_stats(w, w0, n, False, <double>0, out)
    elif cautious:
        _block_stats(w, w0, n, True, <float>0, out)
    else:
        _block_stats(w, w0, n, False, <float>0, out)


cdef void _tallied_sgd(const Task* t, floating* w, Py_ssize_t a, Py_ssize_t n, floating* lanes,
                       rule_t* rule) noexcept nogil:
    """The tuned SGD step of t's elements [a, a + n) (n: whole groups), its sums written to
    `lanes`.  They add up in a local array (a pointer's array could alias the weights, so gcc
    would keep the sums in memory; a local one it keeps in registers)."""
    cdef floating acc[3 * STATS_LANES]
    _lanes_zero(acc)
    _sgd_flags(w + a, <floating*>t.g + a, <floating*>t.s1 + a, n, t.h, rule, t.first, <Tallied*>NULL, acc)
    memcpy(lanes, acc, sizeof(acc))


cdef void _tallied_adam(const Task* t, floating* w, Py_ssize_t a, Py_ssize_t n, floating* lanes,
                        rule_t* rule) noexcept nogil:
    """As _tallied_sgd, for Adam."""
    cdef floating acc[3 * STATS_LANES]
    _lanes_zero(acc)
    _adam_flags(w + a, <floating*>t.g + a, <floating*>t.s1 + a, <floating*>t.s2 + a,
                <floating*>t.s3 + a if t.s3 != NULL else NULL, n, t.h, rule, t.step_size, t.bc2_sqrt,
                <Tallied*>NULL, acc)
    memcpy(lanes, acc, sizeof(acc))


cdef inline void _tallied(Op op, const Task* t, floating* w, Py_ssize_t a, Py_ssize_t n, floating* lanes,
                          rule_t* rule) noexcept nogil:
    if op == OP_ADAM:
        _tallied_adam(t, w, a, n, lanes, rule)
    else:
        _tallied_sgd(t, w, a, n, lanes, rule)


cdef inline void _fused_typed(Op op, const Task* t, floating* w, Py_ssize_t a, Py_ssize_t b,
                              double* out) noexcept nogil:
    cdef floating lanes[3 * STATS_LANES]
    cdef floating old[STATS_LANES]
    cdef Py_ssize_t i, full = (b - a) - (b - a) % STATS_LANES
    cdef const Hyper* h = t.h
    if h.l2:
        _tallied(op, t, w, a, full, lanes, <L2Rule*>NULL)
    elif h.decoupled:
        _tallied(op, t, w, a, full, lanes, <DecoupledRule*>NULL)
    elif h.decay:
        _tallied(op, t, w, a, full, lanes, <DecayRule*>NULL)
    else:
        _tallied(op, t, w, a, full, lanes, <NoRule*>NULL)
    if full < b - a:    # the last group, short: stepped on its own, its old weights copied
        memcpy(old, w + a + full, (b - a - full) * sizeof(floating))
        _chunk(op, t, a + full, b)
        for i in range(b - a - full):
            _lanes_add(lanes, i, w[a + full + i], old[i], False)
    _lanes_out(lanes, out)


cdef inline void _fused_stats(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b, double* out) noexcept nogil:
    """_chunk's tuned SGD/Adam step of elements [a, b) (one block), summing as it steps."""
    if t.kind == KIND_F64:
        _fused_typed(op, t, <double*>t.w, a, b, out)
    else:
        _fused_typed(op, t, <float*>t.w, a, b, out)


cdef void _stats(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Run `op` on elements [a, b) of task t (a: a multiple of STATS_BLOCK) as _chunk or _q8
    does, one block at a time, and write each block's sums to t.stats[3*block ...]."""
    cdef double old[STATS_BLOCK]         # (room for STATS_BLOCK elements of any kind)
    cdef Py_ssize_t s = a, e, size = kind_size(t.kind)
    cdef bint cautious = t.h.cautious
    cdef double* out
    cdef bint fused = (op == OP_SGD or op == OP_ADAM) and t.sc1 == NULL and not _takes_generic(op, t)
    while s < b:
        e = min(b, s + STATS_BLOCK)
        out = t.stats + 3 * (s // STATS_BLOCK)
        if fused:
            _fused_stats(op, t, s, e, out)
        else:       # step a copied block, then sum it while old and new weights are in cache
            memcpy(old, t.w + s * size, (e - s) * size)
            if t.sc1 != NULL:
                _q8(op, t, s, e)
            else:
                _chunk(op, t, s, e)
            if t.kind == KIND_F64:
                _stats_typed(<double*>t.w + s, <double*>old, e - s, cautious, out)
            elif t.kind == KIND_F32:
                _stats_typed(<float*>t.w + s, <float*>old, e - s, cautious, out)
            elif t.kind == KIND_BF16:
                _stats_typed(<bf16*>t.w + s, <bf16*>old, e - s, cautious, out)
            else:
                _stats_typed(<f16*>t.w + s, <f16*>old, e - s, cautious, out)
        s = e
