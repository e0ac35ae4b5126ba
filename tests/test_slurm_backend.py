"""`--backend slurm` through submitit: the flags reach the job array's sbatch script; with
submitit's LocalExecutor a job that gets the preemption signal is requeued with its group, a
job that dies is resubmitted, and a sweep whose job and driver are killed mid-training resumes
on a rerun of the same command to the local backend's table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import submitit
import sweep_fakes

from sweeps import backends, engine, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
FAKES = os.path.join(TESTS, "sweep_fakes.py")
METRICS = ["val_loss", "val_metric", "test_loss", "test_metric"]
# What a trial's row says about its training (not where, when or by which commit it ran).
RESULTS = ["trial_id", "point_id", "arch", "task", "dataset", "slice", "budget", "budget_kind"]
RESULTS += ["N", "d_m", "k_c", "k_e", "d_tree", "P_core", "P_io", "P_total", "seed", "status"]
RESULTS += ["reason", "steps", "val_loss", "val_metric", "test_loss", "test_metric", "metric_name"]
LOCAL_JOBS = ["--backend", "slurm", "--slurm-cluster", "local", "--slurm-gpus-per-task", "0"]


@pytest.fixture
def fake_sbatch(monkeypatch):
    """Makes submitit (and the backend) believe sbatch is on PATH; nothing is submitted."""
    real = backends.shutil.which
    monkeypatch.setattr(
        backends.shutil, "which", lambda name: "/usr/bin/sbatch" if name == "sbatch" else real(name)
    )
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 2), raising=False)


def test_command_line_flags_reach_the_sbatch_script(fake_sbatch, tmp_path):
    args = run.parse_args(
        ["--sweep", "tiny", "--dir", str(tmp_path), "--backend", "slurm", "--workers", "3"]
        + ["--slurm-partition", "gpu-long", "--slurm-gpus-per-task", "2"]
        + ["--slurm-time-min", "90", "--slurm-cpus-per-task", "6", "--slurm-mem-gb", "32"]
    )
    backend = run.make_backend(args)
    assert backend.parallelism == 3
    slurm = backend.executor._executor
    assert isinstance(slurm, submitit.SlurmExecutor)
    assert str(slurm.folder) == os.path.join(str(tmp_path), "slurm")
    script = slurm._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in (
        "#SBATCH --partition=gpu-long",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --time=90",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --mem=32GB",
        "#SBATCH --signal=USR2@",  # submitit's preemption/time-out signal -> checkpoint()
    ):
        assert line in script, line
    assert slurm.parameters["array_parallelism"] == 3


def test_without_sbatch_the_slurm_backend_fails_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(backends.shutil, "which", lambda name: None)
    code = run.main(["--sweep", FAKES, "--dir", str(tmp_path), "--backend", "slurm", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "no sbatch on PATH" in err and "--slurm-cluster=local" in err
    assert len(err.splitlines()) == 1
    with pytest.raises(ValueError, match=r"--slurm-time-min=0; must be >= 1"):
        backends.SlurmBackend(str(tmp_path), cluster="local", time_min=0)
    with pytest.raises(ValueError, match=r"--slurm-partition needs --backend=slurm"):
        run.make_backend(run.parse_args(["--sweep", "t", "--dir", "d", "--slurm-partition", "p"]))


def test_checkpoint_resubmits_the_same_trial_group(tmp_path):
    plan = engine.plan_sweep(
        name="fake",
        task="shd_adding",
        source=FAKES,
        train_config=sweep_fakes.get_config().train,
        points=sweep_fakes.get_sweep(sweep_fakes.get_config()),
        seeds=[0, 1],
        directory=str(tmp_path),
    )
    job = backends.GroupJob(plan.groups[0])
    delayed = job.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert isinstance(delayed.function, backends.GroupJob)
    assert delayed.function.task == plan.groups[0] and delayed.args == ()


def test_local_jobs_retry_a_killed_job_and_match_the_local_backend(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    sweep = FAKES + ":npoints=1"
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    assert (
        run.main(["--sweep", sweep, "--dir", str(local), "--train-fn", "sweep_fakes:fake_train"])
        == 0
    )
    cmd = ["--sweep", sweep, "--dir", str(slurm), "--train-fn", "sweep_fakes:crash_once_train"]
    assert run.main([*cmd, *LOCAL_JOBS, "--quiet"]) == 0
    a = pd.read_parquet(local / "results.parquet").sort_values("trial_id").reset_index(drop=True)
    b = pd.read_parquet(slurm / "results.parquet").sort_values("trial_id").reset_index(drop=True)
    assert len(b) == 2 and set(b.status) == {"ok"}
    pd.testing.assert_frame_equal(a[RESULTS], b[RESULTS])
    # The group's first job killed itself; the resubmitted job, in another process, trained it.
    (calls,) = [open(c).read().split() for c in (slurm / "fake_calls").iterdir()]
    assert len(calls) == 1 and calls[0] != str(os.getpid())
    assert len(list((slurm / "groups").glob("*/crashed-once"))) == 1
    assert "worker lost" in (slurm / "sweep.log").read_text()
    assert len(list((slurm / "slurm").glob("*_submitted.pkl"))) == 2


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory):
    data_dir = sweep_fakes.write_tiny_shd(str(tmp_path_factory.mktemp("shd")))
    return f"tiny:data=shd_adding,data_dir={data_dir},steps=6,checkpoint_every=2,budgets=[200.0]"


def _killed_mid_training(cmd: list[str], directory) -> str:
    """Starts the sweep, SIGKILLs the job training a group that has a checkpoint but no
    summary, then the sweep process and its other jobs; returns that group's id."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 600
    try:
        while proc.poll() is None and time.time() < deadline:
            for commit in (directory / "groups").glob("*/checkpoints/*/commit_success.txt"):
                group = commit.parents[2]
                if (group / "summary.json").exists():
                    continue
                owner = json.loads((directory / "groups" / f"{group.name}.lock").read_text())
                assert owner["pid"] != proc.pid  # trained in a job process, not the driver
                os.kill(owner["pid"], signal.SIGKILL)
                return group.name
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    raise AssertionError("no group was caught between its first checkpoint and its summary")


def test_killed_job_then_rerun_resumes_to_the_local_backends_table(tiny_spec, tmp_path):
    local = tmp_path / "local"
    assert run.main(["--sweep", tiny_spec, "--dir", str(local), "--quiet"]) == 0
    reference = pd.read_parquet(local / "results.parquet")
    assert len(reference) == 4 and set(reference.status) == {"ok"}

    directory = tmp_path / "slurm"
    cmd = [sys.executable, "-m", "sweeps.run", "--sweep", tiny_spec, "--dir", str(directory)]
    interrupted = _killed_mid_training([*cmd, *LOCAL_JOBS], directory)
    assert len(list((directory / "trials").glob("*.json"))) < 4
    assert run.main([*cmd[3:], *LOCAL_JOBS, "--quiet"]) == 0  # the same command again
    # The job that picked the group up again continued from the killed job's checkpoints.
    job_logs = [p.read_text() for p in (directory / "slurm").glob("*_log.err")]
    assert sum(f"continuing group {interrupted}" in text for text in job_logs) == 1
    frame = pd.read_parquet(directory / "results.parquet")
    a = frame.sort_values("trial_id").reset_index(drop=True)
    b = reference.sort_values("trial_id").reset_index(drop=True)
    assert a.trial_id.tolist() == b.trial_id.tolist()
    np.testing.assert_allclose(a[METRICS].to_numpy(), b[METRICS].to_numpy(), rtol=1e-6)
    for column in ("point_id", "N", "d_m", "k_c", "seed", "budget", "status", "steps", "P_core"):
        assert a[column].tolist() == b[column].tolist(), column


def preempted_once_train(config, workdir: str) -> dict:
    """A trainer that waits to be preempted on its first call, then trains (sweep_fakes)."""
    marker = os.path.join(workdir, "started-once")
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(300)  # the test sends the preemption signal meanwhile
    return sweep_fakes.fake_train(config, workdir)


def test_preempted_job_checkpoints_and_is_requeued_with_its_group(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    directory = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "sweeps.run", "--sweep", FAKES + ":npoints=1"]
    cmd += ["--dir", str(directory), "--train-fn", "test_slurm_backend:preempted_once_train"]
    proc = subprocess.Popen([*cmd, *LOCAL_JOBS], cwd=ROOT, start_new_session=True)
    try:
        markers = directory / "groups"
        deadline = time.time() + 120
        while not list(markers.glob("*/started-once")) and time.time() < deadline:
            time.sleep(0.1)
        (lock,) = markers.glob("*.lock")
        owner = json.loads(lock.read_text())["pid"]
        os.kill(owner, signal.SIGUSR2)  # what SLURM sends before preempting or at the time limit
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    frame = pd.read_parquet(directory / "results.parquet")
    assert len(frame) == 2 and set(frame.status) == {"ok"}
    (job_log,) = [p.read_text() for p in (directory / "slurm").glob("*_log.err")]
    preempted = job_log.index("this job is preempted")
    # The requeued job ran the group that checkpoint() returned, in the same workdir.
    assert job_log.index(f"continuing group {lock.stem}") > preempted
    # One submission only: submitit requeued the job; the driver did not resubmit it.
    assert len(list((directory / "slurm").glob("*_submitted.pkl"))) == 1
    assert "worker lost" not in (directory / "sweep.log").read_text()
