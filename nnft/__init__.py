"""nnft: neural-network field theory.

An architecture is a probability distribution over functions (a *prior*);
nnft samples it, measures its n-point functions with error bars and compares
them with exact theory.

Public API
----------
Priors (``nnft.priors``): :class:`CosNet`, :class:`GaussNet`, :class:`ScalarNet`,
:class:`SpectralNet`, :class:`MLP` (with :class:`ABCParameterization` presets),
``make_prior(name, **hp)``; exact kernels in ``nnft.theory``.
Ensembles: :func:`run_ensemble` (chunked, sharded, memory-bounded, resumable),
:func:`free_source`, :func:`moment_estimator`; readout-conditioned correlators
(``nnft.readout``): :func:`run_readout` (``estimator="readout"`` or ``"neuron"``).
The engine (``nnft.engine``): :func:`drive` runs any :class:`Source` (free draws, NUTS
chains, training) into an :class:`Estimator`, with the one checkpoint format.
Interacting theories (``nnft.interaction``, ``nnft.mcmc``, imported on first use):
:class:`Interaction`, :class:`Box`, potentials :func:`phi4`, :func:`phi6`,
:func:`mass_shift`, :func:`polynomial`, :func:`custom`; :func:`sample` (NUTS by blackjax or
numpyro) with :class:`MCMCConfig`, :func:`chain_correlators`, :func:`diagnostics`,
:func:`free_draw_crosschecks`, :func:`perturbation_infinite_n`.
Dynamics: :func:`empirical_ntk` (``nnft.ntk``: spectrum statistics too), :func:`train_ensemble`
with :class:`TrainingConfig` and :func:`regression_data` / :func:`make_data` (``nnft.training``,
imported on first use), frozen-NTK theory in ``nnft.theory.frozen_ntk``; momentum GD as a
de Sitter scalar field in ``nnft.theory.field_equation`` (friction, eta_max, background and
mode ODEs, the constant-kernel recursion, the n = 2 closed form).
NTK collective variables: :func:`empirical_ntk` for vector outputs (``outputs="trace"`` or
``"full"``), the per-layer NTK of dense networks :func:`dense_ntk` and the streaming
:func:`ntk_recorder` (``nnft.ntk_layers``); C-output networks :class:`DenseNet`,
:class:`ConvNet` trained over seeds at once by :func:`train_seeds` with :class:`FitConfig`
(``nnft.training.classify``).
Fokker-Planck (``nnft.fokker_planck``): ``Grid``, ``evolve``, ``moments``, KDE and
Nadaraya-Watson helpers, the Euler-Maruyama particle twin.
Data (``nnft.datasets``): offline digits, IDX (MNIST / Fashion-MNIST) files, auto-mpg.
Errors: :class:`ConfigError` (bad input, naming the field), :class:`RunInterrupted`.
Seeds are integers or ``jax.random.key`` values everywhere.
"""

import importlib

from nnft._validate import ConfigError, RunInterrupted
from nnft.engine import Draws, Estimator, Source, drive
from nnft.ensemble import EnsembleResult, free_source
from nnft.ensemble import run as run_ensemble
from nnft.estimators import Correlators, Estimate, moment_estimator
from nnft.ntk import empirical_ntk
from nnft.priors import Prior, make_prior
from nnft.priors.cos import CosNet
from nnft.priors.gauss import GaussNet
from nnft.priors.mlp import MLP
from nnft.priors.parameterization import ABCParameterization, learning_rate_scale
from nnft.priors.spectral import ScalarNet, SpectralNet
from nnft.readout import run as run_readout

__version__ = "0.1.0"

#: exported from submodules imported on first use (optax, blackjax and numpyro are not
#: loaded by ``import nnft``)
_LAZY = {
    **dict.fromkeys(("TrainingConfig", "TrainingResult", "make_data", "regression_data",
                     "train_ensemble", "log_times"), "nnft.training"),
    **dict.fromkeys(("FitConfig", "train_seeds"), "nnft.training.classify"),
    **dict.fromkeys(("ConvNet", "DenseNet"), "nnft.training.networks"),
    **dict.fromkeys(("DenseLayer", "dense_ntk", "ntk_recorder"), "nnft.ntk_layers"),
    **dict.fromkeys(("MCMCConfig", "MCMCResult", "sample", "run_nuts", "run_numpyro",
                     "chain_correlators", "diagnostics", "free_draw_crosschecks",
                     "crosscheck_table", "fit_coupling_slope"), "nnft.mcmc"),
    **dict.fromkeys(("Interaction", "Box", "Potential", "phi4", "phi6", "mass_shift",
                     "polynomial", "custom", "make_target", "check_quadrature",
                     "perturbation_infinite_n"), "nnft.interaction"),
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nnft' has no attribute {name!r}")


__all__ = [
    "ABCParameterization",
    "Box",
    "ConfigError",
    "ConvNet",
    "Correlators",
    "CosNet",
    "DenseLayer",
    "DenseNet",
    "Draws",
    "EnsembleResult",
    "Estimate",
    "Estimator",
    "FitConfig",
    "GaussNet",
    "Interaction",
    "MCMCConfig",
    "MCMCResult",
    "MLP",
    "Potential",
    "Prior",
    "RunInterrupted",
    "ScalarNet",
    "Source",
    "SpectralNet",
    "TrainingConfig",
    "TrainingResult",
    "chain_correlators",
    "check_quadrature",
    "crosscheck_table",
    "custom",
    "dense_ntk",
    "diagnostics",
    "drive",
    "empirical_ntk",
    "fit_coupling_slope",
    "free_draw_crosschecks",
    "free_source",
    "learning_rate_scale",
    "log_times",
    "make_data",
    "make_prior",
    "make_target",
    "mass_shift",
    "moment_estimator",
    "ntk_recorder",
    "perturbation_infinite_n",
    "phi4",
    "phi6",
    "polynomial",
    "regression_data",
    "run_ensemble",
    "run_numpyro",
    "run_nuts",
    "run_readout",
    "sample",
    "train_ensemble",
    "train_seeds",
]
