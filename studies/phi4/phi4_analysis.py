"""Tables of the phi^4 study: free-draw cross-checks (cached as JSON), per-coupling rows
(shifts, NUTS vs reweighting, PT at first and second order) and lambda-slopes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from phi4_grid import POINTS, prior_at, unit_interaction

from nnft.interaction import perturbation_infinite_n
from nnft.mcmc import chain_correlators, diagnostics, free_draw_crosschecks
from nnft.mcmc.crosschecks import fit_coupling_pade
from nnft.results import write_json

G2_ENTRIES = ((0, 0), (0, 1), (0, 3), (2, 3))
G4C_ENTRIES = ((0, 0, 0, 0), (0, 1, 2, 3))
ENTRIES = (("G2", G2_ENTRIES), ("G4c", G4C_ENTRIES))


def entry_key(name: str, e) -> str:
    return f"{name}(" + ", ".join(f"{POINTS[i, 0]:g}" for i in e) + ")"


def _est(e) -> dict:
    return {"value": np.asarray(e.value).tolist(), "stderr": np.asarray(e.stderr).tolist()}


def free_checks(width: int, couplings, n_draws: int, seed: int, cache: Path) -> dict:
    """Reweighting at ``couplings``, first- and second-order PT at finite N, from
    ``n_draws`` free draws; cached in ``cache`` (reused when the work matches)."""
    work = {"width": width, "couplings": list(couplings), "n_draws": n_draws, "seed": seed}
    if cache.exists():
        import json

        old = json.loads(cache.read_text())
        if old["work"] == work:
            return old
    prior = prior_at(width)
    c = free_draw_crosschecks(prior, unit_interaction(), POINTS, tuple(couplings), n_draws,
                              seed=seed)
    out = {"work": work, "ess_fraction": [e / n_draws for e in c.ess],
           "reweighted": [{k: _est(r[k]) for k in ("G2", "G4c")} for r in c.reweighted],
           "free_draws": {k: _est(c.free[k]) for k in ("G2", "G4c")},
           "slope": {k: _est(c.slope[k]) for k in ("G2", "G4c")},
           "curvature": {k: _est(c.curvature[k]) for k in ("G2", "G4c")}}
    write_json(out, cache)
    return out


def _at(d: dict, e) -> tuple[float, float]:
    return float(np.asarray(d["value"])[e]), float(np.asarray(d["stderr"])[e])


def nuts_summary(res, cache: Path) -> dict:
    """What the study uses of one NUTS run: diagnostics and G2, G4c with block-jackknife
    errors; written to ``cache`` (``run.py`` reuses it while the run's config matches)."""
    corr, blocking = chain_correlators(res.phi, 4)
    diag = diagnostics(res)
    out = {"config": res.config.to_dict(), "seed": res.config.seed, "rhat_max": diag["rhat_max"],
           "divergences": diag["divergences"],
           "ess_bulk_min": diag["correlator_observables"]["ess_bulk_min"],
           "tau_max": blocking["tau_max"], "seconds": res.seconds["total"],
           "G2": _est(corr.full[2]), "G4c": _est(corr.connected[4])}
    write_json(out, cache)
    return out


def coupling_row(lam: float, index: int, run: dict, checks: dict, exact: dict,
                 slope_inf: dict) -> dict:
    """One coupling: diagnostics and, per entry, NUTS, reweighting, the shift from the free
    value (in % and in NUTS sigma) and first/second-order PT predictions with their z.
    ``run``: :func:`nuts_summary` of the NUTS run at ``lam``."""
    row = {"coupling": lam, **{k: run[k] for k in ("seed", "rhat_max", "divergences",
                                                     "ess_bulk_min", "tau_max", "seconds",
                                                     "config")},
           "reweighting_ess_fraction": checks["ess_fraction"][index], "entries": {}}
    for name, entries in ENTRIES:
        for e in entries:
            g0 = float(exact[name][e])
            nuts, nuts_err = _at(run[name], e)
            rw, rw_err = _at(checks["reweighted"][index][name], e)
            s, s_err = _at(checks["slope"][name], e)
            c, c_err = _at(checks["curvature"][name], e)
            pt1, pt1_err = g0 + s * lam, abs(lam) * s_err
            pt2 = pt1 + 0.5 * c * lam**2
            pt2_err = math.hypot(lam * s_err, 0.5 * lam**2 * c_err)
            row["entries"][entry_key(name, e)] = {
                "nuts": nuts, "nuts_err": nuts_err, "reweighted": rw, "reweighted_err": rw_err,
                "z_nuts_vs_reweighted": (nuts - rw) / math.hypot(nuts_err, rw_err),
                "free_exact": g0, "shift_pct": 100.0 * (nuts - g0) / g0,
                "shift_sigma": (nuts - g0) / nuts_err,
                "pt1_finite_N": pt1, "z_pt1": (nuts - pt1) / math.hypot(nuts_err, pt1_err),
                "pt1_infinite_N": g0 + float(slope_inf[name][e]) * lam,
                "pt2_finite_N": pt2, "z_pt2": (nuts - pt2) / math.hypot(nuts_err, pt2_err)}
    return row


def slope_table(couplings, rows, checks: dict, exact: dict, slope_inf: dict) -> dict:
    """Per entry: the [3/1] Pade fit of the NUTS points (slope and lambda^2 coefficient),
    the same fit of the reweighted points (its model bias; the free draws are exact for
    the finite-N theory), the [2/1] fits likewise (biased: README), first-order PT at
    finite N (free draws) and N = infinity, second order from free draws, and the z's."""
    table = {}
    for name, entries in ENTRIES:
        for e in entries:
            key = entry_key(name, e)
            pts = [r["entries"][key] for r in rows]
            g0 = float(exact[name][e])
            fits = {}
            for m in (3, 2):
                for src in ("nuts", "reweighted"):
                    fits[(src, m)] = fit_coupling_pade(
                        couplings, [p[src] for p in pts], [p[f"{src}_err"] for p in pts], g0,
                        numerator=m)
            nuts, rw = fits[("nuts", 3)], fits[("reweighted", 3)]
            n21, rw21 = fits[("nuts", 2)], fits[("reweighted", 2)]
            s, s_err = _at(checks["slope"][name], e)
            c, c_err = _at(checks["curvature"][name], e)
            inf = float(slope_inf[name][e])
            se = nuts["slope_err"]
            table[key] = {
                "nuts_fit": nuts, "reweighted_fit": rw, "nuts_fit_21": n21,
                "reweighted_fit_21": rw21,
                "z21_nuts_vs_finite_N": (n21["slope"] - s) / math.hypot(n21["slope_err"], s_err),
                "z21_rw_fit_vs_finite_N": (rw21["slope"] - s) / rw21["slope_err"],
                "pt_finite_N": s, "pt_finite_N_err": s_err,
                "pt_finite_N_rel_err": abs(s_err / s), "pt_infinite_N": inf,
                "second_order_free_draws": 0.5 * c, "second_order_free_draws_err": 0.5 * c_err,
                "nuts_slope_rel_err": abs(se / nuts["slope"]),
                "z_nuts_vs_finite_N": (nuts["slope"] - s) / math.hypot(se, s_err),
                "z_nuts_vs_infinite_N": (nuts["slope"] - inf) / se,
                "z_second_nuts_vs_free": (nuts["second"] - 0.5 * c)
                / math.hypot(nuts["second_err"], 0.5 * c_err),
                "z_rw_fit_vs_finite_N": (rw["slope"] - s) / rw["slope_err"],
                "finite_minus_infinite_pct": 100.0 * (s - inf) / inf,
                "finite_vs_infinite_in_nuts_sigma": (s - inf) / math.hypot(se, s_err)}
    return table


def infinite_n_slopes(width: int) -> dict:
    """First-order PT at N = infinity (box quadrature): {"G2": slope, "G4c": slope}."""
    g = perturbation_infinite_n(prior_at(width), unit_interaction(), POINTS)
    return {k: np.asarray(g[k][1]) for k in ("G2", "G4c")}


def pt_convergence(per_width: dict) -> dict:
    """Finite-N minus infinite-N first-order slopes over widths, fitted as a/N + b/N^2.

    ``per_width``: {N: (free-draw checks dict, infinite-N slopes)}."""
    widths = sorted(per_width)
    out = {"widths": widths, "entries": {}}
    inv = 1.0 / np.asarray(widths, dtype=np.float64)
    for name, entries in ENTRIES:
        for e in entries:
            diff = np.array([_at(per_width[n][0]["slope"][name], e)[0]
                             - float(per_width[n][1][name][e]) for n in widths])
            err = np.array([_at(per_width[n][0]["slope"][name], e)[1] for n in widths])
            a = np.stack([inv, inv**2], axis=1) / err[:, None]
            coef, *_ = np.linalg.lstsq(a, diff / err, rcond=None)
            cov = np.linalg.inv(a.T @ a)
            chi2 = float(np.sum((a @ coef - diff / err) ** 2) / max(1, len(widths) - 2))
            out["entries"][entry_key(name, e)] = {
                "finite_minus_infinite": diff.tolist(), "stderr": err.tolist(),
                "pt_infinite_N": float(per_width[widths[0]][1][name][e]),
                "fit_a_over_N": float(coef[0]), "fit_a_err": float(np.sqrt(cov[0, 0])),
                "fit_b_over_N2": float(coef[1]), "fit_b_err": float(np.sqrt(cov[1, 1])),
                "fit_chi2_per_dof": chi2}
    return out
