"""Pathfinder (32 x 32, pixel by pixel, 16 grey levels one-hot, 1,024 steps) with one ELM neuron.

Paper figure (docs/science.md §1 / the neuron paper's LRA table): the ELM neuron reaches 71.2 % test
accuracy on Pathfinder. Input: 16 one-hot grey levels (the paper's binning), 2 classes (are the
markers connected?), label at the last step. Not given in our sources; our choice: d_m = 100,
τ_m fixed, log-spaced over 1–1000 steps, one synapse per input, v2 neuron, Adamax lr 5e-3 with
cosine decay, batch 32, 20,000 steps.

Data: `pathfinder32` — the LRA folder from the data directory; `data.name=pathfinder32_default`
is the project's Pathfinder-style generator (a labelled stand-in, docs/data.md).

Command line:

    python -m elm_jax.main --config=elm_jax/configs/neuron_pathfinder.py \
        --workdir=runs/neuron_pathfinder

`neuron_pathfinder.py:short_cpu` is the CPU version `make bench-tasks` runs: d_m = 20, batch 32,
6,000 steps on the generated pathfinder32_default, validation and test on their first 1,024
images. The neuron stays at chance for its first 2,000 steps and leaves it by 4,000 (the first
short version, batch 16 and 300 steps, was at chance).

Expected run time: GPU a few hours (an estimate, not measured: 20,000 steps at T = 1024). CPU
(measured on 2 shared cores, one of them used): `short_cpu` took 389 s through `elm_jax.main`
and 431 s through `python probes/tasks.py` (about 8,500 training steps per 10 minutes) and
reached 56.8 % validation and 59.0 % test accuracy against the input-blind 50.2 % and 51.0 %
of the same 1,024 images (loss 0.671 and 0.662 against 0.693 nats). At the generator's easy
level (`short_cpu,data.name=pathfinder32_easy_default,steps=3000`, 260 s) it reaches 59.2 %
and 58.8 % (loss 0.620, 0.628). What it can use short of tracing the contour:
`probes/pathfinder_probe.py` finds the steps between the two markers alone worth 61 % / 59 %
(hard) and 71 % / 70 % (easy) to a logistic regression (docs/data.md)."""

from __future__ import annotations

import ml_collections

from elm_jax.configs.single_neuron import finish, neuron_recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The Pathfinder single-neuron recipe; `arg`: "short_cpu" and/or variant items."""
    c = neuron_recipe(
        data_name="pathfinder32", input_dim=16, num_classes=2, num_memory=100,
        memory_tau=(1.0, 1000.0), batch_size=32, num_train_steps=20_000, learning_rate=5e-3,
    )  # fmt: skip
    short = {
        "data.name": "pathfinder32_default", "model.num_memory": 20, "data.batch_size": 32,
        "num_train_steps": 6000, "eval_every": 2000, "checkpoint_every": 6000, "log_every": 500,
        "data.val_max_batches": 16, "data.test_max_batches": 16,
    }  # fmt: skip
    return finish(c, arg, short)
