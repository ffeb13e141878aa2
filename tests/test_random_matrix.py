"""Marchenko-Pastur, level spacings and the Appendix B coefficients (nnft.random_matrix)."""

import numpy as np
import pytest
from scipy import integrate

from nnft._validate import ConfigError
from nnft.random_matrix import (
    boundary_lhs,
    converged,
    ks_marchenko_pastur,
    marchenko_pastur_cdf,
    marchenko_pastur_edges,
    marchenko_pastur_moments,
    marchenko_pastur_pdf,
    mean_level_spacing,
    spacing_coefficients,
    spacing_drift,
    spacing_rate,
)


def wishart_eigenvalues(rng, n_mat, n2, n1, sigma2):
    w = rng.standard_normal((n_mat, n2, n1)) * np.sqrt(sigma2 / n1)
    return np.linalg.eigvalsh(w @ np.swapaxes(w, -1, -2))


@pytest.mark.parametrize("sigma2,r", [(1.0, 0.5), (0.01, 0.25), (30.0, 1.0)])
def test_marchenko_pastur_cdf_is_the_integral_of_the_pdf(sigma2, r):
    lo, hi = marchenko_pastur_edges(sigma2, r)
    assert marchenko_pastur_cdf(lo, sigma2, r) == 0.0
    assert marchenko_pastur_cdf(hi * 1.01, sigma2, r) == pytest.approx(1.0, abs=1e-12)
    for x in np.linspace(lo, hi, 7)[1:-1]:
        ref, _ = integrate.quad(marchenko_pastur_pdf, lo, x, args=(sigma2, r), limit=200)
        assert marchenko_pastur_cdf(x, sigma2, r) == pytest.approx(ref, abs=1e-7)


def test_marchenko_pastur_moments_against_monte_carlo():
    """E x and E x^2 of 64 x 128 Wishart matrices; the exact finite-n second moment
    sigma^4 (1 + (n2 + 1) / n1) (from E X_ii^2 and E X_ij^2) tends to MP's sigma^4 (1 + r)."""
    rng = np.random.default_rng(3)
    n2, n1, sigma2 = 64, 128, 0.3
    ev = wishart_eigenvalues(rng, 400, n2, n1, sigma2)  # (400, 64)
    m1, m2 = marchenko_pastur_moments(sigma2, n2 / n1)
    per_matrix = np.stack([ev.mean(axis=1), (ev**2).mean(axis=1)])
    est = per_matrix.mean(axis=1)
    se = per_matrix.std(axis=1, ddof=1) / np.sqrt(per_matrix.shape[1])
    finite_m2 = sigma2**2 * (1 + (n2 + 1) / n1)
    assert abs(est[0] - m1) < 4 * se[0]
    assert abs(est[1] - finite_m2) < 4 * se[1]
    assert finite_m2 / m2 - 1 == pytest.approx(1 / (n1 * (1 + n2 / n1)), rel=1e-12)


def test_ks_accepts_marchenko_pastur_and_rejects_a_wrong_scale():
    rng = np.random.default_rng(0)
    ev = wishart_eigenvalues(rng, 100, 16, 32, 0.02)
    _, p = ks_marchenko_pastur(ev, 0.02, 0.5)
    assert p > 0.01
    _, p_wrong = ks_marchenko_pastur(ev, 0.02 * 1.15, 0.5)
    assert p_wrong < 1e-4


def test_level_spacing_and_rate():
    ev = np.array([[0.0, 1.0, 3.0, 6.0], [1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(mean_level_spacing(ev), [2.0, 1.0])
    np.testing.assert_allclose(spacing_rate(np.e * 2.0, 2.0, 10.0), 0.1)
    with pytest.raises(ConfigError, match="t"):
        spacing_rate(1.0, 1.0, 0.0)


def test_spacing_coefficients_match_the_coulomb_sum():
    """V_S of eq. B.7 equals the sum in eq. B.6 with x_N - x_j = (N - j) S, x_1 - x_j =
    -(j - 1) S, written out term by term (1-based indices as in the paper)."""
    rng = np.random.default_rng(1)
    n = 7
    a = rng.random((n, n))
    var = a + a.T
    k = np.sort(rng.standard_normal(n))
    got = spacing_coefficients(k, var)
    vv = lambda i, j: var[i - 1, j - 1]
    s = 1.0  # B.6 divided by T / S
    total = (vv(n, 1) / ((n - 1) * s) - vv(1, n) / (-(n - 1) * s))
    total += sum(vv(n, j) / ((n - j) * s) - vv(1, j) / (-(j - 1) * s) for j in range(2, n))
    assert got.v_s == pytest.approx(total / (n - 1))
    assert got.k_s == pytest.approx((k[-1] - k[0]) / (n - 1))
    assert got.d_s == pytest.approx((var[0, 0] + var[-1, -1]) / (2 * (n - 1) ** 2))


def _explicit_delta_x(seed=2, n2=6, n1=9, m=500):
    """W and the per-sample updates Delta^X_a = z_a g_a^T + g_a z_a^T (m, n2, n2), built
    one by one (eq. 4.4), with K = -E[Delta^X]."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n2, n1)) / 3
    z = rng.standard_normal((m, n2))
    g = 0.2 * rng.standard_normal((m, n2)) + 0.05
    dx = z[:, :, None] * g[:, None, :] + g[:, :, None] * z[:, None, :]
    return w, z, g, dx, -dx.mean(axis=0)


@pytest.mark.parametrize("basis", ["gradient", "x"])
def test_spacing_drift_variances_match_explicit_per_sample_matrices(basis):
    """V_S and D_S (eqs. B.7, B.9): rotate every Delta^X_a into the basis and take the
    variance over samples directly."""
    w, z, g, dx, k_mat = _explicit_delta_x()
    u = np.linalg.eigh(w @ w.T if basis == "x" else k_mat)[1]
    rot = np.einsum("ai,mab,bj->mij", u, dx, u)
    ref = spacing_coefficients(-np.diagonal(rot.mean(axis=0)), rot.var(axis=0, ddof=1))
    got = spacing_drift(w, z, g, basis)
    assert got.v_s == pytest.approx(ref.v_s, rel=1e-9)
    assert got.d_s == pytest.approx(ref.d_s, rel=1e-9)
    with pytest.raises(ConfigError, match="basis"):
        spacing_drift(w, z, g, "eigen")


def test_spacing_drift_x_basis_is_the_drift_of_the_spread_of_x():
    """basis="x": K_S is dS/dt of S = (x_n - x_1) / (n - 1) (eq. 4.5) when X moves along its
    drift, X -> X + eps K, K = -E[Delta^X]: a central finite difference of the spectrum of
    X + eps K (X's levels are >= 0.18 apart with this seed, so x_1 and x_n are smooth in
    eps; the O(eps^2) error is far below the tolerance)."""
    w, z, g, _, k_mat = _explicit_delta_x()
    x = w @ w.T
    n, eps = len(x), 1e-4

    def spread(e):
        ev = np.linalg.eigvalsh(x + e * k_mat)
        return (ev[-1] - ev[0]) / (n - 1)

    assert np.diff(np.linalg.eigvalsh(x)).min() > 0.1
    fd = (spread(eps) - spread(-eps)) / (2 * eps)
    got = spacing_drift(w, z, g, "x")
    assert abs(fd) > 1e-4  # a signal, not round-off
    assert got.k_s == pytest.approx(fd, rel=1e-6)


def test_spacing_drift_gradient_basis_has_the_sign_eq_4_10_needs():
    """basis="gradient": K_S = -(lambda_max(K) - lambda_min(K)) / (n - 1) from the
    eigenvalues of the explicit K = -E[Delta^X]. sgd-phase-diagram eq. 4.10 (with "K_S < 0
    close to a (local) minimum") converges iff T / S <= -K_S / V_S: with this sign the
    criterion holds at small T, with the printed sign of eq. B.9, (K_N - K_1)/(N-1) >= 0, it
    could hold at no T > 0."""
    w, z, g, _, k_mat = _explicit_delta_x()
    lam = np.linalg.eigvalsh(k_mat)
    n = len(lam)
    got = spacing_drift(w, z, g, "gradient")
    assert got.k_s == pytest.approx(-(lam[-1] - lam[0]) / (n - 1), rel=1e-9)
    assert got.k_s < 0 and got.v_s > 0
    n1 = w.shape[1]
    cold = converged(got, 1e-6, 1.0, n, n / n1)
    printed = converged(got._replace(k_s=-got.k_s), 1e-6, 1.0, n, n / n1)
    assert bool(cold) and not bool(printed)


def test_boundary_criterion_is_monotone_in_temperature():
    drift = spacing_coefficients(np.array([-0.3, 0.0, 0.1]), np.full((3, 3), 0.5))._replace(
        k_s=np.array(-0.2))
    temps = np.array([1e-3, 1e-2, 1e-1, 1.0])
    ok = converged(drift, temps, 1.0, 16, 0.5)
    snr = 0.2 / drift.v_s
    np.testing.assert_array_equal(ok, boundary_lhs(temps, 1.0, 16, 0.5) <= snr)
    assert ok[0] and not ok[-1] and np.all(np.diff(ok.astype(int)) <= 0)
