# Types shared by the dispatcher (_kernels.pyx) and the per-instruction-set loop modules
# (_simd_*.pyx, all compiled from _loops.pxi).  Private: not part of the cimport API.

# Hyperparameters of one call, shared by every tensor of it.  Rule flags select branches that
# are loop-invariant, so gcc -O3 unswitches them into separate vectorized loops.
cdef struct Hyper:
    double lr, lam, keep          # keep = 1 - decay (decay rule) or 1 - lr*lam (decoupled)
    bint l2, decoupled, decay     # which regularization rule: at most one is set
    double mu, damp1              # SGD: momentum, 1 - dampening
    bint nesterov
    double b1, b2, step_size, bc2_sqrt, eps   # Adam; step_size = lr / (1 - b1**t)

# What a loop does.  The last two are the plain stream loops that measure the memory ceiling.
cdef enum Rule:
    RULE_L2 = 0
    RULE_DECAY = 1
    RULE_SGD = 2
    RULE_ADAM = 3
    RULE_SWAP = 4     # w[i], g[i] = g[i], w[i]: reads 2 arrays, writes 2, like the L2 rule
    RULE_AXPY = 5     # w[i] += lr * g[i]: reads 2 arrays, writes 1, like the decay rule
    RULE_L2_KEEP = 6  # the L2 rule leaving grad unwritten: w -= lr*(grad + lam*w)

# One tensor of a call.
cdef struct Task:
    char* w
    char* g
    char* s1          # SGD momentum buffer, or Adam exp_avg
    char* s2          # Adam exp_avg_sq
    Py_ssize_t n
    bint is_double
    bint first        # SGD: the momentum buffer is initialised from this step's gradient

# Runs `rule` on elements [a, b) of a task; one such function per instruction set.
ctypedef void (*block_fn)(Rule rule, const Task* t, const Hyper* h,
                          Py_ssize_t a, Py_ssize_t b) noexcept nogil
