"""The one checkpoint format: a pytree of arrays in an ``.npz``, tagged with its work.

A checkpoint holds whatever a driver needs to continue (a source's state and an
estimator's running sums) as the leaves of one pytree, plus the number of steps done and
the *fingerprint* of the work. Restoring needs a template of the same structure (the
state a fresh run would start from), as in orbax and flax: the structure is checked, the
leaves are replaced. Typed PRNG keys are stored as their key data. Writes are atomic and
durable (:func:`nnft.engine.files.atomic_write`); loading refuses a checkpoint made for
other work, naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import jax
import numpy as np

from nnft._validate import ConfigError
from nnft.engine.files import atomic_write_bytes


def fingerprint(work: dict) -> str:
    """A stable digest of a JSON-able description of the work (sha256 of sorted JSON)."""
    text = json.dumps(work, sort_keys=True, default=jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def jsonable(x):
    """``json.dumps`` default: numpy arrays and scalars as lists and numbers, else ``str``."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return str(x)


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _leaf_to_numpy(x) -> np.ndarray:
    if _is_key(x):
        x = jax.random.key_data(x)
    return np.asarray(x)


def save_arrays(path: str | Path, arrays: dict) -> None:
    """Write named arrays as an ``.npz`` (no pickles), atomically and durably."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(a) for k, a in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())


def load_arrays(path: str | Path) -> dict:
    """The named arrays of an ``.npz`` written by :func:`save_arrays` (pickles refused)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save(path: str | Path, tree, *, work: str, done: int, meta: dict | None = None) -> None:
    """Write ``tree`` (host arrays) with ``done`` steps and fingerprint ``work``, atomically."""
    leaves, treedef = jax.tree.flatten(tree)
    arrays = {f"leaf{i:05d}": _leaf_to_numpy(x) for i, x in enumerate(leaves)}
    save_arrays(path, {"__work__": np.asarray(work), "__done__": np.asarray(done, np.int64),
                       "__treedef__": np.asarray(str(treedef)),
                       "__meta__": np.asarray(json.dumps(meta or {}, default=jsonable)),
                       **arrays})


def load(path: str | Path, like, *, work: str):
    """``(tree, done, meta)`` from ``path``; ``like`` is a template pytree of the same shape."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        if str(z["__work__"]) != work:
            raise ConfigError(f"resume: the checkpoint {path} was made for different work "
                              "(architecture, points, settings or seed differ); remove it "
                              "or use another output folder")
        leaves, treedef = jax.tree.flatten(like)
        if str(z["__treedef__"]) != str(treedef) or len(leaves) != sum(
                k.startswith("leaf") for k in z.files):
            raise ConfigError(f"resume: the checkpoint {path} has another layout (written by "
                              "another version of nnft?); remove it to start fresh")
        restored = []
        for i, tmpl in enumerate(leaves):
            arr = z[f"leaf{i:05d}"]
            if _is_key(tmpl):
                arr = jax.random.wrap_key_data(arr, impl=jax.random.key_impl(tmpl))
            elif np.shape(arr) != np.shape(tmpl):
                raise ConfigError(f"resume: the checkpoint {path} holds an array of shape "
                                  f"{np.shape(arr)} where {np.shape(tmpl)} is expected")
            restored.append(arr)
        done = int(z["__done__"])
        meta = json.loads(str(z["__meta__"]))
    return jax.tree.unflatten(treedef, restored), done, meta


def read_done(path: str | Path) -> int | None:
    """Steps done in the checkpoint at ``path`` (None when there is none)."""
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return int(z["__done__"])
