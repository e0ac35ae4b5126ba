"""Two JAX processes on the loopback train the seeds of one run together, as on two hosts.

Each process has 2 fake CPU devices and joins a `jax.distributed` job (coordinator and gloo
collectives on 127.0.0.1); with seeds (0, 1) the mesh is replica 2 x data 2, so seed 0 lives on
process 0 and seed 1 on process 1 and no process can read the whole state by itself. The run
must give the single-process result (4 devices, the same mesh shape), write the run's files from
process 0 only, and leave Orbax checkpoints that restore to the single-process state, also after
an interruption and a two-process resume. Every subprocess runs in its own process group, is
bounded by a timeout and is killed in a `finally`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import train_helpers as th

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "multihost_worker.py")
TIMEOUT_S = 300
SEED_FIELDS = ("val_loss", "val_metric", "test_loss", "test_metric")
RUN_FILES = {"config.json", "summary.json", "progress.json"}
STOPPED_EXIT = 3  # multihost_worker.STOPPED_EXIT


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices_per_process: int) -> dict[str, str]:
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_per_process}"
    return env


def _launch(
    workdir: str, out_dir: str, num_processes: int, devices: int, stop_after: int | None = None
) -> list[dict]:
    """Runs `num_processes` workers to completion; returns their results (exit code + OUT)."""
    port = _free_port()
    procs, logs = [], []
    try:
        for i in range(num_processes):
            out = os.path.join(out_dir, f"process_{i}.json")
            cmd = [sys.executable, WORKER, "--process-id", str(i)]
            cmd += ["--num-processes", str(num_processes), "--port", str(port)]
            cmd += ["--workdir", workdir, "--out", out]
            if stop_after is not None:
                cmd += ["--stop-after", str(stop_after)]
            log = open(os.path.join(out_dir, f"process_{i}.log"), "w")  # noqa: SIM115
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    env=_env(devices),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for log in logs:
            log.close()
    results = []
    for i, code in enumerate(codes):
        text = open(os.path.join(out_dir, f"process_{i}.log")).read()
        out = os.path.join(out_dir, f"process_{i}.json")
        assert os.path.exists(out), f"process {i} exited {code} without a result:\n{text[-3000:]}"
        with open(out) as f:
            results.append({"code": code, **json.load(f)})
    return results


def _train_records(workdir: str) -> list[dict]:
    """metrics.jsonl without the wall-clock fields."""
    clock = {"seconds", "steps_per_s", "examples_per_s"}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in clock} for line in f]


def _assert_same_seeds(rows: list[dict], reference: list[dict]) -> None:
    assert [r["seed"] for r in rows] == [r["seed"] for r in reference] == [0, 1]
    for row, ref in zip(rows, reference, strict=True):
        assert row["status"] == ref["status"] == "ok"
        assert row["best_step"] == ref["best_step"]
        for key in SEED_FIELDS:
            np.testing.assert_allclose(row[key], ref[key], rtol=1e-6, err_msg=key)


def _load_on_one_device(workdir: str) -> dict:
    """The latest saved state as NumPy, restored onto this process's first device (the saving
    topology, 4 devices on 1 or 2 processes, is not this test process's)."""
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    step = max(th.saved_steps(workdir))
    path = os.path.join(workdir, "checkpoints", str(step), "default")
    with ocp.StandardCheckpointer() as checkpointer:
        meta = checkpointer.metadata(path).item_metadata
        target = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), meta
        )
        restored = checkpointer.restore(path, target)
    return jax.tree.map(np.asarray, restored)


def _assert_same_checkpoint(workdir: str, reference_dir: str) -> None:
    assert th.saved_steps(workdir) == th.saved_steps(reference_dir) == [4, 6]
    got, want = _load_on_one_device(workdir), _load_on_one_device(reference_dir)
    for key in ("params", "best_params", "opt_state", "step"):
        for x, y in zip(jax.tree.leaves(got[key]), jax.tree.leaves(want[key]), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7, err_msg=key)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same run in one process with 4 devices (mesh replica 2 x data 2)."""
    base = tmp_path_factory.mktemp("single")
    (result,) = _launch(str(base / "run"), str(base), num_processes=1, devices=4)
    assert result["code"] == 0 and result["process_count"] == 1
    assert result["global_devices"] == 4
    return {"workdir": str(base / "run"), **result}


def test_two_processes_give_the_single_process_result_and_write_files_once(reference, tmp_path):
    workdir = str(tmp_path / "run")
    results = _launch(workdir, str(tmp_path), num_processes=2, devices=2)
    assert [r["code"] for r in results] == [0, 0]
    assert [r["process_index"] for r in results] == [0, 1]
    assert all(r["process_count"] == 2 and r["global_devices"] == 4 for r in results)
    assert all(r["local_devices"] == 2 for r in results)
    # Both processes see the whole result (the seed rows gathered across hosts) ...
    for r in results:
        _assert_same_seeds(r["seeds"], reference["seeds"])
    with open(os.path.join(workdir, "summary.json")) as f:
        _assert_same_seeds(json.load(f)["seeds"], reference["seeds"])
    # ... but only process 0 writes the run's files, each as often as a single process does.
    assert results[1]["writes"] == []
    assert sorted(results[0]["writes"]) == sorted(reference["writes"])
    assert RUN_FILES <= set(results[0]["writes"])
    assert _train_records(workdir) == _train_records(reference["workdir"])
    _assert_same_checkpoint(workdir, reference["workdir"])


def test_two_processes_resume_from_their_checkpoint_to_the_single_process_result(
    reference, tmp_path
):
    workdir = str(tmp_path / "run")
    first = _launch(workdir, str(tmp_path), num_processes=2, devices=2, stop_after=4)
    assert [r["code"] for r in first] == [STOPPED_EXIT] * 2
    assert th.saved_steps(workdir) == [2, 4]
    resumed = _launch(workdir, str(tmp_path), num_processes=2, devices=2)
    assert [r["code"] for r in resumed] == [0, 0]
    for r in resumed:
        _assert_same_seeds(r["seeds"], reference["seeds"])
    assert resumed[1]["writes"] == []
    assert _train_records(workdir) == _train_records(reference["workdir"])
    _assert_same_checkpoint(workdir, reference["workdir"])
