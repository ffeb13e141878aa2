"""Console tables and z summaries of measured correlators against theory."""

from __future__ import annotations

import dataclasses
import itertools

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


def fmt_point(x) -> str:
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
        table.add_row(", ".join(fmt_point(points[i]) for i in idx), f"{val:.5g} ± {err:.2g}",
                      "—" if th is None else f"{th:.5g}", "—" if z is None else f"{z:+.2f}",
                      style=style)
    if len(entries) > max_rows:
        table.add_row(f"… {len(entries) - max_rows} more distinct entries", "", "", "")
    if theory is not None:
        s = z_summary(est.value, est.stderr, theory)
        table.caption = (f"{s['entries']} distinct entries: max |z| = {s['max_abs_z']:.2f}, "
                         f"mean z² = {s['chi2_per_entry']:.2f}, "
                         f"|z| < 1 for {100 * s['frac_abs_z_lt_1']:.0f}% (entries are "
                         "correlated: the verdict below accounts for it)")
        table.caption_justify = "left"
    return table


def fmt_p(p: float) -> str:
    """A p-value; at the bootstrap's resolution ``< 1/(N_BOOT + 1)``."""
    from nnft.verdicts import N_BOOT

    if p <= 1 / (N_BOOT + 1):
        return f"< {1 / (N_BOOT + 1):.1g}"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _p_eq(p: float) -> str:
    text = fmt_p(p)
    return text if text.startswith("<") else f"= {text}"


def verdict_line(v) -> str:
    """One line: ``G4c: consistent with theory, p = 0.41 (21 of 126 entries, correlated)``
    (Hotelling's T^2 with the jackknife covariance, :mod:`nnft.verdicts`; red where
    inconsistent; a reference that does not apply says so)."""
    entries = (f"{v.used} of {v.entries} entries" if v.used < v.entries
               else f"{v.entries} entries")
    detail = f"({entries}, correlated)"
    if not v.applies:
        return (f"[yellow]{v.name}: {v.reference} does not apply here ({v.note}); "
                f"against it p {_p_eq(v.p_value)}[/yellow]")
    if v.consistent:
        return f"{v.name}: consistent with {v.reference}, p {_p_eq(v.p_value)} {detail}"
    if v.reference.startswith("the free theory"):  # an interacting run: the effect resolved
        return (f"{v.name}: differs from {v.reference}, p {_p_eq(v.p_value)} {detail}: "
                "the interaction's effect is resolved")
    return f"[red]{v.name}: inconsistent with {v.reference}, p {_p_eq(v.p_value)} {detail}[/red]"


def print_verdicts(console, verdicts: dict) -> None:
    for v in verdicts.values():
        console.print(verdict_line(v))


def print_report(console, correlators, points, theory, header: str, names=("G2", "G4c", "G6c"),
                 verdicts=None):
    """Header, a table per measured correlator of ``names``, then one verdict line each."""
    console.print(header)
    for name in names:
        kind, order = QUANTITIES[name]
        if order not in getattr(correlators, kind):
            continue
        est = getattr(correlators, kind)[order]
        console.print(correlator_table(name, est, theory.get(name), points))
        console.print()
    if verdicts:
        print_verdicts(console, verdicts)


def tracked_entries(scan, k: int = 4):
    """The scan restricted to the k entries with the largest |N^p G_c| (for a readable plot)."""
    order = sorted(scan.entries, key=lambda e: -abs(scan.scaled[e][-1]))[:k]
    return dataclasses.replace(scan, entries=order)


def print_width_scan(console, scan, label):
    """The fitted infinite-width limit A of N^p G_c = A + B/N against theory, entry by entry."""
    from rich.table import Table

    t = Table(title=f"width scan: N^{scan.power} {label} = A + B/N, widths {scan.widths}",
              title_justify="left", show_edge=False)
    for col in ("entry", "A (fit)", "A (theory)", "z", "log-log slope"):
        t.add_column(col, justify="right")
    zs = []
    for e in tracked_entries(scan, 8).entries:
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
