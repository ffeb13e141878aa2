"""What an architecture is: a prior over functions.

A :class:`Prior` is a small immutable bundle, in the spirit of a neural-tangents
layer: ``sample(key) -> params`` draws one network's parameters (a pytree),
``apply(params, x) -> phi`` evaluates that one network at one input ``x`` of
shape ``(d,)``, and, where the theory is known, ``g2`` / ``g4c`` give the exact
correlators on a point set. Batching over networks and inputs is ``vmap`` on
top (:func:`fields`), never a loop.

Priors are frozen dataclasses, hence hashable, so they can be static arguments
of ``jax.jit``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Params = Any


@dataclasses.dataclass(frozen=True)
class Prior(abc.ABC):
    """Base class. Subclasses set ``name`` and implement ``sample`` and ``apply``."""

    name = "prior"
    #: True when every correlator depends only on separations (plots then draw theory curves)
    translation_invariant = False

    # -- the two things every architecture does ------------------------------------
    @abc.abstractmethod
    def sample(self, key: jax.Array) -> Params:
        """Draw one network's parameters from the prior."""

    @abc.abstractmethod
    def apply(self, params: Params, x: jax.Array) -> jax.Array:
        """Evaluate one network at one input ``x`` of shape ``(d,)``; returns a scalar."""

    # -- exact theory, where it exists (None where unknown) ------------------------
    def g2(self, points) -> np.ndarray | None:
        """Exact ``G2(x_a, x_b)`` on every pair of ``points`` (shape ``(P, d)``), or None."""
        return None

    def g4c(self, points) -> np.ndarray | None:
        """Exact connected ``G4c(x_a, x_b, x_c, x_d)``, shape ``(P,)*4``, or None."""
        return None

    def g6c(self, points) -> np.ndarray | None:
        """Exact connected six-point function, shape ``(P,)*6``, or None."""
        return None

    # -- conveniences ---------------------------------------------------------------
    @property
    def input_dim(self) -> int:
        return self.d  # type: ignore[attr-defined]

    def replace(self, **changes) -> Prior:
        """A copy with some hyperparameters changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def hyperparameters(self) -> dict:
        """The hyperparameters as plain Python values (for files and reports)."""
        out = {"name": self.name}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if callable(v):
                v = getattr(v, "__name__", repr(v))
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out


def fields(prior: Prior, params: Params, points: jax.Array) -> jax.Array:
    """One network on many points: ``(P, d) -> (P,)``."""
    return jax.vmap(prior.apply, in_axes=(None, 0))(params, points)


def sample_fields(prior: Prior, keys: jax.Array, points: jax.Array) -> jax.Array:
    """Many networks (one per key) on many points: ``(S,), (P, d) -> (S, P)``."""
    return jax.vmap(lambda k: fields(prior, prior.sample(k), points))(keys)


def as_points(points, d: int) -> np.ndarray:
    """Validate a point set: a list of d-vectors (or scalars when d = 1) -> ``(P, d)``."""
    from nnft._validate import ConfigError

    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1 and d == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != d or arr.shape[0] < 1:
        raise ConfigError(
            f"points: got an array of shape {np.shape(points)}; must be a non-empty list of "
            f"{d}-vectors (d = {d})"
        )
    if not np.all(np.isfinite(arr)):
        raise ConfigError("points: got non-finite coordinates; must be finite numbers")
    return arr


def default_dtype():
    return jnp.float32
