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
import numpy as np

from nnft import _validate as v
from nnft import fastmath
from nnft.priors import reparam as rp
from nnft.priors.base import Prior, as_points
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
        return params["w1"] @ fastmath.cos(params["w0"] @ x + params["b0"])

    def cos_modes(self, params):
        """``(a, w, b)`` with ``phi(x) = sum_i a_i cos(w_i . x + b_i)``."""
        return params["w1"], params["w0"], params["b0"]

    gaussian_readout = True
    iid_neurons = True

    def readout_features(self, params, x):
        """``h_i(x) = cos(w0_i . x + b_i)``."""
        return fastmath.cos(params["w0"] @ x + params["b0"])

    def readout_variances(self):
        return self.sigma_w1**2 / self.width, 0.0

    def reparameterization(self) -> rp.Reparameterization:
        """``w0, w1`` standardised, ``b ~ Unif[-pi, pi]`` through a logit."""
        s0, s1 = self.sigma_w0 / math.sqrt(self.d), self.sigma_w1 / math.sqrt(self.width)

        def constrain(z):
            return {"w0": s0 * z["w0"], "b0": rp.phase(z["b0"]), "w1": s1 * z["w1"]}

        def unconstrain(p):
            return {"w0": p["w0"] / s0, "b0": rp.unphase(p["b0"]), "w1": p["w1"] / s1}

        def log_density(z):
            return (rp.normal_logpdf(z["w0"]) + rp.normal_logpdf(z["w1"])
                    + rp.logistic_logpdf(z["b0"]))

        return rp.Reparameterization(constrain, unconstrain, log_density,
                                     lambda key: unconstrain(self.sample(key)))

    # -- theory --------------------------------------------------------------------
    def _moment(self, points, n):
        return th.cos_neuron_moment(points, n, sigma_w0=self.sigma_w0,
                                    sigma_w1=self.sigma_w1, d=self.d)

    def g2(self, points):
        return th.rbf_g2(as_points(points, self.d), sigma_w0=self.sigma_w0, sigma_w1=self.sigma_w1, d=self.d)

    def g4c(self, points):
        points = as_points(points, self.d)
        return th.cos_net_g4c(points, sigma_w0=self.sigma_w0, sigma_w1=self.sigma_w1,
                              d=self.d, width=self.width)

    def g6c(self, points):
        return th.iid_connected(self._moment, as_points(points, self.d), 6, self.width)

    def nngp_rows(self, points, nodes):
        """Infinite-width kernel ``G(x_a, z_q)`` ``(P, Q)`` and ``G(z_q, z_q)`` ``(Q,)``
        (the RBF kernel of eq. 70)."""
        return rbf_rows(self.sigma_w0, self.sigma_w1, self.d, points, nodes)


def rbf_rows(sigma_w0, sigma_w1, d, points, nodes):
    """``sigma_w1^2 / 2 exp(-sigma_w0^2 |x - z|^2 / (2 d))`` on points x nodes, and its diagonal."""
    x = np.asarray(points, dtype=np.float64)
    z = np.asarray(nodes, dtype=np.float64)
    r = np.sqrt(np.sum((x[:, None, :] - z[None, :, :]) ** 2, axis=-1))
    s = sigma_w0**2 / (2 * d)
    return sigma_w1**2 / 2 * np.exp(-s * r * r), np.full(len(z), sigma_w1**2 / 2)
