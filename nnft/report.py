"""Tables and plots of measured correlators against theory."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from nnft.results import QUANTITIES


def distinct_entries(p: int, order: int):
    """Index tuples a1 <= a2 <= ... : one per distinct entry of a symmetric tensor."""
    return list(itertools.combinations_with_replacement(range(p), order))


def z_scores(value, stderr, theory):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.asarray(value) - theory) / stderr


def z_summary(value, stderr, theory) -> dict:
    """max |z|, chi^2 / entries and fraction |z| < 1 over the distinct entries."""
    order = np.ndim(value)
    idx = tuple(np.array(distinct_entries(np.shape(value)[0], order)).T)
    z = z_scores(value, stderr, theory)[idx]
    z = z[np.isfinite(z)]
    return {"entries": int(z.size), "max_abs_z": float(np.max(np.abs(z))) if z.size else None,
            "chi2_per_entry": float(np.mean(z * z)) if z.size else None,
            "frac_abs_z_lt_1": float(np.mean(np.abs(z) < 1)) if z.size else None}


def z_summaries(correlators, theory: dict) -> dict:
    """:func:`z_summary` of each measured G2 / G4c / G6c that has an exact theory."""
    out = {}
    for name in ("G2", "G4c", "G6c"):
        kind, order = QUANTITIES[name]
        if order in getattr(correlators, kind) and theory.get(name) is not None:
            est = getattr(correlators, kind)[order]
            out[name] = z_summary(est.value, est.stderr, theory[name])
    return out


def plot_correlators(out_dir: Path, prior, correlators, points, theory: dict) -> None:
    """``g2.png`` and ``g4c.png`` in ``out_dir`` for the orders that were measured."""
    if 2 in correlators.full:
        plot_g2(Path(out_dir) / "g2.png", prior, correlators, points, theory.get("G2"))
    if 4 in correlators.full:
        plot_g4c(Path(out_dir) / "g4c.png", prior, correlators, points, theory.get("G4c"))


def _fmt_point(x) -> str:
    x = np.atleast_1d(x)
    return "(" + ", ".join(f"{c:g}" for c in x) + ")" if x.size > 1 else f"{x[0]:g}"


def _clean(theory):
    """Theory with round-off residue (|t| < 1e-12 max |t|) set to exactly zero, for display."""
    t = np.asarray(theory, dtype=np.float64)
    scale = np.max(np.abs(t)) if t.size else 0.0
    return np.where(np.abs(t) < 1e-12 * scale, 0.0, t)


def correlator_table(name, est, theory, points, max_rows: int = 12):
    """A rich Table of the first ``max_rows`` distinct entries, with a z summary caption."""
    from rich.table import Table

    order = est.value.ndim
    table = Table(title=name, title_justify="left", show_edge=False)
    for col, just in (("points", "left"), ("value ± stderr", "right"), ("theory", "right"),
                      ("z", "right")):
        table.add_column(col, justify=just)
    entries = distinct_entries(len(points), order)
    for idx in entries[:max_rows]:
        val, err = est.value[idx], est.stderr[idx]
        th = None if theory is None else _clean(theory)[idx]
        z = None if th is None or err == 0 else (val - th) / err
        style = "red" if z is not None and abs(z) > 4 else None
        table.add_row(", ".join(_fmt_point(points[i]) for i in idx), f"{val:.5g} ± {err:.2g}",
                      "—" if th is None else f"{th:.5g}", "—" if z is None else f"{z:+.2f}",
                      style=style)
    if len(entries) > max_rows:
        table.add_row(f"… {len(entries) - max_rows} more distinct entries", "", "", "")
    if theory is not None:
        s = z_summary(est.value, est.stderr, theory)
        table.caption = (f"{s['entries']} distinct entries: max |z| = {s['max_abs_z']:.2f}, "
                         f"mean z² = {s['chi2_per_entry']:.2f}, "
                         f"|z| < 1 for {100 * s['frac_abs_z_lt_1']:.0f}%")
        table.caption_justify = "left"
    return table


def print_report(console, correlators, points, theory, header: str, names=("G2", "G4c", "G6c")):
    console.print(header)
    for name in names:
        kind, order = QUANTITIES[name]
        if order not in correlators.full:
            continue
        est = getattr(correlators, kind)[order]
        console.print(correlator_table(name, est, theory.get(name), points))
        console.print()


# ---------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _direction(points):
    """Unit vector along which theory curves are drawn (the spread of the points)."""
    pts = np.asarray(points)
    span = pts - pts[0]
    far = span[np.argmax(np.linalg.norm(span, axis=1))]
    n = np.linalg.norm(far)
    e = np.zeros(pts.shape[1])
    e[0] = 1.0
    return far / n if n > 0 else e


def plot_g2(path: Path, prior, correlators, points, theory_g2):
    """G2 against separation |x_a - x_b| over all distinct pairs, with the theory curve."""
    plt = _plt()
    pts = np.asarray(points)
    est = correlators.full[2]
    pairs = distinct_entries(len(pts), 2)
    r = np.array([np.linalg.norm(pts[a] - pts[b]) for a, b in pairs])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(r, [est.value[p] for p in pairs], yerr=[est.stderr[p] for p in pairs], fmt="o",
                ms=4, capsize=3, label=f"Monte Carlo, S = {correlators.n_samples:.3g}")
    if theory_g2 is not None:
        if getattr(prior, "translation_invariant", False):
            grid = np.linspace(0, max(r.max(), 1e-9) * 1.05, 200)
            e, x0 = _direction(pts), pts[0]
            curve = [prior.g2(np.stack([x0, x0 + t * e]))[0, 1] for t in grid]
            ax.plot(grid, curve, "-", color="k", lw=1, label="theory")
        else:
            ax.plot(r, [theory_g2[p] for p in pairs], "x", color="k", label="theory")
    ax.set_xlabel(r"$|x_a - x_b|$")
    ax.set_ylabel(r"$G^{(2)}(x_a, x_b)$")
    ax.set_title(f"{prior.name}: two-point function")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_g4c(path: Path, prior, correlators, points, theory_g4c):
    """G4c(x_0, x_0, x_b, x_b) and G4c(x_b, x_b, x_b, x_b) against |x_b - x_0|, with theory."""
    plt = _plt()
    pts = np.asarray(points)
    est = correlators.connected[4]
    r = np.linalg.norm(pts - pts[0], axis=1)
    fig, ax = plt.subplots(figsize=(6, 4))
    series = (("aabb", lambda b: (0, 0, b, b), r"$G_c^{(4)}(x_0, x_0, x_b, x_b)$"),
              ("bbbb", lambda b: (b, b, b, b), r"$G_c^{(4)}(x_b, x_b, x_b, x_b)$"))
    for key, index, label in series:
        idx = [index(b) for b in range(len(pts))]
        line = ax.errorbar(r, [est.value[i] for i in idx], yerr=[est.stderr[i] for i in idx],
                           fmt="o", ms=4, capsize=3, label=label + " (MC)")
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
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel(r"$|x_b - x_0|$")
    ax.set_ylabel(r"$G_c^{(4)}$")
    ax.set_title(f"{prior.name}, N = {getattr(prior, 'width', '?')}: connected four-point "
                 "function (lines: theory)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_width_scan(path: Path, scan, label: str = "G4c"):
    """N^k G_c against 1/N with the weighted linear fit, for the scan's tracked entries."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    inv = 1.0 / np.asarray(scan.widths, dtype=float)
    grid = np.linspace(0, inv.max() * 1.05, 50)
    for entry in scan.entries:
        y, e = scan.scaled[entry], scan.scaled_err[entry]
        line = ax.errorbar(inv, y, yerr=e, fmt="o", ms=4, capsize=3,
                           label=f"{label}{entry} (MC)")
        fit = scan.fits[entry]
        ax.plot(grid, fit["A"] + fit["B"] * grid, "--", color=line[0].get_color(), lw=1)
        if scan.theory.get(entry) is not None:
            ax.plot(inv, scan.theory[entry], "x", color="k")
    ax.set_xlabel("1/N")
    ax.set_ylabel(f"N^{scan.power} {label}")
    ax.set_title(f"width scan: N^{scan.power} {label} against 1/N (dashed: fit, x: theory)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
