"""Figures of the study (matplotlib, Agg): fig1 (CNN rows), fig2 (dense heatmaps), fig4
(dense evolution), fig5 (fuel), fig_ae (autoencoder), fig_init_sweep (NTK parameterisation).

Each figure is saved through :func:`nnft.engine.files.atomic_write`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnft.engine.files import atomic_write  # noqa: E402

PROBE = "train"
QUANTITIES = (("train_entropy", "S (nats)"), ("train_trace", "tr Theta"),
              ("train_loss", "train loss"), ("test_loss", "test loss"))


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def _band(ax, a: np.ndarray, label: str, color=None, log=False):
    m = a.mean(0)
    sd = a.std(0) if a.shape[0] > 1 else np.zeros_like(m)
    t = np.arange(a.shape[1])
    (line,) = ax.plot(t, m, label=label, color=color)
    ax.fill_between(t, m - sd, m + sd, color=line.get_color(), alpha=0.2)
    if log:
        ax.set_yscale("log")


def evolution(blocks: dict, title: str, path: Path) -> None:
    """Rows: S, tr, losses against epochs; one line (seed mean +- sd) per run."""
    fig, axes = plt.subplots(1, len(QUANTITIES), figsize=(4 * len(QUANTITIES), 3.2))
    for label, b in blocks.items():
        for ax, (key, name) in zip(axes, QUANTITIES):
            _band(ax, b[key], label, log=key != "train_entropy")
            ax.set_xlabel("epoch")
            ax.set_title(name)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def dense_evolution(runs: dict, path: Path) -> None:
    """fig4: S and tr against epochs, a panel per (activation, depth), a line per width."""
    acts = sorted({k[2] for k in runs})
    depths = sorted({k[1] for k in runs})
    widths = sorted({k[0] for k in runs})
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(2 * len(acts), len(depths), figsize=(3.6 * len(depths),
                                                                  2.8 * 2 * len(acts)),
                             squeeze=False)
    for i, a in enumerate(acts):
        for j, dep in enumerate(depths):
            for k, w in enumerate(widths):
                b = runs[(w, dep, a)]
                c = cmap(k / max(1, len(widths) - 1))
                _band(axes[2 * i, j], b["train_entropy"], f"w={w}", c)
                _band(axes[2 * i + 1, j], b["train_trace"], f"w={w}", c, log=True)
            axes[2 * i, j].set_title(f"{a}, depth {dep}: S")
            axes[2 * i + 1, j].set_title(f"{a}, depth {dep}: tr Theta")
            axes[2 * i + 1, j].set_xlabel("epoch")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def heatmaps(runs: dict, path: Path) -> None:
    """fig2: width x depth heatmaps of train loss, S, tr at epoch 0 and the last epoch."""
    acts = sorted({k[2] for k in runs})
    depths = sorted({k[1] for k in runs})
    widths = sorted({k[0] for k in runs})
    qs = (("train_loss", "loss"), ("train_entropy", "S"), ("train_trace", "log10 tr"))
    fig, axes = plt.subplots(len(acts) * 2, len(qs), figsize=(4.2 * len(qs),
                                                               2.9 * 2 * len(acts)),
                             squeeze=False)
    for i, a in enumerate(acts):
        for e, epoch in enumerate((0, -1)):
            for j, (key, name) in enumerate(qs):
                m = np.zeros((len(depths), len(widths)))
                sd = np.zeros_like(m)
                for r, dep in enumerate(depths):
                    for c, w in enumerate(widths):
                        x = runs[(w, dep, a)][key][:, epoch]
                        x = np.log10(x) if key == "train_trace" else x
                        m[r, c] = x.mean()
                        sd[r, c] = x.std(ddof=1) if len(x) > 1 else np.nan
                ax = axes[2 * i + e, j]
                im = ax.imshow(m, origin="lower", aspect="auto", cmap="magma")
                for r in range(len(depths)):
                    for c in range(len(widths)):
                        ax.text(c, r, f"{m[r, c]:.2f}\n±{sd[r, c]:.2f}", ha="center",
                                va="center", fontsize=6, color="cyan")
                ax.set_xticks(range(len(widths)), widths)
                ax.set_yticks(range(len(depths)), depths)
                ax.set_xlabel("width")
                ax.set_ylabel("depth")
                n_ep = runs[(widths[0], depths[0], a)][key].shape[1] - 1
                ax.set_title(f"{a}: {name}, epoch {0 if epoch == 0 else n_ep}")
                fig.colorbar(im, ax=ax)
    fig.tight_layout()
    _save(fig, path)


def init_sweep(rows: list[dict], path: Path) -> None:
    """S and tr / (C n) against width (seed mean +- stderr), infinite width dashed."""
    acts = sorted({r["activation"] for r in rows})
    fig, axes = plt.subplots(len(acts), 2, figsize=(9, 3.3 * len(acts)), squeeze=False)
    cmap = plt.get_cmap("plasma")
    depths = sorted({r["depth"] for r in rows})
    for i, a in enumerate(acts):
        for k, dep in enumerate(depths):
            rs = sorted((r for r in rows if r["activation"] == a and r["depth"] == dep
                         and r["probe"] == PROBE), key=lambda r: r["width"])
            w = [r["width"] for r in rs]
            c = cmap(k / max(1, len(depths)))
            for j, (q, inf) in enumerate((("entropy", "infinite_width_entropy"),
                                          ("trace_per_point", "infinite_width_trace_per_point"))):
                axes[i, j].errorbar(w, [r[f"{q}_mean"] for r in rs],
                                    [r[f"{q}_stderr"] for r in rs], color=c, marker="o",
                                    label=f"depth {dep}")
                axes[i, j].axhline(rs[0][inf], color=c, ls="--", lw=0.8)
                axes[i, j].set_xscale("log", base=2)
                axes[i, j].set_xlabel("width")
                axes[i, j].set_title(f"{a}: {'S' if q == 'entropy' else 'tr / (C n)'}")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
