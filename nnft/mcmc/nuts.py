"""blackjax NUTS as a source of the one driver: chains vmapped, split over devices.

``P_V(theta) ∝ P(theta) exp(-int_box V(phi_theta))`` is sampled in the unconstrained
coordinates of :func:`nnft.interaction.make_target`. :func:`nuts_source` is a pure
init/step bundle (:class:`~nnft.engine.Source`): step 0 is Stan-style window adaptation,
steps ``1 .. n_chunks`` each draw one chunk of ``checkpoint_every`` draws per chain (a
``lax.scan``), chains vmapped within a device and split over devices with
``shard_map``. Keys are explicit: chain c's warmup uses ``fold_in(fold_in(key, 1), c)``
and its draw j ``fold_in(fold_in(fold_in(key, 2), c), j)``, so the draws depend neither
on the chunking nor on devices or restarts. :func:`run_nuts` drives it into a recorder
(:mod:`nnft.mcmc.recorder`); the driver checkpoints the chains and the draws so far.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as Spec

from nnft.engine.drive import Draws, Source, as_key, drive, key_fingerprint
from nnft.engine.mesh import data_mesh, to_host
from nnft.engine.progress import width_label
from nnft.interaction.action import Interaction
from nnft.interaction.target import Target, make_target
from nnft.mcmc.chains import MCMCResult
from nnft.mcmc.config import MCMCConfig, chunking
from nnft.mcmc.recorder import recorder
from nnft.priors.base import Prior, as_points

CHECKPOINT = "checkpoint.npz"


class NutsState(NamedTuple):
    """Chains after warmup (leading axis: chain): NUTS position, log-density and its
    gradient, the adapted step size and diagonal inverse mass matrix, warmup totals, and
    host-side ``seconds`` = (warmup, sampling) summed over every call."""

    position: Any
    logdensity: Any
    grad: Any
    step_size: Any
    inverse_mass_matrix: Any
    warmup_steps: Any
    warmup_diverging: Any
    seconds: Any


def chain_mesh(chains: int, devices=None) -> Mesh:
    """A 1-d mesh ``("chain",)`` over as many devices as divide the number of chains."""
    return data_mesh("chain", devices, divides=chains)


def _over_chains(fn, mesh: Mesh):
    """``fn`` on one chain -> jitted over all chains: vmap within a device, shard_map across."""
    batched = jax.vmap(fn)
    if mesh.size == 1:
        return jax.jit(batched)
    return jax.jit(jax.shard_map(batched, mesh=mesh, in_specs=Spec("chain"),
                                 out_specs=Spec("chain"), check_vma=False))


def _keys(key, stream: int, chains: int) -> jax.Array:
    """Per-chain keys ``fold_in(fold_in(key, stream), c)`` (``key``: a seed or a key)."""
    base = jax.random.fold_in(as_key(key), stream)
    return jax.vmap(lambda c: jax.random.fold_in(base, c))(jnp.arange(chains))


def initial_positions(target: Target, chains: int, seed) -> jax.Array:
    """One free-prior draw per chain (mapped to unconstrained coordinates)."""
    return jax.vmap(target.init)(_keys(seed, 0, chains))


def coupling_of(interaction: Interaction | None) -> float:
    """The interaction's coupling (1 for polynomial/custom: their couplings scale V)."""
    if interaction is None:
        return 0.0
    pot = interaction.potential
    return pot.coupling if pot.kind in ("phi4", "phi6", "mass") else 1.0


def split_coupling(target: Target) -> tuple[Interaction | None, float]:
    """``(V per unit coupling, coupling)`` so that one compiled program serves every coupling."""
    inter = target.interaction
    if inter is None:
        return None, 0.0
    return inter.unit(), coupling_of(inter)


@functools.lru_cache(maxsize=16)
def _unit_target(prior: Prior, unit: Interaction | None) -> Target:
    return make_target(prior, unit)


@functools.lru_cache(maxsize=16)
def _nuts_programs(prior: Prior, unit: Interaction | None, warmup: int, chunk: int,
                   max_tree_depth: int, target_accept: float, mesh: Mesh):
    """Jitted ``(warmup, chunk)`` programs over chains; the coupling is an argument."""
    import blackjax
    from blackjax.adaptation.base import get_filter_adapt_info_fn
    from blackjax.mcmc.hmc import HMCState

    target = _unit_target(prior, unit)

    def logdensity_at(coupling):
        return lambda z: target.prior_logdensity(z) - coupling * target.action(z)

    def warmup_one(key, z0, coupling):
        adapt = blackjax.window_adaptation(
            blackjax.nuts, logdensity_at(coupling), target_acceptance_rate=target_accept,
            max_num_doublings=max_tree_depth,
            adaptation_info_fn=get_filter_adapt_info_fn(
                info_keys={"num_integration_steps", "is_divergent"}))
        (state, par), info = adapt.run(key, z0, num_steps=warmup)
        return (state.position, state.logdensity, state.logdensity_grad,
                jnp.asarray(par["step_size"], z0.dtype), par["inverse_mass_matrix"],
                jnp.sum(info.info.num_integration_steps), jnp.sum(info.info.is_divergent))

    def chunk_one(key, position, logdensity, grad, step_size, imm, start, coupling, points):
        nuts = blackjax.nuts(logdensity_at(coupling), step_size, imm,
                             max_num_doublings=max_tree_depth)

        def body(state, j):
            state, info = nuts.step(jax.random.fold_in(key, start + j), state)
            out = {"z": state.position, "phi": target.fields(state.position, points),
                   "lp": state.logdensity, "diverging": info.is_divergent,
                   "n_steps": info.num_integration_steps,
                   "acceptance_rate": info.acceptance_rate, "energy": info.energy,
                   "tree_depth": info.num_trajectory_expansions}
            return state, out

        state, out = jax.lax.scan(body, HMCState(position, logdensity, grad),
                                  jnp.arange(chunk))
        return state.position, state.logdensity, state.logdensity_grad, out

    return _over_chains(warmup_one, mesh), _over_chains(chunk_one, mesh)


def mcmc_work(target: Target, points, config: MCMCConfig, chunk: int, key) -> dict:
    """What the draws depend on (the driver's fingerprint)."""
    inter = None if target.interaction is None else target.interaction.describe()
    cfg = {k: val for k, val in config.to_dict().items()
           if k not in ("checkpoint_every", "reweighting", "perturbation")}
    return {"source": f"mcmc-{config.sampler}", "prior": target.prior.hyperparameters(),
            "interaction": inter, "points": np.asarray(points).tolist(), "config": cfg,
            "chunk": chunk, "key": key_fingerprint(as_key(key))}


def _placed(x, sharding):
    """A host array (the same in every process) laid out like the chains: a global array
    under ``jax.distributed``, so that the sharded programs accept it."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def nuts_source(target: Target, points, config: MCMCConfig = MCMCConfig(), *,
                devices=None) -> tuple[Source, dict]:
    """The chains as a :class:`~nnft.engine.Source` (step 0: warmup; step k: chunk k - 1)
    and the shapes of one chunk's record ``{name: ShapeDtypeStruct (chains, chunk, ...)}``.
    The key given to the driver must be ``config.seed``'s (``PRNGKey(seed)``) for the
    draws to be those of the seed."""
    pts = as_points(points, target.prior.input_dim)
    c = config
    mesh = chain_mesh(c.chains, devices)
    n_chunks, chunk = chunking(c.samples, c.checkpoint_every)
    unit, coupling = split_coupling(target)
    warmup_fn, chunk_fn = _nuts_programs(target.prior, unit, c.warmup, chunk,
                                         c.max_tree_depth, c.target_accept, mesh)
    z_spec = jax.eval_shape(target.init, jax.random.PRNGKey(0))
    dtype = z_spec.dtype
    sharding = NamedSharding(mesh, Spec("chain"))
    couplings = _placed(np.full((c.chains,), coupling, dtype), sharding)
    points_dev = _placed(np.broadcast_to(pts.astype(dtype), (c.chains, *pts.shape)), sharding)
    keys_spec = jax.eval_shape(lambda k: _keys(k, 1, c.chains), jax.random.PRNGKey(0))
    z0_spec = jax.ShapeDtypeStruct((c.chains, *z_spec.shape), dtype)
    warm_spec = jax.eval_shape(warmup_fn, keys_spec, z0_spec, couplings)
    start_spec = jax.ShapeDtypeStruct((c.chains,), np.int32)
    record_spec = jax.eval_shape(chunk_fn, keys_spec, *warm_spec[:5], start_spec, couplings,
                                 points_dev)[3]

    def init(key):
        return NutsState(*(_placed(np.zeros(s.shape, s.dtype), sharding) for s in warm_spec),
                         seconds=np.zeros(2))

    def keys(key, stream):
        return _placed(_keys(key, stream, c.chains), sharding)

    def step(key, state: NutsState, i: int):
        t0 = time.perf_counter()
        if i == 0:
            z0 = _placed(initial_positions(target, c.chains, key), sharding)
            out = warmup_fn(keys(key, 1), z0, couplings)
            jax.block_until_ready(out)
            seconds = state.seconds + np.array([time.perf_counter() - t0, 0.0])
            return NutsState(*out, seconds=seconds), Draws(None)
        start = _placed(np.full(c.chains, (i - 1) * chunk, np.int32), sharding)
        pos, ld, grad, out = chunk_fn(keys(key, 2), state.position,
                                      state.logdensity, state.grad, state.step_size,
                                      state.inverse_mass_matrix, start, couplings, points_dev)
        jax.block_until_ready(out)
        seconds = state.seconds + np.array([0.0, time.perf_counter() - t0])
        state = state._replace(position=pos, logdensity=ld, grad=grad, seconds=seconds)
        return state, Draws(out["phi"], record=out)

    source = Source(init=init, step=step, n_steps=n_chunks + 1,
                    work=mcmc_work(target, pts, c, chunk, c.seed),
                    label=f"NUTS {width_label(target.prior)}", unit="draws per chain",
                    total=c.samples, units=lambda i: min(max(i - 1, 0) * chunk, c.samples))
    return source, record_spec


def run_nuts(target: Target, points, config: MCMCConfig = MCMCConfig(), *, devices=None,
             checkpoint_dir=None, resume: bool = False, progress: bool = True,
             stop_after_chunks: int | None = None) -> MCMCResult:
    """blackjax NUTS with window adaptation; ``config.chains`` chains vmapped and sharded.

    The driver runs :func:`nuts_source` into a :func:`~nnft.mcmc.recorder.recorder`. With
    ``checkpoint_dir`` the chains and draws are checkpointed (``checkpoint.npz``) after the
    warmup and after every chunk; ``resume=True`` continues from there (the same draws as
    an uninterrupted run). ``stop_after_chunks``: stop after that many steps of this call
    (the warmup is step 0), raising :class:`nnft._validate.RunInterrupted`. Compiled
    programs are cached per architecture, potential shape and settings: runs at other
    couplings reuse them.
    """
    pts = as_points(points, target.prior.input_dim)
    c = config
    source, spec = nuts_source(target, pts, c, devices=devices)
    n_chunks, chunk = chunking(c.samples, c.checkpoint_every)
    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT
    run = drive(source, recorder(spec, n_chunks, chunk, c.samples), as_key(c.seed),
                checkpoint=ckpt, resume=resume, progress=progress,
                stop_after=stop_after_chunks)
    draws, state = dict(run.result), to_host(run.state)
    warmup_seconds, sampling_seconds = (float(s) for s in state.seconds)
    return MCMCResult(
        target=target, points=pts, config=c, z=draws.pop("z"),
        phi=draws.pop("phi").astype(np.float64), stats=draws,
        warmup={"n_steps": state.warmup_steps, "diverging": state.warmup_diverging},
        step_size=np.asarray(state.step_size),
        inverse_mass_matrix=np.asarray(state.inverse_mass_matrix),
        seconds={"warmup": warmup_seconds, "sampling": sampling_seconds,
                 "total": warmup_seconds + sampling_seconds,
                 "devices": chain_mesh(c.chains, devices).size},
        info=run.info)
