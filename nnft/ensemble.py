"""The free ensemble: draw S networks, evaluate them on P points, accumulate moments.

The free source (:func:`free_source`) is a pure init/step bundle for the one driver
(:func:`nnft.engine.drive`): step ``i`` draws networks ``i * chunk .. (i + 1) * chunk - 1``,
evaluates them with ``jit(vmap(...))`` and returns their fields; the driver folds them
into the streaming moment estimator (:mod:`nnft.estimators`). Memory is independent of S.
Each chunk is split over every device of a ``Mesh`` (data parallel over networks; XLA
all-reduces the sums), which also covers multi-host runs under ``jax.distributed``.

Reproducibility: network ``i`` is drawn from ``fold_in(key, i)`` (two folds, so indices
beyond 2^32 stay distinct), and it lands in jackknife batch ``i mod B``. Neither depends on
the chunk size, the number of devices or on a restart, so those change the result only by
floating-point round-off in the order of summation.

Memory: ``chunk_size`` is an upper bound. The step is compiled at that chunk and lowered
in proportion when XLA's working set exceeds ``memory_limit`` (default: a quarter of the
free device or host memory, see :mod:`nnft.engine.memory`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as Spec

from nnft import _validate as v
from nnft.engine.drive import Draws, RunInfo, Source, as_key, drive, key_fingerprint
from nnft.engine.memory import default_budget, fit_chunk, parse_size
from nnft.engine.mesh import data_mesh
from nnft.engine.progress import width_label
from nnft.estimators import Correlators, moment_estimator
from nnft.priors.base import Prior, as_points, fields

CHECKPOINT = "checkpoint.npz"
log = logging.getLogger("nnft")


def network_keys(key: jax.Array, indices: jax.Array) -> jax.Array:
    """The key of each network index: ``fold_in(fold_in(key, i >> 31), i & (2^31 - 1))``."""
    indices = indices.astype(jnp.int64) if jax.config.jax_enable_x64 else indices
    hi = (indices >> 31).astype(jnp.uint32)
    lo = (indices & (2**31 - 1)).astype(jnp.uint32)
    return jax.vmap(lambda h, l: jax.random.fold_in(jax.random.fold_in(key, h), l))(hi, lo)


class EnsembleResult(NamedTuple):
    """What a run returns: the prior, points, estimates and bookkeeping."""

    prior: Prior
    points: np.ndarray
    correlators: Correlators
    seed: int
    seconds: float
    info: RunInfo | None = None
    chunk_size: int | None = None

    def theory(self, names=None) -> dict:
        """The prior's exact values of ``names`` (default: every quantity computed)."""
        from nnft import results

        return results.theory_for(self.prior, self.points,
                                  names or results.measured(self.correlators))

    def verdicts(self, names=None) -> dict:
        """:class:`~nnft.verdicts.Verdict` per correlator (default G2 and the connected
        ones): Hotelling's T^2 against the exact theory, or against zero where none is
        known (needs the jackknife replicates: ``run(..., keep_replicates=True)``)."""
        from nnft import verdicts

        if self.correlators.replicates is None:
            return {}
        return verdicts.verdicts(self.correlators, self.theory(names), names)

    def to_xarray(self, names=None):
        """The Dataset the CLI writes as ``results.nc``: values, errors, theory, z-scores,
        verdicts, points and the run's attributes (versions, seed, estimator)."""
        from nnft import results

        attrs = {"architecture": self.prior.hyperparameters(), "seed": self.seed,
                 "seconds": self.seconds}
        return results.to_dataset(self.correlators, self.points, self.theory(), attrs,
                                  names=names, verdicts=self.verdicts())

    def __repr__(self) -> str:
        c = self.correlators
        orders = ", ".join(f"{k}: {v.value.shape}" for k, v in c.connected.items())
        ver = "; ".join(f"{n} {v.outcome} with {v.reference} (p = {v.p_value:.2g})"
                        for n, v in self.verdicts().items())
        return (f"EnsembleResult({self.prior.name}, n_samples={c.n_samples:,}, "
                f"points={self.points.shape}, correlators {{{orders}}}, jackknife over "
                f"{c.n_batches} batches, seed={self.seed}, {self.seconds:.1f} s"
                + (f"; {ver})" if ver else ")"))


def _round_chunk(chunk_size: int, n_batches: int, n_devices: int) -> int:
    unit = n_batches * n_devices
    return max(unit, math.ceil(chunk_size / unit) * unit)


def _sampler(prior: Prior, n_points: int, chunk: int, mesh: Mesh, emit=None):
    """``(key, start, n_total, points) -> (phi, mask)`` for networks ``start ..
    start + chunk - 1`` (those ``>= n_total`` masked out), before jit. ``emit(prior,
    params, points)``, when given, replaces the fields by what it returns per network."""
    sharding = NamedSharding(mesh, Spec("net"))
    evaluate = fields if emit is None else emit

    def sample(key, start, n_total, points):
        idx = start + jnp.arange(chunk, dtype=jnp.int64)
        idx = jax.lax.with_sharding_constraint(idx, sharding)
        keys = network_keys(key, idx)
        phi = jax.vmap(lambda k: evaluate(prior, prior.sample(k), points))(keys)
        phi = jax.lax.with_sharding_constraint(phi, sharding)
        return phi, idx < n_total

    return sample


@functools.lru_cache(maxsize=32)
def _compiled_sampler(prior: Prior, points_shape, points_dtype, chunk: int, mesh: Mesh,
                      key_shape, key_dtype, emit=None):
    """The sampler jitted and compiled for one chunk (cached across runs of the same work)."""
    with jax.enable_x64(True):
        fn = jax.jit(_sampler(prior, points_shape[0], chunk, mesh, emit))
        args = (jax.ShapeDtypeStruct(key_shape, key_dtype), jax.ShapeDtypeStruct((), jnp.int64),
                jax.ShapeDtypeStruct((), jnp.int64),
                jax.ShapeDtypeStruct(points_shape, points_dtype))
        return fn.lower(*args).compile()


def free_source(prior: Prior, points, n_samples: int, key, *, chunk_size: int = 65536,
                n_batches: int = 64, devices=None, memory_limit: int | None = None,
                emit=None) -> Source:
    """The free ensemble as a :class:`~nnft.engine.Source`: ``n_samples`` networks of
    ``prior`` on ``points``, ``chunk`` at a time; draws are ``(rows, n_batches, P)`` so
    that network ``i`` falls in batch ``i mod n_batches``. The source is stateless (the
    step index says which networks come next); ``source.work['chunk']`` is the chunk
    actually used (lowered to fit ``memory_limit`` bytes). ``emit(prior, params, points)``
    (a module-level function): draws are what it returns per network, ``(rows, n_batches,
    ...)``, instead of the fields (the readout estimators of :mod:`nnft.readout`)."""
    pts = as_points(points, prior.input_dim)
    mesh = _mesh(devices)
    unit = n_batches * mesh.size
    budget = (parse_size("memory_limit", memory_limit) if memory_limit is not None
              else default_budget(mesh.devices.flat))
    points_dev = jnp.asarray(pts, jnp.dtype(getattr(prior, "dtype", "float32")))
    key = as_key(key)

    def compile_at(c):
        return _compiled_sampler(prior, points_dev.shape, points_dev.dtype, c, mesh,
                                 key.shape, key.dtype, emit)

    chunk, compiled, lowered_from = fit_chunk(
        compile_at, _round_chunk(chunk_size, n_batches, mesh.size), unit, budget)
    if lowered_from is not None and jax.process_index() == 0:
        # a budget the user set is worth a warning; the default one is only the CPU's cache
        say = log.warning if memory_limit is not None else log.info
        say("chunk_size lowered from %d to %d networks to fit the memory budget of %.3g GiB "
            "(set memory_limit to change it)", lowered_from, chunk, budget / 2**30)
    rows = chunk // n_batches

    def step(key, state, i):
        with jax.enable_x64(True):
            phi, mask = compiled(key, jnp.int64(i * chunk), jnp.int64(n_samples), points_dev)
        out = (phi.reshape(rows, n_batches, -1) if emit is None
               else phi.reshape(rows, n_batches, *phi.shape[1:]))
        return state, Draws(out, mask.reshape(rows, n_batches))

    work = {"source": "free", "prior": prior.hyperparameters(), "points": pts.tolist(),
            "n_samples": n_samples, "key": key_fingerprint(key), "n_batches": n_batches,
            "chunk": chunk}
    if emit is not None:
        work["emit"] = emit.__name__
    return Source(init=lambda key: (), step=step, n_steps=math.ceil(n_samples / chunk),
                  work=work, label=width_label(prior), unit="networks", total=n_samples,
                  units=lambda i: min(i * chunk, n_samples))


def run(
    prior: Prior,
    points,
    n_samples: int,
    seed=0,
    *,
    max_order: int = 4,
    chunk_size: int = 65536,
    n_batches: int = 64,
    devices=None,
    memory_limit: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    progress: bool = True,
    stop_after_chunks: int | None = None,
    keep_replicates: bool = True,
) -> EnsembleResult:
    """Estimate the n-point functions (n <= ``max_order``) of ``prior`` on ``points``.

    ``n_samples`` networks are drawn from ``seed`` (an integer: ``PRNGKey(seed)``, or a
    ``jax.random.key``); ``chunk_size`` networks at a time at most (rounded up to a
    multiple of ``n_batches`` x devices, lowered to fit ``memory_limit``: bytes, or a
    size such as ``"2GiB"``).
    ``checkpoint_dir``: running sums are written there every ``checkpoint_every`` chunks
    and ``resume=True`` continues from them. ``stop_after_chunks`` ends the run early
    after writing a checkpoint (to test kill-and-resume). ``keep_replicates``: keep the
    jackknife replicates (for covariances and :meth:`EnsembleResult.verdicts`). Returns an
    :class:`EnsembleResult`.
    """
    n_batches = v.positive_int("n_batches", n_batches, minimum=2)
    n_samples = v.positive_int("n_samples", n_samples, minimum=n_batches)
    chunk_size = v.positive_int("chunk_size", chunk_size)
    checkpoint_every = v.positive_int("checkpoint_every", checkpoint_every)
    max_order = v.max_order("max_order", max_order)
    key = as_key(seed)
    pts = as_points(points, prior.input_dim)
    estimator = moment_estimator(len(pts), max_order, n_batches)
    source = free_source(prior, pts, n_samples, key, chunk_size=chunk_size,
                         n_batches=n_batches, devices=devices, memory_limit=memory_limit)
    source = source._replace(work={**source.work, "max_order": max_order})
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    finalize = functools.partial(estimator.finalize, keep_replicates=keep_replicates)
    out = drive(source, estimator.for_engine(finalize), key, checkpoint=ckpt,
                checkpoint_every=checkpoint_every, resume=resume, progress=progress,
                stop_after=stop_after_chunks)
    seed_out = seed if isinstance(seed, (int, np.integer)) else key_fingerprint(key)
    return EnsembleResult(prior, pts, out.result, seed_out, out.info.seconds, out.info,
                          source.work["chunk"])


def _mesh(devices) -> Mesh:
    return data_mesh("net", devices)
