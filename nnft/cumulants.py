"""Moments to cumulants on symmetric tensors over a point set.

The n-point moment ``m_n[a1..an] = E[phi(x_a1) ... phi(x_an)]`` and the connected
correlator (joint cumulant) ``kappa_n`` are related by the sum over set
partitions. We use the recursion that peels off the block containing the first
index,

    kappa(S) = m(S) - sum_{B : 1 in B, B != S} kappa(B) m(S \\ B),

which needs ``2^(n-1) - 1`` outer products (31 for n = 6) instead of the 203
set partitions of the direct formula. It is the general formula: odd moments
are kept, so it holds for theories without Z2 symmetry too. All functions
broadcast over leading batch axes (used for jackknife replicates).
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp

_LETTERS = "abcdefghij"


def _outer(t1, idx1: str, t2, idx2: str, out: str):
    return jnp.einsum(f"...{idx1},...{idx2}->...{out}", t1, t2)


def cumulants_from_moments(moments: dict[int, jnp.ndarray], order: int) -> dict[int, jnp.ndarray]:
    """Joint cumulants ``kappa_1..kappa_order`` from raw moment tensors.

    ``moments[k]`` has shape ``(..., P, ..., P)`` with k point axes and must be
    symmetric under permutations of them. Returns a dict with the same keys.
    """
    if order > len(_LETTERS):
        raise ValueError(f"order: got {order}; at most {len(_LETTERS)} supported")
    kappa: dict[int, jnp.ndarray] = {}
    for n in range(1, order + 1):
        letters = _LETTERS[:n]
        acc = moments[n]
        rest_positions = range(1, n)
        for size in range(n - 1):  # size of B minus its first element; B != S
            for extra in itertools.combinations(rest_positions, size):
                block = (0, *extra)
                other = tuple(i for i in range(n) if i not in block)
                idx_b = "".join(letters[i] for i in block)
                idx_o = "".join(letters[i] for i in other)
                acc = acc - _outer(kappa[len(block)], idx_b, moments[len(other)], idx_o, letters)
        kappa[n] = acc
    return kappa


def connected(moments: dict[int, jnp.ndarray], order: int) -> jnp.ndarray:
    """The connected ``order``-point function from raw moments 1..order."""
    return cumulants_from_moments(moments, order)[order]
