"""Convergence of the box quadrature: ``int_box V`` against a finer rule on prior draws."""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nnft.interaction.action import Interaction
from nnft.interaction.box import MAX_NODES, as_nodes, box_integral, box_quadrature
from nnft.priors.base import Prior


class QuadratureWarning(UserWarning):
    """The box quadrature is not converged: int_box V differs from a finer rule."""


class QuadratureCheck(NamedTuple):
    """``int_box V`` with ``nodes`` against ``finer`` nodes over some networks."""

    nodes: tuple[int, ...]
    finer: tuple[int, ...]
    max_abs_error: float
    scale: float
    rel_error: float
    rtol: float

    @property
    def converged(self) -> bool:
        return self.rel_error <= self.rtol


def finer_nodes(nodes: tuple[int, ...]) -> tuple[int, ...]:
    """The comparison rule: 1.5 x the nodes per side (at least 4 more)."""
    return tuple(n + max(4, math.ceil(n / 2)) for n in nodes)


def _float64(prior: Prior, params):
    """The prior and parameters in float64 (for checks that need x64)."""
    if getattr(prior, "dtype", "float64") != "float64":
        prior = prior.replace(dtype="float64")
    return prior, jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)


def check_quadrature(prior: Prior, interaction: Interaction, key=None, *, params=None,
                     n_draws: int = 16, rtol: float = 1e-6, warn: bool = True,
                     nodes=None) -> QuadratureCheck:
    """Compare ``int_box V`` (per unit coupling) with ``nodes`` against a finer rule.

    On ``params`` (a batch with a leading axis) or ``n_draws`` prior draws from ``key``;
    in float64. ``rel_error = max |S - S_finer| / mean |S_finer|``; warns with
    :class:`QuadratureWarning` when it exceeds ``rtol``.
    """
    nodes = interaction.nodes if nodes is None else as_nodes(nodes, interaction.box.d)
    finer = finer_nodes(nodes)
    unit = interaction.unit().potential
    with jax.enable_x64(True):
        if params is None:
            key = jax.random.PRNGKey(0) if key is None else key
            params = jax.vmap(prior.sample)(jax.random.split(key, n_draws))
        prior64, params64 = _float64(prior, params)

        def both(p):
            return (box_integral(prior64, p, unit, box_quadrature(interaction.box, nodes)),
                    box_integral(prior64, p, unit, box_quadrature(interaction.box, finer)))

        coarse, fine = jax.lax.map(both, params64)
        coarse, fine = np.asarray(coarse), np.asarray(fine)
    err = float(np.max(np.abs(coarse - fine))) if coarse.size else 0.0
    scale = float(np.mean(np.abs(fine))) if fine.size else 0.0
    rel = 0.0 if err == 0.0 else (err / scale if scale > 0 else math.inf)
    if not np.all(np.isfinite(coarse)) or not np.all(np.isfinite(fine)):
        rel = math.inf
    out = QuadratureCheck(nodes, finer, err, scale, rel, rtol)
    if warn and not out.converged:
        warnings.warn(QuadratureWarning(
            f"int_box V is not converged with nodes = {list(nodes)}: relative difference "
            f"{rel:.2g} against {list(finer)} nodes (rtol {rtol:g}); use more nodes"),
            stacklevel=2)
    return out


def suggest_nodes(prior: Prior, interaction: Interaction, key=None, *, rtol: float = 1e-6,
                  n_draws: int = 16, start=8) -> tuple[int, ...] | None:
    """The smallest ``start * 2^k`` nodes per side (k >= 0) converged to ``rtol``, or None."""
    nodes = as_nodes(start, interaction.box.d)
    while math.prod(finer_nodes(nodes)) <= MAX_NODES:
        if check_quadrature(prior, interaction, key, nodes=nodes, rtol=rtol, n_draws=n_draws,
                            warn=False).converged:
            return nodes
        nodes = tuple(2 * n for n in nodes)
    return None
