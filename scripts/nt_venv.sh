#!/usr/bin/env bash
# Build the separate virtual environment that holds neural-tangents, for the optional
# cross-check (tests/test_neural_tangents.py) and for benchmarks. nnft itself never
# imports neural-tangents: 0.6.5, its newest release, needs jax.core.Jaxpr, which current
# jax has removed, so it lives in its own venv with the last jax it works with.
#
# Usage: scripts/nt_venv.sh [VENV_DIR]     (default: $NNFT_NT_VENV or <repo>/.venv-nt)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-${NNFT_NT_VENV:-$repo/.venv-nt}}"
python="${PYTHON:-python3}"

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# Pins that import and run together (checked with Python 3.11): jax/jaxlib 0.4.30 is the
# last release neural-tangents 0.6.5 works with; tf2jax 0.3.6 is what it requires.
"$venv/bin/python" -m pip install --quiet \
    "jax==0.4.30" "jaxlib==0.4.30" "tf2jax==0.3.6" "neural-tangents==0.6.5"
"$venv/bin/python" - <<'PY'
import jax, neural_tangents as nt
from neural_tangents import stax
_, _, kernel_fn = stax.serial(stax.Dense(8), stax.Erf(), stax.Dense(1))
print("neural-tangents", nt.__version__, "with jax", jax.__version__, "works:",
      float(kernel_fn(jax.numpy.ones((1, 2)), None, "nngp")[0, 0]))
PY
echo "neural-tangents venv ready: $venv/bin/python"
