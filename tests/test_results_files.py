"""Self-describing files (results.nc, summary.json, posterior.nc) and the API results."""

import json

import numpy as np
import pytest
import xarray as xr

import nnft
from nnft.app.cards import load_card
from nnft.app.pipeline import run_card

CARD = """# a small mlp card
[architecture]
name = "mlp"
d = 1
width = 16
depth = 1
activation = "erf"
bias = true

[sampling]
n_samples = 6400
seed = 5
chunk_size = 3200

[correlators]
points = [[0.3], [1.0], [-0.5]]
orders = [2, 4]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    (out / "card.toml").write_text(CARD)
    run_card(load_card(out / "card.toml"), out / "run", progress=False)
    return out / "run"


def _check_described(ds):
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name"), name
    for dim in ds.dims:
        assert dim in ds.coords, dim
    for key in ("nnft_version", "jax_version", "seed", "estimator", "card"):
        assert key in ds.attrs, key


def test_results_nc_describes_itself(run_dir):
    with xr.open_dataset(run_dir / "results.nc", engine="h5netcdf") as ds:
        _check_described(ds)
        assert ds.attrs["card"] == CARD  # verbatim TOML
        assert ds.attrs["seed"] == 5
        assert ds.attrs["architecture_width"] == 16
        assert "p5" not in ds.dims and "p6" not in ds.dims
        assert ds["G4c"].attrs["verdict_reference"] == "zero"  # no theory for the MLP's G4c
        assert 0 <= ds["G4c"].attrs["p_value"] <= 1


def test_summary_has_only_measured_orders_seed_and_verdicts(run_dir):
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["seed"] == 5 and s["orders"] == [2, 4]
    assert {"G2", "G4c"} <= set(s) and not {"G1", "G3", "G4", "G3c"} & set(s)
    assert set(s["verdicts"]) == {"G2", "G4c"}
    assert s["verdicts"]["G2"]["reference"] == "theory"
    assert s["verdicts"]["G4c"]["reference"] == "zero"
    for v in s["verdicts"].values():
        assert 0 <= v["p_value"] <= 1 and v["outcome"] in ("consistent", "inconsistent")


def test_order_three_is_reported(tmp_path):
    card = tmp_path / "c.toml"
    card.write_text(CARD.replace("orders = [2, 4]", "orders = [3]"))
    s = run_card(load_card(card), tmp_path / "run", progress=False)
    assert "G3c" in s and "G3c" in s["verdicts"] and "G2" not in s


def test_ensemble_result_to_xarray_and_repr():
    prior = nnft.CosNet(d=1, width=4)
    res = nnft.run_ensemble(prior, [[0.0], [0.5]], n_samples=64 * 50, seed=1, progress=False)
    ds = res.to_xarray()
    for name in ("G2", "G2_theory", "G4c", "G4c_z"):
        assert name in ds
    assert ds.attrs["seed"] == 1
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name"), name
    text = repr(res)
    assert len(text) < 400 and "n_samples=3,200" in text and "p = " in text
    assert "array" not in text


def test_posterior_dims_are_named(tmp_path):
    from nnft import Box, Interaction, MCMCConfig, phi4, sample

    prior = nnft.CosNet(d=1, width=3)
    inter = Interaction(phi4(0.5), Box((1.0,)), nodes=8)
    res = sample(prior, inter, [[0.0], [0.3]], MCMCConfig(chains=2, warmup=50, samples=50),
                 progress=False)
    idata = res.to_inference_data()
    dims = {d for var in idata.posterior.data_vars.values() for d in var.dims}
    assert not [d for d in dims if "_dim_" in d], dims
    assert "neuron" in dims and "point" in dims


def test_describe_names_every_variable_and_dimension():
    from nnft import results

    ds = xr.Dataset({"f": (("time", "model", "point"), np.zeros((2, 3, 4))),
                     "G4c_stderr": (("p1", "p2", "p3", "p4"), np.zeros((4,) * 4)),
                     "sv_1": (("time", "model", "sv_1_index"), np.zeros((2, 3, 1)))},
                    coords={"time": [0, 10]})
    out = results.describe(ds, {"seed": 3})
    for name, var in out.variables.items():
        assert var.attrs.get("long_name"), name
    assert set(out.dims) <= set(out.coords)
    assert out.attrs["seed"] == 3 and "jax_version" in out.attrs
