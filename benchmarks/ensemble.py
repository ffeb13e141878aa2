"""Ensemble-engine benchmark: ratios measured in one run (STYLE.md rule 12).

    python benchmarks/ensemble.py [--quick] [--out PATH]

Cos-net (d = 1) on P = 8 points. What is measured, each as a ratio of two
timings taken in the same run, interleaved round by round so that a busy
machine slows both sides alike:

(a) one step of the engine (``nnft.ensemble.free_source``'s step and the moment
    estimator's update, as ``nnft.engine.drive`` runs them: sample, evaluate,
    accumulate moments up to order 4, and up to order 6) against the same jitted
    ``vmap`` over ``network_keys`` producing the ``(chunk, P)`` fields. Goal: ratio
    >= 0.7 (issue 13: >= 0.8 at widths 10, 100, 1000, in (c)).
(b) the engine (order 4) against a plain NumPy loop over networks doing the
    same work (numpy.random draws from the same distributions, evaluation on
    the P points, float64 moment sums of orders 1..4 by ``np.outer`` /
    ``np.einsum``). Goal: speed-up >= 20.
(c) networks/s of the engine (order 4) at widths 10, 100, 1000, each with its
    (a)-ratio and its NumPy speed-up; plus a chunk-size sweep at width 1000.
(d) peak resident memory of ``nnft.ensemble.run`` at S and at 10 S networks,
    each in a fresh subprocess (device memory too, where the backend reports it).

Timings are steady state: every function is compiled and run once before the
timed rounds; each timed call ends in ``block_until_ready``; the median over
rounds is reported. Results go to ``benchmarks/results/ensemble.json``
(written atomically). Nothing here is CPU-specific: on a GPU the same script
runs unchanged (the mesh spans every visible device, as in ``run``).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as Spec

from nnft.ensemble import free_source, network_keys
from nnft.estimators import moment_estimator
from nnft.priors.base import fields
from nnft.priors.cos import CosNet
from nnft.results import write_json

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "ensemble.json"
N_POINTS = 8
N_BATCHES = 64  # the engine's default
ENGINE_CHUNK = 65536  # the engine's default chunk_size


def _points(n_points: int = N_POINTS) -> np.ndarray:
    return np.linspace(-2.0, 2.0, n_points)[:, None]


def _mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("net",))


def _round_chunk(chunk: int, n_devices: int) -> int:
    unit = N_BATCHES * n_devices  # as nnft.ensemble.run rounds it
    return max(unit, math.ceil(chunk / unit) * unit)


# -- the timed callables ---------------------------------------------------------------


def engine_step(prior: CosNet, chunk: int | None, max_order: int, mesh: Mesh):
    """One call = one step of the driver's loop: the free source's step (sample, evaluate)
    and the moment estimator's update (sums carried, donated), as ``nnft.engine.drive``
    runs them. ``chunk=None``: the engine's own choice (default ``chunk_size``, lowered to
    the default memory budget, as ``nnft.ensemble.run`` does); ``call.chunk`` is the chunk."""
    key = jax.random.PRNGKey(0)
    source = free_source(prior, _points(), 2**40, key,
                         chunk_size=ENGINE_CHUNK if chunk is None else chunk,
                         n_batches=N_BATCHES, devices=list(mesh.devices.flat),
                         memory_limit=None if chunk is None else 2**40)
    estimator = moment_estimator(N_POINTS, max_order, N_BATCHES).for_engine()
    acc = [estimator.init()]

    def call():
        _, draws = source.step(key, (), 0)
        acc[0] = estimator.update(acc[0], draws, 0)
        jax.block_until_ready(acc[0])

    call.chunk = source.work["chunk"]
    return call


def sample_evaluate(prior: CosNet, chunk: int, mesh: Mesh):
    """Sample + evaluate only: the step's key derivation and vmap, the ``(chunk, P)`` fields
    materialised as the engine's source step does. (Reducing them to a sum inside the same
    program, as an earlier version did, let XLA fuse the sum into the evaluation: 5,400 to
    17,500 networks/s at width 1000 from run to run, 3.7x below the engine at worst.)"""
    sharding = NamedSharding(mesh, Spec("net"))

    @jax.jit
    def sample_fields(key, start, points):
        idx = start + jnp.arange(chunk, dtype=jnp.int64)
        idx = jax.lax.with_sharding_constraint(idx, sharding)
        keys = network_keys(key, idx)
        phi = jax.vmap(lambda k: fields(prior, prior.sample(k), points))(keys)
        return jax.lax.with_sharding_constraint(phi, sharding)

    with jax.enable_x64(True):
        key = jax.random.PRNGKey(0)
        points = jnp.asarray(_points(), jnp.float32)
        start = jnp.int64(0)

    def call():
        with jax.enable_x64(True):
            sample_fields(key, start, points).block_until_ready()

    return call


def numpy_reference(prior: CosNet, n_networks: int, dtype: str | None = None, seed: int = 0):
    """Plain NumPy, one network at a time: draw, evaluate, add to float64 sums of orders 1..4.

    Parameters are drawn and the network evaluated in ``dtype`` (default: the
    prior's, float32, as the engine does); the moment sums are float64.
    """
    x = _points()
    n, d = prior.width, prior.d
    dt = np.dtype(dtype or prior.dtype)
    x = x.astype(dt)
    s_w0, s_w1 = dt.type(prior.sigma_w0 / math.sqrt(d)), dt.type(prior.sigma_w1 / math.sqrt(n))
    two_pi, pi = dt.type(2 * math.pi), dt.type(math.pi)
    rng = np.random.default_rng(seed)
    sums = {}

    def call():
        s1 = np.zeros(N_POINTS)
        s2 = np.zeros((N_POINTS,) * 2)
        s3 = np.zeros((N_POINTS,) * 3)
        s4 = np.zeros((N_POINTS,) * 4)
        for _ in range(n_networks):
            w0 = rng.standard_normal((n, d), dtype=dt) * s_w0
            b0 = rng.random(n, dtype=dt) * two_pi - pi
            w1 = rng.standard_normal(n, dtype=dt) * s_w1
            phi = (np.cos(x @ w0.T + b0) @ w1).astype(np.float64)
            s1 += phi
            outer = np.outer(phi, phi)
            s2 += outer
            s3 += np.einsum("i,jk->ijk", phi, outer)
            s4 += np.einsum("ij,kl->ijkl", outer, outer)
        sums.update(n=n_networks, s1=s1, s2=s2, s3=s3, s4=s4)

    call.sums = sums
    return call


def _reference_check(prior: CosNet, sums: dict) -> float:
    """Max |z| of the NumPy reference's G2 against the exact G2 (is it doing the same work?)."""
    n = sums["n"]
    g2 = sums["s2"] / n
    diag = np.einsum("aabb->ab", sums["s4"]) / n  # E[phi_a^2 phi_b^2]
    stderr = np.sqrt(np.maximum(diag - g2**2, 0.0) / n)
    return float(np.max(np.abs(g2 - np.asarray(prior.g2(_points()))) / stderr))


def interleaved(calls: dict, rounds: int, min_seconds: float) -> dict:
    """Seconds per call of each callable in each round, the callables timed in turn.

    Each is first run once (compilation). A calibration round of single calls, not
    reported (a first call after compiling also allocates the donated buffers), sets
    ``k``, the repeats per timed sample, so that a sample lasts about ``min_seconds``;
    ``rounds`` rounds of ``k`` calls follow. Returns ``{name: [seconds per call, one per
    round]}``.
    """
    for f in calls.values():
        f()
    first = {}
    for name, f in calls.items():
        t0 = time.perf_counter()
        f()
        first[name] = time.perf_counter() - t0
    reps = {name: max(1, math.ceil(min_seconds / max(t, 1e-9))) for name, t in first.items()}
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, f in calls.items():
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                f()
            times[name].append((time.perf_counter() - t0) / reps[name])
    return times


def paired_ratio(times: dict, sizes: dict, num: str, den: str) -> float:
    """Median over rounds of (networks/s of ``num``) / (networks/s of ``den``), same round."""
    return float(np.median([(sizes[num] / a) / (sizes[den] / b)
                            for a, b in zip(times[num], times[den])]))


# -- (d) memory in fresh subprocesses ----------------------------------------------------

_MEMORY_CHILD = """
import json, resource, sys, time
import numpy as np, jax
from nnft.ensemble import run
from nnft.priors.cos import CosNet

def peak_kib():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r

width, n_samples, chunk = (int(a) for a in sys.argv[1:4])
prior = CosNet(d=1, width=width)
points = np.linspace(-2.0, 2.0, 8)[:, None]
jax.numpy.zeros(1).block_until_ready()
before = peak_kib()
t0 = time.perf_counter()
res = run(prior, points, n_samples, seed=0, max_order=4, chunk_size=chunk, progress=False)
wall = time.perf_counter() - t0
stats = jax.devices()[0].memory_stats() or {}
json.dump({"peak_rss_before_run_mib": before / 1024, "peak_rss_mib": peak_kib() / 1024,
           "device_peak_mib": stats.get("peak_bytes_in_use", 0) / 2**20 or None,
           "n_samples": res.correlators.n_samples, "seconds_incl_compile": wall}, sys.stdout)
"""


def memory_run(width: int, n_samples: int, chunk: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(width), str(n_samples),
                          str(chunk)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory subprocess failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


# -- driver ------------------------------------------------------------------------------


def _meta(args, params: dict) -> dict:
    dev = jax.devices()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "device_kind": dev[0].device_kind,
        "device_count": len(dev),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "mode": "quick" if args.quick else "default",
        "parameters": params,
    }


def loadavg() -> list | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smaller chunks, fewer networks (under a minute on 2 CPU cores)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = ap.parse_args(argv)

    mesh = _mesh()
    n_dev = mesh.size
    on_cpu = jax.default_backend() == "cpu"
    if args.quick:
        chunk, rounds, sweep, min_seconds = 4096, 4, (1024,), 0.15
        numpy_nets = {10: 1000, 100: 500, 1000: 200}
        mem_width, mem_chunk = 10, 4096
    else:
        chunk, rounds, min_seconds = ENGINE_CHUNK, 6, 0.5
        sweep = (4096, 16384, ENGINE_CHUNK)
        numpy_nets = {10: 10000, 100: 5000, 1000: 2000}
        mem_width, mem_chunk = 100, ENGINE_CHUNK
    if not on_cpu:  # accelerators: the reference is the slow side; keep its share small
        numpy_nets = {w: max(200, n // 4) for w, n in numpy_nets.items()}
    chunk = _round_chunk(chunk, n_dev)
    sweep = tuple(_round_chunk(c, n_dev) for c in sweep)
    mem_chunk = _round_chunk(mem_chunk, n_dev)
    mem_s = 2 * mem_chunk
    widths = (10, 100, 1000)
    params = {"prior": "cos-net", "d": 1, "n_points": N_POINTS, "points": _points().ravel().tolist(),
              "sigma_w0": 1.0, "sigma_w1": 1.0, "field_dtype": "float32", "n_batches": N_BATCHES,
              "chunk": chunk, "engine_default_chunk": ENGINE_CHUNK, "rounds": rounds,
              "ratios": "median over rounds of per-round ratios (both sides timed in the round)",
              "min_seconds_per_sample": min_seconds,
              "widths": list(widths), "chunk_sweep": list(sweep),
              "numpy_networks_per_round": numpy_nets, "memory_width": mem_width,
              "memory_chunk": mem_chunk, "memory_S": mem_s}
    meta = _meta(args, params)
    meta["loadavg_start"] = loadavg()
    t_start = time.perf_counter()

    # (a), (b), (c): per width, every callable timed in the same interleaved rounds; at
    # width 1000 also order 6, a float64 NumPy reference and the chunk-size sweep.
    per_width, chunk_rates = {}, {}
    for width in widths:
        prior = CosNet(d=1, width=width)
        # the engine at its own chunk (the CPU cache budget lowers it at large widths);
        # quick mode caps it; bare sample+evaluate on the same chunk
        engine = engine_step(prior, chunk if args.quick else None, 4, mesh)
        c_w = engine.chunk
        calls = {
            "sample_evaluate": sample_evaluate(prior, c_w, mesh),
            "engine_order4": engine,
            "numpy_reference": numpy_reference(prior, numpy_nets[width]),
        }
        sizes = dict.fromkeys(calls, c_w)
        sizes["numpy_reference"] = numpy_nets[width]
        if width == 1000:
            calls["engine_order6"] = engine_step(prior, c_w, 6, mesh)
            calls["numpy_reference_float64"] = numpy_reference(prior, numpy_nets[width],
                                                               dtype="float64")
            sizes.update(engine_order6=c_w, numpy_reference_float64=numpy_nets[width])
            for c in sweep:
                if c != c_w:
                    calls[f"engine_order4@{c}"] = engine_step(prior, c, 4, mesh)
                    sizes[f"engine_order4@{c}"] = c
        t = interleaved(calls, rounds, min_seconds)
        rate = {k: sizes[k] / float(np.median(ts)) for k, ts in t.items()}
        ratio = functools.partial(paired_ratio, t, sizes)
        row = {
            "width": width,
            "engine_chunk": c_w,
            "networks_per_s": rate,
            "ratio_order4_vs_sample_evaluate": ratio("engine_order4", "sample_evaluate"),
            "speedup_order4_vs_numpy": ratio("engine_order4", "numpy_reference"),
            "seconds_per_call_per_round": t,
            "numpy_reference_g2_max_abs_z": _reference_check(prior, calls["numpy_reference"].sums),
        }
        if width == 1000:
            row["ratio_order6_vs_sample_evaluate"] = ratio("engine_order6", "sample_evaluate")
            row["speedup_order4_vs_numpy_float64"] = ratio("engine_order4",
                                                           "numpy_reference_float64")
            name = {c: "engine_order4" if c == c_w else f"engine_order4@{c}"
                    for c in sorted({*sweep, c_w})}
            chunk_rates = {c: rate[n] for c, n in name.items()}
            best = max(chunk_rates, key=chunk_rates.get)
            row["best_chunk"] = best
            row["speedup_order4_best_chunk_vs_numpy"] = ratio(name[best], "numpy_reference")
            row["ratio_best_chunk_vs_chunk"] = ratio(name[best], "engine_order4")
        per_width[width] = row
        print(f"  width {width}: {time.perf_counter() - t_start:.0f} s", flush=True)

    # (d) memory of run() at S and 10 S, each in a fresh process
    mem = {"S": memory_run(mem_width, mem_s, mem_chunk),
           "10S": memory_run(mem_width, 10 * mem_s, mem_chunk)}
    mem["ratio_peak_rss_10S_vs_S"] = mem["10S"]["peak_rss_mib"] / mem["S"]["peak_rss_mib"]
    if not args.quick:  # what one chunk of the default size costs at width 1000
        mem["width1000_one_chunk"] = memory_run(1000, mem_chunk, mem_chunk)
    print(f"  memory: {time.perf_counter() - t_start:.0f} s", flush=True)

    meta["loadavg_end"] = loadavg()
    meta["benchmark_seconds"] = time.perf_counter() - t_start
    w1000 = per_width[1000]
    payload = {
        "meta": meta,
        "a_overhead_of_accumulation": {
            "width": 1000, "chunk": w1000["engine_chunk"],
            "ratio_order4": w1000["ratio_order4_vs_sample_evaluate"],
            "ratio_order6": w1000["ratio_order6_vs_sample_evaluate"],
            "goal": 0.7,
        },
        "b_speedup_vs_numpy": {
            "width": 1000, "chunk": w1000["engine_chunk"],
            "speedup_order4": w1000["speedup_order4_vs_numpy"],
            "speedup_order4_vs_numpy_float64": w1000["speedup_order4_vs_numpy_float64"],
            "best_chunk": w1000["best_chunk"],
            "speedup_order4_best_chunk": w1000["speedup_order4_best_chunk_vs_numpy"],
            "goal": 20.0,
        },
        "c_per_width": {str(w): r for w, r in per_width.items()},
        "chunk_sweep_width1000_order4_networks_per_s": {str(c): r for c, r in chunk_rates.items()},
        "d_memory": {"width": mem_width, "chunk": mem_chunk, **mem},
    }
    write_json(payload, args.out)
    print_table(payload)
    print(f"\nwrote {args.out}")
    return payload


def print_table(p: dict) -> None:
    m = p["meta"]
    print(f"\nnnft ensemble benchmark  ({m['mode']}; jax {m['jax']}, {m['backend']}: "
          f"{m['device_count']} x {m['device_kind']}, {m['cpu_count']} CPUs; "
          f"chunk {m['parameters']['chunk']}; P = {N_POINTS}, d = 1; "
          f"load avg {m['loadavg_start'][0] if m['loadavg_start'] else '?'})")
    a, b = p["a_overhead_of_accumulation"], p["b_speedup_vs_numpy"]
    print(f"(a) full / (sample+evaluate), width 1000: order 4 {a['ratio_order4']:.2f}, "
          f"order 6 {a['ratio_order6']:.2f}   (goal >= {a['goal']})")
    print(f"(b) speed-up vs NumPy loop (float32 like the engine), width 1000: "
          f"{b['speedup_order4']:.2f}x at chunk {b['chunk']}, "
          f"{b['speedup_order4_best_chunk']:.2f}x at chunk {b['best_chunk']}   "
          f"(goal >= {b['goal']:.0f}x); vs a float64 NumPy loop "
          f"{b['speedup_order4_vs_numpy_float64']:.2f}x")
    print("(c)  width | chunk | engine o4 net/s | sample+eval net/s | o4 ratio | numpy net/s "
          "| speed-up")
    for w, r in p["c_per_width"].items():
        n = r["networks_per_s"]
        print(f"     {int(w):5d} | {r['engine_chunk']:5d} | {n['engine_order4']:15,.0f} | {n['sample_evaluate']:17,.0f} | "
              f"{r['ratio_order4_vs_sample_evaluate']:8.2f} | {n['numpy_reference']:11,.0f} | "
              f"{r['speedup_order4_vs_numpy']:7.1f}x")
    print("     chunk sweep, width 1000, engine order 4 (same rounds): " + ", ".join(
        f"{int(c)}: {r:,.0f}" for c, r in p["chunk_sweep_width1000_order4_networks_per_s"]
        .items()) + " net/s")
    d = p["d_memory"]
    for k in ("S", "10S"):
        r = d[k]
        dev = f", device peak {r['device_peak_mib']:.0f} MiB" if r["device_peak_mib"] else ""
        print(f"(d) run(), width {d['width']}, chunk {d['chunk']}, {k:>3} = {r['n_samples']:>9,d} "
              f"networks: peak RSS {r['peak_rss_mib']:7.0f} MiB (before run "
              f"{r['peak_rss_before_run_mib']:.0f}){dev}, {r['seconds_incl_compile']:.1f} s")
    print(f"    peak RSS 10 S / S = {d['ratio_peak_rss_10S_vs_S']:.3f}")
    if "width1000_one_chunk" in d:
        r = d["width1000_one_chunk"]
        print(f"    run(), width 1000, one chunk of {d['chunk']}: peak RSS "
              f"{r['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
