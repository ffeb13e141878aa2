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
instead of 262,144. Orders 1-4 come together, as the blocks of one Gram matrix
``Z^T Z`` of ``Z = [1, M1, M2]`` (the row of ones carries the mask and gives the
first moments), and on a CPU the rows are summed tile by tile so that a tile's
monomials are still in cache when its GEMM reads them. All sums are float64
(fields may be float32).
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
        rows = f.shape[0]
        valid = None if mask is None else mask.reshape(-1, n_batches)
        if valid is not None:  # zero the dropped rows (they may hold inf or nan)
            f = jnp.where(valid[..., None], f, 0.0)
        ones = (jnp.ones((n_batches, rows), jnp.float64) if valid is None
                else jnp.transpose(valid).astype(jnp.float64))
        if weights is None and n_channels is None:
            wt = None
            wsum = (jnp.full((n_batches,), rows, jnp.float64) if valid is None
                    else jnp.sum(valid, axis=0, dtype=jnp.float64))
            wsum2 = wsum
        else:
            w = jnp.ones((*lead, rows, n_batches), jnp.float64) if weights is None else \
                weights.astype(jnp.float64).reshape(*lead, -1, n_batches)
            if valid is not None:
                w = jnp.where(valid, w, 0.0)
            wt = jnp.swapaxes(w, -1, -2)  # (..., B, R)
            wsum, wsum2 = jnp.sum(w, axis=-2), jnp.sum(w * w, axis=-2)
        inc = _tiled_sums(jnp.transpose(f, (1, 2, 0)), ones, wt, layout, max_order)
        return MomentState(state.count + wsum, tuple(s + d for s, d in zip(state.sums, inc)),
                           state.count2 + wsum2)

    def finalize(state: MomentState, keep_replicates: bool = False) -> Correlators:
        return _finalize(state, layout, max_order, keep_replicates)

    return MomentEstimator(init, update, finalize, n_points, max_order, n_batches, n_channels)


@functools.lru_cache(maxsize=64)
def _jitted_update(n_points: int, max_order: int, n_batches: int, n_channels: int | None):
    """One compiled update per estimator shape, shared by every run (sums donated)."""
    est = moment_estimator(n_points, max_order, n_batches, n_channels=n_channels)
    return jax.jit(est.update, donate_argnums=0)


#: Rows per tile on a CPU: a tile's monomials (45 float64 per row at order 4) stay in cache
#: between their products and the GEMM that sums them (at 65,536 rows the whole chunk's
#: did not, and the update cost about twice as much: the engine's step against bare
#: sampling at width 10 went from 0.69-0.80 to 0.87-0.88, benchmarks/results/ensemble*).
CPU_TILE_ROWS = 8192


def _batches_per_tile(n_batches: int, rows: int) -> int:
    """Batches summed together in one tile: all of them off the CPU (one batched GEMM keeps
    an accelerator busy), else the largest divisor of ``n_batches`` within ``CPU_TILE_ROWS``."""
    if jax.default_backend() != "cpu":
        return n_batches
    g = max(1, min(n_batches, CPU_TILE_ROWS // max(rows, 1)))
    while n_batches % g:
        g -= 1
    return g


def _tiled_sums(f: jax.Array, ones: jax.Array, w: jax.Array | None, layout: _Layout,
                max_order: int) -> list:
    """The compact sums of orders 1..max_order over the rows of ``f`` ``(B, P, R)``, per
    batch: ``(..., B, ...)``, tile by tile over the batches (see ``_batches_per_tile``).
    ``ones`` ``(B, R)`` is 1 on the valid rows, ``w`` ``(..., B, R)`` the weights or None."""
    n_batches, _, rows = f.shape
    g = _batches_per_tile(n_batches, rows)
    if g == n_batches:
        return _sums(f, ones, w, layout, max_order)
    n_tiles = n_batches // g
    lead = 0 if w is None else w.ndim - 2
    xs = (f.reshape(n_tiles, g, *f.shape[1:]), ones.reshape(n_tiles, g, rows),
          None if w is None else jnp.moveaxis(w.reshape(*w.shape[:-2], n_tiles, g, rows),
                                              -3, 0))
    out = jax.lax.map(lambda x: _sums(*x, layout, max_order), xs)
    # (tiles, ..., g, rest) -> (..., tiles * g, rest)
    return [jnp.moveaxis(o, 0, lead).reshape(*o.shape[1:lead + 1], n_batches,
                                             *o.shape[lead + 2:]) for o in out]


def _gram(a: jax.Array, b: jax.Array, w: jax.Array | None) -> jax.Array:
    """``sum_r w_r a_ir b_jr`` per batch, ``(..., B, n_a, n_b)``, for ``a`` ``(B, n_a, R)``
    and ``b`` ``(B, n_b, R)`` (``w`` None: unweighted). XLA's CPU GEMM is 2-3x slower when
    the output's row count is the short side (8 x 36 at P = 8), so the (n_b, n_a) product
    is formed when n_a < n_b and transposed after a barrier that keeps layout assignment
    from undoing the swap (the sums are the same float64 products)."""
    if a.shape[1] >= b.shape[1]:
        if w is None:
            return jnp.einsum("bir,bjr->bij", a, b)
        return jnp.einsum("...br,bir,bjr->...bij", w, a, b)
    out = (jnp.einsum("bjr,bir->bji", b, a) if w is None
           else jnp.einsum("...br,bjr,bir->...bji", w, b, a))
    return jnp.swapaxes(jax.lax.optimization_barrier(out), -1, -2)


def _sums(f: jax.Array, ones: jax.Array, w: jax.Array | None, layout: _Layout,
          max_order: int) -> list:
    """One tile's sums of orders 1..max_order, as ``_tiled_sums``. Orders up to 4 are the
    blocks of one Gram matrix of ``Z = [1, M1, M2]`` (monomials up to order 2 with a row
    of ones), which is cheaper than one GEMM per order; orders 5 and 6 are ``M2 x M3`` and
    ``M3 x M3``."""
    mono = _products(f, layout, min(3, max_order))
    mono[0] = ones[:, None, :]
    low = min(4, max_order)
    k_rows, k_cols = low // 2, (low + 1) // 2
    z_rows = jnp.concatenate([mono[k] for k in range(k_rows + 1)], axis=1)
    z_cols = jnp.concatenate([mono[k] for k in range(k_cols + 1)], axis=1)
    gram = _gram(z_rows, z_cols, w)
    offset = np.cumsum([0] + [mono[k].shape[1] for k in range(k_cols + 1)])
    out = []
    for order in range(1, max_order + 1):
        ka, kb = layout.split(order)
        if order > 4:
            out.append(_gram(mono[ka], mono[kb], w))
            continue
        block = gram[..., offset[ka]:offset[ka + 1], offset[kb]:offset[kb + 1]]
        out.append(block[..., 0, :] if ka == 0 else block)
    return out


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
