"""`nnft run` and its files: the folder lock, readable modes, a full disk, orphans, resume
messages, ``memory_limit`` and the ``--distributed`` options."""

import contextlib
import os
import stat
import subprocess
import sys

import pytest
from test_cards import cli

from nnft._validate import ConfigError
from nnft.app.cards import parse_card
from nnft.app.pipeline import run_card
from nnft.engine.files import TMP_SUFFIX, output_lock
from nnft.engine.memory import parse_size

CARD_TOML = """
[architecture]
name = "cos-net"
d = 1
width = 3

[sampling]
n_samples = 1280
chunk_size = 640
n_batches = 8

[correlators]
points = [0.0, 0.5, 1.0]
"""


def _card(**sampling):
    return parse_card({"architecture": {"name": "cos-net", "d": 1, "width": 3},
                       "sampling": {"n_samples": 1280, "chunk_size": 640, "n_batches": 8,
                                    **sampling},
                       "correlators": {"points": [0.0, 0.5, 1.0]}})


def test_second_run_on_a_locked_folder_is_refused(tmp_path, monkeypatch, capsys):
    card = tmp_path / "c.toml"
    card.write_text(CARD_TOML)
    out = tmp_path / "out"
    with output_lock(out):  # another run holds the folder
        code, stdout, err = cli(monkeypatch, capsys, "run", card, "--out", out, "-q")
    assert code != 0
    assert err.startswith("nnft: error: ") and err.count("\n") == 1, err
    assert "in use" in err and str(out) in err
    assert not (out / "results.nc").exists()


@contextlib.contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_files_are_group_readable_and_orphans_are_removed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    orphan = out / f".results.nc.12345{TMP_SUFFIX}"
    orphan.write_bytes(b"half a file from a killed run")
    with _umask(0o022):
        run_card(_card(), out, progress=False)
    assert not orphan.exists()
    assert not list(out.glob(f"*{TMP_SUFFIX}")) and not list(out.glob(f".*{TMP_SUFFIX}"))
    names = {p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert {"results.nc", "summary.json", "g2.png", "g4c.png"} <= names
    for path in out.iterdir():
        if path.is_file():
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o044 == 0o044, f"{path.name}: mode {oct(mode)}"


def test_resume_says_where_it_starts(tmp_path):
    from rich.console import Console

    console = Console(record=True, width=200)
    out = tmp_path / "out"
    run_card(_card(), out, resume=True, progress=False, console=console)
    first = console.export_text()
    assert f"no checkpoint in {out}: starting fresh" in first
    run_card(_card(), out, resume=True, progress=False, console=console)
    again = console.export_text()
    assert "resuming from" in again and "1,280 of 1,280 networks" in again


@pytest.fixture
def tiny_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"cannot mount a tmpfs: {err}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip() or proc.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)


def test_full_disk_is_one_line_and_a_non_zero_exit(tmp_path, tiny_disk):
    """8 points to order 4: results.nc alone (~400 kB) does not fit the 200 kB disk."""
    card = tmp_path / "c.toml"
    card.write_text(CARD_TOML.replace("points = [0.0, 0.5, 1.0]",
                                      "points = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4]"))
    proc = subprocess.run([sys.executable, "-m", "nnft.app.cli", "run", str(card), "--out",
                           str(tiny_disk / "out"), "-q"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode not in (0, -11, 139), (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()  # log lines (e.g. "no verdict: 8 batches") may precede
    errors = [ln for ln in lines if "error" in ln.lower()]
    assert errors == [lines[-1]] and lines[-1].startswith("nnft: error: "), proc.stderr
    assert "no space left" in lines[-1].lower() and "Traceback" not in proc.stderr
    assert not list((tiny_disk / "out").glob(f".*{TMP_SUFFIX}"))


@pytest.mark.parametrize("value, size", [(2**31, 2**31), ("2GiB", 2 * 2**30),
                                         ("512MiB", 512 * 2**20), ("1.5GB", 1_500_000_000),
                                         ("64 kB", 64_000)])
def test_memory_limit_sizes(value, size):
    assert parse_size("sampling.memory_limit", value) == size
    card = _card(memory_limit=value)
    assert card.memory_limit == size
    assert card.to_dict()["sampling"]["memory_limit"] == size
    assert _card().memory_limit is None and "memory_limit" not in _card().to_dict()["sampling"]


@pytest.mark.parametrize("value", ["lots", "2XB", "", 0, -1, 1.5, True, [1]])
def test_memory_limit_errors_name_the_field(value):
    with pytest.raises(ConfigError, match=r"^sampling\.memory_limit: got .*GiB"):
        _card(memory_limit=value)


def test_memory_limit_reaches_the_ensemble(tmp_path, monkeypatch):
    import nnft.app.pipeline as pipeline

    seen = {}
    real = pipeline.ensemble.run

    def spy(*args, **kw):
        seen.update(kw)
        return real(*args, **kw)

    monkeypatch.setattr(pipeline.ensemble, "run", spy)
    run_card(_card(memory_limit="1GiB"), tmp_path, progress=False)
    assert seen["memory_limit"] == 2**30


@pytest.mark.parametrize("args, message", [
    (["--coordinator", "127.0.0.1:1234"], "--coordinator: only with --distributed"),
    (["--distributed", "--coordinator", "nohost"], "--coordinator: got 'nohost'"),
    (["--distributed", "--num-processes", "0"], "--num-processes: got 0"),
    (["--distributed", "--num-processes", "2", "--process-id", "2"],
     "--process-id: got 2; must be 0 .. 1"),
])
def test_distributed_options_are_checked(tmp_path, monkeypatch, capsys, args, message):
    card = tmp_path / "c.toml"
    card.write_text(CARD_TOML)
    code, _, err = cli(monkeypatch, capsys, "run", card, "--out", tmp_path / "o", *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o").exists()
