"""The sweep engine with a fast planted trainer: records, resume, locks, lost workers, errors.

The real trainer runs in tests/test_sweep_e2e.py; here `sweep_fakes.fake_train` reports planted
metrics so every row can be checked against its expected value in milliseconds.
"""

import json
import math
import os

import pandas as pd
import pytest
import sweep_fakes

from sweeps import engine, run

FAKES = os.path.join(os.path.dirname(__file__), "sweep_fakes.py")


def _run(directory, *extra, arg="", train_fn="sweep_fakes:fake_train"):
    sweep = FAKES + (f":{arg}" if arg else "")
    return run.main(
        ["--sweep", sweep, "--dir", str(directory), "--train-fn", train_fn, "--quiet", *extra]
    )


def _calls(directory):
    calls = os.path.join(str(directory), "fake_calls")
    if not os.path.isdir(calls):
        return {}
    return {n: len(open(os.path.join(calls, n)).read().split()) for n in os.listdir(calls)}


def _expected_metric(row):
    return sweep_fakes.planted_metric(row.N, row.d_m, row.seed)


def test_local_sweep_writes_one_row_per_trial_with_the_trainers_metrics(tmp_path):
    assert _run(tmp_path, arg="seeds=2") == 0
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert len(frame) == 6 and frame["trial_id"].is_unique
    assert sorted(zip(frame.N, frame.seed, strict=True)) == [
        (n, s) for n in (2, 3, 4) for s in (0, 1)
    ]
    for row in frame.itertuples():
        assert row.val_metric == pytest.approx(_expected_metric(row))
        assert row.test_loss == pytest.approx(1.5 - _expected_metric(row))
    assert set(frame.status) == {"ok"} and set(frame.reason) == {""}
    assert set(frame.dataset) == {"shd-default@10ms"} and set(frame.sweep) == {"fake"}
    assert (frame.steps == 5).all() and (frame.schema_version == 2).all()
    # Per-sample-step training FLOPs x batch 8 x T 40 x 5 steps; counted P from the trainer.
    assert (frame.train_flops == 30.0 * 8 * 40 * 5).all() and (frame.P_total == 133).all()
    assert sorted(frame.budget.unique()) == [1000.0, 2000.0]
    # One trainer call per architecture, both seeds together.
    assert sorted(_calls(tmp_path).values()) == [1, 1, 1]
    assert os.path.getsize(tmp_path / "sweep.log") > 0


def test_restart_of_a_finished_sweep_trains_nothing(tmp_path):
    assert _run(tmp_path) == 0
    before = pd.read_parquet(tmp_path / "results.parquet")
    assert _run(tmp_path) == 0
    assert sorted(_calls(tmp_path).values()) == [1, 1, 1]
    pd.testing.assert_frame_equal(before, pd.read_parquet(tmp_path / "results.parquet"))


def test_trainer_error_and_divergence_are_rows_with_status_and_reason(tmp_path):
    assert _run(tmp_path, arg="seeds=14", train_fn="sweep_fakes:failing_train") == 0
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert len(frame) == 3 * 14
    failed = frame[frame.status == "failed"]
    assert set(failed.N) == {3} and len(failed) == 14
    assert set(failed.reason) == {"RuntimeError: planted trainer error for N=3"}
    assert failed.val_metric.isna().all() and (failed.steps == 0).all()
    diverged = frame[frame.status == "diverged"]
    assert set(diverged.seed) == {13} and set(diverged.N) == {2, 4}
    assert set(diverged.reason) == {"loss is NaN at step 3"}
    # Failed trials are finished: a restart does not retry them unless asked to.
    assert _run(tmp_path, train_fn="sweep_fakes:failing_train", arg="seeds=14") == 0
    calls_before = sum(_calls(tmp_path).values())
    assert calls_before == 2  # the N=3 call raised before the fake counted it
    assert _run(tmp_path, "--retry-failed", arg="seeds=14") == 0
    assert sum(_calls(tmp_path).values()) == calls_before + 1
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert len(frame) == 42 and set(frame.status) == {"ok", "diverged"}


def test_group_whose_summary_exists_is_recorded_without_training_again(tmp_path):
    config = sweep_fakes.get_config("npoints=1,seeds=2")
    plan = engine.plan_sweep(
        name="fake", task="shd_adding", source="t", train_config=config.train,
        points=sweep_fakes.get_sweep(config), seeds=config.seeds, directory=str(tmp_path),
        train_fn="sweep_fakes:fake_train",
    )  # fmt: skip
    (group,) = plan.groups
    workdir = plan.store.group_dir(group.group_id)
    os.makedirs(workdir)
    sweep_fakes.fake_train(group.config, workdir)  # trainer done, records never written
    outcome = engine.execute_group(group)
    assert outcome.kind == "reused" and outcome.statuses == ("ok", "ok")
    assert sum(_calls(tmp_path).values()) == 1
    assert plan.store.finished_ids() == {t.trial_id for t in group.trials}


def test_a_group_locked_by_a_live_process_is_not_trained_twice(tmp_path):
    config = sweep_fakes.get_config("npoints=1")
    plan = engine.plan_sweep(
        name="fake", task="shd_adding", source="t", train_config=config.train,
        points=sweep_fakes.get_sweep(config), seeds=config.seeds, directory=str(tmp_path),
        train_fn="sweep_fakes:fake_train",
    )  # fmt: skip
    (group,) = plan.groups
    with engine.GroupLock(plan.store.lock_path(group.group_id)):
        assert engine.execute_group(group).kind == "busy"
        assert _calls(tmp_path) == {}
    assert engine.execute_group(group).kind == "trained"
    assert engine.execute_group(group).kind == "skipped"
    assert sum(_calls(tmp_path).values()) == 1


def test_worker_pool_retries_a_group_whose_worker_was_killed(tmp_path):
    assert _run(tmp_path, "--workers", "2", train_fn="sweep_fakes:crash_once_train") == 0
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert len(frame) == 6 and set(frame.status) == {"ok"}
    for row in frame.itertuples():
        assert row.val_metric == pytest.approx(_expected_metric(row))
    # Every group: one call killed before it trained, then one that finished, in pool workers.
    groups = tmp_path / "groups"
    assert sorted(_calls(tmp_path).values()) == [1, 1, 1]
    assert all((groups / gid / "crashed-once").exists() for gid in _calls(tmp_path))
    pids = {
        p for n in os.listdir(tmp_path / "fake_calls") for p in open(tmp_path / "fake_calls" / n)
    }
    assert str(os.getpid()) + "\n" not in pids
    assert "worker lost" in (tmp_path / "sweep.log").read_text()


def test_worker_lost_more_than_max_retries_records_failed_trials(tmp_path):
    code = _run(
        tmp_path, "--workers", "2", "--max-retries", "0", train_fn="sweep_fakes:crash_once_train"
    )
    assert code == 0
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert len(frame) == 6 and set(frame.status) == {"failed"}
    assert frame.reason.str.startswith("worker lost 1 times: worker").all()


def test_changed_definition_is_refused_before_training(tmp_path, capsys):
    assert _run(tmp_path) == 0
    assert _run(tmp_path, arg="steps=9") == 2
    assert "training config num_train_steps: 5 -> 9" in capsys.readouterr().err
    assert _run(tmp_path, arg="npoints=4") == 2
    assert sorted(_calls(tmp_path).values()) == [1, 1, 1]
    assert _run(tmp_path, "--add-points", arg="npoints=4") == 0
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert len(frame) == 8 and sorted(_calls(tmp_path).values()) == [1, 1, 1, 1]


def test_unknown_sweep_and_unwritable_dir_and_bad_ray_address_fail_before_training(
    tmp_path, capsys
):
    assert run.main(["--sweep", "no_such_sweep", "--dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "no_such_sweep" in err and "shipped sweeps:" in err and "default" in err
    assert _run("/proc/elm_sweep_dir") == 2
    assert "is not a writable directory" in capsys.readouterr().err
    assert _run(tmp_path / "b", "--backend", "ray", "--ray-address", "127.0.0.1:9") == 2
    assert "does not answer" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "b" / "manifest.json")


def test_progress_eta_uses_mean_group_time_and_parallelism():
    from sweeps.progress import Progress

    now = [0.0]
    progress = Progress(total_trials=8, parallelism=2, clock=lambda: now[0])
    progress.set_pending(4)

    class Task:
        def __init__(self, gid):
            self.group_id, self.trials, self.label = gid, (1, 2), gid

    for gid, seconds in (("a", 10.0), ("b", 30.0)):
        progress.started(Task(gid))
        now[0] += seconds
        progress.finished(Task(gid), engine.GroupOutcome(gid, "trained", ("ok", "failed")))
    assert progress.eta_seconds() == pytest.approx(20.0 * 2 / 2)
    assert progress.line().startswith("trials 4/8 done, 0 running, 2 failed")
    assert math.isclose(progress.eta_seconds(), 20.0)


def test_budget_that_no_point_fits_is_refused_naming_it(tmp_path, capsys):
    assert run.main(["--sweep", "tiny:budgets=[5]", "--dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "budget 5 (core)" in err and "below the smallest point" in err
    assert not os.path.exists(tmp_path / "manifest.json")


def test_invalid_model_of_a_point_is_refused_before_training(tmp_path, capsys):
    bad = tmp_path / "bad_sweep.py"
    bad.write_text(
        "from sweeps.configs.tiny import get_config\n"
        "from sweeps.configs.tiny import get_sweep as _get_sweep\n"
        "import dataclasses\n"
        "def get_sweep(config):\n"
        "    p = _get_sweep(config)[0]\n"
        "    model = dict(p.model, synapses_per_neuron=6)\n"
        "    return [dataclasses.replace(p, k_c=6, model=tuple(model.items()))]\n"
    )
    assert run.main(["--sweep", str(bad), "--dir", str(tmp_path / "d"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "point budget 200 elm N=8 d_m=1 k_c=6" in err and "num_branches" in err
    assert not os.path.exists(tmp_path / "d" / "manifest.json")


def test_leftover_temporary_file_of_an_interrupted_write_is_not_a_record(tmp_path):
    assert _run(tmp_path, arg="npoints=1,seeds=1") == 0
    (tmp_path / "trials" / ".tmp-abcdef0123456789.json").write_text('{"half": ')
    assert _run(tmp_path, arg="npoints=1,seeds=1") == 0
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 1


def test_retry_failed_trains_again_when_the_trainer_reported_failure(tmp_path):
    assert (
        _run(tmp_path, arg="npoints=1,seeds=1", train_fn="sweep_fakes:reporting_failure_train") == 0
    )
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert frame.status.tolist() == ["failed"] and frame.reason.tolist() == ["planted failure"]
    assert _run(tmp_path, "--retry-failed", arg="npoints=1,seeds=1") == 0
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert frame.status.tolist() == ["ok"] and sum(_calls(tmp_path).values()) == 2


def test_pool_workers_get_one_device_each(monkeypatch):
    from sweeps.backends import worker_env

    assert worker_env(0, ["0", "1"]) == {"CUDA_VISIBLE_DEVICES": "0"}
    assert worker_env(3, ["0", "1"]) == {"CUDA_VISIBLE_DEVICES": "1"}
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_foo=1")
    env = worker_env(1, [])
    assert env["JAX_PLATFORMS"] == "cpu"
    assert env["XLA_FLAGS"].split() == [
        "--xla_foo=1",
        "--xla_force_host_platform_device_count=1",
        "--xla_cpu_multi_thread_eigen=false",
        "intra_op_parallelism_threads=1",
    ]


def test_validation_drops_read_the_last_two_evaluations_per_seed(tmp_path):
    lines = [
        {"split": "train", "step": 10, "loss": [9.0, 9.0]},
        {"split": "validation", "step": 10, "loss": [2.5, 2.6]},
        {"split": "validation", "step": 30, "loss": [2.3, 2.7]},
        {"split": "validation", "step": 20, "loss": [2.4, 2.65]},
    ]
    with open(tmp_path / "metrics.jsonl", "w") as f:
        f.write("\n".join(json.dumps(r) for r in lines) + "\n" + '{"split": "valid')
    drops = engine.validation_drops(str(tmp_path), [3, 7])
    assert drops[3][0] == pytest.approx(0.1) and drops[3][1] == 10
    assert drops[7][0] == pytest.approx(-0.05) and drops[7][1] == 10
    (tmp_path / "metrics.jsonl").write_text(json.dumps(lines[1]) + "\n")
    assert engine.validation_drops(str(tmp_path), [3, 7]) == {}
    assert engine.validation_drops(str(tmp_path / "none"), [3]) == {}
