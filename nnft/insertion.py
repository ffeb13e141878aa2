"""Operator insertion (TASI sec. 5.1-5.2): a local potential deforms the parameter density.

The interacting theory of an architecture ``(phi_theta, P(theta))`` is

    P_V(theta) ∝ P(theta) exp(-int_box V(phi_theta(x)) d^dx),               (eq. 135, corrected)

i.e. eq. (135)/(137) with the sign that gives a bounded theory (REFERENCE.md): for
``V = lambda phi^4`` this is phi^4 theory (eq. 137). The box is the IR cutoff and
part of the theory. This module holds

- :class:`Potential` (``phi4``, ``phi6``, ``mass``, ``polynomial``, ``custom``) and
  :class:`Box`; :class:`Interaction` bundles them with the quadrature rule;
- ``int_box`` by tensor-product Gauss-Legendre quadrature (:func:`box_quadrature`,
  :func:`box_integral`), the exact closed form for cos-type networks and
  polynomial V (:func:`exact_box_integral`), and the convergence check
  (:func:`check_quadrature`, :class:`QuadratureWarning`);
- the map of each architecture's parameters to an unconstrained space with its
  Jacobian (:func:`reparameterize`), so that NUTS never leaves the support;
- the deformed log-density in those coordinates (:func:`make_target`) and the same
  model for numpyro (:func:`numpyro_model`);
- the card section parser :func:`parse_interaction_section`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from nnft import _validate as v
from nnft._validate import ConfigError
from nnft.priors.base import Prior, fields

#: potential name -> (power of phi, factor): V = factor * coupling * phi^power
NAMED_POTENTIALS = {"phi4": (4, 1.0), "phi6": (6, 1.0), "mass": (2, 0.5)}
POTENTIALS = (*NAMED_POTENTIALS, "polynomial", "custom")
METHODS = ("quadrature", "exact")
#: phi values on which a user potential is checked (finite; bounded below)
_PHI_GRID = np.concatenate([np.linspace(-20.0, 20.0, 401), [-1e4, -1e3, -1e2, 1e2, 1e3, 1e4]])
#: the most multisets the closed form of int phi^k may enumerate
MAX_EXACT_TERMS = 4_000_000
#: the most nodes a quadrature rule may have
MAX_NODES = 2**21


class QuadratureWarning(UserWarning):
    """The box quadrature is not converged: int_box V differs from a finer rule."""


# -----------------------------------------------------------------------------
# potentials
# -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Potential:
    """A local potential ``V(phi)``.

    ``kind``: ``"phi4"`` (``V = coupling phi^4``), ``"phi6"`` (``coupling phi^6``),
    ``"mass"`` (a mass shift, ``coupling phi^2 / 2`` with ``coupling = delta m^2``),
    ``"polynomial"`` (``V = sum_k coefficients[k] phi^k``) or ``"custom"`` (``fn``, a
    jax-traceable elementwise function). Potentials unbounded below (a negative
    coupling, an odd or negative leading power) are refused: ``exp(-int V)`` would
    not be normalisable.
    """

    kind: str = "phi4"
    coupling: float = 0.0
    coefficients: tuple[float, ...] = ()
    fn: Callable | None = None

    def __post_init__(self):
        v.choice("potential", self.kind, POTENTIALS)
        if self.kind in NAMED_POTENTIALS:
            v.finite("coupling", self.coupling)
            v.require(self.coupling >= 0, "coupling", self.coupling,
                      f"a {self.kind} potential with a negative coupling is unbounded below "
                      "(exp(-int V) is not normalisable); must be >= 0")
            object.__setattr__(self, "coupling", float(self.coupling))
        elif self.kind == "polynomial":
            coeffs = tuple(self.coefficients)
            v.require(len(coeffs) > 0, "coefficients", list(coeffs),
                      "must be a non-empty list [c0, c1, ...] with V = sum_k c_k phi^k")
            for i, c in enumerate(coeffs):
                v.finite(f"coefficients[{i}]", c)
            coeffs = tuple(float(c) for c in coeffs)
            while len(coeffs) > 1 and coeffs[-1] == 0.0:
                coeffs = coeffs[:-1]
            top = len(coeffs) - 1
            v.require(top == 0 or (top % 2 == 0 and coeffs[-1] > 0), "coefficients",
                      list(coeffs), "the leading power must be even with a positive "
                      "coefficient, else V is unbounded below")
            object.__setattr__(self, "coefficients", coeffs)
        else:
            v.require(callable(self.fn), "potential", self.fn,
                      "a custom potential needs a callable fn(phi)")
            _check_custom(self.fn)

    # -- evaluation ---------------------------------------------------------------
    @property
    def polynomial(self) -> tuple[float, ...] | None:
        """Coefficients ``(c0, c1, ...)`` when V is a polynomial, else None."""
        if self.kind in NAMED_POTENTIALS:
            power, factor = NAMED_POTENTIALS[self.kind]
            return (0.0,) * power + (factor * self.coupling,)
        if self.kind == "polynomial":
            return self.coefficients
        return None

    def __call__(self, phi):
        """``V(phi)``, elementwise."""
        coeffs = self.polynomial
        if coeffs is None:
            return self.fn(phi)
        out = jnp.zeros_like(phi) + coeffs[-1]
        for c in reversed(coeffs[:-1]):  # Horner
            out = out * phi + c
        return out

    @property
    def is_free(self) -> bool:
        """True when V is identically zero (no interaction)."""
        coeffs = self.polynomial
        return coeffs is not None and all(c == 0.0 for c in coeffs)

    def unit(self) -> Potential:
        """V per unit coupling (``phi^4`` for phi4, ...); V itself for polynomial/custom."""
        if self.kind in NAMED_POTENTIALS:
            return dataclasses.replace(self, coupling=1.0)
        return self

    def with_coupling(self, coupling: float) -> Potential:
        """``coupling * unit()``: the same potential at another coupling."""
        if self.kind in NAMED_POTENTIALS:
            return dataclasses.replace(self, coupling=coupling)
        if self.kind == "polynomial":
            return dataclasses.replace(self, coefficients=tuple(coupling * c
                                                                 for c in self.coefficients))
        fn = self.fn
        return dataclasses.replace(self, fn=_Scaled(fn, float(coupling)))

    def lower_bound(self) -> float:
        """``min_phi V(phi)`` (exact for polynomials; on a grid for a custom V)."""
        coeffs = self.polynomial
        if coeffs is None:
            with jax.enable_x64(True):
                return float(np.min(np.asarray(self.fn(jnp.asarray(_PHI_GRID)))))
        if len(coeffs) == 1:
            return coeffs[0]
        poly = np.polynomial.Polynomial(coeffs)
        crit = poly.deriv().roots()
        crit = np.real(crit[np.abs(np.imag(crit)) < 1e-9])
        return float(min(poly(np.concatenate([crit, [0.0]]))))

    def describe(self) -> dict:
        """Plain data for files and reports."""
        out = {"potential": self.kind}
        if self.kind in NAMED_POTENTIALS:
            out["coupling"] = self.coupling
        elif self.kind == "polynomial":
            out["coefficients"] = list(self.coefficients)
        else:
            out["fn"] = getattr(self.fn, "__name__", repr(self.fn))
        return out


@dataclasses.dataclass(frozen=True)
class _Scaled:
    """``coupling * fn(phi)`` (hashable, for custom potentials at another coupling)."""

    fn: Callable
    coupling: float

    def __call__(self, phi):
        return self.coupling * self.fn(phi)


def _check_custom(fn) -> None:
    """A user potential must be finite on a grid of phi values and bounded below there."""
    with jax.enable_x64(True):
        try:
            values = np.asarray(fn(jnp.asarray(_PHI_GRID)), dtype=np.float64)
        except Exception as err:  # a user callable may fail in any way
            raise ConfigError(f"potential: calling it on an array of phi values failed "
                              f"({err!r}); must be a jax function V(phi), elementwise") from err
    v.require(values.shape == _PHI_GRID.shape, "potential", fn,
              f"V(phi) on {_PHI_GRID.shape[0]} values returned shape {values.shape}; "
              "must act elementwise")
    bad = np.isnan(values) | (values == -np.inf)
    bad[:401] |= ~np.isfinite(values[:401])
    if bad.any():
        raise ConfigError(f"potential: got V({_PHI_GRID[bad][0]:g}) = {values[bad][0]}; "
                          "must be finite for every phi (NaN/inf would make the density "
                          "undefined)")
    inner = values[:401]
    v.require(values[401:].min() >= inner.min(), "potential", fn,
              f"V appears unbounded below (V = {values[401:].min():.3g} at |phi| >= 100 "
              f"< min over |phi| <= 20 = {inner.min():.3g}); exp(-int V) must be "
              "normalisable")


def phi4(coupling: float) -> Potential:
    """``V = lambda phi^4`` (eq. 137, sign corrected)."""
    return Potential("phi4", coupling)


def phi6(coupling: float) -> Potential:
    """``V = g phi^6``."""
    return Potential("phi6", coupling)


def mass_shift(m2: float) -> Potential:
    """``V = delta m^2 phi^2 / 2``."""
    return Potential("mass", m2)


def polynomial(coefficients) -> Potential:
    """``V = sum_k c_k phi^k``."""
    return Potential("polynomial", coefficients=tuple(coefficients))


def custom(fn: Callable) -> Potential:
    """A user-supplied jax function ``V(phi)`` (checked finite and bounded below on a grid)."""
    return Potential("custom", fn=fn)


# -----------------------------------------------------------------------------
# the box and its quadrature
# -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Box:
    """The IR cutoff: ``prod_m [center_m - L_m/2, center_m + L_m/2]`` with side lengths ``L``."""

    lengths: tuple[float, ...]
    center: tuple[float, ...] | None = None

    def __post_init__(self):
        lengths = self.lengths
        if isinstance(lengths, (int, float)) and not isinstance(lengths, bool):
            lengths = (lengths,)
        v.require(isinstance(lengths, (tuple, list)) and len(lengths) > 0, "box", lengths,
                  "an empty box: must be a list of d side lengths > 0")
        for i, length in enumerate(lengths):
            v.require(isinstance(length, (int, float)) and not isinstance(length, bool)
                      and math.isfinite(length) and length > 0, f"box[{i}]", length,
                      "an empty box: every side length must be a finite number > 0")
        lengths = tuple(float(x) for x in lengths)
        center = self.center if self.center is not None else (0.0,) * len(lengths)
        v.require(isinstance(center, (tuple, list)) and len(center) == len(lengths), "center",
                  center, f"must be a list of {len(lengths)} numbers (one per side length)")
        for i, c in enumerate(center):
            v.finite(f"center[{i}]", c)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "center", tuple(float(c) for c in center))

    @property
    def d(self) -> int:
        return len(self.lengths)

    @property
    def volume(self) -> float:
        return float(np.prod(self.lengths))


class Quadrature(NamedTuple):
    """Nodes ``(Q, d)`` and weights ``(Q,)`` (float64 numpy) with ``int_box f ~ sum w f(x)``."""

    nodes: np.ndarray
    weights: np.ndarray


@functools.lru_cache(maxsize=64)
def box_quadrature(box: Box, nodes: tuple[int, ...]) -> Quadrature:
    """Tensor-product Gauss-Legendre rule with ``nodes[m]`` nodes along side m."""
    axes, wts = [], []
    for n, length, c in zip(nodes, box.lengths, box.center):
        t, w = np.polynomial.legendre.leggauss(n)
        axes.append(c + 0.5 * length * t)
        wts.append(0.5 * length * w)
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, box.d)
    weight = functools.reduce(np.multiply.outer, wts).reshape(-1)
    grid.flags.writeable = False
    weight.flags.writeable = False
    return Quadrature(grid, weight)


def _as_nodes(nodes, d: int, field: str = "nodes") -> tuple[int, ...]:
    if isinstance(nodes, int) and not isinstance(nodes, bool):
        nodes = (nodes,) * d
    v.require(isinstance(nodes, (tuple, list)) and len(nodes) == d, field, nodes,
              f"must be an integer >= 1 or a list of d = {d} of them")
    for i, n in enumerate(nodes):
        v.positive_int(f"{field}[{i}]", n)
    nodes = tuple(int(n) for n in nodes)
    v.require(math.prod(nodes) <= MAX_NODES, field, list(nodes),
              f"at most {MAX_NODES} nodes in all (prod of nodes per side)")
    return nodes


@dataclasses.dataclass(frozen=True)
class Interaction:
    """Potential + box + rule: everything ``S_V(theta) = int_box V(phi_theta)`` needs.

    ``nodes``: Gauss-Legendre nodes per side (an int for all sides); ``method``:
    ``"quadrature"`` (any architecture, any V) or ``"exact"`` (closed form; cos-type
    networks and polynomial V, :func:`exact_box_integral`). Hashable (a static jit
    argument).
    """

    potential: Potential
    box: Box
    nodes: tuple[int, ...] | int = 16
    method: str = "quadrature"

    def __post_init__(self):
        v.require(isinstance(self.potential, Potential), "potential", self.potential,
                  "must be a nnft.insertion.Potential")
        v.require(isinstance(self.box, Box), "box", self.box, "must be a nnft.insertion.Box")
        object.__setattr__(self, "nodes", _as_nodes(self.nodes, self.box.d))
        v.choice("method", self.method, METHODS)
        if self.method == "exact":
            v.require(self.potential.polynomial is not None, "method", self.method,
                      "the exact box integral needs a polynomial potential; use quadrature")

    @property
    def quadrature(self) -> Quadrature:
        return box_quadrature(self.box, self.nodes)

    def action(self, prior: Prior, params) -> jax.Array:
        """``S_V(theta) = int_box V(phi_theta(x)) d^dx`` (differentiable)."""
        if self.method == "exact":
            return exact_box_integral(prior, params, self.potential, self.box)
        return box_integral(prior, params, self.potential, self.quadrature)

    def with_coupling(self, coupling: float) -> Interaction:
        return dataclasses.replace(self, potential=self.potential.with_coupling(coupling))

    def unit(self) -> Interaction:
        """The same interaction per unit coupling (see :meth:`Potential.unit`)."""
        return dataclasses.replace(self, potential=self.potential.unit())

    def describe(self) -> dict:
        return {**self.potential.describe(), "box": list(self.box.lengths),
                "center": list(self.box.center), "nodes": list(self.nodes),
                "method": self.method}


def box_integral(prior: Prior, params, potential: Potential, quad: Quadrature) -> jax.Array:
    """``int_box V(phi_theta) ~ sum_q w_q V(phi_theta(x_q))`` (tensor Gauss-Legendre)."""
    dt = jax.tree.leaves(params)[0].dtype
    phi = fields(prior, params, jnp.asarray(quad.nodes, dt))
    return jnp.sum(jnp.asarray(quad.weights, dt) * potential(phi))


# -----------------------------------------------------------------------------
# the exact box integral for cos-type networks
# -----------------------------------------------------------------------------
def cos_modes(prior: Prior, params):
    """``(a, w, b)`` with ``phi(x) = sum_i a_i cos(w_i . x + b_i)``, for cos-type priors."""
    from nnft.priors.cos import CosNet
    from nnft.priors.spectral import SpectralNet

    if isinstance(prior, SpectralNet):
        return params["w1"] * prior.amplitude(params["w0"]), params["w0"], params["b0"]
    if isinstance(prior, CosNet):
        return params["w1"], params["w0"], params["b0"]
    raise ConfigError(f"method: got 'exact' for {prior.name}; the closed form exists for "
                      "cos-type networks (cos-net, spectral-net, scalar-net); use quadrature")


@functools.lru_cache(maxsize=32)
def _multisets(n_modes: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """All multisets of size k from n_modes modes, with their multinomial counts."""
    idx = np.array(list(itertools.combinations_with_replacement(range(n_modes), k)),
                   dtype=np.int32).reshape(-1, k)
    # rows are sorted: multiplicities are the run lengths; count = k! / prod(m_j!)
    log_counts = np.full(len(idx), math.lgamma(k + 1))
    run = np.ones(len(idx))
    for j in range(1, k):
        same = idx[:, j] == idx[:, j - 1]
        run = np.where(same, run + 1, 1.0)
        log_counts -= np.log(run) * same  # divide by the growing run length: m! in the end
    return idx, np.round(np.exp(log_counts))


def exact_box_integral(prior: Prior, params, potential: Potential, box: Box) -> jax.Array:
    """Closed form of ``int_box V(phi)`` for ``phi = sum_i a_i cos(w_i.x + b_i)``, polynomial V.

    With ``cos u = (e^{iu} + e^{-iu})/2`` the network is a sum of 2N modes
    ``alpha_j e^{i K_j.x}``, so ``phi^k = sum_{j_1..j_k} prod alpha e^{i (sum K).x}`` and

        int_box e^{iK.x} d^dx = e^{iK.c} prod_m L_m sinc(K_m L_m / 2)

    (``sinc u = sin u / u``): a finite sum over neuron multi-indices of products of 1-d
    integrals, enumerated over multisets with multinomial weights.
    """
    coeffs = potential.polynomial
    if coeffs is None:
        raise ConfigError("potential: the exact box integral needs a polynomial V")
    a, w, b = cos_modes(prior, params)
    real = a.dtype
    cplx = jnp.result_type(real, jnp.complex64)
    alpha = jnp.concatenate([a * jnp.exp(1j * b), a * jnp.exp(-1j * b)]).astype(cplx) / 2
    freq = jnp.concatenate([w, -w])
    lengths = jnp.asarray(box.lengths, real)
    center = jnp.asarray(box.center, real)
    total = jnp.asarray(coeffs[0] * box.volume, real)
    for k, c in enumerate(coeffs):
        if k == 0 or c == 0.0:
            continue
        n_terms = math.comb(freq.shape[0] + k - 1, k)
        if n_terms > MAX_EXACT_TERMS:
            raise ConfigError(f"method: the exact int phi^{k} at width {a.shape[0]} has "
                              f"{n_terms:,} terms (at most {MAX_EXACT_TERMS:,}); use quadrature")
        idx, counts = _multisets(freq.shape[0], k)
        prod = jnp.prod(alpha[idx], axis=1)
        ksum = jnp.sum(freq[idx], axis=1)  # (T, d)
        one_d = lengths * jnp.sinc(ksum * lengths / (2 * jnp.pi))  # jnp.sinc(x) = sin(pi x)/(pi x)
        term = prod * jnp.exp(1j * (ksum @ center)) * jnp.prod(one_d, axis=1)
        total = total + c * jnp.real(jnp.sum(jnp.asarray(counts, real) * term))
    return total


# -----------------------------------------------------------------------------
# convergence of the quadrature
# -----------------------------------------------------------------------------
class QuadratureCheck(NamedTuple):
    """``int_box V`` with ``nodes`` against ``finer`` nodes over some networks."""

    nodes: tuple[int, ...]
    finer: tuple[int, ...]
    max_abs_error: float
    scale: float
    rel_error: float
    rtol: float

    @property
    def converged(self) -> bool:
        return self.rel_error <= self.rtol


def finer_nodes(nodes: tuple[int, ...]) -> tuple[int, ...]:
    """The comparison rule: 1.5 x the nodes per side (at least 4 more)."""
    return tuple(n + max(4, math.ceil(n / 2)) for n in nodes)


def _float64(prior: Prior, params):
    """The prior and parameters in float64 (for checks that need x64)."""
    if getattr(prior, "dtype", "float64") != "float64":
        prior = prior.replace(dtype="float64")
    return prior, jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)


def check_quadrature(prior: Prior, interaction: Interaction, key=None, *, params=None,
                     n_draws: int = 16, rtol: float = 1e-6, warn: bool = True,
                     nodes=None) -> QuadratureCheck:
    """Compare ``int_box V`` (per unit coupling) with ``nodes`` against a finer rule.

    On ``params`` (a batch with a leading axis) or ``n_draws`` prior draws from ``key``;
    in float64. ``rel_error = max |S - S_finer| / mean |S_finer|``; warns with
    :class:`QuadratureWarning` when it exceeds ``rtol``.
    """
    nodes = interaction.nodes if nodes is None else _as_nodes(nodes, interaction.box.d)
    finer = finer_nodes(nodes)
    unit = interaction.unit().potential
    with jax.enable_x64(True):
        if params is None:
            key = jax.random.PRNGKey(0) if key is None else key
            params = jax.vmap(prior.sample)(jax.random.split(key, n_draws))
        prior64, params64 = _float64(prior, params)

        def both(p):
            return (box_integral(prior64, p, unit, box_quadrature(interaction.box, nodes)),
                    box_integral(prior64, p, unit, box_quadrature(interaction.box, finer)))

        coarse, fine = jax.lax.map(both, params64)
        coarse, fine = np.asarray(coarse), np.asarray(fine)
    err = float(np.max(np.abs(coarse - fine))) if coarse.size else 0.0
    scale = float(np.mean(np.abs(fine))) if fine.size else 0.0
    rel = 0.0 if err == 0.0 else (err / scale if scale > 0 else math.inf)
    if not np.all(np.isfinite(coarse)) or not np.all(np.isfinite(fine)):
        rel = math.inf
    out = QuadratureCheck(nodes, finer, err, scale, rel, rtol)
    if warn and not out.converged:
        warnings.warn(QuadratureWarning(
            f"int_box V is not converged with nodes = {list(nodes)}: relative difference "
            f"{rel:.2g} against {list(finer)} nodes (rtol {rtol:g}); use more nodes"),
            stacklevel=2)
    return out


def suggest_nodes(prior: Prior, interaction: Interaction, key=None, *, rtol: float = 1e-6,
                  n_draws: int = 16, start=8) -> tuple[int, ...] | None:
    """The smallest ``start * 2^k`` nodes per side (k >= 0) converged to ``rtol``, or None."""
    nodes = _as_nodes(start, interaction.box.d)
    while math.prod(finer_nodes(nodes)) <= MAX_NODES:
        if check_quadrature(prior, interaction, key, nodes=nodes, rtol=rtol, n_draws=n_draws,
                            warn=False).converged:
            return nodes
        nodes = tuple(2 * n for n in nodes)
    return None


# -----------------------------------------------------------------------------
# unconstrained parameters
# -----------------------------------------------------------------------------
class Reparameterization(NamedTuple):
    """An architecture's parameters as a bijection of unconstrained ``z`` (a pytree).

    ``constrain(z) -> params``; ``unconstrain(params) -> z``; ``log_density(z)`` is
    ``log P(theta(z)) + log |det d theta / d z|`` up to a constant, so that at zero
    coupling ``z`` is distributed as ``unconstrain(prior.sample(key))``;
    ``init(key) -> z`` draws from it.
    """

    constrain: Callable
    unconstrain: Callable
    log_density: Callable
    init: Callable


def _normal_logpdf(z):
    return -0.5 * jnp.sum(z * z)


def _logistic_logpdf(z):
    """``log sigma(z) + log sigma(-z)``: uniform -> logit Jacobian."""
    return jnp.sum(jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z))


def _interval(z, lo, hi):
    return lo + (hi - lo) * jax.nn.sigmoid(z)


def _logit(x, lo, hi):
    u = (x - lo) / (hi - lo)
    return jnp.log(u) - jnp.log1p(-u)


def _cos_reparam(prior) -> Reparameterization:
    """Cos-net: ``w0, w1`` standardised, ``b ~ Unif[-pi, pi]`` through a logit."""
    s0, s1 = prior.sigma_w0 / math.sqrt(prior.d), prior.sigma_w1 / math.sqrt(prior.width)

    def constrain(z):
        return {"w0": s0 * z["w0"], "b0": _interval(z["b0"], -math.pi, math.pi),
                "w1": s1 * z["w1"]}

    def unconstrain(p):
        return {"w0": p["w0"] / s0, "b0": _logit(p["b0"], -math.pi, math.pi), "w1": p["w1"] / s1}

    def log_density(z):
        return _normal_logpdf(z["w0"]) + _normal_logpdf(z["w1"]) + _logistic_logpdf(z["b0"])

    return Reparameterization(constrain, unconstrain, log_density,
                              lambda key: unconstrain(prior.sample(key)))


def _gauss_reparam(prior) -> Reparameterization:
    """Gauss-net: every parameter Gaussian, standardised."""
    scale = {"w0": prior.sigma_w0 / math.sqrt(prior.d), "b0": prior.sigma_b0,
             "w1": prior.sigma_w1 / math.sqrt(2 * prior.width)}

    def constrain(z):
        return {k: scale[k] * z[k] for k in scale}

    def unconstrain(p):
        return {k: p[k] / scale[k] for k in scale}

    def log_density(z):
        return sum(_normal_logpdf(z[k]) for k in scale)

    return Reparameterization(constrain, unconstrain, log_density,
                              lambda key: unconstrain(prior.sample(key)))


_TINY = 1e-12


def _tanh_ratio(r2):
    """``tanh(rho) / rho`` as a smooth function of ``rho^2`` (series near 0)."""
    safe = jnp.where(r2 > _TINY, r2, 1.0)
    rho = jnp.sqrt(safe)
    return jnp.where(r2 > _TINY, jnp.tanh(rho) / rho, 1.0 - r2 / 3.0)


def _log_cosh_sq(r2):
    """``log cosh(rho)`` as a smooth function of ``rho^2``."""
    safe = jnp.where(r2 > _TINY, r2, 1.0)
    rho = jnp.sqrt(safe)
    big = rho + jnp.log1p(jnp.exp(-2.0 * rho)) - math.log(2.0)
    return jnp.where(r2 > _TINY, big, r2 / 2.0)


def _spectral_reparam(prior) -> Reparameterization:
    """Spectral/Scalar-net: ``w0 ~ Unif(B_Lambda^d)`` as ``w0 = Lambda tanh(|u|) u/|u|``.

    The radial map has ``|det dw0/du| = Lambda^d (1 - tanh^2 rho) (tanh(rho)/rho)^{d-1}``,
    ``rho = |u|``; ``b`` through a logit, ``w1`` standardised.
    """
    lam, d = prior.Lambda, prior.d
    s1 = prior.sigma_w1 / math.sqrt(prior.width)

    def constrain(z):
        u = z["w0"]
        r2 = jnp.sum(u * u, axis=-1, keepdims=True)
        return {"w0": lam * _tanh_ratio(r2) * u, "b0": _interval(z["b0"], -math.pi, math.pi),
                "w1": s1 * z["w1"]}

    def unconstrain(p):
        w = p["w0"]
        r = jnp.sqrt(jnp.sum(w * w, axis=-1, keepdims=True)) / lam
        r_safe = jnp.where(r > 0, r, 1.0)
        factor = jnp.where(r > 0, jnp.arctanh(jnp.minimum(r_safe, 1 - 1e-7)) / r_safe, 1.0)
        return {"w0": factor * w / lam, "b0": _logit(p["b0"], -math.pi, math.pi),
                "w1": p["w1"] / s1}

    def log_density(z):
        r2 = jnp.sum(z["w0"] ** 2, axis=-1)
        log_jac = -2.0 * _log_cosh_sq(r2) + (d - 1) * jnp.log(_tanh_ratio(r2))
        return jnp.sum(log_jac) + _logistic_logpdf(z["b0"]) + _normal_logpdf(z["w1"])

    return Reparameterization(constrain, unconstrain, log_density,
                              lambda key: unconstrain(prior.sample(key)))


def _mlp_reparam(prior) -> Reparameterization:
    """MLP: every raw parameter Gaussian (eq. 105), standardised; zero-variance ones fixed."""
    scales = prior.layer_scales()

    def std(i, name):
        return scales[i].w_std if name == "W" else scales[i].b_std

    def constrain(z):
        return tuple({k: std(i, k) * val for k, val in layer.items()} for i, layer in enumerate(z))

    def unconstrain(p):
        return tuple({k: (val / std(i, k) if std(i, k) > 0 else jnp.zeros_like(val))
                      for k, val in layer.items()} for i, layer in enumerate(p))

    def log_density(z):
        return sum(_normal_logpdf(val) for val in jax.tree.leaves(z))

    def init(key):
        template = prior.sample(key)
        leaves, tree = jax.tree.flatten(template)
        keys = jax.random.split(jax.random.fold_in(key, 7919), len(leaves))
        return jax.tree.unflatten(tree, [jax.random.normal(k, x.shape, x.dtype)
                                         for k, x in zip(keys, leaves)])

    return Reparameterization(constrain, unconstrain, log_density, init)


#: prior class -> factory ``prior -> Reparameterization`` (looked up along the MRO)
REPARAMETERIZATIONS: dict[type, Callable[[Any], Reparameterization]] = {}


def register_reparameterization(cls: type, factory: Callable[[Any], Reparameterization]):
    """Register the unconstrained map of a new architecture (its log prior density included)."""
    REPARAMETERIZATIONS[cls] = factory


def _register_builtin() -> None:
    from nnft.priors.cos import CosNet
    from nnft.priors.gauss import GaussNet
    from nnft.priors.mlp import MLP
    from nnft.priors.spectral import SpectralNet

    for cls, f in ((CosNet, _cos_reparam), (GaussNet, _gauss_reparam),
                   (SpectralNet, _spectral_reparam), (MLP, _mlp_reparam)):
        REPARAMETERIZATIONS.setdefault(cls, f)


def reparameterize(prior: Prior) -> Reparameterization:
    """The unconstrained reparameterisation of ``prior`` (registry, by class along the MRO)."""
    _register_builtin()
    for cls in type(prior).__mro__:
        if cls in REPARAMETERIZATIONS:
            return REPARAMETERIZATIONS[cls](prior)
    raise ConfigError(f"architecture.name: got {prior.name!r}; no unconstrained "
                      "reparameterisation is registered for it (use "
                      "nnft.insertion.register_reparameterization)")


# -----------------------------------------------------------------------------
# the deformed density
# -----------------------------------------------------------------------------
class Target(NamedTuple):
    """The deformed log-density on a flat unconstrained vector ``z`` of length ``dim``.

    ``logdensity(z) = log P(theta(z)) + log|J(z)| - int_box V(phi_theta(z))`` (eq. 135,
    sign corrected); ``prior_logdensity`` without the potential; ``action(z)`` the
    potential term; ``init(key)`` a free-prior draw; ``params(z)`` the network's
    parameters; ``fields(z, points)`` the network on points ``(P, d)``.
    """

    prior: Prior
    interaction: Interaction | None
    dim: int
    logdensity: Callable
    prior_logdensity: Callable
    action: Callable
    init: Callable
    params: Callable
    unravel: Callable
    fields: Callable


def make_target(prior: Prior, interaction: Interaction | None) -> Target:
    """The log-density ``log P(theta) - int_box V(phi_theta)`` in unconstrained coordinates."""
    if interaction is not None:
        v.require(interaction.box.d == prior.input_dim, "box", list(interaction.box.lengths),
                  f"must have d = {prior.input_dim} side lengths (architecture.d)")
        if interaction.method == "exact":
            cos_modes(prior, prior.sample(jax.random.PRNGKey(0)))
    rep = reparameterize(prior)
    z0 = rep.init(jax.random.PRNGKey(0))
    flat0, unravel = ravel_pytree(z0)

    def params(z):
        return rep.constrain(unravel(z))

    def prior_logdensity(z):
        return rep.log_density(unravel(z))

    def action(z):
        if interaction is None or interaction.potential.is_free:
            return jnp.zeros((), z.dtype)
        return interaction.action(prior, params(z)).astype(z.dtype)

    def logdensity(z):
        return prior_logdensity(z) - action(z)

    def init(key):
        return ravel_pytree(rep.init(key))[0]

    def on_points(z, points):
        return fields(prior, params(z), jnp.asarray(points, z.dtype))

    return Target(prior, interaction, int(flat0.size), logdensity, prior_logdensity, action,
                  init, params, unravel, on_points)


def site_names(target: Target) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, shape)`` of each unconstrained leaf, named by its path (``z_w0``, ``z_0_W``)."""
    z0 = target.unravel(jnp.zeros(target.dim))
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(z0)[0]:
        parts = [str(getattr(p, "key", getattr(p, "idx", p))) for p in path]
        out.append(("z_" + "_".join(parts), tuple(leaf.shape)))
    return out


def numpyro_model(target: Target, points=None):
    """The same density as a numpyro model: ``numpyro.infer.MCMC(NUTS(model))`` runs it.

    One improper-flat site per unconstrained leaf (``z_w0``, ``z_b0``, ``z_w1``, ...)
    and ``numpyro.factor`` with :attr:`Target.logdensity`; with ``points``, the field
    on them is recorded as the deterministic site ``phi``.
    """
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    sites = site_names(target)
    pts = None if points is None else np.asarray(points, dtype=np.float64)

    def model():
        leaves = [numpyro.sample(name, dist.ImproperUniform(constraints.real, (), shape))
                  for name, shape in sites]
        z = jnp.concatenate([jnp.ravel(x) for x in leaves])
        numpyro.factor("log_density", target.logdensity(z))
        if pts is not None:
            numpyro.deterministic("phi", target.fields(z, pts))

    return model


def flatten_sites(target: Target, samples: dict) -> np.ndarray:
    """numpyro samples ``{site: (..., *shape)}`` -> flat ``(..., dim)`` in :func:`make_target` order."""
    parts = []
    for name, shape in site_names(target):
        x = np.asarray(samples[name])
        parts.append(x.reshape(x.shape[: x.ndim - len(shape)] + (-1,)))
    return np.concatenate(parts, axis=-1)


def unflatten_sites(target: Target, z) -> dict:
    """Flat ``(..., dim)`` -> ``{site: (..., *shape)}`` (numpyro init values)."""
    z = np.asarray(z)
    out, start = {}, 0
    for name, shape in site_names(target):
        size = math.prod(shape)
        out[name] = z[..., start:start + size].reshape(z.shape[:-1] + shape)
        start += size
    return out


# -----------------------------------------------------------------------------
# first-order perturbation theory at infinite width
# -----------------------------------------------------------------------------
def nngp_rows(prior: Prior, points, nodes) -> tuple[np.ndarray, np.ndarray]:
    """``G(x_a, z_q)`` ``(P, Q)`` and ``G(z_q, z_q)`` ``(Q,)``: the infinite-width kernel."""
    from nnft.priors.cos import CosNet
    from nnft.priors.gauss import GaussNet
    from nnft.priors.spectral import SpectralNet
    from nnft.theory import spectral as th

    x = np.asarray(points, dtype=np.float64)
    z = np.asarray(nodes, dtype=np.float64)
    r = np.sqrt(np.sum((x[:, None, :] - z[None, :, :]) ** 2, axis=-1))
    if isinstance(prior, SpectralNet):
        g = th.hankel_transform(prior.rho, r, d=prior.d, Lambda=prior.Lambda)
        g0 = th.hankel_transform(prior.rho, np.zeros(1), d=prior.d, Lambda=prior.Lambda)[0]
        return g, np.full(len(z), g0)
    if isinstance(prior, (CosNet, GaussNet)):
        s = prior.sigma_w0**2 / (2 * prior.d)
        return prior.sigma_w1**2 / 2 * np.exp(-s * r * r), np.full(len(z), prior.sigma_w1**2 / 2)
    if hasattr(prior, "nngp"):
        diag = np.concatenate([np.diag(prior.nngp(z[i:i + 256]))
                               for i in range(0, len(z), 256)])
        return np.asarray(prior.nngp(x, z)), diag
    raise ConfigError(f"architecture.name: got {prior.name!r}; its infinite-width kernel is "
                      "not known to nnft.insertion.nngp_rows")


def gaussian_expectation(f: Callable, variance: np.ndarray, n: int = 48) -> np.ndarray:
    """``E[f(phi)]`` for ``phi ~ N(0, variance)`` (Gauss-Hermite, exact for polynomials)."""
    t, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / math.sqrt(2 * math.pi)
    with jax.enable_x64(True):
        vals = np.asarray(f(jnp.asarray(np.sqrt(variance)[:, None] * t[None, :])))
    return vals @ w


def perturbation_infinite_n(prior: Prior, interaction: Interaction, points) -> dict:
    """First order in the coupling at infinite width, by the box quadrature.

    The free theory is the Gaussian process with kernel G. For ``V = lambda V_1``,
    Gaussian integration by parts (Wick's theorem) gives

        dG2(x,y)/dlambda     = -int_box G(x,z) G(z,y) E[V_1''(phi_z)] dz
        dG4c(x1..x4)/dlambda = -int_box prod_i G(x_i,z) E[V_1''''(phi_z)] dz

    with ``phi_z ~ N(0, G(z,z))``. For ``V_1 = phi^4``: ``E[V_1''] = 12 G(z,z)`` and
    ``E[V_1''''] = 24``, i.e. ``-12 lambda int G G G`` and ``-24 lambda int G G G G``
    (pair x and y with two of the four legs: 4 x 3 ways, the last two legs close on
    themselves; the four external points on four legs: 4! ways; the disconnected
    ``G(x,y) <phi_z^4>`` is cancelled by the normalisation).

    Returns ``{"G2": (G2 at lambda=0, slope), "G4c": (zeros, slope)}``.
    """
    pts = np.asarray(points, dtype=np.float64)
    quad = interaction.quadrature
    g, gzz = nngp_rows(prior, pts, quad.nodes)
    unit = interaction.unit().potential

    def derivative(k):
        f = unit
        for _ in range(k):
            f = jax.grad(f)
        return jax.vmap(jax.vmap(f))

    e2 = gaussian_expectation(derivative(2), gzz)
    e4 = gaussian_expectation(derivative(4), gzz)
    w = quad.weights
    slope2 = -np.einsum("q,aq,bq->ab", w * e2, g, g)
    slope4 = -np.einsum("q,aq,bq,cq,dq->abcd", w * e4, g, g, g, g)
    g2 = nngp_rows(prior, pts, pts)[0]
    return {"G2": (g2, slope2), "G4c": (np.zeros((len(pts),) * 4), slope4)}


# -----------------------------------------------------------------------------
# the [interaction] card section
# -----------------------------------------------------------------------------
SECTION_KEYS = ("potential", "coupling", "coefficients", "box", "center", "nodes", "method",
                "quadrature_rtol")


def _prefixed(err: ConfigError) -> ConfigError:
    msg = str(err)
    return ConfigError(msg if msg.startswith("interaction.") else f"interaction.{msg}")


def parse_interaction_section(table: dict, card: dict) -> Interaction:
    """``[interaction]``: potential, coupling (or coefficients), box, center, nodes, method.

    ``box`` is a side length (a cube) or a list of d of them; ``nodes`` Gauss-Legendre
    nodes per side (default: the smallest power-of-two multiple of 8 that converges).
    The quadrature is checked on prior draws against a finer rule; a rule that is not
    converged to ``quadrature_rtol`` (default 1e-6) is an error naming ``interaction.nodes``.
    """
    from nnft.cards import _did_you_mean

    for key in table:
        if key not in SECTION_KEYS:
            raise ConfigError(f"interaction.{key}: unknown key; allowed keys in [interaction]: "
                              f"{', '.join(SECTION_KEYS)}{_did_you_mean(key, SECTION_KEYS)}")
    prior = card["_prior"]
    d = prior.input_dim
    kind = table.get("potential", "phi4")
    v.require(isinstance(kind, str) and kind in POTENTIALS[:-1], "interaction.potential", kind,
              "allowed values: " + ", ".join(POTENTIALS[:-1]) + " (custom potentials are "
              "for the Python API)")
    try:
        if kind == "polynomial":
            v.require("coupling" not in table, "coupling", table.get("coupling"),
                      "a polynomial potential takes coefficients, not a coupling")
            coeffs = table.get("coefficients")
            v.require(isinstance(coeffs, list), "coefficients", coeffs,
                      "must be a list [c0, c1, ...] with V = sum_k c_k phi^k")
            potential = Potential("polynomial", coefficients=tuple(coeffs))
        else:
            v.require("coefficients" not in table, "coefficients", table.get("coefficients"),
                      f"only for potential = 'polynomial' (got potential = {kind!r})")
            if "coupling" not in table:
                raise ConfigError("coupling: missing; required for potential = "
                                  f"{kind!r}")
            coupling = table["coupling"]
            v.require(isinstance(coupling, (int, float)) and not isinstance(coupling, bool),
                      "coupling", coupling, "must be a number")
            potential = Potential(kind, float(coupling))
        if "box" not in table:
            raise ConfigError("box: missing; the box (IR cutoff) is part of the theory: "
                              f"a side length or a list of d = {d} of them")
        box = table["box"]
        if isinstance(box, (int, float)) and not isinstance(box, bool):
            box = [box] * d
        v.require(isinstance(box, list) and len(box) == d, "box", box,
                  f"must be a side length or a list of d = {d} side lengths > 0"
                  if box != [] else "an empty box: must be a list of d side lengths > 0")
        box = Box(tuple(box), tuple(table["center"]) if isinstance(table.get("center"), list)
                  else table.get("center"))
        method = table.get("method", "quadrature")
        rtol = v.positive("quadrature_rtol", table.get("quadrature_rtol", 1e-6))
        if "nodes" in table:
            interaction = Interaction(potential, box, table["nodes"], method)
        else:
            base = Interaction(potential, box, 8, method)
            nodes = suggest_nodes(prior, base, rtol=rtol)
            if nodes is None:
                raise ConfigError(f"nodes: no rule with at most {MAX_NODES} nodes converges "
                                  f"to {rtol:g} on this box; use a smaller box or cutoff")
            interaction = Interaction(potential, box, nodes, method)
    except ConfigError as err:
        raise _prefixed(err) from None
    if interaction.method == "quadrature":
        check = check_quadrature(prior, interaction, rtol=rtol, warn=False)
        if not check.converged:
            need = suggest_nodes(prior, interaction, rtol=rtol,
                                 start=list(interaction.nodes))
            hint = (f"use nodes = {list(need)}" if need is not None
                    else "no affordable rule converges; use a smaller box")
            raise ConfigError(
                f"interaction.nodes: got {list(interaction.nodes)}; int_box V is not converged "
                f"(relative difference {check.rel_error:.2g} against {list(check.finer)} nodes "
                f"on prior draws, quadrature_rtol = {rtol:g}); {hint}")
    else:
        try:
            cos_modes(prior, prior.sample(jax.random.PRNGKey(0)))
        except ConfigError as err:
            raise _prefixed(err) from None
    return interaction


__all__ = [
    "Box",
    "Interaction",
    "Potential",
    "Quadrature",
    "QuadratureCheck",
    "QuadratureWarning",
    "Reparameterization",
    "Target",
    "box_integral",
    "box_quadrature",
    "check_quadrature",
    "cos_modes",
    "custom",
    "exact_box_integral",
    "gaussian_expectation",
    "make_target",
    "mass_shift",
    "nngp_rows",
    "numpyro_model",
    "parse_interaction_section",
    "perturbation_infinite_n",
    "phi4",
    "phi6",
    "polynomial",
    "register_reparameterization",
    "reparameterize",
    "suggest_nodes",
]
