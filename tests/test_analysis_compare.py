"""The report's comparisons: the claims of two data sets side by side (analysis.report DIR_A
DIR_B), and the best ELM point of each budget against the simple units of the same budget."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.claims.decide import decide_claims
from analysis.load import validate
from analysis.report import compare
from analysis.report.build import build_report
from analysis.synthetic.trials import power_law_surface, synthetic_trials, tradeoff_trials

N_BOOT = 60


def _units(penalty: float, seeds=(0, 1, 2, 3), noise=0.01, rng_seed=0) -> pd.DataFrame:
    return validate(
        synthetic_trials(
            budgets=(1e3, 1e4), k_c_values=(16,), seeds=seeds, noise=noise,
            baseline="lstm", baseline_penalty=penalty, n_diverged=0, axis_points=False,
            rng_seed=rng_seed,
        )
    )  # fmt: skip


def _by_hand(trials: pd.DataFrame, budget: float) -> tuple[tuple, float, float]:
    """The best ELM point of a budget on validation, and the test difference to the lstm."""
    at = trials[(trials["budget"] == budget) & (trials["slice"] == "budget")]
    elm = at[at["arch"] == "elm"]
    means = elm.groupby(["N", "d_m", "k_c"])["final_val_loss"].mean()
    best = means.idxmin()
    pick = elm[(elm["N"] == best[0]) & (elm["d_m"] == best[1]) & (elm["k_c"] == best[2])]
    unit = at[at["arch"] == "lstm"]["final_test_loss"].to_numpy()
    test = pick["final_test_loss"].to_numpy()
    diff = test.mean() - unit.mean()
    se = math.sqrt(test.var(ddof=1) / len(test) + unit.var(ddof=1) / len(unit))
    return best, diff, se


@pytest.mark.parametrize(("penalty", "verdict"), [(1.2, "beats"), (0.8, "loses")])
@pytest.mark.parametrize("rng_seed", [0, 3])
def test_best_elm_point_against_the_unit_of_its_budget(penalty, verdict, rng_seed):
    trials = _units(penalty, rng_seed=rng_seed)
    frame = compare.units_frame(trials)
    assert sorted(frame["budget"]) == [1e3, 1e4]
    for row in frame.itertuples():
        best, diff, se = _by_hand(trials, row.budget)
        assert (row.elm_N, row.elm_d_m, row.elm_k_c) == best
        assert row.test_diff == pytest.approx(diff, rel=1e-9)
        assert row.test_diff_hi - row.test_diff == pytest.approx(compare.Z95 * se, rel=1e-9)
        assert row.verdict == verdict
        assert row.unit == "lstm" and row.seeds == "4/4"


def test_equal_test_losses_tie_and_one_seed_decides_nothing():
    trials = _units(1.0)
    for budget in (1e3, 1e4):
        best, _, _ = _by_hand(trials, budget)
        at = (trials["budget"] == budget) & (trials["slice"] == "budget")
        pick = at & (trials["N"] == best[0]) & (trials["d_m"] == best[1])
        unit = at & (trials["arch"] == "lstm")
        # the unit's seeds carry the ELM point's test losses in another order: a difference of 0
        trials.loc[unit, "final_test_loss"] = trials.loc[pick, "final_test_loss"].to_numpy()[::-1]
    frame = compare.units_frame(trials)
    assert set(frame["verdict"]) == {"ties"}
    assert np.allclose(frame["test_diff"], 0.0, atol=1e-12)
    one = compare.units_frame(_units(1.2, seeds=(0,)))
    assert set(one["verdict"]) == {"undecided (one seed)"}


def test_step_cost_is_wall_time_over_steps_per_architecture():
    trials = _units(1.2)
    trials.loc[trials["arch"] == "lstm", "wall_s"] = 100.0
    trials.loc[trials["arch"] == "elm", "wall_s"] = 300.0
    frame = compare.units_frame(trials)
    assert np.allclose(frame["elm_s_per_step"], 300.0 / 2000)
    assert np.allclose(frame["step_ratio"], 3.0)


def test_no_unit_no_section():
    trials = validate(synthetic_trials(baseline=None, n_diverged=0))
    assert compare.units_frame(trials).empty
    assert compare.units_section(trials) == ""


def _steeper(N, k_e, k_c):
    return power_law_surface(N, k_e, k_c, a=2.0, b=9.0)


def test_two_data_sets_side_by_side_show_each_ones_own_decisions():
    budgets = tuple(np.geomspace(1e3, 1e5, 4))
    a = tradeoff_trials(dataset="task-a", sweep="a", rng_seed=1, budgets=budgets)
    b = tradeoff_trials(_steeper, dataset="task-b", sweep="b", rng_seed=2, axes=False,
                        budgets=budgets)  # fmt: skip
    blocks = decide_claims(
        validate(pd.concat([a, b], ignore_index=True)), n_boot=N_BOOT, information_model=False
    )
    frame = compare.datasets_frame(blocks)
    assert list(frame.columns) == ["claim", "task-a", "task-b"]
    by_name = {blk.dataset: blk for blk in blocks}
    for row in frame.to_dict(orient="records"):
        for dataset in ("task-a", "task-b"):
            claim = by_name[dataset].claims.get(row["claim"])
            assert f"<b>{claim.decision}</b>" in row[dataset]
    # task-b has no axis slices: its monotonicity claims are not testable, task-a's decided
    mono = frame.set_index("claim").loc["monotone_N"]
    assert "not_testable" in mono["task-b"] and "supported" in mono["task-a"]
    optima = compare.optima_frame(blocks)
    assert set(optima["dataset"]) == {"task-a", "task-b"}
    assert compare.datasets_section(blocks[:1]) == ""


def test_report_of_two_sweep_directories_on_two_tasks_sets_them_side_by_side(tmp_path):
    for name, dataset, seed in (("a", "task-a", 1), ("b", "task-b", 2)):
        d = tmp_path / name
        d.mkdir()
        trials = tradeoff_trials(
            dataset=dataset, sweep=name, rng_seed=seed, budgets=tuple(np.geomspace(1e3, 1e5, 3)),
            d_m_values=(1, 2, 4, 8, 16),
        )  # fmt: skip
        trials.to_parquet(d / "results.parquet")
    path = build_report([tmp_path / "a", tmp_path / "b"], tmp_path / "out", n_boot=50,
                        study_replicates=0)  # fmt: skip
    page = path.read_text()
    assert "The data sets side by side" in page
    assert "<th>task-a</th>" in page and "<th>task-b</th>" in page


def test_metric_of_both_on_test_is_reported_beside_the_input_blind_one():
    trials = _units(1.2)
    frame = compare.units_frame(trials)
    for row in frame.itertuples():
        best, _, _ = _by_hand(trials, row.budget)
        at = trials[(trials["budget"] == row.budget) & (trials["slice"] == "budget")]
        pick = at[(at["N"] == best[0]) & (at["d_m"] == best[1]) & (at["arch"] == "elm")]
        unit = at[at["arch"] == "lstm"]
        assert row.metric == "accuracy"
        assert row.elm_test_metric == pytest.approx(pick["final_test_metric"].mean())
        assert row.unit_test_metric == pytest.approx(unit["final_test_metric"].mean())
        assert row.input_blind_test_metric == pytest.approx(pick["input_blind_test_metric"].mean())
