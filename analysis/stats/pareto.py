"""Pareto frontiers and per-budget optima (docs/science.md §7).

Dominance (both coordinates minimised): row a dominates row b when ``a.x <= b.x`` and
``a.y <= b.y`` with at least one strict inequality. The frontier is the set of rows no other row
dominates. Consequences, which are the tie rules:

* equal ``x``, different ``y``: only the rows with the smallest ``y`` at that ``x`` can survive;
* equal ``y``, different ``x``: only the rows with the smallest ``x`` survive;
* exact duplicates (same ``x`` and ``y``): they do not dominate each other, so all of them are
  kept when that ``(x, y)`` is non-dominated (``keep_duplicates=True``, the default), or only
  the first in input order (``keep_duplicates=False``, useful before fitting so that a value is
  not counted twice).

The algorithm sorts by ``(x, y)`` (stable, O(n log n)) and sweeps once keeping the running
minimum of ``y``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import ok_points, require_single


def pareto_mask(x: np.ndarray, y: np.ndarray, keep_duplicates: bool = True) -> np.ndarray:
    """Boolean mask of the non-dominated entries of ``(x, y)``, both minimised.

    Raises:
      ValueError: shapes differ or a value is not finite.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got shapes {x.shape} and {y.shape}")
    for name, v in (("x", x), ("y", y)):
        if not np.all(np.isfinite(v)):
            raise ValueError(
                f"{name} has {int(np.sum(~np.isfinite(v)))} non-finite values; drop them first"
            )
    n = len(x)
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    order = np.lexsort((np.arange(n), y, x))  # by x, then y, then input order
    xs, ys = x[order], y[order]
    # First row of each run of equal x holds that x's smallest y.
    new_x = np.ones(n, dtype=bool)
    new_x[1:] = xs[1:] != xs[:-1]
    group = np.cumsum(new_x) - 1
    group_min = ys[new_x]
    # Best y among strictly smaller x: exclusive running minimum over groups.
    prev_best = np.concatenate(([np.inf], np.minimum.accumulate(group_min)[:-1]))
    keep_sorted = (ys == group_min[group]) & (group_min[group] < prev_best[group])
    if not keep_duplicates:
        first_of_pair = np.ones(n, dtype=bool)
        first_of_pair[1:] = (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])
        keep_sorted &= first_of_pair
    mask[order] = keep_sorted
    return mask


def pareto_front(df: pd.DataFrame, x: str, y: str, keep_duplicates: bool = True) -> pd.DataFrame:
    """The non-dominated rows of ``df`` for columns ``x`` and ``y`` (both minimised), sorted by x.

    Typical use on the seed-aggregated point frame: ``pareto_front(points, "P_core",
    "val_loss_mean")``; ``x`` may be ``P_core``, ``P_total`` or ``train_flops``. See the module
    docstring for the tie and duplicate rules.
    """
    for col in (x, y):
        if col not in df.columns:
            raise ValueError(f"column {col!r} not in the frame; columns: {list(df.columns)}")
    mask = pareto_mask(df[x].to_numpy(), df[y].to_numpy(), keep_duplicates=keep_duplicates)
    return df[mask].sort_values([x, y], kind="stable").reset_index(drop=True)


def budget_optima(
    points: pd.DataFrame,
    loss: str = "val_loss",
    arch: str | None = "elm",
    slices: tuple[str, ...] = ("budget",),
) -> pd.DataFrame:
    """The best point of each nominal budget: ``L*(P) = min`` of the seed-mean loss.

    Args:
      points: the seed-aggregated point frame (:func:`analysis.load.aggregate_seeds`) of one
        dataset and one budget kind (checked).
      loss: ``val_loss`` or ``test_loss`` (``<loss>_mean`` is minimised).
      arch: keep only this architecture (None: all).
      slices: the sweep slices whose points share a nominal budget.

    Returns:
      One row per budget, sorted by budget: the optimum point's columns plus ``L_star``,
      ``L_star_sd`` (seed sd of that point) and ``n_points`` (ok points at that budget).
      Ties in the seed-mean loss go to the smaller ``P_core`` (then input order).
    """
    pts = ok_points(points, loss)
    if arch is not None:
        pts = pts[pts["arch"] == arch]
    pts = pts[pts["slice"].isin(slices) & np.isfinite(pts["budget"].to_numpy(dtype=float))]
    if len(pts) == 0:
        return pd.DataFrame(columns=[*points.columns, "L_star", "L_star_sd", "n_points"])
    require_single(pts)
    col = f"{loss}_mean"
    rows = []
    for _, g in pts.groupby("budget", sort=True):
        g = g.sort_values([col, "P_core"], kind="stable")
        row = g.iloc[0].copy()
        row["L_star"] = row[col]
        row["L_star_sd"] = row[f"{loss}_sd"]
        row["n_points"] = len(g)
        rows.append(row)
    return pd.DataFrame(rows).reset_index(drop=True)
