"""scikit-learn's MLPClassifier and MLPRegressor."""
import numbers

from ._common import _num, _flag, _args, _name, _not, _sgd, _adam, _MOMENTUM_BELOW_1, _object
from ._setting import Setting


_SKLEARN = {"alpha": 1e-4, "batch_size": "auto", "learning_rate": "constant", "learning_rate_init": 1e-3,
            "power_t": 0.5, "momentum": 0.9, "nesterovs_momentum": True, "beta_1": 0.9,
            "beta_2": 0.999, "epsilon": 1e-8, "early_stopping": False}
_SKLEARN_SCHEDULES = ("constant", "invscaling", "adaptive")


def from_sklearn_mlp(solver, **kwargs):
    """A scikit-learn MLPClassifier/MLPRegressor setting: ``from_sklearn_mlp("adam", alpha=1e-4,
    batch_size=32, learning_rate_init=1e-3)``, its names and defaults, or the estimator.

    sklearn/neural_network/_multilayer_perceptron.py ``BaseMultilayerPerceptron._backprop`` and
    ``_compute_loss_grad``: ``coef_grad = (X.T @ delta + alpha*W) / sw_sum``, where sw_sum is
    the batch's row count, or its sample-weight sum: on the gradient of the mean loss that is
    ``L2(alpha / sw_sum)``, per batch (``scale="1/batch"``; call ``set_step(opt,
    batch=rows or weight sum)`` before every step).  ``_fit_stochastic``: batch_size "auto" is
    ``min(200, n_samples)``, a batch_size above n_samples is clipped to it, and the last batch
    of an epoch holds the rows left over.  Intercepts are not penalized: ``decay_1d`` False.

    sklearn/neural_network/_stochastic_optimizers.py ``SGDOptimizer._get_updates``:
    ``v = momentum*v - lr*g; w += v`` (nesterov, sklearn's default: ``w += momentum*v - lr*g``):
    ``momentum_form="keras"``; ``AdamOptimizer._get_updates``: ``w -= lr_t*m/(sqrt(v) + eps)``,
    ``lr_t = lr*sqrt(1-beta2**t)/(1-beta1**t)``: ``eps_form="keras"``.  Defaults carried over:
    learning_rate_init 1e-3, momentum 0.9 with Nesterov, epsilon 1e-8.  The sgd solver's
    ``learning_rate`` "invscaling"/"adaptive" change lr at epoch ends (see ``notes``).

    Refused: the lbfgs solver (no l2decay counterpart), ``early_stopping=True`` (its validation
    split changes the batches), momentum 1, and what scikit-learn itself refuses (negative
    alpha, batch_size < 1, momentum outside [0, 1], ...).
    """
    notes = []
    if isinstance(solver, str):
        if solver.lower() == "lbfgs":
            _not("scikit-learn MLP", "solver='lbfgs'", "L-BFGS has no l2decay counterpart")
        name = _name("scikit-learn MLP", solver, ("sgd", "adam"))
        a = _args(f"scikit-learn MLP solver={name!r}", _SKLEARN, kwargs)
    else:
        if kwargs:
            raise TypeError("give a scikit-learn estimator or a solver name with its arguments, not both")
        _object("scikit-learn MLP", solver, "get_params", ["adam", "sgd"])
        cls = type(solver)
        if not cls.__module__.startswith("sklearn") or cls.__name__ not in ("MLPClassifier", "MLPRegressor"):
            raise ValueError(f"{cls.__module__}.{cls.__name__} cannot be converted: l2decay converts "
                             f"scikit-learn's MLPClassifier and MLPRegressor")
        params = solver.get_params()
        return from_sklearn_mlp(params["solver"], **{k: params[k] for k in _SKLEARN})
    peer = "scikit-learn MLP"
    if _flag(peer, "early_stopping", a["early_stopping"]):
        _not(peer, "early_stopping=True", "scikit-learn then holds out validation_fraction of the training "
             "rows, so its batches are not those of the data given to fit; convert with "
             "early_stopping=False (and stop on your own validation score)")
    alpha = _num(peer, "alpha", a["alpha"], low=0.0)
    bs = a["batch_size"]
    if not (bs == "auto" if isinstance(bs, str) else
            isinstance(bs, numbers.Integral) and not isinstance(bs, bool) and bs >= 1):
        raise ValueError(f"batch_size={bs!r} is refused by {peer} itself: it must be 'auto' or an int >= 1")
    schedule = a["learning_rate"]
    if schedule not in _SKLEARN_SCHEDULES:
        raise ValueError(f"learning_rate={schedule!r} is refused by {peer} itself: it must be one of "
                         f"{_SKLEARN_SCHEDULES}")
    lr = _num(peer, "learning_rate_init", a["learning_rate_init"], low=0.0, low_open=True)
    power_t = _num(peer, "power_t", a["power_t"], low=0.0)
    notes.append("scikit-learn divides alpha by each batch's row count (or sample-weight sum): call "
                 "set_step(opt, batch=...) before every step; batch_size 'auto' is min(200, n_samples), "
                 "a larger batch_size is clipped to n_samples, the last batch holds the rows left over")
    if name == "sgd":
        mu = _num(peer, "momentum", a["momentum"], low=0.0, high=1.0)
        mu = _num(peer, "momentum", mu, high=1.0, high_open=True, why=_MOMENTUM_BELOW_1)
        hyper = _sgd(lr, mu, _flag(peer, "nesterovs_momentum", a["nesterovs_momentum"]), "keras")
        if schedule == "invscaling":
            notes.append(f"learning_rate='invscaling': after each epoch scikit-learn sets lr = "
                         f"{lr!r} / (t + 1)**{power_t!r}, t the samples seen so far: "
                         f"set_step(opt, lr=...)")
        elif schedule == "adaptive":
            notes.append("learning_rate='adaptive': scikit-learn divides lr by 5 after n_iter_no_change "
                         "epochs without improvement: set_step(opt, lr=...)")
    else:
        b1 = _num(peer, "beta_1", a["beta_1"], low=0.0, high=1.0, high_open=True)
        b2 = _num(peer, "beta_2", a["beta_2"], low=0.0, high=1.0, high_open=True)
        eps = _num(peer, "epsilon", a["epsilon"], low=0.0, low_open=True)
        hyper = _adam(lr, b1, b2, eps, "keras")
    return Setting("sklearn", name, hyper, "l2" if alpha else None, alpha, "1/batch" if alpha else None,
                   False, tuple(notes))
