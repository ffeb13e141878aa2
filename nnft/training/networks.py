"""Small C-output networks for the classifier studies: dense and convolutional (ntk-collective).

- :class:`DenseNet`: ``d -> widths -> C``. ``parameterization="standard"`` is flax's default
  ``nn.Dense``: LeCun-normal weights (``jax.nn.initializers.lecun_normal``, a truncated
  normal of variance 1 / fan-in), zero biases, no multipliers. ``"ntk"`` is neural-tangents'
  convention: raw ``W ~ N(0, 1)`` times ``W_std / sqrt(fan-in)``, raw biases ``N(0, 1)``
  times ``b_std`` (``bias=False``: none, as in the init sweep). Its NTK comes per layer,
  :meth:`DenseNet.ntk` (:func:`nnft.ntk_layers.dense_ntk`), without Jacobians.
- :class:`ConvNet`: ``n_conv`` 3x3 "SAME" convolutions of ``channels`` channels on an
  ``image`` (H, W, channels-in) given flat, then a dense readout (flax defaults as above).
  Its NTK is :func:`nnft.ntk.empirical_ntk` with vector outputs.

``apply(params, x)`` takes one input ``x (d,)`` and returns ``(C,)``; vmap it.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from nnft import _validate as v
from nnft.ntk import empirical_ntk
from nnft.ntk_layers import ACTIVATIONS, DenseLayer, dense_forward, dense_ntk

PARAMETERIZATIONS = ("standard", "ntk")


@dataclasses.dataclass(frozen=True)
class DenseNet:
    """Fully connected ``d -> widths[0] -> ... -> outputs`` (module docstring)."""

    d: int
    widths: tuple[int, ...]
    outputs: int = 10
    activation: str = "relu"
    parameterization: str = "standard"
    W_std: float = 1.0
    b_std: float = 0.0
    bias: bool = True
    dtype: str = "float32"

    def __post_init__(self):
        v.positive_int("d", self.d)
        object.__setattr__(self, "widths", tuple(self.widths))
        v.require(len(self.widths) >= 1 and all(v.is_int(w) and w >= 1 for w in self.widths),
                  "widths", list(self.widths), "one or more integers >= 1")
        v.positive_int("outputs", self.outputs)
        v.choice("activation", self.activation, tuple(ACTIVATIONS))
        v.choice("parameterization", self.parameterization, PARAMETERIZATIONS)
        v.positive("W_std", self.W_std)
        v.non_negative("b_std", self.b_std)
        v.choice("dtype", self.dtype, ("float32", "float64"))

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.d, *self.widths, self.outputs)

    @property
    def n_params(self) -> int:
        s = self.sizes
        return sum(a * b + (b if self.bias else 0) for a, b in zip(s[:-1], s[1:]))

    def init(self, key) -> tuple[dict, ...]:
        """Raw parameters: ``{"W": (n_in, n_out)[, "b": (n_out,)]}`` per layer,
        layer l from ``fold_in(key, l)``."""
        dt = jnp.dtype(self.dtype)
        lecun = jax.nn.initializers.lecun_normal()
        out = []
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            kw, kb = jax.random.split(jax.random.fold_in(key, i))
            if self.parameterization == "standard":
                layer = {"W": lecun(kw, (n_in, n_out), dt)}
                if self.bias:
                    layer["b"] = jnp.zeros((n_out,), dt)
            else:
                layer = {"W": jax.random.normal(kw, (n_in, n_out), dt)}
                if self.bias:
                    layer["b"] = jax.random.normal(kb, (n_out,), dt)
            out.append(layer)
        return tuple(out)

    def layers(self, params) -> list[DenseLayer]:
        """The :class:`~nnft.ntk_layers.DenseLayer` view (raw parameters and multipliers)."""
        ntk = self.parameterization == "ntk"
        return [DenseLayer(p["W"], p.get("b"),
                           self.W_std / math.sqrt(n_in) if ntk else 1.0,
                           self.b_std if ntk else 1.0)
                for p, n_in in zip(params, self.sizes[:-1])]

    def apply_batch(self, params, x) -> jax.Array:
        """``f (P, C)`` on ``x (P, d)``."""
        return dense_forward(self.layers(params), x, self.activation)[0]

    def apply(self, params, x) -> jax.Array:
        """``f (C,)`` on one input ``x (d,)``."""
        return self.apply_batch(params, x[None])[0]

    def ntk(self, params, x1, x2=None, *, outputs: str = "trace", per_layer: bool = False):
        """The per-layer NTK (:func:`nnft.ntk_layers.dense_ntk`), ``J J^T`` exactly."""
        return dense_ntk(self.layers(params), x1, x2, activation=self.activation,
                         outputs=outputs, per_layer=per_layer)


@dataclasses.dataclass(frozen=True)
class ConvNet:
    """``n_conv`` 3x3 convolutions (``channels`` each, "SAME") then a dense readout."""

    image: tuple[int, int, int] = (8, 8, 1)
    channels: int = 16
    n_conv: int = 1
    outputs: int = 10
    activation: str = "relu"
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "image", tuple(self.image))
        v.require(len(self.image) == 3 and all(v.is_int(s) and s >= 1 for s in self.image),
                  "image", list(self.image), "(height, width, channels), integers >= 1")
        v.positive_int("channels", self.channels)
        v.positive_int("n_conv", self.n_conv)
        v.positive_int("outputs", self.outputs)
        v.choice("activation", self.activation, tuple(ACTIVATIONS))

    @property
    def d(self) -> int:
        return math.prod(self.image)

    def init(self, key) -> dict:
        dt = jnp.dtype(self.dtype)
        lecun = jax.nn.initializers.lecun_normal()
        convs, c_in = [], self.image[2]
        for i in range(self.n_conv):
            k = jax.random.fold_in(key, i)
            convs.append({"W": lecun(k, (3, 3, c_in, self.channels), dt),
                          "b": jnp.zeros((self.channels,), dt)})
            c_in = self.channels
        n_flat = self.image[0] * self.image[1] * self.channels
        k = jax.random.fold_in(key, self.n_conv)
        return {"convs": tuple(convs), "readout": {"W": lecun(k, (n_flat, self.outputs), dt),
                                                   "b": jnp.zeros((self.outputs,), dt)}}

    def apply(self, params, x) -> jax.Array:
        """``f (C,)`` on one flat input ``x (H W C_in,)``."""
        act = ACTIVATIONS[self.activation]
        h = jnp.reshape(x, (1, *self.image))
        for layer in params["convs"]:
            h = jax.lax.conv_general_dilated(h, layer["W"], (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            h = act(h + layer["b"])
        return h.reshape(-1) @ params["readout"]["W"] + params["readout"]["b"]

    def apply_batch(self, params, x) -> jax.Array:
        return jax.vmap(self.apply, in_axes=(None, 0))(params, x)

    def ntk(self, params, x1, x2=None, *, outputs: str = "trace", per_layer: bool = False):
        """The Jacobian NTK over outputs (:func:`nnft.ntk.empirical_ntk`)."""
        v.require(not per_layer, "per_layer", per_layer, "only dense networks have it")
        return empirical_ntk(self.apply, params, x1, x2, outputs=outputs, method="jacobian")


__all__ = ["PARAMETERIZATIONS", "ConvNet", "DenseNet"]
