"""Training data: a training set, test points (where the fields are measured) and the
probe points of the empirical NTK; the built-in "sine" regression set."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from nnft import _validate as v
from nnft.priors.base import as_points

DATASETS = ("sine",)


class Data(NamedTuple):
    """Training set ``x (n, d)``, ``y (n,)``; test points ``x_test (P, d)`` with targets
    ``y_test (P,)`` or None; NTK probe points ``probe (Q, d)``."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None
    probe: np.ndarray


def sine_target(x: np.ndarray) -> np.ndarray:
    """The built-in regression target ``sin(pi s / 2)``, ``s = sum_k x_k / sqrt(d)``."""
    x = np.asarray(x, np.float64)
    return np.sin(0.5 * np.pi * x.sum(axis=1) / math.sqrt(x.shape[1]))


def regression_data(seed: int, n_train: int, d: int = 1, *, noise: float = 0.0,
                    x_test=None, probe=None, extent: float = 2.0) -> Data:
    """The built-in "sine" set: ``x ~ Unif[-extent, extent]^d`` (sorted for d = 1),
    ``y = sine_target(x) + noise * N(0, 1)``, all from ``seed``; test targets noiseless."""
    v.positive_int("n_train", n_train)
    v.non_negative("noise", noise)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-extent, extent, size=(n_train, d))
    if d == 1:
        x = np.sort(x, axis=0)
    y = sine_target(x) + noise * rng.standard_normal(n_train)
    x_test = x[: min(8, n_train)] if x_test is None else as_points(x_test, d)
    return make_data(x, y, x_test, sine_target(x_test), probe)


def _finite(field: str, a: np.ndarray) -> None:
    v.require(bool(np.all(np.isfinite(a))), field, "non-finite entries",
              "must be finite numbers (no NaN or inf)")


def make_data(x, y, x_test, y_test=None, probe=None, *, prefix: str = "") -> Data:
    """Validate a data set: matching shapes, finite values (errors name ``prefix + field``).
    The probe set defaults to the first 16 training points."""
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim == 1:
        xa = xa[:, None]
    ya = np.asarray(y, dtype=np.float64)
    v.require(xa.ndim == 2 and xa.shape[0] >= 1, f"{prefix}x", np.shape(x),
              "must be a non-empty list of numbers or of d-vectors")
    v.require(ya.ndim == 1 and ya.shape[0] == xa.shape[0], f"{prefix}y", np.shape(y),
              f"must be a list of {xa.shape[0]} numbers, one per row of {prefix}x "
              f"(x has shape {xa.shape})")
    _finite(f"{prefix}x", xa)
    _finite(f"{prefix}y", ya)
    d = xa.shape[1]
    xt = as_points(x_test, d)
    yt = None
    if y_test is not None:
        yt = np.asarray(y_test, dtype=np.float64)
        v.require(yt.shape == (xt.shape[0],), f"{prefix}y_test", np.shape(y_test),
                  f"must be a list of {xt.shape[0]} numbers, one per test point")
        _finite(f"{prefix}y_test", yt)
    pr = xa[: min(16, xa.shape[0])] if probe is None else as_points(probe, d)
    return Data(xa, ya, xt, yt, pr)
