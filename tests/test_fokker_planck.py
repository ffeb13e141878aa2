"""nnft.fokker_planck (issue 15): the Scharfetter-Gummel solver against closed forms
(acceptance 1-2), its helpers, bad input, and the studies/fokker_planck --reduced run."""

import json
import sys
import warnings

import numpy as np
import pytest
import scipy.stats
from conftest import study_fixture, use_study  # noqa: E402

from nnft._validate import ConfigError
from nnft.fokker_planck import (
    Grid,
    checks,
    constant_drift,
    euler_maruyama,
    evolve,
    gated_drift,
    gaussian,
    kde,
    kde_on_grid,
    moments,
    nadaraya_watson,
    pearson,
    sample_grid,
    scott_bandwidth,
)

STUDY = use_study("fokker_planck")  # this study's modules only (conftest.use_study)
_study = study_fixture("fokker_planck")


# ---- acceptance 1-2 ------------------------------------------------------------------------

def test_ou_against_closed_form_and_upwinding_is_worse():
    """Acceptance 1: OU with A = [[0.5, -1], [1, 0.5]], sigma2 = 0.1, t = 1, h = 0.025."""
    sg = checks.ou_check()
    assert sg["mean_error"] < 2e-3
    assert sg["cov_rel_error"] < 0.02
    assert sg["l1"] < 0.01
    assert sg["mass_rel_error"] < 1e-12
    assert sg["min_P"] >= 0.0
    up = checks.ou_check(scheme="upwind")
    assert up["cov_rel_error"] > 5 * sg["cov_rel_error"]  # ~12% against ~0.7%


def test_ou_closed_form_solves_the_moment_equations():
    """d mu/dt = -A mu and d Sigma/dt = -A Sigma - Sigma A^T + sigma2 I, by finite difference."""
    A, s2 = checks.OU_A, checks.OU_SIGMA2
    eps = 1e-5
    (m0, c0), (m1, c1) = checks.ou_closed_form(0.7 - eps), checks.ou_closed_form(0.7 + eps)
    m, c = checks.ou_closed_form(0.7)
    np.testing.assert_allclose((m1 - m0) / (2 * eps), -A @ m, atol=1e-8)
    np.testing.assert_allclose((c1 - c0) / (2 * eps), -A @ c - c @ A.T + s2 * np.eye(2),
                               atol=1e-7)


def test_pure_diffusion_grows_the_covariance_by_sigma2_t():
    out = checks.diffusion_check()
    assert out["growth_rel_error"] < 0.01
    assert out["mass_rel_error"] < 1e-12


def test_periodic_drift_keeps_the_stationary_density_of_eq_26():
    out = checks.periodic_check()
    assert out["max_abs_error"] < 0.02
    assert out["mass_rel_error"] < 1e-12


def test_particle_twin_agrees_with_the_grid():
    """Acceptance 2: r > 0.99 after one epoch (2e5 particles, 60^2 cells; measured 0.998, the
    rest being the histogram's Poisson noise)."""
    assert checks.particle_check()["r"] > 0.99


def test_closed_gate_gives_zero_drift():
    out = checks.gate_check()
    assert out["max_abs_drift_closed"] == 0.0
    assert out["max_abs_change"] == 0.0
    assert out["max_abs_drift_open"] > 0.01


# ---- more solver properties ----------------------------------------------------------------

def test_sg_is_exact_for_constant_drift_in_1d():
    """The discrete stationary state of SG with constant drift D and zero-flux walls is
    exp(2 D x / sigma2) sampled at the cell centres: it stays put to round-off."""
    grid = Grid((0.0,), (1.0,), (50,))
    D, s2 = -0.7, 0.2
    P0 = np.exp(2 * D * grid.axis_centres(0) / s2)
    P = evolve(P0, grid, constant_drift([D]), s2, 5.0, warn_fraction=1.0)
    np.testing.assert_allclose(P, P0, rtol=1e-10)


def test_mass_conserved_and_positive_with_a_random_drift_on_faces():
    rng = np.random.default_rng(1)
    for walls in ("zero-flux", "periodic"):
        grid = Grid((-1.0, -1.0), (1.0, 1.0), (30, 40))
        per = walls == "periodic"
        faces = [rng.normal(0, 2.0, grid.faces(a, per).shape[:-1]) for a in range(2)]
        P0 = rng.uniform(0, 1, grid.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            P = evolve(P0, grid, faces, 0.05, 0.5, walls=walls)
        assert abs(P.sum() - P0.sum()) / P0.sum() < 1e-12
        assert P.min() >= 0.0


def test_constant_drift_translates_the_mean():
    grid = Grid((-2.0, -2.0), (2.0, 2.0), (80, 80))
    P0 = gaussian(grid, (-0.5, 0.2), 0.02 * np.eye(2))
    P = evolve(P0, grid, constant_drift([0.6, -0.3]), 1e-3, 1.0)
    mean, _ = moments(P, grid)
    np.testing.assert_allclose(mean, [0.1, -0.1], atol=2e-3)


def test_cell_masses_evolve_like_densities():
    grid = Grid((-1.0,), (2.0,), (60,))
    P0 = gaussian(grid, 0.3, 0.05)
    a = evolve(P0, grid, lambda x: -x, 0.1, 0.5)
    b = evolve(P0 * grid.volume, grid, lambda x: -x, 0.1, 0.5)
    np.testing.assert_allclose(b, a * grid.volume, rtol=1e-12)


# ---- helpers -------------------------------------------------------------------------------

def test_kde_matches_scipy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 2)) @ np.array([[1.0, 0.4], [0.0, 0.5]]) + 3.0
    grid = Grid((0.0, 0.0), (6.0, 6.0), (40, 40))
    want = scipy.stats.gaussian_kde(x.T)(grid.centres().reshape(-1, 2).T).reshape(40, 40)
    np.testing.assert_allclose(kde_on_grid(x, grid), want, rtol=1e-4, atol=1e-6 * want.max())


def test_nadaraya_watson_reproduces_a_constant_and_far_points_take_the_nearest():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(50, 2))
    f = nadaraya_watson(pts, np.tile([[0.3, -0.2]], (50, 1)), scott_bandwidth(pts))
    np.testing.assert_allclose(f(rng.normal(size=(7, 2))), np.tile([0.3, -0.2], (7, 1)),
                               atol=1e-12)
    vals = np.arange(50.0)[:, None] * np.ones((1, 2))
    g = nadaraya_watson(pts, vals, 1e-4 * np.eye(2))
    far = pts[np.argmax(pts[:, 0])] + np.array([100.0, 0.0])
    assert g(far[None])[0, 0] == pytest.approx(np.argmax(pts[:, 0]))


def test_sample_grid_mean_within_its_standard_error():
    """20000 draws: the mean is compared with the grid's in units of its standard error
    (|z| < 4); a 5% shift of the mean (0.025 = 25 SE here) would be caught."""
    grid = Grid((-2.0, -2.0), (2.0, 2.0), (50, 50))
    P = gaussian(grid, (0.5, -0.3), np.array([[0.1, 0.03], [0.03, 0.05]]))
    x = sample_grid(0, P, grid, 20_000)
    mean, cov = moments(P, grid)
    se = np.sqrt((np.diag(cov) + grid.h ** 2 / 12) / len(x))
    assert np.all(np.abs((x.mean(0) - mean) / se) < 4)


def test_pearson_has_the_square_root():
    x = np.arange(10.0)
    assert pearson(x, 3 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)


# ---- bad input -----------------------------------------------------------------------------

def _g():
    return Grid((-1.0, -1.0), (1.0, 1.0), (20, 20))


def test_bad_input_is_one_clear_config_error():
    g = _g()
    P = gaussian(g, (0, 0), 0.1 * np.eye(2))
    def zero(x):
        return np.zeros_like(x)

    with pytest.raises(ConfigError, match="P: .*>= 0"):
        evolve(P - 1.0, g, zero, 0.1, 1.0)
    with pytest.raises(ConfigError, match="P: .*NaN"):
        evolve(np.where(P > P.max() / 2, np.nan, P), g, zero, 0.1, 1.0)
    with pytest.raises(ConfigError, match="drift"):
        evolve(P, g, lambda x: x[..., :1], 0.1, 1.0)
    with pytest.raises(ConfigError, match=r"drift\[0\]"):
        evolve(P, g, [np.zeros((20, 20)), np.zeros((20, 21))], 0.1, 1.0)
    with pytest.raises(ConfigError, match="substeps: .*CFL"):
        evolve(P, g, zero, 0.1, 1.0, substeps=2, subdivide=False)
    with pytest.raises(ConfigError, match="points: .*at least 3"):
        kde(np.zeros((2, 2)), np.zeros((5, 2)))
    with pytest.raises(ConfigError, match="rows: .*at least 3"):
        gated_drift(np.zeros((2, 2)), np.zeros((2, 2)), 1)
    with pytest.raises(ConfigError, match="cells"):
        Grid((0, 0), (1, 1), (1, 5))
    with pytest.raises(ConfigError, match="hi"):
        Grid((0,), (0,), (5,))
    with pytest.raises(ConfigError, match="sigma2"):
        evolve(P, g, zero, -0.1, 1.0)
    with pytest.raises(ConfigError, match="x0"):
        euler_maruyama(0, np.zeros((2, 2, 2)), zero, 0.1, 1.0, 10)


def test_subdividing_meets_the_cfl_bound():
    g = _g()
    P = gaussian(g, (0, 0), 0.02 * np.eye(2))
    P1 = evolve(P, g, lambda x: np.zeros_like(x), 0.01, 1.0, substeps=2)
    assert P1.min() >= 0 and np.isfinite(P1).all()


def test_mass_leaving_the_grid_warns_with_the_fraction():
    g = _g()
    P = gaussian(g, (0.6, 0.0), 0.01 * np.eye(2))
    with pytest.warns(UserWarning, match=r"0\.\d+ of the mass left the grid"):
        Pa = evolve(P, g, constant_drift([1.0, 0.0]), 0.01, 1.0, walls="absorbing")
    assert Pa.sum() < 0.5 * P.sum()
    with pytest.warns(UserWarning, match=r"0\.\d+ of the mass sits in the cells at the zero"):
        Pz = evolve(P, g, constant_drift([1.0, 0.0]), 0.01, 1.0)
    assert abs(Pz.sum() - P.sum()) / P.sum() < 1e-12
    with pytest.warns(UserWarning, match="outside the grid"):
        kde_on_grid(np.random.default_rng(0).normal(0.9, 0.2, (50, 2)), g)


# ---- the study -----------------------------------------------------------------------------

def _passes_acceptance(sc):
    assert sc["ou"]["mean_error"] < 2e-3
    assert sc["ou"]["cov_rel_error"] < 0.02
    assert sc["ou"]["l1"] < 0.01
    assert sc["ou"]["mass_rel_error"] < 1e-12 and sc["ou"]["min_P"] >= 0
    assert sc["diffusion"]["growth_rel_error"] < 0.01
    assert sc["periodic"]["max_abs_error"] < 0.02
    assert sc["particles"]["r"] > 0.99
    assert sc["gate"]["max_abs_drift_closed"] == 0.0


def test_committed_summary_holds_the_solver_checks():
    path = STUDY / "results" / "summary.json"  # committed: the README's numbers
    _passes_acceptance(json.loads(path.read_text())["solver_checks"])


def _rec(s, epoch, view, method):
    return next(r for r in s["epochs"]
                if (r["epoch"], r["view"], r["method"]) == (epoch, view, method))


def test_reduced_run_qualitative_claims_and_resume(tmp_path):
    """The --reduced study (6 epochs, 1 seed, 64^2 grid): the loss falls; the look-ahead FP
    reproduces the rows' density (r > 0.99) at least as well as persistence; the free-running
    FP stays close in weight space (r > 0.95); rows drawn i.i.d. destroy the outputs (|r| < 0.5,
    even at the floor) while transported rows keep them (r > 0.95 at epoch 5); --resume
    reproduces the summary from the saved blocks."""
    sys.path.insert(0, str(STUDY))
    import run as study

    argv = ["--reduced", "--no-checks", "--no-plots", "--out", str(tmp_path)]
    s = study.main(argv)
    loss = s["loss"]["mean"]
    assert loss[-1] < 0.5 * loss[0]
    for t in (1, 2, 5, 6):
        look = _rec(s, t, "weights", "fp_lookahead")["r_mean"]
        assert look > 0.99
        assert look >= _rec(s, t, "weights", "persistence")["r_mean"] - 1e-3
        assert _rec(s, t, "weights", "free_running")["r_mean"] > 0.95
    for r in s["epochs"]:
        if r["view"] == "outputs_iid":
            assert abs(r["r_mean"]) < 0.5, r
    assert _rec(s, 5, "outputs_transported", "fp_lookahead")["r_mean"] > 0.95
    assert _rec(s, 5, "outputs_transported", "fp_lookahead")["r_w2_mean"] > 0.95
    assert (tmp_path / "blocks" / "seed_0.npz").exists()
    again = study.main(argv + ["--resume"])
    assert again["epochs"] == s["epochs"]


@pytest.mark.slow
def test_fashion_mnist_classes_0_to_5_through_the_idx_reader():
    """The study's --data fashion input (Debian's dataset-fashion-mnist IDX files; ~10 s)."""
    from nnft.datasets import fashion_mnist_available

    if not fashion_mnist_available():
        pytest.skip("Fashion-MNIST IDX files not installed")
    sys.path.insert(0, str(STUDY))
    import run as study

    x, y = study.load_data("fashion")
    assert x.shape == (36_000, 784) and set(np.unique(y)) == set(range(6))
    assert 0.0 <= x.min() and x.max() <= 1.0
