# Part of _loops.pxi: the weight statistics a step can record in its own pass (Task.stats).
#
# A piece of a task runs STATS_BLOCK elements at a time: the block's weights are copied, the
# step runs on the block, and the old and new weights, both still in cache (L2 at most), give
# the block's three sums: sum w_new**2, sum (w_new - w_old)**2
# and sum w_old**2 (Cautious: only where the step decayed, (w_new - w_old)*w_old <= 0).  Each
# sum runs over LANES lanes, element i in lane i % LANES (float32 lanes for float32 and 16-bit
# weights: a float64 lane costs twice the vector work, in a pass that is all the statistics
# cost), and the lanes are added in order in float64, so that no instruction set's vector
# width changes a bit; blocks start at multiples of STATS_BLOCK (every piece does), and _core's
# step adds the blocks in order: no thread count does.

cdef enum:
    LANES = 32      # two AVX-512 registers of float32 per sum: two chains of additions in flight


cdef inline void _block_stats(const store_t* w, const store_t* w0, Py_ssize_t n, bint cautious, work_t like,
                              double* out) noexcept nogil:
    """out[0..3) = the sums of block w (new) / w0 (old) of n <= STATS_BLOCK elements, each lane
    summed in the working precision (`like`: float32 for float32 and 16-bit weights, whose
    values and differences it holds exactly, float64 for float64) and the lanes in float64."""
    cdef work_t aw[LANES]
    cdef work_t ad[LANES]
    cdef work_t ao[LANES]
    cdef work_t x, y, d
    cdef Py_ssize_t i, j, full = n - n % LANES
    for j in range(LANES):
        aw[j] = 0
        ad[j] = 0
        ao[j] = 0
    i = 0
    while i < full:
        for j in range(LANES):
            x = _ld(w, i + j, like)
            y = _ld(w0, i + j, like)
            d = x - y
            aw[j] = aw[j] + x * x
            ad[j] = ad[j] + d * d
            if cautious:
                ao[j] = ao[j] + (y * y if d * y <= 0 else 0)
            else:
                ao[j] = ao[j] + y * y
        i += LANES
    for j in range(n - full):
        x = _ld(w, full + j, like)
        y = _ld(w0, full + j, like)
        d = x - y
        aw[j] = aw[j] + x * x
        ad[j] = ad[j] + d * d
        if not cautious or d * y <= 0:
            ao[j] = ao[j] + y * y
    out[0] = out[1] = out[2] = 0.0
    for j in range(LANES):
        out[0] = out[0] + <double>aw[j]
        out[1] = out[1] + <double>ad[j]
        out[2] = out[2] + <double>ao[j]


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


cdef void _stats(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Run `op` on elements [a, b) of task t (a: a multiple of STATS_BLOCK) as _chunk or _q8
    does, one block at a time, and write each block's sums to t.stats[3*block ...]."""
    cdef double old[STATS_BLOCK]         # (room for STATS_BLOCK elements of any kind)
    cdef Py_ssize_t s = a, e, size = kind_size(t.kind)
    cdef bint cautious = t.h.cautious
    cdef double* out
    while s < b:
        e = min(b, s + STATS_BLOCK)
        memcpy(old, t.w + s * size, (e - s) * size)
        if t.sc1 != NULL:
            _q8(op, t, s, e)
        else:
            _chunk(op, t, s, e)
        out = t.stats + 3 * (s // STATS_BLOCK)
        if t.kind == KIND_F64:
            _stats_typed(<double*>t.w + s, <double*>old, e - s, cautious, out)
        elif t.kind == KIND_F32:
            _stats_typed(<float*>t.w + s, <float*>old, e - s, cautious, out)
        elif t.kind == KIND_BF16:
            _stats_typed(<bf16*>t.w + s, <bf16*>old, e - s, cautious, out)
        else:
            _stats_typed(<f16*>t.w + s, <f16*>old, e - s, cautious, out)
        s = e
