"""Console table and plots of a trained ensemble over training time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnft.report.plots import pyplot, save_figure
from nnft.verdicts import frozen_ntk_applies


def plot_training(out_dir: Path, ds, prior) -> None:
    """loss.png (train/test loss vs time), g2.png (G2(x_a, x_a) and the mean vs time, with
    frozen-NTK theory where known), ntk.png (NTK trace, entropy, relative change vs time)."""
    plt = pyplot()
    t = np.maximum(ds["time"].values, 0.5)
    valid = ds["valid"].values

    def band(ax, name, label):
        vals = np.where(valid, ds[name].values, np.nan)
        med = np.nanmedian(vals, axis=1)
        lo, hi = np.nanquantile(vals, 0.16, axis=1), np.nanquantile(vals, 0.84, axis=1)
        line, = ax.plot(t, med, "o-", ms=3, label=label)
        ax.fill_between(t, lo, hi, alpha=0.25, color=line.get_color())

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("train_loss", "test_loss"):
        if name in ds:
            band(ax, name, name.replace("_", " ") + " (median, 16-84%)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step (step 0 drawn at 0.5)")
    ax.set_ylabel("loss")
    ax.set_title(f"{prior.name} N={getattr(prior, 'width', '?')}: loss over training")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "loss.png")

    _plot_g2_over_time(plt, ds, prior, t, out_dir / "g2.png")

    if "ntk_trace" in ds:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.9))
        titles = {"ntk_trace": r"NTK trace $\mathrm{tr}\,\Theta_t$ (probe set)",
                  "ntk_entropy": "NTK spectral entropy",
                  "ntk_rel_change": r"$\|\Theta_t - \Theta_0\| / \|\Theta_0\|$"}
        for ax, (name, title) in zip(axes, titles.items()):
            if name in ds:
                band(ax, name, "median, 16-84% of networks")
            ax.set_xscale("log")
            ax.set_xlabel("step (step 0 drawn at 0.5)")
            ax.set_title(title, fontsize=10)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{prior.name} N={getattr(prior, 'width', '?')}: empirical NTK over "
                     "training", fontsize=11)
        fig.tight_layout()
        save_figure(fig, out_dir / "ntk.png")


def _coincident_groups(series, errors) -> list[list[int]]:
    """Points whose curves lie on top of each other (within 2 sigma plus 0.5% of the
    range at every time, e.g. mirror images x, -x of a symmetric ensemble), grouped."""
    span = float(np.nanmax(series) - np.nanmin(series)) or 1.0
    groups: list[list[int]] = []
    for a in range(series.shape[1]):
        for g in groups:
            b = g[0]
            tol = 2 * np.hypot(errors[:, a], errors[:, b]) + 0.005 * span
            if np.all(np.abs(series[:, a] - series[:, b]) <= tol):
                g.append(a)
                break
        else:
            groups.append([a])
    return groups


def _point_label(ds, group) -> str:
    if "x_test" in ds and ds["x_test"].ndim == 2 and ds["x_test"].shape[1] == 1:
        xs = ds["x_test"].values[group, 0]
        return "x = " + ", ".join(f"{x:g}" for x in xs)
    return ", ".join(f"$x_{a}$" for a in group)


def _plot_g2_over_time(plt, ds, prior, t, path) -> None:
    """G2(x_a, x_a; t) and G1(x_a; t): ensemble as markers with error bars, frozen-NTK
    theory as lines; one legend entry per set of points whose curves coincide."""
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    g2 = np.stack([ds["G2"].values[:, a, a] for a in range(ds.sizes["point"])], axis=1)
    g2e = np.stack([ds["G2_stderr"].values[:, a, a] for a in range(ds.sizes["point"])], axis=1)
    theory = "theory_mean" in ds
    handles = []
    for group in _coincident_groups(g2, g2e):
        color = None
        for a in group:
            line = axes[0].errorbar(t, g2[:, a], yerr=g2e[:, a], fmt="o", ms=3, capsize=2,
                                    color=color)
            color = line[0].get_color()
            axes[1].errorbar(t, ds["G1"].values[:, a], yerr=ds["G1_stderr"].values[:, a],
                             fmt="o", ms=3, capsize=2, color=color)
            if theory:
                mean, std = ds["theory_mean"].values[:, a], ds["theory_std"].values[:, a]
                axes[1].plot(t, mean, "-", lw=1, color=color)
                axes[0].plot(t, mean**2 + std**2, "-", lw=1, color=color)
        handles.append(Line2D([], [], color=color, marker="o", ls="none", ms=4,
                              label=_point_label(ds, group)))
    kinds = [Line2D([], [], color="grey", marker="o", ls="none", ms=4,
                    label="ensemble (± stderr)")]
    if theory:
        kinds.append(Line2D([], [], color="grey", lw=1, label="frozen-NTK theory"))
    for ax, lab in ((axes[0], r"$G^{(2)}(x_a, x_a; t)$"), (axes[1], r"$G^{(1)}(x_a; t)$")):
        ax.set_xscale("log")
        ax.set_xlabel("step (step 0 drawn at 0.5)")
        ax.set_ylabel(lab)
    axes[0].set_title("second moment", fontsize=10)
    axes[1].set_title("mean", fontsize=10)
    axes[0].add_artist(axes[0].legend(handles=handles, fontsize=7, loc="upper left",
                                      title="test points", title_fontsize=7))
    axes[1].legend(handles=kinds, fontsize=7, loc="best")
    fig.suptitle(f"{prior.name} N={getattr(prior, 'width', '?')}: "
                 f"{ds.sizes.get('model', '?')} networks over training", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)


def print_training(console, res, prior, section) -> None:
    """The run's header line and a table over the measurement times."""
    from rich.table import Table

    ds = res.dataset
    cfg = section.config
    console.print(f"[bold]{prior.name}[/bold] N={getattr(prior, 'width', '?')}: "
                  f"{cfg.n_models} models, {cfg.optimizer} lr={cfg.learning_rate:g}, "
                  f"{cfg.steps} steps on {section.data_source} in {res.seconds:.1f} s")
    table = Table(show_edge=False, title_justify="left", title="training over time")
    cols = ["step", "train loss (median)", "test loss (median)", "NTK rel. change",
            "NTK entropy", "max |z| of G1 vs frozen NTK"]
    for c in cols:
        table.add_column(c, justify="right")
    valid = ds["valid"].values

    def med(name, k):
        if name not in ds or not valid[k].any():
            return "—"
        return f"{np.median(ds[name].values[k][valid[k]]):.4g}"

    for k, step in enumerate(ds["time"].values):
        z = "—"
        if "theory_mean" in ds:
            with np.errstate(divide="ignore", invalid="ignore"):
                zz = (ds["G1"].values[k] - ds["theory_mean"].values[k]) / ds["G1_stderr"].values[k]
            zz = zz[np.isfinite(zz)]
            z = f"{np.max(np.abs(zz)):.2f}" if zz.size else "—"
            if not frozen_ntk_applies(ds["theory_mean"].values[k], ds["G1_stderr"].values[k],
                                      getattr(prior, "width", 1)):
                z = "n/a: O(1/N) resolved"
        table.add_row(str(step), med("train_loss", k), med("test_loss", k),
                      med("ntk_rel_change", k), med("ntk_entropy", k), z)
    console.print(table)
    if res.diverged:
        first = sorted(res.diverged.items(), key=lambda kv: kv[1])[:10]
        console.print(f"[red]{len(res.diverged)} model(s) diverged (non-finite loss) and were "
                      "masked out: " + ", ".join(f"model {m} at step {s}" for m, s in first)
                      + (" …" if len(res.diverged) > 10 else "") + "[/red]")


def print_training_verdicts(console, times, found) -> None:
    """One verdict line per correlator at each measurement time (Hotelling's T^2)."""
    from nnft.report.tables import verdict_line

    for step, row in zip(times, found):
        for v in row.values():
            console.print(f"step {step}: " + verdict_line(v))
