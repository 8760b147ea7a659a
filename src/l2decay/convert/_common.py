"""What every conversion shares: reading a library's arguments against its defaults, and wording
what the library refuses and what l2decay cannot reproduce."""
import math
import numbers

from .._validate import flag, real


_REQUIRED = object()   # an argument the library has no default for


def _unwrap(value):
    """A one-element tensor or array hyperparameter (torch, jax and Keras allow them) as the
    number it holds; anything else unchanged."""
    if isinstance(value, numbers.Number) or isinstance(value, (str, bytes)):
        return value
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    if callable(size):          # torch's Tensor.size() is a method; numel() is the count
        size = value.numel() if callable(getattr(value, "numel", None)) else None
    if callable(item) and size == 1:
        return item()
    return value


def _num(peer, name, value, *, low=-math.inf, high=math.inf, low_open=False, high_open=False,
         why=None):
    """`value` as a float: a real number, finite, in the interval; outside it a ValueError says
    whether the library itself refuses it (`why` None) or why l2decay cannot reproduce it."""
    x = real(name, _unwrap(value), low=-math.inf)
    if x < low or x > high or (low_open and x == low) or (high_open and x == high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        if why is None:
            raise ValueError(f"{name}={x!r} is refused by {peer} itself: it must be in {interval}")
        raise ValueError(f"{name}={x!r} cannot be reproduced by l2decay ({peer}): {why}")
    return x


def _flag(peer, name, value):
    try:
        return flag(name, _unwrap(value))
    except TypeError as exc:
        raise TypeError(f"{exc} ({peer})") from None


def _args(peer, table, given):
    """The library's arguments: its defaults (`table`) updated with `given`; unknown or missing
    ones raise TypeError naming them."""
    unknown = sorted(set(given) - set(table))
    if unknown:
        raise TypeError(f"{peer} has no argument(s) {unknown}; its arguments: {sorted(table)}")
    out = dict(table, **given)
    missing = sorted(k for k, v in out.items() if v is _REQUIRED)
    if missing:
        raise TypeError(f"{peer} needs {missing} (it has no default)")
    return out


def _name(library, value, known, refused=""):
    """A case-insensitive optimizer name of `library` among `known`."""
    if not isinstance(value, str):
        raise TypeError(f"the {library} optimizer must be given by name (one of {sorted(known)}) "
                        f"or as an optimizer object, got {type(value).__name__}")
    name = value.lower()
    if name not in known:
        raise ValueError(f"{library} optimizer {value!r} has no l2decay counterpart: l2decay has SGD "
                         f"(with momentum) and Adam{refused}; convertible: {sorted(known)}")
    return name


def _not(peer, what, why):
    raise ValueError(f"{what} cannot be reproduced by l2decay ({peer}): {why}")


def _a_schedule(peer, name):
    return TypeError(f"{name} of {peer} is a schedule; give its value at the step as a float "
                     f"(and later steps' values with Setting.set_step(opt, lr=..., ...))")


def _schedule_value(peer, name, value):
    """Refuse a schedule (a callable) where a number is needed, saying how to use one."""
    if callable(value) and not isinstance(value, numbers.Number):
        raise _a_schedule(peer, name)
    return value


def _sgd(lr, momentum, nesterov, form, dampening=0.0, maximize=False):
    # l2decay refuses nesterov without momentum; with momentum 0 the libraries' nesterov
    # update is the plain step, so it is dropped there
    return {"lr": lr, "momentum": momentum, "dampening": dampening,
            "nesterov": bool(nesterov and momentum > 0), "maximize": maximize, "momentum_form": form}


def _adam(lr, b1, b2, eps, form, amsgrad=False, maximize=False):
    return {"lr": lr, "betas": (b1, b2), "eps": eps, "amsgrad": amsgrad, "maximize": maximize,
            "eps_form": form}


_MOMENTUM_BELOW_1 = "l2decay's SGD takes momentum in [0, 1) (at 1 and above the velocity never decays)"
_BETA_BELOW_1 = "l2decay's Adam takes betas in [0, 1)"
_EPS_POSITIVE = "l2decay's Adam takes eps > 0"
_LR_NONNEGATIVE = "l2decay takes lr >= 0"
_STRENGTH_NONNEGATIVE = "l2decay's rules take a strength >= 0"

def _object(library, opt, attr, names):
    """Refuse what is neither a name nor an optimizer object of `library` (one with `attr`)."""
    if not hasattr(opt, attr):
        raise TypeError(f"the {library} optimizer must be given by name (one of {names}) or as an "
                        f"optimizer object, got {type(opt).__name__}")


def _class_name(opt, module, table, converts):
    """The lower-case class name of an optimizer object from `module` that `table` knows; refuse
    any other class, saying which ones l2decay converts."""
    cls = type(opt)
    name = cls.__name__.lower()
    if not cls.__module__.startswith(module) or name not in table:
        raise ValueError(f"{cls.__module__}.{cls.__name__} has no l2decay counterpart: l2decay "
                         f"converts {converts}")
    return name
