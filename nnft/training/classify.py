"""Training C-output classifiers and regressors, vmapped over seeds, with an NTK record.

:func:`train_seeds` trains ``n_seeds`` copies of one network (any object with ``init(key)``,
``apply_batch(params, x) -> (P, C)`` and ``ntk(params, x) -> (P, P)``, e.g.
:class:`~nnft.training.networks.DenseNet`) with optax's Adam on minibatches, all seeds at
once (``vmap``), one jitted call per epoch (``lax.scan`` over its minibatches). Before
training and after every epoch it records, through :func:`nnft.ntk_layers.ntk_recorder`,
the NTK's entropy, trace and eigenvalues on every probe set and the train / test loss (and
accuracy for classifiers).

Losses: ``"xent"`` (softmax cross-entropy on integer labels), ``"mse"`` (mean over points
and outputs of ``(f - y)^2``; y of shape (n,) for one output or (n, C)). Keys: seed s uses
``k_s = fold_in(key(seed), s)``; parameters from ``fold_in(k_s, 0)``, epoch e's shuffle from
``fold_in(fold_in(k_s, 1), e)``; each epoch takes ``n // batch_size`` full minibatches of a
fresh permutation (the remainder is left out of that epoch).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnft import _validate as v
from nnft.ntk_layers import ntk_recorder

LOSSES = ("xent", "mse")


class FitConfig(NamedTuple):
    """Optimiser and schedule of :func:`train_seeds`."""

    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    loss: str = "xent"
    n_seeds: int = 3
    seed: int = 0


def check_config(cfg: FitConfig, n_train: int) -> None:
    v.positive_int("epochs", cfg.epochs, minimum=0)
    v.positive_int("batch_size", cfg.batch_size)
    v.require(cfg.batch_size <= n_train, "batch_size", cfg.batch_size,
              f"at most the number of training points ({n_train})")
    v.positive("learning_rate", cfg.learning_rate)
    v.choice("loss", cfg.loss, LOSSES)
    v.positive_int("n_seeds", cfg.n_seeds)


def _targets(y, loss: str, n_out: int):
    if loss == "xent":
        return jnp.asarray(y, jnp.int32)
    y = jnp.asarray(y, jnp.float32)
    return y.reshape(y.shape[0], n_out)


def loss_and_accuracy(f, y, loss: str):
    """Mean loss of outputs ``f (P, C)`` against ``y``, and accuracy (NaN for "mse")."""
    if loss == "xent":
        value = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(f, y))
        return value, jnp.mean(jnp.argmax(f, axis=-1) == y)
    return jnp.mean((f - y) ** 2), jnp.asarray(jnp.nan, f.dtype)


METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")


def _check_data(name: str, x, y, loss: str, n_out: int):
    x = np.asarray(x)
    v.require(x.ndim == 2 and x.shape[0] >= 1, name, f"x of shape {x.shape}",
              "a non-empty (n, d) array")
    v.require(bool(np.all(np.isfinite(x))), name, "x with NaN or infinity", "finite inputs")
    v.require(len(y) == x.shape[0], name, f"{len(y)} targets for {x.shape[0]} points",
              "one target per point")
    if loss == "xent":
        y = np.asarray(y)
        v.require(bool(np.all((y >= 0) & (y < n_out))), name, "labels out of range",
                  f"integer labels 0..{n_out - 1}")


def train_seeds(net: Any, train, test, probes: dict, cfg: FitConfig = FitConfig(),
                progress=None) -> dict:
    """Train ``cfg.n_seeds`` copies of ``net``; returns numpy arrays ``(seeds, epochs + 1[,
    P])``: the recorder's ``{probe}_entropy``, ``_entropy_normalized``, ``_trace``,
    ``_trace_per_point``, ``_eigenvalues`` and :data:`METRICS` (row 0 = initialisation).

    ``train``, ``test``: ``(x, y)`` pairs (e.g. :class:`nnft.datasets.Split`); ``probes``:
    name -> points. ``progress(epoch)`` is called after each epoch when given.
    """
    x, y = train
    xt, yt = test
    check_config(cfg, len(x))
    n_out = net.outputs
    _check_data("train", x, y, cfg.loss, n_out)
    _check_data("test", xt, yt, cfg.loss, n_out)
    x, xt = jnp.asarray(x, jnp.float32), jnp.asarray(xt, jnp.float32)
    y, yt = _targets(y, cfg.loss, n_out), _targets(yt, cfg.loss, n_out)
    steps, b = len(x) // cfg.batch_size, cfg.batch_size
    opt = optax.adam(cfg.learning_rate)
    rec = ntk_recorder(net.ntk, probes, cfg.epochs + 1, METRICS)

    def batch_loss(params, xb, yb):
        return loss_and_accuracy(net.apply_batch(params, xb), yb, cfg.loss)[0]

    def record(params, state):
        tl, ta = loss_and_accuracy(net.apply_batch(params, x), y, cfg.loss)
        sl, sa = loss_and_accuracy(net.apply_batch(params, xt), yt, cfg.loss)
        return rec.update(state, params, dict(train_loss=tl, test_loss=sl,
                                              train_accuracy=ta, test_accuracy=sa))

    def one_epoch(params, opt_state, key):
        order = jax.random.permutation(key, len(x))[: steps * b].reshape(steps, b)

        def step(carry, idx):
            p, s = carry
            g = jax.grad(batch_loss)(p, x[idx], y[idx])
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), order)
        return params, opt_state

    def start(k):
        params = net.init(jax.random.fold_in(k, 0))
        return params, opt.init(params)

    def epoch_key(k, epoch):
        return jax.random.fold_in(jax.random.fold_in(k, 1), epoch)

    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(cfg.seed), s))(
        jnp.arange(cfg.n_seeds))
    params, opt_state = jax.jit(jax.vmap(start))(keys)
    rec_all = jax.jit(jax.vmap(record))
    train_all = jax.jit(jax.vmap(lambda p, s, k, e: one_epoch(p, s, epoch_key(k, e)),
                                 in_axes=(0, 0, 0, None)))
    state = rec_all(params, jax.vmap(lambda _: rec.init())(keys))
    for epoch in range(cfg.epochs):
        params, opt_state = train_all(params, opt_state, keys, epoch)
        state = jax.block_until_ready(rec_all(params, state))  # no deep async queue
        if progress is not None:
            progress(epoch + 1)
    return rec.finalize(state)


__all__ = ["LOSSES", "METRICS", "FitConfig", "check_config", "loss_and_accuracy",
           "train_seeds"]
