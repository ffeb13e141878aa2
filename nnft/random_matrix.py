"""Random-matrix tools for weight matrices: Marchenko-Pastur, level spacings, Dyson drift.

For an ``n2 x n1`` matrix W with i.i.d. entries ``N(0, sigma^2 / n1)`` and ``r = n2 / n1 <= 1``,
the eigenvalues of ``X = W W^T`` follow, as n1, n2 -> infinity at fixed r, the
Marchenko-Pastur density (sgd-phase-diagram eq. 4.2)

    P(x) = sqrt((x+ - x)(x - x-)) / (2 pi sigma^2 r x),   x+- = sigma^2 (1 +- sqrt r)^2,

with moments ``E x = sigma^2`` and ``E x^2 = sigma^4 (1 + r)``. The average level spacing of
the ordered eigenvalues is ``S = (x_n - x_1) / (n - 1)`` (eq. 4.5) and its time-averaged
rate ``lambda-bar(t) = log(S(t) / S(0)) / t`` (eq. 4.7).

:func:`spacing_drift` is the one-particle theory of Appendix B: from samples of the update
direction ``Delta^X`` of X (one per data point) it forms, in the eigenbasis of X, the drift
``K_i = -E[Delta^X_ii]`` and the variances ``V_ij = Var[Delta^X_ij]``, and returns
``K_S = (K_n - K_1) / (n - 1)`` (eq. B.9), ``V_S`` (eq. B.7) and ``D_S`` (eq. B.9). The
convergence criterion eq. 4.15 is :func:`converged`.

Two readings of the basis (:func:`spacing_drift`): the appendix diagonalises the mean
gradient K and takes K_S from its extreme eigenvalues, a signal (spread of the drift) whose
printed sign, ``(K_N - K_1) / (N - 1) >= 0``, would make eq. 4.10 unsatisfiable, so the sign
eq. 4.10 assumes (K_S <= 0) is used; the Dyson equation 4.3 itself lives in the eigenbasis of X,
where K_S is the signed drift of the spread of X's spectrum.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

from nnft import _validate as v


def marchenko_pastur_edges(sigma2: float, r: float) -> tuple[float, float]:
    """``(x-, x+) = sigma^2 (1 -+ sqrt r)^2``."""
    v.positive("sigma2", sigma2)
    v.require(0 < r <= 1, "r", r, "must be in (0, 1] (r = n2 / n1 with n2 <= n1)")
    return sigma2 * (1 - math.sqrt(r)) ** 2, sigma2 * (1 + math.sqrt(r)) ** 2


def marchenko_pastur_pdf(x, sigma2: float, r: float) -> np.ndarray:
    """The density eq. 4.2 (zero outside ``[x-, x+]``)."""
    lo, hi = marchenko_pastur_edges(sigma2, r)
    x = np.asarray(x, np.float64)
    inside = (x > lo) & (x < hi)
    xs = np.where(inside, x, 0.5 * (lo + hi))
    return np.where(inside, np.sqrt((hi - xs) * (xs - lo)) / (2 * np.pi * sigma2 * r * xs), 0.0)


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)


def marchenko_pastur_cdf(x, sigma2: float, r: float) -> np.ndarray:
    """The distribution function of eq. 4.2. With ``x = x- + (x+ - x-) sin^2 u`` the integrand
    is smooth in u, so 64-node Gauss-Legendre on ``[0, u(x)]`` is exact to round-off."""
    lo, hi = marchenko_pastur_edges(sigma2, r)
    x = np.asarray(x, np.float64)
    u_max = np.arcsin(np.sqrt(np.clip((x - lo) / (hi - lo), 0.0, 1.0)))  # (...)
    u = 0.5 * u_max[..., None] * (_NODES + 1)  # (..., 64)
    s, c = np.sin(u), np.cos(u)
    xu = lo + (hi - lo) * s**2
    # P(x) dx = (hi - lo)^2 s^2 c^2 / (2 pi sigma^2 r x) * 2 du; s^2 / x -> 1 / (hi - lo) as
    # x -> lo = 0 (r = 1, where the density diverges like x^{-1/2})
    safe = np.where(xu > 0, xu, 1.0)
    s2_over_x = np.where(xu > 0, s**2 / safe, 1.0 / (hi - lo))
    integrand = (hi - lo) ** 2 * s2_over_x * c**2 / (np.pi * sigma2 * r)
    return np.clip(0.5 * u_max * np.sum(_WEIGHTS * integrand, axis=-1), 0.0, 1.0)


def marchenko_pastur_moments(sigma2: float, r: float) -> tuple[float, float]:
    """``(E x, E x^2) = (sigma^2, sigma^4 (1 + r))``."""
    marchenko_pastur_edges(sigma2, r)
    return sigma2, sigma2**2 * (1 + r)


def ks_marchenko_pastur(eigenvalues, sigma2: float, r: float):
    """Kolmogorov-Smirnov test of pooled eigenvalues against eq. 4.2: ``(statistic, p)``.
    The eigenvalues of one matrix repel each other, so they are not independent draws; the
    pooled empirical CDF fluctuates less than for independent ones and the p-value is
    conservative."""
    ev = np.asarray(eigenvalues, np.float64).ravel()
    res = stats.kstest(ev, lambda x: marchenko_pastur_cdf(x, sigma2, r))
    return float(res.statistic), float(res.pvalue)


def mean_level_spacing(eigenvalues) -> np.ndarray:
    """``S = (x_max - x_min) / (n - 1)`` over the last axis (eq. 4.5)."""
    ev = np.asarray(eigenvalues)
    n = ev.shape[-1]
    v.require(n >= 2, "eigenvalues", ev.shape, "need at least 2 eigenvalues on the last axis")
    return (ev.max(axis=-1) - ev.min(axis=-1)) / (n - 1)


def spacing_rate(spacing_t, spacing_0, t) -> np.ndarray:
    """``lambda-bar(t) = log(S(t) / S(0)) / t`` (eq. 4.7)."""
    t = np.asarray(t, np.float64)
    v.require(bool(np.all(t > 0)), "t", "non-positive times", "must be > 0")
    return np.log(np.asarray(spacing_t) / np.asarray(spacing_0)) / t


class SpacingDrift(NamedTuple):
    """Appendix B coefficients per matrix: ``K_S``, ``V_S``, ``D_S`` (eqs. B.7, B.9)."""

    k_s: np.ndarray
    v_s: np.ndarray
    d_s: np.ndarray


def spacing_coefficients(k_diag, var) -> SpacingDrift:
    """``K_S``, ``V_S``, ``D_S`` from the drifts ``K_i`` (..., n) and the variances ``V_ij``
    (..., n, n), both in the eigenbasis of X with eigenvalues ascending."""
    k_diag = np.asarray(k_diag, np.float64)
    var = np.asarray(var, np.float64)
    n = k_diag.shape[-1]
    v.require(n >= 3, "n", n, "the level-spacing theory needs at least 3 eigenvalues")
    k_s = (k_diag[..., -1] - k_diag[..., 0]) / (n - 1)
    ks = np.arange(1, n - 1)  # k = 1 .. n-2
    top = var[..., n - 1, n - 1 - ks]  # V_{N, N-k}
    bottom = var[..., 0, ks]  # V_{1, k+1}
    v_s = 2 * var[..., n - 1, 0] / (n - 1) ** 2 + np.sum((top + bottom) / ks, axis=-1) / (n - 1)
    d_s = (var[..., 0, 0] + var[..., n - 1, n - 1]) / (2 * (n - 1) ** 2)
    return SpacingDrift(k_s, v_s, d_s)


BASES = ("gradient", "x")


def spacing_drift(weight, z, g, basis: str = "gradient") -> SpacingDrift:
    """Appendix B for one matrix ``W`` (n2, n1) whose per-sample loss gradient is the outer
    product ``Delta_a = g_a a_a^T`` (as for a dense layer: g the back-propagated error at
    its output, a its input), so that ``Delta^X_a = W Delta_a^T + Delta_a W^T
    = z_a g_a^T + g_a z_a^T`` with ``z_a = W a_a`` (eq. 4.4).

    ``weight`` (..., n2, n1), ``z`` and ``g`` (..., samples, n2). ``K = -E[Delta^X]`` and
    ``V_ij = Var[Delta^X_ij]`` (over the samples) are taken in an orthonormal basis U:

    - ``basis="gradient"`` (Appendix B as written): U diagonalises K, ``K_i`` are its
      eigenvalues ascending and ``K_S = -(K_n - K_1) / (n - 1) <= 0``, the spread of the
      drift with the sign eq. 4.10 assumes near a minimum (the printed ``(K_N - K_1)/(N-1)``
      of the ordered eigenvalues is >= 0, for which eq. 4.10 could never hold), so that
      ``-K_S / V_S`` is the signal-to-noise ratio of the gradient;
    - ``basis="x"``: U diagonalises ``X = W W^T`` (ascending), as in the Dyson equation 4.3,
      where ``K_i`` is the drift of the eigenvalue ``x_i`` and ``K_S = (K_n - K_1) / (n-1)``
      the drift of the spread, with its sign (near a minimum it fluctuates about zero).

    The variances are formed exactly from moments of the rotated z and g (no
    ``samples x n2 x n2`` array)."""
    v.choice("basis", basis, BASES)
    w = np.asarray(weight, np.float64)
    z = np.asarray(z, np.float64)
    g = np.asarray(g, np.float64)
    m = z.shape[-2]
    zg = np.swapaxes(z, -1, -2) @ g / m
    drift = -(zg + np.swapaxes(zg, -1, -2))  # K = -E[Delta^X]
    if basis == "x":
        _, u = np.linalg.eigh(w @ np.swapaxes(w, -1, -2))
    else:
        _, u = np.linalg.eigh(drift)
    zt = z @ u  # (..., samples, n2) in the basis
    gt = g @ u
    mean = -(np.swapaxes(u, -1, -2) @ drift @ u)  # E[Delta^X] rotated
    zt_t, gt_t = np.swapaxes(zt, -1, -2), np.swapaxes(gt, -1, -2)
    z2g2 = (zt_t**2) @ gt**2 / m  # E[z_i^2 g_j^2]
    cross = (zt_t * gt_t) @ (zt * gt) / m  # E[z_i g_i z_j g_j]
    second = z2g2 + np.swapaxes(z2g2, -1, -2) + 2 * cross
    var = np.maximum(second - mean**2, 0.0) * m / max(m - 1, 1)
    k_diag = -np.diagonal(mean, axis1=-2, axis2=-1)
    out = spacing_coefficients(k_diag, var)
    if basis == "gradient":
        out = out._replace(k_s=-np.abs(out.k_s))
    return out


def boundary_lhs(temperature, sigma_w, n2: int, r: float):
    """The left side of eq. 4.15, ``(n2 - 1) / (4 sqrt r) * T / sigma_W^2``."""
    return (n2 - 1) / (4 * math.sqrt(r)) * np.asarray(temperature) / np.asarray(sigma_w) ** 2


def converged(drift: SpacingDrift, temperature, sigma_w, n2: int, r: float) -> np.ndarray:
    """Eq. 4.15 negated: True where ``(n2-1)/(4 sqrt r) T / sigma_W^2 <= -K_S / V_S``, i.e.
    the signal-to-noise ratio of the gradient beats the temperature (converging dynamics)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(drift.v_s > 0, -drift.k_s / drift.v_s, -np.inf)
    return boundary_lhs(temperature, sigma_w, n2, r) <= snr
