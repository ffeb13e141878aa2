"""Training dynamics of wide MLP ensembles: frozen-NTK theory, NTK drift, coordinate check.

    python studies/training-dynamics/run.py [--quick] [--out DIR]

(a) Frozen NTK. Ensembles of S = 256 one-hidden-layer MLPs (NTK parameterisation, erf and
    relu, b_std = 0.2) trained by full-batch GD (lr 1, mean-normalised squared loss, so the
    frozen-NTK rate is eta/n) on the built-in 1-d "sine" set (n = 8), at widths 256, 1024,
    4096. The ensemble mean G1(x, t) at 8 test points and t = 10, 100, 1000 against
    mu_t(x) = Theta(x,X) Theta(X,X)^{-1} (1 - (1 - eta Theta/n)^t) y: z-scores per width and
    the log-log slope of the largest deviation against N (expect -1).
(b) NTK drift and coordinate check. Depth-2 erf MLPs, S = 16 per width, widths 128 .. 1024,
    full-batch GD at a width-independent base rate (times ``MLP.learning_rate_scale()``, 1 for
    ntk and mup). Relative NTK change ||Theta_T - Theta_0|| / ||Theta_0|| on the 8 training
    points after T = 100 steps: slope -1/2 under ntk, ~0 under mup. Coordinate check: rms
    change of the last hidden layer's activations after 5 steps against width: flat under
    mup, falling like N^{-1/2} under ntk; also per model divided by the rms output change
    (both are set by the model's initial residual, whose spread dominates the error bars).

Writes ``results.json`` and ``frozen_ntk.png``, ``ntk_drift.png``, ``coord_check.png`` into
``--out`` (default: this folder). Uses only the public API.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import nnft
from nnft.results import write_json
from nnft.scaling import loglog_slope
from nnft.training import TrainingConfig, regression_data, train_ensemble

HERE = Path(__file__).resolve().parent
TEST_POINTS = np.linspace(-1.75, 1.75, 8)[:, None]


def frozen_ntk_scan(widths, n_models, activations, steps=1000, times=(10, 100, 1000)):
    data = regression_data(0, 8, x_test=TEST_POINTS)
    out = {}
    for act in activations:
        rows = []
        for width in widths:
            prior = nnft.MLP(d=1, width=width, depth=1, activation=act,
                             parameterization="ntk", b_std=0.2)
            cfg = TrainingConfig(learning_rate=1.0, steps=steps, measure=times,
                                 n_models=n_models, n_batches=32, ntk=False)
            t0 = time.perf_counter()
            ds = train_ensemble(prior, data, cfg).dataset
            dev = (ds["G1"] - ds["theory_mean"]).values  # (time, point), time 0 included
            z = dev / ds["G1_stderr"].values
            rows.append({"width": width, "seconds": time.perf_counter() - t0,
                         "times": ds["time"].values.tolist(),
                         "max_abs_z": np.max(np.abs(z), axis=1).tolist(),
                         "max_abs_dev": np.max(np.abs(dev), axis=1).tolist(),
                         "dev_stderr_at_max": [float(ds["G1_stderr"].values[k, np.argmax(
                             np.abs(dev[k]))]) for k in range(len(dev))],
                         "G1": ds["G1"].values.tolist(), "theory": ds["theory_mean"].values
                         .tolist(), "stderr": ds["G1_stderr"].values.tolist()})
            print(f"[a] {act} N={width}: max|z| per time {np.round(rows[-1]['max_abs_z'], 2)}"
                  f", max|dev| {np.array(rows[-1]['max_abs_dev'])}", flush=True)
        slopes = {}
        for k, t in enumerate(rows[0]["times"]):
            if t == 0:
                continue
            vals = [r["max_abs_dev"][k] for r in rows]
            errs = [r["dev_stderr_at_max"][k] for r in rows]
            slopes[str(t)] = loglog_slope(widths, vals, errs)
        out[act] = {"rows": rows, "slope_of_max_dev": slopes}
        print(f"[a] {act}: slope of max|dev| vs N: "
              + ", ".join(f"t={t}: {s['slope']:+.2f} ± {s['slope_err']:.2f}"
                          for t, s in slopes.items()), flush=True)
    return out


def drift_scan(widths, n_models, parameterizations, steps=100, coord_step=5, lr=0.5):
    data = regression_data(1, 8, x_test=TEST_POINTS)
    out = {}
    for par in parameterizations:
        rows = []
        for width in widths:
            prior = nnft.MLP(d=1, width=width, depth=2, activation="erf",
                             parameterization=par)
            cfg = TrainingConfig(learning_rate=lr, steps=steps, measure=(coord_step, steps),
                                 n_models=n_models, n_batches=min(8, n_models), max_order=2)
            t0 = time.perf_counter()
            res = train_ensemble(prior, data, cfg, theory=False)
            ds = res.dataset
            ok = ds["valid"].values[-1]

            def stat(name, k, ds=ds, ok=ok):
                x = ds[name].values[k][ok]
                return float(np.mean(x)), float(np.std(x, ddof=1) / np.sqrt(len(x)))

            drift = stat("ntk_rel_change", -1)
            coord = stat("feature_change_rms", 1)
            feat = stat("feature_rms", 1)
            out_change = np.sqrt(np.mean((ds["f"].values[1] - ds["f"].values[0]) ** 2, axis=1))
            # per model: hidden-layer change per unit output change (removes the spread of
            # the initial residual, which sets both)
            ratio = ds["feature_change_rms"].values[1] / out_change
            rows.append({"width": width, "seconds": time.perf_counter() - t0,
                         "n_diverged": len(res.diverged), "ntk_rel_change": drift,
                         "feature_change_rms": coord, "feature_rms": feat,
                         "output_change_rms": (float(np.mean(out_change[ok])),
                                               float(np.std(out_change[ok], ddof=1)
                                                     / np.sqrt(ok.sum()))),
                         "feature_per_output_change": (float(np.mean(ratio[ok])),
                                                       float(np.std(ratio[ok], ddof=1)
                                                             / np.sqrt(ok.sum()))),
                         "train_loss_final": float(np.median(ds["train_loss"].values[-1][ok]))})
            print(f"[b] {par} N={width}: drift {drift[0]:.4g}±{drift[1]:.2g}, coord "
                  f"{coord[0]:.4g}±{coord[1]:.2g}, loss {rows[-1]['train_loss_final']:.3g} "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
        fits = {}
        for name in ("ntk_rel_change", "feature_change_rms", "output_change_rms",
                     "feature_per_output_change"):
            fits[name] = loglog_slope(widths, [r[name][0] for r in rows],
                                      [r[name][1] for r in rows])
        out[par] = {"rows": rows, "slopes": fits}
        print(f"[b] {par}: slopes " + ", ".join(f"{k}: {f['slope']:+.3f} ± {f['slope_err']:.3f}"
                                             for k, f in fits.items()), flush=True)
    return out


def plots(out_dir: Path, a: dict, b: dict, widths_a, widths_b):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if a:
        fig, axes = plt.subplots(1, len(a), figsize=(5 * len(a), 4), squeeze=False)
        for ax, (act, res) in zip(axes[0], a.items()):
            times = res["rows"][0]["times"]
            for k, t in enumerate(times):
                if t == 0:
                    continue
                ax.errorbar(widths_a, [r["max_abs_dev"][k] for r in res["rows"]],
                            yerr=[r["dev_stderr_at_max"][k] for r in res["rows"]], fmt="o-",
                            capsize=3, label=f"t = {t}: slope "
                            f"{res['slope_of_max_dev'][str(t)]['slope']:+.2f}")
            n = np.array(widths_a, float)
            ax.plot(n, res["rows"][0]["max_abs_dev"][-1] * n[0] / n, "k--", lw=1, label="1/N")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("width N")
            ax.set_ylabel(r"max$_x$ |G1(x,t) - $\mu_t$(x)|")
            ax.set_title(f"{act}: ensemble mean vs frozen NTK")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "frozen_ntk.png", dpi=120)
        plt.close(fig)
    for name, fname, ylabel in (("ntk_rel_change", "ntk_drift.png",
                                 r"$||\Theta_T - \Theta_0|| / ||\Theta_0||$, T = 100"),
                                ("feature_change_rms", "coord_check.png",
                                 "rms change of last hidden layer after 5 steps"),
                                ("feature_per_output_change", "coord_check_ratio.png",
                                 "hidden-layer change / output change, 5 steps")):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for par, res in b.items():
            ax.errorbar(widths_b, [r[name][0] for r in res["rows"]],
                        yerr=[r[name][1] for r in res["rows"]], fmt="o-", capsize=3,
                        label=f"{par}: slope {res['slopes'][name]['slope']:+.2f} ± "
                        f"{res['slopes'][name]['slope_err']:.2f}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width N")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=120)
        plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer widths and models")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    widths_a = (256, 1024) if args.quick else (256, 1024, 4096)
    widths_b = (128, 256, 512) if args.quick else (128, 256, 512, 1024)
    t0 = time.perf_counter()
    name = "results-quick.json" if args.quick else "results.json"
    b = {} if args.skip_b else drift_scan(widths_b, 8 if args.quick else 16, ("ntk", "mup"))
    write_json({"drift": b, "widths_b": widths_b, "partial": True}, args.out / name)
    a = {} if args.skip_a else frozen_ntk_scan(widths_a, 64 if args.quick else 256,
                                               ("erf",) if args.quick else ("erf", "relu"))
    results = {"frozen_ntk": a, "drift": b, "widths_a": widths_a, "widths_b": widths_b,
               "quick": args.quick, "seconds": time.perf_counter() - t0}
    write_json(results, args.out / name)
    plots(args.out, a, b, widths_a, widths_b)
    print(f"wrote {args.out} in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
