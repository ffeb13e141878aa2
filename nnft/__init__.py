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
Errors: :class:`ConfigError` (bad input, naming the field).
"""

from nnft._validate import ConfigError
from nnft.ensemble import EnsembleResult
from nnft.ensemble import run as run_ensemble
from nnft.estimators import Correlators, Estimate, moment_estimator
from nnft.priors import Prior, make_prior
from nnft.priors.cos import CosNet
from nnft.priors.gauss import GaussNet
from nnft.priors.mlp import MLP
from nnft.priors.parameterization import ABCParameterization, learning_rate_scale
from nnft.priors.spectral import ScalarNet, SpectralNet

__version__ = "0.1.0"

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
    "learning_rate_scale",
    "make_prior",
    "moment_estimator",
    "run_ensemble",
]
