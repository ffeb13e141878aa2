"""NTK entropy and trace over training (ntk-collective-variables): the whole study.

    python studies/ntk_collective/run.py              # CPU default (README: what it covers)
    python studies/ntk_collective/run.py --reduced    # CI: 2 widths x 2 depths, relu, 1 seed
    python studies/ntk_collective/run.py --full       # the issue's full grid (hours on a CPU)
    python studies/ntk_collective/run.py --resume     # continue an interrupted run

Parts (:mod:`experiments`, :mod:`init_sweep`): the NTK-parameterisation width sweep at
initialisation, the dense scan on digits, the CNN rows, fuel efficiency and the digits
autoencoder. Every sweep cell and every training run is a block written atomically to
``OUT/blocks/`` by :func:`nnft.engine.blocks.run_blocks` (``--resume`` loads finished ones).
Then ``OUT/summary.json`` (``init_sweep``, ``claims`` and every number of the README) and
the figures (:mod:`figures`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import analysis
import experiments as ex
import figures
import init_sweep as sw

from nnft.engine.blocks import run_blocks
from nnft.results import write_json

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Sweep:
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)
    depths: tuple[int, ...] = (1, 2, 3, 4, 5)
    activations: tuple[str, ...] = ("relu", "tanh")
    n_seeds: int = 8
    outputs: int = 1
    n_probe: int = 100


def plans(mode: str) -> tuple[ex.Plan, Sweep]:
    if mode == "reduced":
        return (ex.Plan(widths=(8, 32), depths=(1, 2), activations=("relu",), seeds=1,
                        epochs=10, cnn_epochs=3, cnn_rows=((8, 1, "relu"),), fuel_epochs=10,
                        ae_epochs=10, n_probe=50),
                Sweep(widths=(64, 256), depths=(1, 2), activations=("relu",), n_seeds=2,
                      n_probe=50))
    if mode == "full":
        return (ex.Plan(widths=(8, 16, 32, 64, 128, 256, 512), depths=(1, 2, 3, 4, 5),
                        cnn_epochs=100,
                        cnn_rows=tuple((c, n, a) for a in ("relu", "tanh") for n in (1, 2)
                                       for c in (8, 16, 32))),
                Sweep(outputs=10))
    return ex.Plan(), Sweep()


def _init_worker(study_dir: str) -> None:
    sys.path.insert(0, study_dir)


def _train(kind, config, plan):
    return ex.run_block(kind, config, plan)


def _sweep(probes, act, depth, width, n_seeds, outputs):
    return sw.sweep_cell(probes, act, depth, width, n_seeds, outputs)


def run_sweep(sweep: Sweep, out: Path, resume: bool, progress: bool, workers: int):
    _, _, probes = ex.digits_data(sweep.n_probe)
    cells = [(a, dep, w) for a in sweep.activations for dep in sweep.depths for w in sweep.widths]
    res = run_blocks(_sweep, [(probes, a, dep, w, sweep.n_seeds, sweep.outputs)
                              for a, dep, w in cells],
                     [out / "blocks" / f"init_{a}_{dep}_{w}.npz" for a, dep, w in cells],
                     workers=workers, resume=resume, progress=progress,
                     description="init sweep", initializer=_init_worker, initargs=(str(HERE),))
    infinite = {(a, dep, name): sw.infinite_width(x, dep, a) for a in sweep.activations
                for dep in sweep.depths for name, x in probes.items()}
    rows = sw.summarize(dict(zip(cells, res)), probes, infinite)
    return rows, sw.acceptance(rows)


def run_training(plan: ex.Plan, out: Path, resume: bool, progress: bool, workers: int):
    runs = plan.runs()
    res = run_blocks(_train, [(k, c, plan) for k, c in runs],
                     [ex.block_path(out, k, c) for k, c in runs], workers=workers,
                     resume=resume, progress=progress, description="training runs",
                     initializer=_init_worker, initargs=(str(HERE),))
    return dict(zip(runs, res))


def summarize(plan, sweep, rows, acc, trained, timings) -> dict:
    dense = {c: b for (k, c), b in trained.items() if k == "dense"}
    per_run = analysis.per_run(dense) if dense else []
    return {
        "plan": dataclasses.asdict(plan), "sweep": dataclasses.asdict(sweep),
        "timings_s": timings, "init_sweep": rows, "init_sweep_acceptance": acc,
        "claims": analysis.claims(per_run) if per_run else {},
        "dense_runs": per_run,
        "parameterisation": analysis.parameterisation(rows, dense) if rows and dense else {},
        "cnn": {ex.run_name("cnn", c): analysis.evolution_summary(b)
                for (k, c), b in trained.items() if k == "cnn"},
        "fuel": {ex.run_name(k, c): analysis.evolution_summary(b)
                 for (k, c), b in trained.items() if k == "fuel"},
        "ae": {ex.run_name(k, c): analysis.evolution_summary(b)
               for (k, c), b in trained.items() if k == "ae"},
    }


def make_figures(out: Path, rows, trained) -> None:
    dense = {c: b for (k, c), b in trained.items() if k == "dense"}
    if dense:
        figures.heatmaps(dense, out / "fig2_heatmaps.png")
        figures.dense_evolution(dense, out / "fig4_dense_evolution.png")
    cnn = {f"{c[0]}ch x{c[1]} {c[2]}": b for (k, c), b in trained.items() if k == "cnn"}
    if cnn:
        figures.evolution(cnn, "CNN on digits (rows vary one property)", out / "fig1_cnn.png")
    for kind, name, title in (("fuel", "fig5_fuel.png", "fuel efficiency, 32-32-1 relu"),
                              ("ae", "fig_ae.png", "digits autoencoder 64-32-8-32-64")):
        bl = {kind: b for (k, _), b in trained.items() if k == kind}
        if bl:
            figures.evolution(bl, title, out / name)
    if rows:
        figures.init_sweep(rows, out / "fig_init_sweep.png")


def _clean(obj):
    """NaN and infinities become null (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _clean(x) for k, x in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(x) for x in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--reduced", action="store_true", help="the small CI run")
    mode.add_argument("--full", action="store_true", help="the issue's full grid")
    ap.add_argument("--resume", action="store_true", help="load finished blocks")
    ap.add_argument("--out", type=Path, default=None, help="default: results/ (reduced: "
                    "results-reduced/)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--widths", type=int, nargs="+", help="dense scan widths")
    ap.add_argument("--depths", type=int, nargs="+", help="dense scan depths")
    ap.add_argument("--epochs", type=int, help="dense scan epochs")
    ap.add_argument("--parts", nargs="+", choices=("sweep", "dense", "cnn", "fuel", "ae"),
                    default=("sweep", "dense", "cnn", "fuel", "ae"))
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args(argv)
    m = "reduced" if a.reduced else "full" if a.full else "default"
    plan, sweep = plans(m)
    over = {k: tuple(val) if isinstance(val, list) else val for k, val in
            (("widths", a.widths), ("depths", a.depths), ("epochs", a.epochs)) if val}
    plan = dataclasses.replace(plan, parts=tuple(p for p in a.parts if p != "sweep"), **over)
    out = a.out or (HERE / ("results-reduced" if a.reduced else "results"))
    out.mkdir(parents=True, exist_ok=True)
    progress = not a.no_progress
    t0 = time.time()
    rows, acc = (run_sweep(sweep, out, a.resume, progress, a.workers) if "sweep" in a.parts
                 else ([], {}))
    t1 = time.time()
    trained = run_training(plan, out, a.resume, progress, a.workers)
    t2 = time.time()
    summary = summarize(plan, sweep, rows, acc, trained,
                        {"init_sweep": round(t1 - t0, 1), "training": round(t2 - t1, 1)})
    summary = _clean({"mode": m, **summary})
    write_json(summary, out / "summary.json")
    if not a.no_plots:
        make_figures(out, rows, trained)
    print(f"wrote {out / 'summary.json'} ({time.time() - t0:.0f} s)")
    return summary


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
