"""The action of an operator insertion: ``S_V(theta) = int_box V(phi_theta(x)) d^dx``."""

from __future__ import annotations

import dataclasses

import jax

from nnft import _validate as v
from nnft.interaction.box import (
    Box,
    Quadrature,
    as_nodes,
    box_integral,
    box_quadrature,
    exact_box_integral,
)
from nnft.interaction.potentials import Potential
from nnft.priors.base import Prior

METHODS = ("quadrature", "exact")


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
                  "must be a nnft.interaction.Potential")
        v.require(isinstance(self.box, Box), "box", self.box, "must be a nnft.interaction.Box")
        object.__setattr__(self, "nodes", as_nodes(self.nodes, self.box.d))
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
