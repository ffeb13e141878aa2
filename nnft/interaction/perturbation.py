"""First-order perturbation theory at infinite width, by the box quadrature (Wick's theorem)."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nnft._validate import ConfigError
from nnft.interaction.action import Interaction
from nnft.priors.base import Prior


def nngp_rows(prior: Prior, points, nodes) -> tuple[np.ndarray, np.ndarray]:
    """``G(x_a, z_q)`` ``(P, Q)`` and ``G(z_q, z_q)`` ``(Q,)``: the infinite-width kernel
    (the prior's :meth:`~nnft.priors.base.Prior.nngp_rows`)."""
    rows = prior.nngp_rows(points, nodes)
    if rows is None:
        raise ConfigError(f"architecture.name: got {prior.name!r}; its infinite-width kernel "
                          "is not known (Prior.nngp_rows), so first-order perturbation theory "
                          "at infinite N is not available")
    return rows


def gaussian_expectation(f: Callable, variance: np.ndarray, n: int = 48) -> np.ndarray:
    """``E[f(phi)]`` for ``phi ~ N(0, variance)`` (Gauss-Hermite, exact for polynomials)."""
    t, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / math.sqrt(2 * math.pi)
    with jax.enable_x64(True):
        vals = np.asarray(f(jnp.asarray(np.sqrt(variance)[:, None] * t[None, :])))
    return vals @ w


def perturbation_infinite_n(prior: Prior, interaction: Interaction, points) -> dict:
    """First order in the coupling at infinite width, by the box quadrature.

    The free theory is the Gaussian process with kernel G. For ``V = lambda V_1``,
    Gaussian integration by parts (Wick's theorem) gives

        dG2(x,y)/dlambda     = -int_box G(x,z) G(z,y) E[V_1''(phi_z)] dz
        dG4c(x1..x4)/dlambda = -int_box prod_i G(x_i,z) E[V_1''''(phi_z)] dz

    with ``phi_z ~ N(0, G(z,z))``. For ``V_1 = phi^4``: ``E[V_1''] = 12 G(z,z)`` and
    ``E[V_1''''] = 24``, i.e. ``-12 lambda int G G G`` and ``-24 lambda int G G G G``
    (pair x and y with two of the four legs: 4 x 3 ways, the last two legs close on
    themselves; the four external points on four legs: 4! ways; the disconnected
    ``G(x,y) <phi_z^4>`` is cancelled by the normalisation).

    Returns ``{"G2": (G2 at lambda=0, slope), "G4c": (zeros, slope)}``.
    """
    pts = np.asarray(points, dtype=np.float64)
    quad = interaction.quadrature
    g, gzz = nngp_rows(prior, pts, quad.nodes)
    unit = interaction.unit().potential

    def derivative(k):
        f = unit
        for _ in range(k):
            f = jax.grad(f)
        return jax.vmap(jax.vmap(f))

    e2 = gaussian_expectation(derivative(2), gzz)
    e4 = gaussian_expectation(derivative(4), gzz)
    w = quad.weights
    slope2 = -np.einsum("q,aq,bq->ab", w * e2, g, g)
    slope4 = -np.einsum("q,aq,bq,cq,dq->abcd", w * e4, g, g, g, g)
    g2 = nngp_rows(prior, pts, pts)[0]
    return {"G2": (g2, slope2), "G4c": (np.zeros((len(pts),) * 4), slope4)}
