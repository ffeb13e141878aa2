"""Training losses, per example; the training loss is their mean over the batch B.

- "mse": ``1/2 (f - y)^2``;
- "power": ``m^2/2 (f - y)^n`` (n even; the duality paper's ``m^2/2 (f - f0)^n`` with
  f0 = y);
- "cross-entropy" (binary, labels in [0, 1], f the logit): ``log(1 + e^f) - y f``.

The 1/|B| of the mean is why full-batch gradient flow on "mse" has rate ``eta/n`` in
:mod:`nnft.theory.frozen_ntk`.
"""

from __future__ import annotations

import jax

from nnft import _validate as v

LOSSES = ("mse", "power", "cross-entropy")


def pointwise_loss(name: str, *, power: int = 2, mass2: float = 1.0):
    """``l(f, y)`` per example (see the module docstring)."""
    v.choice("loss", name, LOSSES)
    if name == "power":
        v.positive("mass2", mass2)
    fn = scaled_loss(name, power=power)
    return lambda f, y: fn(f, y, mass2)


def scaled_loss(name: str, *, power: int = 2):
    """``l(f, y, mass2)`` per example, ``mass2`` a (possibly traced) array; it scales only the
    "power" loss (per-model hyperparameters, :class:`~nnft.training.TrainingConfig`)."""
    v.choice("loss", name, LOSSES)
    if name == "mse":
        return lambda f, y, mass2: 0.5 * (f - y) ** 2
    if name == "power":
        v.require(v.is_int(power) and power >= 2
                  and power % 2 == 0, "loss_power", power, "must be an even integer >= 2")
        return lambda f, y, mass2: 0.5 * mass2 * (f - y) ** power
    return lambda f, y, mass2: jax.nn.softplus(f) - y * f
