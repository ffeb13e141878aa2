"""SGD phase-diagram benchmark: the study's training step against a plain jit(vmap(scan)).

    python benchmarks/sgd_phases.py [--quick] [--out PATH]

The same work for both: the 576 students of 4 teachers over the paper's 12 x 12 grid
(3-32-16-1 tanh teacher-student, W2 trained by SGD, |B| = 4), K steps from the same start.

- ours: ``teacher_student.train_steps`` (studies/sgd_phases): first hidden layer precomputed
  per teacher, one data order per teacher shared by its 144 students, the gradient written
  out, a teacher's W2s held transposed as one (32, 144 x 16) matrix, one ``fori_loop``;
- reference: ``jit(vmap(scan))`` over the 576 models of a per-model autodiff SGD step that
  reads its own copy of the teacher's data through the same batch indices.

The final W2s are compared (max relative difference, float32). Timings are steady state
(compiled first), interleaved, median over rounds of ``t_ref / t_ours``; both are also
extrapolated to the full grid (14,400 models, 1e5 steps) on one process. Results:
``benchmarks/results/sgd_phases.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "studies" / "sgd_phases"))
sys.path.insert(0, str(HERE))

import teacher_student as ts
from _common import metadata

from nnft.results import write_json

DEFAULT_OUT = HERE / "results" / "sgd_phases.json"


def setup(steps: int):
    grid = ts.Grid(n_teachers=4, steps=steps)
    t = jax.tree.map(jnp.asarray, ts.teachers(grid, 0, 4))
    w0 = jnp.asarray(ts.student_init(grid, 0, 4))
    eps = jnp.asarray(grid.eps, jnp.float32)
    k, e, s = w0.shape[:3]

    ours_fn = jax.jit(ts.train_steps)

    def ours():
        return ours_fn(w0, t, eps, jnp.int32(0), jnp.int32(steps))

    # the plain reference: every model its own data, autodiff, scan over steps
    def loss(w, a, y, w3):
        return 0.5 * jnp.mean((jnp.tanh(a @ w.T) @ w3 - y) ** 2)

    def one_model(w, lr, a, y, w3, order):
        def step(w, idx):
            return w - lr * jax.grad(loss)(w, a[idx], y[idx], w3), None

        return jax.lax.scan(step, w, order)[0]

    rep = lambda x: jnp.repeat(x, e * s, axis=0)
    args = (w0.reshape(-1, ts.N2, ts.N1), jnp.tile(jnp.repeat(eps, s), k), rep(t.a_train),
            rep(t.y_train), rep(t.w3), rep(t.order))
    ref_fn = jax.jit(jax.vmap(one_model))

    def ref():
        return ref_fn(*args).reshape(w0.shape)

    return grid, ours, ref


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = ap.parse_args(argv)
    steps, rounds = (300, 2) if args.quick else (2000, 3)
    grid, ours, ref = setup(steps)
    a, b = np.asarray(ours()), np.asarray(ref())  # compile and check the work is the same
    # float32 round-off grows chaotically at large eps (the hot rows part completely within
    # 2000 steps), so the same-work check is on the cold rows eps <= 1
    cold = np.asarray(grid.eps) <= 1
    diff = float(np.max(np.abs(a - b)[:, cold]) / np.max(np.abs(b[:, cold])))
    times = {"ours": [], "reference": []}
    for _ in range(rounds):
        for name, fn in (("ours", ours), ("reference", ref)):
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - t0)
    ratio = float(np.median([r / o for o, r in zip(times["ours"], times["reference"])]))
    per_step = {k: float(np.median(v)) / steps for k, v in times.items()}
    full = {k: v * 1e5 * 25 / 60 for k, v in per_step.items()}  # 25 blocks x 1e5 steps
    print(f"576 models x {steps} steps: ours {per_step['ours'] * 1e6:.0f} us/step, plain "
          f"jit(vmap(scan)) {per_step['reference'] * 1e6:.0f} us/step: {ratio:.1f}x; "
          f"max rel. W2 difference (eps <= 1) {diff:.1e}; full grid on one process: ours "
          f"{full['ours']:.1f} min, reference {full['reference']:.1f} min", flush=True)
    payload = {
        "benchmark": "sgd_phases: study training step vs plain jit(vmap(scan))",
        **metadata(), "mode": "quick" if args.quick else "default",
        "parameters": {"models": 576, "teachers": 4, "grid": "12 x 12", "steps": steps,
                       "rounds": rounds, "batch": grid.batch, "n_train": grid.n_train},
        "seconds": times, "speedup": ratio, "max_rel_w2_diff_eps_le_1": diff,
        "seconds_per_step": per_step, "full_grid_minutes_one_process": full,
    }
    write_json(payload, args.out)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
