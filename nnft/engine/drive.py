"""The one driver: every source of field values runs through :func:`drive`.

A **source** is a pure bundle in the style of blackjax's ``SamplingAlgorithm`` and
optax's ``GradientTransformation``::

    state = source.init(key)
    state, draws = source.step(key, state, i)       # i = 0 .. source.n_steps - 1

where ``draws`` (:class:`Draws`) are field values at the measurement points, with an
optional validity mask, weights and a pytree ``record`` of per-step outputs. The free
ensemble, NUTS chains and training ensembles are sources (``nnft.ensemble``,
``nnft.mcmc``, ``nnft.training``). An **estimator** is ``init() -> acc``,
``update(acc, draws, i) -> acc``, ``finalize(acc) -> result`` (the streaming moment
estimator of :mod:`nnft.estimators`, or a recorder).

:func:`drive` is the only loop: it owns the checkpoint (one format,
:mod:`nnft.engine.checkpoint`, holding the source's state and the estimator's sums),
the fingerprint that guards resuming, the progress bar, early stops
(:class:`~nnft._validate.RunInterrupted`) and multi-process handling (every process
steps; arrays come back to the host through :func:`nnft.engine.mesh.to_host`; only
process 0 writes). A resumed run continues exactly where the checkpoint left off, so it
gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from nnft import _validate as v
from nnft._validate import RunInterrupted
from nnft.engine import checkpoint as ckpt
from nnft.engine.files import clean_orphans
from nnft.engine.mesh import is_writer, put_like, to_host
from nnft.engine.progress import progress_bar


class Draws(NamedTuple):
    """One step's output: ``fields`` ``(..., P)``; ``mask`` (True = valid) and ``weights``
    over the leading axes; ``record``: any pytree of per-step outputs for a recorder."""

    fields: Any
    mask: Any = None
    weights: Any = None
    record: Any = None


class Source(NamedTuple):
    """A pure init/step bundle plus what the driver needs to know about it.

    ``work``: a JSON-able description of everything the draws depend on (fingerprint).
    ``units(i)``: how many units (networks, draws per chain, steps) ``i`` steps make,
    for the progress bar, out of ``total``.
    """

    init: Callable[[jax.Array], Any]
    step: Callable[[jax.Array, Any, int], tuple[Any, Draws]]
    n_steps: int
    work: dict
    label: str = "run"
    unit: str = "steps"
    total: int | None = None
    units: Callable[[int], int] | None = None


class Estimator(NamedTuple):
    """``init() -> acc``, ``update(acc, draws, i) -> acc``, ``finalize(acc) -> result``."""

    init: Callable[[], Any]
    update: Callable[[Any, Draws, int], Any]
    finalize: Callable[[Any], Any]


class RunInfo(NamedTuple):
    """Bookkeeping of one call of :func:`drive` (this call only, not a resumed part)."""

    seconds: float
    steps_run: int
    units_run: int
    resumed_from: int | None  # units done when this call started (None: fresh start)
    checkpoint: str | None

    @property
    def rate(self) -> float:
        """Units per second in this call."""
        return self.units_run / self.seconds if self.seconds > 0 else float("nan")


class Run(NamedTuple):
    """What :func:`drive` returns: the finalized estimate, the source's last state, info."""

    result: Any
    state: Any
    info: RunInfo


def as_key(seed) -> jax.Array:
    """A PRNG key from an integer seed (``PRNGKey(seed)``) or a key (raw or typed) as is."""
    if isinstance(seed, jax.Array) and seed.dtype == np.uint32 and seed.shape == (2,):
        return seed  # a raw PRNGKey
    seed = v.seed("seed", seed)
    return seed if v.is_key(seed) else jax.random.PRNGKey(seed)


def key_fingerprint(key: jax.Array) -> list:
    """The key's data as a list (for a source's ``work``)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return [str(jax.random.key_impl(key)), np.asarray(jax.random.key_data(key)).tolist()]
    return np.asarray(key).tolist()


def drive(source: Source, estimator: Estimator, key, *,
          checkpoint: str | Path | None = None, checkpoint_every: int = 1,
          resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> Run:
    """Run ``source`` for its ``n_steps``, feeding every step's draws to ``estimator``.

    ``checkpoint``: a file path; written atomically every ``checkpoint_every`` steps, at
    the end and at an early stop. ``resume``: continue from it (refused if it was made for
    other work). ``stop_after``: stop after that many steps of this call, raising
    :class:`~nnft._validate.RunInterrupted` once the checkpoint is written.
    """
    key = as_key(key)
    units = source.units or (lambda i: i)
    total = source.total if source.total is not None else units(source.n_steps)
    path = None if checkpoint is None else Path(checkpoint)
    work = ckpt.fingerprint({"work": source.work, "key": key_fingerprint(key)})
    state, acc = source.init(key), estimator.init()
    start, resumed_from = 0, None
    if path is not None and is_writer():
        clean_orphans(path.parent)
    if resume and path is not None and path.exists():
        (state_h, acc_h), start, _ = ckpt.load(path, (state, acc), work=work)
        state, acc = put_like(state_h, state), put_like(acc_h, acc)
        resumed_from = units(start)
    t0 = time.perf_counter()
    run_now = 0
    bar = progress_bar(progress and is_writer(), total, source.label, source.unit,
                       units(start))
    with bar as advance:
        for i in range(start, source.n_steps):
            state, draws = source.step(key, state, i)
            # one step in flight at a time: with several programs in flight, XLA's CPU
            # collectives on forced host devices can wait on each other forever
            acc = jax.block_until_ready(estimator.update(acc, draws, i))
            run_now += 1
            advance(units(i + 1))
            last = i + 1 == source.n_steps
            stop = stop_after is not None and run_now >= stop_after and not last
            if path is not None and (last or stop or run_now % checkpoint_every == 0):
                host = to_host((state, acc))  # collective under jax.distributed
                if is_writer():
                    ckpt.save(path, host, work=work, done=i + 1, meta={"units": units(i + 1)})
            if stop:
                raise RunInterrupted(units(i + 1), total, source.unit)
    seconds = time.perf_counter() - t0
    info = RunInfo(seconds, run_now, units(source.n_steps) - units(start), resumed_from,
                   None if path is None else str(path))
    return Run(estimator.finalize(acc), state, info)
