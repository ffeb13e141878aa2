"""``nnft run`` on a card with ``[training]``: train the ensemble, write files, report."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from nnft import report, results, verdicts
from nnft.app.console import make_console, print_resume
from nnft.app.pipeline import card_text
from nnft.app.sections import TrainingSection
from nnft.report.training import print_training_verdicts
from nnft.training import train_ensemble


def run_training_card(card, out_dir, *, resume: bool = False, progress: bool = True,
                      console=None) -> dict:
    """Train the card's ensemble; write results.nc, summary.json and plots into ``out_dir``;
    print a table. Returns the summary."""
    out_dir = Path(out_dir)
    console = make_console(console, jax.process_index() == 0)
    prior = card.prior()
    section: TrainingSection = card.training
    res = train_ensemble(prior, section.data, section.config, checkpoint_dir=out_dir,
                         resume=resume, progress=progress)
    if resume:
        print_resume(console, res, out_dir, section.config.steps, "steps")
    summary = training_summary(res, prior, section)
    found = verdicts.training_verdicts(res.dataset, getattr(prior, "width", 1),
                                       section.config.n_batches)
    summary["seed"] = section.config.seed
    summary["verdicts"] = [{n: v.to_dict() for n, v in row.items()} for row in found]
    if jax.process_index() != 0:
        return summary
    ds = results.describe(res.dataset.copy(), {
        "card": card_text(card), "card_parsed": card.raw, "source": str(card.source),
        "seed": section.config.seed, "estimator": "moments",
        "estimator_description": results.estimator_description(section.config.n_batches)
        + " over the models, per measurement time",
        "verdicts": json.dumps([{n: v.to_dict() for n, v in row.items()} for row in found])})
    results.write_netcdf(ds, out_dir / "results.nc")
    results.write_json(summary, out_dir / "summary.json")
    report.plot_training(out_dir, res.dataset, prior)
    report.print_training(console, res, prior, section)
    print_training_verdicts(console, res.dataset["time"].values, found)
    return summary


def training_summary(res, prior, section: TrainingSection) -> dict:
    """Plain-JSON summary: per time the loss quantiles, G1/G2 with errors and theory, NTK
    statistics; divergences."""
    ds = res.dataset
    out: dict = {"architecture": prior.hyperparameters(), "training": section.describe(),
                 "n_models": int(ds.sizes["model"]), "times": ds["time"].values.tolist(),
                 "x_test": ds["x_test"].values.tolist(), "seconds": res.seconds,
                 "diverged": {str(k): val for k, val in res.diverged.items()}}
    valid = ds["valid"].values

    def masked(name, fn):
        vals = ds[name].values
        return [fn(vals[t][valid[t]]) if valid[t].any() else None for t in range(len(vals))]

    def q(x):
        return {"median": float(np.median(x)), "q16": float(np.quantile(x, 0.16)),
                "q84": float(np.quantile(x, 0.84)), "mean": float(np.mean(x))}

    for name in ("train_loss", "test_loss", "ntk_trace", "ntk_entropy", "ntk_effective_rank",
                 "ntk_rel_change", "feature_rms", "feature_change_rms"):
        if name in ds:
            out[name] = masked(name, q)
    for name in ("G1", "G2"):
        out[name] = {"value": ds[name].values.tolist(),
                     "stderr": ds[f"{name}_stderr"].values.tolist()}
    if "theory_mean" in ds:
        out["G1"]["theory"] = ds["theory_mean"].values.tolist()
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (ds["G1"].values - ds["theory_mean"].values) / ds["G1_stderr"].values
        finite = z[np.isfinite(z)]
        out["G1"]["z_max_abs"] = float(np.max(np.abs(finite))) if finite.size else None
    return out
