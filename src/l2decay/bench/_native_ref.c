/* The benchmark's yardstick, not part of the library: the two update rules as plain C loops,
 * compiled at benchmark time by `l2decay bench` / the bench suite with
 *     cc -O3 -march=native -fopenmp -shared -fPIC
 * (what a user tuning for one machine would write), and called through ctypes.
 *
 * `reps` repeats the update inside C, so a small n is timed without the ctypes call cost;
 * `threads` <= 1 runs serially, otherwise an OpenMP parallel for over all elements.
 */
#include <stddef.h>

#define L2(T, NAME)                                                                      \
    __attribute__((noinline)) static void NAME##_once(T *restrict w, T *restrict g,       \
                                                      long n, T lr, T lam, int threads) { \
        if (threads <= 1) {                                                              \
            for (long i = 0; i < n; i++) { g[i] += lam * w[i]; w[i] -= lr * g[i]; }      \
        } else {                                                                         \
            _Pragma("omp parallel for num_threads(threads) schedule(static)")            \
            for (long i = 0; i < n; i++) { g[i] += lam * w[i]; w[i] -= lr * g[i]; }      \
        }                                                                                \
    }                                                                                    \
    void NAME(T *w, T *g, long n, double lr, double lam, int threads, long reps) {       \
        for (long r = 0; r < reps; r++) NAME##_once(w, g, n, (T)lr, (T)lam, threads);    \
    }

#define DECAY(T, NAME)                                                                   \
    __attribute__((noinline)) static void NAME##_once(T *restrict w, const T *restrict g, \
                                                      long n, T lr, T decay, int threads) {\
        if (threads <= 1) {                                                              \
            for (long i = 0; i < n; i++) { T z = w[i] - lr * g[i]; w[i] = z - decay * z; }  \
        } else {                                                                         \
            _Pragma("omp parallel for num_threads(threads) schedule(static)")            \
            for (long i = 0; i < n; i++) { T z = w[i] - lr * g[i]; w[i] = z - decay * z; }  \
        }                                                                                \
    }                                                                                    \
    void NAME(T *w, const T *g, long n, double lr, double decay, int threads, long reps) {\
        for (long r = 0; r < reps; r++) NAME##_once(w, g, n, (T)lr, (T)decay, threads); \
    }

#define L2KEEP(T, NAME)                                                                  \
    __attribute__((noinline)) static void NAME##_once(T *restrict w, const T *restrict g, \
                                                      long n, T lr, T lam, int threads) { \
        if (threads <= 1) {                                                              \
            for (long i = 0; i < n; i++) w[i] -= lr * (g[i] + lam * w[i]);               \
        } else {                                                                         \
            _Pragma("omp parallel for num_threads(threads) schedule(static)")            \
            for (long i = 0; i < n; i++) w[i] -= lr * (g[i] + lam * w[i]);               \
        }                                                                                \
    }                                                                                    \
    void NAME(T *w, const T *g, long n, double lr, double lam, int threads, long reps) { \
        for (long r = 0; r < reps; r++) NAME##_once(w, g, n, (T)lr, (T)lam, threads);    \
    }

L2(float, native_l2_f32)
L2(double, native_l2_f64)
DECAY(float, native_decay_f32)
DECAY(double, native_decay_f64)
L2KEEP(float, native_l2keep_f32)
L2KEEP(double, native_l2keep_f64)
