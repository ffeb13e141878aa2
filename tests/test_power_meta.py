"""The suite can see a 5% error (issue 17): inject one (``NNFT_TEST_INJECT``, see
``conftest._inject``) that leaves everything else exact, run the default tests that cover
it in a subprocess, and require that at least one fails. Unperturbed, the same tests pass
(they are part of the default suite). Slow: each case reruns its tests.

- ``g4c-cos``: each Cos-net's field times ``(1 + eps xi) / sqrt(1 + eps^2)`` with a fixed
  random sign per network (N >= 10): G2 exact, G4c 5% too large at N = 10.
- ``g2-mlp-deep``: the last hidden layer of depth >= 2 MLPs scaled by ``sqrt(1.06)``: G2
  ~5% too large for deep MLPs only.
- ``g2-scalar``: Scalar-net fields times ``sqrt(1.05)``: G2 5% too large.
- ``frozen-ntk-mean``: the frozen-NTK prediction's mean 5% too large at one time (the
  statistical ensemble-vs-theory tests cannot see this at S = 128; the deterministic
  linearised-GD test does).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CASES = {
    "g4c-cos": ["tests/test_cos_gauss.py::test_direct_g4c_at_width_10_has_power"],
    "g2-mlp-deep": ["tests/test_mlp.py::test_g2_against_nngp"],
    "g2-scalar": ["tests/test_spectral.py::test_scalar_net_mc_g2_g4c"],
    "frozen-ntk-mean": ["tests/test_training.py"],
}


def _run(tests, inject):
    env = {**os.environ, "NNFT_TEST_INJECT": inject}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-m", "not slow", *tests], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1800)


@pytest.mark.slow
@pytest.mark.parametrize("inject", list(CASES))
def test_a_five_percent_error_fails_the_suite(inject):
    out = _run(CASES[inject], inject)
    assert out.returncode == 1, out.stdout[-3000:]  # 1: some test failed (not a crash)
    assert " failed" in out.stdout.splitlines()[-1], out.stdout[-2000:]
    print(inject, out.stdout.splitlines()[-1])
