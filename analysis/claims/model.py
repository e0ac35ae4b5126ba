"""The information model's out-of-sample test (docs/science.md §8, claim ``information_model``),
used by :mod:`analysis.claims.decide`; the held-out budget is claim 4's (:mod:`analysis.claims.law`).

**The information model** (docs/science.md §6) is fitted to every point of the block but the
held-out budget's (and the random slice's); its optimum is searched along the held-out budget
at the held-out parabola's k_c, N continuous as the parabola's N* is. It **passes** (``supported``) only if its N* lies
inside the held-out parabola's 95 % N* interval and its log N* error is no worse than that of the
claim-3 law extrapolated log-linearly from the fitted budgets; otherwise it **fails**
(``contradicted``); ``not_testable`` when either cannot be computed, or when the held-out
budget's parabola has no decided minimum (c's interval not above 0: a flat budget, or one whose
best point is the end of its range, locates no N*, and any model that runs to that end would
pass).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from analysis.claims.law import n_star_extrapolation, usable_budgets
from analysis.claims.types import Claim, not_testable
from analysis.info.allocation import k_e_of_d_m
from analysis.info.model import fit_arrays
from analysis.stats.parabola import ParabolaFit
from analysis.stats.scaling import FitError, one_blas_thread
from analysis.stats.seedboot import SeedTable


def io_line(table: SeedTable, budget: float, budget_kind: str) -> tuple[float, float]:
    """(slope, intercept) in N of P_io at a budget's points: what a P_total budget pays besides
    ``N (k_e + k_c)``; (0, 0) for P_core budgets."""
    pts = table.points
    at = pts[(pts["slice"] == "budget") & (pts["budget"] == budget)]
    if budget_kind != "total" or at["N"].nunique() < 2:
        return 0.0, 0.0
    slope, intercept = np.polyfit(at["N"].to_numpy(float), at["P_io"].to_numpy(float), 1)
    return float(slope), float(intercept)


def model_optimum_at_k_c(
    model, P: float, k_c: float, d_tree: int, io: tuple[float, float] = (0.0, 0.0)
) -> dict:
    """The model's best network at budget P with k_c fixed, N continuous as the parabola's N*
    is: the minimiser over log N of the model along the budget, k_e = (P - io) / N - k_c from
    ``d_m >= 1`` (``io`` = the (slope, intercept) in N of what the budget pays besides
    ``N (k_e + k_c)``: P_total budgets). Returns ``{"N", "d_m", "k_e", "loss"}``, d_m the real
    memory size that gives k_e (k_e is quadratic in d_m, docs/science.md §3)."""
    k_e_min = float(k_e_of_d_m(1.0, d_tree))
    N_max = (P - io[1]) / (k_e_min + k_c + io[0])
    if N_max < 1.0:
        raise FitError(f"P={P:g}: no network with d_m >= 1 fits at k_c = {k_c:g}")

    def k_e_at(N):
        return (P - io[1]) / N - k_c - io[0]

    def loss(u):
        N = np.exp(u)
        return model.predict(N, k_e_at(N), np.full_like(N, k_c))

    grid = np.linspace(0.0, np.log(N_max), 400)
    j = int(np.argmin(loss(grid)))
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
    best = minimize_scalar(
        lambda u: float(loss(np.array([u]))[0]), bounds=(lo, hi), method="bounded"
    )
    u = best.x if best.fun <= loss(grid[j : j + 1])[0] else grid[j]
    N = float(np.exp(u))
    k_e = float(k_e_at(N))
    # k_e = 4 d^2 + (2 d_tree + 5) d + 1 with the default MLP (docs/science.md §3)
    b = 2.0 * d_tree + 5.0
    d_m = (-b + np.sqrt(b * b + 16.0 * (k_e - 1.0))) / 8.0
    return {"N": N, "d_m": float(d_m), "k_e": k_e, "loss": float(loss(np.array([u]))[0])}


def model_points(table: SeedTable, held_out: float) -> np.ndarray:
    """Indices of the points the information model is fitted to: every point but the held-out
    budget's and the random slice's."""
    pts = table.points
    held = (pts["slice"] == "budget").to_numpy() & (pts["budget"] == held_out).to_numpy()
    rnd = (pts["slice"] == "random").to_numpy()
    return np.flatnonzero(~held & ~rnd & np.isfinite(table.means("val")))


@one_blas_thread
def information_model_claim(
    table: SeedTable, fits: dict[float, ParabolaFit], budget_kind: str, d_tree: int | None
) -> Claim:
    """The information model's out-of-sample test (see the module docstring)."""
    name = "information_model"
    usable = usable_budgets(fits)
    if len(usable) < 3:
        return not_testable(
            name,
            f"{len(usable)} usable budget(s); the test needs 3; {table.note}".strip("; "),
            len(usable),
        )
    pts = table.points
    largest = float(pts.loc[pts["slice"] == "budget", "budget"].max())
    P_held = usable[-1]
    if P_held != largest:
        return not_testable(
            name, f"the held-out (largest) budget {largest:g} has no usable parabola", len(usable)
        )
    held = fits[P_held]
    if not held.c_ci95[0] > 0:
        return not_testable(
            name,
            f"the held-out budget {P_held:g}'s parabola has no decided minimum (c's interval "
            f"[{held.c_ci95[0]:.3g}, {held.c_ci95[1]:.3g}] is not above 0): no N* to predict",
            len(usable),
        )
    extrap = n_star_extrapolation(fits, usable[:-1], P_held)
    if extrap is None:
        return not_testable(name, "fewer than 2 fitted budgets to extrapolate N*", len(usable))
    idx = model_points(table, P_held)
    pts = table.points.iloc[idx]
    try:
        model = fit_arrays(pts["N"], pts["k_e"], pts["k_c"], table.means("val")[idx], d_tree=d_tree)
        io = io_line(table, P_held, budget_kind)
        opt = model_optimum_at_k_c(model, P_held, held.k_c, d_tree or 4, io)
    except FitError as err:
        return not_testable(name, f"information model not fitted: {err}", len(idx))
    lo, hi = held.N_star_ci95
    decision, why, err_model, err_naive = decide_information_model(
        opt["N"], held.N_star, (lo, hi), extrap.predicted
    )
    text = (
        f"model N* {opt['N']:.3g} (d_m {opt['d_m']:.3g}) at {P_held:g}; held-out parabola N* "
        f"{held.N_star:.3g} [{lo:.3g}, {hi:.3g}]; log N* error {err_model:+.3f} against the "
        f"log-linear extrapolation's {err_naive:+.3f} (N* {extrap.predicted:.3g} from budgets "
        f"{', '.join(f'{p:g}' for p in extrap.budgets)})"
    )
    details = {
        "held_out_budget": P_held,
        "model_N_star": opt["N"],
        "model_d_m": opt["d_m"],
        "model_loss": opt["loss"],
        "held_out_N_star": held.N_star,
        "held_out_N_star_ci95": (lo, hi),
        "log_error_model": err_model,
        "log_error_extrapolation": err_naive,
        "extrapolated_N_star": extrap.predicted,
        "n_points": len(idx),
        "params": model.params(),
    }
    note = "; ".join(x for x in (why, text, table.note) if x)
    return Claim(name, decision, err_model, None, len(idx), note, details)


def decide_information_model(
    model_N: float, held_N: float, held_ci: tuple[float, float], extrapolated_N: float
) -> tuple[str, str, float, float]:
    """Pass (``supported``) when ``model_N`` lies inside ``held_ci`` and its log error against
    ``held_N`` is no worse than ``extrapolated_N``'s; else fail (``contradicted``). Inside is
    read up to float rounding (a relative 1e-9): an interval that ends at the budget's largest N
    comes back from the parabola as 293.99999999999994 for 294.
    Returns (decision, reason, log error of the model, log error of the extrapolation)."""
    inside = bool(held_ci[0] * (1 - 1e-9) <= model_N <= held_ci[1] * (1 + 1e-9))
    err_model = float(np.log(model_N / held_N))
    err_naive = float(np.log(extrapolated_N / held_N))
    no_worse = abs(err_model) <= abs(err_naive)
    if inside and no_worse:
        return "supported", "passes", err_model, err_naive
    why = "fails: " + "; ".join(
        w
        for w, bad in (
            ("its N* lies outside the held-out parabola's 95% N* interval", not inside),
            ("its log N* error is worse than the log-linear extrapolation's", not no_worse),
        )
        if bad
    )
    return "contradicted", why, err_model, err_naive
