"""Large grids of independent work, run in blocks: resumable, and spread over CPU cores.

A study with thousands of ensembles (a hyperparameter grid times many seeds) splits them into
blocks, each a call ``work(*args) -> dict of numpy arrays``. :func:`run_blocks` runs the blocks
and writes each result atomically to its own ``.npz`` file as soon as it is done. With
``resume=True``, blocks whose file exists are loaded instead of run, so an interrupted run
loses at most the blocks in flight.

``workers > 1`` shares the blocks out to that many spawned processes. Each process is made
single-threaded (:data:`SINGLE_THREADED_ENV`: XLA and the BLAS under numpy), which is how a
CPU's cores are used best: several XLA host devices in one process
(``--xla_force_host_platform_device_count``) deadlocked here with jax 0.10 when two of them
ran long loops concurrently, and idle BLAS threads spin, so two multi-threaded workers on
two cores ran 5x slower. On accelerators use ``workers=1``: the one process holds every
device and ``work`` can split its block over them. For ``workers > 1``, ``work`` must be a
module-level function that the worker processes can import (``initializer`` can put its
folder on ``sys.path``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from nnft._validate import RunInterrupted
from nnft.engine.checkpoint import load_arrays, save_arrays
from nnft.engine.progress import progress_bar

#: the environment of a worker process: one thread for XLA and for numpy's BLAS
SINGLE_THREADED_ENV = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
}


def default_workers() -> int:
    """One process per core on a CPU; one process (holding every device) on accelerators."""
    import jax

    return (os.cpu_count() or 1) if jax.default_backend() == "cpu" else 1


def save_block(path: Path, arrays: dict) -> None:
    """A finished block's arrays, in the engine's one file format (atomic, durable)."""
    save_arrays(path, arrays)


def load_block(path: Path) -> dict:
    return load_arrays(path)


def run_blocks(work: Callable[..., dict], args: Sequence[tuple], paths: Sequence[Path], *,
               workers: int = 1, resume: bool = False, progress: bool = False,
               description: str = "blocks", units_per_block: int = 1, unit: str = "blocks",
               initializer=None, initargs: tuple = (),
               stop_after: int | None = None) -> list[dict]:
    """``[work(*args[i]) for i]``, each result saved to ``paths[i]`` when it is done.

    ``resume``: load the blocks whose file exists. ``progress``: a bar counting
    ``units_per_block`` ``unit`` per block. ``stop_after`` blocks run in this call: raise
    :class:`~nnft._validate.RunInterrupted` (their files are on disk; to test resuming)."""
    if len(args) != len(paths):
        raise ValueError(f"run_blocks: {len(args)} argument tuples but {len(paths)} paths")
    results: list[dict | None] = [None] * len(args)
    if resume:
        for i, path in enumerate(paths):
            if Path(path).exists():
                results[i] = load_block(path)
    todo = [i for i, r in enumerate(results) if r is None]
    ran = 0
    with progress_bar(progress, len(args) * units_per_block, description, unit,
                      (len(args) - len(todo)) * units_per_block) as advance:
        def finish(i, res):
            nonlocal ran
            results[i] = res
            save_block(paths[i], res)
            ran += 1
            advance(sum(r is not None for r in results) * units_per_block)
            if stop_after is not None and ran >= stop_after and ran < len(todo):
                raise RunInterrupted(len(args) - len(todo) + ran, len(args), "blocks")

        if workers <= 1 or len(todo) <= 1:
            for i in todo:
                finish(i, work(*args[i]))
            return results
        import concurrent.futures as cf
        import multiprocessing as mp

        saved = {k: os.environ.get(k) for k in SINGLE_THREADED_ENV}
        os.environ.update(SINGLE_THREADED_ENV)  # inherited by the spawned workers
        try:
            with cf.ProcessPoolExecutor(min(workers, len(todo)), mp.get_context("spawn"),
                                        initializer=initializer, initargs=initargs) as pool:
                futures = {pool.submit(work, *args[i]): i for i in todo}
                try:
                    for fut in cf.as_completed(futures):
                        finish(futures[fut], fut.result())
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
        finally:
            for k, val in saved.items():
                if val is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = val
    return results
