"""The duality study's Dataset and summary: every number the README quotes is computed here
from the blocks (``setups.py``) and the closed forms (``nnft.theory.field_equation``)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import setups as st
import xarray as xr
from scipy import stats

from nnft.theory import field_equation as fe

#: the end metric "looks fine" below this while the trajectory maximum "fails" above FAIL
END_OK, FAIL = 0.01, 0.1


def clean(x):
    """JSON-safe: NaN and inf become None; numpy scalars become numbers."""
    if isinstance(x, dict):
        return {k: clean(val) for k, val in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(val) for val in x]
    if isinstance(x, np.ndarray):
        return clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _q(x) -> dict:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"median": None, "p90": None, "count": 0}
    return {"median": float(np.median(x)), "p90": float(np.quantile(x, 0.9)),
            "count": int(x.size)}


# ---------------------------------------------------------------------------
# Fig. 1
# ---------------------------------------------------------------------------
def alpha_rows(grid: st.Grid, blocks: dict) -> list[dict]:
    rows = []
    for (d, w), res in sorted(blocks.items()):
        a, inf = res["alpha"], res["infinite_width"]
        for (i, act), (j, ws), (k, bs) in itertools.product(
                enumerate(st.ACTS), enumerate(st.W_STDS), enumerate(st.B_STDS)):
            x = a[i, j, k]
            se = x.std(ddof=1) / math.sqrt(x.size)
            rows.append({"activation": act, "depth": d, "width": w, "W_std": ws, "b_std": bs,
                         "x0": st.X0, "mean": x.mean(), "stderr": se, "n_seeds": x.size,
                         "infinite_width": inf[i, j, k],
                         "rel_dev": x.mean() / inf[i, j, k] - 1,
                         "z": (x.mean() - inf[i, j, k]) / se})
    return rows


def _effect(rows, factor: str) -> float:
    """Median over the other factors of max/min of alpha over ``factor``'s levels."""
    keys = ("activation", "depth", "width", "W_std", "b_std")
    others = [k for k in keys if k != factor and not (factor == "init" and k in
                                                      ("W_std", "b_std"))]
    groups: dict = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in others), []).append(r["mean"])
    return float(np.median([max(g) / min(g) for g in groups.values() if len(g) > 1]))


def alpha_orderings(rows) -> dict:
    erf = {(r["depth"], r["width"], r["W_std"], r["b_std"]): r["mean"] for r in rows
           if r["activation"] == "erf"}
    ratio = [erf[(r["depth"], r["width"], r["W_std"], r["b_std"])] / r["mean"] for r in rows
             if r["activation"] == "relu"]
    eff = {f: _effect(rows, f) for f in ("init", "W_std", "b_std", "activation", "depth",
                                         "width")}
    return {"max_over_min_median": eff, "erf_over_relu_median": float(np.median(ratio)),
            "erf_above_relu_fraction": float(np.mean(np.asarray(ratio) > 1)),
            "init_largest": bool(eff["init"] > max(eff["activation"], eff["depth"],
                                                   eff["width"])),
            "width_smallest": bool(eff["width"] < min(eff["init"], eff["activation"],
                                                      eff["depth"]))}


def alpha_acceptance(rows) -> dict:
    widest = max(r["width"] for r in rows)
    sel = [r for r in rows if r["width"] == widest]
    ok = [abs(r["rel_dev"]) < 0.02 or abs(r["z"]) < 3 for r in sel]
    return {"pass": bool(all(ok)), "width": widest, "n_configs": len(sel),
            "n_fail": int(len(ok) - sum(ok)),
            "worst_rel_dev": float(max(abs(r["rel_dev"]) for r in sel)),
            "worst_abs_z": float(max(abs(r["z"]) for r in sel))}


# ---------------------------------------------------------------------------
# discretisation and Fig. 2 (theory only)
# ---------------------------------------------------------------------------
def discretisation(steps: int = 1000) -> list[dict]:
    """The constant-alpha recursion against the ODE, f(0) = 0, f'(0) = 0."""
    rows = []
    for n, f0, m, alpha, (eta, beta) in itertools.product(
            (2, 4), (1.0, 10.0), (0.01, 0.1, 0.2), (0.5, 1.0), st.ETA_BETA):
        rec = fe.recursion(steps, eta, beta, alpha, n=n, m=m, f0=f0)
        t = np.arange(steps + 1) * math.sqrt(eta)
        ode, _ = fe.background(t, alpha, float(fe.friction(eta, beta)), n=n, m=m, f0=f0,
                               rtol=1e-10, atol=1e-12)
        div = int(rec.diverged_at) >= 0
        dev = np.abs(rec.f - ode) / abs(f0)
        rows.append({"n": n, "f0": f0, "m": m, "alpha": alpha, "eta": eta, "beta": beta,
                     "max_dev_rel": None if div else float(dev.max()),
                     "end_dev_rel": None if div else float(dev[-1]), "diverged": div,
                     "diverged_at": int(rec.diverged_at),
                     "gd_unstable": bool(fe.gd_unstable(eta, beta, alpha, n=n, m=m, f0=f0))})
    return rows


def discretisation_summary(rows) -> dict:
    """Counts over the discretisation grid: divergences, flagged instabilities, and the
    trajectory-maximum failures that the end-of-run deviation hides."""
    ok = [r for r in rows if not r["diverged"]]
    mx = np.array([r["max_dev_rel"] for r in ok])
    end = np.array([r["end_dev_rel"] for r in ok])
    return {"n_runs": len(rows), "n_diverged": len(rows) - len(ok),
            "n_gd_unstable": int(sum(r["gd_unstable"] for r in rows)),
            "n_gd_unstable_diverged": int(sum(r["gd_unstable"] and r["diverged"] for r in rows)),
            "max_dev": _q(mx), "end_dev": _q(end), "n_max_above": int((mx > FAIL).sum()),
            "n_hidden": int(((mx > FAIL) & (end < END_OK)).sum()),
            "worst_max_dev": float(mx.max()), "worst_end_dev": float(end.max())}


def eta_scaling(t_end: float = 30.0) -> dict:
    """Acceptance 2: alpha = 1, m = 0.3, beta = 0.5, n = 2, f0 = 1, f(0) = 0; max
    recursion-ODE deviation up to T = 30 for eta = 1e-4 .. 1e-1 and its log-log slope."""
    etas = (1e-4, 1e-3, 1e-2, 1e-1)
    devs = []
    for eta in etas:
        steps = int(round(t_end / math.sqrt(eta)))
        rec = fe.recursion(steps, eta, 0.5, 1.0, n=2, m=0.3, f0=1.0)
        t = np.arange(steps + 1) * math.sqrt(eta)
        exact = fe.oscillator(t, 1.0, float(fe.friction(eta, 0.5)), m=0.3, f0=1.0).f
        devs.append(float(np.max(np.abs(rec.f - exact))))
    slope = float(np.polyfit(np.log(etas), np.log(devs), 1)[0])
    expected = (1.8e-5, 1.8e-4, 1.8e-3, 1.6e-2)
    return {"eta": list(etas), "max_dev": devs, "expected": list(expected),
            "slope": slope, "T": t_end,
            "pass": bool(all(abs(d / e - 1) < 0.1 for d, e in zip(devs, expected)))}


def eta_max_curves(alpha: float = 1.0) -> dict:
    ms = np.geomspace(0.005, 0.5, 60)
    curves = []
    for n, f0, beta in itertools.product((2, 4), (1.0, 10.0), (0.0, 0.5)):
        emax = fe.eta_max(alpha, beta, n=n, m=ms, f0=f0)
        curv = fe.loss_derivative(0.0, n=n, m=ms, f0=f0, order=2)
        curves.append({"n": n, "f0": f0, "beta": beta, "m": ms, "eta_max": emax,
                       "eta_unstable": 2 * (1 + beta) / (alpha * curv)})
    points = []
    for (eta, beta), n, f0, m in itertools.product(st.ETA_BETA, (2, 4), (1.0, 10.0),
                                                   (0.01, 0.1, 0.2)):
        points.append({"eta": eta, "beta": beta, "n": n, "f0": f0, "m": m,
                       "inside": bool(eta < fe.eta_max(alpha, beta, n=n, m=m, f0=f0)),
                       "gd_unstable": bool(fe.gd_unstable(eta, beta, alpha, n=n, m=m, f0=f0))})
    return {"alpha": alpha, "f_init": 0.0, "curves": curves, "paper_points": points,
            "paper_points_inside": int(sum(p["inside"] for p in points)),
            "paper_points_unstable": int(sum(p["gd_unstable"] for p in points)),
            "n_paper_points": len(points)}


# ---------------------------------------------------------------------------
# Fig. 3
# ---------------------------------------------------------------------------
ARCH_KEYS = ("depth", "width", "activation", "W_std", "b_std")
PER_RUN = ("alpha0", "alphaT", "div_nn", "div_rec", "end_ode", "max_ode", "end_rec",
           "max_rec", "n", "eta", "beta", "f0", "m")


def matching_table(blocks: dict) -> dict:
    """Per-run arrays over every architecture (run = architecture x model)."""
    cols: dict = {k: [] for k in (*ARCH_KEYS, *PER_RUN, "f_nn", "f_ode", "f_rec")}
    for arch, res in blocks.items():
        s = len(res["eta"])
        for k, val in zip(ARCH_KEYS, arch):
            cols[k].extend([val] * s)
        for k in (*PER_RUN, "f_nn", "f_ode", "f_rec"):
            cols[k].extend(list(res[k]))
    tab = {k: np.asarray(val) for k, val in cols.items()}
    f_init = tab["f_nn"][:, 0]
    emax = np.array([float(fe.eta_max(a, b, n=int(n), m=m, f0=f0, f_init=fi)) for
                     a, b, n, m, f0, fi in zip(tab["alpha0"], tab["beta"], tab["n"], tab["m"],
                                               tab["f0"], f_init)])
    tab["eta_max"] = emax
    tab["inside"] = tab["eta"] < emax
    tab["alpha_change"] = tab["alphaT"] - tab["alpha0"]
    return tab


def matching_summary(tab: dict) -> dict:
    ok = tab["div_nn"] < 0
    out: dict = {"n_runs": int(ok.size), "n_diverged": int((~ok).sum()),
                 "diverged_runs": [{k: tab[k][i] for k in (*ARCH_KEYS, "n", "eta", "beta",
                                                           "f0", "m", "div_nn")}
                                   for i in np.flatnonzero(~ok)],
                 "n_inside": int((ok & tab["inside"]).sum()),
                 "n_outside": int((ok & ~tab["inside"]).sum())}
    for pred in ("ode", "rec"):
        block = {}
        for where, sel in (("inside", ok & tab["inside"]), ("outside", ok & ~tab["inside"]),
                           ("all", ok)):
            block[where] = {"end": _q(tab[f"end_{pred}"][sel]),
                            "max": _q(tab[f"max_{pred}"][sel])}
        out["ode" if pred == "ode" else "recursion"] = block
    end, mx = tab["end_ode"], tab["max_ode"]
    hidden = ok & (end < END_OK) & (mx > FAIL)
    failed = ok & (mx > FAIL)
    out["hidden_failures"] = {
        "end_below": END_OK, "max_above": FAIL, "n_hidden": int(hidden.sum()),
        "n_failed_by_max": int(failed.sum()), "n_failed_by_end": int((ok & (end > FAIL)).sum()),
        "fraction_of_max_failures_hidden": float(hidden.sum() / max(failed.sum(), 1)),
        "examples": [_run(tab, i) for i in np.flatnonzero(hidden)[np.argsort(
            -(mx[hidden] / np.maximum(end[hidden], 1e-300)))][:3]]}
    rel = np.abs(tab["alpha_change"]) / tab["alpha0"]
    good = ok & np.isfinite(end)
    rho_end = stats.spearmanr(rel[good], end[good])[0]
    rho_max = stats.spearmanr(rel[good], mx[good])[0]
    out["alpha_change"] = {"median_rel": float(np.median(rel[ok])),
                           "p90_rel": float(np.quantile(rel[ok], 0.9)),
                           "spearman_with_end_metric": float(rho_end),
                           "spearman_with_max_metric": float(rho_max)}
    by_width = {}
    for w in sorted(set(tab["width"].tolist())):
        sel = ok & (tab["width"] == w)
        by_width[str(w)] = {"end": _q(end[sel]), "max": _q(mx[sel]),
                            "alpha_change_rel": _q(rel[sel])}
    out["by_width"] = by_width
    by_n = {}
    for n in sorted(set(tab["n"].tolist())):
        sel = ok & (tab["n"] == n)
        by_n[str(n)] = {"end": _q(end[sel]), "max": _q(mx[sel])}
    out["by_n"] = by_n
    return out


def _run(tab, i) -> dict:
    keys = (*ARCH_KEYS, "n", "eta", "beta", "f0", "m", "alpha0", "alphaT", "end_ode",
            "max_ode", "eta_max", "inside")
    out = {k: tab[k][i] for k in keys}
    out["f_nn_T"], out["f_ode_T"], out["f_nn_0"] = (tab["f_nn"][i, -1], tab["f_ode"][i, -1],
                                                    tab["f_nn"][i, 0])
    out["run"] = int(i)
    return out


# ---------------------------------------------------------------------------
# Figs. 4-6
# ---------------------------------------------------------------------------
def _rms(x, axis=-1):
    return np.sqrt(np.mean(np.asarray(x) ** 2, axis=axis))


def mode_rows(grid: st.Grid, blocks: dict) -> tuple[list, list]:
    spectra, preds = [], []
    for (d, act, ws, bs, c), r in blocks.items():
        base = {"activation": act, "depth": d, "W_std": ws, "b_std": bs, "c": c}
        s = len(r["lambda1_over_N"])
        spectra.append({**base, "width": grid.mode_width,
                        "lambda1_over_N": float(np.mean(r["lambda1_over_N"])),
                        "lambda1_over_N_stderr": float(np.std(r["lambda1_over_N"], ddof=1)
                                                       / math.sqrt(s)),
                        "lambda2_over_lambda1": float(np.mean(r["lambda2_over_lambda1"])),
                        "mean_overlap": float(np.mean(r["mean_overlap"])),
                        "mean_overlap_min": float(np.min(r["mean_overlap"])),
                        "n_seeds": s})
        spectra.append({**base, "width": "inf",
                        "lambda1_over_N": float(r["inf_lambda1_over_N"]),
                        "lambda2_over_lambda1": float(r["inf_lambda2_over_lambda1"]),
                        "mean_overlap": float(r["inf_mean_overlap"])})
        ok = r["diverged"] < 0
        mean_err = (np.abs(r["fbar_nn"] - r["fbar_pred"])
                    / np.abs(r["fbar_nn"] - r["fbar_nn0"]))
        appb_err = (np.abs(r["mean_nn"] - r["mean_pred_appB"])
                    / np.abs(r["mean_nn"] - r["mean_nn0"]))
        mode_err = _rms(r["c_nn"] - r["c_pred"]) / _rms(r["c_nn0"])
        preds.append({**base, "width": grid.mode_width, "n_seeds": s,
                      "n_diverged": int((~ok).sum()),
                      "mean_rel_err_lambda1": float(np.median(mean_err[ok])),
                      "mean_rel_err_appB": float(np.median(appb_err[ok])),
                      "appB_minus_lambda1_prediction": float(np.median(np.abs(
                          r["mean_pred_appB"] - r["fbar_pred"])[ok])),
                      "alpha_mean_over_lambda1_N": float(np.mean(
                          r["alpha_mean"] / r["lambda1_over_N"])),
                      "modes_rms_init": float(np.median(_rms(r["c_nn0"])[ok])),
                      "modes_rms_final_nn": float(np.median(_rms(r["c_nn"])[ok])),
                      "modes_rms_final_pred": float(np.median(_rms(r["c_pred"])[ok])),
                      "modes_rel_err": float(np.median(mode_err[ok])),
                      "mean_shift_nn": float(np.median(np.abs(r["fbar_nn"] - r["fbar_nn0"])
                                                       [ok] * math.sqrt(grid.mode_points)))})
    return spectra, preds


def decomposition_test(grid: st.Grid) -> list[dict]:
    """Hypothesis: where eqs. 15-16 miss the network at c = 1, the cause is the decomposition
    f = sqrt(N) fbar v_1 + df (it assumes v_1 ~ 1), not finite width or kernel drift. Test
    without any network: the infinite-width kernel, frozen, n = 2, f(0) = 0; the exact
    frozen-kernel recursion against eqs. 15-16 (which then predict f = sqrt(N) fbar v_1) and
    against App. B's mean."""
    eta, beta, m, f0 = 1 / 9, 0.0, grid.mode_m, grid.mode_f0
    rows = []
    for d, act, ws, bs, c in grid.mode_archs():
        x = st.mode_inputs(c, grid.mode_points, eta, beta)
        th = st.gp.ntk(x, depth=d, activation=act, W_std=ws, b_std=bs)
        big_n = len(x)
        rec = fe.recursion(grid.steps, eta, beta, th, n=2, m=m, f0=f0,
                           f_init=np.zeros(big_n)).f[-1]
        basis = fe.eigenbasis(th)
        t = np.array([0.0, grid.steps * math.sqrt(eta)])
        gamma = float(fe.friction(eta, beta))
        fbar, _ = fe.modes(t, basis.eigenvalues, gamma, n=2, m=m, f0=f0, fbar_init=0.0,
                           c_init=np.zeros(big_n - 1))
        pred = math.sqrt(big_n) * fbar[-1] * basis.vectors[:, 0]
        mean_b, _ = fe.background(t, basis.alpha_mean, gamma, n=2, m=m, f0=f0)
        rows.append({"activation": act, "depth": d, "W_std": ws, "b_std": bs, "c": c,
                     "mean_overlap": basis.mean_overlap,
                     "eq15_16_rms_err_over_f0": float(_rms(rec - pred) / f0),
                     "eq15_mean_err_over_f0": float(abs(np.mean(rec) - np.mean(pred)) / f0),
                     "appB_mean_err_over_f0": float(abs(np.mean(rec) - mean_b[-1]) / f0),
                     "exact_mean_shift_over_f0": float(abs(np.mean(rec)) / f0)})
    return rows


# ---------------------------------------------------------------------------
# the Dataset and the summary
# ---------------------------------------------------------------------------
def dataset(grid: st.Grid, grouped: dict) -> xr.Dataset:
    tab = matching_table(grouped["matching"])
    data = {}
    for k in ARCH_KEYS:
        data[f"run_{k}"] = (("run",), tab[k])
    for k in (*PER_RUN, "eta_max", "inside", "alpha_change"):
        data[k] = (("run",), tab[k])
    every = 4  # the trajectories every 4th step, float32 (the metrics use every step)
    steps = np.arange(0, grid.steps + 1, every)
    for k in ("f_nn", "f_ode"):
        data[k] = (("run", "step"), tab[k][:, steps].astype(np.float32))
    ws = sorted(grouped["alpha"])
    depths = sorted({d for d, _ in ws})
    widths = sorted({w for _, w in ws})
    n_seed = max(r["alpha"].shape[-1] for r in grouped["alpha"].values())
    alpha = np.full((len(st.ACTS), len(depths), len(widths), len(st.W_STDS), len(st.B_STDS),
                     n_seed), np.nan)
    inf = np.full((len(st.ACTS), len(depths), len(st.W_STDS), len(st.B_STDS)), np.nan)
    for (d, w), r in grouped["alpha"].items():
        i, j = depths.index(d), widths.index(w)
        alpha[:, i, j, :, :, : r["alpha"].shape[-1]] = r["alpha"]
        inf[:, i] = r["infinite_width"]
    dims = ("activation", "depth", "width", "W_std", "b_std")
    data["alpha_init"] = ((*dims, "seed"), alpha)
    data["alpha_infinite_width"] = (("activation", "depth", "W_std", "b_std"), inf)
    modes = list(grouped["modes"].values())
    if modes:
        data["mode_eigenvalues"] = (("mode_config", "mode_seed", "eig"),
                                    np.stack([r["eigenvalues"] for r in modes]))
        for k in ("c_nn0", "c_nn", "c_pred"):
            data[f"mode_{k}"] = (("mode_config", "mode_seed", "mode"),
                                 np.stack([r[k] for r in modes]))
        for k in ("fbar_nn0", "fbar_nn", "fbar_pred", "mean_nn0", "mean_nn", "mean_pred_appB"):
            data[f"mode_{k}"] = (("mode_config", "mode_seed"), np.stack([r[k] for r in modes]))
        keys = list(grouped["modes"])
        for i, name in enumerate(("mode_depth", "mode_activation", "mode_W_std", "mode_b_std",
                                  "mode_c")):
            data[name] = (("mode_config",), np.asarray([k[i] for k in keys]))
    ds = xr.Dataset(data, coords={"activation": list(st.ACTS), "depth": depths,
                                  "width": widths, "W_std": list(st.W_STDS),
                                  "b_std": list(st.B_STDS), "step": steps})
    ds.attrs.update({"grid": grid.name, "x0": st.X0,
                     "description": "duality-nn-cosmology: alpha at init (Fig. 1), Fig. 3 "
                     "trajectories (f_nn, f_ode per run), mode spectra (Figs. 4-6)"})
    return ds


def summarise(grid: st.Grid, grouped: dict, ds: xr.Dataset) -> dict:
    rows = alpha_rows(grid, grouped["alpha"])
    tab = matching_table(grouped["matching"])
    match = matching_summary(tab)
    spectra, preds = mode_rows(grid, grouped["modes"])
    ro = grouped["readout"][()]
    ok = ro["div_nn"] < 0
    readout = {"one_input_max_dev_rel": float(np.max(ro["one_input_dev"][ok])),
               "one_input_n_runs": int(ok.size), "one_input_n_diverged": int((~ok).sum()),
               "divergence_steps_agree": bool(np.all(ro["div_nn"] == ro["div_rec"])),
               "alpha_max_rel_spread": float(np.max(ro["alpha_rel_spread"][ok])),
               "modes_max_dev_discrete_rel": float(ro["modes_dev_discrete"]),
               "modes_max_dev_ode_rel": float(ro["modes_dev_ode"]),
               "modes_top_lambda_over_N": ro["modes_top_eigenvalues"]}
    scaling = eta_scaling()
    disc = discretisation(grid.steps)
    acc_alpha = alpha_acceptance(rows)
    orders = alpha_orderings(rows)
    acceptance = {
        "1_alpha_infinite_width": {**acc_alpha, "orderings_hold": bool(
            orders["init_largest"] and orders["erf_above_relu_fraction"] > 0.5)},
        "2_recursion": {"pass": bool(readout["one_input_max_dev_rel"] < 1e-10
                                     and scaling["pass"]),
                        "network_vs_recursion": readout["one_input_max_dev_rel"],
                        "eta_scaling": scaling["max_dev"]},
        "3_matching": {"pass": bool(match["n_inside"] > 0 and match["n_outside"] > 0
                                    and match["hidden_failures"]["n_hidden"] > 0),
                       "n_hidden_failures": match["hidden_failures"]["n_hidden"]},
        "4_modes_frozen": {"pass": bool(readout["modes_max_dev_discrete_rel"] < 1e-8),
                           "max_dev": readout["modes_max_dev_discrete_rel"]},
    }
    out = {"grid": {k: getattr(grid, k) for k in grid.__dataclass_fields__},
           "x0": st.X0, "eta_beta": st.ETA_BETA,
           "alpha_init": rows, "alpha_orderings": orders,
           "discretisation": disc, "discretisation_summary": discretisation_summary(disc),
           "eta_scaling": scaling,
           "eta_max": eta_max_curves(), "matching": match, "modes": spectra,
           "mode_predictions": preds, "decomposition_test": decomposition_test(grid),
           "readout_only": readout, "acceptance": acceptance}
    return clean(out)
