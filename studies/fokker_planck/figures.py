"""The study's figures: the paper's Fig. 3 (latent scatter, KDE, score arrows), Figs. 5-9
(empirical against evolved outputs at epochs 0, 5 and the last), the weight-space densities,
the baselines, the diffusion scan and the fixed point."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import analysis as an
import autoencoder as ae
import matplotlib.pyplot as plt
import numpy as np

from nnft.engine.files import atomic_write


def _save(fig, path: Path):
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png",
                                                bbox_inches="tight"))
    plt.close(fig)


def _imshow(ax, img, extent, title):
    ax.imshow(np.asarray(img).T, origin="lower", extent=(extent[0], extent[2], extent[1],
                                                          extent[3]), aspect="auto",
              cmap="viridis")
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=6)


def fig3(block, x, labels, out: Path):
    """Fig. 3 at the last epoch, seed 0: outputs of W1 and of W2 by digit, their KDEs, and the
    score arrows -grad V = grad log P on the first bottleneck's KDE."""
    t = int(block["keep_epochs"][-1])
    h = ae.features(block, t, 0, x)
    z1 = h @ block["rows"][t, 0]
    z2 = z1 @ block["w2"][t, 0]
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
    for ax, z, name in ((axes[0, 0], z1, "(a) after W1"), (axes[0, 1], z2, "(b) after W2")):
        cmap = matplotlib.colors.ListedColormap(plt.get_cmap("tab10").colors[:6])
        sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap=cmap, vmin=-0.5, vmax=5.5, s=3)
        ax.set_title(f"{name}, epoch {t}", fontsize=9)
    fig.colorbar(sc, ax=axes[0, 1], label="digit", ticks=range(6))
    rows = block["rows"][t, 0]
    axes[0, 2].scatter(rows[:, 0], rows[:, 1], s=4, c="k")
    axes[0, 2].set_title(f"(c) the 200 rows of W1, epoch {t}", fontsize=9)
    for ax, z, name in ((axes[1, 0], z1, "(d) KDE after W1"), (axes[1, 1], z2,
                                                               "(e) KDE after W2")):
        g = an.image_grid(z)
        _imshow(ax, an.kde(z, g.centres()), g.lo + g.hi, name)
    g = an.image_grid(z1)
    P = an.kde(z1, g.centres())
    V = -np.log(np.maximum(P, 1e-300))
    gx, gy = np.gradient(V, *g.h)
    _imshow(axes[1, 2], P, g.lo + g.hi, "(f) KDE after W1 and the score -grad V (direction)")
    c = g.centres()
    s = slice(3, None, 7)
    norm = np.hypot(gx, gy) + 1e-300
    axes[1, 2].quiver(c[s, s, 0], c[s, s, 1], (-gx / norm)[s, s], (-gy / norm)[s, s],
                      color="w", angles="xy", scale_units="xy", scale=1 / (4 * g.h.min()),
                      width=0.004)
    _save(fig, out / "fig3_latent.png")


def fig5_9(seed0: dict, summary: dict, out: Path):
    """Empirical against evolved output densities at the figure epochs (both bottlenecks)."""
    ts = sorted(int(k.split("_")[1]) for k in seed0 if k.startswith("fig_") and
                k.endswith("_true") and "weights" not in k)
    cols = (("true", "empirical"), ("iid", "FP look-ahead (P0 at 0), i.i.d. rows"),
            ("transported", "FP look-ahead, transported rows"),
            ("free", "free-running, transported rows"))
    for layer, tag in ((0, "w1"), (1, "w2")):
        fig, axes = plt.subplots(len(ts), len(cols), figsize=(13, 3.6 * len(ts)), squeeze=False)
        for i, t in enumerate(ts):
            ext = seed0[f"fig_{t}_extent"][layer]
            for j, (key, name) in enumerate(cols):
                img = seed0[f"fig_{t}_{key}"][layer]
                title = f"epoch {t}: {name}"
                if key != "true":
                    from nnft.fokker_planck import compare_images

                    mse, r = compare_images(seed0[f"fig_{t}_true"][layer], img)
                    title += f"\nMSE {mse:.3f}, r {r:.2f}"
                _imshow(axes[i, j], img, ext, title)
        fig.suptitle(f"outputs after {'W1' if layer == 0 else 'W1 and W2'} (seed 0)")
        fig.tight_layout()
        _save(fig, out / f"fig5_9_outputs_{tag}.png")
    fig, axes = plt.subplots(len(ts), 2, figsize=(7, 3.1 * len(ts)), squeeze=False)
    for i, t in enumerate(ts):
        ext = seed0[f"fig_{t}_weights_extent"]
        _imshow(axes[i, 0], seed0[f"fig_{t}_weights_true"], ext, f"epoch {t}: rows' KDE")
        _imshow(axes[i, 1], seed0[f"fig_{t}_weights_fp"], ext,
                f"epoch {t}: FP look-ahead" if t else "epoch 0: P0 = N(0, I/200)")
    _save(fig, out / "fig_weights.png")


def fig_baselines(summary: dict, out: Path):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, view in zip(axes, an.VIEWS):
        for method in an.METHODS:
            rs = [r for r in summary["epochs"] if r["view"] == view and r["method"] == method]
            if not rs:
                continue
            e = np.array([r["epoch"] for r in rs], float)
            ax.errorbar(np.maximum(e, 0.5), [r["r_mean"] for r in rs],
                        [r["r_sd"] for r in rs], marker="o", ms=3, capsize=2, label=method)
        ax.axhline(0.98, color="k", ls=":", lw=1, label="paper r = 0.98 (epoch 5)")
        ax.set_xscale("log")
        ax.set_xlabel("epoch (0 drawn at 0.5)")
        ax.set_ylabel("Pearson r")
        ax.set_title(view)
    axes[0].legend(fontsize=7)
    _save(fig, out / "fig_baselines.png")


def fig_sigma_fixed_point(summary: dict, out: Path):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for view in ("weights", "outputs_transported"):
        rs = [r for r in summary["sigma_scan"] if r["view"] == view and
              r["epoch"] == "mean_over_epochs_ge_1"]
        s = np.array([r["sigma2"] for r in rs])
        axes[0].errorbar(np.maximum(s, 1e-7), [r["r_mean"] for r in rs],
                         [r["r_sd"] for r in rs], marker="o", capsize=2, label=view)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("sigma2 (0 drawn at 1e-7)")
    axes[0].set_ylabel("r, FP look-ahead, mean over epochs >= 1")
    axes[0].legend(fontsize=7)
    fp = summary["fixed_point"]
    for key, name in (("l1_free_running", "free-running FP"), ("l1_true_kde", "rows' KDE")):
        m = np.array(fp[key]["mean"])
        axes[1].semilogy(np.arange(1, len(m) + 1), m, label=name)
    axes[1].axhline(fp["threshold"], color="k", ls=":")
    axes[1].set_xlabel("epoch t+1")
    axes[1].set_ylabel("||P_{t+1} - P_t||_1")
    axes[1].legend(fontsize=7)
    loss = np.array(summary["loss"]["mean"])
    axes[2].semilogy(loss, label="epoch-mean training loss")
    axes[2].axhline(0.03, color="k", ls=":", label="paper ~0.03 at epoch 80")
    axes[2].set_xlabel("epoch")
    axes[2].legend(fontsize=7)
    _save(fig, out / "fig_sigma_fixed_point_loss.png")


def all_figures(block, seeds, summary, x, labels, out: Path):
    fig3(block, x, labels, out)
    fig5_9(seeds[0], summary, out)
    fig_baselines(summary, out)
    fig_sigma_fixed_point(summary, out)
