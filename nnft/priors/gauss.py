"""Gauss-net, eqs. (60)-(64): exponential neurons normalised to unit second moment.

``phi(x) = sum_i w1_i exp(w0_i . x + b_i) / exp(sigma_b0^2 + sigma_w0^2 |x|^2 / d)`` with
``w0 ~ N(0, sigma_w0^2 / d)``, ``w1 ~ N(0, sigma_w1^2 / (2N))``, ``b ~ N(0, sigma_b0^2)``.
Same G2 as Cos-net; its G4c is *not* translation invariant at finite N.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from nnft import _validate as v
from nnft.priors import reparam as rp
from nnft.priors.base import Prior, as_points
from nnft.priors.cos import rbf_rows
from nnft.theory import correlators as th


@dataclasses.dataclass(frozen=True)
class GaussNet(Prior):
    """Gauss-net of width ``width`` on ``R^d``."""

    d: int = 1
    width: int = 10
    sigma_w0: float = 1.0
    sigma_w1: float = 1.0
    sigma_b0: float = 1.0
    dtype: str = "float32"

    name = "gauss-net"
    translation_invariant = False  # G2 is, G4c is not (finite N)

    def __post_init__(self):
        v.positive_int("d", self.d)
        v.positive_int("width", self.width)
        v.positive("sigma_w0", self.sigma_w0)
        v.positive("sigma_w1", self.sigma_w1)
        v.positive("sigma_b0", self.sigma_b0)
        v.choice("dtype", self.dtype, ("float32", "float64"))

    def sample(self, key):
        k0, kb, k1 = jax.random.split(key, 3)
        n, d, dt = self.width, self.d, jnp.dtype(self.dtype)
        return {
            "w0": jax.random.normal(k0, (n, d), dt) * (self.sigma_w0 / math.sqrt(d)),
            "b0": jax.random.normal(kb, (n,), dt) * self.sigma_b0,
            "w1": jax.random.normal(k1, (n,), dt) * (self.sigma_w1 / math.sqrt(2 * n)),
        }

    def apply(self, params, x):
        # the normaliser is folded into the exponent so large |x| does not overflow
        log_norm = self.sigma_b0**2 + self.sigma_w0**2 * (x @ x) / self.d
        return params["w1"] @ jnp.exp(params["w0"] @ x + params["b0"] - log_norm)

    gaussian_readout = True
    iid_neurons = True

    def readout_features(self, params, x):
        """``h_i(x) = exp(w0_i . x + b_i) / exp(sigma_b0^2 + sigma_w0^2 |x|^2 / d)``."""
        log_norm = self.sigma_b0**2 + self.sigma_w0**2 * (x @ x) / self.d
        return jnp.exp(params["w0"] @ x + params["b0"] - log_norm)

    def readout_variances(self):
        return self.sigma_w1**2 / (2 * self.width), 0.0

    def reparameterization(self) -> rp.Reparameterization:
        """Every parameter Gaussian, standardised."""
        return rp.standardized(self, {"w0": self.sigma_w0 / math.sqrt(self.d),
                                      "b0": self.sigma_b0,
                                      "w1": self.sigma_w1 / math.sqrt(2 * self.width)})

    # -- theory --------------------------------------------------------------------
    def _moment(self, points, n):
        return th.gauss_neuron_moment(points, n, sigma_w0=self.sigma_w0, sigma_w1=self.sigma_w1,
                                      sigma_b0=self.sigma_b0, d=self.d)

    def g2(self, points):
        return th.rbf_g2(as_points(points, self.d), sigma_w0=self.sigma_w0,
                         sigma_w1=self.sigma_w1, d=self.d)

    def g4c(self, points):
        points = as_points(points, self.d)
        return th.gauss_net_g4c(points, sigma_w0=self.sigma_w0, sigma_w1=self.sigma_w1,
                                sigma_b0=self.sigma_b0, d=self.d, width=self.width)

    def g6c(self, points):
        return th.iid_connected(self._moment, as_points(points, self.d), 6, self.width)

    def nngp_rows(self, points, nodes):
        """Infinite-width kernel ``G(x_a, z_q)`` ``(P, Q)`` and ``G(z_q, z_q)`` ``(Q,)``
        (the RBF kernel, as for Cos-net)."""
        return rbf_rows(self.sigma_w0, self.sigma_w1, self.d, points, nodes)
