"""l2decay: L2 regularization and weight decay as exact, fast, comparable in-place updates."""
from . import convert
from ._config import build_info, get_include, get_num_threads, set_num_threads, _apply_environment
from .driver import Config, compare, train
from .mlp import MLP
from .optim import SGD, Adam, ParamGroups, exclude_1d
from .rules import L2, Decay, Decoupled
from .steps import adam_step, decay_step, l2_step, sgd_step

__version__ = "0.1.0"
__all__ = [
    "l2_step", "decay_step", "sgd_step", "adam_step",
    "SGD", "Adam", "L2", "Decoupled", "Decay", "exclude_1d", "ParamGroups", "convert",
    "MLP", "train", "compare", "Config",
    "build_info", "get_include", "get_num_threads", "set_num_threads",
]

_apply_environment()
del _apply_environment
