"""Every command line fails on bad input with one stderr line, a documented exit code, no traceback.

The cases (tests/cli_cases.py) run as subprocesses; none trains or compiles anything, since
validation comes before any expensive work. docs/cli.md's table must be what they print.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cli_cases
import numpy as np
import pytest

from elm_jax import cli
from elm_jax.neuron import convert

REPO = cli_cases.REPO
BUDGET_1 = ["elm_jax.budget", "points", "--budget", "1", "--task", "shd_adding"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    cli_cases.make_inputs(tmp)
    return str(tmp), cli_cases.run_all(str(tmp))


@pytest.mark.parametrize(
    "case", cli_cases.CASES, ids=[f"{c.module}:{c.args[:50]}" for c in cli_cases.CASES]
)
def test_bad_input_gives_one_line_naming_it_and_the_documented_code(results, case):
    tmp, by_case = results
    result = by_case[case]
    lines = cli_cases.stderr_lines(result)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    for fragment in case.expect:
        assert fragment.replace("{tmp}", tmp) in lines[0], lines[0]
    assert result.code == case.code, (result.code, lines[0])
    assert result.stdout == "", result.stdout  # failed before producing anything


def test_every_message_starts_with_its_program_name(results):
    _, by_case = results
    for case, result in by_case.items():
        (line,) = cli_cases.stderr_lines(result)
        program, _, rest = line.partition(": error: ")
        assert program.split()[0] == case.module and rest, line  # "elm_jax.budget points"


def test_docs_cli_table_is_what_the_cases_print(results):
    tmp, by_case = results
    table = cli_cases.render_table(by_case, tmp)
    documented = cli_cases.doc_table(REPO / "docs" / "cli.md")
    assert documented == table, (
        "docs/cli.md is out of date: .venv/bin/python tests/cli_cases.py --write docs/cli.md"
    )


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "args,how,message",
    [
        (BUDGET_1, "flag", "budget=1 is below the smallest point"),
        (BUDGET_1, "env", "budget=1 is below the smallest point"),
        (["sweeps.run", "--sweep", "tiny:steps=2.5", "--dir", "unused"], "flag", "steps=2.5"),
    ],
)
def test_debug_flag_or_environment_shows_the_traceback(args, how, message):
    debug = {"ELM_DEBUG": "1"} if how == "env" else {"ELM_DEBUG": ""}
    proc = _run(*args, *(["--debug"] if how == "flag" else []), env=debug)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and message in proc.stderr


def test_unexpected_error_is_exit_code_1_naming_the_exception(capsys):
    def broken(argv):
        raise RuntimeError(f"boom {argv}")

    assert cli.run(broken, ["x"], prog="prog") == cli.EXIT_INTERNAL
    (line,) = capsys.readouterr().err.splitlines()
    assert line == "prog: error: internal error RuntimeError: boom ['x'] (rerun with --debug)"


def test_exit_codes_follow_the_convention():
    from elm_jax.data.common import ChecksumError, DataCorruptError, DataNotFoundError

    assert cli.exit_code(ValueError("x")) == 2
    assert cli.exit_code(FileNotFoundError("x")) == 2
    assert cli.exit_code(cli.MissingDependencyError("x")) == 3
    assert cli.exit_code(DataNotFoundError("x")) == 4
    assert cli.exit_code(DataCorruptError("x")) == 4
    assert cli.exit_code(ChecksumError("x")) == 4  # a subclass
    assert cli.exit_code(KeyError("x")) == 1


def test_convert_state_not_matching_config_names_both_files(tmp_path, monkeypatch, capsys):
    config = {"num_input": 8, "num_output": 2, "num_memory": 3}
    (tmp_path / "model_config.json").write_text(json.dumps(config))
    (tmp_path / "model.pt").write_bytes(b"")
    state = {"_proto_w_s": np.zeros(8), "w_y.weight": np.zeros((2, 3))}
    monkeypatch.setattr(convert, "_read_torch_state", lambda path: state)
    rc = convert.main([str(tmp_path / "model.pt"), str(tmp_path / "out.npz")])
    (line,) = capsys.readouterr().err.splitlines()
    assert rc == 2 and not (tmp_path / "out.npz").exists()
    assert f"{tmp_path / 'model.pt'} does not fit --config {tmp_path / 'model_config.json'}" in line
    assert "missing" in line and "_proto_tau_m" in line


def test_make_report_fails_when_the_report_fails(tmp_path):
    (tmp_path / "results.parquet").write_bytes(b"not parquet")
    proc = subprocess.run(
        ["make", "--no-print-directory", "-o", "install", "report", f"SWEEP_DIR={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert f"{tmp_path}/results.parquet: not a readable parquet file" in proc.stderr


def test_check_flags_validate_good_commands_without_training(tmp_path):
    main = _run("elm_jax.main", "--config=elm_jax/configs/smoke.py:N=4,seeds=0,1", "--check")
    assert main.returncode == 0, main.stderr
    config = json.loads(main.stdout)
    assert config["model"]["num_neurons"] == 4 and config["seeds"] == [0, 1]
    sweep = _run(
        "sweeps.run", "--sweep", "tiny:steps=4,seeds=0,1,2", "--dir", str(tmp_path / "s"), "--check"
    )
    assert sweep.returncode == 0, sweep.stderr
    assert sweep.stdout.strip() == "tiny:steps=4,seeds=0,1,2: 3 points x 3 seeds"
    assert not (tmp_path / "s").exists()


def test_cases_cover_every_entry_point():
    modules = {c.module for c in cli_cases.CASES}
    assert modules == {
        "elm_jax.main",
        "sweeps.run",
        "sweeps.merge",
        "elm_jax.budget",
        "analysis.report",
        "elm_jax.neuron.convert",
        "elm_jax.data.audio_to_shd",
        "elm_jax.data.prepare",
    }
    assert Path(REPO / "docs" / "cli.md").is_file()
