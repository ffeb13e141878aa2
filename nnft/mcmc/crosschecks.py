"""Cross-checks of an interacting run from free draws: importance reweighting and
first-order perturbation theory at finite N.

Free network ``i`` is drawn from ``network_keys(key, i)`` and lands in jackknife batch
``i mod n_batches``, as in :func:`nnft.ensemble.free_source`; the source
(:func:`crosscheck_source`) also returns its action ``S = int_box V`` per unit coupling
and weights, one channel per coupling, ``e^{-lambda (S - S_min)}``, plus channels
weighted by ``S - S_min`` and by ``(S - S_min)^2``. The driver feeds them to THE moment estimator
(:func:`nnft.estimators.moment_estimator` with ``n_channels``):

- reweighting: ``E_0[O e^{-lambda S}] / E_0[e^{-lambda S}]`` per channel, with Kish's
  effective sample size;
- first order: ``dG2/dlambda = -Cov_0(phi_a phi_b, S)`` and ``dG4c/dlambda`` its image
  under the moments -> cumulants map (a jvp), where ``Cov_0(phi^k, S) = E_0[S]
  (E_S[phi^k] - E_0[phi^k])`` and ``E_S`` is the S-weighted channel; jackknife errors
  from the same leave-one-batch-out replicates;
- second order: ``d^2 G2/dlambda^2 = kappa_0(phi_a phi_b, S, S)`` (the joint cumulant),
  ``E_0[phi^k S^2] - E_0[phi^k] E_0[S^2] - 2 E_0[S] Cov_0(phi^k, S)``, and for G4c the
  second derivative of the cumulant map along the moment curve (nested jvp).

At infinite N see :func:`nnft.interaction.perturbation_infinite_n`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np

from nnft import _validate as v
from nnft.cumulants import cumulants_from_moments
from nnft.engine.drive import Draws, Estimator, Source, as_key, drive, key_fingerprint
from nnft.engine.memory import default_budget, fit_chunk
from nnft.engine.mesh import to_host
from nnft.ensemble import network_keys
from nnft.estimators import Estimate, channel_state, effective_samples, moment_estimator
from nnft.interaction.action import Interaction
from nnft.priors.base import Prior, as_points, fields

log = logging.getLogger("nnft")

@dataclasses.dataclass
class FreeDrawChecks:
    """Cross-checks from ``n_samples`` free draws.

    ``reweighted[i]``: ``{"G2", "G4c"}`` Estimates at ``couplings[i]`` by importance
    reweighting ``E_0[O e^{-lambda S}] / E_0[e^{-lambda S}]`` (S = int_box V per unit
    coupling), and ``ess[i] = (sum w)^2 / sum w^2``; ``free``: the same at lambda = 0;
    ``slope``: first-order perturbation theory at finite N, ``dG/dlambda`` at 0;
    ``curvature``: second order, ``d^2 G/dlambda^2`` at 0 (``G(lambda) = G_0 + slope
    lambda + curvature lambda^2 / 2 + O(lambda^3)``).
    """

    couplings: tuple[float, ...]
    n_samples: int
    reweighted: list
    ess: list
    free: dict
    slope: dict
    curvature: dict | None = None


@functools.lru_cache(maxsize=16)
def _draw_step(prior, unit: Interaction, n_points: int, n_batches: int, chunk: int):
    """Jitted ``(key, start, n_total, points, couplings, shift) -> (phi, mask, weights,
    nonfinite)`` for free networks ``start .. start + chunk - 1`` (run under x64)."""
    rows = chunk // n_batches

    def step(key, start, n_total, points, lam, shift):
        idx = start + jnp.arange(chunk, dtype=jnp.int64)
        params = jax.vmap(prior.sample)(network_keys(key, idx))
        phi = jax.vmap(lambda p: fields(prior, p, points))(params).astype(jnp.float64)
        s = jax.vmap(lambda p: unit.action(prior, p))(params).astype(jnp.float64) - shift
        mask = (idx < n_total).reshape(rows, n_batches)
        s = s.reshape(rows, n_batches)
        live = mask.astype(jnp.float64)
        w = jnp.exp(-lam[:, None, None] * s[None]) * live[None]
        # last channels: S and S^2 (perturbation theory at first and second order)
        w = jnp.concatenate([w, (s * live)[None], (s * s * live)[None]])
        w = jnp.where(jnp.isfinite(w), w, 0.0)
        nonfinite = jnp.sum((~jnp.isfinite(s)) * live)
        return phi.reshape(rows, n_batches, n_points), mask, w, nonfinite

    return jax.jit(step)


@functools.lru_cache(maxsize=16)
def _compiled_draw_step(prior, unit, points_shape, points_dtype, n_couplings, n_batches,
                        chunk, key_shape, key_dtype):
    """:func:`_draw_step` compiled for one chunk (cached across runs of the same work)."""
    spec = jax.ShapeDtypeStruct
    with jax.enable_x64(True):
        args = (spec(key_shape, key_dtype), spec((), jnp.int64), spec((), jnp.int64),
                spec(points_shape, points_dtype), spec((n_couplings,), jnp.float64),
                spec((), jnp.float64))
        fn = _draw_step(prior, unit, points_shape[0], n_batches, chunk)
        return fn.lower(*args).compile()


def crosscheck_source(prior: Prior, interaction: Interaction, points, couplings,
                      n_samples: int, key, *, chunk_size: int = 16384, n_batches: int = 64,
                      memory_limit: int | None = None) -> Source:
    """Free draws with their reweighting channels (module docstring) as a
    :class:`~nnft.engine.Source`: ``Draws(phi (rows, B, P), mask, weights (C, rows, B),
    record = number of non-finite actions)`` with C = ``len(couplings) + 3``.
    ``chunk_size`` is an upper bound, lowered to fit ``memory_limit`` bytes (default: the
    engine's budget, :mod:`nnft.engine.memory`)."""
    pts = as_points(points, prior.input_dim)
    unit = interaction.unit()
    shift = unit.box.volume * unit.potential.lower_bound()
    with jax.enable_x64(True):  # float64 priors keep float64 points
        points_dev = jnp.asarray(pts, jnp.dtype(getattr(prior, "dtype", "float32")))
        lam = jnp.asarray((0.0, *couplings), jnp.float64)
    key = as_key(key)

    def compile_at(c):
        return _compiled_draw_step(prior, unit, points_dev.shape, points_dev.dtype,
                                   len(couplings) + 1, n_batches, c, key.shape, key.dtype)

    budget = memory_limit if memory_limit is not None else default_budget()
    chunk, step_fn, lowered_from = fit_chunk(
        compile_at, max(n_batches, math.ceil(chunk_size / n_batches) * n_batches), n_batches,
        budget)
    if lowered_from is not None and jax.process_index() == 0:
        log.info("chunk_size of the free-draw cross-checks lowered from %d to %d networks "
                 "to fit the memory budget of %.2f GiB", lowered_from, chunk, budget / 2**30)

    def step(key, state, i):
        with jax.enable_x64(True):
            phi, mask, w, bad = step_fn(key, jnp.int64(i * chunk), jnp.int64(n_samples),
                                        points_dev, lam, jnp.float64(shift))
        return state, Draws(phi, mask=mask, weights=w, record=bad)

    work = {"source": "free-crosschecks", "prior": prior.hyperparameters(),
            "interaction": unit.describe(), "points": pts.tolist(), "couplings": [0.0, *couplings],
            "n_samples": n_samples, "key": key_fingerprint(key), "n_batches": n_batches,
            "chunk": chunk}
    return Source(init=lambda key: (), step=step, n_steps=math.ceil(n_samples / chunk),
                  work=work, label="free draws", unit="networks", total=n_samples,
                  units=lambda i: min(i * chunk, n_samples))


def _channels_estimator(n_points: int, n_batches: int, n_channels: int) -> Estimator:
    """The moment estimator over channels, plus a count of non-finite actions."""
    moments = moment_estimator(n_points, 4, n_batches, n_channels=n_channels).for_engine(
        finalize=lambda state: state)

    def init():
        with jax.enable_x64(True):
            return moments.init(), jnp.zeros((), jnp.float64)

    def update(acc, draws, i):
        with jax.enable_x64(True):
            return moments.update(acc[0], draws, i), acc[1] + draws.record

    return Estimator(init, update, lambda acc: to_host(acc))


def free_draw_crosschecks(prior: Prior, interaction: Interaction, points, couplings,
                          n_samples: int, seed=0, *, chunk_size: int = 16384,
                          n_batches: int = 64,
                          memory_limit: int | None = None) -> FreeDrawChecks:
    """Importance reweighting at ``couplings`` and first-order perturbation theory (finite N).

    ``seed``: an integer or a ``jax.random.key``; network ``i`` and its batch as in
    :func:`nnft.ensemble.run`. The couplings multiply
    :meth:`nnft.interaction.Interaction.unit` (lambda for phi4). ``chunk_size`` networks
    at a time at most (lowered to fit ``memory_limit`` bytes; results do not depend on it
    beyond round-off).
    """
    pts = as_points(points, prior.input_dim)
    couplings = tuple(float(x) for x in couplings)
    for i, lam in enumerate(couplings):
        v.non_negative(f"couplings[{i}]", lam)
    v.positive_int("n_samples", n_samples, minimum=n_batches)
    source = crosscheck_source(prior, interaction, pts, couplings, n_samples, seed,
                               chunk_size=chunk_size, n_batches=n_batches,
                               memory_limit=memory_limit)
    n_channels = len(couplings) + 3
    state, nonfinite = drive(source, _channels_estimator(len(pts), n_batches, n_channels),
                             as_key(seed), progress=False).result
    if nonfinite:
        raise FloatingPointError(f"int_box V was not finite for {int(nonfinite)} of "
                                 f"{n_samples} free draws; the potential or the rule is broken")
    est = moment_estimator(len(pts), 4, n_batches)
    per = [est.finalize(channel_state(state, ch), keep_replicates=True)
           for ch in range(n_channels)]
    estimates = [{"G2": c.full[2], "G4c": c.connected[4]} for c in per[:-2]]
    ess = [effective_samples(channel_state(state, ch)) for ch in range(1, n_channels - 2)]
    slope, curvature = _perturbative(per[0], per[-2], per[-1], state.count[0],
                                     state.count[-2], state.count[-1])
    return FreeDrawChecks(couplings=couplings, n_samples=n_samples, reweighted=estimates[1:],
                          ess=ess, free=estimates[0], slope=slope, curvature=curvature)


def _with_replicates(corr, order: int) -> np.ndarray:
    """Moment of ``order``: the estimate and its leave-one-batch-out replicates stacked."""
    return np.concatenate([corr.full[order].value[None], corr.replicates["full"][order]])


def _loo(per_batch) -> np.ndarray:
    """A per-batch sum: the total and the leave-one-batch-out totals."""
    per_batch = np.asarray(per_batch, np.float64)
    return np.concatenate([[per_batch.sum()], per_batch.sum() - per_batch])


def _perturbative(free, s_weighted, s2_weighted, n_count, s_count, s2_count):
    """First and second lambda-derivatives at 0 of G2 and G4c (jackknifed), from the free,
    S-weighted and S^2-weighted channels: ``m_k' = -Cov_0(phi^k, S)`` and ``m_k'' =
    kappa_0(phi^k, S, S)``; G4c through the cumulant map along ``m + t m' + t^2 m''/2``."""
    mean_s = _loo(s_count) / _loo(n_count)
    mean_s2 = _loo(s2_count) / _loo(n_count)
    with jax.enable_x64(True):
        m, d1, d2 = {}, {}, {}
        for k in range(1, 5):
            shape = (-1,) + (1,) * k
            m[k] = _with_replicates(free, k)
            cov = mean_s.reshape(shape) * (_with_replicates(s_weighted, k) - m[k])
            d1[k] = -cov
            d2[k] = (mean_s2.reshape(shape) * (_with_replicates(s2_weighted, k) - m[k])
                     - 2.0 * mean_s.reshape(shape) * cov)

        def g(t):
            mom = {k: jnp.asarray(m[k]) + t * d1[k] + 0.5 * t * t * d2[k] for k in m}
            return mom[2], cumulants_from_moments(mom, 4)[4]

        def dg(t):
            return jax.jvp(g, (t,), (jnp.ones_like(t),))[1]

        t0 = jnp.zeros((), jnp.float64)
        first, second = jax.jvp(dg, (t0,), (jnp.ones_like(t0),))
    slope = {"G2": _jackknife(np.asarray(first[0])), "G4c": _jackknife(np.asarray(first[1]))}
    curv = {"G2": _jackknife(np.asarray(second[0])), "G4c": _jackknife(np.asarray(second[1]))}
    return slope, curv


def _jackknife(both: np.ndarray) -> Estimate:
    reps = both[1:]
    b = reps.shape[0]
    dev = reps - reps.mean(axis=0)
    return Estimate(np.asarray(both[0]), np.sqrt((b - 1) / b * np.sum(dev * dev, axis=0)))


def fit_coupling_slope(couplings, values, stderrs, *, intercept=None, quadratic=False):
    """Weighted least squares of ``G(lambda)`` against lambda; returns
    ``(slope, slope_stderr, chi2_per_dof)``. With ``intercept`` (e.g. the exact free
    value) the fit is ``G - intercept = s lambda (+ c lambda^2)``, else ``a + s lambda (...)``."""
    lam = np.asarray(couplings, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    err = np.asarray(stderrs, dtype=np.float64)
    cols = [] if intercept is not None else [np.ones_like(lam)]
    slope_col = len(cols)
    cols.append(lam)
    if quadratic:
        cols.append(lam**2)
    if intercept is not None:
        y = y - intercept
    a = np.stack(cols, axis=1) / err[:, None]
    b = y / err
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    cov = np.linalg.inv(a.T @ a)
    dof = len(lam) - len(cols)
    chi2 = float(np.sum((a @ coef - b) ** 2) / dof) if dof > 0 else math.nan
    return float(coef[slope_col]), float(np.sqrt(cov[slope_col, slope_col])), chi2


def pade_shift(params, couplings) -> np.ndarray:
    """The [m/1] Pade form of :func:`fit_coupling_pade`, ``(c_1 lambda + ... + c_m lambda^m)
    / (1 + a lambda)``, at ``couplings``; ``params = (c_1, ..., c_m, a)``."""
    *num, a = (float(x) for x in params)
    lam = np.asarray(couplings, dtype=np.float64)
    return sum(c * lam ** (k + 1) for k, c in enumerate(num)) / (1.0 + a * lam)


def _second_grad(q) -> np.ndarray:
    """d(second)/d(c_1, c_2, ..., a) of ``second = c_2 - c_1 a``: (-a, 1, 0, ..., -c_1)."""
    grad = np.zeros(len(q))
    grad[0], grad[1], grad[-1] = -q[-1], 1.0, -q[0]
    return grad


def fit_coupling_pade(couplings, values, stderrs, intercept, *, numerator: int = 2,
                      second_prior=None) -> dict:
    """Weighted least squares of ``G(lambda) - intercept = (s lambda + ... + c_m lambda^m) /
    (1 + a lambda)``, the [m/1] Pade form with ``m = numerator`` (2, 3 or 4): it models the
    curvature and the saturation of a correlator at couplings where the shift is tens of per
    cent (a polynomial in lambda does not). Returns ``slope`` = s (dG/dlambda at 0) and
    ``second`` = c_2 - s a (the lambda^2 Taylor coefficient, ``G''(0) / 2``) with standard
    errors (linearised, from the Jacobian), ``params`` (s, c_2, ..., a) and ``chi2_per_dof``.
    Needs ``m + 2`` couplings or more.

    ``second_prior = (c2, c2_err)``: an independent measurement of the lambda^2 coefficient
    (e.g. ``kappa_0(G, S, S) / 2`` from free draws) enters as one more residual,
    ``(second - c2) / c2_err``, so its error propagates into ``slope_err`` and a wrong c2
    raises ``chi2_per_dof`` (dof counts it as a datum). Then also ``prior_pull`` (that
    residual at the optimum) and ``slope_per_prior`` (d slope / d c2, for correlations of c2
    with other quantities)."""
    from scipy.optimize import least_squares

    v.choice("numerator", numerator, (2, 3, 4))
    lam = np.asarray(couplings, dtype=np.float64)
    err = np.asarray(stderrs, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64) - float(intercept)
    v.require(lam.ndim == 1 and len(lam) >= numerator + 2 and lam.shape == y.shape == err.shape,
              "couplings", list(lam), f"needs >= {numerator + 2} couplings, one value and "
              "stderr each")
    v.require(bool(np.all(err > 0)), "stderrs", list(err), "must be positive")
    if second_prior is not None:
        c2, c2_err = (float(x) for x in second_prior)
        v.require(c2_err > 0, "second_prior", second_prior, "(value, stderr > 0)")
    powers = np.stack([lam**k for k in range(1, numerator + 1)], axis=1)

    def model(q):
        return pade_shift(q, lam)

    def resid(q):
        r = (model(q) - y) / err
        if second_prior is None:
            return r
        return np.append(r, (q[1] - q[0] * q[-1] - c2) / c2_err)

    def jac(q):
        den = (1.0 + q[-1] * lam)[:, None]
        j = np.concatenate([powers / den, -(lam * model(q))[:, None] / den], axis=1) / err[:, None]
        if second_prior is None:
            return j
        return np.concatenate([j, _second_grad(q)[None, :] / c2_err], axis=0)

    # start from the linearised problem y (1 + a lam) = s lam + ... + c_m lam^m
    lin = np.concatenate([powers, -(lam * y)[:, None]], axis=1) / err[:, None]
    starts = [np.linalg.lstsq(lin, y / err, rcond=None)[0]]
    if numerator > 2:  # the [m/1] fit can fall into a local minimum: also start at [m-1/1]
        lower = fit_coupling_pade(lam, y, err, 0.0, numerator=numerator - 1)["params"]
        starts.append(np.array([*lower[:-1], 0.0, lower[-1]]))
    if second_prior is not None:  # and at the unconstrained optimum
        starts.append(np.asarray(fit_coupling_pade(lam, y, err, 0.0,
                                                   numerator=numerator)["params"]))
    fits = [least_squares(resid, x0, jac=jac, method="lm", xtol=1e-14, ftol=1e-14)
            for x0 in starts]
    q = min(fits, key=lambda f: f.cost).x
    cov = np.linalg.pinv(jac(q).T @ jac(q))
    grad = _second_grad(q)
    dof = len(resid(q)) - len(q)
    out = {"slope": float(q[0]), "slope_err": float(np.sqrt(cov[0, 0])),
           "second": float(q[1] - q[0] * q[-1]), "second_err": float(np.sqrt(grad @ cov @ grad)),
           "params": [float(x) for x in q],
           "chi2_per_dof": float(np.sum(resid(q) ** 2) / dof) if dof > 0 else math.nan}
    if second_prior is not None:  # Gauss-Newton: d q / d c2 = cov grad / c2_err^2
        out.update(second_prior=[c2, c2_err], prior_pull=float(resid(q)[-1]),
                   slope_per_prior=float((cov @ grad)[0] / c2_err**2))
    return out


def crosscheck_table(name: str, nuts: Estimate, checks: FreeDrawChecks | None,
                     pt_inf: dict | None, coupling: float, theory_free=None,
                     entries=None) -> dict:
    """Per distinct entry: NUTS, reweighted (with combined z), first-order PT at finite
    and infinite N. Returns plain data (lists) for summary.json and the console."""
    order = nuts.value.ndim
    if entries is None:
        entries = list(itertools.combinations_with_replacement(range(nuts.value.shape[0]),
                                                                order))
    rows = []
    for e in entries:
        row = {"entry": list(e), "nuts": float(nuts.value[e]), "nuts_err": float(nuts.stderr[e])}
        if checks is not None and checks.reweighted:
            rw = checks.reweighted[0][name]
            row["reweighted"], row["reweighted_err"] = float(rw.value[e]), float(rw.stderr[e])
            comb = math.hypot(row["nuts_err"], row["reweighted_err"])
            row["z"] = (row["nuts"] - row["reweighted"]) / comb if comb > 0 else math.nan
        if checks is not None and checks.slope:
            base = (theory_free[e] if theory_free is not None
                    else float(checks.free[name].value[e]))
            base_err = 0.0 if theory_free is not None else float(checks.free[name].stderr[e])
            sl = checks.slope[name]
            row["pt_finite_N"] = float(base + coupling * sl.value[e])
            row["pt_finite_N_err"] = float(math.hypot(base_err, coupling * sl.stderr[e]))
            row["slope_finite_N"], row["slope_finite_N_err"] = (float(sl.value[e]),
                                                                float(sl.stderr[e]))
        if pt_inf is not None:
            g0, slope = pt_inf[name]
            row["pt_infinite_N"] = float(g0[e] + coupling * slope[e])
            row["slope_infinite_N"] = float(slope[e])
        rows.append(row)
    return {"rows": rows}
