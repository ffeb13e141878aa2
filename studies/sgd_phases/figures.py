"""The figures of the sgd-phase-diagram paper from a study Dataset (see run.py).

Heatmaps are drawn in the paper's plane: 1/sigma_W across (log2), T = eps/|B| up (log2), so
the well-trained corner is bottom-right. Fig. 6 takes the grid points nearest to the
paper's three (T, 1/sigma_W).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LEVELS = (0.68, 0.95, 0.997)
FIG6_POINTS = (("ordered", 2.0**-5, 8.0), ("high temperature", 4.0, 8.0),
               ("disordered (jamming)", 2.0**-5, 2.0**-8))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _coords(src):
    """(1/sigma_W, T) of a study Dataset or of a summary dict."""
    if isinstance(src, dict):
        return (np.asarray(src["grid"]["inv_sigma"]), np.asarray(src["grid"]["temperature"]))
    return src["inv_sigma"].values, src["temperature"].values


def _heatmap(ax, ds, values, label, *, log=True, cmap="viridis"):
    inv, temps = _coords(ds)
    x, y = np.log2(inv), np.log2(temps)
    z = np.log10(np.maximum(values, 1e-300)) if log else values
    mesh = ax.pcolormesh(x, y, z, shading="nearest", cmap=cmap)
    ax.figure.colorbar(mesh, ax=ax, label=f"log10 {label}" if log else label)
    ax.set_xlabel(r"log$_2$ 1/$\sigma_W$")
    ax.set_ylabel(r"log$_2$ T = $\epsilon/|B|$")
    return mesh


def _boundaries(ax, ds, fraction, levels=None, colors=None, linestyles=None):
    """Lines where 68 / 95 / 99.7 % of a grid point's models satisfy eq. 4.15."""
    if fraction.shape[0] < 2 or fraction.shape[1] < 2:
        return
    inv, temps = _coords(ds)
    x, y = np.log2(inv), np.log2(temps)
    levels = list(LEVELS) if levels is None else list(levels)
    colors = ["0.6", "0.85", "white"][: len(levels)] if colors is None else colors
    cs = ax.contour(x, y, fraction, levels=levels, colors=colors,
                    linewidths=[1.0, 1.5, 2.0][: len(levels)], linestyles=linestyles)
    ax.clabel(cs, fmt={lv: f"{lv:.1%}" for lv in levels}, fontsize=6)


def _nearest(values, target):
    return int(np.argmin(np.abs(np.log2(np.asarray(values)) - np.log2(target))))


def all_figures(ds, summary: dict, out: Path) -> None:
    plt = _plt()
    out = Path(out)
    loss = np.asarray(summary["test_loss"]["mean"])
    frac = np.asarray(summary["converged_fraction"])

    # Fig. 2: mean test loss
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    _heatmap(ax, ds, loss, "mean test loss", cmap="magma")
    ax.set_title(f"Fig. 2: mean test loss at t_f = {ds.attrs['t_f']}")
    fig.tight_layout()
    fig.savefig(out / "fig2_loss.png", dpi=120)
    plt.close(fig)

    # Figs. 3-4: slices along T, with errors at the smallest sigma_W
    temps = ds["temperature"].values
    grad = np.asarray(summary["grad_norm"]["mean"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for j, inv in enumerate(ds["inv_sigma"].values):
        axes[0].plot(temps, loss[:, j], "-", lw=0.8, label=f"1/σ = 2^{np.log2(inv):.0f}")
        axes[1].plot(temps, grad[:, j], "-", lw=0.8)
    j8 = _nearest(ds["inv_sigma"].values, 8.0)
    for ax, name in zip(axes[:2], ("test_loss", "grad_norm")):
        m = np.asarray(summary[name]["mean"])[:, j8]
        se = np.asarray(summary[name]["stderr"])[:, j8]
        ax.errorbar(temps, m, yerr=se, fmt="ko-", capsize=3, lw=1.5,
                    label=f"1/σ_W = {ds['inv_sigma'].values[j8]:g} ± stderr")
        crossing = np.flatnonzero(frac[:, j8] < LEVELS[0])
        if crossing.size:
            ax.axvline(temps[crossing[0]], color="k", ls="-.", lw=1,
                       label="68% of models satisfy eq. 4.15 below")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("T = ε/|B|")
    axes[0].set_ylabel("mean test loss at t_f")
    axes[1].set_ylabel("mean |∇L| at t_f")
    axes[0].legend(fontsize=5, ncol=2)
    axes[1].legend(fontsize=7)
    g0 = np.asarray(summary["grad_norm_init"]["mean"])[0]
    g0e = np.asarray(summary["grad_norm_init"]["stderr"])[0]
    axes[2].errorbar(ds["inv_sigma"].values, g0, yerr=g0e, fmt="o-", capsize=3)
    axes[2].set_xscale("log", base=2)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("1/σ_W")
    axes[2].set_ylabel(f"mean |∇L| at t = 0, T = {temps[0]:g}")
    fig.suptitle("Figs. 3-4: loss and gradient along T; gradient at initialisation")
    fig.tight_layout()
    fig.savefig(out / "fig4_slices.png", dpi=120)
    plt.close(fig)

    # Fig. 5: feature time correlation and alignment; Figs. 8-9: eq. 4.15 boundaries on top
    overlap = np.asarray(summary["feature_overlap"]["mean"])
    align = np.asarray(summary["alignment"]["mean"])
    rate = np.asarray(summary["rate"]["mean"])
    for fname, title, with_lines in (("fig5_correlation_alignment.png", "Fig. 5", False),
                                     ("fig8_boundaries.png", "Fig. 8: eq. 4.15", True)):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        _heatmap(axes[0], ds, overlap, "G(t_f, 0)", log=False)
        _heatmap(axes[1], ds, align, "alignment E[h φ]", log=False)
        axes[0].set_title(f"{title}: G(t_f, 0) = E[φ(t_f) φ(0)]")
        axes[1].set_title(f"{title}: alignment E[h φ]")
        if with_lines:
            for ax in axes:
                _boundaries(ax, ds, frac)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=120)
        plt.close(fig)

    # Fig. 7: level-spacing rate; Fig. 9: boundaries on loss and rate
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    _heatmap(ax, ds, rate, "λ̄(t_f)", log=False)
    ax.set_title("Fig. 7: time-averaged level-spacing rate λ̄(t_f)")
    fig.tight_layout()
    fig.savefig(out / "fig7_rate.png", dpi=120)
    plt.close(fig)
    summary_figures(summary, out)

    # Fig. 6: eigenvalue flows at the three named points
    times = ds["time"].values
    t_plot = np.where(times == 0, 0.5, times)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (name, temp, inv) in zip(axes, FIG6_POINTS):
        i = _nearest(temps, temp)
        j = _nearest(ds["inv_sigma"].values, inv)
        ev = ds["eigenvalues"].values[i, j]  # (teacher, time, eig)
        for tch in range(ev.shape[0]):
            ax.plot(t_plot, ev[tch], color="C0", lw=0.3, alpha=0.4)
        if name == "ordered":  # the targets: quantiles of the teachers' eigenvalues
            for q in (5, 25, 50, 75, 95):
                ax.axhline(np.percentile(ds["teacher_eigenvalues"].values, q), color="k",
                           ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("SGD step t (t = 0 drawn at 0.5)")
        ax.set_ylabel("eigenvalues of X = W2 W2^T")
        ax.set_title(f"{name}: T = {temps[i]:g}, 1/σ_W = {ds['inv_sigma'].values[j]:g}",
                     fontsize=9)
    fig.suptitle("Fig. 6: eigenvalue flows of 100 students x 16 (dashed: 5, 25, 50, 75, 95% "
                 "quantiles of the teachers' eigenvalues)")
    fig.tight_layout()
    fig.savefig(out / "fig6_eigenvalues.png", dpi=120)
    plt.close(fig)

    # Marchenko-Pastur at initialisation
    from nnft.random_matrix import marchenko_pastur_pdf

    ev0 = ds["eigenvalues"].values[0, :, :, 0, :]  # lowest eps: (S, teacher, eig)
    sw2 = ds["sigma_w"].values ** 2
    scaled = (ev0 / sw2[:, None, None]).ravel()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    xs = np.linspace(0, 3.2, 400)
    axes[0].hist(scaled, bins=80, density=True, alpha=0.6,
                 label=f"x / σ_W² at t = 0, all σ_W ({scaled.size} eigenvalues)")
    axes[0].plot(xs, marchenko_pastur_pdf(xs, 1.0, 0.5), "k-", label="Marchenko-Pastur r = 1/2")
    axes[0].set_xlabel("x / σ_W²")
    axes[0].legend(fontsize=8)
    mp = summary["marchenko_pastur"]
    axes[1].plot([m["inv_sigma"] for m in mp], [m["p_value"] for m in mp], "o-",
                 label="KS p-value, lowest-T grid point")
    axes[1].plot([m["inv_sigma"] for m in mp], [m["p_value_min_over_eps"] for m in mp], "s:",
                 label="smallest over the T column")
    axes[1].axhline(0.01, color="r", lw=1, ls="--", label="0.01")
    axes[1].set_xscale("log", base=2)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("1/σ_W")
    axes[1].set_ylabel("KS p-value vs eq. 4.2")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "marchenko_pastur.png", dpi=120)
    plt.close(fig)


def summary_figures(summary: dict, out: Path) -> None:
    """The figures drawn from ``summary.json`` alone (with its ``derived`` keys, see
    analysis.py): Fig. 9 and the 68% line next to the loss jump in every column."""
    plt = _plt()
    out = Path(out)
    d = summary.get("derived")
    if d is None:
        return
    _, temps = _coords(summary)
    loss = np.asarray(summary["test_loss"]["mean"])
    frac = np.asarray(summary["converged_fraction"])
    sb = d["symmetry_breaking"]

    # Fig. 9: four observables, the sigma_z^2 = 1/2 line (dashed) and the 68% line (dash-dot)
    fig, axes = plt.subplots(2, 2, figsize=(11, 9))
    panels = ((loss, "mean test loss", True, "magma"),
              (np.asarray(summary["feature_overlap"]["mean"]), "G(t_f, 0)", False, "viridis"),
              (np.asarray(summary["alignment"]["mean"]), "alignment E[h φ]", False, "viridis"),
              (np.asarray(summary["rate"]["mean"]), "λ̄(t_f)", False, "viridis"))
    for ax, (vals, label, log, cmap) in zip(axes.ravel(), panels):
        _heatmap(ax, summary, vals, label, log=log, cmap=cmap)
        ax.axvline(np.log2(sb["inv_sigma_c"]), color="w", ls="--", lw=1.5,
                   label=f"σ_z² = 1/2 (measured σ_z² = {sb['q']:.2f} σ_W²): "
                         f"1/σ_W = {sb['inv_sigma_c']:.2f}")
        ax.axvline(np.log2(sb["inv_sigma_c_bound"]), color="0.7", ls=":", lw=1.2,
                   label="σ_z² = σ_W² (the paper's bound, eq. 2.19): 1/σ_W = √2")
        _boundaries(ax, summary, frac, levels=[LEVELS[0]], colors=["c"],
                    linestyles=["dashdot"])
        ax.set_title(label, fontsize=9)
    axes[0, 0].legend(fontsize=6, loc="upper left")
    fig.suptitle("Fig. 9: jamming boundary σ_z² = 1/2 (eq. 2.22, dashed) and the 68% line of "
                 "eq. 4.15 (dash-dot)")
    fig.tight_layout()
    fig.savefig(out / "fig9_boundaries.png", dpi=120)
    plt.close(fig)

    # the 68% line and the loss jump, column by column
    cols = d["line_vs_jump"]
    x = np.asarray([c["inv_sigma"] for c in cols])
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    sharp = np.asarray([c["jump_decades"] >= 0.5 for c in cols])
    for key, fmt, label in (("t_68", "o-", "68% of models satisfy eq. 4.15 (line)"),
                            ("t_jump", "s--", ("largest rise of the mean loss (jump), where "
                                               "it is >= 0.5 decade")),
                            ("t_tenfold", "^:", "loss first 10x its low-T value")):
        y = np.asarray([c[key] for c in cols], float)
        if key == "t_jump":
            y = np.where(sharp, y, np.nan)
        lo, hi = [], []
        for c, yy in zip(cols, y):
            iv = c[key + "_err"]["interval_16_84"]
            ok = iv is not None and np.isfinite(yy)
            lo.append(max(yy - iv[0], 0) if ok else 0)
            hi.append(max(iv[1] - yy, 0) if ok else 0)
        ax.errorbar(x, y, yerr=[lo, hi], fmt=fmt, capsize=3, label=label)
    le = d["line_exponent"]
    xs = np.asarray(le["columns_used_inv_sigma"])
    t68 = {c["inv_sigma"]: c["t_68"] for c in cols}
    y0 = np.exp(np.mean(np.log([t68[v] for v in xs])) + le["exponent"] * np.mean(np.log(xs)))
    ax.plot(xs, y0 * xs ** -le["exponent"], "k-", lw=0.8,
            label=f"fit T_68 ∝ σ_W^{le['exponent']:.2f} ± {le['exponent_stderr_fit']:.2f}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("1/σ_W")
    ax.set_ylabel("T = ε/|B|")
    ax.set_ylim(temps[0], temps[-1])
    ax.legend(fontsize=7)
    ax.set_title("Fig. 8 (columns): the 68% line vs the loss jump (16-84% bootstrap bars)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fig8_line_vs_jump.png", dpi=120)
    plt.close(fig)
