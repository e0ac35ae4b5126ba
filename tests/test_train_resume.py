"""Exact resume: a run interrupted at any point and restarted ends bitwise equal to an
uninterrupted one (in-process interruption at a step, and a real SIGKILL of a subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import train_helpers as th

from elm_jax.network import fused_build
from elm_jax.train.loop import train_and_evaluate

TESTS = os.path.dirname(os.path.abspath(__file__))


class Interrupt(Exception):
    pass


def _stop_at(step_to_stop: int):
    def hook(step: int) -> None:
        if step == step_to_stop:
            raise Interrupt(f"interrupted after step {step}")

    return hook


def _assert_bitwise_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _config():
    # The carried LM state is part of what must resume exactly.
    return th.lm_config(
        **{
            "seeds": (0, 1),
            "num_train_steps": 8,
            "checkpoint_every": 2,
            "data.carry_train_state": True,
        }
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("full"))
    summary = train_and_evaluate(_config(), workdir, dataset=th.byte_dataset())
    return workdir, summary


@pytest.mark.parametrize("stop_after", [3, 4])  # between checkpoints, and right after one
def test_interrupted_then_resumed_run_is_bitwise_the_uninterrupted_run(
    tmp_path, uninterrupted, stop_after
):
    full_dir, full_summary = uninterrupted
    workdir = str(tmp_path)
    with pytest.raises(Interrupt):
        train_and_evaluate(
            _config(), workdir, dataset=th.byte_dataset(), step_hook=_stop_at(stop_after)
        )
    assert max(th.saved_steps(workdir)) == 2 * (stop_after // 2)
    resumed = train_and_evaluate(_config(), workdir, dataset=th.byte_dataset())
    _assert_bitwise_equal(th.load_saved_state(workdir), th.load_saved_state(full_dir))
    assert resumed["seeds"] == full_summary["seeds"]
    # On the fused CPU kernel wherever it is built (tests/test_fused.py fails where it is not).
    compiler = fused_build._compiler() is not None
    assert resumed["model"]["kernel"] == full_summary["model"]["kernel"]
    assert resumed["model"]["kernel"] == ("cpu_fused" if compiler else "xla")

    # The metrics log holds each step once, as in the uninterrupted run.
    def lines(d):
        return [
            (x["step"], x["split"], x["loss"])
            for x in map(json.loads, open(os.path.join(d, "metrics.jsonl")))
        ]

    assert lines(workdir) == lines(full_dir)


KILL_SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
from elm_jax.runtime import enable_compilation_cache
enable_compilation_cache()
import train_helpers as th
from elm_jax.train.loop import train_and_evaluate

def slow(step):
    if step >= 4:
        time.sleep(3.0)  # leave the parent (on a busy machine) time to kill mid-run

cfg = th.lm_config(
    **{{"seeds": (0, 1), "num_train_steps": 8, "checkpoint_every": 2, "data.carry_train_state": True}}
)
train_and_evaluate(cfg, sys.argv[1], dataset=th.byte_dataset(), step_hook=slow)
"""


def test_sigkilled_run_restarted_is_bitwise_the_uninterrupted_run(tmp_path, uninterrupted):
    full_dir, full_summary = uninterrupted
    workdir = str(tmp_path / "killed")
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(tests=TESTS))
    proc = subprocess.Popen([sys.executable, str(script), workdir], env=dict(os.environ))
    progress = os.path.join(workdir, "progress.json")
    deadline = time.time() + 540
    try:
        while time.time() < deadline and proc.poll() is None:
            if os.path.exists(progress) and json.load(open(progress))["step"] >= 4:
                break
            time.sleep(0.05)
        assert proc.poll() is None, (
            f"the run ended (rc {proc.returncode}) before it could be killed"
        )
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(workdir, "summary.json"))
    resumed = train_and_evaluate(_config(), workdir, dataset=th.byte_dataset())
    _assert_bitwise_equal(th.load_saved_state(workdir), th.load_saved_state(full_dir))
    assert resumed["seeds"] == full_summary["seeds"] and resumed["steps"] == 8
