"""Written-down predictions of the held-out budget (docs/science.md §8, claim 4), and their score.

Before the held-out (largest) budget of a sequential sweep trains, :func:`make_predictions`
computes from the fitted budgets alone, and :func:`write_predictions` writes once to
``predictions.json``:

* the power law's L*(P_held) with its 95 % interval (:func:`analysis.claims.law.law_prediction`);
* N*(P_held) from the claim-3 law extrapolated log-linearly, with its interval;
* the information model's optimum (N, d_m, L) at the held-out budget and k_c, with seeds-only
  intervals (the model refitted on every resample);
* the naive "no further improvement" prediction, L*(largest fitted budget).

Every figure is computed as the claim tests compute it (same seed table, resamples, parabolas
and fits), so the claims recompute exactly these numbers once the held-out budget is in the
table; :func:`score_predictions` sets the written figures against the outcome.

The file is never rewritten: a second write, or a write once any held-out trial has a record,
raises :class:`PredictionError` (a prediction made after seeing the result is worthless).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.claims.decide import LENGTH_SLICE, ClaimsBlock, budget_fits
from analysis.claims.law import law_prediction, n_star_extrapolation, usable_budgets
from analysis.claims.model import model_optimum_at_k_c, model_points
from analysis.claims.types import jsonable
from analysis.info.boot import refit_on_resamples
from analysis.info.model import fit_arrays
from analysis.stats.parabola import interval
from analysis.stats.scaling import FitError, one_blas_thread

SCHEMA = 1
FILENAME = "predictions.json"
MODEL_BOOT = 100
MIN_FITTED = 4


class PredictionError(ValueError):
    """A prediction that cannot be made or written (the message says why)."""


def _ci(pair) -> list[float]:
    return [float(pair[0]), float(pair[1])]


@one_blas_thread
def make_predictions(
    trials: pd.DataFrame,
    held_out_budget: float,
    budget_kind: str = "core",
    n_boot: int = 200,
    seed: int = 0,
    model_boot: int = MODEL_BOOT,
    arch: str = "elm",
) -> dict:
    """The predictions of the held-out budget from ``trials`` (one data set; no trial of the
    held-out budget allowed).

    Raises:
      PredictionError: the held-out budget already has trials, or fewer than
        :data:`MIN_FITTED` fitted budgets learned and have a parabola.
    """
    trials = trials[trials["slice"] != LENGTH_SLICE]
    budget = (trials["slice"] == "budget") & (trials["budget_kind"] == budget_kind)
    if (budget & (trials["budget"] >= held_out_budget)).any():
        raise PredictionError(
            f"the table already holds trials of budget >= the held-out {held_out_budget:g}: a "
            "prediction made after seeing the result is worthless"
        )
    if trials["dataset"].nunique() != 1:
        raise PredictionError(f"one data set expected, got {sorted(trials['dataset'].unique())}")
    part = trials[~(trials["slice"] == "budget") | budget].reset_index(drop=True)
    table, _, rows, fits = budget_fits(part, budget_kind, n_boot, seed, arch)
    usable = usable_budgets(fits)
    if len(usable) < MIN_FITTED:
        raise PredictionError(
            f"{len(usable)} fitted budget(s) learned and have a parabola; the law needs "
            f"{MIN_FITTED} (notes: "
            + "; ".join(f"{r['budget']:g}: {r.get('note', '')}" for r in rows)
            + ")"
        )
    P = np.array(usable)
    L = np.array([fits[p].L_star for p in usable])
    Lb = np.stack([fits[p].samples["L_star"].to_numpy(float) for p in usable], axis=1)
    df = sum(fits[p].df for p in usable)
    law = law_prediction(P, L, Lb, held_out_budget, df)
    extrap = n_star_extrapolation(fits, usable, held_out_budget)
    largest = fits[usable[-1]]
    out = {
        "schema": SCHEMA,
        "dataset": str(trials["dataset"].iloc[0]),
        "budget_kind": budget_kind,
        "held_out_budget": float(held_out_budget),
        "fitted_budgets": [float(p) for p in usable],
        "n_boot": int(n_boot),
        "seed": int(seed),
        "trials": {
            "count": int(len(trials)),
            "sha256": hashlib.sha256(
                "\n".join(sorted(trials["trial_id"].astype(str))).encode()
            ).hexdigest(),
        },
        "power_law": {
            "E": law.E,
            "A": law.A,
            "alpha": law.alpha,
            "alpha_ci95": _ci(law.alpha_ci95),
            "L_star": {"predicted": law.predicted, "ci95": _ci(law.ci95)},
        },
        "N_star_extrapolated": None
        if extrap is None
        else {
            "predicted": extrap.predicted,
            "ci95": _ci(extrap.ci95),
            "slope": extrap.slope,
            "slope_ci95": _ci(extrap.slope_ci95),
            "budgets": list(extrap.budgets),
            "which": extrap.which,
        },
        "naive": {
            "budget": float(usable[-1]),
            "L_star": {"predicted": largest.L_star, "ci95": _ci(largest.L_star_ci95)},
        },
        "k_c": float(largest.k_c),
    }
    out["information_model"] = _model_prediction(
        table, held_out_budget, largest.k_c, part, arch, model_boot, seed
    )
    return jsonable(out)


def _model_prediction(table, P_held, k_c, trials, arch, model_boot, seed) -> dict:
    """The information model's optimum at the held-out budget with seeds-only intervals."""
    idx = model_points(table, P_held)
    pts = table.points.iloc[idx]
    d_tree = trials.loc[trials["arch"] == arch, "d_tree"].dropna().unique()
    d_tree = int(d_tree[0]) if len(d_tree) else 4
    N, ke, kc = (pts[c].to_numpy(float) for c in ("N", "k_e", "k_c"))
    try:
        model = fit_arrays(N, ke, kc, table.means("val")[idx], d_tree=d_tree)
        best = model_optimum_at_k_c(model, P_held, k_c, d_tree)
    except FitError as err:
        return {"error": str(err)}
    thetas = refit_on_resamples(
        N, ke, kc, [table.losses["val"][j] for j in idx], model, model_boot, seed
    )
    samples = []
    for theta in thetas:
        refit = _with_theta(model, theta)
        try:
            samples.append(model_optimum_at_k_c(refit, P_held, k_c, d_tree))
        except FitError:
            continue
    frame = pd.DataFrame(samples)
    return {
        "k_c": float(k_c),
        "N": {"predicted": best["N"], "ci95": _ci(interval(frame["N"]))},
        "d_m": {"predicted": best["d_m"], "ci95": _ci(interval(frame["d_m"]))},
        "L": {"predicted": best["loss"], "ci95": _ci(interval(frame["loss"]))},
        "params": model.params(),
        "n_points": int(len(idx)),
        "n_boot": int(len(frame)),
    }


def _with_theta(model, theta):
    from dataclasses import replace

    return replace(model, theta=tuple(float(t) for t in theta))


def write_predictions(
    path: str | Path, predictions: dict, recorded_held_out: Iterable[str] = ()
) -> str:
    """Write ``predictions`` (plus the creation time) to ``path`` once; returns its sha256.

    Raises:
      PredictionError: ``path`` exists (it is never rewritten), or a trial of the held-out
        budget already has a record (``recorded_held_out``: their ids).
    """
    path = Path(path)
    recorded = sorted(recorded_held_out)
    if recorded:
        raise PredictionError(
            f"{len(recorded)} trial(s) of the held-out budget already have records (e.g. "
            f"{recorded[0]}): a prediction made after seeing the result is worthless; "
            f"{path.name} is not written"
        )
    if path.exists():
        raise PredictionError(f"{path} exists and is never rewritten")
    content = {
        **predictions,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    text = json.dumps(content, indent=1, sort_keys=True, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o444)
        try:
            os.link(tmp, path)  # fails when the file exists: never an overwrite, even in a race
        except FileExistsError:
            raise PredictionError(f"{path} exists and is never rewritten") from None
    finally:
        os.unlink(tmp)
    return hashlib.sha256(text.encode()).hexdigest()


def read_predictions(path: str | Path) -> tuple[dict, str] | None:
    """The written predictions and the sha256 of the file; None when there is no file."""
    path = Path(path)
    if not path.is_file():
        return None
    data = path.read_bytes()
    return json.loads(data), hashlib.sha256(data).hexdigest()


def score_predictions(predictions: dict, block: ClaimsBlock) -> pd.DataFrame:
    """Each written prediction against the held-out outcome of ``block`` (the claims of the
    same data set and budget kind): quantity, predicted, its interval, observed, its interval,
    error, whether the observation lies inside the prediction's interval, and the naive
    figure for L*.

    Raises:
      PredictionError: the block has no parabola at the held-out budget.
    """
    P = float(predictions["held_out_budget"])
    fit = block.parabolas.get(P)
    if fit is None:
        raise PredictionError(f"the held-out budget {P:g} has no parabola in this block")
    rows = []

    def add(quantity, pred, observed, observed_ci, log=False):
        if pred is None:
            return
        p, ci = pred["predicted"], pred.get("ci95") or [np.nan, np.nan]
        err = np.log(p / observed) if log else p - observed
        rows.append(
            {
                "quantity": quantity,
                "predicted": p,
                "ci95_lo": ci[0],
                "ci95_hi": ci[1],
                "observed": observed,
                "observed_lo": observed_ci[0],
                "observed_hi": observed_ci[1],
                "error": err,
                "error_kind": "log ratio" if log else "difference",
                "observed_inside": bool(ci[0] <= observed <= ci[1]),
            }
        )

    add("L*: power law", predictions["power_law"]["L_star"], fit.L_star, fit.L_star_ci95)
    add("L*: naive (largest fitted budget)", predictions["naive"]["L_star"], fit.L_star,
        fit.L_star_ci95)  # fmt: skip
    add("N*: log-linear extrapolation", predictions.get("N_star_extrapolated"), fit.N_star,
        fit.N_star_ci95, log=True)  # fmt: skip
    model = predictions.get("information_model") or {}
    if "N" in model:
        add("N*: information model", model["N"], fit.N_star, fit.N_star_ci95, log=True)
        add("L*: information model", model["L"], fit.L_star, fit.L_star_ci95)
    return pd.DataFrame(rows)
