"""``summary.json``: every number the README states, from the seed blocks."""

from __future__ import annotations

import numpy as np
from analysis import METHODS, VIEWS

PAPER = {"mse_epoch5": 0.012, "r_epoch5": 0.98, "loss_epoch80": 0.03}
FIXED_POINT_L1 = 0.01


def _ms(x):
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None, None, 0
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0, int(x.size)


def epoch_records(metrics: np.ndarray, epochs) -> list[dict]:
    """``metrics`` (seed, epoch, view, method, 4) -> the list of records of the issue."""
    recs = []
    for i, t in enumerate(epochs):
        for v, view in enumerate(VIEWS):
            for m, method in enumerate(METHODS):
                cell = metrics[:, i, v, m]
                mse, mse_sd, n = _ms(cell[:, 0])
                if n == 0:
                    continue
                r, r_sd, _ = _ms(cell[:, 1])
                rec = {"epoch": int(t), "view": view, "method": method, "mse_mean": mse,
                       "mse_sd": mse_sd, "r_mean": r, "r_sd": r_sd, "n_seeds": n}
                if view != "weights":
                    rec["mse_w2_mean"], rec["mse_w2_sd"], _ = _ms(cell[:, 2])
                    rec["r_w2_mean"], rec["r_w2_sd"], _ = _ms(cell[:, 3])
                recs.append(rec)
    return recs


def verdicts(metrics: np.ndarray, epochs) -> list[dict]:
    """FP against persistence, seed by seed: the paired difference of r (FP - persistence)
    and of MSE (persistence - FP); FP "beats" persistence when the mean difference is positive
    and larger than its standard deviation over seeds (the seed spread)."""
    out = []
    p = METHODS.index("persistence")
    for i, t in enumerate(epochs):
        for v, view in enumerate(VIEWS):
            for method in ("fp_lookahead", "fp_lagged"):
                m = METHODS.index(method)
                dr = metrics[:, i, v, m, 1] - metrics[:, i, v, p, 1]
                dm = metrics[:, i, v, p, 0] - metrics[:, i, v, m, 0]
                r_mean, r_sd, n = _ms(dr)
                if n == 0:
                    continue
                m_mean, m_sd, _ = _ms(dm)
                out.append({"epoch": int(t), "view": view, "method": method, "n_seeds": n,
                            "dr_mean": r_mean, "dr_sd": r_sd, "dmse_mean": m_mean,
                            "dmse_sd": m_sd,
                            "beats_r": bool(n > 1 and r_mean > 0 and r_mean > r_sd),
                            "beats_mse": bool(n > 1 and m_mean > 0 and m_mean > m_sd)})
    return out


def sigma_records(scan: np.ndarray, epochs, sigmas) -> list[dict]:
    """``scan`` (seed, epoch, sigma, 6): r and MSE against sigma2, per epoch and averaged over
    the epochs >= 1."""
    recs = []
    cols = {"weights": (0, 1), "outputs_transported": (2, 3)}
    for j, s2 in enumerate(sigmas):
        for view, (cm, cr) in cols.items():
            for i, t in enumerate(epochs):
                mse, mse_sd, n = _ms(scan[:, i, j, cm])
                if n == 0:
                    continue
                r, r_sd, _ = _ms(scan[:, i, j, cr])
                recs.append({"sigma2": s2, "epoch": int(t), "view": view, "mse_mean": mse,
                             "mse_sd": mse_sd, "r_mean": r, "r_sd": r_sd, "n_seeds": n})
            per_seed = np.nanmean(scan[:, 1:, j, cr], axis=1)
            r, r_sd, n = _ms(per_seed)
            recs.append({"sigma2": s2, "epoch": "mean_over_epochs_ge_1", "view": view,
                         "r_mean": r, "r_sd": r_sd, "n_seeds": n})
    return recs


def _first_below(curve, level):
    hit = np.flatnonzero(np.asarray(curve) < level)
    return int(hit[0]) + 1 if hit.size else None  # curve[k] is the step k -> k+1


def _stays_below(curve, level):
    above = np.flatnonzero(np.asarray(curve) >= level)
    if above.size == len(curve):
        return None
    return int(above[-1]) + 2 if above.size else 1


def fixed_point(seeds: list) -> dict:
    """``||P_{t+1} - P_t||_1`` per epoch (normalised densities on the free-running grid): the
    free-running FP density and the rows' KDE; the epoch where each first falls below 1%, and
    the epoch from which it stays below (``t+1`` of the step ``t -> t+1``)."""
    out = {"threshold": FIXED_POINT_L1}
    for key in ("l1_free_running", "l1_true_kde"):
        c = np.stack([s[key] for s in seeds])
        mean = c.mean(0)
        out[key] = {"mean": mean.tolist(),
                    "sd": (c.std(0, ddof=1) if len(c) > 1 else np.zeros_like(mean)).tolist(),
                    "first_epoch_below_mean_curve": _first_below(mean, FIXED_POINT_L1),
                    "first_epoch_below_per_seed": [_first_below(x, FIXED_POINT_L1) for x in c],
                    "stays_below_from_mean_curve": _stays_below(mean, FIXED_POINT_L1),
                    "stays_below_from_per_seed": [_stays_below(x, FIXED_POINT_L1) for x in c]}
    return out


def _pick(recs, **kw):
    for r in recs:
        if all(r.get(k) == val for k, val in kw.items()):
            return r
    return None


def paper_comparison(recs, loss, epochs) -> dict:
    """The paper's epoch-5 MSE and r and epoch-80 loss beside ours."""
    t5 = 5 if 5 in epochs else None
    out = {"paper": PAPER, "loss_final_epoch": int(loss.shape[0] - 1)}
    lm, ls, _ = _ms(loss[-1])
    out["loss_final_mean"], out["loss_final_sd"] = lm, ls
    if t5 is not None:
        for view in ("outputs_iid", "outputs_transported", "weights"):
            for method in ("fp_lookahead", "fp_lagged", "persistence", "free_running", "floor"):
                r = _pick(recs, epoch=5, view=view, method=method)
                if r is not None:
                    out[f"epoch5_{view}_{method}"] = {k: r[k] for k in r if k.endswith(
                        ("_mean", "_sd"))}
    return out


def summarise(block, seeds, cfg, st, checks, data) -> dict:
    epochs = [int(e) for e in seeds[0]["epochs"]]
    metrics = np.stack([s["metrics"] for s in seeds])
    scan = np.stack([s["sigma_scan"] for s in seeds])
    recs = epoch_records(metrics, epochs)
    loss = block["loss"]
    lm = loss.mean(1)
    out = {"config": {"data": data, "epochs": cfg.epochs, "seeds": cfg.seeds,
                      "batch": cfg.batch, "width": cfg.width, "hidden": list(cfg.hidden),
                      "grid_cells": st.cells, "substeps": 100, "sigma2": st.sigma2,
                      "sigma_scan": list(st.sigma_scan), "compared_epochs": epochs},
           "solver_checks": checks,
           "epochs": recs,
           "verdicts": verdicts(metrics, epochs),
           "sigma_scan": sigma_records(scan, epochs, st.sigma_scan),
           "fixed_point": fixed_point(seeds),
           "loss": {"mean": lm.tolist(),
                    "sd": (loss.std(1, ddof=1) if loss.shape[1] > 1 else 0 * lm).tolist()},
           "gates_open_fraction": float(np.mean([s["gates"].mean() for s in seeds])),
           "comparison": paper_comparison(recs, loss, epochs)}
    return out
