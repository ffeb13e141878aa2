"""Teacher-student tanh networks 3-32-16-1 trained by SGD on W2 only (sgd-phase-diagram).

Setup (secs. 2.1, 3.1): no biases; the teacher's matrices are ``N(0, 1 / n_{l-1})``
(``Grid.teacher_var``, ``Grid.teacher_dist`` give other teachers, e.g. torch's default
init, ``TEACHERS``), the inputs ``N(0, 1)``; ``y = W3 tanh(W2 tanh(W1 x))``. The student shares the teacher's W1 and W3
and trains only ``W2`` (16 x 32), initialised ``N(0, sigma_W^2 / 32)``, by SGD on the
per-sample loss ``l = (y - y_hat)^2 / 2`` averaged over a batch of |B| = 4 (eq. 2.28), with
learning rate eps; the temperature is ``T = eps / |B|``.

How the 14,400 trainings of the paper's grid run at once:

- W1 is frozen, so the first hidden layer ``a = tanh(W1 x)`` of every data point is computed
  once per teacher; a step only touches ``W2`` (one 16 x 32 matrix per model).
- All grid points of one teacher read the teacher's data in the same order (a fresh
  permutation each epoch, from the teacher's seed): the batch of features is gathered once per
  teacher and step and shared by the 144 students; different teachers have different orders.
  Each model still sees ordinary SGD; the students of one teacher share their sampling noise,
  which makes neighbouring grid points smoother, not biased.
- The gradient is written out (``dl/dW2 = g a^T`` with ``g = (y_hat - y) W3 * (1 - tanh^2)``)
  instead of traced by autodiff, and the models run in blocks of a few teachers so that a
  block's parameters stay in cache for all its steps (one ``lax.fori_loop`` per interval
  between measurements). A block's teachers are split over the devices, each part
  committed to its device and dispatched asynchronously, so the parts run concurrently with
  no communication (a CPU host split into one device per core gets both cores busy).
- A finished block is written atomically to ``blocks/`` and skipped on resume.

Everything a block returns is per model: eigenvalues of ``X = W2 W2^T`` and the test loss at
every measurement time, and at t = 0 and t_f the gradient norm (eq. 3.3, full training set),
the features on the test set (for ``G(t_f, 0)``, eq. 3.4, and the alignment, eq. 3.5), and
at t_f the level-spacing coefficients ``K_S, V_S, D_S`` of Appendix B from the per-sample
gradients on the training set (both bases of :func:`nnft.random_matrix.spacing_drift`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nnft import _validate as v
from nnft.random_matrix import spacing_drift
from nnft.training import log_times

N0, N1, N2 = 3, 32, 16
R = N2 / N1  # Marchenko-Pastur ratio of W2 (n2 x n1)
BLOCK_FORMAT = 2  # bump when run_block's output changes: old block files are then not reused


@dataclasses.dataclass(frozen=True)
class Grid:
    """The (eps, 1/sigma_W) grid, the teachers and the training schedule."""

    eps: tuple[float, ...] = tuple(2.0 ** k for k in range(-3, 9))
    inv_sigma: tuple[float, ...] = tuple(2.0 ** k for k in range(-8, 4))
    n_teachers: int = 100
    n_train: int = 4000
    n_test: int = 100
    batch: int = 4
    steps: int = 100_000
    per_decade: int = 5
    teachers_per_block: int = 4
    seed: int = 0
    #: the teacher's weights: N(0, teacher_var / n_{l-1}) ("normal", the paper's eq. 3.1 with
    #: teacher_var = 1), or uniform with the same variance ("uniform"; teacher_var = 1/3 is
    #: torch's default nn.Linear init U(-1/sqrt n, 1/sqrt n), see TEACHERS)
    teacher_var: float = 1.0
    teacher_dist: str = "normal"

    def __post_init__(self):
        v.require(len(self.eps) >= 1 and all(e > 0 for e in self.eps), "eps", self.eps,
                  "must be a non-empty list of positive learning rates")
        v.require(len(self.inv_sigma) >= 1 and all(s > 0 for s in self.inv_sigma),
                  "inv_sigma", self.inv_sigma, "must be a non-empty list of positive 1/sigma_W")
        v.positive_int("n_teachers", self.n_teachers)
        v.positive_int("batch", self.batch)
        v.positive_int("n_train", self.n_train, minimum=self.batch)
        v.require(self.n_train % self.batch == 0, "n_train", self.n_train,
                  f"must be a multiple of batch = {self.batch} (whole epochs)")
        v.positive_int("n_test", self.n_test)
        v.positive_int("steps", self.steps)
        v.positive_int("teachers_per_block", self.teachers_per_block)
        v.positive("teacher_var", self.teacher_var)
        v.choice("teacher_dist", self.teacher_dist, ("normal", "uniform"))

    @property
    def temperature(self) -> np.ndarray:
        return np.asarray(self.eps) / self.batch

    @property
    def sigma_w(self) -> np.ndarray:
        return 1.0 / np.asarray(self.inv_sigma)

    @property
    def times(self) -> tuple[int, ...]:
        """0 and about ``per_decade`` log-spaced steps per decade up to ``steps``."""
        return log_times(self.steps, int(self.per_decade * math.log10(self.steps)) + 2)

    @property
    def n_models(self) -> int:
        return len(self.eps) * len(self.inv_sigma) * self.n_teachers

    def blocks(self) -> list[tuple[int, int]]:
        k = self.teachers_per_block
        return [(a, min(a + k, self.n_teachers)) for a in range(0, self.n_teachers, k)]

    def fingerprint(self) -> str:
        blob = json.dumps({**dataclasses.asdict(self), "format": BLOCK_FORMAT},
                          sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# ---------------------------------------------------------------------------
# teachers and data
# ---------------------------------------------------------------------------
class Teachers(NamedTuple):
    """Stacked over teachers (axis 0): W1 (32, 3), W2 (16, 32), W3 (16,), the first hidden
    layer on the train/test inputs (k, n, 32), the targets (k, n), the data order (k, steps,
    batch) as indices into the training set."""

    w1: np.ndarray
    w2: np.ndarray
    w3: np.ndarray
    a_train: np.ndarray
    y_train: np.ndarray
    a_test: np.ndarray
    y_test: np.ndarray
    order: np.ndarray


#: named teachers for run.py --teacher: the paper's eq. 3.1, and torch's default nn.Linear
#: initialisation, with which the loss jump at 1/sigma_W = 8 sits at T ~ 1-2 as in the
#: paper (results/hypotheses.json, setup "teacher_torch_default"; README, issue 16)
TEACHERS = {"paper": {"teacher_var": 1.0, "teacher_dist": "normal"},
            "torch_default": {"teacher_var": 1.0 / 3.0, "teacher_dist": "uniform"}}


def _teacher_weights(grid: Grid, rng, shape) -> np.ndarray:
    """A teacher matrix with fan-in ``shape[-1]``: N(0, var / n) or U(+-sqrt(3 var / n))."""
    n = shape[-1] if len(shape) > 1 else N2
    if grid.teacher_dist == "uniform":
        half = math.sqrt(3 * grid.teacher_var / n)
        return rng.uniform(-half, half, shape)
    return rng.standard_normal(shape) * math.sqrt(grid.teacher_var) / math.sqrt(n)


def teacher(grid: Grid, index: int) -> dict:
    """Teacher ``index``: weights, data and data order, all from ``(grid.seed, index)``."""
    rng = np.random.default_rng([grid.seed, 0x7EAC, index])
    w1 = _teacher_weights(grid, rng, (N1, N0))
    w2 = _teacher_weights(grid, rng, (N2, N1))
    w3 = _teacher_weights(grid, rng, (N2,))
    x_train = rng.standard_normal((grid.n_train, N0))
    x_test = rng.standard_normal((grid.n_test, N0))
    a_train, a_test = np.tanh(x_train @ w1.T), np.tanh(x_test @ w1.T)
    per_epoch = grid.n_train // grid.batch
    n_epochs = -(-grid.steps // per_epoch)
    order = np.concatenate([rng.permutation(grid.n_train) for _ in range(n_epochs)])
    order = order[: grid.steps * grid.batch].reshape(grid.steps, grid.batch)
    return {"w1": w1, "w2": w2, "w3": w3, "a_train": a_train,
            "y_train": np.tanh(a_train @ w2.T) @ w3, "a_test": a_test,
            "y_test": np.tanh(a_test @ w2.T) @ w3, "order": order.astype(np.int32)}


def teachers(grid: Grid, start: int, stop: int) -> Teachers:
    ts = [teacher(grid, i) for i in range(start, stop)]
    return Teachers(**{f: np.stack([t[f] for t in ts]) for f in Teachers._fields})


def student_init(grid: Grid, start: int, stop: int) -> np.ndarray:
    """W2 of the students of teachers ``start..stop``: (k, E, S, 16, 32), entries
    ``N(0, sigma_W^2 / 32)``, independent for every (teacher, eps, sigma_W)."""
    out = np.empty((stop - start, len(grid.eps), len(grid.inv_sigma), N2, N1), np.float32)
    for i, t in enumerate(range(start, stop)):
        rng = np.random.default_rng([grid.seed, 0x57D, t])
        g = rng.standard_normal((len(grid.eps), len(grid.inv_sigma), N2, N1)) / math.sqrt(N1)
        out[i] = g * grid.sigma_w[None, :, None, None]
    return out


# ---------------------------------------------------------------------------
# the network and its gradient (written out; checked against jax.grad in the tests)
# ---------------------------------------------------------------------------
def forward(w2, a, w3):
    """``y_hat = W3 tanh(W2 a)`` for models (..., 16, 32), inputs (..., n, 32) broadcast on
    the leading axes, W3 (..., 16): returns (z, phi, y_hat) with z, phi (..., n, 16)."""
    z = jnp.einsum("...ij,...bj->...bi", w2, a)
    phi = jnp.tanh(z)
    return z, phi, jnp.einsum("...bi,...i->...b", phi, w3)


def error_signal(phi, y_hat, y, w3):
    """``g = dl/dz = (y_hat - y) W3 (1 - phi^2)`` per sample, (..., n, 16)."""
    return (y_hat - y)[..., None] * w3[..., None, :] * (1 - phi * phi)


def batch_gradient(w2, a, y, w3):
    """``dL/dW2`` of the batch mean of ``(y - y_hat)^2 / 2``: (..., 16, 32)."""
    _, phi, y_hat = forward(w2, a, w3)
    g = error_signal(phi, y_hat, y, w3)
    return jnp.einsum("...bi,...bj->...ij", g, a) / a.shape[-2]


def _expand(x):
    """Teacher arrays (k, ...) -> broadcastable against the models (k, E, S, ...)."""
    return x[:, None, None]


def train_steps(w2, t: Teachers, eps, start, n):
    """``n`` SGD steps from step ``start`` for models ``w2`` (k, E, S, 16, 32).

    The step is :func:`batch_gradient` laid out for the CPU: a teacher's models are held as
    one ``(32, E S 16)`` matrix of transposed W2s, so the forward pass is one
    ``(B, 32) x (32, E S 16)`` product and the gradient one ``(32, B) x (B, E S 16)``
    product, and the elementwise work runs along the long model axis (about 1.4x faster on
    a CPU than the untransposed layout)."""
    k, e, s = w2.shape[:3]
    m = e * s * N2
    batch = t.order.shape[-1]
    a, y = t.a_train, t.y_train
    w3 = t.w3[:, None, None, :]  # (k, 1, 1, 16)
    lr = jnp.repeat(eps, s * N2)[None, None, :]  # (1, 1, E S 16)

    def body(i, w):  # w: (k, 32, E S 16)
        idx = jax.lax.dynamic_index_in_dim(t.order, start + i, axis=1, keepdims=False)
        ab = jnp.take_along_axis(a, idx[:, :, None], axis=1)  # (k, B, 32)
        yb = jnp.take_along_axis(y, idx, axis=1)  # (k, B)
        z = jnp.einsum("kbj,kjm->kbm", ab, w).reshape(k, batch, e * s, N2)
        phi = jnp.tanh(z)
        y_hat = jnp.sum(phi * w3, axis=3)  # (k, B, E S)
        g = (y_hat - yb[:, :, None])[..., None] * w3 * (1 - phi * phi)
        grad = jnp.einsum("kbj,kbm->kjm", ab, g.reshape(k, batch, m)) / batch
        return w - lr * grad

    wt = w2.reshape(k, m, N1).swapaxes(1, 2)  # (k, 32, E S 16)
    wt = jax.lax.fori_loop(0, n, body, wt)
    return wt.swapaxes(1, 2).reshape(w2.shape)


def eigenvalues_x(w2):
    """Eigenvalues (ascending) of ``X = W2 W2^T``, (..., 16)."""
    return jnp.linalg.eigvalsh(w2 @ jnp.swapaxes(w2, -1, -2))


def test_observables(w2, t: Teachers):
    """Eigenvalues of X and the test loss ``mean (y - y_hat)^2 / 2`` per model."""
    _, phi, y_hat = forward(w2, _expand(t.a_test), _expand(t.w3))
    loss = 0.5 * jnp.mean((y_hat - _expand(t.y_test)) ** 2, axis=-1)
    return eigenvalues_x(w2), loss, phi


def train_observables(w2, t: Teachers):
    """On the training set: loss, the full-batch gradient norm (eq. 3.3) and the per-sample
    ``z`` and ``g`` that give the Appendix B coefficients."""
    z, phi, y_hat = forward(w2, _expand(t.a_train), _expand(t.w3))
    g = error_signal(phi, y_hat, _expand(t.y_train), _expand(t.w3))
    grad = jnp.einsum("...bi,...bj->...ij", g, _expand(t.a_train)) / t.a_train.shape[-2]
    loss = 0.5 * jnp.mean((y_hat - _expand(t.y_train)) ** 2, axis=-1)
    return loss, jnp.sqrt(jnp.sum(grad * grad, axis=(-2, -1))), z, g


def feature_overlap(phi_t, phi_0):
    """Per model ``1/(|D| n) sum_{a,j} phi_ja(t) phi_ja(0)`` (eq. 3.4 before the ensemble
    mean)."""
    return jnp.mean(phi_t * phi_0, axis=(-2, -1))


def alignment(phi, y, w3):
    """Per model ``h . phi / (|h| |phi|)`` with ``h_ja = y_a W3_j`` (eqs. 2.25, 3.5)."""
    h = y[..., :, None] * w3[..., None, :]
    return jnp.sum(h * phi, axis=(-2, -1)) / (
        jnp.sqrt(jnp.sum(h * h, axis=(-2, -1))) * jnp.sqrt(jnp.sum(phi * phi, axis=(-2, -1))))


# ---------------------------------------------------------------------------
# one block of teachers, start to finish
# ---------------------------------------------------------------------------
_jit_train = jax.jit(train_steps, donate_argnums=0)
_jit_test = jax.jit(test_observables)
_jit_train_obs = jax.jit(train_observables)


def _split(n_teachers: int, devices) -> list[tuple[int, int]]:
    """Contiguous teacher ranges, one per device (fewer when there are fewer teachers)."""
    n = min(n_teachers, len(devices))
    edges = np.linspace(0, n_teachers, n + 1).round().astype(int)
    return list(itertools.pairwise(edges))


def _drift(w2, z, g, chunk: int = 64) -> dict:
    """Appendix B coefficients per model in both bases (``k_s, v_s, d_s`` in the gradient's
    eigenbasis as the appendix describes, ``k_s_x, v_s_x, d_s_x`` in X's), in float64 on the
    host, ``chunk`` models at a time (the per-sample arrays are (models, n_train, 16))."""
    w2 = np.asarray(w2).reshape(-1, N2, N1)
    z = np.asarray(z).reshape(len(w2), -1, N2)
    g = np.asarray(g).reshape(len(w2), -1, N2)
    out = {}
    for basis, suffix in (("gradient", ""), ("x", "_x")):
        parts = [spacing_drift(w2[i:i + chunk], z[i:i + chunk], g[i:i + chunk], basis)
                 for i in range(0, len(w2), chunk)]
        for f in ("k_s", "v_s", "d_s"):
            out[f + suffix] = np.concatenate([getattr(p, f) for p in parts])
    return out


def run_block(grid: Grid, start: int, stop: int, on_interval=None, devices=None) -> dict:
    """Train the students of teachers ``start..stop`` over ``grid`` and return numpy arrays
    (leading axes (k, E, S)). ``on_interval(steps)`` is called after each interval.

    The teachers are split over ``devices`` (default: all), each part committed to its
    device; the parts are dispatched one after the other and run concurrently (asynchronous
    dispatch), with no communication between devices."""
    devices = list(jax.devices() if devices is None else devices)
    t_np = teachers(grid, start, stop)
    w_np = student_init(grid, start, stop)
    parts = _split(stop - start, devices)
    ts_, ws, lrs = [], [], []
    for dev, (a, b) in zip(devices, parts):
        ts_.append(jax.device_put(Teachers(*(x[a:b] for x in t_np)), dev))
        ws.append(jax.device_put(w_np[a:b], dev))
        lrs.append(jax.device_put(jnp.asarray(grid.eps, jnp.float32), dev))

    def each(fn, *args):
        out = [fn(*a) for a in zip(*args)]  # dispatch on every device, then wait
        return [jax.tree.map(np.asarray, o) for o in out]

    def cat(outs, i=None):
        return np.concatenate([o if i is None else o[i] for o in outs])

    times = grid.times
    test0 = each(_jit_test, ws, ts_)
    train0 = each(_jit_train_obs, ws, ts_)
    phi0 = cat(test0, 2)
    eig, test_loss = [cat(test0, 0)], [cat(test0, 1)]
    for a, b in itertools.pairwise(times):
        # every argument committed to the part's device: an uncommitted scalar would live on
        # the default device, and the CPU client can deadlock copying it to another device
        # that is busy with the previous interval
        ws = [_jit_train(w, t, lr, jax.device_put(np.int32(a), dev),
                         jax.device_put(np.int32(b - a), dev))
              for w, t, lr, dev in zip(ws, ts_, lrs, devices)]
        obs = each(_jit_test, ws, ts_)
        eig.append(cat(obs, 0))
        test_loss.append(cat(obs, 1))
        if on_interval is not None:
            on_interval(b - a)
    phi = cat(obs, 2)
    train_f = each(_jit_train_obs, ws, ts_)
    w_f = cat([np.asarray(w) for w in ws])
    drift = _drift(w_f, cat(train_f, 2), cat(train_f, 3))
    shape = (stop - start, len(grid.eps), len(grid.inv_sigma))
    y_test = t_np.y_test[:, None, None]
    w3 = t_np.w3[:, None, None]
    return {
        "eigenvalues": np.stack(eig, axis=3),  # (k, E, S, time, 16)
        "test_loss": np.stack(test_loss, axis=3),  # (k, E, S, time)
        "train_loss_init": cat(train0, 0), "train_loss": cat(train_f, 0),
        "grad_norm_init": cat(train0, 1), "grad_norm": cat(train_f, 1),
        "feature_overlap": np.asarray(feature_overlap(phi, phi0)),
        "feature_overlap_init": np.asarray(feature_overlap(phi0, phi0)),
        "alignment": np.asarray(alignment(phi, y_test, w3)),
        "alignment_init": np.asarray(alignment(phi0, y_test, w3)),
        **{name: x.reshape(shape) for name, x in drift.items()},
        "teacher_eigenvalues": np.linalg.eigvalsh(t_np.w2 @ np.swapaxes(t_np.w2, -1, -2)),
    }


def block_path(out_dir: Path, grid: Grid, start: int) -> Path:
    return Path(out_dir) / "blocks" / f"{grid.fingerprint()}-{start:04d}.npz"
