"""The study's autoencoder (issue 15; the paper's architecture figure is missing):

    x -> [enc hidden, ReLU] -> 200 (ReLU) -> W1 (200 x 2, no bias) -> W2 (2 x 2, no bias)
      -> 200 (ReLU) -> [mirror] -> out (sigmoid)

MSE loss, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8), batch 32, the seeds vmapped. Dense
weights are N(0, 1/fan_in) with zero biases, so ``W1 ~ N(0, 1/200)`` and ``P0 = N(0, I/200)``.
One epoch is a random permutation of the training set cut into full batches (the remainder is
dropped)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


class Config(NamedTuple):
    epochs: int = 80
    seeds: int = 5
    batch: int = 32
    width: int = 200  # the layer feeding W1 (its rows)
    hidden: tuple = ()  # layers before it (Fashion-MNIST: (512,))


def _dense(key, n_in, n_out):
    return {"w": jax.random.normal(key, (n_in, n_out)) / jnp.sqrt(n_in), "b": jnp.zeros(n_out)}


def init(key, n_in: int, cfg: Config) -> dict:
    sizes = (n_in,) + tuple(cfg.hidden) + (cfg.width,)
    keys = jax.random.split(key, 2 * len(sizes) + 2)
    enc = [_dense(keys[i], sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]
    back = (2,) + sizes[::-1]  # 2 -> width -> mirrored hidden -> n_in
    dec = [_dense(keys[len(sizes) + i], back[i], back[i + 1]) for i in range(len(back) - 1)]
    w1 = jax.random.normal(keys[-2], (cfg.width, 2)) / jnp.sqrt(cfg.width)
    w2 = jax.random.normal(keys[-1], (2, 2)) / jnp.sqrt(2.0)
    return {"enc": enc, "w1": w1, "w2": w2, "dec": dec}


def encode(params, x):
    """The features entering the first bottleneck (the inputs W1's rows multiply)."""
    h = x
    for layer in params["enc"]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return h


def decode(params, z2):
    h = z2
    for layer in params["dec"][:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    last = params["dec"][-1]
    return jax.nn.sigmoid(h @ last["w"] + last["b"])


def apply(params, x):
    z1 = encode(params, x) @ params["w1"]
    return decode(params, z1 @ params["w2"])


def loss_fn(params, x):
    return jnp.mean((apply(params, x) - x) ** 2)


OPT = optax.adam(LR, b1=B1, b2=B2, eps=EPS)


def _epoch(params, opt_state, key, x, batch: int):
    n_batches = x.shape[0] // batch
    order = jax.random.permutation(key, x.shape[0])[: n_batches * batch].reshape(n_batches, batch)

    def step(carry, idx):
        p, s = carry
        loss, g = jax.value_and_grad(loss_fn)(p, x[idx])
        upd, s = OPT.update(g, s, p)
        return (optax.apply_updates(p, upd), s), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
    return params, opt_state, losses.mean()


def train(x: np.ndarray, cfg: Config, keep_epochs) -> dict:
    """Train ``cfg.seeds`` autoencoders at once. Returns numpy arrays: ``rows`` (epochs+1, S,
    width, 2), ``w2`` (epochs+1, S, 2, 2), ``loss`` (epochs+1, S; entry 0 the full-data loss at
    initialisation, entry t the mean batch loss of epoch t), and ``enc_<i>_{w,b}`` (len(keep),
    S, ...) the encoder at the epochs in ``keep_epochs``."""
    x = jnp.asarray(x, jnp.float32)
    seeds = jnp.arange(cfg.seeds)
    params = jax.vmap(lambda s: init(jax.random.key(s), x.shape[1], cfg))(seeds)
    opt_state = jax.vmap(OPT.init)(params)
    epoch = jax.jit(jax.vmap(lambda p, s, k: _epoch(p, s, k, x, cfg.batch)))
    keep = sorted({int(e) for e in keep_epochs})
    rows, w2s, losses, encs = [params["w1"]], [params["w2"]], [jax.vmap(loss_fn, (0, None))(
        params, x)], {}

    def keep_enc(t, p):
        if t in keep:
            encs[t] = jax.tree.map(np.asarray, p["enc"])

    keep_enc(0, params)
    for t in range(1, cfg.epochs + 1):
        keys = jax.vmap(lambda s, t=t: jax.random.fold_in(jax.random.key(10_000 + s), t))(seeds)
        params, opt_state, loss = epoch(params, opt_state, keys)
        rows.append(params["w1"])
        w2s.append(params["w2"])
        losses.append(loss)
        keep_enc(t, params)
    out = {"rows": np.asarray(jnp.stack(rows), np.float64),
           "w2": np.asarray(jnp.stack(w2s), np.float64),
           "loss": np.asarray(jnp.stack(losses), np.float64),
           "keep_epochs": np.asarray(keep)}
    for i in range(len(encs[keep[0]])):
        for name in ("w", "b"):
            out[f"enc_{i}_{name}"] = np.stack([encs[t][i][name] for t in keep])
    return out


def features(block: dict, epoch: int, seed: int, x: np.ndarray) -> np.ndarray:
    """The encoder output of seed ``seed`` at a kept ``epoch`` on inputs ``x`` (float64)."""
    k = int(np.flatnonzero(block["keep_epochs"] == epoch)[0])
    h = np.asarray(x, np.float64)
    i = 0
    while f"enc_{i}_w" in block:
        h = np.maximum(h @ block[f"enc_{i}_w"][k, seed] + block[f"enc_{i}_b"][k, seed], 0.0)
        i += 1
    return h
