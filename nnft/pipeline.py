"""``nnft run``: a model card in, correlators with errors against theory out.

One flow for every card: build the prior, run the ensemble (or one ensemble per
width of a scan), compare with the prior's exact theory, then write
``results.nc``, ``summary.json`` and plots into the output folder and print a
table. Long runs checkpoint into the same folder; ``resume=True`` continues.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from nnft import ensemble, report, results
from nnft.scaling import width_scan


def _console(console):
    if console is not None:
        return console
    from rich.console import Console

    return Console()


def _measure(card, prior, out_dir: Path, resume: bool, progress: bool):
    return ensemble.run(
        prior, card.points, card.n_samples, card.seed, max_order=card.max_order,
        chunk_size=card.chunk_size, n_batches=card.n_batches, checkpoint_dir=out_dir,
        resume=resume, progress=progress,
    )


def _header(prior, res) -> str:
    hp = ", ".join(f"{k}={v}" for k, v in prior.hyperparameters().items()
                   if k not in ("name", "dtype"))
    rate = res.correlators.n_samples / max(res.seconds, 1e-9)
    return (f"[bold]{prior.name}[/bold] ({hp}): {res.correlators.n_samples:,} networks on "
            f"{len(res.points)} points in {res.seconds:.1f} s ({rate:,.0f} networks/s)")


def run_single(card, out_dir: Path, *, resume=False, progress=True, console=None, prior=None):
    """One ensemble: measure, compare, write files, print. Returns the summary dict."""
    console = _console(console)
    prior = prior or card.prior()
    res = _measure(card, prior, out_dir, resume, progress)
    corr = res.correlators
    names = results.measured(corr)
    theory = results.theory_for(prior, res.points, names)
    if jax.process_index() != 0:  # multi-host: process 0 writes the files
        return results.summary(corr, res.points, theory, prior.hyperparameters())
    attrs = {"card": card.raw, "architecture": prior.hyperparameters(), "seed": card.seed,
             "seconds": res.seconds, "source": str(card.source)}
    results.write_netcdf(results.to_dataset(corr, res.points, theory, attrs),
                         out_dir / "results.nc")
    summary = results.summary(corr, res.points, theory, prior.hyperparameters())
    summary["seconds"] = res.seconds
    summary["z"] = report.z_summaries(corr, theory)
    results.write_json(summary, out_dir / "summary.json")
    report.plot_correlators(out_dir, prior, corr, res.points, theory)
    report.print_report(console, corr, res.points, theory, _header(prior, res))
    return summary


def run_scan(card, out_dir: Path, *, resume=False, progress=True, console=None):
    """A width scan: one ensemble per width, then N*G4c (N^2*G6c) against 1/N."""
    console = _console(console)
    per_width, g4, th4, g6, th6 = [], [], [], [], []
    for width in card.widths:
        prior = card.prior(width=width)
        sub = out_dir / f"width-{width}"
        summary = run_single(card, sub, resume=resume, progress=progress, console=console,
                             prior=prior)
        per_width.append(summary)
        corr_path = sub / "results.nc"
        import xarray as xr

        with xr.open_dataset(corr_path, engine="h5netcdf") as ds:
            if "G4c" in ds:
                g4.append(_est(ds, "G4c"))
                th4.append(ds["G4c_theory"].values if "G4c_theory" in ds else None)
            if "G6c" in ds:
                g6.append(_est(ds, "G6c"))
                th6.append(ds["G6c_theory"].values if "G6c_theory" in ds else None)
    p = len(card.points)
    out = {"widths": list(card.widths), "per_width": [str(out_dir / f"width-{w}")
                                                       for w in card.widths]}
    if g4:
        entries = report.distinct_entries(p, 4)
        scan4 = width_scan(card.widths, g4, th4, entries, power=1)
        out["G4c"] = scan4.to_dict()
        report.plot_width_scan(out_dir / "width-scan-g4c.png", _tracked(scan4), "G4c")
        _print_scan(console, scan4, "G4c")
    if g6:
        entries = report.distinct_entries(p, 6)
        scan6 = width_scan(card.widths, g6, th6, entries, power=2)
        out["G6c"] = scan6.to_dict()
        _print_scan(console, scan6, "G6c")
    results.write_json(out, out_dir / "scan.json")
    return out


def _est(ds, name):
    from nnft.estimators import Estimate

    return Estimate(ds[name].values, ds[f"{name}_stderr"].values)


def _tracked(scan, k: int = 4):
    """The scan restricted to the k entries with the largest |N^p G_c| (for a readable plot)."""
    import dataclasses

    order = sorted(scan.entries, key=lambda e: -abs(scan.scaled[e][-1]))[:k]
    return dataclasses.replace(scan, entries=order)


def _print_scan(console, scan, label):
    from rich.table import Table

    t = Table(title=f"width scan: N^{scan.power} {label} = A + B/N, widths {scan.widths}",
              title_justify="left", show_edge=False)
    for col in ("entry", "A (fit)", "A (theory)", "z", "log-log slope"):
        t.add_column(col, justify="right")
    zs = []
    for e in _tracked(scan, 8).entries:
        f, s = scan.fits[e], scan.slopes[e]
        th = None if scan.theory[e] is None else float(np.mean(scan.theory[e]))
        z = None if th is None else (f["A"] - th) / f["A_err"]
        t.add_row(str(e), f"{f['A']:.5g} ± {f['A_err']:.2g}",
                  "—" if th is None else f"{th:.5g}", "—" if z is None else f"{z:+.2f}",
                  f"{s['slope']:+.3f} ± {s['slope_err']:.3f}")
    for e in scan.entries:
        if scan.theory[e] is not None and scan.fits[e]["A_err"] > 0:
            zs.append((scan.fits[e]["A"] - float(np.mean(scan.theory[e]))) / scan.fits[e]["A_err"])
    if zs:
        t.caption = f"all {len(zs)} distinct entries: max |z| of A = {np.max(np.abs(zs)):.2f}"
    console.print(t)


def run_card(card, out_dir, *, resume: bool = False, progress: bool = True, console=None):
    """Run a model card end to end; returns the summary (or scan) dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if card.training is not None:
        from nnft.training import run_training_card

        out = run_training_card(card, out_dir, resume=resume, progress=progress,
                                console=_console(console))
    elif card.interaction is not None or card.mcmc is not None:
        from nnft.mcmc import run_mcmc_card

        out = run_mcmc_card(card, out_dir, resume=resume, progress=progress,
                            console=_console(console))
    elif card.widths:
        out = run_scan(card, out_dir, resume=resume, progress=progress, console=console)
    else:
        out = run_single(card, out_dir, resume=resume, progress=progress, console=console)
    _console(console).print(f"wrote {out_dir}/ in {time.perf_counter() - t0:.1f} s")
    return out
