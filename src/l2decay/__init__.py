"""l2decay: L2 regularization and weight decay as exact, fast, comparable in-place updates."""
from . import convert
from ._config import build_info, get_include, get_num_threads, set_num_threads, _apply_environment
from .driver import Config, compare, train
from .mlp import MLP
from .optim import SGD, Adam, Decay, Decoupled, L2, exclude_1d
from .steps import decay_step, l2_step

__version__ = "0.1.0"
__all__ = [
    "l2_step", "decay_step",
    "SGD", "Adam", "L2", "Decoupled", "Decay", "exclude_1d", "convert",
    "MLP", "train", "compare", "Config",
    "build_info", "get_include", "get_num_threads", "set_num_threads",
]

_apply_environment()
del _apply_environment
