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

Vector outputs: ``apply_fn(params, x) -> (C,)``. ``outputs="trace"`` (default) sums over
them, ``Theta_ij = sum_c J_c(x_i) . J_c(x_j)`` (neural-tangents ``trace_axes=(-1,)``);
``outputs="full"`` keeps them, ``(P, Q, C, C)`` (a scalar output counts as ``C = 1``). The
per-layer NTK of dense networks (no Jacobians) is :func:`nnft.ntk_layers.dense_ntk`.

Concrete (not traced) inputs are checked: an empty probe, a NaN or infinity, a matrix that is
not square or not symmetric is a :class:`~nnft._validate.ConfigError`; an all-zero NTK has
``S = 0`` and gives a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nnft import _validate as v

METHODS = ("auto", "jacobian", "ntvp")
OUTPUTS = ("trace", "full")
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


def choose_method(params, n1: int, n2: int, jacobian_bytes: int = JACOBIAN_BYTES,
                  n_outputs: int = 1) -> str:
    """``"jacobian"`` while the ``(n1 + n2) x C x n_params`` gradients fit in
    ``jacobian_bytes``, else ``"ntvp"``."""
    n, itemsize = _n_params(params)
    return "jacobian" if (n1 + n2) * n_outputs * n * itemsize <= jacobian_bytes else "ntvp"


def _is_concrete(a) -> bool:
    return not isinstance(a, jax.core.Tracer)


def check_points(field: str, x) -> None:
    """A concrete probe must be 2-D ``(P, d)`` with P >= 1 and finite entries."""
    if not _is_concrete(x):
        return
    x = np.asarray(x)
    shape = x.shape
    v.require(len(shape) == 2, field, f"shape {shape}", "must be a 2-D array (points, d)")
    v.require(shape[0] >= 1, field, f"shape {shape}", "must hold at least one point")
    v.require(bool(np.all(np.isfinite(x))), field, "an array with NaN or infinity",
              "must be finite")


def n_outputs(apply_fn: ApplyFn, params, x) -> int:
    """C of ``apply_fn(params, x[0])``: 1 for a scalar output, else the output's length."""
    out = jax.eval_shape(apply_fn, params, x[0])
    v.require(len(out.shape) <= 1, "apply_fn", f"output shape {out.shape}",
              "must return a scalar or a vector (C,) for one input")
    return 1 if not out.shape else int(out.shape[0])


def _vector(apply_fn: ApplyFn) -> ApplyFn:
    """``apply_fn`` with its output as a vector ``(C,)`` (a scalar becomes ``(1,)``)."""
    return lambda p, x: jnp.reshape(apply_fn(p, x), (-1,))


def _per_example_grads(apply_fn: ApplyFn, params, x, vector: bool = False):
    grad = jax.jacrev(_vector(apply_fn)) if vector else jax.grad(apply_fn)
    return jax.vmap(grad, in_axes=(None, 0))(params, x)  # leaves (P, [C,] ...)


def _contract(g1, g2, full: bool = False) -> jax.Array:
    """``sum_leaves g1_leaf (P, ...) . g2_leaf (Q, ...)`` -> ``(P, Q)``; ``full``: the
    leaves are ``(P, C, ...)`` and the result ``(P, Q, C, C)``."""
    if full:
        terms = [jnp.einsum("pcn,qdn->pqcd", a.reshape(a.shape[0], a.shape[1], -1),
                            b.reshape(b.shape[0], b.shape[1], -1))
                 for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2))]
    else:
        terms = [jnp.tensordot(a, b, axes=(tuple(range(1, a.ndim)), tuple(range(1, b.ndim))))
                 for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2))]
    return sum(terms[1:], terms[0])


def _ntk_jacobian(apply_fn, params, x1, x2, vector: bool = False, full: bool = False):
    g1 = _per_example_grads(apply_fn, params, x1, vector)
    g2 = g1 if x2 is None else _per_example_grads(apply_fn, params, x2, vector)
    return _contract(g1, g2, full)


def _ntk_ntvp(apply_fn, params, x1, x2, column_chunk: int):
    x2 = x1 if x2 is None else x2
    f1 = jax.vmap(apply_fn, in_axes=(None, 0))

    def column(xq):
        tangent = jax.grad(apply_fn)(params, xq)  # J2^T e_q
        return jax.jvp(lambda p: f1(p, x1), (params,), (tangent,))[1]  # J1 J2^T e_q

    cols = jax.lax.map(column, x2, batch_size=column_chunk)  # (Q, P)
    return cols.T


def _ntk_ntvp_vector(apply_fn, params, x1, x2, column_chunk: int, n_out: int, full: bool):
    """NTK-vector products for C outputs: per column q, C vjps then C jvps over x1."""
    x2 = x1 if x2 is None else x2
    f = _vector(apply_fn)
    f1 = jax.vmap(f, in_axes=(None, 0))
    eye = jnp.eye(n_out, dtype=jax.eval_shape(f, params, x2[0]).dtype)

    def column(xq):
        _, vjp = jax.vjp(lambda p: f(p, xq), params)
        tangents = jax.vmap(lambda e: vjp(e)[0])(eye)  # C x params: J_c(x_q)
        out = jax.vmap(lambda t: jax.jvp(lambda p: f1(p, x1), (params,), (t,))[1])(tangents)
        # out[c, p, c'] = J_c'(x_p) . J_c(x_q)
        return jnp.transpose(out, (1, 2, 0)) if full else jnp.einsum("cpc->p", out)

    cols = jax.lax.map(column, x2, batch_size=column_chunk)  # (Q, P[, C, C])
    return jnp.swapaxes(cols, 0, 1)


def empirical_ntk(apply_fn: ApplyFn, params, x1, x2=None, *, method: str = "auto",
                  column_chunk: int = 16, jacobian_bytes: int = JACOBIAN_BYTES,
                  outputs: str = "trace") -> jax.Array:
    """Empirical NTK ``(P, Q)`` of one network on ``x1`` (P, d) x ``x2`` (Q, d); x2=None: x1.

    ``apply_fn(params, x)`` evaluates one network at one input (a :class:`~nnft.Prior`'s
    ``apply``), a scalar or a vector ``(C,)``. ``outputs``: "trace" sums over the C outputs
    (``(P, Q)``), "full" keeps them (``(P, Q, C, C)``). ``method``: "auto" (by shape, see
    the module docstring), "jacobian" or "ntvp"; ``column_chunk``: columns per ``lax.map``
    step of "ntvp". Jittable; vmap it over models or use :func:`batched_empirical_ntk`.
    """
    v.choice("method", method, METHODS)
    v.choice("outputs", outputs, OUTPUTS)
    v.positive_int("column_chunk", column_chunk)
    x1 = jnp.asarray(x1)
    x2 = None if x2 is None else jnp.asarray(x2)
    check_points("x1", x1)
    if x2 is not None:
        check_points("x2", x2)
        v.require(x2.shape[1:] == x1.shape[1:], "x2", f"shape {x2.shape}",
                  f"must have the input dimension of x1 {x1.shape[1:]}")
    n_out = n_outputs(apply_fn, params, x1)
    scalar = jax.eval_shape(apply_fn, params, x1[0]).shape == ()
    full = outputs == "full"
    if method == "auto":
        method = choose_method(params, x1.shape[0], 0 if x2 is None else x2.shape[0],
                               jacobian_bytes, n_out)
    if scalar and not full:
        if method == "jacobian":
            return _ntk_jacobian(apply_fn, params, x1, x2)
        return _ntk_ntvp(apply_fn, params, x1, x2, column_chunk)
    if method == "jacobian":
        return _ntk_jacobian(apply_fn, params, x1, x2, vector=True, full=full)
    return _ntk_ntvp_vector(apply_fn, params, x1, x2, column_chunk, n_out, full)


def batched_empirical_ntk(apply_fn: ApplyFn, params_batch, x1, x2=None, *,
                          memory_budget: int = MEMORY_BUDGET, **kw) -> jax.Array:
    """Empirical NTKs ``(S, P, Q)`` of S models whose parameters are stacked on axis 0.

    The method is chosen per model as in :func:`empirical_ntk`; on the NTK-vector-product
    path the column chunk shrinks so that S x chunk x n_params fits ``memory_budget`` bytes.
    """
    leaf = jax.tree.leaves(params_batch)[0]
    s = leaf.shape[0]
    one = jax.tree.map(lambda a: a[0], params_batch)
    n_out = n_outputs(apply_fn, one, jnp.asarray(x1))
    if kw.get("method", "auto") == "auto":
        n2 = 0 if x2 is None else jnp.shape(x2)[0]
        kw = {**kw, "method": choose_method(one, jnp.shape(x1)[0], n2,
                                            kw.pop("jacobian_bytes", JACOBIAN_BYTES), n_out)}
    if kw["method"] == "ntvp" and "column_chunk" not in kw:
        n, itemsize = _n_params(one)
        kw = {**kw, "column_chunk": int(max(1, min(16, memory_budget
                                                   // max(1, s * n_out * n * itemsize))))}
    return jax.vmap(lambda p: empirical_ntk(apply_fn, p, x1, x2, **kw))(params_batch)


def jacobian_ntk(apply_fn: ApplyFn, params, x1, x2=None, *, outputs: str = "trace"
                 ) -> jax.Array:
    """Reference: the explicit ``J1 J2^T`` with J the full Jacobian ``(P C, n_params)``.

    ``jax.jacobian`` of the fields on all points, leaves concatenated, one matmul; C outputs
    are traced over or kept (``outputs``) as in :func:`empirical_ntk`. Kept as the test
    oracle and the benchmark's reference, not for production use.
    """
    v.choice("outputs", outputs, OUTPUTS)
    x1 = jnp.asarray(x1)
    f = _vector(apply_fn)

    def jac(x):
        j = jax.jacobian(lambda p: jax.vmap(f, in_axes=(None, 0))(p, x))(params)
        return jnp.concatenate([a.reshape(x.shape[0], a.shape[1], -1)
                                for a in jax.tree.leaves(j)], axis=2)  # (P, C, n_params)

    j1 = jac(x1)
    j2 = j1 if x2 is None else jac(jnp.asarray(x2))
    full = jnp.einsum("pcn,qdn->pqcd", j1, j2)
    scalar = jax.eval_shape(apply_fn, params, x1[0]).shape == ()
    if outputs == "full":
        return full
    return full[..., 0, 0] if scalar else jnp.einsum("pqcc->pq", full)


# ---------------------------------------------------------------------------
# spectrum statistics (ntk-collective-variables)
# ---------------------------------------------------------------------------
class SpectrumStats(NamedTuple):
    """Collective variables of a (P, P) NTK Gram matrix (leading axes allowed)."""

    eigenvalues: jax.Array  # (..., P), descending
    trace: jax.Array  # sum_i lambda_i
    entropy: jax.Array  # -sum_i p_i log p_i, p_i = lambda_i / sum_j lambda_j
    effective_rank: jax.Array  # exp(entropy), between 1 and P
    entropy_normalized: jax.Array  # entropy / log P, between 0 and 1 (0 for P = 1)
    trace_per_point: jax.Array  # trace / P (papyrus' default)


#: asymmetry ``max|Theta - Theta^T|`` allowed, relative to ``max|Theta|`` (float32 round-off)
SYMMETRY_RTOL = 1e-3


def check_gram(theta) -> None:
    """A concrete NTK ``(..., P, P)``: square, P >= 1, finite, symmetric to round-off.

    An all-zero matrix warns (its entropy is set to 0). Traced values are not checked."""
    if not _is_concrete(theta):
        return
    theta = np.asarray(theta)
    shape = theta.shape
    v.require(len(shape) >= 2 and shape[-1] == shape[-2], "theta", f"shape {shape}",
              "must be a square matrix (..., P, P)")
    v.require(shape[-1] >= 1, "theta", f"shape {shape}", "must not be empty (P >= 1)")
    v.require(bool(np.all(np.isfinite(theta))), "theta", "a matrix with NaN or infinity",
              "must be finite")
    scale = np.max(np.abs(theta), axis=(-2, -1))
    asym = np.max(np.abs(theta - np.swapaxes(theta, -1, -2)), axis=(-2, -1))
    v.require(bool(np.all(asym <= SYMMETRY_RTOL * scale)), "theta",
              f"a matrix with max|theta - theta^T| = {float(np.max(asym)):.3g}",
              f"must be symmetric (to {SYMMETRY_RTOL:g} x max|theta|)")
    if bool(np.any(scale == 0)):
        warnings.warn("spectrum_stats: an all-zero NTK; its entropy is set to 0",
                      RuntimeWarning, stacklevel=3)


def _host_eigvalsh(sym: jax.Array) -> jax.Array:
    """Ascending eigenvalues by numpy (LAPACK on the host) through ``jax.pure_callback``."""
    out = jax.ShapeDtypeStruct(sym.shape[:-1], sym.dtype)
    return jax.pure_callback(lambda a: np.linalg.eigvalsh(np.asarray(a)).astype(a.dtype),
                             out, sym, vmap_method="expand_dims")


def spectrum_stats(theta: jax.Array, *, host_eigensolver: bool = False) -> SpectrumStats:
    """Eigenvalues, trace, entropy and effective rank of symmetric NTK(s) ``(..., P, P)``.

    Round-off negative eigenvalues are clipped to zero before normalising (``0 log 0 = 0``).
    Also ``S / log P`` and ``tr / P``. Concrete input is checked (:func:`check_gram`).
    ``host_eigensolver``: eigenvalues from numpy through a callback instead of XLA's
    ``eigh`` (on a CPU with few threads, concurrent batched XLA ``eigh`` calls can deadlock
    in jaxlib 0.10's ``ParallelBatchMap``; :func:`nnft.ntk_layers.ntk_recorder` uses it).
    """
    check_gram(theta)
    theta = jnp.asarray(theta)
    n = theta.shape[-1]
    sym = 0.5 * (theta + jnp.swapaxes(theta, -1, -2))
    lam = (_host_eigvalsh(sym) if host_eigensolver else jnp.linalg.eigvalsh(sym))[..., ::-1]
    lam_pos = jnp.maximum(lam, 0.0)
    total = jnp.sum(lam_pos, axis=-1, keepdims=True)
    p = lam_pos / jnp.where(total > 0, total, 1.0)
    plogp = jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)
    entropy = -jnp.sum(plogp, axis=-1)
    trace = jnp.trace(theta, axis1=-2, axis2=-1)
    normalized = entropy / math.log(n) if n > 1 else jnp.zeros_like(entropy)
    return SpectrumStats(lam, trace, entropy, jnp.exp(entropy), normalized, trace / n)


def relative_change(theta_t: jax.Array, theta_0: jax.Array) -> jax.Array:
    """``||Theta_t - Theta_0||_F / ||Theta_0||_F`` over the last two axes."""
    num = jnp.sqrt(jnp.sum((theta_t - theta_0) ** 2, axis=(-2, -1)))
    return num / jnp.sqrt(jnp.sum(theta_0**2, axis=(-2, -1)))


__all__ = [
    "JACOBIAN_BYTES",
    "MEMORY_BUDGET",
    "METHODS",
    "OUTPUTS",
    "SYMMETRY_RTOL",
    "SpectrumStats",
    "batched_empirical_ntk",
    "check_gram",
    "check_points",
    "choose_method",
    "empirical_ntk",
    "jacobian_ntk",
    "n_outputs",
    "relative_change",
    "spectrum_stats",
]
