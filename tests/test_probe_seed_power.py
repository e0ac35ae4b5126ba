"""probes/seed_power.py: drawn seeds join the named budgets' ELM points only, each point
reaches the asked number of seeds with its recorded seeds kept, and the command prints one
decision rate per budget."""

import importlib.util
import json
import os

import numpy as np
import pytest

from analysis.load import load_sweeps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "sweep_small")


def _probe():
    spec = importlib.util.spec_from_file_location(
        "seed_power", os.path.join(ROOT, "probes", "seed_power.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_drawn_seeds_fill_only_the_named_budgets_points():
    probe = _probe()
    trials = load_sweeps(FIXTURE)
    out = probe.with_drawn_seeds(trials, [1000.0], 5, np.random.default_rng(0))
    drawn = out.iloc[len(trials) :]
    assert set(drawn["budget"]) == {1000.0} and set(drawn["slice"]) == {"budget"}
    assert set(drawn["arch"]) == {"elm"}
    at = out[(out["slice"] == "budget") & (out["budget"] == 1000.0) & (out["arch"] == "elm")]
    assert (at.groupby("point_id")["seed"].nunique() == 5).all()
    # the recorded rows are untouched and come first
    assert out.iloc[: len(trials)]["final_val_loss"].equals(trials["final_val_loss"])
    assert not drawn["trial_id"].isin(trials["trial_id"]).any()


def test_the_command_prints_a_rate_per_budget(capsys):
    probe = _probe()
    assert probe.main([FIXTURE, "--budgets", "1000,3000", "--seeds", "3", "--draws", "2",
                       "--n-boot", "50"]) == 0  # fmt: skip
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["budget"] for x in lines] == [1000.0, 3000.0]
    for x in lines:
        rates = {k: v for k, v in x.items() if k not in ("budget", "seeds", "draws")}
        assert sum(rates.values()) == pytest.approx(1.0)


def test_a_budget_the_sweep_lacks_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as err:
        _probe().main([FIXTURE, "--budgets", "777", "--seeds", "3"])
    assert err.value.code == 2
    assert "missing [777.0]" in capsys.readouterr().err
