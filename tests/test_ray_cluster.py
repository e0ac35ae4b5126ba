"""The tiny sweep on a real two-node Ray cluster (loopback), with one node's worker killed.

`python -m sweeps.run --backend ray --ray-address 127.0.0.1:PORT` drives a head and a second
node of one CPU each (tests/ray_cluster.py), so two groups train at once, one per node. Once a
group has written its first checkpoint, the second node's worker that is running a group is
SIGKILLed: the Ray task fails, the backend hands the group out again, and the table must still equal an uninterrupted local run's,
every trial exactly once. Data: small SHD-format files (the real loading path, source `shd`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import ray_cluster
import sweep_fakes

from sweeps import ray_options, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ["val_loss", "val_metric", "test_loss", "test_metric"]
COLUMNS = ["point_id", "N", "d_m", "k_c", "seed", "budget", "status", "steps", "P_core"]
SWEEP_TIMEOUT_S = 480
TASK = "_ray_execute_group"  # the Ray task of sweeps.backends.RayBackend


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory):
    data_dir = sweep_fakes.write_tiny_shd(str(tmp_path_factory.mktemp("shd")))
    return f"tiny:data=shd_adding,data_dir={data_dir},steps=4,checkpoint_every=2"


@pytest.fixture(scope="module")
def reference(tiny_spec, tmp_path_factory):
    directory = tmp_path_factory.mktemp("reference")
    assert run.main(["--sweep", tiny_spec, "--dir", str(directory), "--quiet"]) == 0
    frame = pd.read_parquet(directory / "results.parquet")
    assert set(frame.status) == {"ok"}, frame.reason.unique()
    return frame


def _training_under_way(sweep_dir) -> bool:
    """Some group has reached its first checkpoint: the sweep is past its start."""
    return any(sweep_dir.glob("groups/*/checkpoints/*/commit_success.txt"))


def test_two_node_sweep_with_a_killed_worker_gives_the_uninterrupted_table(
    tiny_spec, reference, tmp_path
):
    sweep_dir = tmp_path / "sweep"
    seen, killed = set(), []
    with ray_cluster.LoopbackCluster(ROOT) as cluster:
        cmd = [sys.executable, "-m", "sweeps.run", "--sweep", tiny_spec, "--dir", str(sweep_dir)]
        cmd += ["--backend", "ray", "--ray-address", cluster.address, "--ray-num-cpus", "1"]
        driver = subprocess.Popen(
            [*cmd, "--quiet"],
            cwd=ROOT,
            env=cluster.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.time() + SWEEP_TIMEOUT_S
            while driver.poll() is None and time.time() < deadline:
                busy = {node: cluster.busy_workers(node, TASK) for node in ("head", "node2")}
                seen.update(node for node, procs in busy.items() if procs)
                if not killed and busy["node2"] and _training_under_way(sweep_dir):
                    for proc in busy["node2"]:
                        proc.send_signal(signal.SIGKILL)
                        killed.append(proc.pid)
                time.sleep(0.2)
            output = driver.communicate(timeout=max(1.0, deadline - time.time()))[0]
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert not cluster.processes(), "processes of the cluster outlived it"
    text = output.decode(errors="replace")
    assert driver.returncode == 0, text[-3000:]
    assert killed, "no group was ever training on the second node"
    assert seen == {"head", "node2"}, f"groups ran only on {seen}"

    log = (sweep_dir / "sweep.log").read_text()
    lost = [line for line in log.splitlines() if "worker lost on" in line]
    assert len(lost) == 1 and "attempt 1" in lost[0], log[-3000:]
    retried = lost[0].split("worker lost on ")[1].split(" ")[0]
    assert any(f"trained {retried}" in line for line in log.splitlines())

    frame = pd.read_parquet(sweep_dir / "results.parquet")
    assert len(list((sweep_dir / "trials").glob("*.json"))) == len(reference) == 6
    assert frame["trial_id"].is_unique and set(frame.status) == {"ok"}
    assert sorted(frame.trial_id) == sorted(reference.trial_id)
    a = frame.sort_values("trial_id").reset_index(drop=True)
    b = reference.sort_values("trial_id").reset_index(drop=True)
    np.testing.assert_allclose(a[METRICS].to_numpy(), b[METRICS].to_numpy(), rtol=1e-6)
    for column in COLUMNS:
        assert a[column].tolist() == b[column].tolist(), column


# --- per-task resources: flags, validation, the docs' recipes (no cluster needed) ------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{bad", r"--ray-resources='\{bad' is not valid JSON"),
        ("[1, 2]", r"--ray-resources='\[1, 2\]' must be a JSON object"),
        ('{"TPU": -1}', r"--ray-resources\['TPU'\]=-1 must be a finite number >= 0"),
        ('{"TPU": 1.5}', r"--ray-resources\['TPU'\]=1.5 must be .* whole number when above 1"),
        ('{"TPU": "four"}', r"--ray-resources\['TPU'\]='four' must be a number >= 0"),
        ('{"GPU": 1}', r"names 'GPU'; use --ray-num-gpus"),
    ],
)
def test_bad_ray_resources_fail_with_one_line_and_exit_2_before_ray_starts(
    value, message, tmp_path, capsys
):
    args = ["--sweep", "tiny", "--dir", str(tmp_path), "--backend", "ray", "--quiet"]
    assert run.main([*args, "--ray-resources", value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error: --ray-resources" in err, err
    assert re.search(message, err), err


def test_bad_ray_cpu_and_gpu_amounts_and_ray_flags_without_ray_fail_with_exit_2(tmp_path, capsys):
    base = ["--sweep", "tiny", "--dir", str(tmp_path), "--quiet"]
    assert run.main([*base, "--backend", "ray", "--ray-num-gpus", "-1"]) == 2
    assert "error: --ray-num-gpus=-1.0 must be a finite number >= 0" in capsys.readouterr().err
    assert run.main([*base, "--backend", "ray", "--ray-num-cpus", "2.5"]) == 2
    assert "--ray-num-cpus=2.5 must be" in capsys.readouterr().err
    assert run.main([*base, "--ray-num-gpus", "1"]) == 2
    assert "error: --ray-num-gpus needs --backend=ray" in capsys.readouterr().err


def test_tasks_that_fit_counts_per_node_not_over_the_cluster_total():
    two_one_cpu_nodes = [{"CPU": 1.0}, {"CPU": 1.0, "node2": 1.0}]
    assert ray_options.tasks_that_fit({"CPU": 1.0}, two_one_cpu_nodes) == 2
    assert ray_options.tasks_that_fit({"CPU": 2.0}, two_one_cpu_nodes) == 0  # 2 in total only
    assert ray_options.tasks_that_fit({"CPU": 1.0, "node2": 1.0}, two_one_cpu_nodes) == 1
    assert ray_options.tasks_that_fit({"GPU": 0.5, "CPU": 1.0}, [{"CPU": 8.0, "GPU": 2.0}]) == 4
    assert ray_options.tasks_that_fit({"CPU": 0.1}, [{"CPU": 1.0}]) == 10


def _recipe_commands(heading: str) -> list[list[str]]:
    """The commands of a docs/sweeps.md recipe (indented block lines, continuations joined)."""
    with open(os.path.join(ROOT, "docs", "sweeps.md")) as f:
        text = f.read()
    section = text.split(f"#### {heading}\n", 1)[1].split("\n#", 1)[0]
    commands, current = [], ""
    for line in section.splitlines():
        if not line.startswith("    ") or line.strip().startswith("#"):
            continue
        current += line.strip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        commands.append(shlex.split(current))
        current = ""
    return commands


@pytest.mark.parametrize(
    ("heading", "node", "options", "per_node"),
    [
        ("GPU recipe", {"CPU": 32.0, "GPU": 4.0}, {"num_cpus": 8.0, "num_gpus": 1.0}, 4),
        ("TPU recipe", {"CPU": 240.0, "TPU": 4.0}, {"num_cpus": 8.0, "resources": {"TPU": 4.0}}, 1),
    ],
)
def test_docs_recipes_parse_and_hand_their_resources_to_the_ray_tasks(
    heading, node, options, per_node, monkeypatch
):
    from ray.scripts.scripts import start

    from sweeps import backends

    commands = _recipe_commands(heading)
    ray_starts = [c for c in commands if c[:2] == ["ray", "start"]]
    drivers = [c for c in commands if c[:3] == ["python", "-m", "sweeps.run"]]
    assert len(ray_starts) == 2 and len(drivers) == 1, commands
    for cmd in ray_starts:
        params = start.make_context("start", cmd[2:]).params  # Ray's own option parser
        if "GPU" in node:
            assert params["num_gpus"] == node["GPU"]
        else:
            assert json.loads(params["resources"]) == {"TPU": node["TPU"]}

    seen = {}
    monkeypatch.setattr(
        backends, "RayBackend", lambda address, **kw: seen.update(kw, address=address)
    )
    run.make_backend(run.parse_args(drivers[0][3:]))
    assert seen["address"] == "HEAD_IP:6379"
    got = ray_options.task_options(seen["cpus_per_task"], seen["gpus_per_task"], seen["resources"])
    assert got == options
    assert ray_options.tasks_that_fit(ray_options.request(got), [node]) == per_node
