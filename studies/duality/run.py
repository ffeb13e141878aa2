"""Momentum GD as a scalar field in de Sitter space (duality-nn-cosmology, issue 19).

    python studies/duality/run.py              # the default (see README: what it leaves out)
    python studies/duality/run.py --full       # the whole Fig. 3 grid (m in {0.01, 0.1, 0.2},
                                               # width 1000 x depth 5 too)
    python studies/duality/run.py --reduced    # CI: small widths, one depth (~2 min)
    python studies/duality/run.py --resume     # continue an interrupted run

Every piece of work is a block of :func:`nnft.engine.blocks.run_blocks` (``setups.py``), written
to ``OUT/blocks/`` as soon as it is done (``--resume`` loads the finished ones). Then
``OUT/results.nc``, ``OUT/summary.json`` (:mod:`analysis`) and the figures (:mod:`figures`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import analysis  # noqa: E402
import setups as st  # noqa: E402

from nnft.engine.blocks import default_workers, run_blocks  # noqa: E402
from nnft.results import write_json, write_netcdf  # noqa: E402


def _init_worker(study_dir: str) -> None:
    sys.path.insert(0, study_dir)


def _alpha(depth, width, n_seeds):
    return st.alpha_block(depth, width, n_seeds)


def _matching(grid, *arch):
    return st.matching_block(grid, *arch)


def _modes(grid, *cfg):
    return st.modes_block(grid, *cfg)


def _readout(grid):
    return st.readout_block(grid)


def _tag(*parts) -> str:
    return "_".join(str(p).replace(".", "p") for p in parts)


def work_list(grid: st.Grid) -> list[tuple]:
    """``(kind, key, function, args)`` for every block, the expensive ones first."""
    out = []
    for d in grid.alpha_depths:
        for w in grid.alpha_widths:
            seeds = grid.alpha_seeds_widest if w >= 10000 else grid.alpha_seeds
            out.append(("alpha", (d, w), _alpha, (d, w, seeds)))
    for arch in grid.matching_archs():
        out.append(("matching", arch, _matching, (grid, *arch)))
    for cfg in grid.mode_archs():
        out.append(("modes", cfg, _modes, (grid, *cfg)))
    out.append(("readout", (), _readout, (grid,)))
    cost = {"alpha": lambda k: k[0] * k[1], "matching": lambda k: k[0] * k[1] ** 2,
            "modes": lambda k: k[0] * 1e6, "readout": lambda k: 0}
    return sorted(out, key=lambda item: -cost[item[0]](item[1]))


def run_all(grid: st.Grid, out: Path, *, resume: bool, workers: int, progress: bool,
            stop_after: int | None = None) -> dict:
    items = work_list(grid)
    blocks = out / "blocks"
    blocks.mkdir(parents=True, exist_ok=True)
    paths = [blocks / f"{kind}_{_tag(*key)}.npz" for kind, key, _, _ in items]
    results = run_blocks(_call, [(fn, args) for _, _, fn, args in items], paths,
                         workers=workers, resume=resume, progress=progress,
                         description=f"duality ({grid.name})", initializer=_init_worker,
                         initargs=(str(HERE),), stop_after=stop_after)
    grouped: dict = {"alpha": {}, "matching": {}, "modes": {}, "readout": {}}
    for (kind, key, _, _), res in zip(items, results):
        grouped[kind][key] = res
    return grouped


def _call(fn, args):
    return fn(*args)


def _previous_seconds(path: Path, resume: bool) -> float:
    """The compute time of the earlier calls that a resumed run builds on."""
    if not (resume and path.exists()):
        return 0.0
    import json

    return float(json.loads(path.read_text()).get("seconds_compute", 0.0))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="the whole Fig. 3 grid")
    mode.add_argument("--reduced", action="store_true", help="the small CI grid")
    ap.add_argument("--resume", action="store_true", help="load the finished blocks")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: results/, results-full/, results-reduced/)")
    ap.add_argument("--workers", type=int, default=None,
                    help="processes sharing the blocks (default: one per core on a CPU)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="stop after this many blocks (to test --resume)")
    args = ap.parse_args(argv)
    name = "full" if args.full else "reduced" if args.reduced else "default"
    grid = st.GRIDS[name]
    out = args.out or HERE / {"default": "results", "full": "results-full",
                              "reduced": "results-reduced"}[name]
    out.mkdir(parents=True, exist_ok=True)
    workers = default_workers() if args.workers is None else max(1, args.workers)
    t0 = time.perf_counter()
    grouped = run_all(grid, out, resume=args.resume, workers=workers,
                      progress=not args.no_progress, stop_after=args.stop_after)
    seconds = time.perf_counter() - t0
    ds = analysis.dataset(grid, grouped)
    ds.attrs["seconds"] = seconds
    write_netcdf(ds, out / "results.nc")
    summary = analysis.summarise(grid, grouped, ds)
    summary["seconds"] = seconds
    summary["seconds_compute"] = seconds + _previous_seconds(out / "summary.json", args.resume)
    summary["workers"] = workers
    write_json(summary, out / "summary.json")
    if not args.no_plots:
        import figures

        figures.all_figures(grid, ds, summary, out)
    acc = summary["acceptance"]
    print(f"{name}: {seconds:.0f} s; acceptance "
          + ", ".join(f"{k}={'pass' if v['pass'] else 'FAIL'}" for k, v in acc.items())
          + f"; wrote {out}")
    return ds, summary


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
