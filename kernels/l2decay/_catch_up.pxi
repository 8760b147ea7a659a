# A sparse table's lazy decay (_sparse.pxi documents the scales): how a row skipped by some
# steps is brought up to date.  Included by _kernels (sparse_catch_up, the fold) and by the loop
# modules (_loops.pxi's row loop of a step), so both compute the same bits.

cdef inline void _rescale(char* w, int kind, Py_ssize_t d, double a) noexcept nogil:
    """w - a*w, in double and rounded once to the table's dtype: the decay a row skipped."""
    cdef Py_ssize_t i
    cdef double x
    if kind == KIND_F64:
        for i in range(d):
            x = (<double*>w)[i]
            (<double*>w)[i] = x - a * x
    else:
        for i in range(d):
            x = <double>(<float*>w)[i]
            (<float*>w)[i] = <float>(x - a * x)


cdef inline bint _catch_up(char* w, int kind, Py_ssize_t d, double* row_scale, long long r,
                           double scale) noexcept nogil:
    """Bring row r up to `scale`; False if it was already."""
    cdef double c = row_scale[r]
    if c == scale:
        return False
    # (c - scale)/c, not 1 - scale/c: exact when the two are close (Sterbenz), as after one step
    _rescale(w, kind, d, (c - scale) / c)
    row_scale[r] = scale
    return True
