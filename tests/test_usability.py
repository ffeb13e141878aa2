"""What a new user trips over: one validation path for cards and the API, progress that
batch jobs see, the command line's help and overrides, heavy-ball momentum through optax,
and the README's snippets as written."""

from __future__ import annotations

import inspect
import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import nnft
from nnft import _validate as v
from nnft._validate import ConfigError
from nnft.app import cards
from nnft.app.cli import main
from nnft.engine import progress as prog
from nnft.estimators import moment_estimator

REPO = Path(__file__).resolve().parents[1]
PTS = [[0.0], [0.5]]


def _run(prior=None, points=PTS, **kw):
    kw = {"n_samples": 128, "progress": False, **kw}
    return nnft.run_ensemble(prior or nnft.CosNet(d=1, width=3), points, **kw)


# -- 1. one validation path -------------------------------------------------------------
BAD_API = {
    "negative seed": (lambda: _run(seed=-1), "seed"),
    "max_order 8": (lambda: _run(max_order=8), "max_order"),
    "points a string": (lambda: _run(points="abc"), "points"),
    "20 points at order 4": (lambda: _run(points=np.linspace(0, 1, 20), max_order=4),
                             "points"),
    "g4c of one 1-d array, d = 2": (lambda: nnft.CosNet(d=2).g4c(np.array([0.0, 0.0])),
                                    "points"),
    "g2 of a string": (lambda: nnft.CosNet(d=1).g2("abc"), "points"),
    "CosNet 3-vectors, d = 2": (lambda: nnft.CosNet(d=2).g2([[0, 0, 0], [1, 0, 5]]), "points"),
    "GaussNet 3-vectors, d = 2": (lambda: nnft.GaussNet(d=2).g4c([[0, 0, 0], [1, 0, 5]]),
                                  "points"),
    "CosNet g6c 3-vectors, d = 2": (lambda: nnft.CosNet(d=2).g6c([[0, 0, 0]]), "points"),
    "estimator order 7": (lambda: moment_estimator(3, 7), "max_order"),
    "n_samples a float": (lambda: _run(n_samples=128.0), "n_samples"),
    "width a bool": (lambda: nnft.CosNet(width=True), "width"),
}


@pytest.mark.parametrize("case", BAD_API.values(), ids=BAD_API.keys())
def test_api_refuses_bad_input_with_a_config_error_naming_the_field(case):
    call, field = case
    with pytest.raises(ConfigError, match=rf"^{field}: got "):
        call()


def test_numpy_integers_are_integers_everywhere():
    assert v.positive_int("n", np.int64(3)) == 3 and type(v.positive_int("n", np.int32(3))) is int
    assert v.seed("seed", np.int64(3)) == 3 and v.max_order("max_order", np.int64(4)) == 4
    assert v.positive("x", np.float32(0.5)) == 0.5
    with pytest.raises(ConfigError, match="^n: "):
        v.positive_int("n", np.bool_(True))
    nnft.MCMCConfig(chains=np.int64(4), warmup=np.int64(10), samples=np.int64(20),
                    seed=np.int64(1), target_accept=np.float64(0.8))
    nnft.Interaction(nnft.phi4(0.1), nnft.Box((np.float64(1.0),)), nodes=np.int64(10))
    nnft.TrainingConfig(n_models=np.int64(64), steps=np.int64(10), seed=np.int64(2),
                        momentum=np.float64(0.5))
    nnft.priors.mlp.MLP(d=1, width=(np.int64(8), np.int64(4)), depth=2)
    prior = nnft.CosNet(d=np.int64(1), width=np.int64(3))
    json.dumps(prior.hyperparameters())  # plain Python values in files
    assert prior.hyperparameters()["width"] == 3
    res = _run(prior, n_samples=np.int64(128), seed=np.int64(3), max_order=np.int64(2))
    ref = _run(prior, n_samples=128, seed=3, max_order=2)
    np.testing.assert_array_equal(res.correlators.full[2].value, ref.correlators.full[2].value)


def test_the_point_limit_is_one_table_for_cards_and_the_api():
    assert cards.MAX_POINTS is v.MAX_POINTS
    for order, most in v.MAX_POINTS.items():
        if order >= 3:  # at the limit: fine (orders 1, 2: 512 points, slow to lay out)
            moment_estimator(most, order, 2)
        with pytest.raises(ConfigError, match=rf"^points: got {most + 1} points; order {order}"):
            moment_estimator(most + 1, order, 2)
    card = {"architecture": {"name": "cos-net"}, "sampling": {"n_samples": 128},
            "correlators": {"points": np.linspace(0, 1, 17).tolist(), "orders": [2, 4]}}
    with pytest.raises(ConfigError, match="correlators.points: got 17 points; order 4 allows "
                                          "at most 16"):
        cards.parse_card(card)


def test_points_of_one_dimension_d1_stay_accepted():
    """d = 1: a flat array is a list of scalars (the README's form), so g4c works."""
    prior = nnft.CosNet(d=1, width=4)
    np.testing.assert_allclose(prior.g4c(np.array([0.0, 0.5])), prior.g4c([[0.0], [0.5]]))


def test_architecture_typo_gets_did_you_mean(tmp_path):
    card = tmp_path / "c.toml"
    card.write_text('[architecture]\nname = "cosnet"\n[sampling]\nn_samples = 128\n'
                    '[correlators]\npoints = [0.0]\n')
    with pytest.raises(ConfigError, match=r"architecture.name: got 'cosnet'.*did you mean "
                                          r"'cos-net'\?"):
        cards.load_card(card)
    with pytest.raises(ConfigError, match="did you mean 'cos-net'"):
        nnft.priors.make_prior("cosnet")


# -- 2. progress ------------------------------------------------------------------------
def test_progress_off_a_terminal_is_log_lines_every_few_percent(caplog):
    caplog.set_level(logging.INFO, logger="nnft")
    with prog.progress_bar(True, 1000, "cos-net N=3", "networks") as advance:
        for n in range(0, 1001, 10):
            advance(n)
        advance(1000)
    lines = [r.getMessage() for r in caplog.records if r.name == "nnft"]
    assert lines[0] == "cos-net N=3: starting, 1,000 networks"
    assert len(lines) == 1 + round(1 / prog.LOG_EVERY), lines  # one per 5%, the end once
    assert lines[1].startswith("cos-net N=3: 50 of 1,000 networks (5%)") and "left" in lines[1]
    assert lines[-1].startswith("cos-net N=3: 1,000 of 1,000 networks (100%), ")
    assert lines[-1].endswith("elapsed") and "left" not in lines[-1]


def test_a_run_logs_progress_through_the_nnft_logger(caplog):
    caplog.set_level(logging.INFO, logger="nnft")
    _run(n_samples=1280, chunk_size=64, progress=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "nnft"]
    assert any("1,280 of 1,280 networks (100%)" in m for m in lines), lines
    caplog.clear()
    logging.getLogger("nnft").setLevel(logging.WARNING)  # users silence it the usual way
    try:
        _run(n_samples=1280, chunk_size=64, progress=True)
    finally:
        logging.getLogger("nnft").setLevel(logging.NOTSET)
    assert not [r for r in caplog.records if r.name == "nnft"]


def test_the_finished_bar_shows_elapsed_not_remaining_time():
    from rich.console import Console
    from rich.progress import Progress

    column = prog._times_column()
    with Progress(console=Console(file=io.StringIO())) as bar:
        task_id = bar.add_task("x", total=10)
        bar.update(task_id, completed=5)
        running = column.render(bar.tasks[0]).plain
        bar.update(task_id, completed=10)
        done = column.render(bar.tasks[0]).plain
    assert running.endswith("elapsed") or "left" in running
    assert re.fullmatch(r"\d+:\d\d:\d\d elapsed", done), done


def test_one_progress_default_for_ensembles_chains_and_training():
    from nnft.mcmc import run_numpyro, run_nuts

    for fn in (nnft.run_ensemble, run_nuts, run_numpyro, nnft.train_ensemble):
        assert inspect.signature(fn).parameters["progress"].default is True, fn


# -- 3. the command line ----------------------------------------------------------------
def cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["nnft", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_run_help_keeps_the_default_and_shows_no_bool_metavars(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = cli(monkeypatch, capsys, "run", "--help")
    assert code == 0
    assert "[default: runs/<card name>]" in out
    assert "<bool>" not in out and "--set SECTION.KEY=VALUE" in out


CARD = REPO / "models" / "cos-net.toml"


def test_set_overrides_card_entries_with_toml_values(monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, "validate", CARD, "--set", "sampling.seed=3",
                         "--set", "sampling.n_samples=1_000", "--set",
                         "correlators.orders=[2]", "--set", "architecture.name=gauss-net")
    assert code == 0, err
    assert "1,000 networks, seed 3" in out and "orders 2;" not in out and out.rstrip().endswith(
        "orders 2") and out.startswith(f"{CARD}: ok: gauss-net")
    card = cards.load_card(CARD, ["sampling.seed=7", "sampling.memory_limit=2GiB"])
    assert card.seed == 7 and card.memory_limit == 2 * 2**30


@pytest.mark.parametrize("override, message", [
    ("sampling.seed=-1", "sampling.seed: got -1; must be an integer >= 0"),
    ("sampling.n_samples=1e3", "sampling.n_samples: got 1000.0; must be an integer"),
    ("sampling.sed=3", "did you mean 'seed'?"),
    ("seed=3", "--set: got 'seed=3'; must be SECTION.KEY=VALUE"),
    ("architecture.name=cosnet", "did you mean 'cos-net'?"),
])
def test_set_is_validated_like_the_card(monkeypatch, capsys, override, message):
    code, _, err = cli(monkeypatch, capsys, "validate", CARD, "--set", override)
    assert code == 2 and err.startswith("nnft: error: ") and err.count("\n") == 1
    assert message in err, err


# -- 5. heavy ball is optax's momentum ----------------------------------------------------
def _quadratic_grad(th):
    a = jnp.array([[2.0, 0.3], [0.3, 1.0]])
    return a @ th + jnp.array([0.5, -1.0])


def test_heavy_ball_is_optax_sgd_momentum_and_the_duality_form():
    """Constant rate: theta_{i+1} = theta_i + beta (theta_i - theta_{i-1}) - eta g_i; with a
    schedule the previous step is scaled by eta_i / eta_{i-1} (the docstring's form)."""
    beta = 0.7
    schedule = optax.exponential_decay(0.05, transition_steps=10, decay_rate=0.5)
    for rate in (0.05, schedule):
        opt = nnft.training.heavy_ball(rate, beta)
        ref = optax.sgd(rate, momentum=beta)
        eta = rate if callable(rate) else (lambda i, r=rate: r)
        th0 = jnp.array([1.0, -2.0])
        s1, s2, p1, p2 = opt.init(th0), ref.init(th0), th0, th0
        prev, cur = th0, th0
        for i in range(40):
            u1, s1 = opt.update(_quadratic_grad(p1), s1)
            u2, s2 = ref.update(_quadratic_grad(p2), s2)
            p1, p2 = p1 + u1, p2 + u2
            ratio = 1.0 if i == 0 else eta(i) / eta(i - 1)
            prev, cur = cur, cur + beta * ratio * (cur - prev) - eta(i) * _quadratic_grad(cur)
            np.testing.assert_allclose(p1, p2, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(p1, cur, rtol=1e-5, atol=1e-6)


# -- 6. the README's snippets ------------------------------------------------------------
def readme_snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)


#: what the test changes in a snippet to keep it short (the NUTS one at reduced size)
REDUCED = {"warmup=1000": "warmup=100", "samples=3000": "samples=200"}


def test_readme_snippets_are_valid_python_using_public_names():
    snippets = readme_snippets()
    assert len(snippets) >= 3
    for text in snippets:
        compile(text, "README.md", "exec")
        for name in re.findall(r"\bnnft\.([A-Za-z_]\w*)", text):
            assert hasattr(nnft, name), name
        for names in re.findall(r"from nnft import ([\w, ]+)", text):
            for name in names.split(","):
                assert hasattr(nnft, name.strip()), name
    assert all(k in snippets[1] for k in REDUCED), "the NUTS snippet changed: update REDUCED"


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1])
def test_readme_snippet_runs_in_a_fresh_interpreter(tmp_path, index):
    """Snippet 0 verbatim (10^6 networks, ~10 s); snippet 1 (NUTS) with warmup 100 and 200
    draws (~1 min). Both must finish without a warning on stderr. The third snippet needs
    a cluster (``jax.distributed.initialize()``) and is not run."""
    text = readme_snippets()[index]
    if index == 1:
        for old, new in REDUCED.items():
            text = text.replace(old, new)
    script = tmp_path / "snippet.py"
    script.write_text(text)
    out = subprocess.run([sys.executable, "-W", "default", str(script)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr


# -- 4. plots a referee reads ----------------------------------------------------------
@pytest.fixture
def figures(monkeypatch):
    """The figures the report would write, kept open instead of saved."""
    from nnft.report import plots, training

    kept = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: kept.append(fig))
    monkeypatch.setattr(training, "save_figure", lambda fig, path: kept.append(fig))
    yield kept
    plots.pyplot().close("all")


def test_g2_plot_has_width_in_title_and_residuals_in_sigma(figures, tmp_path):
    from nnft.report import plots

    prior = nnft.CosNet(d=1, width=3)
    res = _run(prior, n_samples=1280)
    plots.plot_correlators(tmp_path, prior, res.correlators, res.points,
                           {"G2": prior.g2(res.points), "G4c": prior.g4c(res.points)})
    for fig in figures:
        top, bottom = fig.axes
        assert "N = 3" in top.get_title() and "sigma" in bottom.get_ylabel()
        assert bottom.get_ylim()[1] >= 3
    assert len(figures) == 2


def test_width_scan_labels_are_mathtext_not_literal(figures, tmp_path):
    from nnft.estimators import Estimate
    from nnft.report import plots
    from nnft.scaling import width_scan

    widths = [2, 4, 8]
    ests = [Estimate(np.full((2,) * 4, 0.4 / n + 0.1 / n**2), np.full((2,) * 4, 0.01 / n))
            for n in widths]
    scan = width_scan(widths, ests, [None] * 3, [(0, 0, 1, 1)], power=1)
    plots.plot_width_scan(tmp_path / "w.png", scan, "G4c")
    ax = figures[0].axes[0]
    assert ax.get_ylabel() == r"$N\,G_c^{(4)}$" and "N^1" not in ax.get_ylabel()
    assert "2, 4, 8" in ax.get_title()


def test_training_legend_merges_points_hidden_by_symmetry():
    from nnft.report.training import _coincident_groups

    t = np.arange(5.0)[:, None]
    series = np.hstack([1 + t, 2 + t, 1 + t + 1e-4, 2 + t])  # x_0 ~ x_2, x_1 = x_3
    errors = np.full_like(series, 0.01)
    assert _coincident_groups(series, errors) == [[0, 2], [1, 3]]
    series[:, 2] += 0.5  # now visibly apart
    assert _coincident_groups(series, errors) == [[0], [1, 3], [2]]
