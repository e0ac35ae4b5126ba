"""Sequential sweeps (sweeps/sequential.py) on the law sweep's real definition with a planted
trainer (tests/sweep_fakes.py: law_train): each budget placed from the budgets before it, a pure
function of the records (a re-run and an interrupted run place the same points), and
predictions.json written once, before the held-out budget trains, never after."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.claims.placement import budget_optima, grid_candidates, place_budget
from analysis.claims.predictions import PredictionError, make_predictions, write_predictions
from analysis.load import load_sweeps
from sweeps import run
from sweeps.configs import law

FAKE = "tests.sweep_fakes:law_train"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGETS = tuple(law.get_config().budgets)
SPREAD = law.get_config().spread


def sweep(directory, train_fn=FAKE, *extra) -> int:
    return run.main(
        ["--sweep", "law", "--dir", str(directory), "--train-fn", train_fn, "--quiet", *extra]
    )


@pytest.fixture(scope="module")
def law_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("law")
    assert sweep(directory) == 0
    return directory


def placements(directory) -> list[dict]:
    return json.loads((directory / "placement.json").read_text())["budgets"]


def test_each_later_budget_is_placed_around_the_optimum_its_predecessors_extrapolate(law_dir):
    got = placements(law_dir)
    assert [b["budget"] for b in got] == list(BUDGETS)
    assert [b["rule"] for b in got[:2]] == ["fixed wide grid"] * 2
    assert [b["held_out"] for b in got[2:]] == [False, False, False, True]
    for b in got[2:]:
        assert b["rule"] == "around the extrapolated N*", b["reason"]
        assert max(b["law"]["budgets"]) < b["budget"]  # only the budgets before it
        N = [c["N"] for c in b["chosen"]]
        assert len(N) == 5 and N == sorted(set(N))
        # 5 targets evenly in log N over x2.83 either side; d_m is an integer, so each point
        # is the nearest network (within a factor 1.5 of its target here)
        np.testing.assert_allclose(b["targets"], b["N_star"] * SPREAD ** np.linspace(-1, 1, 5))
        assert all(abs(np.log(n / t)) < np.log(1.5) for n, t in zip(N, b["targets"], strict=True))
        assert len(b["length_check"]) == 2
    trials = load_sweeps(law_dir)
    budget = trials[trials["slice"] == "budget"]
    fixed_seeds = set(law.get_config().fixed_seeds)
    assert len(fixed_seeds) == 8
    for i, b in enumerate(got):
        rows = budget[budget["budget"] == b["budget"]]
        assert sorted(rows["N"].unique()) == sorted(c["N"] for c in b["chosen"])
        # the two fixed-grid budgets train the sweep's fixed_seeds, the placed ones its seeds
        assert (rows["k_c"] == 16).all()
        assert set(rows["seed"]) == (fixed_seeds if i < 2 else {0, 1, 2, 3}), b["budget"]
    length = trials[trials["slice"] == "length"]
    assert set(length["steps"]) == {2000} and set(length["seed"]) == {0, 1}
    assert len(length.groupby(["point_id", "budget"], dropna=False)) == 2 * len(BUDGETS) + 6


def test_the_placement_is_recomputed_from_the_records_of_the_budgets_before_it(law_dir):
    trials = load_sweeps(law_dir)
    for i, b in enumerate(placements(law_dir)[2:], start=2):
        optima, notes = budget_optima(trials, BUDGETS[:i])
        candidates = grid_candidates(b["budget"], 16, range(1, 49), 0.08)
        again = place_budget(b["budget"], candidates, optima, notes, spread=SPREAD, k_c=16)
        assert [list(c) for c in again.chosen] == [[c["d_m"], c["N"]] for c in b["chosen"]]
        assert again.reason == b["reason"]


def test_the_design_holds_on_p_total_too(law_dir):
    trials = load_sweeps(law_dir)
    budget = trials[trials["slice"] == "budget"]
    median = budget.groupby("budget")["P_total"].median()
    fitted, held = median.iloc[:-1], median.iloc[-1]
    assert len(fitted) >= 5 and np.log10(fitted.iloc[-1] / fitted.iloc[0]) >= 1.5
    assert held >= 3 * fitted.iloc[-1]


def test_predictions_were_written_before_the_held_out_budget_trained(law_dir):
    seen = pd.DataFrame(json.loads((law_dir / "seen.json").read_text()))
    held = seen["P_core"] > 0.9 * BUDGETS[-1]
    assert seen.loc[held, "predictions"].all()
    before = (seen["P_core"] < 0.9 * BUDGETS[-2]) & (seen["steps"] == 1000)
    assert not seen.loc[before, "predictions"].any()
    written = json.loads((law_dir / "predictions.json").read_text())
    assert written["held_out_budget"] == BUDGETS[-1]
    assert written["fitted_budgets"] == list(BUDGETS[:-1])
    assert written["placement"]["held_out"] is True
    for key in ("power_law", "N_star_extrapolated", "naive", "information_model"):
        assert written[key], key
    assert written["naive"]["budget"] == BUDGETS[-2]


def test_a_rerun_trains_nothing_and_rewrites_no_prediction(law_dir):
    before = sorted(os.listdir(law_dir / "fake_calls"))
    stat = (law_dir / "predictions.json").stat()
    placed = (law_dir / "placement.json").read_text()
    assert sweep(law_dir) == 0
    assert sorted(os.listdir(law_dir / "fake_calls")) == before
    assert (law_dir / "predictions.json").stat().st_mtime_ns == stat.st_mtime_ns
    assert (law_dir / "placement.json").read_text() == placed


def test_an_interrupted_sweep_resumes_to_the_same_points_and_predictions(law_dir, tmp_path):
    directory = tmp_path / "killed"
    cmd = [sys.executable, "-m", "sweeps.run", "--sweep", "law", "--dir", str(directory),
           "--train-fn", "tests.sweep_fakes:law_train_until", "--quiet"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == -9, done.stderr
    assert not (directory / "predictions.json").exists()
    assert sweep(directory) == 0
    assert placements(directory) == placements(law_dir)
    ids = {d: set(load_sweeps(d)["trial_id"]) for d in (directory, law_dir)}
    assert ids[directory] == ids[law_dir]
    a, b = (json.loads((d / "predictions.json").read_text()) for d in (directory, law_dir))
    assert a.pop("created_utc") and b.pop("created_utc")
    assert a == b


def test_no_prediction_is_made_or_written_once_the_held_out_budget_has_results(law_dir, tmp_path):
    trials = load_sweeps(law_dir)
    with pytest.raises(PredictionError, match="already holds trials of budget >= the held-out"):
        make_predictions(trials, BUDGETS[-1])
    earlier = trials[~((trials["slice"] == "budget") & (trials["budget"] == BUDGETS[-1]))]
    made = make_predictions(earlier, BUDGETS[-1], n_boot=20, model_boot=5)
    held_ids = trials.loc[trials["budget"] == BUDGETS[-1], "trial_id"]
    with pytest.raises(PredictionError, match="already have records"):
        write_predictions(tmp_path / "p.json", made, held_ids)
    assert not (tmp_path / "p.json").exists()
    write_predictions(tmp_path / "p.json", made)
    with pytest.raises(PredictionError, match="never rewritten"):
        write_predictions(tmp_path / "p.json", made)
    # a copy of the sweep without its predictions: the rerun cannot write them any more
    copy = tmp_path / "copy"
    shutil.copytree(law_dir, copy)
    os.chmod(copy / "predictions.json", 0o644)
    os.unlink(copy / "predictions.json")
    assert sweep(copy) == 0
    assert not (copy / "predictions.json").exists()
    assert "no prediction can be written after the result" in (copy / "sweep.log").read_text()


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        (["--shard", "0/2"], "--shard cannot be used with a sequential sweep"),
        (["--add-points"], "--add-points cannot be used with a sequential sweep"),
        (["--retry-failed"], "--retry-failed cannot be used with a sequential sweep"),
    ],
)
def test_a_sequential_sweep_refuses_flags_that_would_change_its_placement(
    tmp_path, capsys, flag, words
):
    assert sweep(tmp_path / "d", FAKE, *flag) == 2
    assert words in capsys.readouterr().err


def test_the_report_scores_the_written_predictions_and_checks_the_training_length(
    law_dir, tmp_path
):
    from analysis.claims.decide import decide_claims
    from analysis.claims.predictions import read_predictions
    from analysis.report.law import law_section, length_section

    trials = load_sweeps(law_dir)
    blocks = decide_claims(trials, n_boot=50)
    page = law_section(blocks, trials, [law_dir], tmp_path, lambda p, alt: f"<img {alt}>",
                       n_boot=50, study_replicates=0)  # fmt: skip
    _, digest = read_predictions(law_dir / "predictions.json")
    assert page.startswith("<h2>Scaling law")
    assert (
        digest in page and "L*: power law" in page and "L*: naive (largest fitted budget)" in page
    )
    assert "the same figure as written" in page
    length = length_section(blocks, trials, n_boot=50)
    assert length.startswith("<h2>Training length</h2>") and "1000 and 2000 steps" in length
    assert "holds" in length
    for name in ("law_shd-default_50ms_core.png", "law_model_shd-default_50ms_core.png"):
        assert (tmp_path / name).stat().st_size > 0
    law = blocks[0].claims["scaling_law"]
    assert law.decision == "supported", law.note
    assert law.details["held_out_budget"] == BUDGETS[-1]


def test_a_sweep_with_every_budget_fixed_adds_only_elm_length_points_and_predicts_nothing(
    tmp_path,
):
    """The enwiki sweep: every budget on the fixed grid with its LSTM and GRU; each budget's two
    best ELM points (never a unit) train again at 2x once it has trained; no predictions.json."""
    code = run.main(
        ["--sweep", "enwiki:budgets=[1e3,3e3]", "--dir", str(tmp_path), "--train-fn", FAKE,
         "--quiet"]
    )  # fmt: skip
    assert code == 0
    assert not (tmp_path / "predictions.json").exists()
    got = placements(tmp_path)
    assert [b["rule"] for b in got] == ["fixed wide grid"] * 2
    trials = load_sweeps(tmp_path)
    budget = trials[trials["slice"] == "budget"]
    assert set(budget["arch"]) == {"elm", "lstm", "gru"}
    for b in got:
        elm = budget[(budget["budget"] == b["budget"]) & (budget["arch"] == "elm")]
        assert sorted(elm["N"].unique()) == sorted(c["N"] for c in b["chosen"])
        means = elm.groupby(["N", "d_m"])["final_val_loss"].mean().sort_values()
        assert [(c["N"], c["d_m"]) for c in b["length_check"]] == list(means.index[:2])
    length = trials[trials["slice"] == "length"]
    assert set(length["arch"]) == {"elm"} and set(length["seed"]) == {0, 1}
    # no held-out budget, so no scaling-law section: the length check is its own section
    from analysis.report.build import build_report

    page = build_report(tmp_path, tmp_path / "report", n_boot=50, study_replicates=0).read_text()
    assert "<h2>Training length</h2>" in page and "1000 and 2000 steps" in page
    assert "Scaling law (docs/science.md" not in page
    assert "ELM networks against simple units of the same budget" in page
