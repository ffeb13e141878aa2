"""Spectral nets (TASI eqs. 65-67) and Scalar-net (eqs. 72-74): any isotropic power spectrum.

``phi(x) = sum_i w1_i F(w0_i) cos(w0_i . x + b_i)`` with ``w0 ~ Unif(B_Lambda^d)``,
``b ~ Unif[-pi, pi]``, ``w1 ~ N(0, sigma_w1^2 / N)`` and

    F(p)^2 = 2 vol(B_Lambda^d) rho(|p|) / ((2 pi)^d sigma_w1^2),

so that ``G2(r) = sigma_w1^2 / 2 E[F^2 cos(w0.r)] = int_{|p|<Lambda} d^dp/(2pi)^d
e^{ip.r} rho(|p|)``: the power spectrum is exactly ``rho`` below the cutoff, at
every width N. Euclidean invariant at every N (eq. 65 and below).

The spectrum is given either by name, from the registry
:data:`nnft.theory.spectral.SPECTRA` (what a model card uses; the name and the
numbers ``m``, ``alpha`` are plain, hashable, serialisable hyperparameters):

- ``"massive"``: ``1 / (p^2 + m^2)``, the free scalar (eq. 74);
- ``"power-law"``: ``(p^2 + m^2)^(-alpha)``, a power law with an IR mass;
- ``"flat"``: ``1``, band-limited white noise;

or as a callable ``rho(p)`` of ``|p|`` (jax-traceable, finite and > 0 on
[0, Lambda]), for use from Python; ``m`` and ``alpha`` then play no part.
Functions are hashable, so the prior stays a valid static argument of ``jit``.

:class:`ScalarNet` is the spectral net with the massive spectrum, eq. (72).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nnft import _validate as v
from nnft import fastmath
from nnft.priors import reparam as rp
from nnft.priors.base import Prior, as_points
from nnft.theory import correlators as corr
from nnft.theory import spectral as th


@dataclasses.dataclass(frozen=True)
class SpectralNet(Prior):
    """Spectral net of width ``width`` on ``R^d`` with power spectrum ``power_spectrum``."""

    d: int = 1
    width: int = 10
    Lambda: float = 10.0
    sigma_w1: float = 1.0
    power_spectrum: str | Callable = "massive"
    m: float = 1.0
    alpha: float = 1.0
    dtype: str = "float32"

    name = "spectral-net"
    translation_invariant = True

    def __post_init__(self):
        v.positive_int("d", self.d)
        v.positive_int("width", self.width)
        v.positive("Lambda", self.Lambda)
        v.positive("sigma_w1", self.sigma_w1)
        v.positive("m", self.m)
        v.finite("alpha", self.alpha)
        v.choice("dtype", self.dtype, ("float32", "float64"))
        if callable(self.power_spectrum):
            p = np.linspace(0.0, self.Lambda, 257)
            try:
                with np.errstate(all="ignore"):
                    values = th.evaluate_spectrum(self.power_spectrum, p)
            except Exception as err:  # a user callable may fail in any way
                raise v.ConfigError(
                    f"power_spectrum: calling it on an array of |p| failed ({err!r}); "
                    "must be a callable rho(p) of |p|, elementwise on arrays"
                ) from err
            v.require(bool(np.all(np.isfinite(values) & (values > 0))), "power_spectrum",
                      self.power_spectrum, f"a callable must be finite and > 0 on [0, Lambda]"
                      f" = [0, {self.Lambda}]")
        else:
            v.require(isinstance(self.power_spectrum, str) and self.power_spectrum in th.SPECTRA,
                      "power_spectrum", self.power_spectrum,
                      "allowed values: " + ", ".join(th.SPECTRA) + ", or a callable rho(p)")

    # -- the spectrum and the neuron amplitude F ------------------------------------
    @property
    def rho(self) -> Callable:
        """The power spectrum as a function of ``|p|``."""
        if callable(self.power_spectrum):
            return self.power_spectrum
        return th.named_spectrum(self.power_spectrum, m=self.m, alpha=self.alpha)

    @property
    def _f2_scale(self) -> float:
        """``F(p)^2 / rho(p) = 2 vol(B_Lambda^d) / ((2 pi)^d sigma_w1^2)``."""
        return 2 * th.ball_volume(self.d, self.Lambda) / ((2 * math.pi) ** self.d
                                                          * self.sigma_w1**2)

    # -- sampling and evaluation -----------------------------------------------------
    def sample(self, key):
        """``w0`` uniform in the ball (uniform direction, radius ``Lambda U^{1/d}``), ``b``, ``w1``."""
        kd, kr, kb, k1 = jax.random.split(key, 4)
        n, d, dt = self.width, self.d, jnp.dtype(self.dtype)
        direction = jax.random.normal(kd, (n, d), dt)
        direction = direction / jnp.linalg.norm(direction, axis=-1, keepdims=True)
        radius = self.Lambda * jax.random.uniform(kr, (n, 1), dt) ** (1.0 / d)
        return {
            "w0": radius * direction,
            "b0": jax.random.uniform(kb, (n,), dt, -math.pi, math.pi),
            "w1": jax.random.normal(k1, (n,), dt) * (self.sigma_w1 / math.sqrt(n)),
        }

    def amplitude(self, w0):
        """``F(w0) = sqrt(2 vol(B_Lambda^d) rho(|w0|) / ((2pi)^d sigma_w1^2))``, per row of w0."""
        p = jnp.sqrt(jnp.sum(w0 * w0, axis=-1))
        return jnp.sqrt(self._f2_scale * self.rho(p)).astype(w0.dtype)

    def apply(self, params, x):
        """Eq. (65)-(67): ``sum_i w1_i F(w0_i) cos(w0_i . x + b_i)``."""
        w0 = params["w0"]
        return params["w1"] @ (self.amplitude(w0) * fastmath.cos(w0 @ x + params["b0"]))

    def cos_modes(self, params):
        """``(a, w, b)`` with ``phi(x) = sum_i a_i cos(w_i . x + b_i)``: ``a = w1 F(w0)``."""
        return params["w1"] * self.amplitude(params["w0"]), params["w0"], params["b0"]

    gaussian_readout = True
    iid_neurons = True

    def readout_features(self, params, x):
        """``h_i(x) = F(w0_i) cos(w0_i . x + b_i)``."""
        w0 = params["w0"]
        return self.amplitude(w0) * fastmath.cos(w0 @ x + params["b0"])

    def readout_variances(self):
        return self.sigma_w1**2 / self.width, 0.0

    def reparameterization(self) -> rp.Reparameterization:
        """``w0 ~ Unif(B_Lambda^d)`` as ``w0 = Lambda tanh(|u|) u/|u|``, ``b`` through a
        logit, ``w1`` standardised. The radial map has ``|det dw0/du| = Lambda^d (1 -
        tanh^2 rho) (tanh(rho)/rho)^{d-1}``, ``rho = |u|``."""
        lam, d = self.Lambda, self.d
        s1 = self.sigma_w1 / math.sqrt(self.width)

        def constrain(z):
            u = z["w0"]
            r2 = jnp.sum(u * u, axis=-1, keepdims=True)
            return {"w0": lam * rp.tanh_ratio(r2) * u, "b0": rp.phase(z["b0"]),
                    "w1": s1 * z["w1"]}

        def unconstrain(p):
            w = p["w0"]
            r = jnp.sqrt(jnp.sum(w * w, axis=-1, keepdims=True)) / lam
            r_safe = jnp.where(r > 0, r, 1.0)
            factor = jnp.where(r > 0, jnp.arctanh(jnp.minimum(r_safe, 1 - 1e-7)) / r_safe, 1.0)
            return {"w0": factor * w / lam, "b0": rp.unphase(p["b0"]), "w1": p["w1"] / s1}

        def log_density(z):
            r2 = jnp.sum(z["w0"] ** 2, axis=-1)
            log_jac = -2.0 * rp.log_cosh_sq(r2) + (d - 1) * jnp.log(rp.tanh_ratio(r2))
            return (jnp.sum(log_jac) + rp.logistic_logpdf(z["b0"])
                    + rp.normal_logpdf(z["w1"]))

        return rp.Reparameterization(constrain, unconstrain, log_density,
                                     lambda key: unconstrain(self.sample(key)))

    # -- theory --------------------------------------------------------------------
    def g2(self, points):
        """Eq. (74): ``G2(x_a, x_b) = int_{|p|<Lambda} d^dp/(2pi)^d e^{ip.(x_a-x_b)} rho(|p|)``."""
        return th.spectral_g2(as_points(points, self.d), self.rho, Lambda=self.Lambda)

    def g4c(self, points):
        """Exact connected four-point function (:mod:`nnft.theory.spectral`)."""
        return th.spectral_g4c(as_points(points, self.d), self.rho, Lambda=self.Lambda,
                               width=self.width)

    def g6c(self, points):
        """Connected six-point function from the one-neuron moments."""
        pts = as_points(points, self.d)
        return corr.iid_connected(self._moment, pts, 6, self.width)

    def _moment(self, points, n):
        return th.spectral_neuron_moment(points, n, self.rho, Lambda=self.Lambda)

    def nngp_rows(self, points, nodes):
        """Infinite-width kernel ``G(x_a, z_q)`` ``(P, Q)`` and ``G(z_q, z_q)`` ``(Q,)``
        (the Hankel transform of the spectrum, eq. 74)."""
        x = np.asarray(points, dtype=np.float64)
        z = np.asarray(nodes, dtype=np.float64)
        r = np.sqrt(np.sum((x[:, None, :] - z[None, :, :]) ** 2, axis=-1))
        g = th.hankel_transform(self.rho, r, d=self.d, Lambda=self.Lambda)
        g0 = th.hankel_transform(self.rho, np.zeros(1), d=self.d, Lambda=self.Lambda)[0]
        return g, np.full(len(z), g0)

    def hyperparameters(self) -> dict:
        """As :meth:`Prior.hyperparameters`, without the fields a subclass fixes."""
        out = super().hyperparameters()
        for f in dataclasses.fields(self):
            if not f.init:
                out.pop(f.name)
        return out


@dataclasses.dataclass(frozen=True)
class ScalarNet(SpectralNet):
    """Scalar-net, eq. (72): the free scalar of mass ``m`` with UV cutoff ``Lambda``.

    The spectral net with ``rho(p) = 1 / (p^2 + m^2)`` (eq. 74), i.e.
    ``F(p) = sqrt(2 vol(B_Lambda^d) / ((2pi)^d sigma_w1^2)) / sqrt(p^2 + m^2)``.
    """

    power_spectrum: str = dataclasses.field(default="massive", init=False, repr=False)
    alpha: float = dataclasses.field(default=1.0, init=False, repr=False)

    name = "scalar-net"
