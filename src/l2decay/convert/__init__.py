"""Conversions: other libraries' optimizer settings as exact l2decay configurations, and the
plain-SGD identities between l2decay's three rules.

**From another library.** ``from_torch``, ``from_keras``, ``from_optax``, ``from_thinc`` and
``from_sklearn_mlp`` take a setting in that library's own terms (its optimizer name and keyword
names, with its defaults, or the optimizer object where it can be read) and return a
:class:`Setting`: the l2decay optimizer, its hyperparameters with the library's conventions
(``momentum_form``, ``eps_form``), the rule and its strength, whether 1-D params (biases) are
regularized, and what the training loop must do per step when the library's penalty depends
on the batch or the learning rate.  ``setting.build(params)`` makes the optimizer;
``setting.set_step(opt, lr=..., batch=...)`` before a step sets what that step's lr and batch
make of the rule.  Each conversion's docstring cites the formulas it reproduces (file and
function of the library's source).  tests/test_convert_peers.py drives each library side by
side with l2decay from the same weights and gradients.  What l2decay cannot reproduce (another
optimizer, gradient clipping, parameter averages, ...) is refused with a ValueError that says
what and why, never approximated; so is a value the library itself refuses.

**Between the rules.**  For plain SGD (no momentum) the rules are the same update up to
constants:

- ``L2(lam)`` at lr:            ``w' = (1 - lr*lam)*w - lr*g``
- ``Decoupled(lam)`` at lr:     ``w' = (1 - lr*lam)*w - lr*g``   (identical)
- ``Decay(d)`` at lr:           ``w' = (1 - d)*w - (1 - d)*lr*g``
  = ``L2(d / ((1 - d)*lr))`` at ``lr' = (1 - d)*lr``.

With momentum or Adam no such identity exists (Loshchilov & Hutter, "Decoupled Weight Decay
Regularization", ICLR 2019): L2 passes through the momentum buffer / Adam's moments, the others
do not.  ``decay_to_l2`` and friends are exact for plain SGD and define what "the same
strength" means elsewhere.
"""

from ._keras import from_keras
from ._optax import from_optax
from ._setting import Setting, decay_to_l2, decoupled_to_l2, l2_to_decay, l2_to_decoupled
from ._sklearn import from_sklearn_mlp
from ._thinc import from_thinc
from ._torch import from_torch

__all__ = [
    "decay_to_l2", "l2_to_decay", "l2_to_decoupled", "decoupled_to_l2",
    "Setting", "from_torch", "from_keras", "from_optax", "from_thinc", "from_sklearn_mlp",
]
