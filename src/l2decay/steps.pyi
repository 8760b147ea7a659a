from collections.abc import Sequence
import numpy as np

_Arrays = np.ndarray | Sequence[np.ndarray]

def l2_step(w: _Arrays, grad: _Arrays, *, lr: float, lam: float, write_grad: bool = True) -> None: ...
def decay_step(w: _Arrays, grad: _Arrays, *, lr: float, decay: float) -> None: ...
