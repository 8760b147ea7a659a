# Stubs for the compiled module l2decay._kernels (kernels/l2decay/_kernels.pyx).
# Arrays are C-contiguous numpy.ndarray of float32 or float64 (l2_step, decay_step, the sparse
# rows), or of float32, float64, bfloat16 or float16 (the optimizer step: also plain torch tensors).
from collections.abc import Sequence

import numpy as np


_Arrays = np.ndarray | Sequence[np.ndarray]

SIMD_LEVELS: tuple[str, ...]

def l2_step(w: _Arrays, grad: _Arrays, *, lr: float, lam: float, write_grad: bool = True) -> None: ...
def decay_step(w: _Arrays, grad: _Arrays, *, lr: float, decay: float) -> None: ...
def stream_swap(w: _Arrays, grad: _Arrays) -> None: ...
def stream_axpy(w: _Arrays, grad: _Arrays, a: float) -> None: ...
def stream_adam16(w: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray) -> None: ...

# the one optimizer step (kernels/l2decay/_core.pxi): flat lists, one entry per tensor
class Settings:
    def __init__(
        self, adam: bool, lr: float, *, momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
        velocity: bool = False, beta1: float = 0.0, beta2: float = 0.0, eps: float = 0.0, amsgrad: bool = False,
        keras: bool = False, maximize: bool = False, rule: int = 0, coef: float = 0.0, lr_max: float = 0.0,
        rounding: int = -1, seed: int = 0, lr_float32: bool = False,
    ) -> None: ...
    @property
    def uses_state(self) -> bool: ...

ROUNDINGS: tuple[str, ...]
MAX_STEP: int
RULE_NONE: int
RULE_L2: int
RULE_DECOUPLED: int
RULE_DECAY: int
RULE_CAUTIOUS: int
RULE_CORRECTED: int
ROLES: tuple[str, ...]
Q8_BLOCK_SIZE: int
REFUSALS: tuple[str, ...]

def step(
    adam: bool, settings: list[Settings], params: list, grads: list, state1: list | None = None,
    state2: list | None = None, state3: list | None = None, compensations: list | None = None,
    steps: list[int] | None = None, firsts: list[bool] | None = None, places: list[int] | None = None,
    scales1: list | None = None, scales2: list | None = None, stats: np.ndarray | None = None,
) -> tuple[int, int, int, int, int] | None: ...
def register_torch(tensor: type, parameter: type, float32: object, float64: object, bfloat16: object,
                   float16: object, uint8: object) -> None: ...
def refresh(groups: list[dict], snapshots: list[list], made: list[Settings], low_open: bool, high: float,
            high_open: bool) -> bool: ...
def torch_lists(groups: list[dict], made: list[Settings]) -> tuple[list, list, list, list] | None: ...
def state_columns(states: list, keys: tuple[str, ...], count: str | None = None, mapping: object = None) -> list: ...
def set_counts(states: list, count: str, steps: list[int], mapping: object = None) -> None: ...
def state_step(
    adam: bool, settings: list[Settings], params: list, grads: list, states: list, keys: tuple[str, ...],
    count: str | None, mapping: object = None, places: list[int] | None = None, stats: np.ndarray | None = None,
) -> tuple[int, int, int, int, int] | None | bool: ...  # False: a state dict lacked a key
def publish(births: list[tuple[object, object, object]]) -> None: ...  # container[key] = value
def default_rounding(dtype: np.dtype) -> str: ...

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
    settings: Settings,
) -> float: ...  # the new scale
def sparse_catch_up(table: np.ndarray, row_scale: np.ndarray, scale: float, rows: np.ndarray | None = None) -> int: ...
def stream_rows(
    table: np.ndarray, rows: np.ndarray, grad_rows: np.ndarray, row_scale: np.ndarray, exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
) -> None: ...
