# The update loops of l2decay, compiled once per instruction set: _simd_baseline.pyx,
# _simd_avx2.pyx and _simd_avx512.pyx each `include` this file and setup.py gives each its own
# -m flags.  _kernels picks one module at import (l2decay.build_info()["simd"]) and calls its
# `_chunk` through the capsule `CHUNK`.
#
# Every loop is a plain serial loop over raw pointers, fused over float/double.  The build uses
# -ffp-contract=off and no fast-math, and the per-element operation order is the same in every
# loop variant, so every instruction set gives bit-identical results (IEEE add, mul, div and
# sqrt are exactly rounded at any vector width).
from cpython.pycapsule cimport PyCapsule_New
from cython cimport floating
from libc.math cimport sqrt, sqrtf

cdef extern from *:
    """
    #if defined(__AVX512F__)
    #define L2D_SIMD "avx512f"
    #elif defined(__AVX2__)
    #define L2D_SIMD "avx2"
    #elif defined(__AVX__)
    #define L2D_SIMD "avx"
    #elif defined(__SSE2__) || defined(_M_X64)
    #define L2D_SIMD "sse2"
    #elif defined(__ARM_NEON)
    #define L2D_SIMD "neon"
    #else
    #define L2D_SIMD "none"
    #endif
    """
    const char* L2D_SIMD

from l2decay._common cimport (Hyper, Op, Task, chunk_fn, OP_L2, OP_L2_KEEP, OP_DECAY, OP_SGD,
                              OP_ADAM, OP_STREAM_SWAP, OP_STREAM_AXPY)


cdef inline void _l2_loop(floating* w, floating* g, Py_ssize_t n,
                          floating lr, floating lam) noexcept nogil:
    """grad += lam*w;  w -= lr*grad."""
    cdef Py_ssize_t i
    for i in range(n):
        g[i] = g[i] + lam * w[i]
        w[i] = w[i] - lr * g[i]


cdef inline void _l2_keep_loop(floating* w, const floating* g, Py_ssize_t n,
                               floating lr, floating lam) noexcept nogil:
    """w -= lr*(grad + lam*w), grad not written: the same w, to the bit, as _l2_loop."""
    cdef Py_ssize_t i
    cdef floating gi
    for i in range(n):
        gi = g[i] + lam * w[i]
        w[i] = w[i] - lr * gi


cdef inline void _decay_loop(floating* w, const floating* g, Py_ssize_t n,
                             floating lr, floating decay) noexcept nogil:
    """w = (w - lr*grad) * (1 - decay), as z - decay*z: float32(1 - 1e-7) is 1 - 1.19e-7."""
    cdef Py_ssize_t i
    cdef floating z
    for i in range(n):
        z = w[i] - lr * g[i]
        w[i] = z - decay * z


cdef inline void _sgd_loop(floating* w, const floating* g, floating* buf, Py_ssize_t n,
                           const Hyper* h, bint first, bint use_momentum, bint velocity,
                           bint nesterov) noexcept nogil:
    """One SGD step (l2decay.sgd_step documents the formulas); g is only read.  The momentum
    flags are passed as constants (_sgd_chunk) so that each combination compiles to its own
    loop: left to gcc's unswitching, this many branches keep it from vectorizing."""
    cdef Py_ssize_t i
    cdef floating lr = <floating>h.lr, lam = <floating>h.lam, shrink = <floating>h.shrink
    cdef floating sign = <floating>h.sign, mu = <floating>h.mu, damp1 = <floating>h.damp1
    cdef floating gi, wi, bi
    # flags in locals: read through `h` they could alias the arrays, which stops gcc from
    # unswitching the branches and vectorizing
    cdef bint l2 = h.l2, decoupled = h.decoupled, decay = h.decay
    for i in range(n):
        gi = sign * g[i]          # exact: a multiplication by +-1
        wi = w[i]
        if l2:
            gi = gi + lam * wi
        if decoupled:
            wi = wi - shrink * wi
        if not use_momentum:
            wi = wi - lr * gi
        elif velocity:
            # Keras / scikit-learn: v = mu*v - lr*g; w += v (nesterov: w += mu*v - lr*g)
            if first:
                bi = -(lr * gi)
            else:
                bi = mu * buf[i] - lr * gi
            buf[i] = bi
            if nesterov:
                wi = wi + (mu * bi - lr * gi)
            else:
                wi = wi + bi
        else:
            # torch: b = mu*b + (1 - dampening)*g (b = g when born); w -= lr*(g + mu*b or b)
            if first:
                bi = gi
            else:
                bi = mu * buf[i] + damp1 * gi
            buf[i] = bi
            if nesterov:
                gi = gi + mu * bi
            else:
                gi = bi
            wi = wi - lr * gi
        if decay:
            wi = wi - shrink * wi
        w[i] = wi


cdef inline void _sgd_chunk(floating* w, const floating* g, floating* buf, Py_ssize_t n,
                            const Hyper* h, bint first) noexcept nogil:
    if h.mu == 0.0:
        _sgd_loop(w, g, buf, n, h, False, False, False, False)
    elif first:
        if h.velocity:
            _sgd_loop(w, g, buf, n, h, True, True, True, h.nesterov)
        else:
            _sgd_loop(w, g, buf, n, h, True, True, False, h.nesterov)
    elif h.velocity:
        if h.nesterov:
            _sgd_loop(w, g, buf, n, h, False, True, True, True)
        else:
            _sgd_loop(w, g, buf, n, h, False, True, True, False)
    elif h.nesterov:
        _sgd_loop(w, g, buf, n, h, False, True, False, True)
    else:
        _sgd_loop(w, g, buf, n, h, False, True, False, False)


cdef inline void _adam_loop(floating* w, const floating* g, floating* m, floating* v,
                            floating* vmax, Py_ssize_t n, const Hyper* h,
                            double step_size, double bc2_sqrt, bint amsgrad) noexcept nogil:
    """One Adam step (l2decay.adam_step documents the formulas); g is only read.  `amsgrad`
    is passed as a constant (_adam_chunk): each case compiles to its own loop."""
    cdef Py_ssize_t i
    cdef floating lam = <floating>h.lam, shrink = <floating>h.shrink, sign = <floating>h.sign
    cdef floating b1 = <floating>h.b1, b2 = <floating>h.b2
    cdef floating a1 = <floating>(1.0 - h.b1), a2 = <floating>(1.0 - h.b2)
    cdef floating ss = <floating>step_size, bc2s = <floating>bc2_sqrt, eps = <floating>h.eps
    cdef floating gi, wi, mi, vi, root
    cdef bint l2 = h.l2, decoupled = h.decoupled, decay = h.decay   # locals: see _sgd_loop
    for i in range(n):
        gi = sign * g[i]
        wi = w[i]
        if l2:
            gi = gi + lam * wi
        if decoupled:
            wi = wi - shrink * wi
        mi = b1 * m[i] + a1 * gi
        vi = b2 * v[i] + a2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        if amsgrad:
            if vmax[i] > vi:
                vi = vmax[i]
            vmax[i] = vi
        if floating is float:
            root = sqrtf(vi)
        else:
            root = sqrt(vi)
        # eps_form "keras" folds sqrt(1 - beta2**t) into step_size and passes bc2_sqrt = 1
        # (a division by 1 is exact)
        wi = wi - (ss * mi) / (root / bc2s + eps)
        if decay:
            wi = wi - shrink * wi
        w[i] = wi


cdef inline void _adam_chunk(floating* w, const floating* g, floating* m, floating* v,
                             floating* vmax, Py_ssize_t n, const Hyper* h,
                             double step_size, double bc2_sqrt) noexcept nogil:
    if h.amsgrad:
        _adam_loop(w, g, m, v, vmax, n, h, step_size, bc2_sqrt, True)
    else:
        _adam_loop(w, g, m, v, vmax, n, h, step_size, bc2_sqrt, False)


# ---- bench only: the memory ceiling of the rules' traffic (l2decay bench's "stream" column)
cdef inline void _swap_loop(floating* w, floating* g, Py_ssize_t n) noexcept nogil:
    """Stream loop (memory ceiling of the L2 rule's traffic): exchange w and g."""
    cdef Py_ssize_t i
    cdef floating t
    for i in range(n):
        t = w[i]
        w[i] = g[i]
        g[i] = t


cdef inline void _axpy_loop(floating* w, const floating* g, Py_ssize_t n,
                            floating a) noexcept nogil:
    """Stream loop (memory ceiling of the decay rule's traffic): w += a*g."""
    cdef Py_ssize_t i
    for i in range(n):
        w[i] = w[i] + a * g[i]


cdef void _chunk(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Run `op` on elements [a, b) of task `t`."""
    cdef const Hyper* h = t.h
    if t.is_double:
        if op == OP_SGD:
            _sgd_chunk(<double*>t.w + a, <double*>t.g + a, <double*>t.s1 + a, b - a, h, t.first)
        elif op == OP_ADAM:
            _adam_chunk(<double*>t.w + a, <double*>t.g + a, <double*>t.s1 + a, <double*>t.s2 + a,
                       <double*>t.s3 + a if t.s3 != NULL else NULL, b - a, h,
                       t.step_size, t.bc2_sqrt)
        elif op == OP_L2:
            _l2_loop(<double*>t.w + a, <double*>t.g + a, b - a, h.lr, h.lam)
        elif op == OP_L2_KEEP:
            _l2_keep_loop(<double*>t.w + a, <double*>t.g + a, b - a, h.lr, h.lam)
        elif op == OP_DECAY:
            _decay_loop(<double*>t.w + a, <double*>t.g + a, b - a, h.lr, h.shrink)
        elif op == OP_STREAM_SWAP:
            _swap_loop(<double*>t.w + a, <double*>t.g + a, b - a)
        else:
            _axpy_loop(<double*>t.w + a, <double*>t.g + a, b - a, h.lr)
    else:
        if op == OP_SGD:
            _sgd_chunk(<float*>t.w + a, <float*>t.g + a, <float*>t.s1 + a, b - a, h, t.first)
        elif op == OP_ADAM:
            _adam_chunk(<float*>t.w + a, <float*>t.g + a, <float*>t.s1 + a, <float*>t.s2 + a,
                       <float*>t.s3 + a if t.s3 != NULL else NULL, b - a, h,
                       t.step_size, t.bc2_sqrt)
        elif op == OP_L2:
            _l2_loop(<float*>t.w + a, <float*>t.g + a, b - a, <float>h.lr, <float>h.lam)
        elif op == OP_L2_KEEP:
            _l2_keep_loop(<float*>t.w + a, <float*>t.g + a, b - a, <float>h.lr, <float>h.lam)
        elif op == OP_DECAY:
            _decay_loop(<float*>t.w + a, <float*>t.g + a, b - a, <float>h.lr, <float>h.shrink)
        elif op == OP_STREAM_SWAP:
            _swap_loop(<float*>t.w + a, <float*>t.g + a, b - a)
        else:
            _axpy_loop(<float*>t.w + a, <float*>t.g + a, b - a, <float>h.lr)


# The module's one export: its `_chunk`, wrapped so that _kernels can call it without the GIL.
CHUNK = PyCapsule_New(<void*>_chunk, "l2decay._chunk", NULL)
# The widest vector extension the C compiler was allowed to use for this module (a check that
# the module's flags took effect).
COMPILED_FOR = L2D_SIMD.decode("ascii")
