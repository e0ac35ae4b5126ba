"""Pareto frontiers (both coordinates minimised): known fronts, ties, duplicates, brute force."""

import numpy as np
import pandas as pd
import pytest

from analysis.load import aggregate_seeds
from analysis.stats.pareto import budget_optima, pareto_front, pareto_mask
from analysis.synthetic.trials import synthetic_trials


def brute_force_mask(x, y):
    """O(n^2) reference: i is kept when no j has x_j <= x_i, y_j <= y_i, one strictly."""
    n = len(x)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if x[j] <= x[i] and y[j] <= y[i] and (x[j] < x[i] or y[j] < y[i]):
                keep[i] = False
    return keep


def test_hand_built_front_is_the_staircase():
    df = pd.DataFrame(
        {"P": [1, 2, 3, 4, 5, 2.5], "L": [5.0, 3.0, 4.0, 1.0, 0.5, 2.0], "name": list("abcdef")}
    )
    front = pareto_front(df, "P", "L")
    assert front["name"].tolist() == ["a", "b", "f", "d", "e"]  # c is dominated by b


def test_ties_in_x_keep_only_the_lowest_y_and_ties_in_y_keep_only_the_lowest_x():
    x = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 4.0])
    y = np.array([3.0, 2.0, 2.0, 1.0, 1.5, 1.0])
    # (1,3) loses to (1,2); (2,2) loses to (1,2); (3,1.5) to (3,1); (4,1) to (3,1)
    assert pareto_mask(x, y).tolist() == [False, True, False, True, False, False]


def test_exact_duplicates_are_all_kept_or_only_the_first_when_asked():
    x = np.array([2.0, 1.0, 2.0, 1.0, 5.0])
    y = np.array([1.0, 4.0, 1.0, 4.0, 1.0])
    assert pareto_mask(x, y).tolist() == [True, True, True, True, False]
    assert pareto_mask(x, y, keep_duplicates=False).tolist() == [True, True, False, False, False]


def test_sort_and_sweep_matches_brute_force_on_random_data_with_many_ties():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(1, 60))
        x = rng.integers(0, 8, n).astype(float)
        y = rng.integers(0, 8, n).astype(float)
        np.testing.assert_array_equal(pareto_mask(x, y), brute_force_mask(x, y))


def test_empty_input_gives_empty_front_and_bad_input_raises():
    assert pareto_mask(np.array([]), np.array([])).tolist() == []
    with pytest.raises(ValueError, match="non-finite"):
        pareto_mask(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="column 'nope'"):
        pareto_front(pd.DataFrame({"a": [1.0]}), "nope", "a")


def test_budget_optimum_is_the_lowest_seed_mean_per_budget():
    trials = synthetic_trials(budgets=(1e3, 1e4), seeds=(0, 1), n_diverged=0)
    points = aggregate_seeds(trials)
    opt = budget_optima(points)
    assert opt["budget"].tolist() == [1e3, 1e4]
    for _, row in opt.iterrows():
        t = trials[(trials["arch"] == "elm") & (trials["budget"] == row["budget"])]
        means = t.groupby("point_id")["val_loss"].mean()
        assert row["L_star"] == pytest.approx(means.min())
        assert row["point_id"] == means.idxmin()
        assert row["n_points"] == len(means)


def test_frontier_over_each_budget_axis_is_non_dominated():
    points = aggregate_seeds(synthetic_trials())
    points = points[points["n_ok"] > 0]
    for x in ("P_core", "P_total", "train_flops"):
        front = pareto_front(points, x, "val_loss_mean")
        assert np.all(np.diff(front[x]) >= 0) and np.all(np.diff(front["val_loss_mean"]) < 0)
        ref = brute_force_mask(points[x].to_numpy(), points["val_loss_mean"].to_numpy())
        assert len(front) == ref.sum()
