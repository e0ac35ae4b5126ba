"""The ``scaling_law`` claim of docs/science.md §8 (claim 4), used by :mod:`analysis.claims`.

``L*(P) = E + A P^-alpha`` is fitted (:func:`analysis.scaling.fit_power_law`, docs/science.md §7) to
the per-budget parabola optima L*(P) of the budgets that learned and have a parabola, and refitted
on every seeds-only resample. Requirements: at least 5 budgets spanning at least 2 decades. Decision
(the rules are in the docstring of :mod:`analysis.claims`): the fall of L* over the budgets, the
leave-largest-out prediction, and the ``random`` slice against the law's band.
"""

from __future__ import annotations

import numpy as np

from analysis.claim_types import Claim, not_testable
from analysis.parabola import ParabolaFit, interval
from analysis.scaling import (
    ALPHA_BOUNDS,
    FitError,
    fit_power_law,
    one_blas_thread,
)
from analysis.seedboot import SeedTable

MIN_LAW_BUDGETS = 5
MIN_DECADES = 2.0
N_SE_BELOW = 3.0
#: Equivalence margin of the leave-largest-out prediction: validated when the whole interval of
#: its relative error lies within it, missed when the interval lies wholly outside, else
#: inconclusive. (The seeds-only intervals hold no error of the parabola as a description of a
#: budget's curve, so an interval around exactly 0 would reject any law once seeds are precise.)
LLO_TOLERANCE = 0.05


def _clip_alpha(ci: tuple[float, float]) -> tuple[float, float]:
    """The widened interval of alpha, kept inside the fit's bounds."""
    return max(ci[0], ALPHA_BOUNDS[0]), min(ci[1], ALPHA_BOUNDS[1])


def _refit_starts(full) -> list[tuple[float, float, float]]:
    """Every resample's refit starts from the full-data optimum (resamples lie close to the
    data; a grid of starts per refit made the claim tests several times slower)."""
    return [(np.log(full.A), full.alpha, np.log(full.E))]


@one_blas_thread
def scaling_law_claim(
    table: SeedTable,
    boot: dict[str, np.ndarray],
    fits: dict[float, ParabolaFit],
    rows: list[dict],
    budget_kind: str,
    seed: int = 0,
):
    """Decide ``scaling_law`` from the budgets' parabola fits (see the module docstring)."""
    name = "scaling_law"
    # a point with one seed has no seed variance: its budget gives no interval
    usable = sorted(
        P
        for P in fits
        if np.isfinite(fits[P].L_star) and fits[P].L_star > 0 and fits[P].data["n_seeds"].min() >= 2
    )
    if len(usable) < MIN_LAW_BUDGETS:
        return not_testable(
            name,
            f"{len(usable)} budget(s) learned and have a parabola on points with >= 2 seeds; "
            f"the law needs {MIN_LAW_BUDGETS}",
            len(usable),
        )
    P = np.array(usable)
    decades = float(np.log10(P.max() / P.min()))
    if decades < MIN_DECADES:
        return not_testable(
            name, f"the budgets span {decades:.2f} decades; the law needs {MIN_DECADES:g}", len(P)
        )
    L = np.array([fits[p].L_star for p in usable])
    Lb = np.stack([fits[p].samples["L_star"].to_numpy(float) for p in usable], axis=1)
    try:
        full = fit_power_law(P, L)
        small = fit_power_law(P[:-1], L[:-1])
    except FitError as err:
        return not_testable(name, f"L*(P) not fitted: {err}", len(P))
    starts, starts_small = _refit_starts(full), _refit_starts(small)
    random_idx = np.flatnonzero(table.points["slice"].to_numpy() == "random")
    P_col = "P_total" if budget_kind == "total" else "P_core"
    P_random = table.points[P_col].to_numpy(float)[random_idx]
    alpha, rel, preds = [], [], []
    for b in range(Lb.shape[0]):
        if not (np.all(np.isfinite(Lb[b])) and np.all(Lb[b] > 0)):
            continue
        try:
            fb = fit_power_law(P, Lb[b], starts=starts)
            sb = fit_power_law(P[:-1], Lb[b, :-1], starts=starts_small)
        except FitError:
            continue
        alpha.append(fb.alpha)
        rel.append(float(sb.predict(P[-1])) / Lb[b, -1] - 1.0)
        preds.append(fb.predict(P_random))
    df = sum(fits[p].df for p in usable)
    rel_point = float(small.predict(P[-1])) / L[-1] - 1.0
    drop = interval(Lb[:, 0] - Lb[:, -1], center=float(L[0] - L[-1]), df=df)
    rel_ci = interval(np.array(rel), center=rel_point, df=df)
    details = {
        "E": full.E,
        "A": full.A,
        "alpha": full.alpha,
        "budgets": usable,
        "L_star": L,
        "decades": decades,
        "drop": float(L[0] - L[-1]),
        "drop_ci95": drop,
        "leave_largest_out_rel_error": rel_point,
        "leave_largest_out_ci95": rel_ci,
        "n_resamples_fitted": len(alpha),
    }
    problems, notes = [], []
    if len(random_idx):
        mean = table.means("val")[random_idx]
        se = table.standard_errors("val")[random_idx]
        law = full.predict(P_random)
        band_lo = np.quantile(np.array(preds), 0.025, axis=0) if preds else law
        gap = (law - mean) / law
        below = int(np.sum(mean < law))
        significant = int(np.sum(mean + N_SE_BELOW * np.nan_to_num(se) < band_lo))
        details.update(
            random_n=len(random_idx),
            random_fraction_below=below / len(random_idx),
            random_largest_gap=float(np.max(gap)),
            random_below_band_3se=significant,
        )
        notes.append(
            f"random slice: {below}/{len(random_idx)} points below the law, largest gap "
            f"{np.max(gap):+.2%} of the law"
        )
        if significant:
            problems.append(
                f"{significant} random-slice point(s) lie below the law's 95% band by more than "
                f"{N_SE_BELOW:g} SE: the budget optima are not near the frontier"
            )
    else:
        notes.append("no random slice: the frontier check against the law was not done")
    if full.alpha <= 1e-6 or full.alpha >= 10.0 - 1e-6:
        notes.append(f"alpha = {full.alpha:.3g} sits on its bound [0, 10]")
    if drop[1] < 0:
        problems.append(f"L* rises with P: interval of L*(P_min) - L*(P_max) {drop}")
    if rel_ci[0] > LLO_TOLERANCE or rel_ci[1] < -LLO_TOLERANCE:
        problems.append(
            f"the law fitted without the largest budget misses it: relative error interval "
            f"[{rel_ci[0]:+.2%}, {rel_ci[1]:+.2%}] lies outside ±{LLO_TOLERANCE:.0%}"
        )
    notes.append(
        f"leave-largest-out relative error {details['leave_largest_out_rel_error']:+.2%} "
        f"[{rel_ci[0]:+.2%}, {rel_ci[1]:+.2%}]"
    )
    validated = -LLO_TOLERANCE <= rel_ci[0] and rel_ci[1] <= LLO_TOLERANCE
    if problems:
        decision = "contradicted"
    elif drop[0] > 0 and validated:
        decision = "supported"
    else:
        decision = "not_testable"
        if drop[0] <= 0:
            problems.append(
                f"inconclusive: the interval of L*(P_min) - L*(P_max) [{drop[0]:.3g}, "
                f"{drop[1]:.3g}] contains 0"
            )
        if not validated:
            problems.append(
                f"inconclusive: the leave-largest-out relative error interval [{rel_ci[0]:+.2%}, "
                f"{rel_ci[1]:+.2%}] is not within ±{LLO_TOLERANCE:.0%}"
            )
    note = "; ".join(x for x in (*problems, *notes, table.note) if x)
    return Claim(
        name,
        decision,
        full.alpha,
        interval(np.array(alpha), center=full.alpha, df=df),
        len(P),
        note,
        details,
    )
