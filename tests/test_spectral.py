"""Spectral net and Scalar-net (TASI eqs. 65-67, 72-74): quadrature and Monte Carlo.

The theory (G2 by radial quadrature, the exact G4c) is checked against closed
forms and direct integration, then against Monte Carlo over networks in units of
the Monte Carlo's own standard error (batch means for G2, batch jackknife for the
connected G4c and G6c), with fixed seeds.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import detectable
from scipy import integrate, special

from nnft._validate import ConfigError
from nnft.cumulants import connected
from nnft.priors.base import fields
from nnft.priors.spectral import ScalarNet, SpectralNet
from nnft.theory import spectral as th

Z_MAX = 4.0
QUADS = [(0, 0, 0, 0), (0, 0, 1, 1), (0, 1, 2, 3), (1, 1, 3, 3), (0, 1, 1, 3)]
POINTS = {
    1: np.array([[0.0], [0.3], [0.8], [1.5]]),
    3: np.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.2, 0.5, -0.3], [1.0, -0.6, 0.8]]),
}


# ---------------------------------------------------------------------------
# Monte Carlo helpers: per-batch moments, batch means and batch jackknife
# ---------------------------------------------------------------------------
def batch_moments(prior, points, n_nets, batch, key, max_order=4):
    """Per-batch means of phi_a phi_b (and 4-point products on QUADS, or full moment tensors).

    Network i uses ``fold_in(key, i)``, so results do not depend on the batch size.
    """
    pts = jnp.asarray(points, jnp.float32)

    @jax.jit
    def one_batch(idx):
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(idx)
        phi = jax.vmap(lambda k: fields(prior, prior.sample(k), pts))(keys)
        if max_order == 4:
            m2 = jnp.einsum("sa,sb->ab", phi, phi) / idx.size
            m4 = jnp.stack([jnp.mean(phi[:, a] * phi[:, b] * phi[:, c] * phi[:, e])
                            for a, b, c, e in QUADS])
            return m2, m4
        letters = "abcdef"
        return tuple(
            jnp.einsum(",".join("s" + letters[j] for j in range(k)) + "->" + letters[:k],
                       *([phi] * k)) / idx.size
            for k in range(1, max_order + 1)
        )

    out = [one_batch(jnp.arange(s, s + batch)) for s in range(0, n_nets, batch)]
    return [np.stack([np.asarray(o[k], np.float64) for o in out]) for k in range(len(out[0]))]


def batch_mean(per_batch):
    b = per_batch.shape[0]
    return per_batch.mean(0), per_batch.std(0, ddof=1) / math.sqrt(b)


def jackknife(estimator, *per_batch):
    """Leave-one-batch-out jackknife of ``estimator(*batch_means)``: (value, standard error)."""
    b = per_batch[0].shape[0]
    full = [x.mean(0) for x in per_batch]
    value = estimator(*full)
    reps = np.stack([estimator(*[(f * b - x[i]) / (b - 1) for f, x in zip(full, per_batch)])
                     for i in range(b)])
    se = np.sqrt((b - 1) / b * np.sum((reps - reps.mean(0)) ** 2, axis=0))
    return value, se


def g4c_on_quads(m2, m4):
    """``G4 - sum_3 G2 G2`` (Z2-symmetric theory) on the index tuples QUADS."""
    return np.array([m4[q] - (m2[a, b] * m2[c, e] + m2[a, c] * m2[b, e] + m2[a, e] * m2[b, c])
                     for q, (a, b, c, e) in enumerate(QUADS)])


# ---------------------------------------------------------------------------
# (1) quadrature against closed forms and direct integration
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("d", [1, 2, 3])
def test_quadrature_approaches_free_scalar(d):
    """As Lambda grows the cutoff propagator tends to the free one, error ~ 1/Lambda."""
    m = 1.0
    r = np.array([0.25, 0.5, 1.0, 1.7, 2.0, 3.0])
    exact = th.free_scalar_g2(r, m=m, d=d)
    errors = []
    for lam in (10.0, 100.0, 1000.0):
        g2 = th.hankel_transform(th.massive(m), r, d=d, Lambda=lam)
        errors.append(np.max(np.abs(g2 - exact) / exact))
    assert errors[0] > 3 * errors[1] > 9 * errors[2]
    assert errors[2] < 0.02
    if d == 1:  # r = 0 is finite only in d = 1: (1/pi) atan(Lambda/m) / m
        g0 = th.hankel_transform(th.massive(m), 0.0, d=1, Lambda=1000.0)
        assert g0 == pytest.approx(math.atan(1000.0) / math.pi, rel=1e-12)


@pytest.mark.parametrize("r", [0.2, 1.0, 2.5])
def test_quadrature_d3_matches_sine_form(r):
    """REFERENCE: in d = 3, G2(r) = (1/(2 pi^2 r)) int_0^Lambda p sin(pr)/(p^2+m^2) dp."""
    m, lam = 0.5, 40.0
    direct, _ = integrate.quad(lambda p: p * math.sin(p * r) / (p * p + m * m), 0, lam,
                               limit=500, epsabs=1e-13, epsrel=1e-12)
    q = th.hankel_transform(th.massive(m), r, d=3, Lambda=lam)
    assert q == pytest.approx(direct / (2 * math.pi**2 * r), rel=1e-9)


@pytest.mark.parametrize("r", [0.0, 0.5, 1.3, 2.7])
def test_quadrature_d2_matches_polar_double_integral(r):
    """d = 2: the angular integral done numerically (no Bessel function) agrees."""
    m, lam = 0.7, 20.0
    val, _ = integrate.dblquad(lambda t, p: p * math.cos(p * r * math.cos(t)) / (p * p + m * m),
                               0, lam, 0, 2 * math.pi, epsabs=1e-12, epsrel=1e-10)
    q = th.hankel_transform(th.massive(m), r, d=2, Lambda=lam)
    assert q == pytest.approx(val / (2 * math.pi) ** 2, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("lam", [3.0, 100.0, 2000.0])
def test_quadrature_converged_under_doubling(d, lam):
    """Doubling the nodes per panel changes nothing beyond rounding, even at Lambda r ~ 1e4."""
    r = np.array([0.0, 0.01, 0.3, 1.0, 4.0])
    rho = th.power_law(0.3, 1.5)
    a = th.hankel_transform(rho, r, d=d, Lambda=lam)
    b = th.hankel_transform(rho, r, d=d, Lambda=lam, order=2 * th.DEFAULT_ORDER)
    scale = np.max(np.abs(b))
    assert np.max(np.abs(a - b)) < 1e-11 * scale


@pytest.mark.parametrize("d", [4, 5, 7])
def test_radial_kernel_is_bessel(d):
    z = np.linspace(1e-3, 60.0, 41)
    nu = d / 2 - 1
    ref = special.gamma(d / 2) * (2 / z) ** nu * special.jv(nu, z)
    np.testing.assert_allclose(th.radial_kernel(z, d), ref, rtol=1e-10, atol=1e-13)
    assert th.radial_kernel(0.0, d) == 1.0


def test_g4c_explicit_equals_moment_route():
    """The explicit G4c equals the cumulant of the one-neuron moments (nnft.cumulants)."""
    from nnft.theory.correlators import iid_connected

    prior = ScalarNet(d=2, width=3, Lambda=7.0, m=0.8)
    pts = np.array([[0.0, 0.0], [0.4, -0.2], [1.1, 0.6]])
    via_moments = iid_connected(prior._moment, pts, 4, prior.width)
    np.testing.assert_allclose(prior.g4c(pts), via_moments, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(prior._moment(pts, 2), prior.g2(pts), rtol=1e-12)


def test_theory_is_euclidean_invariant():
    prior = ScalarNet(d=3, width=5, Lambda=12.0, m=1.0)
    pts = POINTS[3]
    rot, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    moved = pts @ rot.T + np.array([0.3, -1.0, 2.0])
    np.testing.assert_allclose(prior.g2(moved), prior.g2(pts), rtol=1e-10)
    np.testing.assert_allclose(prior.g4c(moved), prior.g4c(pts), rtol=1e-9)


def test_sigma_w1_is_redundant():
    """F absorbs sigma_w1: neither the fields' law nor the correlators depend on it."""
    a, b = ScalarNet(d=2, sigma_w1=1.0), ScalarNet(d=2, sigma_w1=3.0)
    pts = np.array([[0.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(a.g4c(pts), b.g4c(pts), rtol=1e-12)
    key = jax.random.key(3)
    fa = fields(a, a.sample(key), jnp.asarray(pts, jnp.float32))
    fb = fields(b, b.sample(key), jnp.asarray(pts, jnp.float32))
    np.testing.assert_allclose(fa, fb, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# (2) Monte Carlo against the quadrature
# ---------------------------------------------------------------------------
def test_w0_uniform_in_ball():
    """|w0|^d / Lambda^d ~ Unif[0, 1] and the directions average to zero, in d = 1, 2, 5."""
    for d in (1, 2, 5):
        prior = ScalarNet(d=d, width=20_000, Lambda=3.0)
        w0 = np.asarray(prior.sample(jax.random.key(d))["w0"], np.float64)
        u = (np.linalg.norm(w0, axis=1) / prior.Lambda) ** d
        assert np.all(u <= 1.0 + 1e-6)
        assert abs(u.mean() - 0.5) / math.sqrt(1 / 12 / u.size) < Z_MAX
        assert abs(u.var() - 1 / 12) / math.sqrt(1 / 180 / u.size) < Z_MAX
        mean_dir = (w0 / np.linalg.norm(w0, axis=1, keepdims=True)).mean(0)
        assert np.all(np.abs(mean_dir) / math.sqrt(1 / d / u.size) < Z_MAX)


@pytest.mark.parametrize("d", [1, 3])
def test_scalar_net_mc_g2_g4c(d):
    """1e6 Scalar-nets (N = 4, Lambda = 10, m = 1): G2 at 7 separations incl. r = 0, G4c at 5
    configurations, |z| < 4 against the quadrature. G2's largest entry has relative stderr
    ~0.2%: a 1% error in G2 is detected with probability 0.9 (asserted: <= 5%)."""
    prior = ScalarNet(d=d, width=4, Lambda=10.0, m=1.0)
    pts = POINTS[d]
    m2b, m4b = batch_moments(prior, pts, 1_000_000, 50_000, jax.random.key(10 + d))
    g2, se2 = batch_mean(m2b)
    z2 = (g2 - prior.g2(pts)) / se2
    g4c, se4 = jackknife(g4c_on_quads, m2b, m4b)
    theory4 = np.array([prior.g4c(pts)[q] for q in QUADS])
    z4 = (g4c - theory4) / se4
    assert np.max(np.abs(z2)) < Z_MAX, z2
    assert np.max(np.abs(z4)) < Z_MAX, z4
    assert np.all(np.abs(theory4) > 5 * se4)  # the non-Gaussianity itself is resolved
    big = np.argmax(np.abs(prior.g2(pts)))
    assert detectable(np.ravel(se2)[big] / abs(np.ravel(prior.g2(pts))[big])) <= 0.05


# ---------------------------------------------------------------------------
# (3) a user's spectrum
# ---------------------------------------------------------------------------
def gaussian_spectrum(p):
    return jnp.exp(-0.5 * p * p)


def test_callable_spectrum_mc_and_closed_form():
    """rho(p) = e^{-p^2/2} in d = 2: G2 -> e^{-r^2/2} / (2 pi) as Lambda -> inf; MC agrees."""
    prior = SpectralNet(d=2, width=3, Lambda=6.0, power_spectrum=gaussian_spectrum)
    pts = np.array([[0.0, 0.0], [0.4, 0.3], [-1.0, 0.7], [1.2, 1.6]])
    theory = prior.g2(pts)
    diff = pts[:, None] - pts[None]
    closed = np.exp(-0.5 * np.sum(diff * diff, -1)) / (2 * math.pi)
    np.testing.assert_allclose(theory, closed, atol=1e-8 * closed.max())  # e^{-18} tail
    m2b, m4b = batch_moments(prior, pts, 400_000, 40_000, jax.random.key(7))
    g2, se2 = batch_mean(m2b)
    assert np.max(np.abs((g2 - theory) / se2)) < Z_MAX
    g4c, se4 = jackknife(g4c_on_quads, m2b, m4b)
    z4 = (g4c - np.array([prior.g4c(pts)[q] for q in QUADS])) / se4
    assert np.max(np.abs(z4)) < Z_MAX, z4
    assert hash(prior) == hash(SpectralNet(d=2, width=3, Lambda=6.0,
                                           power_spectrum=gaussian_spectrum))
    assert prior.hyperparameters()["power_spectrum"] == "gaussian_spectrum"


def test_named_spectrum_equals_callable_and_scalar_net():
    pts = np.array([[0.0], [0.7], [2.0]])
    named = SpectralNet(d=1, Lambda=15.0, power_spectrum="power-law", m=0.5, alpha=1.0)
    scalar = ScalarNet(d=1, Lambda=15.0, m=0.5)
    user = SpectralNet(d=1, Lambda=15.0, power_spectrum=lambda p: 1 / (p * p + 0.25))
    np.testing.assert_allclose(named.g2(pts), scalar.g2(pts), rtol=1e-13)
    np.testing.assert_allclose(user.g2(pts), scalar.g2(pts), rtol=1e-13)
    key = jax.random.key(0)
    x = jnp.asarray([0.3])
    assert float(scalar.apply(scalar.sample(key), x)) == pytest.approx(
        float(named.apply(named.sample(key), x)), rel=1e-6)
    flat = SpectralNet(d=1, Lambda=2.0, power_spectrum="flat")  # G2(r) = sin(Lambda r)/(pi r)
    assert flat.g2(pts)[0, 1] == pytest.approx(math.sin(1.4) / (0.7 * math.pi), rel=1e-12)


def test_scalar_net_hyperparameters_round_trip():
    prior = ScalarNet(d=3, width=7, Lambda=50.0, sigma_w1=2.0, m=0.3)
    hp = prior.hyperparameters()
    assert hp["name"] == "scalar-net" and "power_spectrum" not in hp and "alpha" not in hp
    assert ScalarNet(**{k: val for k, val in hp.items() if k != "name"}) == prior
    assert prior.rho(np.array([2.0])) == pytest.approx(1 / (4 + 0.09))


def test_eq72_amplitude():
    """Eq. (72): F(p) = sqrt(2 vol(B) / ((2pi)^d sigma_w1^2)) / sqrt(p^2 + m^2)."""
    prior = ScalarNet(d=3, Lambda=5.0, sigma_w1=1.5, m=0.4, dtype="float64")
    with jax.enable_x64(True):
        w0 = jnp.asarray([[1.0, 2.0, -0.5], [0.0, 0.0, 0.1]])
        got = np.asarray(prior.amplitude(w0))
    vol = 4 / 3 * math.pi * 5.0**3
    p2 = np.array([5.25, 0.01])
    np.testing.assert_allclose(got, np.sqrt(2 * vol / ((2 * math.pi) ** 3 * 1.5**2) / (p2 + 0.16)),
                               rtol=1e-12)


# ---------------------------------------------------------------------------
# (4) bad hyperparameters
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, field, value",
    [
        (ScalarNet, "Lambda", 0.0),
        (ScalarNet, "Lambda", -2.0),
        (SpectralNet, "Lambda", float("inf")),
        (ScalarNet, "m", 0.0),
        (ScalarNet, "m", -1.0),
        (SpectralNet, "m", -1.0),
        (ScalarNet, "d", 0),
        (SpectralNet, "d", 1.5),
        (ScalarNet, "width", 0),
        (SpectralNet, "sigma_w1", 0.0),
        (ScalarNet, "sigma_w1", -1.0),
        (SpectralNet, "power_spectrum", "lorentzian"),
        (SpectralNet, "power_spectrum", 3.0),
        (SpectralNet, "power_spectrum", lambda p: p**-1.0),
        (SpectralNet, "power_spectrum", lambda p: -jnp.ones_like(p)),
        (SpectralNet, "alpha", float("nan")),
        (ScalarNet, "dtype", "float16"),
    ],
)
def test_bad_hyperparameters_raise(cls, field, value):
    with pytest.raises(ConfigError, match=f"^{field}: got"):
        cls(**{field: value})


def test_bad_arguments_of_theory_functions():
    with pytest.raises(ConfigError, match="^d: got"):
        th.free_scalar_g2(1.0, m=1.0, d=4)
    with pytest.raises(ConfigError, match="^Lambda: got"):
        th.hankel_transform(th.massive(1.0), 1.0, d=2, Lambda=0.0)
    with pytest.raises(ConfigError, match="^power_spectrum: got"):
        th.named_spectrum("nope")
    with pytest.raises(ConfigError, match="^points: got"):
        ScalarNet(d=2).g2(np.zeros((3, 3)))


# ---------------------------------------------------------------------------
# slow: larger cutoff, and G6c
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_scalar_net_mc_large_cutoff_d3():
    """Lambda = 40 in d = 3 (G2 near the continuum; G4c ~ Lambda^3 / N is large)."""
    prior = ScalarNet(d=3, width=50, Lambda=40.0, m=1.0)
    pts = POINTS[3]
    m2b, m4b = batch_moments(prior, pts, 4_000_000, 100_000, jax.random.key(99))
    g2, se2 = batch_mean(m2b)
    assert np.max(np.abs((g2 - prior.g2(pts)) / se2)) < Z_MAX
    g4c, se4 = jackknife(g4c_on_quads, m2b, m4b)
    z4 = (g4c - np.array([prior.g4c(pts)[q] for q in QUADS])) / se4
    assert np.max(np.abs(z4)) < Z_MAX, z4


@pytest.mark.slow
def test_scalar_net_mc_g6c():
    """G6c from the neuron moments (via nnft.cumulants) against 4e6 Scalar-nets, d = 1."""
    prior = ScalarNet(d=1, width=2, Lambda=5.0, m=1.0)
    pts = np.array([[0.0], [0.5], [1.2]])
    moments = batch_moments(prior, pts, 4_000_000, 100_000, jax.random.key(5), max_order=6)

    def g6c(*ms):
        return np.asarray(connected({k + 1: jnp.asarray(x) for k, x in enumerate(ms)}, 6))

    with jax.enable_x64(True):
        est, se = jackknife(g6c, *moments)
    theory = prior.g6c(pts)
    idx = [(0,) * 6, (0, 0, 1, 1, 2, 2), (0, 0, 0, 1, 1, 2)]
    z = np.array([(est[i] - theory[i]) / se[i] for i in idx])
    assert np.max(np.abs(z)) < Z_MAX, z
