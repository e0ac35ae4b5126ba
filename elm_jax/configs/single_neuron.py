"""Shared builder of the ELM paper's single-neuron recipes (`neuron_*.py`, `chrono_lstm.py`).

One ELM neuron (the reference port, `model.arch = "elm_neuron"`) classifies a whole sequence: its
readout has `num_classes` outputs and the loss reads the last step. Each recipe module fills in its
task's values and says in its docstring which come from which source: docs/science.md (the paper's
figures and the SHD setup), the authors' released NeuronIO configs (`model_config.json`,
`train_config.json`) or their SHD notebook; a value in none of them is marked "not given in our
sources; our choice". `short_cpu` is the variant `make bench-tasks` runs.
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs.common import apply_variant, base_config
from elm_jax.configs.variant import split_items


def neuron_recipe(
    *,
    data_name: str,
    input_dim: int,
    num_classes: int,
    num_memory: int,
    memory_tau: tuple[float, float],
    batch_size: int,
    num_train_steps: int,
    learning_rate: float,
    routing: str = "none",
    num_branches: int = 4,
    synapses_per_branch: int = 1,
    learn_memory_tau: bool = False,
    mlp_activation: str = "relu",
    neuron_version: str = "v2",
    input_dropout: float = 0.0,
    time_unit: str = "steps",
) -> ml_collections.ConfigDict:
    """The trainer config of one single-neuron recipe (Adamax with cosine decay, one seed)."""
    c = base_config()
    m = c.model
    m.arch = "elm_neuron"
    m.task = "classification"
    m.input_dim, m.num_classes = input_dim, num_classes
    m.num_neurons = 1
    m.num_memory = num_memory
    m.memory_tau_min, m.memory_tau_max = memory_tau
    m.learn_memory_tau = learn_memory_tau
    m.routing, m.num_branches, m.synapses_per_branch = routing, num_branches, synapses_per_branch
    m.mlp_activation, m.neuron_version = mlp_activation, neuron_version
    m.time_unit = time_unit
    c.data.name = data_name
    c.data.batch_size = batch_size
    c.data.eval_batch_size = max(batch_size, 64)
    c.data.input_dropout = input_dropout
    c.optim.name, c.optim.schedule = "adamax", "cosine"
    c.optim.learning_rate = learning_rate
    c.num_train_steps = num_train_steps
    c.log_every = 100
    c.eval_every = c.checkpoint_every = max(num_train_steps // 10, 1)
    c.seeds = (0,)
    return c


SHORT_CPU = {
    "num_train_steps": 300,
    "eval_every": 300,
    "checkpoint_every": 300,
    "log_every": 50,
    "data.val_max_batches": 4,
    "data.test_max_batches": 4,
    "data.eval_batch_size": 64,
}


def finish(
    c: ml_collections.ConfigDict, arg: str | None, short: dict | None = None
) -> ml_collections.ConfigDict:
    """Applies the variant `arg`; its item `short_cpu` first selects the short CPU version
    (SHORT_CPU updated with `short`: dotted fields that make the task's run minutes on CPU)."""
    items = split_items(arg)
    if "short_cpu" in items:
        items.remove("short_cpu")
        for path, value in {**SHORT_CPU, **(short or {})}.items():
            node = c
            *parents, leaf = path.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
    return apply_variant(c, ",".join(items))
