"""The README's tables, printed from results/summary.json and results/hypotheses.json.

    python studies/fokker_planck/tables.py [--out results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ("fp_lookahead", "fp_lagged", "persistence", "free_running", "floor")


def _f(x, nd=3):
    return "-" if x is None else f"{x:.{nd}f}"


def epoch_table(s: dict, view: str, key: str = "r", nd: int = 3) -> str:
    recs = {(r["epoch"], r["method"]): r for r in s["epochs"] if r["view"] == view}
    epochs = sorted({e for e, _ in recs})
    methods = [m for m in METHODS if any((e, m) in recs for e in epochs)]
    lines = ["| epoch | " + " | ".join(methods) + " |",
             "|---" * (len(methods) + 1) + "|"]
    for e in epochs:
        cells = []
        for m in methods:
            r = recs.get((e, m))
            cells.append("-" if r is None else
                         f"{_f(r[key + '_mean'], nd)} ± {_f(r[key + '_sd'], nd)}")
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_table(s: dict) -> str:
    lines = ["| epoch | view | method | Δr (FP − persistence) | beats (r) | beats (MSE) |",
             "|---|---|---|---|---|---|"]
    for v in s["verdicts"]:
        lines.append(f"| {v['epoch']} | {v['view']} | {v['method']} | "
                     f"{v['dr_mean']:+.4f} ± {v['dr_sd']:.4f} | {v['beats_r']} | "
                     f"{v['beats_mse']} |")
    return "\n".join(lines)


def sigma_table(s: dict) -> str:
    lines = ["| sigma2 | weights r | transported r |", "|---|---|---|"]
    rows = {}
    for r in s["sigma_scan"]:
        if r["epoch"] == "mean_over_epochs_ge_1":
            rows.setdefault(r["sigma2"], {})[r["view"]] = r
    for s2, d in rows.items():
        w, t = d["weights"], d["outputs_transported"]
        lines.append(f"| {s2:g} | {w['r_mean']:.5f} ± {w['r_sd']:.5f} | "
                     f"{t['r_mean']:.4f} ± {t['r_sd']:.4f} |")
    return "\n".join(lines)


def hypotheses_table(h: dict) -> str:
    lines = ["| epoch | permuted rows r (H1) | " + " | ".join(
        f"bandwidth x {c} r (H2)" for c in h["bandwidth_scales"]) + " |",
        "|---" * (2 + len(h["bandwidth_scales"])) + "|"]
    for p in h["H1_permuted_rows"]:
        e = p["epoch"]
        cells = [f"{q['r']['mean']:.3f} ± {q['r']['sd']:.3f}" for q in h["H2_bandwidth"]
                 if q["epoch"] == e]
        lines.append(f"| {e} | {p['r']['mean']:.3f} ± {p['r']['sd']:.3f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    s = json.loads((args.out / "summary.json").read_text())
    for view in ("weights", "outputs_iid", "outputs_transported"):
        print(f"\n### {view}: r (mean ± sd over seeds)\n\n" + epoch_table(s, view))
        print(f"\n### {view}: MSE\n\n" + epoch_table(s, view, "mse", 4))
        if view != "weights":
            print(f"\n### {view}: r after W2\n\n" + epoch_table(s, view, "r_w2"))
    print("\n### verdicts\n\n" + verdict_table(s))
    print("\n### sigma2 scan\n\n" + sigma_table(s))
    hp = args.out / "hypotheses.json"
    if hp.exists():
        print("\n### hypotheses\n\n" + hypotheses_table(json.loads(hp.read_text())))


if __name__ == "__main__":
    main()
