"""Estimator benchmark: information rate of G4c by readout, neuron, direct and NumPy.

    python benchmarks/estimators.py [--quick] [--out PATH]

Cos-net (d = 1) on the points 0 and 0.5; the quantity is G4c(0, 0, 0.5, 0.5). For each
width N = 2, 10, 100, 1000 and each estimator, one warm run (compiled by a run of the
same shapes with another seed first) gives a stderr (jackknife, 64 batches) and a wall
time; the **information rate** is ``1 / (stderr^2 * seconds)``, which does not depend on
how many networks were drawn, so runs of different sizes compare fairly. Estimators:

- ``readout``: nnft.readout, moments of K's distinct entries (the readout averaged out);
- ``neuron``: nnft.readout, moments of one neuron's products, pooled over neurons;
- ``direct``: nnft.ensemble.run, moments of the fields;
- ``numpy_loop``: a plain NumPy loop over networks (numpy.random draws from the same
  distributions, evaluation on the points, float64 moment sums per jackknife batch), the
  way bag-of-networks codes do it;
- ``numpy_vectorized``: the same in NumPy, vectorised over 4096 networks at a time (a
  stronger reference than the loop).

Ratios are taken within one run (STYLE.md rule 12). Goals (issue 13): readout >= 100x
direct at N = 10; the best valid estimator >= 1000x the NumPy loop at N = 10. The JSON
(``benchmarks/results/estimators.json``) holds every rate, stderr, time and count.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import metadata  # noqa: E402

from nnft import ensemble, readout  # noqa: E402
from nnft.engine.files import atomic_write_bytes  # noqa: E402
from nnft.priors.cos import CosNet  # noqa: E402

POINTS = [0.0, 0.5]
ENTRY = (0, 0, 1, 1)
WIDTHS = (2, 10, 100, 1000)
N_BATCHES = 64


def _g4c_jackknife(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """G4c(0,0,1,1) = E[a^2 b^2] - E[a^2] E[b^2] - 2 E[ab]^2 from per-batch sums of
    (a^2 b^2, a^2, b^2, ab) (zero-mean fields), with its jackknife stderr."""
    def g(m):
        return m[..., 0] - m[..., 1] * m[..., 2] - 2 * m[..., 3] ** 2

    total, n = sums.sum(0), counts.sum()
    loo = (total[None] - sums) / (n - counts)[:, None]
    reps = g(loo)
    b = len(counts)
    return float(g(total / n)), float(np.sqrt((b - 1) / b * np.sum((reps - reps.mean()) ** 2)))


def _numpy_sample(rng, prior, m):
    w0 = rng.normal(0, prior.sigma_w0, (m, prior.width))
    b = rng.uniform(-np.pi, np.pi, (m, prior.width))
    w1 = rng.normal(0, prior.sigma_w1 / np.sqrt(prior.width), (m, prior.width))
    x = np.asarray(POINTS)
    phi = np.einsum("mn,mnp->mp", w1, np.cos(w0[:, :, None] * x + b[:, :, None]))
    a, c = phi[:, 0], phi[:, 1]
    return np.stack([a * a * c * c, a * a, c * c, a * c], axis=-1)


def numpy_run(prior, n, seed, vectorized: bool):
    rng = np.random.default_rng(seed)
    sums, counts = np.zeros((N_BATCHES, 4)), np.zeros(N_BATCHES)
    t0 = time.perf_counter()
    step = 4096 if vectorized else 1
    for start in range(0, n, step):
        m = min(step, n - start)
        mono = _numpy_sample(rng, prior, m)
        batch = (start + np.arange(m)) % N_BATCHES
        np.add.at(sums, batch, mono)
        np.add.at(counts, batch, 1)
    seconds = time.perf_counter() - t0
    _, se = _g4c_jackknife(sums, counts)
    return se, seconds


def nnft_run(prior, n, seed, estimator):
    kw = {"progress": False, "n_batches": N_BATCHES, "max_order": 4}
    t0 = time.perf_counter()  # the whole call: sampling, accumulation and finalize
    if estimator == "direct":
        res = ensemble.run(prior, POINTS, n, seed, **kw)
    else:
        res = readout.run(prior, POINTS, n, seed, estimator=estimator, **kw)
    se = float(res.correlators.connected[4].stderr[ENTRY])
    return se, time.perf_counter() - t0


def measure(width: int, quick: bool) -> dict:
    prior = CosNet(d=1, width=width)
    scale = 8 if quick else 1
    sizes = {"direct": 2**18 // scale, "readout": 2**18 // scale,
             "neuron": max(2**12, 2**20 // (width * scale)),
             "numpy_loop": max(256, 4096 // scale),
             "numpy_vectorized": 2**17 // scale}
    if width >= 1000:
        for k in ("direct", "readout", "numpy_vectorized"):
            sizes[k] = 2**14 // scale
        sizes["numpy_loop"] = 256
    out = {}
    for name, n in sizes.items():
        if name.startswith("numpy"):
            se, sec = numpy_run(prior, n, 1, name == "numpy_vectorized")
        else:
            nnft_run(prior, n, 100, name)  # compile the same shapes
            se, sec = nnft_run(prior, n, 1, name)
        out[name] = {"n_networks": n, "stderr": se, "seconds": sec,
                     "rate": 1.0 / (se * se * sec)}
        print(f"N={width:5d} {name:17s} S={n:8d} stderr={se:.3e} t={sec:7.2f}s "
              f"rate={out[name]['rate']:.3e}", flush=True)
    best = max(("readout", "neuron"), key=lambda k: out[k]["rate"])
    out["ratios"] = {
        "readout_over_direct": out["readout"]["rate"] / out["direct"]["rate"],
        "neuron_over_direct": out["neuron"]["rate"] / out["direct"]["rate"],
        "best_over_numpy_loop": out[best]["rate"] / out["numpy_loop"]["rate"],
        "best_over_numpy_vectorized": out[best]["rate"] / out["numpy_vectorized"]["rate"],
        "direct_over_numpy_loop": out["direct"]["rate"] / out["numpy_loop"]["rate"],
        "best": best,
    }
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8x fewer networks")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "estimators.json"))
    args = ap.parse_args(argv)
    results = {"meta": metadata(), "points": POINTS, "entry": list(ENTRY),
               "quantity": "G4c(0, 0, 0.5, 0.5) of Cos-net d=1",
               "rate": "1 / (stderr^2 * seconds)", "widths": {}}
    for width in WIDTHS:
        results["widths"][str(width)] = measure(width, args.quick)
    r10 = results["widths"]["10"]["ratios"]
    results["goals"] = {
        "readout_over_direct_at_10": {"measured": r10["readout_over_direct"], "goal": 100,
                                      "met": r10["readout_over_direct"] >= 100},
        "best_over_numpy_loop_at_10": {"measured": r10["best_over_numpy_loop"], "goal": 1000,
                                       "met": r10["best_over_numpy_loop"] >= 1000},
    }
    print(json.dumps(results["goals"], indent=1))
    atomic_write_bytes(Path(args.out), json.dumps(results, indent=1).encode())


if __name__ == "__main__":
    main()
