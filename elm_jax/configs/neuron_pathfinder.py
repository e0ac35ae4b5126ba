"""Pathfinder (32 x 32, pixel by pixel, 16 grey levels one-hot, 1,024 steps) with one ELM neuron.

Paper figure (SPEC §1 / the neuron paper's LRA table): the ELM neuron reaches 71.2 % test
accuracy on Pathfinder. Input: 16 one-hot grey levels (the paper's binning), 2 classes (are the
markers connected?), label at the last step. Not given in our sources; our choice: d_m = 100,
τ_m fixed, log-spaced over 1–1000 steps, one synapse per input, v2 neuron, Adamax lr 5e-3 with
cosine decay, batch 32, 20,000 steps.

Data: `pathfinder32` — the LRA folder from the data directory; `data.name=pathfinder32_default`
is the project's Pathfinder-style generator (a labelled stand-in, docs/data.md).

Command line:

    python -m elm_jax.main --config=elm_jax/configs/neuron_pathfinder.py \
        --workdir=runs/neuron_pathfinder

`neuron_pathfinder.py:short_cpu` is the few-minute CPU version `make bench-tasks` runs.

Expected run time: GPU a few hours (an estimate, not measured: 20,000 steps at T = 1024). CPU
(measured on 2 shared cores, `python bench/tasks.py`): `short_cpu` (d_m = 20, batch 16, 300
steps on the generated pathfinder32_default) trains about 8,900 steps per 10 minutes (evaluation
excluded) and stays at chance: 46.5 % validation accuracy against the input-blind 53.5 % (256
examples; loss 0.695 against 0.691 nats). At the generator's easy level
(pathfinder32_easy_default, batch 32, lr 1e-2, 600 steps, 137 s) it is still at chance (52.7 %
against 53.5 %): sequence models are known to stay at chance on Pathfinder for a long time."""

from __future__ import annotations

import ml_collections

from elm_jax.configs.single_neuron import finish, neuron_recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The Pathfinder single-neuron recipe; `arg`: "short_cpu" and/or variant items."""
    c = neuron_recipe(
        data_name="pathfinder32", input_dim=16, num_classes=2, num_memory=100,
        memory_tau=(1.0, 1000.0), batch_size=32, num_train_steps=20_000, learning_rate=5e-3,
    )  # fmt: skip
    short = {"data.name": "pathfinder32_default", "model.num_memory": 20, "data.batch_size": 16}
    return finish(c, arg, short)
