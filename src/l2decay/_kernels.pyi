# Stubs for the compiled module l2decay._kernels (kernels/l2decay/_kernels.pyx).
# Arrays are numpy.ndarray of float32 (C `float`) or float64 (C `double`), C-contiguous.
from collections.abc import Sequence
from typing import Literal

import numpy as np

from .rules import L2, Decay, Decoupled

_Arrays = np.ndarray | Sequence[np.ndarray]

SIMD_LEVELS: tuple[str, ...]

def l2_step(w: _Arrays, grad: _Arrays, *, lr: float, lam: float, write_grad: bool = True) -> None: ...
def decay_step(w: _Arrays, grad: _Arrays, *, lr: float, decay: float) -> None: ...
def stream_swap(w: _Arrays, grad: _Arrays) -> None: ...
def stream_axpy(w: _Arrays, grad: _Arrays, a: float) -> None: ...

_Reg = L2 | Decoupled | Decay | None

def sgd_step(
    params: Sequence[np.ndarray], grads: Sequence[np.ndarray],
    momentum_buffers: list[np.ndarray | None] | Sequence[np.ndarray] | None = None, *,
    lr: float, momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
    maximize: bool = False, reg: _Reg = None, momentum_form: Literal["torch", "keras"] = "torch",
) -> None: ...
def adam_step(
    params: Sequence[np.ndarray], grads: Sequence[np.ndarray], exp_avgs: Sequence[np.ndarray],
    exp_avg_sqs: Sequence[np.ndarray],
    max_exp_avg_sqs: list[np.ndarray | None] | Sequence[np.ndarray] | None = None, *,
    step: int | Sequence[int], lr: float, betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8, amsgrad: bool = False, maximize: bool = False, reg: _Reg = None,
    eps_form: Literal["torch", "keras"] = "torch",
) -> None: ...
def _optimizer_step(
    adam: bool, groups: list[dict], slots: tuple[tuple[int, ...], ...], flat: list[np.ndarray],
    state: list[dict], grads: Sequence[np.ndarray],
) -> bool: ...

MAX_THREADS: int

def simd_built() -> list[str]: ...
def simd_available() -> list[str]: ...
def set_simd(level: str) -> None: ...
def get_simd() -> str: ...
def compiled_features() -> dict[str, object]: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...  # 0 to MAX_THREADS
def get_parallel_threshold() -> int: ...
def set_parallel_threshold(nbytes: int) -> None: ...  # bytes per array, 0 to 2**62

# sparse rows (kernels/l2decay/_sparse.pxi; l2decay.sparse): a 2-D float32/float64 table whose
# true weights are table[r] * scale / row_scale[r]; rows: 1-D int64 or int32
def sparse_step(
    table: np.ndarray, rows: np.ndarray, grad_rows: np.ndarray, row_scale: np.ndarray, scale: float,
    exp_avg: np.ndarray | None = None, exp_avg_sq: np.ndarray | None = None, *, step: int = 0,
    lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, maximize: bool = False,
    reg: _Reg = None,
) -> float: ...  # the new scale
def sparse_catch_up(table: np.ndarray, row_scale: np.ndarray, scale: float, rows: np.ndarray | None = None) -> int: ...
def stream_rows(
    table: np.ndarray, rows: np.ndarray, grad_rows: np.ndarray, row_scale: np.ndarray, exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
) -> None: ...
