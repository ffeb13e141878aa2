"""nnft's infinite-width kernels against neural-tangents, in the default suite.

neural-tangents 0.6.5 does not import on current jax, so its NNGP and NTK values are
committed in ``tests/data/nt_reference.json`` (written by ``scripts/nt_reference.py`` from
the neural-tangents venv of ``scripts/nt_venv.sh``). This is the only independent check of
the standard-parameterisation NTK at depth >= 2 and of tanh; the live comparison stays in
``tests/test_neural_tangents.py`` (skipped without the venv). Deterministic: relative
agreement to 1e-5 (tanh: neural-tangents integrates numerically, 200 Gauss-Hermite nodes).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from nnft.priors.mlp import MLP

REFERENCE = json.loads((Path(__file__).parent / "data" / "nt_reference.json").read_text())
X1, X2 = np.array(REFERENCE["x1"]), np.array(REFERENCE["x2"])
CASES = REFERENCE["cases"]


def _id(c):
    bias = "nobias" if c["b_std"] is None else f"b{c['b_std']}"
    return f"{c['activation']}-L{c['depth']}-{c['parameterization']}-{bias}"


def test_reference_covers_the_issue():
    """Both parameterisations, erf / relu / tanh, depths 1-3, from neural-tangents 0.6.5."""
    assert REFERENCE["versions"]["neural_tangents"] == "0.6.5"
    got = {(c["activation"], c["depth"], c["parameterization"]) for c in CASES}
    for a in ("erf", "relu", "tanh"):
        for depth in (1, 2, 3):
            for p in ("ntk", "standard"):
                assert (a, depth, p) in got


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_kernels_match_committed_neural_tangents(case):
    prior = MLP(d=X1.shape[1], width=case["width"], depth=case["depth"],
                activation=case["activation"], W_std=case["W_std"],
                b_std=case["b_std"] or 0.0, bias=case["b_std"] is not None,
                parameterization=case["parameterization"])
    nngp, ntk = np.array(case["nngp"]), np.array(case["ntk"])
    assert np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk)) and np.max(np.abs(ntk)) > 0
    np.testing.assert_allclose(prior.nngp(X1, X2), nngp, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(prior.ntk(X1, X2), ntk, rtol=1e-5, atol=1e-8)
