"""Local potentials ``V(phi)`` of an operator insertion (TASI sec. 5.1-5.2).

``phi4``, ``phi6``, ``mass`` (a mass shift), ``polynomial`` and ``custom`` (a jax
function). Potentials unbounded below are refused: ``exp(-int_box V)`` must be
normalisable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nnft import _validate as v
from nnft._validate import ConfigError

#: potential name -> (power of phi, factor): V = factor * coupling * phi^power
NAMED_POTENTIALS = {"phi4": (4, 1.0), "phi6": (6, 1.0), "mass": (2, 0.5)}
POTENTIALS = (*NAMED_POTENTIALS, "polynomial", "custom")
#: phi values on which a user potential is checked (finite; bounded below)
_PHI_GRID = np.concatenate([np.linspace(-20.0, 20.0, 401), [-1e4, -1e3, -1e2, 1e2, 1e3, 1e4]])


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
