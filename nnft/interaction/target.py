"""The deformed parameter density in unconstrained coordinates, for NUTS and numpyro.

``P_V(theta) ∝ P(theta) exp(-int_box V(phi_theta))`` (TASI eq. 135, sign corrected),
written on a flat unconstrained vector ``z`` through the prior's
:meth:`~nnft.priors.base.Prior.reparameterization` (so that samplers never leave the
support), and the same density as a numpyro model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from nnft import _validate as v
from nnft._validate import ConfigError
from nnft.interaction.action import Interaction
from nnft.interaction.box import cos_modes
from nnft.priors.base import Prior, fields
from nnft.priors.reparam import Reparameterization


def reparameterize(prior: Prior) -> Reparameterization:
    """The prior's unconstrained coordinates (:meth:`Prior.reparameterization`); a
    ConfigError naming the architecture when it has none."""
    rep = prior.reparameterization()
    if rep is None:
        raise ConfigError(f"architecture.name: got {prior.name!r}; it has no unconstrained "
                          "reparameterisation (implement Prior.reparameterization), so its "
                          "interacting theory cannot be sampled")
    return rep


class Target(NamedTuple):
    """The deformed log-density on a flat unconstrained vector ``z`` of length ``dim``.

    ``logdensity(z) = log P(theta(z)) + log|J(z)| - int_box V(phi_theta(z))`` (eq. 135,
    sign corrected); ``prior_logdensity`` without the potential; ``action(z)`` the
    potential term; ``init(key)`` a free-prior draw; ``params(z)`` the network's
    parameters; ``fields(z, points)`` the network on points ``(P, d)``.
    """

    prior: Prior
    interaction: Interaction | None
    dim: int
    logdensity: Callable
    prior_logdensity: Callable
    action: Callable
    init: Callable
    params: Callable
    unravel: Callable
    fields: Callable


def make_target(prior: Prior, interaction: Interaction | None) -> Target:
    """The log-density ``log P(theta) - int_box V(phi_theta)`` in unconstrained coordinates."""
    if interaction is not None:
        v.require(interaction.box.d == prior.input_dim, "box", list(interaction.box.lengths),
                  f"must have d = {prior.input_dim} side lengths (architecture.d)")
        if interaction.method == "exact":
            cos_modes(prior, prior.sample(jax.random.PRNGKey(0)))
    rep = reparameterize(prior)
    z0 = rep.init(jax.random.PRNGKey(0))
    flat0, unravel = ravel_pytree(z0)

    def params(z):
        return rep.constrain(unravel(z))

    def prior_logdensity(z):
        return rep.log_density(unravel(z))

    def action(z):
        if interaction is None or interaction.potential.is_free:
            return jnp.zeros((), z.dtype)
        return interaction.action(prior, params(z)).astype(z.dtype)

    def logdensity(z):
        return prior_logdensity(z) - action(z)

    def init(key):
        return ravel_pytree(rep.init(key))[0]

    def on_points(z, points):
        return fields(prior, params(z), jnp.asarray(points, z.dtype))

    return Target(prior, interaction, int(flat0.size), logdensity, prior_logdensity, action,
                  init, params, unravel, on_points)


def site_names(target: Target) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, shape)`` of each unconstrained leaf, named by its path (``z_w0``, ``z_0_W``)."""
    z0 = target.unravel(jnp.zeros(target.dim))
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(z0)[0]:
        parts = [str(getattr(p, "key", getattr(p, "idx", p))) for p in path]
        out.append(("z_" + "_".join(parts), tuple(leaf.shape)))
    return out


def numpyro_model(target: Target, points=None):
    """The same density as a numpyro model: ``numpyro.infer.MCMC(NUTS(model))`` runs it.

    One improper-flat site per unconstrained leaf (``z_w0``, ``z_b0``, ``z_w1``, ...)
    and ``numpyro.factor`` with :attr:`Target.logdensity`; with ``points``, the field
    on them is recorded as the deterministic site ``phi``.
    """
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    sites = site_names(target)
    pts = None if points is None else np.asarray(points, dtype=np.float64)

    def model():
        leaves = [numpyro.sample(name, dist.ImproperUniform(constraints.real, (), shape))
                  for name, shape in sites]
        z = jnp.concatenate([jnp.ravel(x) for x in leaves])
        numpyro.factor("log_density", target.logdensity(z))
        if pts is not None:
            numpyro.deterministic("phi", target.fields(z, pts))

    return model


def flatten_sites(target: Target, samples: dict) -> np.ndarray:
    """numpyro samples ``{site: (..., *shape)}`` -> flat ``(..., dim)`` (the order of
    :func:`make_target`)."""
    parts = []
    for name, shape in site_names(target):
        x = np.asarray(samples[name])
        parts.append(x.reshape(x.shape[: x.ndim - len(shape)] + (-1,)))
    return np.concatenate(parts, axis=-1)


def unflatten_sites(target: Target, z) -> dict:
    """Flat ``(..., dim)`` -> ``{site: (..., *shape)}`` (numpyro init values)."""
    z = np.asarray(z)
    out, start = {}, 0
    for name, shape in site_names(target):
        size = math.prod(shape)
        out[name] = z[..., start:start + size].reshape(z.shape[:-1] + shape)
        start += size
    return out
