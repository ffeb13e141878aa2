"""Infinite-width kernels of deep MLPs: the NNGP and NTK recursions (TASI sec. 4, eqs. 107-112).

A network with L hidden layers has L + 1 affine layers, l = 1..L+1 (the last is the readout).
At infinite width every pre-activation is a Gaussian process whose kernel follows layer by
layer (eqs. 108-111, with the feature kernel (112) replaced by its mean):

    K_l  = sw2_l T(K_{l-1}) + sb2_l                                          (NNGP)
    Th_l = tw_l  T(K_{l-1}) + tb_l + sw2_l Tdot(K_{l-1}) Th_{l-1}              (NTK)

with ``T(K) = E[sigma(u) sigma(v)]`` and ``Tdot(K) = E[sigma'(u) sigma'(v)]`` for
``(u, v) ~ N(0, K)`` (the activation's dual kernels), and for the first layer
``T(K_0) = K_0 = x.x'/D``, ``Th_0 = 0`` (inputs are not trained). The coefficients of a
layer (:class:`Layer`):

- ``sw2`` = effective weight variance x fan-in (the ``sigma_w^2`` of the layer), ``sb2`` =
  effective bias variance. They fix the distribution of the function.
- ``tw`` = squared forward multiplier of the raw weights x fan-in, ``tb`` = squared
  multiplier of the raw bias: what a gradient with respect to the raw parameters adds to
  the tangent kernel. They depend on the parameterisation, not just on the function:
  ``tw = sw2, tb = sb2`` in the NTK parameterisation; ``tw = fan-in, tb = 1`` in
  neural-tangents' "standard" convention (arXiv:2001.07301), where the NTK grows with width.

Dual kernels: erf by the arcsine formula, relu by the arc-cosine kernel (degree 1),
identity trivially, tanh by a tensor-product trapezoidal rule over the bivariate normal
(:func:`quadrature_dual_kernels`, error ~1e-12, checked against a finer grid in the tests).
Everything is vectorised over point pairs. Points are ``(P, d)`` arrays; results are float64
``(P, Q)`` arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from nnft import _validate as v

ACTIVATIONS = ("erf", "relu", "tanh", "identity")
PARAMETERIZATIONS = ("ntk", "standard")


class Layer(NamedTuple):
    """Coefficients of one affine layer in the kernel recursion (see the module docstring)."""

    sw2: float
    sb2: float
    tw: float
    tb: float


# ---------------------------------------------------------------------------
# dual kernels of the activations
# ---------------------------------------------------------------------------
def _erf(k11, k22, k12):
    """Arcsine kernel ``(2/pi) arcsin(2 k12 / sqrt((1+2k11)(1+2k22)))``; Tdot from erf'."""
    a = (1.0 + 2.0 * k11) * (1.0 + 2.0 * k22)
    t = (2.0 / np.pi) * np.arcsin(np.clip(2.0 * k12 / np.sqrt(a), -1.0, 1.0))
    tdot = (4.0 / np.pi) / np.sqrt(np.maximum(a - 4.0 * k12**2, np.finfo(float).tiny))
    return t, tdot


def _relu(k11, k22, k12):
    """Arc-cosine kernel of degree 1: ``sqrt(k11 k22)/(2 pi) (sin t + (pi - t) cos t)``."""
    norm = np.sqrt(k11 * k22)
    safe = np.where(norm > 0, norm, 1.0)
    cos = np.where(norm > 0, np.clip(k12 / safe, -1.0, 1.0), 1.0)
    theta = np.arccos(cos)
    t = norm / (2.0 * np.pi) * (np.sin(theta) + (np.pi - theta) * cos)
    tdot = (np.pi - theta) / (2.0 * np.pi)
    return t, tdot


def _identity(k11, k22, k12):
    return np.array(k12, dtype=np.float64), np.ones(np.broadcast(k11, k22, k12).shape)


def quadrature_dual_kernels(fn, k11, k22, k12, step: float = 0.1, cutoff: float = 9.0):
    """``(E[f(u)f(v)], E[f'(u)f'(v)])`` by a tensor-product trapezoidal rule.

    ``u = sqrt(k11) z1``, ``v = sqrt(k22) (rho z1 + sqrt(1 - rho^2) z2)`` with z1, z2
    standard normal, integrated on the grid ``z in [-cutoff, cutoff]`` with spacing
    ``step``; ``fn(u) -> (f(u), f'(u))`` acts elementwise on numpy arrays. For an
    integrand analytic in a strip ``|Im z| < delta`` the error falls like
    ``exp(-2 pi delta / step)`` (faster than Gauss-Hermite at equal cost when the strip is
    narrow, as for tanh); the truncation error is ``~exp(-cutoff^2 / 2)``. Pairs are
    processed in blocks so memory stays bounded.
    """
    z = np.arange(-cutoff, cutoff + step / 2, step)
    w = step * np.exp(-0.5 * z**2) / np.sqrt(2.0 * np.pi)
    k11, k22, k12 = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (k11, k22, k12)))
    shape = k12.shape
    s1, s2 = np.sqrt(np.maximum(k11, 0.0)).ravel(), np.sqrt(np.maximum(k22, 0.0)).ravel()
    den = s1 * s2
    rho = np.where(den > 0, np.clip(k12.ravel() / np.where(den > 0, den, 1.0), -1.0, 1.0), 0.0)
    t, tdot = np.empty(rho.size), np.empty(rho.size)
    block = max(1, 2**20 // z.size**2)
    for lo in range(0, rho.size, block):
        sl = slice(lo, lo + block)
        r = rho[sl, None, None]
        fu, du = fn(s1[sl, None] * z)  # (B, n)
        fv, dv = fn(s2[sl, None, None] * (r * z[None, :, None]
                                          + np.sqrt(1.0 - r**2) * z[None, None, :]))  # (B, n, n)
        t[sl] = (fu * (fv @ w)) @ w  # inner sum over z2, outer over z1
        tdot[sl] = (du * (dv @ w)) @ w
    return t.reshape(shape), tdot.reshape(shape)


def _tanh_and_derivative(u):
    t = np.tanh(u)
    return t, 1.0 - t * t


def _tanh(k11, k22, k12):
    """tanh by quadrature. tanh(s z) has poles at Im z = pi/(2s), so the step shrinks with the
    pair's larger variance: pairs are grouped on a ladder of steps, each chosen for an error
    ~exp(-2 pi delta/step) ~ 1e-13 with delta = pi/(2 sqrt(k)) (at most ~1000 nodes)."""
    k11, k22, k12 = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (k11, k22, k12)))
    kmax = np.maximum(np.maximum(k11, k22), 1e-12)
    wanted = np.clip(np.pi**2 / (30.0 * np.sqrt(kmax)), 0.018, 0.3)
    level = np.ceil(np.log(0.3 / wanted) / np.log(1.25)).astype(int)  # step = 0.3 / 1.25^level
    t, tdot = np.empty(k12.shape), np.empty(k12.shape)
    for lv in np.unique(level):
        m = level == lv
        t[m], tdot[m] = quadrature_dual_kernels(_tanh_and_derivative, k11[m], k22[m], k12[m],
                                                step=0.3 / 1.25**lv)
    return t, tdot


_DUAL = {"erf": _erf, "relu": _relu, "identity": _identity, "tanh": _tanh}


def dual_kernels(activation: str, k11, k22, k12) -> tuple[np.ndarray, np.ndarray]:
    """``(E[sigma(u)sigma(v)], E[sigma'(u)sigma'(v)])``, (u, v) ~ N(0, [[k11, k12], [k12, k22]])."""
    v.choice("activation", activation, ACTIVATIONS)
    return _DUAL[activation](*(np.asarray(a, dtype=np.float64) for a in (k11, k22, k12)))


# ---------------------------------------------------------------------------
# the recursion
# ---------------------------------------------------------------------------
def _points(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    v.require(arr.ndim == 2 and arr.shape[0] >= 1 and np.all(np.isfinite(arr)), name,
              np.shape(x), "must be a finite (P, d) array of points")
    return arr


def _dual_pairs(activation, k11, k22, k12, symmetric: bool):
    """Dual kernels on the (P, Q) grid; for a symmetric grid only the upper triangle is computed."""
    if not symmetric:
        return dual_kernels(activation, k11, k22, k12)
    iu = np.triu_indices(k12.shape[0])
    d11, d22 = k11[:, 0][iu[0]], k22[0][iu[1]]
    t_u, dot_u = dual_kernels(activation, d11, d22, k12[iu])
    t, dot = np.empty_like(k12), np.empty_like(k12)
    t[iu], dot[iu] = t_u, dot_u
    t.T[iu], dot.T[iu] = t_u, dot_u
    return t, dot


def kernels(x1, x2=None, *, activation: str, layers: Sequence[Layer]
            ) -> tuple[np.ndarray, np.ndarray]:
    """``(nngp, ntk)`` of the readout pre-activation, each ``(P, Q)``, for the given layers.

    ``layers`` has one :class:`Layer` per affine layer (first hidden ... readout), so
    ``len(layers) - 1`` hidden layers with activation ``activation`` in between.
    """
    v.choice("activation", activation, ACTIVATIONS)
    v.require(len(layers) >= 1, "layers", len(layers), "must hold at least one layer")
    x1 = _points(x1, "x1")
    x2 = x1 if x2 is None else _points(x2, "x2")
    v.require(x2.shape[1] == x1.shape[1], "x2", x2.shape,
              f"must have the input dimension of x1 ({x1.shape[1]})")
    symmetric = x2 is x1
    dim = x1.shape[1]
    # input kernels: cross (P, Q) and the two diagonals as (P, 1), (1, Q)
    k12 = x1 @ x2.T / dim
    k11 = np.sum(x1 * x1, axis=1, keepdims=True) / dim
    k22 = (np.sum(x2 * x2, axis=1, keepdims=True) / dim).T
    t12, t11, t22 = k12, k11, k22  # T(K) of the layer's input
    th12 = np.zeros_like(k12)
    dot12 = np.zeros_like(k12)
    for i, layer in enumerate(layers):
        if i > 0:
            t12, dot12 = _dual_pairs(activation, k11, k22, k12, symmetric)
            t11, _ = dual_kernels(activation, k11, k11, k11)
            t22, _ = dual_kernels(activation, k22, k22, k22)
        th12 = layer.tw * t12 + layer.tb + layer.sw2 * dot12 * th12
        k12 = layer.sw2 * t12 + layer.sb2
        k11 = layer.sw2 * t11 + layer.sb2
        k22 = layer.sw2 * t22 + layer.sb2
    return np.asarray(k12, dtype=np.float64), np.asarray(th12, dtype=np.float64)


def _widths(width, depth: int, parameterization: str) -> tuple[int, ...]:
    if width is None:
        v.require(parameterization != "standard", "width", None,
                  "the standard-parameterisation NTK grows with width: give the hidden "
                  "width(s) as an integer >= 1 or a tuple of them")
        return (1,) * depth
    scalar = isinstance(width, int) and not isinstance(width, bool)
    ws = (width,) * depth if scalar else tuple(width)
    v.require(len(ws) == depth, "width", width, f"must be one integer or {depth} (depth) of them")
    return tuple(v.positive_int("width", w) for w in ws)


def nt_layers(dim: int, *, depth: int, W_std: float = 1.0, b_std: float | None = None,
              parameterization: str = "ntk", width=None) -> list[Layer]:
    """The layers of a neural-tangents ``stax.serial(Dense, act, ..., Dense(1))`` network.

    ``b_std=None`` means no biases (as in neural-tangents). ``width`` (hidden widths, the
    fan-ins of layers 2..L+1) is needed only for ``parameterization="standard"``.
    """
    v.positive_int("depth", depth)
    v.positive("W_std", W_std)
    if b_std is not None:
        v.non_negative("b_std", b_std)
    v.choice("parameterization", parameterization, PARAMETERIZATIONS)
    fan_in = (dim, *_widths(width, depth, parameterization))
    sw2, sb2 = W_std**2, (0.0 if b_std is None else b_std**2)
    if parameterization == "ntk":
        return [Layer(sw2, sb2, sw2, sb2) for _ in fan_in]
    return [Layer(sw2, sb2, float(f), 0.0 if b_std is None else 1.0) for f in fan_in]


def nngp(x1, x2=None, *, depth: int, activation: str, W_std: float = 1.0,
         b_std: float | None = None) -> np.ndarray:
    """Infinite-width NNGP of an MLP with ``depth`` hidden layers (any parameterisation)."""
    dim = _points(x1, "x1").shape[1]
    return kernels(x1, x2, activation=activation,
                   layers=nt_layers(dim, depth=depth, W_std=W_std, b_std=b_std))[0]


def ntk(x1, x2=None, *, depth: int, activation: str, W_std: float = 1.0,
        b_std: float | None = None, parameterization: str = "ntk", width=None) -> np.ndarray:
    """Infinite-width NTK in neural-tangents' convention for ``parameterization``.

    "standard" keeps the explicit fan-in factors of the given hidden ``width`` (the NTK of a
    standard-parameterised net grows linearly with width), as ``stax.Dense(parameterization=
    "standard")`` does.
    """
    dim = _points(x1, "x1").shape[1]
    layers = nt_layers(dim, depth=depth, W_std=W_std, b_std=b_std,
                       parameterization=parameterization, width=width)
    return kernels(x1, x2, activation=activation, layers=layers)[1]


__all__ = ["ACTIVATIONS", "Layer", "dual_kernels", "kernels", "nngp", "nt_layers", "ntk",
           "quadrature_dual_kernels"]
