"""The abc(d)-parameterisation of deep MLPs, TASI eqs. (101)-(127).

A layer's raw weights are drawn ``W ~ N(0, N^{-b})`` (eq. 105) and enter the forward pass as
``N^{-a} W`` (eqs. 102-104); the output is ``phi = z^(L+1) / (gamma_0 N^d)`` (eq. 101) and the
learning rate is ``eta = eta_0 gamma_0^2 N^{2d - c}`` (eq. 106). The first layer has its own
exponents ``(a_1, b_1)``; all later layers, readout included, share ``(a_l, b_l)``.

Requiring O(1) pre-activations, O(1) change of the output in finite time and O(1) change of
the features in finite time gives (eqs. 121-125)::

    (121) 2 a_1 + b_1 = 0      (122) 2 a_l + b_l = 1      (123) 2 a_1 + c = 0
    (124) 2 a_l + c = 1        (125) d = 1/2

solved by the one-parameter family (126)-(127): ``a_l = a, b_l = c = 1 - 2a, a_1 = a - 1/2,
b_1 = 1 - 2a``, ``d = 1/2``.

Presets (checked by :meth:`ABCParameterization.constraints`; "scales" is where the O(1)
constants ``W_std``, ``b_std`` and the first layer's ``1/sqrt(D)`` go, see below):

============  =====  ===  ===  ===  ===  ===  ==========  ===================================
preset        a_1    b_1  a_l  b_l  c    d    scales      constraints (121)-(125)
============  =====  ===  ===  ===  ===  ===  ==========  ===================================
standard      0      0    0    1    0    0    variance    121-123 hold; 124 fails (2a_l + c =
                                                          0): the tangent kernel grows like N,
                                                          so a fixed learning rate diverges
                                                          (lr ~ 1/N is needed); 125 fails.
                                                          The usual LeCun/He initialisation.
ntk           0      0    1/2  0    0    0    multiplier  121-124 hold; 125 fails (d = 0 <
                                                          1/2): lazy training, no feature
                                                          learning, frozen NTK (Jacot et al.).
mup           -1/2   1    0    1    1    1/2  variance    all hold: the a = 0 member of
                                                          (126)-(127), the unique one with c = 1,
                                                          i.e. a width-independent learning
                                                          rate (maximal update, Yang & Hu).
mean-field    0      0    1/2  0    0    1/2  multiplier  all hold: the a = 1/2 member; the
                                                          NTK parameterisation with the output
                                                          divided by gamma_0 sqrt(N), lr ~ N.
============  =====  ===  ===  ===  ===  ===  ==========  ===================================

Where the O(1) constants go does not change the distribution of the function, only the
gradients (by O(1) factors per layer). ``scales="multiplier"``: raw parameters
``W ~ N(0, N^{-b})``, forward ``W_std N^{-a} W x / sqrt(D)`` (first layer, eq. 104 literally)
and ``b_std N^{-a_1} beta`` -- neural-tangents' "ntk" parameterisation. ``scales="variance"``:
raw ``W ~ N(0, W_std^2 N^{-b} / D)`` (first layer; ``/ D`` only there), forward ``N^{-a} W x``,
raw bias ``beta ~ N(0, b_std^2 N^{-b_1})`` -- neural-tangents' "standard" parameterisation.
Biases use the first layer's exponents ``(a_1, b_1)`` (a bias is a weight of fan-in 1), which
keeps their effective variance ``b_std^2`` and, under muP, their update O(1).
"""

from __future__ import annotations

import dataclasses

from nnft import _validate as v

SCALES = ("variance", "multiplier")


@dataclasses.dataclass(frozen=True)
class ABCParameterization:
    """One member of the abc(d) family, eqs. (101)-(106). See the module docstring."""

    a_first: float
    b_first: float
    a_hidden: float
    b_hidden: float
    c: float
    d: float
    scales: str = "variance"
    name: str = "custom"

    def __post_init__(self):
        for f in ("a_first", "b_first", "a_hidden", "b_hidden", "c", "d"):
            v.finite(f, getattr(self, f))
        v.choice("scales", self.scales, SCALES)

    def constraints(self) -> dict[str, bool]:
        """Which of eqs. (121)-(125) hold (to 1e-12)."""
        def ok(x):
            return abs(x) < 1e-12

        return {
            "(121) 2a_1 + b_1 = 0": ok(2 * self.a_first + self.b_first),
            "(122) 2a_l + b_l = 1": ok(2 * self.a_hidden + self.b_hidden - 1),
            "(123) 2a_1 + c = 0": ok(2 * self.a_first + self.c),
            "(124) 2a_l + c = 1": ok(2 * self.a_hidden + self.c - 1),
            "(125) d = 1/2": ok(self.d - 0.5),
        }

    @property
    def finite_preactivations(self) -> bool:
        """Eqs. (121)-(122): the pre-activations are O(1) at initialisation."""
        c = self.constraints()
        return c["(121) 2a_1 + b_1 = 0"] and c["(122) 2a_l + b_l = 1"]

    @property
    def feature_learning(self) -> bool:
        """All of eqs. (121)-(125): output and features both move O(1) in finite time."""
        return all(self.constraints().values())

    def learning_rate_scale(self, width: float, gamma0: float = 1.0) -> float:
        """``gamma_0^2 N^{2d - c}``, eq. (106): the learning rate is ``eta_0`` times this."""
        v.positive("width", width)
        v.positive("gamma0", gamma0)
        return float(gamma0**2 * width ** (2 * self.d - self.c))


PRESETS: dict[str, ABCParameterization] = {
    "standard": ABCParameterization(0.0, 0.0, 0.0, 1.0, 0.0, 0.0, "variance", "standard"),
    "ntk": ABCParameterization(0.0, 0.0, 0.5, 0.0, 0.0, 0.0, "multiplier", "ntk"),
    "mup": ABCParameterization(-0.5, 1.0, 0.0, 1.0, 1.0, 0.5, "variance", "mup"),
    "mean-field": ABCParameterization(0.0, 0.0, 0.5, 0.0, 0.0, 0.5, "multiplier", "mean-field"),
}


def abc_family(a: float, scales: str = "variance") -> ABCParameterization:
    """The member of the feature-learning family (126)-(127) with ``a_l = a``."""
    v.finite("a", a)
    return ABCParameterization(a - 0.5, 1 - 2 * a, a, 1 - 2 * a, 1 - 2 * a, 0.5, scales,
                               f"abc(a={a:g})")


def get_parameterization(parameterization: str | ABCParameterization) -> ABCParameterization:
    """A preset by name ("standard", "ntk", "mup", "mean-field"), or an instance unchanged."""
    if isinstance(parameterization, ABCParameterization):
        return parameterization
    v.choice("parameterization", parameterization, PRESETS)
    return PRESETS[parameterization]


def learning_rate_scale(parameterization: str | ABCParameterization, width: float,
                        gamma0: float = 1.0) -> float:
    """``gamma_0^2 N^{2d - c}`` of eq. (106) for a preset name or a parameterisation."""
    return get_parameterization(parameterization).learning_rate_scale(width, gamma0)


__all__ = [
    "PRESETS",
    "SCALES",
    "ABCParameterization",
    "abc_family",
    "get_parameterization",
    "learning_rate_scale",
]
