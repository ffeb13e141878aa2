"""The vmapped training of S models: :func:`make_trainer` gives jitted ``init`` / ``run`` /
``observe`` for one prior, data set and config.

- Model ``s`` starts from ``prior.sample(fold_in(key_init, s))`` and reads the data in its
  own order (the minibatch permutation of epoch e is from ``fold_in(fold_in(key_data, s),
  e)``), with ``key_init, key_data = split(key)``. The S models are one ``vmap``, split
  over the devices of a mesh (axis "model") when there are several and they divide S.
- ``run(state, n)`` takes n steps in one jitted ``lax.fori_loop`` with a traced trip count
  (``scan`` would need a static length and recompile for every gap of a log-spaced
  schedule).
- Divergence: a model whose loss, parameters or optimizer state become non-finite is
  frozen at its last finite parameters and its step is recorded in ``diverged_at``; the
  others carry on.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnft import _validate as v
from nnft.engine.mesh import data_mesh, replicated, sharded
from nnft.priors.base import Prior, fields
from nnft.training.config import TrainingConfig
from nnft.training.data import Data
from nnft.training.losses import scaled_loss
from nnft.training.observe import make_observer
from nnft.training.optim import (
    check_layers,
    learning_rate_scales,
    optimizer_with,
    trainable_mask,
)


class TrainState(NamedTuple):
    """Stacked over models (axis 0): parameters, optimizer state, data keys (raw key
    data), ``diverged_at`` (step of the first non-finite loss, -1 if none); the step count
    (a scalar); with ``config.trace``, ``trace = {"f": (S, steps + 1, n), "alpha": (S,
    steps + 1, n)}``: the outputs on the training points and the diagonal of the
    trained-parameter NTK there at every step (None otherwise)."""

    params: Any
    opt_state: Any
    keys: jax.Array
    step: jax.Array
    diverged_at: jax.Array
    trace: Any = None


class StepInfo(NamedTuple):
    loss: jax.Array  # (S,) the last step's batch loss


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    """``init(key) -> TrainState``; ``run(state, n_steps) -> (state, StepInfo)`` (donates
    ``state``); ``observe(params) -> dict`` of per-model observables
    (:mod:`nnft.training.observe`). All jitted; built once per (prior, data, config,
    devices) and cached, so repeated runs reuse the compiled code."""

    prior: Prior
    config: TrainingConfig
    data: Data
    init: Any
    run: Any
    observe: Any
    optimizer: optax.GradientTransformation


def training_work(prior: Prior, data: Data, config: TrainingConfig) -> dict:
    """A JSON-able description of everything a training run depends on."""
    return {"source": "training", "prior": prior.hyperparameters(),
            "config": config.to_dict(),
            "data": [np.asarray(a).tolist() for a in data if a is not None]}


def _model_order(key, step, n: int, batch: int):
    """Indices of the batch of one model at ``step``: a fresh permutation per epoch."""
    per_epoch = n // batch
    epoch, pos = step // per_epoch, step % per_epoch
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    return jax.lax.dynamic_slice(perm, (pos * batch,), (batch,))


def _all_finite(tree):
    checks = [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(a).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


_TRAINERS: dict = {}


def make_trainer(prior: Prior, data: Data, config: TrainingConfig, devices=None) -> Trainer:
    """The jitted init / run / observe functions for one prior, data set and config (cached)."""
    devs = tuple(jax.devices() if devices is None else devices)
    key = (json.dumps(training_work(prior, data, config), sort_keys=True, default=str), devs)
    if key not in _TRAINERS:
        if len(_TRAINERS) >= 16:
            _TRAINERS.pop(next(iter(_TRAINERS)))
        _TRAINERS[key] = _build_trainer(prior, data, config, devs)
    return _TRAINERS[key]


def _check(prior: Prior, data: Data, config: TrainingConfig):
    """Validate what depends on the prior and the data; the parameters' shape."""
    n = data.x.shape[0]
    v.require(config.batch_size is None or config.batch_size <= n, "batch_size",
              config.batch_size, f"must be at most the number of training points ({n})")
    if config.loss == "cross-entropy":
        v.require(bool(np.all((data.y >= 0) & (data.y <= 1))), "y", "labels outside [0, 1]",
                  "cross-entropy needs labels in [0, 1]")
    v.require(not config.trace or config.batch_size in (None, n), "trace", config.trace,
              "needs full-batch training (batch_size None or the number of training points)")
    example = jax.eval_shape(prior.sample, jax.random.key(0))
    if config.trainable is not None:
        check_layers("trainable", config.trainable, example)
    for layer in config.singular_values:
        check_layers("singular_values", [layer], example)
    return example


def _hyperparameters(config: TrainingConfig, dt) -> tuple:
    """``(eta, beta, mass2, f0)``, each ``(n_models,)`` (per-model hyperparameters)."""
    return tuple(jnp.asarray(config.per_model(k), dt)
                 for k in ("learning_rate", "momentum", "mass2", "f0"))


def _diagonal_ntk(jac, weights):
    """``sum_p w_p (df_j/dtheta_p)^2`` per point j from per-point gradients ``jac``."""
    return sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) * w for g, w in
               zip(jax.tree.leaves(jac), jax.tree.leaves(weights)))


def _model_step(prior, data, config, mask, scales, loss_fn, dt):
    """One optimizer step of one model, ``(params, opt_state, key, dead, step, hyper) ->
    (params, opt_state, newly_diverged, loss, (f, alpha))``; a dead or diverging model keeps
    its parameters. ``hyper = (eta, beta, mass2, f0)`` of this model; ``(f, alpha)`` on the
    training points before the step (with ``config.trace``, else None)."""
    n = data.x.shape[0]
    batch = n if config.batch_size is None else config.batch_size
    x, y = jnp.asarray(data.x, dt), jnp.asarray(data.y, dt)
    full = batch == n
    weights = jax.tree.map(lambda m, sc: m * sc, mask, scales)

    def batch_loss(params, xb, yb, mass2):
        return jnp.mean(loss_fn(fields(prior, params, xb), yb, mass2))

    def traced_grads(params, mass2, target):
        """Loss gradient through per-point gradients: also gives f and alpha."""
        f, vjp = jax.vjp(lambda p: fields(prior, p, x), params)
        jac = jax.vmap(vjp)(jnp.eye(n, dtype=f.dtype))[0]
        dl = jax.vmap(jax.grad(loss_fn), in_axes=(0, 0, None))(f, target, mass2) / n
        grads = jax.tree.map(lambda j: jnp.tensordot(dl, j, axes=1), jac)
        return jnp.mean(loss_fn(f, target, mass2)), grads, (f, _diagonal_ntk(jac, weights))

    def model_step(params, opt_state, key, dead, step, hyper):
        eta, beta, mass2, f0 = hyper
        if config.trace:
            loss, grads, seen = traced_grads(params, mass2, y + f0)
        else:
            seen = None
            if full:
                xb, yb = x, y
            else:
                idx = _model_order(jax.random.wrap_key_data(key), step, n, batch)
                xb, yb = x[idx], y[idx]
            loss, grads = jax.value_and_grad(batch_loss)(params, xb, yb + f0, mass2)
        grads = jax.tree.map(lambda g, m: g * jnp.asarray(m, g.dtype), grads, mask)
        opt = optimizer_with(config.optimizer, eta, beta, scales)
        updates, new_opt = opt.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        ok = jnp.isfinite(loss) & _all_finite(new_params) & _all_finite(new_opt)
        keep = dead | ~ok
        params = jax.tree.map(lambda o, u: jnp.where(keep, o, u), params, new_params)
        opt_state = jax.tree.map(lambda o, u: jnp.where(keep, o, u), opt_state, new_opt)
        return params, opt_state, ~dead & ~ok, loss, seen

    return model_step, traced_grads


def _build_trainer(prior: Prior, data: Data, config: TrainingConfig, devs) -> Trainer:
    dt = jnp.dtype(getattr(prior, "dtype", "float32"))
    example = _check(prior, data, config)
    mask = trainable_mask(example, config.trainable)
    scales = learning_rate_scales(prior, example, layer_lr=config.layer_lr,
                                  use_prior=config.scale_learning_rate)
    hyper = _hyperparameters(config, dt)
    opt = optimizer_with(config.optimizer, hyper[0][0], hyper[1][0], scales)  # the state
    loss_fn = scaled_loss(config.loss, power=config.loss_power)
    s, n = config.n_models, data.x.shape[0]
    step_fn, traced = _model_step(prior, data, config, mask, scales, loss_fn, dt)
    vstep = jax.vmap(step_fn, in_axes=(0, 0, 0, 0, None, 0))
    y = jnp.asarray(data.y, dt)
    vseen = jax.vmap(lambda p, m2, f0: traced(p, m2, y + f0)[2])

    def init(key):
        k_init, k_data = jax.random.split(key)
        idx = jnp.arange(s)
        params = jax.vmap(lambda i: prior.sample(jax.random.fold_in(k_init, i)))(idx)
        opt_state = jax.vmap(opt.init)(params)
        keys = jax.random.key_data(jax.vmap(lambda i: jax.random.fold_in(k_data, i))(idx))
        trace = None
        if config.trace:
            trace = {k: jnp.full((s, config.steps + 1, n), jnp.nan, dt) for k in ("f", "alpha")}
        return TrainState(params, opt_state, keys, jnp.zeros((), jnp.int32),
                          -jnp.ones((s,), jnp.int32), trace)

    if len(devs) > 1 and s % len(devs) == 0:  # models split over the devices
        mesh = data_mesh("model", devs)
        split, whole = sharded(mesh), replicated(mesh)
        jit_init = jax.jit(init, out_shardings=TrainState(
            split, split, split, whole, split, split if config.trace else None))
    else:
        jit_init = jax.jit(init)

    def record(trace, at, seen):
        if trace is None:
            return None
        return {k: jax.lax.dynamic_update_slice_in_dim(trace[k], val[:, None], at, axis=1)
                for k, val in zip(("f", "alpha"), seen)}

    def run(state: TrainState, n_steps):
        def body(i, carry):
            st, _ = carry
            dead = st.diverged_at >= 0
            params, opt_state, newly, loss, seen = vstep(st.params, st.opt_state, st.keys,
                                                         dead, st.step, hyper)
            div = jnp.where(newly, st.step, st.diverged_at)
            trace = record(st.trace, st.step, seen)
            return TrainState(params, opt_state, st.keys, st.step + 1, div, trace), loss

        loss0 = jnp.zeros((s,), dt)
        st, loss = jax.lax.fori_loop(0, n_steps, body, (state, loss0))
        if config.trace:  # the state reached so far (overwritten by the next step)
            st = st._replace(trace=record(st.trace, st.step, vseen(st.params, *hyper[2:])))
        return st, StepInfo(loss)

    m2, f0 = hyper[2][:, None], hyper[3][:, None]
    observe = make_observer(prior, data, config, lambda f, yy: loss_fn(f, yy + f0, m2), dt)
    return Trainer(prior, config, data, jit_init, jax.jit(run, donate_argnums=0),
                   jax.jit(observe), opt)
