"""The empirical neural tangent kernel and its spectrum (REFERENCE.md, "Dynamics and the NTK").

``Theta(x, x') = sum_p dphi(x)/dtheta_p dphi(x')/dtheta_p`` for one network
``apply_fn(params, x) -> scalar`` at inputs ``x`` of shape ``(d,)``, summed over every leaf
of the parameter pytree. Two ways to compute it (:func:`empirical_ntk`):

- ``"jacobian"`` (Jacobian contraction): the per-example gradients of the P and Q inputs
  (``vmap(grad)``, P + Q backward passes), contracted leaf by leaf,
  ``Theta = sum_leaves J1_leaf J2_leaf^T`` -- no concatenated Jacobian is formed, and for
  ``x2 = None`` the gradients are computed once. Memory ~ (P + Q) x n_params.
- ``"ntvp"`` (NTK-vector products): column q of Theta is ``J1 (J2^T e_q)``, a vjp of one
  input followed by a jvp over the P inputs; columns are processed ``column_chunk`` at a
  time with ``lax.map``, so memory is ~ column_chunk x n_params, independent of P and Q.

Both cost ~P Q n_params flops for an MLP; they differ in memory traffic. ``method="auto"``
takes the Jacobian contraction while one model's per-example gradients ``(P + Q) x n_params``
fit in ``jacobian_bytes`` (8 MiB: small networks, few points) and the NTK-vector products
beyond (the choice is made from shapes only, at trace time). The threshold is where the two
cross over on a CPU in ``benchmarks/ntk.py`` (MLPs of widths 64-1024 on 16-64 points).

:func:`spectrum_stats` gives the collective variables of ntk-collective-variables:
eigenvalues, trace, entropy of ``p_i = lambda_i / sum_j lambda_j``, effective rank
``exp(entropy)``; :func:`relative_change` is ``||Theta_t - Theta_0||_F / ||Theta_0||_F``.
Everything is pure jnp, so it vmaps over models (:func:`batched_empirical_ntk`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nnft import _validate as v

METHODS = ("auto", "jacobian", "ntvp")
#: bytes of one model's per-example gradients above which "auto" takes NTK-vector products
JACOBIAN_BYTES = 2**23
#: bytes of tangents that one lax.map step of the NTK-vector products may hold (all models)
MEMORY_BUDGET = 2**30

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def _n_params(params) -> tuple[int, int]:
    leaves = jax.tree.leaves(params)
    n = sum(math.prod(jnp.shape(a)) for a in leaves)
    itemsize = max((jnp.asarray(a).dtype.itemsize for a in leaves), default=4)
    return n, itemsize


def choose_method(params, n1: int, n2: int, jacobian_bytes: int = JACOBIAN_BYTES) -> str:
    """``"jacobian"`` while the ``(n1 + n2) x n_params`` gradients fit in ``jacobian_bytes``,
    else ``"ntvp"``."""
    n, itemsize = _n_params(params)
    return "jacobian" if (n1 + n2) * n * itemsize <= jacobian_bytes else "ntvp"


def _per_example_grads(apply_fn: ApplyFn, params, x):
    return jax.vmap(jax.grad(apply_fn), in_axes=(None, 0))(params, x)


def _contract(g1, g2) -> jax.Array:
    """``sum_leaves g1_leaf (P, ...) . g2_leaf (Q, ...)`` -> ``(P, Q)``."""
    terms = [jnp.tensordot(a, b, axes=(tuple(range(1, a.ndim)), tuple(range(1, b.ndim))))
             for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2))]
    return sum(terms[1:], terms[0])


def _ntk_jacobian(apply_fn, params, x1, x2):
    g1 = _per_example_grads(apply_fn, params, x1)
    g2 = g1 if x2 is None else _per_example_grads(apply_fn, params, x2)
    return _contract(g1, g2)


def _ntk_ntvp(apply_fn, params, x1, x2, column_chunk: int):
    x2 = x1 if x2 is None else x2
    f1 = jax.vmap(apply_fn, in_axes=(None, 0))

    def column(xq):
        tangent = jax.grad(apply_fn)(params, xq)  # J2^T e_q
        return jax.jvp(lambda p: f1(p, x1), (params,), (tangent,))[1]  # J1 J2^T e_q

    cols = jax.lax.map(column, x2, batch_size=column_chunk)  # (Q, P)
    return cols.T


def empirical_ntk(apply_fn: ApplyFn, params, x1, x2=None, *, method: str = "auto",
                  column_chunk: int = 16, jacobian_bytes: int = JACOBIAN_BYTES) -> jax.Array:
    """Empirical NTK ``(P, Q)`` of one network on ``x1`` (P, d) x ``x2`` (Q, d); x2=None: x1.

    ``apply_fn(params, x)`` evaluates one network at one input (a :class:`~nnft.Prior`'s
    ``apply``). ``method``: "auto" (by shape, see the module docstring), "jacobian" or
    "ntvp"; ``column_chunk``: columns per ``lax.map`` step of "ntvp". Jittable; vmap it
    over models or use :func:`batched_empirical_ntk`.
    """
    v.choice("method", method, METHODS)
    v.positive_int("column_chunk", column_chunk)
    x1 = jnp.asarray(x1)
    x2 = None if x2 is None else jnp.asarray(x2)
    if method == "auto":
        method = choose_method(params, x1.shape[0], 0 if x2 is None else x2.shape[0],
                               jacobian_bytes)
    if method == "jacobian":
        return _ntk_jacobian(apply_fn, params, x1, x2)
    return _ntk_ntvp(apply_fn, params, x1, x2, column_chunk)


def batched_empirical_ntk(apply_fn: ApplyFn, params_batch, x1, x2=None, *,
                          memory_budget: int = MEMORY_BUDGET, **kw) -> jax.Array:
    """Empirical NTKs ``(S, P, Q)`` of S models whose parameters are stacked on axis 0.

    The method is chosen per model as in :func:`empirical_ntk`; on the NTK-vector-product
    path the column chunk shrinks so that S x chunk x n_params fits ``memory_budget`` bytes.
    """
    leaf = jax.tree.leaves(params_batch)[0]
    s = leaf.shape[0]
    one = jax.tree.map(lambda a: a[0], params_batch)
    if kw.get("method", "auto") == "auto":
        n2 = 0 if x2 is None else jnp.shape(x2)[0]
        kw = {**kw, "method": choose_method(one, jnp.shape(x1)[0], n2,
                                            kw.pop("jacobian_bytes", JACOBIAN_BYTES))}
    if kw["method"] == "ntvp" and "column_chunk" not in kw:
        n, itemsize = _n_params(one)
        kw = {**kw, "column_chunk": int(max(1, min(16, memory_budget
                                                   // max(1, s * n * itemsize))))}
    return jax.vmap(lambda p: empirical_ntk(apply_fn, p, x1, x2, **kw))(params_batch)


def jacobian_ntk(apply_fn: ApplyFn, params, x1, x2=None) -> jax.Array:
    """Reference: the explicit ``J1 J2^T`` with J the full Jacobian ``(P, n_params)``.

    ``jax.jacobian`` of the fields on all points, leaves concatenated, one matmul. Kept as
    the test oracle and the benchmark's reference, not for production use.
    """
    x1 = jnp.asarray(x1)

    def jac(x):
        j = jax.jacobian(lambda p: jax.vmap(apply_fn, in_axes=(None, 0))(p, x))(params)
        return jnp.concatenate([a.reshape(x.shape[0], -1) for a in jax.tree.leaves(j)], axis=1)

    j1 = jac(x1)
    j2 = j1 if x2 is None else jac(jnp.asarray(x2))
    return j1 @ j2.T


# ---------------------------------------------------------------------------
# spectrum statistics (ntk-collective-variables)
# ---------------------------------------------------------------------------
class SpectrumStats(NamedTuple):
    """Collective variables of a (P, P) NTK Gram matrix (leading axes allowed)."""

    eigenvalues: jax.Array  # (..., P), descending
    trace: jax.Array  # sum_i lambda_i
    entropy: jax.Array  # -sum_i p_i log p_i, p_i = lambda_i / sum_j lambda_j
    effective_rank: jax.Array  # exp(entropy), between 1 and P


def spectrum_stats(theta: jax.Array) -> SpectrumStats:
    """Eigenvalues, trace, entropy and effective rank of symmetric NTK(s) ``(..., P, P)``.

    Round-off negative eigenvalues are clipped to zero before normalising (``0 log 0 = 0``).
    """
    theta = jnp.asarray(theta)
    sym = 0.5 * (theta + jnp.swapaxes(theta, -1, -2))
    lam = jnp.linalg.eigvalsh(sym)[..., ::-1]
    lam_pos = jnp.maximum(lam, 0.0)
    total = jnp.sum(lam_pos, axis=-1, keepdims=True)
    p = lam_pos / jnp.where(total > 0, total, 1.0)
    plogp = jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)
    entropy = -jnp.sum(plogp, axis=-1)
    return SpectrumStats(lam, jnp.trace(theta, axis1=-2, axis2=-1), entropy, jnp.exp(entropy))


def relative_change(theta_t: jax.Array, theta_0: jax.Array) -> jax.Array:
    """``||Theta_t - Theta_0||_F / ||Theta_0||_F`` over the last two axes."""
    num = jnp.sqrt(jnp.sum((theta_t - theta_0) ** 2, axis=(-2, -1)))
    return num / jnp.sqrt(jnp.sum(theta_0**2, axis=(-2, -1)))


__all__ = [
    "JACOBIAN_BYTES",
    "MEMORY_BUDGET",
    "METHODS",
    "SpectrumStats",
    "batched_empirical_ntk",
    "choose_method",
    "empirical_ntk",
    "jacobian_ntk",
    "relative_change",
    "spectrum_stats",
]
