"""Finite-volume Fokker-Planck solver on uniform 1-d and 2-d grids (eqs. 11, 27).

    dP/dt = -div(D P) + 1/2 Lap(sigma2 P),   sigma2 a constant number

**Density convention.** ``P`` holds the density at the cell centres (equivalently the cell
averages, to O(h^2)); the mass of a cell is ``P * grid.volume`` and the total mass
``P.sum() * grid.volume``. ``P`` need not be normalised. The scheme is linear and the cells
are uniform, so an array of cell masses evolves to cell masses in the same way.

**Scheme.** Conservative finite volumes; the flux through each face in its normal direction
is Scharfetter-Gummel's exponentially fitted flux

    F = (d / h) [B(-Pe) P_left - B(Pe) P_right],   d = sigma2 / 2,  Pe = D h / d,
    B(x) = x / (e^x - 1),

which is exact for a constant drift in 1-d and goes over to upwinding as ``d -> 0``. Time
steps are SSP-RK2 (Heun): two explicit Euler stages averaged, so ``P >= 0`` whenever each
stage obeys the CFL bound ``dt * (outflow rate of every cell) <= cfl``; the number of
substeps is raised to meet it (or :class:`ConfigError` with ``subdivide=False``). Each face's
flux leaves one cell and enters its neighbour, so the mass is conserved to round-off with
zero-flux or periodic walls. Loops run over substeps and axes, never over cells.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nnft import _validate as v

WALLS = ("zero-flux", "periodic", "absorbing")
SCHEMES = ("sg", "upwind")


@dataclass(frozen=True)
class Grid:
    """A uniform grid of ``cells[a]`` cells on ``[lo[a], hi[a]]`` for each axis ``a`` (d = 1, 2).

    ``Grid(lo, hi, cells)`` with ``lo``/``hi`` sequences of d numbers (or numbers for d = 1)
    and ``cells`` a sequence of d integers >= 2; bad values raise :class:`ConfigError`."""

    lo: tuple
    hi: tuple
    cells: tuple

    def __post_init__(self):
        lo, hi, cells = (tuple(np.atleast_1d(np.asarray(x)).tolist())
                         for x in (self.lo, self.hi, self.cells))
        v.require(len(cells) in (1, 2) and len(lo) == len(hi) == len(cells), "cells", cells,
                  "lo, hi and cells must be sequences of the same length d = 1 or 2")
        for a in range(len(cells)):
            v.positive_int(f"cells[{a}]", cells[a], minimum=2)
            v.finite(f"lo[{a}]", lo[a])
            v.require(v.is_real(hi[a]) and math.isfinite(hi[a]) and hi[a] > lo[a], f"hi[{a}]",
                      hi[a], f"must be a finite number > lo[{a}] = {lo[a]}")
        object.__setattr__(self, "lo", tuple(float(x) for x in lo))
        object.__setattr__(self, "hi", tuple(float(x) for x in hi))
        object.__setattr__(self, "cells", tuple(int(c) for c in cells))

    @property
    def d(self) -> int:
        return len(self.cells)

    @property
    def h(self) -> np.ndarray:
        return (np.asarray(self.hi) - np.asarray(self.lo)) / np.asarray(self.cells)

    @property
    def shape(self) -> tuple:
        return tuple(self.cells)

    @property
    def volume(self) -> float:
        return float(np.prod(self.h))

    def axis_centres(self, a: int) -> np.ndarray:
        return self.lo[a] + (np.arange(self.cells[a]) + 0.5) * self.h[a]

    def centres(self) -> np.ndarray:
        """Cell centres, shape ``cells + (d,)``."""
        axes = [self.axis_centres(a) for a in range(self.d)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)

    def faces(self, a: int, periodic: bool = False) -> np.ndarray:
        """Centres of the faces normal to axis ``a``, shape ``cells`` with ``n_a + 1`` (walls)
        or ``n_a`` (periodic: face k lies between cells k-1 and k) along ``a``, plus ``(d,)``."""
        n = self.cells[a] if periodic else self.cells[a] + 1
        axes = [self.axis_centres(b) for b in range(self.d)]
        axes[a] = self.lo[a] + np.arange(n) * self.h[a]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)

    def index(self, x) -> np.ndarray:
        """Integer cell indices ``(..., d)`` of positions ``x`` (clipped to the grid)."""
        x = np.asarray(x, np.float64)
        i = np.floor((x - np.asarray(self.lo)) / self.h).astype(np.int64)
        return np.clip(i, 0, np.asarray(self.cells) - 1)

    def inside(self, x) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return np.all((x >= np.asarray(self.lo)) & (x <= np.asarray(self.hi)), axis=-1)


def _bernoulli(x: np.ndarray) -> np.ndarray:
    """B(x) = x / (e^x - 1), with B(0) = 1, for any real x (no overflow)."""
    x = np.asarray(x, np.float64)
    small = np.abs(x) < 1e-6
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        b = x / np.expm1(np.where(small, 1.0, x))
    b = np.where(small, 1.0 - x / 2.0, b)
    return np.where(x > 700.0, 0.0, b)


def face_coefficients(drift_n: np.ndarray, sigma2: float, h: float, scheme: str = "sg"):
    """(a_L, a_R) >= 0 with flux ``a_L P_left - a_R P_right`` on faces of normal drift
    ``drift_n``."""
    d = 0.5 * sigma2
    if scheme == "upwind":
        return np.maximum(drift_n, 0.0) + d / h, np.maximum(-drift_n, 0.0) + d / h
    if d == 0.0:
        return np.maximum(drift_n, 0.0), np.maximum(-drift_n, 0.0)
    pe = drift_n * h / d
    return (d / h) * _bernoulli(-pe), (d / h) * _bernoulli(pe)


def _face_drift(grid: Grid, drift, periodic: bool) -> list[np.ndarray]:
    """The normal drift on every face, per axis, from a callable or from arrays on faces."""
    out = []
    if callable(drift):
        for a in range(grid.d):
            pts = grid.faces(a, periodic)
            val = np.asarray(drift(pts), np.float64)
            v.require(val.shape == pts.shape, "drift", f"callable returning shape {val.shape}",
                      f"must map positions of shape (..., d) = {pts.shape} to drift vectors "
                      "of the same shape")
            out.append(val[..., a])
    else:
        arrs = [drift] if grid.d == 1 and not isinstance(drift, (tuple, list)) else list(drift)
        v.require(len(arrs) == grid.d, "drift", f"{len(arrs)} arrays",
                  f"must be a callable or {grid.d} arrays of normal drift on faces")
        for a, arr in enumerate(arrs):
            arr = np.asarray(arr, np.float64)
            want = grid.faces(a, periodic).shape[:-1]
            v.require(arr.shape == want, f"drift[{a}]", f"shape {arr.shape}",
                      f"must have the face shape {want} (cells with n+1 along axis {a}; "
                      "n when periodic)")
            out.append(arr)
    for a, arr in enumerate(out):
        v.require(bool(np.all(np.isfinite(arr))), f"drift[{a}]", "non-finite values",
                  "must be finite on every face")
    return out


def _take(x: np.ndarray, a: int, sl: slice) -> np.ndarray:
    idx = [slice(None)] * x.ndim
    idx[a] = sl
    return x[tuple(idx)]


class _Operator(NamedTuple):
    coef: list  # per axis (a_L, a_R) on faces
    h: np.ndarray
    walls: str


def _rhs(P: np.ndarray, op: _Operator) -> np.ndarray:
    """-div F: the face fluxes ``a_L P_left - a_R P_right`` per axis; zero through zero-flux
    walls, zero density beyond absorbing ones."""
    out = np.zeros_like(P)
    for a in range(P.ndim):
        a_l, a_r = op.coef[a]
        if op.walls == "periodic":
            flux = a_l * np.roll(P, 1, axis=a) - a_r * P  # face k between cells k-1 and k
            out -= (np.roll(flux, -1, axis=a) - flux) / op.h[a]
            continue
        inner = (_take(a_l, a, slice(1, -1)) * _take(P, a, slice(0, -1))
                 - _take(a_r, a, slice(1, -1)) * _take(P, a, slice(1, None)))
        if op.walls == "absorbing":
            first = -_take(a_r, a, slice(0, 1)) * _take(P, a, slice(0, 1))
            last = _take(a_l, a, slice(-1, None)) * _take(P, a, slice(-1, None))
        else:
            first = last = np.zeros_like(_take(P, a, slice(0, 1)))
        flux = np.concatenate([first, inner, last], axis=a)
        out -= np.diff(flux, axis=a) / op.h[a]
    return out


def _wall_mass(P: np.ndarray) -> float:
    """Fraction of the mass in the cells touching a wall."""
    inner = P[tuple(slice(1, -1) for _ in range(P.ndim))]
    return float(1.0 - inner.sum() / P.sum())


def _max_rate(op: _Operator) -> float:
    """Largest outflow rate of a cell: the CFL bound is ``dt * rate <= cfl``."""
    rate = 0.0
    for a in range(len(op.coef)):
        a_l, a_r = op.coef[a]
        if op.walls == "periodic":
            out = np.roll(a_l, -1, axis=a) + a_r  # right face a_L + left face a_R
        else:
            out = _take(a_l, a, slice(1, None)) + _take(a_r, a, slice(0, -1))
        rate = rate + out / op.h[a]
    return float(np.max(rate))


def check_density(P, grid: Grid, field: str = "P") -> np.ndarray:
    P = np.asarray(P, np.float64)
    v.require(P.shape == grid.shape, field, f"shape {P.shape}",
              f"must have the grid's shape {grid.shape}")
    v.require(bool(np.all(np.isfinite(P))), field, "NaN or infinite values",
              "must be a finite density >= 0")
    v.require(bool(np.all(P >= 0)), field, f"minimum {P.min():.3g}",
              "must be a density >= 0 everywhere")
    v.require(P.sum() > 0, field, "total mass 0", "must have positive mass")
    return P


def evolve(P, grid: Grid, drift, sigma2: float, t: float, substeps: int | None = None, *,
           walls: str = "zero-flux", subdivide: bool = True, cfl: float = 0.9,
           scheme: str = "sg", warn_fraction: float = 1e-3) -> np.ndarray:
    """``P`` evolved by eq. 11 for a time ``t`` (density convention: module docstring).

    ``drift``: a callable mapping an ``(..., d)`` array of positions to ``(..., d)`` drift
    vectors (evaluated once on the faces), or ``d`` arrays of the normal drift on the faces
    (:meth:`Grid.faces`). ``substeps``: the number of time steps (default: the fewest the CFL
    bound allows); raised to meet the bound unless ``subdivide=False``. ``walls``:
    ``"zero-flux"`` (mass held at the walls), ``"periodic"``, or ``"absorbing"`` (zero density
    outside: mass leaves). A warning gives the fraction of the mass that left (absorbing), or
    that sits in the wall cells (zero-flux: the grid is too small), above ``warn_fraction``.
    ``scheme="upwind"``: plain upwind plus central diffusion, for comparison only.
    """
    P = check_density(P, grid)
    v.non_negative("sigma2", sigma2)
    v.non_negative("t", t)
    v.choice("walls", walls, WALLS)
    v.choice("scheme", scheme, SCHEMES)
    v.require(0 < cfl <= 1, "cfl", cfl, "must be in (0, 1]")
    periodic = walls == "periodic"
    faces = _face_drift(grid, drift, periodic)
    op = _Operator([face_coefficients(faces[a], float(sigma2), grid.h[a], scheme)
                    for a in range(grid.d)], grid.h, walls)
    if t == 0:
        return P.copy()
    rate = _max_rate(op)
    need = max(1, math.ceil(t * rate / cfl - 1e-12))
    if substeps is None:
        substeps = need
    else:
        v.positive_int("substeps", substeps)
        if substeps < need:
            v.require(subdivide, "substeps", substeps,
                      f"violates the CFL bound (dt * rate = {t * rate / substeps:.3g} > "
                      f"cfl = {cfl}); use substeps >= {need} or subdivide=True")
            substeps = need
    dt = t / substeps
    mass0 = P.sum()
    for _ in range(substeps):
        p2 = P + dt * _rhs(P, op)
        p2 += dt * _rhs(p2, op)
        P = 0.5 * (P + p2)
    P = np.maximum(P, 0.0)  # round-off only: each stage is a convex combination
    if walls == "absorbing":
        lost = 1.0 - P.sum() / mass0
        if lost > warn_fraction:
            warnings.warn(f"fokker_planck.evolve: {lost:.3g} of the mass left the grid",
                          stacklevel=2)
    elif walls == "zero-flux" and _wall_mass(P) > warn_fraction:
        warnings.warn(f"fokker_planck.evolve: {_wall_mass(P):.3g} of the mass sits in the "
                      "cells at the zero-flux walls, which hold it (mass that would have left "
                      "the grid); widen the grid", stacklevel=2)
    return P


def moments(P, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), covariance (d, d)) of ``P`` by the midpoint rule over the cell centres."""
    P = check_density(P, grid)
    w = P / P.sum()
    x = grid.centres().reshape(-1, grid.d)
    w = w.reshape(-1)
    mean = w @ x
    dx = x - mean
    return mean, (dx * w[:, None]).T @ dx


def gaussian(grid: Grid, mean, cov) -> np.ndarray:
    """The normal density N(mean, cov) at the cell centres (not renormalised on the grid)."""
    mean = np.asarray(mean, np.float64).reshape(grid.d)
    cov = np.asarray(cov, np.float64).reshape(grid.d, grid.d)
    dx = grid.centres() - mean
    q = np.einsum("...i,ij,...j->...", dx, np.linalg.inv(cov), dx)
    return np.exp(-0.5 * q) / np.sqrt(np.linalg.det(2 * np.pi * cov))


def constant_drift(vector: Sequence[float]) -> Callable:
    """A drift equal to ``vector`` everywhere."""
    vec = np.asarray(vector, np.float64)
    return lambda x: np.broadcast_to(vec, np.shape(x)).copy()
