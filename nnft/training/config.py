"""How an ensemble is trained and observed: :class:`TrainingConfig` (validated at
construction, every error naming its field) and the measurement schedule
:func:`log_times`."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from nnft import _validate as v
from nnft.training.losses import LOSSES, pointwise_loss
from nnft.training.optim import OPTIMIZERS


def log_times(steps: int, n: int) -> tuple[int, ...]:
    """0 and about ``n - 1`` log-spaced step counts from 1 to ``steps`` (distinct, sorted)."""
    v.positive_int("steps", steps)
    v.positive_int("n_measure", n, minimum=2)
    grid = np.unique(np.round(np.logspace(0, math.log10(steps), n - 1)).astype(int))
    return tuple(sorted({0, *map(int, grid), steps}))


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How an ensemble is trained and observed (see :mod:`nnft.training`).

    ``measure``: step counts at which the observers record (0 is added; default
    :func:`log_times` with ``n_measure``); ``batch_size``: None for full batch;
    ``trainable`` / ``layer_lr``: layer indices (MLP: 0 = first, depth = readout) or
    top-level parameter names, and per-layer learning-rate multipliers; ``scale_learning_rate``:
    multiply by ``prior.learning_rate_scale()`` where the prior has one; ``singular_values``:
    layers whose weight matrices' singular values are recorded; ``ntk``: record the probe-set
    NTK; ``n_batches``: jackknife batches (model s in batch s mod n_batches); ``max_order``:
    highest correlator order on the test points.

    Per-model hyperparameters: ``learning_rate``, ``momentum``, ``mass2`` and ``f0`` are each
    a number or a list of ``n_models`` numbers (model s uses entry s), so a whole optimizer x
    loss grid trains as one ``vmap`` with one compilation. ``f0``: a shift of the targets,
    model s fits ``y + f0[s]`` (the duality loss ``m^2/2 (f - f0)^n`` with y = 0; "mse" and
    "power" only). ``trace``: record the outputs on the training points and the diagonal of
    the trained-parameter NTK there (``alpha``, learning-rate scales included) at every step
    (full batch only; costs one gradient per training point and step).
    """

    optimizer: str = "sgd"
    learning_rate: float | tuple[float, ...] = 0.1
    momentum: float | tuple[float, ...] = 0.9
    steps: int = 1000
    measure: tuple[int, ...] | None = None
    n_measure: int = 10
    batch_size: int | None = None
    loss: str = "mse"
    loss_power: int = 2
    mass2: float | tuple[float, ...] = 1.0
    f0: float | tuple[float, ...] = 0.0
    trace: bool = False
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
        v.positive_int("n_models", self.n_models, minimum=2)
        self._per_model("learning_rate", lambda f, x: v.positive(f, x))
        self._per_model("momentum", lambda f, x: v.require(
            v.is_real(x) and 0 <= x < 1, f, x, "must be a number in [0, 1)"))
        self._per_model("mass2", lambda f, x: v.positive(f, x))
        self._per_model("f0", lambda f, x: v.require(v.is_real(x) and math.isfinite(x), f, x,
                                                     "must be a finite number"))
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
        pointwise_loss(self.loss, power=self.loss_power)  # validates
        v.require(self.loss in ("mse", "power") or not np.any(self.per_model("f0")), "f0",
                  self.f0, f"must be 0 for the {self.loss!r} loss (target shifts need "
                  "'mse' or 'power')")
        v.require(isinstance(self.trace, bool), "trace", self.trace, "must be true or false")
        object.__setattr__(self, "seed", v.seed("seed", self.seed))
        for name in ("trainable", "singular_values"):
            val = getattr(self, name)
            if val is not None:
                v.require(isinstance(val, (list, tuple)) and all(
                    (v.is_int(e) and e >= 0)
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

    def _per_model(self, name: str, check) -> None:
        """Validate a number or a list of n_models numbers; store a float or a float tuple."""
        val = getattr(self, name)
        if isinstance(val, np.ndarray):
            val = val.tolist()
        if isinstance(val, (list, tuple)):
            v.require(len(val) == self.n_models, name, f"{len(val)} values",
                      f"must be a number or a list of n_models = {self.n_models} numbers")
            for i, x in enumerate(val):
                check(f"{name}[{i}]", x)
            object.__setattr__(self, name, tuple(float(x) for x in val))
        else:
            check(name, val)
            object.__setattr__(self, name, float(val))

    def per_model(self, name: str) -> np.ndarray:
        """``learning_rate``, ``momentum``, ``mass2`` or ``f0`` as an ``(n_models,)`` array."""
        return np.broadcast_to(np.asarray(getattr(self, name), np.float64),
                               (self.n_models,)).copy()

    @property
    def scalar_hyperparameters(self) -> bool:
        """True when every model has the same rate, momentum, mass2 and f0 = 0."""
        return (not any(isinstance(getattr(self, k), tuple)
                        for k in ("learning_rate", "momentum", "mass2", "f0"))
                and self.f0 == 0)

    @property
    def times(self) -> tuple[int, ...]:
        """The measurement steps, 0 first."""
        return self.measure if self.measure is not None else log_times(self.steps,
                                                                       self.n_measure)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["times"] = list(self.times)
        return {k: (list(val) if isinstance(val, tuple) else val) for k, val in out.items()}

