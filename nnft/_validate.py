"""Boundary validation: every bad value raises :class:`ConfigError` naming the field.

The messages have one shape, ``<field>: got <value>; <what is allowed>``, so a
model card, a constructor and the command line all report bad input alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class ConfigError(ValueError):
    """A bad hyperparameter, card entry or argument. The message names the field."""


def _fmt(value) -> str:
    return repr(value)


def require(cond: bool, field: str, value, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"{field}: got {_fmt(value)}; {allowed}")


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
    require(isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
            field, value, f"must be an integer >= {minimum}")
    return int(value)


def choice(field: str, value, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    require(value in allowed, field, value, "allowed values: " + ", ".join(map(str, allowed)))
    return value
