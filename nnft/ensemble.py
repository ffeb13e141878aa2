"""The ensemble engine: draw S networks, evaluate them on P points, accumulate moments.

Memory is independent of S: networks are drawn in chunks, evaluated with
``jit(vmap(...))`` and folded into the running sums of a streaming estimator
(:mod:`nnft.estimators`). Each chunk is split over every device of a ``Mesh``
(data parallel over networks; XLA all-reduces the sums), which also covers
multi-host runs under ``jax.distributed`` (see README).

Reproducibility: network ``i`` is drawn from ``fold_in(key, i)`` (two folds, so
indices beyond 2^32 stay distinct), and it lands in jackknife batch
``i mod B``. Neither depends on the chunk size, the number of devices or on a
restart, so those change the result only by floating-point round-off in the
order of summation.

Checkpoints: every ``checkpoint_every`` chunks the running sums are written
atomically (temporary file, then rename) to ``checkpoint.npz``; ``resume=True``
continues from there and refuses a checkpoint made for different work.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as Spec

from nnft import _validate as v
from nnft._progress import progress_bar, width_label
from nnft.estimators import Correlators, MomentState, moment_estimator
from nnft.priors.base import Prior, as_points, fields

CHECKPOINT = "checkpoint.npz"


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


def _mesh(devices) -> Mesh:
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices), ("net",))


@functools.lru_cache(maxsize=32)
def make_chunk_step(prior: Prior, n_points: int, max_order: int, n_batches: int,
                    chunk_size: int, mesh: Mesh):
    """A jitted ``(state, key, start, n_total, points) -> state`` adding networks
    ``start .. start + chunk_size - 1`` (those ``>= n_total`` are masked out).

    Cached, so repeated runs of the same work reuse one compiled step.
    """
    estimator = moment_estimator(n_points, max_order, n_batches)
    rows = chunk_size // n_batches
    sharding = NamedSharding(mesh, Spec("net"))

    def step(state: MomentState, key, start, n_total, points):
        idx = start + jnp.arange(chunk_size, dtype=jnp.int64)
        idx = jax.lax.with_sharding_constraint(idx, sharding)
        keys = network_keys(key, idx)
        phi = jax.vmap(lambda k: fields(prior, prior.sample(k), points))(keys)
        phi = jax.lax.with_sharding_constraint(phi, sharding)
        mask = (idx < n_total).reshape(rows, n_batches)
        return estimator.update(state, phi.reshape(rows, n_batches, -1), mask)

    return jax.jit(step, donate_argnums=0)


def _to_host(tree):
    """Replicated (possibly multi-host) arrays -> numpy, from this process's first shard."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


def _round_chunk(chunk_size: int, n_batches: int, n_devices: int) -> int:
    unit = n_batches * n_devices
    return max(unit, math.ceil(chunk_size / unit) * unit)


def _fingerprint(prior, points, n_samples, seed, max_order, n_batches) -> str:
    return json.dumps(
        {"prior": prior.hyperparameters(), "points": np.asarray(points).tolist(),
         "n_samples": n_samples, "seed": seed, "max_order": max_order, "n_batches": n_batches},
        sort_keys=True, default=str,
    )


def save_checkpoint(path: Path, state: MomentState, done: int, fingerprint: str) -> None:
    """Write the running sums atomically: a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"sum{k}": np.asarray(s) for k, s in enumerate(state.sums, start=1)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, count=np.asarray(state.count), done=done, fingerprint=fingerprint,
                     **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_checkpoint(path: Path, fingerprint: str) -> tuple[MomentState, int]:
    with np.load(path) as z:
        if str(z["fingerprint"]) != fingerprint:
            raise v.ConfigError(
                f"resume: the checkpoint {path} was made for different work (architecture, "
                "points, n_samples, seed or orders differ); remove it or use another --out"
            )
        n_orders = sum(1 for k in z.files if k.startswith("sum"))
        sums = tuple(jnp.asarray(z[f"sum{k}"]) for k in range(1, n_orders + 1))
        return MomentState(jnp.asarray(z["count"]), sums), int(z["done"])


def run(
    prior: Prior,
    points,
    n_samples: int,
    seed: int = 0,
    *,
    max_order: int = 4,
    chunk_size: int = 65536,
    n_batches: int = 64,
    devices=None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    progress: bool = True,
    stop_after_chunks: int | None = None,
) -> EnsembleResult:
    """Estimate the n-point functions (n <= ``max_order``) of ``prior`` on ``points``.

    ``n_samples`` networks are drawn with ``PRNGKey(seed)``; ``chunk_size``
    networks at a time (rounded up to a multiple of ``n_batches`` x devices).
    ``stop_after_chunks`` ends the run early after writing a checkpoint (used to
    test kill-and-resume). Returns an :class:`EnsembleResult`.
    """
    v.positive_int("n_samples", n_samples, minimum=n_batches)
    v.positive_int("chunk_size", chunk_size)
    v.positive_int("checkpoint_every", checkpoint_every)
    v.require(isinstance(seed, int) and not isinstance(seed, bool), "seed", seed,
              "must be an integer")
    pts = as_points(points, prior.input_dim)
    mesh = _mesh(devices)
    chunk = _round_chunk(chunk_size, n_batches, mesh.size)
    estimator = moment_estimator(len(pts), max_order, n_batches)
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    fingerprint = _fingerprint(prior, pts, n_samples, seed, max_order, n_batches)

    t0 = time.perf_counter()
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(seed)
        state, done = estimator.init(), 0
        if resume and ckpt is not None and ckpt.exists():
            state, done = load_checkpoint(ckpt, fingerprint)
        replicated = NamedSharding(mesh, Spec())
        state = jax.device_put(state, replicated)
        step = make_chunk_step(prior, len(pts), max_order, n_batches, chunk, mesh)
        points_dev = jnp.asarray(pts, jnp.dtype(getattr(prior, "dtype", "float32")))
        bar = progress_bar(progress and jax.process_index() == 0, n_samples,
                           width_label(prior), "networks", done)
        chunks_run = 0
        with bar as (advance):
            while done < n_samples:
                state = step(state, key, jnp.int64(done), jnp.int64(n_samples), points_dev)
                done = min(done + chunk, n_samples)
                chunks_run += 1
                advance(done)
                last = done >= n_samples
                stop = stop_after_chunks is not None and chunks_run >= stop_after_chunks
                due = last or stop or chunks_run % checkpoint_every == 0
                if ckpt is not None and due and jax.process_index() == 0:
                    save_checkpoint(ckpt, _to_host(state), done, fingerprint)
                if stop and not last:
                    raise RunInterrupted(done, n_samples)
        state = _to_host(state)
    correlators = estimator.finalize(state)
    return EnsembleResult(prior, pts, correlators, seed, time.perf_counter() - t0)


class RunInterrupted(RuntimeError):
    """Raised by ``stop_after_chunks``: the run stopped early, its checkpoint is on disk."""

    def __init__(self, done: int, total: int, unit: str = "networks"):
        super().__init__(f"stopped after {done} of {total} {unit}; resume to continue")
        self.done, self.total = done, total


