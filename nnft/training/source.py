"""Training as a source for the one driver (:func:`nnft.engine.drive`).

Step ``i`` of :func:`training_source` advances the ensemble to the i-th measurement time
(step 0 is the measurement at time 0, before any training) and returns
``Draws(fields=f on the test points (models, P), mask=models still finite,
record=observations)``. The estimator is :func:`recorder`: preallocated ``(n_times,
models, ...)`` arrays, the validity mask and the reference observations of time 0 (NTK,
last hidden layer) for the changes since then, so that the driver's checkpoint (one
``.npz`` of arrays) holds the whole run. :func:`train_ensemble` runs the two and builds
the Dataset (:mod:`nnft.training.dataset`), whose correlators per time come from
:func:`nnft.moment_estimator` over the recorded fields of the finite models.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nnft import _validate as v
from nnft.engine.drive import Draws, Estimator, RunInfo, Source, drive, key_fingerprint
from nnft.engine.mesh import to_host
from nnft.engine.progress import width_label
from nnft.priors.base import Prior
from nnft.training.config import TrainingConfig
from nnft.training.data import Data
from nnft.training.dataset import frozen_ntk_theory, training_dataset
from nnft.training.observe import REFERENCE, changes_since_start
from nnft.training.trainer import Trainer, make_trainer, training_work

CHECKPOINT = "training-checkpoint.npz"


def training_source(trainer: Trainer, key) -> Source:
    """The :class:`~nnft.engine.Source` of ``trainer``'s ensemble from ``key`` (see the
    module docstring); one step per measurement time, progress counted in training
    steps."""
    times = trainer.config.times

    def step(key, state, i):
        del key  # the state carries every key it needs
        gap = times[i] - (times[i - 1] if i > 0 else 0)
        if gap > 0:
            state, _ = trainer.run(state, np.int32(gap))
        obs = trainer.observe(state.params)
        return state, Draws(fields=obs["f"], mask=state.diverged_at < 0, record=obs)

    work = {**training_work(trainer.prior, trainer.data, trainer.config),
            "key": key_fingerprint(key)}
    return Source(init=trainer.init, step=step, n_steps=len(times), work=work,
                  label=f"training {width_label(trainer.prior)}", unit="steps",
                  total=times[-1], units=lambda i: times[i - 1] if i > 0 else 0)


def recorder(trainer: Trainer, key) -> Estimator:
    """The estimator that records every observation of :func:`training_source` at its
    time: ``acc = {"rows": name -> (n_times, models, ...) float64, "valid": (n_times,
    models), "ref": the time-0 NTK and hidden layer}`` (numpy, fixed shapes);
    ``finalize`` returns ``acc``."""
    n_times = len(trainer.config.times)
    shapes = jax.eval_shape(lambda k: trainer.observe(trainer.init(k).params), key)
    s = trainer.config.n_models
    row_shapes = {k: sd.shape for k, sd in shapes.items() if k not in REFERENCE}
    if "ntk" in shapes:
        row_shapes["ntk_rel_change"] = (s,)
    if "hidden" in shapes:
        row_shapes["feature_change_rms"] = (s,)

    def init():
        return {"rows": {k: np.full((n_times, *shape), np.nan) for k, shape in
                         row_shapes.items()},
                "valid": np.zeros((n_times, s), bool),
                "ref": {k: np.zeros(shapes[k].shape, shapes[k].dtype) for k in REFERENCE
                        if k in shapes}}

    def update(acc, draws: Draws, i: int):
        obs, valid = to_host((draws.record, draws.mask))  # collective across processes
        ref = {k: obs[k] for k in acc["ref"]} if i == 0 else acc["ref"]
        rows = {name: a.copy() for name, a in acc["rows"].items()}
        for name, arr in changes_since_start(obs, ref).items():
            rows[name][i] = arr
        new_valid = acc["valid"].copy()
        new_valid[i] = valid
        return {"rows": rows, "valid": new_valid, "ref": ref}

    return Estimator(init, update, lambda acc: acc)


@dataclasses.dataclass
class TrainingResult:
    """``dataset``: the xarray Dataset (dims time, model, point, ...); ``diverged``: model
    index -> step of divergence; ``seconds``: wall time of this call; ``theory``: the
    frozen-NTK prediction (or None; also None with per-model hyperparameters or a target
    shift f0); ``info``: the driver's bookkeeping (resumed from
    where, checkpoint)."""

    dataset: Any
    diverged: dict
    seconds: float
    theory: Any = None
    info: RunInfo | None = None

    def __getitem__(self, name):
        return self.dataset[name]

    def __repr__(self) -> str:
        ds = self.dataset
        names = [n for n in ("G1", "G2", "G3c", "G4c") if n in ds]
        return (f"TrainingResult({ds.sizes['model']} models, times {ds['time'].values.tolist()}, "
                f"{ds.sizes['point']} test points, correlators {names} with jackknife errors, "
                f"{len(self.diverged)} diverged, frozen-NTK theory "
                f"{'yes' if self.theory is not None else 'no'}, {self.seconds:.1f} s)")


def train_ensemble(prior: Prior, data: Data, config: TrainingConfig, *,
                   checkpoint_dir=None, resume: bool = False, progress: bool = True,
                   devices=None, stop_after: int | None = None,
                   theory: bool = True) -> TrainingResult:
    """Train ``config.n_models`` networks of ``prior`` on ``data``; observe at
    ``config.times``. ``checkpoint_dir``: the driver's checkpoint is written there after
    every measurement, and ``resume=True`` continues from it. ``stop_after``
    measurements: write the checkpoint and raise :class:`~nnft._validate.RunInterrupted`
    (to test kill-and-resume). Per-model hyperparameters (lists in ``config``) are stored as
    variables over ``model``; with ``config.trace`` the Dataset also holds ``f_step`` and
    ``alpha_step`` (dims model, step, train): the outputs and NTK diagonal on the training
    points at every step 0 .. steps."""
    times = config.times
    v.require(times[-1] <= config.steps, "measure", list(times),
              f"must be at most steps = {config.steps}")
    t0 = time.perf_counter()
    trainer = make_trainer(prior, data, config, devices)
    key = config.seed if v.is_key(config.seed) else jax.random.key(config.seed)
    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT
    out = drive(training_source(trainer, key), recorder(trainer, key), key, checkpoint=ckpt,
                resume=resume, progress=progress, stop_after=stop_after)
    div = np.asarray(to_host(out.state.diverged_at))
    seconds = time.perf_counter() - t0
    diverged = {int(i): int(div[i]) for i in np.flatnonzero(div >= 0)}
    ds = training_dataset(out.result["rows"], out.result["valid"], times, data, config)
    if config.trace:
        tr = to_host(out.state.trace)
        ds["f_step"] = (("model", "step", "train"), np.asarray(tr["f"], np.float64))
        ds["alpha_step"] = (("model", "step", "train"), np.asarray(tr["alpha"], np.float64))
        ds = ds.assign_coords(step=np.arange(config.steps + 1))
    for name in ("learning_rate", "momentum", "mass2", "f0"):
        if isinstance(getattr(config, name), tuple):
            ds[name] = (("model",), config.per_model(name))
    # the frozen-NTK theory knows one rate, one mass and the data's own targets
    th = frozen_ntk_theory(prior, data, config) if (
        theory and config.scalar_hyperparameters) else None
    if th is not None:
        ds["theory_mean"] = (("time", "point"), th.mean)
        ds["theory_std"] = (("time", "point"), th.std)
    ds["diverged_at"] = (("model",), div.astype(np.int64))
    ds.attrs.update({"architecture": json.dumps(prior.hyperparameters(), default=str),
                     "training": json.dumps(config.to_dict()), "seconds": seconds,
                     "n_diverged": len(diverged)})
    return TrainingResult(ds, diverged, seconds, th, out.info)
