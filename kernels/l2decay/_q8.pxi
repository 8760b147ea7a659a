# Part of _loops.pxi: the steps with 8-bit optimizer state (state_dtype "8bit").
#
# A state value is an 8-bit float code times the scale of its block (Q8_BLOCK elements of the
# tensor, counted from its first): the block's largest magnitude over the largest code, 1.875
# (float32 arithmetic), so that the largest value codes exactly and the block decays with it;
# 1 for a block below float32's normal range (its codes are 0).  A code is 3 mantissa bits under
# an exponent, no subnormals, code 0 zero.  Signed state (Adam's exp_avg, SGD's momentum) has a
# sign bit and 4 exponent bits: 2^-15 * 1.125 to 1.875; exp_avg_sq, never negative, 5 exponent
# bits and no sign: 2^-31 * 1.125 to 1.875.  A value rounds to the nearest code (ties away from
# zero: a tie is rare, and even costs three more instructions), below the smallest to zero,
# except that a positive exp_avg_sq is never coded 0 (its square root divides the step).  Both
# ways are integer arithmetic on the float's bits, exact, so every level gives the same bits.
# A block is decoded and coded in passes of its own (l2d_q8_decode/encode), written with
# AVX-512 and AVX2 intrinsics: gcc's own vectorization of the codec narrows through 16-bit
# words and shuffles, and inside the step's loop it cost as much again as the step itself.
cdef extern from *:
    """
    static inline float l2d_q8_mag(uint32_t c, uint32_t off) {
        /* magnitude code c: its bits moved into a float's place, the exponent rebiased by
           off >> 3; 0 for c == 0 (masks, not a branch: gcc vectorizes them) */
        return l2d_bits_f32(((c + off) << 20) & (0u - (uint32_t)(c != 0u)));
    }
    static inline float l2d_q8_dec_signed(uint8_t b) {
        return l2d_bits_f32(l2d_f32_bits(l2d_q8_mag(b & 127u, 896u)) | ((uint32_t)(b & 128u) << 24));
    }
    static inline float l2d_q8_dec_unsigned(uint8_t b) { return l2d_q8_mag(b, 768u); }
    static inline uint32_t l2d_q8_code(uint32_t u, uint32_t off, uint32_t top) {
        /* u: the bits of a magnitude; its nearest code (ties up), 0 below the smallest, top above */
        int32_t r = (int32_t)((u + 0x80000u) >> 20) - (int32_t)off;
        uint32_t c = (uint32_t)(r < 0 ? 0 : r);
        return c > top ? top : c;
    }
    static inline uint8_t l2d_q8_enc_signed(float x) {
        uint32_t u = l2d_f32_bits(x);
        return (uint8_t)(l2d_q8_code(u & 0x7FFFFFFFu, 896u, 127u) | ((u >> 24) & 128u));
    }
    static inline uint8_t l2d_q8_enc_unsigned(float x) {
        uint32_t u = l2d_f32_bits(x) & 0x7FFFFFFFu, c = l2d_q8_code(u, 768u, 255u);
        return (uint8_t)(c | (uint32_t)(u != 0u && c == 0u));
    }
    static inline uint32_t l2d_q8_abs_bits(float x) { return l2d_f32_bits(x) & 0x7FFFFFFFu; }
    static inline float l2d_q8_scale(uint32_t a) {
        /* a: the bits of a block's largest magnitude: the scale that takes it to the largest
           code, 1.875; 1 for a block of zeros (and of float32 subnormals, which code as 0);
           NaN when it is not finite */
        if (a >= 0x7F800000u) return l2d_bits_f32(0x7FC00000u);
        if (a < 0x00800000u) return 1.0f;
        return l2d_bits_f32(a) / 1.875f;
    }
    /* x[i] = the value of code q[i] times scale, and q[i] = the code of x[i] * inv (sgn: the
       signed code); the same bits as l2d_q8_dec_* and l2d_q8_enc_* at every level */
    #if defined(__AVX512F__) || defined(__AVX2__)
    #include <immintrin.h>
    #endif
    static inline void l2d_q8_decode(const uint8_t* q, float scale, float* x, Py_ssize_t n, int sgn) {
        Py_ssize_t i = 0;
    #if defined(__AVX512F__)
        const __m512 s = _mm512_set1_ps(scale);
        const __m512i off = _mm512_set1_epi32(sgn ? 896 : 768), low = _mm512_set1_epi32(sgn ? 127 : 255);
        const __m512i top = _mm512_set1_epi32(sgn ? (int)0x80000000u : 0);
        for (; i + 16 <= n; i += 16) {
            __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(q + i)));
            __m512i c = _mm512_and_si512(b, low);
            __m512i t = _mm512_maskz_slli_epi32(_mm512_test_epi32_mask(c, c), _mm512_add_epi32(c, off), 20);
            t = _mm512_ternarylogic_epi32(t, _mm512_slli_epi32(b, 24), top, 0xF8);     /* t | (b << 24 & top) */
            _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_castsi512_ps(t), s));
        }
    #elif defined(__AVX2__)
        const __m256 s = _mm256_set1_ps(scale);
        const __m256i off = _mm256_set1_epi32(sgn ? 896 : 768), low = _mm256_set1_epi32(sgn ? 127 : 255);
        const __m256i top = _mm256_set1_epi32(sgn ? (int)0x80000000u : 0);
        for (; i + 8 <= n; i += 8) {
            __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(q + i)));
            __m256i c = _mm256_and_si256(b, low);
            __m256i t = _mm256_slli_epi32(_mm256_add_epi32(c, off), 20);
            t = _mm256_andnot_si256(_mm256_cmpeq_epi32(c, _mm256_setzero_si256()), t);
            t = _mm256_or_si256(t, _mm256_and_si256(_mm256_slli_epi32(b, 24), top));
            _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_castsi256_ps(t), s));
        }
    #endif
        if (sgn) for (; i < n; i++) x[i] = l2d_q8_dec_signed(q[i]) * scale;
        else for (; i < n; i++) x[i] = l2d_q8_dec_unsigned(q[i]) * scale;
    }
    static inline void l2d_q8_encode(const float* x, float inv, uint8_t* q, Py_ssize_t n, int sgn) {
        Py_ssize_t i = 0;
        /* l2d_q8_code's ((a + 2^19) >> 20) - off as one arithmetic shift: a + 2^19 - off * 2^20
           stays within int32 for every magnitude's bits a, NaN's included */
    #if defined(__AVX512F__)
        const __m512 v = _mm512_set1_ps(inv);
        const __m512i mag = _mm512_set1_epi32(0x7FFFFFFF), one = _mm512_set1_epi32(1);
        const __m512i bias = _mm512_set1_epi32(0x80000 - ((sgn ? 896 : 768) << 20));
        for (; i + 16 <= n; i += 16) {
            __m512i u = _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(x + i), v));
            __m512i a = _mm512_and_si512(u, mag);
            __m512i r = _mm512_srai_epi32(_mm512_add_epi32(a, bias), 20);
            if (sgn) {
                r = _mm512_min_epi32(_mm512_max_epi32(r, _mm512_setzero_si512()), _mm512_set1_epi32(127));
                r = _mm512_ternarylogic_epi32(r, _mm512_srli_epi32(u, 24), _mm512_set1_epi32(128), 0xF8);
                _mm_storeu_si128((__m128i*)(q + i), _mm512_cvtepi32_epi8(r));
            } else {   /* at least 1 for a nonzero value; 255 at most: the saturating narrowing */
                r = _mm512_max_epi32(r, _mm512_min_epu32(a, one));
                _mm_storeu_si128((__m128i*)(q + i), _mm512_cvtusepi32_epi8(r));
            }
        }
    #elif defined(__AVX2__)
        const __m256 v = _mm256_set1_ps(inv);
        const __m256i mag = _mm256_set1_epi32(0x7FFFFFFF), one = _mm256_set1_epi32(1), zero = _mm256_setzero_si256();
        const __m256i bias = _mm256_set1_epi32(0x80000 - ((sgn ? 896 : 768) << 20));
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (; i + 32 <= n; i += 32) {
            __m256i r[4];
            for (int k = 0; k < 4; k++) {
                __m256i u = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), v));
                __m256i a = _mm256_and_si256(u, mag);
                __m256i c = _mm256_srai_epi32(_mm256_add_epi32(a, bias), 20);
                if (sgn) {
                    c = _mm256_min_epi32(_mm256_max_epi32(c, zero), _mm256_set1_epi32(127));
                    c = _mm256_or_si256(c, _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(128)));
                } else {
                    c = _mm256_max_epi32(c, _mm256_min_epu32(a, one));   /* packus clamps to 255 */
                }
                r[k] = c;
            }
            __m256i p = _mm256_packus_epi16(_mm256_packus_epi32(r[0], r[1]), _mm256_packus_epi32(r[2], r[3]));
            _mm256_storeu_si256((__m256i*)(q + i), _mm256_permutevar8x32_epi32(p, order));
        }
    #endif
        if (sgn) for (; i < n; i++) q[i] = l2d_q8_enc_signed(x[i] * inv);
        else for (; i < n; i++) q[i] = l2d_q8_enc_unsigned(x[i] * inv);
    }
    """
    float l2d_q8_dec_signed(uint8_t b) noexcept nogil
    float l2d_q8_dec_unsigned(uint8_t b) noexcept nogil
    uint8_t l2d_q8_enc_signed(float x) noexcept nogil
    uint8_t l2d_q8_enc_unsigned(float x) noexcept nogil
    float l2d_q8_scale(uint32_t a) noexcept nogil
    uint32_t l2d_q8_abs_bits(float x) noexcept nogil
    void l2d_q8_decode(const uint8_t* q, float scale, float* x, Py_ssize_t n, int sgn) noexcept nogil
    void l2d_q8_encode(const float* x, float inv, uint8_t* q, Py_ssize_t n, int sgn) noexcept nogil


cdef enum:
    Q8_RUN = 8 * Q8_BLOCK        # elements decoded, stepped and coded at a time


cdef inline void _q8_code_block(const float* x, uint8_t* q, float* scale, uint32_t amax, Py_ssize_t n,
                                bint signed) noexcept nogil:
    """Block x[0..n), whose largest magnitude has the bits amax, coded into q with its scale."""
    cdef float s = l2d_q8_scale(amax)
    cdef float inv = 1.0 / s if amax >= 0x00800000 else 0.0     # (a block below the normal range: 0)
    l2d_q8_encode(x, inv, q, n, signed)
    scale[0] = s


cdef inline void _q8_store(const float* x, uint8_t* q, float* scale, Py_ssize_t n, bint signed) noexcept nogil:
    """Block x[0..n) coded into q with its new scale (`signed`: a constant)."""
    cdef Py_ssize_t i
    cdef uint32_t amax = 0, u
    for i in range(n):
        u = l2d_q8_abs_bits(x[i])
        amax = u if u > amax else amax
    _q8_code_block(x, q, scale, amax, n, signed)


cdef inline void _q8_load(const uint8_t* q, float scale, float* x, Py_ssize_t n, bint signed) noexcept nogil:
    """Block x[0..n) decoded from q with its scale (`signed`: a constant)."""
    l2d_q8_decode(q, scale, x, n, signed)


cdef inline void _adam_q8_block(store_t* w, const store_t* g, uint8_t* qm, uint8_t* qv, float* sm, float* sv,
                                float* bm, float* bv, store_t* comp, Py_ssize_t n, const Hyper* h, float ss,
                                float ibc2s, uint32_t key, Py_ssize_t i0, rounding_t* mode,
                                caution_t* caution) noexcept nogil:
    """Adam (no amsgrad) on one block of 8-bit moments, elements i0 + [0, n) of the tensor, in
    one pass over memory: the moments decoded into bm and bv; updated there and their largest
    magnitudes found as the weights are stepped and stored by the rounding `mode` (_write);
    then coded again.  The step is
    -lr_t * m / (sqrt(v) * (1/sqrt(1 - beta2**t)) + eps): a multiplication where float32
    state's step divides by sqrt(1 - beta2**t) (a division costs several multiplications, and
    this step is bound by arithmetic, not memory)."""
    cdef Py_ssize_t i
    cdef float lam = <float>h.lam, sign = <float>h.sign, b1 = <float>h.b1, b2 = <float>h.b2
    cdef float a1 = <float>(1.0 - h.b1), a2 = <float>(1.0 - h.b2), eps = <float>h.eps
    cdef float pre = <float>h.shrink if h.decoupled else 0, post = <float>h.shrink if h.decay else 0
    cdef float m0 = sm[0], v0 = sv[0], gi, w0, mi, vi
    cdef uint32_t am = 0, av = 0, u
    cdef bint l2 = h.l2, cautious = caution_t is Careful
    cdef int rounding = _mode(mode)
    cdef uint32_t lo = <uint32_t>i0, kw = l2d_key_at(key, i0), rw
    _q8_load(qm, m0, bm, n, True)
    _q8_load(qv, v0, bv, n, False)
    for i in range(n):
        rw = _bits(kw, lo, i) if rounding == ROUND_STOCHASTIC else 0
        gi = sign * _ld(g, i, sign)
        w0 = _ld(w, i, sign)
        if l2:
            gi = gi + lam * w0
        mi = b1 * bm[i] + a1 * gi
        vi = b2 * bv[i] + a2 * (gi * gi)
        bm[i] = mi
        bv[i] = vi
        u = l2d_q8_abs_bits(mi)
        am = u if u > am else am
        u = l2d_q8_abs_bits(vi)
        av = u if u > av else av
        _write(w, comp, i, w0, -((ss * mi) / (sqrtf(vi) * ibc2s + eps)), 0 if cautious and _opposite(mi, w0) else pre,
               post, rounding, rw)
    _q8_code_block(bm, qm, sm, am, n, True)
    _q8_code_block(bv, qv, sv, av, n, False)


cdef inline void _adam_q8(const Task* t, store_t* w, store_t* comp, Py_ssize_t a, Py_ssize_t b,
                          rounding_t* mode, caution_t* caution) noexcept nogil:
    cdef float buf1[Q8_BLOCK]
    cdef float buf2[Q8_BLOCK]
    cdef Py_ssize_t s = a, e
    cdef uint8_t* q1 = <uint8_t*>t.s1
    cdef uint8_t* q2 = <uint8_t*>t.s2
    cdef float ss = <float>t.step_size, ibc2s = <float>(1.0 / t.bc2_sqrt)
    while s < b:
        e = min(b - s, Q8_BLOCK)
        _adam_q8_block(w + s, <const store_t*>t.g + s, q1 + s, q2 + s, &t.sc1[s // Q8_BLOCK], &t.sc2[s // Q8_BLOCK],
                       buf1, buf2, comp + s if comp != NULL else NULL, e, t.h, ss, ibc2s, t.key, s, mode, caution)
        s += e


cdef inline void _adam_q8_typed(const Task* t, Py_ssize_t a, Py_ssize_t b, rounding_t* mode,
                                caution_t* caution) noexcept nogil:
    if t.kind == KIND_BF16:
        _adam_q8(t, <bf16*>t.w, <bf16*>t.comp, a, b, mode, caution)
    elif t.kind == KIND_F16:
        _adam_q8(t, <f16*>t.w, <f16*>t.comp, a, b, mode, caution)
    else:
        _adam_q8(t, <float*>t.w, <float*>t.comp, a, b, mode, caution)


cdef inline void _adam_q8_c(const Task* t, Py_ssize_t a, Py_ssize_t b, rounding_t* mode) noexcept nogil:
    if t.h.cautious:
        _adam_q8_typed(t, a, b, mode, <Careful*>NULL)
    else:
        _adam_q8_typed(t, a, b, mode, <Plain*>NULL)


cdef void _q8(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Run `op` (OP_ADAM, or OP_SGD with momentum) on elements [a, b) of a task whose state is
    8-bit (t.sc1 set; a: a multiple of Q8_BLOCK, as every chunk's start is).  Adam: its own
    one-pass loop.  SGD, Q8_RUN elements at a time: the buffer decoded into float32, the task's
    step with float32 state on it (_chunk: the very loops and arithmetic of a float32 buffer),
    coded again, block by block.  (_chunk is called, not inlined: inlined, copies of the float
    steps used up gcc's inlining budget and left the float32 Adam loop scalar.)"""
    cdef float buf[Q8_RUN]
    cdef Task u = t[0]
    cdef Py_ssize_t s = a, e, j, f
    cdef uint8_t* q1 = <uint8_t*>t.s1
    if op == OP_ADAM:
        while s < b:      # (the random bits' blocks: see _generic)
            e = min(b, ((s >> 32) + 1) << 32)
            if t.rounding == ROUND_STOCHASTIC:
                _adam_q8_c(t, s, e, <Stochastic*>NULL)
            elif t.rounding == ROUND_COMPENSATED:
                _adam_q8_c(t, s, e, <Compensated*>NULL)
            else:
                _adam_q8_c(t, s, e, <Nearest*>NULL)
            s = e
        return
    u.sc1 = u.sc2 = NULL
    u.state16 = False
    while s < b:
        e = min(b - s, Q8_RUN)
        j = 0
        while j < e:
            f = min(e - j, Q8_BLOCK)
            _q8_load(q1 + s + j, t.sc1[(s + j) // Q8_BLOCK], buf + j, f, True)
            j += f
        # (the buffer stands where _chunk reads elements s..s+e of the state: at s)
        u.s1 = <char*>(<size_t>buf - <size_t>s * sizeof(float))
        _chunk(op, &u, s, s + e)
        j = 0
        while j < e:
            f = min(e - j, Q8_BLOCK)
            _q8_store(buf + j, q1 + s + j, &t.sc1[(s + j) // Q8_BLOCK], f, True)
            j += f
        s += e
