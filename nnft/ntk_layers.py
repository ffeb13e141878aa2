"""Per-layer NTK of dense networks and a streaming NTK recorder (ntk-collective-variables).

A dense network with L hidden layers, layer l = 1..L+1 (the last is the readout),

    z_l = a_l h_{l-1} W_l + s_l b_l,   h_l = sigma(z_l),   h_0 = x,   f = z_{L+1}  (C outputs)

with raw weights ``W_l (n_{l-1}, n_l)``, optional raw biases ``b_l`` and multipliers
``a_l`` (weights) and ``s_l`` (biases): 1 and 1 in the standard parameterisation,
``W_std / sqrt(n_{l-1})`` and ``b_std`` in the NTK parameterisation. Its NTK is a sum over
layers of products of two Gram matrices, no Jacobian needed:

    Theta_ij^{cc'} = sum_l (delta_l^c(x_i) . delta_l^{c'}(x_j)) (a_l^2 h_{l-1}(x_i) . h_{l-1}(x_j) + s_l^2 [bias])

with the backward signals ``delta_l^c = df_c / dz_l``: ``delta_{L+1}^c = e_c``,
``delta_l^c = a_{l+1} (delta_{l+1}^c W_{l+1}^T) * sigma'(z_l)``. The cost is
``P C n^2`` per layer (one backward pass with C cotangents) instead of a Jacobian's
``P C n_params`` memory. :func:`dense_ntk` takes the layers as :class:`DenseLayer` tuples;
``outputs="trace"`` sums over c = c' (``(P, Q)``), ``"full"`` keeps ``(P, Q, C, C)``,
``per_layer=True`` returns the L + 1 terms stacked on axis 0.

:func:`ntk_recorder` is a streaming recorder ``(init, update, finalize)`` for any training
loop: ``update(state, params, metrics)`` computes the NTK on every probe set, its spectrum
statistics (:func:`nnft.ntk.spectrum_stats`) and stores them with the metrics in
preallocated buffers, so it jits and vmaps over seeds; ``finalize`` returns numpy arrays. On a CPU the eigenvalues come from numpy through a
callback (``host_eigensolver``): two concurrent batched XLA ``eigh`` calls (jaxlib 0.10's
``ParallelBatchMap``) can each hold one of the two pool threads of a 2-core machine while
waiting for subtasks that need the other, a deadlock seen in this study's runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nnft import _validate as v
from nnft.ntk import OUTPUTS, check_points, spectrum_stats

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "erf": jax.scipy.special.erf,
    "identity": lambda z: z,
}


class DenseLayer(NamedTuple):
    """One affine layer ``z = w_mult h W + b_mult b``; ``b=None``: no bias."""

    W: jax.Array  # (n_in, n_out)
    b: jax.Array | None
    w_mult: float = 1.0
    b_mult: float = 1.0


def _act_and_slope(activation: str, z):
    if activation == "relu":
        return jax.nn.relu(z), (z > 0).astype(z.dtype)
    if activation == "tanh":
        t = jnp.tanh(z)
        return t, 1.0 - t * t
    if activation == "identity":
        return z, jnp.ones_like(z)
    y, slope = jax.jvp(ACTIVATIONS[activation], (z,), (jnp.ones_like(z),))
    return y, slope


def dense_forward(layers: Sequence[DenseLayer], x, activation: str):
    """``f (P, C)``, the inputs of every layer ``h_{l-1}`` and the slopes ``sigma'(z_l)``."""
    h, inputs, slopes = x, [], []
    for i, layer in enumerate(layers):
        inputs.append(h)
        z = layer.w_mult * (h @ layer.W)
        if layer.b is not None:
            z = z + layer.b_mult * layer.b
        if i == len(layers) - 1:
            return z, inputs, slopes
        h, s = _act_and_slope(activation, z)
        slopes.append(s)
    raise ValueError("dense_forward: no layers")


def _deltas(layers, slopes, n_points: int, dtype):
    """``delta_l (P, C, n_l)`` for l = 1..L+1 (the readout's is the identity)."""
    c = layers[-1].W.shape[1]
    delta = jnp.broadcast_to(jnp.eye(c, dtype=dtype), (n_points, c, c))
    out = [delta]
    for layer, s in zip(layers[:0:-1], slopes[::-1]):
        delta = layer.w_mult * (delta @ layer.W.T) * s[:, None, :]
        out.append(delta)
    return out[::-1]


def dense_ntk(layers: Sequence[DenseLayer], x1, x2=None, *, activation: str,
              outputs: str = "trace", per_layer: bool = False) -> jax.Array:
    """Per-layer NTK of a dense network (module docstring) on ``x1 (P, d)`` x ``x2 (Q, d)``.

    Equal to the Jacobian NTK ``J J^T`` of all weights and biases (traced over outputs or
    ``"full"``); ``per_layer``: the L + 1 layer terms stacked, summing to the NTK.
    """
    v.choice("activation", activation, tuple(ACTIVATIONS))
    v.choice("outputs", outputs, OUTPUTS)
    v.require(len(layers) >= 1, "layers", len(layers), "at least one DenseLayer")
    x1 = jnp.asarray(x1)
    check_points("x1", x1)
    same = x2 is None
    if not same:
        x2 = jnp.asarray(x2)
        check_points("x2", x2)
    dt = layers[0].W.dtype
    _, in1, sl1 = dense_forward(layers, x1, activation)
    d1 = _deltas(layers, sl1, x1.shape[0], dt)
    in2, d2 = (in1, d1) if same else (None, None)
    if not same:
        _, in2, sl2 = dense_forward(layers, x2, activation)
        d2 = _deltas(layers, sl2, x2.shape[0], dt)
    terms = []
    for layer, h1, h2, e1, e2 in zip(layers, in1, in2, d1, d2):
        gram_h = layer.w_mult**2 * (h1 @ h2.T)
        if layer.b is not None:
            gram_h = gram_h + layer.b_mult**2
        if outputs == "trace":
            gram_d = jnp.einsum("pcn,qcn->pq", e1, e2)
            terms.append(gram_d * gram_h)
        else:
            gram_d = jnp.einsum("pcn,qdn->pqcd", e1, e2)
            terms.append(gram_d * gram_h[:, :, None, None])
    return jnp.stack(terms) if per_layer else sum(terms[1:], terms[0])


# ---------------------------------------------------------------------------
# streaming recorder
# ---------------------------------------------------------------------------
class RecorderState(NamedTuple):
    """Preallocated buffers of one run and the next row to fill."""

    index: jax.Array  # int32 scalar
    buffers: dict  # name -> (n_records, ...)


class NTKRecorder(NamedTuple):
    """``init() -> state``, ``update(state, params, metrics) -> state``, ``finalize(state)``."""

    init: Callable[[], RecorderState]
    update: Callable[[RecorderState, Any, Mapping], RecorderState]
    finalize: Callable[[RecorderState], dict]


def ntk_recorder(ntk_fn: Callable[[Any, jax.Array], jax.Array], probes: Mapping[str, Any],
                 n_records: int, metrics: Sequence[str] = (), *,
                 keep_eigenvalues: bool = True, dtype=jnp.float32,
                 host_eigensolver: bool | None = None) -> NTKRecorder:
    """A streaming NTK recorder for ``n_records`` calls of ``update``.

    ``ntk_fn(params, x) -> (P, P)`` (e.g. ``lambda p, x: empirical_ntk(apply, p, x)`` or a
    :func:`dense_ntk` closure); ``probes``: name -> points ``(P, d)``. Every update stores,
    per probe, ``{probe}_entropy`` (nats), ``{probe}_entropy_normalized`` (S / log P),
    ``{probe}_trace``, ``{probe}_trace_per_point`` and ``{probe}_eigenvalues`` (descending),
    and every named metric (scalars given to ``update``). Pure jnp: jit it, vmap it over
    seeds (``init`` once per seed). ``finalize`` returns the filled rows as numpy arrays.
    ``host_eigensolver`` (default: on a CPU) is passed to :func:`nnft.ntk.spectrum_stats`.
    """
    v.positive_int("n_records", n_records)
    host = (jax.default_backend() == "cpu") if host_eigensolver is None else host_eigensolver
    v.require(len(probes) >= 1, "probes", dict(probes), "at least one probe set")
    pts = {}
    for name, x in probes.items():
        x = jnp.asarray(x, dtype)
        check_points(f"probes[{name!r}]", x)
        pts[name] = x
    shapes = {}
    for name, x in pts.items():
        n = x.shape[0]
        shapes.update({f"{name}_entropy": (), f"{name}_entropy_normalized": (),
                       f"{name}_trace": (), f"{name}_trace_per_point": ()})
        if keep_eigenvalues:
            shapes[f"{name}_eigenvalues"] = (n,)
    for m in metrics:
        v.require(m not in shapes, "metrics", m, "must not repeat a recorded name")
        shapes[m] = ()

    def init() -> RecorderState:
        bufs = {k: jnp.full((n_records, *s), jnp.nan, dtype) for k, s in shapes.items()}
        return RecorderState(jnp.zeros((), jnp.int32), bufs)

    def update(state: RecorderState, params, values: Mapping | None = None) -> RecorderState:
        values, row = values or {}, {}
        for name, x in pts.items():
            st = spectrum_stats(ntk_fn(params, x), host_eigensolver=host)
            row.update({f"{name}_entropy": st.entropy,
                        f"{name}_entropy_normalized": st.entropy_normalized,
                        f"{name}_trace": st.trace, f"{name}_trace_per_point": st.trace_per_point})
            if keep_eigenvalues:
                row[f"{name}_eigenvalues"] = st.eigenvalues
        row.update({m: values[m] for m in metrics})
        bufs = {k: b.at[state.index].set(jnp.asarray(row[k], dtype))
                for k, b in state.buffers.items()}
        return RecorderState(state.index + 1, bufs)

    def finalize(state: RecorderState) -> dict:
        idx = np.asarray(state.index)  # () or the vmapped axes, e.g. (seeds,)
        rows = (slice(None),) * idx.ndim + (slice(0, int(idx.max(initial=0))),)
        return {k: np.asarray(b)[rows] for k, b in state.buffers.items()}

    return NTKRecorder(init, update, finalize)


__all__ = ["ACTIVATIONS", "DenseLayer", "NTKRecorder", "RecorderState", "dense_forward",
           "dense_ntk", "ntk_recorder"]
