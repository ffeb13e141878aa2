"""Write tests/data/nt_reference.json: neural-tangents' NNGP and NTK for the MLP cases that
tests/test_nt_reference.py checks nnft against in the default suite.

    scripts/nt_venv.sh                      # once: the venv with neural-tangents 0.6.5
    python scripts/nt_reference.py [--nt-python PATH]

neural-tangents does not import on current jax, so its numbers are committed instead of
computed in CI: this script (run with nnft's python) sends the cases to
``tests/nt_kernels.py`` running in the neural-tangents venv and writes what comes back,
with the versions, the inputs and the cases, atomically.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

from nnft.engine.files import atomic_write_bytes

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "data" / "nt_reference.json"
X1 = [[0.3, -0.2], [1.0, 0.5], [-0.7, 0.9], [0.0, 0.0], [1.2, -1.1]]
X2 = [[0.1, 0.1], [-1.2, 0.4], [2.0, -1.0]]
W_STD, B_STD, WIDTH = 1.3, 0.2, 64


def cases() -> list[dict]:
    """erf / relu / identity with and without bias, tanh with bias (neural-tangents'
    numerical tanh kernel is NaN at zero variance), depths 1-3, both parameterisations."""
    out = [{"activation": a, "depth": depth, "parameterization": p, "b_std": b}
           for a, depth, p, b in itertools.product(("erf", "relu", "identity"), (1, 2, 3),
                                                   ("ntk", "standard"), (B_STD, None))]
    out += [{"activation": "tanh", "depth": depth, "parameterization": p, "b_std": B_STD}
            for depth, p in itertools.product((1, 2, 3), ("ntk", "standard"))]
    return [dict(kind="kernel", width=WIDTH, W_std=W_STD, **c) for c in out]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nt-python", type=Path,
                    default=Path(os.environ.get("NNFT_NT_PYTHON", REPO / ".venv-nt/bin/python")))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if not args.nt_python.exists():
        sys.exit(f"--nt-python: {args.nt_python} does not exist; build it with "
                 "scripts/nt_venv.sh (or set NNFT_NT_PYTHON)")
    request = {"x1": X1, "x2": X2, "x64": True, "cases": cases()}
    proc = subprocess.run([str(args.nt_python), str(REPO / "tests" / "nt_kernels.py")],
                          input=json.dumps(request), capture_output=True, text=True,
                          check=False, cwd=REPO)
    if proc.returncode != 0:
        sys.exit(proc.stderr[-3000:])
    response = json.loads(proc.stdout)
    payload = {"generated_by": "scripts/nt_reference.py", "versions": response["versions"],
               "x1": X1, "x2": X2,
               "cases": [dict(case, **res) for case, res in zip(request["cases"],
                                                                response["results"])]}
    atomic_write_bytes(args.out, (json.dumps(payload, indent=1) + "\n").encode())
    print(f"wrote {len(payload['cases'])} cases to {args.out}")


if __name__ == "__main__":
    main()
