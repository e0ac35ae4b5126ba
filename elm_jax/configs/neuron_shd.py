"""SHD (20 classes) with one ELM neuron: the authors' SHD notebook recipe.

Paper figure: none in our sources (docs/science.md §1 quotes the neuron paper's SHD-Adding and LRA
results, not its SHD accuracy). Values from the authors' `train_elm_on_shd.ipynb`: 10 ms bins, d_m =
100, one MLP layer, τ_m fixed, log-spaced over 1–500 ms, λ = 5, Δt = the bin width (milliseconds),
one synapse per input (no routing), the original (v1) neuron, Adamax lr 5e-3 with cosine decay over
all steps, batch 8, input dropout 0.5, 10 epochs (10 × 814 batches of the 6,514 training digits =
8,140 steps). τ_s = 5 ms (the reference default, docs/science.md §4).

Command line:

    python -m elm_jax.main --config=elm_jax/configs/neuron_shd.py --workdir=runs/neuron_shd

`neuron_shd.py:short_cpu` is the few-minute CPU version `make bench-tasks` runs.
Expected run time: GPU minutes (an estimate, not measured: 8,140 steps of one neuron at T =
100). CPU (measured on 2 shared cores, `python probes/tasks.py`): the recipe trains about 35,000
steps per 10 minutes (`--full --steps 30`, training speed of the last logged interval,
evaluation excluded), so its 8,140 steps fit; `short_cpu` (50 ms bins, d_m = 20, 300 steps on
shd-default) reaches 64.5 % validation accuracy (256 examples; input-blind 6.6 %, loss 1.31
against 2.97 nats) in 24 s."""

from __future__ import annotations

import ml_collections

from elm_jax.configs.single_neuron import finish, neuron_recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The SHD single-neuron recipe; `arg`: "short_cpu" and/or variant items."""
    c = neuron_recipe(
        data_name="shd", input_dim=700, num_classes=20, num_memory=100,
        memory_tau=(1.0, 500.0), batch_size=8, num_train_steps=8140, learning_rate=5e-3,
        neuron_version="v1", input_dropout=0.5, time_unit="ms",
    )  # fmt: skip
    c.data.bin_ms = 10.0
    return finish(c, arg, {"data.name": "shd_default", "data.bin_ms": 50.0, "model.num_memory": 20})
