"""Readout-conditioned correlators: G2, G4c, G6c from the moments of the kernel K.

For a prior whose last layer is ``phi(x) = sum_i w_i h_i(x) (+ b)`` with Gaussian
readout weights ``w_i ~ N(0, s^2)`` and bias ``b ~ N(0, s_b^2)`` independent of the
features, the field given the lower layers is a centred Gaussian process with covariance
``K(x, y) = s^2 sum_i h_i(x) h_i(y) + s_b^2``. Its generating function is
``log E exp(J^T K J / 2)``, so, exactly,

    G2_ab   = E[K_ab]
    G4c     = Cov(K_ab, K_cd) + Cov(K_ac, K_bd) + Cov(K_ad, K_bc)
    G6c     = sum over the 15 pairings of kappa_3(K_p1, K_p2, K_p3)

and the odd correlators vanish; the full G4 and G6 are the same pairing sums of the raw
moments ``E[K K]`` and ``E[K K K]``. Averaging the Gaussian readout out analytically
removes most of the variance of brute-force moments (the **readout** estimator).

Where the neurons are also i.i.d. (one hidden layer), ``K = (1/N) sum_i k_i`` with
``k_i = N s^2 h_i h_i^T + s_b^2``, so ``Cov(K) = Cov(k) / N`` and ``kappa_3(K) =
kappa_3(k) / N^2``: the **neuron** estimator pools the neurons and gives the correlators
at every width from one run.

Both stream through the one driver (:func:`nnft.engine.drive`) with the free source
emitting K's distinct entries (or the per-neuron products ``h_i(x_a) h_i(x_b)``); the
moments of that vector are :mod:`nnft.estimators`' running float64 sums, and the jackknife
replicates of its cumulants go through the same pairing maps, so the errors account for
every nonlinearity. Free prior ensembles only: for interacting chains, reweighted draws
and trained networks the readout is no longer Gaussian given the rest.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nnft import _validate as v
from nnft.engine.drive import Estimator, RunInfo, as_key, drive, key_fingerprint
from nnft.ensemble import CHECKPOINT, free_source
from nnft.estimators import Correlators, Estimate, _Layout, moment_estimator
from nnft.priors.base import Prior, as_points

ESTIMATORS = ("auto", "direct", "readout", "neuron")


# -- what is valid where ------------------------------------------------------------------
def valid_estimators(prior: Prior) -> tuple[str, ...]:
    """The estimators valid for the free ensemble of ``prior``, strongest first."""
    out = []
    if prior.gaussian_readout and prior.iid_neurons:
        out.append("neuron")
    if prior.gaussian_readout:
        out.append("readout")
    return (*out, "direct")


def choose(prior: Prior, estimator: str = "auto", field: str = "estimator") -> str:
    """``estimator`` resolved for ``prior``: ``auto`` is the strongest valid one; an
    invalid choice is a :class:`~nnft._validate.ConfigError` naming ``field``."""
    v.choice(field, estimator, ESTIMATORS)
    valid = valid_estimators(prior)
    if estimator == "auto":
        return valid[0]
    if estimator not in valid:
        why = ("its readout is not Gaussian given the features" if estimator == "readout"
               else "its neurons are not i.i.d. with a width-free law (one hidden layer)")
        raise v.ConfigError(f"{field}: got {estimator!r}, but {prior.name} does not allow it "
                            f"({why}); allowed: {', '.join(('auto', *valid))}")
    return estimator


# -- what the source emits per network ----------------------------------------------------
def _features(prior: Prior, params, points) -> jax.Array:
    """``h_i(x_a)`` ``(P, N)``."""
    return jax.vmap(prior.readout_features, in_axes=(None, 0))(params, points)


def kernel_entries(prior: Prior, params, points) -> jax.Array:
    """``K(x_a, x_b) = s^2 sum_i h_i(x_a) h_i(x_b) + s_b^2`` on the pairs ``a <= b``, ``(E,)``."""
    h = _features(prior, params, points)
    i, j = _Layout(points.shape[0]).pairs.T
    s2, sb2 = prior.readout_variances()
    return s2 * jnp.sum(h[i] * h[j], axis=-1) + sb2


def neuron_entries(prior: Prior, params, points) -> jax.Array:
    """``h_i(x_a) h_i(x_b)`` on the pairs ``a <= b``, one row per neuron, ``(N, E)``."""
    h = _features(prior, params, points)
    i, j = _Layout(points.shape[0]).pairs.T
    return (h[i] * h[j]).T


# -- the pairing maps ---------------------------------------------------------------------
def pairings(n: int) -> list[tuple[tuple[int, int], ...]]:
    """The ``(n - 1)!!`` perfect matchings of ``range(n)`` (1, 3, 15 for n = 2, 4, 6)."""
    if n == 0:
        return [()]
    out = []
    for j in range(1, n):
        rest = [k for k in range(1, n) if k != j]
        for sub in pairings(n - 2):
            out.append(((0, j), *((rest[a], rest[b]) for a, b in sub)))
    return out


@functools.lru_cache(maxsize=16)
def _pairing_indices(n_points: int, n: int) -> list[tuple[np.ndarray, ...]]:
    """Per pairing, the compact pair index of each pair on the ``(P,)*n`` grid."""
    idx2 = _Layout(n_points).index(2)
    grid = np.indices((n_points,) * n)
    return [tuple(idx2[grid[a], grid[b]] for a, b in p) for p in pairings(n)]


def pair_sum(tensor: np.ndarray, n_points: int, n: int) -> np.ndarray:
    """``sum over pairings of T[e(p1), ..., e(p_{n/2})]``: ``tensor`` ``(R, E, ..., E)``
    (n/2 entry axes) to ``(R, P, ..., P)`` (n point axes)."""
    out = 0.0
    for ix in _pairing_indices(n_points, n):
        out = out + tensor[(slice(None), *ix)]
    return out


def _raw_moments(mu, cov, k3):
    """``E[K]``, ``E[K K]``, ``E[K K K]`` from the cumulants (leading replicate axis)."""
    m2 = cov + mu[:, :, None] * mu[:, None, :]
    if k3 is None:
        return mu, m2, None
    mc = mu[:, :, None, None] * cov[:, None, :, :]
    m3 = (k3 + mc + np.moveaxis(mc, 1, 2) + np.moveaxis(mc, 1, 3)
          + mu[:, :, None, None] * mu[:, None, :, None] * mu[:, None, None, :])
    return mu, m2, m3


def correlators_from_kernel(mu, cov, k3, n_points: int, max_order: int, n_samples: int,
                            ) -> Correlators:
    """Correlators from the cumulants of K's distinct entries, each with the full-sample
    value first and the jackknife replicates after it on the leading axis."""
    m1, m2, m3 = _raw_moments(mu, cov, k3)
    kappa = {1: mu, 2: cov, 3: k3}
    raw = {1: m1, 2: m2, 3: m3}
    p = n_points
    full, conn, reps = {}, {}, {"full": {}, "connected": {}}
    for order in range(1, max_order + 1):
        if order % 2:
            zero = np.zeros((p,) * order)
            full[order] = conn[order] = Estimate(zero, zero.copy())
            continue
        both_full = pair_sum(raw[order // 2], p, order)
        both_conn = pair_sum(kappa[order // 2], p, order)
        full[order], conn[order] = _jackknife(both_full), _jackknife(both_conn)
        reps["full"][order], reps["connected"][order] = both_full[1:], both_conn[1:]
    return Correlators(n_samples, mu.shape[0] - 1, full, conn, reps)


def _jackknife(both: np.ndarray) -> Estimate:
    reps = both[1:]
    b = reps.shape[0]
    dev = reps - reps.mean(axis=0)
    return Estimate(np.asarray(both[0]), np.sqrt((b - 1) / b * np.sum(dev * dev, axis=0)))


# -- the streaming estimator --------------------------------------------------------------
def _stacked(est: Estimate, reps) -> np.ndarray:
    return np.concatenate([np.asarray(est.value)[None], np.asarray(reps)], axis=0)


def kernel_cumulants(state, n_entries: int, k_order: int, n_batches: int):
    """``(mu, cov, k3)`` of the accumulated vector (value, then jackknife replicates)."""
    est = moment_estimator(n_entries, k_order, n_batches)
    corr = est.finalize(state, keep_replicates=True)
    reps = corr.replicates
    mu = _stacked(corr.full[1], reps["full"][1])
    cov = _stacked(corr.connected[2], reps["connected"][2]) if k_order >= 2 else None
    k3 = _stacked(corr.connected[3], reps["connected"][3]) if k_order >= 3 else None
    if cov is None:
        cov = np.zeros(mu.shape + mu.shape[1:])
    return mu, cov, k3, corr.n_samples


@functools.lru_cache(maxsize=32)
def _update(n_entries: int, k_order: int, n_batches: int, neurons: bool):
    est = moment_estimator(n_entries, k_order, n_batches)

    def update(state, values, mask):
        if neurons:  # (rows, B, N, E) -> (rows, N, B, E); every neuron of a net in its batch
            values = jnp.moveaxis(values, 2, 1)
            mask = jnp.broadcast_to(mask[:, None, :], values.shape[:-1])
        return est.update(state, values, mask)

    return jax.jit(update, donate_argnums=0)


def kernel_estimator(n_points: int, max_order: int, n_batches: int, finalize, *,
                     neurons: bool = False) -> Estimator:
    """The engine estimator over K's distinct entries (or per-neuron products): running
    float64 moments up to order ``max_order // 2`` (at least 1), finalized by
    ``finalize(mu, cov, k3, n_rows)``."""
    n_entries = len(_Layout(n_points).pairs)
    k_order = max(1, max_order // 2)
    est = moment_estimator(n_entries, k_order, n_batches)
    jitted = _update(n_entries, k_order, n_batches, neurons)

    def init():
        with jax.enable_x64(True):
            return est.init()

    def update(state, draws, i):
        with jax.enable_x64(True):
            return jitted(state, draws.fields, draws.mask)

    def fin(state):
        return finalize(*kernel_cumulants(state, n_entries, k_order, n_batches))

    return Estimator(init, update, fin)


def neuron_correlators(prior: Prior, width: int, mu, cov, k3, n_points, max_order,
                       n_networks) -> Correlators:
    """The correlators of ``prior`` at ``width`` from the cumulants of one neuron's
    products ``q = h h^T``: ``k = N s^2 q + s_b^2``, ``Cov(K) = Cov(k)/N``,
    ``kappa_3(K) = kappa_3(k)/N^2``."""
    s2, sb2 = prior.replace(width=width).readout_variances()
    c = width * s2
    mu_k = c * mu + sb2
    cov_k = c * c * cov / width
    k3_k = None if k3 is None else c**3 * k3 / width**2
    return correlators_from_kernel(mu_k, cov_k, k3_k, n_points, max_order, n_networks)


class ReadoutResult(NamedTuple):
    """As :class:`nnft.ensemble.EnsembleResult`, plus the estimator used and, for the
    neuron estimator, the correlators at every width asked for."""

    prior: Prior
    points: np.ndarray
    correlators: Correlators
    seed: int
    seconds: float
    info: RunInfo | None = None
    chunk_size: int | None = None
    estimator: str = "readout"
    by_width: dict | None = None


def run(prior: Prior, points, n_samples: int, seed=0, *, estimator: str = "readout",
        max_order: int = 4, widths=None, chunk_size: int = 65536, n_batches: int = 64,
        devices=None, memory_limit: int | None = None, checkpoint_dir=None,
        checkpoint_every: int = 10, resume: bool = False, progress: bool = True,
        stop_after_chunks: int | None = None) -> ReadoutResult:
    """The correlators of ``prior``'s free ensemble by the ``readout`` or ``neuron``
    estimator (as :func:`nnft.ensemble.run`, whose arguments these are). ``widths``: for
    the neuron estimator, the widths at which to give the correlators too
    (``by_width``). The neuron estimator's chunk counts neurons: ``chunk_size // width``
    networks at a time (at least ``n_batches``)."""
    est_name = choose(prior, estimator)
    v.require(est_name in ("readout", "neuron"), "estimator", estimator,
              "readout or neuron here (direct is nnft.ensemble.run)")
    v.positive_int("n_samples", n_samples, minimum=n_batches)
    v.positive_int("max_order", max_order)
    v.require(max_order <= 6, "max_order", max_order, "at most 6")
    key = as_key(seed)
    pts = as_points(points, prior.input_dim)
    p = len(pts)
    neurons = est_name == "neuron"
    if neurons:
        widths = tuple(widths or (prior.width,))
        for i, w in enumerate(widths):
            v.positive_int(f"widths[{i}]", w)
        chunk_size = max(n_batches, chunk_size // prior.width)

        def finalize(mu, cov, k3, n_rows):
            n_net = round(n_rows / prior.width)
            return {w: neuron_correlators(prior, w, mu, cov, k3, p, max_order, n_net)
                    for w in sorted(set(widths) | {prior.width})}
    else:
        def finalize(mu, cov, k3, n_rows):
            return correlators_from_kernel(mu, cov, k3, p, max_order, n_rows)

    source = free_source(prior, pts, n_samples, key, chunk_size=chunk_size,
                         n_batches=n_batches, devices=devices, memory_limit=memory_limit,
                         emit=neuron_entries if neurons else kernel_entries)
    source = source._replace(work={**source.work, "max_order": max_order})
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    out = drive(source, kernel_estimator(p, max_order, n_batches, finalize, neurons=neurons),
                key, checkpoint=ckpt, checkpoint_every=checkpoint_every, resume=resume,
                progress=progress, stop_after=stop_after_chunks)
    by_width = out.result if neurons else None
    corr = by_width[prior.width] if neurons else out.result
    seed_out = seed if isinstance(seed, (int, np.integer)) else key_fingerprint(key)
    return ReadoutResult(prior, pts, corr, seed_out, out.info.seconds, out.info,
                         source.work["chunk"], est_name, by_width)


def n_entries(n_points: int) -> int:
    """The number of distinct entries of K on ``n_points`` points."""
    return math.comb(n_points + 1, 2)


__all__ = ["ESTIMATORS", "ReadoutResult", "choose", "correlators_from_kernel",
           "kernel_entries", "kernel_estimator", "neuron_entries", "pair_sum", "pairings",
           "run", "valid_estimators"]
