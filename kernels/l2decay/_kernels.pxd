# Public C-level API of l2decay's update kernels, for other Cython code to cimport:
#
#     from l2decay._kernels cimport l2_step_f64, decay_step_f64
#
# (compile with include_path=[l2decay.get_include()]).  Every function updates n contiguous
# elements in place, holds no GIL, raises nothing, and trusts its arguments: the caller
# guarantees valid pointers, w and grad not overlapping, and hyperparameters in range.
# Hyperparameters are double for both dtypes; they are rounded once to the array's dtype.
# Large n may run on several OpenMP threads (see l2decay.set_num_threads); the result is
# bit-identical whatever the thread count.

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
