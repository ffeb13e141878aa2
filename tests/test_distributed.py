"""Two real processes on 127.0.0.1 (``jax.distributed``, gloo CPU collectives) run the same
card through ``nnft run --distributed`` (process 1 is given another output folder, which
must stay unwritten): a free ensemble, a short NUTS run and a short
training. Each equals the one-process run, and only process 0 writes files or prints."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

CARDS = {
    "free": """
[architecture]
name = "cos-net"
d = 1
width = 4
[sampling]
n_samples = 8192
seed = 3
chunk_size = 2048
[correlators]
points = [0.0, 0.5]
orders = [2, 4]
""",
    "nuts": """
[architecture]
name = "cos-net"
d = 1
width = 2
[sampling]
n_samples = 4096
seed = 1
[correlators]
points = [0.0, 0.5]
orders = [2, 4]
[interaction]
potential = "phi4"
coupling = 0.1
box = 2.0
nodes = 16
[mcmc]
chains = 2
warmup = 40
samples = 40
checkpoint_every = 20
reweighting = false
perturbation = false
""",
    "training": """
[architecture]
name = "mlp"
d = 1
width = 16
depth = 1
activation = "erf"
parameterization = "ntk"
[sampling]
n_samples = 64
seed = 0
n_batches = 8
[correlators]
points = [-0.5, 0.5]
orders = [2]
[training]
data = "sine"
n_train = 4
optimizer = "sgd"
learning_rate = 0.5
steps = 20
n_measure = 3
""",
}


#: devices of the one-process reference run
REFERENCE_DEVICES = {"free": 1, "nuts": 2, "training": 2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int = 1):
    env = {k: val for k, val in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _nnft(*args):
    return [sys.executable, "-m", "nnft.app.cli", "run", *map(str, args), "-q"]


def _numbers(folder):
    with open(folder / "summary.json") as fh:
        summary = json.load(fh)
    return {k: val for k, val in summary.items() if k not in ("seconds",)}


def _assert_close(a, b, path=""):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and a and isinstance(a[0], (list, float, int)):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-9,
                                   atol=1e-12, err_msg=path)
    elif isinstance(a, float):
        if "seconds" not in path and "rate" not in path:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=path)


# free draws in the default suite; NUTS and training (each ~40-70 s on 2 cores: two
# processes compile the sampler or the trainer) with -m slow
@pytest.mark.parametrize("kind", [k if k == "free" else pytest.param(k, marks=pytest.mark.slow)
                                  for k in sorted(CARDS)])
def test_two_processes_equal_one(tmp_path, kind):
    card = tmp_path / f"{kind}.toml"
    card.write_text(CARDS[kind])
    one = tmp_path / "one"
    # the reference: one process holding as many devices as the two processes together
    # (float32 work split over two devices differs from one device by round-off, which
    # NUTS amplifies from the first divergent tree on)
    subprocess.run(_nnft(card, "--out", one), check=True, env=_env(REFERENCE_DEVICES[kind]),
                   timeout=300)
    two, other = tmp_path / "two", tmp_path / "two-process-1"
    port = _free_port()
    procs = [subprocess.Popen(
        _nnft(card, "--out", (two, other)[i], "--distributed", "--coordinator",
              f"127.0.0.1:{port}", "--num-processes", 2, "--process-id", i),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    printed = [ln for ln in outs[1][0].splitlines() if ln.strip()
               and not ln.startswith("[Gloo]")]  # gloo's own connection message
    assert not printed, "process 1 printed: " + "\n".join(printed[:5])
    assert not other.exists(), "process 1 wrote files"
    _assert_close(_numbers(one), _numbers(two))
    written = sorted(p.name for p in two.iterdir() if not p.name.startswith("."))
    assert written == sorted(p.name for p in one.iterdir() if not p.name.startswith("."))
