# Public C-level API of l2decay's update kernels, for other Cython code to cimport:
#
#     from l2decay._kernels cimport l2_step_f64, decay_step_f64, adam_step_f32, REG_DECOUPLED
#
# (compile with include_path=[l2decay.get_include()]).  Every function updates n contiguous
# elements in place, holds no GIL, raises nothing, and trusts its arguments: the caller
# guarantees valid pointers, no two arrays overlapping, and hyperparameters in range (those
# l2decay's Python entries check).  Hyperparameters are double for both dtypes; they are rounded
# once to the array's dtype.  Large n may run on several OpenMP threads (l2decay.set_num_threads);
# the result is bit-identical whatever the thread count, and equal to the Python entries'.

cdef void l2_step_f32(float* w, float* grad, Py_ssize_t n,
                      double lr, double lam) noexcept nogil
cdef void l2_step_f64(double* w, double* grad, Py_ssize_t n,
                      double lr, double lam) noexcept nogil
# grad[i] += lam * w[i];  w[i] -= lr * grad[i]

cdef void decay_step_f32(float* w, const float* grad, Py_ssize_t n,
                         double lr, double decay) noexcept nogil
cdef void decay_step_f64(double* w, const double* grad, Py_ssize_t n,
                         double lr, double decay) noexcept nogil
# w[i] = (w[i] - lr * grad[i]) * (1 - decay)

# The regularization of sgd_step_* and adam_step_*, with its strength:
# REG_L2: lam (g + lam*w);  REG_DECOUPLED: lam (w * (1 - lr*lam) before the step; for a decay
# that follows the lr schedule, lam/lr_max);  REG_DECAY: d (w * (1 - d) after the step).
cdef enum Reg:
    REG_NONE = 0
    REG_L2 = 1
    REG_DECOUPLED = 2
    REG_DECAY = 3

cdef void sgd_step_f32(float* w, const float* grad, float* momentum_buffer, Py_ssize_t n,
                       double lr, double momentum, double dampening, bint nesterov,
                       bint maximize, int reg, double strength, bint first,
                       bint velocity) noexcept nogil
cdef void sgd_step_f64(double* w, const double* grad, double* momentum_buffer, Py_ssize_t n,
                       double lr, double momentum, double dampening, bint nesterov,
                       bint maximize, int reg, double strength, bint first,
                       bint velocity) noexcept nogil
# l2decay.sgd_step on one tensor.  momentum_buffer may be NULL when momentum == 0; `first`: the
# buffer is born in this step (its contents are ignored); `velocity`: momentum_form "keras".

cdef void adam_step_f32(float* w, const float* grad, float* exp_avg, float* exp_avg_sq,
                        float* max_exp_avg_sq, Py_ssize_t n, long long step, double lr,
                        double beta1, double beta2, double eps, bint maximize, int reg,
                        double strength, bint keras) noexcept nogil
cdef void adam_step_f64(double* w, const double* grad, double* exp_avg, double* exp_avg_sq,
                        double* max_exp_avg_sq, Py_ssize_t n, long long step, double lr,
                        double beta1, double beta2, double eps, bint maximize, int reg,
                        double strength, bint keras) noexcept nogil
# l2decay.adam_step on one tensor, at step `step` >= 1.  max_exp_avg_sq: NULL, or the amsgrad
# buffer (amsgrad is on exactly when it is given); `keras`: eps_form "keras".
