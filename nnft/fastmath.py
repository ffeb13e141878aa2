"""A vectorisable float32 cosine for the cos-feature priors (Cos-net, spectral nets).

XLA's CPU ``cos`` costs 6.1 ns per float32 element against NumPy's 1.4 ns
(``benchmarks/results/sampling_breakdown.json``, ``cos``), and at width 1000 it was most of
a Cos-net ensemble's time. :func:`cos` is plain arithmetic that XLA fuses and vectorises
(1.3 ns there):

- half-period reduction ``x = n pi + r``, ``|r| <= pi / 2``, with ``pi`` split in three
  float32 parts (Cody-Waite; the first, 3.140625, has 8 significant bits, so ``n * C1`` is
  exact for ``|n| < 2^16``, ``|x| < 2 x 10^5``);
- ``cos r`` by a degree-10 even polynomial (6 coefficients, a Chebyshev-weighted least-squares
  fit on ``[-pi/2, pi/2]``, 2.2e-10 from cos in exact arithmetic);
- the sign ``(-1)^n``.

Its largest error against the float64 cosine of the same float32 argument is 1.9e-7
(NumPy's float32 ``cos``: 6.9e-8, XLA's: 3e-8; ``tests/test_fastmath.py`` checks < 2.5e-7
for ``|x| < 2000``), about 1.6 units in the last place at magnitude 1, the size of the
rounding the float32 field already carries. Float64 arguments go to ``jnp.cos``. The
derivative is the polynomial's (for HMC), within 3.2e-7 of ``-sin`` on |x| < 12.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

_INV_PI = np.float32(1 / np.pi)
_C1 = np.float32(3.140625)  # pi = C1 + C2 + C3 to float32 accuracy
_C2 = np.float32(np.pi - 3.140625)
_C3 = np.float32(np.pi - float(_C1) - float(_C2))
_COEFFS = tuple(np.float32(c) for c in (
    0.9999999997799079, -0.4999999935695677, 0.041666636208934675,
    -0.0013888360842578505, 2.4760135517689288e-05, -2.6051076385868427e-07))


def cos(x):
    """``cos(x)``: the polynomial form for float32 ``x``, ``jnp.cos`` otherwise."""
    x = jnp.asarray(x)
    if x.dtype != jnp.float32:
        return jnp.cos(x)
    n = jnp.round(x * _INV_PI)
    r = ((x - n * _C1) - n * _C2) - n * _C3
    u = r * r
    p = _COEFFS[-1]
    for c in _COEFFS[-2::-1]:
        p = p * u + c
    parity = n - 2.0 * jnp.floor(0.5 * n)  # 0 or 1
    return p * (1.0 - 2.0 * parity)
