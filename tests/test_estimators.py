"""The streaming cumulant estimator on distributions with known cumulants."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnft.estimators import channel_state, moment_estimator

B = 64


def _estimate(sampler, n_points, max_order, n_chunks=16, rows=1024, seed=0):
    est = moment_estimator(n_points, max_order, B)
    with jax.enable_x64(True):
        state = est.init()
        update = jax.jit(est.update)
        key = jax.random.PRNGKey(seed)
        for c in range(n_chunks):
            state = update(state, sampler(jax.random.fold_in(key, c), (rows, B)))
    return est.finalize(state)


def _z(est, exact):
    return (est.value - exact) / est.stderr


def test_gaussian_has_no_connected_parts_beyond_two():
    cov = np.array([[1.0, 0.6, 0.2], [0.6, 1.5, -0.4], [0.2, -0.4, 0.8]])
    chol = np.linalg.cholesky(cov)
    mean = np.array([0.3, -0.2, 0.0])

    def sampler(key, shape):
        return jax.random.normal(key, (*shape, 3), jnp.float64) @ chol.T + mean

    c = _estimate(sampler, 3, 6)
    assert np.max(np.abs(_z(c.connected[1], mean))) < 4
    assert np.max(np.abs(_z(c.connected[2], cov))) < 4
    for order in (3, 4, 5, 6):
        assert np.max(np.abs(_z(c.connected[order], 0.0))) < 4, order


def _sum_of_products(cov, order):
    """sum over perfect matchings of prod cov: the Wick sum, as a tensor."""
    p = cov.shape[0]
    out = np.zeros((p,) * order)
    for idx in itertools.product(range(p), repeat=order):
        out[idx] = _wick(cov, idx)
    return out


def _wick(cov, idx):
    if not idx:
        return 1.0
    first, rest = idx[0], idx[1:]
    return sum(cov[first, rest[k]] * _wick(cov, rest[:k] + rest[k + 1:]) for k in range(len(rest)))


def test_gaussian_scale_mixture_known_g4c_g6c():
    """phi = s g, s^2 ~ chi^2_1, g ~ N(0, C): kappa4 = 2 sum_3 CC, kappa6 = 8 sum_15 CCC."""
    cov = np.array([[1.0, 0.5], [0.5, 0.8]])
    chol = np.linalg.cholesky(cov)

    def sampler(key, shape):
        k1, k2 = jax.random.split(key)
        s = jax.random.normal(k1, (*shape, 1), jnp.float64)
        return s * (jax.random.normal(k2, (*shape, 2), jnp.float64) @ chol.T)

    c = _estimate(sampler, 2, 6, n_chunks=40)
    assert np.max(np.abs(_z(c.connected[4], 2 * _sum_of_products(cov, 4)))) < 4
    assert np.max(np.abs(_z(c.connected[6], 8 * _sum_of_products(cov, 6)))) < 4
    assert np.max(np.abs(_z(c.full[4], 3 * _sum_of_products(cov, 4)))) < 4


def test_skewed_general_cumulants():
    """phi_a = y + x_a with y, x_a ~ Exp(1) independent:
    kappa(a1..an) = (n-1)! (1 + [a1 = .. = an]), odd orders included."""
    p = 3

    def sampler(key, shape):
        k1, k2 = jax.random.split(key)
        y = jax.random.exponential(k1, (*shape, 1), jnp.float64)
        return y + jax.random.exponential(k2, (*shape, p), jnp.float64)

    c = _estimate(sampler, p, 5, n_chunks=24)
    for n in range(1, 6):
        exact = np.full((p,) * n, float(math.factorial(n - 1)))
        for a in range(p):
            exact[(a,) * n] *= 2
        assert np.max(np.abs(_z(c.connected[n], exact))) < 4, n
        # the estimate is actually informative: the diagonal is many sigma from the off-diagonal
        assert c.connected[n].stderr[(0,) * n] < 0.25 * math.factorial(n - 1)


def test_compact_accumulation_equals_full_tensors():
    """The distinct-combination GEMMs reproduce the full moment tensors exactly."""
    rng = np.random.default_rng(1)
    f = rng.normal(size=(8, B, 4))
    est = moment_estimator(4, 6, B)
    with jax.enable_x64(True):
        c = est.finalize(est.update(est.init(), jnp.asarray(f)))
    flat = f.reshape(-1, 4)
    for order in range(1, 7):
        letters = "abcdef"[:order]
        expr = ",".join(f"s{c}" for c in letters) + "->" + letters
        full = np.einsum(expr, *([flat] * order)) / len(flat)
        np.testing.assert_allclose(c.full[order].value, full, rtol=1e-12, atol=1e-12)


def test_mask_drops_rows():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(10, B, 2))
    mask = np.ones((10, B), bool)
    mask[7:] = False
    est = moment_estimator(2, 4, B)
    with jax.enable_x64(True):
        a = est.finalize(est.update(est.init(), jnp.asarray(f), jnp.asarray(mask)))
        b = est.finalize(est.update(est.init(), jnp.asarray(f[:7])))
    assert a.n_samples == b.n_samples == 7 * B
    np.testing.assert_allclose(a.connected[4].value, b.connected[4].value, rtol=1e-12)
    np.testing.assert_allclose(a.connected[4].stderr, b.connected[4].stderr, rtol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_order"):
        moment_estimator(3, 7)
    with pytest.raises(ValueError, match="n_batches"):
        moment_estimator(3, 4, 1)
    with pytest.raises(ValueError, match="points"):
        moment_estimator(12, 6)


@pytest.mark.parametrize("max_order", [1, 2, 3, 4, 5, 6])
def test_tiled_weighted_sums_equal_full_tensors(max_order, monkeypatch):
    """Every max_order's sums (the Gram blocks of orders <= 4, the GEMMs of 5 and 6), summed
    tile by tile over the batches (2048 rows x 8 batches: 4 tiles of 2 batches) and in one
    tile, with a mask and two weight channels, equal the weighted full tensors to 1e-12."""
    from nnft import estimators

    rng = np.random.default_rng(3)
    nb, p = 8, 3
    f = rng.normal(size=(2048, nb, p))
    mask = rng.random((2048, nb)) > 0.2
    w = rng.random((2, 2048, nb))
    f[~mask] = np.nan  # dropped rows must not leak
    est = moment_estimator(p, max_order, nb, n_channels=2)
    states = {}
    for tile_rows in (4096, 10**9):
        monkeypatch.setattr(estimators, "CPU_TILE_ROWS", tile_rows)
        assert estimators._batches_per_tile(nb, 2048) == (2 if tile_rows == 4096 else nb)
        with jax.enable_x64(True):
            states[tile_rows] = est.update(est.init(), jnp.asarray(f), jnp.asarray(mask),
                                           jnp.asarray(w))
    ww = np.where(mask, w, 0.0)
    fz = np.where(mask[..., None], f, 0.0)
    for c in range(2):
        for order in range(1, max_order + 1):
            letters = "acdefg"[:order]  # r rows, b batches
            expr = "rb," + ",".join(f"rb{x}" for x in letters) + "->b" + letters
            want = np.einsum(expr, ww[c], *([fz] * order))
            for state in states.values():
                got = np.asarray(estimators._expand(channel_state(state, c).sums[order - 1],
                                                    order, estimators._Layout(p)))
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(np.asarray(states[4096].count[c]), ww[c].sum(axis=0),
                                   rtol=1e-13)
