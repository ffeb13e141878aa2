"""Tables of the phi^4 study: free-draw cross-checks (cached as JSON), per-coupling rows
(shifts, NUTS vs reweighting, PT at first and second order) and lambda-slopes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from phi4_grid import POINTS, prior_at, unit_interaction

from nnft.interaction import perturbation_infinite_n
from nnft.mcmc import chain_correlators, diagnostics, free_draw_crosschecks
from nnft.mcmc.crosschecks import fit_coupling_pade, pade_shift
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


#: the Pade numerator of the curvature-constrained fit: with the lambda^2 coefficient fixed
#: by the free draws, the [3/1] form's model bias (its fit of the reweighted points minus PT)
#: is 1.4-1.9 of its own sigma for G2 at N = 10; [4/1] brings it below 1 (README). A grid
#: of fewer than 6 couplings (``--reduced``) gets [3/1].
CONSTRAINED_NUMERATOR = 4


def constrained_numerator(n_couplings: int) -> int:
    return min(CONSTRAINED_NUMERATOR, n_couplings - 2)


def constrained_slopes(couplings, rows, slopes: dict, repeats=()) -> None:
    """Adds ``slopes[key]["constrained"]``: the NUTS points fitted by the [4/1] (and [3/1])
    Pade form with the lambda^2 coefficient constrained by the free-draw ``G''(0)/2 =
    kappa_0(G, S, S)/2`` and its error (``fit_coupling_pade(..., second_prior=)``), the same
    fit of the reweighted points (model bias), and z against finite- and infinite-N PT;
    ``with_repeat``: the [4/1] fit with each repeat row in place of its first run.

    Works from what ``summary.json`` stores (``rows``, ``slopes``, ``repeats``)."""
    for key, sl in slopes.items():
        pts = [r["entries"][key] for r in rows]
        out = _constrained_entry(couplings, pts, sl)
        for rep in repeats:
            i = list(couplings).index(rep["coupling"])
            alt = _constrained_entry(couplings, pts[:i] + [rep["entries"][key]] + pts[i + 1:],
                                     sl, model_bias=False)
            out.setdefault("with_repeat", []).append({
                "coupling": rep["coupling"], "seed": rep["seed"],
                "slope": alt["nuts_fit"]["slope"], "slope_err": alt["slope_err"],
                **{k: alt[k] for k in ("z_vs_finite_N", "z_vs_infinite_N", "chi2_increase")}})
        sl["constrained"] = out


def _bootstrap_slope_spread(couplings, fit: dict, pts, n: int = 200, seed: int = 7) -> float:
    """Spread of the constrained slope over ``n`` parametric-bootstrap refits: Gaussian NUTS
    points (their stderrs) about the fitted curve and c2 about its fitted value (its stderr).
    Its own relative sampling error is ``1 / sqrt(2 n)`` (5 % at n = 200)."""
    lam = np.asarray(couplings, dtype=np.float64)
    err = np.array([p["nuts_err"] for p in pts])
    g0 = pts[0]["free_exact"]
    mean = g0 + pade_shift(fit["params"], lam)
    c2_err = fit["second_prior"][1]
    rng = np.random.default_rng(seed)
    slopes = [fit_coupling_pade(lam, mean + err * rng.standard_normal(lam.shape), err, g0,
                                numerator=len(fit["params"]) - 1,
                                second_prior=(fit["second"] + c2_err * rng.standard_normal(),
                                              c2_err))["slope"] for _ in range(n)]
    return float(np.std(slopes))


def _constrained_entry(couplings, pts, sl: dict, *, model_bias: bool = True) -> dict:
    """One entry of :func:`constrained_slopes`; ``slope_err``: the larger of the linearised
    error and the bootstrap spread. c2 and the finite-N slope come from the same free draws
    and their correlation rho is not stored: ``z_vs_finite_N_any_rho`` is the largest |z|
    over rho in [-1, 1] (``slope_per_prior`` * c2_err * slope_err bounds the covariance)."""
    g0 = pts[0]["free_exact"]
    prior = (sl["second_order_free_draws"], sl["second_order_free_draws_err"])
    s, s_err, inf = sl["pt_finite_N"], sl["pt_finite_N_err"], sl["pt_infinite_N"]

    def fit(src, m, constrained=True):
        return fit_coupling_pade(couplings, [p[src] for p in pts], [p[f"{src}_err"] for p in pts],
                                 g0, numerator=m, second_prior=prior if constrained else None)

    num = constrained_numerator(len(couplings))
    free = fit("nuts", num, constrained=False)
    out = {"numerator": num, "nuts_fit_unconstrained": free}
    for m, tag in ((num, ""), (3, "_31"))[:2 if model_bias else 1]:
        f = fit("nuts", m)
        se = f["slope_err"]
        if not tag:  # the linearised error can be too small (N = 100): take the larger
            out["slope_err_bootstrap"] = _bootstrap_slope_spread(couplings, f, pts)
            se = max(se, out["slope_err_bootstrap"])
        out[f"slope_err{tag}"] = se
        cross = abs(f["slope_per_prior"]) * prior[1] * s_err
        out.update({
            f"nuts_fit{tag}": f, f"slope_rel_err{tag}": abs(se / f["slope"]),
            f"z_vs_finite_N{tag}": (f["slope"] - s) / math.hypot(se, s_err),
            f"z_vs_finite_N_any_rho{tag}": (f["slope"] - s)
            / math.sqrt(se**2 + s_err**2 - 2 * cross),
            f"z_vs_infinite_N{tag}": (f["slope"] - inf) / se})
        if model_bias:  # the same fit of the reweighted points, exact for finite N
            rw = fit("reweighted", m)
            bias = rw["slope"] - s
            out.update({
                f"reweighted_fit{tag}": rw, f"model_bias{tag}": bias,
                f"model_bias_in_sigma{tag}": bias / se,
                f"slope_rel_err_with_model_bias{tag}": math.hypot(se, bias) / abs(f["slope"]),
                f"z_vs_infinite_N_with_model_bias{tag}": (f["slope"] - inf)
                / math.hypot(se, bias)})
    dof = len(couplings) - num - 1
    out["chi2_increase"] = out["nuts_fit"]["chi2_per_dof"] * (dof + 1) - free["chi2_per_dof"] * dof
    return out


def constrained_headline(slopes: dict) -> dict:
    """Headline numbers of the constrained fits: G2(0, 0), G4c(0, 0, 0, 0) and ranges."""
    out = {}
    for key, tag in (("G2(0, 0)", "G2_00"), ("G4c(0, 0, 0, 0)", "G4c_0000")):
        c = slopes[key]["constrained"]
        out.update({
            f"{tag}_nuts_constrained_slope": [c["nuts_fit"]["slope"], c["slope_err"]],
            f"{tag}_nuts_constrained_slope_rel_err": c["slope_rel_err"],
            f"{tag}_nuts_constrained_slope_rel_err_with_model_bias":
                c["slope_rel_err_with_model_bias"],
            f"{tag}_nuts_constrained_z_vs_finite_N": c["z_vs_finite_N"],
            f"{tag}_nuts_constrained_z_vs_finite_N_any_rho": c["z_vs_finite_N_any_rho"],
            f"{tag}_nuts_constrained_z_vs_infinite_N": c["z_vs_infinite_N"],
            f"{tag}_nuts_constrained_z_vs_infinite_N_with_model_bias":
                c["z_vs_infinite_N_with_model_bias"],
            f"{tag}_nuts_constrained_resolves_finite_vs_infinite": bool(
                abs(c["z_vs_finite_N_any_rho"]) < 2
                and abs(c["z_vs_infinite_N_with_model_bias"]) >= 3)})
        for rep in c.get("with_repeat", []):
            out[f"{tag}_nuts_constrained_with_repeat"] = rep
    cs = [s["constrained"] for s in slopes.values()]

    def rng(k):
        return [min(c[k] for c in cs), max(c[k] for c in cs)]

    out.update({
        "constrained_slope_rel_err_max": max(c["slope_rel_err"] for c in cs),
        "constrained_slope_rel_err_with_model_bias_max": max(
            c["slope_rel_err_with_model_bias"] for c in cs),
        "constrained_z_vs_finite_N_range": rng("z_vs_finite_N"),
        "constrained_z_vs_finite_N_any_rho_range": rng("z_vs_finite_N_any_rho"),
        "constrained_z_vs_infinite_N_range": rng("z_vs_infinite_N"),
        "constrained_model_bias_in_sigma_range": rng("model_bias_in_sigma"),
        "constrained31_model_bias_in_sigma_range": rng("model_bias_in_sigma_31"),
        "constrained_chi2_increase_max": max(c["chi2_increase"] for c in cs),
        "constrained_prior_pull_range": [min(c["nuts_fit"]["prior_pull"] for c in cs),
                                         max(c["nuts_fit"]["prior_pull"] for c in cs)]})
    return out


def constrained_table(study: dict) -> list[str]:
    """Markdown rows: the constrained slopes beside the unconstrained [3/1] one."""
    num = study["widths"][0]["slopes"]["G2(0, 0)"]["constrained"]["numerator"]
    lines = [(f"| N | entry | [3/1] slope | rel. err | constrained [{num}/1] slope | rel. err | "
              "with model bias | z vs finite N | (any rho) | z vs inf | (with model bias) | "
              "model bias / sigma | chi2/dof | chi2 increase | prior pull | "
              "constrained [3/1]: slope (linearised err) | model bias / sigma |"),
             "|" + "---|" * 17]
    for res in study["widths"]:
        for key, s in res["slopes"].items():
            u, c = s["nuts_fit"], s["constrained"]
            f, f31 = c["nuts_fit"], c["nuts_fit_31"]
            lines.append(
                f"| {res['width']} | {key} | {u['slope']:.3f} ± {u['slope_err']:.3f} | "
                f"{100 * s['nuts_slope_rel_err']:.1f} % | {f['slope']:.3f} ± "
                f"{c['slope_err']:.3f} | {100 * c['slope_rel_err']:.1f} % | "
                f"{100 * c['slope_rel_err_with_model_bias']:.1f} % | "
                f"{c['z_vs_finite_N']:+.2f} | {c['z_vs_finite_N_any_rho']:+.2f} | "
                f"{c['z_vs_infinite_N']:+.2f} | {c['z_vs_infinite_N_with_model_bias']:+.2f} | "
                f"{c['model_bias_in_sigma']:+.2f} | {f['chi2_per_dof']:.2f} | "
                f"{c['chi2_increase']:+.2f} | {f['prior_pull']:+.2f} | "
                f"{f31['slope']:.3f} ± {f31['slope_err']:.3f} | "
                f"{c['model_bias_in_sigma_31']:+.2f} |")
    return lines
