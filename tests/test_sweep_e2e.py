"""End to end with the real trainer: the tiny sweep, SIGKILL + restart, and Ray in local mode.

Data: small SHD-format files written by the test (the real SHD loading path, source `shd`),
so no embedded default has to be built. The tiny sweep is two budgets, 3 points, 2 seeds,
a few steps (sweeps/configs/tiny.py).
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import sweep_fakes

from sweeps import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ["val_loss", "val_metric", "test_loss", "test_metric"]
FINAL = ["final_val_loss", "final_val_metric", "final_test_loss", "final_test_metric"]
BLIND = ["input_blind_val_loss", "input_blind_val_metric"]
BLIND += ["input_blind_test_loss", "input_blind_test_metric"]


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory):
    data_dir = sweep_fakes.write_tiny_shd(str(tmp_path_factory.mktemp("shd")))
    return f"tiny:data=shd_adding,data_dir={data_dir},steps=4,checkpoint_every=2"


@pytest.fixture(scope="module")
def reference(tiny_spec, tmp_path_factory):
    directory = tmp_path_factory.mktemp("reference")
    assert run.main(["--sweep", tiny_spec, "--dir", str(directory), "--quiet"]) == 0
    return pd.read_parquet(directory / "results.parquet")


def _same_table(frame, reference):
    assert frame["trial_id"].is_unique
    assert sorted(frame.trial_id) == sorted(reference.trial_id)
    a = frame.sort_values("trial_id").reset_index(drop=True)
    b = reference.sort_values("trial_id").reset_index(drop=True)
    np.testing.assert_allclose(a[METRICS].to_numpy(), b[METRICS].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(a[FINAL].to_numpy(), b[FINAL].to_numpy(), rtol=1e-6)
    for column in ("point_id", "N", "d_m", "k_c", "seed", "budget", "status", "steps", "P_core"):
        assert a[column].tolist() == b[column].tolist(), column


def test_tiny_sweep_runs_end_to_end_with_the_real_trainer(reference):
    assert len(reference) == 6 and set(reference.status) == {"ok"}
    assert sorted(reference.budget.unique()) == [200.0, 400.0]
    assert reference.groupby("point_id").seed.apply(sorted).tolist() == [[0, 1]] * 3
    assert set(reference.dataset) == {"shd@50ms"} and (reference.steps == 4).all()
    assert reference[METRICS + FINAL + BLIND].notna().all().all()
    assert ((reference.val_metric >= 0) & (reference.val_metric <= 1)).all()
    # One input-blind baseline per split, the same for every trial (same evaluated examples).
    assert (reference[BLIND].nunique() == 1).all()
    assert (reference.input_blind_val_loss > 0).all()
    # The wiring follows the training seed (docs/science.md §8).
    assert (reference.wiring_seed == reference.seed).all()
    # The trainer's counted parameters agree with the enumeration's analytic ones.
    assert (abs(reference.P_core - reference.budget) <= 0.05 * reference.budget).all()


def test_sigkill_mid_sweep_then_restart_gives_the_uninterrupted_table(
    tiny_spec, reference, tmp_path
):
    directory = tmp_path / "killed"
    cmd = [sys.executable, "-m", "sweeps.run", "--sweep", tiny_spec, "--dir", str(directory)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    groups = directory / "groups"
    interrupted = None
    deadline = time.time() + 600
    while interrupted is None and proc.poll() is None and time.time() < deadline:
        # Kill as soon as a trainer call has a committed checkpoint but no summary yet.
        for workdir in groups.glob("*/checkpoints/*/commit_success.txt"):
            group = workdir.parents[2]
            if not (group / "summary.json").exists():
                interrupted = group.name
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.02)
    proc.wait()
    assert interrupted is not None and proc.returncode == -signal.SIGKILL
    done_before = len(list((directory / "trials").glob("*.json")))
    assert done_before < 6
    assert run.main(["--sweep", tiny_spec, "--dir", str(directory), "--quiet"]) == 0
    log = (directory / "sweep.log").read_text()
    assert f"continuing group {interrupted}" in log
    _same_table(pd.read_parquet(directory / "results.parquet"), reference)
    assert len(list((directory / "trials").glob("*.json"))) == 6


def test_tiny_sweep_on_ray_in_local_mode_gives_the_same_table(tiny_spec, reference, tmp_path):
    import ray  # the optional extra .[ray]; CI installs it

    try:
        args = ["--sweep", tiny_spec, "--dir", str(tmp_path), "--backend", "ray"]
        assert run.main([*args, "--ray-num-cpus", "2", "--quiet"]) == 0
    finally:
        ray.shutdown()
    _same_table(pd.read_parquet(tmp_path / "results.parquet"), reference)
