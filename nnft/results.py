"""Results on disk: an xarray Dataset (``results.nc``) and ``summary.json``.

Everything that produces field values ends here, so the file formats are
written once. Writes go through :func:`nnft.engine.files.atomic_write_bytes`
(temporary file in the same folder, fsync, rename; the user's umask): a crash
never leaves a half-written result, and a full disk is one ``DiskFull`` error.

``results.nc`` describes itself (CF-style): every variable has ``long_name``,
``units`` and a ``description``; every dimension has a coordinate (``p1 .. pn``
index into ``point``, whose coordinate ``points`` holds the inputs); the attributes
hold the nnft / jax / numpy / xarray versions, the seed, the estimator, and the
card verbatim (``card``, TOML text).

``summary.json`` is a public contract (documented in README.md)::

    {"n_samples": S, "n_batches": B, "seed": ..., "points": [[...], ...],
     "architecture": {...}, "orders": [2, 4],
     "G2":  {"value": [[..]], "stderr": [[..]], "theory": [[..]] | null},
     "G4c": {...}, "G6c": {...}, "verdicts": {"G2": {...}, ...}}

each field a nested list indexed by point indices (``G4c["value"][a][b][c][d]``).
Only the orders that were measured (the card's ``orders``) appear.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import xarray as xr

from nnft.engine.checkpoint import jsonable
from nnft.engine.files import atomic_write_bytes
from nnft.estimators import Correlators

#: summary/Dataset name -> (kind, order)
QUANTITIES = {
    "G1": ("full", 1), "G2": ("full", 2), "G3": ("full", 3), "G4": ("full", 4),
    "G5": ("full", 5), "G6": ("full", 6),
    "G3c": ("connected", 3), "G4c": ("connected", 4), "G5c": ("connected", 5),
    "G6c": ("connected", 6),
}
_ARGS = "x_a, x_b, x_c, x_d, x_e, x_f".split(", ")


def long_name(name: str) -> str:
    """E.g. 'G4c' -> 'connected 4-point function (joint cumulant) <phi(x_a) ... phi(x_d)>_c'."""
    kind, order = QUANTITIES[name]
    args = " ".join(f"phi({a})" for a in _ARGS[:order])
    if kind == "full":
        return f"{order}-point function E[{args}]"
    return f"connected {order}-point function (joint cumulant) <{args}>_c"


def reported(orders, connected: bool = True) -> list[str]:
    """The names a card's ``orders`` ask for: 1 -> G1, 2 -> G2, n >= 3 -> Gnc (connected)
    or Gn (``connected = false``)."""
    out = []
    for o in sorted(orders):
        out.append(f"G{o}" if o <= 2 or not connected else f"G{o}c")
    return out


def measured(correlators: Correlators) -> list[str]:
    """Names of every quantity computed, e.g. ['G1', 'G2', 'G3', 'G4', 'G3c', 'G4c']
    (all orders up to the largest asked: the estimator needs the lower moments)."""
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


def software_versions() -> dict:
    import jax

    from nnft import __version__

    return {"nnft_version": __version__, "jax_version": jax.__version__,
            "numpy_version": np.__version__, "xarray_version": xr.__version__}


def estimator_description(n_batches: int) -> str:
    return (f"streaming float64 moments per batch -> joint cumulants (moment-cumulant "
            f"recursion); standard errors from leave-one-batch-out jackknife over "
            f"{n_batches} batches")


def _variables(correlators, theory, names, verdicts) -> dict:
    out = {}
    for name in names:
        kind, order = QUANTITIES[name]
        if order not in correlators.full:
            continue
        est = getattr(correlators, kind)[order]
        dims = tuple(f"p{k}" for k in range(1, order + 1))
        ln = long_name(name)
        attrs = {"long_name": ln, "units": "1",
                 "description": f"{ln}; indices p1..p{order} point into `points`"}
        v = (verdicts or {}).get(name)
        if v is not None:
            attrs.update({"verdict": v.outcome, "p_value": v.p_value,
                          "verdict_reference": v.reference})
        out[name] = xr.Variable(dims, est.value, attrs)
        out[f"{name}_stderr"] = xr.Variable(dims, est.stderr, {
            "long_name": f"standard error of {name}", "units": "1",
            "description": "leave-one-batch-out jackknife standard error"})
        th = theory.get(name)
        if th is not None:
            th = np.asarray(th, dtype=np.float64)
            out[f"{name}_theory"] = xr.Variable(dims, th, {
                "long_name": f"exact theory of {name}", "units": "1",
                "description": "the prior's closed form (zero for odd orders: Z2 symmetry)"})
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (est.value - th) / est.stderr
            out[f"{name}_z"] = xr.Variable(dims, z, {
                "long_name": f"z-score of {name} against theory", "units": "1",
                "description": f"({name} - {name}_theory) / {name}_stderr, entry by entry "
                             "(entries are correlated; see the `verdict` attributes)"})
    return out


def _attr(value):
    """A netCDF-storable attribute: numbers and strings as they are, the rest as JSON."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    return json.dumps(value, default=str)


def to_dataset(correlators: Correlators, points, theory: dict, attrs: dict, *,
               names=None, verdicts: dict | None = None) -> xr.Dataset:
    """Values, errors, theory and z-scores with labelled point coordinates, described
    by attributes (see the module docstring). ``names`` (default: all computed)."""
    points = np.asarray(points)
    p, d = points.shape
    data_vars = _variables(correlators, theory, names or measured(correlators), verdicts)
    used = sorted({dim for var in data_vars.values() for dim in var.dims})
    coords = {dim: (dim, np.arange(p), {"long_name": f"point index of argument {dim[1:]} "
                                                     "(into `point`)"}) for dim in used}
    coords["point"] = ("point", np.arange(p), {"long_name": "point index"})
    coords["dim"] = ("dim", np.arange(d), {"long_name": "input-space component"})
    coords["points"] = (("point", "dim"), points,
                        {"long_name": "input points x_a", "units": "1"})
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update({"title": "nnft correlators", "Conventions": "CF-1.10",
                     "history": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
                                " created by nnft", **software_versions(),
                     "estimator": "moments",
                     "estimator_description": estimator_description(correlators.n_batches)})
    for k, val in attrs.items():
        if isinstance(val, dict) and k == "architecture":
            ds.attrs.update({f"architecture_{a}": _attr(b) for a, b in val.items()
                             if b is not None})
        ds.attrs[k] = _attr(val)
    if verdicts:
        ds.attrs["verdicts"] = json.dumps({n: v.to_dict() for n, v in verdicts.items()})
    ds.attrs["n_samples"] = correlators.n_samples
    ds.attrs["n_batches"] = correlators.n_batches
    return ds


#: long names of the per-model and derived variables of training and MCMC runs
LONG_NAMES = {
    "f": "network output on the test points", "f_train": "network output on the train points",
    "train_loss": "training loss", "test_loss": "test loss",
    "ntk_eigenvalues": "eigenvalues of the empirical NTK on the train points",
    "ntk_trace": "trace of the empirical NTK", "ntk_entropy": "entropy of the NTK spectrum",
    "ntk_effective_rank": "effective rank of the NTK",
    "ntk_rel_change": "relative change of the NTK since step 0",
    "feature_rms": "rms of the last hidden layer", "feature_change_rms":
    "rms change of the last hidden layer since step 0", "valid": "model finite (not diverged)",
    "theory_mean": "frozen-NTK theory of the mean output",
    "theory_std": "frozen-NTK theory of the output's std over initialisations",
    "diverged_at": "step at which the loss turned non-finite (-1: never)",
    "time": "training step", "model": "model index", "x_test": "test points",
    "x_train": "train inputs", "y_train": "train targets", "y_test": "test targets",
}
_SUFFIXES = {"_stderr": "standard error of", "_reweighted": "importance-reweighted free draws:",
             "_slope_finite_N": "first-order perturbative slope dG/dlambda at finite N:",
             "_slope_infinite_N": "first-order perturbative slope dG/dlambda at N = oo:",
             "_theory": "exact theory of", "_z": "z-score against theory of"}


def _guess_long_name(name: str) -> str:
    if name in LONG_NAMES:
        return LONG_NAMES[name]
    if name in QUANTITIES:
        return long_name(name)
    if name.startswith("sv_"):
        return f"singular values of the weight matrix of layer {name[3:].split('_')[0]}"
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix in name:
            base, _, rest = name.partition(suffix)
            return f"{_SUFFIXES[suffix]} {base}{(' ' + rest.strip('_')) if rest else ''}"
    return name.replace("_", " ")


def describe(ds: xr.Dataset, attrs: dict | None = None) -> xr.Dataset:
    """``ds`` with a ``long_name`` on every variable, a coordinate on every dimension and
    the software versions (plus ``attrs``) in its attributes."""
    ds = ds.assign_coords({dim: np.arange(n) for dim, n in ds.sizes.items()
                           if dim not in ds.coords})
    for name, var in ds.variables.items():
        if not var.attrs.get("long_name"):
            var.attrs["long_name"] = (f"index along {name}" if name in ds.dims
                                      and name not in LONG_NAMES else _guess_long_name(name))
    ds.attrs.update(software_versions())
    ds.attrs.update({k: _attr(v) for k, v in (attrs or {}).items()})
    return ds


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    """``ds`` as netCDF-4 at ``path``, atomically. The file is made in memory first, so a
    full disk is :class:`~nnft.engine.files.DiskFull` (one line), never an HDF5 crash."""
    atomic_write_bytes(path, bytes(ds.to_netcdf(engine="h5netcdf")))


def summary(correlators: Correlators, points, theory: dict, architecture: dict,
            names=None, seed=None, verdicts: dict | None = None) -> dict:
    """The public summary of the ``names`` measured (default: G2 and the connected
    correlators of the orders computed)."""
    if names is None:
        names = ["G2", *[f"G{o}c" for o in (4, 6) if o in correlators.full]]
    out = {"n_samples": correlators.n_samples, "n_batches": correlators.n_batches,
           "points": np.asarray(points).tolist(), "architecture": architecture,
           "orders": [QUANTITIES[n][1] for n in names]}
    if seed is not None:
        out["seed"] = seed
    for name in names:
        kind, order = QUANTITIES[name]
        if order not in correlators.full:
            continue
        est = getattr(correlators, kind)[order]
        th = theory.get(name)
        out[name] = {"value": est.value.tolist(), "stderr": est.stderr.tolist(),
                     "theory": None if th is None else np.asarray(th).tolist()}
    if verdicts:
        out["verdicts"] = {n: v.to_dict() for n, v in verdicts.items()}
    return out


def write_json(obj, path: Path) -> None:
    """``obj`` as indented JSON at ``path``, atomically (numpy values become lists/numbers)."""
    text = json.dumps(obj, indent=1, default=jsonable) + "\n"
    atomic_write_bytes(path, text.encode())
