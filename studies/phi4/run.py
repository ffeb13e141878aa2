"""phi^4 theory from Cos-nets by operator insertion (TASI sec. 5.1-5.2): a coupling scan
at couplings that move the measure.

    python studies/phi4/run.py              # default study, ~40 min on a loaded 2-core CPU
    python studies/phi4/run.py --reduced    # N = 10, 5 couplings, short chains (~1 min)

The study always resumes: finished NUTS runs (``OUT/runs/``, checkpointed by the engine)
and free-draw results (``OUT/free/*.json``, reused when their work matches) are kept;
delete OUT to start over. Stages, all through nnft's public modules:

1. **scan** (cheap, free draws only): G2(0, 0) shift and reweighting ESS fraction over a
   wide lambda range, which picked the coupling grid (``phi4_grid.COUPLINGS``);
2. per width N and coupling lambda, **NUTS** (blackjax, 8 chains, an independent seed per
   coupling) on ``P(theta) exp(-lambda int_{[-1,1]} phi^4)``;
3. **free draws** (2 x 10^6 per width): importance reweighting at the same couplings,
   first- and second-order PT at finite N (``dG/dlambda = -Cov_0(G, S)``,
   ``d^2G/dlambda^2 = kappa_0(G, S, S)``), and first order at N = infinity by quadrature;
4. the NUTS points fitted by the [3/1] Pade form
   ``(s lambda + p lambda^2 + q lambda^3)/(1 + a lambda)``
   (``nnft.mcmc.crosschecks.fit_coupling_pade``), its slope against finite- and
   infinite-N PT, its lambda^2 coefficient against the free-draw second order; and by the
   [4/1] form with that coefficient constrained by the free-draw second order and its
   error (``phi4_analysis.constrained_slopes``; ``--from-summary`` redoes these fits,
   the tables and figures from ``RESULTS/summary.json`` alone);
5. finite-N minus infinite-N first-order slopes over widths (``--pt-widths``).

Writes ``RESULTS/summary.json`` (every number of the README), ``RESULTS/tables.md`` and
``RESULTS/phi4_coupling_scan.png`` and ``RESULTS/phi4_slopes.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import phi4_analysis as an
from phi4_grid import COUPLINGS, NODES, REPEATS, nuts_config, nuts_run, prior_at, run_dir

from nnft.mcmc.crosschecks import pade_shift
from nnft.results import write_json

HERE = Path(__file__).resolve().parent
SCAN_COUPLINGS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.18, 0.25, 0.35, 0.5)
REDUCED_COUPLINGS = (0.01, 0.03, 0.06, 0.12, 0.25)
PLOT_PANELS = ("G2(0, 0)", "G2(0, 0.9)", "G4c(0, 0, 0, 0)", "G4c(0, 0.3, 0.6, 0.9)")


def scan(widths, n_draws: int, out: Path) -> dict:
    """G2(0, 0) shift (%) and reweighting ESS fraction over SCAN_COUPLINGS, free draws only."""
    res = {"couplings": list(SCAN_COUPLINGS), "n_draws": n_draws, "widths": {}}
    for n in widths:
        c = an.free_checks(n, SCAN_COUPLINGS, n_draws, 3 + n, out / "free" / f"scan-N{n}.json")
        g0 = float(prior_at(n).g2(an.POINTS)[0, 0])
        res["widths"][str(n)] = {
            "G2_00_shift_pct": [100.0 * (an._at(r["G2"], (0, 0))[0] - g0) / g0
                                for r in c["reweighted"]],
            "ess_fraction": c["ess_fraction"]}
    return res


def nuts_point(width: int, index: int, lam: float, args, *, repeat: bool = False) -> dict:
    """:func:`phi4_analysis.nuts_summary` of one NUTS run, cached next to its checkpoint."""
    cache = run_dir(args.out, width, lam, repeat) / "summary.json"
    config = nuts_config(width, index, quick=args.reduced)
    if repeat:
        config = dataclasses.replace(config, seed=REPEATS[(width, lam)])
    summ = json.loads(cache.read_text()) if cache.exists() else None
    if summ is None or summ["config"] != config.to_dict():
        res = nuts_run(width, index, lam, args.out, quick=args.reduced, repeat=repeat)
        summ = an.nuts_summary(res, cache)
    return summ


def repeats(width: int, couplings, rows, checks, exact, slope_inf, args) -> list:
    """The runs of ``REPEATS`` at this width: their rows, and z of repeat vs first run."""
    out = []
    for (n, lam) in REPEATS:
        if n != width or lam not in couplings or args.reduced:
            continue
        i = list(couplings).index(lam)
        row = an.coupling_row(lam, i, nuts_point(width, i, lam, args, repeat=True), checks,
                              exact, slope_inf)
        row["z_repeat_vs_first_run"] = {
            k: (v["nuts"] - rows[i]["entries"][k]["nuts"])
            / math.hypot(v["nuts_err"], rows[i]["entries"][k]["nuts_err"])
            for k, v in row["entries"].items()}
        out.append(row)
    return out


def run_width(width: int, couplings, args) -> dict:
    """NUTS at every coupling, free-draw cross-checks, PT, the Pade slope fits."""
    prior = prior_at(width)
    exact = {"G2": np.asarray(prior.g2(an.POINTS)), "G4c": np.asarray(prior.g4c(an.POINTS))}
    checks = an.free_checks(width, couplings, args.free_draws, 1 + width,
                            args.out / "free" / f"N{width}.json")
    slope_inf = an.infinite_n_slopes(width)
    rows = []
    for i, lam in enumerate(couplings):
        row = an.coupling_row(lam, i, nuts_point(width, i, lam, args), checks, exact,
                              slope_inf)
        rows.append(row)
        g = row["entries"]["G2(0, 0)"]
        print(f"  N={width:<4} lambda={lam:<5g} seed {row['seed']}  R-hat {row['rhat_max']:.4f}"
              f"  div {row['divergences']}  ESS(w)/n {row['reweighting_ess_fraction']:.3f}"
              f"  G2(0,0) {g['shift_pct']:+.1f}%  max|z| NUTS-rw "
              f"{max(abs(v['z_nuts_vs_reweighted']) for v in row['entries'].values()):.2f}"
              f"  ({row['seconds']:.0f} s)", flush=True)
    slopes = an.slope_table(couplings, rows, checks, exact, slope_inf)
    reps = repeats(width, couplings, rows, checks, exact, slope_inf, args)
    an.constrained_slopes(couplings, rows, slopes, reps)
    return {"width": width, "couplings": list(couplings), "rows": rows, "slopes": slopes,
            "free_draws": args.free_draws, "repeats": reps,
            "mcmc": {k: rows[0]["config"][k] for k in ("chains", "warmup", "samples")},
            "_checks": checks, "_slope_inf": slope_inf}


def plot(study: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = study["widths"]
    fig, axes = plt.subplots(len(widths), len(PLOT_PANELS),
                             figsize=(4.2 * len(PLOT_PANELS), 3.4 * len(widths)), squeeze=False)
    for row_axes, res in zip(axes, widths):
        lams = np.asarray(res["couplings"])
        grid = np.linspace(0, lams.max() * 1.05, 100)
        for ax, key in zip(row_axes, PLOT_PANELS):
            sl = res["slopes"][key]
            pts = [r["entries"][key] for r in res["rows"]]
            g0 = pts[0]["free_exact"]
            ax.errorbar(lams, [p["nuts"] for p in pts], yerr=[p["nuts_err"] for p in pts],
                        fmt="o", ms=4, capsize=3, label="NUTS")
            ax.errorbar(lams * 1.02, [p["reweighted"] for p in pts],
                        yerr=[p["reweighted_err"] for p in pts], fmt="s", ms=3, capsize=3,
                        mfc="none", label="reweighted free draws")
            ax.plot(grid, g0 + pade_shift(sl["nuts_fit"]["params"], grid), "-",
                    lw=1, color="C0", alpha=0.6, label="[3/1] Pade fit of NUTS")
            ax.plot(grid, g0 + sl["pt_finite_N"] * grid, "-", color="C2",
                    label="1st order, finite N")
            ax.plot(grid, g0 + sl["pt_infinite_N"] * grid, "--", color="C3",
                    label="1st order, N = inf")
            ax.plot(grid, g0 + sl["pt_finite_N"] * grid + sl["second_order_free_draws"] * grid**2,
                    ":", color="C4", label="2nd order, finite N")
            vals = [p["nuts"] for p in pts] + [g0]
            span = max(vals) - min(vals)
            ax.set_ylim(min(vals) - 0.3 * span, max(vals) + 0.3 * span)
            ax.set_title(f"{key}, N = {res['width']}", fontsize=9)
            ax.set_xlabel(r"$\lambda$")
        row_axes[0].legend(fontsize=6)
    fig.suptitle(r"Cos-net $\phi^4$ theory on the box $[-1, 1]$: coupling scan", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_slopes(study: dict, path: Path) -> None:
    """(G - G_free) / lambda against lambda: its intercept is the first-order slope, so the
    finite- and infinite-N PT slopes are two points at lambda = 0 and 2nd order is a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("G2(0, 0)", "G4c(0, 0, 0, 0)")
    widths = study["widths"]
    fig, axes = plt.subplots(1, len(widths) * len(keys), figsize=(4.2 * len(widths) * len(keys),
                                                                3.6), squeeze=False)
    for j, (res, key) in enumerate((r, k) for r in widths for k in keys):
        ax = axes[0, j]
        lams = np.asarray(res["couplings"])
        grid = np.linspace(1e-4, lams.max() * 1.05, 100)
        sl = res["slopes"][key]
        pts = [r["entries"][key] for r in res["rows"]]
        g0 = pts[0]["free_exact"]
        ax.errorbar(lams, [(p["nuts"] - g0) / lam for p, lam in zip(pts, lams)],
                    yerr=[p["nuts_err"] / lam for p, lam in zip(pts, lams)], fmt="o", ms=4,
                    capsize=3, label="NUTS")
        ax.errorbar(lams * 1.02, [(p["reweighted"] - g0) / lam for p, lam in zip(pts, lams)],
                    yerr=[p["reweighted_err"] / lam for p, lam in zip(pts, lams)], fmt="s",
                    ms=3, capsize=3, mfc="none", label="reweighted free draws")
        s = sl["nuts_fit"]["params"][0]
        ax.plot(grid, pade_shift(sl["nuts_fit"]["params"], grid) / grid, "-", color="C0",
                alpha=0.6, label="[3/1] Pade fit of NUTS")
        ax.errorbar([0.0], [s], yerr=[sl["nuts_fit"]["slope_err"]], fmt="D", color="C0", ms=4,
                    capsize=3)
        if "constrained" in sl:
            c = sl["constrained"]
            ax.plot(grid, pade_shift(c["nuts_fit"]["params"], grid) / grid, "-.",
                    color="k", lw=1, label=f"[{len(c['nuts_fit']['params']) - 1}/1] Pade fit of "
                    "NUTS, G''/2 from free draws")
            ax.errorbar([-0.004], [c["nuts_fit"]["slope"]], yerr=[c["slope_err"]], fmt="D",
                        color="k", ms=4, capsize=3)
        ax.errorbar([0.0], [sl["pt_finite_N"]], yerr=[sl["pt_finite_N_err"]], fmt="*",
                    color="C2", ms=9, label="1st-order slope, finite N")
        ax.plot([0.0], [sl["pt_infinite_N"]], "x", color="C3", ms=9, mew=2,
                label="1st-order slope, N = inf")
        ax.plot(grid, sl["pt_finite_N"] + sl["second_order_free_draws"] * grid, ":", color="C4",
                label="2nd order, finite N")
        vals = [(p["nuts"] - g0) / lam for p, lam in zip(pts, lams)] + [sl["pt_finite_N"],
                                                                          sl["pt_infinite_N"]]
        span = max(vals) - min(vals)
        ax.set_ylim(min(vals) - 0.25 * span, max(vals) + 0.25 * span)
        ax.set_title(f"({key} - free) / lambda, N = {res['width']}", fontsize=9)
        ax.set_xlabel(r"$\lambda$")
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tables(study: dict) -> str:
    """Markdown tables of the README, from the summary."""
    lines = ["| N | lambda | seed | R-hat | ESS(w)/n | G2(0,0) shift % | sigma | "
             "G4c(0,0,0,0) shift % | sigma | z NUTS-rw (range, 6 entries) | "
             "z 1st order G2(0,0) | z 2nd order G2(0,0) |", "|" + "---|" * 12]
    for res in study["widths"]:
        for r in res["rows"] + res["repeats"]:
            g2, g4 = r["entries"]["G2(0, 0)"], r["entries"]["G4c(0, 0, 0, 0)"]
            zs = [v["z_nuts_vs_reweighted"] for v in r["entries"].values()]
            lam = f"{r['coupling']:g}" + (" (repeat)" if "z_repeat_vs_first_run" in r else "")
            lines.append(
                f"| {res['width']} | {lam} | {r['seed']} | {r['rhat_max']:.4f} | "
                f"{r['reweighting_ess_fraction']:.3f} | {g2['shift_pct']:+.1f} | "
                f"{g2['shift_sigma']:+.0f} | {g4['shift_pct']:+.0f} | {g4['shift_sigma']:+.0f} | "
                f"{min(zs):+.2f} .. {max(zs):+.2f} | {g2['z_pt1']:+.1f} | {g2['z_pt2']:+.1f} |")
    lines += ["", "| N | entry | NUTS Pade slope | rel. err | PT finite N | rel. err | "
              "z | PT N = inf | z vs inf | finite - inf (%) | rw-fit z | "
              "NUTS lambda^2 coeff | free-draw G''/2 | z | [2/1]: NUTS z | rw-fit z |",
              "|" + "---|" * 16]
    for res in study["widths"]:
        for key, s in res["slopes"].items():
            f = s["nuts_fit"]
            lines.append(
                f"| {res['width']} | {key} | {f['slope']:.3f} ± {f['slope_err']:.3f} | "
                f"{100 * s['nuts_slope_rel_err']:.1f} % | {s['pt_finite_N']:.3f} ± "
                f"{s['pt_finite_N_err']:.3f} | {100 * s['pt_finite_N_rel_err']:.1f} % | "
                f"{s['z_nuts_vs_finite_N']:+.2f} | {s['pt_infinite_N']:.3f} | "
                f"{s['z_nuts_vs_infinite_N']:+.2f} | {s['finite_minus_infinite_pct']:+.1f} | "
                f"{s['z_rw_fit_vs_finite_N']:+.2f} | {f['second']:.1f} ± {f['second_err']:.1f} | "
                f"{s['second_order_free_draws']:.1f} ± {s['second_order_free_draws_err']:.1f} | "
                f"{s['z_second_nuts_vs_free']:+.2f} | {s['z21_nuts_vs_finite_N']:+.2f} | "
                f"{s['z21_rw_fit_vs_finite_N']:+.2f} |")
    lines += [""] + an.constrained_table(study)
    if "pt_convergence" in study:
        conv = study["pt_convergence"]
        lines += ["", "| entry | " + " | ".join(f"N = {n}" for n in conv["widths"])
                  + " | a | b |", "|" + "---|" * (len(conv["widths"]) + 3)]
        for key, c in conv["entries"].items():
            cells = " | ".join(f"{d:.3f} ± {e:.3f}" for d, e in
                               zip(c["finite_minus_infinite"], c["stderr"]))
            lines.append(f"| {key} | {cells} | {c['fit_a_over_N']:.2f} ± {c['fit_a_err']:.2f} | "
                         f"{c['fit_b_over_N2']:.1f} ± {c['fit_b_err']:.1f} |")
    return "\n".join(lines) + "\n"


def headline(study: dict) -> dict:
    """The claims of the README as numbers (ranges over couplings and entries)."""
    out = {}
    for res in study["widths"]:
        rows, slopes = res["rows"], list(res["slopes"].values())
        g2 = [r["entries"]["G2(0, 0)"]["shift_pct"] for r in rows]
        zs = [v["z_nuts_vs_reweighted"] for r in rows for v in r["entries"].values()]
        sl, s4 = res["slopes"]["G2(0, 0)"], res["slopes"]["G4c(0, 0, 0, 0)"]
        out[str(res["width"])] = {
            "G2_00_shift_pct_range": [min(g2), max(g2)],
            "reweighting_ess_fraction_min": min(r["reweighting_ess_fraction"] for r in rows),
            "z_nuts_vs_reweighted_range": [min(zs), max(zs)],
            "n_comparisons": len(zs), "rhat_max": max(r["rhat_max"] for r in rows),
            "divergences": sum(r["divergences"] for r in rows),
            "pt_finite_N_slope_rel_err_max": max(s["pt_finite_N_rel_err"]
                                                 for s in res["slopes"].values()),
            "G2_00_nuts_slope_rel_err": sl["nuts_slope_rel_err"],
            "G2_00_z_vs_finite_N": sl["z_nuts_vs_finite_N"],
            "G2_00_z_vs_infinite_N": sl["z_nuts_vs_infinite_N"],
            "G2_00_finite_vs_infinite_in_sigma": sl["finite_vs_infinite_in_nuts_sigma"],
            "repeats": [{"coupling": r["coupling"], "seed": r["seed"],
                         "z_nuts_vs_reweighted_range": [
                             min(v["z_nuts_vs_reweighted"] for v in r["entries"].values()),
                             max(v["z_nuts_vs_reweighted"] for v in r["entries"].values())],
                         "z_repeat_vs_first_run_range": [
                             min(r["z_repeat_vs_first_run"].values()),
                             max(r["z_repeat_vs_first_run"].values())]}
                        for r in res["repeats"]],
            "G2_00_nuts_resolves_finite_vs_infinite": bool(
                abs(sl["z_nuts_vs_finite_N"]) < 2 and abs(sl["z_nuts_vs_infinite_N"]) >= 3),
            "G4c_0000_nuts_slope_rel_err": s4["nuts_slope_rel_err"],
            "G4c_0000_z_vs_finite_N": s4["z_nuts_vs_finite_N"],
            "G4c_0000_z_vs_infinite_N": s4["z_nuts_vs_infinite_N"],
            "G4c_0000_nuts_resolves_finite_vs_infinite": bool(
                abs(s4["z_nuts_vs_finite_N"]) < 2 and abs(s4["z_nuts_vs_infinite_N"]) >= 3),
            "slope_z_vs_finite_N_range": [min(v["z_nuts_vs_finite_N"] for v in slopes),
                                          max(v["z_nuts_vs_finite_N"] for v in slopes)],
            "second_order_z_range": [min(v["z_second_nuts_vs_free"] for v in slopes),
                                     max(v["z_second_nuts_vs_free"] for v in slopes)],
            "pade21_G2_00_z_vs_finite_N": sl["z21_nuts_vs_finite_N"],
            "pade21_G2_00_rw_fit_z": sl["z21_rw_fit_vs_finite_N"],
            "pade31_model_bias_in_nuts_sigma_max": max(
                abs(v["reweighted_fit"]["slope"] - v["pt_finite_N"]) / v["nuts_fit"]["slope_err"]
                for v in slopes),
            "pade31_rw_fit_z_range": [min(v["z_rw_fit_vs_finite_N"] for v in slopes),
                                      max(v["z_rw_fit_vs_finite_N"] for v in slopes)]}
        out[str(res["width"])].update(an.constrained_headline(res["slopes"]))
    return out


def reanalyse(results: Path) -> dict:
    """The curvature-constrained slope fits on a written ``summary.json`` (its rows and slopes
    hold what they use), without the NUTS runs or free draws; the rest is kept as stored."""
    study = json.loads((results / "summary.json").read_text())
    for res in study["widths"]:
        an.constrained_slopes(res["couplings"], res["rows"], res["slopes"], res["repeats"])
    study["reanalysed_from_summary"] = True
    return study


def write_outputs(study: dict, results: Path, t0: float) -> None:
    """headline, summary.json, tables.md and the two figures."""
    study["headline"] = headline(study)
    # wall time of this invocation (a resumed study reuses cached runs: see rows' seconds)
    study["seconds_this_invocation"] = time.perf_counter() - t0
    write_json(study, results / "summary.json")
    text = tables(study)
    from nnft.engine.files import atomic_write_bytes

    atomic_write_bytes(results / "tables.md", text.encode())
    plot(study, results / "phi4_coupling_scan.png")
    plot_slopes(study, results / "phi4_slopes.png")
    print("\n" + text)
    print(f"wrote {results}/summary.json, tables.md, phi4_coupling_scan.png, "
          f"phi4_slopes.png in {study['seconds_this_invocation']:.0f} s")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reduced", action="store_true", help="N = 10, 5 couplings, short chains")
    ap.add_argument("--out", type=Path, default=None,
                    help="runs and caches (default runs/phi4-study, runs/phi4-reduced)")
    ap.add_argument("--results", type=Path, default=None,
                    help="summary.json, tables.md, figure (default studies/phi4/results; "
                         "OUT/results with --reduced)")
    ap.add_argument("--widths", type=int, nargs="+", default=None)
    ap.add_argument("--pt-widths", type=int, nargs="*", default=None,
                    help="widths of the finite-N first-order slopes (default 10 30 100 300)")
    ap.add_argument("--from-summary", action="store_true",
                    help="redo the slope fits, tables and figures from RESULTS/summary.json "
                         "only (no NUTS runs or free draws needed)")
    args = ap.parse_args(argv)
    args.out = args.out or Path("runs/phi4-reduced" if args.reduced else "runs/phi4-study")
    args.results = args.results or (args.out / "results" if args.reduced else HERE / "results")
    widths = args.widths or ([10] if args.reduced else sorted(COUPLINGS))
    pt_widths = args.pt_widths if args.pt_widths is not None else (
        [] if args.reduced else [10, 30, 100, 300])
    args.free_draws = 64 * 2000 if args.reduced else 2_000_000
    args.results.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.from_summary:
        study = reanalyse(args.results)
        write_outputs(study, args.results, t0)
        return study
    study = {"box": [-1.0, 1.0], "nodes": NODES, "points": an.POINTS.tolist(),
             "reduced": args.reduced,
             "scan": scan(widths, 64 * 500 if args.reduced else 200_000, args.out),
             "widths": []}
    for width in widths:
        couplings = REDUCED_COUPLINGS if args.reduced else COUPLINGS[width]
        study["widths"].append(run_width(width, couplings, args))
    if pt_widths:
        per = {r["width"]: (r["_checks"], r["_slope_inf"]) for r in study["widths"]}
        for n in pt_widths:
            if n not in per:
                per[n] = (an.free_checks(n, (), args.free_draws, 1 + n,
                                         args.out / "free" / f"N{n}.json"),
                          an.infinite_n_slopes(n))
                print(f"  finite-N first order from {args.free_draws:,} free draws at N = {n}")
        study["pt_convergence"] = an.pt_convergence({n: per[n] for n in pt_widths})
    for r in study["widths"]:
        del r["_checks"], r["_slope_inf"]
    write_outputs(study, args.results, t0)
    return study


if __name__ == "__main__":
    main()
