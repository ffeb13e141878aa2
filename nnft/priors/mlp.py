"""Deep MLP priors in the abc(d)-parameterisation, TASI eqs. (101)-(106).

``phi(x) = z^(L+1)(x) / (gamma_0 N^d)`` with, for L = ``depth`` hidden layers,

    z^(1)   = m_1 W^(1) x + m_b1 beta^(1)                                  (eq. 104)
    z^(l)   = m_l W^(l) sigma(z^(l-1)) + m_bl beta^(l),   l = 2..L          (eq. 103)
    z^(L+1) = m_{L+1} w . sigma(z^(L)) + m_b beta^(L+1)                      (eq. 102)

and raw parameters ``W ~ N(0, s^2)`` (eq. 105). The multipliers ``m`` carry ``N^{-a}``, the
raw standard deviations ``s`` carry ``N^{-b/2}``, and the O(1) constants ``W_std``, ``b_std``,
``1/sqrt(D)`` sit in one or the other as the parameterisation says
(:mod:`nnft.priors.parameterization`). In every preset (any parameterisation obeying
(121)-(122)) the *effective* weights have variance ``W_std^2 / fan-in`` and the effective
biases ``b_std^2``, so "standard" and "ntk" give the same function distribution (as in
neural-tangents), and "mup" / "mean-field" give it times ``1/(gamma_0 N^d)``; the same key
even gives the same function up to that factor. Note the names: the text's input dimension D
is the field ``d`` here, and the text's output exponent d is ``parameterization.d``.

What N is, per layer, when widths differ (``width`` a tuple ``(n_1, ..., n_L)``): the first
layer's fan-in D is not scaled, so its N is its fan-out ``n_1``; every later layer's N is its
fan-in (``n_{l-1}``; the readout's is ``n_L``); a bias uses its layer's N with the first-layer
exponents; the output factor ``N^d`` uses ``n_L``. With one width all of these are N.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nnft import _validate as v
from nnft.priors import reparam as rp
from nnft.priors.base import Prior, as_points
from nnft.priors.parameterization import PRESETS, ABCParameterization, get_parameterization
from nnft.theory import gp

ACTIVATIONS = {
    "erf": jax.scipy.special.erf,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "identity": lambda z: z,
}


class LayerScale(NamedTuple):
    """One affine layer: N, fan-in, weight multiplier and raw std, bias multiplier and raw std."""

    n: int
    fan_in: int
    w_mult: float
    w_std: float
    b_mult: float
    b_std: float


@dataclasses.dataclass(frozen=True)
class MLP(Prior):
    """Fully connected network ``R^d -> R`` with ``depth`` hidden layers, eqs. (101)-(105).

    ``width``: one hidden width or a tuple of ``depth`` of them; ``activation``: erf, relu,
    tanh or identity; ``W_std`` (> 0), ``b_std`` (>= 0): effective weight scale (variance
    ``W_std^2 / fan-in``) and bias standard deviation; ``bias``: whether there are biases;
    ``parameterization``: a preset name (standard, ntk, mup, mean-field) or an
    :class:`ABCParameterization`; ``gamma0``: the output factor of eq. (101).
    """

    d: int = 1
    width: int | tuple[int, ...] = 128
    depth: int = 2
    activation: str = "erf"
    W_std: float = 1.0
    b_std: float = 0.0
    bias: bool = True
    parameterization: str | ABCParameterization = "standard"
    gamma0: float = 1.0
    dtype: str = "float32"

    name = "mlp"

    def __post_init__(self):
        v.positive_int("d", self.d)
        v.positive_int("depth", self.depth)
        if isinstance(self.width, (list, tuple)):
            object.__setattr__(self, "width", tuple(self.width))
            v.require(len(self.width) == self.depth, "width", list(self.width),
                      f"must be an integer >= 1 or a list of depth = {self.depth} of them")
            for w in self.width:
                v.require(v.is_int(w) and w >= 1, "width",
                          list(self.width), "every entry must be an integer >= 1")
        else:
            v.positive_int("width", self.width)
        v.choice("activation", self.activation, tuple(ACTIVATIONS))
        v.positive("W_std", self.W_std)
        v.non_negative("b_std", self.b_std)
        v.require(isinstance(self.bias, bool), "bias", self.bias, "must be true or false")
        if not isinstance(self.parameterization, ABCParameterization):
            v.choice("parameterization", self.parameterization, tuple(PRESETS))
        v.positive("gamma0", self.gamma0)
        v.choice("dtype", self.dtype, ("float32", "float64"))

    # -- structure ---------------------------------------------------------------------
    @property
    def widths(self) -> tuple[int, ...]:
        """Hidden widths ``(n_1, ..., n_L)``."""
        return self.width if isinstance(self.width, tuple) else (self.width,) * self.depth

    @property
    def abc(self) -> ABCParameterization:
        return get_parameterization(self.parameterization)

    def layer_scales(self) -> tuple[LayerScale, ...]:
        """Multipliers and raw standard deviations of the L + 1 affine layers (module docstring)."""
        p, ws = self.abc, self.widths
        in_mult = p.scales == "multiplier"
        out = []
        for i, fan_in in enumerate((self.d, *ws)):
            n = ws[0] if i == 0 else fan_in
            a, b = (p.a_first, p.b_first) if i == 0 else (p.a_hidden, p.b_hidden)
            const = self.W_std / math.sqrt(self.d) if i == 0 else self.W_std
            w_mult, w_std = n**-a, n ** (-b / 2)
            b_mult, b_std = n**-p.a_first, n ** (-p.b_first / 2)
            if in_mult:
                w_mult, b_mult = w_mult * const, b_mult * self.b_std
            else:
                w_std, b_std = w_std * const, b_std * self.b_std
            out.append(LayerScale(n, fan_in, w_mult, w_std, b_mult, b_std))
        return tuple(out)

    @property
    def output_scale(self) -> float:
        """``1 / (gamma_0 N^d)`` of eq. (101), N the last hidden width."""
        return 1.0 / (self.gamma0 * self.widths[-1] ** self.abc.d)

    def learning_rate_scale(self) -> float:
        """``gamma_0^2 N^{2d-c}``, eq. (106), N the last hidden width."""
        return self.abc.learning_rate_scale(self.widths[-1], self.gamma0)

    # -- sampling and evaluation ---------------------------------------------------------
    def sample(self, key):
        """Raw parameters, eq. (105): a tuple of ``{"W": (n_out, n_in), "b": (n_out,)}`` per layer.

        The readout has ``W`` of shape ``(n_L,)`` and a scalar ``b``; without biases there is
        no ``"b"``. Layer l's draws come from ``fold_in(key, l)``.
        """
        dt = jnp.dtype(self.dtype)
        ws = self.widths
        shapes = [(n_out, n_in) for n_in, n_out in zip((self.d, *ws[:-1]), ws)] + [(ws[-1],)]
        params = []
        for i, (shape, sc) in enumerate(zip(shapes, self.layer_scales())):
            kw, kb = jax.random.split(jax.random.fold_in(key, i))
            layer = {"W": sc.w_std * jax.random.normal(kw, shape, dt)}
            if self.bias:
                layer["b"] = sc.b_std * jax.random.normal(kb, shape[:-1], dt)
            params.append(layer)
        return tuple(params)

    def _affine(self, layer, sc: LayerScale, h):
        z = sc.w_mult * (layer["W"] @ h)
        return z + sc.b_mult * layer["b"] if self.bias else z

    def features(self, params, x):
        """The last hidden layer ``sigma(z^(L)(x))`` of one network at one input, ``(n_L,)``
        (eqs. 103-104)."""
        act = ACTIVATIONS[self.activation]
        h = jnp.asarray(x, self.dtype)
        for layer, sc in zip(params[:-1], self.layer_scales()[:-1]):
            h = act(self._affine(layer, sc, h))
        return h

    def apply(self, params, x):
        """One network at one input ``x`` of shape ``(d,)``, eqs. (101)-(104); a scalar."""
        readout = self._affine(params[-1], self.layer_scales()[-1], self.features(params, x))
        return readout * self.output_scale

    gaussian_readout = True  # raw readout weights and bias are Gaussian (eq. 105)

    @property
    def iid_neurons(self) -> bool:
        """One hidden layer whose effective first-layer scale is width free (eq. 121)."""
        p = self.abc
        return self.depth == 1 and 2 * p.a_first + p.b_first == 0

    def readout_features(self, params, x):
        """The last hidden layer ``sigma(z^(L)(x))``, as :meth:`features`."""
        return self.features(params, x)

    def readout_variances(self):
        """Effective readout weight and bias variances, output factor included."""
        sc = self.layer_scales()[-1]
        s = self.output_scale
        sb2 = (s * sc.b_mult * sc.b_std) ** 2 if self.bias else 0.0
        return float((s * sc.w_mult * sc.w_std) ** 2), float(sb2)

    def layer_weight(self, params, layer: int):
        """The effective weight matrix ``m_l W^(l)`` of ``layer`` (0 = first, ``depth`` =
        readout); ``params`` may be stacked over networks."""
        return params[layer]["W"] * self.layer_scales()[layer].w_mult

    # -- infinite-width theory -------------------------------------------------------------
    def kernel_layers(self) -> list[gp.Layer]:
        """The layers' coefficients in the recursion of :mod:`nnft.theory.gp`."""
        out = []
        for sc in self.layer_scales():
            bias = 1.0 if self.bias else 0.0
            out.append(gp.Layer(sw2=sc.w_mult**2 * sc.w_std**2 * sc.fan_in,
                                sb2=bias * sc.b_mult**2 * sc.b_std**2,
                                tw=sc.w_mult**2 * sc.fan_in, tb=bias * sc.b_mult**2))
        return out

    def _kernels(self, points1, points2):
        x1 = as_points(points1, self.d)
        x2 = None if points2 is None else as_points(points2, self.d)
        nngp, ntk = gp.kernels(x1, x2, activation=self.activation, layers=self.kernel_layers())
        return nngp * self.output_scale**2, ntk * self.output_scale**2

    def nngp(self, points1, points2=None) -> np.ndarray:
        """``E[phi(x) phi(y)]`` at infinite width on ``points1 x points2`` (``(P, Q)``, float64)."""
        return self._kernels(points1, points2)[0]

    def nngp_rows(self, points, nodes):
        """``nngp(points, nodes)`` ``(P, Q)`` and the diagonal ``nngp(z_q, z_q)`` ``(Q,)``."""
        z = np.asarray(nodes, dtype=np.float64)
        diag = np.concatenate([np.diag(self.nngp(z[i:i + 256]))
                               for i in range(0, len(z), 256)])
        return np.asarray(self.nngp(points, z)), diag

    def reparameterization(self) -> rp.Reparameterization:
        """Every raw parameter Gaussian (eq. 105), standardised; zero-variance ones fixed."""
        scales = self.layer_scales()

        def std(i, name):
            return scales[i].w_std if name == "W" else scales[i].b_std

        def constrain(z):
            return tuple({k: std(i, k) * val for k, val in layer.items()}
                         for i, layer in enumerate(z))

        def unconstrain(p):
            return tuple({k: (val / std(i, k) if std(i, k) > 0 else jnp.zeros_like(val))
                          for k, val in layer.items()} for i, layer in enumerate(p))

        def log_density(z):
            return sum(rp.normal_logpdf(val) for val in jax.tree.leaves(z))

        def init(key):
            leaves, tree = jax.tree.flatten(self.sample(key))
            keys = jax.random.split(jax.random.fold_in(key, 7919), len(leaves))
            return jax.tree.unflatten(tree, [jax.random.normal(k, x.shape, x.dtype)
                                             for k, x in zip(keys, leaves)])

        return rp.Reparameterization(constrain, unconstrain, log_density, init)

    def g2(self, points) -> np.ndarray:
        """Exact G2 for depth 1 at every width; for depth >= 2 the infinite-width NNGP.

        Deeper nets have O(1/N) corrections (the feature kernel (112) fluctuates). Includes
        the output factor ``1/(gamma_0 N^d)^2`` (``N^{-1}/gamma_0^2`` under mup, mean-field).
        """
        return self.nngp(points, None)

    def ntk(self, points1, points2=None) -> np.ndarray:
        """Large-width NTK ``sum_p dphi(x)/dtheta_p dphi(y)/dtheta_p`` over the raw parameters.

        Leading order at this model's widths: width-independent (the infinite-width limit)
        for "ntk" and "mup"; for "standard" it grows like N and keeps the explicit fan-ins,
        as neural-tangents' ``parameterization="standard"`` does; for "mean-field" it falls
        like 1/N. Times :meth:`learning_rate_scale` it is the kernel that moves ``phi`` under
        gradient flow at learning rate ``eta_0`` (eqs. 114-115), finite for all but standard.
        """
        return self._kernels(points1, points2)[1]

    def hyperparameters(self) -> dict:
        out = super().hyperparameters()
        if isinstance(self.parameterization, ABCParameterization):
            out["parameterization"] = dataclasses.asdict(self.parameterization)
        return out


__all__ = ["ACTIVATIONS", "MLP", "LayerScale"]
