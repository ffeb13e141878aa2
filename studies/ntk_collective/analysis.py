"""Claims C1-C5 of ntk-collective-variables from the dense scan's histories.

``runs``: ``{(width, depth, activation): block}`` with arrays ``(seeds, epochs + 1)``. The
primary probe is the training probe (``PROBE``); S in nats.

Rule (issue 14): ``S_min`` = min over epochs; ``d = max(0.05, 3 x seed sd of S_0)`` per
configuration; a run is *compression* if ``S_end < S_0 - d`` and ``S_end - S_min < d``,
*structure formation* if ``S_end - S_min >= d``, else *neither*.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

PROBE = "train"
EARLY_FRACTION = 0.1


def _d(s0: np.ndarray) -> float:
    return float(max(0.05, 3 * (s0.std(ddof=1) if len(s0) > 1 else 0.0)))


def classify(s: np.ndarray) -> tuple[list[str], float]:
    """Per seed: "compression" / "structure" / "neither" from S histories (seeds, T)."""
    d = _d(s[:, 0])
    out = []
    for row in s:
        s0, end, smin = row[0], row[-1], row.min()
        if end - smin >= d:
            out.append("structure")
        elif end < s0 - d:
            out.append("compression")
        else:
            out.append("neither")
    return out, d


def _spearman(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def per_run(runs: dict) -> list[dict]:
    """One row per (width, depth, activation): seed means and sds of the quantities used."""
    rows = []
    for (w, dep, act), b in sorted(runs.items()):
        s, tr, loss = b[f"{PROBE}_entropy"], b[f"{PROBE}_trace"], b["train_loss"]
        n_ep = s.shape[1] - 1
        early = max(1, int(round(EARLY_FRACTION * n_ep)))
        kinds, d = classify(s)
        drop = s[:, : early + 1].min(axis=1) < s[:, 0] - d
        ratio = tr[:, -1] / tr[:, 0]
        rows.append({
            "width": w, "depth": dep, "activation": act, "n_params": int(b["n_params"]),
            "d": d, "S0_mean": float(s[:, 0].mean()), "S0_sd": float(s[:, 0].std(ddof=1)),
            "Send_mean": float(s[:, -1].mean()), "Send_sd": float(s[:, -1].std(ddof=1)),
            "Smin_mean": float(s.min(1).mean()),
            "Smin_epoch_median": float(np.median(s.argmin(1))),
            "early_drop_fraction": float(drop.mean()),
            "early_corr_S_loss": float(np.mean([_spearman(si[: early + 1], li[: early + 1])
                                                for si, li in zip(s, loss)])),
            "compression": kinds.count("compression"), "structure": kinds.count("structure"),
            "neither": kinds.count("neither"),
            "trace_ratio_mean": float(ratio.mean()), "trace_ratio_sd": float(ratio.std(ddof=1)),
            "train_loss_end_mean": float(loss[:, -1].mean()),
            "train_loss_end_sd": float(loss[:, -1].std(ddof=1)),
            "test_loss_end_mean": float(b["test_loss"][:, -1].mean()),
            "test_loss_end_sd": float(b["test_loss"][:, -1].std(ddof=1)),
            "test_loss_min_mean": float(b["test_loss"].min(1).mean()),
            "test_accuracy_end_mean": float(b["test_accuracy"][:, -1].mean()),
        })
    return rows


def _col(rows, key, act=None):
    return np.array([r[key] for r in rows if act is None or r["activation"] == act])


def claims(rows: list[dict]) -> dict:
    """C1-C5: the numbers and a verdict each (README table)."""
    acts = sorted({r["activation"] for r in rows})
    n_runs = sum(r["compression"] + r["structure"] + r["neither"] for r in rows)
    c1 = {"early_window_epochs_fraction": EARLY_FRACTION,
          "fraction_of_configs_dropping_early": float(np.mean(_col(rows, "early_drop_fraction")
                                                              >= 0.5)),
          "median_epoch_of_S_min": float(np.median(_col(rows, "Smin_epoch_median"))),
          "mean_early_spearman_S_vs_loss": float(np.nanmean(_col(rows, "early_corr_S_loss")))}
    for a in acts:
        rs = [r for r in rows if r["activation"] == a]
        c1[a] = {"fraction_of_configs_dropping_early": float(np.mean(
                     [r["early_drop_fraction"] >= 0.5 for r in rs])),
                 "median_epoch_of_S_min": float(np.median([r["Smin_epoch_median"] for r in rs])),
                 "mean_S0_minus_Smin": float(np.mean([r["S0_mean"] - r["Smin_mean"] for r in rs])),
                 "mean_d": float(np.mean([r["d"] for r in rs])),
                 "mean_early_spearman_S_vs_loss": float(np.nanmean(
                     [r["early_corr_S_loss"] for r in rs]))}
    c1["verdict"] = ("supported" if c1["fraction_of_configs_dropping_early"] >= 0.75
                     and c1["mean_early_spearman_S_vs_loss"] > 0.5 else
                     "partly" if c1["fraction_of_configs_dropping_early"] >= 0.5 else
                     "not supported")
    small_n = np.median(_col(rows, "n_params"))
    small = [r for r in rows if r["n_params"] <= small_n]
    large = [r for r in rows if r["n_params"] > small_n]

    def frac(rs, k):
        tot = sum(r["compression"] + r["structure"] + r["neither"] for r in rs)
        return float(sum(r[k] for r in rs) / max(tot, 1))

    c2 = {"n_runs": n_runs, "median_n_params_split": float(small_n),
          "small_compression_fraction": frac(small, "compression"),
          "small_structure_fraction": frac(small, "structure"),
          "large_compression_fraction": frac(large, "compression"),
          "large_structure_fraction": frac(large, "structure")}
    c2["verdict"] = ("supported" if c2["small_compression_fraction"]
                     > c2["large_compression_fraction"] and c2["large_structure_fraction"]
                     > c2["small_structure_fraction"] else "not supported")
    c3, c4, c5 = {}, {}, {}
    for a in acts:
        w, dep = np.log2(_col(rows, "width", a)), _col(rows, "depth", a)
        s0, se = _col(rows, "S0_mean", a), _col(rows, "Send_mean", a)
        tl = _col(rows, "test_loss_end_mean", a)
        best_s = int(np.argmax(se))
        wa, da = _col(rows, "width", a), _col(rows, "depth", a)
        c3[a] = {"spearman_S0_width": _spearman(w, s0), "spearman_S0_depth": _spearman(dep, s0),
                 "spearman_Send_width": _spearman(w, se), "spearman_Send_depth": _spearman(dep, se),
                 "spearman_Send_test_loss": _spearman(se, tl),
                 "highest_Send_config": [int(wa[best_s]), int(da[best_s])],
                 "best_test_loss_config": [int(wa[np.argmin(tl)]), int(da[np.argmin(tl)])]}
        lr = np.log(_col(rows, "trace_ratio_mean", a))
        c4[a] = {"fraction_trace_grows": float(np.mean(lr > 0)),
                 "median_trace_ratio": float(np.exp(np.median(lr))),
                 "spearman_log_ratio_width": _spearman(w, lr),
                 "spearman_log_ratio_depth": _spearman(dep, lr)}
        ltr = np.log(_col(rows, "train_loss_end_mean", a))
        c5[a] = {"spearman_train_loss_width": _spearman(w, ltr),
                 "spearman_train_loss_depth": _spearman(dep, ltr),
                 "spearman_test_loss_width": _spearman(w, tl),
                 "spearman_test_loss_depth": _spearman(dep, tl),
                 "mean_train_loss_end": float(np.exp(ltr.mean())),
                 "mean_test_loss_end": float(tl.mean())}
    c3["verdict_init"] = _verdict([c3[a]["spearman_S0_width"] > 0.3
                                   and c3[a]["spearman_S0_depth"] < -0.3 for a in acts])
    relu = c3.get("relu", {})
    widest, deepest = max(_col(rows, "width")), max(_col(rows, "depth"))
    c3["verdict_trained_relu"] = ("supported" if relu and relu["highest_Send_config"]
                                  == [widest, deepest] and relu["spearman_Send_test_loss"] < 0
                                  else "not supported")
    grows = [c4[a]["fraction_trace_grows"] >= 0.75 for a in acts]
    c4["verdict"] = ("supported" if all(grows) and all(
        c4[a]["spearman_log_ratio_width"] > 0.3 and c4[a]["spearman_log_ratio_depth"] > 0.3
        for a in acts) else "partly" if any(grows) else "not supported")
    c5["verdict"] = _verdict([c5[a]["spearman_train_loss_width"] < -0.3
                              and c5[a]["spearman_train_loss_depth"] < -0.3 for a in acts])
    if "relu" in c5 and "tanh" in c5:
        c5["tanh_minus_relu_mean_train_loss"] = (c5["tanh"]["mean_train_loss_end"]
                                                 - c5["relu"]["mean_train_loss_end"])
    return {"C1": c1, "C2": c2, "C3": c3, "C4": c4, "C5": c5}


def _verdict(flags: list[bool]) -> str:
    return "supported" if all(flags) else "partly" if any(flags) else "not supported"


def evolution_summary(block: dict) -> dict:
    """S, tr, loss at epoch 0, argmin S and the end (seed mean and sd) for one run."""
    out = {}
    for key in (f"{PROBE}_entropy", f"{PROBE}_trace", "train_loss", "test_loss",
                "test_accuracy"):
        a = block[key]
        if np.all(np.isnan(a)):
            continue
        sd = (lambda z: float(z.std(ddof=1))) if a.shape[0] > 1 else (lambda z: float("nan"))
        out[key] = {"start_mean": float(a[:, 0].mean()), "start_sd": sd(a[:, 0]),
                    "end_mean": float(a[:, -1].mean()), "end_sd": sd(a[:, -1]),
                    "min_mean": float(a.min(1).mean()),
                    "argmin_epoch_median": float(np.median(a.argmin(1)))}
    tr = block[f"{PROBE}_trace"]
    out["trace_argmin_epoch_median"] = float(np.median(tr.argmin(1)))
    out["trace_early_dip"] = bool(np.median(tr.argmin(1)) > 0)
    return out


def _slope(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(np.polyfit(x, y, 1)[0]) if len(x) > 1 and np.ptp(x) > 0 else float("nan")


def parameterisation(sweep_rows: list[dict], dense_blocks: dict) -> dict:
    """Width and depth dependence of S and tr at initialisation in both parameterisations.

    NTK parameterisation (the init sweep, train probe): median over depths of the slopes of
    ``log tr/(C n)`` and of S against ``log width``, and the slope of S against depth at the
    widest width. Standard parameterisation (the dense scan's epoch 0, flax defaults, all
    seeds): the same slopes from ``tr_0`` (per output, /10) and ``S_0``."""
    out = {}
    for a in sorted({r["activation"] for r in sweep_rows}):
        rs = [r for r in sweep_rows if r["activation"] == a and r["probe"] == PROBE]
        depths = sorted({r["depth"] for r in rs})
        tr_sl, s_sl = [], []
        for dep in depths:
            q = sorted((r for r in rs if r["depth"] == dep), key=lambda r: r["width"])
            lw = np.log([r["width"] for r in q])
            tr_sl.append(_slope(lw, np.log([r["trace_per_point_mean"] for r in q])))
            s_sl.append(_slope(lw, [r["entropy_mean"] for r in q]))
        wmax = max(r["width"] for r in rs)
        top = sorted((r for r in rs if r["width"] == wmax), key=lambda r: r["depth"])
        out[f"ntk_{a}"] = {"median_slope_log_trace_vs_log_width": float(np.median(tr_sl)),
                           "median_slope_S_vs_log_width": float(np.median(s_sl)),
                           "slope_S_vs_depth_at_widest": _slope([r["depth"] for r in top],
                                                                [r["entropy_mean"] for r in top]),
                           "widest": int(wmax)}
    for a in sorted({k[2] for k in dense_blocks}):
        keys = [k for k in dense_blocks if k[2] == a]
        depths = sorted({k[1] for k in keys})
        widths = sorted({k[0] for k in keys})
        tr_sl, s_sl = [], []
        for dep in depths:
            lw = np.log(widths)
            tr_sl.append(_slope(lw, [np.log(dense_blocks[(w, dep, a)][f"{PROBE}_trace"][:, 0]
                                            .mean() / 10 / 100) for w in widths]))
            s_sl.append(_slope(lw, [dense_blocks[(w, dep, a)][f"{PROBE}_entropy"][:, 0].mean()
                                    for w in widths]))
        s_dep = _slope(depths, [dense_blocks[(widths[-1], dep, a)][f"{PROBE}_entropy"][:, 0]
                                .mean() for dep in depths])
        out[f"standard_{a}"] = {"median_slope_log_trace_vs_log_width": float(np.median(tr_sl)),
                                "median_slope_S_vs_log_width": float(np.median(s_sl)),
                                "slope_S_vs_depth_at_widest": s_dep, "widest": int(widths[-1])}
    return out
