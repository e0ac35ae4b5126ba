"""The HTML report and the notebook run on the shipped fixture; small sweeps degrade to notes."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from analysis.report.build import build_report, main
from analysis.report.pipeline import analyse
from analysis.synthetic.trials import synthetic_trials

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "sweep_small"
NOTEBOOK = ROOT / "analysis" / "notebooks" / "pareto_frontier.ipynb"


def test_report_on_the_fixture_is_self_contained_with_tables_fits_and_figures(tmp_path):
    main([str(FIXTURE), "--out", str(tmp_path), "--n-boot", "4"])
    page = (tmp_path / "report.html").read_text()
    # claims: parabolas, N*/k_e*, axis slices; the scaling law's held-out test; then tradeoffs,
    # allocation, 3 frontiers, baselines. The fixture's held-out parabola has no decided
    # minimum, so the information model is not testable and not drawn against the parabolas
    # (tests/test_sweep_sequential.py checks that figure on the law sweep)
    assert page.count('src="data:image/png;base64,') == 10
    assert "has no decided minimum" in page
    assert page.index("Claims (docs/science.md §8)") < page.index("Scaling law (docs/science.md")
    assert page.index("Claims (docs/science.md §8)") < page.index("Optimum per budget")
    assert (tmp_path / "claims.json").is_file()
    assert 'src="http' not in page and "<script" not in page
    for heading in (
        "Optimum per budget",
        "Scaling law",
        "Information-theoretic model",
        "What data this section used",
        "Held-out largest budget",
    ):
        assert heading in page
    assert "shd-default" in page and "val_loss" in page
    assert "loss became NaN at step 120" in page  # the diverged trial is reported
    assert re.search(r"95% bootstrap interval \(4 resamples\)", page)
    assert len(list((tmp_path / "figures").glob("*.png"))) == 10


def test_make_sweep_sized_sweep_reports_what_it_cannot_fit_instead_of_failing(tmp_path):
    # the shape of `make sweep`: 3 budgets, 3 ELM points each at one k_c, 2 seeds, no baselines
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    table = synthetic_trials(
        budgets=(1e3, 3e3, 1e4),
        d_m_values=(1, 2, 4),
        k_c_values=(16,),
        baseline=None,
        axis_points=False,
    )
    table.to_parquet(sweep / "results.parquet")
    page = build_report(sweep, n_boot=3).read_text()
    assert "0 degrees of freedom" in page
    assert "Leave-largest-budget-out validation not done" in page and "at least 4" in page
    assert "Information model not fitted" in page and "k_c takes a single value" in page
    assert (
        "Optimum per budget" in page and page.count("data:image/png;base64,") == 5
    )  # no baselines
    assert (sweep / "report" / "report.html").is_file()


@pytest.mark.parametrize(
    "budgets, expected",
    [((1e3,), "single budget"), ((1e3, 1e4), "2 distinct budgets but the law has 3 parameters")],
)
def test_too_small_sweeps_give_notes_naming_the_missing_data(budgets, expected):
    an = analyse(synthetic_trials(budgets=budgets, baseline=None, axis_points=False), n_boot=2)
    assert an.power_law is None and an.boot is None
    assert any(expected in n for n in an.notes), an.notes


def test_notebook_runs_clean_on_the_fixture():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert 'SWEEP_DIR = "../../tests/fixtures/sweep_small"' in nb.cells[1].source
    nb.cells[1].source = nb.cells[1].source.replace("N_BOOT = 20", "N_BOOT = 3")
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5
    text = "".join(o.get("text", "") for o in outputs)
    assert "interval" in text and "leave-largest-out" in text


def test_sweep_where_every_trial_failed_reports_that_nothing_could_be_fitted(tmp_path):
    table = synthetic_trials(budgets=(1e3, 1e4), baseline=None, axis_points=False)
    table = table.assign(status="failed", reason="out of memory", val_loss=float("nan"))
    table.to_parquet(tmp_path / "results.parquet")
    page = build_report(tmp_path, out_dir=tmp_path / "out", n_boot=2).read_text()
    assert "No ok elm points in a budget slice" in page
    assert f"{len(table)} trial(s) not ok were excluded" in page and "out of memory" in page


def test_command_line_names_the_problem_for_a_bad_sweep_directory(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no results.parquet and no trials/*.json" in capsys.readouterr().err


def test_points_not_better_than_the_input_blind_baseline_are_named(tmp_path):
    from analysis.report.claims import baseline_section, points_vs_baseline

    trials = synthetic_trials(seeds=(0, 1, 2), n_diverged=0)
    blind = float(trials["final_val_loss"].median())  # half the points at or above it
    trials["input_blind_val_loss"] = blind
    frame = points_vs_baseline(trials, "final_val_loss")
    ok = trials[trials.status == "ok"]
    assert len(frame) == len(
        ok.groupby(["slice", "budget", "arch", "N", "d_m", "k_c"], dropna=False)
    )
    means = frame["loss"].to_numpy()
    assert (frame["learned"] == (means < blind - 3 * frame["se"].to_numpy())).all()
    assert frame["learned"].any() and not frame["learned"].all()
    text = baseline_section(trials, "final_val_loss")
    assert f"{frame['learned'].sum()} of {len(frame)} architecture points" in text
    assert "Not better than the input-blind baseline" in text
    # A budget where nothing learned is named; with every point learned, no table.
    trials["input_blind_val_loss"] = float(trials["final_val_loss"].min()) - 1.0
    assert "no point is better" in baseline_section(trials, "final_val_loss")
    trials["input_blind_val_loss"] = float(trials["final_val_loss"].max()) + 1.0
    text = baseline_section(trials, "final_val_loss")
    assert "Not better" not in text and f"{len(frame)} of {len(frame)}" in text


def test_convergence_section_names_points_still_falling(tmp_path):
    from analysis.report.claims import convergence_frame, convergence_section

    trials = synthetic_trials(seeds=(0, 1, 2), n_diverged=0)
    assert "no validation history" in convergence_section(
        trials.drop(columns="val_last_drop", errors="ignore")
    )
    trials["steps"] = 1000
    trials["best_step"] = 1000
    trials["val_last_drop_steps"] = 250
    # Points with an even N were still falling by 0.05 +- 0.001; the others were flat.
    noise = (trials["seed"].to_numpy() - 1) * 0.001
    trials["val_last_drop"] = (trials["N"] % 2 == 0) * 0.05 + noise
    frame = convergence_frame(trials)
    assert (frame["still_falling"] == (frame["N"] % 2 == 0)).all()
    assert frame["still_falling"].any() and not frame["still_falling"].all()
    text = convergence_section(trials)
    assert f"{int(frame['still_falling'].sum())} of {len(frame)} architecture points" in text
    assert "0.0500 nats" in text
