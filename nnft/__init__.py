"""nnft: neural-network field theory.

An architecture is a probability distribution over functions (a *prior*);
nnft samples it, measures its n-point functions with error bars and compares
them with exact theory.

Public API
----------
Priors (``nnft.priors``): :class:`CosNet`, :class:`GaussNet`, :class:`ScalarNet`,
:class:`SpectralNet`, :class:`MLP` (with :class:`ABCParameterization` presets),
``make_prior(name, **hp)``; exact kernels in ``nnft.theory``.
Ensembles: :func:`run_ensemble` (chunked, sharded, resumable), :func:`moment_estimator`.
Dynamics: :func:`empirical_ntk` (``nnft.ntk``: spectrum statistics too), :func:`train_ensemble`
with :class:`TrainingConfig` and :func:`regression_data` / :func:`make_data` (``nnft.training``,
imported on first use), frozen-NTK theory in ``nnft.theory.frozen_ntk``.
Errors: :class:`ConfigError` (bad input, naming the field).
"""

from nnft._validate import ConfigError
from nnft.ensemble import EnsembleResult
from nnft.ensemble import run as run_ensemble
from nnft.estimators import Correlators, Estimate, moment_estimator
from nnft.ntk import empirical_ntk
from nnft.priors import Prior, make_prior
from nnft.priors.cos import CosNet
from nnft.priors.gauss import GaussNet
from nnft.priors.mlp import MLP
from nnft.priors.parameterization import ABCParameterization, learning_rate_scale
from nnft.priors.spectral import ScalarNet, SpectralNet

__version__ = "0.1.0"

#: exported from nnft.training, imported on first use (optax is not loaded by ``import nnft``)
_TRAINING = ("TrainingConfig", "make_data", "regression_data", "train_ensemble")


def __getattr__(name):
    if name in _TRAINING:
        from nnft import training

        return getattr(training, name)
    raise AttributeError(f"module 'nnft' has no attribute {name!r}")


__all__ = [
    "MLP",
    "ABCParameterization",
    "ConfigError",
    "Correlators",
    "CosNet",
    "EnsembleResult",
    "Estimate",
    "GaussNet",
    "Prior",
    "ScalarNet",
    "SpectralNet",
    "TrainingConfig",
    "empirical_ntk",
    "learning_rate_scale",
    "make_data",
    "make_prior",
    "moment_estimator",
    "regression_data",
    "run_ensemble",
    "train_ensemble",
]
