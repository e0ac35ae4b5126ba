"""The single-neuron recipes: sourced values, the short CPU variant, the Chrono-LSTM and a tiny
end-to-end run of arch "elm_neuron" through the trainer."""

import importlib
import json
import os

import numpy as np
import pytest

from elm_jax.config_check import check_config
from elm_jax.configs import (
    chrono_lstm,
    neuron_listops,
    neuron_neuronio,
    neuron_scifar,
    neuron_shd,
    neuron_shd_adding,
)
from elm_jax.data.sequences import SequenceDataset
from elm_jax.train.loop import train_and_evaluate


@pytest.mark.parametrize("module", [neuron_shd, neuron_shd_adding, neuron_scifar, neuron_listops])
def test_recipes_pass_the_trainer_check_in_full_and_short_versions(module):
    for arg in (None, "short_cpu"):
        checked = check_config(module.get_config(arg))
        assert checked.model.arch == "elm_neuron" and checked.model.num_neurons == 1
    assert "python -m elm_jax.main --config=elm_jax/configs/" in module.__doc__
    doc = " ".join(module.__doc__.split())
    assert "Expected run time" in doc and "CPU (measured" in doc


def test_recipes_carry_the_values_of_their_sources():
    shd = neuron_shd.get_config()  # the authors' SHD notebook
    assert (shd.model.num_memory, shd.model.memory_tau_max, shd.data.bin_ms) == (100, 500.0, 10.0)
    assert (shd.optim.learning_rate, shd.data.batch_size, shd.data.input_dropout) == (5e-3, 8, 0.5)
    # docs/science.md §4: 2 ms bins, 2000 batches x 10 epochs
    adding = neuron_shd_adding.get_config()
    assert (adding.data.bin_ms, adding.num_train_steps, adding.model.num_classes) == (
        2.0,
        20_000,
        19,
    )
    nio = neuron_neuronio.get_config().model  # the released num_memory_15 model_config.json
    assert (nio.routing, nio.num_branches, nio.synapses_per_branch) == ("neuronio_routing", 45, 100)
    assert (nio.num_memory, nio.memory_tau_min, nio.memory_tau_max) == (15, 1.0, 150.0)
    assert neuron_neuronio.get_config().optim.learning_rate == 5e-4
    short = neuron_scifar.get_config("short_cpu")
    assert short.data.name == "scifar_default" and short.num_train_steps == 300


@pytest.mark.parametrize(
    "task, t_max", [("shd_adding", 1000.0), ("scifar", 1024.0), ("listops", 1999.0)]
)
def test_chrono_lstm_takes_its_t_max_from_the_tasks_sequence_length(task, t_max):
    c = chrono_lstm.get_config(task)
    checked = check_config(c)
    assert checked.model.arch == "lstm" and checked.model.chrono_t_max == t_max
    recipe = importlib.import_module(f"elm_jax.configs.neuron_{task}").get_config()
    assert (c.data.name, c.optim.learning_rate) == (recipe.data.name, recipe.optim.learning_rate)
    with pytest.raises(ValueError, match="chrono_lstm task 'mnist' is invalid"):
        chrono_lstm.get_config("mnist")


@pytest.mark.parametrize(
    "arg, t_max",
    [
        ("pathfinder,short_cpu", 1024.0),  # pathfinder32_default
        ("pathfinder,data.name=pathfinder32_easy_default", 1024.0),
        ("pathfinder_x,data.name=pathfinder128_medium", 16384.0),
    ],
)
def test_chrono_lstm_t_max_of_every_pathfinder_name(arg, t_max):
    assert chrono_lstm.get_config(arg).model.chrono_t_max == t_max


def test_chrono_lstm_names_the_fix_for_data_without_a_known_length():
    with pytest.raises(ValueError, match="no known sequence length.*model.chrono_t_max=STEPS"):
        chrono_lstm.get_config("scifar,data.name=mnist_images")


def test_elm_neuron_trains_end_to_end_on_a_sequence_dataset(tmp_path):
    """Class = which of two tokens fills the sequence: one neuron learns it in a few steps."""
    rng = np.random.default_rng(0)

    def split(n):
        labels = rng.integers(0, 2, n)
        tokens = np.where(rng.random((n, 6)) < 0.8, labels[:, None], 2).astype(np.uint8)
        return tokens, labels

    ds = SequenceDataset(split(200), split(40), num_classes=2, vocab_size=3, name="t", source="t")
    c = neuron_scifar.get_config(
        "model.input_dim=3,model.num_classes=2,model.num_memory=4,num_train_steps=60,"
        "eval_every=60,checkpoint_every=60,log_every=20,data.batch_size=16,"
        "data.eval_batch_size=40,optim.learning_rate=0.05"
    )
    summary = train_and_evaluate(c, str(tmp_path), dataset=ds)
    seed = summary["seeds"][0]
    assert summary["status"] == "ok" and summary["model"]["arch"] == "elm_neuron"
    assert seed["final_val_metric"] >= 0.9 > summary["input_blind"]["validation"]["metric"]
    assert summary["cost"]["P_io"] == 0
    with open(os.path.join(tmp_path, "summary.json")) as handle:
        assert json.load(handle)["cost"]["P_core"] == summary["cost"]["P_core"]
