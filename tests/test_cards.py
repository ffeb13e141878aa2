"""Model cards and the ``nnft`` command: every bad card is one error line naming the key."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnft._validate import ConfigError
from nnft.app.cards import MAX_POINTS, Card, load_card, parse_card
from nnft.app.cli import main
from nnft.priors.cos import CosNet

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "models").glob("*.toml"))

GOOD = {
    "architecture": {"name": "cos-net", "d": 1, "width": 10, "sigma_w0": 1, "sigma_w1": 1.5},
    "sampling": {"n_samples": 1000},
    "correlators": {"points": [0.0, 0.5, [1.0]], "orders": [6, 2]},
}

GOOD_TOML = """\
[architecture]
name = "cos-net"
d = 2
width = 4

[sampling]
n_samples = 128
seed = 3

[correlators]
points = [[0.0, 0.0], [0.5, -0.5]]
"""


def changed(edit) -> dict:
    card = copy.deepcopy(GOOD)
    edit(card)
    return card


def set_(section, **kw):
    return lambda c: c.setdefault(section, {}).update(kw)


def drop(section, key=None):
    return lambda c: c.pop(section) if key is None else c[section].pop(key)


# -- good cards -----------------------------------------------------------------------
def test_good_card_fields_and_defaults():
    card = parse_card(GOOD)
    assert isinstance(card, Card)
    assert card.name == "cos-net" and card.architecture["name"] == "cos-net"
    assert card.architecture["sigma_w0"] == 1.0 and isinstance(card.architecture["sigma_w0"],
                                                               float)
    assert (card.n_samples, card.seed, card.chunk_size, card.n_batches) == (1000, 0, 65536, 64)
    assert card.points.dtype == np.float64 and card.points.shape == (3, 1)
    np.testing.assert_array_equal(card.points[:, 0], [0.0, 0.5, 1.0])
    assert not card.points.flags.writeable
    assert card.orders == (2, 6) and card.max_order == 6
    assert card.connected is True and card.widths is None
    assert card.source == "<dict>" and card.raw == GOOD


def test_prior_and_width_override():
    card = parse_card(GOOD)
    assert card.prior() == CosNet(d=1, width=10, sigma_w0=1.0, sigma_w1=1.5)
    assert card.prior(width=3) == CosNet(d=1, width=3, sigma_w0=1.0, sigma_w1=1.5)
    with pytest.raises(ConfigError, match=r"architecture\.width: got 0"):
        card.prior(width=0)


def test_default_orders_and_round_trip():
    card = parse_card(changed(lambda c: c["correlators"].pop("orders")))
    assert card.orders == (2, 4)
    again = parse_card(card.to_dict())
    assert again.to_dict() == card.to_dict()
    np.testing.assert_array_equal(again.points, card.points)


def test_scan_widths_sorted_and_priors():
    card = parse_card(changed(set_("scan", widths=[8, 2, 4])))
    assert card.widths == (2, 4, 8)
    assert [card.prior(width=w).width for w in card.widths] == [2, 4, 8]
    assert card.to_dict()["scan"] == {"widths": [2, 4, 8]}


def test_points_in_d_dimensions_and_other_architectures():
    card = parse_card({
        "architecture": {"name": "scalar-net", "d": 3, "m": 1, "Lambda": 10},
        "sampling": {"n_samples": 64, "n_batches": 2, "chunk_size": 8},
        "correlators": {"points": [[0, 0, 0], [1, 0, 0]], "orders": [2], "connected": False},
    })
    assert card.points.shape == (2, 3) and card.prior().name == "scalar-net"
    assert card.connected is False


def test_list_hyperparameters_give_a_hashable_prior():
    card = parse_card({
        "architecture": {"name": "mlp", "d": 2, "depth": 2, "width": [8, 4]},
        "sampling": {"n_samples": 64},
        "correlators": {"points": [[0.0, 1.0]]},
    })
    assert card.architecture["width"] == [8, 4]
    assert hash(card.prior()) == hash(card.prior())


# -- bad cards: one ConfigError naming the key --------------------------------------------
BAD = {
    "unknown architecture": (set_("architecture", name="resnet"),
                             ["architecture.name", "'resnet'", "cos-net"]),
    "architecture name not a string": (set_("architecture", name=3), ["architecture.name"]),
    "missing name": (drop("architecture", "name"), ["missing", "architecture.name"]),
    "missing sampling section": (drop("sampling"), ["missing", "sampling.n_samples"]),
    "missing points": (drop("correlators", "points"), ["missing", "correlators.points"]),
    "negative n_samples": (set_("sampling", n_samples=-5), ["sampling.n_samples", "-5", ">= 64"]),
    "float n_samples": (set_("sampling", n_samples=1e6), ["sampling.n_samples", "integer"]),
    "n_samples below n_batches": (set_("sampling", n_samples=100, n_batches=128),
                                  ["sampling.n_samples", "n_batches"]),
    "one batch": (set_("sampling", n_batches=1), ["sampling.n_batches", ">= 2"]),
    "bool seed": (set_("sampling", seed=True), ["sampling.seed", "True"]),
    "negative seed": (set_("sampling", seed=-1), ["sampling.seed"]),
    "zero chunk": (set_("sampling", chunk_size=0), ["sampling.chunk_size"]),
    "negative width": (set_("architecture", width=-3),
                       ["architecture.width: got -3; must be an integer >= 1"]),
    "string width": (set_("architecture", width="10"), ["architecture.width", "'10'", "integer"]),
    "float width": (set_("architecture", width=10.0), ["architecture.width", "10.0", "integer"]),
    "string sigma": (set_("architecture", sigma_w0="1"), ["architecture.sigma_w0", "number"]),
    "zero sigma": (set_("architecture", sigma_w0=0), ["architecture.sigma_w0", "> 0"]),
    "unknown hyperparameter": (set_("architecture", wdth=3),
                               ["architecture.wdth", "unknown key", "width", "did you mean"]),
    "hyperparameter of another architecture": (set_("architecture", sigma_b0=1.0),
                                               ["architecture.sigma_b0", "allowed"]),
    "unknown sampling key": (set_("sampling", n_sample=3), ["sampling.n_sample", "n_samples"]),
    "unknown correlators key": (set_("correlators", order=[2]), ["correlators.order"]),
    "points of the wrong dimension": (
        lambda c: (c["architecture"].update(d=2), c["correlators"].update(points=[[0, 1], [2]])),
        ["correlators.points[1]", "[2]", "2 numbers", "architecture.d = 2"]),
    "scalar point in d = 2": (
        lambda c: (c["architecture"].update(d=2), c["correlators"].update(points=[0.5])),
        ["correlators.points[0]", "2 numbers"]),
    "points not a list": (set_("correlators", points="0 1"), ["correlators.points"]),
    "no points": (set_("correlators", points=[]), ["correlators.points", "non-empty"]),
    "nan point": (set_("correlators", points=[0.0, float("nan")]), ["correlators.points[1]",
                                                                    "finite"]),
    "string coordinate": (set_("correlators", points=[["x"]]), ["correlators.points[0]"]),
    "order above 6": (set_("correlators", orders=[2, 7]), ["correlators.orders[1]", "7", "1 to 6"]),
    "order 0": (set_("correlators", orders=[0]), ["correlators.orders[0]"]),
    "orders empty": (set_("correlators", orders=[]), ["correlators.orders", "non-empty"]),
    "orders not a list": (set_("correlators", orders=4), ["correlators.orders"]),
    "too many points for order 6": (set_("correlators", points=[0.1 * i for i in range(9)]),
                                    ["correlators.points", "9 points", "order 6", "at most 8"]),
    "too many points for order 4": (set_("correlators", points=[0.1 * i for i in range(17)],
                                         orders=[2, 4]),
                                    ["correlators.points", "17 points", "at most 16"]),
    "connected not a bool": (set_("correlators", connected="yes"),
                             ["correlators.connected", "'yes'", "true or false"]),
    "unknown section": (set_("plots", dpi=10), ["[plots]", "allowed sections", "sampling"]),
    "misspelt section": (lambda c: c.update(samplng=c.pop("sampling")),
                         ["[samplng]", "did you mean 'sampling'"]),
    "top-level key": (lambda c: c.update(title="x"), ["'title'", "allowed sections"]),
    "section not a table": (lambda c: c.update(sampling=5), ["sampling", "table"]),
    "empty scan": (lambda c: c.update(scan={}), ["scan.widths"]),
    "one width": (set_("scan", widths=[4]), ["scan.widths", "at least 2"]),
    "repeated widths": (set_("scan", widths=[4, 4]), ["scan.widths", "distinct"]),
    "zero width in scan": (set_("scan", widths=[2, 0]), ["scan.widths[1]", ">= 1"]),
    "widths not a list": (set_("scan", widths=8), ["scan.widths"]),
    "unknown scan key": (set_("scan", widths=[2, 4], fit="linear"), ["scan.fit"]),
    "field the class fixes": (
        lambda c: c.update(architecture={"name": "scalar-net", "power_spectrum": "flat"}),
        ["architecture.power_spectrum", "unknown key", "Lambda"]),
}


@pytest.mark.parametrize("edit,expected", BAD.values(), ids=BAD.keys())
def test_bad_card_names_the_key(edit, expected):
    with pytest.raises(ConfigError) as info:
        parse_card(changed(edit))
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_point_limits_follow_the_estimator():
    assert MAX_POINTS[6] == 8 and MAX_POINTS[4] == 16
    card = parse_card(changed(set_("correlators", points=[0.1 * i for i in range(8)])))
    assert len(card.points) == 8


# -- files -----------------------------------------------------------------------------------
def test_load_card(tmp_path):
    path = tmp_path / "card.toml"
    path.write_text(GOOD_TOML)
    card = load_card(path)
    assert card.source == str(path) and card.seed == 3 and card.points.shape == (2, 2)
    assert card.raw["sampling"] == {"n_samples": 128, "seed": 3}


@pytest.mark.parametrize("content,expected", [
    (None, ["cannot read", "No such file"]),
    ("directory", ["cannot read"]),
    ("[architecture]\nname = cos-net\n", ["invalid TOML", "line 2"]),
    (b"\xff\xfe[architecture]", ["UTF-8"]),
    (GOOD_TOML.replace("width = 4", "width = -4"), ["architecture.width: got -4"]),
])
def test_load_card_errors_name_the_path(tmp_path, content, expected):
    path = tmp_path / "card.toml"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_card(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for part in expected:
        assert part in message


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_cards_parse(path):
    text = path.read_text()
    assert text.startswith("#") and "Runtime" in text, "a card starts with a comment header"
    card = load_card(path)
    assert card.n_samples >= 64
    card.prior()
    for width in card.widths or ():
        card.prior(width=width)


def test_the_main_job_and_the_scan_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {"cos-net.toml", "cos-net-width-scan.toml"} <= names
    assert load_card(REPO / "models" / "cos-net-width-scan.toml").widths == (2, 4, 8, 16, 32)


# -- the command -------------------------------------------------------------------------------
def cli(monkeypatch, capsys, *args):
    """Run ``nnft ARGS`` in this process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["nnft", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


BAD_FILES = {
    "unknown key": GOOD_TOML.replace("seed = 3", "sed = 3"),
    "wrong type": GOOD_TOML.replace("width = 4", 'width = "4"'),
    "bad value": GOOD_TOML.replace("n_samples = 128", "n_samples = -1"),
    "invalid TOML": GOOD_TOML.replace('name = "cos-net"', "name = cos-net"),
    "unknown architecture": GOOD_TOML.replace('"cos-net"', '"resnet"'),
    "wrong dimension": GOOD_TOML.replace("[0.5, -0.5]", "[0.5]"),
    "order above 6": GOOD_TOML + "orders = [8]\n",
    "empty file": "",
}


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("content", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_cli_bad_card_is_one_line(tmp_path, monkeypatch, capsys, command, content):
    card = tmp_path / "bad.toml"
    card.write_text(content)
    out_dir = tmp_path / "out"
    args = [command, card] + (["--out", out_dir, "--quiet"] if command == "run" else [])
    code, out, err = cli(monkeypatch, capsys, *args)
    assert code == 2
    assert err.startswith("nnft: error: ") and err.count("\n") == 1, err
    assert str(card) in err and "Traceback" not in err + out
    assert not out_dir.exists()


def test_cli_missing_card(tmp_path, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, "run", tmp_path / "nope.toml")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("nnft: error: ") and "nope.toml" in err


def test_cli_validate_good_card(tmp_path, monkeypatch, capsys):
    card = tmp_path / "good.toml"
    card.write_text(GOOD_TOML)
    code, out, err = cli(monkeypatch, capsys, "validate", card)
    assert code == 0 and err == ""
    assert out.count("\n") == 1 and "ok" in out and "cos-net" in out and "128" in out


def test_cli_version_and_help(monkeypatch, capsys):
    from nnft import __version__

    code, out, _ = cli(monkeypatch, capsys, "--version")
    assert code == 0 and out.strip() == f"nnft {__version__}"
    code, out, _ = cli(monkeypatch, capsys, "--help")
    assert code == 0 and "run" in out and "validate" in out


def test_cli_passes_the_card_to_the_pipeline(tmp_path, monkeypatch, capsys):
    import nnft.app.pipeline

    calls = []
    monkeypatch.setattr(nnft.app.pipeline, "run_card",
                        lambda card, out_dir, **kw: calls.append((card, out_dir, kw)))
    card = tmp_path / "good.toml"
    card.write_text(GOOD_TOML)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(monkeypatch, capsys, "run", card, "--resume", "--quiet")
    assert code == 0, err
    (loaded, out_dir, kw), = calls
    assert loaded.source == str(card) and Path(out_dir) == Path("runs") / "good"
    assert kw == {"resume": True, "progress": False}
    code, _, _ = cli(monkeypatch, capsys, "run", card, "--out", tmp_path / "x")
    assert code == 0 and Path(calls[-1][1]) == tmp_path / "x"
    assert calls[-1][2] == {"resume": False, "progress": True}


def test_cli_reports_interrupted_runs_in_one_line(tmp_path, monkeypatch, capsys):
    import nnft.app.pipeline
    from nnft._validate import RunInterrupted

    def interrupted(card, out_dir, **kw):
        raise RunInterrupted(640, 1000)

    monkeypatch.setattr(nnft.app.pipeline, "run_card", interrupted)
    card = tmp_path / "good.toml"
    card.write_text(GOOD_TOML)
    code, _, err = cli(monkeypatch, capsys, "run", card, "--out", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1 and "640 of 1000" in err


def test_entry_point_has_no_traceback(tmp_path):
    """The real process: ``python -m nnft.app.cli run BAD`` exits 2 with one stderr line."""
    card = tmp_path / "bad.toml"
    card.write_text(BAD_FILES["wrong type"])
    proc = subprocess.run([sys.executable, "-m", "nnft.app.cli", "run", str(card), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("nnft: error: ") and proc.stderr.count("\n") == 1
    assert "architecture.width" in proc.stderr and "Traceback" not in proc.stderr
