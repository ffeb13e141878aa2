"""The ensemble engine: invariance under chunking, devices and restarts; honest errors."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nnft import ConfigError
from nnft._validate import RunInterrupted
from nnft.ensemble import run
from nnft.priors.cos import CosNet

PRIOR = CosNet(d=2, width=10, sigma_w0=1.3, sigma_w1=0.9)
POINTS = np.array([[0.0, 0.0], [0.5, 0.1], [1.0, -0.3]])


def _assert_same(a, b):
    for order in a.full:
        np.testing.assert_allclose(a.full[order].value, b.full[order].value, rtol=1e-12,
                                   atol=1e-15)
        np.testing.assert_allclose(a.connected[order].stderr, b.connected[order].stderr,
                                   rtol=1e-9, atol=1e-15)


def test_chunk_size_does_not_change_the_result():
    a = run(PRIOR, POINTS, 150_000, seed=3, chunk_size=1000, progress=False).correlators
    b = run(PRIOR, POINTS, 150_000, seed=3, chunk_size=65536, progress=False).correlators
    assert a.n_samples == b.n_samples == 150_000
    _assert_same(a, b)


_DEVICE_SCRIPT = textwrap.dedent("""
    import json, sys, numpy as np, jax
    from nnft.ensemble import run
    from nnft.priors.cos import CosNet
    prior = CosNet(d=2, width=10, sigma_w0=1.3, sigma_w1=0.9)
    points = np.array([[0.0, 0.0], [0.5, 0.1], [1.0, -0.3]])
    c = run(prior, points, 100_000, seed=3, chunk_size=4096, progress=False).correlators
    json.dump({"devices": len(jax.devices()), "g2": c.full[2].value.tolist(),
               "g4c": c.connected[4].value.tolist(), "g4c_err": c.connected[4].stderr.tolist()},
              sys.stdout)
""")


def _on_devices(n):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", _DEVICE_SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def test_one_and_four_devices_agree():
    one, four = _on_devices(1), _on_devices(4)
    assert (one["devices"], four["devices"]) == (1, 4)
    for key in ("g2", "g4c", "g4c_err"):
        np.testing.assert_allclose(one[key], four[key], rtol=1e-10, atol=1e-15)


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    kw = {"seed": 9, "chunk_size": 8192, "checkpoint_every": 2, "progress": False}
    with pytest.raises(RunInterrupted):
        run(PRIOR, POINTS, 100_000, checkpoint_dir=tmp_path, stop_after_chunks=5, **kw)
    assert (tmp_path / "checkpoint.npz").exists()
    resumed = run(PRIOR, POINTS, 100_000, checkpoint_dir=tmp_path, resume=True, **kw)
    straight = run(PRIOR, POINTS, 100_000, **kw)
    _assert_same(resumed.correlators, straight.correlators)


def test_resume_refuses_a_checkpoint_for_other_work(tmp_path):
    with pytest.raises(RunInterrupted):
        run(PRIOR, POINTS, 50_000, seed=1, chunk_size=4096, checkpoint_dir=tmp_path,
            stop_after_chunks=1, progress=False)
    with pytest.raises(ConfigError, match="resume"):
        run(PRIOR, POINTS, 50_000, seed=2, chunk_size=4096, checkpoint_dir=tmp_path,
            resume=True, progress=False)


def test_standard_errors_are_honest():
    """Over 200 independent small runs, |z| < 1 for 68 +- 5 % of them (G2 and G4c)."""
    prior = CosNet(d=1, width=4, sigma_w0=1.0, sigma_w1=1.0)
    points = np.array([[0.0], [0.7]])
    g2, g4 = prior.g2(points), prior.g4c(points)
    z2, z4 = [], []
    for seed in range(200):
        c = run(prior, points, 64 * 200, seed=1000 + seed, chunk_size=64 * 200,
                progress=False).correlators
        z2.append((c.full[2].value - g2) / c.full[2].stderr)
        z4.append((c.connected[4].value - g4) / c.connected[4].stderr)
    for z, entries in ((np.array(z2), [(0, 0), (0, 1)]),
                       (np.array(z4), [(0, 0, 0, 0), (0, 0, 1, 1), (0, 1, 1, 1)])):
        for e in entries:
            frac = np.mean(np.abs(z[(slice(None), *e)]) < 1)
            assert abs(frac - 0.68) < 0.05, (e, frac)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="n_samples"):
        run(PRIOR, POINTS, -5, progress=False)
    with pytest.raises(ConfigError, match="points"):
        run(PRIOR, np.zeros((3, 3)), 1000, progress=False)
