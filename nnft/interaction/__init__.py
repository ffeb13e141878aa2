"""Operator insertion (TASI sec. 5.1-5.2): a local potential deforms the parameter density.

The interacting theory of an architecture ``(phi_theta, P(theta))`` is

    P_V(theta) ∝ P(theta) exp(-int_box V(phi_theta(x)) d^dx),               (eq. 135, corrected)

i.e. eq. (135)/(137) with the sign that gives a bounded theory (REFERENCE.md): for
``V = lambda phi^4`` this is phi^4 theory (eq. 137). The box is the IR cutoff and part of
the theory.

- :mod:`~nnft.interaction.potentials`: :class:`Potential` (``phi4``, ``phi6``, ``mass``,
  ``polynomial``, ``custom``);
- :mod:`~nnft.interaction.box`: :class:`Box`, Gauss-Legendre ``int_box``
  (:func:`box_quadrature`, :func:`box_integral`) and the closed form for cos-type
  networks and polynomial V (:func:`exact_box_integral`);
- :mod:`~nnft.interaction.action`: :class:`Interaction` = potential + box + rule, the
  action ``S_V(theta)``;
- :mod:`~nnft.interaction.quadrature_check`: convergence of the rule
  (:func:`check_quadrature`, :func:`suggest_nodes`, :class:`QuadratureWarning`);
- :mod:`~nnft.interaction.target`: the deformed density in the prior's unconstrained
  coordinates (:func:`make_target`) and the same model for numpyro
  (:func:`numpyro_model`);
- :mod:`~nnft.interaction.perturbation`: first order in the coupling at infinite width
  (:func:`perturbation_infinite_n`).

Architecture knowledge (unconstrained coordinates, cosine modes, NNGP rows) lives on the
priors (:mod:`nnft.priors`).
"""

from nnft.interaction.action import METHODS, Interaction
from nnft.interaction.box import (
    MAX_EXACT_TERMS,
    MAX_NODES,
    Box,
    Quadrature,
    box_integral,
    box_quadrature,
    cos_modes,
    exact_box_integral,
)
from nnft.interaction.perturbation import (
    gaussian_expectation,
    nngp_rows,
    perturbation_infinite_n,
)
from nnft.interaction.potentials import (
    NAMED_POTENTIALS,
    POTENTIALS,
    Potential,
    custom,
    mass_shift,
    phi4,
    phi6,
    polynomial,
)
from nnft.interaction.quadrature_check import (
    QuadratureCheck,
    QuadratureWarning,
    check_quadrature,
    finer_nodes,
    suggest_nodes,
)
from nnft.interaction.target import (
    Target,
    flatten_sites,
    make_target,
    numpyro_model,
    reparameterize,
    site_names,
    unflatten_sites,
)
from nnft.priors.reparam import Reparameterization

__all__ = [
    "MAX_EXACT_TERMS",
    "MAX_NODES",
    "METHODS",
    "NAMED_POTENTIALS",
    "POTENTIALS",
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
    "finer_nodes",
    "flatten_sites",
    "gaussian_expectation",
    "make_target",
    "mass_shift",
    "nngp_rows",
    "numpyro_model",
    "perturbation_infinite_n",
    "phi4",
    "phi6",
    "polynomial",
    "reparameterize",
    "site_names",
    "suggest_nodes",
    "unflatten_sites",
]
