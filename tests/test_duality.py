"""The duality study (studies/duality) and what it needs from nnft.training: per-model
hyperparameters in one vmap, the per-step trace of f and alpha, divergence reported with its
step, and a network whose readout alone trains following the recursion exactly.

Float64 (``jax.enable_x64``) wherever a check is at round-off level.
"""

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import study_fixture, use_study  # noqa: E402

from nnft._validate import ConfigError
from nnft.ntk import empirical_ntk
from nnft.priors.mlp import MLP
from nnft.theory import field_equation as fe
from nnft.theory import gp
from nnft.training import TrainingConfig, make_data, make_trainer, train_ensemble

STUDY = use_study("duality")  # this study's modules only (conftest.use_study)
_study = study_fixture("duality")
import setups as st  # noqa: E402


def _prior(width=32, depth=2, activation="erf", **kw):
    return MLP(d=1, width=width, depth=depth, activation=activation, parameterization="ntk",
               dtype="float64", **{"b_std": 0.05, **kw})


def test_per_model_hyperparameters_equal_separate_runs():
    """Model s of a run with per-model (eta, beta, m^2, f0) is model s of a run with that
    model's scalars (same init, same data order), to round-off."""
    data = make_data([[0.5], [-0.3]], [0.0, 0.2], [[0.5]])
    eta, beta, m2, f0 = (0.1, 0.3, 0.05), (0.0, 0.5, 0.9), (0.01, 0.04, 0.09), (1.0, -2.0, 3.0)
    base = dict(optimizer="momentum", loss="power", loss_power=4, steps=30, measure=(10, 30),
                n_models=3, n_batches=3, ntk=False)
    with jax.enable_x64(True):
        prior = _prior()
        grid = train_ensemble(prior, data, TrainingConfig(
            learning_rate=eta, momentum=beta, mass2=m2, f0=f0, **base), progress=False)
        assert grid.theory is None  # the frozen-NTK theory knows one rate and y only
        for s in (2,):
            one = train_ensemble(prior, data, TrainingConfig(
                learning_rate=eta[s], momentum=beta[s], mass2=m2[s], f0=f0[s], **base),
                progress=False, theory=False)
            np.testing.assert_allclose(grid.dataset["f"].values[:, s], one.dataset["f"].values[:, s],
                                       rtol=1e-12, atol=1e-13)
            np.testing.assert_allclose(grid.dataset["train_loss"].values[:, s],
                                       one.dataset["train_loss"].values[:, s], rtol=1e-12)
    np.testing.assert_array_equal(grid.dataset["learning_rate"].values, eta)


@pytest.mark.parametrize("kw, message", [
    ({"learning_rate": (0.1, 0.2)}, "learning_rate: got '2 values'; must be a number or a list "
                                    "of n_models = 3"),
    ({"momentum": (0.1, 1.0, 0.2)}, r"momentum\[1\]: got 1.0; must be a number in \[0, 1\)"),
    ({"mass2": (0.1, -1.0, 0.2)}, r"mass2\[1\]: got -1.0"),
    ({"f0": 1.0, "loss": "cross-entropy"}, "f0: got 1.0; must be 0 for the 'cross-entropy'"),
    ({"trace": True, "batch_size": 1}, "trace: got True; needs full-batch training"),
])
def test_bad_per_model_hyperparameters(kw, message):
    data = make_data([[0.5], [-0.3]], [0.0, 1.0], [[0.5]])
    with pytest.raises(ConfigError, match=message):
        cfg = TrainingConfig(n_models=3, n_batches=3, steps=5, ntk=False, **kw)
        make_trainer(_prior(), data, cfg)


def test_readout_only_network_is_the_recursion_and_divergence_is_reported():
    """Only the readout trains: f is linear in it, alpha(t) stays exactly alpha(0) and the
    network is the constant-alpha recursion to 1e-10 (acceptance 2). A model pushed past the
    GD stability edge is frozen and reported with its step, not a crash."""
    data = make_data([[st.X0]], [0.0], [[st.X0]])
    eta = [e for e, _ in st.ETA_BETA] + [40.0]
    beta = [b for _, b in st.ETA_BETA] + [0.0]
    f0 = [1.0, 10.0, 1.0, 10.0, 1.0, 10.0]
    cfg = TrainingConfig(optimizer="momentum", learning_rate=eta, momentum=beta, loss="power",
                         loss_power=4, mass2=0.01, f0=f0, steps=300, measure=(100, 300),
                         n_models=6, n_batches=2, ntk=False, trace=True, trainable=(2,))
    with jax.enable_x64(True):
        prior = _prior()
        res = train_ensemble(prior, data, cfg, progress=False)
        params = make_trainer(prior, data, cfg).init(jax.random.key(0)).params
        p0 = jax.tree.map(lambda a: a[0], params)
        ro = empirical_ntk(lambda r, x: prior.apply((*p0[:-1], r), x), p0[-1],
                           jnp.array([[st.X0]]))
    ds = res.dataset
    f, a = ds["f_step"].values[:, :, 0], ds["alpha_step"].values[:, :, 0]
    assert float(a[0, 0]) == pytest.approx(float(ro[0, 0]), rel=1e-12)
    # the trace agrees with the observations at the measurement times
    np.testing.assert_allclose(f[:, [0, 100, 300]].T, ds["f_train"].values[:, :, 0], rtol=1e-13)
    assert list(res.diverged) == [5] and 0 < res.diverged[5] < 300
    assert ds["diverged_at"].values[5] == res.diverged[5]
    for s in range(5):
        assert np.ptp(a[s]) <= 1e-12 * a[s, 0]
        rec = fe.recursion(300, eta[s], beta[s], a[s, 0], n=4, m=0.1, f0=f0[s], f_init=f[s, 0])
        assert rec.diverged_at == -1
        assert np.max(np.abs(f[s] - rec.f)) / abs(f0[s] - f[s, 0]) < 1e-10
    rec = fe.recursion(300, eta[5], beta[5], a[5, 0], n=4, m=0.1, f0=f0[5], f_init=f[5, 0])
    assert rec.diverged_at >= 0 and np.all(np.isfinite(f[5]))


@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_factorised_alpha_equals_the_empirical_ntk(activation):
    """alpha from the per-layer gradient norms equals nnft.empirical_ntk at x0, for W_std and
    b_std other than the prior's own (one raw draw serves them all)."""
    with jax.enable_x64(True):
        prior = _prior(width=16, depth=3, activation=activation)
        params = prior.sample(jax.random.key(3))
        for w_std, b_std in ((1.0, 0.001), (0.1, 0.5)):
            other = MLP(d=1, width=16, depth=3, activation=activation, W_std=w_std,
                        b_std=b_std, parameterization="ntk", dtype="float64")
            ref = float(empirical_ntk(other.apply, params, jnp.array([[st.X0]]))[0, 0])
            got = float(st.alpha_factorised(prior, params, jnp.array([st.X0]), w_std, b_std))
            assert got == pytest.approx(ref, rel=1e-12)


def test_alpha_mean_approaches_the_infinite_width_ntk():
    """Width 512, depth 2, 48 seeds: the mean alpha is within 4 standard errors of gp.ntk.
    The standard error is below 0.95% of the value for erf and 1.9% for relu (whose alpha
    fluctuates more), so a 5% (erf) or 10% (relu) discrepancy is detected with probability
    > 0.9 (|z| > 4 needs the error to exceed 4 + 1.28 standard errors)."""
    out = st.alpha_block(2, 512, 48)
    a, inf = out["alpha"], out["infinite_width"]
    for i, j, k in ((0, 0, 3), (1, 0, 3), (0, 1, 4), (1, 1, 0)):
        x = a[i, j, k]
        se = x.std(ddof=1) / math.sqrt(x.size)
        assert se < (0.0095 if i == 0 else 0.019) * inf[i, j, k], (i, j, k, se / inf[i, j, k])
        assert abs(x.mean() - inf[i, j, k]) < 4 * se, (i, j, k, x.mean(), inf[i, j, k], se)
    assert inf[0, 0, 3] == pytest.approx(gp.ntk([[st.X0]], depth=2, activation="erf",
                                                W_std=1.0, b_std=0.05)[0, 0])


def test_metrics_and_mode_predictions_on_known_cases():
    """The paper's metric and its trajectory maximum; a frozen-kernel n = 2 network (the
    matrix recursion at a small rate) is predicted by eqs. 15-16 to O(eta)."""
    f_nn = np.array([0.0, 0.5, 1.2, 1.0])
    end, mx = st.metrics(f_nn, np.array([0.0, 0.5, 1.0, 1.0]))
    assert end == 0 and mx == pytest.approx(0.2)
    rng = np.random.default_rng(1)
    x = st.mode_inputs(0.1, 8)
    assert x[-1, 0] - x[0, 0] == pytest.approx(0.1 * 1.0)  # c Hubble lengths (eta = 1/9)
    theta = gp.ntk(x, depth=1, activation="erf", W_std=1.0, b_std=0.05) + 1e-3 * np.eye(8)
    f_init = 0.05 * rng.normal(size=8)
    eta, steps = 1e-4, 20000
    rec = fe.recursion(steps, eta, 0.0, theta, n=2, m=0.2, f0=1.0, f_init=f_init)
    p = st.mode_predictions(theta, f_init, rec.f[-1], eta=eta, beta=0.0, m=0.2, f0=1.0,
                            steps=steps)
    assert abs(p["fbar_nn"] - p["fbar_pred"]) < 1e-3 * abs(p["fbar_nn"] - p["fbar_nn0"])
    np.testing.assert_allclose(p["c_nn"], p["c_pred"], atol=1e-3 * np.abs(p["c_nn0"]).max())
    assert p["mean_overlap"] > 0.99 and p["lambda2_over_lambda1"] < 0.5


@pytest.mark.slow
def test_reduced_study_end_to_end_and_resume(tmp_path):
    """--reduced, stopped after 3 blocks, then --resume: every acceptance item computed and
    passing, summary.json holding the issue's keys with their fields."""
    import json

    cmd = [sys.executable, str(STUDY / "run.py"), "--reduced", "--out", str(tmp_path),
           "--no-progress", "--workers", "1"]
    stopped = subprocess.run(cmd + ["--stop-after", "3"], capture_output=True, text=True)
    assert stopped.returncode != 0 and "stopped after 3" in stopped.stderr
    assert len(list((tmp_path / "blocks").glob("*.npz"))) == 3
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert set(s["alpha_init"][0]) >= {"activation", "depth", "width", "W_std", "b_std", "x0",
                                       "mean", "stderr", "n_seeds", "infinite_width"}
    assert len(s["discretisation"]) == 2 * 2 * 3 * 2 * 5
    assert set(s["discretisation"][0]) >= {"n", "f0", "m", "alpha", "eta", "beta",
                                           "max_dev_rel", "end_dev_rel", "diverged"}
    assert {r["width"] for r in s["modes"]} == {200, "inf"}
    for where in ("inside", "outside"):
        assert set(s["matching"]["ode"][where]) == {"end", "max"}
    assert all(item["pass"] for item in s["acceptance"].values()), s["acceptance"]
    for name in ("results.nc", "fig1_alpha.png", "fig2_eta_max.png", "fig3_matching.png",
                 "fig4_lambda1.png", "fig5_modes.png"):
        assert (tmp_path / name).exists(), name
