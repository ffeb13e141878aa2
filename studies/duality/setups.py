"""The duality study's setups and block computations (duality-nn-cosmology, issue 19).

Each ``*_block`` function is one block of :func:`nnft.engine.blocks.run_blocks`: module level,
arguments picklable, returns a dict of numpy arrays. Float64 throughout: every block runs under
``jax.enable_x64(True)`` (:func:`x64`), so importing this module changes no global setting.

- :func:`alpha_block`: Fig. 1, alpha = Theta(x0, x0) at initialisation for one (depth, width):
  one raw draw per seed serves every activation, W_std and b_std (the NTK parameterisation
  keeps the O(1) constants in the multipliers), alpha from the factorised gradient norms
  (:func:`alpha_factorised`, equal to ``nnft.empirical_ntk`` at x0, checked in the tests).
- :func:`matching_block`: Fig. 3, one architecture trained at x0 with the whole (eta, beta) x
  f0 x m grid as per-model hyperparameters of one ``train_ensemble`` per loss power n, the
  trajectory recorded at every step (``trace``) and compared with the ODE and the
  constant-alpha recursion.
- :func:`modes_block`: Figs. 4-6, 100 inputs spanning c Hubble lengths; kernel eigenbasis at
  t = 0, the mean and mode predictions (eqs. 15, 16; App. B) against the trained network.
- :func:`readout_block`: only the readout trained (alpha exactly constant): the network
  against the discrete recursion, at one input (acceptance 2) and on 100 inputs (projections
  against the discretised eq. 16, acceptance 4).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from nnft.ntk import empirical_ntk
from nnft.priors.mlp import ACTIVATIONS, MLP
from nnft.theory import field_equation as fe
from nnft.theory import gp
from nnft.training import TrainingConfig, make_data, make_trainer, train_ensemble


def x64(fn):
    """Run ``fn`` with 64-bit jax types enabled (and leave the global setting alone)."""
    @functools.wraps(fn)
    def wrapped(*args, **kw):
        with jax.enable_x64(True):
            return fn(*args, **kw)

    return wrapped


X0 = 0.5
#: the paper's (eta, beta) pairs (H = 1, 1/2, 5, 1, 1/2); (0.0278, 0.5) is listed twice there
ETA_BETA = ((1 / 9, 0.0), (4 / 9, 0.0), (1 / 900, 0.5), (1 / 36, 0.5), (1 / 9, 0.5))
B_STDS = (0.001, 0.005, 0.01, 0.05, 0.5)
W_STDS = (1.0, 0.1)
ACTS = ("erf", "relu")


@dataclasses.dataclass(frozen=True)
class Grid:
    """What one run covers (default, ``--full``, ``--reduced``)."""

    name: str = "default"
    # Fig. 1
    alpha_depths: tuple = (1, 2, 5)
    alpha_widths: tuple = (100, 1000, 10000)
    alpha_seeds: int = 32
    alpha_seeds_widest: int = 4
    # Fig. 3
    depths: tuple = (1, 2, 5)
    widths: tuple = (100, 1000)
    inits: tuple = ((1.0, 0.05), (0.1, 0.05))
    powers: tuple = (2, 4)
    f0s: tuple = (1.0, 10.0)
    ms: tuple = (0.1,)
    steps: int = 1000
    acts: tuple = ACTS
    skip: tuple = ((1000, 2), (1000, 5))  # (width, depth) pairs left out of Fig. 3
    # Figs. 4-6
    mode_depths: tuple = (1, 2)
    mode_width: int = 1000
    mode_acts: tuple = ACTS
    mode_inits: tuple = ((1.0, 0.05), (0.1, 0.01))
    mode_cs: tuple = (0.1, 1.0)
    mode_seeds: int = 2
    mode_points: int = 100
    mode_m: float = 0.2
    mode_f0: float = 1.0

    def matching_archs(self) -> list[tuple]:
        return [(d, w, a, ws, bs) for d, w, a, (ws, bs) in
                itertools.product(self.depths, self.widths, self.acts, self.inits)
                if (w, d) not in self.skip]

    def mode_archs(self) -> list[tuple]:
        return [(d, a, ws, bs, c) for d, a, (ws, bs), c in
                itertools.product(self.mode_depths, self.mode_acts, self.mode_inits,
                                  self.mode_cs)]


GRIDS = {
    "default": Grid(),
    "full": Grid(name="full", ms=(0.01, 0.1, 0.2), skip=(), mode_seeds=4),
    "reduced": Grid(name="reduced", alpha_depths=(1, 2), alpha_widths=(100, 1000),
                    alpha_seeds=8, alpha_seeds_widest=8, depths=(1,), widths=(100,),
                    inits=((1.0, 0.05),), acts=("erf",), steps=1000, mode_depths=(1,),
                    mode_width=200, mode_seeds=2, mode_acts=("erf",),
                    mode_inits=((1.0, 0.05),), mode_points=40),
}


def mlp(depth, width, activation="erf", w_std=1.0, b_std=0.05, dtype="float64") -> MLP:
    return MLP(d=1, width=int(width), depth=int(depth), activation=activation, W_std=w_std,
               b_std=b_std, parameterization="ntk", dtype=dtype)


# ---------------------------------------------------------------------------
# Fig. 1: alpha at initialisation
# ---------------------------------------------------------------------------
def alpha_factorised(prior: MLP, params, x, w_std, b_std):
    """``Theta(x, x)`` of one MLP (NTK parameterisation) at one input, every parameter
    trained: ``sum_l m_W^2 |delta_l|^2 |h_{l-1}|^2 + m_b^2 |delta_l|^2`` with ``delta_l =
    df/dz_l`` (no weight gradient is formed). ``w_std``, ``b_std`` replace the prior's own
    O(1) constants (they sit in the multipliers, so one raw draw serves them all)."""
    scales = prior.layer_scales()
    unit = dataclasses.replace(prior, W_std=1.0, b_std=1.0).layer_scales()
    act = ACTIVATIONS[prior.activation]
    assert prior.abc.scales == "multiplier" and all(s.w_std == 1 for s in scales)
    wm = [u.w_mult * w_std for u in unit]
    bm = [u.b_mult * b_std for u in unit]
    x = jnp.asarray(x, params[0]["W"].dtype)

    def forward(eps):
        h, norms = x, []
        for i, layer in enumerate(params):
            norms.append(jnp.sum(h * h))
            z = wm[i] * (layer["W"] @ h) + bm[i] * layer["b"] + eps[i]
            h = act(z) if i < len(params) - 1 else z
        return h * prior.output_scale, norms

    eps = [jnp.zeros(jnp.shape(layer["b"]), x.dtype) for layer in params]
    grads, norms = jax.grad(forward, has_aux=True)(eps)
    return sum((wm[i] ** 2 * n2 + bm[i] ** 2) * jnp.sum(g * g)
               for i, (g, n2) in enumerate(zip(grads, norms)))


@x64
def alpha_block(depth: int, width: int, n_seeds: int, seed: int = 0) -> dict:
    """alpha at x0 for every (activation, W_std, b_std) and seed: ``alpha (act, W, b,
    seed)``; the infinite-width ``gp.ntk`` beside it."""
    base = mlp(depth, width, dtype="float32" if width >= 10000 else "float64")
    combos = [(w, b) for w in W_STDS for b in B_STDS]
    ws = jnp.asarray([c[0] for c in combos])
    bs = jnp.asarray([c[1] for c in combos])
    fns = {a: jax.jit(jax.vmap(lambda p, w, b, a=a: alpha_factorised(
        dataclasses.replace(base, activation=a), p, jnp.array([X0]), w, b),
        in_axes=(None, 0, 0))) for a in ACTS}
    out = np.zeros((len(ACTS), len(W_STDS), len(B_STDS), n_seeds))
    key = jax.random.fold_in(jax.random.key(seed), 1000 * depth + width)
    for s in range(n_seeds):
        params = base.sample(jax.random.fold_in(key, s))
        for i, a in enumerate(ACTS):
            out[i, :, :, s] = np.asarray(fns[a](params, ws, bs), np.float64).reshape(
                len(W_STDS), len(B_STDS))
        del params
    inf = np.array([[[gp.ntk([[X0]], depth=depth, activation=a, W_std=w, b_std=b)[0, 0]
                      for b in B_STDS] for w in W_STDS] for a in ACTS])
    return {"alpha": out, "infinite_width": inf}


# ---------------------------------------------------------------------------
# Fig. 3: training at one input against the ODE
# ---------------------------------------------------------------------------
def _matching_models(grid: Grid):
    rows = list(itertools.product(ETA_BETA, grid.f0s, grid.ms))
    return ([r[0][0] for r in rows], [r[0][1] for r in rows], [r[1] for r in rows],
            [r[2] for r in rows])


def predictions(f_nn, alpha0, eta, beta, n, m, f0, steps):
    """ODE (alpha(0), f'(0) = 0) and constant-alpha recursion from the network's f(0); both
    ``(steps + 1,)``; the recursion's divergence step (-1: none)."""
    t = np.arange(steps + 1) * math.sqrt(eta)
    gamma = float(fe.friction(eta, beta))
    ode, _ = fe.background(t, alpha0, gamma, n=n, m=m, f0=f0, f_init=f_nn[0])
    rec = fe.recursion(steps, eta, beta, alpha0, n=n, m=m, f0=f0, f_init=f_nn[0])
    return ode, rec.f, int(rec.diverged_at)


def metrics(f_nn, pred):
    """The paper's ``|f_NN(T) - f(T)| / |f_NN(T) - f_NN(0)|`` and the same with the maximum
    over the trajectory in the numerator."""
    span = abs(f_nn[-1] - f_nn[0])
    return abs(f_nn[-1] - pred[-1]) / span, float(np.max(np.abs(f_nn - pred))) / span


@x64
def matching_block(grid: Grid, depth, width, activation, w_std, b_std) -> dict:
    """One architecture of Fig. 3: per model (n x (eta, beta) x f0 x m) the trajectory, alpha(0),
    alpha(T), divergence, the ODE / recursion predictions and their metrics."""
    prior = mlp(depth, width, activation, w_std, b_std)
    data = make_data([[X0]], [0.0], [[X0]])
    eta, beta, f0, m = _matching_models(grid)
    s = len(eta)
    out: dict = {k: [] for k in ("f_nn", "f_ode", "f_rec", "alpha0", "alphaT", "div_nn",
                                 "div_rec", "end_ode", "max_ode", "end_rec", "max_rec")}
    for n in grid.powers:
        cfg = TrainingConfig(optimizer="momentum", learning_rate=eta, momentum=beta,
                             loss="power", loss_power=n, mass2=[mm**2 for mm in m], f0=f0,
                             steps=grid.steps, measure=(grid.steps,), n_models=s,
                             n_batches=2, ntk=False, trace=True, max_order=1,
                             seed=depth * 7919 + width + 31 * n)
        ds = train_ensemble(prior, data, cfg, progress=False, theory=False).dataset
        f_all = ds["f_step"].values[:, :, 0]
        a_all = ds["alpha_step"].values[:, :, 0]
        div = ds["diverged_at"].values
        for j in range(s):
            ode, rec, drec = predictions(f_all[j], a_all[j, 0], eta[j], beta[j], n, m[j],
                                         f0[j], grid.steps)
            ok = div[j] < 0
            e_o, m_o = metrics(f_all[j], ode) if ok else (np.nan, np.nan)
            e_r, m_r = metrics(f_all[j], rec) if ok and drec < 0 else (np.nan, np.nan)
            for k, val in (("f_nn", f_all[j]), ("f_ode", ode), ("f_rec", rec),
                           ("alpha0", a_all[j, 0]), ("alphaT", a_all[j, -1]),
                           ("div_nn", div[j]), ("div_rec", drec), ("end_ode", e_o),
                           ("max_ode", m_o), ("end_rec", e_r), ("max_rec", m_r)):
                out[k].append(val)
    res = {k: np.asarray(val) for k, val in out.items()}
    res["n"] = np.repeat(np.asarray(grid.powers), s)
    for k, val in (("eta", eta), ("beta", beta), ("f0", f0), ("m", m)):
        res[k] = np.tile(np.asarray(val, np.float64), len(grid.powers))
    return res


# ---------------------------------------------------------------------------
# Figs. 4-6: many inputs, the kernel's eigenbasis
# ---------------------------------------------------------------------------
def mode_inputs(c: float, n_points: int, eta=1 / 9, beta=0.0) -> np.ndarray:
    """``n_points`` equally spaced inputs centred on 0 spanning c Hubble lengths."""
    half = 0.5 * c * float(fe.hubble_length(eta, beta))
    return np.linspace(-half, half, n_points)[:, None]


def mode_predictions(theta0, f_init, f_final, *, eta, beta, m, f0, steps):
    """Mean and modes predicted from the t = 0 eigenbasis against the network's."""
    basis = fe.eigenbasis(theta0)
    big_n = theta0.shape[0]
    gamma = float(fe.friction(eta, beta))
    t = np.array([0.0, steps * math.sqrt(eta)])
    fbar0, c0 = fe.split_mean(f_init, basis)
    fbar_t, c_t = fe.modes(t, basis.eigenvalues, gamma, n=2, m=m, f0=f0, fbar_init=fbar0,
                           c_init=c0)
    fb_nn0, c_nn0 = fe.split_mean(f_init, basis)
    fb_nn, c_nn = fe.split_mean(f_final, basis)
    mean_b, _ = fe.background(t, basis.alpha_mean, gamma, n=2, m=m, f0=f0,
                              f_init=float(np.mean(f_init)))
    lam = basis.eigenvalues
    return {
        "lambda1_over_N": lam[0] / big_n, "lambda2_over_lambda1": lam[1] / lam[0],
        "mean_overlap": basis.mean_overlap, "alpha_mean": basis.alpha_mean,
        "fbar_nn": fb_nn, "fbar_nn0": fb_nn0, "fbar_pred": fbar_t[-1],
        "mean_nn": float(np.mean(f_final)), "mean_nn0": float(np.mean(f_init)),
        "mean_pred_appB": mean_b[-1],
        "c_nn": c_nn, "c_nn0": c_nn0, "c_pred": c_t[-1], "eigenvalues": lam,
    }


@x64
def modes_block(grid: Grid, depth, activation, w_std, b_std, c) -> dict:
    """One configuration of Figs. 4-6: empirical kernels at t = 0 per seed, the
    infinite-width kernel, training (eta = 1/9, beta = 0, n = 2, target f0 everywhere)."""
    eta, beta, steps = 1 / 9, 0.0, grid.steps
    x = mode_inputs(c, grid.mode_points, eta, beta)
    prior = mlp(depth, grid.mode_width, activation, w_std, b_std)
    data = make_data(x, np.zeros(len(x)), x, probe=x[:2])
    s = max(2, grid.mode_seeds)
    cfg = TrainingConfig(optimizer="momentum", learning_rate=eta, momentum=beta,
                         loss="power", loss_power=2, mass2=grid.mode_m**2, f0=grid.mode_f0,
                         steps=steps, measure=(steps,), n_models=s, n_batches=2, ntk=False,
                         max_order=1, seed=int(1000 * c) + depth * 17 + (activation == "relu"))
    ds = train_ensemble(prior, data, cfg, progress=False, theory=False).dataset
    params = make_trainer(prior, data, cfg).init(jax.random.key(cfg.seed)).params
    rows = []
    for j in range(s):
        pj = jax.tree.map(lambda a, j=j: a[j], params)
        theta0 = np.asarray(empirical_ntk(prior.apply, pj, jnp.asarray(x)), np.float64)
        rows.append(mode_predictions(theta0, ds["f_train"].values[0, j],
                                     ds["f_train"].values[-1, j], eta=eta, beta=beta,
                                     m=grid.mode_m, f0=grid.mode_f0, steps=steps))
    out = {k: np.asarray([r[k] for r in rows]) for k in rows[0]}
    th_inf = gp.ntk(x, depth=depth, activation=activation, W_std=w_std, b_std=b_std)
    b_inf = fe.eigenbasis(th_inf)
    out["inf_lambda1_over_N"] = np.asarray(b_inf.eigenvalues[0] / len(x))
    out["inf_lambda2_over_lambda1"] = np.asarray(b_inf.eigenvalues[1] / b_inf.eigenvalues[0])
    out["inf_mean_overlap"] = np.asarray(b_inf.mean_overlap)
    out["diverged"] = ds["diverged_at"].values
    return out


# ---------------------------------------------------------------------------
# only the readout trained: the network is the recursion
# ---------------------------------------------------------------------------
def _readout_ntk(prior: MLP, params, x):
    def only_readout(ro, xx):
        return prior.apply((*params[:-1], ro), xx)

    return np.asarray(empirical_ntk(only_readout, params[-1], jnp.asarray(x)), np.float64)


@x64
def readout_block(grid: Grid, depth=2, width=100, activation="erf") -> dict:
    """(a) One input, the Fig. 3 (eta, beta) x f0 grid, n = 2 and 4, m = 0.1: the network
    against the constant-alpha recursion (alpha(t) recorded: constant). (b) 100 inputs
    spanning one Hubble length, n = 2: projections ``v_i . (f - f0)`` against the discretised
    eq. 16 (and against eq. 16 itself, closed form per mode)."""
    prior = mlp(depth, width, activation, 1.0, 0.05)
    data = make_data([[X0]], [0.0], [[X0]])
    ro = (depth,)
    rows = list(itertools.product(ETA_BETA, grid.f0s))
    eta, beta = [r[0][0] for r in rows], [r[0][1] for r in rows]
    f0 = [r[1] for r in rows]
    dev, alpha_spread, div_nn, div_rec = [], [], [], []
    for n in grid.powers:
        cfg = TrainingConfig(optimizer="momentum", learning_rate=eta, momentum=beta,
                             loss="power", loss_power=n, mass2=0.01, f0=f0, steps=grid.steps,
                             measure=(grid.steps,), n_models=len(rows), n_batches=2,
                             ntk=False, trace=True, trainable=ro, max_order=1, seed=5 + n)
        ds = train_ensemble(prior, data, cfg, progress=False, theory=False).dataset
        f, a = ds["f_step"].values[:, :, 0], ds["alpha_step"].values[:, :, 0]
        for j in range(len(rows)):
            rec = fe.recursion(grid.steps, eta[j], beta[j], a[j, 0], n=n, m=0.1, f0=f0[j],
                               f_init=f[j, 0])
            dn, dr = int(ds["diverged_at"].values[j]), int(rec.diverged_at)
            div_nn.append(dn)
            div_rec.append(dr)
            stop = grid.steps + 1 if dn < 0 else max(dn - 5, 1)  # before the blow-up
            dev.append(np.max(np.abs(f[j, :stop] - rec.f[:stop])) / abs(f0[j] - f[j, 0]))
            alpha_spread.append(np.ptp(a[j, :stop]) / a[j, 0])
    out = {"one_input_dev": np.asarray(dev), "alpha_rel_spread": np.asarray(alpha_spread),
           "div_nn": np.asarray(div_nn), "div_rec": np.asarray(div_rec)}
    out.update(_readout_modes(grid, prior, ro))
    return out


def _readout_modes(grid: Grid, prior: MLP, ro) -> dict:
    eta, beta, m, f0 = 1 / 9, 0.0, grid.mode_m, grid.mode_f0
    x = mode_inputs(1.0, grid.mode_points, eta, beta)
    times = tuple(range(0, grid.steps + 1, max(1, grid.steps // 50)))[1:]
    data = make_data(x, np.zeros(len(x)), x, probe=x[:2])
    cfg = TrainingConfig(optimizer="momentum", learning_rate=eta, momentum=beta,
                         loss="power", loss_power=2, mass2=m**2, f0=f0, steps=grid.steps,
                         measure=times, n_models=2, n_batches=2, ntk=False, trainable=ro,
                         max_order=1, seed=11)
    ds = train_ensemble(prior, data, cfg, progress=False, theory=False).dataset
    params = make_trainer(prior, data, cfg).init(jax.random.key(cfg.seed)).params
    p0 = jax.tree.map(lambda a: a[0], params)
    basis = fe.eigenbasis(_readout_ntk(prior, p0, x))
    proj = (ds["f_train"].values[:, 0] - f0) @ basis.vectors  # (time, N)
    big_n = len(x)
    kern = basis.eigenvalues / big_n * m**2  # per-mode coupling (lambda_i / N) L''
    # the discretised eq. 16: p_{k+1} = p_k + beta (p_k - p_{k-1}) - eta (lambda_i/N) L'' p_k
    p_prev = p_cur = proj[0].copy()
    disc = {0: p_cur}
    for k in range(grid.steps):
        p_prev, p_cur = p_cur, p_cur + beta * (p_cur - p_prev) - eta * kern * p_cur
        disc[k + 1] = p_cur
    t_all = np.asarray(ds["time"].values)
    rec = np.stack([disc[int(k)] for k in t_all])
    scale = np.max(np.abs(proj[0]))
    gamma = float(fe.friction(eta, beta))
    cont = np.stack([fe.oscillator(t_all * math.sqrt(eta), lam / big_n, gamma, m=m, f0=0.0,
                                   f_init=p0_).f
                     for lam, p0_ in zip(np.maximum(basis.eigenvalues, 1e-300), proj[0])],
                    axis=1)
    return {"modes_dev_discrete": np.asarray(np.max(np.abs(proj - rec)) / scale),
            "modes_dev_ode": np.asarray(np.max(np.abs(proj - cont)) / scale),
            "modes_top_eigenvalues": basis.eigenvalues[:5] / big_n}
