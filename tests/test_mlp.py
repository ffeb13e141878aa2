"""Deep MLP priors (TASI sec. 4): Monte Carlo against the NNGP / NTK recursions, abc presets.

Every Monte Carlo comparison is judged in units of its own standard error (|z| < 4) with fixed
seeds; network i of a run is drawn from ``fold_in(key, i)``.

Finite width: for depth 1 the network is a sum of i.i.d. neurons and G2 and the mean empirical
NTK equal the recursion exactly at every width. For depth >= 2 they carry O(1/N) corrections
(the feature kernel (112) fluctuates). Measured at N = 32 and scaled to N = 1024, that bias is
~0.01 of the G2 tests' standard errors (<= 600 networks) and ~0.1 of the NTK test's
(64 networks): see ``test_finite_width_bias_is_below_the_error_bars`` (slow). The sample sizes
are kept small enough that the bias cannot move a z-score, and large enough to resolve a
5% error in G2 with probability 0.9 (each test states its power; ``conftest.detectable``).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import detectable

from nnft import ntk as ntk_lib
from nnft import readout
from nnft._validate import ConfigError
from nnft.priors import make_prior
from nnft.priors.base import fields
from nnft.priors.mlp import MLP
from nnft.priors.parameterization import (
    PRESETS,
    ABCParameterization,
    abc_family,
    get_parameterization,
    learning_rate_scale,
)
from nnft.theory import gp

POINTS = {
    1: np.array([[-1.2], [-0.3], [0.4], [1.5], [0.0]]),
    2: np.array([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.9], [0.0, 0.0], [1.2, -1.1]]),
}
W_STD, B_STD = 1.4, 0.3
WIDTH = 1024


# ---------------------------------------------------------------------------
# Monte Carlo helpers
# ---------------------------------------------------------------------------
def mc_fields(priors, points, n_nets, seed, chunk=256, batch_size=1):
    """Fields ``(len(priors), n_nets, P)`` of the same n_nets networks under each prior.

    The priors must differ only in ways that leave ``sample`` unchanged (e.g. activation),
    so the networks are drawn once; ``priors[0].sample(fold_in(key, i))`` is network i.
    """
    key = jax.random.key(seed)
    x = jnp.asarray(points, jnp.float32)

    def one(k):
        p = priors[0].sample(k)
        return jnp.stack([fields(pr, p, x) for pr in priors])

    @jax.jit
    def run(i0):
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(i0 + jnp.arange(chunk))
        return jax.lax.map(one, keys, batch_size=batch_size)

    out = np.concatenate([np.asarray(run(i0), np.float64)
                          for i0 in range(0, n_nets, chunk)])[:n_nets]
    return np.moveaxis(out, 1, 0)


def g2_zscores(f, theory):
    """z of the sample mean of phi(x_a)phi(x_b) over networks (upper triangle), f: (S, P)."""
    prod = f[:, :, None] * f[:, None, :]
    mean = prod.mean(0)
    se = prod.std(0, ddof=1) / math.sqrt(f.shape[0])
    iu = np.triu_indices(f.shape[1])
    return ((mean - theory) / se)[iu]


def empirical_ntk(prior, params, x):
    """``J J^T`` over every raw parameter, ``(P, P)`` (:func:`nnft.ntk.empirical_ntk`)."""
    return ntk_lib.empirical_ntk(prior.apply, params, x)


def mc_ntk(priors, points, n_nets, seed, chunk=8):
    """Empirical NTKs ``(len(priors), n_nets, P, P)`` of the same networks under each prior."""
    key = jax.random.key(seed)
    x = jnp.asarray(points, jnp.float32)

    def one(k):
        p = priors[0].sample(k)
        return jnp.stack([empirical_ntk(pr, p, x) for pr in priors])

    @jax.jit
    def run(i0):
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(i0 + jnp.arange(chunk))
        return jax.lax.map(one, keys)

    out = np.concatenate([np.asarray(run(i0), np.float64)
                          for i0 in range(0, n_nets, chunk)])[:n_nets]
    return np.moveaxis(out, 1, 0)


def ntk_zscores(t, theory):
    mean = t.mean(0)
    se = t.std(0, ddof=1) / math.sqrt(t.shape[0])
    iu = np.triu_indices(t.shape[1])
    return ((mean - theory) / se)[iu]


# ---------------------------------------------------------------------------
# (1) G2: Monte Carlo at width 1024 against the NNGP recursion
# ---------------------------------------------------------------------------
# networks per run: depth 1 is cheap (and exact at every width); deeper nets cost ~5-10 ms each
N_NETS = {1: 25_000, 2: 192}
READOUT_WIDTH = 512  # depth >= 2: the readout estimator needs few networks, so width is cheap


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("depth", [1, 2])
def test_g2_against_nngp(depth, d):
    """G2 against the NNGP recursion, |z| < 4 on every entry.

    Depth 1: the direct estimator on 25,000 networks, relative stderr <= 0.9% on the
    diagonal: detects a 4.8% error in G2 with probability 0.9. Depth 2: the readout
    estimator (G2 = E[K], K the readout-conditioned kernel, exact for a Gaussian readout) on
    192 networks of width 512, relative stderr <= 0.9%: detects a 4.5% error (both
    asserted: <= 5%). Its finite-width bias is O(1/N): ~0.1% at N = 512 (from the N = 32
    measurement in the module docstring), a tenth of a stderr. The readout layer is the same
    code at every depth and is checked by the depth-1 run. Depth 3 needs ~3x the networks
    for the same power: it is in the slow test below. The recursion itself is checked
    against neural-tangents at depths 1-3 in tests/test_nt_reference.py (deterministic)."""
    acts = ("erf", "relu", "tanh") if depth == 1 else ("erf", "relu")
    width = WIDTH if depth == 1 else READOUT_WIDTH
    priors = [MLP(d=d, width=width, depth=depth, activation=a, W_std=W_STD, b_std=B_STD)
              for a in acts]
    pts = POINTS[d]
    if depth == 1:
        f = mc_fields(priors, pts, N_NETS[depth], seed=100 * depth + d, chunk=5_000,
                      batch_size=500)
        for prior, fa in zip(priors, f):
            z = g2_zscores(fa, prior.g2(pts))
            assert np.max(np.abs(z)) < 4, (prior.activation, z)
            diag = fa**2
            rel = diag.std(0, ddof=1) / math.sqrt(len(fa)) / np.diag(prior.g2(pts))
            assert detectable(rel) <= 0.05, rel
        return
    for i, prior in enumerate(priors):
        g2 = readout.run(prior, pts, N_NETS[depth], seed=100 * depth + d + i,
                         estimator="readout", max_order=2, n_batches=32,
                         progress=False).correlators.full[2]
        z = (g2.value - prior.g2(pts)) / g2.stderr
        assert np.max(np.abs(z)) < 4, (prior.activation, z)
        assert detectable(np.diag(g2.stderr) / np.diag(g2.value)) <= 0.05


@pytest.mark.slow
@pytest.mark.parametrize("depth", [2, 3])
def test_g2_against_nngp_long(depth):
    """Depth 2 and 3 at width 1024 with the readout estimator, 512 networks, and all three
    activations: relative stderr <= 0.6% on the diagonal, so a 3% error in G2 is detected
    with probability 0.9 (asserted <= 5%); the O(1/N) bias is ~0.05%."""
    for i, a in enumerate(("erf", "relu", "tanh")):
        prior = MLP(d=2, width=WIDTH, depth=depth, activation=a, W_std=W_STD, b_std=B_STD)
        g2 = readout.run(prior, POINTS[2], 512, seed=7 + depth + 10 * i, estimator="readout",
                         max_order=2, n_batches=32, progress=False).correlators.full[2]
        z = (g2.value - prior.g2(POINTS[2])) / g2.stderr
        assert np.max(np.abs(z)) < 4, (a, z)
        assert detectable(np.diag(g2.stderr) / np.diag(g2.value)) <= 0.05


# ---------------------------------------------------------------------------
# (2) empirical NTK (J J^T) against the NTK recursion
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("parameterization", ["ntk", "standard", "mup", "mean-field"])
def test_empirical_ntk_depth1_every_parameterization(parameterization):
    """Depth 1: the mean of J J^T equals ``MLP.ntk`` exactly at any width, in every preset."""
    pts = POINTS[2][:4]
    priors = [MLP(d=2, width=WIDTH, depth=1, activation=a, W_std=W_STD, b_std=B_STD,
                  parameterization=parameterization, gamma0=0.8) for a in ("erf", "relu")]
    t = mc_ntk(priors, pts, 128, seed=3 + list(PRESETS).index(parameterization), chunk=64)
    for prior, ta in zip(priors, t):
        z = ntk_zscores(ta, prior.ntk(pts))
        assert np.max(np.abs(z)) < 4, (prior.activation, z)


def test_empirical_ntk_depth2_ntk_parameterization():
    pts = POINTS[2][:4]
    priors = [MLP(d=2, width=WIDTH, depth=2, activation=a, W_std=W_STD, b_std=B_STD,
                  parameterization="ntk") for a in ("erf", "relu")]
    t = mc_ntk(priors, pts, 64, seed=4)
    for prior, ta in zip(priors, t):
        theory = gp.ntk(pts, depth=2, activation=prior.activation, W_std=W_STD, b_std=B_STD)
        np.testing.assert_allclose(prior.ntk(pts), theory, rtol=1e-12)
        z = ntk_zscores(ta, theory)
        assert np.max(np.abs(z)) < 4, (prior.activation, z)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_finite_width_bias_is_below_the_error_bars(activation):
    """The O(1/N) bias of deep nets, measured at N = 32 and scaled by 32/1024 to N = 1024.

    In units of ``sqrt(K_aa K_bb)`` (measured with these seeds): the depth-3 G2 is off by
    0.009 (erf) / 0.017 (relu) at N = 32, i.e. ~1e-3 at N = 512, below a quarter of the
    ~0.9% relative standard error of the readout-estimator G2 in ``test_g2_against_nngp``. The depth-2 NTK is off by 0.005 / 0.008 at
    N = 32, ~2e-4 at N = 1024, 0.09 / 0.14 of the standard error with 64 networks in
    ``test_empirical_ntk_depth2_ntk_parameterization``.
    """
    pts = POINTS[2][:4]
    g2_prior = MLP(d=2, width=32, depth=3, activation=activation, W_std=W_STD, b_std=B_STD)
    f = mc_fields([g2_prior], pts, 200_000, seed=5, chunk=20_000, batch_size=2_000)[0]
    theory = g2_prior.g2(pts)
    scale = np.sqrt(np.outer(np.diag(theory), np.diag(theory)))
    bias = np.max(np.abs((f[:, :, None] * f[:, None, :]).mean(0) - theory) / scale)
    assert bias * 32 / READOUT_WIDTH < 0.25 * 0.009, bias
    print(f"G2 {activation}: bias at N=32 {bias:.4f}, scaled to N={READOUT_WIDTH} "
          f"{bias * 32 / READOUT_WIDTH:.2e}")

    ntk_prior = MLP(d=2, width=32, depth=2, activation=activation, W_std=W_STD, b_std=B_STD,
                    parameterization="ntk")
    t = mc_ntk([ntk_prior], pts, 8_192, seed=6, chunk=512)[0]
    theory = ntk_prior.ntk(pts)
    scale = np.sqrt(np.outer(np.diag(theory), np.diag(theory)))
    bias = np.max(np.abs(t.mean(0) - theory) / scale)
    sd_1024 = np.min(t.std(0) / scale) * math.sqrt(32 / 1024)  # fluctuations ~ 1/sqrt(N)
    print(f"NTK {activation}: bias at N=32 {bias:.4f}, bias/se at N=1024 "
          f"{bias * 32 / 1024 / (sd_1024 / 8):.3f}")
    assert bias * 32 / 1024 < 0.25 * sd_1024 / math.sqrt(64), (bias, sd_1024)


# ---------------------------------------------------------------------------
# (3) muP / mean-field: G2 is the NNGP times N^{-2d} / gamma_0^2
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("parameterization", ["mup", "mean-field"])
def test_mup_mean_field_g2_is_nngp_over_n(parameterization):
    gamma0 = 0.7
    pts = POINTS[2]
    for depth, width in [(1, 64), (3, 100), (2, (50, 80))]:
        p = MLP(d=2, width=width, depth=depth, activation="relu", W_std=W_STD, b_std=B_STD,
                parameterization=parameterization, gamma0=gamma0)
        n_last = p.widths[-1]
        ref = p.replace(parameterization="ntk", gamma0=1.0).g2(pts)
        np.testing.assert_allclose(p.g2(pts), ref / (gamma0**2 * n_last), rtol=1e-12)
    # and the networks agree: depth 1 is exact at every width
    priors = [MLP(d=2, width=WIDTH, depth=1, activation=a, W_std=W_STD, b_std=B_STD,
                  parameterization=parameterization, gamma0=gamma0) for a in ("erf", "relu")]
    seed = {"mup": 9, "mean-field": 10}[parameterization]
    f = mc_fields(priors, pts, 10_000, seed=seed, chunk=5_000, batch_size=500)
    for prior, fa in zip(priors, f):
        z = g2_zscores(fa, prior.g2(pts))
        assert np.max(np.abs(z)) < 4, (prior.activation, z)


def test_mean_field_ntk_times_learning_rate_scale_is_the_ntk_limit():
    """Mean-field is the NTK parameterisation with phi / (gamma_0 sqrt N); eq. (106) undoes it."""
    pts = POINTS[2]
    for depth in (1, 3):
        mf = MLP(d=2, width=200, depth=depth, activation="erf", W_std=W_STD, b_std=B_STD,
                 parameterization="mean-field", gamma0=1.7)
        ntk = mf.replace(parameterization="ntk", gamma0=1.0).ntk(pts)
        np.testing.assert_allclose(mf.ntk(pts) * mf.learning_rate_scale(), ntk, rtol=1e-12)


@pytest.mark.parametrize("activation", ["erf", "relu", "tanh", "identity"])
def test_same_key_same_function_in_every_parameterization(activation):
    """The presets differ in where N and the constants sit, not in the function drawn."""
    x = jnp.asarray(POINTS[2], jnp.float32)
    base = MLP(d=2, width=(64, 48), depth=2, activation=activation, W_std=W_STD, b_std=B_STD,
               gamma0=1.5)
    ref = np.asarray(fields(base, base.sample(jax.random.key(1)), x)) / base.output_scale
    for name in PRESETS:
        p = base.replace(parameterization=name)
        out = np.asarray(fields(p, p.sample(jax.random.key(1)), x)) / p.output_scale
        np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-6)


def test_presets_and_constraints():
    """The table of nnft.priors.parameterization: eqs. (121)-(125) per preset."""
    fails = {name: sorted(k for k, ok in p.constraints().items() if not ok)
             for name, p in PRESETS.items()}
    assert fails == {"standard": ["(124) 2a_l + c = 1", "(125) d = 1/2"],
                     "ntk": ["(125) d = 1/2"], "mup": [], "mean-field": []}
    assert PRESETS["mup"].c == 1 and PRESETS["mup"].feature_learning
    for a in (-0.3, 0.0, 0.25, 0.5):
        assert abc_family(a).feature_learning
    mup, mf = PRESETS["mup"], PRESETS["mean-field"]
    assert (mup.a_first, mup.b_first, mup.a_hidden, mup.b_hidden, mup.c, mup.d) == \
        (-0.5, 1.0, 0.0, 1.0, 1.0, 0.5)
    assert (mf.a_first, mf.b_first, mf.a_hidden, mf.b_hidden, mf.c, mf.d) == \
        (0.0, 0.0, 0.5, 0.0, 0.0, 0.5)
    # eq. (106): eta = eta_0 gamma_0^2 N^{2d-c}
    assert learning_rate_scale("mup", 4096) == 1.0
    assert learning_rate_scale("mean-field", 4096, gamma0=0.5) == 0.25 * 4096
    assert learning_rate_scale("ntk", 4096) == 1.0
    assert get_parameterization(mup) is mup


def test_custom_abc_parameterization_and_card():
    p = MLP(d=2, width=32, depth=2, parameterization=abc_family(0.25, "multiplier"))
    q = make_prior("mlp", d=2, width=[32, 32], depth=2, parameterization="mup")
    assert isinstance(q, MLP) and q.width == (32, 32)
    hp = p.hyperparameters()
    assert hp["name"] == "mlp" and hp["parameterization"]["a_hidden"] == 0.25
    # any member of the family (126)-(127) keeps the effective weights: same G2 as muP
    np.testing.assert_allclose(p.g2(POINTS[2]), q.g2(POINTS[2]), rtol=1e-12)


# ---------------------------------------------------------------------------
# theory: dual kernels
# ---------------------------------------------------------------------------
def test_dual_kernels_against_quadrature():
    from scipy.special import erf

    k11 = np.array([[0.3], [1.7], [5.0]])
    k22 = np.array([[0.9, 2.5, 4.0]])
    k12 = np.array([[0.2, -0.5, 0.1], [1.0, 1.9, -2.0], [0.5, 3.0, 4.4]])
    t, tdot = gp.dual_kernels("erf", k11, k22, k12)
    q, qdot = gp.quadrature_dual_kernels(
        lambda u: (erf(u), 2 / math.sqrt(math.pi) * np.exp(-u * u)), k11, k22, k12, step=0.2)
    np.testing.assert_allclose(t, q, atol=1e-12)
    np.testing.assert_allclose(tdot, qdot, atol=1e-12)
    # tanh: the variance-adapted grid against a much finer one
    t, tdot = gp.dual_kernels("tanh", k11, k22, k12)
    q, qdot = gp.quadrature_dual_kernels(lambda u: (np.tanh(u), 1 - np.tanh(u) ** 2),
                                         k11, k22, k12, step=0.02)
    np.testing.assert_allclose(t, q, atol=1e-11)
    np.testing.assert_allclose(tdot, qdot, atol=1e-10)
    # relu: closed form at coincident points, E[relu(u)^2] = k/2, Tdot = 1/2
    t, tdot = gp.dual_kernels("relu", np.array([2.0]), np.array([2.0]), np.array([2.0]))
    np.testing.assert_allclose([t[0], tdot[0]], [1.0, 0.5], rtol=1e-12)


def test_kernels_symmetric_and_cross():
    x, y = POINTS[2], POINTS[2][:3] + 0.1
    for act in ("erf", "relu", "tanh", "identity"):
        p = MLP(d=2, width=64, depth=3, activation=act, W_std=W_STD, b_std=B_STD,
                parameterization="ntk")
        k, t = p.nngp(x), p.ntk(x)
        np.testing.assert_allclose(k, k.T, rtol=1e-14)
        for m in (k, t):  # positive semi-definite (a linear net in d = 2 has rank 3)
            assert np.linalg.eigvalsh(m).min() > -1e-12 * np.abs(m).max()
        np.testing.assert_allclose(p.nngp(x, y), p.nngp(np.vstack([x, y]))[:5, 5:], rtol=1e-10)
        np.testing.assert_allclose(p.ntk(x, y), p.ntk(np.vstack([x, y]))[:5, 5:], rtol=1e-10)
        assert p.g2(x).dtype == np.float64 and p.g4c(x) is None


# ---------------------------------------------------------------------------
# (4) bad hyperparameters: ConfigError naming the field and what is allowed
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad, field, allowed", [
    ({"width": 0}, "width", "integer >= 1"),
    ({"width": -3}, "width", "integer >= 1"),
    ({"width": (16, 0), "depth": 2}, "width", "integer >= 1"),
    ({"width": (16, 16), "depth": 3}, "width", "depth = 3"),
    ({"depth": 0}, "depth", "integer >= 1"),
    ({"W_std": 0.0}, "W_std", "> 0"),
    ({"W_std": -1.0}, "W_std", "> 0"),
    ({"b_std": -0.1}, "b_std", ">= 0"),
    ({"activation": "sigmoid"}, "activation", "erf, relu, tanh, identity"),
    ({"parameterization": "muP"}, "parameterization", "standard, ntk, mup, mean-field"),
    ({"d": 0}, "d", "integer >= 1"),
    ({"gamma0": 0.0}, "gamma0", "> 0"),
    ({"dtype": "float16"}, "dtype", "float32, float64"),
])
def test_bad_hyperparameters(bad, field, allowed):
    with pytest.raises(ConfigError) as err:
        MLP(**bad)
    msg = str(err.value)
    assert msg.startswith(f"{field}: got ") and allowed in msg, msg


def test_bad_arguments_elsewhere():
    with pytest.raises(ConfigError, match="parameterization: got 'lazy'; allowed values: "
                                          "standard, ntk, mup, mean-field"):
        get_parameterization("lazy")
    with pytest.raises(ConfigError, match="scales: got 'both'"):
        ABCParameterization(0, 0, 0.5, 0, 0, 0, scales="both")
    with pytest.raises(ConfigError, match="width: got None"):
        gp.ntk(POINTS[2], depth=2, activation="erf", parameterization="standard")
    with pytest.raises(ConfigError, match="activation: got 'gelu'"):
        gp.nngp(POINTS[2], depth=2, activation="gelu")
    with pytest.raises(ConfigError, match="architecture: unknown hyperparameter"):
        make_prior("mlp", widht=3)
    with pytest.raises(ConfigError, match="points: "):
        MLP(d=2).g2(POINTS[1])
