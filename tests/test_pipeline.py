"""`nnft run` end to end on small cards: files, the summary.json contract, the width scan."""

import json
import subprocess
import sys

import numpy as np
import xarray as xr

from nnft.app.cards import parse_card
from nnft.app.pipeline import run_card


def _card(**changes):
    data = {
        "architecture": {"name": "cos-net", "d": 1, "width": 4, "sigma_w0": 1.2,
                         "sigma_w1": 0.8},
        "sampling": {"n_samples": 64 * 500, "seed": 3, "chunk_size": 64 * 100},
        "correlators": {"points": [0.0, 0.4, 1.1], "orders": [2, 4]},
    }
    for section, table in changes.items():
        if section == "architecture":  # a different architecture: replace the table
            data[section] = dict(table)
        else:
            data.setdefault(section, {}).update(table)
    return parse_card(data)


def test_run_writes_results_and_summary(tmp_path):
    run_card(_card(), tmp_path, progress=False)
    for name in ("results.nc", "summary.json", "g2.png", "g4c.png", "checkpoint.npz"):
        assert (tmp_path / name).stat().st_size > 0, name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_samples"] == 64 * 500
    assert summary["points"] == [[0.0], [0.4], [1.1]]
    for name, order in (("G2", 2), ("G4c", 4)):
        for field in ("value", "stderr", "theory"):
            assert np.shape(summary[name][field]) == (3,) * order
        z = (np.array(summary[name]["value"]) - summary[name]["theory"]) / np.array(
            summary[name]["stderr"])
        assert np.max(np.abs(z)) < 4
    with xr.open_dataset(tmp_path / "results.nc", engine="h5netcdf") as ds:
        assert ds["G4c"].dims == ("p1", "p2", "p3", "p4")
        np.testing.assert_allclose(ds["G4c"].values, summary["G4c"]["value"])
        assert ds["points"].shape == (3, 1)
        assert json.loads(ds.attrs["card"])["architecture"]["name"] == "cos-net"


def test_theory_is_null_where_unknown(tmp_path):
    card = _card(architecture={"name": "mlp", "d": 1, "width": 16, "depth": 2,
                               "activation": "relu", "parameterization": "ntk"},
                 sampling={"n_samples": 64 * 20, "chunk_size": 64 * 20})
    summary = run_card(card, tmp_path, progress=False)
    assert summary["G4c"]["theory"] is None
    assert np.shape(summary["G2"]["theory"]) == (3, 3)


def test_width_scan_writes_fit(tmp_path):
    card = _card(scan={"widths": [2, 4, 8]})
    out = run_card(card, tmp_path, progress=False)
    assert (tmp_path / "scan.json").exists() and (tmp_path / "width-scan-g4c.png").exists()
    entry = out["G4c"]["entries"]["0,0,0,0"]
    assert len(entry["scaled"]) == 3
    fit, theory = entry["fit"], np.mean(entry["theory"])
    assert abs(fit["A"] - theory) < 4 * fit["A_err"]


def test_cli_runs_a_card_and_resumes(tmp_path):
    card = tmp_path / "c.toml"
    card.write_text('[architecture]\nname = "cos-net"\nwidth = 3\n'
                    '[sampling]\nn_samples = 6400\nchunk_size = 640\n'
                    '[correlators]\npoints = [0.0, 1.0]\n')
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "nnft.app.cli", "run", str(card), "--out", str(out), "-q"]
    first = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "G4c" in first.stdout and "theory" in first.stdout
    again = subprocess.run(cmd + ["--resume"], check=False, capture_output=True,
                           text=True)
    assert again.returncode == 0, again.stderr
    a = json.loads((out / "summary.json").read_text())
    assert a["n_samples"] == 6400
