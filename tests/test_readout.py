"""Readout-conditioned correlators (nnft.readout): algebra, theory, honesty, refusals.

Statistical checks are in units of the estimate's own jackknife stderr with fixed seeds
(|z| < 4 per entry). Power: at these sample sizes the readout/neuron G4c stderr is below
1% (neuron) to 5% (readout, N = 100) of |G4c|, so a relative error of 20% in G4c (a
wrong pairing count, a missing 1/N) gives |z| > 4 with probability > 0.9 on the
largest entries; G6c is resolved to ~10-30%, so a factor-2 error (a missing or doubled
pairing) is detected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tomllib

from nnft import ensemble, readout
from nnft._validate import ConfigError
from nnft.app.cards import parse_card
from nnft.engine.drive import Draws
from nnft.priors.cos import CosNet
from nnft.priors.gauss import GaussNet
from nnft.priors.mlp import MLP
from nnft.priors.spectral import ScalarNet

PTS1 = [0.0, 0.5, 1.2]
REPO = Path(__file__).resolve().parents[1]


def _z(est, exact):
    return (est.value - exact) / est.stderr


def _check(corr, prior, points, orders=(2, 4, 6)):
    pts = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    exact = {2: prior.g2(pts), 4: prior.g4c(pts), 6: prior.g6c(pts)}
    for o in orders:
        z = _z(corr.connected[o], exact[o])
        assert np.all(np.abs(z) < 4), (o, np.abs(z).max())
    for o in (1, 3, 5):
        assert np.all(corr.connected[o].value == 0)


def _stream(values, n_points, max_order, n_batches=16):
    """Feed synthetic K entries ``(S, E)`` through the engine estimator."""
    est = readout.kernel_estimator(
        n_points, max_order, n_batches,
        lambda mu, cov, k3, n: readout.correlators_from_kernel(mu, cov, k3, n_points,
                                                               max_order, n))
    acc = est.init()
    rows = values.reshape(-1, n_batches, values.shape[-1])
    acc = est.update(acc, Draws(rows, np.ones(rows.shape[:2], bool)), 0)
    return est.finalize(acc)


# -- algebra on known cases ---------------------------------------------------------------
def test_pairings_are_the_perfect_matchings():
    for n, count in ((2, 1), (4, 3), (6, 15)):
        ps = readout.pairings(n)
        assert len(ps) == len({frozenset(map(frozenset, p)) for p in ps}) == count
        assert all(sorted(i for pair in p for i in pair) == list(range(n)) for p in ps)


def test_pair_sum_on_a_hand_case():
    """G4c(0,0,1,1) = Cov(K00, K11) + 2 Cov(K01, K01); entries ordered 00, 01, 11."""
    cov = np.arange(9.0).reshape(1, 3, 3)
    cov = cov + cov.transpose(0, 2, 1)
    g4 = readout.pair_sum(cov, 2, 4)[0]
    assert g4[0, 0, 1, 1] == cov[0, 0, 2] + 2 * cov[0, 1, 1]
    assert g4[0, 1, 0, 1] == cov[0, 1, 1] + cov[0, 0, 2] + cov[0, 1, 1]
    assert np.allclose(g4, np.transpose(g4, (1, 0, 3, 2)))


def test_two_point_kernel_has_the_hand_computed_cumulants():
    """K in {a, b} w.p. p, 1-p on one point: G2 = p a + (1-p) b, G4c = 3 p(1-p)(a-b)^2,
    G6c = 15 p(1-p)(1-2p)(a-b)^3."""
    rng = np.random.default_rng(0)
    p, a, b = 0.2, 2.0, 0.5
    k = np.where(rng.random(2**18) < p, a, b)[:, None]
    corr = _stream(k, 1, 6)
    exact = {2: p * a + (1 - p) * b, 4: 3 * p * (1 - p) * (a - b) ** 2,
             6: 15 * p * (1 - p) * (1 - 2 * p) * (a - b) ** 3}
    for o, val in exact.items():
        assert abs(_z(corr.connected[o], val).item()) < 4, o
    # and exactly, on the population cumulants
    mu = np.array([[p * a + (1 - p) * b]])
    cov = np.array([[[p * (1 - p) * (a - b) ** 2]]])
    k3 = np.array([[[[p * (1 - p) * (1 - 2 * p) * (a - b) ** 3]]]])
    c = readout.correlators_from_kernel(np.repeat(mu, 3, 0), np.repeat(cov, 3, 0),
                                        np.repeat(k3, 3, 0), 1, 6, 1)
    for o, val in exact.items():
        assert np.isclose(c.connected[o].value.item(), val)
    g6 = c.full[6].value.item()  # E[phi^6] = 15 E[K^3] for a Gaussian given K
    assert np.isclose(g6, 15 * (p * a**3 + (1 - p) * b**3))


def test_gaussian_kernel_has_no_six_point_function():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(3, 3))
    k = 1.0 + rng.normal(size=(2**16, 3)) @ base * 0.1  # entries 00, 01, 11 Gaussian
    corr = _stream(k, 2, 6)
    assert np.all(np.abs(_z(corr.connected[6], 0.0)) < 4)
    assert np.any(np.abs(corr.connected[4].value) > 10 * corr.connected[4].stderr)


# -- agreement with the exact theory ------------------------------------------------------
@pytest.mark.parametrize("estimator", ["readout", "neuron"])
@pytest.mark.parametrize("width", [2, 10, 100])
def test_cos_net_d1_matches_theory(estimator, width):
    prior = CosNet(d=1, width=width)
    corr = readout.run(prior, PTS1, 2**14, 3, estimator=estimator, max_order=6,
                       progress=False).correlators
    _check(corr, prior, PTS1)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["readout", "neuron"])
@pytest.mark.parametrize("width", [2, 10, 100])
@pytest.mark.parametrize("make", [lambda n: CosNet(d=2, width=n, sigma_w1=1.3),
                                  lambda n: GaussNet(d=1, width=n, sigma_w0=0.4, sigma_b0=0.1),
                                  lambda n: ScalarNet(d=1, width=n, Lambda=5.0)],
                         ids=["cos-d2", "gauss", "scalar"])
def test_one_layer_priors_match_theory(make, width, estimator):
    """Gauss-net's neurons are log-normal: with sigma_b0 = 1 or points near |x| = 1 its
    4th and 6th moments are carried by rare draws and no Monte Carlo (direct included)
    reaches the exact G4c at 2^16 networks, so it is tested with light tails."""
    prior = make(width)
    pts = [[0.0, 0.0], [0.4, -0.3], [1.0, 0.5]] if prior.d == 2 else PTS1
    corr = readout.run(prior, pts, 2**16, 5, estimator=estimator, max_order=6,
                       progress=False).correlators
    _check(corr, prior, pts)


def test_neuron_widths_from_one_run():
    prior = CosNet(d=1, width=10)
    res = readout.run(prior, PTS1, 2**13, 4, estimator="neuron", max_order=6,
                      widths=[2, 100], progress=False)
    assert set(res.by_width) == {2, 10, 100}
    for w, corr in res.by_width.items():
        _check(corr, prior.replace(width=w), PTS1)


@pytest.mark.parametrize("width", [2, pytest.param(10, marks=pytest.mark.slow),
                                   pytest.param(100, marks=pytest.mark.slow)])
def test_deep_mlp_readout_against_nngp_and_direct(width):
    """Depth 2: G2 against the NNGP at N = 100 (its 1/N correction is below the error
    there); G2 and G4c against the direct estimator on the same networks."""
    prior = MLP(d=1, width=width, depth=2, activation="erf", W_std=1.5, b_std=0.2)
    n, kw = 2**14, {"chunk_size": 4096, "progress": False}
    ro = readout.run(prior, PTS1, n, 7, estimator="readout", **kw).correlators
    di = ensemble.run(prior, PTS1, n, 7, **kw).correlators
    for o in (2, 4):
        diff = ro.connected[o].value - di.connected[o].value
        se = np.hypot(ro.connected[o].stderr, di.connected[o].stderr)
        assert np.all(np.abs(diff / se) < 4), o
        assert np.all(ro.connected[o].stderr <= di.connected[o].stderr * 1.05)
    if width == 100:
        assert np.all(np.abs(_z(ro.connected[2], prior.g2(np.c_[PTS1]))) < 4)


# -- invariances and refusals ---------------------------------------------------------------
@pytest.mark.parametrize("estimator", ["readout", "neuron"])
def test_chunk_size_does_not_change_the_result(estimator):
    prior = CosNet(d=1, width=10)
    a, b = (readout.run(prior, PTS1, 3000, 2, estimator=estimator, max_order=4,
                        chunk_size=c, n_batches=8, progress=False).correlators
            for c in (64 * 10, 1024 * 10))
    for o in (2, 4):
        np.testing.assert_allclose(a.connected[o].value, b.connected[o].value,
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(a.connected[o].stderr, b.connected[o].stderr,
                                   rtol=1e-6, atol=1e-12)


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    from nnft._validate import RunInterrupted

    prior, kw = CosNet(d=1, width=10), {"estimator": "neuron", "chunk_size": 640,
                                        "n_batches": 8, "progress": False}
    with pytest.raises(RunInterrupted):
        readout.run(prior, PTS1, 3000, 2, checkpoint_dir=tmp_path, stop_after_chunks=2, **kw)
    resumed = readout.run(prior, PTS1, 3000, 2, checkpoint_dir=tmp_path, resume=True, **kw)
    whole = readout.run(prior, PTS1, 3000, 2, **kw)
    assert resumed.info.resumed_from is not None
    np.testing.assert_array_equal(resumed.correlators.connected[4].value,
                                  whole.correlators.connected[4].value)


def test_choose_and_refusals():
    assert readout.choose(CosNet(width=4)) == "neuron"
    deep = MLP(width=8, depth=2)
    assert readout.choose(deep) == "readout"
    assert readout.choose(MLP(width=8, depth=1)) == "neuron"
    with pytest.raises(ConfigError, match="estimator.*neuron"):
        readout.choose(deep, "neuron")
    with pytest.raises(ConfigError, match="estimator"):
        readout.choose(deep, "fast")


BASE = {"architecture": {"name": "cos-net", "d": 1, "width": 10},
        "sampling": {"n_samples": 1000}, "correlators": {"points": [0.0, 0.5]}}


def test_card_estimator_field():
    assert parse_card(BASE).estimator == "direct"
    card = parse_card({**BASE, "correlators": {"points": [0.0], "estimator": "auto"}})
    assert card.estimator == "auto" and card.to_dict()["correlators"]["estimator"] == "auto"
    with pytest.raises(ConfigError, match="correlators.estimator"):
        parse_card({**BASE, "correlators": {"points": [0.0], "estimator": "magic"}})


@pytest.mark.parametrize("name", [pytest.param("cos-net-phi4", marks=pytest.mark.slow),
                                  "mlp-erf-training"])
@pytest.mark.parametrize("estimator", ["readout", "neuron"])
def test_card_refuses_readout_for_interacting_or_trained(name, estimator):
    data = tomllib.loads((REPO / "models" / f"{name}.toml").read_text())
    data["correlators"]["estimator"] = estimator
    with pytest.raises(ConfigError, match="correlators.estimator"):
        parse_card(data)
    data["correlators"]["estimator"] = "auto"
    parse_card(data)


# -- honest errors ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["readout", "neuron"])
def test_errors_are_honest_over_200_seeds(estimator):
    """Fraction of |z| < 1 over 200 independent seeds is 0.68 +- 0.05 for G4c and G6c
    (the binomial sd of one entry's fraction over 200 seeds is 0.033)."""
    prior = CosNet(d=1, width=4)
    pts = [0.0, 0.7]
    p = np.c_[pts]
    exact = {4: prior.g4c(p), 6: prior.g6c(p)}
    zs = {4: [], 6: []}
    for seed in range(200):
        corr = readout.run(prior, pts, 2**13, 1000 + seed, estimator=estimator,
                           max_order=6, progress=False).correlators
        for o, z in zs.items():
            z.append(_z(corr.connected[o], exact[o]).ravel())
    for o, z in zs.items():
        frac = np.mean(np.abs(np.array(z)) < 1)
        assert abs(frac - 0.68) < 0.05, (o, frac)


_DEVICE_SCRIPT = """
import json, sys
from nnft import readout
from nnft.priors.cos import CosNet
out = {}
for est in ("readout", "neuron"):
    c = readout.run(CosNet(d=1, width=10), [0.0, 0.5, 1.2], 20_000, 3, estimator=est,
                    chunk_size=4096, progress=False).correlators
    out[est] = [c.connected[4].value.tolist(), c.connected[4].stderr.tolist()]
import jax
out["devices"] = len(jax.devices())
json.dump(out, sys.stdout)
"""


def _on_devices(n):
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", _DEVICE_SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_one_and_four_devices_agree():
    one, four = _on_devices(1), _on_devices(4)
    assert (one["devices"], four["devices"]) == (1, 4)
    for est in ("readout", "neuron"):
        np.testing.assert_allclose(one[est], four[est], rtol=1e-9, atol=1e-15)
