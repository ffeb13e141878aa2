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
