"""The per-budget parabola in log N (docs/science.md §8, claim 2), with its seeds-only bootstrap.

At one budget P and one k_c, ``loss = a + b x + c x^2`` with ``x = log N`` is fitted by least
squares to the seed-mean validation losses (at least 4 distinct N). ``c > 0`` with the vertex
``x* = -b / 2c`` inside the sampled range means an interior optimum; ``N*(P) = exp(x*)`` and
``L*(P)`` is the parabola's value there (no winner's-curse bias, unlike the minimum over
points). The optimum is chosen on validation and the test parabola is read at the same x*.
In every resample the optimum is the parabola's minimiser over the sampled range (the vertex
when it is inside, else the better end), so N*, k_e* and L* are defined in every resample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats.scaling import FitError
from analysis.stats.seedboot import SeedTable, seed_table

MIN_POINTS = 4
LEVEL = 0.95


def interval(
    samples: np.ndarray,
    level: float = LEVEL,
    center: float | None = None,
    df: int | None = None,
) -> tuple[float, float]:
    """Percentile interval of the finite samples (NaN, NaN when there are none).

    With ``center`` (the estimate) and ``df`` (the seed degrees of freedom behind it,
    sum over points of n_seeds - 1), each end's distance from the estimate is widened by
    ``t_df / z`` at ``level``: the resampled spread uses estimated seed variances, which few
    seeds know only roughly (the same small-sample correction as a t interval).
    """
    v = np.asarray(samples, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (float("nan"), float("nan"))
    q = (1.0 - level) / 2.0
    lo, hi = float(np.quantile(v, q)), float(np.quantile(v, 1.0 - q))
    if center is not None and df is not None and df >= 1 and np.isfinite(center):
        k = float(stats.t.ppf(1.0 - q, df) / stats.norm.ppf(1.0 - q))
        lo, hi = center - k * (center - lo), center + k * (hi - center)
    return lo, hi


def parabola_coefficients(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares ``(a, b, c)`` of ``a + b x + c x^2`` for every row of ``y`` ([B, n] -> [B, 3])."""
    design = np.stack([np.ones_like(x), x, x * x], axis=1)
    return np.atleast_2d(y) @ np.linalg.pinv(design).T


def parabola_minimiser(coef: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``coef`` [B, 3]: the minimiser over ``[lo, hi]`` and whether it is the vertex."""
    a, b, c = coef[:, 0], coef[:, 1], coef[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = np.where(c > 0, -b / (2.0 * c), np.nan)
    interior = (c > 0) & (vertex > lo) & (vertex < hi)
    f_lo, f_hi = a + b * lo + c * lo * lo, a + b * hi + c * hi * hi
    end = np.where(f_lo <= f_hi, lo, hi)
    return np.where(interior, vertex, end), interior


@dataclass(frozen=True)
class ParabolaFit:
    """Per-budget parabola ``loss = a + b log N + c (log N)^2`` (validation seed means).

    ``vertex`` is ``exp(-b / 2c)`` (NaN when c <= 0); ``N_star`` the minimiser over the sampled
    range of N; ``interior_fraction`` the share of seed resamples whose vertex lies strictly
    inside the sampled range with c > 0. Intervals are 95 % seeds-only bootstrap percentiles.
    """

    budget: float
    budget_kind: str
    k_c: float
    n_points: int
    N_range: tuple[float, float]
    a: float
    b: float
    c: float
    c_ci95: tuple[float, float]
    vertex: float
    N_star: float
    N_star_ci95: tuple[float, float]
    k_e_star: float
    k_e_star_ci95: tuple[float, float]
    L_star: float
    L_star_ci95: tuple[float, float]
    L_star_test: float  # the test-split parabola read at the validation optimum
    L_star_test_ci95: tuple[float, float]
    interior_fraction: float
    n_boot: int
    df: int  # seed degrees of freedom behind the fit (sum of n_seeds - 1)
    loss_columns: tuple[str, str]  # (validation, test) column
    note: str = ""
    #: per resample: c, N_star, k_e_star, L_star, L_star_test
    samples: pd.DataFrame | None = field(default=None, repr=False)
    #: the fitted points: N, k_e, val/test seed mean and SE, n_seeds, n_diverged
    data: pd.DataFrame | None = field(default=None, repr=False)

    def predict(self, N: np.ndarray | float) -> np.ndarray:
        """The validation parabola at N."""
        x = np.log(np.asarray(N, float))
        return self.a + self.b * x + self.c * x * x

    @property
    def vertex_ci95(self) -> tuple[float, float]:
        """95 % interval of the optimum N* (the vertex whenever it lies inside the range)."""
        return self.N_star_ci95

    @property
    def interior(self) -> bool:
        """docs/science.md §8: c's interval above 0 and the vertex inside the range in >= 95 % of
        resamples."""
        return bool(self.c_ci95[0] > 0 and self.interior_fraction >= LEVEL)


def choose_k_c(table: SeedTable, index: np.ndarray) -> float:
    """The k_c whose points are fitted at one budget: among the k_c values with >= 4 distinct N,
    the one holding the budget's best validation point, else the one with most points.

    Raises:
      FitError: no k_c has 4 distinct N at this budget.
    """
    pts = table.points.iloc[index]
    counts = pts.groupby("k_c")["N"].nunique()
    eligible = counts[counts >= MIN_POINTS]
    if len(eligible) == 0:
        raise FitError(
            f"budget {pts['budget'].iloc[0]:g}: no k_c has {MIN_POINTS} distinct N "
            f"(per k_c: {counts.to_dict()}); the parabola needs {MIN_POINTS} points at one k_c"
        )
    means = table.means("val")[index]
    if np.isfinite(means).any():
        best_k_c = pts["k_c"].to_numpy(float)[int(np.nanargmin(means))]
        if best_k_c in eligible.index:
            return float(best_k_c)
    return float(eligible.idxmax())


def _k_e_star(P: float, N_star: np.ndarray, pts: pd.DataFrame, kind: str) -> np.ndarray:
    """k_e at N* from the budget identity; P_io(N) fitted linearly when P counts P_total."""
    k_c = float(pts["k_c"].iloc[0])
    spent = np.full_like(N_star, P)
    if kind == "total":
        slope, intercept = np.polyfit(pts["N"].to_numpy(float), pts["P_io"].to_numpy(float), 1)
        spent = P - (slope * N_star + intercept)
    return np.maximum(spent / N_star - k_c, float(pts["k_e"].min()))


def fit_from_resamples(
    table: SeedTable,
    index: np.ndarray,
    boot: dict[str, np.ndarray],
    budget_kind: str,
    k_c: float | None = None,
    correction: dict | None = None,
) -> ParabolaFit:
    """The parabola of the points ``index`` of ``table`` (one budget), using shared resamples.

    ``correction`` (the training-length check, :mod:`analysis.claims.length`) adds a line in
    log N to each split's parabola: ``{split: (intercept, slope, intercept_b, slope_b)}`` with
    the estimate and its [B] resamples, and ``"df"``: the seed degrees of freedom it adds; the
    curvature is unchanged.
    """
    index = np.asarray(index, int)
    pts_all = table.points.iloc[index]
    P = float(pts_all["budget"].iloc[0])
    k_c = choose_k_c(table, index) if k_c is None else float(k_c)
    index = index[pts_all["k_c"].to_numpy(float) == k_c]
    pts = table.points.iloc[index]
    if pts["N"].nunique() < MIN_POINTS:
        raise FitError(
            f"budget {P:g}, k_c={k_c:g}: {pts['N'].nunique()} distinct N; need {MIN_POINTS}"
        )
    x = np.log(pts["N"].to_numpy(float))
    lo, hi = float(x.min()), float(x.max())
    val, test = table.means("val")[index], table.means("test")[index]
    if not (np.isfinite(val).all() and np.isfinite(test).all()):
        raise FitError(f"budget {P:g}, k_c={k_c:g}: a point has no finite seed losses")
    coef = parabola_coefficients(x, val)[0]
    coef_test = parabola_coefficients(x, test)[0]
    bc = parabola_coefficients(x, boot["val"][:, index])
    bt = parabola_coefficients(x, boot["test"][:, index])
    for split, point, resampled in (("val", coef, bc), ("test", coef_test, bt)):
        if correction is not None:
            d0, s0, d0_b, s0_b = correction[split]
            point[:2] += (d0, s0)
            resampled[:, 0] += d0_b
            resampled[:, 1] += s0_b
    x_opt, _ = parabola_minimiser(coef[None], lo, hi)
    bx, b_interior = parabola_minimiser(bc, lo, hi)
    bN = np.exp(bx)
    samples = pd.DataFrame(
        {
            "c": bc[:, 2],
            "N_star": bN,
            "k_e_star": _k_e_star(P, bN, pts, budget_kind),
            "L_star": bc[:, 0] + bc[:, 1] * bx + bc[:, 2] * bx**2,
            "L_star_test": bt[:, 0] + bt[:, 1] * bx + bt[:, 2] * bx**2,
        }
    )
    N_star = float(np.exp(x_opt[0]))
    df = table.degrees_of_freedom(index) + (int(correction["df"]) if correction else 0)
    k_e_star = float(_k_e_star(P, np.array([N_star]), pts, budget_kind)[0])
    L_star = float(coef[0] + coef[1] * x_opt[0] + coef[2] * x_opt[0] ** 2)
    L_star_test = float(coef_test[0] + coef_test[1] * x_opt[0] + coef_test[2] * x_opt[0] ** 2)
    single = int((pts["n_seeds"] < 2).sum())
    note = f"{single} point(s) with fewer than 2 seeds: no seed variance there" if single else ""
    data = pd.DataFrame(
        {
            "N": pts["N"].to_numpy(float),
            "k_e": pts["k_e"].to_numpy(float),
            "val_mean": val,
            "val_se": table.standard_errors("val")[index],
            "test_mean": test,
            "test_se": table.standard_errors("test")[index],
            "n_seeds": pts["n_seeds"].to_numpy(int),
            "n_diverged": pts["n_diverged"].to_numpy(int),
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = float(np.exp(-coef[1] / (2 * coef[2]))) if coef[2] > 0 else float("nan")
    return ParabolaFit(
        budget=P,
        budget_kind=budget_kind,
        k_c=k_c,
        n_points=len(index),
        N_range=(float(np.exp(lo)), float(np.exp(hi))),
        a=float(coef[0]),
        b=float(coef[1]),
        c=float(coef[2]),
        c_ci95=interval(samples["c"], center=float(coef[2]), df=df),
        vertex=vertex,
        N_star=N_star,
        N_star_ci95=interval(samples["N_star"], center=N_star, df=df),
        k_e_star=k_e_star,
        k_e_star_ci95=interval(samples["k_e_star"], center=k_e_star, df=df),
        L_star=L_star,
        L_star_ci95=interval(samples["L_star"], center=L_star, df=df),
        L_star_test=L_star_test,
        L_star_test_ci95=interval(samples["L_star_test"], center=L_star_test, df=df),
        df=df,
        interior_fraction=float(np.mean(b_interior)),
        n_boot=len(bc),
        loss_columns=(table.columns["val"], table.columns["test"]),
        note="; ".join(n for n in (note, table.note) if n),
        samples=samples,
        data=data,
    )


def fit_budget_parabola(
    frame: pd.DataFrame,
    n_boot: int = 200,
    seed: int = 0,
    k_c: float | None = None,
    arch: str = "elm",
) -> ParabolaFit:
    """Fit the docs/science.md §8 parabola to the trials of one budget (one data set, budget kind).

    Args:
      frame: trial rows (results-table columns) of a single nominal budget; the ``budget``
        slice rows of ``arch`` are used. Diverged seeds enter as the input-blind loss.
      n_boot: seeds-only bootstrap resamples for the intervals and the interior fraction.
      k_c: the connectivity whose points are fitted (default :func:`choose_k_c`).

    Raises:
      FitError: more than one budget, budget kind or data set, or fewer than 4 distinct N at
        the chosen k_c.
    """
    rows = frame[(frame["slice"] == "budget") & (frame["arch"] == arch)]
    for col in ("budget", "budget_kind", "dataset"):
        values = sorted(pd.unique(rows[col]).tolist()) if len(rows) else []
        if len(values) != 1:
            raise FitError(
                f"fit_budget_parabola: column {col!r} holds {values} in the {arch} budget-slice "
                "rows; pass the trials of exactly one budget of one data set and budget kind"
            )
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot}: the bootstrap needs at least 1 resample")
    table = seed_table(rows, arch=arch)
    boot = table.resample_means(n_boot, seed)
    return fit_from_resamples(
        table, np.arange(len(table.points)), boot, str(rows["budget_kind"].iloc[0]), k_c
    )
