"""``nnft run`` on a card with ``[interaction]`` / ``[mcmc]``: NUTS, diagnostics,
cross-checks from free draws, files and the console report."""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nnft import report, results, verdicts
from nnft._validate import ConfigError
from nnft.app.console import make_console, print_resume
from nnft.app.pipeline import card_text
from nnft.interaction import (
    QuadratureWarning,
    check_quadrature,
    make_target,
    perturbation_infinite_n,
)
from nnft.mcmc import (
    MCMCConfig,
    chain_correlators,
    coupling_of,
    crosscheck_table,
    diagnostics,
    free_draw_crosschecks,
    run_numpyro,
    run_nuts,
    write_inference_data,
)
from nnft.report.tables import print_verdicts


def run_mcmc_card(card, out_dir, *, resume: bool = False, progress: bool = True,
                  console=None) -> dict:
    """Sample the card's theory, measure correlators with autocorrelation-aware errors,
    run the diagnostics and cross-checks, write results.nc, summary.json,
    posterior.nc (arviz InferenceData) and plots into ``out_dir``, print a report."""
    out_dir = Path(out_dir)
    console = make_console(console, jax.process_index() == 0)
    prior = card.prior()
    interaction = card.interaction
    config = card.mcmc if card.mcmc is not None else MCMCConfig(seed=card.seed)
    free = interaction is None or interaction.potential.is_free
    target = make_target(prior, interaction)
    run = run_numpyro if config.sampler == "numpyro" else run_nuts
    result = run(target, card.points, config, checkpoint_dir=out_dir, resume=resume,
                 progress=progress)
    if resume:
        print_resume(console, result, out_dir, config.samples * config.chains, "draws")
    corr, blocking = chain_correlators(result.phi, card.max_order)
    diag = diagnostics(result, card.max_order)
    quad = _quadrature_on_draws(prior, interaction, target, result, diag)
    theory = results.theory_for(prior, card.points, results.measured(corr)) if free else {}
    names = results.reported(card.orders, card.connected)
    found = _verdicts(corr, prior, card.points, theory, names, free)
    coupling = coupling_of(interaction)
    checks, pt_inf = (None, None) if free else _crosschecks(card, prior, config, coupling,
                                                            console)
    tables = _tables(corr, prior, card.points, checks, pt_inf, coupling, free)
    if jax.process_index() != 0:
        return {"diagnostics": diag}

    results.write_netcdf(_dataset(card, prior, config, result, corr, theory, checks, pt_inf,
                                  found), out_dir / "results.nc")
    write_inference_data(result.to_inference_data(), out_dir / "posterior.nc")
    summary = results.summary(corr, card.points, theory, prior.hyperparameters(), names,
                              seed=config.seed, verdicts=found)
    summary.update({
        "sampler": config.sampler, "mcmc": config.to_dict(),
        "interaction": None if interaction is None else interaction.describe(),
        "coupling": coupling, "diagnostics": diag, "blocking": blocking, "quadrature": quad,
        "crosschecks": {name: t for name, t in tables.items()},
        "ok": diag["ok"], "problems": diag["problems"], "seconds": result.seconds["total"]})
    if checks is not None:
        summary["crosschecks"]["n_free_draws"] = checks.n_samples
        summary["crosschecks"]["reweighting_ess"] = checks.ess[0] if checks.ess else None
    if free:
        summary["z"] = report.z_summaries(corr, theory)
    results.write_json(summary, out_dir / "summary.json")
    report.plot_correlators(out_dir, prior, corr, card.points, theory,
                            source=f"NUTS, {config.chains} chains x {config.samples} draws",
                            what=None if free else f"{interaction.potential.kind}, "
                                                   f"coupling {coupling:g}")
    if tables and not free:
        report.plot_crosschecks(out_dir / "crosschecks.png", tables, prior, coupling)
    report.print_mcmc(console, prior, interaction, config, corr, theory, tables, diag, blocking,
                      checks, free, card.points, result)
    print_verdicts(console, found)
    return summary


def _verdicts(corr, prior, points, theory, names, free) -> dict:
    """Hotelling's T^2 per correlator: against the exact theory of a free run; for an
    interacting one against the free theory (is the interaction's effect resolved?), or
    against zero where that is unknown."""
    if free:
        return verdicts.verdicts(corr, theory, names)
    free_theory = results.theory_for(prior, points, names)
    return verdicts.verdicts(corr, free_theory, names, label="the free theory (no interaction)")


def _quadrature_on_draws(prior, interaction, target, result, diag) -> dict | None:
    """The quadrature rule checked on posterior draws; a failure becomes a problem in
    ``diag``."""
    if interaction is None or interaction.method != "quadrature":
        return None
    thin = result.z[:, :: max(1, result.draws // 8)][:, :8].reshape(-1, result.z.shape[-1])
    draws = jax.vmap(target.params)(jnp.asarray(thin))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QuadratureWarning)
        check = check_quadrature(prior, interaction, params=draws)
    for w in caught:
        diag["problems"].append(str(w.message))
        diag["ok"] = False
    return {"nodes": list(check.nodes), "finer": list(check.finer),
            "rel_error_on_posterior_draws": check.rel_error, "converged": check.converged}


def _crosschecks(card, prior, config, coupling, console):
    """``(free-draw checks, infinite-N perturbation theory)``, each None when not asked."""
    interaction = card.interaction
    checks = pt_inf = None
    if config.reweighting or config.perturbation:
        checks = free_draw_crosschecks(prior, interaction, card.points,
                                       [1.0 if coupling == 0 else coupling], card.n_samples,
                                       card.seed, chunk_size=min(card.chunk_size, 16384),
                                       n_batches=card.n_batches)
        if not config.reweighting:
            checks.reweighted, checks.ess = [], []
        if not config.perturbation:
            checks.slope = {}
    if config.perturbation:
        try:
            pt_inf = perturbation_infinite_n(prior, interaction, card.points)
        except ConfigError as err:
            console.print(f"[yellow]infinite-N perturbation theory skipped: {err}[/yellow]")
    return checks, pt_inf


def _tables(corr, prior, points, checks, pt_inf, coupling, free) -> dict:
    """G2 and G4c entry by entry: NUTS, reweighting, perturbation theory, the free theory."""
    exact_free = {}
    if not free:
        for n, fn in (("G2", prior.g2), ("G4c", prior.g4c)):
            val = fn(points)
            exact_free[n] = None if val is None else np.asarray(val)
    tables = {}
    for name, kind, order in (("G2", "full", 2), ("G4c", "connected", 4)):
        if order in corr.full:
            tables[name] = crosscheck_table(name, getattr(corr, kind)[order], checks, pt_inf,
                                            coupling, exact_free.get(name))
    return tables


def _dataset(card, prior, config, result, corr, theory, checks, pt_inf, found=None):
    """results.nc: the correlators plus the cross-checks' reweighted values and slopes."""
    interaction = card.interaction
    attrs = {"card": card_text(card), "card_parsed": card.raw,
             "architecture": prior.hyperparameters(), "seed": config.seed,
             "sampler": config.sampler, "source": str(card.source),
             "interaction": None if interaction is None else interaction.describe(),
             "mcmc": config.to_dict(), "seconds": result.seconds["total"]}
    ds = results.to_dataset(corr, card.points, theory, {k: val for k, val in attrs.items()
                                                         if val is not None},
                            verdicts=found)
    dims = {2: ("p1", "p2"), 4: ("p1", "p2", "p3", "p4")}
    for name, order in (("G2", 2), ("G4c", 4)):
        if order not in corr.full:
            continue
        if checks is not None and checks.reweighted:
            ds[f"{name}_reweighted"] = (dims[order], checks.reweighted[0][name].value)
            ds[f"{name}_reweighted_stderr"] = (dims[order], checks.reweighted[0][name].stderr)
        if checks is not None and checks.slope:
            ds[f"{name}_slope_finite_N"] = (dims[order], checks.slope[name].value)
            ds[f"{name}_slope_finite_N_stderr"] = (dims[order], checks.slope[name].stderr)
    for name, order in (("G2", 2), ("G4c", 4)):
        if pt_inf is not None and order in corr.full:
            ds[f"{name}_slope_infinite_N"] = (dims[order], pt_inf[name][1])
    return results.describe(ds)
