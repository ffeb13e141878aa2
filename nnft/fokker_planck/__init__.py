"""Fokker-Planck evolution of densities on 1-d and 2-d grids (fokker-planck-weights, eqs. 11,
27): a Scharfetter-Gummel finite-volume solver (:mod:`.solver`) and its helpers (KDE on a grid,
Nadaraya-Watson fields, an Euler-Maruyama particle twin, the paper's image comparison).

    from nnft.fokker_planck import Grid, evolve, moments
    grid = Grid((-3, -3), (3, 3), (240, 240))
    P = evolve(P0, grid, lambda x: -x @ A.T, sigma2=0.1, t=1.0)
    mean, cov = moments(P, grid)

Density convention: ``P`` is the density at the cell centres; ``P.sum() * grid.volume`` is the
mass (cell masses evolve alike, the scheme being linear on uniform cells).
"""

from nnft.fokker_planck.estimators import (
    compare_images,
    euler_maruyama,
    gated_drift,
    heaviside_gate,
    histogram_on_grid,
    kde,
    kde_on_grid,
    nadaraya_watson,
    pearson,
    sample_grid,
    scott_bandwidth,
)
from nnft.fokker_planck.solver import (
    SCHEMES,
    WALLS,
    Grid,
    check_density,
    constant_drift,
    evolve,
    face_coefficients,
    gaussian,
    moments,
)

__all__ = [
    "SCHEMES",
    "WALLS",
    "Grid",
    "check_density",
    "compare_images",
    "constant_drift",
    "euler_maruyama",
    "evolve",
    "face_coefficients",
    "gated_drift",
    "gaussian",
    "heaviside_gate",
    "histogram_on_grid",
    "kde",
    "kde_on_grid",
    "moments",
    "nadaraya_watson",
    "pearson",
    "sample_grid",
    "scott_bandwidth",
]
