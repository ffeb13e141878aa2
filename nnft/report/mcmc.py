"""Console tables and plots of an MCMC run: cross-checks entry by entry, diagnostics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nnft.report.plots import pyplot, save_figure
from nnft.report.tables import fmt_point, print_report


def plot_crosschecks(path: Path, tables: dict, prior, coupling: float) -> None:
    """NUTS, reweighting and first-order perturbation theory entry by entry."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tables), figsize=(6 * len(tables), 4), squeeze=False)
    for ax, (name, table) in zip(axes[0], tables.items()):
        rows = table["rows"][:12]
        x = np.arange(len(rows))
        ax.errorbar(x - 0.15, [r["nuts"] for r in rows], yerr=[r["nuts_err"] for r in rows],
                    fmt="o", ms=4, capsize=3, label="NUTS")
        if "reweighted" in rows[0]:
            ax.errorbar(x + 0.15, [r["reweighted"] for r in rows],
                        yerr=[r["reweighted_err"] for r in rows], fmt="s", ms=4, capsize=3,
                        label="reweighted free draws")
        if "pt_finite_N" in rows[0]:
            ax.plot(x, [r["pt_finite_N"] for r in rows], "_", ms=14, mew=2,
                    label="1st-order PT, finite N")
        if "pt_infinite_N" in rows[0]:
            ax.plot(x, [r["pt_infinite_N"] for r in rows], "x", color="k",
                    label=r"1st-order PT, $N = \infty$")
        ax.set_xticks(x, [",".join(map(str, r["entry"])) for r in rows], rotation=60,
                      fontsize=7)
        ax.set_xlabel("point indices (a, b, ...)")
        ax.set_ylabel(r"$G^{(2)}(x_a, x_b)$" if name == "G2" else
                      r"$G_c^{(4)}(x_a, x_b, x_c, x_d)$" if name == "G4c" else name)
        ax.set_title(f"{name}, {prior.name} N={getattr(prior, 'width', '?')}, "
                     f"coupling {coupling:g}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def _fmt(val, err=None) -> str:
    if val is None or (isinstance(val, float) and not math.isfinite(val)):
        return "—"
    return f"{val:.5g}" if err is None else f"{val:.5g} ± {err:.2g}"


def print_mcmc(console, prior, interaction, config, corr, theory, tables, diag, blocking,
               checks, free, points, result) -> None:
    """The run's header line, the correlators (free theory: against exact; interacting:
    NUTS against reweighted free draws and perturbation theory) and the diagnostics."""
    from rich.table import Table

    hp = ", ".join(f"{k}={val}" for k, val in prior.hyperparameters().items()
                   if k not in ("name", "dtype"))
    inter = ("free theory" if interaction is None else
             ", ".join(f"{k}={val}" for k, val in interaction.describe().items()))
    console.print(f"[bold]{prior.name}[/bold] ({hp}); {inter}; {config.sampler} NUTS, "
                  f"{result.chains} chains x {result.draws} draws (+{config.warmup} warmup) "
                  f"in {result.seconds['total']:.1f} s on {result.seconds['devices']} device(s)")
    if free:
        print_report(console, corr, points, theory, "free theory: MCMC against exact")
    for name, table in tables.items():
        if free:
            break
        t = Table(title=f"{name} (errors: block jackknife, blocks of "
                  f"{blocking['block_length']} draws = {blocking['block_over_tau']:.0f} tau)",
                  title_justify="left", show_edge=False)
        for col in ("points", "NUTS", "reweighted", "z", "1st order, N", "1st order, N=inf"):
            t.add_column(col, justify="right")
        for row in table["rows"][:12]:
            z = row.get("z")
            t.add_row(", ".join(fmt_point(points[i]) for i in row["entry"]),
                      _fmt(row["nuts"], row["nuts_err"]),
                      _fmt(row.get("reweighted"), row.get("reweighted_err")),
                      "—" if z is None else f"{z:+.2f}",
                      _fmt(row.get("pt_finite_N"), row.get("pt_finite_N_err")),
                      _fmt(row.get("pt_infinite_N")),
                      style="red" if z is not None and abs(z) > 4 else None)
        zs = [abs(r["z"]) for r in table["rows"] if r.get("z") is not None
              and math.isfinite(r["z"])]
        if zs:
            t.caption = (f"{len(zs)} distinct entries: max |z| (NUTS vs reweighting) = "
                         f"{max(zs):.2f}")
            t.caption_justify = "left"
        console.print(t)
    if checks is not None and checks.ess:
        console.print(f"reweighting: {checks.n_samples:,} free draws, ESS of the weights "
                      f"{checks.ess[0]:,.0f}" + ("" if checks.ess[0] > 1e4 else
                                                  " [yellow](< 1e4: not reliable)[/yellow]"))
    d = diag
    t = Table(title="diagnostics", title_justify="left", show_edge=False)
    for col in ("", "R-hat max", "ESS bulk min", "ESS tail min"):
        t.add_column(col, justify="right")
    for label, key in (("parameters + fields", "parameters"),
                       ("correlator observables", "correlator_observables")):
        s = d[key]
        t.add_row(label, _fmt(s["rhat_max"]), _fmt(s["ess_bulk_min"]), _fmt(s["ess_tail_min"]))
    taus = ", ".join(f"{k}: max {val['max']:.2f}, median {val['median']:.2f}"
                     for k, val in d["tau_int"].items())
    t.caption = (f"divergences {d['divergences']} (warmup {d['warmup_divergences']}); "
                 f"acceptance {d['acceptance_rate']:.2f}; {d['mean_steps_per_draw']:.1f} "
                 f"gradients per draw; tau_int {taus}")
    t.caption_justify = "left"
    console.print(t)
    if d["problems"]:
        console.print("[bold red]WARNING:[/bold red] " + "; ".join(d["problems"])
                      + " — the numbers above are not trustworthy")
