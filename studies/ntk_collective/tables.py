"""Markdown tables of the README, printed from results/summary.json (every README number).

    python studies/ntk_collective/tables.py [results/summary.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _f(x, nd=3):
    return "n/a" if x is None else f"{x:.{nd}f}"


def _g(x, nd=3):
    return "n/a" if x is None else f"{x:.{nd}g}"


def sweep_tables(s: dict, probe: str = "train") -> str:
    rows = [r for r in s["init_sweep"] if r["probe"] == probe]
    widths = sorted({r["width"] for r in rows})
    out = []
    for q, inf, gap, name in (("entropy", "infinite_width_entropy", "entropy_rel_gap", "S"),
                              ("trace_per_point", "infinite_width_trace_per_point",
                               "trace_rel_gap", "tr / (C n)")):
        out.append(f"\n{name} ({probe} probe): infinite width, then |mean - inf| / inf in % "
                   f"at each width (seed stderr of the mean in %)\n")
        out.append("| act | depth | inf | " + " | ".join(f"w={w}" for w in widths) + " |")
        out.append("|---|---|---|" + "---|" * len(widths))
        for act in sorted({r["activation"] for r in rows}):
            for dep in sorted({r["depth"] for r in rows}):
                rs = {r["width"]: r for r in rows if r["activation"] == act and r["depth"] == dep}
                cells = [f"{100 * rs[w][gap]:.2f} ({100 * rs[w][f'{q}_stderr'] / rs[w][inf]:.2f})"
                         for w in widths]
                out.append(f"| {act} | {dep} | {rs[widths[0]][inf]:.4f} | " + " | ".join(cells)
                           + " |")
    a = s["init_sweep_acceptance"]
    out.append(f"\nwidest width {a['widest_width']}: max gap S {100 * a['max_entropy_rel_gap_at_widest']:.2f}%, "
               f"tr/(Cn) {100 * a['max_trace_rel_gap_at_widest']:.2f}%; median slope of log gap "
               f"vs log width {a['median_log_gap_slope_vs_log_width']:.2f}; fraction of "
               f"negative slopes {a['fraction_of_gap_slopes_negative']:.2f}; under 3%: "
               f"{a['under_3_percent_at_widest']}")
    return "\n".join(out)


def dense_table(s: dict) -> str:
    out = ["| act | width | depth | S_0 | S_end | S_min (epoch) | d | runs C/S/N | tr_end/tr_0 "
           "| train loss | test loss | test acc |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["dense_runs"]:
        out.append(
            f"| {r['activation']} | {r['width']} | {r['depth']} | {_f(r['S0_mean'])} ± "
            f"{_f(r['S0_sd'])} | {_f(r['Send_mean'])} ± {_f(r['Send_sd'])} | "
            f"{_f(r['Smin_mean'])} ({r['Smin_epoch_median']:.0f}) | {_f(r['d'])} | "
            f"{r['compression']}/{r['structure']}/{r['neither']} | "
            f"{_g(r['trace_ratio_mean'])} ± {_g(r['trace_ratio_sd'], 2)} | "
            f"{_g(r['train_loss_end_mean'])} ± {_g(r['train_loss_end_sd'], 2)} | "
            f"{_f(r['test_loss_end_mean'])} ± {_f(r['test_loss_end_sd'])} | "
            f"{_f(r['test_accuracy_end_mean'])} |")
    return "\n".join(out)


def claims_json(s: dict) -> str:
    return json.dumps(s["claims"], indent=1)


def evolution_table(s: dict) -> str:
    out = ["| run | S start -> end (min, argmin epoch) | tr start -> end (argmin epoch) | "
           "train loss start -> end | test loss end |", "|---|---|---|---|---|"]
    for part in ("cnn", "fuel", "ae"):
        for name, e in s.get(part, {}).items():
            S, T = e["train_entropy"], e["train_trace"]
            L, TL = e["train_loss"], e["test_loss"]
            out.append(f"| {name} | {_f(S['start_mean'])} -> {_f(S['end_mean'])} ± "
                       f"{_f(S['end_sd'])} ({_f(S['min_mean'])}, {S['argmin_epoch_median']:.0f})"
                       f" | {_g(T['start_mean'])} -> {_g(T['end_mean'])} "
                       f"({e['trace_argmin_epoch_median']:.0f}) | {_g(L['start_mean'])} -> "
                       f"{_g(L['end_mean'])} | {_g(TL['end_mean'])} ± {_g(TL['end_sd'], 2)} |")
    return "\n".join(out)


def main(argv=None):
    path = Path(argv[0]) if argv else HERE / "results" / "summary.json"
    s = json.loads(path.read_text())
    print("## init sweep\n", sweep_tables(s))
    print("\n## dense runs\n", dense_table(s))
    print("\n## evolution\n", evolution_table(s))
    print("\n## claims\n", claims_json(s))
    print("\n## timings\n", s["timings_s"])


if __name__ == "__main__":
    main(sys.argv[1:])
