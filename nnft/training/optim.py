"""Optimizers and per-layer structure: which parameters train, and at what rate.

- "sgd" (``optax.sgd``); "momentum" (:func:`heavy_ball`: ``optax.sgd(eta, momentum=beta)``,
  which for a constant rate is the duality form
  ``theta_{i+1} = theta_i + beta (theta_i - theta_{i-1}) - eta grad L``, ``theta_{-1} =
  theta_0``); "adam" (``optax.adam``).
- Learning rates: ``eta = learning_rate x prior.learning_rate_scale()`` (eq. 106,
  ``gamma_0^2 N^{2d-c}``: 1 under ntk and muP, N under mean-field) times optional
  per-layer multipliers (:func:`learning_rate_scales`, applied by :func:`scale_by_tree`).
- :func:`trainable_mask` zeroes the gradients of the layers that do not train.

Layers are the top-level groups of the parameter pytree: indices of a tuple (MLP: 0 =
first, depth = readout) or keys of a dict.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from nnft import _validate as v
from nnft.priors.base import Prior

OPTIMIZERS = ("sgd", "momentum", "adam")


def heavy_ball(learning_rate, beta) -> optax.GradientTransformation:
    """Momentum GD: ``optax.sgd(learning_rate, momentum=beta)``.

    For a constant rate eta this is the duality form
    ``theta_{i+1} = theta_i + beta (theta_i - theta_{i-1}) - eta grad L(theta_i)`` with
    ``theta_{-1} = theta_0``: optax's trace ``v_{i+1} = g_i + beta v_i`` and update
    ``-eta v_{i+1}`` give ``theta_{i+1} - theta_i = beta (theta_i - theta_{i-1}) - eta g_i``.
    With a schedule ``eta_i`` (an optax schedule ``step -> eta``) optax scales the whole
    trace by the current rate: ``theta_{i+1} - theta_i = -eta_i (g_i + beta v_i)``, i.e.
    the previous step enters as ``beta (eta_i / eta_{i-1}) (theta_i - theta_{i-1})``.
    """
    return optax.sgd(learning_rate, momentum=beta)


def scale_by_tree(scales) -> optax.GradientTransformation:
    """Multiply each update leaf by the matching leaf of ``scales`` (per-layer rates)."""

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, s: u * jnp.asarray(s, u.dtype), updates, scales), state

    return optax.GradientTransformation(init, update)


def make_optimizer(name: str, learning_rate: float, *, momentum: float = 0.9,
                   scales=None) -> optax.GradientTransformation:
    """"sgd", "momentum" (:func:`heavy_ball`) or "adam" at ``learning_rate``, then the
    per-parameter ``scales`` (a pytree like the parameters, or None)."""
    v.choice("optimizer", name, OPTIMIZERS)
    v.positive("learning_rate", learning_rate)
    if name == "momentum":
        v.require(v.is_real(momentum) and 0 <= momentum < 1, "momentum",
                  momentum, "must be a number in [0, 1)")
        momentum = float(momentum)
    return optimizer_with(name, learning_rate, momentum, scales)


def optimizer_with(name: str, learning_rate, momentum=0.9,
                   scales=None) -> optax.GradientTransformation:
    """:func:`make_optimizer` without validation: ``learning_rate`` and ``momentum`` may be
    traced arrays (one model's entry of per-model hyperparameters, inside ``vmap``). The
    state's structure does not depend on their values."""
    if name == "sgd":
        opt = optax.sgd(learning_rate)
    elif name == "momentum":
        opt = heavy_ball(learning_rate, momentum)
    else:
        opt = optax.adam(learning_rate)
    return opt if scales is None else optax.chain(opt, scale_by_tree(scales))


def layer_names(params) -> list:
    """Names of the top-level groups: indices for a tuple/list, keys for a dict."""
    if isinstance(params, (tuple, list)):
        return list(range(len(params)))
    if isinstance(params, dict):
        return list(params)
    return []


def check_layers(field: str, entries, params) -> None:
    """Every entry must name a top-level group of ``params`` (a ConfigError naming ``field``)."""
    groups = layer_names(params)
    for e in entries:
        v.require(e in groups, field, list(entries),
                  "entries must be among the parameter groups " + ", ".join(map(str, groups)))


def _per_group(params, fn):
    if isinstance(params, (tuple, list)):
        return type(params)(jax.tree.map(lambda a, i=i: fn(i, a), g)
                            for i, g in enumerate(params))
    return {k: jax.tree.map(lambda a, k=k: fn(k, a), g) for k, g in params.items()}


def trainable_mask(params, trainable=None):
    """A pytree like ``params`` with 1.0 on trainable leaves, 0.0 elsewhere."""
    if trainable is None:
        return jax.tree.map(lambda a: 1.0, params)
    check_layers("trainable", trainable, params)
    return _per_group(params, lambda g, a: 1.0 if g in trainable else 0.0)


def learning_rate_scales(prior: Prior, params, *, layer_lr=None, use_prior: bool = True):
    """Per-leaf learning-rate factors: ``prior.learning_rate_scale()`` (eq. 106, where the
    prior defines it) times ``layer_lr[layer]``."""
    base = float(prior.learning_rate_scale()) if use_prior and hasattr(
        prior, "learning_rate_scale") else 1.0
    if layer_lr is None:
        return jax.tree.map(lambda a: base, params)
    groups = layer_names(params)
    v.require(len(layer_lr) == len(groups), "layer_lr", list(layer_lr),
              f"must have one entry per parameter group ({len(groups)}: "
              + ", ".join(map(str, groups)) + ")")
    lookup = dict(zip(groups, layer_lr))
    return _per_group(params, lambda g, a: base * lookup[g])
