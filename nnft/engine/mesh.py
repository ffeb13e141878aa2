"""Devices and processes: the mesh a source shards over, and arrays back on the host.

Under ``jax.distributed`` a global array spans devices of other processes, and fetching
it whole is an error. :func:`to_host` brings back what this process can see: a
process-local array as is, a replicated one from its first local shard, and a sharded one
by an explicit all-gather (every process must call it, as every process runs the
driver). Only process 0 writes files (:func:`is_writer`).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as Spec


def data_mesh(axis: str, devices=None, divides: int | None = None) -> Mesh:
    """A 1-d mesh over ``devices`` (default all); with ``divides``, the largest prefix of
    the devices whose count divides it (e.g. chains over devices)."""
    devs = list(jax.devices() if devices is None else devices)
    if divides is not None:
        n = max(k for k in range(1, len(devs) + 1) if divides % k == 0)
        devs = devs[:n]
    return Mesh(np.array(devs), (axis,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, Spec())


def sharded(mesh: Mesh) -> NamedSharding:
    """Split the leading axis over the mesh's one axis."""
    return NamedSharding(mesh, Spec(mesh.axis_names[0]))


def _leaf_to_host(x):
    if not isinstance(x, jax.Array):
        return np.asarray(x)
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return x if x.is_fully_addressable else jax.random.wrap_key_data(
            _leaf_to_host(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    if x.is_fully_addressable:
        return np.asarray(x)
    if x.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def to_host(tree):
    """Every leaf as a numpy array this process holds (all-gathering sharded ones)."""
    return jax.tree.map(_leaf_to_host, tree)


def put_like(tree, like):
    """``tree`` (host arrays) placed with the shardings of the template ``like``."""

    def put(x, tmpl):
        sharding = getattr(tmpl, "sharding", None)
        if sharding is None or not isinstance(tmpl, jax.Array):
            return x
        if jax.dtypes.issubdtype(tmpl.dtype, jax.dtypes.prng_key):
            data = put(np.asarray(jax.random.key_data(x)), jax.random.key_data(tmpl))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(tmpl))
        x = np.asarray(x, dtype=tmpl.dtype)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    with jax.enable_x64(True):  # keep float64 sums float64 (their template's dtype)
        return jax.tree.map(put, tree, like)


def is_writer() -> bool:
    """Whether this process writes files (process 0 of a distributed run)."""
    return jax.process_index() == 0
