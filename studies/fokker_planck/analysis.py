"""One seed's comparisons (issue 15): the evolved weight-row density against the rows' KDE, and
the bottleneck outputs of rows drawn i.i.d. from it or transported one by one, beside the
persistence and free-running baselines and the floor of rows drawn from the true KDE.

Epoch t (t >= 1) is predicted from epoch t-1: ``P_{t-1} = exp(-V_{t-1})`` is the KDE (Scott)
of the rows at t-1 on a grid covering the rows at t-1 and t; it is evolved for ``dt = 1`` in
100 substeps with the drift of eq. 8,

- ``fp_lookahead``: the displacements ``w_i(t) - w_i(t-1)`` interpolated by Nadaraya-Watson
  (the rows' KDE kernel), gated by ``H(L_{t-1} - L_t)`` (a consistency test);
- ``fp_lagged``: epoch t-1's field, ``w_i(t-1) - w_i(t-2)`` at the rows of t-2 (a real
  prediction; from t = 2);

``persistence`` predicts epoch t-1's rows or density; ``free_running`` evolves ``P0 = N(0,
I/200)`` from epoch 0 with the look-ahead fields on one grid covering every epoch's rows (its
transported rows start from the epoch-0 rows and are never reset); ``floor`` draws the i.i.d.
rows from the true KDE at t.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import numpy as np

from nnft.fokker_planck import (
    Grid,
    compare_images,
    euler_maruyama,
    evolve,
    gated_drift,
    gaussian,
    heaviside_gate,
    kde,
    kde_on_grid,
    sample_grid,
    scott_bandwidth,
)

SUBSTEPS = 100
IMAGE_CELLS = 100
SIGMA_SCAN = (0.0, 1e-6, 1e-5, 1e-4)


class Settings(NamedTuple):
    epochs: tuple = (0, 1, 2, 5, 10, 20, 40, 80)
    cells: int = 128  # weight grid, per axis
    sigma2: float = 1e-22  # eq. 12: eps^2 eta^2
    sigma_scan: tuple = SIGMA_SCAN
    figure_epochs: tuple = (0, 5, 80)
    margin: float = 4.0  # grid margin in kernel standard deviations


def _box(points: list, kernels: list, margin: float, cells: int) -> Grid:
    pts = np.concatenate(points)
    pad = margin * max(float(np.sqrt(np.max(np.diag(k)))) for k in kernels)
    lo, hi = pts.min(0) - pad, pts.max(0) + pad
    return Grid(tuple(lo), tuple(hi), (cells, cells))


def image_grid(z: np.ndarray) -> Grid:
    """100 x 100 cells over [min, max] of the true latent points (the paper's KDE axes)."""
    return Grid(tuple(z.min(0)), tuple(z.max(0)), (IMAGE_CELLS, IMAGE_CELLS))


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _evolve(P, grid, drift, sigma2):
    return _quiet(evolve, P, grid, drift, sigma2, 1.0, substeps=SUBSTEPS)


def _transport(key, rows, drift, sigma2):
    return euler_maruyama(key, rows, drift, sigma2, 1.0, SUBSTEPS)


class Outputs(NamedTuple):
    """The true bottleneck outputs at one epoch and their image windows."""

    h: np.ndarray
    w2: np.ndarray
    grids: tuple
    images: tuple

    @classmethod
    def of(cls, h, rows, w2):
        z1 = h @ rows
        z2 = z1 @ w2
        grids = (image_grid(z1), image_grid(z2))
        return cls(h, w2, grids, (kde(z1, grids[0].centres()), kde(z2, grids[1].centres())))

    def predicted_images(self, rows):
        z1 = self.h @ rows
        return (kde(z1, self.grids[0].centres()), kde(z1 @ self.w2, self.grids[1].centres()))

    def compare(self, rows) -> list:
        """[mse1, r1, mse2, r2] for the outputs of ``rows`` through W1 and then the actual W2."""
        out = []
        for emp, pred in zip(self.images, self.predicted_images(rows)):
            out += list(compare_images(emp, pred))
        return out


def fields(rows: np.ndarray, loss: np.ndarray) -> tuple[list, np.ndarray, list]:
    """The drift of every epoch step t -> t+1 (eq. 8), its gate, and the rows' kernels."""
    kernels = [scott_bandwidth(r) for r in rows]
    gates = np.array([heaviside_gate(loss[t], loss[t + 1]) for t in range(len(rows) - 1)])
    drifts = [gated_drift(rows[t], rows[t + 1] - rows[t], gates[t], kernels[t])
              for t in range(len(rows) - 1)]
    return drifts, gates, kernels


def _l1(a, b, grid):
    return float(np.abs(a / a.sum() - b / b.sum()).sum())


def free_running(rows, drifts, kernels, st: Settings, key):
    """P0 = N(0, I/200) evolved through every epoch on one grid; rows transported from epoch 0.
    Returns (grid, P at the compared epochs, KDE at them, L1 steps of P and of the KDE, rows)."""
    n_ep = len(rows) - 1
    grid = _box(list(rows), kernels, st.margin, st.cells)
    P = gaussian(grid, (0.0, 0.0), np.eye(2) / rows.shape[1])
    K_prev = kde_on_grid(rows[0], grid, kernels[0])
    keep, keep_k, step_p, step_k, moved = {0: P}, {0: K_prev}, [], [], {0: rows[0]}
    x = rows[0]
    for t in range(n_ep):
        P_next = _evolve(P, grid, drifts[t], st.sigma2)
        K = kde_on_grid(rows[t + 1], grid, kernels[t + 1])
        x = _transport(jax.random.fold_in(key, t), x, drifts[t], st.sigma2)
        step_p.append(_l1(P_next, P, grid))
        step_k.append(_l1(K, K_prev, grid))
        P, K_prev = P_next, K
        if t + 1 in st.epochs:
            keep[t + 1], keep_k[t + 1], moved[t + 1] = P, K, x
    return grid, keep, keep_k, np.array(step_p), np.array(step_k), moved


VIEWS = ("weights", "outputs_iid", "outputs_transported")
METHODS = ("fp_lookahead", "fp_lagged", "persistence", "free_running", "floor")


def _local(rows, t, kernels, st):
    """The grid for the step t-1 -> t, the initial P_{t-1} and the true KDE at t on it."""
    grid = _box([rows[t - 1], rows[t]], [kernels[t - 1], kernels[t]], st.margin, st.cells)
    return grid, kde_on_grid(rows[t - 1], grid, kernels[t - 1]), \
        kde_on_grid(rows[t], grid, kernels[t])


def _step_predictions(rows, t, drifts, kernels, st, key):
    """Densities (on the local grid) and transported rows predicted for epoch t."""
    grid, P_prev, K = _local(rows, t, kernels, st)
    dens = {"fp_lookahead": _evolve(P_prev, grid, drifts[t - 1], st.sigma2),
            "persistence": P_prev}
    moved = {"fp_lookahead": _transport(jax.random.fold_in(key, 1), rows[t - 1],
                                        drifts[t - 1], st.sigma2),
             "persistence": rows[t - 1]}
    if t >= 2:
        dens["fp_lagged"] = _evolve(P_prev, grid, drifts[t - 2], st.sigma2)
        moved["fp_lagged"] = _transport(jax.random.fold_in(key, 2), rows[t - 1],
                                        drifts[t - 2], st.sigma2)
    return grid, K, dens, moved


def seed_block(rows, loss, w2, feats: dict, seed: int, st: Settings) -> dict:
    """Every comparison for one seed. ``rows`` (E+1, m, 2), ``loss`` (E+1,), ``w2`` (E+1, 2,
    2), ``feats[t]`` the encoder output (n, m) at each compared epoch t.

    Returns ``metrics`` (epoch, view, method, [mse1, r1, mse2, r2]) with NaN where a method
    does not apply (the weights view fills mse1/r1 only), ``sigma_scan`` (epoch, sigma2,
    [weights mse, weights r, transported mse1, r1, mse2, r2]), the L1 steps, the gates and,
    for seed 0, the figure images."""
    key = jax.random.fold_in(jax.random.key(20_000), seed)
    drifts, gates, kernels = fields(rows, loss)
    st_epochs = [e for e in st.epochs if e < len(rows)]
    g_free, P_free, K_free, step_p, step_k, moved_free = free_running(
        rows, drifts, kernels, st._replace(epochs=tuple(st_epochs)), jax.random.fold_in(key, 7))
    metrics = np.full((len(st_epochs), len(VIEWS), len(METHODS), 4), np.nan)
    scan = np.full((len(st_epochs), len(st.sigma_scan), 6), np.nan)
    figs = {}
    for i, t in enumerate(st_epochs):
        kt = jax.random.fold_in(key, 100 + t)
        out = Outputs.of(feats[t], rows[t], w2[t])
        m = METHODS.index
        metrics[i, 0, m("free_running"), :2] = compare_images(K_free[t], P_free[t])
        draw = sample_grid(jax.random.fold_in(kt, 3), P_free[t], g_free, rows.shape[1])
        metrics[i, 1, m("free_running")] = out.compare(draw)
        metrics[i, 2, m("free_running")] = out.compare(moved_free[t])
        if t == 0:
            grid0 = g_free
            K = K_free[0]
        else:
            grid0, K, dens, moved = _step_predictions(rows, t, drifts, kernels, st, kt)
            for j, (name, P) in enumerate(dens.items()):
                metrics[i, 0, m(name), :2] = compare_images(K, P)
                rows_iid = sample_grid(jax.random.fold_in(kt, 10 + j), P, grid0, rows.shape[1])
                metrics[i, 1, m(name)] = out.compare(rows_iid)
                metrics[i, 2, m(name)] = out.compare(moved[name])
            P_prev = dens["persistence"]
            for j, s2 in enumerate(st.sigma_scan):
                Ps = _evolve(P_prev, grid0, drifts[t - 1], s2)
                xs = _transport(jax.random.fold_in(kt, 50 + j), rows[t - 1], drifts[t - 1], s2)
                scan[i, j] = list(compare_images(K, Ps)) + out.compare(xs)
        floor_rows = sample_grid(jax.random.fold_in(kt, 4), K, grid0, rows.shape[1])
        metrics[i, 1, m("floor")] = out.compare(floor_rows)
        if seed == 0 and t in st.figure_epochs:
            pred = dens["fp_lookahead"] if t > 0 else P_free[0]
            pred_rows = moved["fp_lookahead"] if t > 0 else rows[0]
            iid = sample_grid(jax.random.fold_in(kt, 10), pred, grid0, rows.shape[1])
            figs[f"fig_{t}_true"] = np.stack(out.images)
            figs[f"fig_{t}_iid"] = np.stack(out.predicted_images(iid))
            figs[f"fig_{t}_transported"] = np.stack(out.predicted_images(pred_rows))
            figs[f"fig_{t}_free"] = np.stack(out.predicted_images(moved_free[t]))
            figs[f"fig_{t}_weights_true"] = K
            figs[f"fig_{t}_weights_fp"] = pred
            figs[f"fig_{t}_weights_extent"] = np.array(grid0.lo + grid0.hi)
            figs[f"fig_{t}_extent"] = np.array([g.lo + g.hi for g in out.grids])
    return {"metrics": metrics, "sigma_scan": scan, "l1_free_running": step_p,
            "l1_true_kde": step_k, "gates": gates, "epochs": np.array(st_epochs), **figs}
