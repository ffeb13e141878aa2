"""Convergence diagnostics of an MCMC run: R-hat, ESS, divergences, tau_int, NaNs."""

from __future__ import annotations

import math

import numpy as np

from nnft.mcmc.chains import MCMCResult, _arviz, _az_dataset, _products, autocorrelation_times

RHAT_MAX = 1.01


def diagnostics(result: MCMCResult, max_order: int = 4) -> dict:
    """R-hat (rank-normalised, split), bulk and tail ESS over the parameters and the
    field on the points, and over the correlator observables; divergences; integrated
    autocorrelation times; gradient evaluations; acceptance; NaN log-densities."""
    params = result.params()
    posterior = {**params, "phi": result.phi}
    flat = {k: x.reshape(x.shape[:2] + (-1,)) for k, x in posterior.items()}
    ds = _az_dataset(flat)

    def summary(data):
        rhat = _arviz("rhat", data)
        bulk = _arviz("ess", data, method="bulk")
        tail = _arviz("ess", data, method="tail")
        vals = lambda d: np.concatenate([np.ravel(d[k].values) for k in d.data_vars])
        r, b, t = vals(rhat), vals(bulk), vals(tail)
        return {"rhat_max": _nanmax(r), "ess_bulk_min": _nanmin(b), "ess_tail_min": _nanmin(t)}

    out = {"parameters": summary(ds)}
    obs = {}
    for order in (2, 4):
        if order <= max_order:
            obs[f"G{order}"] = _products(result.phi, order)[1]
    out["correlator_observables"] = summary(_az_dataset(obs))
    taus = autocorrelation_times(result.phi, max_order)
    out["tau_int"] = {k: {"max": _nanmax(t), "median": float(np.nanmedian(t))}
                      for k, t in taus.items()}
    lp = result.stats["lp"]
    out["divergences"] = int(np.sum(result.stats["diverging"]))
    out["warmup_divergences"] = int(np.sum(result.warmup["diverging"]))
    out["nonfinite_logdensity"] = int(np.sum(~np.isfinite(lp)))
    out["nonfinite_fields"] = int(np.sum(~np.isfinite(result.phi)))
    out["acceptance_rate"] = float(np.nanmean(result.stats["acceptance_rate"]))
    out["step_size"] = [float(s) for s in result.step_size]
    out["gradient_evaluations"] = result.gradient_evaluations
    out["warmup_gradient_evaluations"] = int(np.sum(result.warmup["n_steps"]))
    out["mean_steps_per_draw"] = float(np.mean(result.stats["n_steps"]))
    out["chains"], out["draws"] = result.chains, result.draws
    out["seconds"] = result.seconds
    rhat = max(out["parameters"]["rhat_max"], out["correlator_observables"]["rhat_max"])
    problems = []
    if out["divergences"]:
        problems.append(f"{out['divergences']} divergent transitions")
    if out["nonfinite_logdensity"] or out["nonfinite_fields"]:
        problems.append(f"{out['nonfinite_logdensity']} non-finite log-densities, "
                        f"{out['nonfinite_fields']} non-finite field values")
    if not rhat < RHAT_MAX:
        problems.append(f"R-hat {rhat:.4f} >= {RHAT_MAX}")
    out["rhat_max"] = rhat
    out["problems"] = problems
    out["ok"] = not problems
    return out


def _nanmax(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmax(x)) if np.any(np.isfinite(x)) else math.nan


def _nanmin(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmin(x)) if np.any(np.isfinite(x)) else math.nan
