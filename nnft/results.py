"""Results on disk: an xarray Dataset (``results.nc``) and ``summary.json``.

Everything that produces field values ends here, so the file formats are
written once. Writes are atomic (temporary file in the same folder, then
rename): a crash never leaves a half-written result.

``summary.json`` is a public contract (documented in README.md)::

    {"n_samples": S, "points": [[...], ...], "architecture": {...},
     "G2":  {"value": [[..]], "stderr": [[..]], "theory": [[..]] | null},
     "G4c": {...}, "G6c": {...}}

each field a nested list indexed by point indices (``G4c["value"][a][b][c][d]``).
Only the orders that were measured appear.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from nnft.estimators import Correlators

#: summary/Dataset name -> (kind, order)
QUANTITIES = {
    "G1": ("full", 1), "G2": ("full", 2), "G3": ("full", 3), "G4": ("full", 4),
    "G5": ("full", 5), "G6": ("full", 6),
    "G3c": ("connected", 3), "G4c": ("connected", 4), "G5c": ("connected", 5),
    "G6c": ("connected", 6),
}


def measured(correlators: Correlators) -> list[str]:
    """Names of the quantities present, e.g. ['G1', 'G2', 'G3', 'G4', 'G3c', 'G4c']."""
    orders = set(correlators.full)
    return [n for n, (kind, o) in QUANTITIES.items() if o in orders]


def theory_for(prior, points, names) -> dict[str, np.ndarray | None]:
    """Exact values from the prior's theory (None where unknown)."""
    out = {}
    for name in names:
        _kind, order = QUANTITIES[name]
        if order % 2 == 1:  # Z2-symmetric priors: odd correlators vanish
            out[name] = np.zeros((len(points),) * order)
        elif name == "G2":
            out[name] = prior.g2(points)
        elif name == "G4c":
            out[name] = prior.g4c(points)
        elif name == "G6c":
            out[name] = prior.g6c(points)
        else:
            out[name] = None
    return out


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def to_dataset(correlators: Correlators, points, theory: dict, attrs: dict) -> xr.Dataset:
    """Values, errors, theory and z-scores with labelled point coordinates."""
    points = np.asarray(points)
    p, d = points.shape
    data_vars = {}
    for name, (kind, order) in QUANTITIES.items():
        if order not in correlators.full:
            continue
        est = getattr(correlators, kind)[order]
        dims = tuple(f"p{k}" for k in range(1, order + 1))
        data_vars[name] = (dims, est.value)
        data_vars[f"{name}_stderr"] = (dims, est.stderr)
        th = theory.get(name)
        if th is not None:
            data_vars[f"{name}_theory"] = (dims, np.asarray(th, dtype=np.float64))
            with np.errstate(divide="ignore", invalid="ignore"):
                data_vars[f"{name}_z"] = (dims, (est.value - th) / est.stderr)
    coords = {f"p{k}": np.arange(p) for k in range(1, 7)}
    coords["dim"] = np.arange(d)
    coords["points"] = (("point", "dim"), points)
    ds = xr.Dataset(data_vars, coords=coords)
    ds = ds.drop_vars([c for c in ds.coords if c.startswith("p") and c[1:].isdigit()
                       and c not in ds.dims])
    ds.attrs.update({k: (json.dumps(val) if isinstance(val, (dict, list)) else val)
                     for k, val in attrs.items()})
    ds.attrs["n_samples"] = correlators.n_samples
    ds.attrs["n_batches"] = correlators.n_batches
    return ds


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    _atomic_write(Path(path), lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))


def summary(correlators: Correlators, points, theory: dict, architecture: dict) -> dict:
    out = {"n_samples": correlators.n_samples, "points": np.asarray(points).tolist(),
           "architecture": architecture}
    for name in ("G2", "G4c", "G6c", "G1", "G3", "G4", "G6"):
        kind, order = QUANTITIES[name]
        if order not in correlators.full:
            continue
        est = getattr(correlators, kind)[order]
        th = theory.get(name)
        out[name] = {"value": est.value.tolist(), "stderr": est.stderr.tolist(),
                     "theory": None if th is None else np.asarray(th).tolist()}
    return out


def write_json(obj, path: Path) -> None:
    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=1, default=_jsonable)
            fh.write("\n")

    _atomic_write(Path(path), write)


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return str(x)
