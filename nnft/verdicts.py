"""Goodness of fit of a measured correlator against a reference, with correlated entries.

The entries of one correlator are measured on the same networks, so they are strongly
correlated: counting ``|z| < 1`` entry by entry treats a common 2-sigma shift of every
entry as many independent ones. The test here is Hotelling's T^2,

    T^2 = d^T C^{-1} d,      d = estimate - reference over K distinct entries,

with ``C`` the jackknife covariance of the estimate over ``B`` batches (or the sample
covariance of the mean over ``B`` i.i.d. samples). For Gaussian batch means
``T^2 (B - K) / ((B - 1) K)`` follows ``F(K, B - K)`` (Hotelling 1931; :func:`hotelling`),
but batch means of fourth and sixth moments of heavy-tailed fields are far from
Gaussian (Gauss-net's G4c from 25,600 networks: 40% of null p-values below 0.01 by F),
so the p-value comes from the bootstrap-t distribution of T^2 over the jackknife
pseudo-values (:func:`bootstrap_hotelling`; same case: KS p = 0.28), which does not
assume the entries independent nor the batch means Gaussian.

A covariance from ``B`` batches is invertible only for ``K < B`` entries and the test
loses power as ``K`` approaches ``B``, so at most ``(B - 1) // 9`` distinct entries are
used, picked evenly over the sorted index tuples independently of the data (a data-driven
choice would bias the null distribution). Entries with zero error (a field fixed at a
point) are left out; directions with (almost) no variance left (linear relations between
entries, below ``RANK_TOL``) are dropped, and K counts what remains.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from nnft.estimators import Correlators, moment_estimator

#: p-values below this are reported as a disagreement.
ALPHA = 0.01
#: correlation-matrix eigen-directions below this fraction of the largest are dropped:
#: their variance is below what float32 fields and float64 theory resolve
RANK_TOL = 1e-6
#: bootstrap resamples of a p-value (its resolution is 1 / (N_BOOT + 1))
N_BOOT = 1999
#: fewest jackknife batches (or chain blocks) for a verdict: one entry needs B >= 10
MIN_BATCHES = 10
log = logging.getLogger("nnft")
#: kind and order of each correlator name
KINDS = {"G1": ("full", 1), "G2": ("full", 2), "G3": ("full", 3), "G4": ("full", 4),
         "G5": ("full", 5), "G6": ("full", 6), "G3c": ("connected", 3),
         "G4c": ("connected", 4), "G5c": ("connected", 5), "G6c": ("connected", 6)}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The test of one correlator against ``reference`` ("theory", "zero", ...):
    ``p_value`` of Hotelling's T^2 over ``used`` of its ``entries`` distinct entries with
    a covariance of ``dof`` degrees of freedom. ``applies`` is False where the reference
    is known not to hold at this resolution (``note`` says why); the p-value is then
    still the test's, but it measures the reference's known error, not a failure."""

    name: str
    reference: str
    p_value: float
    t2: float
    used: int
    entries: int
    dof: int
    applies: bool = True
    note: str = ""

    @property
    def consistent(self) -> bool:
        return bool(self.p_value >= ALPHA)

    @property
    def outcome(self) -> str:
        if not self.applies:
            return "not applicable"
        return "consistent" if self.consistent else "inconsistent"

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.update({"outcome": self.outcome, "alpha": ALPHA, "test": "hotelling_t2_bootstrap",
                    "p_resolution": 1 / (N_BOOT + 1)})
        return out


def hotelling(diff, cov, dof: int) -> tuple[float, float, int]:
    """``(T^2, p, K)`` of deviations ``diff`` (K,) with covariance ``cov`` (K, K) estimated
    with ``dof`` degrees of freedom (B - 1 for B batches), p from F(K, dof - K + 1) (exact
    for Gaussian batch means); K is the rank kept."""
    diff = np.asarray(diff, np.float64)
    cov = np.asarray(cov, np.float64)
    scale = np.sqrt(np.diag(cov))
    corr = cov / np.outer(scale, scale)
    lam, vec = np.linalg.eigh(corr)
    keep = lam > RANK_TOL * lam.max()
    k = int(keep.sum())
    if k == 0 or dof - k + 1 <= 0:
        raise ValueError(f"entries: {k} entries need more than {dof} covariance dof")
    proj = vec[:, keep].T @ (diff / scale)
    t2 = float(np.sum(proj * proj / lam[keep]))
    f = t2 * (dof - k + 1) / (dof * k)
    return t2, float(stats.f.sf(f, k, dof - k + 1)), k


def bootstrap_hotelling(pseudo, reference, n_boot: int = N_BOOT, seed: int = 0):
    """``(T^2, p, K)`` of the mean of rows ``pseudo`` (B, K) (i.i.d. samples or jackknife
    pseudo-values) against ``reference``: T^2 with the rows' sample covariance, its p-value
    from the bootstrap-t distribution (rows resampled, T^2 of the resampled mean about
    the observed one, each with its own covariance; a fixed ``seed``). Unlike F, this
    holds when the rows are far from Gaussian (heavy-tailed fields: Gauss-net's G4c).
    The p-value's resolution is 1 / (n_boot + 1)."""
    x = np.asarray(pseudo, np.float64)
    b = x.shape[0]
    mean = x.mean(axis=0)
    scale = x.std(axis=0, ddof=1)
    z = (x - mean) / scale
    lam, vec = np.linalg.eigh(z.T @ z / (b - 1))
    keep = lam > RANK_TOL * lam.max()
    k = int(keep.sum())
    if k == 0 or b - k < 2:
        raise ValueError(f"entries: {k} entries need more than {b} rows")
    w = z @ vec[:, keep]  # rows in the kept directions (sample covariance diagonal)
    d = ((mean - np.asarray(reference, np.float64)) / scale) @ vec[:, keep]
    t2 = float(b * np.sum(d * d / lam[keep]))
    rows = w[np.random.default_rng(seed).integers(b, size=(n_boot, b))]
    m = rows.mean(axis=1)
    dev = rows - m[:, None]
    cov = np.matmul(dev.transpose(0, 2, 1), dev) / (b - 1)
    tb = b * np.einsum("ri,ri->r", m, np.linalg.solve(cov, m[..., None])[..., 0])
    return t2, float((1 + np.sum(tb >= t2)) / (n_boot + 1)), k


def select(n: int, n_batches: int) -> np.ndarray:
    """Indices of at most ``(n_batches - 1) // 9`` of ``n`` entries, evenly spread."""
    k = max(1, min(n, (n_batches - 1) // 9))
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))


def distinct(p: int, order: int) -> list[tuple]:
    return list(itertools.combinations_with_replacement(range(p), order))


def correlator_verdict(corr: Correlators, name: str, reference=None,
                       label: str | None = None) -> Verdict:
    """``name`` (e.g. "G4c") of ``corr`` (finalized with ``keep_replicates=True``) against
    ``reference`` (a tensor; None: zero)."""
    kind, order = KINDS[name]
    est = getattr(corr, kind)[order]
    p = est.value.shape[0]
    tuples = distinct(p, order)
    flat = np.ravel_multi_index(tuple(np.array(tuples).T), est.value.shape)
    ref = np.zeros(est.value.size) if reference is None else \
        np.asarray(reference, np.float64).ravel()
    err = est.stderr.ravel()[flat]
    ok = np.isfinite(err) & (err > 0)
    flat, n_all = flat[ok], len(tuples)
    flat = flat[select(len(flat), corr.n_batches)] if len(flat) else flat
    if not len(flat):
        raise ValueError(f"{name}: no entry with a non-zero error")
    if corr.replicates is None:
        raise ValueError("replicates: finalize with keep_replicates=True for a verdict")
    b = corr.n_batches
    reps = corr.replicates[kind][order].reshape(b, -1)[:, flat]
    pseudo = b * est.value.ravel()[flat] - (b - 1) * reps  # jackknife pseudo-values
    # the pseudo-values' mean is the bias-corrected estimate; test the estimate itself
    pseudo = pseudo - pseudo.mean(axis=0) + est.value.ravel()[flat]
    t2, pval, k = bootstrap_hotelling(pseudo, ref[flat])
    label = label or ("zero" if reference is None else "theory")
    return Verdict(name, label, pval, t2, k, n_all, b - 1)


def verdicts(corr: Correlators, theory: dict, names=None, label: str = "theory",
             zero_label: str = "zero") -> dict[str, Verdict]:
    """A :class:`Verdict` for each measured name of ``names`` (default: the connected
    ones and G2), against ``theory[name]``, or against zero where it is None."""
    if names is None:
        names = ["G2", *[f"G{o}c" for o in sorted(corr.connected) if o >= 3]]
    out = {}
    if corr.n_batches < MIN_BATCHES:
        log.info("no goodness-of-fit verdict: %d batches (blocks), at least %d needed",
                    corr.n_batches, MIN_BATCHES)
        return out
    for name in names:
        kind, order = KINDS[name]
        if order not in getattr(corr, kind):
            continue
        ref = theory.get(name)
        if not np.any(getattr(corr, kind)[order].stderr > 0):
            continue  # exactly zero by construction (odd orders of a kernel estimator)
        out[name] = correlator_verdict(corr, name, ref, label if ref is not None
                                       else zero_label)
    return out


def sample_verdict(name: str, samples, reference, label: str) -> Verdict:
    """The mean of i.i.d. ``samples`` (S, K) against ``reference`` (K,): Hotelling's
    one-sample T^2 with the sample covariance (S - 1 dof)."""
    x = np.asarray(samples, np.float64)
    s, n = x.shape
    keep = np.flatnonzero(np.std(x, axis=0) > 0)
    keep = keep[select(len(keep), s)]
    t2, pval, k = bootstrap_hotelling(x[:, keep], np.asarray(reference, np.float64)[keep])
    return Verdict(name, label, pval, t2, k, n, s - 1)


def frozen_ntk_applies(theory_mean, g1_stderr, width: int) -> bool:
    """Whether the frozen-NTK mean can be tested at this resolution: it is the N -> oo
    limit, off by O(max|mu_t| / N) at width N, so it applies while that is below the
    largest standard error of G1 (the data do not resolve the width correction)."""
    return bool(np.max(np.abs(theory_mean)) / width < np.nanmax(g1_stderr))


def jackknife_correlators(fields, n_batches: int, max_order: int) -> Correlators:
    """Correlators with jackknife replicates of i.i.d. fields ``(S, P)`` (sample s in
    batch s mod n_batches; S a multiple of n_batches is not needed)."""
    s, p = fields.shape
    rows = math.ceil(s / n_batches)
    pad = rows * n_batches - s
    f = np.concatenate([fields, np.zeros((pad, p))]).reshape(rows, n_batches, p)
    m = np.concatenate([np.ones(s, bool), np.zeros(pad, bool)]).reshape(rows, n_batches)
    est = moment_estimator(p, max_order, n_batches)
    with jax.enable_x64(True):
        state = est.update(est.init(), jnp.asarray(f, jnp.float64), jnp.asarray(m))
        return est.finalize(state, keep_replicates=True)


def training_verdicts(ds, width: int, n_batches: int) -> list[dict[str, Verdict]]:
    """Per measurement time of a training Dataset: G1 (and the diagonal of G2) against the
    frozen-NTK theory where it exists (flagged not applicable where the data resolve its
    O(1/N) error), and G4c against zero."""
    f, valid = ds["f"].values, ds["valid"].values
    has_theory = "theory_mean" in ds
    out = []
    for t in range(f.shape[0]):
        x = f[t][valid[t]]
        row: dict[str, Verdict] = {}
        if len(x) >= max(n_batches, 8):
            if has_theory:
                mu, sd = ds["theory_mean"].values[t], ds["theory_std"].values[t]
                applies = frozen_ntk_applies(mu, ds["G1_stderr"].values[t], width)
                note = "" if applies else (f"finite width N = {width}: the O(1/N) correction"
                                           " to the N -> oo theory exceeds the errors")
                for name, samples, ref in (("G1", x, mu), ("G2 diagonal", x * x, mu**2 + sd**2)):
                    v = sample_verdict(name, samples, ref, "frozen-NTK theory")
                    row[name] = dataclasses.replace(v, applies=applies, note=note)
            if "G4c" in ds:
                corr = jackknife_correlators(x, n_batches, 4)
                row["G4c"] = correlator_verdict(corr, "G4c", None)
        out.append(row)
    return out
