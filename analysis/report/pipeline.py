"""The whole analysis of one sweep data set: seeds -> points -> frontier -> fits -> comparison.

:func:`analyse` runs every step that the data allow and records, for every step that it does
not allow (too few budgets or points), a note saying what is missing instead of failing; the
report renders its :class:`Analysis` (the notebook runs the same steps one at a time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.info import model as info_model
from analysis.info.boot import bootstrap_parameters
from analysis.info.model import InfoModel
from analysis.load import aggregate_seeds, not_ok_trials, ok_points, require_single
from analysis.stats.pareto import budget_optima, pareto_front
from analysis.stats.scaling import (
    BootstrapResult,
    FitError,
    LogLinearFit,
    PowerLawFit,
    bootstrap,
    fit_log_linear,
    fit_power_law,
    leave_largest_out,
)


@dataclass
class Analysis:
    """Everything computed for one (dataset, budget_kind); absent results are None with a note."""

    dataset: str
    budget_kind: str
    loss: str
    trials: pd.DataFrame = field(repr=False)
    points: pd.DataFrame = field(repr=False)
    excluded: pd.DataFrame = field(repr=False)
    optima: pd.DataFrame = field(repr=False)
    frontier: pd.DataFrame = field(repr=False)
    power_law: PowerLawFit | None = None
    boot: BootstrapResult | None = None
    N_fit: LogLinearFit | None = None
    k_e_fit: LogLinearFit | None = None
    validation: dict | None = None
    model: InfoModel | None = None
    model_optima: pd.DataFrame | None = field(default=None, repr=False)
    model_intervals: pd.DataFrame | None = field(default=None, repr=False)  # seeds-only bootstrap
    held_out: pd.DataFrame | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)


def compare_held_out(
    points: pd.DataFrame, loss: str = "val_loss", arch: str = "elm"
) -> pd.DataFrame:
    """Fit on the smaller budgets, predict the largest: power law vs information model.

    Training data for both: the ok ``arch`` points whose ``P_core`` is below every point of the
    largest budget (the power law uses their per-budget optima, the model every such point).
    The model's prediction of ``L*`` is its lowest predicted loss over the held-out budget's
    measured architectures; its chosen architecture is compared with the measured best.

    Returns one row per method: ``method``, ``held_out_budget``, ``observed``, ``predicted``,
    ``rel_error``, ``chosen_point_matches`` (model only), ``note``.
    """
    opt = budget_optima(points, loss, arch=arch)
    if opt["budget"].nunique() < 2:
        raise FitError("compare_held_out: needs at least 2 budgets (one to hold out)")
    top = float(opt["budget"].max())
    pts = ok_points(points, loss)
    pts = pts[pts["arch"] == arch]
    held = pts[(pts["slice"] == "budget") & (pts["budget"] == top)]
    train = pts[pts["P_core"] < held["P_core"].min()]
    observed = float(held[f"{loss}_mean"].min())
    best_id = held.loc[held[f"{loss}_mean"].idxmin(), "point_id"]
    rows = []
    small = opt[opt["budget"] < top]
    try:
        fit = fit_power_law(small["budget"], small["L_star"])
        pred = float(fit.predict(top))
        rows.append(("power law E + A P^-α", pred, None, f"fitted on {len(small)} budgets"))
    except FitError as err:
        rows.append(("power law E + A P^-α", np.nan, None, str(err)))
    try:
        model = info_model.fit(train, loss=loss, arch=arch)
        pred_pts = model.predict(held["N"], held["k_e"], held["k_c"])
        j = int(np.argmin(pred_pts))
        rows.append(
            (
                "information model",
                float(pred_pts[j]),
                bool(held["point_id"].iloc[j] == best_id),
                f"fitted on {model.n_points} points",
            )
        )
    except FitError as err:
        rows.append(("information model", np.nan, None, str(err)))
    return pd.DataFrame(
        [
            {
                "method": m,
                "held_out_budget": top,
                "observed": observed,
                "predicted": p,
                "rel_error": p / observed - 1.0 if np.isfinite(p) else np.nan,
                "chosen_point_matches": match,
                "note": note,
            }
            for m, p, match, note in rows
        ]
    )


def analyse(
    trials: pd.DataFrame,
    loss: str = "val_loss",
    n_boot: int = 200,
    seed: int = 0,
    arch: str = "elm",
    extrapolate: float = 10.0,
) -> Analysis:
    """Run the analysis on the trials of one dataset and budget kind (checked).

    Args:
      trials: validated trial frame (:func:`analysis.load.load_sweeps`), one dataset.
      loss: ``val_loss`` or ``test_loss``; the seed mean of this column is minimised and fitted.
      n_boot: bootstrap resamples (0: no intervals).
      extrapolate: the model's optimum is also given at ``extrapolate`` x the largest budget.
    """
    require_single(trials)
    points = aggregate_seeds(trials)
    an = Analysis(
        dataset=str(trials["dataset"].iloc[0]),
        budget_kind=str(trials["budget_kind"].iloc[0]),
        loss=loss,
        trials=trials,
        points=points,
        excluded=not_ok_trials(trials),
        optima=budget_optima(points, loss, arch=arch),
        frontier=pareto_front(
            ok_points(points, loss), "P_core", f"{loss}_mean", keep_duplicates=False
        ),
    )
    if len(an.excluded):
        an.notes.append(
            f"{len(an.excluded)} trial(s) not ok were excluded from every mean and fit (listed below)."
        )
    opt = an.optima
    nb = opt["budget"].nunique()
    if nb == 0:
        an.notes.append(
            f"No ok {arch} points in a budget slice: no optimum per budget and no scaling law."
        )
        return an
    try:
        an.power_law = fit_power_law(opt["budget"], opt["L_star"])
        if an.power_law.alpha <= 1e-6 or an.power_law.alpha >= 10.0 - 1e-6:
            an.notes.append(
                f"The fitted α = {an.power_law.alpha:.3g} sits on its bound [0, 10]: L*(P) does not "
                "follow E + A P^-α on these budgets (e.g. it does not decrease), so E, A, α mean little."
            )
        if an.power_law.dof == 0:
            an.notes.append(
                f"L*(P) has {nb} budgets for 3 parameters: the law interpolates them exactly "
                "(0 degrees of freedom); its parameters are not constrained beyond that."
            )
    except FitError as err:
        an.notes.append(f"Scaling law L*(P) = E + A P^-α not fitted: {err}")
    try:
        an.N_fit = fit_log_linear(opt["budget"], opt["N"], "N*(P)")
        an.k_e_fit = fit_log_linear(opt["budget"], opt["k_e"], "k_e*(P)")
    except FitError as err:
        an.notes.append(f"Allocation laws N*(P), k_e*(P) not fitted: {err}")
    if n_boot > 0 and an.power_law is not None:
        an.boot = bootstrap(trials, loss=loss, n_resamples=n_boot, seed=seed, arch=arch)
        if an.boot.n_failed:
            an.notes.append(
                f"{an.boot.n_failed} of {n_boot} bootstrap resamples could not be fitted."
            )
    try:
        an.validation = leave_largest_out(opt["budget"], opt["L_star"])
    except FitError as err:
        an.notes.append(f"Leave-largest-budget-out validation not done: {err}")
    try:
        an.model = info_model.fit(points, loss=loss, arch=arch)
        if n_boot > 0:
            an.model_intervals = bootstrap_parameters(
                trials, an.model, loss=loss, n_boot=min(n_boot, 100), seed=seed, arch=arch
            )
        budgets = [*opt["budget"].tolist(), float(opt["budget"].max()) * extrapolate]
        an.model_optima = pd.DataFrame([vars(an.model.optimum(P)) for P in budgets])
        an.model_optima["in_sweep"] = [True] * nb + [False]
    except FitError as err:
        an.notes.append(f"Information model not fitted: {err}")
    try:
        an.held_out = compare_held_out(points, loss=loss, arch=arch)
    except FitError as err:
        an.notes.append(f"Held-out comparison of power law and information model not done: {err}")
    return an
