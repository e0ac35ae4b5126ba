"""The shipped sweep definitions can decide what they are meant to (docs/science.md §8)."""

from __future__ import annotations

import collections
import math

import pytest

from sweeps import run
from sweeps.configs import default


def _slices(spec):
    points = run.load_sweep(spec).points
    budgets = collections.defaultdict(list)
    axes = collections.defaultdict(list)
    for p in points:
        if p.slice == "budget":
            budgets[(p.budget_kind, p.budget)].append(p)
        elif p.slice.startswith("axis_"):
            axes[p.slice].append(p)
    return points, budgets, axes


def test_default_sweep_has_a_parabola_per_budget_and_three_axis_slices():
    points, budgets, axes = _slices("default")
    assert sorted(b for _, b in budgets) == sorted(run.load_sweep("default").config.budgets)
    assert len(budgets) >= 3
    tolerance = run.load_sweep("default").config.tolerance
    assert 0 < tolerance <= 0.1  # points of one slice are within 10 % of its budget
    for (kind, budget), slice_points in budgets.items():
        assert kind == "core" and len(slice_points) >= 4, budget  # a parabola needs 4 points
        assert len({p.k_c for p in slice_points}) == 1
        assert all(abs(p.P_core - budget) <= tolerance * budget for p in slice_points)
    for axis, field in (("axis_N", "N"), ("axis_k_e", "d_m"), ("axis_k_c", "k_c")):
        values = sorted(getattr(p, field) for p in axes[axis])
        assert len(values) >= 3 and len(set(values)) == len(values), axis  # MIN_AXIS_POINTS
        # every other axis fixed at the centre
        others = {(p.N, p.d_m, p.k_c) for p in axes[axis]}
        fixed = [f for f in ("N", "d_m", "k_c") if f != field]
        assert len({tuple(getattr(p, f) for f in fixed) for p in axes[axis]}) == 1, others
    assert len(run.load_sweep("default").config.seeds) >= 3


def test_science_sweep_counts_each_budget_on_p_core_and_on_p_total_over_two_decades():
    points, budgets, axes = _slices("science")
    kinds = collections.defaultdict(list)
    for kind, budget in budgets:
        kinds[kind].append(budget)
    assert set(kinds) == {"core", "total"}
    for kind, values in kinds.items():
        assert len(values) >= 5 and math.log10(max(values) / min(values)) >= 2, kind
    for (kind, budget), slice_points in budgets.items():
        field = "P_core" if kind == "core" else "P_total"
        assert all(abs(getattr(p, field) - budget) <= 0.05 * budget for p in slice_points)
    assert any(p.slice == "random" for p in points) and len(axes) == 3


def test_unknown_budget_kind_is_refused():
    config = default.get_config()
    config.budget_kinds = ("core", "io")
    with pytest.raises(ValueError, match=r"budget_kinds=.*unknown \['io'\]; valid: core, total"):
        default.get_sweep(config)


def test_enwiki_overnight_sweep_has_a_parabola_per_budget_and_three_axis_slices():
    points, budgets, axes = _slices("enwiki_overnight")
    assert len(budgets) == 3 and all(len(v) >= 4 for v in budgets.values())
    assert sorted(axes) == ["axis_N", "axis_k_c", "axis_k_e"]
    assert all(len(v) >= 3 for v in axes.values())
    assert run.load_sweep("enwiki_overnight").config.task == "enwik8"


def test_law_sweep_holds_out_a_budget_3x_beyond_five_fitted_ones_over_1_5_decades():
    loaded = run.load_sweep("law")
    seq = loaded.config.sequential
    budgets = list(seq.budgets)
    fitted, held = budgets[:-1], budgets[-1]
    assert budgets == sorted(budgets) and len(fitted) >= 5
    assert math.log10(fitted[-1] / fitted[0]) >= 1.5 and held >= 3 * fitted[-1]
    assert math.log10(held / fitted[0]) >= 2  # the claim's two decades, held-out included
    assert loaded.config.budget_kind == "core" and seq.predictions and seq.length.factor == 2
    static = collections.Counter((p.slice, p.budget) for p in loaded.points if p.slice == "budget")
    assert sorted(b for _, b in static) == fitted[: seq.fixed]  # the rest is placed as it runs
    assert all(n >= 4 for n in static.values())  # a parabola at each fixed-grid budget
    length = [p for p in loaded.points if p.slice == "length"]
    assert len(length) == 6 and {p.seeds for p in length} == {(0, 1)}
    assert {dict(p.train)["num_train_steps"] for p in length} == {2000}


def test_enwiki_sweep_has_a_parabola_per_budget_units_of_equal_budget_and_length_points():
    loaded = run.load_sweep("enwiki")
    config = loaded.config
    points, budgets, axes = _slices("enwiki")
    assert config.task == "enwik8" and config.budget_kind == "core" and len(config.seeds) >= 3
    assert sorted(b for _, b in budgets) == sorted(config.budgets) and len(budgets) >= 3
    for (_, budget), slice_points in budgets.items():
        elm = [p for p in slice_points if p.arch == "elm"]
        assert len(elm) >= 5 and len({p.k_c for p in elm}) == 1, budget
        assert all(abs(p.P_core - budget) <= config.tolerance * budget for p in elm)
        units = {p.arch: p for p in slice_points if p.arch != "elm"}
        assert sorted(units) == ["gru", "lstm"], budget  # one of each at every budget
        for arch, p in units.items():
            assert abs(p.P_core - budget) <= config.baseline_tolerance * budget
            assert dict(p.train) == {"optim.learning_rate": config.baseline_lr[arch]}
    assert sorted(axes) == ["axis_N", "axis_k_c", "axis_k_e"]
    assert all(len(v) >= 3 for v in axes.values())
    seq = config.sequential
    assert seq.fixed == len(seq.budgets) and not seq.predictions  # nothing placed or held out
    length = [p for p in points if p.slice == "length"]
    assert len(length) == 6 and {dict(p.train)["num_train_steps"] for p in length} == {
        2 * config.train.num_train_steps
    }
