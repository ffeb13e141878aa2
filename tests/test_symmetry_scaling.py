"""Symmetries as properties, and 1/N scaling of the connected four-point function."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnft.priors.cos import CosNet
from nnft.priors.gauss import GaussNet
from nnft.scaling import loglog_slope

POINTS = np.array([[0.0, 0.0], [0.6, 0.1], [0.2, 0.9], [-0.5, 0.4]])


def _rotation(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _combined_z(a, b):
    return (a.value - b.value) / np.sqrt(a.stderr**2 + b.stderr**2)


@settings(max_examples=25, deadline=None)
@given(angle=st.floats(0, 2 * np.pi), shift=st.tuples(st.floats(-3, 3), st.floats(-3, 3)))
def test_cos_net_theory_is_euclidean_invariant(angle, shift):
    prior = CosNet(d=2, width=3, sigma_w0=1.4, sigma_w1=0.7)
    moved = POINTS @ _rotation(angle).T + np.array(shift)
    np.testing.assert_allclose(prior.g2(moved), prior.g2(POINTS), atol=1e-12)
    np.testing.assert_allclose(prior.g4c(moved), prior.g4c(POINTS), atol=1e-12)
    np.testing.assert_allclose(prior.g6c(moved[:3]), prior.g6c(POINTS[:3]), atol=1e-12)


@pytest.mark.parametrize("angle, shift", [(0.0, (2.0, -1.0)), (1.1, (0.0, 0.0)),
                                          (2.5, (-0.7, 1.9))])
def test_cos_net_monte_carlo_is_euclidean_invariant(measure, angle, shift):
    """At finite N the measured correlators at g.x equal those at x (independent seeds)."""
    prior = CosNet(d=2, width=3, sigma_w0=1.4, sigma_w1=0.7)
    moved = POINTS @ _rotation(angle).T + np.array(shift)
    a = measure(prior, POINTS, 100_000, seed=1)
    b = measure(prior, moved, 100_000, seed=2)
    for order, kind in ((2, "full"), (4, "connected")):
        z = _combined_z(getattr(a, kind)[order], getattr(b, kind)[order])
        assert np.max(np.abs(z)) < 4


def test_gauss_net_g4c_is_not_translation_invariant(measure):
    """Gauss-net's G4c changes under a translation at finite N; its G2 does not."""
    prior = GaussNet(d=2, width=2, sigma_w0=0.8, sigma_w1=1.0, sigma_b0=0.3)
    pts = 0.4 * POINTS
    moved = pts + np.array([0.5, -0.3])
    a = measure(prior, pts, 200_000, seed=1)
    b = measure(prior, moved, 200_000, seed=2)
    assert np.max(np.abs(_combined_z(a.full[2], b.full[2]))) < 4
    assert np.max(np.abs(_combined_z(a.connected[4], b.connected[4]))) > 8
    # and each side agrees with its own (non-invariant) theory
    for c, x in ((a, pts), (b, moved)):
        assert np.max(np.abs((c.connected[4].value - prior.g4c(x)) / c.connected[4].stderr)) < 4


def test_g4c_scales_as_one_over_n(measure):
    """Slope of log|G4c| against log N over N = 2..32 is -1 within its error."""
    widths = [2, 4, 8, 16, 32]
    points = np.array([[0.0], [0.3]])
    ests = [measure(CosNet(d=1, width=n, sigma_w0=1.2, sigma_w1=0.9), points, 1_000_000,
                    seed=100 + n).connected[4] for n in widths]
    for entry in [(0, 0, 0, 0), (0, 0, 1, 1)]:
        fit = loglog_slope(widths, [e.value[entry] for e in ests],
                           [e.stderr[entry] for e in ests])
        assert abs(fit["slope"] + 1) < 3 * fit["slope_err"], fit
        assert fit["slope_err"] < 0.1  # the slope is actually measured
