"""A memory budget for one step: ``chunk_size`` is an upper bound, the budget decides.

The working set of a jitted step is what XLA reports for the compiled program
(arguments, outputs and temporaries: ``Compiled.memory_analysis()``). A source compiles
its step at the requested chunk, and if that does not fit the budget it lowers the chunk
in proportion (the working set is linear in the chunk) and compiles again. Results do not
depend on the chunk, so this changes only speed. The default budget is a quarter of the
free memory of the device (accelerators) or of the host, at most 64 MiB on a CPU: a
step whose working set stays near the caches is faster there (at width 100 a 24 MiB step
runs about 1.5x more networks per second than a 377 MiB one; ``benchmarks/ensemble.py``
measures the chunk sweep).
"""

from __future__ import annotations

import math
import os
import re

import jax
import numpy as np

from nnft import _validate as v

#: the largest default budget on a CPU host (bytes of one step's working set)
CPU_DEFAULT_CAP = 2**26

#: size units of ``memory_limit``: decimal (kB = 1000 B) and binary (KiB = 1024 B)
SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_size(field: str, value) -> int:
    """A memory size in bytes: an integer (bytes) or a string such as ``"2GiB"``,
    ``"512MiB"``, ``"1.5GB"`` (units B, kB, MB, GB, TB and KiB, MiB, GiB, TiB; any case)."""
    allowed = ('must be a number of bytes > 0 (an integer) or a size such as "2GiB", '
               '"512MiB" or "1.5GB" (units B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)')
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v.require(value > 0, field, value, allowed)
        return int(value)
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    v.require(match is not None and match.group(2).lower() in SIZE_UNITS | {"": 1},
              field, value, allowed)
    size = float(match.group(1)) * SIZE_UNITS.get(match.group(2).lower(), 1)
    v.require(math.isfinite(size) and size >= 1, field, value, allowed)
    return int(size)


def _host_available() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def default_budget(devices=None) -> int:
    """A quarter of the free memory of the first device (or the host, capped on a CPU)."""
    dev = (list(devices) if devices is not None else jax.local_devices())[0]
    stats = None
    try:
        stats = dev.memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory statistics
        stats = None
    if stats and "bytes_limit" in stats:
        return max(1, (stats["bytes_limit"] - stats.get("bytes_in_use", 0)) // 4)
    return max(1, min(_host_available() // 4, CPU_DEFAULT_CAP))


def working_set(compiled) -> int | None:
    """Bytes a compiled step needs (arguments + outputs + temporaries), if XLA reports it."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend reports it
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - m.alias_size_in_bytes)


def fit_chunk(compile_at, chunk: int, unit: int, budget: int):
    """``(chunk, compiled, lowered_from)``: the largest multiple of ``unit`` <= ``chunk``
    whose compiled step fits ``budget`` bytes (``compile_at(c)`` compiles for chunk ``c``).
    ``lowered_from`` is the requested chunk when it was lowered, else None."""
    compiled = compile_at(chunk)
    need = working_set(compiled)
    if need is None or need <= budget or chunk <= unit:
        return chunk, compiled, None
    requested = chunk
    for _ in range(4):  # the working set is linear in the chunk: one or two rounds suffice
        chunk = max(unit, int(chunk * budget / need) // unit * unit)
        compiled = compile_at(chunk)
        need = working_set(compiled)
        if need is None or need <= budget or chunk <= unit:
            break
    return chunk, compiled, requested
