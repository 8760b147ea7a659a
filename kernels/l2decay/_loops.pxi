# The update loops of l2decay, compiled once per instruction set: _simd_baseline.pyx,
# _simd_avx2.pyx and _simd_avx512.pyx each `include` this file and setup.py gives each its own
# -m flags.  _kernels picks one module at import (l2decay.build_info()["simd"]) and calls its
# `_chunk` and `_rows` through the capsules `CHUNK` and `ROWS`.
#
# Every loop is a plain serial loop over raw pointers, fused over float/double.  The build uses
# -ffp-contract=off and no fast-math, and the per-element operation order is the same in every
# loop variant, so every instruction set gives bit-identical results (IEEE add, mul, div and
# sqrt are exactly rounded at any vector width).
from cpython.pycapsule cimport PyCapsule_New
from cython cimport floating
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int64_t
from libc.string cimport memcpy
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


# Conversions between float32 and the 16-bit storage formats, and the rounding modes of the
# generic loops.  bfloat16 is the top half of a float32 (integer shifts); float16 is integer and
# float arithmetic too (below), which vectorizes at every level.
cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #include <math.h>
    static inline float l2d_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
    static inline uint32_t l2d_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
    static inline float l2d_bf16_to_f32(uint16_t h) { return l2d_bits_f32((uint32_t)h << 16); }
    /* round to nearest even; a NaN stays a (quiet) NaN */
    static inline uint16_t l2d_f32_to_bf16(float f) {
        uint32_t u = l2d_f32_bits(f);
        uint16_t r = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
        return (u & 0x7FFFFFFFu) > 0x7F800000u ? (uint16_t)((u >> 16) | 0x40u) : r;
    }
    /* stochastic: 16 random bits added below the kept ones, then cut: rounds away from zero
       with probability (distance to the lower neighbour) / (gap), so E[result] = f */
    static inline uint16_t l2d_f32_to_bf16_sr(float f, uint32_t rnd) {
        uint32_t u = l2d_f32_bits(f);
        uint16_t r = (uint16_t)((u + (rnd & 0xFFFFu)) >> 16);
        return (u & 0x7FFFFFFFu) > 0x7F800000u ? (uint16_t)((u >> 16) | 0x40u) : r;
    }
    /* float16 <-> float32 in integer and float arithmetic, branch-free so that gcc vectorizes
       them at every level (it leaves _Float16 conversions scalar without AVX512-FP16), and the
       same code everywhere, so every level gives the same bits.  Checked against F16C's
       conversions for every half and every float (NaN payloads aside: a NaN becomes 0x7E00). */
    static inline float l2d_f16_to_f32(uint16_t h) {
        /* a normal half's bits moved into a float's place, its exponent rebiased by 2^-112;
           a subnormal's mantissa m as (0.5 + m*2^-24) - 0.5, exact */
        uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, two_w = w + w;
        float normal = l2d_bits_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
        float subnormal = l2d_bits_f32((two_w >> 17) | (126u << 23)) - 0.5f;
        uint32_t sub = 0u - (uint32_t)(two_w < (1u << 27));               /* all ones: subnormal */
        return l2d_bits_f32(sign | (l2d_f32_bits(subnormal) & sub) | (l2d_f32_bits(normal) & ~sub));
    }
    static inline uint16_t l2d_f32_to_f16(float f) {
        /* round to nearest even: |f|*2^112*2^-110 rounds to the half's precision in float
           arithmetic (and overflows to inf where the half does); adding the power of two of the
           half's exponent range leaves its mantissa in the low bits */
        uint32_t w = l2d_f32_bits(f), shl1 = w + w, sign = w & 0x80000000u;
        float base = (fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
        uint32_t bias = shl1 & 0xFF000000u;
        bias = bias > 0x71000000u ? bias : 0x71000000u;
        uint32_t bits = l2d_f32_bits(l2d_bits_f32((bias >> 1) + 0x07800000u) + base);
        uint32_t nonsign = ((bits >> 13) & 0x7C00u) + (bits & 0x0FFFu);
        uint32_t nan = 0u - (uint32_t)(shl1 > 0xFF000000u);
        return (uint16_t)((sign >> 16) | (0x7E00u & nan) | (nonsign & ~nan));
    }
    /* stochastic to float16: the neighbours below and above |f| and a coin weighted by the
       distance (65504's upper neighbour is inf, at the gap 65536 would be); inf and NaN round
       to nearest.  Branch-free, like the conversions.  The gap between two neighbours is a
       power of two, so the weight is (|f| - below) times the gap's reciprocal, made exactly
       from its exponent bits: the same bits as the division (checked for all 2^32 floats),
       without a division per element. */
    static inline uint16_t l2d_f32_to_f16_sr(float f, uint32_t rnd) {
        uint32_t h = l2d_f32_to_f16(f);
        float a = fabsf(f);
        uint32_t sign = h & 0x8000u, lo = h & 0x7FFFu;
        lo -= (uint32_t)(l2d_f16_to_f32((uint16_t)lo) > a);                 /* toward zero */
        float lof = l2d_f16_to_f32((uint16_t)lo);
        float hif = lo == 0x7BFFu ? 65536.0f : l2d_f16_to_f32((uint16_t)(lo + 1));
        float p = (a - lof) * l2d_bits_f32((254u << 23) - l2d_f32_bits(hif - lof));
        float coin = (float)(rnd >> 8) * 5.9604644775390625e-8f;         /* [0, 1), 24 bits */
        uint32_t r = sign | (lo + (uint32_t)(coin < p));
        uint32_t finite = 0u - (uint32_t)(a < INFINITY);
        return (uint16_t)((r & finite) | (h & ~finite));
    }
    /* the random bits of element i for a task's key (seed, step, tensor): a counter-based
       hash, so that every thread count and instruction set draws the same bits.  Split in
       two for the loops: l2d_random(key, i) == l2d_mix((uint32_t)i ^ l2d_key_at(key, i)),
       and l2d_key_at is the same for all i of one 2^32-element block, so a loop over one
       block hashes 32-bit lanes (16 to a vector) instead of 64-bit indices. */
    static inline uint32_t l2d_mix(uint32_t x) {
        x ^= x >> 16; x *= 0x7FEB352Du; x ^= x >> 15; x *= 0x846CA68Bu; x ^= x >> 16;
        return x;
    }
    static inline uint32_t l2d_key_at(uint32_t key, int64_t i) {
        return key ^ ((uint32_t)((uint64_t)i >> 32) * 0x85EBCA77u);
    }
    static inline uint32_t l2d_random(uint32_t key, int64_t i) {
        return l2d_mix((uint32_t)i ^ l2d_key_at(key, i));
    }
    """
    float l2d_bf16_to_f32(uint16_t h) noexcept nogil
    uint16_t l2d_f32_to_bf16(float f) noexcept nogil
    uint16_t l2d_f32_to_bf16_sr(float f, uint32_t rnd) noexcept nogil
    float l2d_f16_to_f32(uint16_t h) noexcept nogil
    uint16_t l2d_f32_to_f16(float f) noexcept nogil
    uint16_t l2d_f32_to_f16_sr(float f, uint32_t rnd) noexcept nogil
    uint32_t l2d_random(uint32_t key, int64_t i) noexcept nogil
    uint32_t l2d_mix(uint32_t x) noexcept nogil
    uint32_t l2d_key_at(uint32_t key, int64_t i) noexcept nogil

from l2decay._common cimport (Hyper, Op, Task, chunk_fn, rows_fn, OP_L2, OP_L2_KEEP, OP_DECAY, OP_SGD,
                              OP_ADAM, OP_STREAM_SWAP, OP_STREAM_AXPY, OP_STREAM_ADAM16, OP_STREAM_ROWS,
                              KIND_F32, KIND_F64,
                              KIND_BF16, KIND_F16, ROUND_NEAREST, ROUND_STOCHASTIC,
                              ROUND_COMPENSATED, Q8_BLOCK, STATS_BLOCK, STATS_LANES, kind_size, bf16, f16)

include "_catch_up.pxi"


# Whether a tuned loop sums the weight statistics as it steps: a fused type, so that the loops
# without them stay the plain flat loops (small enough for gcc to inline with their flags as
# constants).
cdef struct Silent:
    char unused
cdef struct Tallied:
    char unused
ctypedef fused tally_t:
    Silent
    Tallied


# The rule of a tuned loop, as a type.  AnyRule: its flags read from Hyper as values (the flat
# loops, which gcc unswitches on them).  The others: constants, one function per rule whatever
# gcc inlines (the loops of groups with statistics, which gcc does not unswitch: a run-time flag
# there is a select per element, 20-50% of the step).
cdef struct AnyRule:
    char unused
cdef struct NoRule:
    char unused
cdef struct L2Rule:
    char unused
cdef struct DecoupledRule:      # Decoupled and Corrected: the shrink before the step
    char unused
cdef struct DecayRule:
    char unused
ctypedef fused rule_t:
    AnyRule
    NoRule
    L2Rule
    DecoupledRule
    DecayRule


# The weight statistics' sums (_stats.pxi) in STATS_LANES lanes per sum: lanes[k*STATS_LANES + j]
# holds sum k (0: w_new**2, 1: (w_new - w_old)**2, 2: w_old**2) of the elements in lane j, in the
# working precision; the lanes are then added in order in float64.  A fixed lane per element and
# a fixed order keep the bits the same at every vector width and thread count.
cdef inline void _lanes_zero(floating* lanes) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(3 * STATS_LANES):
        lanes[j] = 0


cdef inline void _lanes_add(floating* lanes, Py_ssize_t j, floating x, floating y, bint cautious) noexcept nogil:
    """Element of lane j: x its new weight, y its old; Cautious counts y only where the step
    decayed it, (x - y)*y <= 0."""
    cdef floating d = x - y
    lanes[j] = lanes[j] + x * x
    lanes[STATS_LANES + j] = lanes[STATS_LANES + j] + d * d
    if cautious:
        lanes[2 * STATS_LANES + j] = lanes[2 * STATS_LANES + j] + (y * y if d * y <= 0 else 0)
    else:
        lanes[2 * STATS_LANES + j] = lanes[2 * STATS_LANES + j] + y * y


cdef inline void _lanes_out(const floating* lanes, double* out) noexcept nogil:
    cdef Py_ssize_t j, k
    for k in range(3):
        out[k] = 0.0
        for j in range(STATS_LANES):
            out[k] = out[k] + <double>lanes[k * STATS_LANES + j]


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


cdef inline void _sgd_loop(floating* restrict w, const floating* restrict g, floating* restrict buf, Py_ssize_t n,
                           const Hyper* h, rule_t* rule, bint first, bint use_momentum,
                           bint velocity, bint nesterov, tally_t* tally,
                           floating* restrict lanes, bint catch=False, double a=0.0) noexcept nogil:
    """One SGD step (l2decay.sgd_step documents the formulas); g is only read.  The momentum
    flags are passed as constants (_sgd_flags) so that each combination compiles to its own
    loop: left to gcc's unswitching, this many branches keep it from vectorizing.  `rule`, its
    type: the rule's flags.  `tally`, its type: as in _adam_loop."""
    cdef Py_ssize_t i, start = 0, group = STATS_LANES if tally_t is Tallied else n
    cdef floating lr = <floating>h.lr, lam = <floating>h.lam, shrink = <floating>h.shrink
    cdef floating sign = <floating>h.sign, mu = <floating>h.mu, damp1 = <floating>h.damp1
    cdef floating gi, wi, bi, wo
    cdef bint l2 = h.l2 if rule_t is AnyRule else rule_t is L2Rule
    cdef bint decoupled = h.decoupled if rule_t is AnyRule else rule_t is DecoupledRule
    cdef bint decay = h.decay if rule_t is AnyRule else rule_t is DecayRule
    cdef bint stats = tally_t is Tallied
    while start < n:        # once without stats; with them, a group of lanes at a time
        for i in range(start, start + group):
            gi = sign * g[i]          # exact: a multiplication by +-1
            wi = _caught_up(w[i], a) if catch else w[i]
            wo = wi
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
            if stats:
                _lanes_add(lanes, i - start, wi, wo, False)
        start += group


cdef inline void _sgd_flags(floating* w, const floating* g, floating* buf, Py_ssize_t n,
                            const Hyper* h, rule_t* rule, bint first, tally_t* tally,
                            floating* lanes) noexcept nogil:
    if h.mu == 0.0:
        _sgd_loop(w, g, buf, n, h, rule, False, False, False, False, tally, lanes)
    elif first:
        if h.velocity:
            _sgd_loop(w, g, buf, n, h, rule, True, True, True, h.nesterov, tally, lanes)
        else:
            _sgd_loop(w, g, buf, n, h, rule, True, True, False, h.nesterov, tally, lanes)
    elif h.velocity:
        if h.nesterov:
            _sgd_loop(w, g, buf, n, h, rule, False, True, True, True, tally, lanes)
        else:
            _sgd_loop(w, g, buf, n, h, rule, False, True, True, False, tally, lanes)
    elif h.nesterov:
        _sgd_loop(w, g, buf, n, h, rule, False, True, False, True, tally, lanes)
    else:
        _sgd_loop(w, g, buf, n, h, rule, False, True, False, False, tally, lanes)


cdef inline void _sgd_chunk(floating* w, const floating* g, floating* buf, Py_ssize_t n,
                            const Hyper* h, bint first) noexcept nogil:
    _sgd_flags(w, g, buf, n, h, <AnyRule*>NULL, first, <Silent*>NULL, NULL)


cdef inline void _adam_loop(floating* restrict w, const floating* restrict g, floating* restrict m,
                            floating* restrict v, floating* restrict vmax, Py_ssize_t n, const Hyper* h,
                            rule_t* rule, double step_size, double bc2_sqrt, bint amsgrad, bint unit,
                            tally_t* tally, floating* restrict lanes, bint catch=False, double a=0.0) noexcept nogil:
    """One Adam step (l2decay.adam_step documents the formulas); g is only read.  `amsgrad`
    is passed as a constant (_adam_chunk): each case compiles to its own loop.  So is `unit`:
    bc2_sqrt is 1 (eps_form "keras", which folds sqrt(1 - beta2**t) into step_size), and the
    division by it, exact, is left out: a division per element is the loop's costliest
    instruction after the other division and the square root.  `catch` (a constant too): a
    sparse table's row is caught up by `a` first, in the same pass (_catch_up.pxi).  `tally`
    (its type) Tallied: the weight statistics of these n elements (a multiple of STATS_LANES) are
    added to `lanes` (_lanes_add) in the same pass, a group of lanes at a time (all pointers
    `restrict`: gcc then keeps the lanes in registers)."""
    cdef Py_ssize_t i, start = 0, group = STATS_LANES if tally_t is Tallied else n
    cdef floating lam = <floating>h.lam, shrink = <floating>h.shrink, sign = <floating>h.sign
    cdef floating b1 = <floating>h.b1, b2 = <floating>h.b2
    cdef floating a1 = <floating>(1.0 - h.b1), a2 = <floating>(1.0 - h.b2)
    cdef floating ss = <floating>step_size, bc2s = <floating>bc2_sqrt, eps = <floating>h.eps
    cdef floating gi, wi, mi, vi, root, wo
    cdef bint l2 = h.l2 if rule_t is AnyRule else rule_t is L2Rule
    cdef bint decoupled = h.decoupled if rule_t is AnyRule else rule_t is DecoupledRule
    cdef bint decay = h.decay if rule_t is AnyRule else rule_t is DecayRule
    cdef bint stats = tally_t is Tallied
    while start < n:        # once without stats; with them, a group of lanes at a time
        for i in range(start, start + group):
            gi = sign * g[i]
            wi = _caught_up(w[i], a) if catch else w[i]
            wo = wi
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
            # (a division by 1 is exact: `unit` leaves it out)
            if unit:
                wi = wi - (ss * mi) / (root + eps)
            else:
                wi = wi - (ss * mi) / (root / bc2s + eps)
            if decay:
                wi = wi - shrink * wi
            w[i] = wi
            if stats:
                _lanes_add(lanes, i - start, wi, wo, False)
        start += group


cdef inline void _adam_flags(floating* w, const floating* g, floating* m, floating* v,
                             floating* vmax, Py_ssize_t n, const Hyper* h, rule_t* rule,
                             double step_size, double bc2_sqrt, tally_t* tally, floating* lanes) noexcept nogil:
    if bc2_sqrt == 1.0:
        if h.amsgrad:
            _adam_loop(w, g, m, v, vmax, n, h, rule, step_size, bc2_sqrt, True, True, tally, lanes)
        else:
            _adam_loop(w, g, m, v, vmax, n, h, rule, step_size, bc2_sqrt, False, True, tally, lanes)
    elif h.amsgrad:
        _adam_loop(w, g, m, v, vmax, n, h, rule, step_size, bc2_sqrt, True, False, tally, lanes)
    else:
        _adam_loop(w, g, m, v, vmax, n, h, rule, step_size, bc2_sqrt, False, False, tally, lanes)


cdef inline void _adam_chunk(floating* w, const floating* g, floating* m, floating* v,
                             floating* vmax, Py_ssize_t n, const Hyper* h,
                             double step_size, double bc2_sqrt) noexcept nogil:
    _adam_flags(w, g, m, v, vmax, n, h, <AnyRule*>NULL, step_size, bc2_sqrt, <Silent*>NULL, NULL)


# ---- the generic loops: 16-bit storage (bfloat16, float16: float32 arithmetic and state) and
# every rounding mode.  float32/float64 weights with the default rounding take the tuned loops
# above; these add a load and a store per array and a rounding step, and are written once for
# all four storage types.
ctypedef fused store_t:
    float
    double
    bf16
    f16

ctypedef fused work_t:
    float
    double

ctypedef fused state_t:     # optimizer state: the working dtype, or w's 16-bit one
    float
    double
    bf16
    f16


# The choices the generic loops must see as constants, as fused types: each loop (_sgd_gen,
# _adam_gen) is compiled once per rounding mode and momentum/amsgrad flag, whatever gcc decides to
# inline.  Passed as run-time ints, they left every generic loop scalar (a branch per element on
# the mode; gcc does not clone a function that large for its constant arguments), and so did
# constants that reached a loop only by inlining it where gcc stopped inlining.
cdef struct Nearest:
    char unused
cdef struct Stochastic:
    char unused
cdef struct Compensated:
    char unused
ctypedef fused rounding_t:
    Nearest
    Stochastic
    Compensated

cdef struct With:       # SGD with momentum ("torch" form); Adam with amsgrad
    char unused
cdef struct Velocity:   # SGD with momentum, "keras" form
    char unused
cdef struct Without:
    char unused
ctypedef fused extra_t:
    With
    Velocity
    Without


cdef struct Plain:      # every rule but Cautious
    char unused
cdef struct Careful:    # Cautious: Decoupled's shrink only where the update u (w -= lr*u) has u*w >= 0
    char unused
ctypedef fused caution_t:
    Plain
    Careful


cdef inline bint _opposite(work_t u, work_t w) noexcept nogil:
    """Whether u*w < 0 exactly (by the signs, not a product that could round to 0): where
    Cautious leaves the weight undecayed."""
    return ((u > 0) & (w < 0)) | ((u < 0) & (w > 0))


cdef inline int _mode(rounding_t* mode) noexcept nogil:
    """The Rounding a mode type stands for."""
    if rounding_t is Stochastic:
        return ROUND_STOCHASTIC
    elif rounding_t is Compensated:
        return ROUND_COMPENSATED
    else:
        return ROUND_NEAREST


cdef inline work_t _ld(const store_t* p, Py_ssize_t i, work_t like) noexcept nogil:
    """p[i] in the working precision (`like` only picks it: a double return would make gcc
    give up vectorizing the float loops)."""
    # (the 16-bit structs are read and written as uint16_t: gcc does not vectorize struct accesses)
    if store_t is bf16:
        return <work_t>l2d_bf16_to_f32((<const uint16_t*>p)[i])
    elif store_t is f16:
        return <work_t>l2d_f16_to_f32((<const uint16_t*>p)[i])
    else:
        return <work_t>p[i]


cdef inline void _st_bits(store_t* p, Py_ssize_t i, work_t x, int rounding, uint32_t rnd) noexcept nogil:
    """Store x, rounded to nearest, or stochastically with the random bits `rnd` (bfloat16
    uses the low 16, float16 the high 24)."""
    if store_t is bf16:
        if rounding == ROUND_STOCHASTIC:
            (<uint16_t*>p)[i] = l2d_f32_to_bf16_sr(<float>x, rnd)
        else:
            (<uint16_t*>p)[i] = l2d_f32_to_bf16(<float>x)
    elif store_t is f16:
        if rounding == ROUND_STOCHASTIC:
            (<uint16_t*>p)[i] = l2d_f32_to_f16_sr(<float>x, rnd)
        else:
            (<uint16_t*>p)[i] = l2d_f32_to_f16(<float>x)
    elif store_t is float:
        p[i] = <float>x
    else:
        p[i] = x


cdef inline void _st(store_t* p, Py_ssize_t i, work_t x) noexcept nogil:
    """Store x rounded to nearest."""
    _st_bits(p, i, x, ROUND_NEAREST, 0)


cdef inline uint32_t _bits(uint32_t key_at, uint32_t lo, Py_ssize_t i) noexcept nogil:
    """l2d_random(key, i0 + i) for element i of a loop over elements i0 + [0, n) that stay in
    one 2^32-element block (_generic splits at the blocks): key_at = l2d_key_at(key, i0), lo =
    (uint32_t)i0.  32-bit lanes only."""
    return l2d_mix((lo + <uint32_t>i) ^ key_at)


cdef inline uint32_t _own_bits(state_t* p, uint32_t key_at, uint32_t lo, Py_ssize_t i, int rounding) noexcept nogil:
    """The random bits of a float16 state value's own hash (_bits), when it rounds
    stochastically; 0 for any other state (bfloat16 shares a hash: _st_state)."""
    return _bits(key_at, lo, i) if state_t is f16 and rounding == ROUND_STOCHASTIC else 0


cdef inline void _st_state(state_t* p, Py_ssize_t i, work_t x, int rounding, uint32_t half,
                           uint32_t own) noexcept nogil:
    """Store a state value x (optimizer state in w's dtype is rounded as w is).  Stochastic
    bfloat16 takes the 16 random bits `half` (half of a hash another value shares: a hash per
    element is the step's main cost), float16 the 24 it needs from its own hash, `own`."""
    if state_t is bf16:
        _st_bits(p, i, x, rounding, half)
    else:
        _st_bits(p, i, x, rounding, own)


cdef inline void _write(store_t* w, store_t* comp, Py_ssize_t i, work_t w0, work_t change,
                        work_t pre, work_t post, int rounding, uint32_t rnd) noexcept nogil:
    """The new weight from the loaded one, w0, and the optimizer's `change` (its step, e.g.
    -lr*g): Decoupled's shrink before it and Decay's after, then stored by `rounding`.
    Compensated: the whole change, decay included, is Kahan-added to w0 + comp, so that changes
    smaller than half a unit in the last place add up instead of rounding away.  pre/post: the
    shrink of Decoupled / Decay, 0 otherwise (locals of the caller: read through the Hyper
    pointer, which the stores could alias, they would stop gcc from vectorizing).  `rnd`: the
    element's random bits, for "stochastic"."""
    cdef work_t x, d, y, t
    if rounding == ROUND_COMPENSATED:
        d = change - pre * w0
        d = d - post * (w0 + d)
        y = d + _ld(comp, i, w0)
        _st(w, i, w0 + y)
        t = _ld(w, i, w0)
        _st(comp, i, y - (t - w0))
    else:
        x = w0
        if pre != 0:
            x = x - pre * x
        x = x + change
        if post != 0:
            x = x - post * x
        _st_bits(w, i, x, rounding, rnd)


cdef inline void _sgd_gen(store_t* w, const store_t* g, state_t* buf, store_t* comp, Py_ssize_t n,
                          const Hyper* h, bint first, uint32_t key, Py_ssize_t i0, work_t zero,
                          rounding_t* mode, extra_t* extra, caution_t* caution) noexcept nogil:
    """_sgd_loop for any storage and rounding, and Cautious; elements i0 + [0, n) of the tensor.
    Only the rounding `mode`, the `extra` state (momentum) and the `caution` are constants (types); `first` and
    nesterov select between values computed either way, never between memory accesses, so gcc
    if-converts and vectorizes the loop (a born buffer's garbage is read and not used).  With
    `velocity` a run-time flag too, gcc 12 gives up on the loop.  The buffer is float32 (or
    float64) or, state_dtype "param", w's 16-bit dtype (see _adam_gen); `zero` picks the
    working precision."""
    cdef Py_ssize_t i
    cdef work_t lr = <work_t>h.lr, lam = <work_t>h.lam, sign = <work_t>h.sign
    cdef work_t mu = <work_t>h.mu, damp1 = <work_t>h.damp1
    cdef work_t gi, w0, bi, bprev, change, u
    cdef work_t pre = <work_t>h.shrink if h.decoupled else 0, post = <work_t>h.shrink if h.decay else 0
    cdef bint l2 = h.l2, nesterov = h.nesterov, cautious = caution_t is Careful
    cdef bint use_momentum = extra_t is not Without, velocity = extra_t is Velocity
    cdef int rounding = _mode(mode)
    cdef int srnd = ROUND_STOCHASTIC if rounding == ROUND_STOCHASTIC else ROUND_NEAREST
    cdef uint32_t lo = <uint32_t>i0, kw = l2d_key_at(key, i0), kb = l2d_key_at(l2d_random(key, -1), i0)
    cdef uint32_t rw
    for i in range(n):
        rw = _bits(kw, lo, i) if rounding == ROUND_STOCHASTIC else 0
        gi = sign * _ld(g, i, sign)
        w0 = _ld(w, i, sign)
        if l2:
            gi = gi + lam * w0
        # u: the update of w -= lr*u, whose sign Cautious reads (velocity: w += change)
        if not use_momentum:
            u = gi
            change = -(lr * gi)
        else:
            bprev = _ld(buf, i, sign)
            if velocity:
                bi = -(lr * gi) if first else mu * bprev - lr * gi
                change = (mu * bi - lr * gi) if nesterov else bi
                u = -change
            else:
                bi = gi if first else mu * bprev + damp1 * gi
                u = (gi + mu * bi) if nesterov else bi
                change = -(lr * u)
            # (bfloat16: the high half of the weight's random bits, which uses the low half)
            _st_state(buf, i, bi, srnd, rw >> 16, _own_bits(buf, kb, lo, i, srnd))
        _write(w, comp, i, w0, change, 0 if cautious and _opposite(u, w0) else pre, post, rounding, rw)


cdef inline void _adam_gen(store_t* w, const store_t* g, state_t* m, state_t* v, state_t* vmax,
                           store_t* comp, Py_ssize_t n, const Hyper* h, double step_size,
                           double bc2_sqrt, uint32_t key, Py_ssize_t i0, work_t zero,
                           rounding_t* mode, extra_t* extra, caution_t* caution) noexcept nogil:
    """_adam_loop for any storage and rounding, and Cautious (whose u has m's sign); elements
    i0 + [0, n) of the tensor (the rounding `mode`, `extra`, With: amsgrad, and `caution`
    constants, see _sgd_gen).  The moments are float32 (float64) or,
    state_dtype "param", w's 16-bit dtype: then each is stored as the weight is, rounded to
    nearest or, with "stochastic", stochastically from random bits of its own (the element's
    bits of the keys hashed from the weight's)."""
    cdef Py_ssize_t i
    cdef work_t lam = <work_t>h.lam, sign = <work_t>h.sign, b1 = <work_t>h.b1, b2 = <work_t>h.b2
    cdef work_t a1 = <work_t>(1.0 - h.b1), a2 = <work_t>(1.0 - h.b2), eps = <work_t>h.eps
    cdef work_t ss = <work_t>step_size, bc2s = <work_t>bc2_sqrt
    cdef work_t gi, w0, mi, vi, xi, root
    cdef uint32_t r2
    cdef work_t pre = <work_t>h.shrink if h.decoupled else 0, post = <work_t>h.shrink if h.decay else 0
    cdef bint l2 = h.l2, amsgrad = extra_t is With, cautious = caution_t is Careful
    cdef int rounding = _mode(mode)
    cdef int srnd = ROUND_STOCHASTIC if rounding == ROUND_STOCHASTIC else ROUND_NEAREST
    cdef uint32_t lo = <uint32_t>i0, kw = l2d_key_at(key, i0), km = l2d_key_at(l2d_random(key, -1), i0)
    cdef uint32_t kv = l2d_key_at(l2d_random(key, -2), i0), kx = l2d_key_at(l2d_random(key, -3), i0)
    cdef uint32_t rw
    for i in range(n):
        rw = _bits(kw, lo, i) if rounding == ROUND_STOCHASTIC else 0
        gi = sign * _ld(g, i, sign)
        w0 = _ld(w, i, sign)
        if l2:
            gi = gi + lam * w0
        mi = b1 * _ld(m, i, sign) + a1 * gi
        vi = b2 * _ld(v, i, sign) + a2 * (gi * gi)
        # 16 random bits each for bfloat16: m the high half of the weight's hash (the weight uses
        # the low half), v and vmax the halves of a second one; float16 a hash each
        r2 = _bits(kv, lo, i) if state_t is not float and state_t is not double and srnd == ROUND_STOCHASTIC else 0
        _st_state(m, i, mi, srnd, rw >> 16, _own_bits(m, km, lo, i, srnd))
        _st_state(v, i, vi, srnd, r2, r2)
        if amsgrad:
            xi = _ld(vmax, i, sign)
            vi = xi if xi > vi else vi
            _st_state(vmax, i, vi, srnd, r2 >> 16, _own_bits(vmax, kx, lo, i, srnd))
        if work_t is float:
            root = sqrtf(vi)
        else:
            root = sqrt(vi)
        _write(w, comp, i, w0, -((ss * mi) / (root / bc2s + eps)), 0 if cautious and _opposite(mi, w0) else pre,
               post, rounding, rw)


cdef inline void _rule_gen(Op op, store_t* w, store_t* g, Py_ssize_t n, const Hyper* h) noexcept nogil:
    """l2_step / decay_step on 16-bit storage, float32 arithmetic, rounded to nearest (one loop
    per op: with the op tested inside, gcc left float16's loops scalar)."""
    cdef Py_ssize_t i
    cdef float lr = <float>h.lr, lam = <float>h.lam, decay = <float>h.shrink, wi, gi, z
    if op == OP_DECAY:
        for i in range(n):
            z = _ld(w, i, lr) - lr * _ld(g, i, lr)
            _st(w, i, z - decay * z)
    elif op == OP_L2:
        for i in range(n):
            wi = _ld(w, i, lr)
            _st(g, i, _ld(g, i, lr) + lam * wi)
            gi = _ld(g, i, lr)          # the stored gradient, as the float loops use it
            _st(w, i, wi - lr * gi)
    else:
        for i in range(n):
            wi = _ld(w, i, lr)
            gi = _ld(g, i, lr) + lam * wi
            _st(w, i, wi - lr * gi)


cdef struct Wide:       # the optimizer state in float32 (float64 for float64 weights)
    char unused
cdef struct Narrow:     # ... in the 16-bit weights' own dtype (state_dtype "param")
    char unused
ctypedef fused width_t:
    Wide
    Narrow


cdef void _generic_r(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b, rounding_t* mode,
                     extra_t* extra, width_t* width, caution_t* caution) noexcept nogil:
    """Run `op` on elements [a, b) of task `t` with the generic loops, the rounding `mode`, the
    `extra` state (momentum for SGD, amsgrad for Adam), the state's `width` and the `caution`
    fixed at compile time: only the types of the (NULL) pointers matter."""
    cdef const Hyper* h = t.h
    if t.kind == KIND_BF16:
        if op == OP_SGD:
            if width_t is Narrow:
                _sgd_gen(<bf16*>t.w + a, <bf16*>t.g + a, <bf16*>t.s1 + a if t.s1 != NULL else NULL,
                         <bf16*>t.comp + a if t.comp != NULL else NULL, b - a, h, t.first, t.key, a, <float>0,
                         mode, extra, caution)
            else:
                _sgd_gen(<bf16*>t.w + a, <bf16*>t.g + a, <float*>t.s1 + a if t.s1 != NULL else NULL,
                         <bf16*>t.comp + a if t.comp != NULL else NULL, b - a, h, t.first, t.key, a, <float>0,
                         mode, extra, caution)
        elif op == OP_ADAM:
            if width_t is Narrow:
                _adam_gen(<bf16*>t.w + a, <bf16*>t.g + a, <bf16*>t.s1 + a, <bf16*>t.s2 + a,
                          <bf16*>t.s3 + a if t.s3 != NULL else NULL, <bf16*>t.comp + a if t.comp != NULL else NULL,
                          b - a, h, t.step_size, t.bc2_sqrt, t.key, a, <float>0, mode, extra, caution)
            else:
                _adam_gen(<bf16*>t.w + a, <bf16*>t.g + a, <float*>t.s1 + a, <float*>t.s2 + a,
                          <float*>t.s3 + a if t.s3 != NULL else NULL, <bf16*>t.comp + a if t.comp != NULL else NULL,
                          b - a, h, t.step_size, t.bc2_sqrt, t.key, a, <float>0, mode, extra, caution)
        elif rounding_t is Nearest and extra_t is Without and width_t is Wide and caution_t is Plain:   # (l2_step, decay_step)
            _rule_gen(op, <bf16*>t.w + a, <bf16*>t.g + a, b - a, h)
    elif t.kind == KIND_F16:
        if op == OP_SGD:
            if width_t is Narrow:
                _sgd_gen(<f16*>t.w + a, <f16*>t.g + a, <f16*>t.s1 + a if t.s1 != NULL else NULL,
                         <f16*>t.comp + a if t.comp != NULL else NULL, b - a, h, t.first, t.key, a, <float>0,
                         mode, extra, caution)
            else:
                _sgd_gen(<f16*>t.w + a, <f16*>t.g + a, <float*>t.s1 + a if t.s1 != NULL else NULL,
                         <f16*>t.comp + a if t.comp != NULL else NULL, b - a, h, t.first, t.key, a, <float>0,
                         mode, extra, caution)
        elif op == OP_ADAM:
            if width_t is Narrow:
                _adam_gen(<f16*>t.w + a, <f16*>t.g + a, <f16*>t.s1 + a, <f16*>t.s2 + a,
                          <f16*>t.s3 + a if t.s3 != NULL else NULL, <f16*>t.comp + a if t.comp != NULL else NULL,
                          b - a, h, t.step_size, t.bc2_sqrt, t.key, a, <float>0, mode, extra, caution)
            else:
                _adam_gen(<f16*>t.w + a, <f16*>t.g + a, <float*>t.s1 + a, <float*>t.s2 + a,
                          <float*>t.s3 + a if t.s3 != NULL else NULL, <f16*>t.comp + a if t.comp != NULL else NULL,
                          b - a, h, t.step_size, t.bc2_sqrt, t.key, a, <float>0, mode, extra, caution)
        elif rounding_t is Nearest and extra_t is Without and width_t is Wide and caution_t is Plain:   # (l2_step, decay_step)
            _rule_gen(op, <f16*>t.w + a, <f16*>t.g + a, b - a, h)
    elif width_t is Narrow:
        pass                      # (wider weights keep their state in their own dtype: Wide)
    elif t.kind == KIND_F32:
        if op == OP_SGD:
            _sgd_gen(<float*>t.w + a, <float*>t.g + a, <float*>t.s1 + a if t.s1 != NULL else NULL,
                     <float*>t.comp + a if t.comp != NULL else NULL, b - a, h, t.first, t.key, a, <float>0,
                     mode, extra, caution)
        else:
            _adam_gen(<float*>t.w + a, <float*>t.g + a, <float*>t.s1 + a, <float*>t.s2 + a,
                      <float*>t.s3 + a if t.s3 != NULL else NULL, <float*>t.comp + a if t.comp != NULL else NULL,
                      b - a, h, t.step_size, t.bc2_sqrt, t.key, a, <float>0, mode, extra, caution)
    else:
        if op == OP_SGD:
            _sgd_gen(<double*>t.w + a, <double*>t.g + a, <double*>t.s1 + a if t.s1 != NULL else NULL,
                     <double*>t.comp + a if t.comp != NULL else NULL, b - a, h, t.first, t.key, a, <double>0,
                     mode, extra, caution)
        else:
            _adam_gen(<double*>t.w + a, <double*>t.g + a, <double*>t.s1 + a, <double*>t.s2 + a,
                      <double*>t.s3 + a if t.s3 != NULL else NULL, <double*>t.comp + a if t.comp != NULL else NULL,
                      b - a, h, t.step_size, t.bc2_sqrt, t.key, a, <double>0, mode, extra, caution)


cdef inline void _generic_c(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b, rounding_t* mode,
                            width_t* width, caution_t* caution) noexcept nogil:
    if op == OP_SGD and t.h.mu != 0.0 and t.h.velocity:
        _generic_r(op, t, a, b, mode, <Velocity*>NULL, width, caution)
    elif (op == OP_SGD and t.h.mu != 0.0) or (op == OP_ADAM and t.h.amsgrad):
        _generic_r(op, t, a, b, mode, <With*>NULL, width, caution)
    else:
        _generic_r(op, t, a, b, mode, <Without*>NULL, width, caution)


cdef inline void _generic_m(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b, rounding_t* mode,
                            width_t* width) noexcept nogil:
    if t.h.cautious and (op == OP_SGD or op == OP_ADAM):
        _generic_c(op, t, a, b, mode, width, <Careful*>NULL)
    else:
        _generic_c(op, t, a, b, mode, width, <Plain*>NULL)


cdef inline void _generic_w(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b, rounding_t* mode) noexcept nogil:
    if t.state16:
        _generic_m(op, t, a, b, mode, <Narrow*>NULL)
    else:
        _generic_m(op, t, a, b, mode, <Wide*>NULL)


cdef inline void _generic(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t cut
    while a < b:
        # one 2^32-element block of the random bits' index at a time (see _bits)
        cut = min(b, ((a >> 32) + 1) << 32)
        if t.rounding == ROUND_STOCHASTIC:
            _generic_w(op, t, a, cut, <Stochastic*>NULL)
        elif t.rounding == ROUND_COMPENSATED:
            _generic_w(op, t, a, cut, <Compensated*>NULL)
        else:
            _generic_w(op, t, a, cut, <Nearest*>NULL)
        a = cut


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


cdef inline void _stream16_loop(uint16_t* w, const uint16_t* g, float* m, float* v,
                                Py_ssize_t n) noexcept nogil:
    """Stream loop (memory ceiling of an Adam step on 16-bit weights with float32 moments: read
    w, g, m, v, write w, m, v) with next to no arithmetic; the values stay finite."""
    cdef Py_ssize_t i
    cdef float x
    for i in range(n):
        x = <float>g[i]
        m[i] = <float>0.5 * m[i] + x
        v[i] = <float>0.5 * v[i] + x
        w[i] = w[i] ^ (g[i] & 1)


cdef inline void _stream16n_loop(uint16_t* w, const uint16_t* g, uint16_t* m, uint16_t* v,
                                 Py_ssize_t n) noexcept nogil:
    """_stream16_loop with 16-bit moments (state_dtype "param")."""
    cdef Py_ssize_t i
    for i in range(n):
        m[i] = (m[i] >> 1) ^ g[i]
        v[i] = (v[i] >> 1) ^ g[i]
        w[i] = w[i] ^ (g[i] & 1)


cdef inline bint _takes_generic(Op op, const Task* t) noexcept nogil:
    """Whether task t's op runs in the generic loops (16-bit weights, a rounding mode, Cautious)
    rather than the tuned float32/float64 ones."""
    return (t.kind == KIND_BF16 or t.kind == KIND_F16 or t.rounding != ROUND_NEAREST
            or (t.h.cautious and (op == OP_SGD or op == OP_ADAM)))


cdef void _chunk(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Run `op` on elements [a, b) of task `t`."""
    cdef const Hyper* h = t.h
    if op == OP_STREAM_ADAM16 and t.state16:
        _stream16n_loop(<uint16_t*>t.w + a, <const uint16_t*>t.g + a, <uint16_t*>t.s1 + a, <uint16_t*>t.s2 + a, b - a)
    elif op == OP_STREAM_ADAM16:
        _stream16_loop(<uint16_t*>t.w + a, <const uint16_t*>t.g + a, <float*>t.s1 + a, <float*>t.s2 + a, b - a)
    elif _takes_generic(op, t):
        _generic(op, t, a, b)
    elif t.kind == KIND_F64:
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


include "_q8.pxi"
include "_stats.pxi"


# ---- the row loop of a sparse step (_sparse.pxi): here, not in _kernels, so that the rows'
# catch-up and their steps are compiled for this instruction set, in one pass over the row

cdef extern from *:
    """
    /* a row about to be written: its cache lines requested now, so that the random rows of a
       step are fetched from memory in parallel instead of one after another */
    static inline void l2d_prefetch(const char* p, Py_ssize_t nbytes) {
    #if defined(__GNUC__) || defined(__clang__)
        for (Py_ssize_t o = 0; o < nbytes; o += 64) __builtin_prefetch(p + o, 1, 3);
    #else
        (void)p; (void)nbytes;
    #endif
    }
    """
    void l2d_prefetch(const char* p, Py_ssize_t nbytes) noexcept nogil

cdef inline void _stream_row(floating* w, const floating* g, floating* m, floating* v, Py_ssize_t n) noexcept nogil:
    """Bench only: a sparse Adam step's traffic on one row (w, m, v read and written, g read)."""
    cdef Py_ssize_t i
    for i in range(n):
        w[i] += g[i]
        m[i] += g[i]
        v[i] += g[i] * g[i]


cdef inline void _row_step(Op op, const Task* t, bint catch, double a) noexcept nogil:
    """A sparse step's dense step on one row (task t: a float32/float64 row, rounded to
    nearest, plain SGD or Adam without amsgrad, eps_form "keras": bc2_sqrt 1), caught up by `a`
    first when `catch`."""
    cdef const Hyper* h = t.h
    if t.kind == KIND_F64:
        if op == OP_ADAM:
            if catch:
                _adam_loop(<double*>t.w, <double*>t.g, <double*>t.s1, <double*>t.s2, NULL, t.n, h, <AnyRule*>NULL,
                           t.step_size, t.bc2_sqrt, False, True, <Silent*>NULL, NULL, True, a)
            else:
                _adam_loop(<double*>t.w, <double*>t.g, <double*>t.s1, <double*>t.s2, NULL, t.n, h, <AnyRule*>NULL,
                           t.step_size, t.bc2_sqrt, False, True, <Silent*>NULL, NULL)
        elif catch:
            _sgd_loop(<double*>t.w, <double*>t.g, NULL, t.n, h, <AnyRule*>NULL, False, False, False, False,
                      <Silent*>NULL, NULL, True, a)
        else:
            _sgd_loop(<double*>t.w, <double*>t.g, NULL, t.n, h, <AnyRule*>NULL, False, False, False, False,
                      <Silent*>NULL, NULL)
    elif op == OP_ADAM:
        if catch:
            _adam_loop(<float*>t.w, <float*>t.g, <float*>t.s1, <float*>t.s2, NULL, t.n, h, <AnyRule*>NULL,
                       t.step_size, t.bc2_sqrt, False, True, <Silent*>NULL, NULL, True, a)
        else:
            _adam_loop(<float*>t.w, <float*>t.g, <float*>t.s1, <float*>t.s2, NULL, t.n, h, <AnyRule*>NULL,
                       t.step_size, t.bc2_sqrt, False, True, <Silent*>NULL, NULL)
    elif catch:
        _sgd_loop(<float*>t.w, <float*>t.g, NULL, t.n, h, <AnyRule*>NULL, False, False, False, False,
                  <Silent*>NULL, NULL, True, a)
    else:
        _sgd_loop(<float*>t.w, <float*>t.g, NULL, t.n, h, <AnyRule*>NULL, False, False, False, False,
                  <Silent*>NULL, NULL)


cdef struct Step:       # _rows_of: the rows take the sparse step
    char unused
cdef struct Traffic:    # ... only its memory traffic (bench only: OP_STREAM_ROWS)
    char unused
ctypedef fused rows_t:
    Step
    Traffic


cdef inline void _rows_of(rows_t* what, Op op, const Task* t0, char* table, char* m, char* v, double* row_scale,
                          const long long* uniq, const char** gptr, Py_ssize_t a, Py_ssize_t b,
                          Py_ssize_t row_bytes, double before, double after, Py_ssize_t ahead) noexcept nogil:
    """_rows, its loop compiled apart for the step and for its traffic alone."""
    cdef Task t = t0[0]
    cdef Py_ssize_t s
    cdef long long r
    cdef double c
    # s from a - ahead: the first `ahead` rows are requested together before the first step, as
    # each later row is in the loop (inline: in a helper, gcc 12's code for the requests is slower)
    for s in range(a - ahead, b):
        if s + ahead < b:
            r = uniq[s + ahead]
            l2d_prefetch(table + r * row_bytes, row_bytes)
            l2d_prefetch(<char*>(row_scale + r), 8)
            if m != NULL:
                l2d_prefetch(m + r * row_bytes, row_bytes)
                l2d_prefetch(v + r * row_bytes, row_bytes)
        if s < a:
            continue
        r = uniq[s]
        t.w = table + r * row_bytes
        t.g = <char*>gptr[s]
        if m != NULL:
            t.s1 = m + r * row_bytes
            t.s2 = v + r * row_bytes
        c = row_scale[r]
        if rows_t is Traffic:
            if t.kind == KIND_F64:
                _stream_row(<double*>t.w, <double*>t.g, <double*>t.s1, <double*>t.s2, t.n)
            else:
                _stream_row(<float*>t.w, <float*>t.g, <float*>t.s1, <float*>t.s2, t.n)
        elif c == before:
            _row_step(op, &t, False, 0.0)
        else:
            _row_step(op, &t, True, _catch_up_factor(c, before))
        row_scale[r] = after


cdef void _rows(Op op, const Task* t0, char* table, char* m, char* v, double* row_scale,
                const long long* uniq, const char** gptr, Py_ssize_t a, Py_ssize_t b,
                Py_ssize_t row_bytes, double before, double after, Py_ssize_t ahead) noexcept nogil:
    """Distinct rows uniq[a..b) of a sparse step: each caught up to `before` (the scale before
    this step), then the dense step (op, with t0's Hyper and bias correction) with gradient row
    gptr[s] (and Adam's moment rows of m and v), its row scale set to `after`; meanwhile the
    row `ahead` places further on is requested from memory.  OP_STREAM_ROWS: the same rows'
    traffic alone (bench only)."""
    if op == OP_STREAM_ROWS:
        _rows_of(<Traffic*>NULL, op, t0, table, m, v, row_scale, uniq, gptr, a, b, row_bytes, before, after, ahead)
    else:
        _rows_of(<Step*>NULL, op, t0, table, m, v, row_scale, uniq, gptr, a, b, row_bytes, before, after, ahead)


# The module's exports: its `_chunk` and `_rows`, wrapped so that _kernels can call them
# without the GIL.
CHUNK = PyCapsule_New(<void*>_chunk, "l2decay._chunk", NULL)
# (tasks with 8-bit state: their own entry, so that gcc's inlining budget of _chunk stays with
# the float loops: inlined there, the 8-bit steps left the float32 Adam loop 6x slower)
Q8 = PyCapsule_New(<void*>_q8, "l2decay._q8", NULL)
STATS = PyCapsule_New(<void*>_stats, "l2decay._stats", NULL)     # (tasks with Task.stats)
ROWS = PyCapsule_New(<void*>_rows, "l2decay._rows", NULL)
# The widest vector extension the C compiler was allowed to use for this module (a check that
# the module's flags took effect).
COMPILED_FOR = L2D_SIMD.decode("ascii")
