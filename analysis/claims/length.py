"""The training-length check (docs/science.md §8): is every claim decided the same at twice the
training steps?

A sweep with a ``length`` slice trained some of its points again at twice the steps with fewer
seeds (the law sweep: each budget's two best points and the two ends of each axis slice, seeds
0 and 1). Each such point's effect of the longer training is the paired difference of the seed
losses, ``delta = L_2x(seed) - L_1x(seed)`` (same seed, so the same initialisation and wiring),
averaged over the seeds both lengths have; its resamples redraw those pairs.

To first order the longer training adds a line in log N to a budget's curve, and a line in
log(axis value) to an axis slice: the line through the two points' deltas. So at 2x

* an axis slice's slope is the 1x slope plus the slope of its deltas (the ends of a three-point
  slice set the least-squares slope);
* a budget's parabola is the 1x parabola plus the line through its two deltas (curvature
  unchanged): its vertex, N*, k_e* and L* move accordingly;

and every claim is decided again on these figures with the same rules and resamples
(:mod:`analysis.claims.decide`). A budget or axis without two length points is left out at 2x. The
decision *holds* when it is the same at both lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.claims.decide import (
    AXES,
    LENGTH_SLICE,
    ClaimsBlock,
    _axis_claim,
    _budget_rows,
    _interior_claim,
    _moves_claim,
    budget_fits,
)
from analysis.claims.law import scaling_law_claim
from analysis.claims.model import information_model_claim
from analysis.claims.types import Claim, not_testable
from analysis.stats.seedboot import SPLITS, input_blind, loss_columns


@dataclass(frozen=True)
class LengthCheck:
    """The claims of one block at the longer training, beside the block's own."""

    dataset: str
    budget_kind: str
    steps: tuple[int, int]  # (1x, 2x) training steps
    claims: dict[str, Claim]
    deltas: pd.DataFrame = field(repr=False)  # one row per length point

    def table(self, block: ClaimsBlock) -> pd.DataFrame:
        """Per claim: the decision at each length and whether it holds."""
        rows = []
        for name, c1 in block.claims.items():
            c2 = self.claims.get(name)
            d2 = c2.decision if c2 is not None else "not_testable"
            rows.append(
                {
                    "claim": name,
                    f"decision at {self.steps[0]} steps": c1.decision,
                    f"decision at {self.steps[1]} steps": d2,
                    "holds": c1.decision == d2,
                    "statistic 1x": c1.statistic,
                    "statistic 2x": None if c2 is None else c2.statistic,
                    "note 2x": "" if c2 is None else c2.note,
                }
            )
        return pd.DataFrame(rows)


def _seed_losses(rows: pd.DataFrame, column: str, split: str, blind: float) -> dict[int, float]:
    """seed -> loss of the point's rows (diverged at the input-blind loss; failed left out)."""
    out = {}
    for r in rows.itertuples(index=False):
        if r.status == "failed":
            continue
        value = float(getattr(r, column))
        if r.status == "diverged":
            b = float(getattr(r, f"input_blind_{split}_loss", np.nan))
            value = b if np.isfinite(b) else blind
        if np.isfinite(value):
            out[int(r.seed)] = value
    return out


def length_deltas(
    trials: pd.DataFrame, n_boot: int = 200, seed: int = 0, arch: str = "elm"
) -> tuple[pd.DataFrame, dict[int, dict[str, np.ndarray]]]:
    """One row per length point (its 1x twin's slice, budget, N, k_e, k_c, steps, the paired
    deltas per split and their seeds) and, by row, the deltas' resamples ``{split: [n_boot]}``.
    A point whose twin lies in several axis slices (the centre) gets one row per slice."""
    columns, _ = loss_columns(trials)
    blind = input_blind(trials)
    ours = trials[trials["arch"] == arch]
    length = ours[ours["slice"] == LENGTH_SLICE]
    main = ours[ours["slice"] != LENGTH_SLICE]
    rng = np.random.default_rng(seed)
    rows, samples = [], {}
    for (point_id, budget), g in length.groupby(["point_id", "budget"], dropna=False, sort=True):
        if np.isfinite(budget):
            twins = main[(main["point_id"] == point_id) & (main["budget"] == budget)]
            twins = twins[twins["slice"] == "budget"]
        else:
            twins = main[(main["point_id"] == point_id) & main["slice"].str.startswith("axis_")]
        for slice_, twin in twins.groupby("slice", sort=True):
            row = {
                "slice": slice_,
                "budget": float(budget),
                "point_id": point_id,
                "N": float(g["N"].iloc[0]),
                "d_m": float(g["d_m"].iloc[0]),
                "k_e": float(g["k_e"].iloc[0]),
                "k_c": float(g["k_c"].iloc[0]),
                "steps_1x": int(twin["steps"].max()),
                "steps_2x": int(g["steps"].max()),
            }
            draws = None
            for split in SPLITS:
                long = _seed_losses(g, columns[split], split, blind[f"{split}_loss"])
                short = _seed_losses(twin, columns[split], split, blind[f"{split}_loss"])
                common = sorted(set(long) & set(short))
                d = np.array([long[s] - short[s] for s in common])
                row[f"delta_{split}"] = float(d.mean()) if len(d) else np.nan
                row["n_pairs"] = len(d)
                if draws is None:
                    draws = rng.integers(0, max(len(d), 1), size=(n_boot, max(len(d), 1)))
                if len(d) >= 2:
                    inflate = np.sqrt(len(d) / (len(d) - 1.0))
                    boot = d.mean() + inflate * (d[draws].mean(axis=1) - d.mean())
                else:
                    boot = np.full(n_boot, row[f"delta_{split}"])
                samples.setdefault(len(rows), {})[split] = boot
            rows.append(row)
    return pd.DataFrame(rows), samples


def _line(
    x: np.ndarray, d: np.ndarray, db: np.ndarray
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Intercept and slope of the least-squares line of d on x, and of every resample [B, k]."""
    xc = x - x.mean()
    slope = float(xc @ (d - d.mean()) / (xc @ xc))
    slopes = (db - db.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
    return (
        float(d.mean() - slope * x.mean()),
        slope,
        db.mean(axis=1) - slopes * x.mean(),
        slopes,
    )


def _corrections(rows: pd.DataFrame, samples, x_of, keys) -> dict:
    """Per key (a budget or an axis slice): the line through its length points' deltas."""
    out = {}
    for key, idx in keys:
        idx = [i for i in idx if rows.loc[i, "n_pairs"] >= 1]
        x = np.array([x_of(rows.loc[i]) for i in idx])
        if len(np.unique(x)) < 2:
            continue
        corr = {"df": int(sum(max(rows.loc[i, "n_pairs"] - 1, 0) for i in idx))}
        for split in SPLITS:
            d = rows.loc[idx, f"delta_{split}"].to_numpy(float)
            db = np.stack([samples[i][split] for i in idx], axis=1)
            corr[split] = _line(x, d, db)
        out[key] = corr
    return out


def check_length(
    trials: pd.DataFrame,
    block: ClaimsBlock,
    n_boot: int = 200,
    seed: int = 0,
    arch: str = "elm",
    information_model: bool = True,
) -> LengthCheck | None:
    """Decide the claims of ``block`` again at the longer training (module docstring); None
    when the trials have no ``length`` slice. ``trials``: the block's trials with the length
    slice (one data set, budget kind); ``information_model=False`` skips the model's fit."""
    if not (trials["slice"] == LENGTH_SLICE).any():
        return None
    table, boot, _, _ = budget_fits(trials, block.budget_kind, n_boot, seed, arch)
    deltas, samples = length_deltas(trials, n_boot, seed + 1, arch)
    if deltas.empty:
        return None
    budget_keys = [
        (float(P), list(g.index))
        for P, g in deltas[deltas["slice"] == "budget"].groupby("budget", sort=True)
    ]
    corrections = _corrections(deltas, samples, lambda r: np.log(r["N"]), budget_keys)
    axis_cols = {slice_: col for slice_, col in AXES.values()}
    axis_keys = [
        (slice_, list(g.index))
        for slice_, g in deltas[deltas["slice"].str.startswith("axis_")].groupby("slice")
    ]
    shifts = {
        slice_: corr
        for slice_, corr in _corrections(
            deltas, samples, lambda r: np.log(r[axis_cols[r["slice"]]]), axis_keys
        ).items()
    }
    claims = {}
    for name, (slice_, _) in AXES.items():
        corr = shifts.get(slice_)
        if corr is None:
            claims[name] = not_testable(name, f"no length points at both ends of {slice_}")
            continue
        shift = {s: (corr[s][1], corr[s][3]) for s in SPLITS} | {"df": corr["df"]}
        claims[name] = _axis_claim(name, table, boot, shift)
    rows2, fits2 = _budget_rows(table, boot, block.budget_kind, corrections)
    largest = max(block.parabolas, default=None)
    missing_held_out = largest is not None and largest not in corrections
    note = f"at 2x: {len(corrections)} budget(s) with two length points" + (
        f"; {table.note}" if table.note else ""
    )
    claims["interior_optimum"] = _interior_claim(rows2, note)
    claims["optimum_moves"] = _moves_claim(fits2, rows2, note)
    claims["scaling_law"] = scaling_law_claim(table, boot, fits2, rows2, block.budget_kind, seed)
    if missing_held_out:
        claims["scaling_law"] = not_testable(
            "scaling_law", f"the held-out budget {largest:g} has no two length points"
        )
    d_tree = trials.loc[trials["arch"] == arch, "d_tree"].dropna().unique()
    claims["information_model"] = (
        information_model_claim(
            table, fits2, block.budget_kind, int(d_tree[0]) if len(d_tree) else None
        )
        if information_model
        else not_testable("information_model", "not computed (information_model=False)")
    )
    return LengthCheck(
        dataset=block.dataset,
        budget_kind=block.budget_kind,
        steps=(int(deltas["steps_1x"].max()), int(deltas["steps_2x"].max())),
        claims=claims,
        deltas=deltas,
    )
