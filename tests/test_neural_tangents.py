"""Optional cross-check against neural-tangents (``stax`` kernel_fn and ``empirical_ntk_fn``).

neural-tangents 0.6.5 does not import with current jax, so it lives in its own venv
(``scripts/nt_venv.sh``); ``tests/nt_kernels.py`` runs there in a subprocess and returns its
kernels as JSON. The venv's python is ``$NNFT_NT_PYTHON``, else ``<repo>/.venv-nt/bin/python``;
without it these tests are skipped.
"""

import itertools
import json
import os
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnft.ntk import empirical_ntk
from nnft.priors.base import fields
from nnft.priors.mlp import MLP

REPO = Path(__file__).resolve().parent.parent
NT_PYTHON = Path(os.environ.get("NNFT_NT_PYTHON", REPO / ".venv-nt" / "bin" / "python"))
X1 = np.array([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.9], [0.0, 0.0], [1.2, -1.1]])
X2 = np.array([[0.1, 0.1], [-1.2, 0.4], [2.0, -1.0]])
W_STD, B_STD, WIDTH = 1.3, 0.2, 64

KERNEL_CASES = [
    {"activation": a, "depth": L, "parameterization": p, "b_std": b}
    for a, L, p, b in itertools.product(("erf", "relu", "identity"), (1, 2, 3),
                                        ("ntk", "standard"), (B_STD, None))
] + [  # tanh: neural-tangents integrates numerically (and gives NaN at zero variance: bias on)
    {"activation": "tanh", "depth": L, "parameterization": p, "b_std": B_STD}
    for L, p in itertools.product((1, 2, 3), ("ntk", "standard"))
]
EMPIRICAL_CASES = [{"activation": a, "depth": 2, "parameterization": p, "b_std": B_STD}
                   for a, p in itertools.product(("erf", "relu"), ("ntk", "standard"))]


def nt_run(request: dict) -> dict:
    if not NT_PYTHON.exists():
        pytest.skip(f"neural-tangents venv not found at {NT_PYTHON}; create it with "
                    f"scripts/nt_venv.sh (or set NNFT_NT_PYTHON)")
    proc = subprocess.run([str(NT_PYTHON), str(REPO / "tests" / "nt_kernels.py")],
                          input=json.dumps(request), capture_output=True, text=True, check=False,
                          timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def mlp(case, dtype="float32"):
    return MLP(d=2, width=WIDTH, depth=case["depth"], activation=case["activation"],
               W_std=W_STD, b_std=case["b_std"] or 0.0, bias=case["b_std"] is not None,
               parameterization=case["parameterization"], dtype=dtype)


@pytest.fixture(scope="module")
def nt_kernels():
    cases = [dict(kind="kernel", width=WIDTH, W_std=W_STD, **c) for c in KERNEL_CASES]
    return nt_run({"x1": X1.tolist(), "x2": X2.tolist(), "x64": True, "cases": cases})["results"]


@pytest.mark.parametrize("i", range(len(KERNEL_CASES)),
                         ids=["-".join(str(v) for v in c.values()) for c in KERNEL_CASES])
def test_kernels_match_neural_tangents(nt_kernels, i):
    prior = mlp(KERNEL_CASES[i])
    ref = nt_kernels[i]
    np.testing.assert_allclose(prior.nngp(X1, X2), ref["nngp"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(prior.ntk(X1, X2), ref["ntk"], rtol=1e-5, atol=1e-8)


def test_empirical_ntk_matches_neural_tangents(tmp_path):
    """Same parameters, two codes: J J^T and ``nnft.empirical_ntk`` here,
    ``nt.empirical_ntk_fn`` there, in float64."""
    if not NT_PYTHON.exists():
        pytest.skip(f"neural-tangents venv not found at {NT_PYTHON}; the committed reference "
                    "is checked by tests/test_nt_reference.py")
    cases, ours, fast = [], [], []
    with jax.enable_x64(True):
        for k, c in enumerate(EMPIRICAL_CASES):
            prior = mlp(c, dtype="float64")
            params = prior.sample(jax.random.key(k))
            arrays = {}
            for i, layer in enumerate(params):  # nt layout: W (fan_in, fan_out), b (fan_out,)
                w = np.asarray(layer["W"])
                arrays[f"W{i}"] = w.T if w.ndim == 2 else w[:, None]
                arrays[f"b{i}"] = np.asarray(layer["b"]).reshape(-1)
            np.savez(tmp_path / f"p{k}.npz", **arrays)
            cases.append(dict(kind="empirical_ntk", width=WIDTH, W_std=W_STD, repeat=1,
                              params=str(tmp_path / f"p{k}.npz"), **c))

            def f(p, x, prior=prior):
                return fields(prior, p, x)

            j1 = jax.jacobian(f)(params, jnp.asarray(X1))
            j2 = jax.jacobian(f)(params, jnp.asarray(X2))
            flat = [np.concatenate([np.asarray(a).reshape(len(x), -1) for a in jax.tree.leaves(j)],
                                   axis=1) for j, x in ((j1, X1), (j2, X2))]
            ours.append(flat[0] @ flat[1].T)
            fast.append([np.asarray(empirical_ntk(prior.apply, params, X1, X2, method=m))
                         for m in ("jacobian", "ntvp")])
    results = nt_run({"x1": X1.tolist(), "x2": X2.tolist(), "x64": True, "cases": cases})["results"]
    for mine, both, ref in zip(ours, fast, results):
        np.testing.assert_allclose(mine, ref["ntk"], rtol=1e-10, atol=1e-12)
        for lib in both:  # nnft.empirical_ntk, both contraction methods
            np.testing.assert_allclose(lib, ref["ntk"], rtol=1e-10, atol=1e-12)
