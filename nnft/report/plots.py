"""Plots of measured correlators against theory (PNG files, matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnft.engine.files import atomic_write_bytes
from nnft.report.tables import distinct_entries


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    """``fig`` as a PNG at ``path``, written atomically; the figure is closed."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _direction(points):
    """Unit vector along which theory curves are drawn (the spread of the points)."""
    pts = np.asarray(points)
    span = pts - pts[0]
    far = span[np.argmax(np.linalg.norm(span, axis=1))]
    n = np.linalg.norm(far)
    e = np.zeros(pts.shape[1])
    e[0] = 1.0
    return far / n if n > 0 else e


def _width(prior) -> str:
    width = getattr(prior, "width", None)
    return "" if width is None else f", N = {width}"


def _samples(n) -> str:
    """``10^6`` for a power of ten, else ``1.3e+05``, as mathtext."""
    n = float(n)
    k = round(np.log10(n)) if n > 0 else 0
    return f"$10^{{{k}}}$" if n > 0 and abs(n - 10.0**k) < 1e-9 * n else f"{n:.3g}"


def _panels(plt, with_residuals: bool):
    """One axis, or a main axis over a residual axis (``(value - theory) / stderr``)."""
    if not with_residuals:
        fig, ax = plt.subplots(figsize=(6, 4))
        return fig, ax, None
    fig, (ax, res) = plt.subplots(2, 1, figsize=(6, 5.2), sharex=True, layout="constrained",
                                  gridspec_kw={"height_ratios": [3, 1]})
    fig.align_ylabels((ax, res))
    for k, shade in ((2, 0.12), (1, 0.2)):
        res.axhspan(-k, k, color="grey", alpha=shade, lw=0)
    res.axhline(0, color="k", lw=0.8)
    res.set_ylabel(r"(MC $-$ theory)/$\sigma$")
    return fig, ax, res


def _finish(fig) -> None:
    """Tight layout unless the figure has a layout engine (the residual panels)."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()


def _residuals(res, r, value, stderr, theory, color, marker="o"):
    """Residuals in units of the Monte Carlo standard error, symmetric y-range >= 3."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero error: no residual
        z = (np.asarray(value, float) - np.asarray(theory, float)) / np.asarray(stderr, float)
    z = np.where(np.isfinite(z), z, np.nan)
    res.plot(r, z, marker, ms=4, color=color, ls="none")
    finite = np.abs(z[np.isfinite(z)])
    top = max(3.0, 1.1 * float(finite.max()) if finite.size else 3.0,
              abs(res.get_ylim()[0]), abs(res.get_ylim()[1]))
    res.set_ylim(-top, top)


def plot_g2(path: Path, prior, correlators, points, theory_g2, *, source: str | None = None,
            title: str | None = None):
    """G2 against separation |x_a - x_b| over all distinct pairs, with the theory curve and,
    below, the residuals in units of the standard error (the error bars of 10^6 networks
    are invisible on the scale of G2 itself)."""
    plt = pyplot()
    pts = np.asarray(points)
    est = correlators.full[2]
    pairs = distinct_entries(len(pts), 2)
    r = np.array([np.linalg.norm(pts[a] - pts[b]) for a, b in pairs])
    value = [est.value[p] for p in pairs]
    stderr = [est.stderr[p] for p in pairs]
    fig, ax, res = _panels(plt, theory_g2 is not None)
    line = ax.errorbar(r, value, yerr=stderr, fmt="o", ms=4, capsize=3,
                       label=source or f"Monte Carlo, {_samples(correlators.n_samples)} "
                                       "networks")
    if theory_g2 is not None:
        if getattr(prior, "translation_invariant", False):
            grid = np.linspace(0, max(r.max(), 1e-9) * 1.05, 200)
            e, x0 = _direction(pts), pts[0]
            curve = [prior.g2(np.stack([x0, x0 + t * e]))[0, 1] for t in grid]
            ax.plot(grid, curve, "-", color="k", lw=1, label="theory")
        else:
            ax.plot(r, [theory_g2[p] for p in pairs], "x", color="k", label="theory")
        _residuals(res, r, value, stderr, [theory_g2[p] for p in pairs], line[0].get_color())
    (res if res is not None else ax).set_xlabel(r"$|x_a - x_b|$")
    ax.set_ylabel(r"$G^{(2)}(x_a, x_b)$")
    ax.set_title(title or f"{prior.name}{_width(prior)}: two-point function", fontsize=10)
    ax.legend(fontsize=8)
    _finish(fig)
    save_figure(fig, path)


def plot_g4c(path: Path, prior, correlators, points, theory_g4c, *, source: str | None = None,
             title: str | None = None):
    """G4c(x_0, x_0, x_b, x_b) and G4c(x_b, x_b, x_b, x_b) against |x_b - x_0|, with theory
    and, below, the residuals in units of the standard error."""
    plt = pyplot()
    pts = np.asarray(points)
    est = correlators.connected[4]
    r = np.linalg.norm(pts - pts[0], axis=1)
    fig, ax, res = _panels(plt, theory_g4c is not None)
    series = (("aabb", lambda b: (0, 0, b, b), r"$G_c^{(4)}(x_0, x_0, x_b, x_b)$", "o"),
              ("bbbb", lambda b: (b, b, b, b), r"$G_c^{(4)}(x_b, x_b, x_b, x_b)$", "s"))
    for k, (key, index, label, marker) in enumerate(series):
        idx = [index(b) for b in range(len(pts))]
        value, stderr = [est.value[i] for i in idx], [est.stderr[i] for i in idx]
        dodge = (k - 0.5) * 0.012 * max(r.max(), 1e-9)  # the two series' bars apart
        line = ax.errorbar(r + dodge, value, yerr=stderr, fmt=marker, ms=4, capsize=3,
                           label=label + f" ({source or 'MC'})")
        if theory_g4c is None:
            continue
        color = line[0].get_color()
        if getattr(prior, "translation_invariant", False):
            grid = np.linspace(0, max(r.max(), 1e-9) * 1.05, 120)
            e, x0 = _direction(pts), pts[0]
            two = [prior.g4c(np.stack([x0, x0 + t * e])) for t in grid]
            j = (0, 0, 1, 1) if key == "aabb" else (1, 1, 1, 1)
            ax.plot(grid, [t[j] for t in two], "-", color=color, lw=1)
        else:
            ax.plot(r, [theory_g4c[i] for i in idx], "x", color=color)
        _residuals(res, r + dodge, value, stderr, [theory_g4c[i] for i in idx], color, marker)
    low, high = ax.get_ylim()
    if low < 0 < high:  # a zero line where zero is in view (not stretching the axis to it)
        ax.axhline(0, color="grey", lw=0.5)
    (res if res is not None else ax).set_xlabel(r"$|x_b - x_0|$")
    ax.set_ylabel(r"$G_c^{(4)}$")
    ax.set_title(title or f"{prior.name}{_width(prior)}: connected four-point function"
                 + (" (lines: theory)" if theory_g4c is not None else ""), fontsize=10)
    ax.legend(fontsize=8)
    _finish(fig)
    save_figure(fig, path)


def _math_name(label: str) -> str:
    """``"G4c"`` -> ``G_c^{(4)}``, ``"G2"`` -> ``G^{(2)}`` (mathtext, without dollars)."""
    digits = "".join(ch for ch in label if ch.isdigit())
    if not digits:
        return label
    return f"G_c^{{({digits})}}" if label.endswith("c") else f"G^{{({digits})}}"


def plot_width_scan(path: Path, scan, label: str = "G4c", title: str | None = None):
    """N^k G_c against 1/N with the weighted linear fit, for the scan's tracked entries."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    inv = 1.0 / np.asarray(scan.widths, dtype=float)
    grid = np.linspace(0, inv.max() * 1.05, 50)
    name = _math_name(label)
    power = "N" if scan.power == 1 else f"N^{{{scan.power}}}"
    theory_labelled = False
    for k, entry in enumerate(scan.entries):
        y, e = scan.scaled[entry], scan.scaled_err[entry]
        at = ", ".join(f"x_{i}" for i in entry)
        dodge = (k - (len(scan.entries) - 1) / 2) * 0.006 * inv.max()  # error bars apart
        line = ax.errorbar(inv + dodge, y, yerr=e, fmt="o", ms=4, capsize=3,
                           label=f"${name}({at})$ (MC)")
        fit = scan.fits[entry]
        ax.plot(grid, fit["A"] + fit["B"] * grid, "--", color=line[0].get_color(), lw=1)
        if scan.theory.get(entry) is not None:
            ax.plot(inv, scan.theory[entry], "x", color="k",
                    label=None if theory_labelled else "theory (exact at each N)")
            theory_labelled = True
    ax.plot([], [], "--", color="grey", lw=1, label=f"fit ${power}\\,{name} = A + B/N$")
    ax.set_xlabel(r"$1/N$")
    ax.set_ylabel(f"${power}\\,{name}$")
    ax.set_title(title or f"width scan N = {', '.join(map(str, scan.widths))}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    save_figure(fig, path)


def plot_correlators(out_dir: Path, prior, correlators, points, theory: dict, *,
                     source: str | None = None, what: str | None = None) -> None:
    """``g2.png`` and ``g4c.png`` in ``out_dir`` for the orders that were measured.
    ``source`` names the data in the legend (default: Monte Carlo with the number of
    networks); ``what`` is added to the titles (e.g. the interaction)."""
    name = f"{prior.name}{_width(prior)}" + (f", {what}" if what else "")
    if 2 in correlators.full:
        plot_g2(Path(out_dir) / "g2.png", prior, correlators, points, theory.get("G2"),
                source=source, title=f"{name}: two-point function")
    if 4 in correlators.full:
        plot_g4c(Path(out_dir) / "g4c.png", prior, correlators, points, theory.get("G4c"),
                 source=source, title=f"{name}: connected four-point function"
                 + (" (lines: theory)" if theory.get("G4c") is not None else ""))
