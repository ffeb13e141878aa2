"""Empirical NTK (nnft.ntk) against the explicit ``J J^T``; spectrum statistics; the mean
empirical NTK against the infinite-width recursion (z-scores, fixed seeds)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnft import CosNet
from nnft._validate import ConfigError
from nnft.ntk import (
    batched_empirical_ntk,
    choose_method,
    empirical_ntk,
    jacobian_ntk,
    relative_change,
    spectrum_stats,
)
from nnft.priors.mlp import MLP

PRIORS = [
    MLP(d=2, width=64, depth=1, activation="erf", parameterization="ntk", b_std=0.3),
    MLP(d=2, width=48, depth=2, activation="relu", parameterization="standard", b_std=0.2),
    MLP(d=2, width=(32, 40), depth=2, activation="tanh", parameterization="mup",
        b_std=0.5),
    MLP(d=2, width=64, depth=2, activation="erf", parameterization="mean-field"),
    CosNet(d=2, width=50, sigma_w0=1.3),
]


def _rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def _oracle(prior, params, a, b=None):
    return jax.jit(lambda p: jacobian_ntk(prior.apply, p, a, b))(params)


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: f"{p.name}-{getattr(p, 'activation', '')}"
                         f"-{getattr(p, 'parameterization', '')}")
def test_empirical_ntk_equals_explicit_jjt(prior):
    """Both methods (and "auto") against the explicit J J^T, float32, to 1e-5 relative."""
    params = prior.sample(jax.random.key(3))
    x1 = jax.random.normal(jax.random.key(1), (7, 2))
    x2 = jax.random.normal(jax.random.key(2), (5, 2))
    for a, b in ((x1, x2), (x1, None)):
        ref = _oracle(prior, params, a, b)
        for method in ("auto", "jacobian", "ntvp"):
            ours = jax.jit(lambda p, a=a, b=b, m=method: empirical_ntk(prior.apply, p, a, b,
                                                                        method=m))(params)
            assert ours.shape == (7, 5 if b is not None else 7)
            assert _rel_err(ours, ref) < 1e-5, method


def test_batched_matches_one_by_one_and_methods_switch_by_memory():
    prior = PRIORS[0]
    keys = jax.random.split(jax.random.key(0), 4)
    params = jax.vmap(prior.sample)(keys)
    x = jnp.linspace(-1, 1, 12).reshape(6, 2)
    batched = batched_empirical_ntk(prior.apply, params, x)
    for s in range(4):
        one = jax.tree.map(lambda a, s=s: a[s], params)
        assert _rel_err(batched[s], _oracle(prior, one, x)) < 1e-5
    one = jax.tree.map(lambda a: a[0], params)
    assert choose_method(one, 6, 6) == "jacobian"
    assert choose_method(one, 6, 6, jacobian_bytes=100) == "ntvp"
    small = batched_empirical_ntk(prior.apply, params, x, jacobian_bytes=100,
                                  memory_budget=100)  # ntvp path, one column at a time
    assert _rel_err(small, batched) < 1e-5
    with pytest.raises(ConfigError, match="method: got 'svd'; allowed values: auto"):
        empirical_ntk(prior.apply, one, x, method="svd")


def test_spectrum_stats_and_relative_change():
    lam = jnp.array([4.0, 2.0, 1.0, 1.0, 0.0])
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (5, 5)))
    theta = (q * lam) @ q.T
    st = spectrum_stats(theta)
    p = np.array([4, 2, 1, 1]) / 8.0
    entropy = -np.sum(p * np.log(p))
    np.testing.assert_allclose(st.eigenvalues, lam, atol=1e-5)
    np.testing.assert_allclose(st.trace, 8.0, rtol=1e-6)
    np.testing.assert_allclose(st.entropy, entropy, rtol=1e-5)
    np.testing.assert_allclose(st.effective_rank, math.exp(entropy), rtol=1e-5)
    flat = spectrum_stats(jnp.eye(6))
    np.testing.assert_allclose(flat.effective_rank, 6.0, rtol=1e-5)  # maximal for equal modes
    np.testing.assert_allclose(relative_change(1.1 * theta, theta), 0.1, rtol=1e-5)
    stacked = spectrum_stats(jnp.stack([theta, jnp.eye(5)]))  # leading axes
    assert stacked.entropy.shape == (2,)


def test_mean_empirical_ntk_matches_recursion():
    """Depth 1: the empirical NTK is a mean of i.i.d. neurons, exactly the recursion on
    average at every width (z-scores over 64 networks)."""
    prior = MLP(d=1, width=256, depth=1, activation="relu", parameterization="ntk", b_std=0.4)
    x = np.array([[-1.0], [0.2], [1.3]])
    keys = jax.random.split(jax.random.key(7), 64)
    params = jax.vmap(prior.sample)(keys)
    th = np.asarray(batched_empirical_ntk(prior.apply, params, jnp.asarray(x, jnp.float32)),
                    np.float64)
    mean, se = th.mean(0), th.std(0, ddof=1) / math.sqrt(len(th))
    z = (mean - prior.ntk(x)) / se
    assert np.all(np.abs(z) < 4), z
