"""Exact correlators of the spectral net (TASI eqs. 65-67) and Scalar-net (eqs. 72-74).

The spectral net is ``phi(x) = sum_i w1_i F(w0_i) cos(w0_i . x + b_i)`` with
``w0 ~ Unif(B_Lambda^d)``, ``b ~ Unif[-pi, pi]``, ``w1 ~ N(0, sigma_w1^2 / N)`` and
``F(p)^2 = 2 vol(B_Lambda^d) rho(|p|) / ((2 pi)^d sigma_w1^2)``, so that its power
spectrum is ``rho`` below the cutoff:

    G2(r) = int_{|p| < Lambda} d^dp / (2 pi)^d  e^{i p.r} rho(|p|)            (eq. 74)

For an isotropic integrand the angular integral is a Bessel function, and we
use the radial (Hankel) form

    H_d[f](r) = S_{d-1} / (2 pi)^d  int_0^Lambda p^{d-1} f(p) Omega_d(p r) dp,
    Omega_d(z) = Gamma(d/2) (2/z)^{d/2-1} J_{d/2-1}(z) = 0F1(; d/2; -z^2/4),

which equals ``(2 pi)^{-d/2} r^{1-d/2} int_0^Lambda p^{d/2} J_{d/2-1}(p r) f(p) dp``
for r > 0 and has the right r = 0 limit (Omega_d(0) = 1) built in. Omega_1 = cos,
Omega_2 = J_0, Omega_3 = sin z / z.

Quadrature rule (:func:`quadrature_nodes`): composite Gauss-Legendre with
``order`` nodes per panel on [0, Lambda]. The panels are the dyadic intervals
``[Lambda 2^{-k-1}, Lambda 2^{-k}]`` for k < 40 (plus ``[0, Lambda 2^{-40}]``),
which resolve structure at any scale near p = 0 (a small mass, an integrable
endpoint singularity), each cut further into equal pieces no longer than one
oscillation wavelength ``2 pi / r_max`` of ``Omega_d(p r)``. The node count is
thus ``order * (41 + ~Lambda r_max / (2 pi))``: it grows with ``Lambda * max(r)``.
Separations are sorted and done in blocks, each block with the nodes its own
largest r needs. With the default ``order = 16`` each wavelength gets 16 nodes,
for which the error is at rounding level on smooth spectra; the check is to
double ``order`` and compare (the tests do).

The exact connected four-point function follows from ``phi`` being a sum of N
i.i.d. neurons ``psi = sigma_w1 u F(w0) cos(w0.x + b)``, u ~ N(0, 1). The bias
average of a product of four cosines keeps the three sign patterns with zero sum,
``(1/8) sum_3 cos(w0.(x_a + x_b - x_c - x_d))``, and ``E_q[F^4 cos(w0.y)]`` is
``H_d[rho^2]`` times constants, so

    G4c = (1/N) [ 3 vol(B_Lambda^d) / (2 (2 pi)^d) sum_3 H_d[rho^2](|x_a + x_b - x_c - x_d|)
                  - sum_3 G2(x_a - x_b) G2(x_c - x_d) ].

Neither G2 nor G4c depends on sigma_w1 (F absorbs it). The general n-th neuron
moment (:func:`spectral_neuron_moment`) gives G6c through :mod:`nnft.cumulants`.

All functions return float64 numpy arrays. A spectrum ``rho`` is any callable of
``|p|`` that accepts a float64 numpy array (jax.numpy functions do; they are
evaluated with x64 enabled).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from nnft import _validate as v

Spectrum = Callable[..., object]

DEFAULT_ORDER = 16
_DYADIC_LEVELS = 40
_BLOCK_ELEMENTS = 2_000_000  # separations x nodes evaluated at once


# ---------------------------------------------------------------------------
# named power spectra
# ---------------------------------------------------------------------------
def massive(m: float) -> Spectrum:
    """Free scalar of mass m, eq. (74): ``rho(p) = 1 / (p^2 + m^2)``."""

    def rho(p):
        return 1.0 / (p * p + m * m)

    rho.__name__ = "massive"
    return rho


def power_law(m: float, alpha: float) -> Spectrum:
    """Power law with an IR mass: ``rho(p) = (p^2 + m^2)^(-alpha)`` (alpha = 1: massive)."""

    def rho(p):
        return (p * p + m * m) ** (-alpha)

    rho.__name__ = "power-law"
    return rho


def flat() -> Spectrum:
    """Band-limited white noise: ``rho(p) = 1`` for ``|p| < Lambda``."""

    def rho(p):
        return jnp.ones_like(p)

    rho.__name__ = "flat"
    return rho


SPECTRA = {
    "massive": lambda m, alpha: massive(m),
    "power-law": lambda m, alpha: power_law(m, alpha),
    "flat": lambda m, alpha: flat(),
}
"""Registry of named spectra: ``SPECTRA[name](m, alpha) -> rho``."""


def named_spectrum(name: str, *, m: float = 1.0, alpha: float = 1.0) -> Spectrum:
    """The spectrum ``name`` from :data:`SPECTRA` with mass ``m`` and exponent ``alpha``."""
    v.choice("power_spectrum", name, SPECTRA)
    return SPECTRA[name](m, alpha)


# ---------------------------------------------------------------------------
# geometry and the radial kernel
# ---------------------------------------------------------------------------
def ball_volume(d: int, radius: float) -> float:
    """``vol(B_radius^d) = pi^{d/2} radius^d / Gamma(d/2 + 1)``."""
    return math.pi ** (d / 2) * radius**d / math.gamma(d / 2 + 1)


def sphere_area(d: int) -> float:
    """``S_{d-1} = 2 pi^{d/2} / Gamma(d/2)``, the area of the unit sphere in R^d."""
    return 2 * math.pi ** (d / 2) / math.gamma(d / 2)


def radial_kernel(z, d: int) -> np.ndarray:
    """``Omega_d(z) = <cos(z u.e)>_{u on S^{d-1}} = 0F1(; d/2; -z^2/4)``."""
    z = np.asarray(z, dtype=np.float64)
    if d == 1:
        return np.cos(z)
    if d == 2:
        return special.j0(z)
    if d == 3:
        return np.sinc(z / np.pi)
    return special.hyp0f1(d / 2, -0.25 * z * z)


# ---------------------------------------------------------------------------
# quadrature
# ---------------------------------------------------------------------------
def _panel_edges(Lambda: float) -> np.ndarray:
    return np.array([0.0] + [Lambda * 2.0**-k for k in range(_DYADIC_LEVELS, -1, -1)])


def _pieces(lengths: np.ndarray, r_max) -> np.ndarray:
    """Equal pieces per panel so that none is longer than one wavelength 2 pi / r_max."""
    return np.maximum(1, np.ceil(np.multiply.outer(r_max, lengths) / (2 * math.pi))).astype(int)


def quadrature_nodes(Lambda: float, r_max: float, order: int = DEFAULT_ORDER):
    """Composite Gauss-Legendre nodes and weights on [0, Lambda] (rule in the module doc)."""
    t, wt = np.polynomial.legendre.leggauss(order)
    edges = _panel_edges(Lambda)
    nodes, weights = [], []
    for a, b, pieces in zip(edges[:-1], edges[1:], _pieces(np.diff(edges), r_max)):
        cuts = np.linspace(a, b, pieces + 1)
        lo, hi = cuts[:-1, None], cuts[1:, None]
        nodes.append((0.5 * (hi - lo) * t + 0.5 * (hi + lo)).ravel())
        weights.append((0.5 * (hi - lo) * wt).ravel())
    return np.concatenate(nodes), np.concatenate(weights)


def evaluate_spectrum(f: Spectrum, p: np.ndarray) -> np.ndarray:
    """``f(p)`` as float64 numpy, broadcast to ``p``'s shape (jax callables run with x64)."""
    with jax.enable_x64(True):
        out = np.asarray(f(p), dtype=np.float64)
    return np.broadcast_to(out, p.shape)


def hankel_transform(f: Spectrum, r, *, d: int, Lambda: float, order: int = DEFAULT_ORDER):
    """``int_{|p|<Lambda} d^dp/(2pi)^d e^{ip.r} f(|p|)`` at every separation ``r`` (any shape).

    The radial form ``H_d[f](r)`` of the module doc, by composite Gauss-Legendre
    quadrature; ``r`` holds non-negative distances ``|r|``.
    """
    v.positive_int("d", d)
    v.positive("Lambda", Lambda)
    v.positive_int("order", order, minimum=2)
    r = np.abs(np.asarray(r, dtype=np.float64))
    flat_r, inverse = np.unique(r.ravel(), return_inverse=True)
    out = np.empty_like(flat_r)
    pref = sphere_area(d) / (2 * math.pi) ** d
    # sorted separations in blocks, each with the nodes its largest r needs
    n_nodes = order * _pieces(np.diff(_panel_edges(Lambda)), flat_r).sum(axis=1)
    start = 0
    while start < flat_r.size:
        cost = np.arange(1, flat_r.size - start + 1) * n_nodes[start:]
        stop = start + max(1, int(np.searchsorted(cost, _BLOCK_ELEMENTS, side="right")))
        p, w = quadrature_nodes(Lambda, flat_r[stop - 1], order)
        weight = w * p ** (d - 1) * evaluate_spectrum(f, p)
        out[start:stop] = pref * (radial_kernel(np.outer(flat_r[start:stop], p), d) @ weight)
        start = stop
    return out[inverse].reshape(r.shape)


# ---------------------------------------------------------------------------
# correlators on point sets
# ---------------------------------------------------------------------------
def _grid(points: np.ndarray, n: int) -> list[np.ndarray]:
    """The n copies of the point set broadcast onto an n-index grid, each (P,..,P, d)."""
    points = np.asarray(points, dtype=np.float64)
    out = []
    for k in range(n):
        shape = [1] * n + [points.shape[1]]
        shape[k] = points.shape[0]
        out.append(points.reshape(shape))
    return out


def _norm(y: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(y * y, axis=-1))


def spectral_g2(points, rho: Spectrum, *, Lambda: float, order: int = DEFAULT_ORDER):
    """Eq. (74) on every pair of ``points`` (shape ``(P, d)``): ``G2[a, b] = H_d[rho](|x_a - x_b|)``."""
    points = np.asarray(points, dtype=np.float64)
    xa, xb = _grid(points, 2)
    return hankel_transform(rho, _norm(xa - xb), d=points.shape[1], Lambda=Lambda, order=order)


def spectral_g4c(points, rho: Spectrum, *, Lambda: float, width: int,
                 order: int = DEFAULT_ORDER):
    """Connected four-point function of the spectral net (module doc), shape ``(P,)*4``."""
    points = np.asarray(points, dtype=np.float64)
    d = points.shape[1]
    x = _grid(points, 4)
    plus = hankel_transform(lambda p: evaluate_spectrum(rho, p) ** 2, _norm(x[0] + x[1] - x[2] - x[3]),
                            d=d, Lambda=Lambda, order=order)
    plus = plus + np.einsum("acbd->abcd", plus) + np.einsum("adbc->abcd", plus)
    g2 = spectral_g2(points, rho, Lambda=Lambda, order=order)
    pairs = (np.einsum("ab,cd->abcd", g2, g2) + np.einsum("ac,bd->abcd", g2, g2)
             + np.einsum("ad,bc->abcd", g2, g2))
    c4 = 3 * ball_volume(d, Lambda) / (2 * (2 * math.pi) ** d)
    return (c4 * plus - pairs) / width


def _balanced_signs(n: int):
    """Sign patterns s with s_1 = +1 and sum(s) = 0: the bias-surviving terms of prod cos."""
    for rest in itertools.product((1, -1), repeat=n - 1):
        s = (1, *rest)
        if sum(s) == 0:
            yield s


def spectral_neuron_moment(points, n: int, rho: Spectrum, *, Lambda: float,
                           order: int = DEFAULT_ORDER):
    """``E[psi(x_1)..psi(x_n)]`` for ``psi = sigma_w1 u F(w0) cos(w0.x + b)``, u ~ N(0, 1).

    ``(n-1)!! sigma_w1^n 2^{1-n} sum_s E_q[F^n cos(w0.sum_a s_a x_a)]`` over balanced
    signs, with ``E_q[F^n cos(w0.y)] = (2V/((2pi)^d sigma_w1^2))^{n/2} (2pi)^d/V
    H_d[rho^{n/2}](|y|)``; sigma_w1 cancels. Odd n vanish.
    """
    points = np.asarray(points, dtype=np.float64)
    p_count, d = points.shape
    if n % 2:
        return np.zeros((p_count,) * n)
    vol = ball_volume(d, Lambda)
    tw = (2 * math.pi) ** d
    const = float(math.prod(range(n - 1, 0, -2))) * 2.0 ** (1 - n) * (2 * vol / tw) ** (n / 2)
    const *= tw / vol
    xs = _grid(points, n)
    dists = np.stack([_norm(sum(s * x for s, x in zip(signs, xs)))
                      for signs in _balanced_signs(n)])
    h = hankel_transform(lambda p: evaluate_spectrum(rho, p) ** (n // 2), dists, d=d, Lambda=Lambda,
                         order=order)
    return const * h.sum(axis=0)


# ---------------------------------------------------------------------------
# the free scalar without cutoff
# ---------------------------------------------------------------------------
def free_scalar_g2(r, *, m: float, d: int) -> np.ndarray:
    """Massive propagator as Lambda -> infinity: ``e^{-mr}/(2m)`` (d=1),
    ``K_0(mr)/(2pi)`` (d=2), ``e^{-mr}/(4 pi r)`` (d=3); infinite at r = 0 for d >= 2."""
    v.positive("m", m)
    v.choice("d", d, (1, 2, 3))
    r = np.abs(np.asarray(r, dtype=np.float64))
    if d == 1:
        return np.exp(-m * r) / (2 * m)
    if d == 2:
        return special.k0(m * r) / (2 * math.pi)
    with np.errstate(divide="ignore"):
        return np.exp(-m * r) / (4 * math.pi * r)
