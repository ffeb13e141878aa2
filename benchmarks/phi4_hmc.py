"""phi^4 NUTS benchmark: ratios measured in one run (STYLE.md rule 12).

    python benchmarks/phi4_hmc.py [--quick] [--out PATH] [--rounds R]

Target: the phi^4-deformed parameter density of Cos-net (d = 1, width 10; and
width 100 without ``--quick``), ``P(theta) exp(-int_box V(phi_theta))`` with
``V = 0.1 phi^4`` on the box [-1, 1], 24 Gauss-Legendre nodes
(``nnft.interaction.make_target``), observed on the points 0, 0.3, 0.6, 0.9. What is
measured, each side on the same work (same chains, warmup, draws and initial
positions, float32), in the same run, interleaved round by round (seed r in
round r, the order of the two sides alternating) so a busy machine slows both
alike:

(a) ESS per second and ESS per gradient evaluation of our default sampler
    (``nnft.mcmc.run_nuts``: blackjax NUTS, window adaptation, default
    ``MCMCConfig`` except chains/warmup/samples) against numpyro's NUTS with
    numpyro's defaults, chains vectorized. ESS: arviz bulk ESS, minimum (and
    median) over the field ``phi_a`` on the points and the G2 observables
    ``phi_a phi_b`` (a <= b). Time: the sampling phase only, in steady state
    (every program compiled by a first, untimed run with the same settings);
    warmup reported separately. Gradient evaluations: leapfrog steps summed over
    chains (blackjax ``num_integration_steps``, numpyro ``num_steps``). Reported:
    the median over rounds of the per-round ratios ours / numpyro.

    numpyro side. ``numpyro.infer.MCMC(NUTS(model), chain_method="vectorized")``
    re-traces and recompiles its sampling loop on *every* ``warmup``/``run`` call
    with numpyro 0.22 on jax 0.10 (``fori_collect`` re-wraps its cached body in a
    fresh ``jit`` that is a static argument of the loop, so the jit cache never
    hits; measured and printed here as compilations per call). Its steady state is
    therefore measured on numpyro's own NUTS kernel driven the way ``MCMC`` drives
    it (``numpyro.infer.util.initialize_model`` + ``numpyro.infer.hmc.hmc(...,
    algo="NUTS")`` with the defaults of ``numpyro.infer.NUTS``, chains vmapped as
    in ``chain_method="vectorized"``, the ``phi`` site by numpyro's postprocess
    function), compiled once: "numpyro kernel", the reference of the ratios. The
    ``MCMC`` API itself is also run once per target where asked (one ``MCMC``
    object: ``warmup``, then ``run`` twice with the same shapes) and reported with
    its wall times as a user gets them (recompilations included), the number of
    XLA compilations in each call, and an estimate of its steady state (wall time
    less the XLA compile and lowering time that ``jax.monitoring`` reports).

(b) Scaling over devices: ``run_nuts`` with 8 chains in two subprocesses, one
    with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (chains
    ``shard_map``-ped over 4 CPU "devices") and one with 1, each compiled once
    and then timed in alternating rounds; draws/s of the sampling phase, ratio 4
    / 1. The fake devices share the machine's cores: on a 2-core CPU the ratio is
    at most ~2. Also reported: whether the draws depend on the device count (keys
    are ``fold_in`` per chain and draw, so only round-off can differ; in float32
    NUTS amplifies it, so chains agree in distribution, not draw by draw).

Results go to ``benchmarks/results/phi4_hmc.json`` (written atomically), with a
metadata block (versions, device, CPU count, load average, parameters).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from nnft.interaction import Box, Interaction, make_target, numpyro_model, phi4, unflatten_sites
from nnft.mcmc import MCMCConfig, initial_positions, run_nuts
from nnft.priors.cos import CosNet
from nnft.results import write_json

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "results" / "phi4_hmc.json"
POINTS = (0.0, 0.3, 0.6, 0.9)
COUPLING = 0.1
BOX = (2.0,)  # [-1, 1]
NODES = 24
SCALING_CHAINS = 8
SCALING_DEVICES = (1, 4)


def make_problem(width: int):
    """``(target, points)``: Cos-net d = 1 of ``width``, ``V = 0.1 phi^4`` on [-1, 1]."""
    interaction = Interaction(phi4(COUPLING), Box(BOX), NODES)
    return make_target(CosNet(d=1, width=width), interaction), np.asarray(POINTS)[:, None]


# -- compilation accounting --------------------------------------------------------------

_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_events: list = []


def _listen(event: str, duration: float, **_) -> None:
    if event in _COMPILE_EVENTS:
        _events.append((event, duration))


jax.monitoring.register_event_duration_secs_listener(_listen)


@contextlib.contextmanager
def compile_log():
    """Collects what jax compiles inside: ``compilations`` (XLA executables),
    ``compile_seconds`` (XLA compile), ``lowering_seconds``, ``tracing_seconds``."""
    start, out = len(_events), {}
    try:
        yield out
    finally:
        ev = _events[start:]
        trace, lower, backend = _COMPILE_EVENTS
        out["compilations"] = sum(e == backend for e, _ in ev)
        for key, name in (("compile_seconds", backend), ("lowering_seconds", lower),
                          ("tracing_seconds", trace)):
            out[key] = float(sum(d for e, d in ev if e == name))


# -- one sampler run -> what is scored -----------------------------------------------------


class Run(NamedTuple):
    """One run: ``phi`` ``(chains, draws, P)`` and the costs of its two phases."""

    phi: np.ndarray
    gradients: int  # leapfrog steps, sampling phase, all chains
    warmup_gradients: int
    warmup_seconds: float
    sampling_seconds: float
    divergences: int
    acceptance: float
    compile: dict  # compilations during the timed phases


def ess_summary(phi: np.ndarray) -> dict:
    """Bulk ESS (arviz) of ``phi_a`` and of ``phi_a phi_b`` (a <= b): min, median."""
    import arviz as az

    pairs = list(itertools.combinations_with_replacement(range(phi.shape[-1]), 2))
    g2 = np.stack([phi[..., a] * phi[..., b] for a, b in pairs], axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = az.ess(az.convert_to_dataset({"phi": phi, "g2": g2}), method="bulk")
    e_phi, e_g2 = np.asarray(ess["phi"].values), np.asarray(ess["g2"].values)
    both = np.concatenate([e_phi, e_g2])
    return {"min": float(both.min()), "median": float(np.median(both)),
            "min_phi": float(e_phi.min()), "min_g2": float(e_g2.min())}


def score(run: Run) -> dict:
    ess = ess_summary(run.phi)
    return {**{f"ess_{k}": v for k, v in ess.items()},
            "ess_per_s": ess["min"] / run.sampling_seconds,
            "ess_per_grad": ess["min"] / run.gradients,
            "median_ess_per_s": ess["median"] / run.sampling_seconds,
            "median_ess_per_grad": ess["median"] / run.gradients,
            "sampling_seconds": run.sampling_seconds, "warmup_seconds": run.warmup_seconds,
            "gradients": run.gradients, "warmup_gradients": run.warmup_gradients,
            "grads_per_draw": run.gradients / run.phi.shape[0] / run.phi.shape[1],
            "draws_per_s": run.phi.shape[0] * run.phi.shape[1] / run.sampling_seconds,
            "grads_per_s": run.gradients / run.sampling_seconds,
            "divergences": run.divergences, "acceptance": run.acceptance,
            "compilations_timed": run.compile.get("compilations", 0),
            "compile_seconds_timed": run.compile.get("compile_seconds", 0.0)}


# -- the samplers --------------------------------------------------------------------------


def ours(target, points, chains: int, warmup: int, samples: int):
    """``run_nuts`` with the default MCMCConfig except chains/warmup/samples/seed."""

    def call(seed: int) -> Run:
        config = MCMCConfig(chains=chains, warmup=warmup, samples=samples, seed=seed)
        with compile_log() as log:
            r = run_nuts(target, points, config)
        return Run(r.phi, r.gradient_evaluations, int(np.sum(r.warmup["n_steps"])),
                   r.seconds["warmup"], r.seconds["sampling"],
                   int(np.sum(r.stats["diverging"])),
                   float(np.mean(r.stats["acceptance_rate"])), log)

    return call


def numpyro_kernel(target, points, chains: int, warmup: int, samples: int):
    """numpyro's NUTS kernel with ``numpyro.infer.NUTS`` defaults, chains vmapped as in
    ``chain_method="vectorized"`` (init key per chain as ``MCMC`` derives it), the
    ``phi`` site by numpyro's postprocess function; warmup and sampling each jitted
    once."""
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    model = numpyro_model(target, points)
    info = initialize_model(jax.random.PRNGKey(0), model, dynamic_args=True)
    init_kernel, sample_kernel = hmc(potential_fn_gen=info.potential_fn, algo="NUTS")
    postprocess = info.postprocess_fn()
    # numpyro.infer.NUTS defaults: step_size 1, adapt step size and diagonal mass
    # matrix, target_accept_prob 0.8, max_tree_depth 10, regularize_mass_matrix
    step = jax.vmap(lambda s: sample_kernel(s, model_args=(), model_kwargs={}))

    @jax.jit
    def do_warmup(keys, z0):
        state = jax.vmap(lambda z, k: init_kernel(z, warmup, model_args=(), model_kwargs={},
                                                  rng_key=k))(z0, keys)

        def body(i, carry):
            s, n = carry
            s = step(s)
            return s, n + s.num_steps

        return jax.lax.fori_loop(0, warmup, body, (state, jnp.zeros_like(state.num_steps)))

    @jax.jit
    def do_sampling(state):
        def body(s, _):
            s = step(s)
            return s, (jax.vmap(postprocess)(s.z)["phi"], s.num_steps, s.diverging,
                       s.accept_prob)

        return jax.lax.scan(body, state, None, length=samples)[1]

    def call(seed: int) -> Run:
        z0 = unflatten_sites(target, np.asarray(initial_positions(target, chains, seed)))
        keys = jax.random.split(jax.random.PRNGKey(seed), chains)
        keys = jax.vmap(jax.random.split)(keys)[:, 0]  # as numpyro's HMC.init (vectorized)
        with compile_log() as log:
            t0 = time.perf_counter()
            state, w_steps = do_warmup(keys, z0)
            jax.block_until_ready(state)
            t1 = time.perf_counter()
            out = [np.asarray(x).swapaxes(0, 1) for x in do_sampling(state)]
            t2 = time.perf_counter()
        phi, n_steps, diverging, accept = out
        return Run(phi.astype(np.float64), int(n_steps.sum()), int(np.sum(w_steps)),
                   t1 - t0, t2 - t1,
                   int(diverging.sum()), float(accept.mean()), log)

    return call


def numpyro_mcmc(target, points, chains: int, warmup: int, samples: int):
    """``numpyro.infer.MCMC(NUTS(model))``, defaults, ``chain_method="vectorized"``, as a
    user runs it: ``warmup``, then ``run`` twice on the same MCMC object (same shapes;
    the second continues from the first's last state). Each phase: wall time,
    compilations, and the wall time less the XLA compile and lowering time jax reports
    (an estimate of the steady state). Draws of the first ``run`` are scored."""
    from numpyro.infer import MCMC, NUTS

    model = numpyro_model(target, points)

    def call(seed: int) -> dict:
        z0 = unflatten_sites(target, np.asarray(initial_positions(target, chains, seed)))
        mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=samples, num_chains=chains,
                    chain_method="vectorized", progress_bar=False)
        phases, runs = {}, []
        with compile_log() as log:
            t0 = time.perf_counter()
            mcmc.warmup(jax.random.PRNGKey(seed), init_params=z0, collect_warmup=True,
                        extra_fields=("num_steps",))
            w_steps = int(np.sum(np.asarray(mcmc.get_extra_fields()["num_steps"])))
            wall = time.perf_counter() - t0
        phases["warmup"] = {"wall_seconds": wall, **log}
        for k in (1, 2):
            if k == 2:
                mcmc.post_warmup_state = mcmc.last_state
            with compile_log() as log:
                t0 = time.perf_counter()
                mcmc.run(mcmc.post_warmup_state.rng_key,
                         extra_fields=("num_steps", "diverging", "accept_prob"))
                phi = np.asarray(mcmc.get_samples(group_by_chain=True)["phi"])
                extra = {key: np.asarray(v) for key, v in
                         mcmc.get_extra_fields(group_by_chain=True).items()}
                wall = time.perf_counter() - t0
            phases[f"run{k}"] = {"wall_seconds": wall, **log}
            runs.append((phi, extra))
        for ph in phases.values():
            ph["seconds_less_compile"] = max(
                ph["wall_seconds"] - ph["compile_seconds"] - ph["lowering_seconds"], 1e-9)
        phi, extra = runs[1]  # the second run: its one recompilation is all that is left
        run = Run(phi.astype(np.float64), int(extra["num_steps"].sum()), w_steps,
                  phases["warmup"]["wall_seconds"], phases["run2"]["wall_seconds"],
                  int(extra["diverging"].sum()), float(extra["accept_prob"].mean()), {})
        return run, phases

    return call


# -- (a) one target --------------------------------------------------------------------------


def compare(width: int, chains: int, warmup: int, samples: int, rounds: int,
            mcmc_calls: int) -> dict:
    """Ours vs the numpyro kernel in ``rounds`` interleaved rounds; the MCMC API after."""
    target, points = make_problem(width)
    sides = {"ours": ours(target, points, chains, warmup, samples),
             "numpyro": numpyro_kernel(target, points, chains, warmup, samples)}
    first = {}
    for name, f in sides.items():  # compile (seed 0, untimed)
        t0 = time.perf_counter()
        f(0)
        first[name] = time.perf_counter() - t0
    per_round = {name: [] for name in sides}
    for r in range(1, rounds + 1):
        order = list(sides) if r % 2 else list(sides)[::-1]
        for name in order:
            per_round[name].append(score(sides[name](r)))
    ratio = {}
    for key in ("ess_per_s", "ess_per_grad", "median_ess_per_s", "median_ess_per_grad",
                "draws_per_s"):
        ratio[key] = float(np.median([a[key] / b[key] for a, b in
                                      zip(per_round["ours"], per_round["numpyro"])]))
    # load-robust variant: ESS/s = ESS/grad (median over rounds: Monte Carlo noise) x
    # grads/s (fastest round: background load only ever slows a round down)
    fast = {n: max(x["grads_per_s"] for x in rows) for n, rows in per_round.items()}
    epg = {n: float(np.median([x["ess_per_grad"] for x in rows]))
           for n, rows in per_round.items()}
    ratio["grads_per_s_fastest_round"] = fast["ours"] / fast["numpyro"]
    ratio["ess_per_s_fastest_round"] = (epg["ours"] * fast["ours"]) / (epg["numpyro"]
                                                                       * fast["numpyro"])
    ratio["warmup_seconds_numpyro_over_ours"] = float(np.median(
        [b["warmup_seconds"] / a["warmup_seconds"]
         for a, b in zip(per_round["ours"], per_round["numpyro"])]))
    summary = {name: {k: float(np.median([s[k] for s in rows])) for k in rows[0]}
               for name, rows in per_round.items()}

    api = []
    for j in range(mcmc_calls):  # the MCMC API itself (recompiles on every call)
        seed = rounds + 1 + j
        run, phases = numpyro_mcmc(target, points, chains, warmup, samples)(seed)
        mine = score(sides["ours"](seed))  # ours on the same seed, next in time
        s_api = score(run)
        ess_per_s_steady = s_api["ess_min"] / phases["run2"]["seconds_less_compile"]
        api.append({
            "seed": seed, "phases": phases, **{k: s_api[k] for k in (
                "ess_min", "ess_median", "gradients", "grads_per_draw", "divergences",
                "ess_per_grad")},
            "ess_per_s_wall": s_api["ess_per_s"], "ess_per_s_less_compile": ess_per_s_steady,
            "ours_same_seed": {k: mine[k] for k in ("ess_min", "ess_per_s", "ess_per_grad",
                                                    "sampling_seconds", "gradients")},
            "ratio_ess_per_s_ours_over_api_wall": mine["ess_per_s"] / s_api["ess_per_s"],
            "ratio_ess_per_s_ours_over_api_less_compile": mine["ess_per_s"] / ess_per_s_steady,
            "ratio_ess_per_grad_ours_over_api": mine["ess_per_grad"] / s_api["ess_per_grad"]})
    return {"width": width, "dim": target.dim, "chains": chains, "warmup": warmup,
            "samples": samples, "rounds": rounds,
            "first_call_seconds_incl_compile": first,
            "ratio_ours_over_numpyro": ratio, "median_over_rounds": summary,
            "per_round": per_round, "numpyro_mcmc_api": api}


# -- (b) devices, in subprocesses -------------------------------------------------------------

_SCALING_CHILD = r"""
import json, sys, time
import numpy as np, jax
sys.path.insert(0, sys.argv[1])
from phi4_hmc import make_problem
from nnft.mcmc import MCMCConfig, run_nuts

chains, warmup, samples, width = (int(a) for a in sys.argv[2:6])
target, points = make_problem(width)

def go(seed, dump=None):
    r = run_nuts(target, points, MCMCConfig(chains=chains, warmup=warmup, samples=samples,
                                            seed=seed))
    if dump:
        np.save(dump, r.phi)
    return {"seed": seed, "sampling_seconds": r.seconds["sampling"],
            "warmup_seconds": r.seconds["warmup"], "mesh_devices": r.seconds["devices"],
            "draws": r.chains * r.draws, "gradients": r.gradient_evaluations}

t0 = time.perf_counter()
go(0)
print("RESULT " + json.dumps({"ready": True, "devices": jax.device_count(),
                              "first_call_seconds": time.perf_counter() - t0}), flush=True)
for line in sys.stdin:
    seed, dump = line.split()
    print("RESULT " + json.dumps(go(int(seed), None if dump == "-" else dump)), flush=True)
"""


class _Child:
    def __init__(self, n_devices: int, chains: int, warmup: int, samples: int, width: int):
        env = dict(os.environ)
        flags = [f for f in env.get("XLA_FLAGS", "").split()
                 if not f.startswith("--xla_force_host_platform_device_count")]
        flag = f"--xla_force_host_platform_device_count={n_devices}"
        env["XLA_FLAGS"] = " ".join([*flags, flag])
        env["JAX_PLATFORMS"] = "cpu"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.n_devices = n_devices
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SCALING_CHILD, str(HERE), str(chains), str(warmup),
             str(samples), str(width)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env=env)

    def result(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                return json.loads(line[7:])
        raise RuntimeError(f"scaling subprocess ({self.n_devices} devices) died "
                           f"(exit {self.proc.wait()})")

    def run(self, seed: int, dump: str | None = None) -> dict:
        self.proc.stdin.write(f"{seed} {dump or '-'}\n")
        self.proc.stdin.flush()
        return self.result()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def start_scaling(warmup: int, samples: int, width: int) -> dict:
    """Start one child per device count; they compile while the parent does (a)."""
    return {n: _Child(n, SCALING_CHAINS, warmup, samples, width) for n in SCALING_DEVICES}


def finish_scaling(children: dict, rounds: int, width: int, warmup: int, samples: int) -> dict:
    try:
        ready = {n: c.result() for n, c in children.items()}
        rows = {n: [] for n in children}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(1, rounds + 1):
                order = list(children) if r % 2 else list(children)[::-1]
                for n in order:
                    dump = os.path.join(tmp, f"phi-{n}-{r}.npy") if r == 1 else None
                    rows[n].append(children[n].run(100 + r, dump))
            phis = {n: np.load(os.path.join(tmp, f"phi-{n}-1.npy")) for n in children}
    finally:
        for c in children.values():
            c.close()
    lo, hi = SCALING_DEVICES
    rate = {n: [x["draws"] / x["sampling_seconds"] for x in rs] for n, rs in rows.items()}
    diff = np.abs(phis[hi] - phis[lo])
    agree = np.isclose(phis[hi], phis[lo], rtol=1e-4, atol=1e-5).all(axis=-1)
    first_bad = [int(np.argmin(a)) if not a.all() else None for a in agree]
    return {"width": width, "chains": SCALING_CHAINS, "warmup": warmup, "samples": samples,
            "rounds": rounds, "devices": {str(n): ready[n]["devices"] for n in children},
            "mesh_devices": {str(n): rows[n][0]["mesh_devices"] for n in children},
            "draws_per_s": {str(n): float(np.median(v)) for n, v in rate.items()},
            "draws_per_s_per_round": {str(n): v for n, v in rate.items()},
            "ratio_draws_per_s_4_over_1": float(np.median(
                [a / b for a, b in zip(rate[hi], rate[lo])])),
            "first_call_seconds_incl_compile": {str(n): ready[n]["first_call_seconds"]
                                                for n in children},
            "same_draws_max_abs_diff": float(diff.max()),
            "same_draws_identical": bool(np.array_equal(phis[hi], phis[lo])),
            "same_draws_first_disagreeing_draw_per_chain": first_bad,
            "note": f"{SCALING_DEVICES[1]} fake CPU devices share {os.cpu_count()} cores: "
                    f"expect at most ~{os.cpu_count()}x"}


# -- driver ------------------------------------------------------------------------------------


def loadavg() -> list | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _meta(args, params: dict) -> dict:
    import arviz
    import blackjax
    import numpyro

    dev = jax.devices()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__,
        "blackjax": blackjax.__version__, "numpyro": numpyro.__version__,
        "arviz": arviz.__version__, "python": platform.python_version(),
        "backend": jax.default_backend(), "device_kind": dev[0].device_kind,
        "device_count": len(dev), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "x64": bool(jax.config.jax_enable_x64),
        "mode": "quick" if args.quick else "default", "parameters": params,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="width 10 only, fewer draws and rounds (~3 minutes on 2 CPU cores)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per comparison")
    args = ap.parse_args(argv)

    chains = 8  # MCMCConfig's default
    if args.quick:
        targets = {10: (300, 600, 4, 1)}  # width: warmup, samples, rounds, MCMC-API calls
        scaling_rounds = 3
        scaling = (300, 600)
    else:
        # width 10: MCMCConfig's default warmup and samples
        targets = {10: (1000, 2000, 5, 1), 100: (500, 1000, 3, 0)}
        scaling_rounds = 5
        scaling = (500, 1000)
    params = {"prior": "cos-net", "d": 1, "sigma_w0": 1.0, "sigma_w1": 1.0,
              "potential": "phi4", "coupling": COUPLING, "box": [-1.0, 1.0], "nodes": NODES,
              "points": list(POINTS), "chains": chains,
              "targets": {str(w): {"warmup": a, "samples": b, "rounds": args.rounds or r,
                                   "numpyro_mcmc_api_calls": c}
                          for w, (a, b, r, c) in targets.items()},
              "scaling": {"chains": SCALING_CHAINS, "devices": list(SCALING_DEVICES),
                          "width": 10, "warmup": scaling[0], "samples": scaling[1],
                          "rounds": scaling_rounds},
              "ess": "arviz bulk ESS; min (and median) over phi_a and phi_a phi_b (a <= b)",
              "ratios": "median over rounds of per-round ratios, ours / numpyro kernel"}
    meta = _meta(args, params)
    meta["loadavg_start"] = loadavg()
    t_start = time.perf_counter()

    children = start_scaling(*scaling, width=10)  # compiles alongside (a), timed after it
    try:
        per_width = {}
        for width, (warmup, samples, rounds, mcmc_calls) in targets.items():
            per_width[str(width)] = compare(width, chains, warmup, samples,
                                            args.rounds or rounds, mcmc_calls)
            print(f"  width {width}: {time.perf_counter() - t_start:.0f} s", flush=True)
    except BaseException:
        for c in children.values():
            c.proc.kill()
        raise
    scale = finish_scaling(children, scaling_rounds, 10, *scaling)
    print(f"  devices: {time.perf_counter() - t_start:.0f} s", flush=True)

    meta["loadavg_end"] = loadavg()
    meta["benchmark_seconds"] = time.perf_counter() - t_start
    payload = {"meta": meta, "a_ess": per_width, "b_devices": scale}
    write_json(payload, args.out)
    print_table(payload)
    print(f"\nwrote {args.out}")
    return payload


def print_table(p: dict) -> None:
    m = p["meta"]
    load = m["loadavg_start"][0] if m["loadavg_start"] else "?"
    print(f"\nnnft phi^4 NUTS benchmark  ({m['mode']}; jax {m['jax']}, blackjax "
          f"{m['blackjax']}, numpyro {m['numpyro']}; {m['backend']}: {m['device_count']} x "
          f"{m['device_kind']}, {m['cpu_count']} CPUs; load avg {load}; "
          f"{m['benchmark_seconds']:.0f} s)")
    print(f"Cos-net d=1, V = {COUPLING} phi^4 on [-1,1], {NODES} GL nodes, points {POINTS}; "
          "ESS = min bulk ESS over phi_a and phi_a phi_b; sampling phase, steady state")
    hdr = (" width | sampler        | ESS min | ESS med | grad/draw | draws/s | ESS/s   | "
           "ESS/grad  | warmup s | sampling s")
    for w, row in p["a_ess"].items():
        print(f"\n(a) width {w} (dim {row['dim']}), {row['chains']} chains x "
              f"{row['samples']} draws (+{row['warmup']} warmup), median of {row['rounds']} "
              "rounds")
        print(hdr)
        for name, s in row["median_over_rounds"].items():
            label = "ours (blackjax)" if name == "ours" else "numpyro kernel"
            print(f" {int(w):5d} | {label:14s} | {s['ess_min']:7.0f} | {s['ess_median']:7.0f} | "
                  f"{s['grads_per_draw']:9.2f} | {s['draws_per_s']:7.0f} | "
                  f"{s['ess_per_s']:7.0f} | {s['ess_per_grad']:.3e} | {s['warmup_seconds']:8.2f}"
                  f" | {s['sampling_seconds']:9.2f}")
        r = row["ratio_ours_over_numpyro"]
        print(f"     ours / numpyro (median of per-round ratios): ESS/s {r['ess_per_s']:.2f}, "
              f"ESS/grad {r['ess_per_grad']:.2f}   (goal >= 1 on both); median-ESS: "
              f"ESS/s {r['median_ess_per_s']:.2f}, ESS/grad {r['median_ess_per_grad']:.2f}; "
              f"draws/s {r['draws_per_s']:.2f}; warmup time numpyro/ours "
              f"{r['warmup_seconds_numpyro_over_ours']:.2f}")
        o, n = (row["median_over_rounds"][k] for k in ("ours", "numpyro"))
        print(f"     load-robust: grads/s of the fastest round ours / numpyro "
              f"{r['grads_per_s_fastest_round']:.2f}; ESS/s = median ESS/grad x fastest "
              f"grads/s: ours / numpyro {r['ess_per_s_fastest_round']:.2f}")
        f1 = row["first_call_seconds_incl_compile"]
        print(f"     first call incl. compilation: ours {f1['ours']:.0f} s, numpyro kernel "
              f"{f1['numpyro']:.0f} s (scaling subprocesses compile meanwhile)")
        print(f"     compilations during timed calls: ours {o['compilations_timed']:.0f}, "
              f"numpyro kernel {n['compilations_timed']:.0f}; divergences (median/round): "
              f"ours {o['divergences']:.0f}, numpyro {n['divergences']:.0f}")
        for a in row["numpyro_mcmc_api"]:
            ph = a["phases"]
            print(f"     numpyro MCMC API, one MCMC object (seed {a['seed']}): " + "; ".join(
                f"{k} {v['wall_seconds']:.1f} s wall, {v['compilations']} XLA compilations "
                f"({v['compile_seconds']:.1f} s), {v['seconds_less_compile']:.2f} s less compile"
                for k, v in ph.items()))
            print(f"       run2: ESS {a['ess_min']:.0f}, {a['grads_per_draw']:.2f} grad/draw, "
                  f"ESS/grad {a['ess_per_grad']:.3e}, ESS/s {a['ess_per_s_wall']:.0f} (wall), "
                  f"{a['ess_per_s_less_compile']:.0f} (less compile); ours on the same seed / "
                  f"MCMC API: ESS/s {a['ratio_ess_per_s_ours_over_api_wall']:.2f} (wall), "
                  f"{a['ratio_ess_per_s_ours_over_api_less_compile']:.2f} (less compile), "
                  f"ESS/grad {a['ratio_ess_per_grad_ours_over_api']:.2f}")
    b = p["b_devices"]
    d = b["draws_per_s"]
    print(f"\n(b) run_nuts, {b['chains']} chains, width {b['width']}, {b['samples']} draws/chain:"
          f" draws/s 1 device {d['1']:.0f}, 4 CPU devices {d['4']:.0f} (mesh "
          f"{b['mesh_devices']['4']}); ratio 4/1 = {b['ratio_draws_per_s_4_over_1']:.2f} "
          f"(median of {b['rounds']} rounds; {b['note']})")
    same = ("identical" if b["same_draws_identical"] else
            f"max |diff| {b['same_draws_max_abs_diff']:.2g}, first disagreeing draw per chain "
            f"{b['same_draws_first_disagreeing_draw_per_chain']}")
    print(f"    draws on 4 vs 1 device(s), same seed: {same} (float32 round-off of differently"
          " vectorised code, amplified by NUTS, is expected to make them differ)")


if __name__ == "__main__":
    main()
