"""Helpers around the solver: Gaussian KDE on a grid, Nadaraya-Watson fields, sampling rows
from a grid density, the Euler-Maruyama particle twin of :func:`evolve`, and the paper's image
comparison (eq. 28, with the square root its denominator lacks)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nnft import _validate as v
from nnft.fokker_planck.solver import Grid, check_density

MIN_POINTS = 3


def _points(points, field: str = "points") -> np.ndarray:
    x = np.asarray(points, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    v.require(x.ndim == 2, field, f"shape {np.shape(points)}", "must be an (n, d) array")
    v.require(x.shape[0] >= MIN_POINTS, field, f"{x.shape[0]} points",
              f"a KDE needs at least {MIN_POINTS} points")
    v.require(bool(np.all(np.isfinite(x))), field, "non-finite values", "must be finite")
    return x


def scott_bandwidth(points) -> np.ndarray:
    """The kernel covariance of Scott's rule, ``cov * n^(-2/(d+4))`` (scipy's gaussian_kde)."""
    x = _points(points)
    n, d = x.shape
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    v.require(bool(np.linalg.det(cov) > 0), "points", "a degenerate cloud",
              "must span all d dimensions (positive-definite covariance)")
    return cov * n ** (-2.0 / (d + 4))


def _whiten(kernel_cov: np.ndarray):
    chol = np.linalg.cholesky(np.atleast_2d(kernel_cov))
    inv = np.linalg.inv(chol)
    return inv, float(np.prod(np.diag(chol)))


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a_i - b_j|^2 for (m, d) and (n, d), by one matrix product."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


@jax.jit
def _kernel_sums(q, xs):
    d2 = (q * q).sum(1)[:, None] + (xs * xs).sum(1)[None, :] - 2.0 * q @ xs.T
    return jnp.exp(-0.5 * jnp.maximum(d2, 0.0)).sum(1)


def kde(points, at, kernel_cov=None, chunk: int = 8192) -> np.ndarray:
    """Gaussian KDE of ``points`` (n, d) at positions ``at`` (..., d); ``kernel_cov``: the
    kernel's covariance (default Scott's rule). The kernel sums run in float32 under jit, on
    coordinates whitened by the kernel and centred on the points (relative error ~1e-5)."""
    x = _points(points)
    n, d = x.shape
    cov = scott_bandwidth(x) if kernel_cov is None else np.atleast_2d(kernel_cov)
    inv, sd_prod = _whiten(cov)
    at = np.asarray(at, np.float64)
    centre = x.mean(0)
    q = ((at.reshape(-1, d) - centre) @ inv.T).astype(np.float32)
    xs = ((x - centre) @ inv.T).astype(np.float32)
    norm = 1.0 / (n * (2 * np.pi) ** (d / 2) * sd_prod)
    out = np.concatenate([np.asarray(_kernel_sums(q[i:i + chunk], xs), np.float64)
                          for i in range(0, len(q), chunk)])
    return (out * norm).reshape(at.shape[:-1])


def kde_on_grid(points, grid: Grid, kernel_cov=None, warn_fraction: float = 0.01
                ) -> np.ndarray:
    """The KDE at the cell centres (density convention of :mod:`solver`); warns with the
    fraction of the mass that falls outside the grid when it exceeds ``warn_fraction``."""
    x = _points(points)
    v.require(x.shape[1] == grid.d, "points", f"dimension {x.shape[1]}",
              f"must match the grid's d = {grid.d}")
    P = kde(x, grid.centres(), kernel_cov)
    lost = 1.0 - P.sum() * grid.volume
    if lost > warn_fraction:
        warnings.warn(f"fokker_planck.kde_on_grid: {lost:.3g} of the KDE's mass lies outside "
                      "the grid", stacklevel=2)
    return P


def nadaraya_watson(points, values, kernel_cov) -> Callable:
    """``f(x) = sum_i K(x - p_i) values_i / sum_i K(x - p_i)``, a callable on ``(..., d)``
    positions (softmax weights: defined, and equal to the nearest points' values, far out)."""
    x = _points(points)
    vals = np.asarray(values, np.float64).reshape(len(x), -1)
    inv, _ = _whiten(kernel_cov)
    xs = x @ inv.T

    def field(at):
        at = np.asarray(at, np.float64)
        q = at.reshape(-1, x.shape[1]) @ inv.T
        logw = -0.5 * _sq_dist(q, xs)
        w = np.exp(logw - logw.max(1, keepdims=True))
        out = (w @ vals) / w.sum(1, keepdims=True)
        return out.reshape(at.shape[:-1] + (vals.shape[1],))

    return field


def sample_grid(key, P, grid: Grid, n: int) -> np.ndarray:
    """``n`` i.i.d. points from the piecewise-constant density ``P`` (cell by mass, then uniform
    inside the cell)."""
    P = check_density(P, grid)
    v.positive_int("n", n)
    k1, k2 = jax.random.split(key if v.is_key(key) else jax.random.key(key))
    p = P.reshape(-1) / P.sum()
    cells = np.asarray(jax.random.choice(k1, p.size, (n,), p=p))
    idx = np.stack(np.unravel_index(cells, grid.shape), axis=-1)
    u = np.asarray(jax.random.uniform(k2, (n, grid.d)), np.float64)
    return np.asarray(grid.lo) + (idx + u) * grid.h


def euler_maruyama(key, x0, drift: Callable, sigma2: float, t: float, substeps: int,
                   grid: Grid | None = None, walls: str = "zero-flux") -> np.ndarray:
    """The particle twin of :func:`evolve`: ``dx = D(x) dt + sqrt(sigma2) dB`` by
    Euler-Maruyama in ``substeps`` steps; with ``grid``, particles are reflected at zero-flux
    walls or wrapped round periodic ones."""
    x = np.array(x0, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    v.require(x.ndim == 2, "x0", f"shape {np.shape(x0)}", "must be an (n, d) array")
    v.non_negative("sigma2", sigma2)
    v.non_negative("t", t)
    v.positive_int("substeps", substeps)
    dt = t / substeps
    key = key if v.is_key(key) else jax.random.key(key)
    scale = np.sqrt(sigma2 * dt)
    for k in range(substeps):
        step = np.asarray(drift(x), np.float64)
        v.require(step.shape == x.shape, "drift", f"callable returning shape {step.shape}",
                  f"must map positions of shape {x.shape} to drift vectors of that shape")
        x = x + step * dt
        if scale > 0:  # step k's noise: fold_in(key, k), whatever the number of particles
            x = x + scale * np.asarray(jax.random.normal(jax.random.fold_in(key, k), x.shape),
                                       np.float64)
        if grid is not None:
            x = _confine(x, grid, walls)
    return x


def _confine(x: np.ndarray, grid: Grid, walls: str) -> np.ndarray:
    lo, hi = np.asarray(grid.lo), np.asarray(grid.hi)
    if walls == "periodic":
        return lo + np.mod(x - lo, hi - lo)
    x = np.where(x < lo, 2 * lo - x, x)
    return np.clip(np.where(x > hi, 2 * hi - x, x), lo, hi)


def histogram_on_grid(points, grid: Grid) -> np.ndarray:
    """Counts per cell divided by ``n * volume``: a density in :mod:`solver`'s convention."""
    x = np.asarray(points, np.float64).reshape(-1, grid.d)
    keep = grid.inside(x)
    flat = np.ravel_multi_index(tuple(grid.index(x[keep]).T), grid.shape)
    counts = np.bincount(flat, minlength=int(np.prod(grid.shape))).reshape(grid.shape)
    return counts / (len(x) * grid.volume)


def pearson(x, y) -> float:
    """Pearson's r over all entries (eq. 28 with the square root in its denominator)."""
    x = np.asarray(x, np.float64).ravel() - np.mean(x)
    y = np.asarray(y, np.float64).ravel() - np.mean(y)
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def compare_images(empirical, predicted) -> tuple[float, float]:
    """(MSE, r) of two images after dividing each by its maximum (the paper's comparison)."""
    a = np.asarray(empirical, np.float64)
    b = np.asarray(predicted, np.float64)
    a = a / a.max() if a.max() > 0 else a
    b = b / b.max() if b.max() > 0 else b
    return float(np.mean((a - b) ** 2)), pearson(a, b)


def gated_drift(rows, displacement, gate: float, kernel_cov=None) -> Callable:
    """Eq. 8, ``D = H(-dL/dt) F``: the rows' displacements over one epoch (``F``),
    interpolated by Nadaraya-Watson with the rows' KDE kernel (default Scott's rule), times the
    gate ``H`` (1 if the epoch's loss fell, else 0). A closed gate gives exactly zero drift."""
    x = _points(rows, "rows")
    disp = np.asarray(displacement, np.float64)
    v.require(disp.shape == x.shape, "displacement", f"shape {disp.shape}",
              f"must match the rows' shape {x.shape}")
    v.require(gate in (0, 1, 0.0, 1.0, True, False), "gate", gate, "must be 0 or 1 (Heaviside)")
    field = nadaraya_watson(x, disp, scott_bandwidth(x) if kernel_cov is None else kernel_cov)
    if not gate:
        return lambda at: np.zeros(np.shape(at), np.float64)
    return field


def heaviside_gate(loss_before: float, loss_after: float) -> float:
    """``H(-dL/dt)`` over one epoch: 1.0 when the loss fell (``loss_after < loss_before``)."""
    return float(loss_after < loss_before)
