"""Training dynamics of wide MLP ensembles: frozen-NTK theory, NTK drift, coordinate check.

    python studies/training-dynamics/run.py [--quick] [--out DIR]

(a) Frozen NTK. Ensembles of S = 256 one-hidden-layer MLPs (NTK parameterisation, erf and
    relu, b_std = 0.2) trained by full-batch GD (mean-normalised squared loss, so the
    frozen-NTK rate is eta/n) at widths 256, 1024, 4096. The ensemble mean G1(x, t) at 8 test
    points and t = 10, 100, 1000 against
    mu_t(x) = Theta(x,X) Theta(X,X)^{-1} (1 - (1 - eta Theta/n)^t) y: z-scores per width and
    the log-log slope of the largest deviation against N. Two 1-d training sets
    (``--frozen-set``): "pair" (default; x = -1.5, 1.5, y = sin(pi x / 2), lr 0.02), on which
    the NTK is well conditioned (lambda_min / lambda_max = 0.96 relu, 0.068 erf), and "sine8"
    (the built-in 8-point "sine" set, lr 1; condition 4e-4 for relu), on which finite-width
    kernel fluctuations, amplified by 1 / condition in the slow modes, dominate for relu.
(b) NTK drift and coordinate check. Depth-2 erf MLPs, S = 16 per width, widths 128 .. 1024,
    full-batch GD at a width-independent base rate (times ``MLP.learning_rate_scale()``, 1 for
    ntk and mup). Relative NTK change ||Theta_T - Theta_0|| / ||Theta_0|| on the 8 training
    points after T = 100 steps: slope -1/2 under ntk, ~0 under mup. Coordinate check: rms
    change of the last hidden layer's activations after 5 steps against width: flat under
    mup, falling like N^{-1/2} under ntk; also per model divided by the rms output change
    (both are set by the model's initial residual, whose spread dominates the error bars).
(c) NTK drift over a wide range of widths. One-hidden-layer erf and relu MLPs, S = 32,
    widths 128 .. 32768, ntk and mup, same training as (b): smooth erf falls like 1/N, relu
    (whose phi' jumps where a pre-activation crosses zero) like N^{-1/2}.

Writes ``results.json`` and ``frozen_ntk.png``, ``ntk_drift.png``, ``coord_check.png`` into
``--out`` (default: this folder). Uses only the public API.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import nnft
from nnft.results import write_json
from nnft.scaling import loglog_slope
from nnft.training import TrainingConfig, make_data, regression_data, sine_target, train_ensemble

HERE = Path(__file__).resolve().parent
TEST_POINTS = np.linspace(-1.75, 1.75, 8)[:, None]


FROZEN_SETS = {"pair": 0.02, "sine8": 1.0}  # training set -> learning rate


def frozen_data(name: str):
    if name == "sine8":
        return regression_data(0, 8, x_test=TEST_POINTS)
    x = np.array([[-1.5], [1.5]])
    return make_data(x, sine_target(x), TEST_POINTS, sine_target(TEST_POINTS))


def frozen_ntk_scan(widths, n_models, activations, steps=1000, times=(10, 100, 1000),
                    frozen_set="pair"):
    data = frozen_data(frozen_set)
    lr = FROZEN_SETS[frozen_set]
    out = {}
    for act in activations:
        rows = []
        for width in widths:
            prior = nnft.MLP(d=1, width=width, depth=1, activation=act,
                             parameterization="ntk", b_std=0.2)
            cfg = TrainingConfig(learning_rate=lr, steps=steps, measure=times,
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
        theta = np.asarray(nnft.MLP(d=1, width=widths[0], depth=1, activation=act,
                                    parameterization="ntk", b_std=0.2).ntk(data.x, data.x))
        ev = np.linalg.eigvalsh(theta)
        out[act] = {"rows": rows, "slope_of_max_dev": slopes, "training_set": frozen_set,
                    "n_models": n_models,
                    "learning_rate": lr, "ntk_condition": float(ev[0] / ev[-1])}
        print(f"[a] {act}: slope of max|dev| vs N: "
              + ", ".join(f"t={t}: {s['slope']:+.2f} ± {s['slope_err']:.2f}"
                          for t, s in slopes.items()), flush=True)
    return out


def drift_scan(widths, n_models, parameterizations, steps=100, coord_step=5, lr=0.5,
               depth=2, activation="erf"):
    data = regression_data(1, 8, x_test=TEST_POINTS)
    out = {}
    for par in parameterizations:
        rows = []
        for width in widths:
            prior = nnft.MLP(d=1, width=width, depth=depth, activation=activation,
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
            print(f"[b] {activation} depth {depth} {par} N={width}: drift {drift[0]:.4g}±{drift[1]:.2g}, coord "
                  f"{coord[0]:.4g}±{coord[1]:.2g}, loss {rows[-1]['train_loss_final']:.3g} "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
        fits = {}
        for name in ("ntk_rel_change", "feature_change_rms", "output_change_rms",
                     "feature_per_output_change"):
            fits[name] = loglog_slope(widths, [r[name][0] for r in rows],
                                      [r[name][1] for r in rows])
        out[par] = {"rows": rows, "slopes": fits}
        print(f"[b] {activation} depth {depth} {par}: slopes " + ", ".join(f"{k}: {f['slope']:+.3f} ± {f['slope_err']:.3f}"
                                             for k, f in fits.items()), flush=True)
    return out


def plots(out_dir: Path, a: dict, b: dict, widths_a, widths_b):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if a:
        # the widest ensemble's mean +- stderr at the 8 test points on the frozen-NTK mean
        fig, axes = plt.subplots(1, len(a), figsize=(5.5 * len(a), 4), squeeze=False)
        xs = TEST_POINTS[:, 0]
        for ax, (act, res) in zip(axes[0], a.items()):
            row = res["rows"][-1]
            for k, t in enumerate(row["times"]):
                if t == 0:
                    continue
                line, = ax.plot(xs, row["theory"][k], "-", lw=1, label=f"theory, t = {t}")
                ax.errorbar(xs, row["G1"][k], yerr=row["stderr"][k], fmt="o", ms=3,
                            capsize=3, color=line.get_color(),
                            label=f"N = {row['width']}: max|z| = {row['max_abs_z'][k]:.2f}")
            ax.set_xlabel("x")
            ax.set_ylabel("ensemble mean G1(x, t)")
            ax.set_title(f"{act}: {len(xs)} test points, S = {res.get('n_models', '')} nets, "
                         f"{res.get('training_set', '')} set", fontsize=9)
            ax.legend(fontsize=6)
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


def plot_wide_drift(out_dir: Path, c: dict, widths) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, res in c.items():
        for par, r in res.items():
            fit = r["slopes"]["ntk_rel_change"]
            ax.errorbar(widths, [row["ntk_rel_change"][0] for row in r["rows"]],
                        yerr=[row["ntk_rel_change"][1] for row in r["rows"]], fmt="o-",
                        capsize=3, label=f"{label}, {par}: slope {fit['slope']:+.2f} ± "
                        f"{fit['slope_err']:.2f}")
    n = np.array(widths, float)
    y0 = next(iter(c.values()))["ntk"]["rows"][0]["ntk_rel_change"][0]
    ax.plot(n, y0 * (n / n[0]) ** -0.5, "k:", lw=1, label=r"$N^{-1/2}$")
    ax.plot(n, y0 * (n / n[0]) ** -1.0, "k--", lw=1, label=r"$N^{-1}$")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel(r"$||\Theta_T - \Theta_0|| / ||\Theta_0||$, T = 100, depth 1")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "ntk_drift_wide.png", dpi=120)
    plt.close(fig)


PARTS = ("frozen", "drift", "drift-wide")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer widths and models")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--parts", default=",".join(PARTS),
                    help=f"comma-separated subset of {PARTS}; the others are kept from an "
                    "existing results file")
    ap.add_argument("--frozen-set", choices=tuple(FROZEN_SETS), default="pair")
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = sorted(set(parts) - set(PARTS))
    if bad:
        ap.error(f"--parts: unknown {bad}; allowed: {', '.join(PARTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    widths_a = (256, 1024) if args.quick else (256, 1024, 4096)
    widths_b = (128, 256, 512) if args.quick else (128, 256, 512, 1024)
    widths_c = (128, 1024, 8192) if args.quick else (128, 512, 2048, 8192, 32768)
    t0 = time.perf_counter()
    name = "results-quick.json" if args.quick else "results.json"
    path = args.out / name
    results = json.loads(path.read_text()) if path.exists() else {}
    results.update(widths_a=widths_a, widths_b=widths_b, widths_c=widths_c, quick=args.quick)
    frozen_key = "frozen_ntk" if args.frozen_set == "pair" else f"frozen_ntk_{args.frozen_set}"
    if "drift" in parts:
        results["drift"] = drift_scan(widths_b, 8 if args.quick else 16, ("ntk", "mup"))
        write_json(results, path)
    if "drift-wide" in parts:
        results["drift_wide"] = {
            f"{act} depth 1": drift_scan(widths_c, 8 if args.quick else 32, ("ntk", "mup"),
                                         depth=1, activation=act)
            for act in ("erf", "relu")}
        write_json(results, path)
    if "frozen" in parts:
        results[frozen_key] = frozen_ntk_scan(widths_a, 64 if args.quick else 256,
                                              ("erf", "relu"), frozen_set=args.frozen_set)
    results["seconds_last_run"] = time.perf_counter() - t0
    write_json(results, path)
    plots(args.out, results.get("frozen_ntk", {}), results.get("drift", {}), widths_a,
          widths_b)
    if "drift_wide" in results:
        plot_wide_drift(args.out, results["drift_wide"], widths_c)
    print(f"wrote {path} in {results['seconds_last_run']:.0f} s")


if __name__ == "__main__":
    main()
