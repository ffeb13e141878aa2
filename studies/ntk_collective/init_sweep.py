"""Width sweep at initialisation in the NTK parameterisation, against the infinite-width NTK.

Networks ``64 -> width^depth -> C`` in neural-tangents' NTK convention: raw ``W ~ N(0, 1)``
times ``W_std / sqrt(fan-in)``, no biases, ``W_std = sqrt 2`` (relu) or 1 (tanh). On each
digits probe set the per-layer NTK (:meth:`nnft.training.networks.DenseNet.ntk`, traced
over the C outputs) gives S and ``tr Theta / (C n)``; their means and standard errors over
``n_seeds`` networks are set beside the same quantities of the infinite-width NTK
``nnft.theory.gp.ntk`` (which is per output: the traced NTK tends to C times it).

Computed eagerly (no jit: every (width, depth) is a new shape and the work is a few large
matmuls). Network s of a (activation, depth, width) cell uses ``fold_in(key(seed), s)``.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from nnft.ntk import spectrum_stats
from nnft.theory import gp
from nnft.training.networks import DenseNet

W_STD = {"relu": math.sqrt(2.0), "tanh": 1.0}


def infinite_width(x: np.ndarray, depth: int, activation: str) -> dict:
    """S and tr / n of the infinite-width NTK (per output) on the points x."""
    theta = gp.ntk(x, depth=depth, activation=activation, W_std=W_STD[activation])
    st = spectrum_stats(np.asarray(theta, np.float64))
    return {"entropy": float(st.entropy), "trace_per_point": float(st.trace_per_point)}


def sweep_cell(probes: dict, activation: str, depth: int, width: int, n_seeds: int,
               outputs: int, seed: int = 0) -> dict:
    """Per probe: the S and tr / (C n) of ``n_seeds`` networks, ``(n_seeds,)`` arrays."""
    net = DenseNet(d=64, widths=(width,) * depth, outputs=outputs, activation=activation,
                   parameterization="ntk", W_std=W_STD[activation], bias=False)
    out = {f"{p}_{q}": np.zeros(n_seeds) for p in probes for q in ("entropy", "tpp")}
    for s in range(n_seeds):
        params = net.init(jax.random.fold_in(jax.random.key(seed), s))
        for name, x in probes.items():
            st = spectrum_stats(net.ntk(params, x))
            out[f"{name}_entropy"][s] = float(st.entropy)
            out[f"{name}_tpp"][s] = float(st.trace_per_point) / outputs
    return out


def summarize(cells: dict, probes: dict, infinite: dict) -> list[dict]:
    """The ``init_sweep`` rows of summary.json from ``{(act, depth, width): cell}``."""
    rows = []
    for (act, depth, width), cell in sorted(cells.items()):
        for name in probes:
            s, t = cell[f"{name}_entropy"], cell[f"{name}_tpp"]
            n = len(s)
            inf = infinite[(act, depth, name)]
            rows.append({
                "activation": act, "depth": depth, "width": width, "probe": name,
                "n_seeds": n, "entropy_mean": float(s.mean()),
                "entropy_stderr": float(s.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
                "trace_per_point_mean": float(t.mean()),
                "trace_per_point_stderr": float(t.std(ddof=1) / math.sqrt(n)) if n > 1
                else float("nan"),
                "infinite_width_entropy": inf["entropy"],
                "infinite_width_trace_per_point": inf["trace_per_point"],
                "entropy_rel_gap": float(abs(s.mean() - inf["entropy"]) / inf["entropy"]),
                "trace_rel_gap": float(abs(t.mean() - inf["trace_per_point"])
                                       / inf["trace_per_point"]),
            })
    return rows


def acceptance(rows: list[dict]) -> dict:
    """Gap at the widest width (< 3%?) and whether the gap shrinks with width (slope of
    log gap against log width, per activation/depth/probe, for S and tr / (C n))."""
    widest = max(r["width"] for r in rows)
    top = [r for r in rows if r["width"] == widest]
    slopes = []
    for key in {(r["activation"], r["depth"], r["probe"]) for r in rows}:
        rs = sorted((r for r in rows if (r["activation"], r["depth"], r["probe"]) == key),
                    key=lambda r: r["width"])
        w = np.log([r["width"] for r in rs])
        for q in ("entropy_rel_gap", "trace_rel_gap"):
            g = np.log(np.maximum([r[q] for r in rs], 1e-12))
            slopes.append(float(np.polyfit(w, g, 1)[0]) if len(rs) > 1 else float("nan"))
    return {
        "widest_width": widest,
        "max_entropy_rel_gap_at_widest": max(r["entropy_rel_gap"] for r in top),
        "max_trace_rel_gap_at_widest": max(r["trace_rel_gap"] for r in top),
        "median_log_gap_slope_vs_log_width": float(np.nanmedian(slopes)),
        "fraction_of_gap_slopes_negative": float(np.mean(np.array(slopes) < 0)),
        "under_3_percent_at_widest": bool(max(max(r["entropy_rel_gap"], r["trace_rel_gap"])
                                              for r in top) < 0.03),
    }
