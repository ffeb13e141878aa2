"""Sampling interacting NN field theories: NUTS on the deformed parameter density.

``P_V(theta) ∝ P(theta) exp(-int_box V(phi_theta))`` (TASI eq. 135, sign corrected; see
:mod:`nnft.interaction`) is known up to normalisation, so it is sampled by MCMC in the
unconstrained coordinates of :func:`nnft.interaction.make_target`. Every sampler is a
source of the one driver (:func:`nnft.engine.drive`), which checkpoints and resumes it:

- :mod:`~nnft.mcmc.nuts`: :func:`run_nuts`, blackjax NUTS with Stan-style window
  adaptation (default), chains vmapped and split over devices with ``shard_map``;
- :mod:`~nnft.mcmc.numpyro_nuts`: :func:`run_numpyro`, the same model through numpyro's
  NUTS;
- :mod:`~nnft.mcmc.chains`: :class:`MCMCResult` (arviz ``InferenceData``),
  :func:`autocorrelation_times`, :func:`chain_correlators` (block-jackknife errors, blocks
  much longer than the autocorrelation time); :mod:`~nnft.mcmc.diagnostics`:
  :func:`diagnostics` (R-hat, ESS, divergences, tau_int);
- :mod:`~nnft.mcmc.crosschecks`: :func:`free_draw_crosschecks` (importance reweighting of
  free draws and first-order perturbation theory at finite N), :func:`crosscheck_table`,
  :func:`fit_coupling_slope`.
"""

from __future__ import annotations

from nnft.interaction.action import Interaction
from nnft.interaction.target import make_target
from nnft.mcmc.chains import (
    MCMCResult,
    autocorrelation_times,
    chain_correlators,
    write_inference_data,
)
from nnft.mcmc.config import SAMPLERS, MCMCConfig
from nnft.mcmc.crosschecks import (
    FreeDrawChecks,
    crosscheck_source,
    crosscheck_table,
    fit_coupling_slope,
    free_draw_crosschecks,
)
from nnft.mcmc.diagnostics import RHAT_MAX, diagnostics
from nnft.mcmc.numpyro_nuts import numpyro_source, run_numpyro
from nnft.mcmc.nuts import chain_mesh, coupling_of, initial_positions, nuts_source, run_nuts
from nnft.mcmc.recorder import recorder
from nnft.priors.base import Prior


def sample(prior: Prior, interaction: Interaction | None, points,
           config: MCMCConfig = MCMCConfig(), **kwargs) -> MCMCResult:
    """Sample ``P(theta) exp(-int_box V(phi_theta))`` with ``config.sampler``."""
    target = make_target(prior, interaction)
    if config.sampler == "numpyro":
        kwargs.pop("devices", None)
        return run_numpyro(target, points, config, **kwargs)
    return run_nuts(target, points, config, **kwargs)


__all__ = [
    "RHAT_MAX",
    "SAMPLERS",
    "FreeDrawChecks",
    "MCMCConfig",
    "MCMCResult",
    "autocorrelation_times",
    "chain_correlators",
    "chain_mesh",
    "coupling_of",
    "crosscheck_source",
    "crosscheck_table",
    "diagnostics",
    "fit_coupling_slope",
    "free_draw_crosschecks",
    "initial_positions",
    "numpyro_source",
    "nuts_source",
    "recorder",
    "run_numpyro",
    "run_nuts",
    "sample",
    "write_inference_data",
]
