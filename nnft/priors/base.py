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

from nnft._validate import ConfigError
from nnft._validate import points as check_points

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

    # -- what samplers and the interaction need, where the architecture provides it ----
    def reparameterization(self):
        """Unconstrained coordinates with their log density
        (:class:`nnft.priors.reparam.Reparameterization`), or None (not provided)."""
        return None

    def cos_modes(self, params):
        """``(a, w, b)`` with ``phi(x) = sum_i a_i cos(w_i . x + b_i)`` for cos-type
        networks (the exact box integral needs them), else None."""
        return None

    # -- the readout form (nnft.readout), where the last layer is Gaussian ----------
    #: True when ``phi(x) = sum_i w_i h_i(x) (+ b)`` with ``w_i ~ N(0, s^2)``, ``b ~ N(0,
    #: s_b^2)`` independent of the features ``h_i`` (then ``phi | h`` is a centred GP)
    gaussian_readout = False
    #: True when, besides, the neurons ``(w_i, h_i)`` are i.i.d. with a law that does not
    #: depend on the width (one hidden layer), so ``K = (1/N) sum_i k_i``
    iid_neurons = False

    def readout_features(self, params, x):
        """The hidden features ``h_i(x)`` ``(N,)`` of one network at one input, for
        ``K(x, y) = s^2 sum_i h_i(x) h_i(y) + s_b^2`` (only where ``gaussian_readout``)."""
        raise ConfigError(f"correlators.estimator: {self.name} has no Gaussian readout; "
                          "use estimator = \"direct\"")

    def readout_variances(self) -> tuple[float, float]:
        """``(s^2, s_b^2)``: the variances of a readout weight and of the readout bias."""
        raise ConfigError(f"correlators.estimator: {self.name} has no Gaussian readout; "
                          "use estimator = \"direct\"")

    def nngp_rows(self, points, nodes):
        """Infinite-width kernel ``G(x_a, z_q)`` ``(P, Q)`` and ``G(z_q, z_q)`` ``(Q,)``
        (float64 numpy), or None where it is not known."""
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
            elif isinstance(v, np.generic):
                v = v.item()  # np.int64(3) -> 3
            elif isinstance(v, tuple):
                v = [x.item() if isinstance(x, np.generic) else x for x in v]
            out[f.name] = v
        return out


def fields(prior: Prior, params: Params, points: jax.Array) -> jax.Array:
    """One network on many points: ``(P, d) -> (P,)``."""
    return jax.vmap(prior.apply, in_axes=(None, 0))(params, points)


def sample_fields(prior: Prior, keys: jax.Array, points: jax.Array) -> jax.Array:
    """Many networks (one per key) on many points: ``(S,), (P, d) -> (S, P)``."""
    return jax.vmap(lambda k: fields(prior, prior.sample(k), points))(keys)


def as_points(points, d: int, field: str = "points") -> np.ndarray:
    """Validate a point set: a list of d-vectors (or scalars when d = 1) -> ``(P, d)``."""
    return check_points(field, points, d)


def default_dtype():
    return jnp.float32
