"""Sweeps check every trial's full trainer config before the first one trains."""

from __future__ import annotations

import os

import pytest
from train_helpers import lm_config

from elm_jax import config_check
from elm_jax import data as data_lib
from elm_jax.data.shd import default as shd_default
from elm_jax.train.loop import train_and_evaluate
from sweeps import engine
from sweeps import run as sweep_run
from sweeps.points import SweepPoint


@pytest.fixture
def no_data(monkeypatch):
    """Validation must not read, build or download any data."""

    def refuse(*args, **kwargs):
        raise AssertionError("validation touched the data")

    monkeypatch.setattr(data_lib, "load", refuse)
    monkeypatch.setattr(shd_default, "build_shd_default", refuse)


def _problems(spec: str) -> str:
    loaded = sweep_run.load_sweep(spec)
    with pytest.raises(engine.SweepValidationError) as err:
        engine.validate_sweep(loaded.config.train, loaded.points, list(loaded.config.seeds))
    return str(err.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("tiny:steps=0", ["config.num_train_steps=0 must be an integer >= 1 [all 3 points]"]),
        (
            "default:bin_ms=0",
            [
                "config.data.bin_ms must be a positive number",
                f"[all {len(sweep_run.load_sweep('default').points)} points]",
            ],
        ),
        ("tiny:bin_ms=3", ["config.data.bin_ms=3.0 must divide the 1000 ms digit"]),
        (
            "default:data=enwik8",
            [
                "config.model.task='classification' does not fit the data 'enwik8' (task='lm')",
                "config.model.input_dim=700 does not fit the data 'enwik8' (input_dim=256)",
                "config.model.num_classes=19 does not fit the data 'enwik8' (num_classes=256)",
            ],
        ),
    ],
)
def test_bad_sweep_is_refused_with_every_problem(spec, expected, no_data):
    message = _problems(spec)
    assert "nothing was trained" in message
    for text in expected:
        assert message.count(text) == 1, (text, message)  # listed once, not once per trial


def test_all_problems_of_all_trials_listed_once(no_data):
    loaded = sweep_run.load_sweep("tiny")
    train = loaded.config.train
    train.num_train_steps = 0
    train.optim.learning_rate = -1.0
    train.optim.name = "rmsprop"
    train.data.batch_size = 0
    train.data.name = "shd_adding_defualt"
    points = list(loaded.points)
    model = dict(points[0].model, num_memory=0)
    bad = SweepPoint(**{**points[0].__dict__, "model": tuple(model.items()), "d_m": 0})
    with pytest.raises(engine.SweepValidationError) as err:
        engine.validate_sweep(train, [*points, bad], [0, 1])
    message = str(err.value)
    for text in (
        "config.num_train_steps=0",
        "optim.name='rmsprop' is not a known optimizer",
        "config.data.batch_size=0 must be >= 1",
        "config.data.name='shd_adding_defualt' is not a known dataset; valid: shd, shd_adding",
    ):
        assert message.count(text) == 1, (text, message)
    assert f"[all {len(points) + 1} points]" in message
    # The point-specific problem names only that point.
    assert f"config.model.num_memory=0 is invalid: must be >= 1 [point {bad.describe()}]" in message
    assert "problem(s) over 4 points x 2 seeds" in message
    assert isinstance(err.value, ValueError)


def test_valid_sweeps_pass_without_touching_data(no_data):
    for spec in ("tiny", "default", "tiny:data=shd_adding,data_dir=/nonexistent"):
        loaded = sweep_run.load_sweep(spec)
        assert engine.validate_sweep(loaded.config.train, loaded.points, [0, 1]) is None


def test_cli_refuses_before_writing_a_manifest(tmp_path, capsys, no_data):
    directory = tmp_path / "sweep"
    code = sweep_run.main(["--sweep", "tiny:steps=0", "--dir", str(directory), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "config.num_train_steps=0 must be an integer >= 1" in err
    assert not (directory / "manifest.json").exists()
    assert not os.listdir(directory / "trials")


def test_trainer_uses_the_same_check_before_touching_the_workdir(tmp_path, no_data):
    config = lm_config(**{"data.seq_len": 0, "optim.learning_rate": 0.0})
    problems, checked = config_check.config_problems(config)
    assert checked is None
    assert problems == [
        "optim.learning_rate=0.0 must be > 0",
        "config.data.seq_len must be a positive integer, got 0",
    ]
    with pytest.raises(
        ValueError, match="optim.learning_rate=0.0 must be > 0; config.data.seq_len"
    ):
        train_and_evaluate(config, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()
    problems, checked = config_check.config_problems(lm_config())
    assert problems == [] and checked.model.task == "lm" and checked.learning_rates == [1e-2]


def test_carry_state_on_a_classification_model_is_caught_statically(no_data):
    loaded = sweep_run.load_sweep("tiny")
    loaded.config.train.data.carry_train_state = True
    message = str(pytest.raises(engine.SweepValidationError, engine.validate_sweep,
                                loaded.config.train, loaded.points).value)  # fmt: skip
    assert "config.data.carry_train_state=True needs config.model.task='lm'" in message


def test_kernel_flag_sets_every_trials_kernel_and_refuses_unknown_names(tmp_path, capsys, no_data):
    parser_args = ["--sweep", "tiny", "--dir", str(tmp_path / "s"), "--check"]
    loaded = sweep_run.check_sweep(sweep_run.parse_args([*parser_args, "--kernel", "xla"]))
    assert loaded.config.train.model.kernel == "xla"
    with pytest.raises(SystemExit) as stop:
        sweep_run.parse_args([*parser_args, "--kernel", "fast"])
    assert stop.value.code == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err
