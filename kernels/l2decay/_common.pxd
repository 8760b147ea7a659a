# Types shared by the dispatcher (_kernels.pyx and its .pxi parts) and the per-instruction-set
# loop modules (_simd_*.pyx, all compiled from _loops.pxi).  Private: not part of the cimport API.

# Hyperparameters of one parameter group (or one call), shared by all its tensors.  The flags
# select branches that are loop-invariant, so gcc -O3 unswitches them into separate vectorized
# loops.
cdef struct Hyper:
    double lr
    double lam                    # L2: lam*w is added to the gradient
    double shrink                 # w - shrink*w: Decoupled lr*lam before the step; Decay d after
                                  # (never w*(1 - shrink): float32(1 - 1e-7) is 1 - 1.19e-7)
    bint l2, decoupled, decay     # the regularization: at most one is set
    bint cautious                 # with decoupled: the shrink only where the update u (w -= lr*u) has u*w >= 0
    double sign                   # -1.0 with maximize (the gradient is negated), else +1.0
    double mu, damp1              # SGD: momentum, 1 - dampening
    bint nesterov
    bint velocity                 # SGD: the buffer holds the velocity -lr*g (Keras, scikit-learn)
    double b1, b2, eps            # Adam
    bint amsgrad

# What a loop does.  The stream loops only measure the memory ceiling (l2decay bench).
cdef enum Op:
    OP_L2 = 0             # l2_step: grad += lam*w; w -= lr*grad
    OP_L2_KEEP = 1        # l2_step(write_grad=False): w -= lr*(grad + lam*w), grad kept
    OP_DECAY = 2          # decay_step: w = (w - lr*grad) * factor
    OP_SGD = 3            # one SGD step (sgd_step)
    OP_ADAM = 4           # one Adam step (adam_step)
    OP_STREAM_SWAP = 5    # bench only: w[i], g[i] = g[i], w[i] (L2's traffic)
    OP_STREAM_AXPY = 6    # bench only: w[i] += lr*g[i] (decay's traffic)
    OP_STREAM_ADAM16 = 7  # bench only: an Adam step's traffic on 16-bit w, g and float32 (or 16-bit) m, v
    OP_STREAM_ROWS = 8    # bench only: a sparse Adam step's traffic on its rows (w += g, m += g, v += g*g)

# 8-bit optimizer state: elements per block of codes sharing a scale (_q8.pxi).
cdef enum:
    Q8_BLOCK = 256

# Weight statistics (Task.stats): elements per block of sums (_stats.pxi); a divisor of the
# pieces' size (CHUNK_SIZE) and a multiple of Q8_BLOCK.
cdef enum:
    STATS_BLOCK = 8192
    STATS_LANES = 32    # sums per block are kept in this many lanes, element i in lane i % STATS_LANES

# Storage of a tensor's weights and gradient.  The 16-bit formats compute in float32 and keep
# their optimizer state in float32, or in their own dtype (Task.state16); float32 and float64
# keep it in their own dtype.
cdef enum Kind:
    KIND_F32 = 0
    KIND_F64 = 1
    KIND_BF16 = 2
    KIND_F16 = 3


cdef inline Py_ssize_t kind_size(int kind) noexcept nogil:
    """Bytes per element of a Kind."""
    return 8 if kind == KIND_F64 else (4 if kind == KIND_F32 else 2)

# How a new weight is stored back (l2decay.optim's `rounding=`).
cdef enum Rounding:
    ROUND_NEAREST = 0        # round to nearest even (what torch does)
    ROUND_STOCHASTIC = 1     # unbiased, from a counter-based hash of (seed, step, tensor, index)
    ROUND_COMPENSATED = 2    # Kahan: the rounding error is kept in a compensation buffer

# The 16-bit formats, as distinct types so that Cython's fused loops tell them apart.
cdef struct bf16:
    unsigned short bits
cdef struct f16:
    unsigned short bits

# One tensor of a call: its arrays, and the hyperparameters it is updated with.
cdef struct Task:
    char* w
    char* g
    char* s1          # SGD momentum buffer (or velocity); Adam exp_avg
    char* s2          # Adam exp_avg_sq
    char* s3          # Adam max_exp_avg_sq (amsgrad)
    char* comp        # the compensation buffer (rounding "compensated"; w's dtype)
    float* sc1        # state_dtype "8bit": s1 (and s2) hold uint8 codes, these their blocks'
    float* sc2        # scales (_q8.pxi); NULL otherwise
    bint state16      # s1..s3 hold w's own 16-bit dtype (state_dtype "param"), not float32
    Py_ssize_t n
    int kind          # Kind of w and g
    int rounding      # Rounding
    unsigned int key  # stochastic rounding: the hash of (seed, step, tensor)
    bint first        # SGD: the momentum buffer is born from this step's gradient
    long long step    # Adam: the step t being taken, ...
    double step_size  # lr / (1 - beta1**t) ...
    double bc2_sqrt   # ... and sqrt(1 - beta2**t), for this tensor's step t
    double* stats     # 3 sums per STATS_BLOCK elements the step writes (_stats.pxi); NULL: none
    const Hyper* h

# Runs `op` on elements [a, b) of a task; one such function per instruction set.
ctypedef void (*chunk_fn)(Op op, const Task* t, Py_ssize_t a, Py_ssize_t b) noexcept nogil

# Runs `op` (OP_SGD or OP_ADAM, Task t's Hyper) on the distinct rows uniq[a..b) of a sparse
# step's table (_sparse.pxi), each row caught up first; one such function per instruction set.
ctypedef void (*rows_fn)(Op op, const Task* t, char* table, char* m, char* v, double* row_scale,
                         const long long* uniq, const char** gptr, Py_ssize_t a, Py_ssize_t b,
                         Py_ssize_t row_bytes, double before, double after, Py_ssize_t ahead) noexcept nogil
