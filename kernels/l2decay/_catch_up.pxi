# A sparse table's lazy decay (_sparse.pxi documents the scales): how a row skipped by some
# steps is brought up to date.  Included by _kernels (sparse_catch_up, the fold) and by the loop
# modules (the row step of a sparse step, which catches a row up in the same pass as its step),
# so both compute the same bits.
from cython cimport floating

cdef inline double _catch_up_factor(double c, double scale) noexcept nogil:
    """The share of a row's weights to remove to bring it from row scale c to `scale`:
    (c - scale)/c, not 1 - scale/c, exact when the two are close (Sterbenz), as after one step."""
    return (c - scale) / c


cdef inline floating _caught_up(floating x, double a) noexcept nogil:
    """x - a*x, in double and rounded once to x's dtype: the decay a row skipped."""
    cdef double y = <double>x
    return <floating>(y - a * y)


cdef inline void _rescale(char* w, int kind, Py_ssize_t d, double a) noexcept nogil:
    """A row's weights caught up by `a` (_caught_up on each)."""
    cdef Py_ssize_t i
    if kind == KIND_F64:
        for i in range(d):
            (<double*>w)[i] = _caught_up((<double*>w)[i], a)
    else:
        for i in range(d):
            (<float*>w)[i] = _caught_up((<float*>w)[i], a)


cdef inline bint _catch_up(char* w, int kind, Py_ssize_t d, double* row_scale, long long r,
                           double scale) noexcept nogil:
    """Bring row r up to `scale`; False if it was already."""
    cdef double c = row_scale[r]
    if c == scale:
        return False
    _rescale(w, kind, d, _catch_up_factor(c, scale))
    row_scale[r] = scale
    return True
