"""phi^4 theory from Cos-nets by operator insertion (TASI sec. 5.1-5.2): a coupling scan.

    python studies/phi4/run.py [--quick] [--out DIR] [--widths 10 100]

For each width N and each small coupling lambda, the deformed density
``P(theta) exp(-lambda int_{[-1,1]} phi^4)`` is sampled with the toolkit's default
sampler (blackjax NUTS, 8 chains) and G2, G4c are measured with autocorrelation-aware
errors. Three independent cross-checks, all through nnft's public modules:

1. importance reweighting of 10^6 free draws at the same couplings (its ESS printed);
2. first-order perturbation theory at finite N, ``dG/dlambda = -Cov_0(G, S)`` from
   the free draws (``nnft.mcmc.free_draw_crosschecks``);
3. first order at N = infinity, ``-12 lambda int G G G`` and ``-24 lambda int G G G G``
   by box quadrature (``nnft.interaction.perturbation_infinite_n``).

The lambda-slope of the NUTS correlators is fitted (``G - G_free = s lambda + c lambda^2``,
weighted least squares with the exact free value as intercept) and compared with 2.
and 3. Writes ``DIR/phi4_study.json`` and ``DIR/phi4_coupling_scan.png`` (G2(lambda),
G4c(lambda) with both first-order lines). Each NUTS run is checkpointed under
``DIR/runs/`` and finished runs are kept, so an interrupted study resumes where it
stopped. Default: 8 chains x 40,000 draws at N = 10 (fewer at larger N: the
field's autocorrelation is short and one draw costs ~N times more), 2 x 10^6 free
draws.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from nnft import CosNet
from nnft.interaction import Box, Interaction, make_target, perturbation_infinite_n, phi4
from nnft.mcmc import (
    MCMCConfig,
    chain_correlators,
    diagnostics,
    fit_coupling_slope,
    free_draw_crosschecks,
    run_nuts,
)
from nnft.results import write_json

POINTS = np.array([[0.0], [0.3], [0.6], [0.9]])
G2_ENTRIES = ((0, 0), (0, 1), (0, 3), (2, 3))
G4C_ENTRIES = ((0, 0, 0, 0), (0, 1, 2, 3))
BOX = Box((2.0,))
NODES = 24


def _entry_label(e) -> str:
    return "(" + ", ".join(f"{POINTS[i, 0]:g}" for i in e) + ")"


def run_width(width: int, couplings, args, out: Path) -> dict:
    """NUTS at every coupling, the free-draw cross-checks, PT at infinite N, slope fits."""
    prior = CosNet(d=1, width=width, sigma_w0=1.0, sigma_w1=1.0)
    unit = Interaction(phi4(1.0), BOX, NODES)
    free = {"G2": prior.g2(POINTS), "G4c": prior.g4c(POINTS)}
    t0 = time.perf_counter()
    checks = free_draw_crosschecks(prior, unit, POINTS, couplings, args.free_draws, seed=1)
    t_free = time.perf_counter() - t0
    g_inf = perturbation_infinite_n(prior, unit, POINTS)
    samples = args.samples if args.quick else max(10_000, args.samples * 10 // width)
    cfg = MCMCConfig(chains=args.chains, warmup=args.warmup, samples=samples, seed=2)
    rows = []
    for i, lam in enumerate(couplings):
        target = make_target(prior, unit.with_coupling(lam))
        res = run_nuts(target, POINTS, cfg, checkpoint_dir=out / "runs" / f"N{width}-lam{lam:g}",
                       resume=True)
        corr, blocking = chain_correlators(res.phi, 4)
        diag = diagnostics(res)
        row = {"coupling": lam, "rhat_max": diag["rhat_max"], "divergences": diag["divergences"],
               "ess_bulk_min": diag["correlator_observables"]["ess_bulk_min"],
               "tau_max": blocking["tau_max"], "reweighting_ess": checks.ess[i],
               "seconds": res.seconds["total"]}
        for name, est, entries in (("G2", corr.full[2], G2_ENTRIES),
                                   ("G4c", corr.connected[4], G4C_ENTRIES)):
            rw = checks.reweighted[i][name]
            for e in entries:
                comb = math.hypot(est.stderr[e], rw.stderr[e])
                row[f"{name}{e}"] = {"nuts": float(est.value[e]), "nuts_err": float(est.stderr[e]),
                                     "reweighted": float(rw.value[e]),
                                     "reweighted_err": float(rw.stderr[e]),
                                     "z": float((est.value[e] - rw.value[e]) / comb)}
        rows.append(row)
        print(f"  N={width:<4} lambda={lam:<6g} R-hat {diag['rhat_max']:.4f}  divergences "
              f"{diag['divergences']}  ESS(weights) {checks.ess[i]:,.0f}  "
              f"max|z| NUTS-reweighting "
              f"{max(abs(v['z']) for k, v in row.items() if k.startswith('G')):.2f}  "
              f"({res.seconds['total']:.0f} s)")
    slopes = {}
    for name, entries in (("G2", G2_ENTRIES), ("G4c", G4C_ENTRIES)):
        for e in entries:
            key = f"{name}{e}"
            vals = [r[key]["nuts"] for r in rows]
            errs = [r[key]["nuts_err"] for r in rows]
            s, s_err, chi2 = fit_coupling_slope(couplings, vals, errs, intercept=free[name][e],
                                                quadratic=True)
            pt_n, pt_n_err = float(checks.slope[name].value[e]), float(checks.slope[name].stderr[e])
            pt_inf = float(g_inf[name][1][e])
            slopes[key] = {"nuts_fit": s, "nuts_fit_err": s_err, "fit_chi2_per_dof": chi2,
                           "pt_finite_N": pt_n, "pt_finite_N_err": pt_n_err,
                           "pt_infinite_N": pt_inf,
                           "z_fit_vs_finite_N": (s - pt_n) / math.hypot(s_err, pt_n_err),
                           "finite_N_minus_infinite_N": pt_n - pt_inf,
                           "free_exact": float(free[name][e])}
    return {"width": width, "couplings": list(couplings), "rows": rows, "slopes": slopes,
            "free_draws": args.free_draws, "free_draw_seconds": t_free,
            "mcmc": cfg.to_dict()}


def pt_convergence(widths, args) -> dict:
    """First-order slopes at finite N (free draws) against N = infinity, over widths.

    The difference is fitted as ``a / N + b / N^2`` (weighted least squares)."""
    unit = Interaction(phi4(1.0), BOX, NODES)
    out = {"widths": list(widths), "entries": {}}
    per_width = []
    for n in widths:
        prior = CosNet(d=1, width=n, sigma_w0=1.0, sigma_w1=1.0)
        checks = free_draw_crosschecks(prior, unit, POINTS, (), args.free_draws, seed=3)
        per_width.append((checks.slope, perturbation_infinite_n(prior, unit, POINTS)))
        print(f"  finite-N first order from {args.free_draws:,} free draws at N = {n}")
    for name, entries in (("G2", G2_ENTRIES), ("G4c", G4C_ENTRIES)):
        for e in entries:
            diff = np.array([float(sl[name].value[e] - inf[name][1][e])
                             for sl, inf in per_width])
            err = np.array([float(sl[name].stderr[e]) for sl, _ in per_width])
            inv = 1.0 / np.asarray(widths, dtype=np.float64)
            a = np.stack([inv, inv**2], axis=1) / err[:, None]
            coef, *_ = np.linalg.lstsq(a, diff / err, rcond=None)
            cov = np.linalg.inv(a.T @ a)
            chi2 = float(np.sum((a @ coef - diff / err) ** 2) / max(1, len(widths) - 2))
            out["entries"][f"{name}{e}"] = {
                "finite_minus_infinite": diff.tolist(), "stderr": err.tolist(),
                "pt_infinite_N": float(per_width[0][1][name][1][e]),
                "fit_a_over_N": float(coef[0]), "fit_a_err": float(np.sqrt(cov[0, 0])),
                "fit_b_over_N2": float(coef[1]), "fit_b_err": float(np.sqrt(cov[1, 1])),
                "fit_chi2_per_dof": chi2}
    return out


def plot(study: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = study["widths"]
    panels = [("G2", (0, 0)), ("G2", (0, 3)), ("G4c", (0, 0, 0, 0)), ("G4c", (0, 1, 2, 3))]
    fig, axes = plt.subplots(len(widths), len(panels), figsize=(4.2 * len(panels),
                                                                3.4 * len(widths)),
                             squeeze=False)
    for row_axes, res in zip(axes, widths):
        lams = np.asarray(res["couplings"])
        grid = np.linspace(0, lams.max() * 1.05, 50)
        for ax, (name, e) in zip(row_axes, panels):
            key = f"{name}{e}"
            sl = res["slopes"][key]
            nuts = [r[key] for r in res["rows"]]
            ax.errorbar(lams, [v["nuts"] for v in nuts], yerr=[v["nuts_err"] for v in nuts],
                        fmt="o", ms=4, capsize=3, label="NUTS")
            ax.errorbar(lams * 1.02, [v["reweighted"] for v in nuts],
                        yerr=[v["reweighted_err"] for v in nuts], fmt="s", ms=3, capsize=3,
                        mfc="none", label="reweighted free draws")
            g0 = sl["free_exact"]
            ax.plot(grid, g0 + sl["pt_finite_N"] * grid, "-", label="free + 1st order, finite N")
            ax.plot(grid, g0 + sl["pt_infinite_N"] * grid, "--",
                    label="free + 1st order, N = inf")
            ax.set_title(f"{name}{_entry_label(e)}, N = {res['width']}", fontsize=9)
            ax.set_xlabel(r"$\lambda$")
        row_axes[0].legend(fontsize=7)
    fig.suptitle(r"Cos-net $\phi^4$ theory on the box $[-1, 1]$: coupling scan", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/phi4-study"))
    ap.add_argument("--widths", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--couplings", type=float, nargs="+", default=[0.002, 0.004, 0.006, 0.008])
    ap.add_argument("--pt-widths", type=int, nargs="+", default=[10, 30, 100, 300, 1000],
                    help="widths of the finite-N first-order slopes (free draws only)")
    ap.add_argument("--quick", action="store_true", help="fewer draws (a smoke run)")
    args = ap.parse_args(argv)
    args.chains, args.warmup, args.samples, args.free_draws = (
        (4, 300, 1000, 64 * 2000) if args.quick else (8, 1000, 40_000, 2_000_000))
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    study = {"box": list(BOX.lengths), "nodes": NODES, "points": POINTS.tolist(),
             "widths": []}
    for width in args.widths:
        study["widths"].append(run_width(width, tuple(args.couplings), args, args.out))
    if args.pt_widths:
        study["pt_convergence"] = pt_convergence(args.pt_widths, args)
    study["seconds"] = time.perf_counter() - t0
    write_json(study, args.out / "phi4_study.json")
    plot(study, args.out / "phi4_coupling_scan.png")
    print("\nlambda-slopes (NUTS fit vs first-order perturbation theory):")
    print(f"{'N':>5} {'entry':>24} {'NUTS fit':>16} {'PT finite N':>16} {'z':>6} "
          f"{'PT N=inf':>9} {'finite-inf':>10}")
    for res in study["widths"]:
        for key, s in res["slopes"].items():
            print(f"{res['width']:>5} {key:>24} {s['nuts_fit']:>9.4f} ± {s['nuts_fit_err']:<5.2g}"
                  f"{s['pt_finite_N']:>9.4f} ± {s['pt_finite_N_err']:<5.2g}"
                  f"{s['z_fit_vs_finite_N']:>6.2f} {s['pt_infinite_N']:>9.4f} "
                  f"{s['finite_N_minus_infinite_N']:>10.4f}")
    if "pt_convergence" in study:
        conv = study["pt_convergence"]
        print("\nfinite-N minus infinite-N first-order slope, fitted as a/N + b/N^2:")
        print(f"{'entry':>20} " + " ".join(f"{'N=' + str(n):>16}" for n in conv["widths"])
              + f" {'a':>14} {'b':>14}")
        for key, c in conv["entries"].items():
            cells = " ".join(f"{d:>9.4f} ± {e:<4.2g}" for d, e in
                             zip(c["finite_minus_infinite"], c["stderr"]))
            print(f"{key:>20} {cells} {c['fit_a_over_N']:>7.3f} ± {c['fit_a_err']:<4.2g} "
                  f"{c['fit_b_over_N2']:>7.2f} ± {c['fit_b_err']:<4.2g}")
    print(f"\nwrote {args.out}/phi4_study.json and phi4_coupling_scan.png "
          f"in {study['seconds']:.0f} s")


if __name__ == "__main__":
    main()
