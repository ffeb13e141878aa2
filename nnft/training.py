"""Training ensembles: S networks from a prior trained at once, observed over time.

The flow (DESIGN.md): prior -> :func:`train_ensemble` (vmapped optax training) -> observers
at a schedule of measurement times -> the streaming estimator -> an xarray Dataset.

- **Models**: model ``s`` starts from ``prior.sample(fold_in(key_init, s))`` and reads the
  data in its own order (minibatch permutation of epoch e from
  ``fold_in(fold_in(key_data, s), e)``); the S models are one ``vmap``, split over the devices
  of a ``Mesh`` (axis "model") when there are several.
- **Loss** (mean over the batch B): "mse" ``1/|B| sum 1/2 (f - y)^2``; "power"
  ``1/|B| sum m^2/2 (f - y)^n`` (n even, the duality paper's ``m^2/2 (f - f0)^n`` with
  f0 = y); "cross-entropy" (binary, labels in [0, 1], f the logit)
  ``1/|B| sum [log(1 + e^f) - y f]``. The 1/|B| is why full-batch gradient flow on "mse" has
  rate ``eta/n`` in :mod:`nnft.theory.frozen_ntk`.
- **Optimizers** (optax): "sgd"; "momentum", the duality form
  ``theta_{i+1} = theta_i + beta (theta_i - theta_{i-1}) - eta grad L`` (:func:`heavy_ball`;
  with a constant rate it is ``optax.sgd(eta, momentum=beta)``, whose trace
  ``v_{i+1} = g_i + beta v_i``, ``theta_{i+1} = theta_i - eta v_{i+1}`` gives the same
  recursion with ``theta_0 - theta_{-1} = 0``); "adam".
- **Learning rates**: ``eta = learning_rate x prior.learning_rate_scale()`` (eq. 106,
  ``gamma_0^2 N^{2d-c}``: 1 under ntk and muP, N under mean-field; the abc family has one c
  for every layer, the layers' a and b exponents sitting in the forward multipliers) times
  optional per-layer multipliers ``layer_lr``. ``trainable`` restricts training to some
  layers (e.g. only the middle matrix): the other gradients are zeroed.
- **Observers** at the measurement steps (always including step 0): the fields on the test
  points (G1, G2, G4c with jackknife errors from :func:`nnft.moment_estimator`, plus the
  per-model values), train/test losses per model, the empirical NTK on a probe set and its
  spectrum statistics (:mod:`nnft.ntk`) and relative change since step 0, singular values of
  chosen weight matrices, and for MLPs the rms of the last hidden layer and of its change
  since step 0 (the coordinate check).
- **Between measurements** the steps run in one jitted ``lax.fori_loop`` with a traced trip
  count (``scan`` would need a static length and recompile for every gap of a log-spaced
  schedule).
- **Divergence**: a model whose loss or parameters become non-finite is frozen at its last
  finite parameters, its step is recorded in ``diverged_at`` and it is masked out of every
  later estimate; the other models carry on.
- **Checkpoints**: after each measurement the state and the records so far are written
  atomically to ``training-checkpoint.pkl``; ``resume=True`` continues from the last one
  (and refuses a checkpoint made for other work).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnft import _validate as v
from nnft._progress import progress_bar, width_label
from nnft._validate import ConfigError
from nnft.ensemble import RunInterrupted
from nnft.estimators import moment_estimator
from nnft.ntk import batched_empirical_ntk, spectrum_stats
from nnft.priors.base import Prior, as_points, fields

OPTIMIZERS = ("sgd", "momentum", "adam")
LOSSES = ("mse", "power", "cross-entropy")
DATASETS = ("sine",)
CHECKPOINT = "training-checkpoint.pkl"


# ---------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------
class HeavyBallState(NamedTuple):
    """The step count and the previous update ``theta_i - theta_{i-1}`` (zero at the start)."""

    count: jax.Array
    delta: Any


def heavy_ball(learning_rate, beta: float) -> optax.GradientTransformation:
    """Momentum GD in the duality form: update ``beta (theta_i - theta_{i-1}) - eta_i g_i``.

    ``learning_rate`` is a number or an optax schedule ``step -> eta``. Equal to
    ``optax.sgd(eta, momentum=beta)`` for a constant eta (see the module docstring).
    """

    def init(params):
        return HeavyBallState(jnp.zeros((), jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        eta = learning_rate(state.count) if callable(learning_rate) else learning_rate
        upd = jax.tree.map(lambda d, g: beta * d - eta * g, state.delta, grads)
        return upd, HeavyBallState(state.count + 1, upd)

    return optax.GradientTransformation(init, update)


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
    if name == "sgd":
        opt = optax.sgd(learning_rate)
    elif name == "momentum":
        v.require(isinstance(momentum, (int, float)) and 0 <= momentum < 1, "momentum",
                  momentum, "must be a number in [0, 1)")
        opt = heavy_ball(learning_rate, float(momentum))
    else:
        opt = optax.adam(learning_rate)
    return opt if scales is None else optax.chain(opt, scale_by_tree(scales))


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------
def pointwise_loss(name: str, *, power: int = 2, mass2: float = 1.0):
    """``l(f, y)`` per example; the training loss is its mean over the batch."""
    v.choice("loss", name, LOSSES)
    if name == "mse":
        return lambda f, y: 0.5 * (f - y) ** 2
    if name == "power":
        v.require(isinstance(power, int) and not isinstance(power, bool) and power >= 2
                  and power % 2 == 0, "loss_power", power, "must be an even integer >= 2")
        v.positive("mass2", mass2)
        return lambda f, y: 0.5 * mass2 * (f - y) ** power
    return lambda f, y: jax.nn.softplus(f) - y * f


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
class Data(NamedTuple):
    """Training set ``x (n, d)``, ``y (n,)``; test points ``x_test (P, d)`` with targets
    ``y_test (P,)`` or None; NTK probe points ``probe (Q, d)``."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None
    probe: np.ndarray


def sine_target(x: np.ndarray) -> np.ndarray:
    """The built-in regression target ``sin(pi s / 2)``, ``s = sum_k x_k / sqrt(d)``."""
    x = np.asarray(x, np.float64)
    return np.sin(0.5 * np.pi * x.sum(axis=1) / math.sqrt(x.shape[1]))


def regression_data(seed: int, n_train: int, d: int = 1, *, noise: float = 0.0,
                    x_test=None, probe=None, extent: float = 2.0) -> Data:
    """The built-in "sine" set: ``x ~ Unif[-extent, extent]^d`` (sorted for d = 1),
    ``y = sine_target(x) + noise * N(0, 1)``, all from ``seed``; test targets noiseless."""
    v.positive_int("n_train", n_train)
    v.non_negative("noise", noise)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-extent, extent, size=(n_train, d))
    if d == 1:
        x = np.sort(x, axis=0)
    y = sine_target(x) + noise * rng.standard_normal(n_train)
    x_test = x[: min(8, n_train)] if x_test is None else as_points(x_test, d)
    return make_data(x, y, x_test, sine_target(x_test), probe)


def make_data(x, y, x_test, y_test=None, probe=None, *, prefix: str = "") -> Data:
    """Validate a data set: matching shapes, finite values (errors name ``prefix + field``)."""
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim == 1:
        xa = xa[:, None]
    ya = np.asarray(y, dtype=np.float64)
    v.require(xa.ndim == 2 and xa.shape[0] >= 1, f"{prefix}x", np.shape(x),
              "must be a non-empty list of numbers or of d-vectors")
    v.require(ya.ndim == 1 and ya.shape[0] == xa.shape[0], f"{prefix}y", np.shape(y),
              f"must be a list of {xa.shape[0]} numbers, one per row of {prefix}x "
              f"(x has shape {xa.shape})")
    v.require(bool(np.all(np.isfinite(xa))), f"{prefix}x", "non-finite entries",
              "must be finite numbers (no NaN or inf)")
    v.require(bool(np.all(np.isfinite(ya))), f"{prefix}y", "non-finite entries",
              "must be finite numbers (no NaN or inf)")
    d = xa.shape[1]
    xt = as_points(x_test, d)
    yt = None
    if y_test is not None:
        yt = np.asarray(y_test, dtype=np.float64)
        v.require(yt.shape == (xt.shape[0],), f"{prefix}y_test", np.shape(y_test),
                  f"must be a list of {xt.shape[0]} numbers, one per test point")
        v.require(bool(np.all(np.isfinite(yt))), f"{prefix}y_test", "non-finite entries",
                  "must be finite numbers (no NaN or inf)")
    pr = xa[: min(16, xa.shape[0])] if probe is None else as_points(probe, d)
    return Data(xa, ya, xt, yt, pr)


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------
def log_times(steps: int, n: int) -> tuple[int, ...]:
    """0 and about ``n - 1`` log-spaced step counts from 1 to ``steps`` (distinct, sorted)."""
    v.positive_int("steps", steps)
    v.positive_int("n_measure", n, minimum=2)
    grid = np.unique(np.round(np.logspace(0, math.log10(steps), n - 1)).astype(int))
    return tuple(sorted({0, *map(int, grid), steps}))


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How an ensemble is trained and observed (see the module docstring).

    ``measure``: step counts at which the observers record (0 is added; default
    :func:`log_times` with ``n_measure``); ``batch_size``: None for full batch;
    ``trainable`` / ``layer_lr``: layer indices (MLP: 0 = first, depth = readout) or
    top-level parameter names, and per-layer learning-rate multipliers; ``scale_learning_rate``:
    multiply by ``prior.learning_rate_scale()`` where the prior has one; ``singular_values``:
    layers whose weight matrices' singular values are recorded; ``ntk``: record the probe-set
    NTK; ``n_batches``: jackknife batches (model s in batch s mod n_batches); ``max_order``:
    highest correlator order on the test points.
    """

    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    steps: int = 1000
    measure: tuple[int, ...] | None = None
    n_measure: int = 10
    batch_size: int | None = None
    loss: str = "mse"
    loss_power: int = 2
    mass2: float = 1.0
    n_models: int = 256
    seed: int = 0
    trainable: tuple | None = None
    layer_lr: tuple[float, ...] | None = None
    scale_learning_rate: bool = True
    singular_values: tuple = ()
    ntk: bool = True
    n_batches: int = 32
    max_order: int = 4

    def __post_init__(self):
        v.choice("optimizer", self.optimizer, OPTIMIZERS)
        v.positive("learning_rate", self.learning_rate)
        v.require(isinstance(self.momentum, (int, float)) and not isinstance(self.momentum, bool)
                  and 0 <= self.momentum < 1, "momentum", self.momentum,
                  "must be a number in [0, 1)")
        v.positive_int("steps", self.steps)
        v.positive_int("n_measure", self.n_measure, minimum=2)
        if self.measure is not None:
            m = self.measure
            v.require(isinstance(m, (list, tuple)) and len(m) >= 1, "measure", m,
                      "must be a non-empty list of step counts")
            for i, t in enumerate(m):
                v.positive_int(f"measure[{i}]", t, minimum=0)
                v.require(t <= self.steps, f"measure[{i}]", t,
                          f"must be at most steps = {self.steps} (the last step); "
                          "measurement times beyond the end of training are never reached")
            object.__setattr__(self, "measure", tuple(sorted({0, *m})))
        if self.batch_size is not None:
            v.positive_int("batch_size", self.batch_size)
        v.choice("loss", self.loss, LOSSES)
        pointwise_loss(self.loss, power=self.loss_power, mass2=self.mass2)  # validates
        v.positive_int("n_models", self.n_models, minimum=2)
        v.positive_int("seed", self.seed, minimum=0)
        for name in ("trainable", "singular_values"):
            val = getattr(self, name)
            if val is not None:
                v.require(isinstance(val, (list, tuple)) and all(
                    (isinstance(e, int) and not isinstance(e, bool) and e >= 0)
                    or isinstance(e, str) for e in val), name, val,
                    "must be a list of layer indices (integers >= 0) or parameter names")
                object.__setattr__(self, name, tuple(val))
        v.require(self.trainable is None or len(self.trainable) >= 1, "trainable",
                  self.trainable, "must name at least one layer")
        if self.layer_lr is not None:
            v.require(isinstance(self.layer_lr, (list, tuple)) and len(self.layer_lr) >= 1,
                      "layer_lr", self.layer_lr, "must be a list of numbers > 0, one per layer")
            for i, s in enumerate(self.layer_lr):
                v.positive(f"layer_lr[{i}]", s)
            object.__setattr__(self, "layer_lr", tuple(float(s) for s in self.layer_lr))
        v.require(isinstance(self.scale_learning_rate, bool), "scale_learning_rate",
                  self.scale_learning_rate, "must be true or false")
        v.require(isinstance(self.ntk, bool), "ntk", self.ntk, "must be true or false")
        v.positive_int("n_batches", self.n_batches, minimum=2)
        v.require(self.n_batches <= self.n_models, "n_batches", self.n_batches,
                  f"must be at most n_models = {self.n_models}")
        v.require(isinstance(self.max_order, int) and 1 <= self.max_order <= 4, "max_order",
                  self.max_order, "must be an integer from 1 to 4")
        object.__setattr__(self, "learning_rate", float(self.learning_rate))
        object.__setattr__(self, "momentum", float(self.momentum))
        object.__setattr__(self, "mass2", float(self.mass2))

    @property
    def times(self) -> tuple[int, ...]:
        return self.measure if self.measure is not None else log_times(self.steps,
                                                                       self.n_measure)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["times"] = list(self.times)
        return {k: (list(val) if isinstance(val, tuple) else val) for k, val in out.items()}


# ---------------------------------------------------------------------------
# per-layer structure: trainable masks and learning-rate scales
# ---------------------------------------------------------------------------
def _layers(params) -> list:
    """Names of the top-level groups: indices for a tuple/list, keys for a dict."""
    if isinstance(params, (tuple, list)):
        return list(range(len(params)))
    if isinstance(params, dict):
        return list(params)
    return []


def _check_layers(field: str, entries, params) -> None:
    groups = _layers(params)
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
    _check_layers("trainable", trainable, params)
    return _per_group(params, lambda g, a: 1.0 if g in trainable else 0.0)


def learning_rate_scales(prior: Prior, params, *, layer_lr=None, use_prior: bool = True):
    """Per-leaf learning-rate factors: ``prior.learning_rate_scale()`` (eq. 106, where the
    prior defines it) times ``layer_lr[layer]``."""
    base = float(prior.learning_rate_scale()) if use_prior and hasattr(
        prior, "learning_rate_scale") else 1.0
    if layer_lr is None:
        return jax.tree.map(lambda a: base, params)
    groups = _layers(params)
    v.require(len(layer_lr) == len(groups), "layer_lr", list(layer_lr),
              f"must have one entry per parameter group ({len(groups)}: "
              + ", ".join(map(str, groups)) + ")")
    lookup = dict(zip(groups, layer_lr))
    return _per_group(params, lambda g, a: base * lookup[g])


def _weight(prior, layer_params, layer):
    """The effective weight matrix of a layer (multiplier applied, for MLPs)."""
    w = layer_params["W"] if isinstance(layer_params, dict) and "W" in layer_params \
        else layer_params
    if hasattr(prior, "layer_scales") and isinstance(layer, int):
        w = w * prior.layer_scales()[layer].w_mult
    return w


def _hidden(prior, params, x):
    """Last hidden layer's activations of an MLP at one input, ``(N,)`` (None otherwise)."""
    from nnft.priors.mlp import ACTIVATIONS

    act = ACTIVATIONS[prior.activation]
    h = jnp.asarray(x, prior.dtype)
    scales = prior.layer_scales()
    for layer, sc in zip(params[:-1], scales[:-1]):
        z = sc.w_mult * (layer["W"] @ h)
        if prior.bias:
            z = z + sc.b_mult * layer["b"]
        h = act(z)
    return h


# ---------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------
class TrainState(NamedTuple):
    """Stacked over models (axis 0): parameters, optimizer state, data keys (raw key data);
    the step
    count; ``diverged_at`` (step of the first non-finite loss, -1 if none)."""

    params: Any
    opt_state: Any
    keys: jax.Array
    step: jax.Array
    diverged_at: jax.Array


class StepInfo(NamedTuple):
    loss: jax.Array  # (S,) the last step's batch loss


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    """``init(key) -> TrainState``; ``run(state, n_steps) -> (state, info)``;
    ``observe(params) -> dict`` of per-model observables (all jitted). Built once per
    (prior, data, config, devices) and cached, so repeated runs reuse the compiled code."""

    prior: Prior
    config: TrainingConfig
    data: Data
    init: Any
    run: Any
    observe: Any
    optimizer: optax.GradientTransformation


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
    key = (_fingerprint(prior, data, config), devs)
    if key not in _TRAINERS:
        if len(_TRAINERS) >= 16:
            _TRAINERS.pop(next(iter(_TRAINERS)))
        _TRAINERS[key] = _build_trainer(prior, data, config, devs)
    return _TRAINERS[key]


def _build_trainer(prior: Prior, data: Data, config: TrainingConfig, devs) -> Trainer:
    dt = jnp.dtype(getattr(prior, "dtype", "float32"))
    n = data.x.shape[0]
    batch = n if config.batch_size is None else config.batch_size
    v.require(batch <= n, "batch_size", config.batch_size,
              f"must be at most the number of training points ({n})")
    if config.loss == "cross-entropy":
        v.require(bool(np.all((data.y >= 0) & (data.y <= 1))), "y", "labels outside [0, 1]",
                  "cross-entropy needs labels in [0, 1]")
    example = jax.eval_shape(prior.sample, jax.random.key(0))
    if config.trainable is not None:
        _check_layers("trainable", config.trainable, example)
    for layer in config.singular_values:
        _check_layers("singular_values", [layer], example)
    mask = trainable_mask(example, config.trainable)
    scales = learning_rate_scales(prior, example, layer_lr=config.layer_lr,
                                  use_prior=config.scale_learning_rate)
    opt = make_optimizer(config.optimizer, config.learning_rate, momentum=config.momentum,
                         scales=scales)
    lfn = pointwise_loss(config.loss, power=config.loss_power, mass2=config.mass2)
    x = jnp.asarray(data.x, dt)
    y = jnp.asarray(data.y, dt)
    x_test = jnp.asarray(data.x_test, dt)
    y_test = None if data.y_test is None else jnp.asarray(data.y_test, dt)
    probe = jnp.asarray(data.probe, dt)
    full = config.batch_size is None or batch == n
    s = config.n_models

    sharding = None
    if len(devs) > 1 and s % len(devs) == 0:
        from jax.sharding import Mesh, NamedSharding
        from jax.sharding import PartitionSpec as Spec

        sharding = NamedSharding(Mesh(np.array(devs), ("model",)), Spec("model"))

    def batch_loss(params, xb, yb):
        return jnp.mean(lfn(fields(prior, params, xb), yb))

    def model_step(params, opt_state, key, dead, step):
        if full:
            xb, yb = x, y
        else:
            idx = _model_order(jax.random.wrap_key_data(key), step, n, batch)
            xb, yb = x[idx], y[idx]
        loss, grads = jax.value_and_grad(batch_loss)(params, xb, yb)
        grads = jax.tree.map(lambda g, m: g * jnp.asarray(m, g.dtype), grads, mask)
        updates, new_opt = opt.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        ok = jnp.isfinite(loss) & _all_finite(new_params) & _all_finite(new_opt)
        keep = dead | ~ok
        params = jax.tree.map(lambda o, u: jnp.where(keep, o, u), params, new_params)
        opt_state = jax.tree.map(lambda o, u: jnp.where(keep, o, u), opt_state, new_opt)
        return params, opt_state, ~dead & ~ok, loss

    vstep = jax.vmap(model_step, in_axes=(0, 0, 0, 0, None))

    def init(key):
        k_init, k_data = jax.random.split(key)
        idx = jnp.arange(s)
        params = jax.vmap(lambda i: prior.sample(jax.random.fold_in(k_init, i)))(idx)
        opt_state = jax.vmap(opt.init)(params)
        keys = jax.random.key_data(jax.vmap(lambda i: jax.random.fold_in(k_data, i))(idx))
        return TrainState(params, opt_state, keys, jnp.zeros((), jnp.int32),
                          -jnp.ones((s,), jnp.int32))

    jit_init = jax.jit(init)

    def sharded_init(key):
        """The state, split over the devices along the model axis (several devices)."""
        state = jit_init(key)
        if sharding is None:
            return state
        return state._replace(**{f: jax.device_put(getattr(state, f), sharding)
                                 for f in ("params", "opt_state", "keys", "diverged_at")})

    def run(state: TrainState, n_steps):
        def body(i, carry):
            st, _ = carry
            dead = st.diverged_at >= 0
            params, opt_state, newly, loss = vstep(st.params, st.opt_state, st.keys, dead,
                                                   st.step)
            div = jnp.where(newly, st.step, st.diverged_at)
            return TrainState(params, opt_state, st.keys, st.step + 1, div), loss

        loss0 = jnp.zeros((s,), dt)
        st, loss = jax.lax.fori_loop(0, n_steps, body, (state, loss0))
        return st, StepInfo(loss)

    is_mlp = hasattr(prior, "layer_scales") and hasattr(prior, "activation")

    def observe(params):
        f_test = jax.vmap(lambda p: fields(prior, p, x_test))(params)
        f_train = jax.vmap(lambda p: fields(prior, p, x))(params)
        out = {"f": f_test, "f_train": f_train,
               "train_loss": jnp.mean(lfn(f_train, y[None]), axis=1)}
        if y_test is not None:
            out["test_loss"] = jnp.mean(lfn(f_test, y_test[None]), axis=1)
        if config.ntk:
            theta = batched_empirical_ntk(prior.apply, params, probe)
            st = spectrum_stats(theta)
            out.update(ntk=theta, ntk_eigenvalues=st.eigenvalues, ntk_trace=st.trace,
                       ntk_entropy=st.entropy, ntk_effective_rank=st.effective_rank)
        for layer in config.singular_values:
            w = _weight(prior, params[layer], layer)
            w = w.reshape(w.shape[0], w.shape[1], -1) if w.ndim >= 3 else w[:, None, :]
            out[f"sv_{layer}"] = jnp.linalg.svd(w, compute_uv=False)
        if is_mlp:
            h = jax.vmap(lambda p: jax.vmap(lambda xx: _hidden(prior, p, xx))(x_test))(params)
            out["hidden"] = h
            out["feature_rms"] = jnp.sqrt(jnp.mean(h * h, axis=(1, 2)))
        return out

    return Trainer(prior, config, data, sharded_init, jax.jit(run, donate_argnums=0),
                   jax.jit(observe), opt)


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------
#: per-model observables stored over time (name -> extra dims after (time, model))
_PER_MODEL = {
    "f": ("point",), "f_train": ("train",), "train_loss": (), "test_loss": (),
    "ntk_eigenvalues": ("eig",), "ntk_trace": (), "ntk_entropy": (),
    "ntk_effective_rank": (), "ntk_rel_change": (), "feature_rms": (),
    "feature_change_rms": (),
}


@dataclasses.dataclass
class TrainingResult:
    """``dataset``: the xarray Dataset (dims time, model, point, ...); ``diverged``: model
    index -> step of divergence; ``seconds``: wall time of the training."""

    dataset: Any
    diverged: dict
    seconds: float
    theory: Any = None

    def __getitem__(self, name):
        return self.dataset[name]


def _fingerprint(prior, data, config) -> str:
    return json.dumps({"prior": prior.hyperparameters(), "config": config.to_dict(),
                       "data": [np.asarray(a).tolist() for a in data if a is not None]},
                      sort_keys=True, default=str)


def _host(tree):
    return jax.tree.map(lambda a: np.asarray(jax.device_get(a)), tree)


def _relative_change_np(theta, theta0):
    """``||Theta_t - Theta_0||_F / ||Theta_0||_F`` per model (float64, on the host)."""
    theta, theta0 = np.asarray(theta, np.float64), np.asarray(theta0, np.float64)
    return (np.sqrt(np.sum((theta - theta0) ** 2, axis=(-2, -1)))
            / np.sqrt(np.sum(theta0**2, axis=(-2, -1))))


def _save(path: Path, payload: dict) -> None:
    from nnft.results import _atomic_write

    def write(tmp):
        with open(tmp, "wb") as fh:
            pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)

    _atomic_write(path, write)


def _estimate(fields_sm: np.ndarray, valid: np.ndarray, n_batches: int, max_order: int):
    """G1, G2, (G4c) with jackknife errors from the valid models' fields ``(S, P)``."""
    s, p = fields_sm.shape
    if valid.sum() < n_batches:  # not enough models left for batch errors
        return None
    rows = math.ceil(s / n_batches)
    pad = rows * n_batches - s
    f = np.concatenate([fields_sm, np.zeros((pad, p))]).reshape(rows, n_batches, p)
    m = np.concatenate([valid, np.zeros(pad, bool)]).reshape(rows, n_batches)
    est = moment_estimator(p, max_order, n_batches)
    with jax.enable_x64(True):
        state = est.update(est.init(), jnp.asarray(f, jnp.float64), jnp.asarray(m))
        if np.any(np.asarray(state.count) == 0):
            return None
        return est.finalize(state)


def train_ensemble(prior: Prior, data: Data, config: TrainingConfig, *,
                   checkpoint_dir=None, resume: bool = False, progress: bool = False,
                   devices=None, stop_after: int | None = None,
                   theory: bool = True) -> TrainingResult:
    """Train ``config.n_models`` networks of ``prior`` on ``data``; observe at
    ``config.times``. ``stop_after`` measurements: write the checkpoint and raise
    :class:`~nnft.ensemble.RunInterrupted` (to test kill-and-resume)."""
    times = config.times
    v.require(times[-1] <= config.steps, "measure", list(times),
              f"must be at most steps = {config.steps}")
    trainer = make_trainer(prior, data, config, devices)
    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT
    fp = _fingerprint(prior, data, config)
    t0 = time.perf_counter()
    state = trainer.init(jax.random.key(config.seed))
    ref = None
    records: list[dict] = []
    estimates: list = []
    start = 0
    if resume and ckpt is not None and ckpt.exists():
        with open(ckpt, "rb") as fh:
            saved = pickle.load(fh)
        if saved["fingerprint"] != fp:
            raise ConfigError(f"resume: the checkpoint {ckpt} was made for different work "
                              "(architecture, data or [training] settings differ); remove it "
                              "or use another output folder")
        shapes = jax.tree.structure(state)
        state = jax.tree.unflatten(shapes, [jnp.asarray(a) for a in saved["state"]])
        ref = saved["ref"]
        records, estimates, start = saved["records"], saved["estimates"], saved["next"]

    with progress_bar(progress, config.steps, f"training {width_label(prior)}", "steps",
                      times[start - 1] if start else 0) as adv:
        for k in range(start, len(times)):
            gap = times[k] - (times[k - 1] if k > 0 else 0)
            if gap > 0:
                state, _ = trainer.run(state, jnp.int32(gap))
            obs = _host(trainer.observe(state.params))
            if ref is None:
                ref = {k: obs[k] for k in ("ntk", "hidden") if k in obs}
            if "ntk" in obs:
                obs["ntk_rel_change"] = _relative_change_np(obs.pop("ntk"), ref["ntk"])
            if "hidden" in obs:
                dh = obs.pop("hidden") - ref["hidden"]
                obs["feature_change_rms"] = np.sqrt(np.mean(dh * dh, axis=(1, 2)))
            div = np.asarray(state.diverged_at)
            valid = div < 0
            obs["valid"] = valid
            records.append(obs)
            corr = _estimate(obs["f"].astype(np.float64), valid, config.n_batches,
                             config.max_order)
            estimates.append(None if corr is None else {
                o: (np.asarray(getattr(corr, "full" if o < 3 else "connected")[o].value),
                    np.asarray(getattr(corr, "full" if o < 3 else "connected")[o].stderr))
                for o in corr.full})
            adv(times[k])
            if ckpt is not None and jax.process_index() == 0:
                _save(ckpt, {"fingerprint": fp, "state": [np.asarray(a) for a in
                                                          jax.tree.leaves(_host(state))],
                             "ref": ref, "records": records,
                             "estimates": estimates, "next": k + 1})
            if stop_after is not None and k + 1 - start >= stop_after and k + 1 < len(times):
                raise RunInterrupted(times[k], config.steps)
    seconds = time.perf_counter() - t0
    div = np.asarray(state.diverged_at)
    diverged = {int(i): int(div[i]) for i in np.flatnonzero(div >= 0)}

    ds = _dataset(records, estimates, times, data, config)
    th = None
    if theory:
        th = frozen_ntk_theory(prior, data, config)
        if th is not None:
            ds["theory_mean"] = (("time", "point"), th.mean)
            ds["theory_std"] = (("time", "point"), th.std)
    ds["diverged_at"] = (("model",), div.astype(np.int64))
    ds.attrs.update({"architecture": json.dumps(prior.hyperparameters(), default=str),
                     "training": json.dumps(config.to_dict()), "seconds": seconds,
                     "n_diverged": len(diverged)})
    return TrainingResult(ds, diverged, seconds, th)


def frozen_ntk_theory(prior, data: Data, config: TrainingConfig):
    """The frozen-NTK mean and std of the test fields, where it applies: an MLP, every layer
    trained, full-batch "sgd" on a squared loss ("mse" or "power" with n = 2), with the
    prior's learning-rate scale (None otherwise)."""
    from nnft.priors.mlp import MLP
    from nnft.theory.frozen_ntk import mlp_prediction

    applies = (isinstance(prior, MLP) and config.trainable is None and config.layer_lr is None
               and config.scale_learning_rate and config.optimizer == "sgd"
               and (config.batch_size is None or config.batch_size == len(data.y))
               and (config.loss == "mse" or (config.loss == "power"
                                             and config.loss_power == 2)))
    if not applies:
        return None
    mass2 = config.mass2 if config.loss == "power" else 1.0
    return mlp_prediction(prior, data.x, data.y, data.x_test, config.times,
                          config.learning_rate, mass2=mass2, discrete=True)


def _dataset(records, estimates, times, data: Data, config: TrainingConfig):
    import xarray as xr

    s = config.n_models
    p = data.x_test.shape[0]
    vars_: dict = {}
    for name, extra in _PER_MODEL.items():
        if name in records[0]:
            vars_[name] = (("time", "model", *extra),
                           np.stack([np.asarray(r[name], np.float64) for r in records]))
    for name in records[0]:
        if name.startswith("sv_"):
            vars_[name] = (("time", "model", f"{name}_index"),
                           np.stack([np.asarray(r[name], np.float64) for r in records]))
    vars_["valid"] = (("time", "model"), np.stack([r["valid"] for r in records]))
    names = {1: ("G1", ("point",)), 2: ("G2", ("p1", "p2")),
             3: ("G3c", ("p1", "p2", "p3")), 4: ("G4c", ("p1", "p2", "p3", "p4"))}
    for order in range(1, config.max_order + 1):
        name, dims = names[order]
        shape = (p,) * order
        val = np.stack([e[order][0] if e is not None else np.full(shape, np.nan)
                        for e in estimates])
        err = np.stack([e[order][1] if e is not None else np.full(shape, np.nan)
                        for e in estimates])
        vars_[name] = (("time", *dims), val)
        vars_[f"{name}_stderr"] = (("time", *dims), err)
    coords = {"time": np.asarray(times, np.int64), "model": np.arange(s),
              "point": np.arange(p), "dim": np.arange(data.x.shape[1]),
              "x_test": (("point", "dim"), data.x_test),
              "x_train": (("train", "dim"), data.x), "y_train": (("train",), data.y)}
    if data.y_test is not None:
        coords["y_test"] = (("point",), data.y_test)
    return xr.Dataset(vars_, coords=coords)


# ---------------------------------------------------------------------------
# the [training] card section and `nnft run`
# ---------------------------------------------------------------------------
#: [training] keys: the TrainingConfig fields (n_models defaults to sampling.n_samples, seed
#: to sampling.seed, n_batches to min(sampling.n_batches, n_models)) plus the data keys
DATA_KEYS = ("data", "n_train", "noise", "x", "y", "y_test", "probe")
CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(TrainingConfig)
                    if f.name not in ("max_order",))
TRAINING_KEYS = DATA_KEYS + CONFIG_KEYS


@dataclasses.dataclass(frozen=True, eq=False)
class TrainingSection:
    """A validated ``[training]`` section: the data set and the config."""

    data: Data
    config: TrainingConfig
    data_source: str

    def describe(self) -> dict:
        return {"data": self.data_source, "n_train": int(self.data.x.shape[0]),
                **self.config.to_dict()}


def parse_training_section(table: dict, card: dict) -> TrainingSection:
    """``[training]``: data (``data = "sine"`` with ``n_train``, ``noise``; or ``x``, ``y``
    lists, optional ``y_test`` at the card's points), ``probe`` points for the NTK, and the
    :class:`TrainingConfig` keys. The test points are ``correlators.points``. Every bad
    entry is one ConfigError naming ``training.<key>``."""
    from nnft.cards import _did_you_mean

    for key in table:
        if key not in TRAINING_KEYS:
            raise ConfigError(f"training.{key}: unknown key; allowed keys in [training]: "
                              f"{', '.join(TRAINING_KEYS)}{_did_you_mean(key, TRAINING_KEYS)}")
    if card.get("widths"):
        raise ConfigError("scan.widths: a width scan cannot be combined with [training]; "
                          "run one card per width")
    prior = card["_prior"]
    d = prior.input_dim
    points = card["points"]
    orders = card.get("orders", (2, 4))
    try:
        if "x" in table or "y" in table:
            for k in ("x", "y"):
                v.require(k in table, k, None, "give both x and y (or data = \"sine\")")
            v.require("data" not in table and "n_train" not in table and "noise" not in table,
                      "data", table.get("data"),
                      "leave out data, n_train and noise when x and y are given")
            for k in ("x", "y"):
                v.require(isinstance(table[k], list) and len(table[k]) > 0, k, table[k],
                          "must be a non-empty list")
            x = np.asarray(_as_rows(table["x"], d, "x"))
            data = make_data(x, _numbers(table["y"], "y"), points, None if "y_test" not in
                             table else _numbers(table["y_test"], "y_test"),
                             None if "probe" not in table else _as_rows(table["probe"], d,
                                                                        "probe"))
            source = "x/y lists"
        else:
            name = table.get("data", "sine")
            v.choice("data", name, DATASETS)
            v.require("y_test" not in table, "y_test", table.get("y_test"),
                      "only with x and y lists (the built-in set knows its targets)")
            n_train = v.positive_int("n_train", table.get("n_train", 16))
            noise = v.non_negative("noise", table.get("noise", 0.0))
            data = regression_data(card.get("seed", 0), n_train, d, noise=noise,
                                   x_test=points, probe=None if "probe" not in table
                                   else _as_rows(table["probe"], d, "probe"))
            source = f"{name} (n_train={n_train}, noise={noise}, seed={card.get('seed', 0)})"
        values = {k: table[k] for k in CONFIG_KEYS if k in table}
        for k in ("measure", "trainable", "layer_lr", "singular_values"):
            if k in values:
                v.require(isinstance(values[k], list), k, values[k], "must be a list")
                values[k] = tuple(values[k])
        n_models = values.setdefault("n_models", card.get("n_samples", 256))
        values.setdefault("seed", card.get("seed", 0))
        if isinstance(n_models, int) and not isinstance(n_models, bool):
            values.setdefault("n_batches", min(card.get("n_batches", 32), max(n_models, 2)))
        values["max_order"] = min(4, max(orders))
        config = TrainingConfig(**values)
        if config.batch_size is not None:
            v.require(config.batch_size <= data.x.shape[0], "batch_size", config.batch_size,
                      f"must be at most the number of training points ({data.x.shape[0]})")
        example = jax.eval_shape(prior.sample, jax.random.key(0))
        for k in ("trainable", "singular_values"):
            if getattr(config, k):
                _check_layers(k, getattr(config, k), example)
        if config.layer_lr is not None:
            learning_rate_scales(prior, example, layer_lr=config.layer_lr)
        if config.loss == "cross-entropy":
            v.require(bool(np.all((data.y >= 0) & (data.y <= 1))), "y", data.y.tolist(),
                      "cross-entropy needs labels in [0, 1]")
    except ConfigError as err:
        raise ConfigError(f"training.{err}") from None
    return TrainingSection(data, config, source)


def _numbers(values, field):
    v.require(isinstance(values, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in values), field,
        values, "must be a list of numbers")
    return [float(x) for x in values]


def _as_rows(values, d, field):
    rows = []
    v.require(isinstance(values, list) and len(values) > 0, field, values,
              f"must be a non-empty list of {'numbers' if d == 1 else f'{d}-vectors'}")
    for i, p in enumerate(values):
        if d == 1 and isinstance(p, (int, float)) and not isinstance(p, bool):
            p = [p]
        v.require(isinstance(p, list) and len(p) == d and all(
            isinstance(c, (int, float)) and not isinstance(c, bool) for c in p),
            f"{field}[{i}]", p, f"must be a list of {d} numbers (architecture.d = {d})")
        rows.append([float(c) for c in p])
    return rows


def run_training_card(card, out_dir, *, resume: bool = False, progress: bool = True,
                      console=None) -> dict:
    """Train the card's ensemble; write results.nc, summary.json and plots into ``out_dir``;
    print a table. Returns the summary."""
    from nnft import results

    out_dir = Path(out_dir)
    if console is None:
        from rich.console import Console

        console = Console()
    prior = card.prior()
    section: TrainingSection = card.training
    res = train_ensemble(prior, section.data, section.config, checkpoint_dir=out_dir,
                         resume=resume, progress=progress)
    summary = training_summary(res, prior, section)
    if jax.process_index() != 0:
        return summary
    ds = res.dataset.copy()
    ds.attrs["card"] = json.dumps(card.raw, default=str)
    ds.attrs["source"] = str(card.source)
    results.write_netcdf(ds, out_dir / "results.nc")
    results.write_json(summary, out_dir / "summary.json")
    plot_training(out_dir, res.dataset, prior)
    print_training(console, res, prior, section)
    return summary


def training_summary(res: TrainingResult, prior, section: TrainingSection) -> dict:
    """Plain-JSON summary: per time the loss quantiles, G1/G2 with errors and theory, NTK
    statistics; divergences."""
    ds = res.dataset
    out: dict = {"architecture": prior.hyperparameters(), "training": section.describe(),
                 "n_models": int(ds.sizes["model"]), "times": ds["time"].values.tolist(),
                 "x_test": ds["x_test"].values.tolist(), "seconds": res.seconds,
                 "diverged": {str(k): val for k, val in res.diverged.items()}}
    valid = ds["valid"].values

    def masked(name, fn):
        vals = ds[name].values
        return [fn(vals[t][valid[t]]) if valid[t].any() else None for t in range(len(vals))]

    def q(x):
        return {"median": float(np.median(x)), "q16": float(np.quantile(x, 0.16)),
                "q84": float(np.quantile(x, 0.84)), "mean": float(np.mean(x))}

    for name in ("train_loss", "test_loss", "ntk_trace", "ntk_entropy", "ntk_effective_rank",
                 "ntk_rel_change", "feature_rms", "feature_change_rms"):
        if name in ds:
            out[name] = masked(name, q)
    for name in ("G1", "G2"):
        out[name] = {"value": ds[name].values.tolist(),
                     "stderr": ds[f"{name}_stderr"].values.tolist()}
    if "theory_mean" in ds:
        out["G1"]["theory"] = ds["theory_mean"].values.tolist()
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (ds["G1"].values - ds["theory_mean"].values) / ds["G1_stderr"].values
        finite = z[np.isfinite(z)]
        out["G1"]["z_max_abs"] = float(np.max(np.abs(finite))) if finite.size else None
    return out


def plot_training(out_dir: Path, ds, prior) -> None:
    """loss.png (train/test loss vs time), g2.png (G2(x_a, x_a) and the mean vs time, with
    frozen-NTK theory where known), ntk.png (NTK trace, entropy, relative change vs time)."""
    from nnft.report import _plt

    plt = _plt()
    t = np.maximum(ds["time"].values, 0.5)
    valid = ds["valid"].values

    def band(ax, name, label):
        vals = np.where(valid, ds[name].values, np.nan)
        med = np.nanmedian(vals, axis=1)
        lo, hi = np.nanquantile(vals, 0.16, axis=1), np.nanquantile(vals, 0.84, axis=1)
        line, = ax.plot(t, med, "o-", ms=3, label=label)
        ax.fill_between(t, lo, hi, alpha=0.25, color=line.get_color())

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("train_loss", "test_loss"):
        if name in ds:
            band(ax, name, name.replace("_", " ") + " (median, 16-84%)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step (step 0 drawn at 0.5)")
    ax.set_ylabel("loss")
    ax.set_title(f"{prior.name} N={getattr(prior, 'width', '?')}: loss over training")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "loss.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    p = ds.sizes["point"]
    for a in range(p):
        line = axes[0].errorbar(t, ds["G2"].values[:, a, a], yerr=ds["G2_stderr"].values[:, a, a],
                                fmt="o-", ms=3, capsize=2, label=f"x_{a}")
        color = line[0].get_color()
        axes[1].errorbar(t, ds["G1"].values[:, a], yerr=ds["G1_stderr"].values[:, a], fmt="o",
                         ms=3, capsize=2, color=color)
        if "theory_mean" in ds:
            axes[1].plot(t, ds["theory_mean"].values[:, a], "-", lw=1, color=color)
            axes[0].plot(t, ds["theory_mean"].values[:, a] ** 2 + ds["theory_std"].values[:, a]
                         ** 2, "-", lw=1, color=color)
    for ax, lab in ((axes[0], r"$G^{(2)}(x_a, x_a; t)$"), (axes[1], r"$G^{(1)}(x_a; t)$")):
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(lab)
    axes[0].legend(fontsize=7)
    axes[1].set_title("mean; lines: frozen-NTK theory" if "theory_mean" in ds else "mean")
    fig.tight_layout()
    fig.savefig(out_dir / "g2.png", dpi=120)
    plt.close(fig)

    if "ntk_trace" in ds:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
        for ax, name in zip(axes, ("ntk_trace", "ntk_entropy", "ntk_rel_change")):
            if name in ds:
                band(ax, name, name)
            ax.set_xscale("log")
            ax.set_xlabel("step")
            ax.set_title(name.replace("_", " "))
        fig.tight_layout()
        fig.savefig(out_dir / "ntk.png", dpi=120)
        plt.close(fig)


def print_training(console, res: TrainingResult, prior, section: TrainingSection) -> None:
    from rich.table import Table

    ds = res.dataset
    cfg = section.config
    console.print(f"[bold]{prior.name}[/bold] N={getattr(prior, 'width', '?')}: "
                  f"{cfg.n_models} models, {cfg.optimizer} lr={cfg.learning_rate:g}, "
                  f"{cfg.steps} steps on {section.data_source} in {res.seconds:.1f} s")
    table = Table(show_edge=False, title_justify="left", title="training over time")
    cols = ["step", "train loss (median)", "test loss (median)", "NTK rel. change",
            "NTK entropy", "max |z| of G1 vs frozen NTK"]
    for c in cols:
        table.add_column(c, justify="right")
    valid = ds["valid"].values

    def med(name, k):
        if name not in ds or not valid[k].any():
            return "—"
        return f"{np.median(ds[name].values[k][valid[k]]):.4g}"

    for k, step in enumerate(ds["time"].values):
        z = "—"
        if "theory_mean" in ds:
            with np.errstate(divide="ignore", invalid="ignore"):
                zz = (ds["G1"].values[k] - ds["theory_mean"].values[k]) / ds["G1_stderr"].values[k]
            zz = zz[np.isfinite(zz)]
            z = f"{np.max(np.abs(zz)):.2f}" if zz.size else "—"
        table.add_row(str(step), med("train_loss", k), med("test_loss", k),
                      med("ntk_rel_change", k), med("ntk_entropy", k), z)
    console.print(table)
    if res.diverged:
        first = sorted(res.diverged.items(), key=lambda kv: kv[1])[:10]
        console.print(f"[red]{len(res.diverged)} model(s) diverged (non-finite loss) and were "
                      "masked out: " + ", ".join(f"model {m} at step {s}" for m, s in first)
                      + (" …" if len(res.diverged) > 10 else "") + "[/red]")


__all__ = [
    "CHECKPOINT", "LOSSES", "OPTIMIZERS", "Data", "TrainState", "Trainer", "TrainingConfig",
    "TrainingResult", "TrainingSection", "frozen_ntk_theory", "heavy_ball", "learning_rate_scales",
    "log_times", "make_data", "make_optimizer", "make_trainer", "parse_training_section",
    "pointwise_loss", "regression_data", "run_training_card", "scale_by_tree", "sine_target",
    "train_ensemble", "trainable_mask",
]
