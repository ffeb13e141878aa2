"""Operator insertion (nnft.interaction): potentials, the box integral (quadrature vs
closed form), the unconstrained reparameterisations (on the priors) with their log prior
densities, the numpyro model, and first-order perturbation theory at infinite width (Wick
factors 12 and 24)."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import detectable
from jax.flatten_util import ravel_pytree

from nnft import MLP, ConfigError, CosNet, GaussNet, ScalarNet, SpectralNet
from nnft.interaction import (
    Box,
    Interaction,
    Potential,
    QuadratureWarning,
    box_integral,
    box_quadrature,
    check_quadrature,
    custom,
    exact_box_integral,
    gaussian_expectation,
    make_target,
    mass_shift,
    nngp_rows,
    numpyro_model,
    perturbation_infinite_n,
    phi4,
    phi6,
    polynomial,
    unflatten_sites,
)

PRIORS = {
    "cos": CosNet(d=2, width=5, sigma_w0=1.3, sigma_w1=0.7),
    "gauss": GaussNet(d=2, width=5, sigma_b0=0.6),
    "scalar": ScalarNet(d=3, width=4, Lambda=3.0),
    "spectral-1d": SpectralNet(d=1, width=4, Lambda=5.0, power_spectrum="flat"),
    "mlp": MLP(d=2, width=3, depth=2, activation="tanh", b_std=0.5),
}


# -- potentials ------------------------------------------------------------------------
def test_potential_values():
    x = jnp.asarray([-1.5, 0.0, 2.0])
    np.testing.assert_allclose(phi4(0.3)(x), 0.3 * x**4, rtol=1e-6)
    np.testing.assert_allclose(phi6(0.2)(x), 0.2 * x**6, rtol=1e-6)
    np.testing.assert_allclose(mass_shift(0.5)(x), 0.25 * x**2, rtol=1e-6)
    np.testing.assert_allclose(polynomial([1.0, 0.0, -0.5, 0.0, 0.1])(x),
                               1 - 0.5 * x**2 + 0.1 * x**4, rtol=1e-6)
    np.testing.assert_allclose(custom(jnp.cosh)(x), np.cosh(x), rtol=1e-6)
    assert polynomial([1.0, 0.0, -0.5, 0.0, 0.1]).lower_bound() == pytest.approx(1 - 0.625)
    assert phi4(0.0).is_free and not phi4(0.1).is_free
    assert phi4(0.3).with_coupling(0.7) == phi4(0.7)
    assert phi4(0.3).unit() == phi4(1.0)


@pytest.mark.parametrize("make, field", [
    (lambda: phi4(-0.1), "coupling"),
    (lambda: phi6(-1.0), "coupling"),
    (lambda: mass_shift(-0.5), "coupling"),
    (lambda: phi4(float("nan")), "coupling"),
    (lambda: polynomial([0.0, 0.0, 1.0, 1.0]), "coefficients"),
    (lambda: polynomial([0.0, 0.0, 1.0, 0.0, -1.0]), "coefficients"),
    (lambda: Potential("phi8", 1.0), "potential"),
])
def test_unbounded_or_bad_potentials_are_refused(make, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        make()


def test_custom_potential_nan_or_unbounded_is_refused():
    with pytest.raises(ConfigError, match=r"potential: got V\(.*\) = nan"):
        custom(lambda p: jnp.sqrt(p) * p**3)  # NaN for phi < 0
    with pytest.raises(ConfigError, match="unbounded below"):
        custom(lambda p: p**2 - 1e-6 * p**4)
    with pytest.raises(ConfigError, match="elementwise"):
        custom(lambda p: jnp.sum(p))


# -- the box ---------------------------------------------------------------------------
@pytest.mark.parametrize("lengths, field", [((), "box"), ((2.0, 0.0), r"box\[1\]"),
                                            ((-1.0,), r"box\[0\]"),
                                            ((float("inf"),), r"box\[0\]")])
def test_empty_box_is_refused(lengths, field):
    with pytest.raises(ConfigError, match=f"^{field}: got .*empty box"):
        Box(lengths)


def test_bad_nodes_and_dimension_mismatch():
    with pytest.raises(ConfigError, match=r"^nodes\[0\]"):
        Interaction(phi4(0.1), Box((2.0,)), 0)
    with pytest.raises(ConfigError, match="^nodes"):
        Interaction(phi4(0.1), Box((2.0, 1.0)), [4, 4, 4])
    with pytest.raises(ConfigError, match="^box.*d = 1"):
        make_target(CosNet(d=1), Interaction(phi4(0.1), Box((2.0, 2.0)), 8))
    with pytest.raises(ConfigError, match='^interaction.method: "exact" needs a cos-type'):
        make_target(GaussNet(d=1), Interaction(phi4(0.1), Box((2.0,)), 8, "exact"))


def test_architecture_capabilities_live_on_the_priors():
    """Reparameterisation, cosine modes and NNGP rows are prior methods; where a prior
    lacks one, the interaction code says so with a ConfigError naming the field."""
    import dataclasses

    from nnft.priors.base import Prior

    @dataclasses.dataclass(frozen=True)
    class Bare(Prior):
        d: int = 1
        name = "bare"

        def sample(self, key):
            return {"a": jax.random.normal(key, ())}

        def apply(self, params, x):
            return params["a"] * x[0]

    inter = Interaction(phi4(0.1), Box((2.0,)), 8)
    with pytest.raises(ConfigError, match="^architecture.name: got 'bare'.*reparameter"):
        make_target(Bare(), inter)
    with pytest.raises(ConfigError, match="^architecture.name: got 'bare'.*infinite-width"):
        perturbation_infinite_n(Bare(), inter, np.array([[0.0]]))
    with pytest.raises(ConfigError, match='^interaction.method: "exact" needs a cos-type'):
        make_target(MLP(d=1, width=3), Interaction(phi4(0.1), Box((2.0,)), 8, "exact"))
    cos = PRIORS["cos"]
    params = cos.sample(jax.random.PRNGKey(0))
    a, w, b = cos.cos_modes(params)
    x = jnp.asarray([0.3, -0.2])
    assert float(jnp.sum(a * jnp.cos(w @ x + b))) == pytest.approx(float(cos.apply(params, x)))
    g, gzz = PRIORS["mlp"].nngp_rows(np.zeros((2, 2)), np.ones((3, 2)))
    assert g.shape == (2, 3) and gzz.shape == (3,)


def test_gauss_legendre_box_rule_is_exact_on_polynomials():
    box = Box((2.0, 3.0), (0.5, -1.0))
    q = box_quadrature(box, (3, 4))
    x, y = q.nodes[:, 0], q.nodes[:, 1]
    # int x^4 y^6 over [-0.5, 1.5] x [-2.5, 0.5]: degree 4 <= 2*3-1, 6 <= 2*4-1
    exact = (1.5**5 + 0.5**5) / 5 * (0.5**7 + 2.5**7) / 7
    assert np.sum(q.weights * x**4 * y**6) == pytest.approx(exact, rel=1e-13)
    assert np.sum(q.weights) == pytest.approx(box.volume, rel=1e-14)


# -- exact vs quadrature (acceptance 4) ------------------------------------------------
@pytest.mark.parametrize("prior, box, potential", [
    (CosNet(d=1, width=8, dtype="float64"), Box((2.0,), (0.3,)), phi4(0.7)),
    (CosNet(d=2, width=8, sigma_w0=1.5, dtype="float64"), Box((2.0, 1.5)), phi4(1.0)),
    (CosNet(d=1, width=8, dtype="float64"), Box((3.0,)),
     polynomial([0.2, 0.0, 0.5, 0.0, 0.1, 0.0, 0.01])),
    (ScalarNet(d=2, width=8, Lambda=3.0, dtype="float64"), Box((1.5, 1.0)), phi4(2.0)),
])
def test_quadrature_matches_exact_box_integral_in_x64(prior, box, potential):
    inter = Interaction(potential, box, 4)
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.PRNGKey(1), 4)
        params = jax.vmap(prior.sample)(keys)
        exact = np.asarray(jax.vmap(lambda p: exact_box_integral(prior, p, potential, box))(
            params))
        # too few nodes: the check warns (and the quadrature is off)
        with pytest.warns(QuadratureWarning, match="not converged"):
            coarse_check = check_quadrature(prior, inter, params=params)
        assert not coarse_check.converged
        # enough nodes: converged against a finer rule, and equal to the closed form
        nodes = 24
        with warnings.catch_warnings():
            warnings.simplefilter("error", QuadratureWarning)
            check = check_quadrature(prior, Interaction(potential, box, nodes), params=params)
        assert check.converged
        quad = np.asarray(jax.vmap(lambda p: box_integral(
            prior, p, potential, box_quadrature(box, (nodes,) * box.d)))(params))
    rel = np.abs(quad - exact) / np.abs(exact)
    assert np.max(rel) < 1e-8, rel


def test_exact_box_integral_is_differentiable_and_matches_quadrature_gradient():
    prior = CosNet(d=1, width=3, dtype="float64")
    box = Box((2.0,))
    with jax.enable_x64(True):
        p = prior.sample(jax.random.PRNGKey(0))
        g_exact = jax.grad(lambda q: exact_box_integral(prior, q, phi4(1.0), box))(p)
        g_quad = jax.grad(lambda q: box_integral(prior, q, phi4(1.0),
                                                 box_quadrature(box, (32,))))(p)
    for k in p:
        np.testing.assert_allclose(g_exact[k], g_quad[k], rtol=1e-9, atol=1e-12)


# -- reparameterisation ----------------------------------------------------------------
def _log_prior(prior, params) -> float:
    """log P(theta) up to a constant, written out independently per architecture."""
    def normal(x, s):
        return -0.5 * np.sum((np.asarray(x) / s) ** 2)

    if isinstance(prior, CosNet):
        return (normal(params["w0"], prior.sigma_w0 / math.sqrt(prior.d))
                + normal(params["w1"], prior.sigma_w1 / math.sqrt(prior.width)))
    if isinstance(prior, GaussNet):
        return (normal(params["w0"], prior.sigma_w0 / math.sqrt(prior.d))
                + normal(params["b0"], prior.sigma_b0)
                + normal(params["w1"], prior.sigma_w1 / math.sqrt(2 * prior.width)))
    if isinstance(prior, SpectralNet):  # w0, b uniform: constant
        return normal(params["w1"], prior.sigma_w1 / math.sqrt(prior.width))
    scales = prior.layer_scales()
    return sum(normal(layer["W"], sc.w_std) + normal(layer["b"], sc.b_std)
               for layer, sc in zip(params, scales))


@pytest.mark.parametrize("name", list(PRIORS))
def test_log_density_is_log_prior_plus_log_jacobian(name):
    """log p_z(z1) - log p_z(z2) = [log P + log|det dtheta/dz|](z1) - [...](z2)."""
    prior = PRIORS[name]
    with jax.enable_x64(True):
        prior = prior.replace(dtype="float64")
        rep = prior.reparameterization()
        z1 = rep.init(jax.random.PRNGKey(3))
        z2 = jax.tree.map(lambda x: 0.7 * x + 0.1, z1)
        flat, unravel = ravel_pytree(z1)

        def theta(zf):
            return ravel_pytree(rep.constrain(unravel(zf)))[0]

        def total(zf):
            jac = jax.jacfwd(theta)(zf)
            logdet = np.linalg.slogdet(np.asarray(jac))[1]
            return _log_prior(prior, rep.constrain(unravel(zf))) + logdet

        lhs = float(rep.log_density(z1) - rep.log_density(z2))
        rhs = total(flat) - total(ravel_pytree(z2)[0])
    assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", list(PRIORS))
def test_reparameterisation_roundtrip_and_support(name):
    prior = PRIORS[name]
    rep = prior.reparameterization()
    params = prior.sample(jax.random.PRNGKey(5))
    back = rep.constrain(rep.unconstrain(params))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    huge = jax.tree.map(lambda x: 1e4 * jnp.sign(x + 0.5), rep.unconstrain(params))
    theta = rep.constrain(huge)
    if isinstance(prior, (CosNet, SpectralNet)):
        assert np.all(np.abs(theta["b0"]) <= math.pi)
    if isinstance(prior, SpectralNet):
        assert np.all(np.linalg.norm(theta["w0"], axis=-1) <= prior.Lambda * (1 + 1e-6))
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(theta))


@pytest.mark.parametrize("name", list(PRIORS))
def test_log_density_matches_the_prior_sampler_stein_identity(name):
    """E[1 + z_i d/dz_i log p(z)] = 0 when z = unconstrain(prior draw) has density p."""
    prior = PRIORS[name]
    with jax.enable_x64(True):
        prior64 = prior.replace(dtype="float64")
        target = make_target(prior64, None)
        z = jax.vmap(target.init)(jax.random.split(jax.random.PRNGKey(11), 20000))
        score = jax.vmap(jax.grad(target.prior_logdensity))(z)
        stat = np.asarray(1.0 + z * score)
    mean, err = stat.mean(axis=0), stat.std(axis=0) / math.sqrt(len(stat))
    live = err > 0  # zero-variance leaves (none here) carry no information
    assert np.max(np.abs(mean[live] / err[live])) < 4.5  # ~ 40 coordinates, |z| < 4.5


# -- numpyro ---------------------------------------------------------------------------
def test_numpyro_model_has_the_same_density():
    """The numpyro model's log density equals the target's at random points (exact, 1e-5
    in float32): what numpyro samples is this density. Sampling it with numpyro's NUTS and
    comparing with blackjax in units of the errors is the slow
    ``tests/test_mcmc.py::test_numpyro_runs_the_same_model``."""
    from numpyro.infer.util import log_density

    prior = CosNet(d=1, width=3)
    inter = Interaction(phi4(0.2), Box((2.0,)), 16)
    target = make_target(prior, inter)
    pts = np.array([[0.0], [0.5]])
    model = numpyro_model(target, pts)
    for seed in range(3):
        z = target.init(jax.random.PRNGKey(seed))
        ld, _ = log_density(model, (), {}, unflatten_sites(target, np.asarray(z)))
        assert float(ld) == pytest.approx(float(target.logdensity(z)), rel=1e-5)


# -- perturbation theory at infinite width ---------------------------------------------
def _gaussian_first_order(prior, inter, pts, n, seed):
    """Independent first order at infinite width: Gaussian draws of the field at the box
    nodes (covariance ``prior.g2``), ``S = sum_q w_q V_1(phi_q)``, and per draw the
    contributions to ``-dG2/dlambda = Cov(phi_a phi_b, S)`` and to ``-dG4c/dlambda`` (the
    connected four-point part of ``Cov(phi_1..phi_4, S)``). The products of the external
    fields are replaced by their exact Gaussian conditional means given the node values
    (``phi_pts | y ~ N(A y, C)``): same expectation, less variance. Plain numpy."""
    q = inter.quadrature
    nodes, w = np.asarray(q.nodes), np.asarray(q.weights)
    p = len(pts)
    cov = prior.g2(np.concatenate([pts, nodes]))
    y = np.random.default_rng(seed).multivariate_normal(np.zeros(len(nodes)), cov[p:, p:],
                                                         size=n)
    a = np.linalg.solve(cov[p:, p:], cov[p:, :p]).T  # (P, Q)
    c = cov[:p, :p] - a @ cov[p:, :p]
    mu = y @ a.T
    s = np.asarray(inter.unit().potential(y), np.float64) @ w
    ds = s - s.mean()

    def pair(i, j):  # E[phi_i phi_j | y]
        return mu[:, i] * mu[:, j] + c[i, j]

    g = cov[:p, :p]
    quad = mu[:, 0] * mu[:, 1] * mu[:, 2] * mu[:, 3]
    for (i, j), (k, m) in (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))):
        quad = quad + c[i, j] * mu[:, k] * mu[:, m] + c[k, m] * mu[:, i] * mu[:, j] \
            + c[i, j] * c[k, m]
    four = quad * ds
    for (i, j), (k, m) in (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))):
        four = four - pair(i, j) * ds * g[k, m] - g[i, j] * pair(k, m) * ds
    return -pair(0, 1) * ds, -four


@pytest.mark.parametrize("potential, n", [(phi4(1.0), 4_000_000), (mass_shift(1.0), 1_000_000)],
                         ids=["phi4", "mass"])
def test_first_order_pt_against_gaussian_monte_carlo(potential, n):
    """``perturbation_infinite_n`` (Wick's theorem by Gaussian integration by parts, box
    quadrature) against an independent Gaussian Monte Carlo of ``-Cov(G, S)`` at the same
    quadrature nodes: the factors 12 and 24 of phi^4 and the mass shift's ``-int G G``
    are tested, none re-evaluated. 4e6 (phi^4) / 1e6 (mass) draws: relative stderr <= 0.9%
    on the G2 slope, so a 5% error is detected with probability 0.9 (asserted); the phi^4
    G4c slope has relative stderr ~1.8%, a 10% error is detected (asserted; 5% would take
    ~1e7 draws), and the mass shift's must vanish. (phi^6 needs ~1.6e7 draws for the G2
    power: its factor 90 stays in the formula test below.)"""
    prior = CosNet(d=1)
    pts = np.array([[0.0], [0.4], [0.9], [1.3]])
    inter = Interaction(potential, Box((1.2,), center=(0.6,)), 6)
    got = perturbation_infinite_n(prior, inter, pts)
    two, four = _gaussian_first_order(prior, inter, pts, n, seed=0)
    se2 = two.std() / math.sqrt(len(two))
    slope2 = got["G2"][1][0, 1]
    assert abs(two.mean() - slope2) / se2 < 4, (two.mean(), slope2, se2)
    assert detectable(se2 / abs(slope2)) <= 0.05
    se4 = four.std() / math.sqrt(len(four))
    slope4 = got["G4c"][1][0, 1, 2, 3]
    assert abs(four.mean() - slope4) / se4 < 4, (four.mean(), slope4, se4)
    if potential.kind == "mass":
        assert slope4 == 0.0
    elif potential.kind == "phi4":
        assert detectable(se4 / abs(slope4)) <= 0.10


def test_infinite_width_first_order_formulas():
    """dG2 = -12 int G G G and dG4c = -24 int G G G G for V = lambda phi^4; -delta m^2 int G G
    for a mass shift (the derivative of the free propagator); phi^6: -90 int G G_zz^2 G."""
    prior = ScalarNet(d=2, width=10, Lambda=4.0)
    pts = np.array([[0.0, 0.0], [0.3, 0.1], [0.8, -0.2]])
    box = Box((1.5, 1.5))
    inter = Interaction(phi4(0.4), box, 20)
    q = inter.quadrature
    g, gzz = nngp_rows(prior, pts, q.nodes)
    out = perturbation_infinite_n(prior, inter, pts)
    np.testing.assert_allclose(out["G2"][0], prior.g2(pts), rtol=1e-10)
    np.testing.assert_allclose(out["G2"][1], -12 * np.einsum("q,aq,bq->ab", q.weights * gzz, g, g),
                               rtol=1e-10)
    np.testing.assert_allclose(out["G4c"][1], -24 * np.einsum("q,aq,bq,cq,dq->abcd", q.weights,
                                                              g, g, g, g), rtol=1e-10)
    mass = perturbation_infinite_n(prior, Interaction(mass_shift(0.3), box, 20), pts)
    np.testing.assert_allclose(mass["G2"][1], -np.einsum("q,aq,bq->ab", q.weights, g, g),
                               rtol=1e-10)
    np.testing.assert_allclose(mass["G4c"][1], 0.0, atol=1e-14)
    six = perturbation_infinite_n(prior, Interaction(phi6(1.0), box, 20), pts)
    np.testing.assert_allclose(six["G2"][1], -90 * np.einsum("q,aq,bq->ab", q.weights * gzz**2,
                                                             g, g), rtol=1e-10)
    assert gaussian_expectation(lambda p: p**4, np.array([2.0]))[0] == pytest.approx(12.0)
