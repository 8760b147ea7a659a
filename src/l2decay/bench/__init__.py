"""Benchmark cases shared by ``l2decay bench`` and the pytest-benchmark suite in bench/.

A weight update does almost no arithmetic per byte, so its speed limit is memory bandwidth:
the L2 rule reads w and grad and writes both (4 array passes per element), the decay rule reads
both and writes w (3 passes), and "l2-keep" (``l2_step(write_grad=False)``, what torch's SGD
``weight_decay`` does) reads both and writes only w (3 passes).  Each case here is a
zero-argument callable doing one update in place, built outside any timed region, for one
implementation:

- ``l2decay``: this package's kernels;
- ``numpy``:   the best in-place numpy expression of the same rule (ufuncs into a preallocated
               scratch array, no temporaries), single-threaded as numpy is;
- ``torch``:   PyTorch CPU, ``torch.optim.SGD(weight_decay=lam, fused=True)`` for L2 (it does
               not write grad back, so it is l2-keep's true peer) and ``add_``/``mul_`` for
               decay (None when torch is not installed);
- ``native``:  the same loop in plain C compiled here with ``-O3 -march=native -fopenmp``
               (_native_ref.c; None without a C compiler): what a hand-written loop reaches;
- ``stream``:  the memory ceiling: a plain compiled stream loop of the extension with the
               rule's traffic (swap for L2, axpy for decay and l2-keep), same dispatch and
               threads.

Constants keep values away from subnormals however often a case repeats: under the decay rule
w converges to -lr*g*keep/(1-keep) (about -g), and under L2 (g += lam*w; w -= lr*g) w and g
oscillate with constant amplitude (a symplectic step, lr*lam < 4).  `check_values` verifies it.
"""
from ._cases import (KERNELS, DTYPES, IMPLS, SIZES, QUICK_SIZES, PASSES, HYPER, OPTIMIZERS, MLP_SHAPES,
                     resnet18_shapes, gpt2_shapes, TORCH_MODELS, TORCH_KINDS, TORCH_IMPLS, inputs,
                     check_values, Case, rule_case, MANY_IMPLS, many_case, OPTIMIZER_IMPLS, optimizer_case,
                     torch_case, SPARSE_ROWS, QUICK_SPARSE_ROWS, SPARSE_WIDTH, SPARSE_IMPLS, sparse_cases,
                     HALF_KINDS, HALF_SIZES, QUICK_HALF_SIZES, HALF_IMPLS, half_case, OPTIMIZER_SIZES,
                     QUICK_OPTIMIZER_SIZES, CROSSOVER_SIZES, SPARSE_TOUCHED, SPARSE_BATCHES,
                     STATS_SIZES, STATS_IMPLS, stats_cases)
from ._machine import (torch_module, native_library, threads_in_use, machine_info, cache_sizes, apply_threads)
from ._timing import (measure_together, measure)
from ._runs import (measure_sparse, measure_half, measure_all, measure_torch, crossover, measure_stats)
from ._tables import (sparse_table, crossover_table, stats_table, tables)

__all__ = [
    'KERNELS', 'DTYPES', 'IMPLS', 'SIZES', 'QUICK_SIZES', 'PASSES', 'HYPER', 'OPTIMIZERS', 'MLP_SHAPES',
    'resnet18_shapes', 'gpt2_shapes', 'TORCH_MODELS', 'TORCH_KINDS', 'TORCH_IMPLS', 'inputs',
    'check_values', 'Case', 'rule_case', 'MANY_IMPLS', 'many_case', 'OPTIMIZER_IMPLS', 'optimizer_case',
    'torch_case', 'SPARSE_ROWS', 'QUICK_SPARSE_ROWS', 'SPARSE_WIDTH', 'SPARSE_IMPLS', 'sparse_cases',
    'HALF_KINDS', 'HALF_SIZES', 'QUICK_HALF_SIZES', 'HALF_IMPLS', 'half_case', 'OPTIMIZER_SIZES',
    'QUICK_OPTIMIZER_SIZES', 'CROSSOVER_SIZES', 'SPARSE_TOUCHED', 'SPARSE_BATCHES', 'STATS_SIZES',
    'STATS_IMPLS', 'stats_cases', 'torch_module',
    'native_library', 'threads_in_use', 'machine_info', 'cache_sizes', 'apply_threads',
    'measure_together', 'measure', 'measure_sparse', 'measure_half', 'measure_all', 'measure_torch',
    'crossover', 'measure_stats', 'sparse_table', 'crossover_table', 'stats_table', 'tables'
]
