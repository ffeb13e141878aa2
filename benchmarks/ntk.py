"""Empirical-NTK benchmark: ``nnft.ntk.empirical_ntk`` against the explicit ``J J^T``.

    python benchmarks/ntk.py [--quick] [--out PATH]

On the same networks and inputs, all jitted: ours (``method="jacobian"``, the Jacobian
contraction; ``method="ntvp"``, the NTK-vector products; ``method="auto"``, which picks one of
them by the size of one model's Jacobian, ``nnft.ntk.JACOBIAN_BYTES``) against
``nnft.ntk.jacobian_ntk`` -- ``jax.jacobian`` of the fields on all points, leaves
concatenated into ``J (P, n_params)``, one matmul ``J1 J2^T`` (the test oracle). Shapes:
MLPs (depth 2, erf, NTK parameterisation) of widths 64, 256, 1024 on P = Q = 16 and 64
points, one network and a batch of 8 networks (vmap), the symmetric case ``x2 = None`` and a
cross kernel (P x Q with distinct sets). The results are compared (max relative difference).
Timings are steady state (compiled first), interleaved round by round; the ratio is the
median over rounds of ``t_reference / t_ours``. Goal: >= 1. Results:
``benchmarks/results/ntk.json`` (written atomically).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import metadata

from nnft.ntk import choose_method, empirical_ntk, jacobian_ntk
from nnft.priors.mlp import MLP
from nnft.results import write_json

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "ntk.json"


def _prior(width: int) -> MLP:
    return MLP(d=2, width=width, depth=2, activation="erf", parameterization="ntk", b_std=0.1)


def case_params(width: int, n_models: int = 1):
    keys = jax.random.split(jax.random.key(0), n_models)
    return jax.vmap(_prior(width).sample)(keys)


def case(width: int, n_points: int, n_models: int, cross: bool):
    prior = _prior(width)
    params = case_params(width, n_models)
    x1 = jax.random.normal(jax.random.key(1), (n_points, 2))
    x2 = jax.random.normal(jax.random.key(2), (n_points, 2)) if cross else None

    def batched(fn):
        f = jax.jit(jax.vmap(lambda p: fn(p, x1, x2)))
        return lambda: f(params).block_until_ready()

    calls = {
        "reference": batched(lambda p, a, b: jacobian_ntk(prior.apply, p, a, b)),
        "ours_auto": batched(lambda p, a, b: empirical_ntk(prior.apply, p, a, b)),
        "ours_jacobian": batched(lambda p, a, b: empirical_ntk(prior.apply, p, a, b,
                                                               method="jacobian")),
        "ours_ntvp": batched(lambda p, a, b: empirical_ntk(prior.apply, p, a, b,
                                                           method="ntvp")),
    }
    ref = calls["reference"]()
    diffs = {k: float(jnp.max(jnp.abs(f() - ref)) / jnp.max(jnp.abs(ref)))
             for k, f in calls.items() if k != "reference"}
    return calls, diffs


def interleaved(calls: dict, rounds: int, min_seconds: float) -> dict:
    for f in calls.values():
        f()
    reps = {}
    for name, f in calls.items():
        t0 = time.perf_counter()
        f()
        reps[name] = max(1, int(min_seconds / max(time.perf_counter() - t0, 1e-9)))
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, f in calls.items():
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                f()
            times[name].append((time.perf_counter() - t0) / reps[name])
    return times


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer shapes and rounds")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = ap.parse_args(argv)
    if args.quick:
        shapes = [(64, 16, 1, False), (256, 16, 8, True), (1024, 16, 1, False)]
        rounds, min_seconds = 3, 0.1
    else:
        shapes = [(w, p, s, c) for w in (64, 256, 1024) for p in (16, 64) for s in (1, 8)
                  for c in (False, True) if not (w == 1024 and s == 8 and p == 64)]
        rounds, min_seconds = 5, 0.3
    results = []
    for width, n_points, n_models, cross in shapes:
        calls, diffs = case(width, n_points, n_models, cross)
        t = interleaved(calls, rounds, min_seconds)
        row = {"width": width, "points": n_points, "models": n_models, "cross": cross,
               "seconds": t, "max_rel_diff": diffs}
        one = jax.tree.map(lambda a: a[0], case_params(width))
        row["auto_method"] = choose_method(one, n_points, n_points if cross else 0)
        for name in ("ours_auto", "ours_jacobian", "ours_ntvp"):
            row[f"ratio_{name}"] = float(np.median([r / o for r, o in
                                                    zip(t["reference"], t[name])]))
        results.append(row)
        print(f"width {width:5d} P={n_points:3d} models={n_models} "
              f"{'cross' if cross else 'sym  '}: reference {np.median(t['reference']):.2e} s, "
              f"auto ({row['auto_method']}) x{row['ratio_ours_auto']:.2f}, jacobian "
              f"x{row['ratio_ours_jacobian']:.2f}, ntvp x{row['ratio_ours_ntvp']:.2f} "
              f"(max rel diff {max(diffs.values()):.1e})", flush=True)
    auto = [r["ratio_ours_auto"] for r in results]
    payload = {
        "benchmark": "empirical NTK: nnft.ntk.empirical_ntk vs explicit J J^T",
        **metadata(), "mode": "quick" if args.quick else "default",
        "goal": ">= 1x (auto)", "cases": results,
        "ratio_auto_min": float(min(auto)), "ratio_auto_median": float(np.median(auto)),
        "met": bool(min(auto) >= 1.0),
    }
    write_json(payload, args.out)
    print(f"auto: min ratio {min(auto):.2f}, median {np.median(auto):.2f}; wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
