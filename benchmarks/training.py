"""Training-engine benchmark: S models vmapped against a Python loop over the same models.

    python benchmarks/training.py [--quick] [--out PATH]

S = 100 small MLPs (d = 1, depth 2, widths 8 and 32, erf, NTK parameterisation) trained by
full-batch gradient descent (and by momentum GD) on the built-in 1-d set (n = 16) for K steps.

- ours: ``nnft.training.make_trainer(...).run`` (lr 0.2) -- all S models in one jitted
  ``vmap``, the K steps in one ``lax.fori_loop``;
- reference "loop_steps": the usual optax loop -- a Python loop over the S models and, per
  model, over the K steps, each step one call of a jitted per-model update (same loss, same
  optimizer from ``nnft.training.make_optimizer``, same learning-rate scales);
- reference "loop_compiled": the strongest loop -- the same per-model update with its own
  jitted ``lax.fori_loop`` over the K steps, called in a Python loop over the S models.

All start from the same parameters; the final parameters are compared (max relative
difference, float32) to show that the work is the same. Timings are steady state (compiled
first), interleaved round by round, median over rounds of the per-round ratio
``t_loop / t_vmap``. Goal: >= 10 (against a Python loop over the models).
Results: ``benchmarks/results/training.json`` (written atomically).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import metadata

from nnft.priors.base import fields
from nnft.priors.mlp import MLP
from nnft.results import write_json
from nnft.training import (
    TrainingConfig,
    learning_rate_scales,
    make_optimizer,
    make_trainer,
    regression_data,
)

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "training.json"


def setup(optimizer: str, n_models: int, steps: int, width: int):
    prior = MLP(d=1, width=width, depth=2, activation="erf", parameterization="ntk")
    data = regression_data(0, 16, x_test=np.linspace(-1.5, 1.5, 4)[:, None])
    cfg = TrainingConfig(optimizer=optimizer, learning_rate=0.2, momentum=0.8, steps=steps,
                         n_models=n_models, n_batches=min(10, n_models), ntk=False)
    trainer = make_trainer(prior, data, cfg)
    state0 = trainer.init(jax.random.key(0))
    host0 = jax.tree.map(np.asarray, state0)

    def ours():
        st = jax.tree.map(jnp.asarray, host0)  # fresh copy: run donates its input
        st, _ = trainer.run(st, jnp.int32(steps))
        return jax.block_until_ready(st.params)

    example = jax.tree.map(lambda a: a[0], state0.params)
    opt = make_optimizer(optimizer, 0.2, momentum=0.8,
                         scales=learning_rate_scales(prior, example))
    x = jnp.asarray(data.x, jnp.float32)
    y = jnp.asarray(data.y, jnp.float32)

    def loss(p):
        return jnp.mean(0.5 * (fields(prior, p, x) - y) ** 2)

    @jax.jit
    def train_one(params):
        def body(_, carry):
            p, s = carry
            g = jax.grad(loss)(p)
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), s

        return jax.lax.fori_loop(0, steps, body, (params, opt.init(params)))[0]

    @jax.jit
    def step_one(p, s):
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    singles = [jax.tree.map(lambda a, i=i: jnp.asarray(a[i]), host0.params)
               for i in range(n_models)]

    def loop():
        out = [train_one(p) for p in singles]
        return jax.block_until_ready(out)

    def loop_steps():
        out = []
        for p in singles:
            s = opt.init(p)
            for _ in range(steps):
                p, s = step_one(p, s)
            out.append(p)
        return jax.block_until_ready(out)

    def check(reference) -> float:
        a = ours()
        b = reference()
        worst = 0.0
        for i in range(n_models):
            for la, lb in zip(jax.tree.leaves(jax.tree.map(lambda t, i=i: t[i], a)),
                              jax.tree.leaves(b[i])):
                den = float(jnp.max(jnp.abs(lb))) or 1.0
                worst = max(worst, float(jnp.max(jnp.abs(la - lb))) / den)
        return worst

    return ours, {"loop_steps": loop_steps, "loop_compiled": loop}, check


def interleaved(calls: dict, rounds: int) -> dict:
    for f in calls.values():  # compile
        f()
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, f in calls.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    return times


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = ap.parse_args(argv)
    n_models = 100
    steps, rounds = (200, 3) if args.quick else (1000, 3)
    widths = (8, 32)
    cases = {}
    for width in widths:
        for optimizer in ("sgd", "momentum"):
            ours, refs, check = setup(optimizer, n_models, steps, width)
            diffs = {name: check(ref) for name, ref in refs.items()}
            times = interleaved({"vmap": ours, **refs}, rounds)
            case = {"seconds": times, "max_rel_param_diff": diffs,
                    "model_steps_per_s_vmap": n_models * steps / float(np.median(times["vmap"]))}
            for name in refs:
                ratios = [b / a for a, b in zip(times["vmap"], times[name])]
                case[f"speedup_vs_{name}"] = float(np.median(ratios))
            cases[f"width{width}-{optimizer}"] = case
            print(f"width {width:3d} {optimizer:9s} S={n_models} steps={steps}: vmap "
                  f"{np.median(times['vmap']):.3f} s; vs per-step Python loop "
                  f"{case['speedup_vs_loop_steps']:.1f}x, vs per-model compiled loop "
                  f"{case['speedup_vs_loop_compiled']:.1f}x; max rel. param diff "
                  f"{max(diffs.values()):.1e}", flush=True)
    payload = {
        "benchmark": "training: vmapped ensemble vs Python loop over models",
        **metadata(), "mode": "quick" if args.quick else "default",
        "parameters": {"n_models": n_models, "widths": list(widths), "depth": 2,
                       "n_train": 16, "steps": steps, "rounds": rounds},
        "goal": ">= 10x vs a Python loop over the models", "cases": cases,
        "met_vs_loop_steps": all(c["speedup_vs_loop_steps"] >= 10 for c in cases.values()),
        "met_vs_loop_compiled": all(c["speedup_vs_loop_compiled"] >= 10
                                    for c in cases.values()),
    }
    write_json(payload, args.out)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
