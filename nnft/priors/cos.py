"""Cos-net, eqs. (68)-(71): ``phi(x) = sum_i w1_i cos(w0_i . x + b_i)``.

``w1 ~ N(0, sigma_w1^2 / N)``, ``w0 ~ N(0, sigma_w0^2 / d)``, ``b ~ Unif[-pi, pi]``.
Euclidean invariant at every width N; its large-N limit is the Gaussian process
with the RBF kernel of eq. (70).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from nnft import _validate as v
from nnft.priors.base import Prior
from nnft.theory import correlators as th


@dataclasses.dataclass(frozen=True)
class CosNet(Prior):
    """Cos-net of width ``width`` on ``R^d``."""

    d: int = 1
    width: int = 10
    sigma_w0: float = 1.0
    sigma_w1: float = 1.0
    dtype: str = "float32"

    name = "cos-net"
    translation_invariant = True

    def __post_init__(self):
        v.positive_int("d", self.d)
        v.positive_int("width", self.width)
        v.positive("sigma_w0", self.sigma_w0)
        v.positive("sigma_w1", self.sigma_w1)
        v.choice("dtype", self.dtype, ("float32", "float64"))

    def sample(self, key):
        k0, kb, k1 = jax.random.split(key, 3)
        n, d, dt = self.width, self.d, jnp.dtype(self.dtype)
        return {
            "w0": jax.random.normal(k0, (n, d), dt) * (self.sigma_w0 / math.sqrt(d)),
            "b0": jax.random.uniform(kb, (n,), dt, -math.pi, math.pi),
            "w1": jax.random.normal(k1, (n,), dt) * (self.sigma_w1 / math.sqrt(n)),
        }

    def apply(self, params, x):
        return params["w1"] @ jnp.cos(params["w0"] @ x + params["b0"])

    # -- theory --------------------------------------------------------------------
    def _moment(self, points, n):
        return th.cos_neuron_moment(points, n, sigma_w0=self.sigma_w0,
                                    sigma_w1=self.sigma_w1, d=self.d)

    def g2(self, points):
        return th.rbf_g2(points, sigma_w0=self.sigma_w0, sigma_w1=self.sigma_w1, d=self.d)

    def g4c(self, points):
        return th.cos_net_g4c(points, sigma_w0=self.sigma_w0, sigma_w1=self.sigma_w1,
                              d=self.d, width=self.width)

    def g6c(self, points):
        return th.iid_connected(self._moment, points, 6, self.width)
