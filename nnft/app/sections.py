"""Card sections beyond the core ones: ``[interaction]``, ``[mcmc]``, ``[training]``.

Each parser is ``(table, fields so far) -> validated object`` and raises one
:class:`~nnft._validate.ConfigError` naming ``<section>.<key>``. The compute module a
section configures is imported only when a card has that section (a free-ensemble
card never loads MCMC or training code).
"""

from __future__ import annotations

import dataclasses
import typing

import jax
import numpy as np

from nnft import _validate as v
from nnft._validate import ConfigError, did_you_mean

if typing.TYPE_CHECKING:
    from nnft.interaction import Interaction
    from nnft.mcmc import MCMCConfig


# -----------------------------------------------------------------------------
# [interaction]
# -----------------------------------------------------------------------------
INTERACTION_KEYS = ("potential", "coupling", "coefficients", "box", "center", "nodes",
                    "method", "quadrature_rtol")


def _prefixed(err: ConfigError) -> ConfigError:
    msg = str(err)
    return ConfigError(msg if msg.startswith("interaction.") else f"interaction.{msg}")


def parse_interaction_section(table: dict, card: dict) -> Interaction:
    """``[interaction]``: potential, coupling (or coefficients), box, center, nodes, method.

    ``box`` is a side length (a cube) or a list of d of them; ``nodes`` Gauss-Legendre
    nodes per side (default: the smallest power-of-two multiple of 8 that converges).
    The quadrature is checked on prior draws against a finer rule; a rule that is not
    converged to ``quadrature_rtol`` (default 1e-6) is an error naming ``interaction.nodes``.
    """
    from nnft.interaction import MAX_NODES, POTENTIALS, Interaction, cos_modes, suggest_nodes

    for key in table:
        if key not in INTERACTION_KEYS:
            raise ConfigError(f"interaction.{key}: unknown key; allowed keys in [interaction]: "
                              f"{', '.join(INTERACTION_KEYS)}"
                              f"{did_you_mean(key, INTERACTION_KEYS)}")
    prior = card["_prior"]
    kind = table.get("potential", "phi4")
    v.require(isinstance(kind, str) and kind in POTENTIALS[:-1], "interaction.potential", kind,
              "allowed values: " + ", ".join(POTENTIALS[:-1]) + " (custom potentials are "
              "for the Python API)")
    try:
        potential = _potential(table, kind)
        box = _box(table, prior.input_dim)
        method = table.get("method", "quadrature")
        rtol = v.positive("quadrature_rtol", table.get("quadrature_rtol", 1e-6))
        if "nodes" in table:
            interaction = Interaction(potential, box, table["nodes"], method)
        else:
            base = Interaction(potential, box, 8, method)
            nodes = suggest_nodes(prior, base, rtol=rtol)
            if nodes is None:
                raise ConfigError(f"nodes: no rule with at most {MAX_NODES} nodes converges "
                                  f"to {rtol:g} on this box; use a smaller box or cutoff")
            interaction = Interaction(potential, box, nodes, method)
    except ConfigError as err:
        raise _prefixed(err) from None
    if interaction.method == "quadrature":
        _check_rule(prior, interaction, rtol)
    else:
        try:
            cos_modes(prior, prior.sample(jax.random.PRNGKey(0)))
        except ConfigError as err:
            raise _prefixed(err) from None
    return interaction


def _potential(table: dict, kind: str):
    from nnft.interaction import Potential

    if kind == "polynomial":
        v.require("coupling" not in table, "coupling", table.get("coupling"),
                  "a polynomial potential takes coefficients, not a coupling")
        coeffs = table.get("coefficients")
        v.require(isinstance(coeffs, list), "coefficients", coeffs,
                  "must be a list [c0, c1, ...] with V = sum_k c_k phi^k")
        return Potential("polynomial", coefficients=tuple(coeffs))
    v.require("coefficients" not in table, "coefficients", table.get("coefficients"),
              f"only for potential = 'polynomial' (got potential = {kind!r})")
    if "coupling" not in table:
        raise ConfigError(f"coupling: missing; required for potential = {kind!r}")
    coupling = table["coupling"]
    v.require(isinstance(coupling, (int, float)) and not isinstance(coupling, bool),
              "coupling", coupling, "must be a number")
    return Potential(kind, float(coupling))


def _box(table: dict, d: int):
    from nnft.interaction import Box

    if "box" not in table:
        raise ConfigError("box: missing; the box (IR cutoff) is part of the theory: "
                          f"a side length or a list of d = {d} of them")
    box = table["box"]
    if isinstance(box, (int, float)) and not isinstance(box, bool):
        box = [box] * d
    v.require(isinstance(box, list) and len(box) == d, "box", box,
              f"must be a side length or a list of d = {d} side lengths > 0"
              if box != [] else "an empty box: must be a list of d side lengths > 0")
    return Box(tuple(box), tuple(table["center"]) if isinstance(table.get("center"), list)
               else table.get("center"))


def _check_rule(prior, interaction, rtol: float) -> None:
    """A quadrature rule not converged on prior draws is an error naming the nodes needed."""
    from nnft.interaction import check_quadrature, suggest_nodes

    check = check_quadrature(prior, interaction, rtol=rtol, warn=False)
    if check.converged:
        return
    need = suggest_nodes(prior, interaction, rtol=rtol, start=list(interaction.nodes))
    hint = (f"use nodes = {list(need)}" if need is not None
            else "no affordable rule converges; use a smaller box")
    raise ConfigError(
        f"interaction.nodes: got {list(interaction.nodes)}; int_box V is not converged "
        f"(relative difference {check.rel_error:.2g} against {list(check.finer)} nodes "
        f"on prior draws, quadrature_rtol = {rtol:g}); {hint}")


# -----------------------------------------------------------------------------
# [mcmc]
# -----------------------------------------------------------------------------
def mcmc_keys() -> tuple[str, ...]:
    """Every key allowed in [mcmc]: the :class:`~nnft.mcmc.MCMCConfig` fields."""
    from nnft.mcmc import MCMCConfig

    return tuple(f.name for f in dataclasses.fields(MCMCConfig))


def parse_mcmc_section(table: dict, card: dict) -> MCMCConfig:
    """``[mcmc]``: sampler, chains, warmup, samples, seed (default: ``sampling.seed``),
    target_accept, max_tree_depth, checkpoint_every, reweighting, perturbation."""
    from nnft.mcmc import MCMCConfig

    keys = mcmc_keys()
    for key in table:
        if key not in keys:
            raise ConfigError(f"mcmc.{key}: unknown key; allowed keys in [mcmc]: "
                              f"{', '.join(keys)}{did_you_mean(key, keys)}")
    values = dict(table)
    values.setdefault("seed", card.get("seed", 0))
    if card.get("widths"):
        raise ConfigError("scan.widths: a width scan cannot be combined with [mcmc] or "
                          "[interaction]; run one card per width")
    try:
        return MCMCConfig(**values)
    except ConfigError as err:
        raise ConfigError(f"mcmc.{err}") from None


# -----------------------------------------------------------------------------
# [training]
# -----------------------------------------------------------------------------
#: [training] keys: the TrainingConfig fields (n_models defaults to sampling.n_samples, seed
#: to sampling.seed, n_batches to min(sampling.n_batches, n_models)) plus the data keys
DATA_KEYS = ("data", "n_train", "noise", "x", "y", "y_test", "probe")


def training_config_keys() -> tuple[str, ...]:
    """The [training] keys that are :class:`~nnft.training.TrainingConfig` fields."""
    from nnft.training import TrainingConfig

    return tuple(f.name for f in dataclasses.fields(TrainingConfig) if f.name != "max_order")


def training_keys() -> tuple[str, ...]:
    """Every key allowed in [training]."""
    return DATA_KEYS + training_config_keys()


@dataclasses.dataclass(frozen=True, eq=False)
class TrainingSection:
    """A validated ``[training]`` section: the data set and the config."""

    data: typing.Any  # nnft.training.Data
    config: typing.Any  # nnft.training.TrainingConfig
    data_source: str

    def describe(self) -> dict:
        return {"data": self.data_source, "n_train": int(self.data.x.shape[0]),
                **self.config.to_dict()}


def parse_training_section(table: dict, card: dict) -> TrainingSection:
    """``[training]``: data (``data = "sine"`` with ``n_train``, ``noise``; or ``x``, ``y``
    lists, optional ``y_test`` at the card's points), ``probe`` points for the NTK, and the
    :class:`TrainingConfig` keys. The test points are ``correlators.points``. Every bad
    entry is one ConfigError naming ``training.<key>``."""
    from nnft.training import (
        DATASETS,
        TrainingConfig,
        check_layers,
        learning_rate_scales,
        make_data,
        regression_data,
    )

    allowed = training_keys()
    for key in table:
        if key not in allowed:
            raise ConfigError(f"training.{key}: unknown key; allowed keys in [training]: "
                              f"{', '.join(allowed)}{did_you_mean(key, allowed)}")
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
        values = {k: table[k] for k in training_config_keys() if k in table}
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
                check_layers(k, getattr(config, k), example)
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


__all__ = [
    "DATA_KEYS",
    "INTERACTION_KEYS",
    "TrainingSection",
    "mcmc_keys",
    "parse_interaction_section",
    "parse_mcmc_section",
    "parse_training_section",
    "training_config_keys",
    "training_keys",
]


def check_estimator(fields: dict) -> None:
    """Refuse ``correlators.estimator = "readout"`` / ``"neuron"`` on a card with an
    ``[interaction]``, ``[mcmc]`` or ``[training]`` section: there the readout is no
    longer Gaussian given the rest (``auto`` falls back to the direct estimator)."""
    estimator = fields.get("estimator", "auto")
    others = [s for s in ("interaction", "mcmc", "training") if fields.get(s) is not None]
    if estimator in ("readout", "neuron") and others:
        raise ConfigError(
            f"correlators.estimator: got {estimator!r}, but the card has a [{others[0]}] "
            "section; the readout and neuron estimators hold for free prior ensembles only "
            "(interacting chains, reweighted draws and trained networks do not have a "
            "Gaussian readout given the rest); allowed here: auto, direct")
