"""The xarray Dataset of a training run: the per-model records over time, the correlators
of every time from :func:`nnft.moment_estimator` over the models still finite, and the
frozen-NTK theory where it applies."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from nnft.estimators import moment_estimator
from nnft.theory.frozen_ntk import mlp_prediction
from nnft.training.config import TrainingConfig
from nnft.training.data import Data

#: per-model observables stored over time (name -> extra dims after (time, model))
PER_MODEL = {
    "f": ("point",), "f_train": ("train",), "train_loss": (), "test_loss": (),
    "ntk_eigenvalues": ("eig",), "ntk_trace": (), "ntk_entropy": (),
    "ntk_effective_rank": (), "ntk_rel_change": (), "feature_rms": (),
    "feature_change_rms": (),
}
_NAMES = {1: ("G1", ("point",)), 2: ("G2", ("p1", "p2")),
          3: ("G3c", ("p1", "p2", "p3")), 4: ("G4c", ("p1", "p2", "p3", "p4"))}


def correlators_at(fields_sm: np.ndarray, valid: np.ndarray, n_batches: int, max_order: int):
    """G1, G2, (G3c, G4c) with jackknife errors from the fields ``(S, P)`` of the valid
    models (model s in batch s mod n_batches); None when a batch would be empty."""
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


def _correlator_vars(f: np.ndarray, valid: np.ndarray, config: TrainingConfig) -> dict:
    """``G1``, ``G2``, ``G4c``, ... and their ``_stderr`` over (time, points...); NaN at
    times with too few finite models."""
    p = f.shape[-1]
    per_time = [correlators_at(f[t], valid[t], config.n_batches, config.max_order)
                for t in range(f.shape[0])]
    out = {}
    for order in range(1, config.max_order + 1):
        name, dims = _NAMES[order]
        nan = np.full((p,) * order, np.nan)
        kind = "full" if order < 3 else "connected"
        est = [None if c is None else getattr(c, kind)[order] for c in per_time]
        out[name] = (("time", *dims),
                     np.stack([nan if e is None else np.asarray(e.value) for e in est]))
        out[f"{name}_stderr"] = (("time", *dims),
                                 np.stack([nan if e is None else np.asarray(e.stderr)
                                           for e in est]))
    return out


def training_dataset(rows: dict, valid: np.ndarray, times, data: Data,
                     config: TrainingConfig):
    """The Dataset (dims time, model, point, ...) of the recorded ``rows`` (name ->
    ``(time, model, ...)``) and validity mask ``valid`` ``(time, model)``."""
    import xarray as xr

    vars_: dict = {}
    for name, extra in PER_MODEL.items():
        if name in rows:
            vars_[name] = (("time", "model", *extra), np.asarray(rows[name], np.float64))
    for name, arr in rows.items():
        if name.startswith("sv_"):
            vars_[name] = (("time", "model", f"{name}_index"), np.asarray(arr, np.float64))
    vars_["valid"] = (("time", "model"), np.asarray(valid, bool))
    vars_.update(_correlator_vars(np.asarray(rows["f"], np.float64), valid, config))
    p = data.x_test.shape[0]
    coords = {"time": np.asarray(times, np.int64), "model": np.arange(config.n_models),
              "point": np.arange(p), "dim": np.arange(data.x.shape[1]),
              "x_test": (("point", "dim"), data.x_test),
              "x_train": (("train", "dim"), data.x), "y_train": (("train",), data.y)}
    if data.y_test is not None:
        coords["y_test"] = (("point",), data.y_test)
    return xr.Dataset(vars_, coords=coords)


def frozen_ntk_theory(prior, data: Data, config: TrainingConfig):
    """The frozen-NTK mean and std of the test fields, where it applies: a prior that knows
    its NTK and NNGP kernels (the MLP), every layer trained, full-batch "sgd" on a squared
    loss ("mse" or "power" with n = 2), with the prior's learning-rate scale (None
    otherwise)."""
    knows = all(callable(getattr(prior, name, None))
                for name in ("ntk", "nngp", "learning_rate_scale"))
    applies = (knows and config.trainable is None and config.layer_lr is None
               and config.scale_learning_rate and config.optimizer == "sgd"
               and (config.batch_size is None or config.batch_size == len(data.y))
               and (config.loss == "mse" or (config.loss == "power"
                                             and config.loss_power == 2)))
    if not applies:
        return None
    mass2 = config.mass2 if config.loss == "power" else 1.0
    return mlp_prediction(prior, data.x, data.y, data.x_test, config.times,
                          config.learning_rate, mass2=mass2, discrete=True)
