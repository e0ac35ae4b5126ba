"""Pathfinder-X (128 x 128, pixel by pixel, 8 grey levels one-hot, 16,384 steps) with one neuron.

Paper figure (docs/science.md §1 / the neuron paper's LRA table): the ELM neuron reaches 77.3 % test
accuracy on Pathfinder-X (the paper's headline long-range result). Input: 8 one-hot grey
levels (the paper's binning for Path-X), 2 classes, label at the last step. Not given in our
sources; our choice: d_m = 100, τ_m fixed, log-spaced over 1–16,384 steps, one synapse per
input, v2 neuron, Adamax lr 5e-3 with cosine decay, batch 32, 20,000 steps.

Data: `pathfinder128` — the LRA folder from the data directory; `data.name=pathfinder128_default`
is the project's Pathfinder-style generator (a labelled stand-in, docs/data.md).

Command line:

    python -m elm_jax.main --config=elm_jax/configs/neuron_pathfinder_x.py \
        --workdir=runs/neuron_pathfinder_x

`neuron_pathfinder_x.py:short_cpu` is the CPU version `make bench-tasks` runs (few steps: one
step is 16,384 time steps).

Expected run time: GPU about a day (an estimate, not measured: 20,000 steps at T = 16,384). CPU
(measured on 2 shared cores, `python probes/tasks.py`): `short_cpu` (d_m = 10, batch 8, 20 steps
on the generated pathfinder128_default) trains about 730 steps per 10 minutes (evaluation
excluded; the first run also builds the data, 533 s in all) and is at the input-blind level
after its 20 steps (62.5 % of 32 examples, the input-blind 62.5 %; loss 0.684 against 0.662
nats)."""

from __future__ import annotations

import ml_collections

from elm_jax.configs.single_neuron import finish, neuron_recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The Pathfinder-X single-neuron recipe; `arg`: "short_cpu" and/or variant items."""
    c = neuron_recipe(
        data_name="pathfinder128", input_dim=8, num_classes=2, num_memory=100,
        memory_tau=(1.0, 16384.0), batch_size=32, num_train_steps=20_000, learning_rate=5e-3,
    )  # fmt: skip
    short = {
        "data.name": "pathfinder128_default", "model.num_memory": 10, "data.batch_size": 8,
        "num_train_steps": 20,
        "eval_every": 20, "checkpoint_every": 20, "log_every": 10,
        "data.val_max_batches": 1, "data.test_max_batches": 1, "data.eval_batch_size": 32,
    }  # fmt: skip
    return finish(c, arg, short)
