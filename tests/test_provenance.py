"""Provenance: versions, git commit and dirtiness, backend and device, in summaries and records."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import metadata

import jax
import pandas as pd
import pytest
import train_helpers as th

import elm_jax
from elm_jax import provenance
from elm_jax.network import fused
from elm_jax.train.loop import train_and_evaluate
from sweeps import engine, run
from sweeps.points import make_trials

GIT = shutil.which("git")


@pytest.fixture(autouse=True)
def fresh_git_cache():
    provenance.git_state.cache_clear()
    yield
    provenance.git_state.cache_clear()


def _git(directory, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@e")  # fmt: skip
    return subprocess.run(
        ["git", "-C", str(directory), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    if GIT is None:
        pytest.skip("git is not installed: the checkout tests need it to build a repository")
    repo = tmp_path / "repo"
    package = repo / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "pkg/__init__.py")
    _git(repo, "commit", "-q", "-m", "first")
    return repo, package


def test_versions_backend_and_device_are_the_running_ones():
    out = provenance.collect()
    assert tuple(out) == provenance.FIELDS
    assert out["package_version"] == metadata.version("elm_jax") == elm_jax.__version__
    assert out["jax_version"] == jax.__version__
    assert out["flax_version"] == metadata.version("flax")
    assert out["optax_version"] == metadata.version("optax")
    assert out["backend"] == jax.default_backend() == "cpu"  # conftest: JAX_PLATFORMS=cpu
    assert out["device_kind"] == jax.devices()[0].device_kind
    quiet = provenance.collect(devices=False)
    assert quiet["backend"] is None and quiet["device_kind"] is None
    assert quiet["jax_version"] == jax.__version__


def test_git_commit_and_dirty_flag_of_a_checkout(checkout):
    repo, package = checkout
    head = _git(repo, "rev-parse", "HEAD")
    assert provenance.git_state(str(package)) == (head, False)
    (package / "notes.txt").write_text("untracked files do not make the tree dirty\n")
    provenance.git_state.cache_clear()
    assert provenance.git_state(str(package)) == (head, False)
    (package / "__init__.py").write_text("x = 2\n")
    provenance.git_state.cache_clear()
    assert provenance.git_state(str(package)) == (head, True)


def test_git_state_is_read_once_per_process(checkout, monkeypatch):
    _, package = checkout
    first = provenance.git_state(str(package))
    calls = []
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a) or real_run(*a, **k))
    assert provenance.git_state(str(package)) == first and calls == []


def test_no_checkout_or_no_git_gives_none(tmp_path, monkeypatch, checkout):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "__init__.py").write_text("")
    assert provenance.git_state(str(plain)) == (None, None)
    _, package = checkout
    untracked = package / "sub"
    untracked.mkdir()
    (untracked / "__init__.py").write_text("")  # inside a checkout, but not its tracked source
    assert provenance.git_state(str(untracked)) == (None, None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # git cannot be found
    provenance.git_state.cache_clear()
    assert provenance.git_state(str(package)) == (None, None)


def test_package_checkout_reports_its_own_head():
    here = os.path.dirname(os.path.abspath(provenance.__file__))
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        head = None  # an installed copy or no git: the field must then be None
    assert provenance.collect()["git_commit"] == head


def test_summary_json_carries_provenance(tmp_path):
    workdir = tmp_path / "w"
    summary = train_and_evaluate(th.lm_config(num_train_steps=2), str(workdir),
                                 dataset=th.byte_dataset())  # fmt: skip
    with open(workdir / "summary.json") as f:
        written = json.load(f)
    assert written["provenance"] == summary["provenance"] == provenance.collect()
    assert written["provenance"]["backend"] == "cpu"
    assert written["model"]["arch"] == "elm"  # the run records which recurrence kernel ran
    assert written["model"]["kernel"] == ("cpu_fused" if fused.available() else "xla")


def _task(tmp_path, train_fn="sweep_fakes:fake_train"):
    loaded = run.load_sweep(os.path.join(os.path.dirname(__file__), "sweep_fakes.py"))
    cfg = loaded.config
    trials = make_trials(loaded.points[:1], [0], cfg.train, cfg.task)
    plan = engine.plan_sweep(name=cfg.name, task=cfg.task, source="t", train_config=cfg.train,
                             points=loaded.points[:1], seeds=[0], directory=str(tmp_path),
                             train_fn=train_fn)  # fmt: skip
    return plan.groups[0], trials[0]


def test_trial_record_takes_provenance_from_the_summary(tmp_path):
    task, trial = _task(tmp_path)
    planted = dict.fromkeys(provenance.FIELDS, "from-the-trainer")
    files = [{"path": "/d/shd_train.h5", "sha256": "ab" * 32, "bytes": 10}]
    summary = {"provenance": planted, "data": {"files": files}, "seeds": [],
               "model": {"kernel": "cpu_fused"}}  # fmt: skip
    record = engine.trial_record(task, trial, summary)
    assert {f: record[f] for f in provenance.FIELDS} == planted
    assert record["kernel"] == "cpu_fused"
    assert record["data_files"] == files
    driver = engine.trial_record(task, trial, None, reason="lost")  # the driver, no summary
    assert driver["backend"] is None and driver["jax_version"] == jax.__version__
    assert driver["data_files"] == []


def test_worker_records_and_table_carry_provenance(tmp_path):
    task, trial = _task(tmp_path)
    outcome = engine.execute_group(task)
    assert outcome.kind == "trained"
    store = engine.store_lib.SweepStore(str(tmp_path))
    record = store.read_record(trial.trial_id)
    expected = provenance.collect()  # the fake trainer writes none: the worker's own
    assert {f: record[f] for f in provenance.FIELDS} == expected
    frame = store.rebuild_table()
    row = frame.iloc[0]
    assert row["backend"] == "cpu" and row["device_kind"] == expected["device_kind"]
    assert row["package_version"] == expected["package_version"]
    assert row["git_commit"] == (expected["git_commit"] or "")
    if expected["git_dirty"] is None:
        assert pd.isna(row["git_dirty"])
    else:
        assert bool(row["git_dirty"]) == expected["git_dirty"]
