"""Momentum gradient descent as a scalar field in de Sitter space (duality-nn-cosmology).

The update ``theta_{i+1} = theta_i + beta (theta_i - theta_{i-1}) - eta grad L`` (eq. 2),
with ``t = i sqrt(eta)``, makes a network's output obey (eqs. 4, 7, 9; the damped sign: eqs.
15, 16, 26, 27 print ``+beta~``, anti-friction, which we do not use)

    f'' + gamma f' + Theta(x, X) dL/df(X) = 0,     gamma = (1 - beta) / sqrt(eta) = 3 H,

a scalar field in a vacuum-dominated (de Sitter) universe with ``V_eff = alpha L + V0``,
``V0 = (1 - beta)^2 / (3 eta)`` (eq. 8), Hubble length ``1/H = 3 sqrt(eta) / (1 - beta)``.
The loss is ``L = m^2/2 (f - f0)^n`` (eq. 20, n even), averaged over the N inputs.

- One input x0: ``f'' + gamma f' + alpha L'(f) = 0``, ``alpha = Theta(x0, x0)``
  (:func:`background`); its discrete form, the constant-alpha recursion
  ``f_{i+1} = f_i + beta (f_i - f_{i-1}) - eta alpha L'(f_i)``, ``f_{-1} = f_0``
  (:func:`recursion`, which also takes a kernel matrix); matching needs ``alpha L << V0``:
  ``eta < eta_max = (1 - beta)^2 / (3 alpha L(f(0)))`` (Fig. 2, :func:`eta_max`); plain GD
  on the frozen-kernel quadratic model is unstable where ``eta alpha L''(f(0)) > 2 (1 + beta)``
  (:func:`gd_unstable`).
- N inputs: with ``v_i`` the eigenvectors of ``Theta(X, X)`` at t = 0 (eigenvalues
  ``lambda_i`` descending), ``f = sqrt(N) fbar v_1 + df`` (eq. 14), the mean mode obeys
  ``fbar'' + gamma fbar' + (lambda_1/N) L'(fbar) = 0`` (eq. 15) and the modes
  ``c_i = v_i . df`` obey ``c_i'' + gamma c_i' + (lambda_i/N) L''(fbar) c_i = 0`` (eq. 16)
  (:func:`modes`). For n = 2 and a frozen kernel, ``v_i . (f - f0)`` obeys eq. 16 exactly.
- n = 2: a damped oscillator with ``omega^2 = alpha m^2``, under-, critically or overdamped
  (:func:`oscillator`, closed form).

Every function validates its input at the boundary (one :class:`~nnft.ConfigError` naming the
field): n even >= 2, beta in [0, 1), eta > 0, at least 2 inputs for the modes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.integrate import solve_ivp

from nnft import _validate as v

#: |f| beyond which the recursion counts as diverged
BLOW_UP = 1e100


# ---------------------------------------------------------------------------
# validation and the dictionary of the duality
# ---------------------------------------------------------------------------
def _power(n) -> int:
    v.require(v.is_int(n) and n >= 2 and n % 2 == 0, "n", n, "must be an even integer >= 2")
    return int(n)


def _rate(eta) -> np.ndarray:
    a = np.asarray(eta, np.float64)
    v.require(a.size >= 1 and bool(np.all(np.isfinite(a) & (a > 0))), "eta", _show(eta),
              "must be a number > 0 (or an array of them)")
    return a


def _momentum(beta) -> np.ndarray:
    a = np.asarray(beta, np.float64)
    v.require(a.size >= 1 and bool(np.all(np.isfinite(a) & (a >= 0) & (a < 1))), "beta",
              _show(beta), "must be a number in [0, 1) (or an array of them)")
    return a


def _positive(name: str, x) -> np.ndarray:
    a = np.asarray(x, np.float64)
    v.require(a.size >= 1 and bool(np.all(np.isfinite(a) & (a > 0))), name, _show(x),
              "must be a number > 0 (or an array of them)")
    return a


def _show(x):
    a = np.asarray(x)
    return a.item() if a.size == 1 else a.tolist()


def friction(eta, beta) -> np.ndarray:
    """``gamma = (1 - beta) / sqrt(eta) = -beta~ = 3 H`` (eq. 4)."""
    return (1.0 - _momentum(beta)) / np.sqrt(_rate(eta))


def hubble(eta, beta) -> np.ndarray:
    """The Hubble rate ``H = gamma / 3``."""
    return friction(eta, beta) / 3.0


def hubble_length(eta, beta) -> np.ndarray:
    """``1 / H = 3 sqrt(eta) / (1 - beta)``."""
    return 1.0 / hubble(eta, beta)


def vacuum_energy(eta, beta) -> np.ndarray:
    """``V0 = beta~^2 / 3 = (1 - beta)^2 / (3 eta)`` (eq. 8)."""
    return friction(eta, beta) ** 2 / 3.0


def loss(f, *, n: int, m, f0):
    """``L(f) = m^2/2 (f - f0)^n`` (eq. 20)."""
    return 0.5 * np.asarray(m) ** 2 * (np.asarray(f) - f0) ** _power(n)


def loss_derivative(f, *, n: int, m, f0, order: int = 1):
    """``d^k L / df^k`` for k = ``order`` (0: L itself)."""
    n = _power(n)
    v.require(v.is_int(order) and 0 <= order <= n, "order", order,
              f"must be an integer from 0 to n = {n}")
    coef = math.perm(n, order)
    return 0.5 * np.asarray(m) ** 2 * coef * (np.asarray(f) - f0) ** (n - order)


def eta_max(alpha, beta, *, n: int, m, f0, f_init=0.0) -> np.ndarray:
    """The largest rate with ``alpha L(f(0)) <= V0``: ``(1 - beta)^2 / (3 alpha L(f(0)))``
    (Fig. 2); infinite where ``L(f(0)) = 0``."""
    alpha = _positive("alpha", alpha)
    lv = loss(f_init, n=n, m=_positive("m", m), f0=f0)
    with np.errstate(divide="ignore"):
        return (1.0 - _momentum(beta)) ** 2 / (3.0 * alpha * lv)


def gd_unstable(eta, beta, alpha, *, n: int, m, f0, f_init=0.0) -> np.ndarray:
    """Where the linearised update itself diverges: ``eta alpha L''(f(0)) > 2 (1 + beta)``."""
    curv = loss_derivative(f_init, n=n, m=_positive("m", m), f0=f0, order=2)
    return _rate(eta) * _positive("alpha", alpha) * curv > 2.0 * (1.0 + _momentum(beta))


def energy(f, fdot, alpha, *, n: int, m, f0):
    """``f'^2/2 + alpha L(f)``; never rises along the damped ODE."""
    return 0.5 * np.asarray(fdot) ** 2 + np.asarray(alpha) * loss(f, n=n, m=m, f0=f0)


# ---------------------------------------------------------------------------
# the discrete update: the constant-kernel recursion
# ---------------------------------------------------------------------------
class Recursion(NamedTuple):
    """``f``: ``(steps + 1, ...)`` trajectory (frozen at its last finite value after a
    divergence); ``diverged_at``: first step with a non-finite or ``|f| > BLOW_UP`` value,
    -1 where none."""

    f: np.ndarray
    diverged_at: np.ndarray


def recursion(steps: int, eta, beta, kernel, *, n: int, m, f0, f_init=0.0) -> Recursion:
    """Momentum GD on the frozen-kernel model, ``f_{i+1} = f_i + beta (f_i - f_{i-1}) -
    eta K dL/df``, ``f_{-1} = f_0``.

    ``kernel``: alpha (a number or an array over models: one input, ``dL/df = L'(f)``) or a
    ``(..., N, N)`` matrix Theta(X, X) (N inputs, the loss averaged: ``dL/df_j = L'(f_j)/N``,
    ``f_init`` then ``(..., N)``). ``eta``, ``beta``, ``m``, ``f0`` broadcast over models.
    """
    v.positive_int("steps", steps)
    n = _power(n)
    eta, beta, m = _rate(eta), _momentum(beta), _positive("m", m)
    k = np.asarray(kernel, np.float64)
    matrix = k.ndim >= 2 and k.shape[-1] == k.shape[-2] and k.shape[-1] >= 2
    f = np.asarray(f_init, np.float64)
    if matrix:
        v.require(f.shape[-1] == k.shape[-1], "f_init", f.shape,
                  f"must end in N = {k.shape[-1]} (one value per input)")
        big_n = k.shape[-1]
        eta, beta, m, f0 = (np.asarray(a, np.float64)[..., None] for a in (eta, beta, m, f0))

        def force(x):
            return np.einsum("...ij,...j->...i", k, loss_derivative(x, n=n, m=m, f0=f0)) / big_n
    else:
        _positive("alpha", k)

        def force(x):
            return k * loss_derivative(x, n=n, m=m, f0=f0)
    shape = np.broadcast_shapes(f.shape, np.shape(force(f)))
    cur = np.broadcast_to(f, shape).copy()
    prev = cur.copy()
    out = np.empty((steps + 1, *shape))
    out[0] = cur
    lead = shape[:-1] if matrix else shape
    div = -np.ones(lead, np.int64)
    with np.errstate(all="ignore"):
        for i in range(steps):
            new = cur + beta * (cur - prev) - eta * force(cur)
            bad = ~np.isfinite(new) | (np.abs(new) > BLOW_UP)
            bad = bad.any(axis=-1) if matrix else bad
            div = np.where(bad & (div < 0), i, div)
            dead = div >= 0
            mask = dead[..., None] if matrix else dead
            prev, cur = np.where(mask, prev, cur), np.where(mask, cur, new)
            out[i + 1] = cur
    return Recursion(out, div)


# ---------------------------------------------------------------------------
# the continuum: background, modes, closed form
# ---------------------------------------------------------------------------
def _solve(rhs, t, y0, rtol, atol):
    t = np.asarray(t, np.float64)
    v.require(t.ndim == 1 and t.size >= 1 and bool(np.all(np.diff(t) >= 0)) and t[0] >= 0,
              "t", np.shape(t), "must be a sorted 1-d array of times >= 0")
    if t[-1] == 0:
        return np.repeat(np.asarray(y0, np.float64)[:, None], t.size, axis=1)
    sol = solve_ivp(rhs, (0.0, float(t[-1])), y0, t_eval=t, method="DOP853", rtol=rtol,
                    atol=atol)
    v.require(sol.status == 0, "ode", sol.message, "the integration must succeed")
    return sol.y


def background(t, alpha, gamma, *, n: int, m, f0, f_init=0.0, v_init=0.0,
               rtol: float = 1e-12, atol: float = 1e-14):
    """``(f(t), f'(t))`` of ``f'' + gamma f' + alpha L'(f) = 0`` (eqs. 7, 15) at the times
    ``t`` (``solve_ivp``, DOP853)."""
    n = _power(n)
    alpha, m = float(_positive("alpha", alpha)), float(_positive("m", m))
    gamma = float(np.asarray(gamma))
    v.require(gamma >= 0, "gamma", gamma, "must be a number >= 0 (the friction)")

    def rhs(_, y):
        return [y[1], -gamma * y[1] - alpha * loss_derivative(y[0], n=n, m=m, f0=f0)]

    y = _solve(rhs, t, [float(f_init), float(v_init)], rtol, atol)
    return y[0], y[1]


def modes(t, eigenvalues, gamma, *, n: int, m, f0, fbar_init, c_init, c_dot_init=None,
          fbar_dot_init=0.0, rtol: float = 1e-12, atol: float = 1e-14):
    """The mean mode (eq. 15) and the modes (eq. 16) at the times ``t``.

    ``eigenvalues``: lambda_1 >= ... >= lambda_N of Theta(X, X) (N >= 2), so that the
    couplings are ``lambda_i / N``; ``c_init``: the N - 1 initial ``c_i = v_i . df``
    (i = 2..N) or all N (then the first, along v_1, is evolved as well). Returns
    ``(fbar (T,), c (T, k))``."""
    lam = np.asarray(eigenvalues, np.float64)
    v.require(lam.ndim == 1 and lam.size >= 2, "inputs", lam.size,
              "the modes need at least 2 inputs (eigenvalues of Theta(X, X))")
    n = _power(n)
    big_n = lam.size
    c0 = np.asarray(c_init, np.float64)
    v.require(c0.ndim == 1 and c0.size in (big_n - 1, big_n), "c_init", c0.shape,
              f"must hold N - 1 = {big_n - 1} or N = {big_n} mode amplitudes")
    cd0 = np.zeros_like(c0) if c_dot_init is None else np.asarray(c_dot_init, np.float64)
    coup = lam[big_n - c0.size:] / big_n
    if c0.size == big_n:
        coup = lam / big_n
    lam1 = lam[0] / big_n
    m = float(_positive("m", m))
    k = c0.size

    def rhs(_, y):
        fb, fd, c, cd = y[0], y[1], y[2:2 + k], y[2 + k:]
        curv = loss_derivative(fb, n=n, m=m, f0=f0, order=2)
        return np.concatenate([[fd, -gamma * fd - lam1 * loss_derivative(fb, n=n, m=m, f0=f0)],
                               cd, -gamma * cd - coup * curv * c])

    y0 = np.concatenate([[float(fbar_init), float(fbar_dot_init)], c0, cd0])
    y = _solve(rhs, t, y0, rtol, atol)
    return y[0], y[2:2 + k].T


class Oscillator(NamedTuple):
    f: np.ndarray
    fdot: np.ndarray
    regime: str  # "underdamped", "critical" or "overdamped"


def oscillator(t, alpha, gamma, *, m, f0, f_init=0.0, v_init=0.0,
               critical_tol: float = 1e-12) -> Oscillator:
    """The n = 2 closed form: ``x = f - f0`` obeys ``x'' + gamma x' + omega^2 x = 0``,
    ``omega^2 = alpha m^2``; all three damping regimes (critical where
    ``|gamma^2/4 - omega^2| <= critical_tol * omega^2``)."""
    t = np.asarray(t, np.float64)
    w2 = float(_positive("alpha", alpha)) * float(_positive("m", m)) ** 2
    g = float(np.asarray(gamma))
    v.require(g >= 0, "gamma", g, "must be a number >= 0 (the friction)")
    x0, v0 = float(f_init) - float(f0), float(v_init)
    disc = g * g / 4.0 - w2
    decay = np.exp(-0.5 * g * t)
    if abs(disc) <= critical_tol * w2:
        b = v0 + 0.5 * g * x0
        x = decay * (x0 + b * t)
        xd = decay * (b - 0.5 * g * (x0 + b * t))
        return Oscillator(x + f0, xd, "critical")
    if disc < 0:
        wd = math.sqrt(-disc)
        b = (v0 + 0.5 * g * x0) / wd
        cs, sn = np.cos(wd * t), np.sin(wd * t)
        x = decay * (x0 * cs + b * sn)
        xd = decay * ((b * wd - 0.5 * g * x0) * cs - (x0 * wd + 0.5 * g * b) * sn)
        return Oscillator(x + f0, xd, "underdamped")
    s = math.sqrt(disc)
    rp, rm = -0.5 * g + s, -0.5 * g - s
    a = (v0 - rm * x0) / (rp - rm)
    b = x0 - a
    x = a * np.exp(rp * t) + b * np.exp(rm * t)
    xd = a * rp * np.exp(rp * t) + b * rm * np.exp(rm * t)
    return Oscillator(x + f0, xd, "overdamped")


# ---------------------------------------------------------------------------
# the eigenbasis of the kernel
# ---------------------------------------------------------------------------
class Eigenbasis(NamedTuple):
    """Eigenvalues descending and eigenvectors as columns (``v_1`` signed so that
    ``v_1 . 1 >= 0``); ``mean_overlap = |v_1 . 1| / sqrt(N)``; ``alpha_mean = 1^T Theta 1 /
    N^2`` (App. B)."""

    eigenvalues: np.ndarray
    vectors: np.ndarray
    mean_overlap: float
    alpha_mean: float


def eigenbasis(theta) -> Eigenbasis:
    """The eigenbasis of a symmetric ``Theta(X, X)`` (N >= 2)."""
    th = np.asarray(theta, np.float64)
    v.require(th.ndim == 2 and th.shape[0] == th.shape[1] and th.shape[0] >= 2, "inputs",
              th.shape, "the modes need a square kernel on at least 2 inputs")
    th = 0.5 * (th + th.T)
    lam, vec = np.linalg.eigh(th)
    lam, vec = lam[::-1], vec[:, ::-1].copy()
    ones = np.ones(th.shape[0])
    if vec[:, 0] @ ones < 0:
        vec[:, 0] *= -1
    big_n = th.shape[0]
    return Eigenbasis(lam, vec, float(abs(vec[:, 0] @ ones) / math.sqrt(big_n)),
                      float(ones @ th @ ones / big_n**2))


def split_mean(f, basis: Eigenbasis):
    """``(fbar, c)`` with ``f = sqrt(N) fbar v_1 + df`` (eq. 14), ``fbar = v_1 . f / sqrt(N)``
    (so ``v_1 . df = 0``) and ``c_i = v_i . df`` for i = 2..N; ``f`` is ``(..., N)``."""
    f = np.asarray(f, np.float64)
    big_n = f.shape[-1]
    proj = f @ basis.vectors
    return proj[..., 0] / math.sqrt(big_n), proj[..., 1:]
