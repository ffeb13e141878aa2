"""The box (the IR cutoff) and ``int_box V(phi_theta)``: Gauss-Legendre quadrature for any
architecture, the closed form for cos-type networks and polynomial V."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nnft import _validate as v
from nnft._validate import ConfigError
from nnft.interaction.potentials import Potential
from nnft.priors.base import Prior, fields

#: the most multisets the closed form of int phi^k may enumerate
MAX_EXACT_TERMS = 4_000_000
#: the most nodes a quadrature rule may have
MAX_NODES = 2**21


@dataclasses.dataclass(frozen=True)
class Box:
    """The IR cutoff: ``prod_m [center_m - L_m/2, center_m + L_m/2]`` with side lengths ``L``."""

    lengths: tuple[float, ...]
    center: tuple[float, ...] | None = None

    def __post_init__(self):
        lengths = self.lengths
        if v.is_real(lengths):
            lengths = (lengths,)
        v.require(isinstance(lengths, (tuple, list)) and len(lengths) > 0, "box", lengths,
                  "an empty box: must be a list of d side lengths > 0")
        for i, length in enumerate(lengths):
            v.require(v.is_real(length)
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


def as_nodes(nodes, d: int, field: str = "nodes") -> tuple[int, ...]:
    if v.is_int(nodes):
        nodes = (nodes,) * d
    v.require(isinstance(nodes, (tuple, list)) and len(nodes) == d, field, nodes,
              f"must be an integer >= 1 or a list of d = {d} of them")
    for i, n in enumerate(nodes):
        v.positive_int(f"{field}[{i}]", n)
    nodes = tuple(int(n) for n in nodes)
    v.require(math.prod(nodes) <= MAX_NODES, field, list(nodes),
              f"at most {MAX_NODES} nodes in all (prod of nodes per side)")
    return nodes


def box_integral(prior: Prior, params, potential: Potential, quad: Quadrature) -> jax.Array:
    """``int_box V(phi_theta) ~ sum_q w_q V(phi_theta(x_q))`` (tensor Gauss-Legendre)."""
    dt = jax.tree.leaves(params)[0].dtype
    phi = fields(prior, params, jnp.asarray(quad.nodes, dt))
    return jnp.sum(jnp.asarray(quad.weights, dt) * potential(phi))



def cos_modes(prior: Prior, params):
    """``(a, w, b)`` with ``phi(x) = sum_i a_i cos(w_i . x + b_i)`` (the prior's
    :meth:`~nnft.priors.base.Prior.cos_modes`); a ConfigError for other architectures."""
    modes = prior.cos_modes(params)
    if modes is None:
        raise ConfigError(f'interaction.method: "exact" needs a cos-type network (cos-net, '
                          f'spectral-net, scalar-net), got {prior.name}; use "quadrature"')
    return modes


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
