from pathlib import Path

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


# -- the meta-test's error injection (tests/test_power_meta.py) --------------------------
#: NNFT_TEST_INJECT=<name> makes one quantity ~5% wrong and leaves the rest exact, so that
#: the meta-test can check that some default test fails. Never set in a normal run.
INJECTIONS = ("g4c-cos", "g2-mlp-deep", "g2-scalar", "frozen-ntk-mean")


def _g4c_eps(g2: float, g4c: float, target: float = 0.05) -> float:
    """eps with ``G4 ((1 + 6 e^2 + e^4) / (1 + e^2)^2 - 1) = target * G4c``."""
    from scipy.optimize import brentq

    g4 = 3 * g2 * g2 + g4c
    return brentq(lambda e: g4 * ((1 + 6 * e**2 + e**4) / (1 + e**2) ** 2 - 1) - target * g4c,
                  1e-6, 1.0)


def _inject(name: str) -> None:
    import jax.numpy as jnp

    from nnft.priors.cos import CosNet
    from nnft.priors.mlp import MLP
    from nnft.priors.spectral import ScalarNet

    if name == "g4c-cos":
        # each network's field times (1 + eps xi) / sqrt(1 + eps^2), xi = +-1 a fixed
        # pseudo-random sign per network: G2 exact, G4c 5% too large at N = 10, x = 0
        apply = CosNet.apply
        eps = _g4c_eps(0.8**2 / 2, 3 * 0.8**4 / 80)

        def perturbed(self, params, x):
            out = apply(self, params, x)
            if self.width < 10:
                return out
            xi = jnp.sign(jnp.sin(1e4 * params["b0"][0]))
            return out * (1 + eps * xi) / jnp.sqrt(1 + eps * eps)

        CosNet.apply = perturbed
    elif name == "g2-mlp-deep":
        # the last hidden layer of MLPs of depth >= 2 scaled: G2 about 5% too large there
        feats = MLP.features

        def perturbed(self, params, x):
            h = feats(self, params, x)
            return h * jnp.sqrt(1.06) if self.depth >= 2 else h

        MLP.features = perturbed
    elif name == "g2-scalar":
        apply = ScalarNet.apply
        ScalarNet.apply = lambda self, params, x: apply(self, params, x) * jnp.sqrt(1.05)
    elif name == "frozen-ntk-mean":
        # the frozen-NTK prediction's mean 5% too large at the first measurement after 0
        import nnft.theory.frozen_ntk as fz

        predict = fz.mlp_prediction

        def perturbed(*args, **kw):
            out = predict(*args, **kw)
            mean = np.array(out.mean, copy=True)
            if len(mean) > 1:
                mean[1] = mean[1] * 1.05
            return out._replace(mean=mean)

        fz.mlp_prediction = perturbed
        import nnft.training.dataset as ds

        ds.mlp_prediction = perturbed
    else:
        raise ValueError(f"NNFT_TEST_INJECT: got {name!r}; allowed values: "
                         + ", ".join(INJECTIONS))


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject.toml): one worker per core, at most 4. Most of a test's time
    is XLA compilation, which runs on one core; each worker also holds its own JAX
    runtime (~0.5-2 GiB), so more than 4 buys little and costs memory."""
    import os

    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


def pytest_configure(config):
    import os

    name = os.environ.get("NNFT_TEST_INJECT")
    if name:
        _inject(name)


# -- study modules --------------------------------------------------------------------
#: every study is a folder of flat modules (run.py, analysis.py, figures.py, ...): the same
#: names in several folders, so a session that tests two studies must not mix them
STUDIES = Path(__file__).resolve().parents[1] / "studies"


_STASH: dict = {}  # study folder -> {module name: module}, set aside by use_study


def use_study(name: str) -> Path:
    """Make ``studies/<name>`` the only study folder on ``sys.path``, set aside the modules
    imported from any other study folder and bring back this study's (so that pickling
    ``run._run_block`` for worker processes finds the same module object, and the workers,
    which re-import ``run`` by name, find this study's). Call at a study test module's top
    and before each of its tests (``study_fixture``)."""
    import sys

    folder = STUDIES / name
    for key, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None) or ""
        if path.startswith(str(STUDIES)) and not path.startswith(str(folder) + "/"):
            owner = str(Path(path).parent)
            _STASH.setdefault(owner, {})[key] = sys.modules.pop(key)
    for key, mod in _STASH.pop(str(folder), {}).items():
        sys.modules.setdefault(key, mod)
    sys.path[:] = [p for p in sys.path if not p.startswith(str(STUDIES))]
    sys.path.insert(0, str(folder))
    return folder


def study_fixture(name: str):
    """An autouse fixture for a study's test module: :func:`use_study` before each test."""

    @pytest.fixture(autouse=True)
    def _study():
        use_study(name)

    return _study
