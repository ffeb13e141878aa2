"""What is measured on a trained ensemble at each measurement time.

:func:`make_observer` gives the jittable ``observe(params) -> dict`` of per-model
observables (parameters stacked over models on axis 0):

- ``f`` (models, P) on the test points and ``f_train`` on the training points, the train
  loss and, where the data set has test targets, the test loss;
- with ``config.ntk``: the empirical NTK on the probe set (:mod:`nnft.ntk`) and its
  spectrum statistics (eigenvalues, trace, entropy, effective rank);
- ``sv_<layer>``: the singular values of the layers named in ``config.singular_values``
  (the prior's effective weight, ``prior.layer_weight``, where it defines one);
- where the prior exposes its last hidden layer (``prior.features``, e.g. the MLP):
  ``hidden`` (models, P, N) and its rms ``feature_rms`` (the coordinate check).

Changes since time 0 (:func:`changes_since_start`) are formed on the host in float64
from the reference observations of time 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nnft.ntk import batched_empirical_ntk, spectrum_stats
from nnft.priors.base import Prior, fields

#: observations whose change since time 0 is recorded (the reference is kept)
REFERENCE = ("ntk", "hidden")


def _weight(prior: Prior, params, layer):
    """The effective weight matrix of ``layer``, stacked over models."""
    layer_weight = getattr(prior, "layer_weight", None)
    if layer_weight is not None:
        return layer_weight(params, layer)
    w = params[layer]
    return w["W"] if isinstance(w, dict) and "W" in w else w


def make_observer(prior: Prior, data, config, loss_fn, dtype):
    """``observe(params) -> dict`` of the module docstring's observables (before jit)."""
    x = jnp.asarray(data.x, dtype)
    y = jnp.asarray(data.y, dtype)
    x_test = jnp.asarray(data.x_test, dtype)
    y_test = None if data.y_test is None else jnp.asarray(data.y_test, dtype)
    probe = jnp.asarray(data.probe, dtype)
    features = getattr(prior, "features", None)

    def observe(params):
        f_test = jax.vmap(lambda p: fields(prior, p, x_test))(params)
        f_train = jax.vmap(lambda p: fields(prior, p, x))(params)
        out = {"f": f_test, "f_train": f_train,
               "train_loss": jnp.mean(loss_fn(f_train, y[None]), axis=1)}
        if y_test is not None:
            out["test_loss"] = jnp.mean(loss_fn(f_test, y_test[None]), axis=1)
        if config.ntk:
            theta = batched_empirical_ntk(prior.apply, params, probe)
            # on a CPU the eigenvalues come from the host (LAPACK): two concurrent batched
            # XLA eigh calls deadlocked jaxlib 0.10 on 2 cores (nnft.ntk.spectrum_stats)
            st = spectrum_stats(theta, host_eigensolver=jax.default_backend() == "cpu")
            out.update(ntk=theta, ntk_eigenvalues=st.eigenvalues, ntk_trace=st.trace,
                       ntk_entropy=st.entropy, ntk_effective_rank=st.effective_rank)
        for layer in config.singular_values:
            w = _weight(prior, params, layer)
            w = w.reshape(w.shape[0], w.shape[1], -1) if w.ndim >= 3 else w[:, None, :]
            out[f"sv_{layer}"] = jnp.linalg.svd(w, compute_uv=False)
        if features is not None:
            h = jax.vmap(lambda p: jax.vmap(lambda xx: features(p, xx))(x_test))(params)
            out["hidden"] = h
            out["feature_rms"] = jnp.sqrt(jnp.mean(h * h, axis=(1, 2)))
        return out

    return observe


def relative_change(theta, theta0) -> np.ndarray:
    """``||Theta_t - Theta_0||_F / ||Theta_0||_F`` per model (float64, on the host)."""
    theta, theta0 = np.asarray(theta, np.float64), np.asarray(theta0, np.float64)
    return (np.sqrt(np.sum((theta - theta0) ** 2, axis=(-2, -1)))
            / np.sqrt(np.sum(theta0**2, axis=(-2, -1))))


def changes_since_start(obs: dict, ref: dict) -> dict:
    """The host observations ``obs`` with ``ntk`` and ``hidden`` replaced by their changes
    since the reference ``ref`` (time 0): ``ntk_rel_change`` and ``feature_change_rms``."""
    out = {k: val for k, val in obs.items() if k not in REFERENCE}
    if "ntk" in obs:
        out["ntk_rel_change"] = relative_change(obs["ntk"], ref["ntk"])
    if "hidden" in obs:
        dh = np.asarray(obs["hidden"]) - np.asarray(ref["hidden"])
        out["feature_change_rms"] = np.sqrt(np.mean(dh * dh, axis=(1, 2)))
    return out
