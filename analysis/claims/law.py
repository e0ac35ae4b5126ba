"""The ``scaling_law`` claim (docs/science.md §8, claim 4) and the information model's
out-of-sample test, used by :mod:`analysis.claims.decide`.

The largest budget of the block is held out. ``L*(P) = E + A P^-alpha`` (docs/science.md §7) is
fitted to the per-budget parabola optima L*(P) of the other budgets (the *fitted* budgets) and
predicts the held-out L*; every seeds-only resample refits it (:mod:`analysis.stats.scaling_batch`).
The naive prediction is "no further improvement": the largest fitted budget's L*.

**Claim 4 is supported** only if all of these hold:

* L* falls across the fitted budgets: the interval of ``L*(P_min) - L*(P_fit_max)`` is above 0;
* the prediction error ``|L_law(P_held) - L*(P_held)|`` is within ``max(2 SE, 25 % of the drop
  L*(P_fit_max) - L*(P_held))``, SE being the standard deviation of that error over the
  resamples (each refits the law and re-reads the held-out parabola);
* the law predicts the held-out L* better than the naive prediction (smaller absolute error).

**Claim 4 is contradicted** when the held-out L* lies outside the law's 95 % prediction interval
and the naive prediction does better; also when L* rises across the fitted budgets (interval of
the fall below 0), or when a ``random``-slice point lies below the law's 95 % band by more than
3 SE (the budget optima are then not near the frontier). Otherwise it is not testable.
Requirements: at least :data:`MIN_LAW_BUDGETS` budgets (the held-out one included) that learned
and have a parabola, spanning at least :data:`MIN_DECADES` decades. The statistic is alpha of
the law fitted on every budget, the held-out one included.
The information model's out-of-sample test is in :mod:`analysis.claims.model`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.claims.types import Claim, not_testable
from analysis.stats.parabola import ParabolaFit, interval
from analysis.stats.scaling import ALPHA_BOUNDS, FitError, one_blas_thread
from analysis.stats.scaling_batch import fit_power_law_fast, refit_power_law
from analysis.stats.seedboot import SeedTable

MIN_LAW_BUDGETS = 5
MIN_DECADES = 2.0
N_SE_BELOW = 3.0
#: the held-out prediction's tolerance: max(HELD_OUT_SE x SE, HELD_OUT_DROP x the drop)
HELD_OUT_SE = 2.0
HELD_OUT_DROP = 0.25
#: at least this many fitted budgets with an interior optimum extrapolate N*, else all of them
MIN_NSTAR_BUDGETS = 2


@dataclass(frozen=True)
class LawPrediction:
    """The law fitted on some budgets and its prediction at ``P``, with resamples."""

    P: float
    predicted: float
    ci95: tuple[float, float]
    samples: np.ndarray  # [B] the prediction of every resample's refit
    E: float
    A: float
    alpha: float
    alpha_ci95: tuple[float, float]
    alpha_samples: np.ndarray
    n_unconverged: int


def law_prediction(
    P: np.ndarray, L: np.ndarray, Lb: np.ndarray, P_target: float, df: int
) -> LawPrediction:
    """Fit the law to ``(P, L)``, refit it on every row of ``Lb`` [B, len(P)] from that fit,
    and predict ``P_target``; intervals widened by t_df / z about the estimate.

    Raises:
      FitError: the law cannot be fitted to ``(P, L)``.
    """
    full = fit_power_law_fast(P, L)
    batch = refit_power_law(P, Lb, (np.log(full.A), full.alpha, np.log(full.E)))
    predicted = float(full.predict(P_target))
    samples = batch.predict(float(P_target))
    alpha_ci = interval(batch.alpha, center=full.alpha, df=df)
    return LawPrediction(
        P=float(P_target),
        predicted=predicted,
        ci95=interval(samples, center=predicted, df=df),
        samples=samples,
        E=full.E,
        A=full.A,
        alpha=full.alpha,
        alpha_ci95=(max(alpha_ci[0], ALPHA_BOUNDS[0]), min(alpha_ci[1], ALPHA_BOUNDS[1])),
        alpha_samples=batch.alpha,
        n_unconverged=int(np.sum(~batch.converged & np.all(np.isfinite(Lb), axis=1))),
    )


@dataclass(frozen=True)
class NStarExtrapolation:
    """``log N* = intercept + slope log P`` over fitted budgets, extrapolated to ``P``."""

    P: float
    predicted: float
    ci95: tuple[float, float]
    slope: float
    slope_ci95: tuple[float, float]
    budgets: tuple[float, ...]
    which: str


def n_star_extrapolation(
    fits: dict[float, ParabolaFit], budgets: list[float], P_target: float
) -> NStarExtrapolation | None:
    """The claim-3 law of N* over ``budgets`` (those with an interior optimum when at least two,
    else all), extrapolated to ``P_target`` with a seeds-only interval; None with fewer than two.
    """
    interior = [P for P in budgets if fits[P].interior]
    use, which = (
        (interior, "interior optima")
        if len(interior) >= MIN_NSTAR_BUDGETS
        else (list(budgets), "all fitted budgets")
    )
    if len(use) < MIN_NSTAR_BUDGETS:
        return None
    x = np.log(np.array(use))
    y = np.log([fits[P].N_star for P in use])
    yb = np.log(np.stack([fits[P].samples["N_star"].to_numpy(float) for P in use], axis=1))
    xc = x - x.mean()
    slope = float(xc @ (y - y.mean()) / (xc @ xc))
    slopes = (yb - yb.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
    at = np.log(P_target) - x.mean()
    pred = float(np.exp(y.mean() + slope * at))
    preds = np.exp(yb.mean(axis=1) + slopes * at)
    df = sum(fits[P].df for P in use)
    return NStarExtrapolation(
        P=float(P_target),
        predicted=pred,
        ci95=interval(preds, center=pred, df=df),
        slope=slope,
        slope_ci95=interval(slopes, center=slope, df=df),
        budgets=tuple(float(P) for P in use),
        which=which,
    )


def usable_budgets(fits: dict[float, ParabolaFit]) -> list[float]:
    """Budgets whose parabola has a finite positive L* on points with >= 2 seeds."""
    return sorted(
        P
        for P in fits
        if np.isfinite(fits[P].L_star) and fits[P].L_star > 0 and fits[P].data["n_seeds"].min() >= 2
    )


def decide_held_out(
    falls_ci: tuple[float, float],
    law: LawPrediction,
    observed: float,
    observed_samples: np.ndarray,
    naive: float,
) -> tuple[str, list[str], dict]:
    """The decision rules of the module docstring on the held-out budget (the random-slice
    check is the caller's). Returns (decision, reasons, details)."""
    err = law.predicted - observed
    err_b = law.samples - observed_samples
    err_b = err_b[np.isfinite(err_b)]
    se = float(np.std(err_b, ddof=1)) if len(err_b) > 1 else float("nan")
    naive_err = naive - observed
    drop = naive - observed
    tolerance = max(HELD_OUT_SE * se, HELD_OUT_DROP * drop) if np.isfinite(se) else float("nan")
    falls = falls_ci[0] > 0
    within = bool(abs(err) <= tolerance)
    better = bool(abs(err) < abs(naive_err))
    outside = bool(observed < law.ci95[0] or observed > law.ci95[1])
    details = {
        "predicted": law.predicted,
        "predicted_ci95": law.ci95,
        "observed": observed,
        "error": err,
        "error_se": se,
        "tolerance": tolerance,
        "naive": naive,
        "naive_error": naive_err,
        "drop_to_held_out": drop,
        "fitted_fall_ci95": falls_ci,
        "within_tolerance": within,
        "law_beats_naive": better,
        "outside_law_interval": outside,
    }
    text = (
        f"held-out L* {observed:.4g}: law {law.predicted:.4g} [{law.ci95[0]:.4g}, "
        f"{law.ci95[1]:.4g}] (error {err:+.3g}, tolerance max({HELD_OUT_SE:g} SE = "
        f"{HELD_OUT_SE * se:.3g}, {HELD_OUT_DROP:.0%} of the drop {drop:.3g}) = {tolerance:.3g}), "
        f"naive {naive:.4g} (error {naive_err:+.3g})"
    )
    if falls_ci[1] < 0:
        return (
            "contradicted",
            [f"L* rises across the fitted budgets (fall {falls_ci})", text],
            details,
        )
    if outside and abs(naive_err) < abs(err):
        return (
            "contradicted",
            ["the held-out L* lies outside the law's 95% interval and the naive prediction does "
             "better", text],
            details,
        )  # fmt: skip
    if falls and within and better:
        return "supported", [text], details
    why = []
    if not falls:
        why.append(f"L* does not fall across the fitted budgets beyond noise (fall {falls_ci})")
    if not within:
        why.append("the prediction error exceeds the tolerance")
    if not better:
        why.append("the law does not beat the naive prediction")
    return "not_testable", ["undecided: " + "; ".join(why), text], details


def _random_slice_check(table: SeedTable, law_full: LawPrediction, budget_kind: str, batch):
    """Random-slice points against the all-budget law's band (``batch``: its refits on the
    resamples): (notes, problems, details)."""
    random_idx = np.flatnonzero(table.points["slice"].to_numpy() == "random")
    if not len(random_idx):
        return ["no random slice: the frontier check against the law was not done"], [], {}
    P_col = "P_total" if budget_kind == "total" else "P_core"
    P_random = table.points[P_col].to_numpy(float)[random_idx]
    mean = table.means("val")[random_idx]
    se = table.standard_errors("val")[random_idx]
    law = law_full.E + law_full.A * P_random ** (-law_full.alpha)
    preds = batch.predict(P_random)
    preds = preds[np.all(np.isfinite(preds), axis=1)]
    band_lo = np.quantile(preds, 0.025, axis=0) if len(preds) else law
    gap = (law - mean) / law
    below = int(np.sum(mean < law))
    significant = int(np.sum(mean + N_SE_BELOW * np.nan_to_num(se) < band_lo))
    details = {
        "random_n": len(random_idx),
        "random_fraction_below": below / len(random_idx),
        "random_largest_gap": float(np.max(gap)),
        "random_below_band_3se": significant,
    }
    notes = [
        f"random slice: {below}/{len(random_idx)} points below the law, largest gap "
        f"{np.max(gap):+.2%} of the law"
    ]
    problems = (
        [
            f"{significant} random-slice point(s) lie below the law's 95% band by more than "
            f"{N_SE_BELOW:g} SE: the budget optima are not near the frontier"
        ]
        if significant
        else []
    )
    return notes, problems, details


@one_blas_thread
def scaling_law_claim(
    table: SeedTable,
    boot: dict[str, np.ndarray],
    fits: dict[float, ParabolaFit],
    rows: list[dict],
    budget_kind: str,
    seed: int = 0,
) -> Claim:
    """Decide ``scaling_law`` from the budgets' parabola fits (see the module docstring)."""
    name = "scaling_law"
    usable = usable_budgets(fits)
    if len(usable) < MIN_LAW_BUDGETS:
        return not_testable(
            name,
            f"{len(usable)} budget(s) learned and have a parabola on points with >= 2 seeds; "
            f"the law needs {MIN_LAW_BUDGETS} (the largest held out)",
            len(usable),
        )
    largest = max(r["budget"] for r in rows)
    if usable[-1] != largest:
        return not_testable(
            name,
            f"the held-out (largest) budget {largest:g} has no usable parabola "
            f"({next(r['note'] for r in rows if r['budget'] == largest)})",
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
    df = sum(fits[p].df for p in usable)
    df_fit = sum(fits[p].df for p in usable[:-1])
    try:
        held = law_prediction(P[:-1], L[:-1], Lb[:, :-1], float(P[-1]), df_fit)
        every = law_prediction(P, L, Lb, float(P[-1]), df)
    except FitError as err:
        return not_testable(name, f"L*(P) not fitted: {err}", len(P))
    falls = interval(Lb[:, 0] - Lb[:, -2], center=float(L[0] - L[-2]), df=df_fit)
    decision, reasons, details = decide_held_out(falls, held, float(L[-1]), Lb[:, -1], float(L[-2]))
    every_batch = refit_power_law(P, Lb, (np.log(every.A), every.alpha, np.log(every.E)))
    notes, problems, random_details = _random_slice_check(table, every, budget_kind, every_batch)
    if problems and decision != "contradicted":
        decision, reasons = "contradicted", [*problems, *reasons]
    if every.alpha <= 1e-6 or every.alpha >= ALPHA_BOUNDS[1] - 1e-6:
        notes.append(f"alpha = {every.alpha:.3g} sits on its bound [0, 10]")
    details.update(
        E=every.E,
        A=every.A,
        alpha=every.alpha,
        budgets=usable,
        held_out_budget=float(P[-1]),
        fitted_budgets=usable[:-1],
        L_star=L,
        decades=decades,
        alpha_fitted=held.alpha,
        alpha_fitted_ci95=held.alpha_ci95,
        E_fitted=held.E,
        A_fitted=held.A,
        n_resamples=int(Lb.shape[0]),
        n_unconverged=held.n_unconverged + every.n_unconverged,
        **random_details,
    )
    note = "; ".join(x for x in (*reasons, *notes, table.note) if x)
    return Claim(name, decision, every.alpha, every.alpha_ci95, len(P), note, details)
