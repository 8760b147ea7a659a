"""l2decay's compiled entry points: array checks, SIMD dispatch, threading, optimizer steps.

The loops live in _loops.pxi, compiled once per instruction set into the modules
l2decay._simd_baseline, _simd_avx2 and _simd_avx512.  This module is assembled from one part
per concern:

- _dispatch.pxi: which loops run (CPU features, L2DECAY_SIMD) and on how many threads;
- _checks.pxi:   the C-level array checks; anything they refuse goes to l2decay._validate,
                 the spec of every argument and the one place that words errors;
- _entries.pxi:  l2_step and decay_step, for Python and (the .pxd) for Cython;
- _optim.pxi:    what the SGD and Adam steps share, and their C API (the .pxd);
- _core.pxi:     the one optimizer step over flat lists that every front end calls
                 (l2decay.sgd_step/adam_step, l2decay.optim, l2decay.torch), and the helpers
                 of their gathering;
- _sparse.pxi:   sparse row steps on a 2-D table with lazy decay, for l2decay.sparse.
"""
import importlib
import os
import sys

import numpy as np

from cpython.dict cimport PyDict_Check
from cpython.list cimport PyList_Check, PyList_CheckExact
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.tuple cimport PyTuple_Check, PyTuple_CheckExact, PyTuple_GET_ITEM
from cpython.pycapsule cimport PyCapsule_GetPointer
from cython.parallel cimport prange
from libc.math cimport sqrt, isfinite, INFINITY
from libc.stdlib cimport malloc, free, qsort
from libc.string cimport memcpy, memset
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
cimport numpy as cnp

from l2decay._common cimport (Hyper, Op, Task, chunk_fn, rows_fn, OP_L2, OP_L2_KEEP, OP_DECAY, OP_SGD,
                              OP_ADAM, OP_STREAM_SWAP, OP_STREAM_AXPY, OP_STREAM_ADAM16, OP_STREAM_ROWS,
                              KIND_F32, KIND_F64,
                              KIND_BF16, KIND_F16, ROUND_NEAREST, ROUND_STOCHASTIC,
                              ROUND_COMPENSATED, Q8_BLOCK, STATS_BLOCK, kind_size)


cnp.import_array()


cdef long long C_MAX_STEP = 1LL << 53    # (MAX_STEP, _core.pxi)


cdef object _wording():
    """l2decay._validate, the spec of every argument, which words every refusal (imported on
    first use: it imports this module)."""
    from l2decay import _validate
    return _validate


include "_dispatch.pxi"
include "_checks.pxi"
include "_entries.pxi"
include "_optim.pxi"
include "_core.pxi"
include "_sparse.pxi"

_select_from_environment()
l2d_register_atfork(_in_forked_child)
