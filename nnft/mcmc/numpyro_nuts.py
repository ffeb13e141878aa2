"""numpyro's NUTS on the same model, as a source of the one driver.

``numpyro.infer.MCMC(NUTS(numpyro_model(target)))`` with the chains, warmup, draws and
initial positions of :func:`nnft.mcmc.run_nuts`. The source's state is numpyro's own
``HMCState`` (a pytree of arrays, one leading chain axis when there are several chains):
step 0 is ``MCMC.warmup``, step k a ``MCMC.run`` of one chunk from
``post_warmup_state``, so the driver checkpoints that state like any other (no pickle).
These are the calls the previous implementation made, in the same order and with the
same keys, so the draws are the same. numpyro compiles its sampler anew on every
``run`` call: without a checkpoint the draws come in one chunk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from nnft.engine.drive import Draws, Source, as_key, drive
from nnft.engine.progress import width_label
from nnft.interaction.target import Target, flatten_sites, numpyro_model, unflatten_sites
from nnft.mcmc.chains import MCMCResult
from nnft.mcmc.config import MCMCConfig, chunking
from nnft.mcmc.nuts import CHECKPOINT, initial_positions, mcmc_work
from nnft.mcmc.recorder import recorder
from nnft.priors.base import as_points

_EXTRA = ("diverging", "num_steps", "accept_prob", "potential_energy", "energy")


class NumpyroState(NamedTuple):
    """numpyro's ``HMCState`` after warmup, the warmup totals per chain and host-side
    ``seconds`` = (warmup, sampling)."""

    hmc: Any
    warmup_steps: Any
    warmup_diverging: Any
    seconds: Any


def _record_spec(target: Target, chains: int, chunk: int, n_points: int) -> dict:
    dt = jax.eval_shape(target.init, jax.random.PRNGKey(0)).dtype
    s = jax.ShapeDtypeStruct
    return {"z": s((chains, chunk, target.dim), dt), "phi": s((chains, chunk, n_points), dt),
            "lp": s((chains, chunk), dt), "diverging": s((chains, chunk), np.bool_),
            "n_steps": s((chains, chunk), jax.dtypes.canonicalize_dtype(np.int64)),
            "acceptance_rate": s((chains, chunk), dt), "energy": s((chains, chunk), dt)}


def numpyro_source(target: Target, points, config: MCMCConfig, *, chunk: int,
                   chain_method: str = "vectorized") -> tuple[Source, dict]:
    """The numpyro chains as a :class:`~nnft.engine.Source` (step 0: warmup, step k: the
    k-th chunk of ``chunk`` draws per chain) and the shapes of one chunk's record."""
    from numpyro.infer import MCMC, NUTS

    pts = as_points(points, target.prior.input_dim)
    c = config
    n_chunks = -(-c.samples // chunk)

    def kernel():
        return NUTS(numpyro_model(target, pts), target_accept_prob=c.target_accept,
                    max_tree_depth=c.max_tree_depth)

    mcmc = MCMC(kernel(), num_warmup=c.warmup, num_samples=chunk, num_chains=c.chains,
                chain_method=chain_method if c.chains > 1 else "sequential",
                progress_bar=False)
    z0 = unflatten_sites(target, np.asarray(initial_positions(target, c.chains, c.seed)))
    if c.chains == 1:
        z0 = {k: val[0] for k, val in z0.items()}

    def template():
        """Zeros shaped like numpyro's state (the shapes of a separate kernel's ``init``)."""
        keys = jax.random.split(jax.random.PRNGKey(0), c.chains) if c.chains > 1 \
            else jax.random.PRNGKey(0)
        shapes = jax.eval_shape(lambda k, z: kernel().init(k, c.warmup, z, (), {}), keys, z0)
        return jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), shapes)

    zeros = template()

    def init(key):
        return NumpyroState(zeros, np.zeros(c.chains, np.int64), np.zeros(c.chains, np.int64),
                            np.zeros(2))

    def step(key, state: NumpyroState, i: int):
        t0 = time.perf_counter()
        if i == 0:
            mcmc.warmup(jax.random.fold_in(key, 1), init_params=z0, collect_warmup=True,
                        extra_fields=("num_steps", "diverging"))
            extra = mcmc.get_extra_fields(group_by_chain=True)
            seconds = state.seconds + np.array([time.perf_counter() - t0, 0.0])
            return NumpyroState(mcmc.post_warmup_state,
                                np.sum(np.asarray(extra["num_steps"]), axis=1),
                                np.sum(np.asarray(extra["diverging"]), axis=1),
                                seconds), Draws(None)
        mcmc.post_warmup_state = state.hmc
        mcmc.run(state.hmc.rng_key, extra_fields=_EXTRA)
        samples = mcmc.get_samples(group_by_chain=True)
        extra = mcmc.get_extra_fields(group_by_chain=True)
        out = {"z": flatten_sites(target, samples), "phi": np.asarray(samples["phi"]),
               "lp": -np.asarray(extra["potential_energy"]),
               "diverging": np.asarray(extra["diverging"]),
               "n_steps": np.asarray(extra["num_steps"]),
               "acceptance_rate": np.asarray(extra["accept_prob"]),
               "energy": np.asarray(extra["energy"])}
        seconds = state.seconds + np.array([0.0, time.perf_counter() - t0])
        return state._replace(hmc=mcmc.last_state, seconds=seconds), Draws(out["phi"],
                                                                           record=out)

    source = Source(init=init, step=step, n_steps=n_chunks + 1,
                    work=mcmc_work(target, pts, c, chunk, c.seed),
                    label=f"NUTS {width_label(target.prior)}", unit="draws per chain",
                    total=c.samples, units=lambda i: min(max(i - 1, 0) * chunk, c.samples))
    return source, _record_spec(target, c.chains, chunk, len(pts))


def run_numpyro(target: Target, points, config: MCMCConfig = MCMCConfig(), *,
                checkpoint_dir=None, resume: bool = False, progress: bool = True,
                stop_after_chunks: int | None = None,
                chain_method: str = "vectorized") -> MCMCResult:
    """``numpyro.infer.MCMC(NUTS(numpyro_model(target)))`` through the driver, with the
    same chains, warmup, draws and initial positions as :func:`~nnft.mcmc.run_nuts`.
    With ``checkpoint_dir`` (or ``stop_after_chunks``) the draws come in chunks of
    ``checkpoint_every``, checkpointed with numpyro's state; without, in one chunk."""
    pts = as_points(points, target.prior.input_dim)
    c = config
    chunked = checkpoint_dir is not None or stop_after_chunks is not None
    n_chunks, chunk = chunking(c.samples, c.checkpoint_every if chunked else c.samples)
    source, spec = numpyro_source(target, pts, c, chunk=chunk, chain_method=chain_method)
    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT
    run = drive(source, recorder(spec, n_chunks, chunk, c.samples), as_key(c.seed),
                checkpoint=ckpt, resume=resume, progress=progress,
                stop_after=stop_after_chunks)
    draws, state = dict(run.result), run.state
    step_size = np.asarray(state.hmc.adapt_state.step_size).reshape(c.chains)
    warmup_seconds, sampling_seconds = (float(s) for s in state.seconds)
    return MCMCResult(
        target=target, points=pts, config=c, z=draws.pop("z"),
        phi=draws.pop("phi").astype(np.float64), stats=draws,
        warmup={"n_steps": np.asarray(state.warmup_steps),
                "diverging": np.asarray(state.warmup_diverging)},
        step_size=step_size, inverse_mass_matrix=None,
        seconds={"warmup": warmup_seconds, "sampling": sampling_seconds,
                 "total": warmup_seconds + sampling_seconds, "devices": 1},
        info=run.info)
