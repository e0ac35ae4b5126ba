"""Experiment configs: variants, overrides of every field, and clear errors on bad fields."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from elm_jax.configs import common, enwik8, shd_adding, smoke
from elm_jax.models import ModelConfig
from elm_jax.optim import OptimConfig
from elm_jax.run import resolve_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("module", [shd_adding, enwik8, smoke])
def test_every_config_resolves_to_valid_model_and_optimizer(module):
    cfg = resolve_config(module.get_config())
    model = ModelConfig.from_dict(cfg.model.to_dict())
    OptimConfig.from_dict(cfg.optim.to_dict(), cfg.num_train_steps)
    assert "python -m elm_jax.main --config=elm_jax/configs/" in module.__doc__
    assert "Expected run time" in module.__doc__
    assert set(cfg.model.keys()) == {f.name for f in dataclasses.fields(ModelConfig)}
    assert model.task in ("classification", "lm")


def test_shd_adding_defaults_follow_the_elm_paper_recipe():
    cfg = shd_adding.get_config()
    assert (cfg.optim.name, cfg.optim.learning_rate, cfg.optim.schedule) == (
        "adamax",
        5e-3,
        "cosine",
    )
    assert (cfg.data.batch_size, cfg.data.input_dropout, cfg.model.num_classes) == (8, 0.5, 19)
    assert enwik8.get_config().optim.name == "adam"


def test_variant_string_sets_short_and_dotted_names():
    cfg = shd_adding.get_config("N=64,d_m=8,k_c=16,d_tree=2,lr=1e-3,bin_ms=2,optim.clip_norm=1.0")
    assert (cfg.model.num_neurons, cfg.model.num_memory, cfg.model.synapses_per_neuron) == (
        64,
        8,
        16,
    )
    assert cfg.model.num_branches == 2 and cfg.optim.learning_rate == 1e-3
    assert cfg.data.bin_ms == 2.0 and isinstance(cfg.data.bin_ms, float)
    assert cfg.optim.clip_norm == 1.0
    assert smoke.get_config("classification,N=4").model.num_neurons == 4


def test_unknown_variant_key_names_the_key_and_valid_short_names():
    with pytest.raises(ValueError, match=r"config variant key 'width'.*short names"):
        shd_adding.get_config("width=3")
    with pytest.raises(ValueError, match="not key=value"):
        shd_adding.get_config("N64")


def test_unknown_field_in_a_python_config_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown config field 'data.shuffle'"):
        resolve_config({"data": {"shuffle": True}})
    with pytest.raises(ValueError, match=r"config.seeds=\[1, 1\]"):
        resolve_config({"seeds": [1, 1]})
    with pytest.raises(ValueError, match=r"config.num_train_steps=0"):
        resolve_config({"num_train_steps": 0})


def test_partial_config_is_merged_over_the_full_schema():
    cfg = resolve_config({"optim": {"learning_rate": 0.1}, "seeds": [3, 4]})
    assert cfg.optim.learning_rate == 0.1 and cfg.seeds == (3, 4)
    assert cfg.optim.name == common.base_config().optim.name


def _main(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "elm_jax.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_command_line_rejects_unknown_field_and_optimizer_before_any_work(tmp_path):
    workdir = tmp_path / "w"
    out = _main(
        "--config=elm_jax/configs/smoke.py", f"--workdir={workdir}", "--config.optim.momentum=0.9"
    )
    assert out.returncode != 0 and "unknown config field" in out.stderr + out.stdout
    out = _main(
        "--config=elm_jax/configs/smoke.py", f"--workdir={workdir}", "--config.optim.name=rmsprop"
    )
    assert out.returncode != 0 and "optim.name='rmsprop' is not a known optimizer" in out.stderr
    assert not workdir.exists()
