"""Experiment configs: variants, overrides of every field, and clear errors on bad fields."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from elm_jax.configs import common, enwik8, shd_adding, shd_adding_paper, smoke
from elm_jax.configs.merge import resolve_config
from elm_jax.models import ModelConfig
from elm_jax.optim import OptimConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("module", [shd_adding, shd_adding_paper, enwik8, smoke])
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
    assert out.returncode == 2 and "no such config field" in out.stderr
    out = _main(
        "--config=elm_jax/configs/smoke.py", f"--workdir={workdir}", "--config.optim.name=rmsprop"
    )
    assert out.returncode != 0 and "optim.name='rmsprop' is not a known optimizer" in out.stderr
    assert not workdir.exists()


@pytest.mark.parametrize("bin_ms", [2.0, 10.0, 25.0])
def test_time_in_milliseconds_sets_delta_t_to_the_bin_width(bin_ms):
    cfg = resolve_config(shd_adding_paper.get_config(f"bin_ms={bin_ms}"))
    assert cfg.model.time_unit == "ms" and cfg.model.delta_t == bin_ms
    model = ModelConfig.from_dict(cfg.model.to_dict())
    assert (model.memory_tau_min, model.memory_tau_max) == (0.0, 1000.0)
    assert model.elm_config.memory_tau_init == (1.0, 150.0) and model.tau_b_value == 5.0
    # The default variant counts steps: delta_t stays 1 whatever the bins.
    assert resolve_config(shd_adding.get_config(f"bin_ms={bin_ms}")).model.delta_t == 1.0


def test_time_in_milliseconds_refuses_a_conflicting_delta_t_or_unbinned_data():
    c = shd_adding_paper.get_config("bin_ms=25")
    c.model.delta_t = 3.0
    with pytest.raises(ValueError, match=r"delta_t=3.0 conflicts with time_unit='ms'"):
        resolve_config(c)
    lm = enwik8.get_config()
    lm.model.time_unit = "ms"
    with pytest.raises(ValueError, match="time_unit='ms' needs binned spike data"):
        resolve_config(lm)


def test_tau_m_initialisation_range_sits_inside_the_bounds():
    import jax
    import jax.numpy as jnp
    import numpy as np

    from elm_jax.network.config import NetworkConfig
    from elm_jax.network.layers import ELMNetwork
    from elm_jax.ops import scaled_sigmoid

    net = ELMNetwork(NetworkConfig(
        num_neurons=2, num_memory=4, synapses_per_neuron=8, external_dim=6, memory_tau_min=0.0,
        memory_tau_max=1000.0, memory_tau_init_min=1.0, memory_tau_init_max=150.0,
    ))  # fmt: skip
    params = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 2, 6)))["params"]
    tau = np.asarray(scaled_sigmoid(params["proto_tau_m"], 0.0, 1000.0))
    np.testing.assert_allclose(tau[0], np.logspace(0, np.log10(150.0), 4), rtol=1e-3)
    with pytest.raises(ValueError, match="memory_tau_init_min"):
        ModelConfig(memory_tau_min=1.0, memory_tau_init_min=0.5, memory_tau_init_max=10.0)
    with pytest.raises(ValueError, match="give both or neither"):
        ModelConfig(memory_tau_init_min=2.0)
