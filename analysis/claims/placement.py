"""Where a sequential sweep places the points of its next budget (docs/sweeps.md, sequential
sweeps; docs/science.md §8, claim 4).

A sequential sweep trains its budgets in ascending order. The first budgets (two by default) get
a fixed wide grid; every later budget gets ``points`` (5) points at one k_c, spread evenly in
log N over ``[N*/spread, N* spread]`` (the law sweep's spread is 2.83: docs/analysis.md, the
estimator study, shows why not 4) around the N* that the claim-3 law of the budgets
already done extrapolates to it:

* each done budget's parabola in log N (docs/science.md §8, claim 2) is fitted to its seed-mean
  final validation losses (diverged seeds at the input-blind loss, as the claims count them),
  at the k_c that the claims choose; a budget that has not learned (3-SE rule) is left out;
  its N* is the parabola's minimiser over the sampled range;
* ``log N* = a + s log P`` is fitted by least squares over the budgets whose vertex lies inside
  their range (at least two), else over every fitted budget (at least two), else the fixed grid
  is used again;
* each of the ``points`` targets ``N* spread^u`` (u evenly in [-1, 1]) takes the enumerated
  network (an integer d_m at that k_c, within the budget's tolerance) nearest to it in log N,
  nearest pairs first, each network at most once.

Everything is a deterministic function of the trial records of the budgets done (point
estimates, no resampling), so a resumed or re-run sweep places the same points.
:func:`grid_candidates` enumerates the networks of a budget without JAX (the simulation of
:mod:`analysis.synthetic.law`); the sweep enumerates them with ``elm_jax.budget``, which gives
the same networks (tests/test_sweep_sequential.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.info.allocation import k_e_of_d_m
from analysis.stats.parabola import choose_k_c, parabola_coefficients, parabola_minimiser
from analysis.stats.scaling import FitError
from analysis.stats.seedboot import learned, seed_table

POINTS = 5
SPREAD = 4.0
MIN_LAW_BUDGETS = 2


@dataclass(frozen=True)
class BudgetOptimum:
    """A done budget's parabola optimum (point estimate) as the placement uses it."""

    budget: float
    N_star: float
    interior: bool  # c > 0 and the vertex strictly inside the sampled range of N
    k_c: float
    N_range: tuple[float, float]


@dataclass(frozen=True)
class NStarLaw:
    """``N*(P) = exp(intercept) P^slope`` fitted to the done budgets' optima."""

    slope: float
    intercept: float
    budgets: tuple[float, ...]
    which: str  # "interior optima" or "all fitted budgets"

    def predict(self, P: float | np.ndarray) -> np.ndarray | float:
        """N* extrapolated (or interpolated) to budget(s) P."""
        return np.exp(self.intercept + self.slope * np.log(np.asarray(P, float)))


@dataclass(frozen=True)
class Placement:
    """The points of one budget and why they are there."""

    budget: float
    rule: str  # "fixed wide grid" or "around the extrapolated N*"
    chosen: tuple[tuple[int, int], ...]  # (d_m, N) of the placed networks, by N
    reason: str
    N_star: float | None = None
    targets: tuple[float, ...] = ()
    law: NStarLaw | None = None

    def to_json(self) -> dict:
        """The placement as plain JSON values."""
        return {
            "budget": self.budget,
            "rule": self.rule,
            "N_star": self.N_star,
            "targets": list(self.targets),
            "chosen": [{"d_m": d, "N": n} for d, n in self.chosen],
            "law": None
            if self.law is None
            else {
                "slope": self.law.slope,
                "intercept": self.law.intercept,
                "budgets": list(self.law.budgets),
                "which": self.law.which,
            },
            "reason": self.reason,
        }


def budget_optima(trials: pd.DataFrame, budgets: Sequence[float]) -> tuple[list, list[str]]:
    """Per budget of ``budgets`` (budget slice, ELM): its :class:`BudgetOptimum`, and notes on
    the budgets left out (not learned, no parabola)."""
    rows = trials[(trials["slice"] == "budget") & trials["budget"].isin(list(budgets))]
    if len(rows) == 0:
        return [], ["no trials of the done budgets"]
    table = seed_table(rows.reset_index(drop=True))
    pts = table.points
    means = table.means("val")
    out, notes = [], []
    for P in sorted(budgets):
        idx = np.flatnonzero((pts["budget"] == P).to_numpy())
        if len(idx) == 0:
            notes.append(f"budget {P:g}: no trials")
            continue
        ok, why = learned(table, idx)
        if ok is False:
            notes.append(f"budget {P:g} left out: {why}")
            continue
        try:
            k_c = choose_k_c(table, idx)
        except FitError as err:
            notes.append(f"budget {P:g} left out: {err}")
            continue
        idx = idx[pts["k_c"].to_numpy(float)[idx] == k_c]
        x = np.log(pts["N"].to_numpy(float)[idx])
        y = means[idx]
        if not np.isfinite(y).all():
            notes.append(f"budget {P:g} left out: a point has no finite seed mean")
            continue
        coef = parabola_coefficients(x, y)
        x_opt, interior = parabola_minimiser(coef, float(x.min()), float(x.max()))
        out.append(
            BudgetOptimum(
                budget=float(P),
                N_star=float(np.exp(x_opt[0])),
                interior=bool(interior[0]),
                k_c=float(k_c),
                N_range=(float(np.exp(x.min())), float(np.exp(x.max()))),
            )
        )
    return out, notes


def n_star_law(optima: Sequence[BudgetOptimum]) -> NStarLaw | None:
    """log N* against log P over the interior optima (>= 2), else every optimum (>= 2)."""
    interior = [o for o in optima if o.interior]
    use, which = (
        (interior, "interior optima")
        if len(interior) >= MIN_LAW_BUDGETS
        else (list(optima), "all fitted budgets")
    )
    if len({o.budget for o in use}) < MIN_LAW_BUDGETS:
        return None
    logP = np.log([o.budget for o in use])
    logN = np.log([o.N_star for o in use])
    slope, intercept = np.polyfit(logP, logN, 1)
    return NStarLaw(float(slope), float(intercept), tuple(o.budget for o in use), which)


def spread_targets(N_star: float, points: int = POINTS, spread: float = SPREAD) -> np.ndarray:
    """``points`` values of N evenly in log N over ``[N*/spread, N* spread]``."""
    return N_star * spread ** np.linspace(-1.0, 1.0, points)


def nearest_distinct(
    targets: Sequence[float], candidates: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """For each target the candidate ``(d_m, N)`` nearest in log N, nearest pairs first, each
    candidate used once (ties: smaller d_m); returns the chosen candidates sorted by N."""
    pairs = sorted(
        (abs(math.log(n) - math.log(t)), d, n, i)
        for i, t in enumerate(targets)
        for d, n in candidates
    )
    used_targets, used, chosen = set(), set(), []
    for _, d, n, i in pairs:
        if i in used_targets or (d, n) in used:
            continue
        used_targets.add(i)
        used.add((d, n))
        chosen.append((d, n))
    return sorted(chosen, key=lambda c: (c[1], c[0]))


def place_budget(
    budget: float,
    candidates: Sequence[tuple[int, int]],
    optima: Sequence[BudgetOptimum],
    notes: Sequence[str] = (),
    points: int = POINTS,
    spread: float = SPREAD,
    k_c: int | None = None,
) -> Placement | None:
    """The points of ``budget`` around the N* extrapolated from ``optima``; None when fewer
    than two done budgets have an optimum (the caller then uses its fixed wide grid)."""
    law = n_star_law(optima)
    if law is None:
        return None
    N_star = float(law.predict(budget))
    targets = spread_targets(N_star, points, spread)
    chosen = nearest_distinct(targets, candidates)
    done = ", ".join(
        f"{o.budget:g}: N* {o.N_star:.3g}{'' if o.interior else ' (range end)'}" for o in optima
    )
    n_lo, n_hi = chosen[0][1], chosen[-1][1]
    clipped = []
    if n_hi < targets[-1] / math.sqrt(spread ** (2.0 / max(points - 1, 1))):
        clipped.append(f"the many-simple end stops at N = {n_hi} (d_m = {chosen[-1][0]})")
    if n_lo > targets[0] * math.sqrt(spread ** (2.0 / max(points - 1, 1))):
        clipped.append(f"the few-complex end stops at N = {n_lo} (d_m = {chosen[0][0]})")
    reason = (
        f"log N* = {law.intercept:.3f} + {law.slope:.3f} log P over the {law.which} of budgets "
        f"{', '.join(f'{p:g}' for p in law.budgets)} (done: {done}) gives N* = {N_star:.3g} at "
        f"{budget:g}; {len(chosen)} points"
        + (f" at k_c = {k_c}" if k_c is not None else "")
        + f" for targets N = {', '.join(f'{t:.3g}' for t in targets)} (x{spread:g} either "
        f"side, even in log N): N = {', '.join(f'{n} (d_m {d})' for d, n in chosen)}"
        + (f"; {'; '.join(clipped)}" if clipped else "")
        + (f"; {'; '.join(notes)}" if notes else "")
    )
    return Placement(
        budget=float(budget),
        rule="around the extrapolated N*",
        chosen=tuple(chosen),
        reason=reason,
        N_star=N_star,
        targets=tuple(float(t) for t in targets),
        law=law,
    )


def grid_candidates(
    budget: float,
    k_c: int,
    d_m_values: Sequence[int],
    tolerance: float,
    d_tree: int = 4,
    budget_kind: str = "core",
    num_classes: int = 19,
) -> list[tuple[int, int]]:
    """The ``(d_m, N)`` networks of a budget at one k_c, as ``elm_jax.budget.enumerate_points``
    finds them (ELM with the default MLP and learnable tau_m; P_total adds the decoder's
    ``num_classes (N + 1)``): N >= 1 closest to the budget, kept within ``tolerance``."""
    fixed = 0 if budget_kind == "core" else num_classes
    out = []
    for d_m in d_m_values:
        per = float(k_e_of_d_m(d_m, d_tree)) + k_c + (num_classes if budget_kind == "total" else 0)
        real = (budget - fixed) / per
        best = min(
            (
                (abs(fixed + n * per - budget), n)
                for n in sorted({max(1, math.floor(real)), max(1, math.ceil(real))})
            ),
        )
        if best[0] <= tolerance * budget:
            out.append((int(d_m), int(best[1])))
    return out
