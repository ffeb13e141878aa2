"""Where a free-ensemble step spends its time, per width (issue 13): ratios in one run.

    python benchmarks/sampling_breakdown.py [--out PATH]

Cos-net (d = 1) on 8 points, one jitted step of ``chunk`` networks each, timed in
interleaved rounds (medians). Per width, networks/s of:

- ``keys``: the per-network keys (``fold_in`` of the run key, as the engine derives them);
- ``normals``: keys plus the ``3 N`` standard normals of one network's parameters;
- ``sample``: keys plus ``prior.sample`` (normals, uniforms, scaling), parameters summed;
- ``sample_evaluate``: plus the field on the points (cos, readout sum);
- ``engine_order4``: one step of the engine (the free source's step and the moment update);
- ``sample_evaluate`` with ``jax.random.key(0, impl="rbg")`` and ``"unsafe_rbg"`` keys
  instead of threefry (these would change what the random numbers are for a given seed);
- ``numpy_normals`` / ``numpy_network``: NumPy's ziggurat normals and a whole network
  (draw and evaluate, float32), one network at a time;
- ``cos``: ns per float32 element of XLA's cos, ``nnft.fastmath.cos`` and NumPy's, with
  their largest errors against the float64 cosine.

Results go to ``benchmarks/results/sampling_breakdown.json`` (atomic).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import metadata  # noqa: E402
from ensemble import engine_step, interleaved  # noqa: E402

from nnft import fastmath  # noqa: E402
from nnft.priors.base import fields  # noqa: E402
from nnft.priors.cos import CosNet  # noqa: E402
from nnft.results import write_json  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "sampling_breakdown.json"
POINTS = np.linspace(-2.0, 2.0, 8)[:, None]


def _step(prior, chunk, what, impl=None):
    key = jax.random.key(0, impl=impl) if impl else jax.random.PRNGKey(0)
    pts = jnp.asarray(POINTS, jnp.float32)

    def one(k):
        if what == "keys":
            return jax.random.key_data(k).astype(jnp.float32).sum() if impl else \
                k.astype(jnp.float32).sum()
        if what == "normals":
            return jax.random.normal(k, (3 * prior.width,)).sum()
        if what == "sample":
            return sum(jnp.sum(a) for a in jax.tree.leaves(prior.sample(k)))
        return fields(prior, prior.sample(k), pts).sum()

    @jax.jit
    def f(start):
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(chunk))
        return jax.vmap(one)(keys).sum()

    return lambda: f(0).block_until_ready()


def _numpy(prior, n, whole):
    rng = np.random.default_rng(0)
    w, x = prior.width, POINTS.astype(np.float32)

    def call():
        for _ in range(n):
            if not whole:
                rng.standard_normal(3 * w, dtype=np.float32)
                continue
            w0 = rng.standard_normal((w, 1), dtype=np.float32)
            b0 = rng.random(w, dtype=np.float32) * np.float32(2 * math.pi) - np.float32(math.pi)
            w1 = rng.standard_normal(w, dtype=np.float32) / np.float32(math.sqrt(w))
            np.cos(x @ w0.T + b0) @ w1

    return call


def _cosines(n: int = 2**23) -> dict:
    """ns per float32 element of XLA's ``jnp.cos``, ``nnft.fastmath.cos`` and NumPy's
    ``np.cos`` on the same ``n`` arguments (N(0, 9)), interleaved."""
    x = jax.random.normal(jax.random.key(0), (n,), jnp.float32) * 3
    xn = np.asarray(x)
    xla, poly = jax.jit(jnp.cos), jax.jit(fastmath.cos)
    calls = {"xla": lambda: xla(x).block_until_ready(),
             "fastmath": lambda: poly(x).block_until_ready(), "numpy": lambda: np.cos(xn)}
    times = interleaved(calls, 5, 0.3)
    ns = {k: 1e9 * float(np.median(v)) / n for k, v in times.items()}
    exact = np.cos(xn.astype(np.float64))
    err = {k: float(np.max(np.abs(np.asarray(f(), np.float64) - exact))) for k, f in
           (("xla", lambda: xla(x)), ("fastmath", lambda: poly(x)), ("numpy", lambda: np.cos(xn)))}
    return {"n": n, "ns_per_element": ns, "max_abs_error": err,
            "xla_vs_fastmath": ns["xla"] / ns["fastmath"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("net",))
    out = {"meta": metadata(), "widths": {}}
    t0 = time.perf_counter()
    for width, chunk, n_np in ((10, 16384, 5000), (100, 4096, 3000), (1000, 1024, 1000)):
        prior = CosNet(d=1, width=width)
        calls = {k: _step(prior, chunk, k) for k in ("keys", "normals", "sample",
                                                      "sample_evaluate")}
        calls["sample_evaluate_rbg"] = _step(prior, chunk, "sample_evaluate", "rbg")
        calls["sample_evaluate_unsafe_rbg"] = _step(prior, chunk, "sample_evaluate",
                                                    "unsafe_rbg")
        calls["engine_order4"] = engine_step(prior, chunk, 4, mesh)
        calls["numpy_normals"] = _numpy(prior, n_np, False)
        calls["numpy_network"] = _numpy(prior, n_np, True)
        sizes = {k: (n_np if k.startswith("numpy") else chunk) for k in calls}
        times = interleaved(calls, 5, 0.3)
        rate = {k: sizes[k] / float(np.median(v)) for k, v in times.items()}
        per_net = {k: 1e6 / r for k, r in rate.items()}
        out["widths"][str(width)] = {
            "chunk": chunk, "networks_per_s": rate, "microseconds_per_network": per_net,
            "share_of_sample_evaluate": {
                "keys": per_net["keys"] / per_net["sample_evaluate"],
                "normals": per_net["normals"] / per_net["sample_evaluate"],
                "sample": per_net["sample"] / per_net["sample_evaluate"]},
            "engine_vs_sample_evaluate": rate["engine_order4"] / rate["sample_evaluate"],
            "rbg_vs_threefry": rate["sample_evaluate_rbg"] / rate["sample_evaluate"],
            "unsafe_rbg_vs_threefry": rate["sample_evaluate_unsafe_rbg"]
            / rate["sample_evaluate"],
            "numpy_normals_vs_jax_normals": rate["numpy_normals"] / rate["normals"],
            "engine_vs_numpy_network": rate["engine_order4"] / rate["numpy_network"],
        }
        print(f"width {width}: " + ", ".join(f"{k} {v:.2f} us" for k, v in per_net.items()),
              flush=True)
    out["cos"] = _cosines()
    print("cos, ns per element: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                               out["cos"]["ns_per_element"].items()), flush=True)
    out["meta"]["benchmark_seconds"] = time.perf_counter() - t0
    write_json(out, args.out)
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
