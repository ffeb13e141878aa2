"""The float32 polynomial cosine against the float64 cosine (deterministic)."""

import jax
import jax.numpy as jnp
import numpy as np

from nnft.fastmath import cos


def test_float32_cos_is_within_2p5e_7_of_the_float64_cosine():
    """Dense grid over the reduction boundaries and random arguments up to |x| = 2000; the
    bound 2.5e-7 is ~2 ulp at 1 (a sign or quadrant error would be O(1), a wrong coefficient
    >= 1e-6)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-20, 20, 400_001), rng.uniform(-2000, 2000, 400_000),
                        (np.arange(-600, 601) * np.pi / 2)]).astype(np.float32)
    got = np.asarray(jax.jit(cos)(jnp.asarray(x)), np.float64)
    err = np.abs(got - np.cos(x.astype(np.float64)))
    assert err.max() < 2.5e-7, err.max()


def test_derivative_matches_minus_sine():
    """HMC differentiates the field: the polynomial's derivative is -sin to 1e-6."""
    x = jnp.linspace(-12.0, 12.0, 100_001, dtype=jnp.float32)
    d = np.asarray(jax.vmap(jax.grad(cos))(x), np.float64)
    assert np.max(np.abs(d + np.sin(np.asarray(x, np.float64)))) < 1e-6


def test_float64_goes_to_the_exact_cosine():
    with jax.enable_x64(True):
        x = jnp.linspace(-5.0, 5.0, 101, dtype=jnp.float64)
        np.testing.assert_array_equal(np.asarray(cos(x)), np.asarray(jnp.cos(x)))
