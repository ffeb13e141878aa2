"""Unconstrained coordinates of a prior's parameters, for samplers that need them (NUTS).

A :class:`Reparameterization` is a bijection ``z -> theta`` from an unconstrained pytree
``z`` onto the support of the parameters, with ``log_density(z) = log P(theta(z)) +
log |det d theta / d z|`` up to a constant. Each architecture builds its own in
``Prior.reparameterization()``; the pieces shared by several of them live here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

_TINY = 1e-12


class Reparameterization(NamedTuple):
    """An architecture's parameters as a bijection of unconstrained ``z`` (a pytree).

    ``constrain(z) -> params``; ``unconstrain(params) -> z``; ``log_density(z)`` is
    ``log P(theta(z)) + log |det d theta / d z|`` up to a constant, so that at zero
    coupling ``z`` is distributed as ``unconstrain(prior.sample(key))``;
    ``init(key) -> z`` draws from it.
    """

    constrain: Callable
    unconstrain: Callable
    log_density: Callable
    init: Callable


def normal_logpdf(z):
    """``log N(z; 0, 1)`` summed, up to a constant."""
    return -0.5 * jnp.sum(z * z)


def logistic_logpdf(z):
    """``log sigma(z) + log sigma(-z)`` summed: the logit Jacobian of a uniform variable."""
    return jnp.sum(jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z))


def interval(z, lo, hi):
    """``(lo, hi)`` from the real line: ``lo + (hi - lo) sigma(z)``."""
    return lo + (hi - lo) * jax.nn.sigmoid(z)


def logit(x, lo, hi):
    """The inverse of :func:`interval`."""
    u = (x - lo) / (hi - lo)
    return jnp.log(u) - jnp.log1p(-u)


def phase(z):
    """A bias ``b ~ Unif[-pi, pi]`` from the real line."""
    return interval(z, -math.pi, math.pi)


def unphase(b):
    return logit(b, -math.pi, math.pi)


def tanh_ratio(r2):
    """``tanh(rho) / rho`` as a smooth function of ``rho^2`` (series near 0)."""
    safe = jnp.where(r2 > _TINY, r2, 1.0)
    rho = jnp.sqrt(safe)
    return jnp.where(r2 > _TINY, jnp.tanh(rho) / rho, 1.0 - r2 / 3.0)


def log_cosh_sq(r2):
    """``log cosh(rho)`` as a smooth function of ``rho^2``."""
    safe = jnp.where(r2 > _TINY, r2, 1.0)
    rho = jnp.sqrt(safe)
    big = rho + jnp.log1p(jnp.exp(-2.0 * rho)) - math.log(2.0)
    return jnp.where(r2 > _TINY, big, r2 / 2.0)


def standardized(prior, scale: dict) -> Reparameterization:
    """Every parameter Gaussian with standard deviation ``scale[name]``: ``theta = scale z``."""

    def constrain(z):
        return {k: scale[k] * z[k] for k in scale}

    def unconstrain(p):
        return {k: p[k] / scale[k] for k in scale}

    def log_density(z):
        return sum(normal_logpdf(z[k]) for k in scale)

    return Reparameterization(constrain, unconstrain, log_density,
                              lambda key: unconstrain(prior.sample(key)))
