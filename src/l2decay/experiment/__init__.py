"""The experiment: a small numpy MLP trained on real data with each rule (the driver behind
``l2decay train`` and ``l2decay compare``), the learning-rate x strength grid of ``l2decay sweep``,
the embedded data sets, worker processes and plots.  Not loaded by ``import l2decay``."""
from .driver import Config, compare, train
from .mlp import MLP

__all__ = ["Config", "compare", "train", "MLP"]
