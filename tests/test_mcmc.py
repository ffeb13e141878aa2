"""Sampling interacting theories: the HMC path against exact free theory, against
importance reweighting of free draws, checkpoint/resume, several devices, numpyro,
autocorrelation-aware errors, diagnostics that flag trouble, and ``nnft run`` on an
[interaction] card."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import arviz as az
import numpy as np
import pytest

from nnft import ConfigError, CosNet
from nnft._validate import RunInterrupted
from nnft.app.cards import parse_card
from nnft.app.pipeline import run_card
from nnft.engine.checkpoint import read_done
from nnft.interaction import Box, Interaction, make_target, phi4
from nnft.mcmc import (
    MCMCConfig,
    MCMCResult,
    chain_correlators,
    diagnostics,
    fit_coupling_slope,
    free_draw_crosschecks,
    run_numpyro,
    run_nuts,
)

PRIOR = CosNet(d=1, width=4, sigma_w0=1.2, sigma_w1=0.9)
POINTS = np.array([[0.0], [0.4], [0.9]])
BOX = Box((2.0,))


def _z(a, b):
    """Combined z of two Estimates."""
    return (a.value - b.value) / np.hypot(a.stderr, b.stderr)


def test_free_hmc_reproduces_exact_free_correlators():
    """Acceptance 1: lambda = 0 through the HMC path gives the free G2 and G4c."""
    prior = PRIOR.replace(width=2)  # G4c ~ 1/N: resolved by 16,000 draws at N = 2
    target = make_target(prior, Interaction(phi4(0.0), BOX, 8))
    res = run_nuts(target, POINTS, MCMCConfig(chains=8, warmup=300, samples=2000, seed=1))
    corr, info = chain_correlators(res.phi, 4)
    assert info["block_over_tau"] >= 20
    for est, theory in ((corr.full[2], prior.g2(POINTS)), (corr.connected[4], prior.g4c(POINTS))):
        z = (est.value - theory) / est.stderr
        assert np.max(np.abs(z)) < 4, z
    # G4c is resolved, so a wrong connected four-point function would fail
    assert np.min(np.abs(prior.g4c(POINTS)) / corr.connected[4].stderr) > 5
    diag = diagnostics(res)
    assert diag["divergences"] == 0 and diag["rhat_max"] < 1.01 and diag["ok"], diag["problems"]


@pytest.fixture(scope="module")
def interacting():
    inter = Interaction(phi4(0.1), BOX, 16)
    target = make_target(PRIOR, inter)
    res = run_nuts(target, POINTS, MCMCConfig(chains=8, warmup=400, samples=2500, seed=2))
    checks = free_draw_crosschecks(PRIOR, inter, POINTS, [0.1], 64 * 4000, seed=5)
    return inter, res, checks


def test_nuts_agrees_with_importance_reweighting(interacting):
    """Acceptance 2 in small: NUTS and reweighted free draws agree within 4 combined errors."""
    _, res, checks = interacting
    corr, _ = chain_correlators(res.phi, 4)
    rw = checks.reweighted[0]
    assert checks.ess[0] > 1e4
    assert np.max(np.abs(_z(corr.full[2], rw["G2"]))) < 4
    assert np.max(np.abs(_z(corr.connected[4], rw["G4c"]))) < 4
    # the coupling moves G2 by many standard errors: the comparison can fail
    free = PRIOR.g2(POINTS)
    assert np.min(np.abs(corr.full[2].value - free) / corr.full[2].stderr) > 8
    # a divergent transition is a rare event here (seeds 2-4: 1, 0, 0 with the polynomial cos
    # and 0, 0, 1 with XLA's, in 20,000 draws each); a broken gradient or step size gives
    # hundreds
    diag = diagnostics(res)
    assert diag["divergences"] <= 5 and diag["rhat_max"] < 1.01


@pytest.mark.slow  # 30 s: the numpyro cross-check (also exercised by benchmarks/phi4_hmc.py)
def test_numpyro_runs_the_same_model(interacting):
    """numpyro's NUTS on the numpyro model agrees with the blackjax run (same density)."""
    inter, res, _ = interacting
    target = make_target(PRIOR, inter)
    other = run_numpyro(target, POINTS, MCMCConfig(sampler="numpyro", chains=2, warmup=200,
                                                   samples=1500, seed=3,
                                                   checkpoint_every=1500))
    assert other.phi.shape == (2, 1500, 3)
    a, _ = chain_correlators(res.phi, 2)
    b, _ = chain_correlators(other.phi, 2)
    assert np.max(np.abs(_z(a.full[2], b.full[2]))) < 4
    assert diagnostics(other)["divergences"] == 0


@pytest.mark.slow  # numpyro compiles its sampler on every chunk
def test_numpyro_state_is_checkpointed_by_the_driver(tmp_path):
    """numpyro's HMCState is the source's state: stop after warmup + one chunk, resume:
    the same draws as an uninterrupted chunked run."""
    target = make_target(PRIOR, Interaction(phi4(0.05), BOX, 12))
    cfg = MCMCConfig(sampler="numpyro", chains=2, warmup=30, samples=40, seed=3,
                     checkpoint_every=20)
    whole = run_numpyro(target, POINTS, cfg, checkpoint_dir=tmp_path / "whole")
    with pytest.raises(RunInterrupted):
        run_numpyro(target, POINTS, cfg, checkpoint_dir=tmp_path / "cut", stop_after_chunks=2)
    resumed = run_numpyro(target, POINTS, cfg, checkpoint_dir=tmp_path / "cut", resume=True)
    assert resumed.info.resumed_from == 20
    np.testing.assert_array_equal(whole.z, resumed.z)
    np.testing.assert_array_equal(whole.stats["n_steps"], resumed.stats["n_steps"])
    np.testing.assert_array_equal(whole.step_size, resumed.step_size)


def test_finite_n_first_order_is_the_derivative_of_reweighting(interacting):
    """Two code paths on the same free draws: the lambda-derivative at 0 of the
    reweighted estimator, E_0[O e^{-lambda S}] / E_0[e^{-lambda S}], is -Cov_0(O, S),
    the finite-N first-order estimator (for G4c pushed through the cumulant map).
    The fitted slope of reweighted values at tiny couplings equals it up to O(lambda^2)."""
    inter, _, _ = interacting
    lams = (1e-4, 2e-4, 3e-4)
    checks = free_draw_crosschecks(PRIOR, inter, POINTS, lams, 64 * 4000, seed=6)
    for name, entries in (("G2", ((0, 0), (0, 2))), ("G4c", ((0, 0, 0, 0), (0, 1, 1, 2)))):
        s = checks.slope[name]
        for e in entries:
            vals = [c[name].value[e] for c in checks.reweighted]
            slope, _, _ = fit_coupling_slope(lams, vals, [1.0] * 3,
                                             intercept=checks.free[name].value[e],
                                             quadratic=True)
            assert slope == pytest.approx(s.value[e], rel=1e-3)
            assert abs(s.value[e]) > 10 * s.stderr[e]  # and the slope is resolved


_KILLED = textwrap.dedent("""
    import sys, time
    import jax
    from nnft import CosNet
    from nnft.engine import drive
    from nnft.interaction import Box, Interaction, make_target, phi4
    from nnft.mcmc import MCMCConfig, nuts_source, recorder
    target = make_target(CosNet(d=1, width=4, sigma_w0=1.2, sigma_w1=0.9),
                         Interaction(phi4(0.05), Box((2.0,)), 12))
    cfg = MCMCConfig(chains=2, warmup=50, samples=90, seed=4, checkpoint_every=30)
    source, spec = nuts_source(target, [[0.0], [0.4], [0.9]], cfg)

    def slow(key, state, i):  # room to be killed between checkpoints
        if i >= 2:
            time.sleep(30)
        return source.step(key, state, i)

    drive(source._replace(step=slow), recorder(spec, 3, 30, 90), jax.random.PRNGKey(4),
          checkpoint=sys.argv[1], progress=False)
""")


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    """NUTS through the driver: kill -9 mid-run (after the warmup and one chunk are
    checkpointed), resume: the same draws as an uninterrupted run, bit for bit."""
    target = make_target(PRIOR, Interaction(phi4(0.05), BOX, 12))
    cfg = MCMCConfig(chains=2, warmup=50, samples=90, seed=4, checkpoint_every=30)
    path = tmp_path / "checkpoint.npz"
    child = subprocess.Popen([sys.executable, "-c", _KILLED, str(path)],
                             env=dict(os.environ, JAX_PLATFORMS="cpu"))
    try:
        whole = run_nuts(target, POINTS, cfg)
        deadline = time.monotonic() + 600
        while (read_done(path) or 0) < 2 and child.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert read_done(path) == 2, "the child did not checkpoint warmup + one chunk"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    resumed = run_nuts(target, POINTS, cfg, checkpoint_dir=tmp_path, resume=True)
    assert resumed.info.resumed_from == 30  # draws per chain done when it resumed
    np.testing.assert_array_equal(whole.z, resumed.z)
    np.testing.assert_array_equal(whole.phi, resumed.phi)
    for key in whole.stats:
        np.testing.assert_array_equal(whole.stats[key], resumed.stats[key])
    np.testing.assert_array_equal(whole.step_size, resumed.step_size)
    assert list(tmp_path.iterdir()) == [path]  # one checkpoint file, no chunk files
    # an early stop (RunInterrupted) resumes too; a checkpoint for other work is refused
    with pytest.raises(RunInterrupted):
        run_nuts(target, POINTS, cfg, checkpoint_dir=tmp_path / "stop", stop_after_chunks=2)
    again = run_nuts(target, POINTS, cfg, checkpoint_dir=tmp_path / "stop", resume=True)
    np.testing.assert_array_equal(whole.z, again.z)
    other = make_target(PRIOR, Interaction(phi4(0.07), BOX, 12))
    with pytest.raises(ConfigError, match="resume"):
        run_nuts(other, POINTS, cfg, checkpoint_dir=tmp_path, resume=True)


def test_crosschecks_equal_a_direct_numpy_computation():
    """The reweighted G2, its jackknife error, the ESS and the first-order slope of G2
    equal a direct numpy computation on the same free draws (network i from
    network_keys(key, i), batch i mod B)."""
    import jax

    from nnft.ensemble import network_keys
    from nnft.priors.base import fields

    prior = PRIOR.replace(dtype="float64")
    inter = Interaction(phi4(0.3), BOX, 12)
    n, b, lam = 64 * 40, 64, 0.3
    checks = free_draw_crosschecks(prior, inter, POINTS, [lam], n, seed=5, chunk_size=1000,
                                   n_batches=b)
    unit = inter.unit()
    with jax.enable_x64(True):
        params = jax.vmap(prior.sample)(network_keys(jax.random.PRNGKey(5),
                                                     jax.numpy.arange(n)))
        phi = np.asarray(jax.vmap(lambda p: fields(prior, p, jax.numpy.asarray(POINTS)))(params))
        s = np.asarray(jax.vmap(lambda p: unit.action(prior, p))(params))
    s = s - unit.box.volume * unit.potential.lower_bound()
    w = np.exp(-lam * s)
    batch = np.arange(n) % b
    pp = phi[:, :, None] * phi[:, None, :]

    def g2(keep):
        return np.einsum("n,nab->ab", w[keep], pp[keep]) / w[keep].sum()

    def slope(keep):
        m2 = pp[keep].mean(axis=0)
        return -(np.einsum("n,nab->ab", s[keep], pp[keep]) / keep.sum() - s[keep].mean() * m2)

    for value, est in ((g2, checks.reweighted[0]["G2"]), (slope, checks.slope["G2"])):
        loo = np.stack([value(batch != k) for k in range(b)])
        err = np.sqrt((b - 1) / b * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
        np.testing.assert_allclose(est.value, value(np.ones(n, bool)), rtol=1e-10)
        np.testing.assert_allclose(est.stderr, err, rtol=1e-8)
    assert checks.ess[0] == pytest.approx(w.sum() ** 2 / (w * w).sum(), rel=1e-12)
    np.testing.assert_allclose(checks.free["G2"].value, pp.mean(axis=0), rtol=1e-10)


_DEVICES = textwrap.dedent("""
    import json, sys, numpy as np, jax
    from nnft import CosNet
    from nnft.interaction import Box, Interaction, make_target, phi4
    from nnft.mcmc import MCMCConfig, run_nuts
    target = make_target(CosNet(d=1, width=4, sigma_w0=1.2, sigma_w1=0.9, dtype="float64"),
                         Interaction(phi4(0.05), Box((2.0,)), 12))
    res = run_nuts(target, [[0.0], [0.4]], MCMCConfig(chains=4, warmup=40, samples=20, seed=7))
    json.dump({"devices": res.seconds["devices"], "z": res.z.tolist()}, sys.stdout)
""")


def _on_devices(n):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
               JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1")
    out = subprocess.run([sys.executable, "-c", _DEVICES], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_chains_on_one_and_four_devices_agree():
    """The same draws whether chains are vmapped on one device or split over four.
    In float64: NUTS trees amplify round-off, so float32 chains that XLA vectorises
    differently agree in distribution only. (Slow: two fresh processes compile NUTS.)"""
    one, four = _on_devices(1), _on_devices(4)
    assert (one["devices"], four["devices"]) == (1, 4)
    np.testing.assert_allclose(one["z"], four["z"], rtol=1e-4, atol=1e-5)


def test_block_jackknife_errors_account_for_autocorrelation():
    """AR(1) chains with rho = 0.9: x^2 has autocorrelation rho^2 per lag, so
    tau = (1 + rho^2) / (1 - rho^2) = 9.5 and the error of mean(x^2) is
    sqrt(2 tau / n), not the naive sqrt(2 / n). Power: an error bar from 32 blocks has a
    relative sd of 1/sqrt(2 * 31) = 13%, so the 20% window detects an error bar off by
    >= 37% (0.2 + 1.28 * 0.13) with probability 0.9: the naive error (3.1x too small)
    and any tau off by a factor 1.5 fail it. A 5% check of an error bar would need
    ~2000 blocks."""
    rho, chains, draws = 0.9, 8, 40_000
    rng = np.random.default_rng(0)
    eps = rng.standard_normal((chains, draws, 1)) * math.sqrt(1 - rho**2)
    x = np.empty_like(eps)
    x[:, 0] = rng.standard_normal((chains, 1))
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + eps[:, t]
    corr, info = chain_correlators(x, 2, max_blocks=32)
    tau = (1 + rho**2) / (1 - rho**2)
    assert info["tau_max"] == pytest.approx(tau, rel=0.15)
    exact = math.sqrt(2 * tau / info["draws_used"])
    assert corr.full[2].stderr[0, 0] == pytest.approx(exact, rel=0.2)
    assert abs(corr.full[2].value[0, 0] - 1.0) < 4 * exact


def test_diagnostics_report_divergences_and_nonfinite_values():
    """Trouble is reported, never silent: divergences, NaN log-densities, R-hat."""
    target = make_target(PRIOR, None)
    chains, draws = 2, 50
    rng = np.random.default_rng(1)
    z = rng.standard_normal((chains, draws, target.dim))
    z[1] += 3.0  # two chains in different places: R-hat >> 1
    phi = rng.standard_normal((chains, draws, 2))
    stats = {"diverging": np.zeros((chains, draws), bool), "n_steps": np.full((chains, draws), 3),
             "acceptance_rate": np.full((chains, draws), 0.8), "lp": np.zeros((chains, draws)),
             "energy": np.zeros((chains, draws))}
    stats["diverging"][0, 5] = True
    stats["lp"][1, 7] = np.nan
    res = MCMCResult(target, POINTS[:2], MCMCConfig(), z, phi, stats,
                     {"n_steps": np.array([10, 10]), "diverging": np.array([0, 0])},
                     np.array([0.1, 0.1]), None, {"total": 0.0})
    diag = diagnostics(res, 2)
    assert not diag["ok"]
    text = "; ".join(diag["problems"])
    assert "1 divergent transitions" in text and "1 non-finite log-densities" in text
    assert "R-hat" in text


def _card(coupling=0.05, **mcmc):
    return parse_card({
        "architecture": {"name": "cos-net", "d": 1, "width": 4, "sigma_w0": 1.2,
                         "sigma_w1": 0.9},
        "sampling": {"n_samples": 64 * 200, "seed": 3},
        "correlators": {"points": [0.0, 0.4, 0.9], "orders": [2, 4]},
        "interaction": {"potential": "phi4", "coupling": coupling, "box": 2.0,
                        "nodes": 16},
        "mcmc": {"chains": 2, "warmup": 60, "samples": 200, **mcmc},
    })


def test_nnft_run_on_an_interaction_card(tmp_path):
    summary = run_card(_card(), tmp_path, progress=False)
    for name in ("results.nc", "summary.json", "posterior.nc", "g2.png", "crosschecks.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["interaction"]["coupling"] == 0.05
    assert np.shape(on_disk["G2"]["value"]) == (3, 3)
    for key in ("rhat_max", "divergences", "tau_int", "parameters"):
        assert key in on_disk["diagnostics"]
    rows = on_disk["crosschecks"]["G2"]["rows"]
    assert {"nuts", "reweighted", "z", "pt_finite_N", "pt_infinite_N"} <= set(rows[0])
    idata = az.from_netcdf(tmp_path / "posterior.nc")
    assert idata.posterior["phi"].shape == (2, 200, 3)
    assert "diverging" in idata.sample_stats
    assert summary["quadrature"]["converged"]


@pytest.mark.parametrize("table, match", [
    ({"sampler": "hmc"}, "mcmc.sampler: got 'hmc'; allowed values: blackjax, numpyro"),
    ({"chains": 0}, "mcmc.chains: got 0"),
    ({"target_accept": 1.5}, "mcmc.target_accept"),
    ({"warmupp": 10}, "mcmc.warmupp: unknown key"),
])
def test_bad_mcmc_sections(table, match):
    with pytest.raises(ConfigError, match=match):
        _card(**table)


@pytest.mark.parametrize("table, match", [
    ({"coupling": -0.1}, "interaction.coupling: got -0.1; .*unbounded below"),
    ({"box": []}, "interaction.box: .*empty box"),
    ({"nodes": 2}, r"interaction.nodes: got \[2\]; int_box V is not converged"),
    ({"potential": "phi3"}, "interaction.potential: got 'phi3'; allowed values"),
])
def test_bad_interaction_sections(table, match):
    data = {
        "architecture": {"name": "cos-net", "d": 1, "width": 4},
        "sampling": {"n_samples": 64 * 200, "seed": 3},
        "correlators": {"points": [0.0, 0.4], "orders": [2, 4]},
        "interaction": {"potential": "phi4", "coupling": 0.1, "box": 2.0, "nodes": 16,
                        **table},
    }
    with pytest.raises(ConfigError, match=match):
        parse_card(data)
