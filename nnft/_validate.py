"""Boundary validation: every bad value raises :class:`ConfigError` naming the field.

The messages have one shape, ``<field>: got <value>; <what is allowed>``, so a
model card, a constructor and the command line all report bad input alike.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable

import jax
import numpy as np


class ConfigError(ValueError):
    """A bad hyperparameter, card entry or argument. The message names the field."""


class RunInterrupted(RuntimeError):
    """A run stopped early on request (``stop_after``); its checkpoint is on disk."""

    def __init__(self, done: int, total: int, unit: str = "networks"):
        super().__init__(f"stopped after {done} of {total} {unit}; resume to continue")
        self.done, self.total = done, total


def did_you_mean(key, allowed) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed name, or ``""``."""
    close = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fmt(value) -> str:
    return repr(value)


def require(cond: bool, field: str, value, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"{field}: got {_fmt(value)}; {allowed}")


def is_int(value) -> bool:
    """An integer, Python's or numpy's (``np.int64(3)``), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """A real number, Python's or numpy's, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


_is_real = is_real


def positive(field: str, value) -> float:
    """A finite real number > 0."""
    require(_is_real(value) and math.isfinite(value) and value > 0, field, value,
            "must be a finite number > 0")
    return float(value)


def non_negative(field: str, value) -> float:
    require(_is_real(value) and math.isfinite(value) and value >= 0, field, value,
            "must be a finite number >= 0")
    return float(value)


def finite(field: str, value) -> float:
    require(_is_real(value) and math.isfinite(value), field, value, "must be a finite number")
    return float(value)


def positive_int(field: str, value, minimum: int = 1) -> int:
    require(is_int(value) and value >= minimum, field, value, f"must be an integer >= {minimum}")
    return int(value)


def is_key(value) -> bool:
    """Whether ``value`` is a typed JAX PRNG key (``jax.random.key(...)``)."""
    dtype = getattr(value, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def seed(field: str, value):
    """An integer seed >= 0 (numpy integers too), returned as ``int``, or a typed key."""
    if is_key(value):
        return value
    require(is_int(value) and value >= 0, field, value,
            "must be an integer >= 0 or a jax.random.key")
    return int(value)


def choice(field: str, value, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    require(value in allowed, field, value, "allowed values: " + ", ".join(map(str, allowed))
            + (did_you_mean(value, allowed) if isinstance(value, str) else ""))
    return value


#: The most points a measurement may use, by its highest order: the estimator keeps
#: ``P**order`` tensor entries per jackknife batch (order 6 on 8 points: 262,144). Cards
#: and the API share this one table.
MAX_POINTS = {1: 512, 2: 512, 3: 64, 4: 16, 5: 12, 6: 8}


def max_order(field: str, value) -> int:
    """An order of correlators, 1 .. 6."""
    require(is_int(value) and 1 <= value <= max(MAX_POINTS), field, value,
            f"must be an integer from 1 to {max(MAX_POINTS)}")
    return int(value)


def points_for_order(field: str, n_points: int, order: int, order_field: str = "max_order",
                     ) -> None:
    """Refuse more points than :data:`MAX_POINTS` allows at ``order``."""
    most = MAX_POINTS[order]
    if n_points > most:
        raise ConfigError(f"{field}: got {n_points} points; order {order} allows at most "
                          f"{most} points ({order_field} = {order}); use fewer points or a "
                          "lower order")


def points(field: str, value, d: int) -> np.ndarray:
    """A point set: a non-empty list of d-vectors (or numbers when d = 1) -> ``(P, d)``
    float64, finite."""
    what = f"must be a non-empty list of {d}-vectors (d = {d})"
    if isinstance(value, (str, bytes)):
        raise ConfigError(f"{field}: got {_fmt(value)}; {what}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{field}: got {_fmt(value)}; {what} of numbers") from None
    if arr.ndim == 1 and d == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != d or arr.shape[0] < 1:
        raise ConfigError(f"{field}: got an array of shape {np.shape(value)}; {what}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{field}: got non-finite coordinates; must be finite numbers")
    return arr
