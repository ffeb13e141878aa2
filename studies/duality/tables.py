"""Print the README's tables from ``results/summary.json`` (markdown).

    python studies/duality/tables.py [results/summary.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _g(x, fmt=".3g"):
    return "n/a" if x is None else format(x, fmt)


def alpha_table(s) -> list[str]:
    widest = max(r["width"] for r in s["alpha_init"])
    out = ["| activation | depth | W_std | b_std | alpha (width %d) | stderr | infinite width "
           "| rel. dev. | z |" % widest, "|---|---|---|---|---|---|---|---|---|"]
    for r in s["alpha_init"]:
        if r["width"] == widest:
            out.append(f"| {r['activation']} | {r['depth']} | {r['W_std']} | {r['b_std']} | "
                       f"{_g(r['mean'], '.4g')} | {_g(r['stderr'], '.2g')} | "
                       f"{_g(r['infinite_width'], '.4g')} | {_g(r['rel_dev'], '+.2%')} | "
                       f"{_g(r['z'], '+.2f')} |")
    return out


def matching_table(s) -> list[str]:
    m = s["matching"]
    out = ["| prediction | where | runs | end: median | end: p90 | max: median | max: p90 |",
           "|---|---|---|---|---|---|---|"]
    for pred in ("ode", "recursion"):
        for where in ("inside", "outside", "all"):
            b = m[pred][where]
            out.append(f"| {pred} | {where} | {b['end']['count']} | {_g(b['end']['median'])} | "
                       f"{_g(b['end']['p90'])} | {_g(b['max']['median'])} | "
                       f"{_g(b['max']['p90'])} |")
    return out


def modes_table(s) -> list[str]:
    out = ["| act | depth | (W_std, b_std) | c | width | lambda1/N | lambda2/lambda1 | "
           "\\|v1.1\\|/sqrt(N) |", "|---|---|---|---|---|---|---|---|"]
    for r in s["modes"]:
        out.append(f"| {r['activation']} | {r['depth']} | ({r['W_std']}, {r['b_std']}) | "
                   f"{r['c']} | {r['width']} | {_g(r['lambda1_over_N'])} | "
                   f"{_g(r['lambda2_over_lambda1'])} | {_g(r['mean_overlap'])} |")
    return out


def predictions_table(s) -> list[str]:
    out = ["| act | depth | (W_std, b_std) | c | mean err (lambda1/N) | mean err (App. B) | "
           "modes rms: t=0 | NN t=T | eq. 16 t=T | mode err |", "|---|---|---|---|---|---|---|"
           "---|---|---|"]
    for r in s["mode_predictions"]:
        out.append(f"| {r['activation']} | {r['depth']} | ({r['W_std']}, {r['b_std']}) | "
                   f"{r['c']} | {_g(r['mean_rel_err_lambda1'])} | {_g(r['mean_rel_err_appB'])} "
                   f"| {_g(r['modes_rms_init'])} | {_g(r['modes_rms_final_nn'])} | "
                   f"{_g(r['modes_rms_final_pred'])} | {_g(r['modes_rel_err'])} |")
    return out


def discretisation_table(s) -> list[str]:
    rows = [r for r in s["discretisation"] if r["m"] == 0.1 and r["alpha"] == 1.0]
    out = ["| n | f0 | eta | beta | max dev / f0 | end dev / f0 | diverged |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['n']} | {r['f0']} | {r['eta']:.4g} | {r['beta']} | "
                   f"{_g(r['max_dev_rel'])} | {_g(r['end_dev_rel'])} | {r['diverged']} |")
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else HERE / "results" / "summary.json"
    s = json.loads(path.read_text())
    for name, fn in (("alpha", alpha_table), ("discretisation (m = 0.1, alpha = 1)",
                                              discretisation_table),
                     ("matching", matching_table), ("modes", modes_table),
                     ("mode predictions", predictions_table)):
        print(f"### {name}\n")
        print("\n".join(fn(s)) + "\n")


if __name__ == "__main__":
    main()
