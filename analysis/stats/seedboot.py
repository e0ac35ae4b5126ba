"""Per-seed losses of every architecture point and the design-fixed, seeds-only bootstrap.

The intervals of the claim tests of docs/science.md §8.

The claim tests work on a :class:`SeedTable`: for every architecture point of one data set and
budget kind, the per-seed losses on the validation and test splits (paired by seed). A resample
draws, inside every point, as many seeds as it has, with replacement (the same draw for both
splits); every point keeps its place, so every budget keeps its design. The wiring seed varies
with the training seed, so wiring variance is inside the intervals.

Choices fixed here (docs/analysis.md):

* **Final losses.** ``final_val_loss`` / ``final_test_loss`` (evaluated at the last step) are
  used when the table has them; older tables fall back to the best-over-checkpoints
  ``val_loss`` / ``test_loss`` and the fallback is recorded in :attr:`SeedTable.note`.
* **Rescaled resamples.** Each resampled seed mean is moved away from the point's seed mean by
  ``sqrt(n / (n - 1))``, which gives it the unbiased variance ``s^2 / n`` (few seeds otherwise
  make every interval too narrow).
* **Diverged seeds are kept.** A diverged seed's loss enters as the input-blind loss of its
  split (the loss of predicting the label prior: what a network that learned nothing scores),
  so an unstable architecture is penalised instead of hidden and its point keeps its seeds.
  Without a known input-blind loss the diverged seed is dropped and counted in ``n_dropped``.
  Failed trials (an exception, not a training outcome) never enter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SPLITS = ("val", "test")
_POINT_FIELDS = (
    "point_id",
    "slice",
    "budget",
    "N",
    "d_m",
    "k_e",
    "k_c",
    "P_core",
    "P_io",
    "P_total",
)


def loss_columns(trials: pd.DataFrame) -> tuple[dict[str, str], str]:
    """The loss column per split (final losses when present) and a note when falling back."""
    final = {s: f"final_{s}_loss" for s in SPLITS}
    ok = trials["status"] == "ok"
    if all(c in trials.columns for c in final.values()) and all(
        np.isfinite(pd.to_numeric(trials.loc[ok, c], errors="coerce")).any() for c in final.values()
    ):
        return final, ""
    return (
        {s: f"{s}_loss" for s in SPLITS},
        "the table has no final (last-step) losses: best-over-checkpoints val_loss/test_loss "
        "used, which biases every loss down",
    )


def input_blind(trials: pd.DataFrame) -> dict[str, float]:
    """Input-blind loss and metric per split (median over the trials; NaN when unknown)."""
    out = {}
    for s in SPLITS:
        for q in ("loss", "metric"):
            col = f"input_blind_{s}_{q}"
            v = (
                pd.to_numeric(trials[col], errors="coerce").to_numpy(float)
                if col in trials.columns
                else np.array([])
            )
            v = v[np.isfinite(v)]
            out[f"{s}_{q}"] = float(np.median(v)) if len(v) else float("nan")
    return out


@dataclass(frozen=True)
class SeedTable:
    """Per-seed losses of every architecture point of one block (one data set, budget kind)."""

    points: pd.DataFrame  # one row per point: _POINT_FIELDS, n_seeds, n_diverged, n_dropped
    losses: dict[str, tuple[np.ndarray, ...]] = field(repr=False)  # split -> per-point seeds
    columns: dict[str, str]  # split -> the loss column used
    baseline: dict[str, float]  # input-blind loss/metric per split
    note: str = ""

    def means(self, split: str = "val") -> np.ndarray:
        """Seed-mean loss of every point (NaN for a point without seeds)."""
        return np.array([np.mean(v) if len(v) else np.nan for v in self.losses[split]])

    def standard_errors(self, split: str = "val") -> np.ndarray:
        """Standard error of every point's seed mean (NaN with fewer than 2 seeds)."""
        return np.array(
            [
                np.std(v, ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
                for v in self.losses[split]
            ]
        )

    def degrees_of_freedom(self, index: np.ndarray) -> int:
        """Seed degrees of freedom of the points ``index``: the sum of ``n_seeds - 1``."""
        n = self.points["n_seeds"].to_numpy(int)[np.asarray(index, int)]
        return int(np.sum(np.maximum(n - 1, 0)))

    def resample_means(self, n_boot: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Seeds-only bootstrap: ``{split: [n_boot, points]}`` seed means of the resamples."""
        rng = np.random.default_rng(seed)
        out = {s: np.full((n_boot, len(self.points)), np.nan) for s in SPLITS}
        for j, n in enumerate(self.points["n_seeds"].to_numpy(int)):
            if n == 0:
                continue
            idx = rng.integers(0, n, size=(n_boot, n))
            # Resampled means are spread about the seed mean by sqrt(n / (n - 1)), so their
            # variance is the unbiased s^2 / n rather than the plug-in (n - 1) s^2 / n^2 (with
            # 3 seeds the plain bootstrap is 18 % too narrow in standard deviation).
            inflate = np.sqrt(n / (n - 1.0)) if n > 1 else 1.0
            for s in SPLITS:
                v = self.losses[s][j]
                out[s][:, j] = v.mean() + inflate * (v[idx].mean(axis=1) - v.mean())
        return out


def seed_table(trials: pd.DataFrame, arch: str = "elm") -> SeedTable:
    """Build the :class:`SeedTable` of the ``arch`` points of one block of trials."""
    columns, note = loss_columns(trials)
    base = input_blind(trials)
    rows = trials[(trials["arch"] == arch) & (trials["status"] != "failed")]
    notes = [note] if note else []
    if np.isnan(base["val_loss"]):
        notes.append("input-blind baseline unknown: the 3-SE learning check was not done")
    points, losses = [], {s: [] for s in SPLITS}
    n_dropped_all = 0
    # a point shared by two slices (the base point of the axis slices) is kept once per slice;
    # the points in groupby order (slice, budget with NaN last, point_id), seeds ascending
    group = rows.groupby(["slice", "budget", "point_id"], sort=True, dropna=False).ngroup()
    order = np.lexsort((rows["seed"].to_numpy(), group.to_numpy()))
    rows = rows.iloc[order]
    gid = group.to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]]) if len(gid) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(gid)].astype(int) if len(gid) else np.zeros(0, int)
    diverged_all = (rows["status"] == "diverged").to_numpy()
    values = {}
    for s in SPLITS:
        v = pd.to_numeric(rows[columns[s]], errors="coerce").to_numpy(float).copy()
        blind_col = f"input_blind_{s}_loss"
        blind = (
            pd.to_numeric(rows[blind_col], errors="coerce").to_numpy(float)
            if blind_col in rows.columns
            else np.full(len(rows), np.nan)
        )
        blind = np.where(np.isfinite(blind), blind, base[f"{s}_loss"])
        v[diverged_all] = blind[diverged_all]
        values[s] = v
    firsts = rows.iloc[starts][list(_POINT_FIELDS)].to_dict(orient="records")
    for first, a, b in zip(firsts, starts, ends, strict=True):
        keep = np.ones(b - a, bool)
        for s in SPLITS:
            keep &= np.isfinite(values[s][a:b])
        for s in SPLITS:
            losses[s].append(values[s][a:b][keep])
        row = dict(first)
        row.update(
            n_seeds=int(keep.sum()),
            n_diverged=int(diverged_all[a:b].sum()),
            n_dropped=int((~keep).sum()),
        )
        n_dropped_all += row["n_dropped"]
        points.append(row)
    if n_dropped_all:
        notes.append(f"{n_dropped_all} seed(s) without a finite loss dropped")
    frame = pd.DataFrame(points, columns=[*_POINT_FIELDS, "n_seeds", "n_diverged", "n_dropped"])
    return SeedTable(
        points=frame,
        losses={s: tuple(v) for s, v in losses.items()},
        columns=columns,
        baseline=base,
        note="; ".join(notes),
    )


def learned(
    table: SeedTable, index: np.ndarray, split: str = "val", n_se: float = 3.0
) -> tuple[bool | None, str]:
    """Whether the best of the points ``index`` is below the input-blind loss by > ``n_se`` SE.

    Returns ``(True | False | None, reason)``; None when the baseline or the SE is unknown.
    """
    index = np.asarray(index, int)
    means, se = table.means(split)[index], table.standard_errors(split)[index]
    if len(index) == 0 or not np.isfinite(means).any():
        return False, "no point with a finite loss"
    j = int(np.nanargmin(means))
    blind = table.baseline[f"{split}_loss"]
    if not np.isfinite(blind):
        return None, "input-blind baseline unknown"
    if not np.isfinite(se[j]):
        return None, "best point has a single seed: no standard error"
    gap = blind - means[j]
    if gap > n_se * se[j]:
        return True, f"best point {gap / se[j]:.1f} SE below the input-blind loss {blind:.4g}"
    return False, (
        f"not learned: best point {means[j]:.4g} is not below the input-blind loss {blind:.4g} "
        f"by more than {n_se:g} SE (gap {gap:.3g}, SE {se[j]:.3g})"
    )
