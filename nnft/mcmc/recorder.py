"""The estimator of an MCMC source: every draw kept, in arrays allocated up front.

A chain's draws are the result (correlators are read off them afterwards, with blocking),
so the recorder's accumulator is ``{name: (chains, n_chunks * chunk, ...)}`` and step
``first + k`` fills chunk k. It is a fixed pytree, hence checkpointed by the driver with
the chains' state.
"""

from __future__ import annotations

import numpy as np

from nnft.engine.drive import Draws, Estimator
from nnft.engine.mesh import to_host


def recorder(specs: dict, n_chunks: int, chunk: int, samples: int, *,
             first: int = 1) -> Estimator:
    """Records ``draws.record`` (a dict of ``(chains, chunk, ...)`` arrays, shapes and
    dtypes as in ``specs``) of steps ``first .. first + n_chunks - 1``; steps without a
    record (warmup) are skipped. ``finalize`` returns the first ``samples`` draws."""

    def init() -> dict:
        return {name: np.zeros((s.shape[0], n_chunks * chunk, *s.shape[2:]), s.dtype)
                for name, s in specs.items()}

    def update(acc: dict, draws: Draws, i: int) -> dict:
        if draws.record is None:
            return acc
        rec = to_host(draws.record)  # a collective when chains span processes
        k = i - first
        out = {}
        for name, buf in acc.items():
            buf = buf if buf.flags.writeable else buf.copy()
            buf[:, k * chunk:(k + 1) * chunk] = np.asarray(rec[name], buf.dtype)
            out[name] = buf
        return out

    def finalize(acc: dict) -> dict:
        return {name: np.asarray(buf)[:, :samples] for name, buf in acc.items()}

    return Estimator(init, update, finalize)
