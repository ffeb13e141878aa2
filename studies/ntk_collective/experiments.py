"""The training runs of the study: dense scan, CNN, fuel efficiency, autoencoder.

Every run is one block: ``run_block(kind, config, plan) -> dict`` of arrays
``(seeds, epochs + 1[, P])`` from :func:`nnft.training.classify.train_seeds` (row 0 is the
initialisation), written by :func:`nnft.engine.blocks.run_blocks` so ``--resume`` skips it.

- dense: digits, ``64 -> width^depth -> 10``, softmax cross-entropy, Adam 1e-3, batch 32;
  standard parameterisation (flax defaults: LeCun-normal weights, zero biases).
- cnn: digits as 8x8x1 images, 3x3 "SAME" convolutions then a dense readout; the rows of
  Fig. 1 vary one property at a time around (16 channels, 1 conv layer, relu).
- fuel: auto-mpg, ``9 -> 32 -> 32 -> 1`` relu, MSE, Adam 5e-3, batch 32.
- ae: digits autoencoder ``64 -> 32 -> 8 -> 32 -> 64`` relu, linear output, MSE on the
  input, Adam 1e-3, batch 32 (our choice: the paper gives no architecture).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from nnft.datasets import auto_mpg, digits
from nnft.training.classify import FitConfig, train_seeds
from nnft.training.networks import ConvNet, DenseNet

N_TRAIN_DIGITS = 1437


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one study run trains (defaults: the CPU default of the README)."""

    widths: tuple[int, ...] = (8, 32, 128)
    depths: tuple[int, ...] = (1, 2, 4)
    activations: tuple[str, ...] = ("relu", "tanh")
    seeds: int = 3
    epochs: int = 100
    cnn_epochs: int = 30
    cnn_rows: tuple[tuple[int, int, str], ...] = ((16, 1, "relu"), (8, 1, "relu"),
                                                  (32, 1, "relu"), (16, 2, "relu"),
                                                  (16, 1, "tanh"))
    fuel_epochs: int = 100
    ae_epochs: int = 100
    n_probe: int = 100
    parts: tuple[str, ...] = ("dense", "cnn", "fuel", "ae")

    def runs(self) -> list[tuple[str, tuple]]:
        out = []
        if "dense" in self.parts:
            out += [("dense", (w, dep, a)) for a in self.activations for dep in self.depths
                    for w in self.widths]
        if "cnn" in self.parts:
            out += [("cnn", row) for row in self.cnn_rows]
        if "fuel" in self.parts:
            out.append(("fuel", ()))
        if "ae" in self.parts:
            out.append(("ae", ()))
        return out


def digits_data(n_probe: int):
    """Train rows 0-1436, test 1437-1796 (file order); probes: the first n_probe of each."""
    d = digits()
    train = (d.x[:N_TRAIN_DIGITS], d.y[:N_TRAIN_DIGITS])
    test = (d.x[N_TRAIN_DIGITS:], d.y[N_TRAIN_DIGITS:])
    return train, test, {"train": train[0][:n_probe], "test": test[0][:n_probe]}


def run_name(kind: str, config: tuple) -> str:
    return "_".join([kind, *map(str, config)]) if config else kind


def block_path(out_dir: Path, kind: str, config: tuple) -> Path:
    return Path(out_dir) / "blocks" / f"{run_name(kind, config)}.npz"


def run_block(kind: str, config: tuple, plan: Plan) -> dict:
    """Train one run of ``plan`` (module docstring); arrays (seeds, epochs + 1[, P])."""
    if kind in ("dense", "cnn", "ae"):
        train, test, probes = digits_data(plan.n_probe)
    if kind == "dense":
        width, depth, act = config
        net = DenseNet(d=64, widths=(width,) * depth, outputs=10, activation=act)
        cfg = FitConfig(epochs=plan.epochs, learning_rate=1e-3, loss="xent", n_seeds=plan.seeds)
    elif kind == "cnn":
        channels, n_conv, act = config
        net = ConvNet(image=(8, 8, 1), channels=channels, n_conv=n_conv, activation=act)
        cfg = FitConfig(epochs=plan.cnn_epochs, learning_rate=1e-3, loss="xent",
                        n_seeds=plan.seeds)
    elif kind == "fuel":
        tr, te = auto_mpg(seed=0)
        train, test = (tr.x, tr.y), (te.x, te.y)
        probes = {"train": tr.x[:plan.n_probe], "test": te.x[:plan.n_probe]}
        net = DenseNet(d=tr.x.shape[1], widths=(32, 32), outputs=1, activation="relu")
        cfg = FitConfig(epochs=plan.fuel_epochs, learning_rate=5e-3, loss="mse",
                        n_seeds=plan.seeds)
    elif kind == "ae":
        train, test = (train[0], train[0]), (test[0], test[0])
        net = DenseNet(d=64, widths=(32, 8, 32), outputs=64, activation="relu")
        cfg = FitConfig(epochs=plan.ae_epochs, learning_rate=1e-3, loss="mse",
                        n_seeds=plan.seeds)
    else:
        raise ValueError(f"unknown run kind {kind!r}")
    out = train_seeds(net, train, test, probes, cfg)
    out["n_params"] = np.asarray(getattr(net, "n_params", 0))
    return out
