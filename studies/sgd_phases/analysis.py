"""Numbers the README quotes that are derived from the grid means (issue 16).

    python studies/sgd_phases/analysis.py     # adds the "derived" keys to results/summary.json
                                              # and draws fig9 and fig8_line_vs_jump from it

Everything here is computed from ``summary.json`` itself (grid means, standard errors and
converged fractions of the full run) and, for the teacher-only quantities, from the study's
teachers (the same seeds; no training), so it can be recomputed without ``results.nc``.
``run.py`` calls :func:`derive` after every full run.

- ``line_vs_jump``: per 1/sigma_W column, the temperature where the converged fraction of
  eq. 4.15 falls through 68% and where the mean test loss jumps (the largest rise of
  log10 loss between neighbouring T, and the first T with 10x the column's low-T loss),
  with parametric-bootstrap errors (binomial fractions over 100 teachers; normal means with
  their standard errors);
- ``line_exponent``: the fit ``T_68 ~ sigma_W^p`` over the columns where the line exists,
  with its bootstrap error, and the local slopes;
- ``gradient_phases``: the final |grad L| in the ordered, jammed and hottest corners;
- ``teacher_alignment``: the alignment eq. 3.5 of the teachers' own features with
  h = y W3 on their test sets, next to the students' in the ordered corner;
- ``symmetry_breaking``: sigma_z^2 of the student's last hidden pre-activations at
  initialisation as a function of sigma_W (measured on the teachers' test inputs), and the
  1/sigma_W where it equals 1/2 (eq. 2.22), with the paper's bound sigma_z^2 <= sigma_W^2;
- ``ks_sign``: the converged fractions under both readings of the sign of K_S.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import teacher_student as ts

from nnft.results import write_json

LEVEL = 0.68
N_BOOT = 2000


def crossing_down(temps, frac, level=LEVEL):
    """First T (log-interpolated) at which ``frac`` (over T, falling) drops below ``level``;
    NaN if it never does; ``temps[0]`` if it starts below."""
    below = np.flatnonzero(np.asarray(frac) < level)
    if below.size == 0:
        return float("nan")
    i = int(below[0])
    if i == 0:
        return float(temps[0])
    f = (frac[i - 1] - level) / (frac[i - 1] - frac[i])
    lt = np.log(temps)
    return float(math.exp(lt[i - 1] + f * (lt[i] - lt[i - 1])))


def largest_jump(temps, loss):
    """Geometric midpoint of the neighbouring T pair with the largest rise of log loss, and
    that rise (in decades)."""
    d = np.diff(np.log10(np.maximum(loss, 1e-300)))
    i = int(np.argmax(d))
    return float(math.sqrt(temps[i] * temps[i + 1])), float(d[i])


def first_tenfold(temps, loss, n_low=3):
    """First T (log-log interpolated) at which the loss exceeds 10x its mean over the
    ``n_low`` lowest T; NaN if never."""
    floor = float(np.mean(loss[:n_low]))
    target = math.log(10 * floor)
    ll, lt = np.log(np.maximum(loss, 1e-300)), np.log(temps)
    idx = [i for i in range(n_low, len(loss)) if ll[i] > target]
    if not idx:
        return float("nan")
    i = idx[0]
    f = (target - ll[i - 1]) / (ll[i] - ll[i - 1])
    return float(math.exp(lt[i - 1] + f * (lt[i] - lt[i - 1])))


def _err(draws):
    d = np.asarray(draws, float)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return {"stderr": float("nan"), "interval_16_84": None}
    return {"stderr": float(d.std(ddof=1)),
            "interval_16_84": [float(np.percentile(d, 16)), float(np.percentile(d, 84))]}


def line_vs_jump(summary: dict, seed: int = 0) -> dict:
    temps = np.asarray(summary["grid"]["temperature"])
    inv = np.asarray(summary["grid"]["inv_sigma"])
    n = summary["grid"]["n_teachers"]
    frac = np.asarray(summary["converged_fraction"])  # (E, S)
    loss = np.asarray(summary["test_loss"]["mean"])
    loss_se = np.asarray(summary["test_loss"]["stderr"])
    rng = np.random.default_rng(seed)
    cols = []
    lines = np.full((N_BOOT, len(inv)), np.nan)
    for j in range(len(inv)):
        t68 = crossing_down(temps, frac[:, j])
        tj, rise = largest_jump(temps, loss[:, j])
        t10 = first_tenfold(temps, loss[:, j])
        bj, b10 = [], []
        for b in range(N_BOOT):
            f = rng.binomial(n, np.clip(frac[:, j], 0, 1)) / n
            lines[b, j] = crossing_down(temps, f)
            lb = np.maximum(loss[:, j] + loss_se[:, j] * rng.standard_normal(len(temps)),
                            1e-12)
            bj.append(largest_jump(temps, lb)[0])
            b10.append(first_tenfold(temps, lb))
        cols.append({"inv_sigma": float(inv[j]), "t_68": t68, "t_68_err": _err(lines[:, j]),
                     "t_jump": tj, "jump_decades": rise, "t_jump_err": _err(bj),
                     "t_tenfold": t10, "t_tenfold_err": _err(b10)})
    return {"columns": cols, "boot_lines": lines}


def line_exponent(summary: dict, lines_boot: np.ndarray, cols: list[dict]) -> dict:
    """Fit log T_68 = a + p log sigma_W over the columns where the 68% line lies strictly
    inside the T range (crossing between two grid points)."""
    temps = np.asarray(summary["grid"]["temperature"])
    inv = np.asarray(summary["grid"]["inv_sigma"])
    t68 = np.asarray([c["t_68"] for c in cols])
    ok = np.isfinite(t68) & (t68 > temps[0])
    if ok.sum() < 3:
        return {"exponent": float("nan"), "exponent_stderr_fit": float("nan"),
                "exponent_err": _err([]), "columns_used_inv_sigma": inv[ok].tolist(),
                "local_slopes": [], "local_slope_range": [float("nan")] * 2}
    x = np.log(1 / inv[ok])
    (p, _), cov = np.polyfit(x, np.log(t68[ok]), 1, cov=True)
    boot = []
    for b in range(lines_boot.shape[0]):
        y = lines_boot[b, ok]
        good = np.isfinite(y) & (y > temps[0])
        if good.sum() >= 2:
            boot.append(np.polyfit(x[good], np.log(y[good]), 1)[0])
    local = np.diff(np.log(t68[ok])) / np.diff(x)
    return {"exponent": float(p),
            "exponent_stderr_fit": float(math.sqrt(cov[0, 0])),  # from the scatter
            "exponent_err": _err(boot),  # from the binomial noise of the fractions alone
            "columns_used_inv_sigma": inv[ok].tolist(),
            "local_slopes": local.tolist(),
            "local_slope_range": [float(np.min(local)), float(np.max(local))]}


def _at(summary, name, t, inv):
    temps = summary["grid"]["temperature"]
    invs = summary["grid"]["inv_sigma"]
    i, j = temps.index(t), invs.index(inv)
    return {"T": t, "inv_sigma": inv, "mean": summary[name]["mean"][i][j],
            "stderr": summary[name]["stderr"][i][j]}


def gradient_phases(summary: dict) -> dict:
    temps, invs = summary["grid"]["temperature"], summary["grid"]["inv_sigma"]
    g = np.asarray(summary["grad_norm"]["mean"])
    j8 = int(np.argmin(np.abs(np.log2(invs) - 3)))
    i_peak = int(np.argmax(g[:, j8]))
    return {"ordered_corner": _at(summary, "grad_norm", temps[0], invs[-1]),
            "jammed_corner": _at(summary, "grad_norm", temps[0], invs[0]),
            "hottest_small_sigma": _at(summary, "grad_norm", temps[-1], invs[-1]),
            "hottest_large_sigma": _at(summary, "grad_norm", temps[-1], invs[0]),
            "peak_along_inv_sigma_8": _at(summary, "grad_norm", temps[i_peak], invs[j8])}


def teacher_quantities(n_teachers: int = 100, seed: int = 0, teacher_var: float = 1.0,
                       teacher_dist: str = "normal") -> dict:
    """Alignment of each teacher's own features with h = y W3 on its test set, and the
    variance of the student's last hidden pre-activation z = W2 a at initialisation per
    unit sigma_W^2, ``q = E |a|^2 / 32`` (on the test inputs; so sigma_z^2 = q sigma_W^2)."""
    grid = ts.Grid(n_teachers=n_teachers, steps=1, seed=seed, teacher_var=teacher_var,
                   teacher_dist=teacher_dist)
    al, q, zvar = [], [], []
    w0 = ts.student_init(grid, 0, n_teachers)  # (k, E, S, 16, 32)
    for i in range(n_teachers):
        t = ts.teacher(grid, i)
        phi = np.tanh(t["a_test"] @ t["w2"].T)
        h = t["y_test"][:, None] * t["w3"][None, :]
        al.append(float(np.sum(h * phi) / (np.linalg.norm(h) * np.linalg.norm(phi))))
        q.append(float(np.mean(np.sum(t["a_test"] ** 2, axis=1)) / ts.N1))
        z = np.einsum("esij,nj->esni", w0[i], t["a_test"])  # (E, S, n, 16)
        zvar.append(np.mean(z**2, axis=(0, 2, 3)))  # per sigma_W
    q_mean = float(np.mean(q))
    ratios = np.asarray(zvar) / (q_mean * grid.sigma_w**2)  # (teachers, sigma_w)
    zvar = np.mean(zvar, axis=0)
    return {"alignment": {"mean": float(np.mean(al)), "sd": float(np.std(al, ddof=1)),
                          "stderr": float(np.std(al, ddof=1) / math.sqrt(len(al))),
                          "n_teachers": n_teachers},
            "q": {"mean": q_mean, "stderr": float(np.std(q, ddof=1) / math.sqrt(len(q)))},
            "sigma_z2_measured": {"sigma_w": grid.sigma_w.tolist(), "sigma_z2": zvar.tolist(),
                                  "ratio_to_q_sigma_w2": (zvar / (q_mean * grid.sigma_w**2))
                                  .tolist(),
                                  "ratio_stderr": (np.std(ratios, axis=0, ddof=1)
                                                   / math.sqrt(n_teachers)).tolist()}}


def symmetry_breaking(tq: dict) -> dict:
    """eq. 2.22: the single -> double well transition at sigma_z^2 = 1/2. With sigma_z^2 =
    q sigma_W^2, the boundary is 1/sigma_W = sqrt(2 q); the paper's bound sigma_z^2 <=
    sigma_W^2 (eq. 2.19) would put it at 1/sigma_W = sqrt(2)."""
    q = tq["q"]["mean"]
    se = tq["q"]["stderr"]
    return {"q": q, "q_stderr": se, "inv_sigma_c": math.sqrt(2 * q),
            "inv_sigma_c_stderr": se / math.sqrt(2 * q),
            "inv_sigma_c_bound": math.sqrt(2.0),
            "sigma_z2_measured": tq["sigma_z2_measured"]}


def ks_sign(summary: dict) -> dict:
    temps, invs = summary["grid"]["temperature"], summary["grid"]["inv_sigma"]
    out = {}
    for key, name in (("converged_fraction", "gradient_basis_minus_abs"),
                      ("converged_fraction_x_basis", "x_basis_signed")):
        f = np.asarray(summary[key])
        j8 = int(np.argmin(np.abs(np.log2(invs) - 3)))
        out[name] = {"inv_sigma_8_column": f[:, j8].tolist(),
                     "jammed_corner": float(f[0, 0]),
                     "lowest_T_row": f[0].tolist(),
                     "mean_over_grid": float(f.mean()), "max_over_grid": float(f.max())}
    out["temperature"] = temps
    return out


def pooled_marchenko_pastur(n_students: int = 1200, draws: int = 5, seed: int = 0) -> dict:
    """KS p-values of eq. 4.2 against the eigenvalues of ``n_students`` fresh 16 x 32 Wishart
    matrices pooled (the study's 12 T-columns x 100 students per sigma_W): the finite-size
    deviation from the n -> infinity law at that sample size."""
    from nnft.random_matrix import ks_marchenko_pastur

    rng = np.random.default_rng(seed)
    ps = []
    for _ in range(draws):
        w = rng.standard_normal((n_students, ts.N2, ts.N1)) / math.sqrt(ts.N1)
        ps.append(ks_marchenko_pastur(np.linalg.eigvalsh(w @ np.swapaxes(w, -1, -2)), 1.0,
                                      ts.R)[1])
    return {"n_eigenvalues": n_students * ts.N2, "p_values": ps,
            "p_median": float(np.median(ps))}


def derive(summary: dict, n_teachers: int | None = None) -> dict:
    lj = line_vs_jump(summary)
    cols = lj["columns"]
    g = summary["grid"]
    tq = teacher_quantities(n_teachers or g["n_teachers"],
                            teacher_var=g.get("teacher_var", 1.0),
                            teacher_dist=g.get("teacher_dist", "normal"))
    al = summary["alignment"]
    return {
        "line_vs_jump": cols,
        "line_exponent": line_exponent(summary, lj["boot_lines"], cols),
        "gradient_phases": gradient_phases(summary),
        "teacher_alignment": {**tq["alignment"],
                              "students_ordered_corner": {
                                  "mean": al["mean"][0][-1], "stderr": al["stderr"][0][-1]}},
        "symmetry_breaking": symmetry_breaking(tq),
        "ks_sign": ks_sign(summary),
        "marchenko_pastur_pooled_fresh": pooled_marchenko_pastur(),
    }


def markdown_rows(summary: dict) -> dict:
    """The README's table rows (line vs jump; both readings of K_S) from ``derived``."""
    d = summary["derived"]
    cols = [c for c in d["line_vs_jump"] if c["inv_sigma"] >= 2.0**-7]

    def f(x, fmt=".2g"):
        return "-" if math.isnan(x) else f"{x:{fmt}}"

    rows = ["| T_68 (line) | " + " | ".join(f(c["t_68"]) for c in cols) + " |",
            "| T of the largest rise (jump) | " + " | ".join(
                f(c["t_jump"]) if c["jump_decades"] >= 0.5 else f"({f(c['t_jump'])})"
                for c in cols) + " |",
            "| that rise, decades | " + " | ".join(f(c["jump_decades"], ".2f") for c in cols)
            + " |",
            "| T where the loss is first 10x its low-T value | "
            + " | ".join(f(c["t_tenfold"]) for c in cols) + " |"]
    ks = d["ks_sign"]
    ks_rows = []
    for name, label in (("gradient_basis_minus_abs", "K's basis, `-abs(K_S)` (`converged`)"),
                        ("x_basis_signed", "X's basis, signed (`converged_x`)")):
        k = ks[name]
        col = k["inv_sigma_8_column"]
        hot = max(col[6:])
        row = k["lowest_T_row"]
        ks_rows.append(f"| {label}, 1/sigma_W = 8 | " + " | ".join(f"{x:.2f}" for x in col[:6])
                       + f" | <= {hot:.2f} | {k['jammed_corner']:.2f} | "
                       f"{min(row):.2f}-{max(row):.2f} |")
    return {"LINE_ROWS": "\n".join(rows), "KS_ROWS": "\n".join(ks_rows)}


def main(path: Path = HERE / "results" / "summary.json") -> dict:
    summary = json.loads(Path(path).read_text())
    summary["derived"] = derive(summary)
    write_json(summary, path)
    import figures

    figures.summary_figures(summary, Path(path).parent)
    d = summary["derived"]
    print("68% line exponent", d["line_exponent"]["exponent"],
          d["line_exponent"]["exponent_err"]["stderr"])
    for c in d["line_vs_jump"]:
        print(f"1/sigma {c['inv_sigma']:8.4g}  T68 {c['t_68']:.3g}  jump {c['t_jump']:.3g} "
              f"({c['jump_decades']:.2f} dec)  tenfold {c['t_tenfold']:.3g}")
    print("teacher alignment", d["teacher_alignment"])
    print("symmetry breaking 1/sigma_c", d["symmetry_breaking"]["inv_sigma_c"])
    return summary


if __name__ == "__main__":
    main()
