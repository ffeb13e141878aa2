"""Symmetries as properties, and 1/N scaling of the connected four-point function."""

import math

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


def _cos_neuron_moments(points, sigma_w0, n_w, n_b=16, orders=(2, 4, 6)):
    """m_n[a..] = E[h(x_a)..h(x_n)], h = cos(w.x + b), w ~ N(0, sigma_w0^2/d I_d),
    b ~ U(-pi, pi), in absolute coordinates: tensor Gauss-Hermite in w (n_w nodes per axis)
    times the n_b-point equispaced rule in b, exact for trig polynomials of degree < n_b
    (the product of n cosines has degree n in b)."""
    p, d = points.shape
    z, wz = np.polynomial.hermite_e.hermegauss(n_w)
    wz = wz / wz.sum()
    grids = np.meshgrid(*([z] * d), indexing="ij")
    w = np.stack([g.ravel() for g in grids], -1) * (sigma_w0 / np.sqrt(d))  # (n_w^d, d)
    weight_w = np.prod(np.meshgrid(*([wz] * d), indexing="ij"), axis=0).ravel()
    b = -np.pi + 2 * np.pi * (np.arange(n_b) + 0.5) / n_b
    h = np.cos((w @ points.T)[:, None, :] + b[None, :, None]).reshape(-1, p)  # (nodes, P)
    weight = np.repeat(weight_w, n_b) / n_b
    letters = "abcdefgh"
    return {n: np.einsum(",".join(["q"] + [f"q{c}" for c in letters[:n]])
                         + "->" + letters[:n], weight, *([h] * n), optimize="greedy")
            for n in orders}


def _set_partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        yield [[first]] + part
        for i in range(len(part)):
            yield part[:i] + [[first] + part[i]] + part[i + 1:]


def _iid_connected(m, n, sigma_w1, width):
    """G_n^c = N kappa_n(y) for phi = sum_i y_i, y = w1 h, w1 ~ N(0, sigma_w1^2/N): cumulants
    of independent summands add, and kappa_n(y) = sum over set partitions pi of
    (-1)^(|pi|-1) (|pi|-1)! prod_B E[y_B], E[y_B] = (|B|-1)!! (sigma_w1^2/N)^(|B|/2) m_|B|
    (zero for odd |B|)."""
    letters = "abcdefgh"[:n]
    out = 0.0
    for part in _set_partitions(list(range(n))):
        if any(len(blk) % 2 for blk in part):
            continue
        k = len(part)
        coef = (-1) ** (k - 1) * math.factorial(k - 1)
        for blk in part:
            coef *= math.prod(range(len(blk) - 1, 0, -2)) * (sigma_w1**2 / width) ** (len(blk) / 2)
        spec = ",".join("".join(letters[i] for i in blk) for blk in part) + "->" + letters
        out = out + coef * np.einsum(spec, *[m[len(blk)] for blk in part])
    return width * out


def _converged_moments(points, sigma_w0, orders, n_w, n_b):
    """The moments with n_w nodes per axis, after checking that 2 n_w change nothing."""
    coarse = _cos_neuron_moments(points, sigma_w0, n_w, n_b, orders)
    fine = _cos_neuron_moments(points, sigma_w0, 2 * n_w, n_b, orders)
    for n in orders:
        np.testing.assert_allclose(coarse[n], fine[n], rtol=0, atol=1e-13)
    return coarse


COS_2D = {"sigma_w0": 1.4, "sigma_w1": 0.7, "width": 3}


@settings(max_examples=4, deadline=None)
@given(angle=st.floats(0, 2 * np.pi), shift=st.tuples(st.floats(-3, 3), st.floats(-3, 3)))
def test_cos_net_theory_at_moved_points_is_the_absolute_coordinate_quadrature(angle, shift):
    """At g.x (rotation and shift) the theory equals the neuron moments integrated in absolute
    coordinates and assembled by hand: phi = sum_i w1_i h_i with w1 ~ N(0, sigma_w1^2/N)
    independent of h, so E[w1_i w1_j] = delta_ij sigma_w1^2/N, E[w1^4] = 3 (sigma_w1^2/N)^2
    (the i = j = k = l term) and i = j != k = l gives N(N-1) (sigma_w1^2/N)^2 m2 m2 per pairing:
    G2 = sigma_w1^2 m2, G4c = sigma_w1^4/N (3 m4_abcd - m2_ab m2_cd - m2_ac m2_bd - m2_ad m2_bc).
    The moment-cumulant helper used for G6c (test below) reproduces this G4c."""
    s_w0, s_w1, width = COS_2D["sigma_w0"], COS_2D["sigma_w1"], COS_2D["width"]
    prior = CosNet(d=2, **COS_2D)
    moved = POINTS @ _rotation(angle).T + np.array(shift)
    m = _converged_moments(moved, s_w0, (2, 4), n_w=24, n_b=16)
    m2, m4 = m[2], m[4]
    g4c = s_w1**4 / width * (3 * m4 - np.einsum("ab,cd->abcd", m2, m2)
                             - np.einsum("ac,bd->abcd", m2, m2)
                             - np.einsum("ad,bc->abcd", m2, m2))
    np.testing.assert_allclose(prior.g2(moved), s_w1**2 * m2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(prior.g4c(moved), g4c, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_iid_connected(m, 4, s_w1, width), g4c, rtol=0, atol=1e-13)


@pytest.mark.slow
def test_cos_net_g6c_at_moved_points_is_the_absolute_coordinate_quadrature():
    """G6c at three rotated and shifted points against the moment-cumulant formula on the
    absolute-coordinate moments (slow only because prior.g6c's first call traces ~4 s)."""
    prior = CosNet(d=2, **COS_2D)
    moved = POINTS[:3] @ _rotation(2.0).T + np.array([2.7, -2.2])
    m = _converged_moments(moved, COS_2D["sigma_w0"], (2, 4, 6), n_w=32, n_b=8)
    np.testing.assert_allclose(prior.g6c(moved),
                               _iid_connected(m, 6, COS_2D["sigma_w1"], COS_2D["width"]),
                               rtol=1e-10, atol=1e-12)


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
