"""Training ensembles (nnft.training) and the frozen-NTK theory (nnft.theory.frozen_ntk).

The training source runs through the one driver (nnft.engine.drive); its checkpoint is
the driver's npz and a run killed with SIGKILL resumes to the same numbers.

Physics checks are judged in units of the ensemble's own standard error with fixed seeds;
exact identities (a model linear in its parameters, optimizer algebra) to float tolerance.
The long versions (width scans, both activations, the n = 4 duality loss) are marked slow.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.integrate import solve_ivp

from nnft import CosNet
from nnft._validate import ConfigError, RunInterrupted
from nnft.app.cards import parse_card
from nnft.ntk import empirical_ntk
from nnft.priors.mlp import MLP
from nnft.theory import frozen_ntk
from nnft.training import (
    CHECKPOINT,
    TrainingConfig,
    heavy_ball,
    log_times,
    make_data,
    make_trainer,
    regression_data,
    sine_target,
    train_ensemble,
)

TEST_POINTS = np.linspace(-1.75, 1.75, 8)[:, None]


# ---------------------------------------------------------------------------
# optimizer algebra
# ---------------------------------------------------------------------------
def test_heavy_ball_is_the_duality_recursion_and_equals_optax_momentum():
    """theta_{i+1} = theta_i + beta (theta_i - theta_{i-1}) - eta grad L, theta_{-1} = theta_0;
    identical to optax.sgd(eta, momentum=beta)."""
    eta, beta = 0.05, 0.7
    a = jnp.array([[2.0, 0.3], [0.3, 1.0]])

    def grad(th):
        return a @ th + jnp.array([0.5, -1.0])

    th0 = jnp.array([1.0, -2.0])
    ours, ref = heavy_ball(eta, beta), optax.sgd(eta, momentum=beta)
    s1, s2 = ours.init(th0), ref.init(th0)
    p1 = p2 = th0
    prev, cur = th0, th0
    for _ in range(50):
        u1, s1 = ours.update(grad(p1), s1)
        u2, s2 = ref.update(grad(p2), s2)
        p1, p2 = p1 + u1, p2 + u2
        prev, cur = cur, cur + beta * (cur - prev) - eta * grad(cur)
        np.testing.assert_allclose(p1, cur, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(p1, p2, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# frozen-NTK theory
# ---------------------------------------------------------------------------
def test_frozen_ntk_limits():
    """t -> infinity: kernel regression; discrete and continuous agree at a small rate;
    a singular Theta(X, X) stays finite; the covariance vanishes on the training points."""
    prior = MLP(d=1, width=1, depth=2, activation="erf", parameterization="ntk")
    x = np.array([[-1.0], [0.1], [0.8]])
    xt = np.array([[-0.5], [0.1], [1.2]])
    y = np.array([0.3, -0.2, 0.9])
    th_xx, th_tx = prior.ntk(x), prior.ntk(xt, x)
    inf = frozen_ntk.mean_prediction(th_tx, th_xx, y, [1e9], 1.0)[0]
    np.testing.assert_allclose(inf, th_tx @ np.linalg.solve(th_xx, y), rtol=1e-8)
    np.testing.assert_allclose(inf[1], y[1], rtol=1e-8)  # interpolates a training point
    t = np.array([0.0, 10.0, 200.0])
    cont = frozen_ntk.mean_prediction(th_tx, th_xx, y, t, 1e-3)
    disc = frozen_ntk.mean_prediction(th_tx, th_xx, y, t, 1e-3, discrete=True)
    np.testing.assert_allclose(cont, disc, rtol=3e-3, atol=1e-9)  # differ by O(r lambda)
    assert np.all(cont[0] == 0)
    singular = np.ones((2, 2))  # rank 1
    out = frozen_ntk.mean_prediction(np.ones((1, 2)), singular, [1.0, 1.0], [5.0], 0.01)
    np.testing.assert_allclose(out, [[1 - math.exp(-0.01 * 2 * 5)]], rtol=1e-10)
    pred = frozen_ntk.mlp_prediction(prior, x, y, x, [1e6], 1.0, discrete=False)
    assert np.all(pred.std[0] < 1e-6)
    assert frozen_ntk.rate(0.3, 6) == pytest.approx(0.05)
    assert frozen_ntk.rate(0.3, 6, normalization="sum", mass2=2.0) == pytest.approx(0.6)


def test_linear_model_follows_the_frozen_ntk_exactly():
    """Only the readout of a Cos-net trained: f is linear in the trained parameters, so its
    NTK is constant and every model follows f_t = f_0 + A_t (y - f_0(X)) exactly
    (discrete GD, rate eta / n)."""
    prior = CosNet(d=1, width=64)
    data = regression_data(1, 6, x_test=TEST_POINTS[:4])
    cfg = TrainingConfig(learning_rate=0.02, steps=40, measure=(5, 40), n_models=4,
                         n_batches=2, trainable=("w1",), ntk=False)
    ds = train_ensemble(prior, data, cfg).dataset
    for s in range(4):
        params = jax.tree.map(lambda a, s=s: a[s], jax.vmap(prior.sample)(
            jax.vmap(lambda i: jax.random.fold_in(jax.random.split(jax.random.key(0))[0],
                                                  i))(jnp.arange(4))))
        only_w1 = lambda w1, x, p=params: prior.apply({**p, "w1": w1}, x)
        th_xx = np.asarray(empirical_ntk(only_w1, params["w1"], data.x), np.float64)
        th_tx = np.asarray(empirical_ntk(only_w1, params["w1"], data.x_test, data.x),
                           np.float64)
        f0x, f0t = ds["f_train"].values[0, s], ds["f"].values[0, s]
        a = frozen_ntk.transfer(th_tx, th_xx, [5, 40], 0.02 / 6, discrete=True)
        expect = f0t[None] + a @ (data.y - f0x)
        np.testing.assert_allclose(ds["f"].values[1:, s], expect, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_frozen_ntk_prediction_is_the_linearised_gd_recursion(activation):
    """``frozen_ntk.mlp_prediction`` against the linearised gradient descent run step by step:
    the train and test fields ``f = M_t f_0 + c_t`` with ``f_{t+1} = f_t - r Theta_{.x}
    (f_t(x) - y)``, ``r = eta * lr_scale / n`` (mean-normalised MSE), mean ``c_t`` and
    covariance ``M_t K M_t^T`` with the NNGP K. Deterministic (1e-9): any error in the mean
    or the spread at any time fails, e.g. the meta-test's 5% mean error at one time."""
    prior = MLP(d=1, width=512, depth=2, activation=activation, parameterization="ntk",
                b_std=0.2)
    data = regression_data(0, 8, x_test=TEST_POINTS)
    lr, times = 0.5, (0, 3, 10, 30)
    th = frozen_ntk.mlp_prediction(prior, data.x, data.y, data.x_test, times, lr)
    x = np.concatenate([data.x, data.x_test])
    n, theta, k = len(data.y), prior.ntk(x, data.x), prior.nngp(x)
    r = lr * prior.learning_rate_scale() / n
    m, c = np.eye(len(x)), np.zeros(len(x))
    for t in range(times[-1] + 1):
        if t in times:
            i = times.index(t)
            np.testing.assert_allclose(th.mean[i], c[n:], rtol=1e-9, atol=1e-12)
            cov = m @ k @ m.T
            np.testing.assert_allclose(th.cov[i], cov[n:, n:], rtol=1e-9, atol=1e-12)
        m = m - r * theta @ m[:n]
        c = c - r * theta @ (c[:n] - data.y)


@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_wide_ensemble_mean_matches_frozen_ntk(activation):
    """Cheap version of acceptance (a): N = 512, S = 128, early times, |z| < 4."""
    prior = MLP(d=1, width=512, depth=1, activation=activation, parameterization="ntk",
                b_std=0.2)
    data = regression_data(0, 8, x_test=TEST_POINTS)
    cfg = TrainingConfig(learning_rate=0.5, steps=30, measure=(3, 10, 30), n_models=128,
                         n_batches=32, ntk=False)
    ds = train_ensemble(prior, data, cfg).dataset
    z = (ds["G1"] - ds["theory_mean"]) / ds["G1_stderr"]
    assert np.all(np.abs(z.values[1:]) < 4), z.values
    # the ensemble spread follows the frozen-NTK covariance too. The standard error of a
    # standard deviation s from S models is sqrt((kurtosis - (S-3)/(S-1)) / S) / 2 relative
    # (delta method); the Gaussian 1/sqrt(2(S-1)) = 6.3% is too small for relu, whose
    # kurtosis here reaches 4.4 (rel. stderr 5-8%): with it relu's largest excess (+28% at
    # t = 3 for this seed; other seeds +7..+15%, and 0.95..1.12 with S = 512) was a
    # 4.4-"sigma" outlier, with the right error it is 3.6. This detects only a ~40% error in
    # the spread (probability 0.9); the per-model linear evolution, exact to 2e-4 in the
    # test above, is what checks the frozen-kernel map with power
    f = ds["f"].values[1:]
    n_models = f.shape[1]
    c = f - f.mean(axis=1, keepdims=True)
    kurt = np.mean(c**4, axis=1) / np.mean(c**2, axis=1) ** 2
    rel = np.sqrt((kurt - (n_models - 3) / (n_models - 1)) / n_models) / 2
    z_sd = (f.std(axis=1, ddof=1) / ds["theory_std"].values[1:] - 1) / rel
    assert np.all(np.abs(z_sd) < 4), z_sd


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_frozen_ntk_mean_at_three_widths(activation):
    """Acceptance (a): S = 256, full-batch GD (lr 0.02) on the well-conditioned 1-d set
    x = +-1.5 (relu NTK condition 0.96, erf 0.068), widths 256, 1024, 4096: the ensemble mean
    matches mu_t(x) within its errors at t = 10, 100, 1000 on all 8 test points at every
    width (studies/training-dynamics, "pair" set). On the ill-conditioned built-in 8-point
    set relu leaves the frozen-NTK prediction from t ~ 30 on (see that study's README)."""
    x = np.array([[-1.5], [1.5]])
    data = make_data(x, sine_target(x), TEST_POINTS, sine_target(TEST_POINTS))
    times = (10, 100, 1000)
    for width in (256, 1024, 4096):
        prior = MLP(d=1, width=width, depth=1, activation=activation, parameterization="ntk",
                    b_std=0.2)
        cfg = TrainingConfig(learning_rate=0.02, steps=times[-1], measure=times,
                             n_models=256, n_batches=32, ntk=False)
        ds = train_ensemble(prior, data, cfg).dataset
        z = np.abs((ds["G1"] - ds["theory_mean"]).values) / ds["G1_stderr"].values
        assert np.all(z[1:] < 4), (width, z)


# ---------------------------------------------------------------------------
# the duality: momentum GD as a damped scalar field
# ---------------------------------------------------------------------------
def duality_deviation(eta, beta=0.5, power=2, width=1024, x0=0.5, y0=1.0, t_alpha=60.0):
    """max_i |f_i - f(t_i)| / |f_0 - y0| between momentum GD (duality form) on one network at
    one point and the ODE f'' - beta~ f' + alpha L'(f) = 0, t = i sqrt(eta),
    beta~ = (beta - 1)/sqrt(eta), alpha = Theta(x0, x0), f(0) = f_0, f'(0) = 0, up to
    t = t_alpha / alpha. Float64."""
    with jax.enable_x64(True):
        prior = MLP(d=1, width=width, depth=1, activation="erf", parameterization="ntk",
                    dtype="float64")
        data = make_data([[x0]], [y0], [[x0]])
        cfg = TrainingConfig(optimizer="momentum", momentum=beta, learning_rate=eta,
                             loss="power", loss_power=power, steps=1, n_models=2,
                             n_batches=2, ntk=False)
        trainer = make_trainer(prior, data, cfg)
        state = trainer.init(jax.random.key(0))
        p0 = jax.tree.map(lambda a: a[0], state.params)
        alpha = float(empirical_ntk(prior.apply, p0, jnp.array([[x0]]))[0, 0])
        f_init = float(prior.apply(p0, jnp.array([x0])))
        steps = math.ceil(t_alpha / alpha / math.sqrt(eta))
        every = max(1, steps // 100)
        fs, ts = [f_init], [0]
        while ts[-1] < steps:
            state, _ = trainer.run(state, jnp.int32(every))
            fs.append(float(trainer.observe(state.params)["f_train"][0, 0]))
            ts.append(int(state.step))
    bt = (beta - 1) / math.sqrt(eta)

    def rhs(t, u):
        return [u[1], bt * u[1] - alpha * 0.5 * power * (u[0] - y0) ** (power - 1)]

    t_eval = np.array(ts) * math.sqrt(eta)
    sol = solve_ivp(rhs, (0, t_eval[-1]), [f_init, 0.0], t_eval=t_eval, rtol=1e-10,
                    atol=1e-12, method="LSODA")
    return float(np.max(np.abs(np.array(fs) - sol.y[0])) / abs(f_init - y0))


def test_momentum_gd_follows_the_de_sitter_scalar_ode():
    """Acceptance (d), n = 2: the deviation shrinks with eta (about linearly)."""
    devs = [duality_deviation(eta) for eta in (0.0011, 0.0278, 0.1111)]
    assert devs[0] < devs[1] < devs[2], devs
    assert devs[0] < 3e-3 and devs[2] < 0.15, devs


@pytest.mark.slow
def test_momentum_gd_follows_the_ode_quartic_loss():
    devs = [duality_deviation(eta, power=4, width=4096) for eta in (0.0011, 0.0278, 0.1111)]
    assert devs[0] < devs[1] < devs[2], devs
    assert devs[0] < 3e-3, devs


# ---------------------------------------------------------------------------
# engine behaviour
# ---------------------------------------------------------------------------
def _small(**kw):
    base = {"learning_rate": 0.5, "steps": 20, "measure": (5, 20), "n_models": 8, "n_batches": 4}
    base.update(kw)
    return TrainingConfig(**base)


def test_minibatches_masks_layer_rates_and_reproducibility():
    prior = MLP(d=1, width=32, depth=2, parameterization="mup")
    data = regression_data(0, 12, x_test=TEST_POINTS[:3])
    cfg = _small(batch_size=4, trainable=(1,), optimizer="adam", learning_rate=0.01,
                 singular_values=(1,), ntk=False)
    tr = make_trainer(prior, data, cfg)
    s0 = tr.init(jax.random.key(0))
    w_before = jax.tree.map(np.asarray, s0.params)
    s1, _ = tr.run(s0, jnp.int32(7))
    # only the middle matrix moved
    assert np.array_equal(w_before[0]["W"], np.asarray(s1.params[0]["W"]))
    assert np.array_equal(w_before[2]["W"], np.asarray(s1.params[2]["W"]))
    assert not np.array_equal(w_before[1]["W"], np.asarray(s1.params[1]["W"]))
    # same seed, same result; models read the data in their own orders
    a = train_ensemble(prior, data, cfg).dataset
    b = train_ensemble(prior, data, cfg).dataset
    np.testing.assert_array_equal(a["f"].values, b["f"].values)
    assert a["sv_1"].shape == (3, 8, 32)
    from nnft.training.trainer import _model_order

    keys = jax.random.split(jax.random.key(1), 2)
    assert not np.array_equal(_model_order(keys[0], 0, 12, 4), _model_order(keys[1], 0, 12, 4))
    epoch = np.concatenate([_model_order(keys[0], i, 12, 4) for i in range(3)])
    assert sorted(epoch.tolist()) == list(range(12))  # one epoch sees every point once
    # per-layer rates: layer_lr = 0 is not allowed, a tiny rate barely moves the layer
    with pytest.raises(ConfigError, match=r"layer_lr\[1\]: got 0"):
        _small(layer_lr=(1.0, 0, 1.0))
    slow = make_trainer(prior, data, _small(layer_lr=(1.0, 1e-6, 1.0), ntk=False))
    st, _ = slow.run(slow.init(jax.random.key(0)), jnp.int32(5))
    moved = np.abs(np.asarray(st.params[1]["W"]) - w_before[1]["W"]).max()
    moved0 = np.abs(np.asarray(st.params[0]["W"]) - w_before[0]["W"]).max()
    assert moved < 1e-4 * moved0


def test_divergence_is_reported_and_masked():
    """A large rate on a quartic loss blows up the models that start far from the target;
    they are frozen, reported with their step and masked out; the others keep training."""
    prior = MLP(d=1, width=64, depth=1, parameterization="ntk")
    data = make_data([[0.5], [-0.5]], [0.0, 0.0], TEST_POINTS[:3])
    cfg = TrainingConfig(loss="power", loss_power=4, mass2=1.0, learning_rate=8.0, steps=30,
                         measure=(10, 30), n_models=64, n_batches=8)
    res = train_ensemble(prior, data, cfg)
    ds = res.dataset
    n_div = len(res.diverged)
    assert 0 < n_div < 64, n_div
    for model, step in res.diverged.items():
        assert 0 <= step < 30
        assert ds["diverged_at"].values[model] == step
        assert not ds["valid"].values[-1, model]
    assert np.all(np.isfinite(ds["G2"].values[-1]))
    good = ds["valid"].values[-1]
    assert np.all(np.isfinite(ds["train_loss"].values[-1, good]))
    assert np.median(ds["train_loss"].values[-1, good]) < np.median(ds["train_loss"].values[0])


def _assert_same_datasets(a, b):
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_checkpoint_resume_equals_a_full_run(tmp_path):
    """stop_after, then resume: the same numbers as one run; the checkpoint is the driver's
    npz (no pickled objects) and refuses other work."""
    prior = MLP(d=1, width=16, depth=1, parameterization="ntk")
    data = regression_data(0, 6, x_test=TEST_POINTS[:3])
    cfg = _small(measure=(2, 5, 9, 20), optimizer="momentum", momentum=0.6)
    full = train_ensemble(prior, data, cfg).dataset
    with pytest.raises(RunInterrupted, match="stopped after 5 of 20 steps"):
        train_ensemble(prior, data, cfg, checkpoint_dir=tmp_path, stop_after=3)
    ckpt = tmp_path / CHECKPOINT
    with np.load(ckpt, allow_pickle=False) as z:
        assert int(z["__done__"]) == 3
        assert all(z[k].dtype != object for k in z.files)
    res = train_ensemble(prior, data, cfg, checkpoint_dir=tmp_path, resume=True)
    assert res.info.resumed_from == 5 and res.info.steps_run == 2
    _assert_same_datasets(res.dataset, full)
    other = _small(measure=(2, 5, 9, 20), optimizer="sgd")
    with pytest.raises(ConfigError, match="resume: the checkpoint"):
        train_ensemble(prior, data, other, checkpoint_dir=tmp_path, resume=True)


_KILLED_RUN = """
import sys, time
import numpy as np
from nnft.priors.mlp import MLP
from nnft.training import TrainingConfig, make_trainer, regression_data, train_ensemble
prior = MLP(d=1, width=8, depth=2, parameterization="ntk")
data = regression_data(0, 6, x_test=np.linspace(-1.5, 1.5, 3)[:, None])
cfg = TrainingConfig(learning_rate=0.5, steps=12, measure=tuple(range(1, 13)), n_models=8,
                     n_batches=4, singular_values=(1,))
trainer = make_trainer(prior, data, cfg)  # cached: train_ensemble uses this one
fast = trainer.run
def slow(state, n):  # slow enough to be killed mid-run, same numbers
    time.sleep(0.5)
    return fast(state, n)
object.__setattr__(trainer, "run", slow)
train_ensemble(prior, data, cfg, checkpoint_dir=sys.argv[1])
print("finished")
"""


def test_kill_and_resume_through_the_driver(tmp_path):
    """A run killed with SIGKILL once its checkpoint exists resumes (in this process) to
    the numbers of an uninterrupted run, bitwise."""
    import signal
    import subprocess
    import sys
    import time

    ckpt = tmp_path / CHECKPOINT
    child = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not ckpt.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ckpt.exists(), child.communicate(timeout=5)[1].decode()[-2000:]
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL and b"finished" not in out
    prior = MLP(d=1, width=8, depth=2, parameterization="ntk")
    data = regression_data(0, 6, x_test=np.linspace(-1.5, 1.5, 3)[:, None])
    cfg = TrainingConfig(learning_rate=0.5, steps=12, measure=tuple(range(1, 13)),
                         n_models=8, n_batches=4, singular_values=(1,))
    with np.load(ckpt, allow_pickle=False) as z:
        done = int(z["__done__"])
    assert 1 <= done < len(cfg.times)
    res = train_ensemble(prior, data, cfg, checkpoint_dir=tmp_path, resume=True)
    assert res.info.resumed_from == cfg.times[done - 1]
    assert res.info.steps_run == len(cfg.times) - done
    _assert_same_datasets(res.dataset, train_ensemble(prior, data, cfg).dataset)


def test_hidden_layer_observations_use_the_priors_features():
    """feature_rms is the rms of MLP.features on the test points; MLP.apply is its readout."""
    prior = MLP(d=1, width=16, depth=2, parameterization="mup")
    data = regression_data(0, 6, x_test=TEST_POINTS[:3])
    ds = train_ensemble(prior, data, _small(ntk=False), theory=False).dataset
    params = make_trainer(prior, data, _small(ntk=False)).init(jax.random.key(0)).params
    p0 = jax.tree.map(lambda a: a[0], params)
    h = jax.vmap(lambda x: prior.features(p0, x))(jnp.asarray(data.x_test, jnp.float32))
    np.testing.assert_allclose(ds["feature_rms"].values[0, 0], np.sqrt(np.mean(h * h)),
                               rtol=1e-6)
    sc = prior.layer_scales()[-1]
    readout = (sc.w_mult * (h @ p0[-1]["W"]) + sc.b_mult * p0[-1]["b"]) * prior.output_scale
    np.testing.assert_allclose(ds["f"].values[0, 0], readout, rtol=1e-5, atol=1e-7)
    assert ds["feature_change_rms"].values[0, 0] == 0


def test_cross_entropy_and_power_losses_train():
    prior = MLP(d=1, width=64, depth=1, parameterization="ntk")
    x = np.linspace(-2, 2, 10)[:, None]
    labels = (x[:, 0] > 0).astype(float)
    data = make_data(x, labels, x[:4], labels[:4])
    ds = train_ensemble(prior, data, _small(loss="cross-entropy", learning_rate=2.0,
                                            steps=50, measure=(50,))).dataset
    assert ds["train_loss"].values[-1].mean() < 0.7 * ds["train_loss"].values[0].mean()
    ds = train_ensemble(prior, regression_data(0, 6, x_test=x[:3]),
                        _small(loss="power", loss_power=4, mass2=2.0, learning_rate=0.05)).dataset
    assert ds["valid"].values.all()
    assert ds["train_loss"].values[-1].mean() < ds["train_loss"].values[0].mean()


def test_log_times():
    assert log_times(1000, 4) == (0, 1, 32, 1000)
    assert log_times(5, 10) == (0, 1, 2, 3, 4, 5)


# ---------------------------------------------------------------------------
# cards: the [training] section
# ---------------------------------------------------------------------------
def card(**training):
    return {"architecture": {"name": "mlp", "d": 1, "width": 16, "depth": 1,
                             "parameterization": "ntk"},
            "sampling": {"n_samples": 64, "n_batches": 8},
            "correlators": {"points": [-1.0, 0.0, 1.0]},
            "training": {"steps": 20, **training}}


@pytest.mark.parametrize("training, message", [
    ({"optimizer": "rmsprop"},
     "training.optimizer: got 'rmsprop'; allowed values: sgd, momentum, adam"),
    ({"x": [0.0, 1.0, 2.0], "y": [1.0, 2.0]},
     r"training.y: got \(2,\); must be a list of 3 numbers, one per row of x"),
    ({"x": [0.0, float("nan")], "y": [1.0, 2.0]},
     "training.x: got 'non-finite entries'; must be finite numbers"),
    ({"x": [0.0, 1.0], "y": [1.0, float("inf")]},
     "training.y: got 'non-finite entries'; must be finite numbers"),
    ({"measure": [5, 25]}, r"training.measure\[1\]: got 25; must be at most steps = 20"),
    ({"learning_rat": 0.1}, ("training.learning_rat: unknown key; .*did you mean "
                            "'learning_rate'")),
    ({"loss": "power", "loss_power": 3}, "training.loss_power: got 3; must be an even"),
    ({"batch_size": 100}, ("training.batch_size: got 100; must be at most the number of "
                          "training points")),
    ({"trainable": [5]}, r"training.trainable: got \[5\]; entries must be among"),
    ({"data": "mnist"}, "training.data: got 'mnist'; allowed values: sine"),
    ({"momentum": 1.0}, r"training.momentum: got 1.0; must be a number in \[0, 1\)"),
    ({"x": [[0.0, 1.0]], "y": [1.0]}, (r"training.x\[0\]: got \[0.0, 1.0\]; must be a list "
                                      "of 1 numbers")),
])
def test_bad_training_sections(training, message):
    with pytest.raises(ConfigError, match=message):
        parse_card(card(**training))


def test_training_card_runs_end_to_end(tmp_path):
    import json

    from rich.console import Console

    from nnft.app.pipeline import run_card

    c = parse_card(card(x=[-1.5, -0.5, 0.5, 1.5], y=[0.2, -0.1, 0.4, 0.0],
                        y_test=[0.0, 0.1, 0.2], n_measure=4, singular_values=[0]))
    assert c.training.config.n_models == 64 and c.training.config.n_batches == 8
    with open(tmp_path / "log.txt", "w") as log:
        out = run_card(c, tmp_path, progress=False, console=Console(file=log, width=120))
    for name in ("results.nc", "summary.json", "loss.png", "g2.png", "ntk.png"):
        assert (tmp_path / name).exists(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["times"] == out["times"] == [0, 1, 4, 20]
    assert len(summary["G1"]["theory"]) == 4
    import xarray as xr

    with xr.open_dataset(tmp_path / "results.nc", engine="h5netcdf") as ds:
        assert ds["f"].dims == ("time", "model", "point")
        assert ds["G4c"].shape == (4, 3, 3, 3, 3)


@pytest.mark.slow
def test_models_split_over_four_cpu_devices():
    """The model axis is sharded over a Mesh of 4 (forced) CPU devices; the result equals
    the single-device run to round-off. (Slow: a fresh process compiles everything, ~25 s.)"""
    import os
    import subprocess
    import sys

    code = """
import numpy as np, jax, nnft
from nnft.training import TrainingConfig, make_trainer, regression_data, train_ensemble
assert len(jax.devices()) == 4
p = nnft.MLP(d=1, width=32, depth=1, parameterization="ntk")
d = regression_data(0, 6, x_test=np.linspace(-1, 1, 3)[:, None])
cfg = TrainingConfig(learning_rate=0.5, steps=20, measure=(5, 20), n_models=8, n_batches=4,
                     batch_size=2)
st = make_trainer(p, d, cfg).init(jax.random.key(0))
assert st.params[0]["W"].sharding.spec == jax.sharding.PartitionSpec("model")
a = train_ensemble(p, d, cfg).dataset
b = train_ensemble(p, d, cfg, devices=jax.devices()[:1]).dataset
print(float(np.abs(a["f"].values - b["f"].values).max()))
"""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=False,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) < 1e-5


@pytest.mark.slow
def test_ntk_drift_exponent_by_activation():
    """Acceptance (b): relative NTK change after 100 GD steps, one hidden layer, widths 512 to
    32768 (S = 64): under ntk it falls like N^-1 for erf (smooth: the first-order change
    averages out over neurons) and like N^{-1/2} for relu (neurons whose pre-activation
    crosses zero flip phi'); under muP it is flat and O(1) (studies/training-dynamics, part
    (c)). Each slope is judged against its exponent in units of the fit's own slope_err
    (|z| < 4), and the erf and relu slopes differ by > 4 combined sigma. Power: an exponent
    off by 0.25 is detected with probability >= 0.9 (measured: detectable 0.16 for erf, 0.18
    for relu). Widths start at 512: at 128 the N^-1 correction to relu's N^{-1/2} steepens the
    fit (-0.62 +- 0.04 over 128..8192) and erf's points scatter (chi2 16 for 2 dof).
    Measured (S = 64): ntk erf -1.039 +- 0.031, relu -0.580 +- 0.034 (gap 10 sigma); muP erf
    -0.0028 +- 0.0013, relu 0.0007 +- 0.0007."""
    from conftest import detectable

    from nnft.scaling import loglog_slope

    data = regression_data(1, 8, x_test=TEST_POINTS)
    widths = (512, 2048, 8192, 32768)
    theory = {("erf", "ntk"): -1.0, ("relu", "ntk"): -0.5, ("erf", "mup"): 0.0,
              ("relu", "mup"): 0.0}
    fits = {}
    for (activation, par), exponent in theory.items():
        vals, errs = [], []
        for width in widths:
            prior = MLP(d=1, width=width, depth=1, activation=activation, parameterization=par)
            cfg = TrainingConfig(learning_rate=0.5, steps=100, measure=(100,), n_models=64,
                                 n_batches=8, max_order=2)
            x = train_ensemble(prior, data, cfg, theory=False).dataset["ntk_rel_change"]
            x = x.values[-1]
            vals.append(x.mean())
            errs.append(x.std(ddof=1) / np.sqrt(len(x)))
        fit = fits[activation, par] = loglog_slope(widths, vals, errs)
        assert abs(fit["slope"] - exponent) < 4 * fit["slope_err"], (activation, par, fit)
        assert detectable(fit["slope_err"]) <= 0.25, (activation, par, fit)
        if par == "mup":
            assert min(vals) > 0.1, (activation, vals)  # feature learning: an O(1) change
    erf, relu = fits["erf", "ntk"], fits["relu", "ntk"]
    gap = (relu["slope"] - erf["slope"]) / math.hypot(erf["slope_err"], relu["slope_err"])
    assert gap > 4, (erf, relu)
