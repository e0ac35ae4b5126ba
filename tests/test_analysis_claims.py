"""docs/science.md §8 claim tests: planted surfaces are decided correctly, flat tables never
support a claim, the 3-SE input-blind rule, the seeds-only bootstrap, diverged seeds,
claims.json."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.claims.decide import CLAIM_NAMES, DECISIONS, decide_claims, write_claims_json
from analysis.load import validate
from analysis.stats.parabola import fit_budget_parabola
from analysis.stats.scaling import FitError
from analysis.stats.seedboot import learned, seed_table
from analysis.synthetic.trials import (
    INPUT_BLIND,
    exact_law_surface,
    power_law_surface,
    tradeoff_trials,
)

N_BOOT = 100
#: decided on a planted surface that is an exact power law in P (the information model, another
#: functional form, is tested on its own surface in tests/test_analysis_law.py)
LAW_CLAIMS = tuple(n for n in CLAIM_NAMES if n != "information_model")


def decisions(trials, **kw) -> dict[str, dict[str, str]]:
    blocks = decide_claims(validate(trials), n_boot=N_BOOT, **kw)
    return {b.budget_kind: {n: c.decision for n, c in b.claims.items()} for b in blocks}


def flat(level):
    return lambda N, k_e, k_c: np.full(np.shape(N), level, float)


@pytest.mark.parametrize("budget_kind", ["core", "total"])
@pytest.mark.parametrize("rng_seed", [0, 7])
def test_planted_tradeoff_surface_supports_every_claim(budget_kind, rng_seed):
    trials = tradeoff_trials(
        exact_law_surface, budget_kind=budget_kind, rng_seed=rng_seed, n_random=12
    )
    [block] = decide_claims(validate(trials), n_boot=N_BOOT)
    assert block.budget_kind == budget_kind
    assert {n: block.claims[n].decision for n in LAW_CLAIMS} == dict.fromkeys(
        LAW_CLAIMS, "supported"
    ), {n: c.note for n, c in block.claims.items()}
    # the planted surface's continuous optimum moves as P^(2/3) (N) and P^(1/3) (k_e) for large
    # P; on the discrete 1e3..1e6 grid with k_c = 16 the fitted slopes sit near those values
    moves = block.claims["optimum_moves"].details
    assert 0.55 < moves["N_star_slope"] < 0.9
    assert 0.15 < moves["k_e_star_slope"] < 0.45
    assert block.loss_columns == {"val": "final_val_loss", "test": "final_test_loss"}
    assert block.input_blind["val_loss"] == pytest.approx(INPUT_BLIND["loss"])


def test_parabola_recovers_a_planted_parabola_and_its_vertex():
    a, b, c, x0 = 1.0, -0.6, 0.1, 3.0  # vertex at log N = 3, N* = e^3 ~ 20

    def bowl(N, k_e, k_c):
        x = np.log(np.asarray(N, float))
        return a + c * (x - x0) ** 2 + 0 * b

    trials = validate(tradeoff_trials(bowl, budgets=(1e4,), noise=1e-4, axes=False))
    fit = fit_budget_parabola(trials, n_boot=50)
    assert fit.c == pytest.approx(c, rel=0.02)
    assert fit.N_star == pytest.approx(np.exp(x0), rel=0.02)
    assert fit.vertex == pytest.approx(np.exp(x0), rel=0.02)
    assert fit.L_star == pytest.approx(a, rel=0.01)
    assert fit.interior and fit.interior_fraction == 1.0
    assert fit.c_ci95[0] < fit.c < fit.c_ci95[1]
    # the test split is read at the validation optimum (the synthetic test loss is 1 % higher)
    assert fit.L_star_test == pytest.approx(1.01 * fit.L_star, rel=1e-3)
    k_c = fit.k_c
    assert fit.k_e_star == pytest.approx(1e4 / fit.N_star - k_c, rel=1e-9)
    np.testing.assert_allclose(fit.predict(fit.data["N"]), fit.data["val_mean"], rtol=2e-3)


@pytest.mark.parametrize(("rng_seed", "noise"), [(0, 0.03), (1, 0.03), (2, 0.005), (3, 0.005)])
def test_flat_or_noise_only_table_never_supports_a_claim(rng_seed, noise):
    trials = tradeoff_trials(flat(1.5), noise=noise, rng_seed=rng_seed, n_random=8)
    got = decisions(trials)["core"]
    assert "supported" not in got.values(), got
    assert got["optimum_moves"] == "not_testable"


def test_decisions_follow_the_data_not_the_sweep_name():
    planted = tradeoff_trials(exact_law_surface, sweep="flat_sweep", rng_seed=3)
    flat_table = tradeoff_trials(flat(1.5), sweep="planted", rng_seed=3)
    assert {decisions(planted)["core"][n] for n in LAW_CLAIMS} == {"supported"}
    assert "supported" not in decisions(flat_table)["core"].values()


def test_rising_axes_and_a_concave_budget_curve_are_contradicted():
    def wrong_way(N, k_e, k_c):
        x = np.log(np.asarray(N, float))
        return 1.0 + 0.02 * x + 0.02 * np.log(k_e) + 0.02 * np.log(k_c) - 0.05 * (x - 3.0) ** 2

    got = decisions(tradeoff_trials(wrong_way, budgets=(3e3, 1e4, 3e4), rng_seed=1))["core"]
    assert got["monotone_k_e"] == got["monotone_k_c"] == "contradicted"
    assert got["interior_optimum"] == "contradicted"
    assert got["optimum_moves"] == got["scaling_law"] == "not_testable"


def test_budgets_not_below_the_input_blind_loss_by_3_se_are_not_testable():
    near_blind = flat(INPUT_BLIND["loss"] + 0.02)
    got = decisions(tradeoff_trials(near_blind, noise=0.02))["core"]
    assert set(got.values()) == {"not_testable"}
    [block] = decide_claims(validate(tradeoff_trials(near_blind, noise=0.02)), n_boot=N_BOOT)
    assert "not learned" in block.claims["interior_optimum"].note
    assert (block.budgets["learned"] == False).all()  # noqa: E712 (a value, not identity)


def test_the_3_se_rule_on_hand_made_seeds():
    rows = tradeoff_trials(flat(2.0), budgets=(), seeds=(0, 1, 2, 3), noise=0.0)
    rows = validate(rows[rows["slice"] == "axis_N"].reset_index(drop=True))
    blind = INPUT_BLIND["loss"]
    spread = np.array([-1.0, -1.0, 1.0, 1.0])  # sample sd 2/sqrt(3), SE = 1/sqrt(3)
    se = 1.0 / np.sqrt(3.0)
    for gap_in_se, expected in ((3.2, True), (2.8, False)):
        df = rows.copy()
        for _, g in df.groupby("N"):
            for i, d in zip(g.index, spread, strict=True):
                df.loc[i, "final_val_loss"] = blind - gap_in_se * se * 0.01 + 0.01 * d
        table = seed_table(df)
        ok, why = learned(table, np.arange(len(table.points)))
        assert ok is expected, why


def test_table_without_final_losses_or_baseline_falls_back_and_says_so():
    trials = tradeoff_trials(rng_seed=2)
    old = trials.drop(
        columns=[c for c in trials.columns if c.startswith(("final_", "input_blind"))]
    )
    [block] = decide_claims(validate(old), n_boot=N_BOOT)
    assert block.loss_columns == {"val": "val_loss", "test": "test_loss"}
    assert np.isnan(block.input_blind["val_loss"])
    for claim in block.claims.values():
        assert "best-over-checkpoints" in claim.note and "baseline unknown" in claim.note
    assert block.claims["monotone_N"].decision == "supported"


def test_diverged_seed_enters_as_the_input_blind_loss_and_is_flagged():
    trials = validate(tradeoff_trials(budgets=(1e4,), axes=False, seeds=(0, 1, 2)))
    i = trials.index[0]
    pid = trials.loc[i, "point_id"]
    ok_losses = trials.loc[(trials["point_id"] == pid) & (trials.index != i), "final_val_loss"]
    trials.loc[i, ["status", "final_val_loss", "final_test_loss"]] = ["diverged", np.nan, np.nan]
    table = seed_table(trials)
    j = int(np.flatnonzero(table.points["point_id"] == pid)[0])
    assert table.points.loc[j, "n_diverged"] == 1 and table.points.loc[j, "n_seeds"] == 3
    assert table.means("val")[j] == pytest.approx((ok_losses.sum() + INPUT_BLIND["loss"]) / 3)


def test_seeds_only_bootstrap_keeps_every_point_and_has_the_unbiased_variance():
    trials = validate(tradeoff_trials(budgets=(1e4,), seeds=(0, 1, 2), noise=0.05))
    table = seed_table(trials)
    boot = table.resample_means(4000, seed=1)
    assert boot["val"].shape == (4000, len(table.points)) and np.isfinite(boot["val"]).all()
    seeds = table.losses["val"][0]
    assert boot["val"][:, 0].mean() == pytest.approx(seeds.mean(), abs=3e-3)
    assert boot["val"][:, 0].var() == pytest.approx(seeds.var(ddof=1) / 3, rel=0.1)
    # the same seed draw is used for both splits (pairs stay paired)
    dev_val = boot["val"][:, 0] - table.means("val")[0]
    dev_test = boot["test"][:, 0] - table.means("test")[0]
    moved = np.abs(dev_val) > 1e-9
    np.testing.assert_allclose(dev_test[moved] / dev_val[moved], 1.01, rtol=1e-6)


def test_claims_json_has_one_block_per_budget_kind(tmp_path):
    core = tradeoff_trials(rng_seed=4)
    total = tradeoff_trials(rng_seed=5, budget_kind="total", axes=False)
    blocks = decide_claims(validate(pd.concat([core, total], ignore_index=True)), n_boot=N_BOOT)
    path = write_claims_json(blocks, tmp_path / "claims.json")
    data = json.loads(path.read_text())
    assert [b["budget_kind"] for b in data["blocks"]] == ["core", "total"]
    for b in data["blocks"]:
        assert set(b["claims"]) == set(CLAIM_NAMES)
        assert b["input_blind"]["loss"] == pytest.approx(INPUT_BLIND["loss"])
        for c in b["claims"].values():
            assert c["decision"] in DECISIONS and isinstance(c["n"], int)
            assert c["ci95"] is None or len(c["ci95"]) == 2
    # the axis slices join both blocks
    assert data["blocks"][1]["claims"]["monotone_N"]["decision"] == "supported"


def test_parabola_refuses_several_budgets_or_too_few_points():
    trials = validate(tradeoff_trials(budgets=(1e4, 1e5), axes=False))
    with pytest.raises(FitError, match=r"column 'budget' holds \[10000.0, 100000.0\]"):
        fit_budget_parabola(trials)
    few = validate(tradeoff_trials(budgets=(1e4,), d_m_values=(1, 2, 4), axes=False))
    with pytest.raises(FitError, match="no k_c has 4 distinct N"):
        fit_budget_parabola(few)
    assert power_law_surface(10, 100, 16) > power_law_surface(100, 100, 16)


def test_report_opens_with_the_claims_and_writes_claims_json(tmp_path):
    from analysis.report.build import build_report

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    tradeoff_trials(exact_law_surface, rng_seed=6, n_random=6).to_parquet(sweep / "results.parquet")
    path = build_report(sweep, tmp_path / "out", n_boot=4)
    page = path.read_text()
    first_h2 = page.index("<h2>")
    assert page[first_h2:].startswith("<h2>Claims (docs/science.md §8)</h2>")
    data = json.loads((tmp_path / "out" / "claims.json").read_text())
    [block] = data["blocks"]
    assert block["n_boot"] == 50  # raised to the minimum the claims' intervals need
    assert {block["claims"][n]["decision"] for n in LAW_CLAIMS} == {"supported"}
    supported = sum(c["decision"] == "supported" for c in block["claims"].values())
    assert page.count("<b>supported</b>") == supported
    for name in ("parabolas", "optimum_moves", "axes"):
        assert (tmp_path / "out" / "figures" / f"claims_shd-default_core_{name}.png").stat().st_size


def test_one_budget_that_did_not_learn_is_left_out_and_the_others_still_decide():
    trials = validate(tradeoff_trials(rng_seed=8))
    P_bad = sorted(trials["budget"].dropna().unique())[2]
    bad = trials["budget"] == P_bad
    for col in ("final_val_loss", "final_test_loss"):
        # seeds 0, 1, 2 at -1 %, 0, +1 % around the input-blind loss: every mean equals it
        trials.loc[bad, col] = INPUT_BLIND["loss"] * (1 + 0.01 * (trials.loc[bad, "seed"] - 1))
    [block] = decide_claims(trials, n_boot=N_BOOT)
    row = block.budgets.set_index("budget").loc[P_bad]
    assert row["learned"] == False and row["decision"] == "not_testable"  # noqa: E712
    assert "not learned" in row["note"]
    assert P_bad not in block.parabolas
    interior = block.claims["interior_optimum"]
    assert interior.decision == "supported" and interior.n == 6
    assert block.claims["scaling_law"].n == 6


def test_random_points_below_the_law_contradict_the_scaling_law():
    trials = validate(tradeoff_trials(rng_seed=9, n_random=10))
    rnd = trials["slice"] == "random"
    for col in ("final_val_loss", "final_test_loss"):
        trials.loc[rnd, col] *= 0.7  # 30 % better than the budget optima allow
    [block] = decide_claims(trials, n_boot=N_BOOT)
    law = block.claims["scaling_law"]
    assert law.decision == "contradicted", law.note
    assert "random-slice point(s) lie below the law" in law.note
    assert law.details["random_fraction_below"] > 0.5
    assert law.details["random_largest_gap"] > 0.2


def test_a_single_seed_per_point_gives_no_interval_and_decides_nothing():
    got = decisions(tradeoff_trials(seeds=(0,), rng_seed=10))["core"]
    assert set(got.values()) == {"not_testable"}, got
