"""``nnft run``: a model card in, correlators with errors against theory out.

One flow for every card: build the prior, run the ensemble (or one ensemble per
width of a scan), compare with the prior's exact theory, then write
``results.nc``, ``summary.json`` and plots into the output folder and print a
table. Long runs checkpoint into the same folder; ``resume=True`` continues.

The output folder is locked for the whole run (:func:`nnft.engine.files.output_lock`:
a second run on it is refused), temporary files a killed run left behind are removed,
and under ``jax.distributed`` only process 0 writes files and prints.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import jax
import numpy as np

from nnft import ensemble, readout, report, results, verdicts
from nnft.app.console import make_console, print_resume
from nnft.engine.files import clean_orphans, output_lock
from nnft.scaling import width_scan


def _writer() -> bool:
    return jax.process_index() == 0


def _measure(card, prior, out_dir: Path, resume: bool, progress: bool, widths=None):
    """The ensemble by the card's estimator (``correlators.estimator``, resolved)."""
    extra = {} if card.memory_limit is None else {"memory_limit": card.memory_limit}
    est = readout.choose(prior, card.estimator, "correlators.estimator")
    if est != "direct":
        return readout.run(
            prior, card.points, card.n_samples, card.seed, estimator=est, widths=widths,
            max_order=card.max_order, chunk_size=card.chunk_size, n_batches=card.n_batches,
            checkpoint_dir=out_dir, resume=resume, progress=progress, **extra)
    return ensemble.run(
        prior, card.points, card.n_samples, card.seed, max_order=card.max_order,
        chunk_size=card.chunk_size, n_batches=card.n_batches, checkpoint_dir=out_dir,
        resume=resume, progress=progress, **extra,
    )


def _estimator(res) -> str:
    return getattr(res, "estimator", "direct")


def _header(prior, res) -> str:
    """The run's first line; after a resume the rate counts this run's networks only."""
    hp = ", ".join(f"{k}={v}" for k, v in prior.hyperparameters().items()
                   if k not in ("name", "dtype"))
    n = res.correlators.n_samples
    info = getattr(res, "info", None)
    n_run = n if info is None else info.units_run
    rate = n_run / max(res.seconds, 1e-9)
    text = f"[bold]{prior.name}[/bold] ({hp}): {n:,} networks on {len(res.points)} points"
    if n_run == 0:
        return text + " (all from the checkpoint)"
    if n_run != n:
        return text + (f" ({n_run:,} in this run, {res.seconds:.1f} s, "
                       f"{rate:,.0f} networks/s)")
    return text + f" in {res.seconds:.1f} s ({rate:,.0f} networks/s)"


def run_single(card, out_dir: Path, *, resume=False, progress=True, console=None, prior=None):
    """One ensemble: measure, compare, write files, print. Returns the summary dict."""
    writer = _writer()
    return _single(card, Path(out_dir), resume, progress and writer,
                   make_console(console, writer), prior)[0]


def _single(card, out_dir: Path, resume, progress, console, prior=None, res=None):
    """:func:`run_single`, returning ``(summary, correlators, theory)``; ``res``: an
    already measured result (a width of a neuron-estimator scan)."""
    prior = prior or card.prior()
    measured_here = res is None
    res = res if res is not None else _measure(card, prior, out_dir, resume, progress)
    if resume and measured_here:
        print_resume(console, res, out_dir, card.n_samples, "networks")
    corr = res.correlators
    names = results.reported(card.orders, card.connected)
    theory = results.theory_for(prior, res.points, results.measured(corr))
    found = verdicts.verdicts(corr, theory, names) if corr.replicates is not None else {}
    summary = results.summary(corr, res.points, theory, prior.hyperparameters(), names,
                              seed=card.seed, verdicts=found)
    summary["estimator"] = _estimator(res)
    if not _writer():  # multi-process: process 0 writes the files
        return summary, corr, theory
    attrs = {**card_attrs(card, prior, res.seconds), "estimator": _estimator(res)}
    results.write_netcdf(results.to_dataset(corr, res.points, theory, attrs, verdicts=found),
                         out_dir / "results.nc")
    summary["seconds"] = res.seconds
    summary["z"] = report.z_summaries(corr, theory)
    results.write_json(summary, out_dir / "summary.json")
    report.plot_correlators(out_dir, prior, corr, res.points, theory)
    report.print_report(console, corr, res.points, theory,
                        _header(prior, res) + f"; estimator: {_estimator(res)}", names,
                        verdicts=found)
    return summary, corr, theory


def card_text(card) -> str:
    """The card verbatim (TOML text) where it came from a file, else its parsed form."""
    try:
        return Path(card.source).read_text(encoding="utf-8")
    except OSError:
        return json.dumps(card.raw, default=str)


def card_attrs(card, prior, seconds) -> dict:
    """results.nc attributes of every card: the card (verbatim and parsed), the
    architecture, the seed, the run time."""
    return {"card": card_text(card), "card_parsed": card.raw,
            "architecture": prior.hyperparameters(), "seed": card.seed,
            "seconds": seconds, "source": str(card.source)}


def _float64(theory):
    return None if theory is None else np.asarray(theory, dtype=np.float64)


def run_scan(card, out_dir: Path, *, resume=False, progress=True, console=None):
    """A width scan: one ensemble per width, then N*G4c (N^2*G6c) against 1/N."""
    out_dir = Path(out_dir)
    writer = _writer()
    console = make_console(console, writer)
    g4, th4, g6, th6 = [], [], [], []
    pooled = _neuron_scan(card, out_dir, resume, progress and writer, console)
    for width in card.widths:
        sub = out_dir / f"width-{width}"
        if writer:
            clean_orphans(sub)
        res = None if pooled is None else pooled._replace(
            prior=card.prior(width=width), correlators=pooled.by_width[width])
        _summary, corr, theory = _single(card, sub, resume, progress and writer, console,
                                         card.prior(width=width), res)
        if 4 in corr.connected:
            g4.append(corr.connected[4])
            th4.append(_float64(theory.get("G4c")))
        if 6 in corr.connected:
            g6.append(corr.connected[6])
            th6.append(_float64(theory.get("G6c")))
    p = len(card.points)
    out = {"widths": list(card.widths), "per_width": [str(out_dir / f"width-{w}")
                                                       for w in card.widths],
           "estimator": "neuron" if pooled is not None else card.estimator}
    scans = {}
    if g4:
        scans["G4c"] = width_scan(card.widths, g4, th4, report.distinct_entries(p, 4), power=1)
    if g6:
        scans["G6c"] = width_scan(card.widths, g6, th6, report.distinct_entries(p, 6), power=2)
    for label, scan in scans.items():
        out[label] = scan.to_dict()
    if not writer:
        return out
    if "G4c" in scans:
        report.plot_width_scan(out_dir / "width-scan-g4c.png",
                               report.tracked_entries(scans["G4c"]), "G4c",
                               title=f"{card.name}: width scan, N = "
                                     + ", ".join(map(str, card.widths)))
    for label, scan in scans.items():
        report.print_width_scan(console, scan, label)
    results.write_json(out, out_dir / "scan.json")
    return out


def _neuron_scan(card, out_dir: Path, resume, progress, console):
    """One neuron-estimator run giving every width of the scan, where that estimator is
    valid and asked for (``auto`` or ``neuron``); else None (one ensemble per width)."""
    prior = card.prior()
    if card.estimator not in ("auto", "neuron") or \
            readout.choose(prior, card.estimator, "correlators.estimator") != "neuron":
        return None
    console.print(f"width scan by the neuron estimator: one run of {card.n_samples:,} "
                  f"networks of width {prior.width} gives every width {list(card.widths)}")
    return _measure(card, prior, out_dir, resume, progress, widths=card.widths)


def run_card(card, out_dir, *, resume: bool = False, progress: bool = True, console=None):
    """Run a model card end to end; returns the summary (or scan) dict.

    Holds the output folder's lock for the whole run (a second run on it raises
    :class:`~nnft.engine.files.OutputLocked`); on a non-writing process of a
    distributed run nothing is printed and no file is written.
    """
    out_dir = Path(out_dir)
    writer = _writer()
    console = make_console(console, writer)
    progress = progress and writer
    t0 = time.perf_counter()
    with output_lock(out_dir) if writer else contextlib.nullcontext():
        if card.training is not None:
            from nnft.app.training_run import run_training_card

            out = run_training_card(card, out_dir, resume=resume, progress=progress,
                                    console=console)
        elif card.interaction is not None or card.mcmc is not None:
            from nnft.app.mcmc_run import run_mcmc_card

            out = run_mcmc_card(card, out_dir, resume=resume, progress=progress,
                                console=console)
        elif card.widths:
            out = run_scan(card, out_dir, resume=resume, progress=progress, console=console)
        else:
            out = run_single(card, out_dir, resume=resume, progress=progress, console=console)
    console.print(f"wrote {out_dir}/ in {time.perf_counter() - t0:.1f} s")
    return out
