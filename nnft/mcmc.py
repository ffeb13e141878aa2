"""Sampling interacting NN field theories: NUTS on the deformed parameter density.

``P_V(theta) ∝ P(theta) exp(-int_box V(phi_theta))`` (TASI eq. 135, sign corrected; see
:mod:`nnft.insertion`) is known up to normalisation, so it is sampled by MCMC in the
unconstrained coordinates of :func:`nnft.insertion.make_target`:

- :func:`run_nuts`: blackjax NUTS with Stan-style window adaptation (default), many
  chains vmapped and split over devices with ``shard_map``; keys are explicit
  (draw j of chain c uses ``fold_in(fold_in(key, c), j)``, so results do not depend
  on chunking, devices or restarts); chains are checkpointed atomically after
  warmup and every ``checkpoint_every`` draws and resume from there;
- :func:`run_numpyro`: the same model through ``numpyro.infer.MCMC(NUTS(model))``;
- :meth:`MCMCResult.to_inference_data`: arviz ``InferenceData`` (parameters and the
  field on the points); :func:`diagnostics`: R-hat, bulk/tail ESS, divergences,
  integrated autocorrelation times of the correlator observables;
- :func:`chain_correlators`: correlators with block-jackknife errors, blocks being
  contiguous runs of draws (per chain) much longer than the autocorrelation time;
- cross-checks from free draws (:func:`free_draw_crosschecks`): importance
  reweighting ``E_0[O e^{-S_V}] / E_0[e^{-S_V}]`` with its ESS, and first-order
  perturbation theory at finite N, ``dG/dlambda = -Cov_0(O, S)`` pushed through the
  moments -> cumulants map; at infinite N see
  :func:`nnft.insertion.perturbation_infinite_n`;
- :func:`run_mcmc_card`: ``nnft run`` for cards with ``[interaction]`` / ``[mcmc]``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import pickle
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as Spec

from nnft import _validate as v
from nnft._progress import progress_bar, width_label
from nnft._validate import ConfigError
from nnft.cumulants import cumulants_from_moments
from nnft.ensemble import RunInterrupted, network_keys
from nnft.estimators import Estimate, moment_estimator
from nnft.insertion import (
    Interaction,
    QuadratureWarning,
    Target,
    check_quadrature,
    flatten_sites,
    make_target,
    numpyro_model,
    perturbation_infinite_n,
    unflatten_sites,
)
from nnft.priors.base import Prior, as_points, fields
from nnft.results import _atomic_write

SAMPLERS = ("blackjax", "numpyro")
WARMUP_FILE = "mcmc-warmup.npz"
NUMPYRO_STATE = "mcmc-numpyro-state.pkl"
RHAT_MAX = 1.01


# -----------------------------------------------------------------------------
# configuration and the [mcmc] card section
# -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MCMCConfig:
    """What a run does: ``sampler`` (blackjax | numpyro), ``chains``, ``warmup`` and
    ``samples`` draws per chain, ``seed``; NUTS settings ``target_accept`` and
    ``max_tree_depth``; ``checkpoint_every`` draws per chunk; whether the cross-checks
    from free draws run (``reweighting``, ``perturbation``)."""

    sampler: str = "blackjax"
    chains: int = 8
    warmup: int = 1000
    samples: int = 2000
    seed: int = 0
    target_accept: float = 0.8
    max_tree_depth: int = 10
    checkpoint_every: int = 500
    reweighting: bool = True
    perturbation: bool = True

    def __post_init__(self):
        v.choice("sampler", self.sampler, SAMPLERS)
        v.positive_int("chains", self.chains)
        v.positive_int("warmup", self.warmup, minimum=10)
        v.positive_int("samples", self.samples, minimum=10)
        v.positive_int("seed", self.seed, minimum=0)
        v.require(isinstance(self.target_accept, (int, float))
                  and not isinstance(self.target_accept, bool)
                  and 0 < self.target_accept < 1, "target_accept", self.target_accept,
                  "must be a number in (0, 1)")
        v.positive_int("max_tree_depth", self.max_tree_depth)
        v.require(self.max_tree_depth <= 15, "max_tree_depth", self.max_tree_depth,
                  "must be at most 15 (2^15 leapfrog steps per draw)")
        v.positive_int("checkpoint_every", self.checkpoint_every)
        for name in ("reweighting", "perturbation"):
            v.require(isinstance(getattr(self, name), bool), name, getattr(self, name),
                      "must be true or false")
        object.__setattr__(self, "target_accept", float(self.target_accept))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


MCMC_KEYS = tuple(f.name for f in dataclasses.fields(MCMCConfig))


def parse_mcmc_section(table: dict, card: dict) -> MCMCConfig:
    """``[mcmc]``: sampler, chains, warmup, samples, seed (default: ``sampling.seed``),
    target_accept, max_tree_depth, checkpoint_every, reweighting, perturbation."""
    from nnft.cards import _did_you_mean

    for key in table:
        if key not in MCMC_KEYS:
            raise ConfigError(f"mcmc.{key}: unknown key; allowed keys in [mcmc]: "
                              f"{', '.join(MCMC_KEYS)}{_did_you_mean(key, MCMC_KEYS)}")
    values = dict(table)
    values.setdefault("seed", card.get("seed", 0))
    if card.get("widths"):
        raise ConfigError("scan.widths: a width scan cannot be combined with [mcmc] or "
                          "[interaction]; run one card per width")
    try:
        return MCMCConfig(**values)
    except ConfigError as err:
        raise ConfigError(f"mcmc.{err}") from None


# -----------------------------------------------------------------------------
# results
# -----------------------------------------------------------------------------
@dataclasses.dataclass
class MCMCResult:
    """Draws of one run. ``z``: unconstrained positions ``(chains, draws, dim)``; ``phi``:
    the field on ``points`` ``(chains, draws, P)``; ``stats``: per-draw sampler
    statistics ``(chains, draws)`` (diverging, n_steps, acceptance_rate, lp, energy);
    ``warmup``: per-chain warmup totals (n_steps, diverging); ``step_size`` per chain."""

    target: Target
    points: np.ndarray
    config: MCMCConfig
    z: np.ndarray
    phi: np.ndarray
    stats: dict
    warmup: dict
    step_size: np.ndarray
    inverse_mass_matrix: np.ndarray | None
    seconds: dict

    @property
    def chains(self) -> int:
        return self.z.shape[0]

    @property
    def draws(self) -> int:
        return self.z.shape[1]

    @property
    def gradient_evaluations(self) -> int:
        """Leapfrog steps (one gradient each) summed over chains, sampling phase."""
        return int(np.sum(self.stats["n_steps"]))

    def params(self) -> dict:
        """Constrained parameters per draw, ``{name: (chains, draws, ...)}`` (numpy)."""
        flat = jnp.asarray(self.z.reshape(-1, self.z.shape[-1]))
        tree = jax.jit(jax.vmap(self.target.params))(flat)
        out = {}
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            name = "_".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
            leaf = np.asarray(leaf)
            out[name] = leaf.reshape(self.z.shape[:2] + leaf.shape[1:])
        return out

    def to_inference_data(self, attrs: dict | None = None):
        """arviz ``InferenceData``: posterior (parameters, ``phi`` on points), sample_stats,
        constant_data (the points)."""
        import arviz as az

        params = self.params()
        posterior = {**params, "phi": self.phi}
        dims = {"phi": ["point"]}
        for name, x in params.items():
            dims[name] = [f"{name}_dim_{i}" for i in range(x.ndim - 2)]
            if x.ndim >= 3 and x.shape[2] == getattr(self.target.prior, "width", -1):
                dims[name][0] = "neuron"
        stats = {"diverging": self.stats["diverging"].astype(bool),
                 "n_steps": self.stats["n_steps"], "acceptance_rate": self.stats["acceptance_rate"],
                 "lp": self.stats["lp"], "energy": self.stats["energy"],
                 "step_size": np.broadcast_to(self.step_size[:, None], self.stats["lp"].shape)}
        if "tree_depth" in self.stats:
            stats["tree_depth"] = self.stats["tree_depth"]
        coords = {"point": np.arange(len(self.points)), "dim": np.arange(self.points.shape[1])}
        info = {"sampler": self.config.sampler, "config": json.dumps(self.config.to_dict()),
                "prior": json.dumps(self.target.prior.hyperparameters(), default=str)}
        if self.target.interaction is not None:
            info["interaction"] = json.dumps(self.target.interaction.describe(), default=str)
        for k, val in (attrs or {}).items():
            info[k] = json.dumps(val, default=str) if isinstance(val, (dict, list)) else val
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return az.from_dict(posterior=posterior, sample_stats=stats,
                                constant_data={"points": self.points},
                                coords=coords, dims={**dims, "points": ["point", "dim"]},
                                attrs=info)


def write_inference_data(idata, path: Path) -> None:
    """``idata.to_netcdf`` atomically (temporary file in the same folder, then rename)."""
    _atomic_write(Path(path), lambda tmp: idata.to_netcdf(tmp, engine="h5netcdf"))


# -----------------------------------------------------------------------------
# checkpoints
# -----------------------------------------------------------------------------
def _save_atomic(path: Path, write) -> None:
    """``write(fh)`` into a binary file, atomically (:func:`nnft.results._atomic_write`)."""

    def to_tmp(tmp):
        with open(tmp, "wb") as fh:
            write(fh)

    _atomic_write(Path(path), to_tmp)


def _savez(path: Path, **arrays) -> None:
    _save_atomic(path, lambda fh: np.savez(fh, **arrays))


def _load(path: Path, fingerprint: str) -> dict:
    with np.load(path) as z:
        if str(z["fingerprint"]) != fingerprint:
            raise ConfigError(f"resume: the checkpoint {path} was made for different work "
                              "(architecture, interaction, points or [mcmc] settings differ); "
                              "remove it or use another --out")
        return {k: z[k] for k in z.files if k != "fingerprint"}


def _chunk_file(k: int) -> str:
    return f"mcmc-chunk-{k:05d}.npz"


def _fingerprint(target: Target, points, config: MCMCConfig, chunk: int) -> str:
    inter = None if target.interaction is None else target.interaction.describe()
    cfg = {k: val for k, val in config.to_dict().items()
           if k not in ("checkpoint_every", "reweighting", "perturbation")}
    return json.dumps({"prior": target.prior.hyperparameters(), "interaction": inter,
                       "points": np.asarray(points).tolist(), "config": cfg, "chunk": chunk},
                      sort_keys=True, default=str)


def _chunking(samples: int, every: int) -> tuple[int, int]:
    n_chunks = math.ceil(samples / every)
    return n_chunks, math.ceil(samples / n_chunks)


# -----------------------------------------------------------------------------
# blackjax NUTS, chains x devices
# -----------------------------------------------------------------------------
def chain_mesh(chains: int, devices=None) -> Mesh:
    """A 1-d mesh ``("chain",)`` over as many devices as divide the number of chains."""
    devs = list(jax.devices() if devices is None else devices)
    n = max(k for k in range(1, len(devs) + 1) if chains % k == 0)
    return Mesh(np.array(devs[:n]), ("chain",))


def _over_chains(fn, mesh: Mesh):
    """``fn`` on one chain -> jitted over all chains: vmap within a device, shard_map across."""
    batched = jax.vmap(fn)
    if mesh.size == 1:
        return jax.jit(batched)
    return jax.jit(jax.shard_map(batched, mesh=mesh, in_specs=Spec("chain"),
                                 out_specs=Spec("chain"), check_vma=False))


def _keys(seed: int, stream: int, chains: int) -> jax.Array:
    """Per-chain keys ``fold_in(fold_in(PRNGKey(seed), stream), c)``."""
    base = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
    return jax.vmap(lambda c: jax.random.fold_in(base, c))(jnp.arange(chains))


def initial_positions(target: Target, chains: int, seed: int) -> jax.Array:
    """One free-prior draw per chain (mapped to unconstrained coordinates)."""
    return jax.vmap(target.init)(_keys(seed, 0, chains))


def _split_coupling(target: Target) -> tuple[Interaction | None, float]:
    """``(V per unit coupling, coupling)`` so that one compiled program serves every coupling."""
    inter = target.interaction
    if inter is None:
        return None, 0.0
    return inter.unit(), _coupling(inter)


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


def run_nuts(target: Target, points, config: MCMCConfig = MCMCConfig(), *, devices=None,
             checkpoint_dir=None, resume: bool = False, progress: bool = False,
             stop_after_chunks: int | None = None) -> MCMCResult:
    """blackjax NUTS with window adaptation; ``config.chains`` chains vmapped and sharded.

    With ``checkpoint_dir`` the adapted chains and every chunk of draws are written
    atomically; ``resume=True`` continues from them (the same draws as an
    uninterrupted run). ``stop_after_chunks`` stops early (raising
    :class:`nnft.ensemble.RunInterrupted`) to test resumption. Compiled programs are
    cached per architecture, potential shape and settings: runs at other couplings
    reuse them.
    """
    pts = as_points(points, target.prior.input_dim)
    c = config
    mesh = chain_mesh(c.chains, devices)
    n_chunks, chunk = _chunking(c.samples, c.checkpoint_every)
    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir)
    fingerprint = _fingerprint(target, pts, c, chunk)
    unit, coupling = _split_coupling(target)
    warmup_fn, chunk_fn = _nuts_programs(target.prior, unit, c.warmup, chunk,
                                         c.max_tree_depth, c.target_accept, mesh)
    dtype = target.init(jax.random.PRNGKey(0)).dtype
    couplings = jnp.full((c.chains,), coupling, dtype)
    points_dev = jnp.broadcast_to(jnp.asarray(pts, dtype), (c.chains, *pts.shape))

    t0 = time.perf_counter()
    warm = None
    if resume and ckpt is not None and (ckpt / WARMUP_FILE).exists():
        warm = _load(ckpt / WARMUP_FILE, fingerprint)
    if warm is None:
        z0 = initial_positions(target, c.chains, c.seed)
        out = warmup_fn(_keys(c.seed, 1, c.chains), z0, couplings)
        out = [np.asarray(x) for x in out]
        warm = dict(zip(("position", "logdensity", "grad", "step_size", "imm", "n_steps",
                         "diverging"), out))
        warm["seconds"] = np.asarray(time.perf_counter() - t0)
        if ckpt is not None:
            _savez(ckpt / WARMUP_FILE, fingerprint=fingerprint, **warm)
    warmup_seconds = float(warm["seconds"])

    keys = _keys(c.seed, 2, c.chains)
    state = (warm["position"], warm["logdensity"], warm["grad"])
    chunks, run_now, t1 = [], 0, time.perf_counter()
    resumed_seconds = 0.0
    with progress_bar(progress, c.samples, f"NUTS {width_label(target.prior)}",
                      "draws per chain") as advance:
        for k in range(n_chunks):
            path = None if ckpt is None else ckpt / _chunk_file(k)
            if resume and path is not None and path.exists():
                saved = _load(path, fingerprint)
                resumed_seconds += float(saved.pop("seconds"))
                state = (saved.pop("end_position"), saved.pop("end_logdensity"),
                         saved.pop("end_grad"))
                chunks.append(saved)
                advance(min((k + 1) * chunk, c.samples))
                continue
            tk = time.perf_counter()
            start = np.full(c.chains, k * chunk, np.int32)
            pos, ld, grad, out = chunk_fn(keys, *state, warm["step_size"], warm["imm"], start,
                                          couplings, points_dev)
            out = {name: np.asarray(x) for name, x in out.items()}
            state = (np.asarray(pos), np.asarray(ld), np.asarray(grad))
            chunks.append(out)
            if path is not None:
                _savez(path, fingerprint=fingerprint, end_position=state[0],
                       end_logdensity=state[1], end_grad=state[2],
                       seconds=np.asarray(time.perf_counter() - tk), **out)
            run_now += 1
            advance(min((k + 1) * chunk, c.samples))
            if stop_after_chunks is not None and run_now >= stop_after_chunks \
                    and k + 1 < n_chunks:
                raise RunInterrupted((k + 1) * chunk * c.chains, c.samples * c.chains)
    draws = {name: np.concatenate([ch[name] for ch in chunks], axis=1)[:, :c.samples]
             for name in chunks[0]}
    sampling_seconds = time.perf_counter() - t1 + resumed_seconds
    return MCMCResult(
        target=target, points=pts, config=c, z=draws.pop("z"),
        phi=draws.pop("phi").astype(np.float64), stats=draws,
        warmup={"n_steps": warm["n_steps"], "diverging": warm["diverging"]},
        step_size=np.asarray(warm["step_size"]), inverse_mass_matrix=np.asarray(warm["imm"]),
        seconds={"warmup": warmup_seconds, "sampling": sampling_seconds,
                 "total": warmup_seconds + sampling_seconds, "devices": mesh.size})


# -----------------------------------------------------------------------------
# numpyro NUTS on the same model
# -----------------------------------------------------------------------------
def run_numpyro(target: Target, points, config: MCMCConfig = MCMCConfig(), *,
                checkpoint_dir=None, resume: bool = False, progress: bool = False,
                stop_after_chunks: int | None = None,
                chain_method: str = "vectorized") -> MCMCResult:
    """``numpyro.infer.MCMC(NUTS(numpyro_model(target)))`` with the same chains, warmup,
    draws and initial positions as :func:`run_nuts`. With ``checkpoint_dir`` the draws
    come in chunks of ``checkpoint_every``, each written atomically with the pickled
    numpyro state; without it, in one ``MCMC.run`` (numpyro recompiles its sampler on
    every ``run`` call, so chunks cost a compilation each)."""
    from numpyro.infer import MCMC, NUTS

    pts = as_points(points, target.prior.input_dim)
    c = config
    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir)
    # numpyro's MCMC.run compiles anew on every call: chunk only when checkpointing
    chunked = ckpt is not None or stop_after_chunks is not None
    n_chunks, chunk = _chunking(c.samples, c.checkpoint_every if chunked else c.samples)
    fingerprint = _fingerprint(target, pts, c, chunk) + "numpyro"
    kernel = NUTS(numpyro_model(target, pts), target_accept_prob=c.target_accept,
                  max_tree_depth=c.max_tree_depth)
    mcmc = MCMC(kernel, num_warmup=c.warmup, num_samples=chunk, num_chains=c.chains,
                chain_method=chain_method if c.chains > 1 else "sequential",
                progress_bar=False)
    fields_ = ("diverging", "num_steps", "accept_prob", "potential_energy", "energy")
    key = jax.random.PRNGKey(c.seed)
    t0 = time.perf_counter()
    state_path = None if ckpt is None else ckpt / NUMPYRO_STATE
    done, chunks, resumed_seconds, warm = 0, [], 0.0, None
    if resume and state_path is not None and state_path.exists():
        with open(state_path, "rb") as fh:
            saved = pickle.load(fh)
        if saved["fingerprint"] != fingerprint:
            raise ConfigError(f"resume: the checkpoint {state_path} was made for different "
                              "work; remove it or use another --out")
        mcmc.post_warmup_state, warm, done = saved["state"], saved["warmup"], saved["done"]
        for k in range(done):
            chunk_data = _load(ckpt / _chunk_file(k), fingerprint)
            resumed_seconds += float(chunk_data.pop("seconds"))
            chunks.append(chunk_data)
    if warm is None:
        init = unflatten_sites(target, np.asarray(initial_positions(target, c.chains, c.seed)))
        if c.chains == 1:
            init = {k: val[0] for k, val in init.items()}
        mcmc.warmup(jax.random.fold_in(key, 1), init_params=init, collect_warmup=True,
                    extra_fields=("num_steps", "diverging"))
        extra = mcmc.get_extra_fields(group_by_chain=True)
        warm = {"n_steps": np.sum(np.asarray(extra["num_steps"]), axis=1),
                "diverging": np.sum(np.asarray(extra["diverging"]), axis=1),
                "seconds": time.perf_counter() - t0}
    t1 = time.perf_counter()
    with progress_bar(progress, c.samples, f"NUTS {width_label(target.prior)}",
                      "draws per chain") as advance:
        advance(min(done * chunk, c.samples))
        for k in range(done, n_chunks):
            tk = time.perf_counter()
            mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=fields_)
            samples = mcmc.get_samples(group_by_chain=True)
            extra = mcmc.get_extra_fields(group_by_chain=True)
            z = flatten_sites(target, samples)
            out = {"z": z, "phi": np.asarray(samples["phi"]),
                   "lp": -np.asarray(extra["potential_energy"]),
                   "diverging": np.asarray(extra["diverging"]),
                   "n_steps": np.asarray(extra["num_steps"]),
                   "acceptance_rate": np.asarray(extra["accept_prob"]),
                   "energy": np.asarray(extra["energy"])}
            mcmc.post_warmup_state = mcmc.last_state
            chunks.append(out)
            if ckpt is not None:
                _savez(ckpt / _chunk_file(k), fingerprint=fingerprint,
                       seconds=np.asarray(time.perf_counter() - tk), **out)
                state = jax.device_get(mcmc.last_state)
                _save_atomic(state_path, lambda fh, s=state, kk=k: pickle.dump(
                    {"fingerprint": fingerprint, "state": s, "warmup": warm, "done": kk + 1},
                    fh))
            advance(min((k + 1) * chunk, c.samples))
            if stop_after_chunks is not None and k + 1 - done >= stop_after_chunks \
                    and k + 1 < n_chunks:
                raise RunInterrupted((k + 1) * chunk * c.chains, c.samples * c.chains)
    draws = {name: np.concatenate([ch[name] for ch in chunks], axis=1)[:, :c.samples]
             for name in chunks[0]}
    step_size = np.asarray(mcmc.last_state.adapt_state.step_size).reshape(c.chains)
    sampling_seconds = time.perf_counter() - t1 + resumed_seconds
    return MCMCResult(
        target=target, points=pts, config=c, z=draws.pop("z"),
        phi=draws.pop("phi").astype(np.float64), stats=draws,
        warmup={"n_steps": np.asarray(warm["n_steps"]),
                "diverging": np.asarray(warm["diverging"])},
        step_size=step_size, inverse_mass_matrix=None,
        seconds={"warmup": float(warm["seconds"]), "sampling": sampling_seconds,
                 "total": float(warm["seconds"]) + sampling_seconds, "devices": 1})


def sample(prior: Prior, interaction: Interaction | None, points,
           config: MCMCConfig = MCMCConfig(), **kwargs) -> MCMCResult:
    """Sample ``P(theta) exp(-int_box V(phi_theta))`` with ``config.sampler``."""
    target = make_target(prior, interaction)
    if config.sampler == "numpyro":
        kwargs.pop("devices", None)
        return run_numpyro(target, points, config, **kwargs)
    return run_nuts(target, points, config, **kwargs)


# -----------------------------------------------------------------------------
# correlators from chains, autocorrelation, diagnostics
# -----------------------------------------------------------------------------
def _products(phi: np.ndarray, order: int, limit: int = 256):
    """Monomials ``phi_a phi_b ...`` over distinct index tuples (at most ``limit``)."""
    combos = list(itertools.combinations_with_replacement(range(phi.shape[-1]), order))
    if len(combos) > limit:
        pick = np.linspace(0, len(combos) - 1, limit).round().astype(int)
        combos = [combos[i] for i in pick]
    prod = np.ones(phi.shape[:-1] + (len(combos),))
    for j in range(order):
        prod = prod * phi[..., [cmb[j] for cmb in combos]]
    return combos, prod


def _az_dataset(arrays: dict):
    import xarray as xr

    return xr.Dataset({k: (("chain", "draw", f"{k}_dim"), a) if a.ndim == 3
                       else (("chain", "draw"), a) for k, a in arrays.items()})


def _arviz(fn, data, **kw):
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(az, fn)(data, **kw)


def autocorrelation_times(phi: np.ndarray, max_order: int = 4) -> dict[str, np.ndarray]:
    """Integrated autocorrelation time ``tau = (chains * draws) / ESS_mean`` of the
    correlator observables ``phi_a phi_b`` (G2) and ``phi_a phi_b phi_c phi_d`` (G4)."""
    out = {}
    for order in (2, 4):
        if order > max_order:
            continue
        _, prod = _products(phi, order)
        ess = _arviz("ess", _az_dataset({"x": prod}), method="mean")["x"].values
        out[f"G{order}"] = phi.shape[0] * phi.shape[1] / np.asarray(ess, dtype=np.float64)
    return out


@functools.lru_cache(maxsize=16)
def _block_estimator(n_points: int, max_order: int, n_batches: int):
    est = moment_estimator(n_points, max_order, n_batches)
    return est, jax.jit(est.update)


def chain_correlators(phi: np.ndarray, max_order: int = 4, *, tau: float | None = None,
                      block_tau: float = 20.0, max_blocks: int = 16):
    """Correlators of MCMC draws ``phi`` ``(chains, draws, P)`` with block-jackknife errors.

    Batches of the streaming estimator are contiguous blocks of ``L >= block_tau * tau``
    draws within a chain (at most ``max_blocks`` per chain; leading draws that do not
    fill a block are dropped), so the errors include the autocorrelation. ``tau``
    defaults to the largest integrated autocorrelation time of the correlator
    observables. Returns ``(Correlators, blocking info)``.
    """
    phi = np.asarray(phi, dtype=np.float64)
    n_chains, n_draws, n_points = phi.shape
    if tau is None:
        times = autocorrelation_times(phi, max_order)
        tau = float(np.nanmax(np.concatenate([t.ravel() for t in times.values()])))
    tau = 1.0 if not np.isfinite(tau) else max(tau, 1.0)
    per_chain = int(min(max_blocks, max(1, n_draws // math.ceil(block_tau * tau))))
    if n_chains * per_chain < 2:
        per_chain = 2
    length = n_draws // per_chain
    used = phi[:, n_draws - per_chain * length:]
    batches = used.reshape(n_chains, per_chain, length, n_points)
    batches = batches.transpose(2, 0, 1, 3).reshape(length, n_chains * per_chain, n_points)
    est, update = _block_estimator(n_points, max_order, n_chains * per_chain)
    with jax.enable_x64(True):
        state = update(est.init(), jnp.asarray(batches))
    corr = est.finalize(jax.tree.map(np.asarray, state))
    info = {"tau_max": tau, "block_length": length, "blocks_per_chain": per_chain,
            "batches": n_chains * per_chain, "draws_used": per_chain * length * n_chains,
            "block_over_tau": length / tau}
    return corr, info


def diagnostics(result: MCMCResult, max_order: int = 4) -> dict:
    """R-hat (rank-normalised, split), bulk and tail ESS over the parameters and the
    field on the points, and over the correlator observables; divergences; integrated
    autocorrelation times; gradient evaluations; acceptance; NaN log-densities."""
    params = result.params()
    posterior = {**params, "phi": result.phi}
    flat = {k: x.reshape(x.shape[:2] + (-1,)) for k, x in posterior.items()}
    ds = _az_dataset(flat)

    def summary(data):
        rhat = _arviz("rhat", data)
        bulk = _arviz("ess", data, method="bulk")
        tail = _arviz("ess", data, method="tail")
        vals = lambda d: np.concatenate([np.ravel(d[k].values) for k in d.data_vars])
        r, b, t = vals(rhat), vals(bulk), vals(tail)
        return {"rhat_max": _nanmax(r), "ess_bulk_min": _nanmin(b), "ess_tail_min": _nanmin(t)}

    out = {"parameters": summary(ds)}
    obs = {}
    for order in (2, 4):
        if order <= max_order:
            obs[f"G{order}"] = _products(result.phi, order)[1]
    out["correlator_observables"] = summary(_az_dataset(obs))
    taus = autocorrelation_times(result.phi, max_order)
    out["tau_int"] = {k: {"max": _nanmax(t), "median": float(np.nanmedian(t))}
                      for k, t in taus.items()}
    lp = result.stats["lp"]
    out["divergences"] = int(np.sum(result.stats["diverging"]))
    out["warmup_divergences"] = int(np.sum(result.warmup["diverging"]))
    out["nonfinite_logdensity"] = int(np.sum(~np.isfinite(lp)))
    out["nonfinite_fields"] = int(np.sum(~np.isfinite(result.phi)))
    out["acceptance_rate"] = float(np.nanmean(result.stats["acceptance_rate"]))
    out["step_size"] = [float(s) for s in result.step_size]
    out["gradient_evaluations"] = result.gradient_evaluations
    out["warmup_gradient_evaluations"] = int(np.sum(result.warmup["n_steps"]))
    out["mean_steps_per_draw"] = float(np.mean(result.stats["n_steps"]))
    out["chains"], out["draws"] = result.chains, result.draws
    out["seconds"] = result.seconds
    rhat = max(out["parameters"]["rhat_max"], out["correlator_observables"]["rhat_max"])
    problems = []
    if out["divergences"]:
        problems.append(f"{out['divergences']} divergent transitions")
    if out["nonfinite_logdensity"] or out["nonfinite_fields"]:
        problems.append(f"{out['nonfinite_logdensity']} non-finite log-densities, "
                        f"{out['nonfinite_fields']} non-finite field values")
    if not rhat < RHAT_MAX:
        problems.append(f"R-hat {rhat:.4f} >= {RHAT_MAX}")
    out["rhat_max"] = rhat
    out["problems"] = problems
    out["ok"] = not problems
    return out


def _nanmax(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmax(x)) if np.any(np.isfinite(x)) else math.nan


def _nanmin(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmin(x)) if np.any(np.isfinite(x)) else math.nan


# -----------------------------------------------------------------------------
# cross-checks from free draws: reweighting and first-order perturbation theory
# -----------------------------------------------------------------------------
@dataclasses.dataclass
class FreeDrawChecks:
    """Cross-checks from ``n_samples`` free draws.

    ``reweighted[i]``: ``{"G2", "G4c"}`` Estimates at ``couplings[i]`` by importance
    reweighting ``E_0[O e^{-lambda S}] / E_0[e^{-lambda S}]`` (S = int_box V per unit
    coupling), and ``ess[i] = (sum w)^2 / sum w^2``; ``free``: the same at lambda = 0;
    ``slope``: first-order perturbation theory at finite N, ``dG/dlambda`` at 0.
    """

    couplings: tuple[float, ...]
    n_samples: int
    reweighted: list
    ess: list
    free: dict
    slope: dict


@functools.lru_cache(maxsize=16)
def _weighted_sums_step(prior, unit: Interaction, n_points: int, n_batches: int, chunk: int):
    """Jitted ``(state, key, start, n_total, points, couplings, shift) -> state``: adds free
    networks ``start .. start + chunk - 1`` to weighted moment sums, one channel per
    coupling (weights ``e^{-lambda (S - shift)}``) and one with weight S."""
    rows = chunk // n_batches

    def step(state, key, start, n_total, points, lam, shift):
        idx = start + jnp.arange(chunk, dtype=jnp.int64)
        keys = network_keys(key, idx)
        params = jax.vmap(prior.sample)(keys)
        phi = jax.vmap(lambda p: fields(prior, p, points))(params).astype(jnp.float64)
        s = jax.vmap(lambda p: unit.action(prior, p))(params).astype(jnp.float64) - shift
        mask = (idx < n_total).astype(jnp.float64)
        phi = phi.reshape(rows, n_batches, n_points)
        s, mask = s.reshape(rows, n_batches), mask.reshape(rows, n_batches)
        w = jnp.exp(-lam[:, None, None] * s[None]) * mask[None]
        w = jnp.concatenate([w, (s * mask)[None]])  # last channel: S (perturbation theory)
        w = jnp.where(jnp.isfinite(w), w, 0.0)
        phi = jnp.where(mask[..., None] > 0, phi, 0.0)
        phi2 = phi[..., :, None] * phi[..., None, :]
        inc = {"w": jnp.sum(w, axis=1), "w2": jnp.sum(w * w, axis=1),
               "m1": jnp.einsum("crb,rbi->cbi", w, phi),
               "m2": jnp.einsum("crb,rbij->cbij", w, phi2),
               "m3": jnp.einsum("crb,rbij,rbk->cbijk", w, phi2, phi),
               "m4": jnp.einsum("crb,rbij,rbkl->cbijkl", w, phi2, phi2),
               "nonfinite": jnp.sum((~jnp.isfinite(s)) * mask)}
        return jax.tree.map(jnp.add, state, inc)

    return jax.jit(step, donate_argnums=0)


def free_draw_crosschecks(prior: Prior, interaction: Interaction, points, couplings,
                          n_samples: int, seed: int = 0, *, chunk_size: int = 16384,
                          n_batches: int = 64) -> FreeDrawChecks:
    """Importance reweighting at ``couplings`` and first-order perturbation theory (finite N).

    Free network ``i`` is drawn from ``fold_in`` of ``PRNGKey(seed)`` as in
    :func:`nnft.ensemble.run` and lands in jackknife batch ``i mod n_batches``. The
    couplings multiply :meth:`nnft.insertion.Interaction.unit` (lambda for phi4).
    First order: ``dG2/dlambda = -Cov_0(phi_a phi_b, S)`` and ``dG4c/dlambda`` its
    image under the moments -> cumulants map (a jvp), with jackknife errors.
    """
    pts = as_points(points, prior.input_dim)
    couplings = tuple(float(x) for x in couplings)
    for i, lam in enumerate(couplings):
        v.non_negative(f"couplings[{i}]", lam)
    v.positive_int("n_samples", n_samples, minimum=n_batches)
    unit = interaction.unit()
    shift = unit.box.volume * unit.potential.lower_bound()
    n_points, n_ch = len(pts), len(couplings) + 2
    lam_all = (0.0, *couplings)
    chunk = max(n_batches, math.ceil(chunk_size / n_batches) * n_batches)
    with jax.enable_x64(True):
        state = {"w": jnp.zeros((n_ch, n_batches)), "w2": jnp.zeros((n_ch, n_batches)),
                 **{f"m{k}": jnp.zeros((n_ch, n_batches) + (n_points,) * k)
                    for k in range(1, 5)}, "nonfinite": jnp.zeros(())}
        step = _weighted_sums_step(prior, unit, n_points, n_batches, chunk)
        lam = jnp.asarray(lam_all, jnp.float64)
        key = jax.random.PRNGKey(seed)
        points_dev = jnp.asarray(pts, jnp.dtype(getattr(prior, "dtype", "float32")))
        for start in range(0, n_samples, chunk):
            state = step(state, key, jnp.int64(start), jnp.int64(n_samples), points_dev, lam,
                         jnp.float64(shift))
        sums = jax.tree.map(np.asarray, state)
    if sums["nonfinite"]:
        raise FloatingPointError(f"int_box V was not finite for {int(sums['nonfinite'])} of "
                                 f"{n_samples} free draws; the potential or the rule is broken")
    return _finalize_checks(sums, couplings, n_samples, n_batches)


def _moments_with_replicates(sums, channel):
    """Moments (total + leave-one-batch-out replicates on a leading axis) of one channel."""
    w = sums["w"][channel]
    tot = w.sum()
    denom = np.concatenate([[tot], tot - w])
    out = {}
    for k in range(1, 5):
        s = sums[f"m{k}"][channel]
        t = s.sum(axis=0)
        both = np.concatenate([t[None], t[None] - s], axis=0)
        out[k] = both / denom.reshape((-1,) + (1,) * k)
    return out


def _jackknife(both: np.ndarray) -> Estimate:
    reps = both[1:]
    b = reps.shape[0]
    dev = reps - reps.mean(axis=0)
    return Estimate(np.asarray(both[0]), np.sqrt((b - 1) / b * np.sum(dev * dev, axis=0)))


def _finalize_checks(sums, couplings, n_samples, n_batches) -> FreeDrawChecks:
    with jax.enable_x64(True):
        cumulants = jax.jit(lambda m: cumulants_from_moments(m, 4))
        estimates, ess = [], []
        for ch in range(len(couplings) + 1):
            m = _moments_with_replicates(sums, ch)
            kappa = cumulants({k: jnp.asarray(x) for k, x in m.items()})
            estimates.append({"G2": _jackknife(m[2]), "G4c": _jackknife(np.asarray(kappa[4]))})
            ess.append(float(sums["w"][ch].sum() ** 2 / sums["w2"][ch].sum()))
        # first order: moments m_k and covariances c_k = E[S phi^k] - E[S] E[phi^k]
        m = _moments_with_replicates(sums, 0)
        s_sums = {"w": sums["w"][-1], **{f"m{k}": sums[f"m{k}"][-1] for k in range(1, 5)}}
        w0 = sums["w"][0]
        n_both = np.concatenate([[w0.sum()], w0.sum() - w0])
        mean_s = np.concatenate([[s_sums["w"].sum()], s_sums["w"].sum() - s_sums["w"]]) / n_both
        cov = {}
        for k in range(1, 5):
            s = s_sums[f"m{k}"]
            t = s.sum(axis=0)
            both = np.concatenate([t[None], t[None] - s], axis=0) / n_both.reshape(
                (-1,) + (1,) * k)
            cov[k] = both - mean_s.reshape((-1,) + (1,) * k) * m[k]

        def g(mom):
            return mom[2], cumulants_from_moments(mom, 4)[4]

        primal = {k: jnp.asarray(x) for k, x in m.items()}
        tangent = {k: -jnp.asarray(x) for k, x in cov.items()}
        _, (d2, d4) = jax.jvp(g, (primal,), (tangent,))
    return FreeDrawChecks(couplings=couplings, n_samples=n_samples, reweighted=estimates[1:],
                          ess=ess[1:], free=estimates[0],
                          slope={"G2": _jackknife(np.asarray(d2)),
                                 "G4c": _jackknife(np.asarray(d4))})


def fit_coupling_slope(couplings, values, stderrs, *, intercept=None, quadratic=False):
    """Weighted least squares of ``G(lambda)`` against lambda; returns
    ``(slope, slope_stderr, chi2_per_dof)``. With ``intercept`` (e.g. the exact free
    value) the fit is ``G - intercept = s lambda (+ c lambda^2)``, else ``a + s lambda (...)``."""
    lam = np.asarray(couplings, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    err = np.asarray(stderrs, dtype=np.float64)
    cols = [] if intercept is not None else [np.ones_like(lam)]
    slope_col = len(cols)
    cols.append(lam)
    if quadratic:
        cols.append(lam**2)
    if intercept is not None:
        y = y - intercept
    a = np.stack(cols, axis=1) / err[:, None]
    b = y / err
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    cov = np.linalg.inv(a.T @ a)
    dof = len(lam) - len(cols)
    chi2 = float(np.sum((a @ coef - b) ** 2) / dof) if dof > 0 else math.nan
    return float(coef[slope_col]), float(np.sqrt(cov[slope_col, slope_col])), chi2


def crosscheck_table(name: str, nuts: Estimate, checks: FreeDrawChecks | None,
                     pt_inf: dict | None, coupling: float, theory_free=None,
                     entries=None) -> dict:
    """Per distinct entry: NUTS, reweighted (with combined z), first-order PT at finite
    and infinite N. Returns plain data (lists) for summary.json and the console."""
    order = nuts.value.ndim
    if entries is None:
        entries = list(itertools.combinations_with_replacement(range(nuts.value.shape[0]),
                                                                order))
    rows = []
    for e in entries:
        row = {"entry": list(e), "nuts": float(nuts.value[e]), "nuts_err": float(nuts.stderr[e])}
        if checks is not None and checks.reweighted:
            rw = checks.reweighted[0][name]
            row["reweighted"], row["reweighted_err"] = float(rw.value[e]), float(rw.stderr[e])
            comb = math.hypot(row["nuts_err"], row["reweighted_err"])
            row["z"] = (row["nuts"] - row["reweighted"]) / comb if comb > 0 else math.nan
        if checks is not None and checks.slope:
            base = (theory_free[e] if theory_free is not None
                    else float(checks.free[name].value[e]))
            base_err = 0.0 if theory_free is not None else float(checks.free[name].stderr[e])
            sl = checks.slope[name]
            row["pt_finite_N"] = float(base + coupling * sl.value[e])
            row["pt_finite_N_err"] = float(math.hypot(base_err, coupling * sl.stderr[e]))
            row["slope_finite_N"], row["slope_finite_N_err"] = (float(sl.value[e]),
                                                                float(sl.stderr[e]))
        if pt_inf is not None:
            g0, slope = pt_inf[name]
            row["pt_infinite_N"] = float(g0[e] + coupling * slope[e])
            row["slope_infinite_N"] = float(slope[e])
        rows.append(row)
    return {"rows": rows}


# -----------------------------------------------------------------------------
# nnft run on a card with [interaction] / [mcmc]
# -----------------------------------------------------------------------------
def _coupling(interaction: Interaction | None) -> float:
    """The interaction's coupling (1 for polynomial/custom: their couplings scale V)."""
    if interaction is None:
        return 0.0
    pot = interaction.potential
    return pot.coupling if pot.kind in ("phi4", "phi6", "mass") else 1.0


def run_mcmc_card(card, out_dir, *, resume: bool = False, progress: bool = True,
                  console=None) -> dict:
    """Sample the card's theory, measure correlators with autocorrelation-aware errors,
    run the diagnostics and cross-checks, write results.nc, summary.json,
    posterior.nc (arviz InferenceData) and plots into ``out_dir``, print a report."""
    from nnft import report, results

    out_dir = Path(out_dir)
    if console is None:
        from rich.console import Console

        console = Console()
    prior = card.prior()
    interaction = card.interaction
    config = card.mcmc if card.mcmc is not None else MCMCConfig(seed=card.seed)
    free = interaction is None or interaction.potential.is_free
    target = make_target(prior, interaction)
    result = (run_numpyro(target, card.points, config, checkpoint_dir=out_dir, resume=resume,
                          progress=progress) if config.sampler == "numpyro" else
              run_nuts(target, card.points, config, checkpoint_dir=out_dir, resume=resume,
                       progress=progress))
    corr, blocking = chain_correlators(result.phi, card.max_order)
    diag = diagnostics(result, card.max_order)
    quad = None
    if interaction is not None and interaction.method == "quadrature":
        thin = result.z[:, :: max(1, result.draws // 8)][:, :8].reshape(-1, result.z.shape[-1])
        draws = jax.vmap(target.params)(jnp.asarray(thin))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", QuadratureWarning)
            check = check_quadrature(prior, interaction, params=draws)
        quad = {"nodes": list(check.nodes), "finer": list(check.finer),
                "rel_error_on_posterior_draws": check.rel_error, "converged": check.converged}
        for w in caught:
            diag["problems"].append(str(w.message))
            diag["ok"] = False
    names = results.measured(corr)
    theory = results.theory_for(prior, card.points, names) if free else {}
    coupling = _coupling(interaction)
    checks = pt_inf = None
    if not free and (config.reweighting or config.perturbation):
        checks = free_draw_crosschecks(prior, interaction, card.points,
                                       [1.0 if coupling == 0 else coupling], card.n_samples,
                                       card.seed, chunk_size=min(card.chunk_size, 16384),
                                       n_batches=card.n_batches)
        if not config.reweighting:
            checks.reweighted, checks.ess = [], []
        if not config.perturbation:
            checks.slope = {}
    if not free and config.perturbation:
        try:
            pt_inf = perturbation_infinite_n(prior, interaction, card.points)
        except ConfigError as err:
            console.print(f"[yellow]infinite-N perturbation theory skipped: {err}[/yellow]")
    exact_free = {}
    if not free:
        for n, fn in (("G2", prior.g2), ("G4c", prior.g4c)):
            val = fn(card.points)
            exact_free[n] = None if val is None else np.asarray(val)
    tables = {}
    for name, kind, order in (("G2", "full", 2), ("G4c", "connected", 4)):
        if order in corr.full:
            tables[name] = crosscheck_table(name, getattr(corr, kind)[order], checks, pt_inf,
                                            coupling, exact_free.get(name))
    if jax.process_index() != 0:
        return {"diagnostics": diag}

    attrs = {"card": card.raw, "architecture": prior.hyperparameters(), "seed": config.seed,
             "sampler": config.sampler, "source": str(card.source),
             "interaction": None if interaction is None else interaction.describe(),
             "mcmc": config.to_dict(), "seconds": result.seconds["total"]}
    ds = results.to_dataset(corr, card.points, theory, {k: val for k, val in attrs.items()
                                                         if val is not None})
    dims = {2: ("p1", "p2"), 4: ("p1", "p2", "p3", "p4")}
    if checks is not None:
        for name, order in (("G2", 2), ("G4c", 4)):
            if order not in corr.full:
                continue
            if checks.reweighted:
                ds[f"{name}_reweighted"] = (dims[order], checks.reweighted[0][name].value)
                ds[f"{name}_reweighted_stderr"] = (dims[order], checks.reweighted[0][name].stderr)
            if checks.slope:
                ds[f"{name}_slope_finite_N"] = (dims[order], checks.slope[name].value)
                ds[f"{name}_slope_finite_N_stderr"] = (dims[order], checks.slope[name].stderr)
    if pt_inf is not None:
        for name, order in (("G2", 2), ("G4c", 4)):
            if order in corr.full:
                ds[f"{name}_slope_infinite_N"] = (dims[order], pt_inf[name][1])
    results.write_netcdf(ds, out_dir / "results.nc")
    write_inference_data(result.to_inference_data(), out_dir / "posterior.nc")

    summary = results.summary(corr, card.points, theory, prior.hyperparameters())
    summary.update({
        "sampler": config.sampler, "mcmc": config.to_dict(),
        "interaction": None if interaction is None else interaction.describe(),
        "coupling": coupling, "diagnostics": diag, "blocking": blocking, "quadrature": quad,
        "crosschecks": {name: t for name, t in tables.items()},
        "ok": diag["ok"], "problems": diag["problems"], "seconds": result.seconds["total"]})
    if checks is not None:
        summary["crosschecks"]["n_free_draws"] = checks.n_samples
        summary["crosschecks"]["reweighting_ess"] = checks.ess[0] if checks.ess else None
    if free:
        summary["z"] = report.z_summaries(corr, theory)
    results.write_json(summary, out_dir / "summary.json")
    report.plot_correlators(out_dir, prior, corr, card.points, theory)
    if tables and not free:
        plot_crosschecks(out_dir / "crosschecks.png", tables, prior, coupling)
    _print(console, prior, interaction, config, corr, theory, tables, diag, blocking, checks,
           free, card.points, result)
    return summary


def plot_crosschecks(path: Path, tables: dict, prior: Prior, coupling: float) -> None:
    """NUTS, reweighting and first-order perturbation theory entry by entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(6 * len(tables), 4), squeeze=False)
    for ax, (name, table) in zip(axes[0], tables.items()):
        rows = table["rows"][:12]
        x = np.arange(len(rows))
        ax.errorbar(x - 0.15, [r["nuts"] for r in rows], yerr=[r["nuts_err"] for r in rows],
                    fmt="o", ms=4, capsize=3, label="NUTS")
        if "reweighted" in rows[0]:
            ax.errorbar(x + 0.15, [r["reweighted"] for r in rows],
                        yerr=[r["reweighted_err"] for r in rows], fmt="s", ms=4, capsize=3,
                        label="reweighted free draws")
        if "pt_finite_N" in rows[0]:
            ax.plot(x, [r["pt_finite_N"] for r in rows], "_", ms=14, mew=2,
                    label="1st-order PT, finite N")
        if "pt_infinite_N" in rows[0]:
            ax.plot(x, [r["pt_infinite_N"] for r in rows], "x", color="k",
                    label="1st-order PT, N = inf")
        ax.set_xticks(x, ["".join(map(str, r["entry"])) for r in rows], rotation=60,
                      fontsize=7)
        ax.set_xlabel("point indices")
        ax.set_title(f"{name}, {prior.name} N={getattr(prior, 'width', '?')}, "
                     f"coupling {coupling:g}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(val, err=None) -> str:
    if val is None or (isinstance(val, float) and not math.isfinite(val)):
        return "—"
    return f"{val:.5g}" if err is None else f"{val:.5g} ± {err:.2g}"


def _print(console, prior, interaction, config, corr, theory, tables, diag, blocking, checks,
           free, points, result) -> None:
    from rich.table import Table

    from nnft import report

    hp = ", ".join(f"{k}={val}" for k, val in prior.hyperparameters().items()
                   if k not in ("name", "dtype"))
    inter = ("free theory" if interaction is None else
             ", ".join(f"{k}={val}" for k, val in interaction.describe().items()))
    console.print(f"[bold]{prior.name}[/bold] ({hp}); {inter}; {config.sampler} NUTS, "
                  f"{result.chains} chains x {result.draws} draws (+{config.warmup} warmup) "
                  f"in {result.seconds['total']:.1f} s on {result.seconds['devices']} device(s)")
    if free:
        report.print_report(console, corr, points, theory, "free theory: MCMC against exact")
    for name, table in tables.items():
        if free:
            break
        t = Table(title=f"{name} (errors: block jackknife, blocks of "
                  f"{blocking['block_length']} draws = {blocking['block_over_tau']:.0f} tau)",
                  title_justify="left", show_edge=False)
        for col in ("points", "NUTS", "reweighted", "z", "1st order, N", "1st order, N=inf"):
            t.add_column(col, justify="right")
        for row in table["rows"][:12]:
            z = row.get("z")
            t.add_row(", ".join(report._fmt_point(points[i]) for i in row["entry"]),
                      _fmt(row["nuts"], row["nuts_err"]),
                      _fmt(row.get("reweighted"), row.get("reweighted_err")),
                      "—" if z is None else f"{z:+.2f}",
                      _fmt(row.get("pt_finite_N"), row.get("pt_finite_N_err")),
                      _fmt(row.get("pt_infinite_N")),
                      style="red" if z is not None and abs(z) > 4 else None)
        zs = [abs(r["z"]) for r in table["rows"] if r.get("z") is not None
              and math.isfinite(r["z"])]
        if zs:
            t.caption = (f"{len(zs)} distinct entries: max |z| (NUTS vs reweighting) = "
                         f"{max(zs):.2f}")
            t.caption_justify = "left"
        console.print(t)
    if checks is not None and checks.ess:
        console.print(f"reweighting: {checks.n_samples:,} free draws, ESS of the weights "
                      f"{checks.ess[0]:,.0f}" + ("" if checks.ess[0] > 1e4 else
                                                  " [yellow](< 1e4: not reliable)[/yellow]"))
    d = diag
    t = Table(title="diagnostics", title_justify="left", show_edge=False)
    for col in ("", "R-hat max", "ESS bulk min", "ESS tail min"):
        t.add_column(col, justify="right")
    for label, key in (("parameters + fields", "parameters"),
                       ("correlator observables", "correlator_observables")):
        s = d[key]
        t.add_row(label, _fmt(s["rhat_max"]), _fmt(s["ess_bulk_min"]), _fmt(s["ess_tail_min"]))
    taus = ", ".join(f"{k}: max {val['max']:.2f}, median {val['median']:.2f}"
                     for k, val in d["tau_int"].items())
    t.caption = (f"divergences {d['divergences']} (warmup {d['warmup_divergences']}); "
                 f"acceptance {d['acceptance_rate']:.2f}; {d['mean_steps_per_draw']:.1f} "
                 f"gradients per draw; tau_int {taus}")
    t.caption_justify = "left"
    console.print(t)
    if d["problems"]:
        console.print("[bold red]WARNING:[/bold red] " + "; ".join(d["problems"])
                      + " — the numbers above are not trustworthy")


__all__ = [
    "FreeDrawChecks",
    "MCMCConfig",
    "MCMCResult",
    "autocorrelation_times",
    "chain_correlators",
    "chain_mesh",
    "crosscheck_table",
    "diagnostics",
    "fit_coupling_slope",
    "free_draw_crosschecks",
    "initial_positions",
    "parse_mcmc_section",
    "run_mcmc_card",
    "run_numpyro",
    "run_nuts",
    "sample",
    "write_inference_data",
]
