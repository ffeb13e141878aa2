import numpy as np
import pytest

from nnft.ensemble import run


@pytest.fixture(scope="session")
def measure():
    """Run an ensemble quietly and memoise it across the session (keyed by arguments)."""
    cache = {}

    def _measure(prior, points, n_samples, seed=0, max_order=4, **kw):
        key = (prior, np.asarray(points).tobytes(), n_samples, seed, max_order,
               tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = run(prior, points, n_samples, seed, max_order=max_order,
                             progress=False, **kw).correlators
        return cache[key]

    return _measure


def zscores(est, theory):
    """z = (estimate - theory) / stderr over every tensor entry."""
    return (est.value - theory) / est.stderr


#: z-quantile of the power rule: a test detects an error with probability >= 0.9
POWER = 0.9


def detectable(rel_stderr, threshold: float = 4.0, power: float = POWER) -> float:
    """The smallest relative error in a quantity estimated with relative standard error
    ``rel_stderr`` that a ``|z| < threshold`` check detects with probability ``power``:
    the shifted estimate must land beyond the threshold, ``(threshold + z_power) * se``
    (one-sided; a check over several entries has at least this power for each)."""
    from statistics import NormalDist

    return (threshold + NormalDist().inv_cdf(power)) * float(np.max(rel_stderr))
