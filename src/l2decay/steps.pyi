from collections.abc import Sequence
from typing import Literal

import numpy as np

from ._kernels import decay_step as decay_step, l2_step as l2_step
from .rules import L2, Cautious, Corrected, Decay, Decoupled

_Reg = L2 | Decoupled | Decay | Cautious | Corrected | None
_Rounding = Literal["nearest", "stochastic", "compensated"] | None

def sgd_step(
    params: Sequence[np.ndarray], grads: Sequence[np.ndarray],
    momentum_buffers: list[np.ndarray | None] | Sequence[np.ndarray] | None = None, *,
    lr: float, momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
    maximize: bool = False, reg: _Reg = None, momentum_form: Literal["torch", "keras"] = "torch",
    rounding: _Rounding = None, seed: int = 0, step: int | Sequence[int] | None = None,
    compensations: list[np.ndarray | None] | None = None,
    momentum_scales: list[np.ndarray | None] | None = None, stats: np.ndarray | None = None,
) -> None: ...
def adam_step(
    params: Sequence[np.ndarray], grads: Sequence[np.ndarray], exp_avgs: Sequence[np.ndarray],
    exp_avg_sqs: Sequence[np.ndarray],
    max_exp_avg_sqs: list[np.ndarray | None] | Sequence[np.ndarray] | None = None, *,
    step: int | Sequence[int], lr: float, betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8, amsgrad: bool = False, maximize: bool = False, reg: _Reg = None,
    eps_form: Literal["torch", "keras"] = "torch", rounding: _Rounding = None, seed: int = 0,
    compensations: list[np.ndarray | None] | None = None,
    exp_avg_scales: Sequence[np.ndarray] | None = None, exp_avg_sq_scales: Sequence[np.ndarray] | None = None,
    stats: np.ndarray | None = None,
) -> None: ...
