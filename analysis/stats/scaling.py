"""Scaling-law fits with uncertainty (docs/science.md §7).

``L*(P) = E + A * P^(-alpha)`` is fitted in log space as Hoffmann et al. (2022, Approach 3) as
corrected by Besiroglu et al. (2024): with ``a = log A`` and ``e = log E``,

    log L_hat(P) = logsumexp(a - alpha * log P, e)

and the objective is the *summed* Huber loss (delta = 1e-3) of ``log L_hat - log L``, minimised
with L-BFGS-B (analytic gradient, float64) from every start of a grid; the best end point is kept.
``alpha`` is bounded to [0, 10]; ``a`` and ``e`` are free.

Uncertainty comes from :func:`bootstrap`, with the design fixed (docs/science.md §7): every
architecture point keeps its place, its seeds are resampled with replacement inside it, and the
whole pipeline (seed means -> per-budget optimum -> fits) is rerun per resample.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from analysis.load import require_single

HUBER_DELTA = 1e-3
ALPHA_BOUNDS = (0.0, 10.0)


_F = TypeVar("_F", bound=Callable)


def one_blas_thread(fn: _F) -> _F:
    """Run ``fn`` with BLAS limited to one thread.

    The optimisers here make thousands of BLAS calls on vectors of length 3 to 10; with a
    multi-threaded BLAS each call pays a thread hand-off, which made fits 10-20x slower on a
    busy machine (measured: 84 s vs 3.5 s for one 80-start fit).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class FitError(ValueError):
    """A fit cannot be done on the data given (the message says what is missing)."""


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`: ``L(P) = E + A * P^(-alpha)``."""

    E: float
    A: float
    alpha: float
    objective: float  # summed Huber loss of log residuals at the optimum
    converged: bool  # whether L-BFGS-B reported success for the best start
    n_starts: int
    n_converged: int  # starts whose L-BFGS-B run reported success
    n_points: int
    n_budgets: int
    budgets: tuple[float, ...] = field(repr=False)
    losses: tuple[float, ...] = field(repr=False)

    @property
    def dof(self) -> int:
        """Degrees of freedom left: points minus the 3 parameters (0 = exactly determined)."""
        return self.n_points - 3

    def predict(self, P: np.ndarray | float) -> np.ndarray:
        """Predicted loss at budget(s) ``P``."""
        P = np.asarray(P, dtype=float)
        return self.E + self.A * P ** (-self.alpha)


@dataclass(frozen=True)
class LogLinearFit:
    """``y = coef * x^exponent`` fitted by least squares in log-log space (e.g. ``N*(P)``)."""

    coef: float
    exponent: float
    n_points: int
    rmse_log: float  # root mean square residual of log y

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        """Predicted y at x."""
        return self.coef * np.asarray(x, dtype=float) ** self.exponent


def _check_inputs(budgets, losses, n_params: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    P = np.asarray(budgets, dtype=float).ravel()
    L = np.asarray(losses, dtype=float).ravel()
    if P.shape != L.shape:
        raise FitError(f"{what}: budgets ({P.size}) and losses ({L.size}) differ in length")
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(L))):
        raise FitError(f"{what}: budgets and losses must be finite (found NaN or inf)")
    if np.any(P <= 0):
        raise FitError(f"{what}: budgets must be > 0, got {P[P <= 0].tolist()}")
    if np.any(L <= 0):
        raise FitError(
            f"{what}: losses must be > 0 for a log-space fit, got {L[L <= 0].tolist()}; "
            "fit a loss in nats/bits, not an accuracy or a negative log-likelihood offset"
        )
    n_distinct = len(np.unique(P))
    if n_distinct < 2:
        raise FitError(
            f"{what}: all points share a single budget {P[0]:g}; a scaling law needs several budgets"
        )
    if n_distinct < n_params:
        raise FitError(
            f"{what}: {n_distinct} distinct budgets but the law has {n_params} parameters; "
            f"sweep at least {n_params} budgets (more to leave degrees of freedom)"
        )
    return P, L


def _objective(theta: np.ndarray, logP: np.ndarray, logL: np.ndarray, delta: float):
    a, alpha, e = theta
    t1 = a - alpha * logP
    lhat = np.logaddexp(t1, e)
    r = lhat - logL
    absr = np.abs(r)
    quad = absr <= delta
    f = np.sum(np.where(quad, 0.5 * r * r, delta * (absr - 0.5 * delta)))
    dr = np.clip(r, -delta, delta)
    w = np.exp(t1 - lhat)  # d lhat / d a
    grad = np.array([np.sum(dr * w), np.sum(dr * w * -logP), np.sum(dr * (1.0 - w))])
    return f, grad


def default_start_grid(
    P: np.ndarray, L: np.ndarray, coarse: bool = False
) -> list[tuple[float, float, float]]:
    """Starts scaled to the data: alpha in {0.1..2}, E and A*P_mid^-alpha as fractions of min L.

    The full grid has 45 starts; ``coarse=True`` gives 8 (used inside the bootstrap, together
    with the full-data optimum, to keep hundreds of refits affordable).
    """
    logPm = float(np.median(np.log(P)))
    logLmin = float(np.log(np.min(L)))
    alphas = (0.3, 1.0) if coarse else (0.1, 0.3, 0.6, 1.0, 2.0)
    e_fracs = (0.4, 0.9) if coarse else (0.05, 0.5, 0.95)
    a_fracs = (0.3, 1.0) if coarse else (0.1, 1.0, 10.0)
    return [
        (logLmin + np.log(af) + al * logPm, al, logLmin + np.log(ef))
        for al, ef, af in itertools.product(alphas, e_fracs, a_fracs)
    ]


@one_blas_thread
def fit_power_law(
    budgets: np.ndarray,
    losses: np.ndarray,
    delta: float = HUBER_DELTA,
    starts: list[tuple[float, float, float]] | None = None,
) -> PowerLawFit:
    """Fit ``L = E + A * P^(-alpha)`` as docs/science.md §7 (see the module docstring).

    Args:
      budgets: P values (> 0), one per point; at least 3 distinct.
      losses: L values (> 0), same length.
      delta: Huber threshold on log residuals.
      starts: initial ``(a, alpha, e)`` triples (default :func:`default_start_grid`).

    Raises:
      FitError: fewer than 3 distinct budgets, a single budget, non-positive or non-finite values.
    """
    P, L = _check_inputs(budgets, losses, 3, "fit_power_law")
    logP, logL = np.log(P), np.log(L)
    starts = default_start_grid(P, L) if starts is None else starts
    bounds = [(None, None), ALPHA_BOUNDS, (None, None)]
    best, n_conv = None, 0
    for x0 in starts:
        res = minimize(
            _objective,
            np.asarray(x0, dtype=float),
            args=(logP, logL, delta),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-10},
        )
        n_conv += bool(res.success)
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise FitError("fit_power_law: no start gave a finite objective")
    a, alpha, e = best.x
    return PowerLawFit(
        E=float(np.exp(e)),
        A=float(np.exp(a)),
        alpha=float(alpha),
        objective=float(best.fun),
        converged=bool(best.success),
        n_starts=len(starts),
        n_converged=n_conv,
        n_points=len(P),
        n_budgets=len(np.unique(P)),
        budgets=tuple(P.tolist()),
        losses=tuple(L.tolist()),
    )


def fit_log_linear(x: np.ndarray, y: np.ndarray, what: str = "fit_log_linear") -> LogLinearFit:
    """Fit ``y = coef * x^exponent`` (e.g. ``N*(P) ∝ P^a``) by least squares on logs.

    Raises:
      FitError: fewer than 2 distinct x, or non-positive / non-finite values.
    """
    X, Y = _check_inputs(x, y, 2, what)
    lx, ly = np.log(X), np.log(Y)
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (intercept + slope * lx)
    return LogLinearFit(
        coef=float(np.exp(intercept)),
        exponent=float(slope),
        n_points=len(X),
        rmse_log=float(np.sqrt(np.mean(resid**2))),
    )


def leave_largest_out(budgets: np.ndarray, losses: np.ndarray, **fit_kwargs) -> dict:
    """Fit on all budgets but the largest and predict the largest (docs/science.md §7 validation).

    Returns a dict: ``held_out_budget``, ``observed``, ``predicted``, ``rel_error``
    (predicted/observed - 1), ``fit`` (the PowerLawFit on the smaller budgets).

    Raises:
      FitError: fewer than 4 distinct budgets (3 must remain for the fit).
    """
    P = np.asarray(budgets, dtype=float)
    L = np.asarray(losses, dtype=float)
    distinct = np.unique(P)
    if len(distinct) < 4:
        raise FitError(
            f"leave_largest_out: {len(distinct)} distinct budgets; validation needs at least 4 "
            "(3 to fit the 3-parameter law, 1 to predict)"
        )
    top = distinct[-1]
    fit = fit_power_law(P[P < top], L[P < top], **fit_kwargs)
    observed = float(np.min(L[P == top]))
    predicted = float(fit.predict(top))
    return {
        "held_out_budget": float(top),
        "observed": observed,
        "predicted": predicted,
        "rel_error": predicted / observed - 1.0,
        "fit": fit,
    }


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap distribution of the frontier fits (one row of ``samples`` per resample)."""

    samples: pd.DataFrame = field(repr=False)  # columns E, A, alpha, N_exp, k_e_exp
    n_resamples: int
    n_failed: int  # resamples whose fit raised FitError (excluded from the intervals)
    level: float
    band_P: np.ndarray = field(repr=False)
    band_lo: np.ndarray = field(repr=False)
    band_hi: np.ndarray = field(repr=False)

    def interval(self, name: str) -> tuple[float, float]:
        """Percentile interval of parameter ``name`` at ``level``."""
        if name not in self.samples.columns:
            raise ValueError(f"name={name!r}; valid: {list(self.samples.columns)}")
        v = self.samples[name].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if len(v) == 0:
            return (np.nan, np.nan)
        q = (1.0 - self.level) / 2.0
        return float(np.quantile(v, q)), float(np.quantile(v, 1.0 - q))


def _budget_point_table(trials: pd.DataFrame, loss: str, arch: str, slices: tuple[str, ...]):
    """Per budget: list of (N, k_e, seed-loss array) for each ok architecture point."""
    ok = trials[
        (trials["status"] == "ok")
        & (trials["arch"] == arch)
        & trials["slice"].isin(slices)
        & np.isfinite(trials["budget"].to_numpy(dtype=float))
        & np.isfinite(trials[loss].to_numpy(dtype=float))
    ]
    if len(ok) == 0:
        raise FitError(f"bootstrap: no ok trials of arch={arch!r} in slices {list(slices)}")
    require_single(ok)
    table = {}
    for budget, g in ok.groupby("budget", sort=True):
        table[float(budget)] = [
            (float(p["N"].iloc[0]), float(p["k_e"].iloc[0]), p[loss].to_numpy(dtype=float))
            for _, p in g.groupby("point_id", sort=True)
        ]
    return table


@one_blas_thread
def bootstrap(
    trials: pd.DataFrame,
    loss: str = "val_loss",
    n_resamples: int = 200,
    seed: int = 0,
    level: float = 0.95,
    arch: str = "elm",
    slices: tuple[str, ...] = ("budget",),
    band_P: np.ndarray | None = None,
    starts: list[tuple[float, float, float]] | None = None,
) -> BootstrapResult:
    """Bootstrap the frontier fits with the design fixed: seeds resampled within every point.

    Each resample keeps every architecture point of every budget and draws, inside each point,
    as many seeds as it has (with replacement); it then takes seed means, the per-budget optimum
    ``L*``, ``N*``, ``k_e*`` and refits ``L*(P)``, ``N*(P)``, ``k_e*(P)``. (Resampling the points
    themselves would drop a budget's best point from about a third of the resamples and push
    the intervals up; docs/science.md §7.)

    Args:
      trials: the trial frame (one dataset, one budget kind).
      band_P: budgets at which to evaluate the confidence band of the fitted law.
      starts: L-BFGS starts for every refit; default: the optimum of the fit to the full data
        plus the coarse grid of :func:`default_start_grid`.
    """
    table = _budget_point_table(trials, loss, arch, slices)
    budgets = np.array(sorted(table))
    if starts is None:
        L_full = [min(float(np.mean(s)) for _, _, s in table[b]) for b in budgets]
        try:
            starts = default_start_grid(budgets, np.array(L_full), coarse=True)
            full = fit_power_law(budgets, L_full)
            starts = [(np.log(full.A), full.alpha, np.log(full.E)), *starts]
        except FitError:
            pass  # every refit will raise the same FitError and be counted as failed
    if band_P is None:
        band_P = np.geomspace(budgets.min(), budgets.max(), 50)
    band_P = np.asarray(band_P, dtype=float)
    rng = np.random.default_rng(seed)
    rows, preds, n_failed = [], [], 0
    for _ in range(n_resamples):
        L_star, N_star, ke_star = [], [], []
        for b in budgets:
            pts = table[b]
            best = None
            for N, ke, seeds in pts:
                m = float(np.mean(seeds[rng.integers(0, len(seeds), size=len(seeds))]))
                if best is None or m < best[0]:
                    best = (m, N, ke)
            L_star.append(best[0])
            N_star.append(best[1])
            ke_star.append(best[2])
        row = {"E": np.nan, "A": np.nan, "alpha": np.nan, "N_exp": np.nan, "k_e_exp": np.nan}
        try:
            fit = fit_power_law(budgets, L_star, starts=starts)
            row.update(E=fit.E, A=fit.A, alpha=fit.alpha)
            preds.append(fit.predict(band_P))
        except FitError:
            n_failed += 1
        for name, ys in (("N_exp", N_star), ("k_e_exp", ke_star)):
            try:
                row[name] = fit_log_linear(budgets, ys).exponent
            except FitError:
                pass
        rows.append(row)
    q = (1.0 - level) / 2.0
    if preds:
        preds_arr = np.array(preds)
        lo, hi = np.quantile(preds_arr, q, axis=0), np.quantile(preds_arr, 1.0 - q, axis=0)
    else:
        lo = hi = np.full_like(band_P, np.nan)
    return BootstrapResult(
        samples=pd.DataFrame(rows),
        n_resamples=n_resamples,
        n_failed=n_failed,
        level=level,
        band_P=band_P,
        band_lo=lo,
        band_hi=hi,
    )
