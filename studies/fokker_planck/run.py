"""Fokker-Planck evolution of bottleneck weight rows (fokker-planck-weights): the whole study.

    python studies/fokker_planck/run.py              # digits 0-5, 80 epochs, 5 seeds, 128^2 grid
    python studies/fokker_planck/run.py --reduced    # 6 epochs, 1 seed, 64^2 grid (CI)
    python studies/fokker_planck/run.py --resume     # reuse the finished blocks in OUT/blocks
    python studies/fokker_planck/run.py --data fashion   # Fashion-MNIST 0-5 (784-512-200)

Trains the autoencoders (:mod:`autoencoder`, every seed at once), writes the training to
``OUT/blocks/train.npz``, then runs each seed's comparisons (:mod:`analysis`) as one block
``OUT/blocks/seed_<s>.npz`` through :func:`nnft.engine.blocks.run_blocks` (``--resume`` loads
the finished ones), measures the solver's acceptance checks (:mod:`nnft.fokker_planck.checks`)
and writes ``OUT/summary.json``, the figures (:mod:`figures`) and, except with ``--reduced``,
the experiments of :mod:`hypotheses` (``OUT/hypotheses.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import analysis as an
import autoencoder as ae
import summary as sm

from nnft.engine.blocks import load_block, run_blocks, save_block
from nnft.results import write_json

HERE = Path(__file__).resolve().parent
CLASSES = 6  # digits / classes 0-5


def load_data(name: str):
    """(x, labels) of classes 0-5: ``digits`` (scikit-learn 8x8, /16), ``fashion`` or ``mnist``
    (IDX train split, /255)."""
    from nnft import datasets

    split = {"digits": datasets.digits, "fashion": lambda: datasets.fashion_mnist("train"),
             "mnist": lambda: datasets.mnist("train")}[name]()
    keep = split.y < CLASSES
    return split.x[keep], split.y[keep]


def configs(args) -> tuple[ae.Config, an.Settings]:
    hidden = (512,) if args.data in ("fashion", "mnist") else ()
    if args.reduced:
        cfg = ae.Config(epochs=6, seeds=1, hidden=hidden)
        st = an.Settings(epochs=(0, 1, 2, 5, 6), cells=64, figure_epochs=(0, 5, 6))
    else:
        cfg = ae.Config(hidden=hidden)
        st = an.Settings()
    if args.epochs is not None:
        cfg = cfg._replace(epochs=args.epochs)
    if args.seeds is not None:
        cfg = cfg._replace(seeds=args.seeds)
    if args.cells is not None:
        st = st._replace(cells=args.cells)
    ep = tuple(e for e in st.epochs if e <= cfg.epochs)
    if cfg.epochs not in ep:
        ep = ep + (cfg.epochs,)
    figs = tuple(e for e in st.figure_epochs if e <= cfg.epochs)
    figs = figs if cfg.epochs in figs else figs + (cfg.epochs,)
    return cfg, st._replace(epochs=ep, figure_epochs=figs)


def _init_worker(study_dir: str) -> None:
    sys.path.insert(0, study_dir)


def seed_work(train_path: str, data: str, seed: int, st: an.Settings) -> dict:
    """One seed's block (module level, for worker processes)."""
    block = load_block(Path(train_path))
    x, _ = load_data(data)
    feats = {t: ae.features(block, t, seed, x) for t in st.epochs}
    return an.seed_block(block["rows"][:, seed], block["loss"][:, seed], block["w2"][:, seed],
                         feats, seed, st)


def train_block(x, cfg: ae.Config, st: an.Settings, path: Path, resume: bool) -> dict:
    if resume and path.exists():
        return load_block(path)
    block = ae.train(x, cfg, st.epochs)
    save_block(path, block)
    return block


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reduced", action="store_true", help="6 epochs, 1 seed, 64^2 grid")
    ap.add_argument("--resume", action="store_true", help="load the finished blocks")
    ap.add_argument("--data", choices=("digits", "fashion", "mnist"), default="digits")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: results/, results-reduced/ or results-<data>/)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--cells", type=int, default=None, help="weight grid cells per axis")
    ap.add_argument("--workers", type=int, default=None, help="processes for the seed blocks")
    ap.add_argument("--no-checks", action="store_true", help="skip the solver checks")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    cfg, st = configs(args)
    name = "results-reduced" if args.reduced else "results"
    if args.data != "digits":
        name += f"-{args.data}"
    out = args.out or HERE / name
    (out / "blocks").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    x, labels = load_data(args.data)
    block = train_block(x, cfg, st, out / "blocks" / "train.npz", args.resume)
    t_train = time.perf_counter() - t0
    print(f"trained {cfg.seeds} seeds x {cfg.epochs} epochs on {x.shape} in {t_train:.0f} s; "
          f"loss {block['loss'][-1].mean():.4f}", flush=True)
    workers = args.workers if args.workers is not None else min(2, cfg.seeds)
    seeds = run_blocks(seed_work, [(str(out / "blocks" / "train.npz"), args.data, s, st)
                                   for s in range(cfg.seeds)],
                       [out / "blocks" / f"seed_{s}.npz" for s in range(cfg.seeds)],
                       workers=workers, resume=args.resume, initializer=_init_worker,
                       initargs=(str(HERE),))
    t_seeds = time.perf_counter() - t0 - t_train
    checks = None
    if not args.no_checks:
        from nnft.fokker_planck.checks import all_checks

        checks = all_checks()
    summary = sm.summarise(block, seeds, cfg, st, checks, args.data)
    summary["config"]["n_train"] = int(x.shape[0])
    summary["seconds"] = {"training": t_train, "comparisons": t_seeds,
                          "total": time.perf_counter() - t0}
    write_json(summary, out / "summary.json")
    if not args.reduced and cfg.epochs >= 5:
        import hypotheses

        hypotheses.run(out, args.data)
    if not args.no_plots:
        import figures

        figures.all_figures(block, seeds, summary, x, labels, out)
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return summary


if __name__ == "__main__":
    main()
