"""The solver's acceptance checks (issue 15, items 1-2), as functions returning the measured
numbers: the study writes them to its summary and the tests assert them."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.integrate
import scipy.linalg

from nnft.fokker_planck.estimators import (
    euler_maruyama,
    gated_drift,
    histogram_on_grid,
    pearson,
)
from nnft.fokker_planck.solver import Grid, evolve, gaussian, moments

OU_A = np.array([[0.5, -1.0], [1.0, 0.5]])
OU_SIGMA2 = 0.1
OU_MU0 = np.array([1.0, 0.0])
OU_COV0 = np.diag([0.08, 0.02])


def ou_drift(x, A=OU_A):
    """D = -A x on ``(..., 2)`` positions (broadcast products: a (n, 2) @ (2, 2) matmul is
    slow in numpy for large n)."""
    x = np.asarray(x, np.float64)
    return -(x[..., 0:1] * A[:, 0] + x[..., 1:2] * A[:, 1])


def ou_closed_form(t: float, A=OU_A, sigma2=OU_SIGMA2, mu0=OU_MU0, cov0=OU_COV0):
    """mu = e^{-At} mu0, Sigma = e^{-At} Sigma0 e^{-A^T t} + sigma2 int_0^t e^{-As} e^{-A^T s} ds."""
    E = scipy.linalg.expm(-A * t)
    integral, _ = scipy.integrate.quad_vec(
        lambda s: scipy.linalg.expm(-A * s) @ scipy.linalg.expm(-A.T * s), 0.0, t,
        epsabs=1e-13, epsrel=1e-12)
    return E @ mu0, E @ cov0 @ E.T + sigma2 * integral


def ou_check(h: float = 0.025, t: float = 1.0, scheme: str = "sg") -> dict:
    """Acceptance 1 (and the mass and positivity of 2): the OU process on [-3, 3]^2."""
    n = round(6.0 / h)
    grid = Grid((-3.0, -3.0), (3.0, 3.0), (n, n))
    P0 = gaussian(grid, OU_MU0, OU_COV0)
    P = evolve(P0, grid, ou_drift, OU_SIGMA2, t, scheme=scheme)
    mu, cov = ou_closed_form(t)
    m, c = moments(P, grid)
    exact = gaussian(grid, mu, cov)
    return {"h": h, "cells": n, "t": t, "scheme": scheme,
            "mean_error": float(np.max(np.abs(m - mu))),
            "cov_rel_error": float(np.linalg.norm(c - cov) / np.linalg.norm(cov)),
            "l1": float(np.abs(P - exact).sum() * grid.volume),
            "mass_rel_error": float(abs(P.sum() - P0.sum()) / P0.sum()),
            "min_P": float(P.min())}


def diffusion_check(sigma2: float = 0.1, t: float = 1.0, cells: int = 160) -> dict:
    """Pure diffusion from N(0, diag(0.08, 0.02)): covariance grows by sigma2 t I."""
    grid = Grid((-3.0, -3.0), (3.0, 3.0), (cells, cells))
    P0 = gaussian(grid, (0.0, 0.0), OU_COV0)
    _, c0 = moments(P0, grid)
    P = evolve(P0, grid, lambda x: np.zeros_like(x), sigma2, t)
    _, c = moments(P, grid)
    growth = c - c0
    want = sigma2 * t * np.eye(2)
    return {"sigma2": sigma2, "t": t, "cells": cells,
            "growth": growth.tolist(),
            "growth_rel_error": float(np.linalg.norm(growth - want) / np.linalg.norm(want)),
            "mass_rel_error": float(abs(P.sum() - P0.sum()) / P0.sum())}


def periodic_check(cells: int = 400, t: float = 20.0) -> dict:
    """Drift alone (sigma2 = 0) with G = 1 + 0.5 sin 2 pi x on the periodic [0, 1]: the
    stationary density of eq. 26, P = sqrt(0.75) / G, is kept."""
    grid = Grid((0.0,), (1.0,), (cells,))

    def G(x):
        return 1.0 + 0.5 * np.sin(2 * np.pi * x)

    exact = np.sqrt(0.75) / G(grid.axis_centres(0))
    P = evolve(exact, grid, G, 0.0, t, walls="periodic")
    return {"cells": cells, "t": t, "max_abs_error": float(np.max(np.abs(P - exact))),
            "mass_rel_error": float(abs(P.sum() - exact.sum()) / exact.sum())}


def particle_check(n_particles: int = 200_000, cells: int = 60, seed: int = 0) -> dict:
    """Euler-Maruyama particles and the grid agree after one epoch (t = 1, 100 substeps) of
    the OU process: Pearson r between the grid density and the particles' histogram."""
    grid = Grid((-3.0, -3.0), (3.0, 3.0), (cells, cells))
    drift = ou_drift
    P = evolve(gaussian(grid, OU_MU0, OU_COV0), grid, drift, OU_SIGMA2, 1.0, substeps=100)
    rng = np.random.default_rng(seed)
    x0 = rng.multivariate_normal(OU_MU0, OU_COV0, size=n_particles)
    x = euler_maruyama(seed, x0, drift, OU_SIGMA2, 1.0, 100, grid=grid)
    return {"n_particles": n_particles, "cells": cells,
            "r": pearson(P, histogram_on_grid(x, grid))}


def gate_check(seed: int = 0) -> dict:
    """A closed gate (the loss rose) gives zero drift: P is unchanged with sigma2 = 0."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0, 0.1, (200, 2))
    disp = rng.normal(0, 0.05, (200, 2))
    grid = Grid((-0.5, -0.5), (0.5, 0.5), (64, 64))
    P0 = gaussian(grid, (0.0, 0.0), 0.01 * np.eye(2))
    closed = gated_drift(rows, disp, 0)
    opened = gated_drift(rows, disp, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P = evolve(P0, grid, closed, 0.0, 1.0, substeps=100)
    return {"max_abs_drift_closed": float(np.max(np.abs(closed(grid.centres())))),
            "max_abs_drift_open": float(np.max(np.abs(opened(grid.centres())))),
            "max_abs_change": float(np.max(np.abs(P - P0)))}


def all_checks() -> dict:
    return {"ou": ou_check(), "ou_upwind": ou_check(scheme="upwind"),
            "diffusion": diffusion_check(), "periodic": periodic_check(),
            "particles": particle_check(), "gate": gate_check()}
