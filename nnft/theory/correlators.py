"""Exact correlators of the single-hidden-layer Gauss-net and Cos-net (TASI sec. 3.4).

Both networks are sums of N i.i.d. neurons, ``phi = N^{-1/2} sum_i psi_i``, so the
connected n-point function is ``G_n^c = N^{1 - n/2} kappa_n(psi)``: the one-neuron
cumulant, suppressed by powers of 1/N. The one-neuron *moments* are closed forms
(Gaussian integrals over w0, a uniform average over the bias), and
:mod:`nnft.cumulants` turns them into cumulants. That gives G2, G4c and G6c for
any point set from one formula per architecture; the explicit G4c expressions
of ``REFERENCE.md`` (eq. 64 and eq. 71, corrected) are written out separately
and the tests check the two routes against each other and against Monte Carlo.

Points are arrays of shape ``(P, d)``; results are float64 numpy tensors with one
axis of length P per point.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from nnft.cumulants import connected


def _gaussian_moment(n: int) -> float:
    """E[u^n] for u ~ N(0, 1): (n-1)!! for even n, 0 for odd n."""
    return 0.0 if n % 2 else float(math.prod(range(n - 1, 0, -2)))


def _grid(points: np.ndarray, n: int) -> list[np.ndarray]:
    """The n copies of the point set broadcast onto an n-index grid, each (P,..,P, d)."""
    points = np.asarray(points, dtype=np.float64)
    p = points.shape[0]
    out = []
    for k in range(n):
        shape = [1] * n + [points.shape[1]]
        shape[k] = p
        out.append(points.reshape(shape))
    return out


def _balanced_signs(n: int):
    """Sign patterns s with s_1 = +1 and sum(s) = 0: the bias-surviving terms of prod cos."""
    for rest in itertools.product((1, -1), repeat=n - 1):
        s = (1, *rest)
        if sum(s) == 0:
            yield s


# ---------------------------------------------------------------------------
# one-neuron moments
# ---------------------------------------------------------------------------
def cos_neuron_moment(points, n: int, *, sigma_w0: float, sigma_w1: float, d: int) -> np.ndarray:
    """E[psi(x_1)..psi(x_n)] for ``psi = sigma_w1 u cos(w0.x + b)``, eqs. (68)-(69).

    The bias average keeps the sign patterns with zero sum, each with weight
    2^{1-n}; the w0 average of ``cos(w0.y)`` is ``exp(-sigma_w0^2 |y|^2 / (2d))``.
    """
    if n % 2:
        return np.zeros((np.shape(points)[0],) * n)
    xs = _grid(points, n)
    s = sigma_w0**2 / (2 * d)
    acc = 0.0
    for signs in _balanced_signs(n):
        y = sum(sg * x for sg, x in zip(signs, xs))
        acc = acc + np.exp(-s * np.sum(y * y, axis=-1))
    return _gaussian_moment(n) * sigma_w1**n * 2.0 ** (1 - n) * acc


def gauss_neuron_moment(
    points, n: int, *, sigma_w0: float, sigma_w1: float, sigma_b0: float, d: int
) -> np.ndarray:
    """E[psi(x_1)..psi(x_n)] for the Gauss-net neuron of eqs. (60)-(61).

    ``psi(x) = (sigma_w1/sqrt 2) u exp(w0.x + b) / exp(sigma_b0^2 + sigma_w0^2 |x|^2 / d)``;
    the lognormal average gives ``exp(n^2 sigma_b0^2 / 2 + sigma_w0^2 |sum x|^2 / (2d))``.
    """
    if n % 2:
        return np.zeros((np.shape(points)[0],) * n)
    xs = _grid(points, n)
    total = sum(xs)
    norm2 = sum(np.sum(x * x, axis=-1) for x in xs)
    s = sigma_w0**2 / d
    expo = (n * n / 2 - n) * sigma_b0**2 + 0.5 * s * np.sum(total * total, axis=-1) - s * norm2
    return _gaussian_moment(n) * (sigma_w1**2 / 2) ** (n / 2) * np.exp(expo)


def iid_connected(neuron_moment, points, order: int, width: int) -> np.ndarray:
    """``G_order^c = N^{1 - order/2} kappa_order(psi)`` for a sum of N i.i.d. neurons."""
    import jax

    with jax.enable_x64(True):
        moments = {k: neuron_moment(points, k) for k in range(1, order + 1)}
        kappa = np.asarray(connected(moments, order))
    return width ** (1 - order / 2) * kappa


# ---------------------------------------------------------------------------
# explicit closed forms from REFERENCE.md
# ---------------------------------------------------------------------------
def rbf_g2(points, *, sigma_w0: float, sigma_w1: float, d: int) -> np.ndarray:
    """Eqs. (62)/(70): ``sigma_w1^2 / 2 exp(-sigma_w0^2 |x - y|^2 / (2d))``."""
    xa, xb = _grid(points, 2)
    diff = xa - xb
    return sigma_w1**2 / 2 * np.exp(-(sigma_w0**2) / (2 * d) * np.sum(diff * diff, axis=-1))


_PAIRINGS = (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2)))


def _sq(v):
    return np.sum(v * v, axis=-1)


def cos_net_g4c(points, *, sigma_w0: float, sigma_w1: float, d: int, width: int) -> np.ndarray:
    """Eq. (71), corrected (sigma_w0 in place of the printed sigma_b)."""
    x = _grid(points, 4)
    s = sigma_w0**2 / (2 * d)
    plus = sum(np.exp(-s * _sq(x[a] + x[b] - x[c] - x[e])) for (a, b), (c, e) in _PAIRINGS)
    pairs = sum(np.exp(-s * (_sq(x[a] - x[b]) + _sq(x[c] - x[e]))) for (a, b), (c, e) in _PAIRINGS)
    return sigma_w1**4 / (8 * width) * (3 * plus - 2 * pairs)


def cos_net_g4c_printed(
    points, *, sigma_w0: float, sigma_w1: float, sigma_b: float, d: int, width: int
) -> np.ndarray:
    """Eq. (71) *as printed*, with ``sigma_b`` in the second term. Wrong; kept as a foil.

    Cos-net has no sigma_b (its bias is uniform); a test shows the data reject
    this form for any sigma_b != sigma_w0.
    """
    x = _grid(points, 4)
    s = sigma_w0**2 / (2 * d)
    sb = sigma_b**2 / (2 * d)
    plus = sum(np.exp(-s * _sq(x[a] + x[b] - x[c] - x[e])) for (a, b), (c, e) in _PAIRINGS)
    # printed pairing: (x1 - x4)^2 + (x2 - x3)^2 "+ 2 perms", i.e. the three pairings
    pairs = sum(np.exp(-sb * (_sq(x[a] - x[b]) + _sq(x[c] - x[e]))) for (a, b), (c, e) in _PAIRINGS)
    return sigma_w1**4 / (8 * width) * (3 * plus - 2 * pairs)


def gauss_net_g4c(
    points, *, sigma_w0: float, sigma_w1: float, sigma_b0: float, d: int, width: int
) -> np.ndarray:
    """Eq. (64), in the derived form of REFERENCE.md (the printed one is garbled)."""
    x = _grid(points, 4)
    s = sigma_w0**2 / (2 * d)
    norm2 = sum(_sq(v) for v in x)
    cross = sum(np.sum(x[i] * x[j], axis=-1) for i in range(4) for j in range(i + 1, 4))
    first = 3 * math.exp(4 * sigma_b0**2) * np.exp(-s * (norm2 - 2 * cross))
    pairs = sum(np.exp(-s * (_sq(x[a] - x[b]) + _sq(x[c] - x[e]))) for (a, b), (c, e) in _PAIRINGS)
    return sigma_w1**4 / (4 * width) * (first - pairs)
