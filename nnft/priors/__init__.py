"""Architectures as priors over functions: one module per architecture.

``make_prior(name, **hyperparameters)`` builds one by its card name.
"""

from __future__ import annotations

import importlib

from nnft import _validate as v
from nnft.priors.base import Prior, as_points, fields, sample_fields
from nnft.priors.parameterization import (
    PRESETS,
    ABCParameterization,
    abc_family,
    get_parameterization,
    learning_rate_scale,
)

#: card name -> "module:Class"
REGISTRY = {
    "gauss-net": "nnft.priors.gauss:GaussNet",
    "cos-net": "nnft.priors.cos:CosNet",
    "scalar-net": "nnft.priors.spectral:ScalarNet",
    "spectral-net": "nnft.priors.spectral:SpectralNet",
    "mlp": "nnft.priors.mlp:MLP",
}


def prior_class(name: str) -> type[Prior]:
    v.choice("architecture.name", name, REGISTRY)
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_prior(name: str, **hyperparameters) -> Prior:
    """The architecture ``name`` with the given hyperparameters (validated)."""
    cls = prior_class(name)
    try:
        return cls(**hyperparameters)
    except TypeError as err:  # unknown keyword
        import dataclasses

        allowed = [f.name for f in dataclasses.fields(cls) if f.init]
        bad = sorted(set(hyperparameters) - set(allowed))
        raise v.ConfigError(
            f"architecture: unknown hyperparameter(s) {', '.join(bad) or str(err)} for {name}; "
            f"allowed: {', '.join(allowed)}"
        ) from None


__all__ = [
    "PRESETS",
    "REGISTRY",
    "ABCParameterization",
    "Prior",
    "abc_family",
    "as_points",
    "fields",
    "get_parameterization",
    "learning_rate_scale",
    "make_prior",
    "prior_class",
    "sample_fields",
]
