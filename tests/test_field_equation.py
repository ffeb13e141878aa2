"""nnft.theory.field_equation: momentum GD as a damped scalar field (duality-nn-cosmology).

Deterministic checks against closed forms, in float64: the n = 2 oscillator in all three
damping regimes against the ODE solver (1e-8), the mode equations against the oscillator per
mode, eta_max against V0 = alpha L, the GD stability edge, the recursion against the
toolkit's momentum optimizer, the energy f'^2/2 + alpha L never rising, bad input.
"""

import math

import numpy as np
import pytest

from nnft._validate import ConfigError
from nnft.theory import field_equation as fe


@pytest.mark.parametrize("gamma, regime", [(0.3, "underdamped"), (2 * 0.3, "critical"),
                                           (3.0, "overdamped")])
def test_closed_form_oscillator_matches_the_ode(gamma, regime):
    """alpha = 1, m = 0.3: omega = 0.3, so gamma = 0.6 is critical."""
    t = np.linspace(0, 40, 401)
    osc = fe.oscillator(t, 1.0, gamma, m=0.3, f0=1.0, f_init=-0.5, v_init=0.2)
    assert osc.regime == regime
    f, fd = fe.background(t, 1.0, gamma, n=2, m=0.3, f0=1.0, f_init=-0.5, v_init=0.2,
                          rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(osc.f, f, atol=1e-8, rtol=0)
    np.testing.assert_allclose(osc.fdot, fd, atol=1e-8, rtol=0)
    assert osc.f[0] == pytest.approx(-0.5) and osc.fdot[0] == pytest.approx(0.2)


def test_dictionary_and_eta_max():
    eta, beta = 1 / 9, 0.5
    assert fe.friction(eta, beta) == pytest.approx(1.5)
    assert fe.hubble_length(eta, beta) == pytest.approx(3 * (1 / 3) / 0.5)
    assert fe.vacuum_energy(eta, beta) == pytest.approx(0.25 / (3 / 9))
    for n, m, f0, alpha in [(2, 0.1, 1.0, 0.7), (4, 0.2, 10.0, 2.0)]:
        em = float(fe.eta_max(alpha, beta, n=n, m=m, f0=f0, f_init=0.3))
        lv = 0.5 * m**2 * (0.3 - f0) ** n
        # at eta_max the vacuum energy equals alpha L(f(0)) exactly
        assert float(fe.vacuum_energy(em, beta)) == pytest.approx(alpha * lv, rel=1e-12)
    assert math.isinf(float(fe.eta_max(1.0, 0.0, n=2, m=0.1, f0=1.0, f_init=1.0)))


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_gd_stability_edge(beta):
    """n = 2: the recursion is linear, stable iff eta alpha m^2 < 2 (1 + beta)."""
    alpha, m = 1.0, 1.0
    edge = 2 * (1 + beta) / (alpha * m**2)
    below = fe.recursion(3000, 0.9 * edge, beta, alpha, n=2, m=m, f0=1.0)
    above = fe.recursion(3000, 1.1 * edge, beta, alpha, n=2, m=m, f0=1.0)
    assert not fe.gd_unstable(0.9 * edge, beta, alpha, n=2, m=m, f0=1.0)
    assert fe.gd_unstable(1.1 * edge, beta, alpha, n=2, m=m, f0=1.0)
    assert below.diverged_at == -1 and abs(below.f[-1] - 1.0) < 1e-6
    assert 0 < above.diverged_at < 3000
    assert np.all(np.isfinite(above.f))  # frozen at the last finite value, not a crash


def test_recursion_equals_the_toolkits_momentum_optimizer():
    """f = sqrt(alpha) theta trained by nnft's momentum optimizer (optax) on L(f) is the
    constant-alpha recursion, per model, with per-model (eta, beta, m, f0)."""
    import jax
    import jax.numpy as jnp

    from nnft.training.optim import make_optimizer

    eta, beta, alpha = np.array([0.1, 0.02]), np.array([0.0, 0.7]), np.array([0.8, 1.7])
    m, f0, n = np.array([0.3, 0.2]), np.array([1.0, 10.0]), 4
    rec = fe.recursion(200, eta, beta, alpha, n=n, m=m, f0=f0, f_init=0.25)
    with jax.enable_x64(True):
        for s in range(2):
            opt = make_optimizer("momentum", float(eta[s]), momentum=float(beta[s]))
            a = math.sqrt(alpha[s])
            theta = jnp.array(0.25 / a)
            state = opt.init(theta)
            loss = lambda th, s=s, a=a: 0.5 * m[s] ** 2 * (a * th - f0[s]) ** n
            out = [float(a * theta)]
            for _ in range(200):
                upd, state = opt.update(jax.grad(loss)(theta), state)
                theta = theta + upd
                out.append(float(a * theta))
            np.testing.assert_allclose(out, rec.f[:, s], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [2, 4])
def test_energy_never_rises_along_the_ode(n):
    """dE/dt = -gamma f'^2 <= 0 with E = f'^2/2 + alpha L (damped sign of eqs. 4, 7, 9)."""
    t = np.linspace(0, 60, 3001)
    f, fd = fe.background(t, 0.8, 0.4, n=n, m=0.2, f0=2.0, f_init=-1.0, v_init=0.5)
    e = fe.energy(f, fd, 0.8, n=n, m=0.2, f0=2.0)
    assert np.all(np.diff(e) <= 1e-10 * e[0])
    assert e[-1] < 0.5 * e[0]


def test_modes_decouple_into_oscillators_for_n2():
    """n = 2: L'' = m^2, so eq. 16 is an oscillator per mode with alpha = lambda_i / N, and
    eq. 15 one with lambda_1 / N."""
    lam = np.array([40.0, 4.0, 0.5, 1e-3])
    big_n, gamma, m, f0 = lam.size, 1.5, 0.3, 1.0
    t = np.linspace(0, 30, 61)
    c0 = np.array([0.2, -0.1, 0.05])
    fbar, c = fe.modes(t, lam, gamma, n=2, m=m, f0=f0, fbar_init=-0.3, c_init=c0)
    ref = fe.oscillator(t, lam[0] / big_n, gamma, m=m, f0=f0, f_init=-0.3).f
    np.testing.assert_allclose(fbar, ref, atol=1e-8, rtol=0)
    for i in range(3):
        ref = fe.oscillator(t, lam[i + 1] / big_n, gamma, m=m, f0=0.0, f_init=c0[i]).f
        np.testing.assert_allclose(c[:, i], ref, atol=1e-8, rtol=0)


def test_frozen_kernel_projections_follow_the_mode_recursion():
    """The matrix recursion (N inputs, frozen Theta, n = 2) projected on the eigenvectors is the
    discretised eq. 16, mode by mode, to round-off."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    theta = a @ a.T + 0.5 * np.ones((6, 6))
    eta, beta, m, f0 = 0.05, 0.5, 0.4, 1.0
    f_init = rng.normal(size=6) * 0.1
    rec = fe.recursion(300, eta, beta, theta, n=2, m=m, f0=f0, f_init=f_init)
    basis = fe.eigenbasis(theta)
    proj = (rec.f - f0) @ basis.vectors
    k = eta * basis.eigenvalues / 6 * m**2
    prev = cur = proj[0]
    for i in range(300):
        prev, cur = cur, cur + beta * (cur - prev) - k * cur
        np.testing.assert_allclose(proj[i + 1], cur, atol=1e-12, rtol=0)
    fbar, c = fe.split_mean(rec.f, basis)
    np.testing.assert_allclose(np.sqrt(6) * fbar[:, None] * basis.vectors[:, 0]
                               + c @ basis.vectors[:, 1:].T, rec.f, atol=1e-12)
    assert basis.alpha_mean == pytest.approx(theta.sum() / 36)


@pytest.mark.parametrize("call, message", [
    (lambda: fe.recursion(10, 0.1, 0.0, 1.0, n=3, m=0.1, f0=1.0), "^n: got 3; must be an even"),
    (lambda: fe.friction(0.1, 1.0), r"^beta: got 1.0; must be a number in \[0, 1\)"),
    (lambda: fe.friction(0.1, -0.1), r"^beta: got -0.1; must be a number in \[0, 1\)"),
    (lambda: fe.eta_max(1.0, 0.5, n=2, m=0.1, f0=1.0) * fe.friction(0.0, 0.5),
     "^eta: got 0.0; must be a number > 0"),
    (lambda: fe.recursion(10, -1.0, 0.0, 1.0, n=2, m=0.1, f0=1.0), "^eta: got -1.0"),
    (lambda: fe.modes([0, 1], [1.0], 1.0, n=2, m=0.1, f0=1.0, fbar_init=0.0, c_init=[]),
     "^inputs: got 1; the modes need at least 2 inputs"),
    (lambda: fe.eigenbasis([[1.0]]), r"^inputs: got \(1, 1\); the modes need"),
    (lambda: fe.background([0, 1], 1.0, 1.0, n=5, m=0.1, f0=1.0), "^n: got 5"),
])
def test_bad_input_is_one_line_naming_the_field(call, message):
    with pytest.raises(ConfigError, match=message) as err:
        call()
    assert "\n" not in str(err.value)
