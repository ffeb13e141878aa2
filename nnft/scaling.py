"""Width scaling: fit ``N^k G_c(N) = A + B / N`` and the log-log slope across widths.

For a network of N i.i.d. neurons ``G4c ~ 1/N`` and ``G6c ~ 1/N^2``; ``A`` is the
large-N coefficient (k = 1 for G4c, k = 2 for G6c) and the slope of
``log|G_c|`` against ``log N`` should be ``-k``. Fits are weighted least squares
with the Monte Carlo standard errors; runs at different widths are independent.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def weighted_linear_fit(x, y, err):
    """Fit ``y = A + B x`` with weights ``1/err^2``; returns dict with A, B, errors, chi2, dof."""
    x, y, err = (np.asarray(a, dtype=np.float64) for a in (x, y, err))
    w = 1.0 / err**2
    design = np.stack([np.ones_like(x), x], axis=1)
    fisher = design.T @ (design * w[:, None])
    cov = np.linalg.inv(fisher)
    coef = cov @ (design.T @ (w * y))
    resid = y - design @ coef
    dof = max(len(x) - 2, 0)
    return {"A": float(coef[0]), "A_err": float(np.sqrt(cov[0, 0])), "B": float(coef[1]),
            "B_err": float(np.sqrt(cov[1, 1])), "chi2": float(np.sum(w * resid**2)), "dof": dof}


def loglog_slope(widths, values, errors):
    """Slope of ``log|G|`` against ``log N``.

    ``log|G|`` of a noisy estimate is biased low by ``(err/G)^2 / 2`` (second-order
    delta method), which grows with N at a fixed number of networks and would
    steepen the slope; the fit uses the bias-corrected ``log|G| + (err/G)^2 / 2``
    with errors ``err/|G|``.
    """
    values = np.asarray(values, dtype=np.float64)
    rel = np.asarray(errors, dtype=np.float64) / np.abs(values)
    fit = weighted_linear_fit(np.log(widths), np.log(np.abs(values)) + rel**2 / 2, rel)
    return {"slope": fit["B"], "slope_err": fit["B_err"], "chi2": fit["chi2"], "dof": fit["dof"]}


@dataclasses.dataclass
class WidthScan:
    """``N^power G_c`` at each width for chosen tensor entries, with fits."""

    widths: list[int]
    power: int
    entries: list[tuple]
    scaled: dict
    scaled_err: dict
    theory: dict
    fits: dict
    slopes: dict

    def to_dict(self) -> dict:
        key = lambda e: ",".join(map(str, e))
        return {
            "widths": self.widths, "power": self.power,
            "entries": {key(e): {"scaled": self.scaled[e].tolist(),
                                 "scaled_err": self.scaled_err[e].tolist(),
                                 "theory": None if self.theory[e] is None
                                 else self.theory[e].tolist(),
                                 "fit": self.fits[e], "loglog": self.slopes[e]}
                        for e in self.entries},
        }


def width_scan(widths, estimates, theories, entries, power: int) -> WidthScan:
    """Assemble a :class:`WidthScan` from per-width estimates (``Estimate``) and theory tensors."""
    widths = [int(n) for n in widths]
    n = np.asarray(widths, dtype=np.float64)
    scaled, scaled_err, theory, fits, slopes = {}, {}, {}, {}, {}
    for e in entries:
        vals = np.array([est.value[e] for est in estimates])
        errs = np.array([est.stderr[e] for est in estimates])
        scaled[e], scaled_err[e] = n**power * vals, n**power * errs
        th = [None if t is None else t[e] for t in theories]
        theory[e] = None if any(t is None for t in th) else n**power * np.array(th)
        fits[e] = weighted_linear_fit(1.0 / n, scaled[e], scaled_err[e])
        slopes[e] = loglog_slope(n, vals, errs)
    return WidthScan(widths, power, list(entries), scaled, scaled_err, theory, fits, slopes)
