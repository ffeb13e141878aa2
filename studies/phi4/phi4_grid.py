"""The coupling grid, seeds and NUTS settings of the phi^4 study (shared by ``run.py`` and
its resumable NUTS stage, so a resumed study finds the runs it already finished)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from nnft import CosNet
from nnft.interaction import Box, Interaction, make_target, phi4
from nnft.mcmc import MCMCConfig, run_nuts

POINTS = np.array([[0.0], [0.3], [0.6], [0.9]])
BOX = Box((2.0,))
NODES = 24
# G2(0, 0) shifts by 4-40 % over these couplings (reweighting ESS fraction > 0.89,
# scan in README); the two smallest N = 10 points anchor the slope at lambda -> 0.
COUPLINGS = {10: (0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.18, 0.25),
             100: (0.01, 0.03, 0.05, 0.08, 0.12, 0.18, 0.25)}


# Repeats with a fresh seed, to test a NUTS-reweighting disagreement by experiment: the
# first run at N = 100, lambda = 0.05 gave z = -3.2 .. -3.8 on all four G2 entries.
REPEATS = {(100, 0.05): 20_100}


def prior_at(width: int) -> CosNet:
    return CosNet(d=1, width=width, sigma_w0=1.0, sigma_w1=1.0)


def unit_interaction() -> Interaction:
    return Interaction(phi4(1.0), BOX, NODES)


def nuts_seed(width: int, index: int) -> int:
    """An independent seed per (width, coupling): the points of a slope fit are uncorrelated."""
    return 10_000 + 100 * width + index


def nuts_config(width: int, index: int, *, quick: bool = False) -> MCMCConfig:
    """8 chains x 40,000 draws at N = 10, 10,000 at N >= 40 (one draw costs ~N times more,
    the autocorrelation time is ~1.5 at every width); ``quick``: a smoke run."""
    if quick:
        return MCMCConfig(chains=4, warmup=300, samples=1000, seed=nuts_seed(width, index))
    return MCMCConfig(chains=8, warmup=1000, samples=max(10_000, 400_000 // width),
                      seed=nuts_seed(width, index))


def run_dir(out: Path, width: int, coupling: float, repeat: bool = False) -> Path:
    return out / "runs" / (f"N{width}-lam{coupling:g}" + ("-repeat" if repeat else ""))


def nuts_run(width: int, index: int, coupling: float, out: Path, *, quick: bool = False,
             repeat: bool = False):
    """One checkpointed NUTS run (resumed if ``out/runs/...`` holds it); ``repeat``: the
    same run with the seed of ``REPEATS``."""
    target = make_target(prior_at(width), unit_interaction().with_coupling(coupling))
    cfg = nuts_config(width, index, quick=quick)
    if repeat:
        cfg = dataclasses.replace(cfg, seed=REPEATS[(width, coupling)])
    return run_nuts(target, POINTS, cfg, checkpoint_dir=run_dir(out, width, coupling, repeat),
                    resume=True, progress=False)


def main(argv=None) -> None:
    """Run (or resume) every NUTS run of the default study: ``python phi4_grid.py OUT``."""
    import sys

    out = Path((argv or sys.argv[1:])[0])
    for width, couplings in COUPLINGS.items():
        for i, lam in enumerate(couplings):
            res = nuts_run(width, i, lam, out)
            print(f"N={width} lambda={lam:g} seed={nuts_seed(width, i)} "
                  f"{res.seconds['total']:.0f} s", flush=True)
    for width, lam in REPEATS:
        res = nuts_run(width, COUPLINGS[width].index(lam), lam, out, repeat=True)
        print(f"repeat N={width} lambda={lam:g} {res.seconds['total']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
