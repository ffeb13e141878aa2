"""Why the study differs from the paper (issue 16): one candidate cause at a time, on a
reduced grid.

    python studies/sgd_phases/hypotheses.py            # every setup: results/hypotheses.json
    python studies/sgd_phases/hypotheses.py baseline sum_over_batch   # only these
    python studies/sgd_phases/hypotheses.py --list     # the setups and what each changes

The reduced grid is the 1/sigma_W = 8 column of the paper's plane (eps = 2^-3 .. 2^8, so
T = 2^-5 .. 2^6 with |B| = 4) for ``--teachers`` teachers (default 16, teachers 0..15 of the
study's seed). Its three lowest temperatures (T <= 1/8) are "the corner" where the loss
floor is read. Every setup changes one thing against ``baseline`` (the study's setup,
``teacher_student.py``); ``baseline`` itself is also measured in several ways (test set of
100 or 10,000 points, train loss, the last-10%-of-training average, median over teachers).

Per setup the file holds, for every T of the column: the mean test loss at t_f over the
teachers with its standard error, the median, the mean train loss, the mean of the test
loss over the last 10% of training, the mean test loss on 10,000 fresh test points, the
mean final gradient norm; the loss curve of the corner (mean over teachers and the three
lowest T) at the measurement times, with its local slope d log L / d log t over the last
decade; and two summaries with bootstrap errors over teachers:

- ``floor``: the lowest mean test loss at t_f over the corner's T (T <= 1/8), the paper's
  "1e-7" (``corner_mean_test_loss``: the mean over all three);
- ``t_c``: the first temperature above that at which the column's mean test loss exceeds 10x
  the floor (log-log interpolation between grid points), the paper's "T ~ 1"; also
  ``eps_c = |B| T_c``; ``t_jump``: the geometric midpoint of the neighbouring T with the
  largest rise of the mean loss.

``hessian`` holds, per teacher scale, the spectrum summary of the train-loss Hessian at the
teacher's W2 (:func:`hessian_summary`): the GD stability edge and the loss of linearised
gradient flow from W2 = 0 at the corner's flow times eps t_f.

    python studies/sgd_phases/hypotheses.py --table        # the README's table
    python studies/sgd_phases/hypotheses.py --resummarise  # floor / T_c from stored losses

The trainer here is a plain per-model SGD (every model gathers its own batch), slower than
the study's but able to run every variant; for ``baseline`` it takes exactly the study's
steps (the tests check it against ``teacher_student.train_steps``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import teacher_student as ts

from nnft.results import write_json

N0, N1, N2 = ts.N0, ts.N1, ts.N2
EPS = tuple(2.0 ** k for k in range(-3, 9))
INV_SIGMA = 8.0
CORNER = 3  # the three lowest T of the column
BIG_TEST = 10_000
OUT = HERE / "results" / "hypotheses.json"


@dataclasses.dataclass(frozen=True)
class Setup:
    """One variant of the training. Defaults are the study's (and the paper's text)."""

    name: str
    what: str = "the study's setup"
    loss_scale: float = 0.5  # per-sample loss = loss_scale * (y - y_hat)^2
    reduce: str = "mean"  # the batch gradient: "mean" or "sum" of the per-sample ones
    sequential: bool = False  # apply the |B| per-sample steps one after another
    data: str = "shared_perm"  # shared_perm | model_perm | shared_replace | fresh
    batch: int = 4
    teacher_var: float = 1.0  # teacher weights N(0, teacher_var / n_{l-1})
    teacher_dist: str = "normal"  # "normal" or "uniform" (same variance)
    input_var: float = 1.0  # inputs N(0, input_var)
    dtype: str = "float32"
    steps: int = 100_000
    eps: tuple[float, ...] = EPS

    @property
    def temperature(self) -> np.ndarray:
        return np.asarray(self.eps) / self.batch

    @property
    def grad_factor(self) -> float:
        """The batch gradient is ``grad_factor * mean_a (y_hat - y) d y_hat / d W2``."""
        return 2 * self.loss_scale * (self.batch if self.reduce == "sum" else 1)


B16_EPS = tuple(4 * e for e in EPS)  # |B| = 16 at the same T = eps / |B|

SETUPS = {s.name: s for s in (
    Setup("baseline"),
    # the loss normalisation (n_L = 1, so "over outputs" changes nothing)
    Setup("no_half", "per-sample loss (y - y_hat)^2, no 1/2 (torch MSELoss)", loss_scale=1.0),
    Setup("sum_over_batch", "batch loss summed, not averaged, over the |B| samples",
          reduce="sum"),
    # what eps multiplies
    Setup("sequential", "eps times each per-sample gradient, the |B| samples applied in turn",
          sequential=True),
    # the data
    Setup("model_perm", "a fresh permutation per epoch for every model (not per teacher)",
          data="model_perm"),
    Setup("replacement", "batches drawn with replacement (shared per teacher)",
          data="shared_replace"),
    Setup("fresh", "fresh samples every step (online SGD, no fixed set), per model",
          data="fresh"),
    Setup("batch16", "|B| = 16 at the same T (eps = 16 T): is it a function of T alone?",
          batch=16, eps=B16_EPS),
    # the teacher's and inputs' scales
    Setup("teacher_var_3", "teacher weights N(0, 3 / n) per layer", teacher_var=3.0),
    Setup("teacher_var_third", "teacher weights N(0, 1 / (3 n)) per layer (the variance of "
          "torch's default U(+-1/sqrt n))", teacher_var=1.0 / 3.0),
    Setup("teacher_torch_default", "teacher weights U(-1/sqrt n, 1/sqrt n) (torch's default "
          "nn.Linear init)", teacher_var=1.0 / 3.0, teacher_dist="uniform"),
    Setup("inputs_var_third", "inputs N(0, 1/3) (|x|^2 = 1 on average)", input_var=1.0 / 3.0),
    Setup("inputs_var_3", "inputs N(0, 3)", input_var=3.0),
    # precision
    Setup("float64", "float64 throughout", dtype="float64"),
    # two torch defaults together: the teacher's init and MSELoss (no 1/2)
    Setup("torch_pipeline", "torch's default teacher init and MSELoss (no 1/2) together; the "
          "loss is still measured as eq. 2.6", teacher_var=1.0 / 3.0, teacher_dist="uniform",
          loss_scale=1.0),
)}
# longer training at the corner only: is the floor set by t_f?
LONG = Setup("long_1e6", "t_f = 1e6 (10x), the corner only", steps=1_000_000, eps=EPS[:CORNER])


# ---------------------------------------------------------------------------
# teachers, data and students
# ---------------------------------------------------------------------------
def _draw_w(rng, shape, var, fan_in, dist):
    if dist == "uniform":
        half = math.sqrt(3 * var / fan_in)
        return rng.uniform(-half, half, shape)
    return rng.standard_normal(shape) * math.sqrt(var) / math.sqrt(fan_in)


def make_teacher(setup: Setup, index: int, n_train: int = 4000, n_test: int = 100,
                 seed: int = 0) -> dict:
    """Teacher ``index``: the same random stream as :func:`teacher_student.teacher` (so the
    baseline teachers are the study's), scaled as ``setup`` says, plus 10,000 extra test
    points from an independent stream."""
    rng = np.random.default_rng([seed, 0x7EAC, index])
    w1 = _draw_w(rng, (N1, N0), setup.teacher_var, N0, setup.teacher_dist)
    w2 = _draw_w(rng, (N2, N1), setup.teacher_var, N1, setup.teacher_dist)
    w3 = _draw_w(rng, (N2,), setup.teacher_var, N2, setup.teacher_dist)
    sx = math.sqrt(setup.input_var)
    x_train = rng.standard_normal((n_train, N0)) * sx
    x_test = rng.standard_normal((n_test, N0)) * sx
    per_epoch = n_train // setup.batch
    n_epochs = -(-setup.steps // per_epoch)
    if setup.data == "shared_perm":
        order = np.concatenate([rng.permutation(n_train) for _ in range(n_epochs)])
        order = order[: setup.steps * setup.batch].reshape(setup.steps, setup.batch)
    else:
        order = None
    big = np.random.default_rng([seed, 0xB16, index]).standard_normal((BIG_TEST, N0)) * sx

    def net(x):
        a = np.tanh(x @ w1.T)
        return a, np.tanh(a @ w2.T) @ w3

    a_train, y_train = net(x_train)
    a_test, y_test = net(x_test)
    a_big, y_big = net(big)
    return {"w1": w1, "w2": w2, "w3": w3, "a_train": a_train, "y_train": y_train,
            "a_test": a_test, "y_test": y_test, "a_big": a_big, "y_big": y_big,
            "order": order}


def student_init(setup: Setup, index: int, seed: int = 0) -> np.ndarray:
    """W2 of teacher ``index``'s students, (E, 16, 32), ``N(0, sigma_W^2 / 32)`` at
    1/sigma_W = 8, from the study's stream for that teacher."""
    rng = np.random.default_rng([seed, 0x57D, index])
    return rng.standard_normal((len(setup.eps), N2, N1)) / math.sqrt(N1) / INV_SIGMA


# ---------------------------------------------------------------------------
# the trainer: models (k teachers, E learning rates), each gathering its own batch
# ---------------------------------------------------------------------------
def _forward(w, a, w3):
    """w (k, E, 16, 32), a (k, E, n, 32), w3 (k, 1, 16) -> phi (k, E, n, 16), y_hat."""
    phi = jnp.tanh(jnp.einsum("keij,kenj->keni", w, a))
    return phi, jnp.einsum("keni,kei->ken", phi, jnp.broadcast_to(w3, w.shape[:2] + (N2,)))


def _grad(w, a, y, w3, factor):
    """``factor * mean_b (y_hat - y) dy_hat/dW2`` over the batch axis of a (k, E, B, 32)."""
    phi, y_hat = _forward(w, a, w3)
    g = (y_hat - y)[..., None] * w3[:, :, None, :] * (1 - phi * phi)
    return factor * jnp.einsum("kebi,kebj->keij", g, a) / a.shape[2]


def _epoch_fn(setup: Setup):
    """A jitted run of ``n`` steps; the batches are given as indices into the training set
    (k, E, n, B), or for ``fresh`` as inputs (k, E, n, B, 3) passed through the teacher."""
    factor = setup.grad_factor

    def batch_of(t, xb_or_ids):
        if setup.data != "fresh":  # gather each model's batch from its teacher's set
            ki = jnp.arange(xb_or_ids.shape[0])[:, None, None]
            return t["a_train"][ki, xb_or_ids], t["y_train"][ki, xb_or_ids]
        a = jnp.tanh(jnp.einsum("kij,kebj->kebi", t["w1"], xb_or_ids))
        phi = jnp.tanh(jnp.einsum("kij,kebj->kebi", t["w2"], a))
        return a, jnp.einsum("kebi,ki->keb", phi, t["w3"])

    def run(w, t, lr, xs):
        def body(i, w):
            ab, yb = batch_of(t, xs[:, :, i])
            if setup.sequential:
                for b in range(setup.batch):
                    w = w - lr * _grad(w, ab[:, :, b:b + 1], yb[:, :, b:b + 1],
                                       t["w3"][:, None], factor)
                return w
            return w - lr * _grad(w, ab, yb, t["w3"][:, None], factor)

        return jax.lax.fori_loop(0, xs.shape[2], body, w)

    return jax.jit(run, donate_argnums=0)


def _loss(w, a, y, w3):
    """Per model ``mean (y - y_hat)^2 / 2`` (the paper's eq. 2.6, whatever the training
    loss), a (k, n, 32) shared by the models of a teacher."""
    phi = jnp.tanh(jnp.einsum("keij,knj->keni", w, a))
    y_hat = jnp.einsum("keni,ki->ken", phi, w3)
    return 0.5 * jnp.mean((y_hat - y[:, None]) ** 2, axis=-1)


def _grad_norm(w, a, y, w3):
    """|dL/dW2| of eq. 2.6 over the set (eq. 3.3)."""
    phi = jnp.tanh(jnp.einsum("keij,knj->keni", w, a))
    y_hat = jnp.einsum("keni,ki->ken", phi, w3)
    g = (y_hat - y[:, None])[..., None] * w3[:, None, None, :] * (1 - phi * phi)
    grad = jnp.einsum("keni,knj->keij", g, a) / a.shape[1]
    return jnp.sqrt(jnp.sum(grad * grad, axis=(-2, -1)))


_jit_loss = jax.jit(_loss)
_jit_grad_norm = jax.jit(_grad_norm)


def measure_epochs(n_epochs: int) -> list[int]:
    """Epoch ends at which the test loss is recorded: log-spaced, plus the last 10% of
    training (10 equally spaced ends) for the late-time average."""
    logs = {round(float(x)) for x in np.logspace(0, math.log10(n_epochs), 16)}
    last = {n_epochs - i * max(1, n_epochs // 100) for i in range(10)}
    return sorted(e for e in logs | last if 1 <= e <= n_epochs)


_fast_step = None


def train(setup: Setup, n_teachers: int, seed: int = 0, chunk_steps: int = 1000,
          teachers: list[int] | None = None, general: bool = False) -> dict:
    """Train the column for ``setup``: arrays per (teacher, eps).

    Setups whose batches are shared by a teacher's models run on the study's own step,
    :func:`teacher_student.train_steps`, with the learning rate times
    :attr:`Setup.grad_factor` (the same update); the others (and ``general=True``) on the
    per-model trainer :func:`_epoch_fn`."""
    fast_step = jax.jit(ts.train_steps, static_argnums=(3, 4))
    idx = list(range(n_teachers)) if teachers is None else list(teachers)
    dt = np.float64 if setup.dtype == "float64" else np.float32
    tch = [make_teacher(setup, i, seed=seed) for i in idx]
    k, e = len(idx), len(setup.eps)
    stack = {f: np.stack([t[f] for t in tch]).astype(dt)
             for f in ("w1", "w2", "w3", "a_train", "y_train", "a_test", "y_test", "a_big",
                       "y_big")}
    w = np.stack([student_init(setup, i, seed) for i in idx]).astype(dt)  # (k, E, 16, 32)
    rng = np.random.default_rng([seed, 0x4E5, *idx])
    n_train = stack["a_train"].shape[1]
    b = setup.batch
    per_epoch = n_train // b
    chunk = min(chunk_steps, setup.steps)
    n_chunks = -(-setup.steps // chunk)
    marks = set(measure_epochs(n_chunks))
    ctx = jax.enable_x64(True) if dt == np.float64 else jax.enable_x64(False)
    fast = (setup.data in ("shared_perm", "shared_replace") and not setup.sequential
            and not general)
    with ctx:
        run = _epoch_fn(setup)
        lr_fast = jnp.asarray(np.asarray(setup.eps, dt) * setup.grad_factor)
        tj = {f: jnp.asarray(v) for f, v in stack.items()}
        lr = jnp.asarray(np.asarray(setup.eps, dt)[None, :, None, None])
        wj = jnp.asarray(w)
        perms = None
        times, test_curve = [0], [np.asarray(_jit_loss(wj, tj["a_test"], tj["y_test"],
                                                         tj["w3"]))]
        done = 0
        for c in range(n_chunks):
            n = min(chunk, setup.steps - done)
            if setup.data == "fresh":
                xs = rng.standard_normal((k, e, n, b, N0)) * math.sqrt(setup.input_var)
                xs = jnp.asarray(xs.astype(dt))
            else:
                if setup.data == "shared_perm":
                    ids = np.stack([t["order"][done:done + n] for t in tch])[:, None]
                    ids = np.broadcast_to(ids, (k, e, n, b))
                elif setup.data == "shared_replace":
                    ids = np.broadcast_to(rng.integers(0, n_train, (k, 1, n, b)), (k, e, n, b))
                else:  # model_perm: each model its own permutation per epoch
                    need = (done % per_epoch) + n
                    if perms is None or done % per_epoch == 0:
                        perms = np.stack([[rng.permutation(n_train) for _ in range(e)]
                                          for _ in range(k)])
                    start = done % per_epoch
                    ids = perms[:, :, start * b: start * b + n * b].reshape(k, e, n, b)
                    assert need <= per_epoch, "chunks must divide epochs"
                xs = jnp.asarray(np.ascontiguousarray(ids, dtype=np.int32))
            if fast:  # the study's own step (eps folded with the loss normalisation)
                tt = ts.Teachers(None, None, tj["w3"], tj["a_train"], tj["y_train"], None,
                                 None, xs[:, 0])
                wj = fast_step(wj[:, :, None], tt, lr_fast, 0, n)[:, :, 0]
            else:
                wj = run(wj, tj, lr, xs)
            done += n
            if (c + 1) in marks:
                times.append(done)
                test_curve.append(np.asarray(_jit_loss(wj, tj["a_test"], tj["y_test"],
                                                       tj["w3"])))
        out = {
            "times": np.asarray(times),
            "test_curve": np.stack(test_curve, axis=-1),  # (k, E, time)
            "test_loss": test_curve[-1],
            "train_loss": np.asarray(_jit_loss(wj, tj["a_train"], tj["y_train"], tj["w3"])),
            "big_test_loss": np.asarray(_jit_loss(wj, tj["a_big"], tj["y_big"], tj["w3"])),
            "grad_norm": np.asarray(_jit_grad_norm(wj, tj["a_train"], tj["y_train"],
                                                   tj["w3"])),
            "w2": np.asarray(wj),
        }
    return out


# ---------------------------------------------------------------------------
# summaries with bootstrap errors over teachers
# ---------------------------------------------------------------------------
def _crossing(temps, loss, start, factor=10.0):
    """First T after index ``start`` at which ``loss`` (over T) exceeds ``factor *
    loss[start]``, log-log interpolated; NaN if it never does."""
    target = math.log(factor * loss[start])
    ll = np.log(np.maximum(loss, 1e-300))
    lt = np.log(temps)
    above = [i for i in range(start + 1, len(loss)) if ll[i] > target]
    if not above:
        return float("nan")
    i = above[0]
    f = (target - ll[i - 1]) / (ll[i] - ll[i - 1])
    return float(math.exp(lt[i - 1] + f * (lt[i] - lt[i - 1])))


def _stats(loss_kt, temps):
    """floor and T_c of the teacher mean of ``loss_kt`` (teachers, T). The floor is the
    lowest mean test loss over the corner's T (T <= 1/8); T_c the first T above it where
    the mean loss is 10x that."""
    mean = loss_kt.mean(axis=0)
    best = int(np.argmin(mean[:CORNER]))
    floor = float(mean[best])
    if len(temps) <= CORNER:
        return floor, float("nan")
    return floor, _crossing(temps, mean, best)


def _jump(loss_kt, temps):
    """Geometric midpoint of the neighbouring T with the largest rise of log mean loss."""
    mean = loss_kt.mean(axis=0)
    if len(temps) <= CORNER:
        return float("nan"), float("nan")
    d = np.diff(np.log10(mean))
    i = int(np.argmax(d))
    return float(math.sqrt(temps[i] * temps[i + 1])), float(d[i])


def bootstrap(loss_kt, temps, n_boot: int = 2000, seed: int = 0) -> dict:
    """floor and T_c with bootstrap standard errors and 16-84% intervals over teachers."""
    rng = np.random.default_rng(seed)
    floor, t_c = _stats(loss_kt, temps)
    t_j = _jump(loss_kt, temps)[0]
    k = loss_kt.shape[0]
    draws = []
    for _ in range(n_boot):
        sample = loss_kt[rng.integers(0, k, k)]
        draws.append((*_stats(sample, temps), _jump(sample, temps)[0]))
    draws = np.array(draws)
    out = {}
    for j, (name, val) in enumerate((("floor", floor), ("t_c", t_c), ("t_jump", t_j))):
        d = draws[:, j][np.isfinite(draws[:, j])]
        out[name] = {"value": val,
                     "stderr": float(d.std(ddof=1)) if d.size > 1 else float("nan"),
                     "interval_16_84": [float(np.percentile(d, 16)),
                                        float(np.percentile(d, 84))] if d.size else None,
                     "log10_stderr": float(np.log10(d).std(ddof=1)) if d.size > 1 else None,
                     "median": float(np.median(d)) if d.size else None,
                     "finite_fraction": float(d.size / n_boot)}
    return out


def _mean_se(x):
    x = np.asarray(x, np.float64)
    return x.mean(axis=0).tolist(), (x.std(axis=0, ddof=1) / math.sqrt(len(x))).tolist()


def _other_measurements(test, others: dict, temps) -> dict:
    """The same floor and T_c from the other measurements of the loss in the same run
    (train loss, 10,000 test points, the last-10% average) and the teachers' median."""
    out = {}
    for name, arr in others.items():
        f, t = _stats(np.asarray(arr), temps)
        out[f"floor_{name}"], out[f"t_c_{name}"] = f, t
    f, _ = _stats(np.median(test, axis=0, keepdims=True), temps)
    out["floor_median"] = f
    out["corner_mean_test_loss"] = float(np.asarray(test)[:, :CORNER].mean())
    return out


def summarise(setup: Setup, res: dict, seconds: float) -> dict:
    temps = setup.temperature
    test = res["test_loss"]  # (k, E)
    m, se = _mean_se(test)
    times = res["times"]
    late = times >= 0.9 * times[-1]
    late_avg = res["test_curve"][..., late].mean(axis=-1)
    corner = res["test_curve"][:, :CORNER].mean(axis=(0, 1))
    # the local slope of the corner's loss curve over the last decade of t
    sel = times >= times[-1] / 10
    slope = float(np.polyfit(np.log(times[sel]), np.log(corner[sel]), 1)[0])
    out = {
        "what": setup.what, "setup": dataclasses.asdict(setup),
        "n_teachers": int(test.shape[0]), "seconds": seconds,
        "temperature": temps.tolist(), "eps": list(setup.eps),
        "test_loss": {"mean": m, "stderr": se,
                      "median": np.median(test, axis=0).tolist()},
        "train_loss_mean": res["train_loss"].mean(axis=0).tolist(),
        "big_test_loss_mean": res["big_test_loss"].mean(axis=0).tolist(),
        "late_average_test_loss_mean": late_avg.mean(axis=0).tolist(),
        "grad_norm_mean": res["grad_norm"].mean(axis=0).tolist(),
        "per_teacher_test_loss": test.tolist(),
        "per_teacher_other_losses": {"train": res["train_loss"].tolist(),
                                     "big_test": res["big_test_loss"].tolist(),
                                     "late_average": late_avg.tolist()},
        "jump_decades": _jump(test, temps)[1],
        "corner_curve": {"times": times.tolist(), "mean_test_loss": corner.tolist(),
                         "last_decade_slope": slope},
        **bootstrap(test, temps),
    }
    if len(temps) > CORNER:
        out["eps_c"] = {k2: (v * setup.batch if isinstance(v, float) else v)
                        for k2, v in out["t_c"].items() if k2 in ("value", "stderr")}
    # the same floor and T_c from the other measurements of the loss (one run, measured
    # differently): train loss, 10,000 test points, late-time average
    out.update(_other_measurements(test, out["per_teacher_other_losses"], temps))
    return out


def hessian_at_teacher(index: int, setup: Setup = SETUPS["baseline"]) -> dict:
    """Spectrum of the Hessian of the train loss (eq. 2.6) in W2 at the teacher's W2 (Gauss-
    Newton = exact there: every residual is 0), the GD stability edge eps = 2 / lambda_max,
    and the linearised gradient-flow loss of a student started at W2 = 0 (1/sigma_W -> inf)
    ``L(tau) = 1/2 sum_k lambda_k c_k^2 exp(-2 lambda_k tau)``, c = W2* in H's eigenbasis."""
    t = make_teacher(setup, index)
    a, w2, w3 = t["a_train"], t["w2"], t["w3"]
    phi = np.tanh(a @ w2.T)
    jac = ((w3 * (1 - phi**2))[:, :, None] * a[:, None, :]).reshape(len(a), -1)  # (n, 512)
    h = jac.T @ jac / len(a)
    lam, u = np.linalg.eigh(h)
    c = u.T @ w2.ravel()
    return {"lam": lam, "c": c}


def linear_flow_loss(lam, c, tau):
    lam = np.maximum(lam, 0)
    return 0.5 * np.sum(lam[:, None] * c[:, None] ** 2 * np.exp(-2 * lam[:, None] * tau[None]),
                        axis=0)


HESSIAN_SETUPS = ("baseline", "teacher_var_3", "teacher_var_third", "teacher_torch_default",
                  "inputs_var_third", "inputs_var_3")


def hessian_summary(n_teachers: int, setup: Setup = SETUPS["baseline"]) -> dict:
    """Across teachers: lambda_max, the GD edge 2/lambda_max, the number of eigenvalues below
    1e-6 lambda_max, and the linearised flow loss at the corner's gradient-flow times
    eps t_f (eps = 1/8, 1/4, 1/2, t_f = 1e5) and the flow time it needs to reach 1e-7."""
    lam_max, edges, soft, flow, need = [], [], [], [], []
    taus = np.asarray([0.125e5, 0.25e5, 0.5e5])
    grid = np.logspace(2, 12, 201)
    var_y = []
    for i in range(n_teachers):
        hs = hessian_at_teacher(i, setup)
        var_y.append(float(np.mean(make_teacher(setup, i)["y_test"] ** 2)))
        lam, c = hs["lam"], hs["c"]
        lam_max.append(lam[-1])
        edges.append(2 / lam[-1])
        soft.append(int(np.sum(lam < 1e-6 * lam[-1])))
        flow.append(linear_flow_loss(lam, c, taus))
        curve = linear_flow_loss(lam, c, grid)
        below = np.flatnonzero(curve < 1e-7)
        need.append(float(grid[below[0]]) if below.size else float("inf"))
    flow = np.asarray(flow)
    need = np.asarray(need)
    return {
        "n_teachers": n_teachers,
        "mean_square_target": float(np.mean(var_y)),
        "lambda_max_median": float(np.median(lam_max)),
        "gd_edge_eps_median": float(np.median(edges)),
        "gd_edge_eps_range": [float(np.min(edges)), float(np.max(edges))],
        "soft_modes_below_1e-6_lambda_max_median": float(np.median(soft)),
        "linear_flow_loss_at_eps_t_f": {"eps_t_f": taus.tolist(),
                                        "mean": flow.mean(axis=0).tolist(),
                                        "median": np.median(flow, axis=0).tolist()},
        "linear_flow_time_to_1e-7": {
            "median": float(np.median(need)),
            "fraction_finite_below_1e12": float(np.mean(np.isfinite(need)))},
    }


def cross_checks(data: dict) -> dict:
    """Numbers that combine setups: eps_c against the GD edge 2/lambda_max for every teacher
    and input scale, and the steps to a floor of 1e-7 if the corner's loss kept falling at
    its last-decade slope."""
    out = {"eps_c_over_gd_edge": {}, "steps_to_1e-7_at_last_slope": {}}
    for name, h in (data.get("hessian") or {}).items():
        r = data["setups"].get(name)
        if r is not None and "eps_c" in r:
            out["eps_c_over_gd_edge"][name] = r["eps_c"]["value"] / h["gd_edge_eps_median"]
    for name, r in data["setups"].items():
        slope = r["corner_curve"]["last_decade_slope"]
        t_f = r["corner_curve"]["times"][-1]
        out["steps_to_1e-7_at_last_slope"][name] = (
            t_f * (r["floor"]["value"] / 1e-7) ** (1 / -slope) if slope < 0 else float("inf"))
    ratios = list(out["eps_c_over_gd_edge"].values())
    out["eps_c_over_gd_edge_range"] = [min(ratios), max(ratios)] if ratios else None
    return out


def resummarise(path: Path = OUT) -> dict:
    """Recompute floor, T_c and the jump of every stored setup from its per-teacher final
    test losses (after a change of those definitions; no training)."""
    data = json.loads(Path(path).read_text())
    for r in data["setups"].values():
        test = np.asarray(r["per_teacher_test_loss"])
        temps = np.asarray(r["temperature"])
        r.update(bootstrap(test, temps))
        r["jump_decades"] = _jump(test, temps)[1]
        if "per_teacher_other_losses" in r:
            r.update(_other_measurements(test, r["per_teacher_other_losses"], temps))
        if len(temps) > CORNER:
            b = r["setup"]["batch"]
            r["eps_c"] = {"value": r["t_c"]["value"] * b, "stderr": r["t_c"]["stderr"] * b}
    data["cross_checks"] = cross_checks(data)
    write_json(data, path)
    return data


def table(path: Path = OUT) -> str:
    """The README's table of the setups, from the stored file."""
    data = json.loads(Path(path).read_text())
    base = data["setups"]["baseline"]
    rows = [("| setup | what changes | floor (T <= 1/8) | floor / baseline | T_c (10x) "
             "| eps_c | jump at T | t^slope (corner, last decade) |"),
            "|---|---|---|---|---|---|---|---|"]

    def pm(d, fmt):
        if d["value"] != d["value"]:  # NaN
            return "-"
        iv = d.get("interval_16_84")
        rng_ = f" [{iv[0]:{fmt}}, {iv[1]:{fmt}}]" if iv else ""
        return f"{d['value']:{fmt}}{rng_}"

    for name, r in data["setups"].items():
        jump = r["t_jump"]["value"]
        eps_c = r.get("eps_c", {}).get("value", float("nan"))
        rows.append(
            f"| `{name}` | {r['what'].replace('|', chr(92) + '|')} | {pm(r['floor'], '.1e')} | "
            f"{r['floor']['value'] / base['floor']['value']:.2g} | {pm(r['t_c'], '.2g')} | "
            f"{eps_c:.2g} | {jump:.2g} | {r['corner_curve']['last_decade_slope']:.2f} |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="setups to run (default: all, and the long run)")
    ap.add_argument("--teachers", type=int, default=16)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--table", action="store_true", help="print the README's table")
    ap.add_argument("--hessian", action="store_true",
                    help="only recompute the Hessian summaries (no training)")
    ap.add_argument("--resummarise", action="store_true",
                    help="recompute floor / T_c from the stored per-teacher losses")
    ap.add_argument("--no-long", action="store_true", help="skip the 1e6-step corner run")
    args = ap.parse_args(argv)
    if args.resummarise:
        return resummarise(args.out)
    if args.hessian:
        data = json.loads(args.out.read_text())
        data["hessian"] = {n: hessian_summary(args.teachers, SETUPS[n]) for n in HESSIAN_SETUPS}
        data["cross_checks"] = cross_checks(data)
        write_json(data, args.out)
        return data
    if args.table:
        print(table(args.out))
        return None
    if args.list:
        for s in [*SETUPS.values(), LONG]:
            print(f"{s.name:24s} {s.what}")
        return None
    names = args.names or [*SETUPS, *([] if args.no_long else [LONG.name])]
    everything = {**SETUPS, LONG.name: LONG}
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    results = old.get("setups", {})
    for name in names:
        setup = everything[name]
        t0 = time.perf_counter()
        res = train(setup, args.teachers)
        sec = time.perf_counter() - t0
        results[name] = summarise(setup, res, sec)
        r = results[name]
        print(f"{name:24s} floor {r['floor']['value']:.2e} +- {r['floor']['stderr']:.1e}  "
              f"T_c {r['t_c']['value']:.3g} +- {r['t_c']['stderr']:.2g}  "
              f"jump {r['t_jump']['value']:.3g}  "
              f"slope {r['corner_curve']['last_decade_slope']:.2f}  ({sec:.0f} s)",
              flush=True)
        payload = {"grid": {"inv_sigma": INV_SIGMA, "n_teachers": args.teachers,
                            "corner_temperatures": list(np.asarray(EPS[:CORNER]) / 4)},
                   "setups": results, "hessian": old.get("hessian")}
        write_json(payload, args.out)
    payload = {"grid": {"inv_sigma": INV_SIGMA, "n_teachers": args.teachers,
                        "corner_temperatures": list(np.asarray(EPS[:CORNER]) / 4)},
               "setups": results,
               "hessian": {n: hessian_summary(args.teachers, SETUPS[n]) for n in HESSIAN_SETUPS}}
    payload["cross_checks"] = cross_checks(payload)
    write_json(payload, args.out)
    return payload


if __name__ == "__main__":
    main()
