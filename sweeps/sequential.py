"""Sequential sweeps: the budgets train in ascending order, each placed from what the budgets
before it found (docs/sweeps.md, "Sequential sweeps"; docs/science.md §8, claim 4).

A sweep config with a ``sequential`` block (``sweeps/configs/law.py``) defines its budgets, of
which the last is held out. Its ``get_sweep`` returns what is known before anything trains
(:func:`sweeps.slices.sequential_static_points`: the fixed wide grid of the first budgets, the
axis slices, and the axis slices' ends again at the longer training); this module adds, as
records arrive:

* each later budget's points, placed by :func:`analysis.claims.placement.place_budget` around the N*
  that the claim-3 law of the budgets done extrapolates to it (the fixed wide grid again while
  fewer than two budgets have an optimum), once every trial of every smaller budget has a
  record;
* before the held-out budget's points join the sweep, ``predictions.json``
  (:mod:`analysis.claims.predictions`), written once and never rewritten;
* each budget's two best points again at the longer training (the ``length`` slice), once the
  budget's own trials all have records.

The definition is a pure function of the static points and the trial records (point estimates,
no randomness), so a resumed or re-run sweep places the same points; the manifest check of
:meth:`sweeps.store.SweepStore.reconcile_manifest` refuses a run whose placement differs from the
recorded one. Every placement and its reason are logged and written to ``placement.json``.

This module reads the analysis (placement, predictions), so it and ``sweeps.run`` sit in the
layer above ``analysis`` (tests/test_layering.py).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.claims.placement import budget_optima, place_budget
from analysis.claims.predictions import (
    FILENAME,
    PredictionError,
    make_predictions,
    write_predictions,
)
from analysis.load import validate
from analysis.stats.seedboot import seed_table
from sweeps import store as store_lib
from sweeps.points import SweepPoint, make_trials, point_from_budget
from sweeps.slices import budget_slice, fixed_grid_seeds, length_point

log = logging.getLogger("sweeps")
PLACEMENT_FILE = "placement.json"
PREDICTION_BOOT = 200


def is_sequential(config: Any) -> bool:
    """Whether a sweep config defines a sequential sweep (a ``sequential`` block)."""
    return "sequential" in config and config.sequential is not None


@dataclasses.dataclass
class Definition:
    """The sweep's points so far and the placement of every budget placed."""

    points: list[SweepPoint]
    placements: list[dict]
    complete: bool  # every budget placed and every length point added


def _frame(st: store_lib.SweepStore, trial_ids: set[str]) -> pd.DataFrame | None:
    """The validated trial frame of the recorded trials among ``trial_ids`` (None: none)."""
    records = st.records(trial_ids)
    if not records:
        return None
    frame = pd.DataFrame([{c: r.get(c) for c in store_lib.COLUMNS} for r in records])
    return validate(frame, source=st.root)


class _Trials:
    """Trial ids of points (hashing every config once) and whether they all have records."""

    def __init__(self, config: Any, finished: set[str]):
        self.config, self.finished = config, finished
        self._ids: dict[SweepPoint, list[str]] = {}

    def ids(self, points: Sequence[SweepPoint]) -> set[str]:
        out: set[str] = set()
        for p in points:
            if p not in self._ids:
                trials = make_trials(
                    [p], list(self.config.seeds), self.config.train, self.config.task
                )
                self._ids[p] = [t.trial_id for t in trials]
            out.update(self._ids[p])
        return out

    def done(self, points: Sequence[SweepPoint]) -> bool:
        return bool(points) and self.ids(points) <= self.finished


def _fixed_grid(config: Any, budget: float) -> list[SweepPoint]:
    seq = config.sequential
    return budget_slice(
        budget,
        config.task,
        d_m=config.d_m,
        k_c=(int(seq.k_c),),
        max_points=config.max_points,
        budget_kind=config.budget_kind,
        tolerance=config.tolerance,
        d_tree=int(config.train.model.num_branches),
        embed_dim=int(config.train.model.embed_dim),
    )


def _candidates(config: Any, budget: float) -> dict[tuple[int, int], SweepPoint]:
    """Every network of the budget at the sweep's k_c and d_m in 1..d_m_max, by (d_m, N)."""
    from elm_jax.budget import enumeration as budget_lib

    seq = config.sequential
    try:
        found = budget_lib.enumerate_points(
            budget,
            config.task,
            budget_kind=config.budget_kind,
            d_m=list(range(1, int(seq.d_m_max) + 1)),
            k_c=[int(seq.k_c)],
            tolerance=config.tolerance,
            d_tree=int(config.train.model.num_branches),
            embed_dim=int(config.train.model.embed_dim),
        )
    except ValueError:
        return {}
    return {(p.d_m, p.N): point_from_budget(p, slice="budget", budget=budget) for p in found}


def _best_points(frame: pd.DataFrame, points: Sequence[SweepPoint], count: int):
    """The ``count`` points of one budget with the lowest seed-mean final validation loss."""
    table = seed_table(frame.reset_index(drop=True))
    means = table.means("val")
    order = [int(j) for j in np.argsort(means, kind="stable") if np.isfinite(means[j])]
    key = {(p.N, p.d_m, p.k_c): p for p in points}
    best = []
    for j in order:
        row = table.points.iloc[j]
        p = key.get((int(row["N"]), int(row["d_m"]), int(row["k_c"])))
        if p is not None and p not in best:
            best.append(p)
        if len(best) == count:
            break
    return best


def _ensure_predictions(
    config: Any,
    st: store_lib.SweepStore,
    trials: _Trials,
    held_points: Sequence[SweepPoint],
    budget: float,
    placement: dict,
    say: Any,
) -> None:
    """Writes predictions.json before the held-out budget trains (once; never rewritten)."""
    path = os.path.join(st.root, FILENAME)
    if os.path.exists(path):
        say(
            "predictions",
            "held-out budget %g: %s exists (written before it trained); never rewritten",
            budget,
            path,
        )
        return
    recorded = trials.ids(held_points) & trials.finished
    if recorded:
        log.error(
            "held-out budget %g: %d of its trials have records but %s does not exist: no "
            "prediction can be written after the result",
            budget,
            len(recorded),
            path,
        )
        return
    frame = _frame(st, trials.finished)
    try:
        content = make_predictions(
            frame, budget, config.budget_kind, n_boot=PREDICTION_BOOT, seed=0
        )
    except PredictionError as err:
        content = {"held_out_budget": budget, "error": str(err)}
        log.error("held-out budget %g: no prediction could be made: %s", budget, err)
    content["sweep"] = config.name
    content["placement"] = placement
    digest = write_predictions(path, content, recorded)
    log.info(
        "held-out budget %g: predictions written before it trains: %s (sha256 %s)",
        budget,
        path,
        digest,
    )


def build_definition(
    config: Any,
    static_points: Sequence[SweepPoint],
    directory: str,
    logged: set | None = None,
) -> Definition:
    """The sweep's points as far as the records allow (module docstring); writes
    placement.json and, when the held-out budget is reached, predictions.json. Each budget's
    placement is logged once per ``logged`` set (the keys of what was logged already)."""
    logged = set() if logged is None else logged

    def say(key: Any, message: str, *args: Any) -> None:
        if key not in logged:
            logged.add(key)
            log.info(message, *args)

    seq = config.sequential
    st = store_lib.SweepStore(directory)
    budgets = [float(b) for b in seq.budgets]
    fixed = int(seq.fixed)
    trials = _Trials(config, st.finished_ids())
    points = list(static_points)
    placements: list[dict] = []
    length = seq.get("length", None)
    complete = True
    for i, P in enumerate(budgets):
        # the budget's ELM points (its simple-unit baselines are compared, never placed)
        own = [p for p in points if p.slice == "budget" and p.budget == P and p.arch == "elm"]
        if i < fixed:
            placements.append(
                {
                    "budget": P,
                    "rule": "fixed wide grid",
                    "chosen": [{"d_m": p.d_m, "N": p.N} for p in own],
                    "reason": f"one of the first {fixed} budgets: the fixed wide grid (d_m in "
                    f"{tuple(config.d_m)}, up to {config.max_points} points from many simple to "
                    f"few complex neurons, k_c = {int(seq.k_c)})",
                }
            )
        else:
            before = [p for p in points if p.slice == "budget" and p.budget < P and p.arch == "elm"]
            if not trials.done(before):
                complete = False
                break
            frame = _frame(st, trials.ids(before))
            optima, notes = budget_optima(frame, budgets[:i])
            candidates = _candidates(config, P)
            placed = place_budget(
                P, sorted(candidates), optima, notes, int(seq.points), float(seq.spread), int(seq.k_c)
            ) if candidates else None  # fmt: skip
            if placed is None:
                own = _fixed_grid(config, P)
                entry = {
                    "budget": P,
                    "rule": "fixed wide grid",
                    "chosen": [{"d_m": p.d_m, "N": p.N} for p in own],
                    "reason": "fewer than two budgets done have an optimum to extrapolate N* from"
                    + (f" ({'; '.join(notes)})" if notes else "")
                    + ": the fixed wide grid",
                }
            else:
                own = [candidates[c] for c in placed.chosen]
                entry = placed.to_json()
            entry["held_out"] = P == budgets[-1]
            placements.append(entry)
            held = " (held out)" if entry["held_out"] else ""
            say(P, "budget %g%s: %s", P, held, entry["reason"])
            if P == budgets[-1] and seq.get("predictions", True):
                _ensure_predictions(config, st, trials, own, P, entry, say)
            points += own
        if length is not None:
            if trials.done(own):
                frame = _frame(st, trials.ids(own))
                best = _best_points(frame, own, int(length.points))
                points += [
                    length_point(p, config.train, int(length.factor), tuple(length.seeds))
                    for p in best
                ]
                placements[-1]["length_check"] = [{"d_m": p.d_m, "N": p.N} for p in best]
            else:
                complete = False
    store_lib.atomic_write_json(
        os.path.join(st.root, PLACEMENT_FILE),
        {"sweep": config.name, "held_out_budget": budgets[-1], "budgets": placements},
    )
    return Definition(points=points, placements=placements, complete=complete)


def describe(config: Any) -> list[str]:
    """What ``--check`` prints about a sequential sweep's stages."""
    seq = config.sequential
    budgets = [float(b) for b in seq.budgets]
    fixed = int(seq.fixed)
    placed = budgets[fixed:]
    lines = [
        f"sequential: budgets {', '.join(f'{b:g}' for b in budgets)} ({config.budget_kind}), in "
        f"this order; {', '.join(f'{b:g}' for b in budgets[:fixed])} on the fixed wide grid"
        + (
            f", the others {int(seq.points)} points at k_c = {int(seq.k_c)} within "
            f"x{float(seq.spread):g} of the N* extrapolated from the budgets before them"
            if placed
            else ""
        )
    ]
    fixed_seeds = fixed_grid_seeds(config)
    if fixed_seeds:
        lines.append(
            f"fixed-grid budgets {', '.join(f'{b:g}' for b in budgets[:fixed])}: seeds "
            f"{fixed_seeds}; the others the sweep's"
        )
    if seq.get("predictions", True):
        lines.append(
            f"held out: {budgets[-1]:g} ({budgets[-1] / budgets[-2]:.2g}x the largest fitted "
            f"budget; fitted budgets span {math.log10(budgets[-2] / budgets[0]):.2f} decades); "
            f"{FILENAME} is written before it trains"
        )
    if config.get("baselines", ()):
        lines.append(f"baselines at every budget: {', '.join(config.baselines)}")
    length = seq.get("length", None)
    if length is not None:
        lines.append(
            f"training length: each budget's {int(length.points)} best points and the axis "
            f"slices' ends again at {int(length.factor)}x the steps, seeds {tuple(length.seeds)}"
        )
    return lines
