"""MCMC draws and what is read off them: :class:`MCMCResult` (arviz ``InferenceData``),
integrated autocorrelation times and correlators with block-jackknife errors.

:func:`chain_correlators` is the streaming moment estimator of :mod:`nnft.estimators`
with its jackknife batches being blocks: contiguous runs of draws within a chain, much
longer than the autocorrelation time, so the errors include the autocorrelation.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nnft.engine.drive import RunInfo
from nnft.engine.files import atomic_write
from nnft.estimators import moment_estimator
from nnft.interaction.target import Target
from nnft.mcmc.config import MCMCConfig


@dataclasses.dataclass
class MCMCResult:
    """Draws of one run. ``z``: unconstrained positions ``(chains, draws, dim)``; ``phi``:
    the field on ``points`` ``(chains, draws, P)``; ``stats``: per-draw sampler
    statistics ``(chains, draws)`` (diverging, n_steps, acceptance_rate, lp, energy);
    ``warmup``: per-chain warmup totals (n_steps, diverging); ``step_size`` per chain;
    ``info``: the :class:`~nnft.engine.RunInfo` of the :func:`~nnft.engine.drive` call."""

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
    info: RunInfo | None = None  # the driver's bookkeeping (resumed from, checkpoint)

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
            dims[name] = _param_dims(name, x.shape[2:], getattr(self.target.prior, "width", -1),
                                     self.points.shape[1])
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


def _param_dims(name: str, shape, width: int, d: int) -> list[str]:
    """Named axes of a parameter: ``neuron`` (the width), ``dim`` (input components, as
    for ``points``), else ``<name>_axis<i>``."""
    out = []
    for i, size in enumerate(shape):
        if size == width and "neuron" not in out:
            out.append("neuron")
        elif size == d and "dim" not in out:
            out.append("dim")
        else:
            out.append(f"{name}_axis{i}")
    return out


def write_inference_data(idata, path: Path) -> None:
    """``idata.to_netcdf`` atomically (temporary file in the same folder, then rename)."""
    atomic_write(Path(path), lambda tmp: idata.to_netcdf(tmp, engine="h5netcdf"))


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
    corr = est.finalize(jax.tree.map(np.asarray, state), keep_replicates=True)
    info = {"tau_max": tau, "block_length": length, "blocks_per_chain": per_chain,
            "batches": n_chains * per_chain, "draws_used": per_chain * length * n_chains,
            "block_over_tau": length / tau}
    return corr, info
