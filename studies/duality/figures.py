"""The duality study's figures, drawn from ``results.nc`` and ``summary.json`` only."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import setups as st  # noqa: E402

from nnft.engine.files import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def fig1_alpha(summary, out: Path) -> None:
    rows = summary["alpha_init"]
    depths = sorted({r["depth"] for r in rows})
    fig, axes = plt.subplots(2, len(depths), figsize=(4 * len(depths), 6.5), sharey=True,
                             squeeze=False)
    colours = {1.0: "tab:blue", 0.1: "tab:orange"}
    widths = sorted({r["width"] for r in rows})
    for i, act in enumerate(st.ACTS):
        for j, d in enumerate(depths):
            ax = axes[i, j]
            for ws in st.W_STDS:
                for k, w in enumerate(widths):
                    sel = [r for r in rows if r["activation"] == act and r["depth"] == d
                           and r["W_std"] == ws and r["width"] == w]
                    ax.errorbar([r["b_std"] * (1 + 0.08 * (k - 1)) for r in sel],
                                [r["mean"] for r in sel], [r["stderr"] for r in sel],
                                fmt="o", ms=3 + 2 * k, color=colours[ws], alpha=0.4 + 0.2 * k,
                                label=f"W_std={ws}, N={w}" if (i, j) == (0, 0) else None)
                sel = [r for r in rows if r["activation"] == act and r["depth"] == d
                       and r["W_std"] == ws and r["width"] == widths[-1]]
                ax.plot([r["b_std"] for r in sel], [r["infinite_width"] for r in sel], "k--",
                        lw=0.8, label="infinite width" if (i, j, ws) == (0, 0, 1.0) else None)
            ax.set(xscale="log", yscale="log", title=f"{act}, depth {d}", xlabel="b_std")
        axes[i, 0].set_ylabel("alpha = Theta(x0, x0)")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle("Fig. 1: alpha at initialisation (x0 = 0.5, NTK parameterisation)")
    _save(fig, out / "fig1_alpha.png")


def fig2_eta_max(summary, out: Path) -> None:
    em = summary["eta_max"]
    fig, axes = plt.subplots(2, 2, figsize=(9, 7), sharex=True, squeeze=False)
    for c in em["curves"]:
        ax = axes[int(c["n"] == 4), int(c["f0"] == 10.0)]
        col = "tab:blue" if c["beta"] == 0 else "tab:red"
        ax.plot(c["m"], c["eta_max"], color=col, label=f"eta_max, beta={c['beta']}")
        ax.plot(c["m"], c["eta_unstable"], color=col, ls=":",
                label=f"GD unstable above, beta={c['beta']}")
        ax.set(xscale="log", yscale="log", title=f"n = {c['n']}, f0 = {c['f0']:g}",
               xlabel="m", ylabel="eta")
    for p in em["paper_points"]:
        ax = axes[int(p["n"] == 4), int(p["f0"] == 10.0)]
        ax.plot(p["m"], p["eta"], "o" if p["beta"] == 0 else "s", ms=4,
                color="tab:green" if p["inside"] else "k", alpha=0.7)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Fig. 2: eta_max = (1-beta)^2 / (3 alpha L(f(0))), alpha = {em['alpha']}, "
                 "f(0) = 0; paper's (eta, beta): green inside, black outside")
    _save(fig, out / "fig2_eta_max.png")


def fig3_matching(ds, summary, out: Path) -> None:
    ok = ds["div_nn"].values < 0
    f_nn = ds["f_nn"].values[ok]
    span = np.abs(f_nn[:, -1] - f_nn[:, 0])
    end = ds["end_ode"].values[ok] * span
    mx = ds["max_ode"].values[ok] * span
    col = ds["alpha_change"].values[ok]
    inside = ds["inside"].values[ok].astype(bool)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    lim = max(np.abs(col).max(), 1e-12)
    for ax, y, name in ((axes[0], end, "|f_NN(T) - f_ODE(T)|"),
                        (axes[1], mx, "max_t |f_NN(t) - f_ODE(t)|")):
        for sel, mk in ((inside, "o"), (~inside, "^")):
            sc = ax.scatter(span[sel], np.maximum(y[sel], 1e-12), c=col[sel], cmap="coolwarm",
                            vmin=-lim, vmax=lim, s=12, marker=mk)
        xs = np.geomspace(max(span.min(), 1e-6), span.max(), 10)
        ax.plot(xs, xs, "k--", lw=0.7)
        ax.set(xscale="log", yscale="log", xlabel="|f_NN(T) - f_NN(0)|", ylabel=name)
    fig.colorbar(sc, ax=axes[1], label="alpha(T) - alpha(0)")
    axes[0].set_title("end of training (paper's metric); o inside, ^ outside the bound")
    axes[1].set_title("maximum over the trajectory")
    ex = summary["matching"]["hidden_failures"]["examples"]
    ax = axes[2]
    for e in ex[:2]:
        i = e["run"]
        t = ds["step"].values * np.sqrt(e["eta"])
        ax.plot(t, ds["f_nn"].values[i], label=f"NN: n={e['n']}, eta={e['eta']:.3g}, "
                f"beta={e['beta']}, f0={e['f0']:g}")
        ax.plot(t, ds["f_ode"].values[i], "--", label="ODE")
    ax.set(xlabel="t = i sqrt(eta)", ylabel="f(x0)", xscale="symlog",
           title="end metric < 0.01, trajectory max > 0.1 (early times stretched)")
    ax.legend(fontsize=6)
    fig.suptitle("Fig. 3: trained networks against the ODE with alpha(0)")
    _save(fig, out / "fig3_matching.png")


def fig4_lambda1(summary, out: Path) -> None:
    rows = summary["modes"]
    emp = [r for r in rows if r["width"] != "inf"]
    inf = [r for r in rows if r["width"] == "inf"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    labels = [f"{r['activation']} d{r['depth']} ({r['W_std']},{r['b_std']}) c={r['c']}"
              for r in emp]
    x = np.arange(len(emp))
    for ax, key, name in ((axes[0], "lambda1_over_N", "lambda_1 / N"),
                          (axes[1], "lambda2_over_lambda1", "lambda_2 / lambda_1"),
                          (axes[2], "mean_overlap", "|v_1 . 1| / sqrt(N)")):
        ax.plot(x, [r[key] for r in emp], "o", label=f"width {emp[0]['width']}")
        ax.plot(x, [r[key] for r in inf], "kx", label="infinite width")
        ax.set_xticks(x, labels, rotation=90, fontsize=6)
        ax.set_title(name)
        if key != "mean_overlap":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("Fig. 4: the kernel on 100 inputs spanning c Hubble lengths")
    _save(fig, out / "fig4_lambda1.png")


def fig5_modes(ds, summary, out: Path) -> None:
    if "mode_c_nn" not in ds:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    fb, fb0, fp = (ds[f"mode_fbar_{k}"].values.ravel() for k in ("nn", "nn0", "pred"))
    axes[0].scatter(np.abs(fb - fb0), np.abs(fb - fp), s=10)
    axes[0].set(xscale="log", yscale="log", xlabel="|fbar_NN(T) - fbar_NN(0)|",
                ylabel="|fbar_NN(T) - fbar_eq15(T)|", title="mean mode (eq. 15, lambda_1/N)")
    c0, c, cp = (np.abs(ds[f"mode_{k}"].values).ravel() for k in ("c_nn0", "c_nn", "c_pred"))
    bins = np.geomspace(max(min(c0[c0 > 0].min(), 1e-10), 1e-10), max(c0.max(), c.max()), 40)
    for val, name in ((c0, "NN, t = 0"), (c, "NN, t = T"), (cp, "eq. 16, t = T")):
        axes[1].hist(np.maximum(val, bins[0]), bins=bins, histtype="step", label=name)
    axes[1].axvline(np.median(np.abs(fb) * np.sqrt(ds.sizes["mode"] + 1)), color="r",
                    label="sqrt(N) |fbar_NN(T)|")
    axes[1].set(xscale="log", xlabel="|c_i|", title="mode amplitudes")
    axes[1].legend(fontsize=7)
    m, m0, mb = (ds[f"mode_{k}"].values.ravel() for k in ("mean_nn", "mean_nn0",
                                                          "mean_pred_appB"))
    axes[2].scatter(np.abs(fb - fp), np.abs(m - mb), s=10)
    lo = max(min(np.abs(fb - fp).min(), np.abs(m - mb).min()), 1e-12)
    hi = max(np.abs(fb - fp).max(), np.abs(m - mb).max())
    axes[2].plot([lo, hi], [lo, hi], "k--", lw=0.7)
    axes[2].set(xscale="log", yscale="log", xlabel="error with lambda_1/N (eq. 15)",
                ylabel="error with 1^T Theta 1 / N^2 (App. B)", title="Fig. 6: App. B")
    fig.suptitle("Figs. 5-6: mean and modes predicted from the t = 0 kernel")
    _save(fig, out / "fig5_modes.png")


def all_figures(grid, ds, summary, out: Path) -> None:
    fig1_alpha(summary, out)
    fig2_eta_max(summary, out)
    fig3_matching(ds, summary, out)
    fig4_lambda1(summary, out)
    fig5_modes(ds, summary, out)
