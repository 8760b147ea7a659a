"""l2decay: L2 regularization and weight decay as exact, fast, comparable in-place updates."""
__version__ = "0.1.0"
__all__ = [
    "l2_step", "decay_step", "sgd_step", "adam_step",
    "SGD", "Adam", "L2", "Decoupled", "Decay", "Cautious", "Corrected", "exclude_1d", "ParamGroups", "convert",
    "SparseSGD", "SparseAdam",
    "MLP", "train", "compare", "Config",
    "build_info", "get_include", "get_num_threads", "set_num_threads", "STATS",
]

try:
    from ._config import build_info, get_include, get_num_threads, set_num_threads, _apply_environment
    from .optim import SGD, Adam, ParamGroups, exclude_1d
    from .rules import L2, Cautious, Corrected, Decay, Decoupled
    from .sparse import SparseAdam, SparseSGD
    from .steps import adam_step, decay_step, l2_step, sgd_step
    from ._validate import STATS

    _apply_environment()
except (ImportError, ValueError) as _exc:
    # An L2DECAY_* variable the kernels refuse (L2DECAY_SIMD=avx9, say): `import l2decay` still
    # works, so that the command can say so in one line (l2decay/__main__.py); using anything
    # raises the error.
    if not str(_exc).startswith("L2DECAY_"):
        raise
    _ENVIRONMENT_ERROR = _exc
    for _name in __all__:      # (imported before the error: unusable all the same)
        globals().pop(_name, None)

    def __getattr__(name):
        raise ImportError(str(_ENVIRONMENT_ERROR))
else:
    _ENVIRONMENT_ERROR = None
    del _apply_environment

    # the conversions and the experiment load on first use: `import l2decay` loads the kernels,
    # the rules and the optimizers only
    _LAZY = {"convert": ("convert", None), "MLP": ("experiment.mlp", "MLP"), "train": ("experiment.driver", "train"),
             "compare": ("experiment.driver", "compare"), "Config": ("experiment.driver", "Config")}

    def __getattr__(name):
        if name not in _LAZY:
            raise AttributeError(f"module 'l2decay' has no attribute {name!r}")
        import importlib
        module, attr = _LAZY[name]
        value = importlib.import_module(f"{__name__}.{module}")
        value = value if attr is None else getattr(value, attr)
        globals()[name] = value
        return value
