"""The claim tests of docs/science.md §8 on a sweep table, each decided as supported,
contradicted or not testable (with the reason).

Claims (one :class:`Claim` each, per data set and budget kind):

* ``monotone_N``, ``monotone_k_e``, ``monotone_k_c``: least-squares slope of the seed-mean loss
  against log(axis value) on the slice ``axis_N`` / ``axis_k_e`` / ``axis_k_c``. Supported when
  the 95 % interval is below 0, contradicted when it is above 0.
* ``interior_optimum``: per budget, the parabola in log N (:func:`fit_budget_parabola`).
  A budget supports it when c's interval is above 0 and the vertex is inside the sampled range
  in >= 95 % of the resamples; it contradicts it when c's interval is below 0 (a maximum).
  The claim is supported when every tested budget supports it, contradicted when one contradicts.
* ``optimum_moves``: slopes of log N*(P) and log k_e*(P) (k_e* from the budget identity at N*)
  against log P over the budgets with an interior optimum (>= 3); supported when both intervals
  are above 0, contradicted when one is below 0.
* ``scaling_law``: ``L*(P) = E + A P^-alpha`` (docs/science.md §7 fit) on the parabola L* of
  >= 5 budgets spanning >= 2 decades, the largest held out (:mod:`analysis.claims.law`).
  Supported only if L* falls across the fitted budgets (interval above 0), the law fitted on them
  predicts the held-out L* within max(2 SE, 25 % of the drop from the largest fitted budget) and
  better than the naive "no further improvement"; contradicted when the held-out L* lies outside
  the law's 95 % interval and the naive prediction does better (also when L* rises, or a
  ``random``-slice point lies below the law's band by more than 3 SE).
* ``information_model``: the docs/science.md §6 model fitted without the held-out budget passes
  (supported) when its N* there lies inside the held-out parabola's 95 % N* interval and its
  log N* error is no worse than the log-linear extrapolation of N* from the fitted budgets;
  otherwise it fails (contradicted).

**An interval that contains 0 decides nothing**: the claim is ``not_testable`` with the reason
"inconclusive" and the interval, never supported (a flat or noise-only table cannot support a
claim). A budget (or axis slice) whose best point is not below the input-blind loss by more than
3 standard errors has not learned: it is left out, and a claim with nothing left is not testable.
Intervals: the seeds-only bootstrap of :mod:`analysis.stats.seedboot` (design fixed; final losses;
diverged seeds enter as the input-blind loss), one set of resamples shared by every claim.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.claims.law import scaling_law_claim
from analysis.claims.model import information_model_claim
from analysis.claims.types import (
    DECISIONS,
    Claim,
    ClaimsBlock,
    decide_sign,
    not_testable,
    write_claims_json,
)
from analysis.stats.parabola import (
    LEVEL,
    ParabolaFit,
    fit_budget_parabola,
    fit_from_resamples,
    interval,
)
from analysis.stats.scaling import FitError
from analysis.stats.seedboot import SeedTable, learned, seed_table

__all__ = [
    "AXES",
    "CLAIM_NAMES",
    "DECISIONS",
    "Claim",
    "ClaimsBlock",
    "ParabolaFit",
    "decide_claims",
    "decide_block",
    "fit_budget_parabola",
    "write_claims_json",
]

#: claim name -> (slice, column of the axis value)
AXES = {
    "monotone_N": ("axis_N", "N"),
    "monotone_k_e": ("axis_k_e", "k_e"),
    "monotone_k_c": ("axis_k_c", "k_c"),
}
CLAIM_NAMES = (*AXES, "interior_optimum", "optimum_moves", "scaling_law", "information_model")
#: The slice of the training-length check (docs/science.md §8): points trained again at another
#: length; never pooled with the claims' points (analysis.claims.length decides on them).
LENGTH_SLICE = "length"
MIN_AXIS_POINTS = 3
MIN_MOVE_BUDGETS = 3


def _slopes(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Least-squares slope of every row of Y [B, n] against x [n]."""
    xc = x - x.mean()
    return (np.atleast_2d(Y) - np.atleast_2d(Y).mean(axis=1, keepdims=True)) @ xc / (xc @ xc)


def _axis_claim(
    name: str, table: SeedTable, boot: dict[str, np.ndarray], shift: dict | None = None
) -> Claim:
    """The slope claim of one axis slice; ``shift`` (the training-length check) adds
    ``{split: (slope, slope_b)}`` and ``"df"`` to the slopes."""
    slice_, col = AXES[name]
    idx = np.flatnonzero(table.points["slice"].to_numpy() == slice_)
    if len(idx) == 0:
        return not_testable(name, f"no {slice_} slice in the table")
    x = np.log(table.points[col].to_numpy(float)[idx])
    if len(np.unique(x)) < MIN_AXIS_POINTS:
        return not_testable(
            name,
            f"{slice_}: {len(np.unique(x))} distinct {col} values; need {MIN_AXIS_POINTS}",
            len(idx),
        )
    if (table.points["n_seeds"].to_numpy()[idx] < 2).any():
        return not_testable(
            name, f"{slice_}: a point has fewer than 2 seeds, so no interval", len(idx)
        )
    ok, why = learned(table, idx)
    if ok is False:
        return not_testable(name, f"{slice_}: {why}", len(idx))
    slope = float(_slopes(x, table.means("val")[idx])[0])
    test_slope = float(_slopes(x, table.means("test")[idx])[0])
    slopes, test_slopes = _slopes(x, boot["val"][:, idx]), _slopes(x, boot["test"][:, idx])
    df = table.degrees_of_freedom(idx)
    if shift is not None:
        slope, slopes = slope + shift["val"][0], slopes + shift["val"][1]
        test_slope, test_slopes = test_slope + shift["test"][0], test_slopes + shift["test"][1]
        df += int(shift["df"])
    return decide_sign(
        name,
        slope,
        interval(slopes, center=slope, df=df),
        len(idx),
        "negative",
        "; ".join(n for n in (why if ok is None else "", table.note) if n),
        test_slope=test_slope,
        test_ci95=interval(test_slopes, center=test_slope, df=df),
        x=table.points[col].to_numpy(float)[idx],
        val_mean=table.means("val")[idx],
    )


def _budget_rows(
    table: SeedTable, boot, budget_kind: str, corrections: dict | None = None
) -> tuple[list[dict], dict[float, ParabolaFit]]:
    """Per budget of the budget slice: learned check, parabola, and its own decision.

    With ``corrections`` (budget -> the training-length correction of
    :func:`analysis.stats.parabola.fit_from_resamples`) only the budgets that have one are fitted,
    each with its correction."""
    rows, fits = [], {}
    pts = table.points
    budgets = sorted(pts.loc[pts["slice"] == "budget", "budget"].unique())
    if corrections is not None:
        budgets = [P for P in budgets if float(P) in corrections]
    # A budget contradicts the claim only at the family level 1 - 0.05 / (number of budgets)
    # (Bonferroni), so that one of many budgets does not contradict it by chance; support
    # needs every tested budget at 95 %, which is already a test at that level.
    family = 1.0 - (1.0 - LEVEL) / max(len(budgets), 1)
    for P in budgets:
        idx = np.flatnonzero(
            (pts["slice"] == "budget").to_numpy() & (pts["budget"] == P).to_numpy()
        )
        row = {
            "budget": float(P),
            "n_points": len(idx),
            "n_diverged": int(pts["n_diverged"].to_numpy()[idx].sum()),
        }
        ok, why = learned(table, idx)
        row["learned"] = ok
        if ok is False:
            rows.append({**row, "decision": "not_testable", "note": why})
            continue
        try:
            fit = fit_from_resamples(
                table,
                idx,
                boot,
                budget_kind,
                correction=None if corrections is None else corrections[float(P)],
            )
        except FitError as err:
            rows.append({**row, "decision": "not_testable", "note": str(err)})
            continue
        fits[float(P)] = fit
        lo, hi = fit.c_ci95
        hi_family = interval(fit.samples["c"], family, center=fit.c, df=fit.df)[1]
        if fit.interior:
            decision, note = "supported", ""
        elif hi_family < 0:
            decision, note = (
                "contradicted",
                f"c's {family:.1%} interval is below 0: the parabola has a maximum",
            )
        elif lo > 0:
            decision, note = (
                "not_testable",
                (
                    f"vertex inside the sampled N range in only {fit.interior_fraction:.0%} of resamples: "
                    "the optimum may lie outside it (widen the range)"
                ),
            )
        else:
            decision, note = (
                "not_testable",
                f"inconclusive: c's interval [{lo:.3g}, {hi:.3g}] contains 0",
            )
        if (table.points["n_seeds"].to_numpy()[idx] < 2).any():
            decision, note = "not_testable", "a point has fewer than 2 seeds, so no interval"
        rows.append(
            {
                **row,
                "k_c": fit.k_c,
                "c": fit.c,
                "c_lo": lo,
                "c_hi": hi,
                "interior_fraction": fit.interior_fraction,
                "N_star": fit.N_star,
                "N_star_lo": fit.N_star_ci95[0],
                "N_star_hi": fit.N_star_ci95[1],
                "k_e_star": fit.k_e_star,
                "L_star": fit.L_star,
                "L_star_lo": fit.L_star_ci95[0],
                "L_star_hi": fit.L_star_ci95[1],
                "L_star_test": fit.L_star_test,
                "decision": decision,
                "note": "; ".join(n for n in (note, why if ok is None else "") if n),
            }
        )
    return rows, fits


def _interior_claim(rows: list[dict], note: str) -> Claim:
    name = "interior_optimum"
    tested = [r for r in rows if "c" in r]
    if not tested:
        reasons = (
            "; ".join(f"budget {r['budget']:g}: {r['note']}" for r in rows)
            or "no budget slice in the table"
        )
        return not_testable(name, reasons, 0)
    weakest = min(tested, key=lambda r: r["c_lo"])
    decisions = [r["decision"] for r in tested]
    per = "; ".join(
        f"budget {r['budget']:g}: {r['decision']}" + (f" ({r['note']})" if r["note"] else "")
        for r in rows
    )
    if "contradicted" in decisions:
        decision = "contradicted"
    elif all(d == "supported" for d in decisions):
        decision = "supported"
    else:
        decision = "not_testable"
        per = f"supported at {decisions.count('supported')} of {len(tested)} tested budgets; " + per
    return Claim(
        name,
        decision,
        weakest["c"],
        (weakest["c_lo"], weakest["c_hi"]),
        len(tested),
        "; ".join(
            n for n in (f"statistic: c at the weakest budget {weakest['budget']:g}", per, note) if n
        ),
    )


def _moves_claim(fits: dict[float, ParabolaFit], rows: list[dict], note: str) -> Claim:
    name = "optimum_moves"
    use = [
        P
        for P, f in fits.items()
        if next(r for r in rows if r["budget"] == P)["decision"] == "supported"
    ]
    if len(use) < MIN_MOVE_BUDGETS:
        return not_testable(
            name,
            f"{len(use)} budget(s) with an interior optimum; the slopes need {MIN_MOVE_BUDGETS}",
            len(use),
        )
    logP = np.log(np.array(use))
    out = {}
    for q in ("N_star", "k_e_star"):
        point = np.log([getattr(fits[P], q) for P in use])
        samples = np.log(np.stack([fits[P].samples[q].to_numpy(float) for P in use], axis=1))
        slope = float(_slopes(logP, point)[0])
        df = sum(fits[P].df for P in use)
        out[q] = (slope, interval(_slopes(logP, samples), center=slope, df=df))
    (sN, ciN), (sK, ciK) = out["N_star"], out["k_e_star"]
    details = {
        "N_star_slope": sN,
        "N_star_ci95": ciN,
        "k_e_star_slope": sK,
        "k_e_star_ci95": ciK,
        "budgets": use,
    }
    text = f"over {len(use)} of {len(fits)} fitted budgets; slopes vs log P: N* {sN:.3g} [{ciN[0]:.3g}, {ciN[1]:.3g}], k_e* {sK:.3g} [{ciK[0]:.3g}, {ciK[1]:.3g}]"
    if ciN[0] > 0 and ciK[0] > 0:
        decision = "supported"
    elif ciN[1] < 0 or ciK[1] < 0:
        decision = "contradicted"
    else:
        decision, text = "not_testable", "inconclusive: an interval contains 0; " + text
    return Claim(
        name, decision, sN, ciN, len(use), "; ".join(n for n in (text, note) if n), details
    )


def budget_fits(
    trials: pd.DataFrame, budget_kind: str, n_boot: int = 200, seed: int = 0, arch: str = "elm"
) -> tuple[SeedTable, dict[str, np.ndarray], list[dict], dict[float, ParabolaFit]]:
    """The seed table of a block, its resamples, and the per-budget rows and parabolas exactly
    as :func:`decide_block` computes them (the length-check slice left out)."""
    trials = trials[trials["slice"] != LENGTH_SLICE]
    table = seed_table(trials, arch=arch)
    boot = table.resample_means(n_boot, seed)
    rows, fits = _budget_rows(table, boot, budget_kind)
    return table, boot, rows, fits


def decide_block(
    trials: pd.DataFrame,
    budget_kind: str,
    n_boot: int = 200,
    seed: int = 0,
    arch: str = "elm",
    information_model: bool = True,
) -> ClaimsBlock:
    """Decide every claim on the trials of one data set, counting budgets as ``budget_kind``.

    ``trials`` holds that kind's ``budget`` slice and the axis and random slices (the axis
    slices do not depend on how budgets are counted); see :func:`decide_claims`. Rows of the
    training-length slice are left out. ``information_model=False`` skips the model's fit (its
    claim is then not testable; the estimator study of :mod:`analysis.synthetic.law` does not
    need it).
    """
    if n_boot < 20:
        raise ValueError(
            f"n_boot={n_boot}: 95% intervals need at least 20 resamples (200 recommended)"
        )
    trials = trials[trials["slice"] != LENGTH_SLICE]
    table, boot, rows, fits = budget_fits(trials, budget_kind, n_boot, seed, arch)
    claims = {name: _axis_claim(name, table, boot) for name in AXES}
    claims["interior_optimum"] = _interior_claim(rows, table.note)
    claims["optimum_moves"] = _moves_claim(fits, rows, table.note)
    claims["scaling_law"] = scaling_law_claim(table, boot, fits, rows, budget_kind, seed)
    d_tree = trials.loc[trials["arch"] == arch, "d_tree"].dropna().unique()
    claims["information_model"] = (
        information_model_claim(table, fits, budget_kind, int(d_tree[0]) if len(d_tree) else None)
        if information_model
        else not_testable("information_model", "not computed (information_model=False)")
    )
    return ClaimsBlock(
        dataset=str(trials["dataset"].iloc[0]),
        budget_kind=budget_kind,
        claims=claims,
        input_blind=table.baseline,
        loss_columns=dict(table.columns),
        n_boot=n_boot,
        budgets=pd.DataFrame(rows),
        parabolas=fits,
        note=table.note,
    )


def decide_claims(
    trials: pd.DataFrame,
    n_boot: int = 200,
    seed: int = 0,
    arch: str = "elm",
    information_model: bool = True,
) -> list[ClaimsBlock]:
    """Decide the docs/science.md §8 claims on a validated trial frame: one block per (data set,
    budget kind of the ``budget`` slice); the axis and random slices of a data set join every
    block."""
    blocks = []
    trials = trials[trials["slice"] != LENGTH_SLICE]
    for _dataset, g in trials.groupby("dataset", sort=True):
        budget = g["slice"] == "budget"
        kinds = sorted(g.loc[budget, "budget_kind"].unique()) or ["core"]
        for kind in kinds:
            part = g[~budget | (g["budget_kind"] == kind)].reset_index(drop=True)
            blocks.append(
                decide_block(
                    part, kind, n_boot=n_boot, seed=seed, arch=arch,
                    information_model=information_model,
                )
            )  # fmt: skip
    return blocks
