"""Phase diagram of SGD in a teacher-student network (sgd-phase-diagram): the whole study.

    python studies/sgd_phases/run.py                # 12 x 12 grid x 100 teachers, t_f = 1e5
    python studies/sgd_phases/run.py --reduced      # 3 x 3 grid x 4 teachers, t_f = 2000 (CI)
    python studies/sgd_phases/run.py --resume       # continue an interrupted run

Trains every (eps, 1/sigma_W, teacher) student at once (:mod:`teacher_student`), in blocks
of ``--teachers-per-block`` teachers whose finished results are written atomically to
``OUT/blocks/`` (``--resume`` skips them), then writes ``OUT/results.nc`` (dims eps,
inv_sigma, teacher, time, eig), ``OUT/summary.json`` and the figures (:mod:`figures`).

The blocks run through :func:`nnft.engine.blocks.run_blocks`: on a CPU they are shared out to
``--workers`` single-threaded processes (default: one per core); with accelerators one
process runs every block and splits each block's teachers over all its devices
(``teacher_student.run_block``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import analysis
import figures
import teacher_student as ts

from nnft.engine.blocks import default_workers, run_blocks
from nnft.random_matrix import (
    SpacingDrift,
    ks_marchenko_pastur,
    mean_level_spacing,
    spacing_rate,
)
from nnft.random_matrix import converged as criterion_holds
from nnft.results import write_json, write_netcdf

HERE = Path(__file__).resolve().parent
LEVELS = (0.68, 0.95, 0.997)


def reduced_grid(**kw) -> ts.Grid:
    """The CI grid: 3 x 3 corners and centre of the paper's plane, 4 teachers, 2000 steps."""
    kw = {"n_teachers": 4, "steps": 2000, **kw}
    return ts.Grid(eps=(2.0**-3, 2.0**2, 2.0**7), inv_sigma=(2.0**-8, 2.0**-2, 2.0**3), **kw)


def _init_worker(study_dir: str) -> None:
    sys.path.insert(0, study_dir)


def _run_block(grid: ts.Grid, a: int, b: int) -> dict:
    return ts.run_block(grid, a, b)


def train_grid(grid: ts.Grid, out_dir: Path, *, resume: bool, progress: bool = True,
               workers: int = 1, stop_after_blocks: int | None = None) -> list[dict]:
    """All blocks of ``grid`` through :func:`nnft.engine.blocks.run_blocks`: each finished block
    is written to ``out_dir/blocks`` and, with ``resume``, loaded instead of retrained."""
    blocks = grid.blocks()
    return run_blocks(_run_block, [(grid, a, b) for a, b in blocks],
                      [ts.block_path(out_dir, grid, a) for a, _ in blocks], workers=workers,
                      resume=resume, progress=progress,
                      description=f"SGD grid ({grid.n_models} models)",
                      units_per_block=grid.steps, unit="steps", initializer=_init_worker,
                      initargs=(str(HERE),), stop_after=stop_after_blocks)


def assemble(grid: ts.Grid, blocks: list[dict]) -> xr.Dataset:
    """One Dataset with dims (eps, inv_sigma, teacher[, time][, eig])."""
    def cat(name):
        x = np.concatenate([b[name] for b in blocks], axis=0)  # (teacher, E, S, ...)
        return np.moveaxis(x, 0, 2)  # (E, S, teacher, ...)

    dims = ("eps", "inv_sigma", "teacher")
    data = {
        "eigenvalues": (dims + ("time", "eig"), cat("eigenvalues")),
        "test_loss": (dims + ("time",), cat("test_loss")),
    }
    for name in ("train_loss", "train_loss_init", "grad_norm", "grad_norm_init",
                 "feature_overlap", "feature_overlap_init", "alignment", "alignment_init",
                 "k_s", "v_s", "d_s", "k_s_x", "v_s_x", "d_s_x"):
        data[name] = (dims, cat(name))
    data["teacher_eigenvalues"] = (("teacher", "eig"),
                                   np.concatenate([b["teacher_eigenvalues"] for b in blocks]))
    ds = xr.Dataset(data, coords={
        "eps": np.asarray(grid.eps), "inv_sigma": np.asarray(grid.inv_sigma),
        "teacher": np.arange(grid.n_teachers), "time": np.asarray(grid.times),
        "eig": np.arange(ts.N2), "temperature": ("eps", grid.temperature),
        "sigma_w": ("inv_sigma", grid.sigma_w)})
    spacing = mean_level_spacing(ds["eigenvalues"].values)
    ds["spacing"] = (dims + ("time",), spacing)
    t_f = grid.times[-1]
    ds["rate"] = (dims, spacing_rate(spacing[..., -1], spacing[..., 0], t_f))
    for suffix in ("", "_x"):
        ds["converged" + suffix] = (dims, criterion_holds(
            SpacingDrift(*(ds[f + suffix].values for f in ("k_s", "v_s", "d_s"))),
            ds["temperature"].values[:, None, None], ds["sigma_w"].values[None, :, None],
            ts.N2, ts.R))
    ds.attrs.update({"grid": str(grid), "t_f": t_f, "batch": grid.batch,
                     "model": "teacher-student tanh 3-32-16-1, W2 trained by SGD"})
    return ds


def mean_se(x):
    """Mean over the last axis (teachers) and its standard error."""
    x = np.asarray(x, np.float64)
    n = x.shape[-1]
    se = x.std(axis=-1, ddof=1) / np.sqrt(n) if n > 1 else np.full(x.shape[:-1], np.nan)
    return x.mean(axis=-1), se


def summarise(ds: xr.Dataset, grid: ts.Grid) -> dict:
    """The numbers the README quotes."""
    out: dict = {"grid": {"eps": list(grid.eps), "inv_sigma": list(grid.inv_sigma),
                          "temperature": grid.temperature.tolist(),
                          "n_teachers": grid.n_teachers, "steps": grid.steps,
                          "n_train": grid.n_train, "n_test": grid.n_test,
                          "teacher_var": grid.teacher_var,
                          "teacher_dist": grid.teacher_dist}}
    for name, src in (("test_loss", ds["test_loss"].values[..., -1]),
                      ("grad_norm", ds["grad_norm"].values),
                      ("grad_norm_init", ds["grad_norm_init"].values),
                      ("feature_overlap", ds["feature_overlap"].values),
                      ("alignment", ds["alignment"].values),
                      ("rate", ds["rate"].values)):
        m, se = mean_se(src)
        out[name] = {"mean": m.tolist(), "stderr": se.tolist()}
    out["converged_fraction"] = ds["converged"].values.mean(axis=-1).tolist()
    out["converged_fraction_x_basis"] = ds["converged_x"].values.mean(axis=-1).tolist()
    loss = np.asarray(out["test_loss"]["mean"])
    out["test_loss_range"] = [float(loss.min()), float(loss.max())]
    # Marchenko-Pastur at t = 0: every grid point's teachers, per sigma_W
    ev0 = ds["eigenvalues"].values[..., 0, :]  # (E, S, teacher, eig)
    ks = []
    for j, sw in enumerate(grid.sigma_w):
        per_eps = [ks_marchenko_pastur(ev0[i, j], sw**2, ts.R)[1] for i in range(len(grid.eps))]
        stat, p = ks_marchenko_pastur(ev0[0, j], sw**2, ts.R)
        ks.append({"inv_sigma": grid.inv_sigma[j], "ks_statistic": stat, "p_value": p,
                   "p_value_min_over_eps": float(min(per_eps)),
                   "n_eigenvalues": int(ev0[0, j].size)})
    out["marchenko_pastur"] = ks
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reduced", action="store_true", help="the small CI grid")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: results/ or results-reduced/ here)")
    ap.add_argument("--resume", action="store_true", help="skip finished blocks")
    ap.add_argument("--teachers", type=int, default=None, help="teachers per grid point")
    ap.add_argument("--steps", type=int, default=None, help="SGD steps t_f")
    ap.add_argument("--teachers-per-block", type=int, default=None)
    ap.add_argument("--teacher", choices=sorted(ts.TEACHERS), default="paper",
                    help="the teacher's weights: 'paper' N(0, 1/n) (eq. 3.1, default) or "
                    "'torch_default' U(-1/sqrt n, 1/sqrt n) (issue 16)")
    ap.add_argument("--workers", type=int, default=None,
                    help="processes sharing the blocks (default: one per core on a CPU, one "
                    "on accelerators)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--plots-only", action="store_true",
                    help="redraw the figures from OUT/results.nc and OUT/summary.json")
    args = ap.parse_args(argv)
    kw = {k: val for k, val in (("n_teachers", args.teachers), ("steps", args.steps),
                                ("teachers_per_block", args.teachers_per_block))
          if val is not None}
    kw.update(ts.TEACHERS[args.teacher])
    grid = reduced_grid(**kw) if args.reduced else ts.Grid(**kw)
    default_out = "results-reduced" if args.reduced else "results"
    if args.teacher != "paper":
        default_out += f"/teacher_{args.teacher}"
    out = args.out or HERE / default_out
    out.mkdir(parents=True, exist_ok=True)
    if args.plots_only:
        import json

        ds = xr.load_dataset(out / "results.nc")
        summary = json.loads((out / "summary.json").read_text())
        figures.all_figures(ds, summary, out)
        print(f"redrew the figures in {out}")
        return ds, summary
    import jax

    print(f"{grid.n_models} models ({len(grid.eps)} eps x {len(grid.inv_sigma)} sigma_W x "
          f"{grid.n_teachers} teachers), t_f = {grid.steps}, {len(grid.blocks())} blocks",
          flush=True)
    t0 = time.perf_counter()
    workers = default_workers() if args.workers is None else max(1, args.workers)
    blocks = train_grid(grid, out, resume=args.resume, progress=not args.no_progress,
                        workers=min(workers, len(grid.blocks())))
    seconds = time.perf_counter() - t0
    ds = assemble(grid, blocks)
    ds.attrs["seconds"] = seconds
    write_netcdf(ds, out / "results.nc")
    summary = summarise(ds, grid)
    summary["derived"] = analysis.derive(summary)
    summary["seconds_training"] = seconds
    summary["devices"] = f"{len(jax.devices())} x {jax.devices()[0].platform}"
    summary["workers"] = workers
    write_json(summary, out / "summary.json")
    if not args.no_plots:
        figures.all_figures(ds, summary, out)
    lo, hi = summary["test_loss_range"]
    pmin = min(k["p_value"] for k in summary["marchenko_pastur"])
    print(f"trained in {seconds:.0f} s; mean test loss spans {lo:.2e} .. {hi:.2e}; "
          f"smallest Marchenko-Pastur KS p-value {pmin:.3f}; wrote {out}")
    return ds, summary


if __name__ == "__main__":
    main()
