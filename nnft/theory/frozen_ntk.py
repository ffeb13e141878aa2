"""Frozen-NTK (linearised) training dynamics: TASI eqs. (96)-(99) and Lee et al. 2019.

Gradient descent on the mean-normalised squared loss used by :mod:`nnft.training`,

    L = (1 / n) sum_{a=1..n} (m^2 / 2) (f(X_a) - y_a)^2        (loss "mse": m^2 = 1)

moves the training outputs by ``df(X)/dt = -(eta m^2 / n) Theta(X, X) (f(X) - y)`` when the
tangent kernel Theta is frozen (infinite width, NTK parameterisation). With the rate
``r = eta m^2 / n`` (:func:`rate`; the 1/n of the mean gives eta/n, as noted in the issue:
for a summed loss ``1/2 sum (f - y)^2`` set ``normalization="sum"`` and r = eta m^2), and
``A_t(x) = Theta(x, X) Theta(X, X)^{-1} (1 - e^{-r Theta(X, X) t})``:

- every network evolves as ``f_t(x) = f_0(x) + A_t(x) (y - f_0(X))``;
- the ensemble mean (``E f_0 = 0``) is ``mu_t(x) = A_t(x) y``, eq. (99) with eta -> r;
- over initialisations ``f_0 ~ GP(0, K)`` (K the NNGP), the covariance is
  ``Sigma_t(x, x') = K(x, x') - A_t(x) K(X, x') - K(x, X) A_t(x')^T + A_t(x) K(X, X) A_t(x')^T``
  (Lee et al. 2019, "Wide neural networks of any depth evolve as linear models", eq. 16).

``discrete=True`` replaces gradient flow by the exact full-batch gradient-descent iteration,
``1 - e^{-r lambda t} -> 1 - (1 - r lambda)^t`` (t = the step count); the two agree when
``r lambda_max << 1``. ``Theta(X, X)^{-1} (1 - ...)`` is formed in Theta's eigenbasis as
``(1 - ...) / lambda``, which stays finite for vanishing eigenvalues (-> r t).

For an :class:`~nnft.MLP`, :func:`mlp_prediction` takes Theta = ``MLP.ntk`` (gradients over
the raw parameters) times ``MLP.learning_rate_scale()`` (the training code multiplies the
learning rate by it) and K = ``MLP.nngp``; it is the infinite-width limit for the "ntk"
parameterisation (no feature learning) and only the lazy, leading-order part for others.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nnft import _validate as v

NORMALIZATIONS = ("mean", "sum")


class FrozenNTKPrediction(NamedTuple):
    """``mean (T, P)``, ``cov (T, P, P)`` and ``std (T, P)`` at ``times`` (T,) on P test points."""

    times: np.ndarray
    mean: np.ndarray
    cov: np.ndarray | None
    std: np.ndarray | None


def rate(learning_rate: float, n_train: int, *, mass2: float = 1.0,
         normalization: str = "mean") -> float:
    """``r = eta m^2 / n`` (mean-normalised loss) or ``eta m^2`` (summed loss)."""
    v.positive("learning_rate", learning_rate)
    v.positive_int("n_train", n_train)
    v.positive("mass2", mass2)
    v.choice("normalization", normalization, NORMALIZATIONS)
    return learning_rate * mass2 / (n_train if normalization == "mean" else 1)


def _propagators(theta_train_train, times, r: float, discrete: bool):
    """``Theta^{-1} (1 - e^{-r Theta t})`` for every t: ``(T, n, n)``, float64."""
    th = np.asarray(theta_train_train, dtype=np.float64)
    th = 0.5 * (th + th.T)
    lam, vec = np.linalg.eigh(th)
    lam = np.maximum(lam, 0.0)
    t = np.asarray(times, dtype=np.float64)[:, None]
    if discrete:
        # (1 - r lambda)^t; a negative base (rate above 1/lambda) oscillates, t is an integer
        g = np.where(lam > 0, (1.0 - np.power(1.0 - r * lam, t)) / np.where(lam > 0, lam, 1.0),
                     r * t)
    else:
        g = np.where(lam > 0, -np.expm1(-r * lam * t) / np.where(lam > 0, lam, 1.0), r * t)
    return np.einsum("ij,tj,kj->tik", vec, g, vec)


def transfer(theta_test_train, theta_train_train, times, r: float, *,
             discrete: bool = False) -> np.ndarray:
    """``A_t(x) = Theta(x, X) Theta(X, X)^{-1} (1 - e^{-r Theta(X,X) t})``: ``(T, P, n)``."""
    v.positive("rate", r)
    prop = _propagators(theta_train_train, times, r, discrete)
    return np.einsum("pi,tij->tpj", np.asarray(theta_test_train, np.float64), prop)


def mean_prediction(theta_test_train, theta_train_train, y, times, r: float, *,
                    discrete: bool = False) -> np.ndarray:
    """Ensemble mean ``mu_t(x) = A_t(x) y``, eq. (99): ``(T, P)``."""
    a = transfer(theta_test_train, theta_train_train, times, r, discrete=discrete)
    return a @ np.asarray(y, np.float64)


def covariance(theta_test_train, theta_train_train, k_test_test, k_test_train,
               k_train_train, times, r: float, *, discrete: bool = False) -> np.ndarray:
    """Covariance over initialisations (Lee et al. 2019, eq. 16): ``(T, P, P)``."""
    a = transfer(theta_test_train, theta_train_train, times, r, discrete=discrete)
    ktt = np.asarray(k_test_test, np.float64)
    kxt = np.asarray(k_test_train, np.float64)
    kxx = np.asarray(k_train_train, np.float64)
    cross = np.einsum("tpi,qi->tpq", a, kxt)
    return (ktt[None] - cross - np.swapaxes(cross, 1, 2)
            + np.einsum("tpi,ij,tqj->tpq", a, kxx, a))


def mlp_prediction(prior, x_train, y_train, x_test, times, learning_rate: float, *,
                   mass2: float = 1.0, normalization: str = "mean", discrete: bool = True,
                   with_covariance: bool = True) -> FrozenNTKPrediction:
    """Frozen-NTK mean and covariance of an ensemble of ``prior`` (an MLP) trained by
    full-batch gradient descent at ``learning_rate`` on (x_train, y_train) with the
    squared loss of the module docstring, at step counts ``times``."""
    x_train = np.asarray(x_train, np.float64).reshape(len(y_train), -1)
    x_test = np.asarray(x_test, np.float64).reshape(-1, x_train.shape[1])
    y = np.asarray(y_train, np.float64)
    r = rate(learning_rate * prior.learning_rate_scale(), len(y), mass2=mass2,
             normalization=normalization)
    th_xx = prior.ntk(x_train)
    th_tx = prior.ntk(x_test, x_train)
    times = np.asarray(times, np.float64)
    mean = mean_prediction(th_tx, th_xx, y, times, r, discrete=discrete)
    cov = std = None
    if with_covariance:
        cov = covariance(th_tx, th_xx, prior.nngp(x_test), prior.nngp(x_test, x_train),
                         prior.nngp(x_train), times, r, discrete=discrete)
        std = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
    return FrozenNTKPrediction(times, mean, cov, std)


__all__ = ["NORMALIZATIONS", "FrozenNTKPrediction", "covariance", "mean_prediction",
           "mlp_prediction", "rate", "transfer"]
