"""Streaming estimators of n-point functions, with jackknife errors.

An estimator is an ``(init, update, finalize)`` bundle over running sums, so
memory does not grow with the number of samples (cf. neural-tangents'
``monte_carlo``). Samples arrive as field values of shape ``(..., B, P)``: P
points, B *batches* (every leading axis is summed). Keeping the sums per batch
is what gives the error bars: at the end, leave-one-batch-out (jackknife)
replicates of every moment are formed and pushed through the same nonlinear
map (moments -> connected correlators), so the standard errors of G4c and G6c
account for the subtraction of the disconnected pieces.

Sums of outer products are GEMMs. Moments are symmetric tensors, so only the
distinct index combinations are accumulated: with ``M2`` the products over
pairs ``a <= b`` and ``M3`` over triples ``a <= b <= c``,

    m3 ~ F^T M2,  m4 ~ M2^T M2,  m5 ~ M2^T M3,  m6 ~ M3^T M3,

which for P = 8 is 14,400 products per sample for the six-point function
instead of 262,144. All sums are float64 (fields may be float32).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nnft import _validate as v
from nnft.cumulants import cumulants_from_moments

MAX_ORDER = 6
#: Largest number of tensor entries (P**order) expanded with jackknife replicates.
MAX_ENTRIES = 8**6


class MomentState(NamedTuple):
    """Running sums per batch b (and per channel c, leading, when there are channels):
    ``count[b]`` the summed weights (the number of samples when unweighted),
    ``count2[b]`` the summed squared weights (for the effective sample size) and
    ``sums[k][b]`` the weighted compact moment sums."""

    count: jax.Array
    sums: tuple
    count2: jax.Array | None = None


class Estimate(NamedTuple):
    """A tensor estimate with its standard error (numpy, float64)."""

    value: np.ndarray
    stderr: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Index bookkeeping for the compact (distinct-combination) sums."""

    n_points: int

    @property
    def pairs(self):
        return np.array(list(itertools.combinations_with_replacement(range(self.n_points), 2)))

    @property
    def triples(self):
        return np.array(list(itertools.combinations_with_replacement(range(self.n_points), 3)))

    def index(self, k: int) -> np.ndarray:
        """Map a sorted k-tuple of points (k = 1, 2, 3) to its compact column, as a (P,)*k array."""
        p = self.n_points
        if k == 1:
            return np.arange(p)
        combos = self.pairs if k == 2 else self.triples
        lookup = {tuple(c): i for i, c in enumerate(combos)}
        out = np.empty((p,) * k, dtype=np.int64)
        for idx in itertools.product(range(p), repeat=k):
            out[idx] = lookup[tuple(sorted(idx))]
        return out

    @staticmethod
    def split(order: int) -> tuple[int, int]:
        """Orders of the two factors whose outer product gives ``order``."""
        return {1: (0, 1), 2: (1, 1), 3: (1, 2), 4: (2, 2), 5: (2, 3), 6: (3, 3)}[order]


def _products(fields: jax.Array, layout: _Layout, max_k: int) -> dict[int, jax.Array]:
    """Monomials of the fields ``(B, P, R)`` over distinct index combinations, orders
    1..max_k (<= 3), each ``(B, n_k, R)``: the rows R last, so that every sum over rows
    below is a contraction over the contiguous axis (2-3x faster GEMMs on a CPU than
    with the rows first)."""
    # static slices, not gathers: pairs (a <= b) in combinations order are the blocks
    # f_a * f_{a..P-1}; triples (a <= b <= c) are f_a times the pairs whose first index is >= a,
    # a tail of the pairs starting at sum_{a' < a} (P - a')
    p = layout.n_points
    out = {1: fields}
    if max_k >= 2:
        out[2] = jnp.concatenate([fields[:, a:a + 1] * fields[:, a:] for a in range(p)], axis=1)
    if max_k >= 3:
        start = np.cumsum([0] + [p - a for a in range(p)])
        out[3] = jnp.concatenate([fields[:, a:a + 1] * out[2][:, start[a]:]
                                  for a in range(p)], axis=1)
    return out


class MomentEstimator(NamedTuple):
    """The estimator bundle returned by :func:`moment_estimator`."""

    init: callable
    update: callable
    finalize: callable
    n_points: int
    max_order: int
    n_batches: int
    n_channels: int | None = None

    def for_engine(self, finalize=None):
        """The bundle as a :class:`nnft.engine.Estimator` over :class:`~nnft.engine.Draws`
        (``update`` jitted, in float64, the sums donated). ``finalize(state)`` replaces
        the default (``Correlators``), e.g. to read weighted channels."""
        from nnft.engine.drive import Estimator  # engine is a sibling layer, no cycle

        jitted = _jitted_update(self.n_points, self.max_order, self.n_batches, self.n_channels)

        def init():
            with jax.enable_x64(True):
                return self.init()

        def update(state, draws, i):
            with jax.enable_x64(True):
                return jitted(state, draws.fields, draws.mask, draws.weights)

        return Estimator(init, update, finalize or self.finalize)


def moment_estimator(n_points: int, max_order: int = 4, n_batches: int = 64, *,
                     n_channels: int | None = None) -> MomentEstimator:
    """Streaming moments of orders 1..``max_order`` on ``n_points`` points, in ``n_batches``.

    ``update(state, fields, mask=None, weights=None)`` is pure and jittable (it must run
    with x64 enabled: wrap the driver in ``jax.enable_x64(True)``). Each sample enters
    with weight ``mask * weights`` (importance reweighting; moments are then ratios
    ``sum w phi^k / sum w`` per jackknife batch). With ``n_channels = C`` the weights
    carry a leading channel axis ``(C, ..., B)`` and every channel keeps its own sums
    (e.g. one channel per coupling of a reweighting scan); :func:`channel_state` picks
    one. ``finalize`` returns a :class:`Correlators` with full and connected
    correlators and their errors.
    """
    max_order = v.max_order("max_order", max_order)
    v.points_for_order("points", n_points, max_order)
    if n_batches < 2:
        raise ValueError(f"n_batches: got {n_batches}; must be >= 2 for error bars")
    layout = _Layout(n_points)
    max_k = min(3, max_order)
    sizes = {0: 1, 1: n_points, 2: len(layout.pairs), 3: len(layout.triples)}

    lead = () if n_channels is None else (n_channels,)

    def init() -> MomentState:
        sums = tuple(
            jnp.zeros((*lead, n_batches, *[sizes[k] for k in layout.split(o) if k > 0]),
                      jnp.float64)
            for o in range(1, max_order + 1)
        )
        return MomentState(jnp.zeros((*lead, n_batches), jnp.float64), sums,
                           jnp.zeros((*lead, n_batches), jnp.float64))

    def update(state: MomentState, fields: jax.Array, mask: jax.Array | None = None,
               weights: jax.Array | None = None):
        """Add samples ``fields`` ``(..., B, P)``; ``mask`` (..., B) drops rows (False),
        ``weights`` (..., B), or ``(C, ..., B)`` with channels, weights them."""
        f = fields.astype(jnp.float64).reshape(-1, n_batches, n_points)
        valid = None if mask is None else mask.reshape(-1, n_batches)
        if valid is not None:  # zero the dropped rows (they may hold inf or nan)
            f = jnp.where(valid[..., None], f, 0.0)
        mono = _products(jnp.transpose(f, (1, 2, 0)), layout, max_k)
        if weights is None and n_channels is None:
            new = [s + _increment(mono, layout, o, None) for o, s in
                   zip(range(1, max_order + 1), state.sums)]
            wsum = (jnp.full((n_batches,), f.shape[0], jnp.float64) if valid is None
                    else jnp.sum(valid, axis=0, dtype=jnp.float64))
            return MomentState(state.count + wsum, tuple(new), state.count2 + wsum)
        w = jnp.ones((*lead, *f.shape[:2]), jnp.float64) if weights is None else \
            weights.astype(jnp.float64).reshape(*lead, -1, n_batches)
        if valid is not None:
            w = jnp.where(valid, w, 0.0)
        wt = jnp.swapaxes(w, -1, -2)  # (..., B, R)
        new = [s + _increment(mono, layout, o, wt) for o, s in
               zip(range(1, max_order + 1), state.sums)]
        return MomentState(state.count + jnp.sum(w, axis=-2), tuple(new),
                           state.count2 + jnp.sum(w * w, axis=-2))

    def finalize(state: MomentState, keep_replicates: bool = False) -> Correlators:
        return _finalize(state, layout, max_order, keep_replicates)

    return MomentEstimator(init, update, finalize, n_points, max_order, n_batches, n_channels)


@functools.lru_cache(maxsize=64)
def _jitted_update(n_points: int, max_order: int, n_batches: int, n_channels: int | None):
    """One compiled update per estimator shape, shared by every run (sums donated)."""
    est = moment_estimator(n_points, max_order, n_batches, n_channels=n_channels)
    return jax.jit(est.update, donate_argnums=0)


def _increment(mono: dict, layout: _Layout, order: int, w: jax.Array | None) -> jax.Array:
    """The sums of order ``order`` over rows of the monomials ``(B, n_k, R)``: unweighted
    ``(B, ...)``, or weighted by ``w`` ``(..., B, R)`` (leading channel axes kept)."""
    ka, kb = layout.split(order)
    if w is None:
        if ka == 0:
            return jnp.sum(mono[kb], axis=-1)
        if ka == kb:
            return jnp.einsum("bir,bjr->bij", mono[ka], mono[kb])
        # orders 3 and 5 (ka < kb): XLA's CPU GEMM is 2-3x slower when the output's row
        # count is the short side (8 x 36 at P = 8); form the (kb, ka) product and transpose
        # it after a barrier that keeps layout assignment from undoing the swap
        # (benchmarks/results/ensemble.json; the sums are the same float64 products)
        out = jnp.einsum("bjr,bir->bji", mono[kb], mono[ka])
        return jnp.swapaxes(jax.lax.optimization_barrier(out), -1, -2)
    if ka == 0:
        return jnp.einsum("...br,bir->...bi", w, mono[kb])
    return jnp.einsum("...br,bir,bjr->...bij", w, mono[ka], mono[kb])


def channel_state(state: MomentState, channel: int) -> MomentState:
    """The sums of one channel of a multi-channel state (see ``n_channels``)."""
    return MomentState(state.count[channel], tuple(s[channel] for s in state.sums),
                       state.count2[channel])


def effective_samples(state: MomentState) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of a (weighted) state."""
    w, w2 = float(np.sum(np.asarray(state.count))), float(np.sum(np.asarray(state.count2)))
    return w * w / w2 if w2 > 0 else 0.0


def _expand(compact: jax.Array, order: int, layout: _Layout) -> jax.Array:
    """Compact sums (..., n_a, n_b) -> full symmetric tensor (..., P, ..., P)."""
    ka, kb = layout.split(order)
    if ka == 0:
        return compact
    ia = layout.index(ka).reshape((layout.n_points,) * ka + (1,) * kb)
    ib = layout.index(kb).reshape((1,) * ka + (layout.n_points,) * kb)
    return compact[..., ia, ib]


@dataclasses.dataclass
class Correlators:
    """Finalized estimates. ``full[n]`` is G_n, ``connected[n]`` the cumulant G_n^c.

    ``connected[2]`` is the covariance ``G2 - G1 G1`` (equal to G2 for a
    zero-mean theory); ``replicates`` (jackknife, optional) allow covariances
    between entries for fits.
    """

    n_samples: int
    n_batches: int
    full: dict[int, Estimate]
    connected: dict[int, Estimate]
    replicates: dict | None = None

    def covariance(self, kind: str, order: int, entries) -> np.ndarray:
        """Jackknife covariance between chosen flat entries of ``kind`` ('full'/'connected')."""
        if self.replicates is None:
            raise ValueError("replicates: finalize with keep_replicates=True to get covariances")
        reps = self.replicates[kind][order].reshape(self.n_batches, -1)[:, list(entries)]
        dev = reps - reps.mean(axis=0)
        return (self.n_batches - 1) / self.n_batches * dev.T @ dev


_cumulants = jax.jit(cumulants_from_moments, static_argnums=1)


def _jackknife(full_value, reps):
    b = reps.shape[0]
    dev = reps - reps.mean(axis=0)
    return Estimate(np.asarray(full_value), np.sqrt((b - 1) / b * np.sum(dev * dev, axis=0)))


def _finalize(state: MomentState, layout: _Layout, max_order: int, keep: bool) -> Correlators:
    with jax.enable_x64(True):
        count = jnp.asarray(state.count, jnp.float64)
        n = jnp.sum(count)
        if float(n) <= 0:
            raise ValueError("n_samples: no samples were accumulated")
        moments_all, full, conn = {}, {}, {}
        for o, s in zip(range(1, max_order + 1), state.sums):
            s = jnp.asarray(s, jnp.float64)
            total = jnp.sum(s, axis=0)
            shape = (-1,) + (1,) * (s.ndim - 1)
            loo = (total[None] - s) / (n - count).reshape(shape)  # leave-one-batch-out
            both = jnp.concatenate([(total / n)[None], loo], axis=0)
            moments_all[o] = _expand(both, o, layout)
        kappa = _cumulants(moments_all, max_order)
        reps = {"full": {}, "connected": {}}
        for o in range(1, max_order + 1):
            m = np.asarray(moments_all[o])
            k = np.asarray(kappa[o])
            full[o] = _jackknife(m[0], m[1:])
            conn[o] = _jackknife(k[0], k[1:])
            if keep:
                reps["full"][o], reps["connected"][o] = m[1:], k[1:]
    return Correlators(round(float(n)), len(count), full, conn, reps if keep else None)
